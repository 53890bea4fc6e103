import math

import pytest
import torch
import torch.nn as nn
import torch.nn.utils.prune as prune

import pruner
from utils import UsageError


def small_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 32, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )


def conv_total(model):
    return sum(m.weight.numel() for _, m in pruner.prunable_modules(model))


def test_omp_095_leaves_five_percent_and_smallest_weights_go():
    model = small_net()
    weights = torch.cat([m.weight.detach().abs().flatten() for _, m in pruner.prunable_modules(model)])
    pruner.global_prune(model, 0.95)
    total = conv_total(model)
    kept = round(total * pruner.remaining_weight_ratio(model))
    assert kept == total - round(0.95 * total)
    kept_values = torch.cat(
        [m.weight.detach().abs().flatten()[m.weight_mask.flatten() > 0] for _, m in pruner.prunable_modules(model)]
    )
    # global ranking: every kept magnitude is at least the largest removed one
    threshold = weights.sort().values[round(0.95 * total) - 1]
    assert kept_values.min() >= threshold
    assert isinstance(model[-1], nn.Linear) and not hasattr(model[-1], "weight_mask")


@pytest.mark.parametrize("method", ["l1", "random"])
def test_imp_rounds_leave_geometric_fraction(method):
    model = small_net()
    total = conv_total(model)
    for k in range(1, 6):
        pruner.global_prune(model, 0.2, method, seed=k)
        assert abs(pruner.remaining_weight_ratio(model) * total - 0.8**k * total) <= k  # one weight per round


def test_random_prune_is_seeded_and_differs_from_l1():
    a, b, c = small_net(), small_net(), small_net()
    pruner.global_prune(a, 0.5, "random", seed=3)
    pruner.global_prune(b, 0.5, "random", seed=3)
    pruner.global_prune(c, 0.5, "l1")
    for key, mask in pruner.masks_of(a).items():
        assert torch.equal(mask, pruner.masks_of(b)[key])
    assert any(not torch.equal(m, pruner.masks_of(c)[k]) for k, m in pruner.masks_of(a).items())


def test_random_prune_keeps_the_lowest_scores_like_torch_random_unstructured():
    """The original prunes with torch's RandomUnstructured on the global RNG: for the same stream the
    masks must agree, i.e. the highest uniform scores are pruned and the lowest kept."""
    ours, original = small_net(), small_net()
    pruner.global_prune(ours, 0.6, "random", seed=11)
    torch.manual_seed(11)
    params = [(module, "weight") for _, module in pruner.prunable_modules(original)]
    prune.global_unstructured(params, pruning_method=prune.RandomUnstructured, amount=0.6)
    for key, mask in pruner.masks_of(ours).items():
        assert torch.equal(mask, pruner.masks_of(original)[key]), key
    # the rule itself, on the same stream: kept entries are exactly the 40% lowest scores
    scores = torch.rand(conv_total(ours), generator=torch.Generator().manual_seed(11))
    kept = torch.cat([mask.flatten() for mask in pruner.masks_of(ours).values()]).bool()
    assert scores[kept].max() < scores[~kept].min()


def test_pruned_weights_stay_zero_through_sgd_and_save_load(tmp_path):
    model = small_net()
    pruner.global_prune(model, 0.9)
    masks = pruner.masks_of(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=5e-4)
    for _ in range(5):
        x = torch.randn(8, 3, 8, 8)
        loss = model(x).pow(2).mean() + sum(p.abs().sum() for p in model.parameters()) * 1e-3
        opt.zero_grad()
        loss.backward()
        opt.step()
    pruner.refresh_weights(model)  # the prune hook recomputes weight only on forward
    for name, module in pruner.prunable_modules(model):
        assert torch.all(module.weight[masks[f"{name}.weight_mask"] == 0] == 0)
        assert torch.count_nonzero(module.weight_orig[masks[f"{name}.weight_mask"] == 0]) > 0  # orig moved
    torch.save({"state_dict": model.state_dict()}, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=True)["state_dict"]
    fresh = small_net(seed=1)
    pruner.load_pruned_state(fresh, loaded)
    for (name, a), (_, b) in zip(pruner.prunable_modules(model), pruner.prunable_modules(fresh)):
        assert torch.equal(a.weight, b.weight)
        assert torch.equal(b.weight_mask, masks[f"{name}.weight_mask"])
    assert pruner.remaining_weight_ratio(fresh) == pytest.approx(pruner.remaining_weight_ratio(model))


def test_apply_extract_remove_roundtrip():
    model = small_net()
    pruner.global_prune(model, 0.7)
    masks = pruner.masks_of(model)
    other = small_net(seed=5)
    pruner.apply_mask(other, masks)
    assert pruner.remaining_weight_ratio(other) == pytest.approx(pruner.remaining_weight_ratio(model))
    pruner.remove_pruning(other)
    assert not any(k.endswith("weight_mask") for k in other.state_dict())
    for name, module in pruner.prunable_modules(other):
        assert torch.all(module.weight[masks[f"{name}.weight_mask"] == 0] == 0)
    dense = pruner.dense_state(model.state_dict())
    assert set(dense) == set(small_net().state_dict())


def test_mask_for_another_model_is_refused_with_tensor_name():
    model = small_net()
    pruner.global_prune(model, 0.5)
    wrong = nn.Sequential(nn.Conv2d(3, 8, 3))
    with pytest.raises(UsageError, match="'0.weight_mask' has shape"):
        pruner.apply_mask(wrong, {"0.weight_mask": pruner.masks_of(model)["0.weight_mask"]})
    with pytest.raises(UsageError, match="names no prunable layer"):
        pruner.apply_mask(nn.Sequential(nn.Linear(2, 2)), pruner.masks_of(model))


def test_rate_outside_range_is_refused():
    with pytest.raises(UsageError, match="outside"):
        pruner.global_prune(small_net(), 1.0)
    assert math.isclose(pruner.remaining_weight_ratio(small_net()), 1.0)


def test_mask_overlap_counts_the_weights_both_masks_keep():
    first = {"a.weight_mask": torch.tensor([1.0, 1.0, 0.0, 0.0]), "b.weight_mask": torch.ones(2, 2)}
    second = {"a.weight_mask": torch.tensor([0.0, 1.0, 1.0, 0.0]), "b.weight_mask": torch.ones(2, 2)}
    rows = pruner.mask_overlap(first, second)
    assert rows["a"] == {"kept_first": 2, "kept_second": 2, "shared": 1, "weights": 4, "overlap": 0.5}
    assert rows["b"]["overlap"] == 1.0
    assert rows["all"] == {"kept_first": 6, "kept_second": 6, "shared": 5, "weights": 8, "overlap": 5 / 6}
    with pytest.raises(ValueError, match="different layers"):
        pruner.mask_overlap(first, {"a.weight_mask": first["a.weight_mask"]})
