"""BE (boundary expanding, Chen et al. 2023): move D_f into an extra "shadow" class, then drop that class.

The head grows from C to C + 1 outputs: its first C rows are θ_o's, the new row gets the default
initialisation of a fresh ``nn.Linear`` (weight and bias uniform in ±1/√fan_in), as the reference
builds a new C + 1 layer and copies the old rows into it; here it is drawn from a generator seeded
by --seed. SGD (the shared loop: momentum, weight decay and schedule over the whole model, the new
row included) then minimises CE(f(x), C) over D_f only, for --unlearn_epochs epochs, in train mode.
Finally the head is trimmed back to its first C rows, so D_f's samples fall to whichever real
class is now nearest. The reference evaluates the C + 1 head instead (docs/differences.md).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from unlearn import SALIENCY_README, Param, Preset, prepared, register
from unlearn.loop import iterate


def resize_head(model, rows: int, new_row=None) -> None:
    """Replace the head by one with ``rows`` outputs: the old rows first, then ``new_row`` (weight, bias)."""
    old = model.head
    head = nn.Linear(old.in_features, rows, bias=old.bias is not None, device=old.weight.device)
    kept = min(rows, old.out_features)
    with torch.no_grad():
        head.weight[:kept] = old.weight[:kept]
        if old.bias is not None:
            head.bias[:kept] = old.bias[:kept]
        if new_row is not None:
            head.weight[kept:] = new_row[0]
            if old.bias is not None:
                head.bias[kept:] = new_row[1]
    model.net.fc = head


def prepare(model, ctx) -> int:
    """Grow the head by the shadow class (before saved progress, whose head has C + 1 rows, loads); returns C."""
    classes = model.head.out_features
    bound = 1 / math.sqrt(model.head.in_features)  # nn.Linear's default init for weight and bias alike
    generator = torch.Generator().manual_seed(ctx.args.seed)
    weight = (torch.rand(1, model.head.in_features, generator=generator) * 2 - 1) * bound
    bias = (torch.rand(1, generator=generator) * 2 - 1) * bound
    resize_head(model, classes + 1, (weight, bias))
    return classes


def shadow_class_loss(shadow: int):
    def loss_fn(model, images, labels):
        logits = model(images)
        return F.cross_entropy(logits, torch.full_like(labels, shadow)), logits

    return loss_fn


@register(
    "boundary_expanding",
    paper_name="BE",
    help="boundary expanding: train D_f into an extra shadow class, then remove that class",
    rank=25,
    test_args="--unlearn_epochs 1",
    demo_args="--unlearn_epochs 5 --unlearn_lr 0.002 --batch_size 32",
    search_space=(Param("unlearn_lr", 1e-4, 1e-1, log=True), Param("unlearn_epochs", 1, 10, integer=True)),
    preset=Preset(
        "--unlearn_lr 0.013 --unlearn_epochs 10",
        f"SalUn's learning rate and epochs in {SALIENCY_README} (it gives no BE command)",
    ),
    prepare=prepare,
)
def unlearn(model, ctx) -> None:
    classes = prepared(model, ctx, prepare)
    try:
        iterate(model, ctx, "forget", lambda epoch: shadow_class_loss(classes))
    finally:  # also after a divergence, whose results are still evaluated with C classes
        resize_head(model, classes)
