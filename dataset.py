"""Data layer: a dataset is uint8 image tensors plus labels; every subset is an index tensor.

The images live on the run's device as one uint8 tensor (as in airbench): batches are gathered by
index and augmented with a few tensor ops there, so no loop runs per sample and no worker
process is needed. Readers for the standard on-disk layouts fill that tensor once.
"""

from __future__ import annotations

import contextlib
import gzip
import pickle
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from utils import UsageError

DIGITS_TEST_SPLIT_SEED = 0  # fixed stratified 80/20 train/test partition of scikit-learn's digits


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


DATASETS = {}


def register_dataset(name):
    def add(loader):
        if name in DATASETS:
            raise ValueError(f"--dataset '{name}' is registered twice; give the new loader another name")
        DATASETS[name] = loader
        return loader

    return add


def load_raw(name: str, data: str = "../data", data_dir: str = "./tiny-imagenet-200", download: bool = True):
    if name not in DATASETS:
        raise UsageError(f"unknown --dataset '{name}'; choose from {', '.join(sorted(DATASETS))}")
    return DATASETS[name](data=Path(data), data_dir=Path(data_dir), download=download)


# ----------------------------------------------------------------------------- readers


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR's python batches are pickles; allow the numpy array constructors and nothing else."""

    allowed = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("builtins", "bytes"),
    }

    def find_class(self, module, name):
        if (module, name) in self.allowed:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_cifar_batch(path: Path, label_key: str):
    try:
        with open(path, "rb") as handle:
            entry = _NumpyOnlyUnpickler(handle, encoding="latin1").load()
        images = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as err:
        raise UsageError(f"'{path}' is not a CIFAR python batch ({err}); replace it with the official file") from None
    return images, np.asarray(entry[label_key], dtype=np.int64)


def _fetch_or_undo(fetch, folder: Path) -> None:
    """Run ``fetch`` (a download into ``folder``); when it fails, remove what it left behind, and only that.

    torchvision creates the folder and writes the archive as it arrives, so a failed download would
    otherwise leave new folders and a partial file on disk. What is removed: the entries of ``folder``
    that were not there before, then each folder the download created, only if it is empty now (another
    process may have written beside it meanwhile: its files, and the folders holding them, stay).
    """
    created = [path for path in [*reversed(folder.parents), folder] if not path.exists()]
    before = set(folder.iterdir()) if folder.is_dir() else set()
    try:
        fetch()
    except Exception:
        for path in sorted(set(folder.iterdir()) - before) if folder.is_dir() else []:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for path in reversed(created):  # deepest first
            with contextlib.suppress(OSError):  # not empty (another process's files) or already gone
                path.rmdir()
        raise


def _require_files(root: Path, names, what: str, fetch=None, fetch_into: Path | None = None):
    missing = [name for name in names if not (root / name).is_file()]
    if missing and fetch is not None:
        try:
            _fetch_or_undo(fetch, root if fetch_into is None else fetch_into)
        except Exception as err:  # any failure to download is reported as the missing files below
            fetch_error = f" (download failed: {str(err).splitlines()[0] if str(err) else type(err).__name__})"
        else:
            fetch_error = ""
        missing = [name for name in names if not (root / name).is_file()]
    else:
        fetch_error = ""
    if missing:
        raise UsageError(
            f"{what} not found: '{root}' lacks {', '.join(missing)}{fetch_error}; "
            f"put the official files there or point --data at the folder that holds them"
        )


def _cifar(data: Path, download: bool, folder: str, train_files, test_file, label_key, tv_class):
    root = data / folder

    def fetch():
        import torchvision

        getattr(torchvision.datasets, tv_class)(str(data), download=True)

    _require_files(root, [*train_files, test_file], tv_class, fetch if download else None, fetch_into=data)
    parts = [_read_cifar_batch(root / name, label_key) for name in train_files]
    train_x = np.concatenate([images for images, _ in parts])
    train_y = np.concatenate([labels for _, labels in parts])
    test_x, test_y = _read_cifar_batch(root / test_file, label_key)
    return torch.from_numpy(train_x), torch.from_numpy(train_y), torch.from_numpy(test_x), torch.from_numpy(test_y)


@register_dataset("cifar10")
def load_cifar10(data: Path, download: bool = True, **_):
    train_files = [f"data_batch_{i}" for i in range(1, 6)]
    tensors = _cifar(data, download, "cifar-10-batches-py", train_files, "test_batch", "labels", "CIFAR10")
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    return RawDataset("cifar10", *tensors, num_classes=10, mean=mean, std=std)


