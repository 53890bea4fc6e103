"""The backdoor attack's metrics: clean accuracy and attack success rate (ASR) with the trigger."""

from __future__ import annotations

import torch

from dataset import Batches, Data, add_trigger
from training.trainer import accuracy, predict


def attack_success_rate(predictions: torch.Tensor, true_labels: torch.Tensor, target: int) -> dict:
    """ASR (%) of predictions on triggered images: over all of them, and over those whose true class is not ``target``.

    The second is the usual definition; the original code's ASR counts the whole test set. An empty set gives nan.
    """
    hit = predictions == target
    nontarget = true_labels != target

    def percent(mask):
        return 100.0 * hit[mask].float().mean().item() if mask.any() else float("nan")

    return {"ASR": percent(torch.ones_like(hit)), "ASR_nontarget": percent(nontarget)}


def backdoor_metrics(model, data: Data, size: int, value: float, target: int, runtime, batch_size=512) -> dict:
    """SA (clean test accuracy, all classes) and the ASRs on the whole test set with the trigger applied."""
    triggered = Batches(add_trigger(data.test_images, size, value), data.test_labels, batch_size=batch_size)
    logits, labels = predict(model, triggered, runtime)
    return {
        "SA": accuracy(model, data.eval_batches("test", batch_size=batch_size), runtime),
        **attack_success_rate(logits.argmax(1), labels, target),
    }
