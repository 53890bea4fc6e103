"""Stopping mid-epoch on a signal and resuming bit for bit; divergence detected by the epoch loop."""

import copy
import signal
from argparse import Namespace

import numpy as np
import pytest
import torch

import dataset
import models
from training import interrupts
from training.runtime import Runtime
from training.trainer import cross_entropy, make_optimizer, train_epoch
from unlearn.context import UnlearnContext
from unlearn.loop import iterate

RUNTIME = Runtime(torch.device("cpu"), progress=False)


@pytest.fixture(scope="module")
def data(digits_raw):
    return dataset.build_data(digits_raw, split_seed=1)


def small_model(data, seed=0):
    torch.manual_seed(seed)
    return models.build_model("resnet20s", data.num_classes, data.in_channels, data.mean, data.std)


def stop_after(steps: int, signum=signal.SIGTERM):
    """A loss that behaves like cross-entropy and 'receives' ``signum`` during batch number ``steps``."""
    calls = []

    def loss_fn(model, images, labels):
        calls.append(1)
        if len(calls) == steps:
            interrupts._note(signum, None)
        return cross_entropy(model, images, labels)

    return loss_fn


def test_iterate_from_gives_the_tail_of_a_full_pass(data):
    batches = data.train_batches(np.arange(300), batch_size=64, seed=5)
    batches.set_epoch(3)
    full = list(batches)
    tail = list(batches.iterate_from(2))
    assert len(tail) == len(full) - 2
    for (a, la), (b, lb) in zip(full[2:], tail):
        assert torch.equal(a, b) and torch.equal(la, lb)


def test_train_epoch_stopped_and_resumed_equals_uninterrupted(data):
    batches = data.train_batches(np.arange(600), batch_size=64, seed=2)
    reference = small_model(data)
    optimizer = make_optimizer(reference, 0.05)
    whole = train_epoch(reference, batches, optimizer, RUNTIME)

    model = small_model(data)
    optimizer = make_optimizer(model, 0.05)
    with interrupts.graceful_stop():
        with pytest.raises(interrupts.EpochInterrupted) as stop:
            train_epoch(model, batches, optimizer, RUNTIME, loss_fn=stop_after(4))
    assert stop.value.steps == 4 and stop.value.signum == signal.SIGTERM
    # what a saved progress file would carry, reloaded into fresh objects
    model2 = small_model(data, seed=9)
    model2.load_state_dict(copy.deepcopy(model.state_dict()))
    optimizer2 = make_optimizer(model2, 0.05)
    optimizer2.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    resumed = train_epoch(model2, batches, optimizer2, RUNTIME, resume=stop.value.partial)
    for key, value in reference.state_dict().items():
        assert torch.equal(value, model2.state_dict()[key]), key
    assert resumed["loss"] == pytest.approx(whole["loss"], rel=1e-5)
    assert resumed["acc"] == pytest.approx(whole["acc"])


def test_a_stop_during_the_last_batch_finishes_the_epoch(data):
    batches = data.train_batches(np.arange(200), batch_size=64, seed=2)  # 4 batches
    model = small_model(data)
    with interrupts.graceful_stop():
        stats = train_epoch(model, batches, make_optimizer(model, 0.05), RUNTIME, loss_fn=stop_after(4))
        assert interrupts.requested() == signal.SIGTERM  # still noted for the caller, who saves the epoch
    assert stats["acc"] >= 0


def test_warmup_rates_are_restored_when_stopped(data):
    batches = data.train_batches(np.arange(600), batch_size=64, seed=2)
    model = small_model(data)
    optimizer = make_optimizer(model, 0.05)
    with interrupts.graceful_stop(), pytest.raises(interrupts.EpochInterrupted):
        train_epoch(model, batches, optimizer, RUNTIME, loss_fn=stop_after(3), warmup=2)
    assert optimizer.param_groups[0]["lr"] == 0.05


def test_huge_learning_rate_diverges(data):
    batches = data.train_batches(np.arange(300), batch_size=64, seed=2)
    model = small_model(data)

    def exploding(model, images, labels):
        loss, logits = cross_entropy(model, images, labels)
        return loss * 1e30 * 1e30, logits  # overflows to inf in float32

    with pytest.raises(interrupts.Diverged, match=r"diverged at epoch 1 \(learning rate 0.1\)"):
        train_epoch(model, batches, make_optimizer(model, 0.1), RUNTIME, loss_fn=exploding, desc="x")


def _context(data, progress, resume=None):
    args = Namespace(unlearn_lr=0.02, momentum=0.9, weight_decay=5e-4, decreasing_lr="2", unlearn_epochs=3)
    args.__dict__.update(warmup=0, batch_size=64, no_aug=False, seed=4)
    retain = np.arange(400)
    ctx = UnlearnContext.build(
        data, np.arange(400, 450), args, RUNTIME, "FT", retain_indices=retain, milestones=(2,), log=lambda line: None
    )
    ctx.progress.save = lambda state: progress.append(copy.deepcopy(state))
    ctx.progress.resume = resume
    return ctx


def test_unlearning_loop_stopped_mid_epoch_saves_and_resumes_bit_equal(data):
    reference = small_model(data)
    iterate(reference, _context(data, []), "retain", lambda epoch: cross_entropy)

    model, progress = small_model(data), []
    steps_per_epoch = 7  # 400 retain samples in batches of 64
    stopping = stop_after(steps_per_epoch + 3)  # counts batches across epochs
    with interrupts.graceful_stop(), pytest.raises(interrupts.Stopped) as stop:
        iterate(model, _context(data, progress), "retain", lambda epoch: stopping)
    assert stop.value.signum == signal.SIGTERM and stop.value.exit_status == 143
    assert "FT epoch 2 after batch 3 of 7" in stop.value.where
    saved = progress[-1]
    assert saved["epoch"] == 1 and saved["partial_epoch"]["steps"] == 3
    resumed_model = small_model(data, seed=3)
    resumed_model.load_state_dict(model.state_dict())
    iterate(resumed_model, _context(data, [], resume=saved), "retain", lambda epoch: cross_entropy)
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key


def test_graceful_stop_restores_the_previous_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with interrupts.graceful_stop():
        assert signal.getsignal(signal.SIGTERM) is interrupts._note
    assert signal.getsignal(signal.SIGTERM) is before
