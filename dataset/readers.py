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
from pathlib import Path

import numpy as np
import torch

from dataset.registry import RawDataset, register_dataset
from utils import UsageError

DIGITS_TEST_SPLIT_SEED = 0  # fixed stratified 80/20 train/test partition of scikit-learn's digits


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


@register_dataset("cifar10", "CIFAR-10 (torchvision layout under --data)", random_count=4500)
def load_cifar10(data: Path, download: bool = True, **_):
    train_files = [f"data_batch_{i}" for i in range(1, 6)]
    tensors = _cifar(data, download, "cifar-10-batches-py", train_files, "test_batch", "labels", "CIFAR10")
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    return RawDataset("cifar10", *tensors, num_classes=10, mean=mean, std=std)


@register_dataset("cifar100", "CIFAR-100", random_count=4500, rl_mixed_epoch=True)
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


@register_dataset("svhn", "SVHN (train + test .mat files)", random_count=6593)
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


@register_dataset("TinyImagenet", "TinyImageNet-200 (folder: --data_dir)", random_count=9000, rl_mixed_epoch=True)
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


@register_dataset("fashionmnist", "Fashion-MNIST (Debian package or --data)", random_count=5400)
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


@register_dataset("digits", "scikit-learn's 8x8 digits, embedded (no download)", random_count=129)
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
