"""Set-up shared by the four scripts: check the names early, then build runtime, data and model."""

from __future__ import annotations

import torch

import dataset
import models
from experiments.arg_parser import check_nonnegative, parse_milestones
from training.runtime import Runtime
from utils import UsageError, resolve_device, set_seed


def validate_common(args) -> None:
    """Checks that need no data: registry names, numbers, the LR schedule, the device."""
    dataset.get_dataset(args.dataset)  # an unknown name: the error lists the registered ones
    models.check_arch(args.arch)
    size = getattr(args, "image_size", 224)
    if size != 224 and args.dataset != "imagenet":
        raise UsageError(f"--image_size {size} applies to --dataset imagenet only; drop it for {args.dataset}")
    if size < 8:
        raise UsageError(f"--image_size {size} is too small; give at least 8 (32 or 64 for ImageNet in memory)")
    check_nonnegative(
        args,
        [
            "epochs",
            "lr",
            "unlearn_epochs",
            "unlearn_lr",
            "warmup",
            "rewind_epoch",
            "weight_decay",
            "momentum",
            "no_l1_epochs",
            "alpha",  # FF's noise scale, IU's step, the l1 coefficient: none is negative
        ],
    )
    for name in ("seed", "split_seed", "train_seed"):
        value = getattr(args, name, None)
        if value is not None and not 0 <= value < 2**32:
            raise UsageError(
                f"--{name} {value} is outside 0..{2**32 - 1}, the range numpy seeds take; give a seed in it"
            )
    if args.batch_size < 1:
        raise UsageError(f"--batch_size {args.batch_size} must be at least 1")
    parse_milestones(args.decreasing_lr)
    resolve_device(args.device, args.gpu)
    threads = getattr(args, "threads", 1)
    if threads < 1:
        raise UsageError(f"--threads {threads} is not a thread count; give 1 (the default) or more")


def make_runtime(args) -> Runtime:
    """The device and its settings; PyTorch's CPU thread count set to --threads (it decides CPU numerics)."""
    torch.set_num_threads(getattr(args, "threads", 1))
    return Runtime(
        resolve_device(args.device, args.gpu),
        fast=not args.fp32,
        progress=not args.no_progress,
        compile=args.compile,
    )


def build_model(args, data, seed: int):
    """A freshly initialised model for ``data``; ``seed`` fixes the initial weights."""
    set_seed(seed)
    return models.build_model(
        args.arch,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        mean=data.mean,
        std=data.std,
        imagenet_arch=args.imagenet_arch,
    )


def model_meta(args, data) -> dict:
    """Facts stored in every checkpoint so a later script can check it was made for the same set-up."""
    return {
        "arch": args.arch,
        "dataset": data.name,
        "num_classes": data.num_classes,
        "in_channels": data.in_channels,
        "split_seed": data.split_seed,
        "train_subset": data.train_subset,
        "imagenet_arch": args.imagenet_arch,
    }
