"""Train a dense network, then prune it in rounds with rewinding (OMP: --pruning_times 2; IMP: more).

Example (the original README's OMP command on the embedded digits data):
    python main_imp.py --dataset digits --arch resnet18 --epochs 30 --prune_type rewind_lt \\
        --rewind_epoch 3 --rate 0.95 --pruning_times 2 --save_dir runs/omp
"""

from __future__ import annotations

import arg_parser
import dataset
from experiment import build_model, make_runtime, model_meta, save_args, validate_common
from pruning_rounds import find_resume_checkpoint, load_resume, load_rewind_file, run_imp
from utils import UsageError, run_cli

PRUNE_TYPES = ("lt", "pt", "rewind_lt")
RUN_FILES = ["[0-9]*checkpoint.pth.tar", "imp_results.json"]  # a started or finished run in --save_dir


def make_parser():
    parser = arg_parser.Parser(description=__doc__, formatter_class=arg_parser.argparse.RawDescriptionHelpFormatter)
    arg_parser.add_data_args(parser)
    arg_parser.add_model_args(parser)
    arg_parser.add_run_args(parser, save_dir_default="runs/imp")
    arg_parser.add_train_args(parser)
    arg_parser.add_prune_args(parser)
    return parser


def validate(args) -> None:
    validate_common(args)
    if args.prune_type not in PRUNE_TYPES:
        raise UsageError(f"unknown --prune_type '{args.prune_type}'; choose from {', '.join(PRUNE_TYPES)}")
    if not 0 <= args.rate < 1:
        raise UsageError(f"--rate {args.rate} is outside [0, 1); give the fraction of weights to remove per round")
    if args.pruning_times < 1:
        raise UsageError(f"--pruning_times {args.pruning_times} must be at least 1 (round 0 is the dense one)")
    if args.epochs < 1:
        raise UsageError(f"--epochs {args.epochs}: each round must train at least 1 epoch to have a best checkpoint")
    if args.rewind_epoch > args.epochs:
        raise UsageError(f"--rewind_epoch {args.rewind_epoch} is after the last epoch ({args.epochs}); lower it")
    if args.resume:
        find_resume_checkpoint(args)


def training_model(args, data, runtime):
    """(model, resume state) of a training run: the --rewind_pth and resume files are read and checked now,
    not after a round of training, and nothing is written."""
    model = runtime.prepare(build_model(args, data, seed=args.seed))
    if args.rewind_pth:
        load_rewind_file(args.rewind_pth, model)
    resume = load_resume(args, model) if args.resume else None
    return model, resume


def set_up(args):
    """(runtime, data, model, resume state) of a training run; every file is read and checked, none written."""
    runtime = make_runtime(args)
    data = dataset.load_data(args, runtime.device)
    return runtime, data, *training_model(args, data, runtime)


def main(argv=None):
    args = make_parser().parse_args(argv)
    validate(args)
    runtime, data, model, resume = set_up(args)
    arg_parser.refuse_to_overwrite(args.save_dir, RUN_FILES, args.resume)
    save_dir = arg_parser.check_save_dir(args.save_dir)
    save_args(args, save_dir)
    print(
        f"{data.name}: {len(data.train_labels)} train / {len(data.val_labels)} val / {len(data.test_labels)} test, "
        f"{args.arch} on {runtime.device}, {args.pruning_times} round(s) at rate {args.rate}",
        flush=True,
    )
    rounds = run_imp(
        args, data, model, runtime, log=lambda line: print(line, flush=True), meta=model_meta(args, data), resume=resume
    )
    for result in rounds:
        print(
            f"round {result['round']}: remaining {100 * result['remaining_weight_ratio']:.2f}%  "
            f"best val {result['best_val_acc']:.2f}%  test {result['test_acc']:.2f}%"
        )


if __name__ == "__main__":
    run_cli(main)
