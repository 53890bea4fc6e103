"""IU (influence unlearning, ``wfisher``): one Newton-like step θ ← θ + α·H⁻¹v with a WoodFisher H⁻¹.

As the original code computes it, with F = |D_f|, R = |D_r| and per-sample loss gradients ∇ℓ (eval mode):
v = Σ_{D_f} ∇ℓ / (F + R) − Σ_{D_r} ∇ℓ · F / ((F + R)·R), flattened over ``model.parameters()``.
H⁻¹v comes from the rank-one recursion over single samples of D_r in order, N = 1000:
k = v, o = g_0; for each next g: t = o·g; k ← k − (k·g / (N + t))·o; o ← o − (t / (N + t))·o.
Like the original, which returns once its sample index exceeds N, it reads N + 2 samples
(g_0 and N + 1 updates) when D_r has that many.

As written, the recursion only ever rescales o, so o stays parallel to g_0 and k = v − s·g_0
for a scalar s; we keep the vector form, which is what the formulas say and what was run.
Per-sample gradients are vectorised with ``vmap(grad(...))`` in chunks that bound memory; the
recursion then runs sample by sample on the device. Float32 throughout (no autocast).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

import pruner
from unlearn import register
from unlearn.fisher import chunk_size_for, functional_state
from utils import UsageError

WOODFISHER_N = 1000
MAX_CHUNK = 64  # samples per vmapped gradient call, fewer when the model is large


def flatten(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _inputs(images, runtime):
    return runtime.inputs(images) if runtime is not None else images


def summed_gradient(model, batches, runtime=None):
    """(Σ of per-sample loss gradients over ``batches`` flattened, sample count); one backward per batch."""
    params = list(model.parameters())
    total = torch.zeros(sum(p.numel() for p in params), device=params[0].device, dtype=params[0].dtype)
    count = 0
    for images, labels in batches:
        loss = F.cross_entropy(model(_inputs(images, runtime)), labels, reduction="sum")  # = mean × batch size
        total += flatten(torch.autograd.grad(loss, params))
        count += len(labels)
    return total, count


def influence_direction(model, forget_batches, retain_batches, runtime=None) -> torch.Tensor:
    """v = g_f − g_r with the 1/(F+R) and F/((F+R)·R) factors of the original code."""
    model.eval()
    forget_sum, num_forget = summed_gradient(model, forget_batches, runtime)
    retain_sum, num_retain = summed_gradient(model, retain_batches, runtime)
    if num_retain == 0:
        raise UsageError("IU needs a non-empty retain set; the forget set covers all of D")
    total = num_forget + num_retain
    return forget_sum / total - retain_sum * (num_forget / (total * num_retain))


def sample_gradients(model, images, labels, runtime=None) -> torch.Tensor:
    """(B, #params) loss gradients of each sample alone, vectorised over the batch."""
    model.eval()
    with functional_state(model) as (params, buffers):

        def sample_loss(p, image, label):
            logits = functional_call(model, (p, buffers), (image.unsqueeze(0),))
            return F.cross_entropy(logits, label.unsqueeze(0))

        grads = vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, _inputs(images, runtime), labels)
    return torch.cat([g.reshape(len(labels), -1) for g in grads.values()], dim=1)


def sample_gradients_loop(model, images, labels, runtime=None) -> torch.Tensor:
    """Reference for ``sample_gradients``: one autograd pass per sample."""
    model.eval()
    params = list(model.parameters())
    inputs = _inputs(images, runtime)
    rows = [
        flatten(torch.autograd.grad(F.cross_entropy(model(inputs[i : i + 1]), labels[i : i + 1]), params))
        for i in range(len(labels))
    ]
    return torch.stack(rows)


