"""Train a dense network, then prune it in rounds with rewinding (OMP: --pruning_times 2; IMP: more).

Example (the original README's OMP command on the embedded digits data):
    python main_imp.py --dataset digits --arch resnet18 --epochs 30 --prune_type rewind_lt \\
        --rewind_epoch 3 --rate 0.95 --pruning_times 2 --save_dir runs/omp
With --leave_out_forget and main_forget.py's forget-set flags, every round trains on D_r alone: the clean
reference whose mask has never seen the forget set (add --forget_seed S for main_forget.py's --seed S).
--optimizer sam and --label_smoothing 0.1 train as the original's main_sam.py and main_ls.py do.
"""

from __future__ import annotations

from experiments import training_cli
from utils import log, run_cli


def make_parser():
    return training_cli.make_parser(__doc__)


def main(argv=None):
    training_cli.main(make_parser(), "main_imp.py", argv, log)


if __name__ == "__main__":
    run_cli(main)
