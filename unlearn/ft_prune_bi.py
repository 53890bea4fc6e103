"""FT_prune_bi: the original's fine-tuning that prunes further while it unlearns.

FT on D_r (SGD at --unlearn_lr with MultiStepLR, as ``FT``), and at the start of every epoch t with
(E − t) even (E = --unlearn_epochs) a global pruning step over the conv weights that removes the
fraction p = 1 − (1 − r)^(1/K) of those still kept, K = (E − 1) // 2 + 1 and r = --bi_rate (the
original's --rate): by magnitude, or at random with --bi_random_prune (its --random_prune). For an
even E the K steps leave (1 − r) of the weights θ_o kept; for an odd E only (E − 1) / 2 steps fall
inside the run, as in the original, and fewer are removed. Random steps draw from --seed and t.
"""

import pruner
from training.trainer import cross_entropy
from unlearn import Flag, Param, register
from unlearn.loop import iterate

EVERY = 2  # the original's prune_step: epochs between two pruning steps


def step_rate(rate: float, epochs: int) -> float:
    """p, the fraction of the kept conv weights each pruning step removes."""
    return 1 - (1 - rate) ** (1 / ((epochs - 1) // EVERY + 1))


def prunes_at(epoch: int, epochs: int) -> bool:
    return (epochs - epoch) % EVERY == 0


@register(
    "FT_prune_bi",
    paper_name="FT_prune_bi",
    help="the original's FT_prune_bi: FT on D_r that prunes the conv weights further every 2 epochs "
    "(--bi_rate over the run; --bi_random_prune)",
    rank=33,
    test_args="--unlearn_epochs 2 --bi_rate 0.5",
    flags=(
        Flag(
            "bi_rate",
            0.95,
            float,
            "FT_prune_bi: fraction of θ_o's kept conv weights to prune over the run (the original's --rate)",
            aliases=("--rate",),
            added_later="omitted",
        ),
        Flag(
            "bi_random_prune",
            False,
            bool,
            "FT_prune_bi: prune at random, not by magnitude (the original's --random_prune)",
            aliases=("--random_prune",),
            added_later="omitted",
        ),
    ),
    search_space=(Param("unlearn_lr", 1e-3, 1e-1, log=True), Param("unlearn_epochs", 1, 10, integer=True)),
)
def unlearn(model, ctx) -> None:
    args = ctx.args
    pruner.check_rate(args.bi_rate)
    fraction = step_rate(args.bi_rate, args.unlearn_epochs)
    method = "random" if args.bi_random_prune else "l1"
    kept = ctx.stats.setdefault("kept_after_pruning", {})

    def prune(epoch: int) -> None:
        if prunes_at(epoch, args.unlearn_epochs):
            pruner.global_prune(model, fraction, method, seed=args.seed + epoch)
            kept[str(epoch)] = pruner.remaining_weight_ratio(model)
            ctx.log(
                f"FT_prune_bi epoch {epoch + 1}: pruned {100 * fraction:.2f}% of the kept conv weights "
                f"({method}); {100 * kept[str(epoch)]:.2f}% remain"
            )

    iterate(model, ctx, "retain", lambda epoch: cross_entropy, before_epoch=prune)
