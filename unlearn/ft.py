"""FT (fine-tuning): minimise cross-entropy on D_r starting from θ_o."""

from trainer import cross_entropy
from unlearn import register
from unlearn.loop import iterate


@register("FT", paper_name="FT")
def unlearn(model, ctx) -> None:
    iterate(model, ctx, "retain", lambda epoch: cross_entropy, "FT")
