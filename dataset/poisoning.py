"""Backdoor (Trojan) attack: a square trigger, poisoned training data, and its success rate.

The trigger is a ``size``² square whose bottom-right corner sits 2 pixels in from the image's
bottom-right corner (rows and columns [-2-size, -2)), set to one value in every channel. Images
stay uint8, so the trigger's value is ``round(255 * value)`` for ``value`` in [0, 1].
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from dataset.data import Data
from dataset.splits import select_forget
from utils import UsageError

TRIGGER_MARGIN = 2  # pixels between the trigger and the image's bottom/right border


def trigger_pixel(value: float) -> int:
    return round(255 * value)


def check_trigger_value(value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"--trigger_value {value} is outside [0, 1]; 0 is black, 1 is white")


def check_trigger(size: int, value: float, image_shape) -> None:
    """Refuse a trigger that does not fit the (C, H, W) images or a value outside [0, 1]."""
    check_trigger_value(value)
    limit = min(image_shape[-2:]) - TRIGGER_MARGIN
    if not 1 <= size <= limit:
        raise UsageError(
            f"--trigger_size {size} does not fit {image_shape[-2]}x{image_shape[-1]} images "
            f"{TRIGGER_MARGIN} pixels in from the corner; use 1..{limit}"
        )


def add_trigger(images: torch.Tensor, size: int, value: float) -> torch.Tensor:
    """A copy of the uint8 images (..., C, H, W) with the trigger stamped on every one."""
    out = images.clone()
    corner = slice(-TRIGGER_MARGIN - size, -TRIGGER_MARGIN)
    out[..., corner, corner] = trigger_pixel(value)
    return out


def choose_poisoned(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Positions in D to poison: the random-forgetting draw (any class, RandomState(seed - 1))."""
    return select_forget(labels, -1, count, seed)


def poison(data: Data, indices, size: int, value: float, target: int) -> Data:
    """A copy of ``data`` whose training samples at ``indices`` carry the trigger and the label ``target``.

    New train tensors are made; the clean ones (shared with ``data``) are never written to.
    """
    index = torch.as_tensor(indices, dtype=torch.int64, device=data.train_images.device)
    images, labels = data.train_images.clone(), data.train_labels.clone()
    images[index] = add_trigger(data.train_images[index], size, value)
    labels[index] = target
    return dataclasses.replace(data, train_images=images, train_labels=labels)
