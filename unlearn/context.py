"""What every unlearning method is handed: a frozen context and the run's checkpointing handle.

The contract of a method (``fn(model, ctx)`` in its registry entry, see ``unlearn.Method``):

- ``model`` is θ_o (or, for a method with ``loads_weights=False``, a fresh initialisation under
  θ_o's mask) on ``ctx.runtime``'s device; the method changes it in place.
- ``ctx`` is an ``UnlearnContext``: the data, the whole forget set, the parsed flags, the runtime,
  the method's own registry entry, and ``ctx.progress``, the one thing the method may write to.
- An iterative method hands the shared loop (``unlearn.loop.iterate``) a subset and a loss per
  epoch. A loss is ``loss_fn(model, images, labels) -> (loss, logits)``: ``model`` is the module
  to call (it may be the compiled twin), ``images`` are already on the device in the runtime's
  memory format, ``labels`` are int64 class indices, ``loss`` is a scalar tensor to minimise and
  ``logits`` the model's output on ``images`` (for the running accuracy). The loop runs the loss
  under the runtime's autocast; a loss that needs float32 casts its inputs itself.
- It returns nothing or a dict of artefacts, ``{name: {tensor name: tensor}}``; the run layer
  writes each as ``{--save_dir}/{--unlearn}_{name}.pth.tar`` (SalUn's saliency mask).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dataset import Data, ForgetSet
from training.runtime import Runtime
from unlearn import get_method


@dataclass
class Progress:
    """The run layer's handle on one unlearning step.

    ``save(state)`` is called by the loop after every epoch, and when a signal stops it mid-epoch,
    with the state to continue from; ``resume`` is such a state when the run continues an
    interrupted one. ``prepared`` is what the method's ``prepare`` made from θ_o; ``stats`` is what
    the method reports for the results file (per-epoch logs and the like); ``log`` prints a line.
    """

    log: Callable[[str], None] = print
    save: Callable[[dict], None] | None = None
    resume: dict | None = None
    prepared: object = None
    stats: dict = field(default_factory=dict)


@dataclass(frozen=True)
class UnlearnContext:
    data: Data
    forget: ForgetSet  # D_f and D_r as positions in data.train_images, and how D_f was chosen
    args: argparse.Namespace  # every flag, parsed; a method reads its hyperparameters here
    runtime: Runtime
    method: object  # its own registry entry (unlearn.Method)
    milestones: tuple[int, ...] = ()  # --decreasing_lr, parsed once
    progress: Progress = field(default_factory=Progress)

    @classmethod
    def build(
        cls,
        data,
        forget_indices,
        args,
        runtime,
        method=None,
        retain_indices=None,
        forgotten_class=None,
        milestones=(),
        log=print,
    ):
        """A context whose D_f is ``forget_indices`` and D_r ``retain_indices`` (default: the rest of the training
        set), for tests and benchmarks. ``method`` is a registry name (default ``args.unlearn``).
        """
        forget_indices = np.asarray(forget_indices, dtype=np.int64)
        every = np.arange(len(data.train_labels))
        retain = np.setdiff1d(every, forget_indices) if retain_indices is None else np.asarray(retain_indices)
        scenario = "indices" if forgotten_class is None else "class"
        forget = ForgetSet(scenario, forget_indices, retain, forgotten_class)
        entry = get_method(method or args.unlearn)
        return cls(data, forget, args, runtime, entry, tuple(milestones), Progress(log=log))

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def forget_indices(self) -> np.ndarray:
        return self.forget.forget_indices

    @property
    def retain_indices(self) -> np.ndarray:
        return self.forget.retain_indices

    @property
    def forgotten_class(self) -> int | None:
        """The class, when a whole class is forgotten (FF's head rule), else None."""
        return self.forget.forgotten_class

    @property
    def stats(self) -> dict:
        return self.progress.stats

    def log(self, line: str) -> None:
        self.progress.log(line)

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
