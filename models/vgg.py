"""VGG-16 with batch-norm for 32x32 inputs; global average pooling before a linear head."""

import torch.nn as nn
import torch.nn.functional as F

from models import register_model

CONFIG_16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class MaxPoolKeepOne(nn.Module):
    """2x2 max-pool that leaves a map already 1 pixel high or wide alone, so 8x8 inputs (digits) work."""

    def forward(self, x):
        return x if min(x.shape[-2:]) < 2 else F.max_pool2d(x, 2)


class VGG(nn.Module):
    """3x3 conv + BN + ReLU per number in ``config``, a 2x2 max-pool per "M", global average pool, linear ``fc``."""

    def __init__(self, config, num_classes, in_channels=3):
        super().__init__()
        layers, channels = [], in_channels
        for item in config:
            if item == "M":
                layers.append(MaxPoolKeepOne())
            else:
                layers += [nn.Conv2d(channels, item, 3, padding=1), nn.BatchNorm2d(item), nn.ReLU(inplace=True)]
                channels = item
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


@register_model("vgg16_bn")
def vgg16_bn(num_classes, in_channels=3):
    return VGG(CONFIG_16, num_classes, in_channels)
