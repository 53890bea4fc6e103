"""SCRUB (Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023).

The student starts from θ_o; the teacher is a frozen copy of θ_o (eval mode). With the distillation
divergence at temperature T over a batch of B samples,

    KL_T(s, t) = T² · (1/B) · Σ_b KL(softmax(t_b/T) ‖ softmax(s_b/T)),

each epoch e = 0 … E−1 (E = --unlearn_epochs) is:

1. while e < --scrub_msteps, a max-step pass over D_f (batches of --scrub_forget_batch_size):
   minimise −KL_T(student, teacher), i.e. move away from the teacher on the forget set;
2. a min-step pass over D_r (batches of --batch_size): minimise γ·CE + α·KL_T(student, teacher)
   (γ = --scrub_gamma, α = --scrub_alpha).

Both passes step one SGD optimiser (--unlearn_lr, --momentum, --weight_decay, MultiStepLR at
--decreasing_lr) and the student is in train mode in both, as in the authors' code. Their CIFAR-10
setting: E = 3, msteps = 2, lr 5e-4, momentum 0.9, wd 5e-4, T = 4, γ = 0.99, α = 0.001, D_f batches
of 512, D_r batches of 256, no augmentation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import pruner
from unlearn import Flag, Param, Preset, prepared, register
from unlearn.loop import TwoPasses, iterate
from utils import UsageError


def distill_kl(student_logits, teacher_logits, temperature: float) -> torch.Tensor:
    """KL_T(s, t): the teacher's softened distribution against the student's, scaled by T² per sample.

    Always float32 (the reference trains in float32): under bf16 autocast the student's logits
    come in bf16 and are widened before the softmaxes and the sum.
    """
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    teacher = F.softmax(teacher_logits.float() / temperature, dim=1)
    return F.kl_div(log_student, teacher, reduction="sum") * temperature**2 / student_logits.shape[0]


def scrub_loss(teacher, epoch_batches: TwoPasses, temperature: float, alpha: float, gamma: float):
    def loss_fn(model, images, labels):
        logits = model(images)
        # the teacher in float32 even inside the step's autocast (the reference is float32 throughout):
        # its logits are the KL's target, a forward without backward, so bf16 would save little here
        with torch.no_grad(), torch.autocast(images.device.type, enabled=False):
            teacher_logits = teacher(images)
        divergence = distill_kl(logits, teacher_logits, temperature)
        if epoch_batches.in_first:  # the max-step pass over D_f
            return -divergence, logits
        return gamma * F.cross_entropy(logits, labels) + alpha * divergence, logits

    return loss_fn


def prepare(model, ctx):
    """The teacher: θ_o, frozen (made before a resumed run's student weights are loaded)."""
    return pruner.frozen_copy(model)


@register(
    "SCRUB",
    paper_name="SCRUB",
    help="teacher-student: max-steps push the student's D_f outputs away from θ_o, min-steps keep D_r (--scrub_*)",
    rank=21,
    test_args="--unlearn_epochs 1",
    demo_args="--unlearn_epochs 3 --unlearn_lr 0.005 --batch_size 32 --scrub_forget_batch_size 64",
    search_space=(
        Param("unlearn_lr", 1e-4, 1e-1, log=True),
        Param("unlearn_epochs", 2, 10, integer=True),
        Param("scrub_alpha", 1e-4, 1.0, log=True),
    ),
    preset=Preset(
        "--unlearn_lr 0.0005 --unlearn_epochs 3 --decreasing_lr 3,5,9 --batch_size 256 --scrub_forget_batch_size 512 "
        "--scrub_msteps 2 --scrub_temperature 4 --scrub_alpha 0.001 --scrub_gamma 0.99 --no-aug",
        "meghdadk/SCRUB large_scale_unlearning.ipynb (CIFAR-10, All-CNN)",
    ),
    flags=(
        Flag("scrub_msteps", 2, int, "SCRUB: epochs that begin with a max-step pass over D_f"),
        Flag("scrub_temperature", 4.0, float, "SCRUB: distillation temperature T"),
        Flag("scrub_alpha", 0.001, float, "SCRUB: weight of KL(teacher||student) in the min-step on D_r"),
        Flag("scrub_gamma", 0.99, float, "SCRUB: weight of the cross-entropy in the min-step on D_r"),
        Flag("scrub_forget_batch_size", 512, int, "SCRUB: batch size of the max-step pass over D_f"),
    ),
    prepare=prepare,
)
def unlearn(model, ctx) -> None:
    args = ctx.args
    if args.scrub_temperature <= 0 or args.scrub_forget_batch_size < 1 or args.scrub_msteps < 0:
        raise UsageError("SCRUB needs --scrub_temperature > 0, --scrub_forget_batch_size >= 1, --scrub_msteps >= 0")
    teacher = prepared(model, ctx, prepare)
    forget = ctx.batches("forget", batch_size=args.scrub_forget_batch_size)
    msteps = args.scrub_msteps
    epoch_batches = TwoPasses(
        forget, ctx.batches("retain"), "D_f (max) then D_r (min)", first_when=lambda epoch: epoch < msteps
    )
    loss = scrub_loss(
        ctx.runtime.call(teacher), epoch_batches, args.scrub_temperature, args.scrub_alpha, args.scrub_gamma
    )
    iterate(model, ctx, epoch_batches, lambda epoch: loss)
    ctx.stats["scrub_max_epochs"] = min(args.scrub_msteps, args.unlearn_epochs)
