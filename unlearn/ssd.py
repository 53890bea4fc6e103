"""SSD (Foster et al., "Fast Machine Unlearning Without Retraining Through Selective Synaptic Dampening", AAAI 2024).

No training: one pass over D_f and one over D = D_r ∪ D_f (the whole training set), each in
batches of 128 without shuffling or augmentation and with the model in eval mode, give the
diagonal-Fisher importances

    I_S = (1/#batches) · Σ_batches (∇_θ CE(batch))²        (S = D_f: I_f;  S = D: I_D).

Then, element by element of every parameter tensor (conv weights, batch-norm scales and shifts,
the linear head; for a pruned conv its ``weight_orig``),

    θ ← θ · min(λ·I_D / I_f, 1)    where I_f > α·I_D        (α = --ssd_alpha, λ = --ssd_lambda),

and every other element is left exactly as it was. Buffers (batch-norm running statistics, masks)
are not touched. A pruned weight has zero gradient, so I_f = 0 there and it is never selected.
The authors' CIFAR ResNet18 setting: λ = 1, α = 10.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

import pruner
from unlearn import Flag, Param, Preset, register
from utils import UsageError

SSD_BATCH_SIZE = 128


def importance(model, batches, runtime=None) -> dict:
    """{name: mean over batches of the squared gradient of the batch's mean CE} for every parameter."""
    model.eval()
    params = dict(model.named_parameters())
    total = {name: torch.zeros_like(p, memory_format=torch.contiguous_format) for name, p in params.items()}
    num_batches = 0
    for images, labels in batches:
        # float32, no autocast: I_D/I_f is a ratio of small squares, where bf16 rounding would decide selection
        loss = F.cross_entropy(model(runtime.inputs(images) if runtime else images), labels)
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for name, grad in zip(params, grads, strict=True):
            if grad is not None:
                total[name] += grad.pow(2)
        num_batches += 1
    pruner.refresh_weights(model)
    return {name: value / max(num_batches, 1) for name, value in total.items()}


@torch.no_grad()
def dampen(params: dict, forget_importance: dict, full_importance: dict, alpha: float, lam: float) -> int:
    """Scale the selected elements of ``params`` in place; returns how many were selected."""
    selected_count = 0
    for name, theta in params.items():
        forget_imp, full_imp = forget_importance[name], full_importance[name]
        selected = forget_imp > alpha * full_imp
        # I_f > α·I_D ≥ 0 where selected, so the division is safe there; elsewhere the factor is unused
        factor = (lam * full_imp / torch.where(selected, forget_imp, 1.0)).clamp(max=1.0)
        theta.copy_(torch.where(selected, theta * factor, theta))
        selected_count += int(selected.sum())
    return selected_count


@register(
    "SSD",
    paper_name="SSD",
    help="selective synaptic dampening: shrink weights far more important to D_f than to D (--ssd_alpha, --ssd_lambda)",
    rank=24,
    demo_args="--ssd_alpha 10 --ssd_lambda 1",
    search_space=(Param("ssd_alpha", 1.0, 100.0, log=True), Param("ssd_lambda", 0.1, 5.0, log=True)),
    preset=Preset(
        "--ssd_alpha 10 --ssd_lambda 1 --batch_size 128",
        "selective-synaptic-dampening src/forget_random_main.py (CIFAR-10 random forgetting, ResNet-18)",
    ),
    flags=(
        Flag("ssd_alpha", 10.0, float, "SSD: select elements whose D_f importance exceeds alpha x their D importance"),
        Flag(
            "ssd_lambda", 1.0, float, "SSD: dampening constant; selected weights are scaled by min(lambda*I_D/I_f, 1)"
        ),
    ),
)
def unlearn(model, ctx) -> None:
    args = ctx.args
    if args.ssd_alpha < 0 or args.ssd_lambda < 0:
        raise UsageError("SSD needs --ssd_alpha >= 0 and --ssd_lambda >= 0")
    start = time.perf_counter()
    full_indices = np.concatenate([ctx.retain_indices, ctx.forget_indices])
    batches = {
        "forget": ctx.batches("forget", batch_size=SSD_BATCH_SIZE, shuffle=False, augment=False),
        "full": ctx.data.train_batches(full_indices, batch_size=SSD_BATCH_SIZE, shuffle=False, augment=False),
    }
    forget_imp = importance(model, batches["forget"], ctx.runtime)
    full_imp = importance(model, batches["full"], ctx.runtime)
    params = dict(model.named_parameters())
    selected = dampen(params, forget_imp, full_imp, args.ssd_alpha, args.ssd_lambda)
    pruner.refresh_weights(model)
    total = sum(p.numel() for p in params.values())
    ctx.stats["ssd_selected"], ctx.stats["ssd_selected_fraction"] = selected, selected / total
    seconds = ctx.stats["ssd_seconds"] = time.perf_counter() - start
    ctx.log(f"SSD: dampened {selected} of {total} parameters ({100 * selected / total:.3f}%) in {seconds:.1f}s")
