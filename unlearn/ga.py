"""GA (gradient ascent): minimise −CE on D_f, i.e. push the forget set's loss up."""

from training.trainer import cross_entropy
from unlearn import register
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
    sweep_args="--unlearn_lr 0.0001 --unlearn_epochs 5",
)
def unlearn(model, ctx) -> None:
    iterate(model, ctx, "forget", lambda epoch: negative_cross_entropy)
