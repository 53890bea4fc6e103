"""FF (Fisher forgetting, ``fisher_new``): perturb θ_o with Gaussian noise shaped by a diagonal Fisher on D_r.

As the original code computes it: over D_r in batches of 32 (no shuffling, eval mode), for every class y:
acc += mean_batch(p_y) · (∇ CE(batch, y))², then acc /= #batches. Per parameter:
var = min(1/(acc + 1e-8), 1e3) (1e2 for head tensors, whose first dim is the number of classes);
var *= α; var ← mean of var over dim 1 for ≥2-D tensors; μ = θ_o; when a whole class c is
forgotten, head tensors get μ[c] = 0, var[c] = 1e-4; var *= 10 for head and 1-D tensors;
θ = μ + sqrt(var)·N(0, I).

The per-class gradients share one forward per batch: ``torch.func.vjp`` gives the pullback of
the vector of C class losses and ``vmap`` runs it over chunks of one-hot cotangents. Statistics
are taken in float32 (no autocast): 1/(acc + 1e-8) magnifies any rounding in small squares.
"""

from __future__ import annotations

import contextlib
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, vjp, vmap

import pruner
from unlearn import SPARSE_README, Param, Preset, register

FISHER_BATCH_SIZE = 32
CHUNK_FLOATS = 2**28  # 1 GiB of float32: bounds chunk × #params of the vmapped gradients


@contextlib.contextmanager
def functional_state(model):
    """(detached parameters, buffers) for ``functional_call``; the prune hooks' ``weight`` is rebuilt on exit.

    A pruned conv's forward-pre-hook stores ``weight = weight_orig * weight_mask`` on the module;
    under ``functional_call`` that product comes from the substituted ``weight_orig`` (so the
    gradient reaches it, masked) but stays behind on the module as a tensor of a finished
    transform, so it is recomputed from the real parameters afterwards.
    """
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    try:
        yield params, buffers
    finally:
        pruner.refresh_weights(model)