@register_dataset("cifar100")
def load_cifar100(data: Path, download: bool = True, **_):
    tensors = _cifar(data, download, "cifar-100-python", ["train"], "test", "fine_labels", "CIFAR100")
    mean, std = (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)
    return RawDataset("cifar100", *tensors, num_classes=100, mean=mean, std=std)


def _read_svhn_mat(path: Path):
    from scipy.io import loadmat  # scipy comes with scikit-learn

    mat = loadmat(path)
    images = np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1)), dtype=np.uint8)
    labels = mat["y"].astype(np.int64).reshape(-1) % 10  # SVHN stores digit 0 as label 10
    return torch.from_numpy(images), torch.from_numpy(labels)


@register_dataset("svhn")
def load_svhn(data: Path, download: bool = True, **_):
    def fetch():
        import torchvision

        for split in ("train", "test"):
            torchvision.datasets.SVHN(str(data), split=split, download=True)

    _require_files(data, ["train_32x32.mat", "test_32x32.mat"], "SVHN", fetch if download else None)
    train_x, train_y = _read_svhn_mat(data / "train_32x32.mat")
    test_x, test_y = _read_svhn_mat(data / "test_32x32.mat")
    mean, std = (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)
    return RawDataset("svhn", train_x, train_y, test_x, test_y, num_classes=10, mean=mean, std=std)


def _read_images(paths):
    from PIL import Image  # Pillow comes with torchvision

    def read(path):
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)

    if not paths:
        return torch.zeros(0, 3, 64, 64, dtype=torch.uint8)
    return torch.from_numpy(np.stack([read(path) for path in paths]))


@register_dataset("TinyImagenet")
def load_tiny_imagenet(data_dir: Path, **_):
    """TinyImageNet-200 folder layout; its labelled ``val`` split serves as the test set."""
    _require_files(data_dir, ["wnids.txt", "val/val_annotations.txt"], "TinyImageNet (--data_dir)")
    wnids = (data_dir / "wnids.txt").read_text().split()
    class_of = {wnid: index for index, wnid in enumerate(wnids)}
    train_paths, train_labels = [], []
    for wnid in wnids:
        images = sorted((data_dir / "train" / wnid / "images").glob("*.JPEG"))
        if not images:
            raise UsageError(
                f"TinyImageNet: no images in '{data_dir / 'train' / wnid / 'images'}'; is --data_dir complete?"
            )
        train_paths += images
        train_labels += [class_of[wnid]] * len(images)
    test_paths, test_labels = [], []
    for line in (data_dir / "val" / "val_annotations.txt").read_text().splitlines():
        if line.strip():
            name, wnid = line.split("\t")[:2]
            test_paths.append(data_dir / "val" / "images" / name)
            test_labels.append(class_of[wnid])
    missing = [str(path) for path in test_paths if not path.is_file()]
    if missing:
        raise UsageError(f"TinyImageNet: {len(missing)} val images listed but missing, e.g. '{missing[0]}'")
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    return RawDataset(
        "TinyImagenet",
        _read_images(train_paths),
        torch.tensor(train_labels, dtype=torch.int64),
        _read_images(test_paths),
        torch.tensor(test_labels, dtype=torch.int64),
        num_classes=len(wnids),
        mean=mean,
        std=std,
    )


FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_UINT8_MAGIC = {1: 0x00000801, 3: 0x00000803}  # labels (1-D) and images (3-D) of uint8


