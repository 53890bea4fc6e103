"""Relearn time: how many fine-tuning steps on D_f bring an unlearned model back to knowing D_f.

A model that only hides D_f (its outputs changed, the information still in the weights) relearns it in
a few steps; a model that never saw D_f needs about as many as Retrain does. The measurement
(ERASURE's "AIN", the lecture notes' "retraining time"): fine-tune a copy of the model with SGD
(``lr``, momentum 0.9, no weight decay; the mask kept) on D_f, or a seeded ``samples``-image subset
of it, in shuffled batches of ``batch_size`` without augmentation, and after every step measure the
accuracy on the whole D_f (test transform, eval mode). The relearn time is the number of steps until
that accuracy first reaches ``target`` (Retrain's D_f accuracy plus a margin, so that the model must
know D_f better than a model that never trained on it); 0 if it already does, ``None`` if it has not
after ``max_steps`` steps. The model itself is not changed.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
import torch

import pruner
from training.trainer import accuracy, cross_entropy


@dataclass(frozen=True)
class RelearnSettings:
    lr: float = 0.01
    batch_size: int = 32
    max_steps: int = 100
    samples: int | None = None  # a subset of D_f to relearn on (None: all of it)
    seed: int = 0


def relearn_time(model, data, forget_indices, runtime, target: float, settings: RelearnSettings) -> dict:
    """{"steps", "reached", "target", "accuracy_before", "accuracy_after", "curve", and the settings}."""
    learner = _trainable_copy(model)
    subset = np.asarray(forget_indices, dtype=np.int64)
    if settings.samples is not None and settings.samples < len(subset):
        subset = np.sort(np.random.RandomState(settings.seed).choice(subset, settings.samples, replace=False))
    optimizer = torch.optim.SGD(learner.parameters(), lr=settings.lr, momentum=0.9)
    batches = data.train_batches(subset, batch_size=settings.batch_size, augment=False, seed=settings.seed)

    def measured() -> float:
        return accuracy(learner, data.eval_batches("train", forget_indices), runtime)

    curve, epoch = [measured()], 0
    while curve[-1] < target and len(curve) <= settings.max_steps:
        batches.set_epoch(epoch)
        for images, labels in batches:
            learner.train()
            with runtime.autocast:
                loss, _ = cross_entropy(runtime.call(learner), runtime.inputs(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            curve.append(measured())
            if curve[-1] >= target or len(curve) > settings.max_steps:
                break
        epoch += 1
    reached = curve[-1] >= target
    return {
        "steps": len(curve) - 1 if reached else None,
        "reached": reached,
        "target": target,
        "accuracy_before": curve[0],
        "accuracy_after": curve[-1],
        "curve": curve,
        **asdict(settings),
        "relearned_on": len(subset),
    }


def _trainable_copy(model):
    with torch.no_grad():
        pruner.refresh_weights(model)
    learner = copy.deepcopy(model)
    return learner.requires_grad_(True)
