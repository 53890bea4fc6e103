"""``fisher``: the original's older Fisher forgetting, kept beside ``fisher_new`` (FF) under its name.

Over D_r (eval mode, no shuffling, batches of 32), for every sample i: g_i = ∇_θ log p_{y_i}(x_i).
The diagonal is F = mean_i (g_i + 1e-8)², the original adding 1e-8 to each gradient before squaring.
Per parameter, noise = min(sqrt(α / F), 1e-3) · N(0, I), ten times larger for a parameter whose last
dimension is 10 (the original's literal rule, which on a 10-class dataset picks the head's bias), and
θ = θ_o + noise. The per-sample gradients come from ``torch.func`` (``vmap`` over ``grad``) one batch at
a time; the noise is drawn on the CPU from --seed, in parameter order.
"""

from __future__ import annotations

import time

import torch
from torch.func import functional_call, grad, vmap

import pruner
from unlearn import Param, register
from unlearn.fisher import FISHER_BATCH_SIZE, functional_state

NOISE_CAP = 1e-3  # the original clamps the noise scale here
WIDE_LAST_DIM = 10  # a parameter with this last dimension gets ten times the noise, as in the original


def per_sample_fisher(model, batches, runtime=None) -> dict:
    """{name: mean over samples of (∇ log p_y + 1e-8)²}: the diagonal Fisher of the original's ``fisher``."""
    model.eval()
    with functional_state(model) as (params, buffers):

        def log_p(weights, image, label):
            logits = functional_call(model, (weights, buffers), (image.unsqueeze(0),))
            return logits.log_softmax(1)[0].gather(0, label.reshape(1))[0]  # gather: vmap cannot index by value

        gradients = vmap(grad(log_p), in_dims=(None, 0, 0))
        acc = {name: torch.zeros_like(p, memory_format=torch.contiguous_format) for name, p in params.items()}
        total = 0
        for images, labels in batches:
            inputs = runtime.inputs(images) if runtime else images
            for name, g in gradients(params, inputs, labels).items():
                acc[name] += (g + 1e-8).pow(2).sum(0)
            total += len(labels)
    return {name: value / max(total, 1) for name, value in acc.items()}


def noise_scale(param: torch.Tensor, fisher: torch.Tensor, alpha: float) -> torch.Tensor:
    scale = torch.sqrt(alpha / fisher).clamp(max=NOISE_CAP)
    return scale * 10 if param.ndim > 0 and param.shape[-1] == WIDE_LAST_DIM else scale


@register(
    "fisher",
    paper_name="Fisher (older)",
    help="the original's older Fisher forgetting: theta_o + min(sqrt(alpha/F), 1e-3) noise, F per-sample on D_r",
    rank=31,
    test_args="--alpha 1e-8 --no-aug",
    search_space=(Param("alpha", 1e-12, 1e-4, log=True),),
)
def unlearn(model, ctx) -> None:
    batches = ctx.batches("retain", batch_size=FISHER_BATCH_SIZE, shuffle=False)
    start = time.perf_counter()
    fisher = per_sample_fisher(model, batches, ctx.runtime)
    ctx.stats["fisher_seconds"] = time.perf_counter() - start
    seconds = ctx.stats["fisher_seconds"]
    ctx.log(f"fisher: per-sample Fisher diagonal over {batches.num_samples} retain samples in {seconds:.1f}s")
    generator = torch.Generator().manual_seed(ctx.args.seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator, dtype=param.dtype).to(param.device)
            param.add_(noise_scale(param, fisher[name], ctx.args.alpha) * noise)
    pruner.refresh_weights(model)