class _Recursion:
    """``recursion`` fed chunk by chunk, counting samples so callers can stop at the cap."""

    def __init__(self, v, N):
        self.k, self.o, self.N, self.seen = v.clone(), None, N, 0

    def feed(self, grads):
        for g in grads:
            if self.o is None:
                self.o = g.clone()
            else:
                t = self.o @ g
                self.k -= ((self.k @ g) / (self.N + t)) * self.o
                self.o -= (t / (self.N + t)) * self.o
            self.seen += 1


def recursion(v: torch.Tensor, grads, N: int = WOODFISHER_N) -> torch.Tensor:
    """k ≈ H⁻¹v from the gradients in order (the first one only initialises o)."""
    state = _Recursion(v, N)
    state.feed(grads)
    return state.k


def _capped(batches, max_samples):
    """Batches truncated so that exactly ``max_samples`` samples (or all, if fewer) are yielded."""
    seen = 0
    for images, labels in batches:
        if seen >= max_samples:
            return
        take = min(len(labels), max_samples - seen)
        yield images[:take], labels[:take]
        seen += take


def woodfisher_loop(model, batches, v, N: int = WOODFISHER_N, max_samples: int | None = None, runtime=None):
    """Reference: per-sample autograd, one sample at a time, as the original's batch-size-1 loader."""
    state = _Recursion(v, N)
    for images, labels in _capped(batches, int(N) + 2 if max_samples is None else max_samples):
        for i in range(len(labels)):
            state.feed(sample_gradients_loop(model, images[i : i + 1], labels[i : i + 1], runtime))
    return state.k


def woodfisher(
    model,
    batches,
    v,
    N: int = WOODFISHER_N,
    max_samples: int | None = None,
    runtime=None,
    chunk_size: int | None = None,
):
    """``woodfisher_loop`` with the per-sample gradients vectorised in chunks of ``chunk_size`` samples."""
    num_params = sum(p.numel() for p in model.parameters())
    chunk_size = chunk_size or min(MAX_CHUNK, chunk_size_for(num_params))
    state = _Recursion(v, N)
    for images, labels in _capped(batches, int(N) + 2 if max_samples is None else max_samples):
        for start in range(0, len(labels), chunk_size):
            part = slice(start, start + chunk_size)
            state.feed(sample_gradients(model, images[part], labels[part], runtime))
    return state.k


def add_flat_(model, delta: torch.Tensor) -> None:
    """θ ← θ + delta, with ``delta`` flattened over ``model.parameters()`` in order."""
    with torch.no_grad():
        offset = 0
        for p in model.parameters():
            p.add_(delta[offset : offset + p.numel()].view(p.shape))
            offset += p.numel()


@register(
    "wfisher",
    paper_name="IU",
    help="influence unlearning: one WoodFisher step (--alpha is its size)",
    rank=5,
    in_tables=True,
    demo_args="--alpha 1 --no-aug",
    sweep_args="--alpha {alpha_iu}",
)
def unlearn(model, ctx) -> None:
    model.eval()
    start = time.perf_counter()
    v = influence_direction(
        model, ctx.batches("forget", shuffle=False), ctx.batches("retain", shuffle=False), ctx.runtime
    )
    num_params = v.numel()
    chunk_size = min(MAX_CHUNK, chunk_size_for(num_params))
    retain = ctx.batches("retain", batch_size=chunk_size, shuffle=False)
    k = woodfisher(model, retain, v, WOODFISHER_N, runtime=ctx.runtime, chunk_size=chunk_size)
    add_flat_(model, ctx.args.alpha * k)
    pruner.refresh_weights(model)
    seconds = time.perf_counter() - start
    samples = min(WOODFISHER_N + 2, retain.num_samples)
    ctx.stats.update(
        iu_seconds=seconds, iu_woodfisher_samples=samples, iu_v_norm=v.norm().item(), iu_k_norm=k.norm().item()
    )
    ctx.log(
        f"IU: |v| {v.norm().item():.3g}, |H^-1 v| {k.norm().item():.3g} from {samples} retain samples, "
        f"{num_params} parameters, {seconds:.1f}s"
    )
