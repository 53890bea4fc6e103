"""RL, SalUn, BE and BS on a tiny pruned digits model: objectives, masks, determinism, resume, files."""

import argparse
import copy
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import dataset
import main_forget
import pruner
import unlearn
from experiments import run_identity, unlearning_files, unlearning_run
from models import Classifier
from models.normalize import Normalize
from training.runtime import Runtime
from training.trainer import make_optimizer, train_epoch
from unlearn import rl, salun
from unlearn.boundary_shrink import nearest_wrong_class
from unlearn.context import UnlearnContext
from unlearn.loop import TwoPasses

METHODS = ("RL", "SalUn", "boundary_expanding", "boundary_shrink")
CPU = Runtime(torch.device("cpu"), progress=False)


class TinyNet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1, self.bn = nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 2 * 2, classes)

    def forward(self, x):  # 8x8 digits: two conv + max-pool stages, then the head on a 2x2 map
        x = F.max_pool2d(F.relu(self.bn(self.conv1(x))), 2)
        return self.fc(F.max_pool2d(F.relu(self.conv2(x)), 2).flatten(1))


@pytest.fixture(scope="module")
def data():
    return dataset.build_data(dataset.load_raw("digits"), split_seed=1)


@pytest.fixture(scope="module")
def trained(data):
    """θ_o: a tiny net trained on digits, then half its conv weights pruned."""
    torch.manual_seed(0)
    model = Classifier(Normalize(data.mean, data.std), TinyNet())
    optimizer = make_optimizer(model, 0.05)
    batches = data.train_batches(batch_size=32, augment=False, seed=0)
    for epoch in range(6):
        batches.set_epoch(epoch)
        train_epoch(model, batches, optimizer, CPU, epoch=epoch)
        if epoch == 3:
            pruner.global_prune(model, 0.5)  # the last two epochs fine-tune under the mask
    return model


def make_ctx(data, tmp_path, method, epochs=2, seed=2, **extra):
    labels = data.train_labels.numpy()
    forget = np.where(labels == 3)[0][:40]  # forget 40 threes; 200 others are the retain set
    retain = np.setdiff1d(np.arange(len(labels)), forget)[:200]
    args = argparse.Namespace(
        **{"dataset": "digits", "arch": "tiny", "mask": "m", "unlearn": method, "alpha": 0.0, "no_l1_epochs": 0},
        **{"train_seed": 1, "split_seed": 1, "train_subset": None, "resume": False, "save_dir": str(tmp_path)},
        seed=seed,
        batch_size=16,
        no_aug=False,
        unlearn_lr=0.02,
        unlearn_epochs=epochs,
        momentum=0.9,
        weight_decay=5e-4,
        decreasing_lr="91,136",
        warmup=0,
        saliency_ratio=0.5,
        saliency_end="largest",
    )
    args.__dict__.update(extra)
    tmp_path.mkdir(parents=True, exist_ok=True)
    return UnlearnContext.build(data, forget, args, CPU, method, retain_indices=retain, log=lambda line: None)


def run(trained, data, tmp_path, method, **extra):
    model, ctx = copy.deepcopy(trained), make_ctx(data, tmp_path, method, **extra)
    artefacts = unlearn.get_method(method).fn(model, ctx)
    unlearning_files.save_artefacts(tmp_path, method, artefacts or {})  # as the run layer does
    pruner.refresh_weights(model)
    return model, ctx


def forget_ce_and_acc(model, data, ctx):
    model.eval()
    indices = torch.as_tensor(ctx.forget_indices)
    with torch.no_grad():
        logits = model(data.train_images[indices].float() / 255)
    labels = data.train_labels[indices]
    return F.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()


# ----------------------------------------------------------------------------- every method


