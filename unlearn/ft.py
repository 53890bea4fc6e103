"""FT (fine-tuning): minimise cross-entropy on D_r starting from θ_o."""

from training.trainer import cross_entropy
from unlearn import SPARSE_README, Param, Preset, register
from unlearn.loop import iterate


@register(
    "FT",
    paper_name="FT",
    help="fine-tune on D_r",
    rank=2,
    test_args="--unlearn_epochs 1",
    in_tables=True,
    demo_args="--unlearn_epochs 10 --unlearn_lr 0.01 --batch_size 32",
    search_space=(Param("unlearn_lr", 1e-3, 1e-1, log=True), Param("unlearn_epochs", 1, 10, integer=True)),
    preset=Preset("--unlearn_lr 0.01 --unlearn_epochs 10", SPARSE_README),
)
def unlearn(model, ctx) -> None:
    iterate(model, ctx, "retain", lambda epoch: cross_entropy)
