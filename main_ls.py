"""Train (and prune) with label smoothing: the original's main_ls.py, which is main_imp.py --label_smoothing 0.1.

The training loss of every round is the label-smoothed cross-entropy with epsilon 0.1 (the original's
LabelSmoothingCrossEntropy); every other flag is main_imp.py's. Example:
    python main_ls.py --dataset digits --arch resnet18 --epochs 30 --save_dir runs/ls
"""

from __future__ import annotations

from experiments import training_cli
from utils import log, run_cli


def make_parser():
    return training_cli.make_parser(__doc__, label_smoothing=0.1)


def main(argv=None):
    training_cli.main(make_parser(), "main_ls.py", argv, log)


if __name__ == "__main__":
    run_cli(main)
