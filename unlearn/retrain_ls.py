"""retrain_ls: the original's "Retrain with label smoothing", SGD on D_r with label-smoothing cross-entropy.

The loss is ε·mean_k(−log p_k) + (1 − ε)·(−log p_y) with ε = 0.1, the original's
``LabelSmoothingCrossEntropy`` (which equals ``F.cross_entropy(..., label_smoothing=0.1)``),
through the shared loop: SGD(--unlearn_lr, --momentum, --weight_decay) with MultiStepLR at
--decreasing_lr for --unlearn_epochs. Like ``retrain`` it starts from a fresh initialisation under
θ_o's mask: the original's main_forget.py loads θ_o for every method except retrain, retrain_ls and
retrain_sam.
"""

from training.trainer import training_loss
from unlearn import Param, register
from unlearn.loop import iterate

EPSILON = 0.1  # the original's label smoothing
smoothed_cross_entropy = training_loss(EPSILON)


@register(
    "retrain_ls",
    paper_name="Retrain (LS)",
    loads_weights=False,
    help="the original's retrain_ls: train on D_r from a fresh initialisation with label-smoothing "
    "cross-entropy (eps 0.1)",
    rank=30,
    test_args="--unlearn_epochs 1",
    search_space=(Param("unlearn_lr", 1e-3, 1e-1, log=True), Param("unlearn_epochs", 1, 10, integer=True)),
)
def unlearn(model, ctx) -> None:
    iterate(model, ctx, "retain", lambda epoch: smoothed_cross_entropy)
