"""Masks over conv weights (and Swin-T's linear ones): global magnitude / random pruning, extract, apply, remove,
sparsity.

Pruning uses ``torch.nn.utils.prune``, so a pruned conv holds ``weight_orig`` and a
``weight_mask`` buffer and its effective weight is their product: a pruned weight stays exactly
zero whatever the optimiser does to ``weight_orig``. A state dict of such a model is the
"mask file" that ``main_forget.py --mask`` takes.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.utils.prune as prune

from utils import UsageError


def prunable_modules(model: nn.Module):
    """(name, module) of every layer whose weight the mask covers, in registration order: every Conv2d, and
    in a network that declares ``prunes_linear`` (Swin-T, which has no convolution) every Linear but the
    head ``fc``, which stays dense as the ResNets' and VGGs' heads do."""
    linear = any(getattr(module, "prunes_linear", False) for module in model.modules())

    def covered(name, module):
        return isinstance(module, nn.Conv2d) or (
            linear and isinstance(module, nn.Linear) and name.split(".")[-1] != "fc"
        )

    return [(name, module) for name, module in model.named_modules() if covered(name, module)]


def _random_generator_prune(generator):
    class SeededRandomUnstructured(prune.RandomUnstructured):
        """``RandomUnstructured`` with its scores drawn from our generator, so a seed fixes the mask.

        As in torch's own ``RandomUnstructured`` (which the original code uses), the entries with the
        *highest* uniform scores are pruned and the lowest-scored are kept, so the same random stream
        gives the same mask as the original.
        """

        def compute_mask(self, t, default_mask):
            scores = torch.rand(t.shape, generator=generator).to(t.device)
            mask = default_mask.clone(memory_format=torch.contiguous_format)
            count = prune._compute_nparams_toprune(self.amount, t.nelement())
            if count:
                mask.view(-1)[torch.topk(scores.view(-1), k=count).indices] = 0
            return mask

    return SeededRandomUnstructured


PRUNERS = {
    "l1": lambda generator: prune.L1Unstructured,
    "random": _random_generator_prune,
}


def check_rate(rate: float) -> None:
    if not 0 <= rate < 1:
        raise UsageError(f"--rate {rate} is outside [0, 1); give the fraction of weights to remove per round")


def global_prune(model: nn.Module, rate: float, method: str = "l1", seed: int = 0) -> None:
    """Remove ``rate`` of the still-unpruned conv weights, ranked together across all layers."""
    if method not in PRUNERS:
        raise UsageError(f"unknown pruning method '{method}'; choose from {', '.join(PRUNERS)}")
    check_rate(rate)
    parameters = [(module, "weight") for _, module in prunable_modules(model)]
    generator = torch.Generator().manual_seed(seed)
    prune.global_unstructured(parameters, pruning_method=PRUNERS[method](generator), amount=rate)


def extract_mask(state_dict) -> dict:
    """{'<module>.weight_mask': mask} of a pruned model's state dict (a copy)."""
    return {key: value.detach().clone() for key, value in state_dict.items() if key.endswith("weight_mask")}


def mask_overlap(first: dict, second: dict) -> dict[str, dict]:
    """Per masked layer of two masks (``extract_mask``'s dicts, same keys): weights each keeps and both keep,
    and ``overlap`` = shared / kept by the first; ``"all"`` sums every layer."""
    if first.keys() != second.keys():
        raise ValueError("the two masks prune different layers; compare masks of the same architecture")
    rows, totals = {}, {"kept_first": 0, "kept_second": 0, "shared": 0, "weights": 0}
    for key in sorted(first):
        a, b = first[key].bool(), second[key].bool()
        row = {
            "kept_first": int(a.sum()),
            "kept_second": int(b.sum()),
            "shared": int((a & b).sum()),
            "weights": a.numel(),
        }
        rows[key.removesuffix(".weight_mask")] = row
        totals = {name: totals[name] + row[name] for name in totals}
    rows["all"] = totals
    for row in rows.values():
        row["overlap"] = row["shared"] / row["kept_first"] if row["kept_first"] else float("nan")
    return rows


