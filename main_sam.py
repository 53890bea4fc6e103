"""Train (and prune) with SAM: the original's main_sam.py, which is main_imp.py --optimizer sam.

SAM around SGD (rho 2, adaptive) in every round; every other flag is main_imp.py's. The original's
main_sam.py optimises round 0 with SAM and then fails at the first pruned round, so its runs are dense
(its default --pruning_times 1); with --pruning_times 2 this one also trains the pruned round with SAM.
Example:
    python main_sam.py --dataset digits --arch resnet18 --epochs 30 --save_dir runs/sam
"""

from __future__ import annotations

from experiments import training_cli
from utils import log, run_cli


def make_parser():
    return training_cli.make_parser(__doc__, optimizer="sam")


def main(argv=None):
    training_cli.main(make_parser(), "main_sam.py", argv, log)


if __name__ == "__main__":
    run_cli(main)
