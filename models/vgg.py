"""The original's two VGG-16s with batch-norm for 32x32 inputs (its models/VGG.py and models/VGG_LTH.py).

Both stack configuration D (13 convs of 3x3, each with batch-norm and ReLU, and a 2x2 max-pool after
blocks 1 to 4, none after block 5), so a 32x32 input leaves the features as 512 maps of 2x2:

- ``vgg16_bn``: adaptive average pooling to 2x2, then a 2048-256-256-classes MLP with ReLUs;
- ``vgg16_bn_lth`` (the lottery-ticket VGG): adaptive average pooling to 1x1, then one linear layer.

Initialisation as there: convs Kaiming-normal (fan-out, ReLU) with zero bias, batch-norm 1 and 0,
linear layers N(0, 0.01²) with zero bias. The final linear layer is ``fc`` (the head FF and BE act on).
A max-pool leaves a map already 1 pixel high or wide alone, so 8x8 inputs (digits) also run.
"""

import torch.nn as nn
import torch.nn.functional as F

from models import register_model

CONFIG_D = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]


class MaxPoolKeepOne(nn.Module):
    """2x2 max-pool that leaves a map already 1 pixel high or wide alone, so 8x8 inputs (digits) work."""

    def forward(self, x):
        return x if min(x.shape[-2:]) < 2 else F.max_pool2d(x, 2)


def features(config, in_channels: int) -> nn.Sequential:
    layers, channels = [], in_channels
    for item in config:
        if item == "M":
            layers.append(MaxPoolKeepOne())
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.BatchNorm2d(item), nn.ReLU(inplace=True)]
            channels = item
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """``features``, adaptive average pooling to ``pooled`` x ``pooled``, ``hidden`` linear+ReLU layers, ``fc``."""

    def __init__(self, num_classes, in_channels=3, pooled=1, hidden=()):
        super().__init__()
        self.features = features(CONFIG_D, in_channels)
        self.pooled = pooled
        layers, width = [], 512 * pooled * pooled
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
            width = size
        self.classifier = nn.Sequential(*layers)
        self.fc = nn.Linear(width, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        pooled = F.adaptive_avg_pool2d(self.features(x), self.pooled).flatten(1)
        return self.fc(self.classifier(pooled))


@register_model("vgg16_bn")
def vgg16_bn(num_classes, in_channels=3):
    return VGG(num_classes, in_channels, pooled=2, hidden=(256, 256))


@register_model("vgg16_bn_lth")
def vgg16_bn_lth(num_classes, in_channels=3):
    return VGG(num_classes, in_channels, pooled=1)
