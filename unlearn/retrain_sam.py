"""retrain_sam: the original's "Retrain with SAM", training on D_r from a fresh initialisation with SAM.

As the original's ``retrain_sam``: like ``retrain`` it starts from a fresh initialisation under θ_o's
mask (its main_forget.py loads θ_o for every method but retrain, retrain_ls and retrain_sam); every
epoch builds a new SAM optimiser (ρ 2, adaptive; training/sam.py) around SGD with --momentum and
--weight_decay, so the momentum starts from zero each epoch; its learning rate is --sam_lr (the
original's --lr, default 0.1) and stays constant: --unlearn_lr and --decreasing_lr have no effect
(there they drive a scheduler of an optimiser that takes no step). --warmup ramps the rate up in
the first epochs, as there.
"""

from training.sam import SAM
from training.trainer import cross_entropy
from unlearn import Flag, Param, register
from unlearn.loop import iterate


@register(
    "retrain_sam",
    paper_name="Retrain (SAM)",
    loads_weights=False,
    help="the original's retrain_sam: train on D_r from a fresh initialisation with SAM (rho 2, adaptive), "
    "a new optimiser each epoch at the constant --sam_lr",
    rank=32,
    test_args="--unlearn_epochs 1",
    flags=(
        Flag(
            "sam_lr",
            0.1,
            float,
            "retrain_sam: SAM's learning rate, constant over the epochs (the original's --lr)",
            aliases=("--lr",),
            added_later="omitted",
        ),
    ),
    search_space=(Param("sam_lr", 1e-3, 1e-1, log=True), Param("unlearn_epochs", 1, 10, integer=True)),
)
def unlearn(model, ctx) -> None:
    args = ctx.args

    def fresh_sam(model):
        return SAM(model.parameters(), lr=args.sam_lr, momentum=args.momentum, weight_decay=args.weight_decay)

    iterate(model, ctx, "retain", lambda epoch: cross_entropy, epoch_optimizer=fresh_sam)
