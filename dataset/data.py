"""A dataset as tensors plus index subsets: train/val/test, built once per run on the device."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from dataset.batches import Batches
from dataset.registry import RawDataset, load_raw
from dataset.splits import stratified_subset, validation_split
from utils import UsageError


@dataclass
class Data:
    """D (train after the validation split), validation and test tensors of one dataset, on a device.

    Every index handed around (forget, retain, poisoned) is a position in ``train_images``.
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    mean: tuple
    std: tuple
    crop_padding: int
    flip: bool
    split_seed: int
    official_train_indices: np.ndarray
    info: dict
    train_subset: int | None = None  # size of the stratified subset of the official training set, if any
    official_val_indices: np.ndarray | None = None  # where the validation samples are in the official training set
    official_train_size: int | None = None  # samples in the official training set

    @property
    def in_channels(self) -> int:
        return self.train_images.shape[1]

    @property
    def train_augment(self):
        return (self.crop_padding, self.flip)

    def without_train(self, positions) -> Data:
        """This data with the training samples at ``positions`` removed (main_imp.py --leave_out_forget)."""
        keep = np.setdiff1d(np.arange(len(self.train_labels)), np.asarray(positions, dtype=np.int64))
        index = torch.from_numpy(keep).to(self.train_labels.device)
        return dataclasses.replace(
            self,
            train_images=self.train_images[index],
            train_labels=self.train_labels[index],
            official_train_indices=self.official_train_indices[keep],
        )

    def train_batches(self, indices=None, batch_size=256, shuffle=True, augment=True, seed=0) -> Batches:
        aug = self.train_augment if augment else None
        return Batches(self.train_images, self.train_labels, indices, batch_size, shuffle, aug, seed)

    def eval_batches(self, split: str, indices=None, batch_size=512) -> Batches:
        images, labels = {
            "train": (self.train_images, self.train_labels),
            "val": (self.val_images, self.val_labels),
            "test": (self.test_images, self.test_labels),
        }[split]
        return Batches(images, labels, indices, batch_size)


def build_data(raw: RawDataset, split_seed: int = 1, device="cpu", train_subset: int | None = None) -> Data:
    """Split the official training set into D and validation (after drawing ``train_subset`` samples of it)."""
    labels = raw.train_labels.numpy()
    pool = np.arange(len(labels))
    if train_subset is not None:
        pool = stratified_subset(labels, raw.num_classes, train_subset, split_seed)
    train_pos, val_pos = validation_split(labels[pool], raw.num_classes, split_seed)
    if len(val_pos) == 0:  # no class has 10 samples: no best checkpoint could ever be chosen
        raise UsageError(
            f"--train_subset {train_subset} leaves no validation samples (10% of each class, rounded down, is "
            f"held out); give --train_subset {10 * raw.num_classes} or more"
        )
    train_idx, val_idx = pool[train_pos], pool[val_pos]  # positions in the official training set
    train_t, val_t = torch.from_numpy(train_idx), torch.from_numpy(val_idx)
    return Data(
        name=raw.name,
        train_images=raw.train_images[train_t].contiguous().to(device),
        train_labels=raw.train_labels[train_t].to(device),
        val_images=raw.train_images[val_t].contiguous().to(device),
        val_labels=raw.train_labels[val_t].to(device),
        test_images=raw.test_images.contiguous().to(device),
        test_labels=raw.test_labels.to(device),
        num_classes=raw.num_classes,
        mean=raw.mean,
        std=raw.std,
        crop_padding=raw.crop_padding,
        flip=raw.flip,
        split_seed=split_seed,
        official_train_indices=train_idx,
        info=raw.info,
        train_subset=train_subset,
        official_val_indices=val_idx,
        official_train_size=len(labels),
    )


def load_data(args, device="cpu") -> Data:
    """The one entry used by the scripts: read ``--dataset``, subset and split it with ``--split_seed``."""
    size = getattr(args, "image_size", None) if args.dataset == "imagenet" else None
    raw = load_raw(args.dataset, args.data, getattr(args, "data_dir", "./tiny-imagenet-200"), image_size=size)
    return build_data(raw, args.split_seed, device, args.train_subset)
