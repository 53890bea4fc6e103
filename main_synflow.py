"""Prune at initialisation with SynFlow (data-free), then train and rewind in rounds as main_imp.py does.

The original README's command (one round: train the SynFlow-sparse network once):
    python -u main_synflow.py --data ./data --dataset cifar10 --prune_type rewind_lt --rewind_epoch 8 \\
        --save_dir runs/synflow --rate 0.95 --pruning_times 1
Outputs and mask format are main_imp.py's: {save_dir}/0model_SA_best.pth.tar is a mask file for
main_forget.py --mask. Rounds after the first prune by magnitude, as in main_imp.py.
"""

from __future__ import annotations

import arg_parser
import main_imp
import pruner
from experiment import model_meta, save_args
from pruning_rounds import run_imp
from utils import UsageError, run_cli

SYNFLOW_ITERATIONS = 100


def make_parser():
    parser = main_imp.make_parser()
    parser.description = __doc__
    parser.set_defaults(save_dir="runs/synflow")
    return parser


def validate(args) -> None:
    main_imp.validate(args)
    if args.epochs < 1:
        raise UsageError(f"--epochs {args.epochs}: the SynFlow-pruned network must be trained for at least 1 epoch")


def main(argv=None):
    args = make_parser().parse_args(argv)
    validate(args)
    runtime, data, model, resume = main_imp.set_up(args)
    if resume is not None and resume.get("pruning") != "synflow":
        raise UsageError(
            f"--resume: '{args.save_dir}' holds a run of main_imp.py, not of main_synflow.py; drop --resume"
        )
    arg_parser.refuse_to_overwrite(args.save_dir, main_imp.RUN_FILES, args.resume)
    save_dir = arg_parser.check_save_dir(args.save_dir)
    save_args(args, save_dir)
    log = lambda line: print(line, flush=True)  # noqa: E731
    if resume is None:  # a resumed run has its SynFlow mask in the checkpoint
        kept = pruner.synflow_prune(model, args.rate, tuple(data.train_images.shape[1:]), SYNFLOW_ITERATIONS)
        log(
            f"SynFlow: {SYNFLOW_ITERATIONS} data-free iterations pruned to {kept[-1]} conv weights "
            f"({100 * pruner.remaining_weight_ratio(model):.2f}% remain)"
        )
    log(
        f"{data.name}: {len(data.train_labels)} train / {len(data.val_labels)} val / {len(data.test_labels)} test, "
        f"{args.arch} on {runtime.device}, {args.pruning_times} round(s)"
    )
    meta = {**model_meta(args, data), "pruning": "synflow", "synflow_iterations": SYNFLOW_ITERATIONS}
    rounds = run_imp(args, data, model, runtime, log=log, meta=meta, resume=resume)
    for result in rounds:
        print(
            f"round {result['round']}: remaining {100 * result['remaining_weight_ratio']:.2f}%  "
            f"best val {result['best_val_acc']:.2f}%  test {result['test_acc']:.2f}%"
        )
    return rounds


if __name__ == "__main__":
    run_cli(main)
