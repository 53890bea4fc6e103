"""Train (and prune) a Swin-T with Adam and cosine annealing: the original's main_vit.py.

main_imp.py with --arch swin_t --optimizer adam --schedule cosine as the defaults: Adam at --lr without
weight decay, the learning rate annealed to 0 over --epochs, an optional per-step warm-up over the first
--warmup epochs; every other flag is main_imp.py's. The original prunes convolutions only, so its Swin
(which has none) is never pruned and its pruned rounds switch to SGD; here the Swin's linear layers are
pruned and every round trains with the chosen optimiser. Example:
    python main_vit.py --dataset digits --epochs 30 --lr 0.001 --save_dir runs/swin
"""

from __future__ import annotations

from experiments import training_cli
from utils import log, run_cli


def make_parser():
    return training_cli.make_parser(__doc__, arch="swin_t", optimizer="adam", schedule="cosine")


def main(argv=None):
    training_cli.main(make_parser(), "main_vit.py", argv, log)


if __name__ == "__main__":
    run_cli(main)
