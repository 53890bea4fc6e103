"""main_forget.py end to end on digits: every registered method, the results file, resume, RTE."""

import dataclasses
import json
import shlex
import time

import numpy as np
import pytest
import torch

import main_forget
import main_imp
import pruner
import unlearn
from experiments import experiment, training_files, unlearning_run

ARCH = ["--dataset", "digits", "--arch", "resnet20s", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("omp")
    main_imp.main(
        [
            *ARCH,
            "--epochs",
            "3",
            "--lr",
            "0.05",
            "--decreasing_lr",
            "2",
            "--batch_size",
            "128",
            "--rewind_epoch",
            "1",
            "--rate",
            "0.8",
            "--pruning_times",
            "2",
            "--save_dir",
            str(out),
        ]
    )
    return out / "1model_SA_best.pth.tar"


def state_of(path):
    return torch.load(path, weights_only=True)["state_dict"]


def run(checkpoint, out, method, *extra):
    return main_forget.main(
        [
            *ARCH,
            "--mask",
            str(checkpoint),
            "--unlearn",
            method,
            "--save_dir",
            str(out),
            "--batch_size",
            "128",
            *shlex.split(unlearn.get_method(method).test_args),  # its registry entry's fast arguments
            *extra,
        ]
    )


@pytest.mark.parametrize("method", sorted(unlearn.METHODS))
def test_every_method_runs_and_keeps_masks(checkpoint, tmp_path, method):
    results = run(checkpoint, tmp_path, method, "--class_to_replace", "-1", "--num_indexes_to_replace", "40")
    saved = json.loads((tmp_path / f"{method}_eval.json").read_text())
    for key in [
        "method",
        "scenario",
        "class_to_replace",
        "num_forget",
        "forget_indices",
        "remaining_weight_ratio",
        "seed",
        "split_seed",
        "UA",
        "RA",
        "TA",
        "MIA_efficacy",
        "RTE_min",
        "accuracy",
        "SVC_MIA_forget_efficacy",
        "SVC_MIA_training_privacy",
        "args",
    ]:
        assert key in saved, key
    assert saved["scenario"] == "random" and saved["num_forget"] == 40 and len(saved["forget_indices"]) == 40
    assert set(saved["SVC_MIA_forget_efficacy"]) == {"correctness", "confidence", "entropy", "m_entropy", "prob"}
    for value in [saved["UA"], saved["RA"], saved["TA"], saved["MIA_efficacy"]]:
        assert 0 <= value <= 100
    assert saved["UA"] == pytest.approx(100 - saved["accuracy"]["forget"])
    assert results["MIA_efficacy"] == saved["SVC_MIA_forget_efficacy"]["confidence"]
    before, after = state_of(checkpoint), state_of(tmp_path / f"{method}checkpoint.pth.tar")
    masks = pruner.extract_mask(before)
    for key, mask in masks.items():
        if method == "FT_prune_bi":  # prunes further: it keeps a subset of what the mask kept
            assert torch.all(after[key] <= mask) and after[key].sum() < mask.sum(), key
            mask = after[key]
        else:
            assert torch.equal(after[key], mask), f"{method} changed the mask {key}"
        orig = key.replace("weight_mask", "weight_orig")
        assert torch.all((after[orig] * mask)[mask == 0] == 0)
    masks = pruner.extract_mask(after)  # what the unlearned model keeps
    assert saved["remaining_weight_ratio"] == pytest.approx(
        sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
    )
    changed = any(not torch.equal(before[k], after[k]) for k in before if k.endswith("weight_orig"))
    assert changed == (method != "raw")


@pytest.mark.parametrize("method", ["retrain", "retrain_ls", "retrain_sam"])  # the original loads θ_o for no other
def test_retrain_starts_fresh_under_the_mask(checkpoint, tmp_path, method):
    args = main_forget.make_parser().parse_args([*ARCH, "--mask", str(checkpoint), "--unlearn", method])
    import dataset

    data = dataset.load_data(args)
    state_dict, _ = training_files.load_mask_file(checkpoint, args)
    runtime = experiment.make_runtime(args)
    fresh = unlearning_run.prepare_model(args, data, unlearn.get_method(method), state_dict, runtime).state_dict()
    loaded = unlearning_run.prepare_model(args, data, unlearn.get_method("FT"), state_dict, runtime).state_dict()
    for key in state_dict:
        if key.endswith("weight_mask"):
            assert torch.equal(fresh[key], state_dict[key])
        elif key.endswith("weight_orig"):
            assert torch.equal(loaded[key], state_dict[key]) and not torch.equal(fresh[key], state_dict[key])
    args.train_seed = 5
    other = unlearning_run.prepare_model(args, data, unlearn.get_method(method), state_dict, runtime).state_dict()
    assert not torch.equal(other["net.conv1.weight_orig"], fresh["net.conv1.weight_orig"])


def test_class_wise_forgetting_drops_class_from_test(checkpoint, tmp_path):
    saved = run(checkpoint, tmp_path, "raw", "--class_to_replace", "3")
    assert saved["scenario"] == "class" and saved["whole_class"] is True
    import dataset

    data = dataset.load_data(main_forget.make_parser().parse_args(ARCH))
    labels = data.train_labels.numpy()
    assert sorted(saved["forget_indices"]) == np.flatnonzero(labels == 3).tolist()
    # TA is measured without class 3: compare with the accuracy on all test samples but class 3
    assert saved["accuracy"]["test"] == pytest.approx(saved["TA"])


def test_rte_excludes_evaluation(checkpoint, tmp_path, monkeypatch):
    real = unlearning_run.evaluate

    def slow_evaluate(*args, **kwargs):
        time.sleep(3)
        return real(*args, **kwargs)

    monkeypatch.setattr(unlearning_run, "evaluate", slow_evaluate)
    started = time.perf_counter()
    saved = run(checkpoint, tmp_path, "raw")
    assert time.perf_counter() - started > 3
    assert saved["RTE_min"] * 60 < 1.0


def test_resume_reuses_finished_unlearning(checkpoint, tmp_path, monkeypatch):
    first = run(checkpoint, tmp_path, "GA")
    calls = []
    never_run = dataclasses.replace(unlearn.METHODS["GA"], fn=lambda model, ctx: calls.append(1))
    monkeypatch.setitem(unlearn.METHODS, "GA", never_run)
    second = run(checkpoint, tmp_path, "GA", "--resume")
    assert calls == []
    for key in ["UA", "RA", "TA", "MIA_efficacy", "RTE_min"]:
        assert second[key] == first[key]
