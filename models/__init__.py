"""Model registry: ``build_model(name, ...)`` returns Normalize followed by the network."""

from __future__ import annotations

import torch.nn as nn

from models.normalize import Normalize
from utils import UsageError

MODELS = {}


def register_model(name):
    def add(builder):
        MODELS[name] = builder
        return builder

    return add


class Classifier(nn.Module):
    """``normalize`` then ``net``; the net's last linear layer is its head (first dim = classes)."""

    def __init__(self, normalize: Normalize, net: nn.Module):
        super().__init__()
        self.normalize = normalize
        self.net = net

    def forward(self, x):
        return self.net(self.normalize(x))


def build_model(name, num_classes, in_channels=3, mean=None, std=None, imagenet_arch=False) -> Classifier:
    if name not in MODELS:
        raise UsageError(f"unknown --arch '{name}'; choose from {', '.join(sorted(MODELS))}")
    mean = (0.5,) * in_channels if mean is None else tuple(mean)
    std = (0.5,) * in_channels if std is None else tuple(std)
    if len(mean) != in_channels or len(std) != in_channels:
        raise UsageError(f"normalisation has {len(mean)} mean / {len(std)} std values for {in_channels} channels")
    net = MODELS[name](num_classes=num_classes, in_channels=in_channels, imagenet_arch=imagenet_arch)
    return Classifier(Normalize(mean, std), net)


from models import resnet, resnet_cifar, vgg  # noqa: E402,F401  (registration)
