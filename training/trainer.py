"""The one epoch loop shared by training, retraining and every iterative unlearning method."""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from training import interrupts
from training.runtime import Runtime
from training.sam import SAM
from utils import UsageError


def cross_entropy(model, images, labels):
    logits = model(images)
    return F.cross_entropy(logits, labels), logits


def training_loss(label_smoothing: float = 0.0):
    """Cross-entropy, or with ε > 0 the label-smoothed ε·mean_k(−log p_k) + (1 − ε)·(−log p_y), which is the
    original's ``LabelSmoothingCrossEntropy`` (its main_ls.py and retrain_ls)."""
    if not 0 <= label_smoothing < 1:
        raise UsageError(f"--label_smoothing {label_smoothing} is outside [0, 1); give an epsilon such as 0.1")
    if label_smoothing == 0:
        return cross_entropy

    def smoothed(model, images, labels):
        logits = model(images)
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing), logits

    return smoothed


# main_imp.py --optimizer: SGD; SAM around it (the original's main_sam.py); Adam without weight decay (its
# main_vit.py, and its unlearning of swin_t). --schedule: MultiStepLR by 0.1, or cosine annealing to 0.
OPTIMIZERS = ("sgd", "sam", "adam")
SCHEDULES = ("multistep", "cosine")


def make_optimizer(model, lr, momentum=0.9, weight_decay=5e-4, kind="sgd"):
    if kind == "sam":
        return SAM(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    if kind == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def make_scheduler(optimizer, milestones, gamma=0.1, kind="multistep", epochs=None):
    """MultiStepLR at ``milestones``, or (``kind="cosine"``) CosineAnnealingLR over ``epochs``."""
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)


def train_epoch(
    model, batches, optimizer, runtime: Runtime, loss_fn=cross_entropy, epoch=0, warmup=0, desc="train", resume=None
):
    """One pass over ``batches``; returns mean loss, accuracy (%), img/s and seconds.

    During the first ``warmup`` epochs the learning rate rises linearly per step to its set
    value, as the original code's warm-up does. After each batch a stop signal (see
    ``interrupts``) ends the epoch early with ``EpochInterrupted``, which carries the number of
    batches done and the running sums; ``resume`` (those) continues such an epoch at the next
    batch. A non-finite mean loss at the end of the epoch raises ``Diverged``.
    """
    model.train()
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    steps = len(batches)
    first = 0 if resume is None else resume["steps"]
    total_loss = torch.tensor(0.0 if resume is None else resume["loss_sum"], device=runtime.device)
    correct = torch.tensor(0 if resume is None else resume["correct"], device=runtime.device, dtype=torch.int64)
    seen = 0 if resume is None else resume["seen"]
    start = time.perf_counter()
    bar = tqdm(
        batches.iterate_from(first), desc=desc, leave=False, disable=not runtime.progress, unit="batch", total=steps
    )
    bar.update(first)
    for step, (images, labels) in enumerate(bar, start=first):
        if epoch < warmup:
            scale = min(1.0, (epoch * steps + step + 1) / (warmup * steps))
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * scale
        loss, logits = _step(model, optimizer, runtime, loss_fn, images, labels)
        total_loss += loss.detach() * len(labels)
        correct += (logits.argmax(1) == labels).sum()
        seen += len(labels)
        signum = interrupts.requested()
        if signum is not None and step + 1 < steps:
            _restore_lrs(optimizer, base_lrs, epoch < warmup)
            partial = {"steps": step + 1, "loss_sum": total_loss.item(), "correct": correct.item(), "seen": seen}
            raise interrupts.EpochInterrupted(signum, step + 1, partial)
        if runtime.progress and (step % 10 == 0 or step + 1 == steps):  # the running figures, and the epoch's
            elapsed = time.perf_counter() - start
            bar.set_postfix(
                loss=f"{total_loss.item() / seen:.3f}",
                acc=f"{100 * correct.item() / seen:.1f}",
                img_s=f"{seen / max(elapsed, 1e-9):.0f}",
            )
    _restore_lrs(optimizer, base_lrs, epoch < warmup)
    seconds = time.perf_counter() - start
    seen = max(seen, 1)
    mean_loss = total_loss.item() / seen
    if not math.isfinite(mean_loss) or not weights_are_finite(model):
        raise interrupts.Diverged(desc, epoch, base_lrs[0])
    return {
        "loss": mean_loss,
        "acc": 100.0 * correct.item() / seen,
        "img_s": (seen - (0 if resume is None else resume["seen"])) / max(seconds, 1e-9),
        "seconds": seconds,
    }


def _step(model, optimizer, runtime: Runtime, loss_fn, images, labels):
    """One optimiser step on a batch; returns (loss, logits). SAM (training.sam) takes a second pass at
    its perturbed weights, and what it returns is that pass's, as the original's SAM loop reports."""

    def forward_backward():
        with runtime.autocast:
            loss, logits = loss_fn(runtime.call(model), runtime.inputs(images), labels)
        loss.backward()
        return loss, logits

    optimizer.zero_grad(set_to_none=True)
    loss, logits = forward_backward()
    if isinstance(optimizer, SAM):
        return optimizer.step(forward_backward)
    optimizer.step()
    return loss, logits


def weights_are_finite(model) -> bool:
    """No NaN or infinity in any floating-point parameter or buffer (one cheap pass, once per epoch)."""
    return all(torch.isfinite(tensor).all() for tensor in model.state_dict().values() if tensor.is_floating_point())


def _restore_lrs(optimizer, base_lrs, warming_up: bool) -> None:
    """Warm-up scales the rates per step; put the set values back (what the scheduler and a save expect)."""
    if warming_up:
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["lr"] = base


@torch.no_grad()
def predict(model, batches, runtime: Runtime):
    """Logits (float32, on the CPU) and labels of every sample of ``batches``, in order, in eval mode."""
    model.eval()
    all_logits, all_labels = [], []
    for images, labels in batches:
        with runtime.autocast:
            logits = runtime.call(model)(runtime.inputs(images))
        all_logits.append(logits.float().cpu())
        all_labels.append(labels.cpu())
    if not all_logits:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.int64)
    return torch.cat(all_logits), torch.cat(all_labels)


def accuracy(model, batches, runtime: Runtime) -> float:
    """Top-1 accuracy in % (nan for an empty subset)."""
    logits, labels = predict(model, batches, runtime)
    if len(labels) == 0:
        return float("nan")
    return 100.0 * (logits.argmax(1) == labels).float().mean().item()
