"""RL (random labelling): SGD on D_f with uniformly random labels and on D_r with its true labels.

A forget sample's label is drawn uniformly from all C classes, so it can equal the true label
(as in the reference, which draws ``randint(0, C)``). How an epoch is laid out follows the
reference, which differs by dataset:

- CIFAR-10 and SVHN ("forget then retain"): every D_f batch first, each with a fresh draw of
  labels, then every D_r batch.
- CIFAR-100 and TinyImageNet ("mixed"): one label drawn per D_f sample per epoch, then D_f and D_r
  shuffled together into one sequence of batches.

Each dataset's registration states which (``rl_mixed_epoch``, dataset/registry.py): digits and
Fashion-MNIST are 10-class datasets like CIFAR-10 and SVHN and take the first. The draws are
seeded by (--seed, epoch, batch), so an epoch resumed mid-way gets the same labels as an
uninterrupted one. Loss: CE on every batch.
"""

import torch

from dataset import Batches, get_dataset
from training.trainer import cross_entropy
from unlearn import SALIENCY_README, Param, Preset, register
from unlearn.loop import TwoPasses, iterate


def random_labels(count: int, num_classes: int, seed: int, epoch: int, batch: int, device) -> torch.Tensor:
    """Uniform labels in [0, C); the generator's seed is a function of (seed, epoch, batch) only."""
    # distinct from dataset.Batches' shuffle seed (seed * 1_000_003 + epoch), so the draws are independent
    generator = torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 1_000_003 + batch) * 7 + 3)
    return torch.randint(num_classes, (count,), generator=generator).to(device)


class Mixed:
    """One epoch for the shared loop: D_f (one random label per sample per epoch) and D_r shuffled together."""

    name = "D_f (random labels) and D_r mixed"

    def __init__(self, data, forget_indices, retain_indices, batch_size: int, augment, seed: int):
        self.data, self.forget_indices = data, torch.as_tensor(forget_indices, dtype=torch.int64)
        self.indices = torch.cat([self.forget_indices, torch.as_tensor(retain_indices, dtype=torch.int64)])
        self.batch_size, self.augment, self.seed = batch_size, augment, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        labels = self.data.train_labels.clone()
        labels[self.forget_indices.to(labels.device)] = random_labels(
            len(self.forget_indices), self.data.num_classes, self.seed, epoch, -1, labels.device
        )
        self.batches = Batches(
            self.data.train_images, labels, self.indices, self.batch_size, True, self.augment, self.seed
        )
        self.batches.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.batches)

    def iterate_from(self, first_batch: int):
        return self.batches.iterate_from(first_batch)


def random_label_batches(ctx):
    """The epoch layout the reference uses for ``--dataset`` (see the module docstring)."""
    if get_dataset(ctx.args.dataset).rl_mixed_epoch:
        augment = ctx.data.train_augment if ctx.augment else None
        return Mixed(ctx.data, ctx.forget_indices, ctx.retain_indices, ctx.args.batch_size, augment, ctx.args.seed)
    num_classes, seed = ctx.data.num_classes, ctx.args.seed

    def relabel(epoch, number, labels):
        return random_labels(len(labels), num_classes, seed, epoch, number, labels.device)

    return TwoPasses(ctx.batches("forget"), ctx.batches("retain"), "D_f (random labels) then D_r", relabel=relabel)


def random_labelling(model, ctx, on_optimizer=None) -> None:
    iterate(model, ctx, random_label_batches(ctx), lambda epoch: cross_entropy, on_optimizer)


@register(
    "RL",
    paper_name="RL",
    help="random labelling: SGD on D_f with random labels and on D_r with true labels",
    rank=20,
    test_args="--unlearn_epochs 1",
    demo_args="--unlearn_epochs 5 --unlearn_lr 0.04 --batch_size 32",
    search_space=(Param("unlearn_lr", 1e-3, 1e-1, log=True), Param("unlearn_epochs", 1, 10, integer=True)),
    preset=Preset(
        "--unlearn_lr 0.013 --unlearn_epochs 10",
        f"SalUn's command in {SALIENCY_README} without its mask (it gives no RL command)",
    ),
)
def unlearn(model, ctx) -> None:
    random_labelling(model, ctx)
