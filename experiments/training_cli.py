"""The command line of a training-and-pruning run: main_imp.py's, and the original's main_sam.py, main_ls.py
and main_vit.py.

The original trains its "other priors than sparsity" with two copies of main_imp.py that differ in one
line each: main_sam.py optimises with SAM, main_ls.py with label-smoothing cross-entropy, and main_vit.py
trains a Swin-T with Adam and cosine annealing. Here they are main_imp.py's --optimizer sam,
--label_smoothing 0.1 and --arch swin_t --optimizer adam --schedule cosine, and main_sam.py, main_ls.py
and main_vit.py are the same command with those defaults, so the original's command lines run unchanged.
"""

from __future__ import annotations

from experiments import arg_parser, pruning_rounds
from experiments.experiment import model_meta

# What the original's shared parser accepted and a training run does not use (the forget-set flags it does).
UNUSED = {flag: why for flag, why in arg_parser.UNUSED_BY_TRAINING.items() if flag not in arg_parser.FORGET_SET_FLAGS}


def make_parser(description: str, **defaults):
    """main_imp.py's flags; ``defaults`` (e.g. ``optimizer="sam"``) replace their defaults."""
    parser = arg_parser.Parser(description=description, formatter_class=arg_parser.HelpFormatter)
    arg_parser.add_training_run_args(parser, save_dir_default="runs/imp")
    arg_parser.add_leave_out_args(parser)
    arg_parser.add_unused_args(parser, UNUSED)
    parser.set_defaults(**defaults)
    return parser


def main(parser, script: str, argv, log) -> list[dict]:
    """Parse, check, train every round (resumable) and print each round's line; returns the rounds' results."""
    args = parser.parse_args(argv)
    arg_parser.warn_unused(args, script, UNUSED)
    pruning_rounds.validate(args)
    with pruning_rounds.folder_lock(args) as lock:
        runtime, data, model, resume, identity = pruning_rounds.set_up(args)
        with pruning_rounds.open_save_dir(args, lock):
            described = pruning_rounds.describe_data(data, args, runtime)
            log(f"{described}, {args.pruning_times} round(s) at rate {args.rate}{_priors(args)}")
            meta = {**model_meta(args, data), "identity": identity}
            rounds = pruning_rounds.run_imp(args, data, model, runtime, log=log, meta=meta, resume=resume)
    for result in rounds:
        print(pruning_rounds.describe_round(result))
    return rounds


def _priors(args) -> str:
    words = [f"optimizer {args.optimizer}"] if args.optimizer != "sgd" else []
    words += [f"{args.schedule} schedule"] if args.schedule != "multistep" else []
    words += [f"label smoothing {args.label_smoothing}"] if args.label_smoothing else []
    return "; " + ", ".join(words) if words else ""
