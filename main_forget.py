"""Unlearn a forget set from a (sparse) checkpoint, evaluate UA/RA/TA/MIA/RTE, save the results.

Class-wise forgetting of class 0 (the original README's command, 4,500 = all of CIFAR-10's class 0):
    python main_forget.py --save_dir out --mask runs/omp/1model_SA_best.pth.tar --unlearn FT \\
        --num_indexes_to_replace 4500 --unlearn_lr 0.01 --unlearn_epochs 10
Random forgetting: add --class_to_replace -1. Outputs: {save_dir}/{unlearn}_eval.json and
{save_dir}/{unlearn}checkpoint.pth.tar (with --save_outputs also {save_dir}/{unlearn}_outputs.npz).
"""

from __future__ import annotations

from experiments import forget_cli
from utils import log, run_cli


def make_parser():
    return forget_cli.make_parser(__doc__)


def main(argv=None):
    return forget_cli.main(make_parser(), "main_forget.py", argv, log)


if __name__ == "__main__":
    run_cli(main)
