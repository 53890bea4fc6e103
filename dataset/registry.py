"""The dataset registry: each reader registers under its --dataset name and returns raw arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from utils import UsageError


@dataclass
class RawDataset:
    """An official train/test pair in memory: images uint8 (N, C, H, W), labels int64 (N,)."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    mean: tuple
    std: tuple
    crop_padding: int = 4
    flip: bool = True
    info: dict = field(default_factory=dict)

    @property
    def in_channels(self) -> int:
        return self.train_images.shape[1]


@dataclass(frozen=True)
class DatasetEntry:
    """A ``--dataset``: its reader and the facts other layers need before (or without) loading it."""

    name: str
    load: object  # load(data=Path, data_dir=Path, download=bool) -> RawDataset
    help: str  # one line for --dataset's help
    random_count: int  # samples forgotten in the random scenario by default: 10% of D (train after the val split)
    rl_mixed_epoch: bool = False  # RL's epoch: D_f and D_r shuffled together (else every D_f batch, then D_r)


DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(name: str, help: str, random_count: int, rl_mixed_epoch: bool = False):
    """Decorator: register a reader under ``name`` with its facts (see ``DatasetEntry``)."""

    def add(loader):
        if name in DATASETS:
            raise ValueError(f"--dataset '{name}' is registered twice; give the new loader another name")
        DATASETS[name] = DatasetEntry(name, loader, help, random_count, rl_mixed_epoch)
        return loader

    return add


def get_dataset(name: str) -> DatasetEntry:
    if name not in DATASETS:
        raise UsageError(f"unknown --dataset '{name}'; choose from {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def dataset_help() -> str:
    """--dataset's help: every registered dataset with its line."""
    return "; ".join(f"{entry.name}: {entry.help}" for entry in DATASETS.values())


def load_raw(
    name: str, data: str = "../data", data_dir: str = "./tiny-imagenet-200", download: bool = True, image_size=None
):
    """The dataset ``name`` read from its files; ``image_size``: the side ImageNet's images are decoded to."""
    sized = {} if image_size is None else {"image_size": image_size}
    return get_dataset(name).load(data=Path(data), data_dir=Path(data_dir), download=download, **sized)
