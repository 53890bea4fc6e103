"""NegGrad+ (Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023).

Every step pairs a D_r batch (--batch_size) with a D_f batch (--neggrad_forget_batch_size, default
--batch_size) and minimises

    β·CE(D_r batch) − (1 − β)·CE(D_f batch)        (β = --neggrad_beta),

each half with its own forward pass, as the authors' code does. An epoch runs
max(#D_r batches, #D_f batches) steps; the shorter set is cycled, repeating its batches of that
epoch in the same order. SGD(--unlearn_lr, --momentum, --weight_decay) with MultiStepLR at
--decreasing_lr, through the shared loop. The authors' CIFAR-10 ResNet setting (its preset,
``--preset published``): β = 0.9999, 5 epochs, lr 0.01, no momentum, no weight decay, D_r batches
of 32 and D_f batches of 16, no augmentation. (lr 1e-4, weight decay 5e-4 and batches of 128 on
both sets is their CIFAR-100 VGG-16 setting.)
"""

from __future__ import annotations

import argparse
import itertools

import torch
import torch.nn.functional as F

from unlearn import Flag, Param, Preset, register
from unlearn.loop import iterate
from utils import UsageError


def cycled(batches, first_batch: int):
    """``batches`` from number ``first_batch`` (modulo its length) on, starting over at its end, forever."""
    start = first_batch % len(batches)
    while True:
        yield from batches.iterate_from(start)
        start = 0


class PairedBatches:
    """Each step's D_r batch and D_f batch, concatenated; ``retain_count`` says where D_f begins.

    The loss splits the concatenation again (two forward passes, so batch-norm statistics are
    taken per set, as in the authors' code); ``retain_count`` is set before each yield, and the
    loop computes the loss of a batch before asking for the next one.
    """

    name = "D_r + D_f pairs"

    def __init__(self, retain, forget):
        if len(retain) == 0 or len(forget) == 0:
            raise UsageError("NegGrad+ needs a non-empty retain set and forget set")
        self.retain, self.forget = retain, forget
        self.retain_count = 0

    def set_epoch(self, epoch: int) -> None:
        self.retain.set_epoch(epoch)
        self.forget.set_epoch(epoch)

    def __len__(self) -> int:
        return max(len(self.retain), len(self.forget))

    def iterate_from(self, first_batch: int):
        pairs = zip(cycled(self.retain, first_batch), cycled(self.forget, first_batch))
        for (retain_images, retain_labels), (forget_images, forget_labels) in itertools.islice(
            pairs, len(self) - first_batch
        ):
            self.retain_count = len(retain_labels)
            yield torch.cat([retain_images, forget_images]), torch.cat([retain_labels, forget_labels])


def batch_size_or_none(text: str) -> int | None:
    if text in ("None", "none", ""):
        return None
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def neggrad_plus_loss(pairs: PairedBatches, beta: float):
    def loss_fn(model, images, labels):
        split = pairs.retain_count
        retain_logits, forget_logits = model(images[:split]), model(images[split:])
        retain_loss = F.cross_entropy(retain_logits, labels[:split])
        forget_loss = F.cross_entropy(forget_logits, labels[split:])
        return beta * retain_loss - (1 - beta) * forget_loss, torch.cat([retain_logits, forget_logits])

    return loss_fn


@register(
    "NegGrad+",
    paper_name="NegGrad+",
    help="beta*CE(D_r) - (1-beta)*CE(D_f) on paired batches (--neggrad_beta)",
    rank=22,
    test_args="--unlearn_epochs 1",
    demo_args="--unlearn_epochs 5 --unlearn_lr 0.01 --batch_size 32 --neggrad_beta 0.99",
    search_space=(
        Param("unlearn_lr", 1e-4, 1e-1, log=True),
        Param("unlearn_epochs", 1, 10, integer=True),
        Param("neggrad_beta", 0.9, 0.9999),
    ),
    preset=Preset(
        "--unlearn_lr 0.01 --unlearn_epochs 5 --momentum 0 --weight_decay 0 --neggrad_beta 0.9999 --batch_size 32 "
        "--neggrad_forget_batch_size 16 --no-aug",
        "meghdadk/SCRUB MIA_experiments.ipynb (CIFAR-10, ResNet; 100 samples of class 5)",
    ),
    flags=(
        Flag("neggrad_beta", 0.9999, float, "NegGrad+: weight of CE on D_r; D_f's CE is subtracted with 1 - beta"),
        Flag(
            "neggrad_forget_batch_size",
            None,
            batch_size_or_none,
            "NegGrad+: batch size on D_f (default: --batch_size)",
            added_later="recorded",
        ),
    ),
)
def unlearn(model, ctx) -> None:
    beta = ctx.args.neggrad_beta
    if not 0 <= beta <= 1:
        raise UsageError(f"--neggrad_beta {beta} is outside [0, 1]")
    forget = ctx.batches("forget", batch_size=ctx.args.neggrad_forget_batch_size)
    pairs = PairedBatches(ctx.batches("retain"), forget)
    iterate(model, ctx, pairs, lambda epoch: neggrad_plus_loss(pairs, beta))
