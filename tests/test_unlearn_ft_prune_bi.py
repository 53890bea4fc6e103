"""FT_prune_bi against a plain re-implementation of the original's loop: FT with a pruning step every 2 epochs."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.nn.utils.prune as prune

import dataset
import main_forget
import pruner
import unlearn
from training.runtime import Runtime
from unlearn.context import UnlearnContext
from unlearn.ft_prune_bi import prunes_at, step_rate


def tiny_model():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    )  # fmt: skip
    pruner.global_prune(model, 0.5)
    return model


def context(digits_raw, epochs, *extra):
    data = dataset.build_data(digits_raw, split_seed=1, train_subset=300)
    flags = ["--unlearn", "FT_prune_bi", "--no-aug", "--batch_size", "64", "--unlearn_epochs", str(epochs), *extra]
    args = main_forget.make_parser().parse_args([*flags, "--unlearn_lr", "0.05", "--decreasing_lr", "2"])
    forget = np.flatnonzero(data.train_labels.numpy() == 3)
    runtime = Runtime(torch.device("cpu"), progress=False)
    return UnlearnContext.build(data, forget, args, runtime, milestones=(2,), log=lambda m: None)


def kept(model) -> float:
    return pruner.remaining_weight_ratio(model)


def test_ft_prune_bi_matches_the_originals_loop_and_reaches_the_rate(digits_raw):
    ctx = context(digits_raw, 4, "--rate", "0.75")  # the original's spelling of --bi_rate
    ours, plain = tiny_model(), tiny_model()
    unlearn.get_method("FT_prune_bi").fn(ours, ctx)

    convs = [(module, "weight") for module in plain if isinstance(module, nn.Conv2d)]
    optimizer = torch.optim.SGD(plain.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2], gamma=0.1)
    batches, fraction = ctx.batches("retain"), 1 - (1 - 0.75) ** (1 / ((4 - 1) // 2 + 1))
    for epoch in range(4):  # the original: prune when (E - epoch) % 2 == 0, then one FT epoch
        if (4 - epoch) % 2 == 0:
            prune.global_unstructured(convs, pruning_method=prune.L1Unstructured, amount=fraction)
        batches.set_epoch(epoch)
        plain.train()
        for images, labels in batches:
            optimizer.zero_grad()
            F.cross_entropy(plain(images), labels).backward()
            optimizer.step()
        scheduler.step()
    for (name, a), b in zip(ours.state_dict().items(), plain.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), name
    assert kept(ours) == pytest.approx(0.5 * 0.25, abs=1e-3)  # θ_o kept half; 75% of that is pruned
    assert sorted(ctx.stats["kept_after_pruning"]) == ["0", "2"]
    assert torch.all(ours[0].weight[ours[0].weight_mask == 0] == 0)


def test_an_odd_number_of_epochs_prunes_once_less_than_the_rate_counts_on():
    assert [epoch for epoch in range(5) if prunes_at(epoch, 5)] == [1, 3]  # K = 3 steps are planned
    assert step_rate(0.75, 4) == pytest.approx(0.5) and step_rate(0.875, 5) == pytest.approx(0.5)
    assert [epoch for epoch in range(1) if prunes_at(epoch, 1)] == []  # one epoch: (1 - 0) is odd


def test_random_steps_keep_a_seeded_subset_of_the_mask(digits_raw):
    masks = []
    for _ in range(2):
        ctx = context(digits_raw, 2, "--bi_rate", "0.5", "--random_prune")
        model = tiny_model()
        before = pruner.masks_of(model)
        unlearn.get_method("FT_prune_bi").fn(model, ctx)
        masks.append(pruner.masks_of(model))
        assert kept(model) == pytest.approx(0.25, abs=1e-3)
        assert all(torch.all(masks[-1][key] <= before[key]) for key in before)
    assert all(torch.equal(masks[0][key], masks[1][key]) for key in masks[0])
    magnitude = tiny_model()
    unlearn.get_method("FT_prune_bi").fn(magnitude, context(digits_raw, 2, "--bi_rate", "0.5"))
    assert any(not torch.equal(masks[0][key], value) for key, value in pruner.masks_of(magnitude).items())


def test_a_run_stopped_inside_an_epoch_that_pruned_does_not_prune_again_when_resumed(digits_raw, stopped_and_resumed):
    def make_ctx():
        return context(digits_raw, 4, "--bi_rate", "0.75")

    whole = tiny_model()
    unlearn.get_method("FT_prune_bi").fn(whole, make_ctx())
    resumed, _ = stopped_and_resumed(
        make_ctx, tiny_model, "FT_prune_bi", stop_after=len(make_ctx().batches("retain")) * 2 + 1
    )
    assert kept(resumed) == pytest.approx(kept(whole))
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
