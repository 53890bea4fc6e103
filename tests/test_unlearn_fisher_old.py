"""``fisher`` (the original's older Fisher forgetting) against a plain re-implementation of its loop."""

import numpy as np
import torch
import torch.nn as nn

import dataset
import main_forget
import pruner
import unlearn
from training.runtime import Runtime
from unlearn.context import UnlearnContext
from unlearn.fisher_old import per_sample_fisher


def tiny_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    model.append(nn.Flatten())
    model.append(nn.Linear(4, 10))
    pruner.global_prune(model, 0.5)
    return model


def plain_fisher(model, batches):
    """The original's loop: one autograd pass per sample of log p_y, (g + 1e-8)² summed, divided by the count."""
    model.eval()
    params = list(model.parameters())
    acc, total = [torch.zeros_like(p) for p in params], 0
    for images, labels in batches:
        predictions = torch.log_softmax(model(images), dim=-1)
        for i in range(len(labels)):
            gradient = torch.autograd.grad(predictions[i][labels[i]], params, retain_graph=True)
            for j, derivative in enumerate(gradient):
                acc[j] += (derivative + 1e-8) ** 2
        total += len(labels)
    return [value / total for value in acc]


def test_fisher_matches_the_originals_per_sample_loop_and_its_noise_rule(digits_raw):
    data = dataset.build_data(digits_raw, split_seed=1, train_subset=200)
    args = main_forget.make_parser().parse_args(["--unlearn", "fisher", "--no-aug", "--alpha", "1e-8", "--seed", "3"])
    forget = np.flatnonzero(data.train_labels.numpy() == 3)
    ctx = UnlearnContext.build(data, forget, args, Runtime(torch.device("cpu"), progress=False), log=lambda m: None)
    model = tiny_model()
    batches = ctx.batches("retain", batch_size=32, shuffle=False)
    ours = per_sample_fisher(model, batches)
    plain = plain_fisher(tiny_model(), batches)
    for (name, a), b in zip(ours.items(), plain, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-12), name

    unlearn.get_method("fisher").fn(model, ctx)
    theta_o, generator = tiny_model(), torch.Generator().manual_seed(3)
    for (name, moved), (_, before), fisher in zip(
        model.named_parameters(), theta_o.named_parameters(), plain, strict=True
    ):
        scale = torch.sqrt(1e-8 / fisher).clamp(max=1e-3) * (10 if before.shape[-1] == 10 else 1)
        expected = before + scale * torch.randn(before.shape, generator=generator)
        assert torch.allclose(moved, expected, rtol=1e-4, atol=1e-7), name
    assert torch.all(model[0].weight[model[0].weight_mask == 0] == 0)  # the mask holds
