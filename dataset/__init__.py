"""Data: a dataset is tensors plus index subsets, read once and kept on the device.

``registry``: each reader registers under its ``--dataset`` name; ``readers``: the five readers
(CIFAR-10/100, SVHN, TinyImageNet, Fashion-MNIST) and the embedded digits, ``imagenet`` the
ImageNet folder layout; ``splits``: the
validation split, stratified subsets, the forget set's positions; ``batches``: device-resident
batches with replayable augmentation; ``data``: ``Data``, built once per run; ``forget_set``:
the forget set a run's flags choose; ``poisoning``: the backdoor's trigger and poisoned labels.
The names other layers use are imported here.
"""

from dataset import imagenet, readers  # noqa: E402,F401,I001  (registers every reader)
from dataset.batches import Batches, augment, augment_draws, random_crop
from dataset.data import Data, build_data, load_data
from dataset.forget_set import NUMBERINGS, ForgetSet, choose_forget_set, forget_set_of, parse_indices
from dataset.poisoning import add_trigger  # noqa: E402
from dataset.registry import DATASETS, DatasetEntry, RawDataset, dataset_help, get_dataset, load_raw, register_dataset
from dataset.splits import select_forget, stratified_subset, validation_split

__all__ = [
    "DATASETS",
    "DatasetEntry",
    "dataset_help",
    "get_dataset",
    "Batches",
    "Data",
    "ForgetSet",
    "NUMBERINGS",
    "RawDataset",
    "add_trigger",
    "augment",
    "augment_draws",
    "build_data",
    "choose_forget_set",
    "forget_set_of",
    "load_data",
    "load_raw",
    "parse_indices",
    "random_crop",
    "readers",
    "register_dataset",
    "select_forget",
    "stratified_subset",
    "validation_split",
]
