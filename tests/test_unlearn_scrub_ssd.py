"""SCRUB, NegGrad+ and SSD: each objective moves the weights its way, masks hold, runs are seeded, SCRUB resumes."""

import copy
import json
import signal

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import ARCH

import dataset
import main_forget
import pruner
import unlearn
from experiments import run_identity, unlearning_files, unlearning_run
from training import interrupts
from training.runtime import Runtime
from training.trainer import make_optimizer, train_epoch
from unlearn.context import UnlearnContext
from unlearn.neggrad import PairedBatches
from unlearn.scrub import distill_kl
from unlearn.ssd import SSD_BATCH_SIZE
from utils import UsageError

CLASS = 3  # forgotten class: D_f is then unlike D_r, so moving away on D_f shows on D_f alone


def tiny_model(num_classes=10, prune_rate=0.5, seed=0):
    """Conv → BN → ReLU → Conv → ReLU → pool → Linear, half the conv weights pruned."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, num_classes),
    )
    if prune_rate:
        pruner.global_prune(model, prune_rate)
    return model


@pytest.fixture(scope="module")
def digits(digits_raw):
    return dataset.build_data(digits_raw, split_seed=1)


@pytest.fixture(scope="module")
def trained_state(digits):
    """θ_o: the pruned tiny model after a few epochs on all of D (so it fits D_f too)."""
    model = tiny_model()
    batches = digits.train_batches(batch_size=32, augment=False, seed=0)
    optimizer = make_optimizer(model, 0.05)
    runtime = Runtime(torch.device("cpu"), progress=False)
    for epoch in range(10):
        batches.set_epoch(epoch)
        train_epoch(model, batches, optimizer, runtime)
    return copy.deepcopy(model.state_dict())


def original(trained_state):
    model = tiny_model()
    model.load_state_dict(trained_state)
    return model


def make_ctx(data, method, *flags, forget=None):
    args = main_forget.make_parser().parse_args(["--unlearn", method, "--no-aug", "--batch_size", "32", *flags])
    forget = np.flatnonzero(data.train_labels.numpy() == CLASS) if forget is None else np.asarray(forget)
    return UnlearnContext.build(data, forget, args, Runtime(torch.device("cpu"), progress=False), log=lambda m: None)


def run_method(trained_state, ctx):
    model = original(trained_state)
    unlearn.get_method(ctx.args.unlearn).fn(model, ctx)
    return model


@torch.no_grad()
def mean_over(data, indices, fn):
    images = data.train_images[indices].float() / 255
    return float(fn(images, data.train_labels[indices]))


def cross_entropy_on(model, data, indices):
    return mean_over(data, indices, lambda x, y: F.cross_entropy(model.eval()(x), y))


def kl_to_teacher(student, teacher, data, indices, temperature=4.0):
    return mean_over(data, indices, lambda x, y: distill_kl(student.eval()(x), teacher.eval()(x), temperature))


def assert_masks_hold(model, trained_state):
    for name, module in pruner.prunable_modules(model):
        assert torch.equal(module.weight_mask, trained_state[f"{name}.weight_mask"])
        assert (module.weight_mask == 0).any()
        assert torch.all((module.weight_orig * module.weight_mask)[module.weight_mask == 0] == 0)
        assert torch.all(module.weight[module.weight_mask == 0] == 0)


def assert_same_parameters(a, b):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


# ----------------------------------------------------------------------------- SCRUB

# γ = 0: the min-step is pure distillation on D_r, so any move away from θ_o on D_f is the max-step's doing
SCRUB_FLAGS = ("--unlearn_epochs", "3", "--unlearn_lr", "0.003", "--scrub_forget_batch_size", "64")
SCRUB_OBJECTIVE = ("--scrub_alpha", "1", "--scrub_gamma", "0")


def test_scrub_moves_away_from_the_teacher_on_forget_only(digits, trained_state):
    ctx = make_ctx(digits, "SCRUB", *SCRUB_FLAGS, *SCRUB_OBJECTIVE)
    teacher = original(trained_state)
    model = run_method(trained_state, ctx)
    no_max = run_method(trained_state, make_ctx(digits, "SCRUB", *SCRUB_FLAGS, *SCRUB_OBJECTIVE, "--scrub_msteps", "0"))
    kl_forget = kl_to_teacher(model, teacher, digits, ctx.forget_indices)
    kl_retain = kl_to_teacher(model, teacher, digits, ctx.retain_indices)
    kl_forget_no_max = kl_to_teacher(no_max, teacher, digits, ctx.forget_indices)
    assert kl_forget > 2 * kl_forget_no_max and kl_forget > 1.5 * kl_retain
    assert kl_retain < 1.5 * kl_to_teacher(no_max, teacher, digits, ctx.retain_indices)
    assert (
        cross_entropy_on(model, digits, ctx.retain_indices)
        < cross_entropy_on(teacher, digits, ctx.retain_indices) + 0.05
    )
    assert_masks_hold(model, trained_state)
    # epochs 0 and 1 begin with the D_f pass (ceil(|D_f| / 64) batches), epoch 2 does not
    retain_steps, forget_steps = -(-len(ctx.retain_indices) // 32), -(-len(ctx.forget_indices) // 64)
    assert ctx.stats["scrub_max_epochs"] == 2
    assert [e["seconds"] > 0 for e in ctx.stats["epochs"]] == [True] * 3
    assert forget_steps == 3 and retain_steps == 37


def test_scrub_is_seeded(digits, trained_state):
    runs = [run_method(trained_state, make_ctx(digits, "SCRUB", *SCRUB_FLAGS)) for _ in range(2)]
    assert_same_parameters(*runs)
    assert not torch.equal(runs[0][7].weight, original(trained_state)[7].weight)


class StopHere(Exception):
    pass


def scrub_with_progress(digits, trained_state, progress_file, *extra, resume=False):
    ctx = make_ctx(digits, "SCRUB", *SCRUB_FLAGS, *extra, *(["--resume"] if resume else []))
    model = original(trained_state)  # as unlearning_run.prepare_model gives it: θ_o, also on resume
    identity = run_identity.of_args(run_identity.UNLEARNING, ctx.args)
    unlearning_run.run_unlearning(model, unlearn.get_method("SCRUB"), ctx, progress_file, identity)
    return model, ctx


@pytest.mark.parametrize("stop_at_step", [None, 2, 5], ids=["after-epoch-1", "in-max-pass", "in-min-pass"])
def test_scrub_resumed_equals_uninterrupted(digits, trained_state, tmp_path, monkeypatch, stop_at_step):
    reference, _ = scrub_with_progress(digits, trained_state, tmp_path / "reference.pth.tar")
    progress_file = tmp_path / "SCRUB_progress.pth.tar"
    save = unlearning_files.save_progress
    if stop_at_step is None:  # killed right after epoch 0's progress save

        def save_then_die(path, state, *rest):
            save(path, state, *rest)
            raise StopHere

        monkeypatch.setattr(unlearning_files, "save_progress", save_then_die)
        with pytest.raises(StopHere):
            scrub_with_progress(digits, trained_state, progress_file)
    else:  # a stop signal in epoch 1 (epoch 0: 3 D_f + 37 D_r batches), in its D_f pass (3 batches) or D_r pass
        calls = {"count": 0}

        def signal_in_epoch_1():
            calls["count"] += 1
            return signal.SIGTERM if calls["count"] == 3 + 37 + stop_at_step else None

        monkeypatch.setattr(interrupts, "requested", signal_in_epoch_1)
        with pytest.raises(interrupts.Stopped):
            scrub_with_progress(digits, trained_state, progress_file)
    monkeypatch.undo()
    saved = torch.load(progress_file, weights_only=True)
    assert saved["epoch"] == 1 and (saved["partial_epoch"] or {}).get("steps") == stop_at_step
    with pytest.raises(UsageError, match="--scrub_alpha is 0.001 there, 0.5 here"):
        scrub_with_progress(digits, trained_state, progress_file, "--scrub_alpha", "0.5", resume=True)
    resumed, ctx = scrub_with_progress(digits, trained_state, progress_file, resume=True)
    assert_same_parameters(resumed, reference)
    assert torch.equal(ctx.progress.prepared.state_dict()["7.weight"], trained_state["7.weight"])  # the teacher is θ_o
    assert [e["epoch"] for e in ctx.stats["epochs"]] == [0, 1, 2]


# ----------------------------------------------------------------------------- NegGrad+

NEGGRAD_FLAGS = ("--unlearn_epochs", "2", "--unlearn_lr", "0.01", "--neggrad_beta", "0.99")


def test_neggrad_plus_raises_forget_loss_and_keeps_retain_loss_low(digits, trained_state):
    ctx = make_ctx(digits, "NegGrad+", *NEGGRAD_FLAGS)
    teacher = original(trained_state)
    model = run_method(trained_state, ctx)
    before = [
        cross_entropy_on(teacher, digits, ctx.forget_indices),
        cross_entropy_on(teacher, digits, ctx.retain_indices),
    ]
    after = [cross_entropy_on(model, digits, ctx.forget_indices), cross_entropy_on(model, digits, ctx.retain_indices)]
    assert after[0] > 10 * before[0] and after[0] > 5.0  # from ~0.25 to ~8.7
    assert after[1] < before[1]  # ~0.31 to ~0.15: the β-weighted D_r term keeps fitting D_r
    assert_masks_hold(model, trained_state)
    # an epoch is as long as the longer set: 37 D_r batches, D_f's 5 cycled alongside
    assert len(PairedBatches(ctx.batches("retain"), ctx.batches("forget"))) == 37


def test_neggrad_plus_takes_its_own_forget_batch_size(digits, trained_state, monkeypatch):
    seen = []
    real = unlearn.neggrad.PairedBatches.__init__

    def record(self, retain, forget):
        seen.append((retain.batch_size, forget.batch_size, len(forget)))
        real(self, retain, forget)

    monkeypatch.setattr(unlearn.neggrad.PairedBatches, "__init__", record)
    flags = ("--unlearn_epochs", "1", "--batch_size", "32", "--neggrad_forget_batch_size", "16")
    ctx = make_ctx(digits, "NegGrad+", *flags)
    run_method(trained_state, ctx)
    assert seen == [(32, 16, -(-len(ctx.forget_indices) // 16))]  # D_r in 32s, D_f in 16s
    default = make_ctx(digits, "NegGrad+", "--batch_size", "32")
    assert default.args.neggrad_forget_batch_size is None


def test_neggrad_plus_is_seeded(digits, trained_state):
    runs = [run_method(trained_state, make_ctx(digits, "NegGrad+", *NEGGRAD_FLAGS)) for _ in range(2)]
    assert_same_parameters(*runs)
    assert not torch.equal(runs[0][7].weight, original(trained_state)[7].weight)


@pytest.mark.parametrize("retain_count,forget_count", [(70, 20), (20, 70)])
def test_pairs_cycle_the_shorter_set_and_resume_mid_epoch(digits, retain_count, forget_count):
    retain = digits.train_batches(np.arange(retain_count), batch_size=10, seed=4)
    forget = digits.train_batches(np.arange(100, 100 + forget_count), batch_size=10, seed=4)
    pairs = PairedBatches(retain, forget)
    pairs.set_epoch(3)
    assert len(pairs) == 7
    steps = [(labels, pairs.retain_count) for _, labels in pairs.iterate_from(0)]
    short, long = sorted([(retain_count // 10, 0), (forget_count // 10, 10)])
    # the shorter set's batches of this epoch repeat in order: batch k is its batch k mod its length
    for k, (labels, retain_size) in enumerate(steps):
        assert retain_size == 10 and len(labels) == 20
        part = labels[short[1] : short[1] + 10]
        assert torch.equal(part, steps[k % short[0]][0][short[1] : short[1] + 10])
    assert not torch.equal(steps[0][0], steps[short[0]][0])  # the longer set does not repeat
    tail = [labels for _, labels in pairs.iterate_from(4)]
    assert len(tail) == 3 and all(torch.equal(a, b[0]) for a, b in zip(tail, steps[4:]))


# ----------------------------------------------------------------------------- SSD


def squared_gradient_mean(model, data, indices):
    """I_S by hand: backward() per batch of 128 in the given order, p.grad², mean over batches."""
    model.eval()
    total = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    starts = range(0, len(indices), SSD_BATCH_SIZE)
    for start in starts:
        batch = indices[start : start + SSD_BATCH_SIZE]
        model.zero_grad()
        F.cross_entropy(model(data.train_images[batch].float() / 255), data.train_labels[batch]).backward()
        for name, p in model.named_parameters():
            total[name] += p.grad**2
    return {name: value / len(starts) for name, value in total.items()}


@pytest.mark.parametrize("alpha,lam", [(10.0, 1.0), (3.0, 0.5)])
def test_ssd_dampens_exactly_the_selected_elements(digits, trained_state, alpha, lam):
    ctx = make_ctx(digits, "SSD", "--ssd_alpha", str(alpha), "--ssd_lambda", str(lam))
    model = run_method(trained_state, ctx)
    reference = original(trained_state)
    forget_imp = squared_gradient_mean(reference, digits, ctx.forget_indices)
    full_imp = squared_gradient_mean(reference, digits, np.concatenate([ctx.retain_indices, ctx.forget_indices]))
    selected_total = 0
    for name, after in model.named_parameters():
        before = dict(reference.named_parameters())[name].detach()
        selected = forget_imp[name] > alpha * full_imp[name]
        selected_total += int(selected.sum())
        assert torch.equal(after[~selected], before[~selected]), name  # bit-identical
        factor = torch.clamp(lam * full_imp[name][selected] / forget_imp[name][selected], max=1.0)
        torch.testing.assert_close(after[selected], before[selected] * factor, rtol=1e-5, atol=0)
        if name.endswith("weight_orig"):  # a pruned weight has no gradient, so it is never selected
            assert not selected[dict(model.named_buffers())[name.replace("orig", "mask")] == 0].any()
    total = sum(p.numel() for p in model.parameters())
    assert 0 < selected_total < 0.5 * total and ctx.stats["ssd_selected"] == selected_total
    moved = sum(int((a != b).sum()) for a, b in zip(model.parameters(), reference.parameters()))
    assert moved > 0.5 * selected_total  # most selected elements really shrink (factor < 1)
    for (name, a), b in zip(model.named_buffers(), reference.buffers(), strict=True):
        assert torch.equal(a, b), name  # BN running statistics and masks untouched: eval mode throughout
    assert_masks_hold(model, trained_state)


def test_ssd_is_deterministic(digits, trained_state):
    runs = [run_method(trained_state, make_ctx(digits, "SSD")) for _ in range(2)]
    assert_same_parameters(*runs)
    assert not torch.equal(runs[0][7].weight, original(trained_state)[7].weight)


# ----------------------------------------------------------------------------- main_forget.py

E2E_ARGS = {
    "SCRUB": ["--unlearn_epochs", "2", "--unlearn_lr", "0.01", "--scrub_forget_batch_size", "64"],
    "NegGrad+": ["--unlearn_epochs", "1", "--unlearn_lr", "0.01", "--neggrad_beta", "0.99"],
    "SSD": [],
}


@pytest.mark.parametrize("method", sorted(E2E_ARGS))
def test_main_forget_runs_each_from_a_mask_file(omp_dir, tmp_path, method):
    mask_file = omp_dir / "1model_SA_best.pth.tar"
    argv = ["--mask", str(mask_file), "--unlearn", method, "--save_dir", str(tmp_path), "--class_to_replace", "3"]
    results = main_forget.main([*ARCH, *argv, *E2E_ARGS[method]])
    saved = json.loads((tmp_path / f"{method}_eval.json").read_text())
    assert saved["method"] == method and saved["scenario"] == "class" and results["UA"] == saved["UA"]
    before = torch.load(mask_file, weights_only=True)["state_dict"]
    after = torch.load(tmp_path / f"{method}checkpoint.pth.tar", weights_only=True)["state_dict"]
    changed = 0
    for key, mask in pruner.extract_mask(before).items():
        orig = key.replace("weight_mask", "weight_orig")
        assert torch.equal(after[key], mask) and torch.all((after[orig] * mask)[mask == 0] == 0)
        changed += int((after[orig] != before[orig]).sum())
    assert changed > 0
