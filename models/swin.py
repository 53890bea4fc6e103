"""Swin-T for 32x32 inputs, as the original builds it for CIFAR (its models/swin.py with window 4).

Four stages of (96, 192, 384, 768) channels with (2, 2, 6, 2) blocks and (3, 6, 12, 24) heads of 32
dimensions. Each stage first merges patches, an unfold by the stage's factor (2, 2, 2, 1) followed by a
linear layer, so a 32x32 image gives maps of 16, 8, 4 and 4 pixels. Its blocks alternate a regular and
a shifted window: pre-LayerNorm window attention over 4x4 windows with one learned relative-position
bias table shared by the heads (initialised N(0, 1)), and a pre-LayerNorm 4x MLP with GELU, each
residual. A shifted block rolls the map by −2 pixels in both directions first (and back after), and
masks the attention between pixels that the roll brought together from opposite edges. The head
averages the last map, applies LayerNorm and a linear layer (``fc``).

As in the original, biases, LayerNorms and the remaining weights start from PyTorch's defaults. Two
differences, both for inputs the original cannot take or never normalises: an input that is not 32x32
(digits' 8x8, Fashion-MNIST's 28x28) is resized to 32x32 bilinearly first, and the input is
normalised like every other model's (the original sets a ``normalize`` attribute its forward never
calls). Its linear layers, except the head, are pruned with the convolutions' rule (pruner.py). As in
the original, iterative unlearning of a Swin uses Adam at --unlearn_lr with cosine annealing over
--unlearn_epochs instead of SGD with MultiStepLR (unlearn/loop.py).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models import register_model

SIZE = 32  # the input side the stages are laid out for


def shift_mask(window: int, displacement: int, rows: bool) -> torch.Tensor:
    """(w², w²) additive mask of a shifted edge window: −inf between pixels from opposite sides of the roll.

    ``rows``: the window in the last row of windows (pixels split by row), else in the last column.
    """
    coordinate = torch.arange(window).repeat_interleave(window) if rows else torch.arange(window).repeat(window)
    wrapped = coordinate >= window - displacement  # pixels the roll brought in from the other edge
    mask = torch.zeros(window * window, window * window)
    mask[wrapped[:, None] != wrapped[None, :]] = float("-inf")
    return mask


class WindowAttention(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, window: int, shifted: bool):
        super().__init__()
        self.heads, self.head_dim, self.window, self.shifted = heads, head_dim, window, shifted
        self.scale = head_dim**-0.5
        self.to_qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)
        self.to_out = nn.Linear(heads * head_dim, dim)
        self.pos_embedding = nn.Parameter(torch.randn(2 * window - 1, 2 * window - 1))
        y, x = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        cells = torch.stack([y.reshape(-1), x.reshape(-1)], dim=1)
        offsets = cells[None, :, :] - cells[:, None, :] + window - 1  # (w², w², 2) indices into the table
        self.register_buffer("relative_index", offsets, persistent=False)
        if shifted:
            self.register_buffer("row_mask", shift_mask(window, window // 2, rows=True), persistent=False)
            self.register_buffer("column_mask", shift_mask(window, window // 2, rows=False), persistent=False)

    def forward(self, x):  # x: (b, h, w, c)
        w = self.window
        if self.shifted:
            x = torch.roll(x, shifts=(-(w // 2), -(w // 2)), dims=(1, 2))
        b, height, width, _ = x.shape
        rows, cols = height // w, width // w

        def windows(t):  # (b, h, w, heads·d) -> (b, heads, windows, w², d)
            t = t.reshape(b, rows, w, cols, w, self.heads, self.head_dim)
            return t.permute(0, 5, 1, 3, 2, 4, 6).reshape(b, self.heads, rows * cols, w * w, self.head_dim)

        q, k, v = (windows(t) for t in self.to_qkv(x).chunk(3, dim=-1))
        dots = q @ k.transpose(-1, -2) * self.scale
        dots = dots + self.pos_embedding[self.relative_index[..., 0], self.relative_index[..., 1]]
        if self.shifted:
            dots[:, :, -cols:] += self.row_mask
            dots[:, :, cols - 1 :: cols] += self.column_mask
        out = dots.softmax(dim=-1) @ v  # (b, heads, windows, w², d)
        out = out.reshape(b, self.heads, rows, cols, w, w, self.head_dim).permute(0, 2, 4, 3, 5, 1, 6)
        out = self.to_out(out.reshape(b, height, width, self.heads * self.head_dim))
        if self.shifted:
            out = torch.roll(out, shifts=(w // 2, w // 2), dims=(1, 2))
        return out


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, window: int, shifted: bool):
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = WindowAttention(dim, heads, head_dim, window, shifted)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attention(self.attention_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class Stage(nn.Module):
    """Patch merging by ``factor`` to ``dim`` channels, then ``depth`` blocks, regular and shifted in turn."""

    def __init__(self, in_channels: int, dim: int, depth: int, factor: int, heads: int, head_dim: int, window: int):
        super().__init__()
        self.factor = factor
        self.merge = nn.Linear(in_channels * factor * factor, dim)
        self.blocks = nn.Sequential(*(SwinBlock(dim, heads, head_dim, window, i % 2 == 1) for i in range(depth)))

    def forward(self, x):  # (b, c, h, w) -> (b, dim, h / factor, w / factor)
        b, _, height, width = x.shape
        patches = F.unfold(x, kernel_size=self.factor, stride=self.factor)
        patches = patches.reshape(b, -1, height // self.factor, width // self.factor).permute(0, 2, 3, 1)
        return self.blocks(self.merge(patches)).permute(0, 3, 1, 2)


class SwinTransformer(nn.Module):
    prunes_linear = True  # pruner.py prunes its linear layers (all but the head ``fc``) with the convolutions

    def __init__(self, num_classes, in_channels=3, dim=96, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24),
                 head_dim=32, window=4, factors=(2, 2, 2, 1)):  # fmt: skip
        super().__init__()
        stages, channels = [], in_channels
        for index, (depth, count, factor) in enumerate(zip(depths, heads, factors, strict=True)):
            stages.append(Stage(channels, dim * 2**index, depth, factor, count, head_dim, window))
            channels = dim * 2**index
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(channels)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        if tuple(x.shape[-2:]) != (SIZE, SIZE):
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        return self.fc(self.norm(self.stages(x).mean(dim=(2, 3))))


@register_model("swin_t", unlearns_with=("adam", "cosine"))  # the original unlearns its Swin with Adam
def swin_t(num_classes, in_channels=3):
    return SwinTransformer(num_classes, in_channels)
