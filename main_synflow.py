"""Prune at initialisation with SynFlow (data-free), then train and rewind in rounds as main_imp.py does.

The original README's command with its ${save_dir} and ${rate} filled in (one round: train the
SynFlow-sparse network once; its --num_workers 8 is accepted as well and changes nothing here):
    python -u main_synflow.py --data ./data --dataset cifar10 --prune_type rewind_lt --rewind_epoch 8 \\
        --save_dir runs/synflow --rate 0.95 --pruning_times 1
Outputs and mask format are main_imp.py's: {save_dir}/0model_SA_best.pth.tar is a mask file for
main_forget.py --mask. Rounds after the first prune by magnitude, as in main_imp.py.
"""

from __future__ import annotations

import pruner
from experiments import arg_parser, pruning_rounds, run_identity
from experiments.experiment import model_meta
from utils import log, run_cli

SYNFLOW_ITERATIONS = 100


def make_parser():
    parser = arg_parser.Parser(description=__doc__, formatter_class=arg_parser.HelpFormatter)
    arg_parser.add_training_run_args(parser, save_dir_default="runs/synflow")
    arg_parser.add_unused_args(parser, arg_parser.UNUSED_BY_TRAINING)
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    arg_parser.warn_unused(args, "main_synflow.py", arg_parser.UNUSED_BY_TRAINING)
    pruning_rounds.validate(args)
    with pruning_rounds.folder_lock(args) as lock:
        runtime, data, model, resume, identity = pruning_rounds.set_up(args, run_identity.SYNFLOW)
        with pruning_rounds.open_save_dir(args, lock):
            if resume is None:  # a resumed run has its SynFlow mask in the checkpoint
                kept = pruner.synflow_prune(model, args.rate, tuple(data.train_images.shape[1:]), SYNFLOW_ITERATIONS)
                log(
                    f"SynFlow: {SYNFLOW_ITERATIONS} data-free iterations pruned to {kept[-1]} conv weights "
                    f"({100 * pruner.remaining_weight_ratio(model):.2f}% remain)"
                )
            log(f"{pruning_rounds.describe_data(data, args, runtime)}, {args.pruning_times} round(s)")
            meta = {**model_meta(args, data), "pruning": "synflow", "synflow_iterations": SYNFLOW_ITERATIONS}
            meta["identity"] = identity
            rounds = pruning_rounds.run_imp(args, data, model, runtime, log=log, meta=meta, resume=resume)
    for result in rounds:
        print(pruning_rounds.describe_round(result))
    return rounds


if __name__ == "__main__":
    run_cli(main)
