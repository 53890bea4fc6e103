"""Property tests (hypothesis): the validation split, the forget-set choice and global pruning."""

import argparse
import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

import pruner
from dataset import choose_forget_set, select_forget, validation_split
from experiments import pruning_rounds
from utils import UsageError

FEW = settings(max_examples=40, deadline=None)


@st.composite
def label_arrays(draw, max_classes=6, max_size=300):
    """Labels of a random dataset; some classes may be small or absent."""
    num_classes = draw(st.integers(1, max_classes))
    size = draw(st.integers(1, max_size))
    seed = draw(st.integers(0, 2**31 - 1))
    weights = np.random.RandomState(seed).dirichlet(np.ones(num_classes))
    labels = np.random.RandomState(seed + 1).choice(num_classes, size=size, p=weights).astype(np.int64)
    return labels, num_classes


@FEW
@given(label_arrays(), st.integers(0, 10_000))
def test_validation_split_takes_a_tenth_of_each_class_and_partitions(labels_classes, seed):
    labels, num_classes = labels_classes
    train, val = validation_split(labels, num_classes, seed)
    for c in range(num_classes):
        assert (labels[val] == c).sum() == int(0.1 * (labels == c).sum())
    assert len(np.intersect1d(train, val)) == 0 and len(np.unique(val)) == len(val)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    assert np.all(np.diff(train) > 0)  # D keeps the official order
    again_train, again_val = validation_split(labels, num_classes, seed)
    np.testing.assert_array_equal(again_val, val)
    np.testing.assert_array_equal(again_train, train)


@FEW
@given(label_arrays(), st.data())
def test_select_forget_is_a_seeded_subset_of_the_candidates(labels_classes, data):
    labels, num_classes = labels_classes
    c = data.draw(st.integers(-1, num_classes - 1), label="class_to_replace")
    candidates = np.arange(len(labels)) if c == -1 else np.flatnonzero(labels == c)
    n = data.draw(st.none() | st.integers(0, len(candidates)), label="num_indexes_to_replace")
    seed = data.draw(st.integers(1, 10_000), label="seed")
    forget = select_forget(labels, c, n, seed)
    assert forget.dtype == np.int64 and len(np.unique(forget)) == len(forget)
    assert set(forget.tolist()) <= set(candidates.tolist())
    if n is None:
        np.testing.assert_array_equal(forget, candidates)  # the whole class (or all of D for c = -1)
    else:
        assert len(forget) == n
        np.testing.assert_array_equal(forget, np.random.RandomState(seed - 1).choice(candidates, n, replace=False))
    np.testing.assert_array_equal(select_forget(labels, c, n, seed), forget)


@FEW
@given(label_arrays(), st.data())
def test_choose_forget_set_splits_d_into_forget_and_ascending_retain_or_refuses(labels_classes, data):
    labels, num_classes = labels_classes
    c = data.draw(st.integers(-2, num_classes), label="class_to_replace")
    n = data.draw(st.none() | st.integers(-2, len(labels) + 2), label="num_indexes_to_replace")
    args = argparse.Namespace(class_to_replace=c, num_indexes_to_replace=n, indexes_to_replace=None, seed=2)
    candidates = len(labels) if c == -1 else int((labels == c).sum())
    size = candidates if n is None else n
    if not -1 <= c < num_classes or (n is not None and not 0 < n <= candidates) or size >= len(labels):
        with pytest.raises(UsageError):
            choose_forget_set(labels, num_classes, args)
        return
    chosen = choose_forget_set(labels, num_classes, args)
    assert len(chosen.forget_indices) == size and len(np.intersect1d(chosen.forget_indices, chosen.retain_indices)) == 0
    both = np.sort(np.concatenate([chosen.forget_indices, chosen.retain_indices]))
    np.testing.assert_array_equal(both, np.arange(len(labels)))
    assert np.all(np.diff(chosen.retain_indices) > 0)
    assert chosen.forgotten_class == (c if c != -1 and size == candidates else None)


@st.composite
def conv_nets(draw):
    """A small random stack of convolutions (plus a head that must never be pruned)."""
    torch.manual_seed(draw(st.integers(0, 2**31 - 1)))
    channels = draw(st.lists(st.integers(1, 6), min_size=2, max_size=4))
    layers = []
    for cin, cout in zip(channels, channels[1:]):
        kernel = draw(st.sampled_from([1, 3]))
        layers += [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=draw(st.booleans())), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels[-1], 3))


def conv_masks(model):
    return torch.cat([module.weight_mask.flatten() for _, module in pruner.prunable_modules(model)])


def conv_magnitudes(model):
    return torch.cat([module.weight_orig.detach().abs().flatten() for _, module in pruner.prunable_modules(model)])


@FEW
@given(conv_nets(), st.lists(st.floats(0.0, 0.95), min_size=1, max_size=4), st.sampled_from(["l1", "random"]))
def test_global_prune_counts_nesting_and_magnitudes(model, rates, method):
    total = sum(module.weight.numel() for _, module in pruner.prunable_modules(model))
    kept, previous = total, torch.ones(total)
    for k, rate in enumerate(rates):
        pruner.global_prune(model, rate, method, seed=k)
        masks = conv_masks(model)
        kept -= round(rate * kept)  # ``rate`` of the weights that survived the rounds before
        assert int(masks.sum()) == kept
        assert torch.all(masks <= previous), "a pruned weight came back"
        assert pruner.remaining_weight_ratio(model) == pytest.approx(kept / total)
        previous = masks
    if method == "l1" and 0 < kept < total:  # weights do not move here, so the ranking is global
        magnitudes = conv_magnitudes(model)
        assert magnitudes[masks == 0].max() <= magnitudes[masks == 1].min()
    assert not hasattr(model[-1], "weight_mask")


@FEW
@given(conv_nets(), st.floats(0.05, 0.95), st.integers(0, 1000))
def test_random_prune_is_fixed_by_its_seed(model, rate, seed):
    twin = copy.deepcopy(model)
    pruner.global_prune(model, rate, "random", seed=seed)
    pruner.global_prune(twin, rate, "random", seed=seed)
    assert torch.equal(conv_masks(twin), conv_masks(model))


@FEW
@given(st.one_of(st.floats(1.0, 1e6), st.floats(-1e6, -1e-9), st.just(float("nan"))))
def test_rates_outside_zero_one_are_refused(rate):
    model = nn.Sequential(nn.Conv2d(1, 2, 3))
    with pytest.raises(UsageError, match="outside"):
        pruner.global_prune(model, rate)
    assert not hasattr(model[0], "weight_mask")


@FEW
@given(conv_nets(), st.floats(0.05, 0.95), st.sampled_from(["l1", "random"]))
def test_prune_and_rewind_gives_the_same_masks_in_the_channels_last_layout(model, rate, method):
    """CUDA runs keep weights channels-last; torch's global pruning alone cannot flatten those."""
    args = argparse.Namespace(rate=rate, random_prune=method == "random", rewind_pth=None, prune_type="lt")
    init = {key: value.clone() for key, value in model.state_dict().items()}
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
    pruning_rounds._prune_and_rewind(args, model, None, init, None, 0)
    pruning_rounds._prune_and_rewind(args, fast, None, init, None, 0, torch.channels_last)
    assert torch.equal(conv_masks(fast), conv_masks(model))
    for (_, plain), (_, last) in zip(pruner.prunable_modules(model), pruner.prunable_modules(fast)):
        assert torch.equal(plain.weight, last.weight)
        assert last.weight_orig.is_contiguous(memory_format=torch.channels_last)