@pytest.mark.parametrize("method", METHODS)
def test_each_method_forgets_keeps_pruned_zeros_and_is_deterministic(trained, data, tmp_path, method):
    ce_before, acc_before = forget_ce_and_acc(trained, data, make_ctx(data, tmp_path, method))
    model, ctx = run(trained, data, tmp_path, method)
    again, _ = run(trained, data, tmp_path / "again", method)
    ce_after, acc_after = forget_ce_and_acc(model, data, ctx)
    assert acc_before > 0.9
    if method == "boundary_expanding":  # D_f went into the shadow class, now removed
        assert acc_after < 0.2
        assert model.head.out_features == 10 and model.head.weight.shape == (10, 128)
    else:  # the forget loss on the true labels goes up
        assert ce_after > ce_before + 2.0
    for _, conv in pruner.prunable_modules(model):
        assert torch.equal(conv.weight[conv.weight_mask == 0], torch.zeros_like(conv.weight[conv.weight_mask == 0]))
        assert int((conv.weight_mask == 0).sum()) > 0
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("method", METHODS)
def test_a_run_resumed_after_an_epoch_matches_an_uninterrupted_one(trained, data, tmp_path, method, monkeypatch):
    class Stop(Exception):
        pass

    save = unlearning_files.save_progress

    def save_then_stop(path, state, *rest):
        save(path, state, *rest)
        if state["epoch"] == 1:
            raise Stop

    whole, _ = run(trained, data, tmp_path / "whole", method)
    progress = tmp_path / "progress.pth.tar"
    monkeypatch.setattr(unlearning_files, "save_progress", save_then_stop)
    with pytest.raises(Stop):
        ctx = make_ctx(data, tmp_path, method)
        identity = run_identity.of_args(run_identity.UNLEARNING, ctx.args)
        unlearning_run.run_unlearning(copy.deepcopy(trained), unlearn.get_method(method), ctx, progress, identity)
    monkeypatch.setattr(unlearning_files, "save_progress", save)
    resumed = copy.deepcopy(trained)
    ctx = make_ctx(data, tmp_path, method, resume=True)
    unlearning_run.run_unlearning(resumed, unlearn.get_method(method), ctx, progress, identity)
    assert [entry["epoch"] for entry in ctx.stats["epochs"]] == [0, 1]
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


# ----------------------------------------------------------------------------- RL


def test_random_labels_are_uniform_may_equal_the_truth_and_depend_on_seed_epoch_batch():
    draws = rl.random_labels(10_000, 10, seed=2, epoch=0, batch=0, device="cpu")
    counts = torch.bincount(draws, minlength=10)
    assert counts.min() > 900 and counts.max() < 1100  # every class, the true one included, ~1/10
    assert torch.equal(draws, rl.random_labels(10_000, 10, 2, 0, 0, "cpu"))
    assert not torch.equal(draws, rl.random_labels(10_000, 10, 2, 0, 1, "cpu"))
    assert not torch.equal(draws, rl.random_labels(10_000, 10, 2, 1, 0, "cpu"))


@pytest.mark.parametrize("name", ["digits", "cifar100"])
def test_rl_epoch_layout_per_dataset_and_mid_epoch_replay(data, tmp_path, name):
    ctx = make_ctx(data, tmp_path, "RL", dataset=name)
    batches = rl.random_label_batches(ctx)
    assert isinstance(batches, rl.Mixed if name == "cifar100" else TwoPasses)
    batches.set_epoch(3)
    full = list(batches.iterate_from(0))
    assert len(full) == len(batches) == (40 + 200 + 15) // 16 if name == "cifar100" else 3 + 13
    for first in (1, 3, 7):
        for (images, labels), (images_b, labels_b) in zip(full[first:], batches.iterate_from(first)):
            assert torch.equal(images, images_b) and torch.equal(labels, labels_b)
    if name == "digits":  # D_f's 3 batches first, with random labels; then D_r with its own
        forget_labels = torch.cat([labels for _, labels in full[:3]])
        assert len(forget_labels) == 40 and (forget_labels != 3).sum() > 20
        retain_labels = torch.cat([labels for _, labels in full[3:]]).sort().values
        assert torch.equal(retain_labels, data.train_labels[torch.as_tensor(ctx.retain_indices)].sort().values)


# ----------------------------------------------------------------------------- SalUn


