"""ImageNet in the standard folder layout: ``--data`` holds ``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG``.

The layout torchvision's ``ImageFolder`` reads (classes are the sorted folder names, the same in both
splits; ``val`` sorted into class folders, as the usual preparation script does). Every image is decoded
once, as the original's evaluation transform does it, to ``--image_size`` pixels: the shorter side resized
(bilinear) to round(S·256/224), then the centre S x S crop, kept as uint8 in memory like every other
dataset here, so S sets the memory: ImageNet-1k's 1.28 M training images take about 190 GB at the
original's 224, 15.7 GB at 64 and 3.9 GB at 32; a run that would not fit is refused before decoding.
The official ``val`` split is the test set; the validation split is carved from ``train`` as for every
dataset. Training augmentation is this project's (a random crop with 4 pixels of padding and a
horizontal flip) instead of the original's RandomResizedCrop, which needs the full-size images.

Forgetting follows the original's ImageNet rule: class-wise, every training image of ``--class_to_replace``
is forgotten (the whole class, so test accuracy leaves the class out); main_forget.py's other scenarios
work too.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from dataset.registry import RawDataset, register_dataset
from utils import UsageError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _folder(data: Path, split: str):
    from torchvision.datasets import ImageFolder

    root = data / split
    if not root.is_dir():
        raise UsageError(
            f"ImageNet: '{root}' does not exist; point --data at the folder holding train/ and val/, each with "
            "one folder of JPEG images per class"
        )
    try:
        return ImageFolder(str(root))
    except (FileNotFoundError, RuntimeError) as err:
        raise UsageError(f"ImageNet: '{root}' holds no class folders of images ({err})") from None


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(count: int, size: int) -> None:
    """Refuse a decode whose uint8 images would take more than the machine's memory, with the sizes that fit."""
    needed, memory = count * 3 * size * size, _physical_memory()
    if memory is not None and needed > memory:
        fits = [s for s in (128, 96, 64, 32) if count * 3 * s * s <= memory]
        hint = f"give --image_size {fits[0]} or less" if fits else "use a folder with fewer images"
        raise UsageError(
            f"ImageNet at --image_size {size}: {count} images take {needed / 2**30:.1f} GiB in memory, more than "
            f"this machine's {memory / 2**30:.1f} GiB; {hint}"
        )


def decode(samples, size: int) -> torch.Tensor:
    """(N, 3, S, S) uint8: each image's shorter side resized to round(S·256/224), then its centre S x S crop."""
    from PIL import Image
    from torchvision.transforms import functional as TF

    resize = round(size * 256 / 224)
    images = torch.zeros(len(samples), 3, size, size, dtype=torch.uint8)
    for index, (path, _) in enumerate(samples):
        with Image.open(path) as image:
            picture = TF.resize(image.convert("RGB"), resize, interpolation=TF.InterpolationMode.BILINEAR)
            images[index] = TF.pil_to_tensor(TF.center_crop(picture, [size, size]))
    return images


@register_dataset(
    "imagenet", "ImageNet (train/ and val/ class folders under --data; --image_size)", random_count=115_306
)
def load_imagenet(data: Path, image_size: int = 224, **_):
    train, val = _folder(data, "train"), _folder(data, "val")
    if train.classes != val.classes:
        missing = sorted(set(train.classes) ^ set(val.classes))
        raise UsageError(
            f"ImageNet: train/ and val/ have different class folders (e.g. '{missing[0]}'); fix the layout"
        )
    check_memory(len(train.samples) + len(val.samples), image_size)
    labels = [torch.tensor([label for _, label in folder.samples], dtype=torch.int64) for folder in (train, val)]
    return RawDataset(
        "imagenet",
        decode(train.samples, image_size),
        labels[0],
        decode(val.samples, image_size),
        labels[1],
        num_classes=len(train.classes),
        mean=MEAN,
        std=STD,
        info={"classes": list(train.classes), "image_size": image_size},
    )
