"""BS (boundary shrinking, Chen et al. 2023): relabel each D_f sample as its nearest wrong class, then fit that.

For every D_f batch x (with the training transform unless --no-aug), one FGSM step against a
frozen copy of θ_o in eval mode finds the neighbouring class: x' = round(255·clip(x + ε·sign(∇_x
CE(θ_o; x, y)), 0, 1))/255 with ε = 0.1, the reference's fixed bound, and the new label is θ_o's
prediction on x'. As in the reference, that prediction is used as it is, even where the attack
failed and it is still y. The model being unlearned then takes an SGD step on CE(f(x), label) on
the clean x; D_f is the only data, for --unlearn_epochs epochs.

The attack works on images in [0, 1], as the reference's (its loaders only scale to [0, 1] and its
models normalise inside, like ours): ε = 0.1 is a tenth of the pixel range, and the clip and the
rounding to 1/255 keep x' a valid 8-bit image.
"""

import torch
import torch.nn.functional as F

import pruner
from unlearn import SALIENCY_README, Param, Preset, prepared, register
from unlearn.loop import iterate

EPSILON = 0.1


def prepare(model, ctx):
    """θ_o, frozen: the attacked model stays the original while the trained one moves."""
    return pruner.frozen_copy(model)


def nearest_wrong_class(original, images, labels, epsilon: float = EPSILON) -> torch.Tensor:
    """θ_o's prediction on the one-step FGSM image (ε in [0, 1] pixel units, clipped, on the 1/255 grid).

    In float32 even inside the training step's bf16 autocast, as the reference computes it: the
    attack keeps only the gradient's signs, and bf16 rounding flips those of its small entries.
    """
    with torch.autocast(images.device.type, enabled=False), torch.enable_grad():
        attacked = images.detach().float().clone().requires_grad_(True)
        loss = F.cross_entropy(original(attacked), labels)
        (gradient,) = torch.autograd.grad(loss, attacked)
        adversarial = torch.round((attacked.detach() + epsilon * gradient.sign()).clamp(0.0, 1.0) * 255) / 255
        with torch.no_grad():
            return original(adversarial).argmax(1)


def shrink_loss(original):
    def loss_fn(model, images, labels):
        targets = nearest_wrong_class(original, images, labels)
        logits = model(images)
        return F.cross_entropy(logits, targets), logits

    return loss_fn


@register(
    "boundary_shrink",
    paper_name="BS",
    help="boundary shrinking: fit D_f to the class an FGSM step (eps 0.1) pushes it into",
    rank=26,
    test_args="--unlearn_epochs 1",
    demo_args="--unlearn_epochs 5 --unlearn_lr 0.002 --batch_size 32",
    search_space=(Param("unlearn_lr", 1e-4, 1e-1, log=True), Param("unlearn_epochs", 1, 10, integer=True)),
    preset=Preset(
        "--unlearn_lr 0.013 --unlearn_epochs 10",
        f"SalUn's learning rate and epochs in {SALIENCY_README} (it gives no BS command)",
    ),
    prepare=prepare,
)
def unlearn(model, ctx) -> None:
    original = prepared(model, ctx, prepare)
    iterate(model, ctx, "forget", lambda epoch: shrink_loss(original))