def read_idx(path: Path, dims: int) -> np.ndarray:
    """An IDX file of uint8 with ``dims`` dimensions (MNIST's format), gzipped or plain.

    The header (magic number, then one big-endian 32-bit size per dimension) is checked against
    the bytes that follow, so a truncated or foreign file is refused with its name.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            payload = handle.read()
    except (OSError, EOFError, zlib.error) as err:
        raise UsageError(f"'{path}' cannot be read as an IDX file ({err}); replace it with the official file") from None
    header = 4 * (1 + dims)
    magic = int.from_bytes(payload[:4], "big") if len(payload) >= 4 else None
    if magic != IDX_UINT8_MAGIC[dims] or len(payload) < header:
        raise UsageError(
            f"'{path}' is not an IDX file of {dims}-D uint8 data (magic {magic!r}, expected "
            f"{IDX_UINT8_MAGIC[dims]}); replace it with the official file"
        )
    shape = tuple(int.from_bytes(payload[4 * (i + 1) : 4 * (i + 2)], "big") for i in range(dims))
    expected = header + int(np.prod(shape))
    if len(payload) != expected:
        raise UsageError(
            f"'{path}' holds {len(payload)} bytes but its header {shape} needs {expected}: the file is truncated "
            f"or damaged; replace it with the official file"
        )
    return np.frombuffer(payload, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx_file(folders, stem: str) -> Path | None:
    for folder in folders:
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def fashion_mnist_folder(data: Path) -> list[Path]:
    """Where the four files are looked for, in order: torchvision's layout under --data, --data itself, Debian's."""
    return [data / "FashionMNIST" / "raw", data, FASHION_MNIST_SYSTEM_DIR]


def _fashion_mnist_files(data: Path, download: bool) -> tuple[dict, str]:
    """(the four files, found where they are looked for; why a download failed, or ""): where one is
    missing, torchvision downloads them into --data/FashionMNIST/raw as it does CIFAR (a failed download
    leaves nothing behind)."""
    folders = fashion_mnist_folder(data)
    found, failure = {key: _find_idx_file(folders, stem) for key, stem in FASHION_MNIST_FILES.items()}, ""
    if download and None in found.values():

        def fetch():
            import torchvision

            torchvision.datasets.FashionMNIST(str(data), download=True)

        try:
            _fetch_or_undo(fetch, data)
        except Exception as err:  # no network, most often: the caller's message names the offline ways
            failure = str(err).splitlines()[0] if str(err) else type(err).__name__
        found = {key: _find_idx_file(folders, stem) for key, stem in FASHION_MNIST_FILES.items()}
    return found, failure


@register_dataset("fashionmnist")
def load_fashion_mnist(data: Path, download: bool = True, **_):
    """Fashion-MNIST's official 60,000/10,000 split, 1x28x28; crop padding 2 + horizontal flip."""
    folders = fashion_mnist_folder(data)
    found, failure = _fashion_mnist_files(data, download)
    missing = [FASHION_MNIST_FILES[key] for key, path in found.items() if path is None]
    if missing:
        failed = f" (download failed: {failure})" if failure else ""
        raise UsageError(
            f"Fashion-MNIST not found{failed}: {', '.join(missing)}[.gz] is in none of "
            f"{', '.join(str(folder) for folder in folders)}; install Debian's package (apt-get install "
            f"dataset-fashion-mnist) or put the four official files in '{data / 'FashionMNIST' / 'raw'}' "
            f"(torchvision.datasets.FashionMNIST('{data}', download=True) does that)"
        )
    arrays = {key: read_idx(path, 3 if key.endswith("images") else 1) for key, path in found.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels) or images.shape[1:] != (28, 28) or labels.max(initial=0) > 9:
            raise UsageError(
                f"Fashion-MNIST {split} files disagree ({images.shape} images, {labels.shape} labels, "
                f"labels up to {labels.max(initial=0)}): '{found[split + '_images']}' and "
                f"'{found[split + '_labels']}' are not an official pair"
            )
    return RawDataset(
        "fashionmnist",
        torch.from_numpy(arrays["train_images"][:, None].copy()),
        torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        torch.from_numpy(arrays["test_images"][:, None].copy()),
        torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        num_classes=10,
        mean=(0.2860,),
        std=(0.3530,),
        crop_padding=2,
        flip=True,
        info={"files": {key: str(path) for key, path in found.items()}},
    )


@register_dataset("digits")
def load_digits(**_):
    """scikit-learn's 8x8 digits, 1 channel, fixed stratified 80/20 split; crop pad 1, no flip."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # pixel values are 0..16
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=DIGITS_TEST_SPLIT_SEED
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    train_x = torch.from_numpy(images[train_idx])
    # Normalisation constants computed from the official training part, so they never see the test set.
    pixels = train_x.double() / 255
    mean, std = (round(pixels.mean().item(), 4),), (round(pixels.std().item(), 4),)
    return RawDataset(
        "digits",
        train_x,
        torch.from_numpy(labels[train_idx]),
        torch.from_numpy(images[test_idx]),
        torch.from_numpy(labels[test_idx]),
        num_classes=10,
        mean=mean,
        std=std,
        crop_padding=1,
        flip=False,  # a mirrored digit is another digit
        info={"test_split_seed": DIGITS_TEST_SPLIT_SEED, "test_fraction": 0.2},
    )


# ----------------------------------------------------------------------------- splits


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


# ----------------------------------------------------------------------------- device-side batches


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

    @property
    def in_channels(self) -> int:
        return self.train_images.shape[1]

    @property
    def train_augment(self):
        return (self.crop_padding, self.flip)

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
    )


def load_data(args, device="cpu") -> Data:
    """The one entry used by the scripts: read ``--dataset``, subset and split it with ``--split_seed``."""
    raw = load_raw(args.dataset, args.data, getattr(args, "data_dir", "./tiny-imagenet-200"))
    return build_data(raw, args.split_seed, device, args.train_subset)
