"""SAM (training/sam.py) and retrain_sam against plain re-implementations of the original's rule and loop."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import dataset
import main_forget
import pruner
import unlearn
from training.runtime import Runtime
from training.sam import SAM
from unlearn.context import UnlearnContext


def tiny_model(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)
    )
    pruner.global_prune(model, 0.5)
    return model


def plain_sam_step(model, images, labels, lr, momentum_buffers, rho=2.0, momentum=0.9, weight_decay=5e-4):
    """One adaptive-SAM step written out: perturb by ρ·w²·g/‖|w|·g‖, gradient there, SGD from w."""
    params = [p for p in model.parameters()]
    model.zero_grad()
    F.cross_entropy(model(images), labels).backward()
    with torch.no_grad():
        grads = [p.grad.clone() for p in params]
        norm = torch.sqrt(sum(((p.abs() * g) ** 2).sum() for p, g in zip(params, grads)))
        saved = [p.clone() for p in params]
        for p, g in zip(params, grads):
            p += rho * p * p * g / (norm + 1e-12)
    model.zero_grad()
    F.cross_entropy(model(images), labels).backward()
    with torch.no_grad():
        for index, (p, w) in enumerate(zip(params, saved)):
            d = p.grad + weight_decay * w
            buffer = momentum_buffers.get(index)
            buffer = d.clone() if buffer is None else buffer.mul_(momentum).add_(d)
            momentum_buffers[index] = buffer
            p.copy_(w - lr * buffer)


def batch(seed=1, n=16):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def closure_for(model, images, labels):
    def closure():
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        return loss

    return closure


def test_sam_steps_match_the_written_out_rule_and_leave_pruned_weights_alone():
    ours, plain = tiny_model(), tiny_model()
    optimizer, buffers = SAM(ours.parameters(), lr=0.05), {}
    for step in range(3):
        images, labels = batch(step)
        optimizer.zero_grad()
        F.cross_entropy(ours(images), labels).backward()
        optimizer.step(closure_for(ours, images, labels))
        plain_sam_step(plain, images, labels, 0.05, buffers)
    for (name, a), b in zip(ours.state_dict().items(), plain.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name
    assert not torch.equal(ours[0].weight_orig, tiny_model()[0].weight_orig)
    assert torch.all(ours[0].weight[ours[0].weight_mask == 0] == 0)


def test_sam_with_rho_zero_is_sgd_and_its_state_round_trips():
    sam_model, sgd_model = tiny_model(), tiny_model()
    sam = SAM(sam_model.parameters(), lr=0.1, rho=0.0)
    sgd = torch.optim.SGD(sgd_model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    for step in range(2):
        images, labels = batch(step)
        for model, optimizer in ((sam_model, sam), (sgd_model, sgd)):
            optimizer.zero_grad()
            F.cross_entropy(model(images), labels).backward()
            optimizer.step(closure_for(model, images, labels)) if optimizer is sam else optimizer.step()
    for a, b in zip(sam_model.parameters(), sgd_model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    restored = SAM(tiny_model().parameters(), lr=0.1)
    restored.load_state_dict(sam.state_dict())
    buffers = [restored.state[p]["momentum_buffer"] for p in restored.param_groups[0]["params"]]
    assert all(torch.equal(a, sam.state[p]["momentum_buffer"]) for a, p in zip(buffers, sam.param_groups[0]["params"]))
    with pytest.raises(ValueError, match="closure"):
        sam.step()


def test_retrain_sam_is_a_fresh_sam_each_epoch_at_the_constant_sam_lr(digits_raw):
    data = dataset.build_data(digits_raw, split_seed=1, train_subset=300)
    # --unlearn_lr and --decreasing_lr drive an optimiser that takes no step, as in the original
    flags = "--unlearn retrain_sam --no-aug --batch_size 64 --unlearn_epochs 2 --lr 0.03 --unlearn_lr 0.5"
    args = main_forget.make_parser().parse_args([*flags.split(), "--decreasing_lr", "1"])
    assert args.sam_lr == 0.03  # the original's --lr spelling
    forget = np.flatnonzero(data.train_labels.numpy() == 3)
    ctx = UnlearnContext.build(data, forget, args, Runtime(torch.device("cpu"), progress=False), log=lambda m: None)
    ours, plain = tiny_model(), tiny_model()
    unlearn.get_method("retrain_sam").fn(ours, ctx)

    batches = ctx.batches("retain")
    for epoch in range(2):  # the original: a new SAM (so new momentum) every epoch, lr args.lr throughout
        batches.set_epoch(epoch)
        plain.train()
        buffers = {}
        for images, labels in batches:
            plain_sam_step(plain, images, labels, 0.03, buffers)
    for (name, a), b in zip(ours.state_dict().items(), plain.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), name
    assert [entry["lr"] for entry in ctx.stats["epochs"]] == [0.03, 0.03]
    assert not unlearn.get_method("retrain_sam").loads_weights


def test_a_run_stopped_inside_an_epoch_continues_with_that_epochs_sam_state(digits_raw, stopped_and_resumed):
    data = dataset.build_data(digits_raw, split_seed=1, train_subset=300)
    args = main_forget.make_parser().parse_args(
        "--unlearn retrain_sam --no-aug --batch_size 64 --unlearn_epochs 2".split()
    )
    forget = np.flatnonzero(data.train_labels.numpy() == 3)

    def make_ctx():
        return UnlearnContext.build(
            data, forget, args, Runtime(torch.device("cpu"), progress=False), log=lambda m: None
        )

    whole = tiny_model()
    unlearn.get_method("retrain_sam").fn(whole, make_ctx())
    resumed, _ = stopped_and_resumed(
        make_ctx, tiny_model, "retrain_sam", stop_after=len(make_ctx().batches("retain")) + 2
    )
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
