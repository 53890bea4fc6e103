"""ℓ1-sparse MU (the paper's FT_prune / FT_l1) and GA_l1.

FT_l1: minimise CE(D_r) + α_t‖θ‖₁ over all parameters with the linearly decaying coefficient
α_t = α(1 − t/(E − E₀)) for epoch t < E − E₀, 0 afterwards, and α when E − E₀ = 0
(E = --unlearn_epochs, E₀ = --no-l1-epochs). FT_prune is FT_l1 followed by a sparsity report.
GA_l1: minimise −CE(D_f) + α‖θ‖₁.
"""

import torch

import pruner
from training.trainer import cross_entropy
from unlearn import SPARSE_README, Param, Preset, register
from unlearn.ga import negative_cross_entropy
from unlearn.loop import iterate


def l1_coefficient(alpha: float, epoch: int, epochs: int, no_l1_epochs: int) -> float:
    active = epochs - no_l1_epochs
    if epoch < active:
        return alpha * (1 - epoch / active)
    if active == 0:
        return alpha
    return 0.0


def l1_norm(model) -> torch.Tensor:
    """‖θ‖₁ over every parameter (for a pruned conv: its weight_orig, as the original code sums)."""
    return sum(parameter.abs().sum() for parameter in model.parameters())


def with_l1(base_loss, coefficient: float):
    def loss_fn(model, images, labels):
        loss, logits = base_loss(model, images, labels)
        return loss + coefficient * l1_norm(model), logits

    return loss_fn


def _ft_l1(model, ctx):
    args = ctx.args
    coefficients = [
        l1_coefficient(args.alpha, t, args.unlearn_epochs, args.no_l1_epochs) for t in range(args.unlearn_epochs)
    ]
    ctx.stats["l1_coefficients"] = coefficients
    iterate(model, ctx, "retain", lambda epoch: with_l1(cross_entropy, coefficients[epoch]))


# FT with the l1 penalty (FT_l1 and l1-sparse alike): what is searched, and the original README's flags.
FT_L1_SPACE = (
    Param("unlearn_lr", 1e-3, 1e-1, log=True),
    Param("unlearn_epochs", 1, 10, integer=True),
    Param("alpha", 1e-5, 1e-2, log=True),
)
FT_L1_PRESET = "--alpha {alpha_l1} --unlearn_lr 0.01 --unlearn_epochs 10"


@register(
    "FT_l1",
    paper_name="FT_l1",
    help="FT with the decaying l1 penalty of FT_prune, without its sparsity report",
    rank=7,
    test_args="--unlearn_epochs 1 --alpha 1e-4",
    search_space=FT_L1_SPACE,
    preset=Preset(FT_L1_PRESET, f"l1-sparse's command in {SPARSE_README}"),
)
def ft_l1(model, ctx) -> None:
    _ft_l1(model, ctx)


@register(
    "FT_prune",
    paper_name="ℓ1-sparse",
    help="l1-sparse MU: FT with an l1 penalty decaying linearly to 0 (--alpha; --no-l1-epochs)",
    rank=6,
    test_args="--unlearn_epochs 2 --alpha 1e-4",
    in_tables=True,
    demo_args="--unlearn_epochs 10 --unlearn_lr 0.01 --batch_size 32 --alpha 5e-3",
    search_space=FT_L1_SPACE,
    preset=Preset(FT_L1_PRESET, f"{SPARSE_README}; it leaves alpha to be tuned"),
)
def ft_prune(model, ctx) -> None:
    _ft_l1(model, ctx)
    pruner.refresh_weights(model)
    with torch.no_grad():
        weights = [module.weight for _, module in pruner.prunable_modules(model)]
        zero = sum(int((w.abs() < 1e-8).sum()) for w in weights)
        total = sum(w.numel() for w in weights)
    ctx.stats["conv_near_zero_fraction"] = zero / total
    ctx.log(f"FT_prune: {100 * zero / total:.2f}% of conv weights are (near) zero after l1-sparse unlearning")


@register(
    "GA_l1",
    paper_name="GA_l1",
    help="GA with a constant l1 penalty (--alpha)",
    rank=8,
    test_args="--unlearn_epochs 1 --alpha 1e-4",
    search_space=(
        Param("unlearn_lr", 1e-5, 1e-2, log=True),
        Param("unlearn_epochs", 1, 10, integer=True),
        Param("alpha", 1e-5, 1e-2, log=True),
    ),
    preset=Preset(
        "--alpha {alpha_l1} --unlearn_lr 0.0001 --unlearn_epochs 5",
        f"GA's command in {SPARSE_README}, alpha to tune",
    ),
)
def ga_l1(model, ctx) -> None:
    iterate(model, ctx, "forget", lambda epoch: with_l1(negative_cross_entropy, ctx.args.alpha))
