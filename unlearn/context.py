"""What every unlearning method is handed: the data, D_f / D_r as index sets, the flags, the device."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dataset import Data
from trainer import Runtime


@dataclass
class UnlearnContext:
    data: Data
    forget_indices: np.ndarray  # positions in data.train_images
    retain_indices: np.ndarray
    args: object
    runtime: Runtime
    forgotten_class: int | None = None  # set when a whole class is forgotten (FF's head rule)
    log: object = print
    stats: dict = field(default_factory=dict)  # per-epoch logs etc. for the results file
    on_epoch: object = None  # called with the loop's state after each epoch (crash-safe progress)
    resume: dict | None = None  # that state, to continue an interrupted run
    prepared: object = None  # what the method's ``prepare`` made from θ_o (see unlearn.Method)

    @property
    def augment(self) -> bool:
        return not self.args.no_aug

    def batches(self, subset: str, batch_size=None, shuffle=True, augment=None, seed_offset=0):
        """Batches of D_r ('retain') or D_f ('forget') with the training transform unless --no-aug."""
        indices = {"retain": self.retain_indices, "forget": self.forget_indices}[subset]
        return self.data.train_batches(
            indices,
            batch_size=batch_size or self.args.batch_size,
            shuffle=shuffle,
            augment=self.augment if augment is None else augment,
            seed=self.args.seed + seed_offset,
        )
