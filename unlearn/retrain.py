"""Retrain: train on D_r from a fresh initialisation (seeded by --train_seed) under the same mask.

The exact unlearner and gold standard: the script re-initialises the model before calling this.
"""

from training.trainer import cross_entropy
from unlearn import SPARSE_README, Preset, register
from unlearn.loop import iterate


@register(
    "retrain",
    paper_name="Retrain",
    loads_weights=False,
    help="train from scratch on D_r under the checkpoint's mask (exact unlearning, the reference)",
    rank=1,
    test_args="--unlearn_epochs 1",
    in_tables=True,
    demo_args="--unlearn_epochs 30 --unlearn_lr 0.05 --decreasing_lr 20,25",
    preset=Preset("--unlearn_epochs 160 --unlearn_lr 0.1", SPARSE_README),
)
def unlearn(model, ctx) -> None:
    iterate(model, ctx, "retain", lambda epoch: cross_entropy)
