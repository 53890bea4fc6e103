"""retrain_ls against a plain re-implementation of the original's loop and loss."""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import dataset
import main_forget
import pruner
import unlearn
from training.runtime import Runtime
from unlearn.context import UnlearnContext


def tiny_model():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)
    )
    pruner.global_prune(model, 0.5)
    return model


def original_loss(preds, target, epsilon=0.1):
    """The original's LabelSmoothingCrossEntropy, written out: ε·(−Σ_k log p_k)/K + (1 − ε)·NLL."""
    log_preds = F.log_softmax(preds, dim=-1)
    return epsilon * (-log_preds.sum(dim=-1).mean() / preds.size(-1)) + (1 - epsilon) * F.nll_loss(log_preds, target)


def test_retrain_ls_is_sgd_on_the_retain_set_with_the_originals_smoothed_loss(digits_raw):
    data = dataset.build_data(digits_raw, split_seed=1, train_subset=300)
    flags = [
        "--unlearn",
        "retrain_ls",
        "--no-aug",
        "--batch_size",
        "32",
        "--unlearn_epochs",
        "2",
        "--unlearn_lr",
        "0.05",
    ]
    args = main_forget.make_parser().parse_args(flags)
    forget = np.flatnonzero(data.train_labels.numpy() == 3)
    ctx = UnlearnContext.build(data, forget, args, Runtime(torch.device("cpu"), progress=False), log=lambda m: None)
    ours, plain = tiny_model(), tiny_model()
    unlearn.get_method("retrain_ls").fn(ours, ctx)

    optimizer = torch.optim.SGD(plain.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    batches = ctx.batches("retain")
    for epoch in range(2):  # the original's loop: θ_o's weights, every D_r batch, one step each
        batches.set_epoch(epoch)
        plain.train()
        for images, labels in batches:
            optimizer.zero_grad()
            original_loss(plain(images), labels).backward()
            optimizer.step()
    for (name, a), b in zip(ours.state_dict().items(), plain.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), name
    assert not torch.equal(ours[0].weight_orig, tiny_model()[0].weight_orig)  # it did move
    assert torch.all(ours[0].weight[ours[0].weight_mask == 0] == 0)  # under the mask
    assert not unlearn.get_method("retrain_ls").loads_weights  # a fresh start, as the original's main_forget.py
