"""The command line of an unlearning run: main_forget.py's, and the original's main_forget_imagenet.py."""

from __future__ import annotations

from experiments import arg_parser, unlearning_files, unlearning_run

# What the original's shared parser accepted and this script does not use, with what it uses instead.
FROM_MASK = "the sparsity and the trained weights come from --mask"
# (--lr, --rate and --random_prune are read as retrain_sam's --sam_lr and FT_prune_bi's --bi_rate and
# --bi_random_prune, as the original's methods read them.)
UNUSED = {
    "--epochs": "unlearning uses --unlearn_epochs",
    **dict.fromkeys(["--pruning_times", "--prune_type", "--rewind_epoch", "--rewind_pth"], FROM_MASK),
    "--prune": FROM_MASK,
    **dict.fromkeys(arg_parser.ATTACK_FLAGS, arg_parser.NOT_POISONING),
}


def make_parser(description: str, **defaults):
    """main_forget.py's flags; ``defaults`` (e.g. ``dataset="imagenet"``) replace their defaults."""
    parser = arg_parser.Parser(description=description, formatter_class=arg_parser.HelpFormatter)
    unlearn_group = arg_parser.add_unlearning_run_args(parser, save_dir_default="runs/unlearn")
    unlearn_group.add_argument(
        "--save_outputs",
        action="store_true",
        help="also write {save_dir}/{unlearn}_outputs.npz: logits of every forget example and of a fixed "
        "1000-example test sample, with their indices and labels (the input of main_audit.py)",
    )
    arg_parser.add_relearn_args(parser)
    arg_parser.add_unused_args(parser, UNUSED)
    parser.set_defaults(**defaults)
    return parser


def main(parser, script: str, argv, log) -> dict:
    """Parse, check, unlearn and evaluate (resumable); returns the record written to ``{unlearn}_eval.json``."""
    args = arg_parser.parse_with_preset(parser, argv)
    arg_parser.warn_unused(args, script, UNUSED)
    arg_parser.warn_other_methods_flags(args)
    unlearning_run.validate(args)
    results = unlearning_run.run(args, log)
    written = unlearning_files.paths(args.save_dir, args.unlearn)["results"]
    log(
        f"{args.unlearn}: UA {results['UA']:.2f}  MIA-Eff {results['MIA_efficacy']:.2f}  RA {results['RA']:.2f}  "
        f"TA {results['TA']:.2f}  RTE {results['RTE_min']:.3f} min -> {written}"
    )
    return results
