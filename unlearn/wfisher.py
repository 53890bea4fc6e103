"""IU (influence unlearning, ``wfisher``): one Newton-like step θ ← θ + α·H⁻¹v with a WoodFisher H⁻¹.

As the original code computes it, with F = |D_f|, R = |D_r| and per-sample loss gradients ∇ℓ (eval mode):
v = Σ_{D_f} ∇ℓ / (F + R) − Σ_{D_r} ∇ℓ · F / ((F + R)·R), flattened over ``model.parameters()``.
H⁻¹v comes from the rank-one recursion over single samples of D_r in order, N = 1000:
k = v, o = g_0; for each next g: t = o·g; k ← k − (k·g / (N + t))·o; o ← o − (t / (N + t))·o.
Like the original, which returns once its sample index exceeds N, it reads N + 2 samples
(g_0 and N + 1 updates) when D_r has that many.

As written, the recursion only ever rescales o, so o stays parallel to g_0 and k = v − s·g_0
for a scalar s. We run it in that closed form: each later sample enters only through the two
scalars v·g and g_0·g, which forward-mode AD (one JVP per direction) gives for a whole batch at
once, so no per-sample gradient but g_0 is ever formed. ``woodfisher_loop`` keeps the vector form,
one backward per sample as the original, as the reference the tests compare against. Float32
throughout (no autocast); the recursion's scalars in float64.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, jvp

import pruner
from unlearn import SPARSE_README, Param, Preset, register
from unlearn.fisher import functional_state
from utils import UsageError

WOODFISHER_N = 1000
JVP_BATCH = 128  # samples per forward-mode pass: memory is a forward pass's, not per-sample gradients


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


def sample_gradients_loop(model, images, labels, runtime=None) -> torch.Tensor:
    """(B, #params) loss gradients of each sample alone: one autograd pass per sample."""
    model.eval()
    params = list(model.parameters())
    inputs = _inputs(images, runtime)
    rows = [
        flatten(torch.autograd.grad(F.cross_entropy(model(inputs[i : i + 1]), labels[i : i + 1]), params))
        for i in range(len(labels))
    ]
    return torch.stack(rows)


def unflatten_like(model, flat: torch.Tensor) -> dict:
    """A flat vector over ``model.parameters()`` as {parameter name: tensor of its shape}."""
    pieces, offset = {}, 0
    for name, p in model.named_parameters():
        pieces[name] = flat[offset : offset + p.numel()].view(p.shape)
        offset += p.numel()
    return pieces


def directional_derivatives(model, images, labels, directions, runtime=None) -> torch.Tensor:
    """(B, len(directions)): g_b·u for each sample b's own loss gradient g_b and each direction u.

    Forward-mode AD of the per-sample losses of the whole batch: in eval mode a sample's loss does
    not depend on the others, so one JVP per direction gives every sample's dot product without
    ever forming a per-sample gradient.
    """
    model.eval()
    inputs = _inputs(images, runtime)
    with functional_state(model) as (params, buffers):

        def losses(p):
            return F.cross_entropy(functional_call(model, (p, buffers), (inputs,)), labels, reduction="none")

        return torch.stack([jvp(losses, (params,), (unflatten_like(model, u),))[1] for u in directions], dim=1)


class _Recursion:
    """The vector recursion, fed per-sample gradients (the reference form, used by ``woodfisher_loop``)."""

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


class _ClosedFormRecursion:
    """The same recursion with o = c·g_0 and k = v − s·g_0, fed each sample's (v·g, g_0·g).

    Then t = c·(g_0·g), k·g = v·g − s·(g_0·g), s ← s + c·(k·g)/(N + t) and c ← c·(1 − t/(N + t)):
    the scalars are kept in float64, the vectors are v and g_0 only.
    """

    def __init__(self, v, N):
        self.v, self.N, self.g0, self.c, self.s = v, float(N), None, 1.0, 0.0

    def feed(self, dots: torch.Tensor) -> None:
        for v_dot_g, g0_dot_g in dots.double().tolist():
            t = self.c * g0_dot_g
            k_dot_g = v_dot_g - self.s * g0_dot_g
            self.s += self.c * k_dot_g / (self.N + t)
            self.c -= self.c * t / (self.N + t)

    @property
    def k(self) -> torch.Tensor:
        return self.v.clone() if self.g0 is None else self.v - self.s * self.g0


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


def woodfisher(model, batches, v, N: int = WOODFISHER_N, max_samples: int | None = None, runtime=None):
    """``woodfisher_loop``'s result from one backward (g_0) and two JVPs per batch (see ``_ClosedFormRecursion``)."""
    state = _ClosedFormRecursion(v, N)
    for images, labels in _capped(batches, int(N) + 2 if max_samples is None else max_samples):
        if state.g0 is None:
            state.g0 = sample_gradients_loop(model, images[:1], labels[:1], runtime)[0]
            images, labels = images[1:], labels[1:]
        if len(labels):
            state.feed(directional_derivatives(model, images, labels, (v, state.g0), runtime))
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
    test_args="--alpha 1 --no-aug",
    in_tables=True,
    demo_args="--alpha 1 --no-aug",
    search_space=(Param("alpha", 0.1, 50.0, log=True),),
    preset=Preset("--alpha {alpha_iu}", f"{SPARSE_README}; it leaves alpha to be tuned"),
)
def unlearn(model, ctx) -> None:
    model.eval()
    start = time.perf_counter()
    v = influence_direction(
        model, ctx.batches("forget", shuffle=False), ctx.batches("retain", shuffle=False), ctx.runtime
    )
    num_params = v.numel()
    retain = ctx.batches("retain", batch_size=JVP_BATCH, shuffle=False)
    k = woodfisher(model, retain, v, WOODFISHER_N, runtime=ctx.runtime)
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
