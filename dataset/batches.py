"""Device-resident batches with replayable augmentation draws (random crop + flip as tensor ops)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(images: torch.Tensor, padding: int, offsets: torch.Tensor) -> torch.Tensor:
    """Crop each image of (B, C, H, W) from its zero-padded copy at (row, col) = offsets[b]."""
    batch, _, height, width = images.shape
    padded = F.pad(images, (padding,) * 4)
    rows = offsets[:, 0, None] + torch.arange(height, device=images.device)
    cols = offsets[:, 1, None] + torch.arange(width, device=images.device)
    gathered = padded.permute(0, 2, 3, 1)[
        torch.arange(batch, device=images.device)[:, None, None], rows[:, :, None], cols[:, None, :]
    ]
    return gathered.permute(0, 3, 1, 2)


def augment_draws(batch: int, padding: int, flip: bool, generator: torch.Generator):
    """The random numbers ``augment`` uses for a batch: crop offsets (batch, 2) and flip flags (or None)."""
    offsets = torch.randint(0, 2 * padding + 1, (batch, 2), generator=generator)
    flips = (torch.rand(batch, generator=generator) < 0.5) if flip else None
    return offsets, flips


def augment(images: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding and an independent horizontal flip per image.

    The draws come from a CPU generator, so a seed gives the same images on every device.
    """
    offsets, flips = augment_draws(images.shape[0], padding, flip, generator)
    out = random_crop(images, padding, offsets.to(images.device)) if padding else images
    if flips is not None:
        out = torch.where(flips.to(images.device)[:, None, None, None], out.flip(3), out)
    return out


class Batches:
    """Batches of (float images in [0, 1], labels) from one uint8 tensor and an index subset.

    ``shuffle`` draws a permutation per epoch from ``seed`` and ``set_epoch``, so a resumed run
    sees the same order as an uninterrupted one.
    """

    def __init__(self, images, labels, indices=None, batch_size=256, shuffle=False, augment=None, seed=0):
        self.images, self.labels = images, labels
        self.indices = torch.arange(len(labels)) if indices is None else torch.as_tensor(indices, dtype=torch.int64)
        self.batch_size, self.shuffle, self.augment, self.seed = batch_size, shuffle, augment, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.indices) + self.batch_size - 1) // self.batch_size

    @property
    def num_samples(self) -> int:
        return len(self.indices)

    def __iter__(self):
        return self.iterate_from(0)

    def iterate_from(self, first_batch: int):
        """The epoch's batches from number ``first_batch`` on, exactly as a full pass would give them.

        The random draws of the skipped batches' augmentation are made and dropped, so the later
        batches get the same crops and flips: an epoch resumed mid-way matches an uninterrupted one.
        """
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = self.indices
        if self.shuffle:
            order = order[torch.randperm(len(order), generator=generator)]
        order = order.to(self.images.device)
        for number, start in enumerate(range(0, len(order), self.batch_size)):
            batch = order[start : start + self.batch_size]
            if number < first_batch:
                if self.augment is not None:
                    augment_draws(len(batch), *self.augment, generator)
                continue
            images = self.images[batch]
            if self.augment is not None:
                images = augment(images, *self.augment, generator)
            yield images.float().div_(255), self.labels[batch]
