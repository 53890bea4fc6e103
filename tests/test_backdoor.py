"""Backdoor cleanse: trigger pixels, poisoning, ASR by hand, and main_backdoor.py end to end on digits."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import dataset
import main_backdoor
import pruner
import utils
from dataset import poisoning
from evaluation import attack
from experiments import backdoor_run
from experiments.experiment import build_model
from training.runtime import Runtime

CPU = Runtime(torch.device("cpu"), progress=False)
ARGS = [
    "--dataset",
    "digits",
    "--arch",
    "resnet20s",
    "--no-progress",
    "--device",
    "cpu",
    "--batch_size",
    "128",
    "--epochs",
    "2",
    "--lr",
    "0.05",
    "--decreasing_lr",
    "1",
    "--pruning_times",
    "2",
    "--rate",
    "0.5",
    "--trigger_value",
    "1",
    "--trigger_size",
    "2",
    "--num_indexes_to_replace",
    "60",
    "--unlearn_epochs",
    "1",
]


# ----------------------------------------------------------------------------- trigger and poisoning


@pytest.mark.parametrize("value,pixel", [(0.0, 0), (1.0, 255), (0.5, 128), (0.2, 51)])
def test_trigger_pixels_exact_on_a_known_image(value, pixel):
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.int64).remainder(200).add(20).to(torch.uint8)
    images = images.view(2, 3, 8, 8)
    kept = images.clone()
    out = poisoning.add_trigger(images, 2, value)
    assert torch.equal(images, kept)  # the input is not written to
    expected = kept.clone()
    expected[:, :, 4:6, 4:6] = pixel  # rows and columns [-2-2, -2) of an 8x8 image, every channel
    assert torch.equal(out, expected) and out.dtype == torch.uint8


def test_trigger_of_size_4_on_32x32_sits_two_pixels_in_from_the_corner():
    out = poisoning.add_trigger(torch.full((1, 3, 32, 32), 200, dtype=torch.uint8), 4, 0.0)
    rows, cols = torch.nonzero(out[0, 0] == 0, as_tuple=True)
    assert sorted(set(rows.tolist())) == [26, 27, 28, 29] and sorted(set(cols.tolist())) == [26, 27, 28, 29]
    assert int((out == 0).sum()) == 3 * 16


@pytest.mark.parametrize(
    "size,value,words",
    [(0, 1.0, "--trigger_size 0"), (7, 1.0, "use 1..6"), (2, 1.5, "--trigger_value 1.5"), (2, -0.1, "outside")],
)
def test_bad_triggers_are_refused(size, value, words):
    with pytest.raises(utils.UsageError, match=words.replace(".", r"\.")):
        poisoning.check_trigger(size, value, (1, 8, 8))
    poisoning.check_trigger(6, 1.0, (1, 8, 8))  # the largest that fits


@pytest.fixture(scope="module")
def clean_data():
    return dataset.build_data(dataset.load_raw("digits"))


def test_poisoning_changes_only_the_chosen_samples(clean_data):
    images_before, labels_before = clean_data.train_images.clone(), clean_data.train_labels.clone()
    poisoned = poisoning.choose_poisoned(clean_data.train_labels.numpy(), 100, seed=2)
    assert np.array_equal(poisoned, dataset.select_forget(clean_data.train_labels.numpy(), -1, 100, 2))
    assert len(poisoned) == len(np.unique(poisoned)) == 100
    data = poisoning.poison(clean_data, poisoned, 2, 1.0, target=3)
    assert torch.equal(clean_data.train_images, images_before) and torch.equal(clean_data.train_labels, labels_before)
    is_poisoned = torch.zeros(len(labels_before), dtype=torch.bool)
    is_poisoned[torch.from_numpy(poisoned)] = True
    assert int((data.train_labels == 3)[is_poisoned].sum()) == 100
    assert torch.equal(data.train_labels[~is_poisoned], labels_before[~is_poisoned])
    assert torch.equal(data.train_images[~is_poisoned], images_before[~is_poisoned])
    assert torch.all(data.train_images[is_poisoned][:, :, 4:6, 4:6] == 255)
    assert torch.equal(data.train_images[is_poisoned], poisoning.add_trigger(images_before[is_poisoned], 2, 1.0))
    assert data.test_images is clean_data.test_images and data.val_labels is clean_data.val_labels


class CornerDetector(nn.Module):
    """Predicts class 0 when pixel (0, 0) is bright and the trigger corner (5, 5) is white, else class 1."""

    def forward(self, x):
        fooled = (x[:, 0, 0, 0] > 0.5) & (x[:, 0, 5, 5] > 0.99)
        logits = torch.zeros(len(x), 3)
        logits[fooled, 0] = 1.0
        logits[~fooled, 1] = 1.0
        return logits


def test_asr_on_a_hand_made_case(clean_data):
    """4 test images, labels 0, 1, 2, 0; bright top-left on images 0, 1 and 3: those three fall for the trigger."""
    images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    images[[0, 1, 3], 0, 0, 0] = 255
    labels = torch.tensor([0, 1, 2, 0])
    data = dataclasses.replace(clean_data, test_images=images, test_labels=labels)
    metrics = attack.backdoor_metrics(CornerDetector(), data, 2, 1.0, target=0, runtime=CPU)
    assert metrics["ASR"] == pytest.approx(75.0)  # 3 of 4 predicted 0 with the trigger
    assert metrics["ASR_nontarget"] == pytest.approx(50.0)  # of the labels 1 and 2, image 1 is fooled
    assert metrics["SA"] == pytest.approx(25.0)  # clean: everything predicted 1, right only for image 1
    black = attack.backdoor_metrics(CornerDetector(), data, 2, 0.0, target=0, runtime=CPU)
    assert black["ASR"] == 0.0 and black["ASR_nontarget"] == 0.0
    rates = attack.attack_success_rate(torch.tensor([2, 2]), torch.tensor([2, 2]), target=2)
    assert rates["ASR"] == 100.0 and np.isnan(rates["ASR_nontarget"])


# ----------------------------------------------------------------------------- main_backdoor.py end to end


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("backdoor")
    results = main_backdoor.main([*ARGS, "--unlearn", "FT", "--save_dir", str(out)])
    return out, results


KEYS = [
    "SA_before",
    "ASR_before",
    "SA_after",
    "ASR_after",
    "ASR_nontarget_before",
    "ASR_nontarget_after",
    "remaining_weight_ratio",
    "poisoned_indices",
    "num_poisoned",
    "trigger_size",
    "trigger_value",
    "target_class",
    "RTE_min",
    "args",
]


def test_end_to_end_writes_results_and_models(first_run, clean_data):
    out, results = first_run
    saved = json.loads((out / "FT_backdoor.json").read_text())
    for key in KEYS:
        assert key in saved, key
    expected = dataset.select_forget(clean_data.train_labels.numpy(), -1, 60, 2)
    assert saved["poisoned_indices"] == expected.tolist() and saved["num_poisoned"] == 60
    assert saved["args"]["trigger_value"] == 1.0 and saved["target_class"] == 0
    for key in ["SA_before", "ASR_before", "SA_after", "ASR_after", "ASR_nontarget_before", "ASR_nontarget_after"]:
        assert 0 <= saved[key] <= 100
    final = out / "poisoned" / "1model_SA_best.pth.tar"
    assert saved["poisoned_model"] == str(final)
    checkpoint = torch.load(final, weights_only=True)
    assert checkpoint["backdoor"]["poisoned_indices"] == expected.tolist()
    assert checkpoint["backdoor"]["trigger_size"] == 2 and checkpoint["backdoor"]["target_class"] == 0
    masks = pruner.extract_mask(checkpoint["state_dict"])
    kept, total = sum(int(m.sum()) for m in masks.values()), sum(m.numel() for m in masks.values())
    assert kept == total - round(0.5 * total) and saved["remaining_weight_ratio"] == pytest.approx(kept / total)
    unlearned = torch.load(out / "FT_backdoor_model.pth.tar", weights_only=True)["state_dict"]
    for key, mask in masks.items():
        assert torch.equal(unlearned[key], mask)
    # ASR_before is the poisoned checkpoint's, measured independently here
    args = main_backdoor.make_parser().parse_args(ARGS)
    model = build_model(args, clean_data, seed=0)
    pruner.load_pruned_state(model, checkpoint["state_dict"])
    metrics = attack.backdoor_metrics(model, clean_data, 2, 1.0, 0, CPU)
    assert metrics["ASR"] == pytest.approx(saved["ASR_before"]) and metrics["SA"] == pytest.approx(saved["SA_before"])
    assert not (out / "FT_backdoor_progress.pth.tar").exists()


def test_second_method_reuses_the_poisoned_model(first_run, monkeypatch, capsys):
    out, first = first_run

    def no_training(*args, **kwargs):
        raise AssertionError("the poisoned model was trained again")

    monkeypatch.setattr(backdoor_run, "run_imp", no_training)
    raw = main_backdoor.main([*ARGS, "--unlearn", "raw", "--save_dir", str(out)])
    assert "reusing the poisoned model" in capsys.readouterr().out
    for key in ["SA", "ASR", "ASR_nontarget", "forget_acc"]:  # same θ_o, and raw leaves it as it is
        assert raw[f"{key}_before"] == first[f"{key}_before"] == raw[f"{key}_after"]
    sparse = main_backdoor.main([*ARGS, "--unlearn", "FT_prune", "--alpha", "1e-4", "--save_dir", str(out)])
    assert sparse["ASR_before"] == first["ASR_before"] and (out / "FT_prune_backdoor.json").is_file()
    assert (out / "FT_backdoor.json").is_file()  # the first method's results are kept


def test_mask_loads_the_dense_poisoned_model(first_run, tmp_path):
    out, _ = first_run
    dense = out / "poisoned" / "0model_SA_best.pth.tar"
    results = main_backdoor.main([*ARGS, "--unlearn", "FT", "--mask", str(dense), "--save_dir", str(tmp_path)])
    assert results["remaining_weight_ratio"] == 1.0 and results["poisoned_model"] == str(dense)
    assert not (tmp_path / "poisoned").exists()


def refused(argv, capsys, *words):
    with pytest.raises(SystemExit) as exit_info:
        utils.run_cli(main_backdoor.main, argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"


def without(argv, flag):
    at = argv.index(flag)
    return argv[:at] + argv[at + 2 :]


BAD = [
    (["--unlearn", "forget_all"], ["--unlearn 'forget_all'", "choose from"]),
    (["--arch", "resnet19"], ["--arch 'resnet19'", "choose from"]),
    (["--dataset", "mnist"], ["--dataset 'mnist'", "choose from"]),
    (["--num_indexes_to_replace", "0"], ["--num_indexes_to_replace 0", "how many"]),
    (["--num_indexes_to_replace", "1298"], ["--num_indexes_to_replace 1298", "at most 1297"]),
    (["--trigger_size", "0"], ["--trigger_size 0", "use 1..6"]),
    (["--trigger_size", "7"], ["--trigger_size 7", "8x8", "use 1..6"]),
    (["--trigger_value", "2"], ["--trigger_value 2.0", "outside [0, 1]"]),
    (["--class_to_replace", "10"], ["--class_to_replace 10", "0..9"]),
    (["--class_to_replace", "-1"], ["--class_to_replace -1", "target class"]),
    (["--mask", "{under_file}"], ["--mask", "folder", "cannot be created"]),
    (["--mask", "{foreign}"], ["not a checkpoint"]),
    (["--mask", "{clean}"], ["no backdoor record", "main_backdoor.py"]),
    (["--mask", "{dense}", "--trigger_size", "3"], ["--trigger_size 2, not 3"]),
    (["--mask", "{dense}", "--seed", "5"], ["other training samples", "--seed"]),
    (["--epochs", "0"], ["--epochs 0", "at least 1 epoch"]),
    (["--resume"], ["--resume", "nothing to resume"]),
]


@pytest.mark.parametrize("extra,words", BAD, ids=[" ".join(extra) for extra, _ in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(first_run, tmp_path, capsys, extra, words):
    out, _ = first_run
    files = {"under_file": tmp_path / "foreign.bin" / "m.pth.tar", "foreign": tmp_path / "foreign.bin"}
    files["foreign"].write_bytes(b"\x80\x04 not a torch file")
    files["dense"] = out / "poisoned" / "0model_SA_best.pth.tar"
    clean = torch.load(files["dense"], weights_only=True)
    del clean["backdoor"]
    files["clean"] = tmp_path / "clean.pth.tar"
    torch.save(clean, files["clean"])
    argv = [*ARGS, "--unlearn", "FT", "--save_dir", str(tmp_path / "out")]
    argv = argv if "--num_indexes_to_replace" not in extra else without(argv, "--num_indexes_to_replace")
    argv = argv if "--trigger_size" not in extra else without(argv, "--trigger_size")
    argv = [*argv, *(arg.format(**{k: str(v) for k, v in files.items()}) for arg in extra)]
    refused(argv, capsys, *words)
    assert not (tmp_path / "out").exists()


def test_missing_count_and_changed_training_arguments_are_refused(first_run, capsys):
    out, _ = first_run
    argv = [*ARGS, "--unlearn", "FT", "--save_dir", str(out)]
    refused(without(argv, "--num_indexes_to_replace"), capsys, "--num_indexes_to_replace None", "how many")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (out / "poisoned").iterdir())
    refused([*without(argv, "--epochs"), "--epochs", "3"], capsys, "--epochs is 2 there, 3 here", "another --save_dir")
    refused([*without(argv, "--trigger_size"), "--trigger_size", "1"], capsys, "--trigger_size 2, not 1")
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (out / "poisoned").iterdir()) == before


def test_resume_continues_an_interrupted_poisoned_training(first_run, tmp_path):
    """A run stopped after round 0 resumes with --resume and ends with the same poisoned model (CPU)."""
    out, first = first_run
    (tmp_path / "poisoned").mkdir()
    for name in ["0checkpoint.pth.tar", "0model_SA_best.pth.tar", "epoch_0_rewind_weight.pt", "args.json"]:
        shutil.copy(out / "poisoned" / name, tmp_path / "poisoned" / name)
    resumed = main_backdoor.main([*ARGS, "--unlearn", "raw", "--save_dir", str(tmp_path), "--resume"])
    a = torch.load(out / "poisoned" / "1model_SA_best.pth.tar", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "poisoned" / "1model_SA_best.pth.tar", weights_only=True)["state_dict"]
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert resumed["ASR_before"] == first["ASR_before"] and resumed["SA_before"] == first["SA_before"]


def test_a_fresh_mask_path_is_trained_and_saved_then_reused(first_run, tmp_path, capsys):
    """The original README's command with a --mask that does not exist yet: train, save there, then reuse."""
    out, first = first_run
    mask = tmp_path / "models" / "poisoned.pth.tar"
    trained = main_backdoor.main([*ARGS, "--unlearn", "raw", "--mask", str(mask), "--save_dir", str(tmp_path / "a")])
    log = capsys.readouterr().out
    assert "training the poisoned model" in log and f"saved the poisoned model at --mask {mask}" in log
    # the same poisoned model as a run without --mask (same seeds), now at the --mask path
    expected = torch.load(out / "poisoned" / "1model_SA_best.pth.tar", weights_only=True)
    saved = torch.load(mask, weights_only=True)
    assert all(torch.equal(expected["state_dict"][key], saved["state_dict"][key]) for key in expected["state_dict"])
    assert trained["ASR_before"] == first["ASR_before"]
    reused = main_backdoor.main([*ARGS, "--unlearn", "FT", "--mask", str(mask), "--save_dir", str(tmp_path / "b")])
    assert "training the poisoned model" not in capsys.readouterr().out
    assert not (tmp_path / "b" / "poisoned").exists()
    assert reused["ASR_before"] == first["ASR_before"] and reused["SA_before"] == first["SA_before"]


def test_the_script_refuses_in_a_real_process(tmp_path):
    """The original README's command on digits (4500 > |D| = 1298) and a bad --rate: one line, exit 2."""
    root = Path(__file__).resolve().parents[1]
    commands = [
        ["--dataset", "digits", "--save_dir", str(tmp_path / "a"), "--mask", str(tmp_path / "m.pth.tar")]
        + ["--unlearn", "FT", "--num_indexes_to_replace", "4500"],
        ["--dataset", "digits", "--save_dir", str(tmp_path / "b"), "--num_indexes_to_replace", "10", "--rate", "1"],
    ]
    processes = [
        subprocess.Popen([sys.executable, "main_backdoor.py", *argv], cwd=root, stderr=subprocess.PIPE, text=True)
        for argv in commands
    ]
    for process, words in zip(processes, [["--num_indexes_to_replace 4500", "at most 1297"], ["--rate 1.0"]]):
        err = process.communicate(timeout=120)[1]
        lines = err.strip().splitlines()
        assert process.returncode == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert all(word in lines[0] for word in words), lines[0]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