def chunk_size_for(num_floats_each: int, budget: int = CHUNK_FLOATS) -> int:
    return max(1, budget // max(1, num_floats_each))


def _class_losses(model, buffers, inputs):
    """params -> (CE of the batch labelled y for every class y, mean_batch(p_y) as aux)."""

    def losses(params):
        log_probs = functional_call(model, (params, buffers), (inputs,)).log_softmax(1)
        # the CE of the whole batch labelled y is -mean_b log p_y(b), so all C losses are one vector
        return -log_probs.mean(0), log_probs.detach().exp().mean(0)

    return losses


def fisher_accumulator_loop(model, batches, num_classes: int, runtime=None) -> dict:
    """Reference: one autograd pass per batch and class, as the original code does."""
    model.eval()
    params = dict(model.named_parameters())
    acc = {name: torch.zeros_like(p, memory_format=torch.contiguous_format) for name, p in params.items()}
    num_batches = 0
    for images, _ in batches:
        logits = model(runtime.inputs(images) if runtime else images)
        probs = logits.detach().softmax(1)
        for y in range(num_classes):
            target = torch.full((len(images),), y, dtype=torch.int64, device=logits.device)
            loss = F.cross_entropy(logits, target)
            grads = torch.autograd.grad(loss, list(params.values()), retain_graph=True)
            for name, grad in zip(params, grads, strict=True):
                acc[name] += probs[:, y].mean() * grad.pow(2)
        num_batches += 1
    return {name: value / max(num_batches, 1) for name, value in acc.items()}


def fisher_accumulator(model, batches, num_classes: int, runtime=None, chunk_size: int | None = None) -> dict:
    """Same as ``fisher_accumulator_loop``, the C per-class gradients vectorised in chunks of classes."""
    model.eval()
    num_params = sum(p.numel() for p in model.parameters())
    chunk_size = chunk_size or chunk_size_for(num_params)
    with functional_state(model) as (params, buffers):
        acc = {name: torch.zeros_like(p, memory_format=torch.contiguous_format) for name, p in params.items()}
        num_batches = 0
        for images, _ in batches:
            inputs = runtime.inputs(images) if runtime else images
            _, pullback, mean_probs = vjp(_class_losses(model, buffers, inputs), params, has_aux=True)
            one_hot = torch.eye(num_classes, device=mean_probs.device, dtype=mean_probs.dtype)
            for start in range(0, num_classes, chunk_size):
                (grads,) = vmap(pullback)(one_hot[start : start + chunk_size])
                weights = mean_probs[start : start + chunk_size]
                for name, grad in grads.items():
                    acc[name] += torch.tensordot(weights, grad.pow(2), dims=1)
            num_batches += 1
    return {name: value / max(num_batches, 1) for name, value in acc.items()}


def fisher_mean_var(params: dict, acc: dict, num_classes: int, alpha: float, forgotten_class: int | None) -> dict:
    """{name: (μ, var)} of FF's Gaussian, rule by rule as in the module docstring."""
    out = {}
    for name, theta in params.items():
        is_head = theta.ndim > 0 and theta.shape[0] == num_classes
        var = (1.0 / (acc[name] + 1e-8)).clamp(max=1e3)
        if is_head:
            var = var.clamp(max=1e2)
        var = alpha * var
        if theta.ndim >= 2:
            var = var.mean(dim=1, keepdim=True).expand_as(theta).clone()
        mu = theta.detach().clone()
        if forgotten_class is not None and is_head:
            mu[forgotten_class] = 0
            var[forgotten_class] = 1e-4
        if is_head or theta.ndim == 1:
            var = var * 10
        out[name] = (mu, var)
    return out


def fisher_perturbation(
    params: dict, acc: dict, num_classes: int, alpha: float, forgotten_class: int | None, generator: torch.Generator
) -> dict:
    """{name: μ + sqrt(var)·ε}; ε drawn on the CPU from ``generator``, in ``params`` order, so a seed fixes θ_u."""
    out = {}
    for name, (mu, var) in fisher_mean_var(params, acc, num_classes, alpha, forgotten_class).items():
        noise = torch.randn(mu.shape, generator=generator, dtype=mu.dtype).to(mu.device)
        out[name] = mu + var.sqrt() * noise
    return out


@register(
    "fisher_new",
    paper_name="FF",
    help="Fisher forgetting: noise scaled by the inverse Fisher diagonal of D_r (--alpha scales it)",
    rank=4,
    test_args="--alpha 1e-7 --no-aug",
    in_tables=True,
    demo_args="--alpha 1e-7 --no-aug",
    search_space=(Param("alpha", 1e-9, 1e-5, log=True),),
    preset=Preset("--alpha {alpha_ff}", f"{SPARSE_README}; it leaves alpha to be tuned"),
)
def unlearn(model, ctx) -> None:
    num_classes = ctx.data.num_classes
    batches = ctx.batches("retain", batch_size=FISHER_BATCH_SIZE, shuffle=False)
    start = time.perf_counter()
    # Both give the same accumulator. The vmapped backward wins on a GPU, where C small backward
    # passes are launch-bound; on a CPU the work is C full backward passes either way and the
    # plain loop is faster (1.5-2x on resnet20s, see docs/performance.md).
    accumulate = fisher_accumulator if ctx.runtime.cuda_code_path else fisher_accumulator_loop
    acc = accumulate(model, batches, num_classes, ctx.runtime)
    seconds = time.perf_counter() - start
    ctx.log(
        f"FF: Fisher diagonal over {batches.num_samples} retain samples x {num_classes} classes in "
        f"{seconds:.1f}s ({batches.num_samples / max(seconds, 1e-9):.0f} img/s)"
    )
    generator = torch.Generator().manual_seed(ctx.args.seed)
    params = dict(model.named_parameters())
    new = fisher_perturbation(
        {name: p.detach() for name, p in params.items()},
        acc,
        num_classes,
        ctx.args.alpha,
        ctx.forgotten_class,
        generator,
    )
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(new[name])
    pruner.refresh_weights(model)
    ctx.stats["fisher_seconds"] = seconds
    ctx.stats["fisher_head_rule"] = ctx.forgotten_class is not None
