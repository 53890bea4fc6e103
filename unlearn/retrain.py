"""Retrain: train on D_r from a fresh initialisation (seeded by --train_seed) under the same mask.

The exact unlearner and gold standard: the script re-initialises the model before calling this.
"""

from trainer import cross_entropy
from unlearn import register
from unlearn.loop import iterate


@register("retrain", paper_name="Retrain", loads_weights=False)
def unlearn(model, ctx) -> None:
    iterate(model, ctx, "retain", lambda epoch: cross_entropy, "retrain")
