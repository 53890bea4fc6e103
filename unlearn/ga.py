"""GA (gradient ascent): minimise −CE on D_f, i.e. push the forget set's loss up."""

from training.trainer import cross_entropy
from unlearn import SPARSE_README, Param, Preset, register
from unlearn.loop import iterate


def negative_cross_entropy(model, images, labels):
    loss, logits = cross_entropy(model, images, labels)
    return -loss, logits


@register(
    "GA",
    paper_name="GA",
    help="gradient ascent on D_f",
    rank=3,
    test_args="--unlearn_epochs 1",
    in_tables=True,
    demo_args="--unlearn_epochs 5 --unlearn_lr 0.0001 --batch_size 32",
    search_space=(Param("unlearn_lr", 1e-5, 1e-2, log=True), Param("unlearn_epochs", 1, 10, integer=True)),
    preset=Preset("--unlearn_lr 0.0001 --unlearn_epochs 5", SPARSE_README),
)
def unlearn(model, ctx) -> None:
    iterate(model, ctx, "forget", lambda epoch: negative_cross_entropy)