def test_the_saliency_mask_keeps_the_largest_fraction():
    saliency = {"a": torch.tensor([[0.1, 5.0], [3.0, 0.0]]), "b": torch.tensor([4.0, 0.2, 2.0])}
    mask = salun.top_fraction_mask(saliency, 0.5)  # 3 of 7: 5, 4, 3
    assert torch.equal(mask["a"], torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    assert torch.equal(mask["b"], torch.tensor([1.0, 0.0, 0.0]))
    # the reference's rank test keeps the other end: 0, 0.1, 0.2
    mask = salun.top_fraction_mask(saliency, 0.5, largest=False)
    assert torch.equal(mask["a"], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert torch.equal(mask["b"], torch.tensor([0.0, 1.0, 0.0]))


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.9])
def test_salun_masks_the_requested_fraction_and_only_salient_weights_move(trained, data, tmp_path, ratio):
    model, ctx = run(trained, data, tmp_path, "SalUn", saliency_ratio=ratio)
    saved = torch.load(tmp_path / "SalUn_saliency_mask.pth.tar", weights_only=True)
    assert list(saved) == [name for name, _ in trained.named_parameters()]  # every parameter, BN and head too
    total = sum(m.numel() for m in saved.values())
    kept = sum(int(m.sum()) for m in saved.values())
    assert abs(kept - ratio * total) <= 1 and ctx.stats["salient_weights"] == {"kept": kept, "total": total}
    before, after = dict(trained.named_parameters()), dict(model.named_parameters())
    for name, keep in saved.items():
        still = keep == 0
        assert torch.equal(after[name][still], before[name][still]), name  # no weight decay, no momentum
    moved = sum(int((after[n] != before[n])[saved[n] == 1].sum()) for n in saved)
    assert moved > 0.5 * kept


def test_masking_zeroes_the_gradient_of_non_salient_weights(trained, data, tmp_path):
    model = copy.deepcopy(trained)
    ctx = make_ctx(data, tmp_path, "SalUn")
    mask = salun.prepare(model, ctx)
    holder = salun.SalientOnly(model, mask)
    images, labels = next(iter(ctx.batches("forget")))
    model.train()
    F.cross_entropy(model(images), labels).backward()
    holder.mask_gradients()
    for name, param in model.named_parameters():
        assert torch.all(param.grad[mask[name] == 0] == 0), name
        assert param.grad[mask[name] == 1].abs().sum() > 0, name


def test_the_saliency_ratio_flag_refuses_a_fraction_out_of_range():
    parser = main_forget.make_parser()
    assert parser.parse_args(["--saliency_ratio", "0.3"]).saliency_ratio == 0.3
    with pytest.raises(SystemExit):
        parser.parse_args(["--saliency_ratio", "1.5"])


# ----------------------------------------------------------------------------- BS


def test_bs_labels_are_the_prediction_on_the_fgsm_image(trained, data):
    original = copy.deepcopy(trained).eval()
    images = data.train_images[:64].float() / 255
    labels = data.train_labels[:64]
    targets = nearest_wrong_class(original, images, labels)
    assert (targets != labels).float().mean() > 0.3  # ε = 0.1 moves most digits across a boundary
    assert nearest_wrong_class(original, images, labels, epsilon=0.0).eq(labels).float().mean() > 0.9


# ----------------------------------------------------------------------------- main_forget.py end to end


@pytest.mark.parametrize("method", METHODS)
def test_main_forget_runs_each_method_from_a_mask_file(omp_dir, tmp_path, method):
    args = ["--dataset", "digits", "--arch", "resnet20s", "--no-progress", "--device", "cpu", "--batch_size", "128"]
    main_forget.main(
        [*args, "--mask", str(omp_dir / "1model_SA_best.pth.tar"), "--unlearn", method, "--save_dir", str(tmp_path)]
        + ["--unlearn_epochs", "1", "--num_indexes_to_replace", "50"]
    )
    results = json.loads((tmp_path / f"{method}_eval.json").read_text())
    assert 0 <= results["UA"] <= 100 and 0 <= results["RA"] <= 100
    state = torch.load(tmp_path / f"{method}checkpoint.pth.tar", weights_only=True)["state_dict"]
    assert state["net.fc.weight"].shape[0] == 10
    if method == "SalUn":
        mask = torch.load(tmp_path / "SalUn_saliency_mask.pth.tar", weights_only=True)
        assert set(mask) <= set(state) and "net.fc.weight" in mask
        assert any(key.endswith("weight_orig") for key in mask) and any(".bn" in key for key in mask)
