"""Index splits: the validation split, stratified subsets, and the forget set's positions."""

from __future__ import annotations

import numpy as np

from utils import UsageError


def validation_split(labels: np.ndarray, num_classes: int, seed: int = 1):
    """10% of each class, chosen class by class with one RandomState(seed); the rest, ascending, is D."""
    rng = np.random.RandomState(seed)
    val_idx = []
    for c in range(num_classes):
        class_idx = np.where(labels == c)[0]
        val_idx.append(rng.choice(class_idx, int(0.1 * len(class_idx)), replace=False))
    val_idx = np.concatenate(val_idx).astype(np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return train_idx, val_idx


def stratified_subset(labels: np.ndarray, num_classes: int, size: int, seed: int = 1) -> np.ndarray:
    """``size`` positions of ``labels``, ascending, drawn class by class with one RandomState(seed).

    Class c gets its proportional share of ``size`` rounded down, and the samples left over go to
    the classes with the largest remainders (ties to the lower class), so every class is within
    one sample of its exact share and the total is exactly ``size``.
    """
    counts = np.bincount(labels, minlength=num_classes)
    if not num_classes <= size <= len(labels):
        raise UsageError(
            f"--train_subset {size} is out of range: the official training set has {len(labels)} samples in "
            f"{num_classes} classes; give a value from {num_classes} to {len(labels)}"
        )
    exact = counts * size / len(labels)
    share = np.floor(exact).astype(np.int64)
    leftover = size - int(share.sum())
    share[np.argsort(-(exact - share), kind="stable")[:leftover]] += 1
    rng = np.random.RandomState(seed)
    chosen = [rng.choice(np.where(labels == c)[0], share[c], replace=False) for c in range(num_classes)]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def select_forget(labels: np.ndarray, class_to_replace: int = 0, num_indexes_to_replace=None, seed: int = 2):
    """Candidates are the samples of class c in D (all of D for c = -1); n of them drawn by RandomState(seed - 1)."""
    if class_to_replace == -1:
        candidates = np.arange(len(labels))
    else:
        candidates = np.where(labels == class_to_replace)[0]
    if num_indexes_to_replace is None:
        return candidates.astype(np.int64)
    rng = np.random.RandomState(seed - 1)
    return rng.choice(candidates, num_indexes_to_replace, replace=False).astype(np.int64)
