"""Train a dense network, then prune it in rounds with rewinding (OMP: --pruning_times 2; IMP: more).

Example (the original README's OMP command on the embedded digits data):
    python main_imp.py --dataset digits --arch resnet18 --epochs 30 --prune_type rewind_lt \\
        --rewind_epoch 3 --rate 0.95 --pruning_times 2 --save_dir runs/omp
With --leave_out_forget and main_forget.py's forget-set flags, every round trains on D_r alone: the clean
reference whose mask has never seen the forget set (add --forget_seed S for main_forget.py's --seed S).
"""

from __future__ import annotations

from experiments import arg_parser, pruning_rounds
from experiments.experiment import model_meta
from utils import log, run_cli


def make_parser():
    parser = arg_parser.Parser(description=__doc__, formatter_class=arg_parser.HelpFormatter)
    arg_parser.add_data_args(parser)
    arg_parser.add_model_args(parser)
    arg_parser.add_run_args(parser, save_dir_default="runs/imp")
    arg_parser.add_train_args(parser)
    arg_parser.add_prune_args(parser)
    arg_parser.add_leave_out_args(parser)
    arg_parser.add_unused_args(parser, UNUSED)
    return parser


# What the original's shared parser accepted and main_imp.py does not use (the forget-set flags it does).
UNUSED = {flag: why for flag, why in arg_parser.UNUSED_BY_TRAINING.items() if flag not in arg_parser.FORGET_SET_FLAGS}


def main(argv=None):
    args = make_parser().parse_args(argv)
    arg_parser.warn_unused(args, "main_imp.py", UNUSED)
    pruning_rounds.validate(args)
    with pruning_rounds.folder_lock(args) as lock:
        runtime, data, model, resume, identity = pruning_rounds.set_up(args)
        with pruning_rounds.open_save_dir(args, lock):
            described = pruning_rounds.describe_data(data, args, runtime)
            log(f"{described}, {args.pruning_times} round(s) at rate {args.rate}")
            meta = {**model_meta(args, data), "identity": identity}
            rounds = pruning_rounds.run_imp(args, data, model, runtime, log=log, meta=meta, resume=resume)
    for result in rounds:
        print(pruning_rounds.describe_round(result))


if __name__ == "__main__":
    run_cli(main)
