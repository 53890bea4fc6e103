"""Plain references for the speed comparison: IU and FF written the way the original code runs them.

Nothing here is used by the tool itself. Each function is the straightforward loop (``.backward()``
into ``.grad``, one sample or one class at a time) that our vectorised versions must beat, and
each returns the same quantities so the benchmark can check that both agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _flat_grad(params) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in params])


def iu_update(model, forget_images, forget_labels, retain_images, retain_labels, N=1000, batch_size=256):
    """k ≈ H⁻¹v of IU: v from batch gradients, then the WoodFisher recursion, one forward+backward per sample."""
    model.eval()
    params = list(model.parameters())

    def summed(images, labels):
        total = 0
        for start in range(0, len(labels), batch_size):
            model.zero_grad()
            x, y = images[start : start + batch_size], labels[start : start + batch_size]
            F.cross_entropy(model(x), y, reduction="sum").backward()
            total = total + _flat_grad(params)
        return total

    num_f, num_r = len(forget_labels), len(retain_labels)
    v = summed(forget_images, forget_labels) / (num_f + num_r)
    v = v - summed(retain_images, retain_labels) * num_f / ((num_f + num_r) * num_r)
    k, o = v.clone(), None
    for i in range(min(len(retain_labels), N + 2)):
        model.zero_grad()
        F.cross_entropy(model(retain_images[i : i + 1]), retain_labels[i : i + 1]).backward()
        g = _flat_grad(params)
        if o is None:
            o = g.clone()
            continue
        t = o @ g
        k -= ((k @ g) / (N + t)) * o
        o -= (t / (N + t)) * o
    return k


def ff_accumulator(model, images, num_classes: int, batch_size=32) -> list[torch.Tensor]:
    """FF's Σ_batches Σ_y mean(p_y)·(∇CE(batch, y))² / #batches, one backward per batch and class."""
    model.eval()
    params = list(model.parameters())
    acc = [torch.zeros_like(p) for p in params]
    batches = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size])
        probs = logits.detach().softmax(1)
        for y in range(num_classes):
            model.zero_grad()
            target = torch.full((len(logits),), y, dtype=torch.int64, device=logits.device)
            F.cross_entropy(logits, target).backward(retain_graph=True)
            for a, p in zip(acc, params, strict=True):
                a += probs[:, y].mean() * p.grad.pow(2)
        batches += 1
    return [a / max(batches, 1) for a in acc]
