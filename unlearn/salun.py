"""SalUn (saliency unlearning, Fan et al. 2024): RL that moves only the weights salient for forgetting.

Weight saliency s = |Σ_b ∇_θ CE(θ_o; D_f batch b)|: the gradient of the forget loss at θ_o, summed
over D_f's batches (training transform unless --no-aug, model in eval mode, no optimiser step
while it accumulates). The mask m keeps the --saliency_ratio fraction γ of weights with the
LARGEST saliency: exactly ⌊γ·N⌋ of the N elements of every named parameter, ranked together
(conv weights — ``weight_orig`` for a pruned conv —, batch-norm scales and shifts, biases, the
head), as the reference ranks one concatenation of all of them. A pruned weight has zero
gradient, hence zero saliency, and stays zero whether kept or not.

Then RL (unlearn/rl.py) with the mask: before each SGD step the gradients of non-salient weights
are zeroed; after it, non-salient weights are put back to θ_o and their momentum zeroed, so weight
decay and momentum cannot move them either (the reference's current code does the same).

The mask is returned as the artefact ``saliency_mask``, which the run layer saves as
``{save_dir}/{unlearn}_saliency_mask.pth.tar``: a dict of 0/1 float tensors keyed by parameter
name (loadable with ``weights_only=True``).

Against the reference code (docs/differences.md): its current mask script keeps the γ largest
saliencies, as the paper defines and as this does (it negates them before an ascending rank test);
its earliest versions kept the γ smallest (no negation), which ``--saliency_end smallest``
reproduces for comparison; and its mask script before December 2023 took an SGD step (on −CE)
after every batch it accumulated, so later batches saw moved weights. Here: the gradient at θ_o.
"""

import argparse

import torch
import torch.nn.functional as F

from unlearn import SALIENCY_README, Flag, Param, Preset, prepared, register
from unlearn.rl import random_labelling


def fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def forget_saliency(model, ctx) -> dict[str, torch.Tensor]:
    """|Σ over D_f's batches of ∇_θ CE| for every named parameter, at the model's current weights."""
    params = dict(model.named_parameters())
    totals = {name: torch.zeros_like(param) for name, param in params.items()}
    model.eval()  # as the reference: batch-norm uses its running statistics, which stay as they are
    for images, labels in ctx.batches("forget"):
        model.zero_grad(set_to_none=True)
        # float32, no autocast, as the reference: the mask is a rank over all weights, and bf16
        # rounding of the forward would reorder near-equal saliencies
        F.cross_entropy(model(ctx.runtime.inputs(images)), labels).backward()
        for name, param in params.items():
            if param.grad is not None:
                totals[name] += param.grad
    model.zero_grad(set_to_none=True)
    return {name: total.abs() for name, total in totals.items()}


def saliency_end(text: str) -> str:
    if text not in ("largest", "smallest"):
        raise argparse.ArgumentTypeError(f"must be largest or smallest, got {text}")
    return text


def top_fraction_mask(saliency: dict[str, torch.Tensor], ratio: float, largest: bool = True) -> dict[str, torch.Tensor]:
    """1 for the ⌊ratio·N⌋ largest (or smallest) values over all tensors together, 0 elsewhere (ties: the earlier)."""
    flat = torch.cat([values.flatten().float() for values in saliency.values()])
    keep = int(flat.numel() * ratio)
    chosen = torch.zeros_like(flat)
    chosen[torch.argsort(flat, descending=largest, stable=True)[:keep]] = 1.0
    mask, start = {}, 0
    for name, values in saliency.items():
        mask[name] = chosen[start : start + values.numel()].view_as(values).to(values.dtype)
        start += values.numel()
    return mask


def prepare(model, ctx) -> dict[str, torch.Tensor]:
    """The saliency mask of θ_o."""
    largest = ctx.args.saliency_end == "largest"
    mask = top_fraction_mask(forget_saliency(model, ctx), ctx.args.saliency_ratio, largest)
    kept = sum(int(m.sum()) for m in mask.values())
    total = sum(m.numel() for m in mask.values())
    ctx.stats["salient_weights"] = {"kept": kept, "total": total}
    ctx.log(f"SalUn: {kept} of {total} weights ({100 * kept / total:.1f}%) are salient and will move")
    return mask


class SalientOnly:
    """Optimiser hooks that keep the non-salient weights at the values they have when created."""

    def __init__(self, model, mask: dict[str, torch.Tensor]):
        self.params = dict(model.named_parameters())
        self.mask = mask
        self.start = {name: self.params[name].detach().clone() for name in mask}

    def mask_gradients(self) -> None:
        for name, keep in self.mask.items():
            grad = self.params[name].grad
            if grad is not None:
                grad.mul_(keep)

    @torch.no_grad()
    def restore(self, optimizer) -> None:
        # weight decay and momentum still moved the non-salient weights: undo that
        for name, keep in self.mask.items():
            param = self.params[name]
            param.copy_(torch.where(keep.bool(), param, self.start[name]))
            momentum = optimizer.state.get(param, {}).get("momentum_buffer")
            if momentum is not None:
                momentum.mul_(keep)

    def attach(self, optimizer) -> None:
        optimizer.register_step_pre_hook(lambda opt, args, kwargs: self.mask_gradients())
        optimizer.register_step_post_hook(lambda opt, args, kwargs: self.restore(opt))


@register(
    "SalUn",
    paper_name="SalUn",
    help="RL updating only the weights with the largest forget-loss gradient (--saliency_ratio of them)",
    rank=23,
    test_args="--unlearn_epochs 1",
    demo_args="--unlearn_epochs 5 --unlearn_lr 0.04 --batch_size 32 --saliency_ratio 0.5",
    search_space=(
        Param("unlearn_lr", 1e-3, 1e-1, log=True),
        Param("unlearn_epochs", 1, 10, integer=True),
        Param("saliency_ratio", 0.1, 0.9),
    ),
    preset=Preset(
        "--unlearn_lr 0.013 --unlearn_epochs 10 --saliency_ratio 0.5 --batch_size 256",
        f"{SALIENCY_README}: mask with_0.5.pt, batch size its default",
    ),
    flags=(
        Flag("saliency_ratio", 0.5, fraction, "SalUn: fraction of weights (largest |gradient| on D_f) to update"),
        Flag(
            "saliency_end",
            "largest",
            saliency_end,
            "SalUn: keep the largest saliencies (the paper and the reference's current code) or the smallest "
            "(the reference's earliest versions)",
        ),
    ),
    prepare=prepare,
)
def unlearn(model, ctx) -> dict:
    mask = prepared(model, ctx, prepare)
    random_labelling(model, ctx, SalientOnly(model, mask).attach)
    return {"saliency_mask": {name: m.cpu() for name, m in mask.items()}}