def apply_mask(model: nn.Module, masks: dict) -> None:
    """Attach ``masks`` (keys '<module>.weight_mask') to the model's convs as prune re-parametrisations."""
    modules = dict(prunable_modules(model))
    unknown = [key for key in masks if key[: -len(".weight_mask")] not in modules]
    if unknown:
        raise UsageError(f"mask '{unknown[0]}' names no prunable layer of this model; is the mask for another --arch?")
    for key, mask in masks.items():
        module = modules[key[: -len(".weight_mask")]]
        if tuple(mask.shape) != tuple(module.weight.shape):
            raise UsageError(
                f"mask '{key}' has shape {tuple(mask.shape)} but the model's weight is {tuple(module.weight.shape)}"
            )
        check_mask_values(key, mask)
        if prune.is_pruned(module):
            prune.remove(module, "weight")
        prune.custom_from_mask(module, "weight", mask.to(module.weight.device, module.weight.dtype))


def check_mask_values(key: str, mask: torch.Tensor) -> None:
    """A mask keeps a weight (1) or prunes it (0): anything else (0.5, 2, -1, NaN) is refused, naming the tensor."""
    bad = ~((mask == 0) | (mask == 1))
    if bool(bad.any()):
        value = mask[bad].reshape(-1)[0].item()
        raise UsageError(
            f"mask '{key}' holds {value} at {int(bad.sum())} of {mask.numel()} positions; a mask is exactly 0 or 1 "
            f"everywhere: give a mask file written by main_imp.py or main_synflow.py"
        )


def remove_pruning(model: nn.Module) -> None:
    """Bake masks into plain ``weight`` tensors (zeros stay) and drop the re-parametrisation."""
    for _, module in prunable_modules(model):
        if prune.is_pruned(module):
            prune.remove(module, "weight")


