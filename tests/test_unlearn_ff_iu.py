import argparse

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import dataset
import pruner
import unlearn
from training.runtime import Runtime
from unlearn import fisher, wfisher
from unlearn.context import UnlearnContext

NUM_CLASSES = 3


def tiny_model(seed=0, prune_rate=0.5):
    """Conv → BN → ReLU → Conv → pool → Linear head; BN stats set off their defaults, half the convs pruned."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, NUM_CLASSES),
    )
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.2, 0.2)
        model[1].running_var.uniform_(0.5, 1.5)
        model[1].weight.uniform_(0.5, 1.5)
    if prune_rate:
        pruner.global_prune(model, prune_rate)
    return model.eval()


@pytest.fixture(scope="module")
def data():
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (48, 1, 6, 6), dtype=torch.uint8, generator=generator)
    labels = torch.arange(48) % NUM_CLASSES
    raw = dataset.RawDataset(
        "tiny",
        images,
        labels,
        images[:6],
        labels[:6],
        num_classes=NUM_CLASSES,
        mean=(0.5,),
        std=(0.25,),
        crop_padding=1,
        flip=True,
    )
    return dataset.build_data(raw, split_seed=1)


def make_ctx(data, forget_indices, forgotten_class=None, alpha=0.1, seed=2, no_aug=True):
    forget_indices = np.asarray(forget_indices, dtype=np.int64)
    args = argparse.Namespace(alpha=alpha, seed=seed, batch_size=8, no_aug=no_aug)
    runtime = Runtime(torch.device("cpu"), progress=False)
    return UnlearnContext.build(
        data, forget_indices, args, runtime, "fisher_new", forgotten_class=forgotten_class, log=lambda message: None
    )


def class_forget(data, c=0):
    return make_ctx(data, np.where(data.train_labels.numpy() == c)[0], forgotten_class=c)


def effective_weights_zero_at_mask(model):
    for _, module in pruner.prunable_modules(model):
        assert torch.all(module.weight[module.weight_mask == 0] == 0)


# ----------------------------------------------------------------------------- FF


@pytest.mark.parametrize("prune_rate", [0.0, 0.5])
@pytest.mark.parametrize("chunk_size", [None, 2])
def test_fisher_vectorised_accumulator_equals_loop(data, prune_rate, chunk_size):
    model = tiny_model(prune_rate=prune_rate)
    batches = data.train_batches(np.arange(40), batch_size=fisher.FISHER_BATCH_SIZE, shuffle=False, augment=False)
    reference = fisher.fisher_accumulator_loop(model, batches, NUM_CLASSES)
    vectorised = fisher.fisher_accumulator(model, batches, NUM_CLASSES, chunk_size=chunk_size)
    assert list(vectorised) == [name for name, _ in model.named_parameters()]
    for name, acc in reference.items():
        assert acc.abs().sum() > 0
        torch.testing.assert_close(vectorised[name], acc, rtol=1e-5, atol=1e-12)
    if prune_rate:
        for name, module in pruner.prunable_modules(model):
            assert torch.all(vectorised[f"{name}.weight_orig"][module.weight_mask == 0] == 0)
    # functional_call must leave the prune hooks' weight as a plain product of the real tensors
    for _, module in pruner.prunable_modules(model):
        if hasattr(module, "weight_orig"):
            assert torch.equal(module.weight, module.weight_orig * module.weight_mask)


def hand_set_params():
    params = {
        "conv.weight": torch.tensor([[[[1.0]], [[2.0]]], [[[3.0]], [[4.0]]]]),  # (2, 2, 1, 1), ordinary
        "head.weight": torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),  # (3, 2), head
        "head.bias": torch.tensor([0.5, -0.5, 1.5]),  # (3,), head
        "bn.weight": torch.tensor([1.0, 2.0]),  # (2,), 1-D
    }
    acc = {
        "conv.weight": torch.tensor([[[[1e-5]], [[1.0]]], [[[0.25]], [[0.0]]]]),
        "head.weight": torch.tensor([[1e-5, 0.1], [1.0, 2.0], [0.5, 1e-9]]),
        "head.bias": torch.tensor([1e-5, 0.5, 4.0]),
        "bn.weight": torch.tensor([1e-6, 0.2]),
    }
    return params, acc


@pytest.mark.parametrize("forgotten_class", [None, 1])
def test_fisher_mean_var_rules_by_hand(forgotten_class):
    params, acc = hand_set_params()
    alpha = 0.5
    out = fisher.fisher_mean_var(params, acc, NUM_CLASSES, alpha, forgotten_class)
    inv = lambda a: 1 / (a + 1e-8)
    # ordinary 4-D tensor: cap 1e3, ×α, mean over dim 1, no ×10
    row0 = alpha * (1e3 + inv(1.0)) / 2
    row1 = alpha * (inv(0.25) + 1e3) / 2
    expected_conv = torch.tensor([row0, row0, row1, row1]).reshape(2, 2, 1, 1)
    # head matrix: cap 1e2, ×α, mean over dim 1, ×10
    head_rows = [alpha * (1e2 + inv(0.1)) / 2, alpha * (inv(1.0) + inv(2.0)) / 2, alpha * (inv(0.5) + 1e2) / 2]
    expected_head_w = 10 * torch.tensor(head_rows)[:, None].expand(3, 2).clone()
    # head bias: cap 1e2, ×α, ×10 (1-D: no mean)
    expected_head_b = 10 * alpha * torch.tensor([1e2, inv(0.5), inv(4.0)])
    # other 1-D tensor: cap 1e3, ×α, ×10
    expected_bn = 10 * alpha * torch.tensor([1e3, inv(0.2)])
    expected_head_mu_w, expected_head_mu_b = params["head.weight"].clone(), params["head.bias"].clone()
    if forgotten_class is not None:
        expected_head_w[forgotten_class] = 1e-3
        expected_head_b[forgotten_class] = 1e-3
        expected_head_mu_w[forgotten_class] = 0
        expected_head_mu_b[forgotten_class] = 0
    expected = {
        "conv.weight": (params["conv.weight"], expected_conv),
        "head.weight": (expected_head_mu_w, expected_head_w),
        "head.bias": (expected_head_mu_b, expected_head_b),
        "bn.weight": (params["bn.weight"], expected_bn),
    }
    for name, (mu, var) in expected.items():
        torch.testing.assert_close(out[name][0], mu, rtol=0, atol=0)
        torch.testing.assert_close(out[name][1], var, rtol=1e-6, atol=0)
    # the inputs are left alone
    assert torch.equal(params["head.weight"], hand_set_params()[0]["head.weight"])


def test_fisher_perturbation_is_mu_plus_scaled_seeded_noise():
    params, acc = hand_set_params()
    out = fisher.fisher_perturbation(params, acc, NUM_CLASSES, 0.5, 1, torch.Generator().manual_seed(7))
    mean_var = fisher.fisher_mean_var(params, acc, NUM_CLASSES, 0.5, 1)
    generator = torch.Generator().manual_seed(7)
    for name, (mu, var) in mean_var.items():
        torch.testing.assert_close(out[name], mu + var.sqrt() * torch.randn(mu.shape, generator=generator))


@pytest.mark.parametrize("forgotten_class", [None, 0])
def test_fisher_method_follows_formula_is_seeded_and_keeps_masks(data, forgotten_class):
    ctx = class_forget(data, 0) if forgotten_class is not None else make_ctx(data, [0, 4, 9, 20])
    original = tiny_model()
    buffers_before = {k: v.clone() for k, v in original.named_buffers()}
    runs = []
    for seed in (2, 2, 3):
        model = tiny_model()
        ctx.args.seed = seed
        unlearn.get_method("fisher_new").fn(model, ctx)
        runs.append(model)
        effective_weights_zero_at_mask(model)
        for name, value in model.named_buffers():
            assert torch.equal(value, buffers_before[name])
    states = [dict(m.named_parameters()) for m in runs]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not torch.equal(states[0]["7.weight"], states[2]["7.weight"])
    # the same θ_u rebuilt from the reference accumulator and the formulas
    batches = ctx.batches("retain", batch_size=32, shuffle=False)
    acc = fisher.fisher_accumulator_loop(tiny_model(), batches, NUM_CLASSES)
    params = {k: v.detach() for k, v in original.named_parameters()}
    expected = fisher.fisher_perturbation(
        params, acc, NUM_CLASSES, ctx.args.alpha, forgotten_class, torch.Generator().manual_seed(2)
    )
    for name, value in expected.items():
        torch.testing.assert_close(states[0][name].detach(), value, rtol=1e-5, atol=1e-6)
    head_bias = states[0]["7.bias"].detach()
    if forgotten_class is not None:  # μ = 0 with std sqrt(1e-3): the forgotten logit's bias is noise only
        noise = expected["7.bias"] - fisher.fisher_mean_var(params, acc, NUM_CLASSES, ctx.args.alpha, 0)["7.bias"][0]
        assert abs(head_bias[0].item()) < 0.2 and head_bias[0].item() == pytest.approx(noise[0].item(), abs=1e-6)


def test_fisher_runs_with_augmentation(data):
    model = tiny_model()
    unlearn.get_method("fisher_new").fn(model, make_ctx(data, [1, 2, 3], no_aug=False))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    effective_weights_zero_at_mask(model)


# ----------------------------------------------------------------------------- IU


@pytest.mark.parametrize("prune_rate", [0.0, 0.5])
def test_directional_derivatives_equal_per_sample_gradient_dot_products(data, prune_rate):
    model = tiny_model(prune_rate=prune_rate)
    images, labels = next(iter(data.train_batches(np.arange(10), batch_size=10, shuffle=False, augment=False)))
    grads = wfisher.sample_gradients_loop(model, images, labels)
    assert grads.shape == (10, sum(p.numel() for p in model.parameters()))
    generator = torch.Generator().manual_seed(3)
    directions = (torch.randn(grads.shape[1], generator=generator), grads[0])
    dots = wfisher.directional_derivatives(model, images, labels, directions)
    assert dots.shape == (10, 2)
    torch.testing.assert_close(dots, grads @ torch.stack(directions, dim=1), rtol=1e-4, atol=1e-5)
    assert len(set(dots[:, 0].tolist())) == 10  # one value per sample, not a batch mean
    if prune_rate:  # the JVP passes leave the module's pruned weights as they were
        effective_weights_zero_at_mask(model)


def numpy_recursion(v, grads, N):
    k = v.copy()
    o = grads[0].copy()
    for g in grads[1:]:
        t = float(o @ g)
        k = k - (float(k @ g) / (N + t)) * o
        o = o - (t / (N + t)) * o
    return k


def test_recursion_matches_numpy_formulas():
    rng = np.random.default_rng(0)
    v, grads = rng.normal(size=9), rng.normal(size=(12, 9))
    for N in (5.0, 1000.0):
        k = wfisher.recursion(torch.from_numpy(v), torch.from_numpy(grads), N).numpy()
        np.testing.assert_allclose(k, numpy_recursion(v, grads, N), rtol=1e-12)
    # the formulas only rescale o, so k − v stays parallel to the first gradient
    k = wfisher.recursion(torch.from_numpy(v), torch.from_numpy(grads), 5.0).numpy()
    scale = (k - v) @ grads[0] / (grads[0] @ grads[0])
    np.testing.assert_allclose(k - v, scale * grads[0], atol=1e-12)
    assert abs(scale) > 1e-3


def test_closed_form_recursion_equals_the_vector_form():
    rng = np.random.default_rng(1)
    v, grads = torch.from_numpy(rng.normal(size=9)), torch.from_numpy(rng.normal(size=(12, 9)))
    state = wfisher._ClosedFormRecursion(v, 5.0)
    state.g0 = grads[0]
    state.feed(torch.stack([grads[1:] @ v, grads[1:] @ grads[0]], dim=1))
    torch.testing.assert_close(state.k, wfisher.recursion(v, grads, 5.0), rtol=1e-12, atol=1e-12)


def test_woodfisher_vectorised_equals_loop_and_reads_n_plus_two_samples(data):
    model = tiny_model()
    v = torch.randn(sum(p.numel() for p in model.parameters()), generator=torch.Generator().manual_seed(1))
    batches = data.train_batches(np.arange(40), batch_size=4, shuffle=False, augment=False)
    N = 5
    vectorised = wfisher.woodfisher(model, batches, v, N)
    reference = wfisher.woodfisher_loop(model, batches, v, N)
    torch.testing.assert_close(vectorised, reference, rtol=1e-4, atol=1e-6)
    images, labels = next(iter(data.train_batches(np.arange(40), batch_size=40, shuffle=False, augment=False)))
    grads = wfisher.sample_gradients_loop(model, images, labels)
    # the default cap is N + 2 samples: g_0 and N + 1 updates, as the original's `if idx > N: return`
    torch.testing.assert_close(vectorised, wfisher.recursion(v, grads[:7], N), rtol=1e-4, atol=1e-6)
    assert not torch.allclose(vectorised, wfisher.recursion(v, grads[:8], N), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(
        wfisher.woodfisher(model, batches, v, N, max_samples=11),
        wfisher.recursion(v, grads[:11], N),
        rtol=1e-4,
        atol=1e-6,
    )
    # default N = 1000 on the whole tiny set (fewer samples than the cap): compare the updates k − v
    k_vec = wfisher.woodfisher(model, batches, v)
    k_loop = wfisher.woodfisher_loop(model, batches, v)
    assert (k_loop - v).abs().max() > 1e-4
    # both k carry float32 rounding of |v| ~ 1 (6e-8 per element), well below the update itself
    torch.testing.assert_close(k_vec - v, k_loop - v, rtol=1e-3, atol=1e-6)
    assert (k_vec - k_loop).norm() < 1e-2 * (k_loop - v).norm()


def test_influence_direction_matches_per_sample_sums(data):
    model = tiny_model()
    forget, retain = np.array([0, 5, 7, 30, 44]), np.setdiff1d(np.arange(45), [0, 5, 7, 30, 44])
    forget_batches = data.train_batches(forget, batch_size=2, shuffle=False, augment=False)
    retain_batches = data.train_batches(retain, batch_size=8, shuffle=False, augment=False)
    v = wfisher.influence_direction(model, forget_batches, retain_batches)
    params = list(model.parameters())

    def one_by_one(indices):
        total = 0
        for i in indices:
            image = data.train_images[i : i + 1].float() / 255
            loss = F.cross_entropy(model(image), data.train_labels[i : i + 1])
            total = total + torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])
        return total

    n_f, n_r = len(forget), len(retain)
    expected = one_by_one(forget) / (n_f + n_r) - one_by_one(retain) * n_f / ((n_f + n_r) * n_r)
    torch.testing.assert_close(v, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("class_wise", [False, True])
def test_iu_method_adds_alpha_k_and_keeps_masks(data, class_wise):
    ctx = class_forget(data, 1) if class_wise else make_ctx(data, [3, 8, 13, 21], alpha=5.0)
    ctx.args.alpha = 5.0
    original = tiny_model()
    model = tiny_model()
    unlearn.get_method("wfisher").fn(model, ctx)
    effective_weights_zero_at_mask(model)
    reference = tiny_model()
    v = wfisher.influence_direction(
        reference,
        ctx.batches("forget", batch_size=3, shuffle=False),
        ctx.batches("retain", batch_size=5, shuffle=False),
    )
    k = wfisher.woodfisher_loop(reference, ctx.batches("retain", batch_size=5, shuffle=False), v)
    theta_o = torch.cat([p.detach().reshape(-1) for p in original.parameters()])
    theta_u = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert (theta_u - theta_o).abs().max() > 1e-5
    torch.testing.assert_close(theta_u - theta_o, 5.0 * k, rtol=1e-4, atol=1e-7)
    for (name, before), after in zip(original.named_buffers(), model.buffers(), strict=True):
        assert torch.equal(before, after), name
    assert ctx.stats["iu_woodfisher_samples"] == len(ctx.retain_indices)


def test_iu_runs_with_augmentation(data):
    model = tiny_model()
    unlearn.get_method("wfisher").fn(model, make_ctx(data, [1, 2, 3], no_aug=False))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    effective_weights_zero_at_mask(model)


def test_registry_names():
    assert unlearn.get_method("fisher_new").paper_name == "FF"
    assert unlearn.get_method("wfisher").paper_name == "IU"
    assert unlearn.get_method("fisher_new").fn is fisher.unlearn
    assert unlearn.get_method("wfisher").fn is wfisher.unlearn
