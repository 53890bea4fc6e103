"""How far an unlearned model is from Retrain: in its outputs (Jensen–Shannon) and in its weights (ℓ2).

``js_divergence`` is per sample, in nats: JS(p, q) = ½ KL(p ‖ m) + ½ KL(q ‖ m) with m = ½ (p + q),
so it lies in [0, ln 2], is symmetric, and 0 · log 0 counts as 0. ``weight_l2`` is the Euclidean
norm of the difference over every parameter of the effective model (``effective_parameters``: a
pruned conv's weight is ``weight_orig * weight_mask``; buffers such as batch-norm statistics are not
parameters and are left out).
"""

from __future__ import annotations

import math

import torch

import pruner

LN2 = math.log(2.0)


def _probabilities(values, from_logits: bool) -> torch.Tensor:
    values = torch.as_tensor(values).double()
    if values.dim() != 2:
        raise ValueError(f"expected an (n, classes) array, got shape {tuple(values.shape)}")
    if from_logits:
        return torch.softmax(values, dim=1)  # float64: a class underflows to 0 only ~745 nats below the top
    # Float32 softmax rows sum to 1 within ~1e-6; anything further off is not a distribution.
    if (values < 0).any() or not torch.allclose(values.sum(1), torch.ones(len(values), dtype=values.dtype), atol=1e-4):
        raise ValueError("probabilities must be non-negative with rows summing to 1; pass from_logits=True for logits")
    return values


def _kl_to_mixture(a: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """KL(a ‖ m) per row, with 0 · log 0 = 0 (m > 0 wherever a > 0, since m is half a plus half the other)."""
    return torch.where(a > 0, a * (a.log() - m.log()), torch.zeros_like(a)).sum(1)


def js_divergence(p, q, from_logits: bool = False) -> torch.Tensor:
    """Jensen–Shannon divergence (natural log) between rows of ``p`` and ``q``: a float64 tensor (n,).

    ``p``, ``q``: (n, classes) probabilities, or logits with ``from_logits=True`` (softmax in float64).
    Computed in probability space, so two equal rows give exactly 0: (p + p) / 2 is p bit for bit.
    """
    p, q = _probabilities(p, from_logits), _probabilities(q, from_logits)
    if p.shape != q.shape:
        raise ValueError(f"the two outputs differ in shape: {tuple(p.shape)} and {tuple(q.shape)}")
    m = 0.5 * (p + q)
    js = 0.5 * (_kl_to_mixture(p, m) + _kl_to_mixture(q, m))
    return js.clamp(0.0, LN2)  # rounding can leave ±1e-17 outside the range


def effective_parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """{name: tensor} of every parameter as the forward pass uses it (pruned convs: masked weight), copied.

    A copy, because a state dict's tensors share storage with the live model: a later training step
    would otherwise change the "before" side of a comparison too.
    """
    dense = pruner.dense_state(model.state_dict())
    names = [name.removesuffix("_orig") for name, _ in model.named_parameters()]
    return {name: dense[name].detach().clone() for name in names}


def weight_l2(state_a: dict, state_b: dict) -> float:
    """‖θ_a − θ_b‖₂ over all tensors of two parameter dicts with the same names and shapes (float64 sums)."""
    if state_a.keys() != state_b.keys():
        name = next(iter(state_a.keys() ^ state_b.keys()))
        raise ValueError(f"the two models' parameters differ: '{name}' is in only one of them")
    total = 0.0
    for name, a in state_a.items():
        b = state_b[name]
        if a.shape != b.shape:
            raise ValueError(f"parameter '{name}' is {tuple(a.shape)} in one model, {tuple(b.shape)} in the other")
        total += float(((a.double().cpu() - b.double().cpu()) ** 2).sum())
    return math.sqrt(total)