def refresh_weights(model: nn.Module) -> None:
    """Recompute ``weight = weight_orig * weight_mask`` now (prune's hook only does it on forward)."""
    for _, module in prunable_modules(model):
        if prune.is_pruned(module):
            module.weight = module.weight_orig * module.weight_mask


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode with no gradients (e.g. θ_o kept beside a model that trains).

    The pruned weights are refreshed without autograd first: after a training forward they are
    autograd products, not leaves, and ``deepcopy`` refuses those.
    """
    with torch.no_grad():
        refresh_weights(model)
    return copy.deepcopy(model).eval().requires_grad_(False)


def masks_of(model: nn.Module) -> dict:
    return extract_mask(model.state_dict())


def remaining_weight_ratio(model: nn.Module) -> float:
    """Fraction of the prunable weights (prunable_modules) that are kept (1.0 for a dense model)."""
    kept = total = 0
    for _, module in prunable_modules(model):
        mask = getattr(module, "weight_mask", None)
        total += module.weight.numel()
        kept += module.weight.numel() if mask is None else int(mask.sum().item())
    return kept / total if total else 1.0


def load_pruned_state(model: nn.Module, state_dict: dict) -> None:
    """Load a state dict that may hold ``weight_orig``/``weight_mask`` pairs into ``model``.

    The model is re-parametrised with the file's masks first, so keys line up; a tensor of the
    wrong shape or a missing key is named in a UsageError.
    """
    remove_pruning(model)
    apply_mask(model, extract_mask(state_dict))
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    if missing or unexpected:
        key = (missing or unexpected)[0]
        kind = "lacks" if missing else "has an extra"
        raise UsageError(f"checkpoint {kind} tensor '{key}'; it was saved from another --arch or --dataset")
    for key, value in state_dict.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise UsageError(
                f"checkpoint tensor '{key}' has shape {tuple(value.shape)}, the model expects "
                f"{tuple(expected[key].shape)}; it was saved for another --arch or number of classes"
            )
    model.load_state_dict(state_dict)
    refresh_weights(model)


def dense_state(state_dict: dict) -> dict:
    """A state dict with every ``weight_orig * weight_mask`` pair folded back into ``weight``."""
    out = {}
    for key, value in state_dict.items():
        if key.endswith("weight_mask"):
            continue
        if key.endswith("weight_orig"):
            base = key[: -len("_orig")]
            out[base] = value * state_dict[base + "_mask"]
        else:
            out[key] = value
    return out


def synflow_prune(model: nn.Module, rate: float, input_shape, iterations: int = 100) -> list[int]:
    """SynFlow (Tanaka et al. 2020): prune ``rate`` of the unpruned conv weights without looking at any data.

    Scores come from a double-precision copy with every state entry (parameters and buffers, as
    in the SynFlow reference code) replaced by its absolute value, batch-norm in eval mode, fed
    one all-ones image of ``input_shape`` (C, H, W); the model's Normalize layer maps it to
    (1 - mean) / std, a positive constant per channel. With R the sum of the outputs, a weight
    scores |θ ⊙ ∂R/∂θ|. Each of the ``iterations`` rounds removes the lowest-scoring unpruned
    weights across all conv layers together, so that round i leaves round(N (1 - rate)^(i/iterations))
    of the N weights unpruned at the start: the fraction 1 - (1 - rate)^(1/iterations) of what
    remains, kept as integer counts so that rounding never drifts, and the last round ends exactly
    at N - round(rate N), the count one-shot magnitude pruning keeps. The model's weights
    (``weight_orig`` included), their signs and its training flag are untouched: only its masks
    change, once, through ``torch.nn.utils.prune`` (combined with any mask it had). Returns the
    kept count after each round.
    """
    check_rate(rate)
    if iterations < 1:
        raise UsageError(f"SynFlow needs at least one iteration, got {iterations}")
    convs = [module for _, module in prunable_modules(model)]
    with torch.no_grad():  # a pruned weight computed under autograd cannot be deep-copied
        refresh_weights(model)
    scorer = copy.deepcopy(model).double().eval()  # eval: batch-norm uses its running statistics
    refresh_weights(model)
    remove_pruning(scorer)  # pruned entries become zeros; the mask is re-applied each round below
    with torch.no_grad():
        for value in scorer.state_dict().values():
            if value.is_floating_point():
                value.abs_()
    weights = [module.weight for _, module in prunable_modules(scorer)]
    magnitudes = [weight.detach().clone() for weight in weights]
    masks = [_mask_or_ones(module).detach().to(magnitudes[0].device, torch.bool) for module in convs]
    ones = torch.ones(1, *input_shape, dtype=torch.float64, device=magnitudes[0].device)
    start = sum(int(mask.sum()) for mask in masks)
    final = start - round(rate * start)
    kept_after = []
    for i in range(1, iterations + 1):
        with torch.no_grad():
            for weight, magnitude, mask in zip(weights, magnitudes, masks):
                weight.copy_(magnitude * mask)
        grads = torch.autograd.grad(scorer(ones).sum(), weights)
        scores = [(weight * grad).detach().abs() for weight, grad in zip(weights, grads)]
        goal = max(round(start * (1 - rate) ** (i / iterations)), final) if i < iterations else final
        masks = _drop_lowest(scores, masks, sum(int(mask.sum()) for mask in masks) - goal)
        kept_after.append(goal)
    for module, mask in zip(convs, masks):
        prune.custom_from_mask(module, "weight", mask.to(module.weight.device, module.weight.dtype))
    return kept_after


def _drop_lowest(scores, masks, count: int):
    """Masks with the ``count`` lowest-scoring still-kept entries, ranked across all tensors, set to False.

    The ranking ``prune.global_unstructured`` with ``importance_scores`` makes; done here on plain
    tensors because every call of that function leaves a full copy of the mask in the module's
    pruning container, 100 of them in a SynFlow run.
    """
    flat_scores = torch.cat([score.flatten() for score in scores])
    flat_masks = torch.cat([mask.flatten() for mask in masks])
    kept = flat_masks.nonzero().squeeze(1)  # already pruned entries are never chosen again
    flat_masks[kept[torch.topk(flat_scores[kept], count, largest=False).indices]] = False
    return [part.view_as(mask) for part, mask in zip(flat_masks.split([m.numel() for m in masks]), masks)]


def _mask_or_ones(module: nn.Module) -> torch.Tensor:
    mask = getattr(module, "weight_mask", None)
    return torch.ones_like(module.weight) if mask is None else mask
