"""Model registry: ``build_model(name, ...)`` returns Normalize followed by the network."""

from __future__ import annotations

import torch.nn as nn

from models.normalize import Normalize
from utils import UsageError

MODELS = {}
IMAGENET_ARCH = set()  # names whose builder accepts ``imagenet_arch`` (a 7x7/2 stem + max-pool)
# The optimiser and schedule iterative unlearning uses for a model (unlearn/loop.py): the original's is
# SGD with MultiStepLR, except Adam with cosine annealing over --unlearn_epochs for swin_t.
UNLEARN_OPTIMIZER: dict[str, tuple[str, str]] = {}
DEFAULT_UNLEARN_OPTIMIZER = ("sgd", "multistep")


def register_model(name: str, imagenet_arch: bool = False, unlearns_with: tuple[str, str] = DEFAULT_UNLEARN_OPTIMIZER):
    """Register ``builder(num_classes, in_channels[, imagenet_arch])`` under ``name``; ``unlearns_with``:
    (optimiser, schedule) of its iterative unlearning."""

    def add(builder):
        if name in MODELS:
            raise ValueError(f"--arch '{name}' is registered twice; give the new model another name")
        MODELS[name] = builder
        UNLEARN_OPTIMIZER[name] = unlearns_with
        if imagenet_arch:
            IMAGENET_ARCH.add(name)
        return builder

    return add


def unlearn_optimizer(name: str) -> tuple[str, str]:
    """(optimiser, schedule) with which ``--arch name`` unlearns (training.trainer's kinds)."""
    return UNLEARN_OPTIMIZER.get(name, DEFAULT_UNLEARN_OPTIMIZER)


class Classifier(nn.Module):
    """``normalize`` then ``net``; ``head`` is the net's final linear layer (first dim = classes)."""

    def __init__(self, normalize: Normalize, net: nn.Module):
        super().__init__()
        self.normalize = normalize
        self.net = net

    @property
    def head(self) -> nn.Linear:
        return self.net.fc

    def forward(self, x):
        return self.net(self.normalize(x))


def check_arch(name: str) -> None:
    if name not in MODELS:
        raise UsageError(f"unknown --arch '{name}'; choose from {', '.join(sorted(MODELS))}")


def build_model(
    name: str, num_classes: int, in_channels: int = 3, mean=None, std=None, imagenet_arch: bool = False
) -> Classifier:
    """Build ``name`` for inputs in [0, 1]; ``mean``/``std`` default to 0.5 per channel (maps to [-1, 1])."""
    check_arch(name)
    if num_classes < 1 or in_channels < 1:
        raise UsageError(f"--arch {name} needs num_classes >= 1 and in_channels >= 1; got {num_classes}, {in_channels}")
    if imagenet_arch and name not in IMAGENET_ARCH:
        raise UsageError(f"--imagenet_arch applies only to {', '.join(sorted(IMAGENET_ARCH))}, not '{name}'")
    mean = (0.5,) * in_channels if mean is None else tuple(mean)
    std = (0.5,) * in_channels if std is None else tuple(std)
    if len(mean) != in_channels or len(std) != in_channels:
        raise UsageError(f"normalisation has {len(mean)} mean / {len(std)} std values for {in_channels} channels")
    normalize = Normalize(mean, std)
    options = {"imagenet_arch": True} if imagenet_arch else {}
    return Classifier(normalize, MODELS[name](num_classes=num_classes, in_channels=in_channels, **options))


from models import resnet, resnet_cifar, swin, vgg  # noqa: E402,F401  (registration)
