"""Per-channel normalisation as the model's first layer, so data tensors stay in [0, 1]."""

import torch
import torch.nn as nn

from utils import UsageError


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; mean and std are buffers of shape (1, C, 1, 1), not parameters."""

    def __init__(self, mean, std):
        super().__init__()
        mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        if len(mean) != len(std) or not mean:
            raise UsageError(f"normalisation needs one mean and one std per channel; got {len(mean)} and {len(std)}")
        if min(std) <= 0:
            raise UsageError(f"normalisation std must be positive; got {std}")
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std
