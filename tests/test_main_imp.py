"""main_imp.py end to end on digits with a small model and a couple of epochs."""

import json
import sys

import pytest
import torch
from conftest import ARCH

import main_imp
import pruner

BASE = [
    "--dataset",
    "digits",
    "--arch",
    "resnet20s",
    "--epochs",
    "2",
    "--batch_size",
    "128",
    "--lr",
    "0.05",
    "--decreasing_lr",
    "1",
    "--no-progress",
    "--device",
    "cpu",
]


@pytest.fixture(scope="module")
def omp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("omp")
    main_imp.main(
        [
            *BASE,
            "--prune_type",
            "rewind_lt",
            "--rewind_epoch",
            "1",
            "--rate",
            "0.9",
            "--pruning_times",
            "2",
            "--save_dir",
            str(out),
        ]
    )
    return out


def test_outputs_and_sparsity(omp_run):
    for name in [
        "0checkpoint.pth.tar",
        "1checkpoint.pth.tar",
        "0model_SA_best.pth.tar",
        "1model_SA_best.pth.tar",
        "epoch_0_rewind_weight.pt",
        "epoch_1_rewind_weight.pt",
        "args.json",
        "imp_results.json",
    ]:
        assert (omp_run / name).is_file(), name
    results = json.loads((omp_run / "imp_results.json").read_text())
    assert [r["round"] for r in results["rounds"]] == [0, 1]
    assert results["rounds"][0]["remaining_weight_ratio"] == 1.0
    best = torch.load(omp_run / "1model_SA_best.pth.tar", weights_only=True)
    masks = pruner.extract_mask(best["state_dict"])
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    assert kept == total - round(0.9 * total)
    assert results["rounds"][1]["remaining_weight_ratio"] == pytest.approx(kept / total)
    assert best["arch"] == "resnet20s" and best["dataset"] == "digits"
    dense = torch.load(omp_run / "0model_SA_best.pth.tar", weights_only=True)
    assert not any(key.endswith("weight_mask") for key in dense["state_dict"])


def test_rewind_lt_rewinds_surviving_weights(omp_run):
    """Round 1 starts from the epoch-1 weights of round 0 under the new mask."""
    rewind = torch.load(omp_run / "epoch_1_rewind_weight.pt", weights_only=True)
    best = torch.load(omp_run / "1model_SA_best.pth.tar", weights_only=True)["state_dict"]
    # every weight_orig started at the rewind value; training moved them, but a pruned entry keeps
    # getting only weight decay, so its sign never flips: check the masks cover the conv weights
    for key, mask in pruner.extract_mask(best).items():
        assert mask.shape == rewind[key[: -len("_mask")]].shape


def test_resume_after_finished_round_matches(omp_run, tmp_path):
    """Resuming from round 1's epoch-0 checkpoint reproduces round 1 exactly on the CPU."""
    import shutil

    for name in [
        "0checkpoint.pth.tar",
        "0model_SA_best.pth.tar",
        "epoch_0_rewind_weight.pt",
        "epoch_1_rewind_weight.pt",
        "args.json",
    ]:
        shutil.copy(omp_run / name, tmp_path / name)
    main_imp.main(
        [
            *BASE,
            "--prune_type",
            "rewind_lt",
            "--rewind_epoch",
            "1",
            "--rate",
            "0.9",
            "--pruning_times",
            "2",
            "--save_dir",
            str(tmp_path),
            "--resume",
        ]
    )
    a = torch.load(omp_run / "1model_SA_best.pth.tar", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "1model_SA_best.pth.tar", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_every_result_file_records_its_provenance(omp_dir, tmp_path):
    """imp_results.json and M_eval.json: commit, versions, resolved device, threads, host, times, quoted command."""
    import shlex

    import main_forget

    mask = omp_dir / "1model_SA_best.pth.tar"
    main_forget.main(
        [*ARCH, "--mask", str(mask), "--unlearn", "GA", "--unlearn_epochs", "1", "--save_dir", str(tmp_path)]
    )
    for path in (omp_dir / "imp_results.json", tmp_path / "GA_eval.json"):
        record = json.loads(path.read_text())
        made = record["provenance"]
        assert made["device"] == "cpu" and made["threads"] == 1 and made["host"]
        assert made["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and made["device_name"]
        assert set(made["packages"]) == {"torch", "torchvision", "numpy", "scikit-learn", "scipy", "optuna"}
        assert torch.__version__.startswith(made["packages"]["torch"])
        assert made["started_utc"] <= made["finished_utc"] and made["finished_utc"].endswith("Z")
        assert shlex.split(made["command"])[0] == sys.executable and record["command"] == made["command"]
        assert (made["git_commit"] is None) == (made["git_dirty"] is None)
        assert made["git_commit"] is None or len(made["git_commit"]) == 40


def test_a_run_keeps_its_log_its_epochs_and_each_rounds_curve(omp_dir, tmp_path):
    log = (omp_dir / "log.txt").read_text().splitlines()
    assert log[0].startswith("digits: ") and any(line.startswith("round 1 done") for line in log)
    epochs = [json.loads(line) for line in (omp_dir / "epochs.jsonl").read_text().splitlines()]
    assert [(e["round"], e["epoch"]) for e in epochs] == [(0, 0), (1, 0)]
    assert {"train_loss", "train_acc", "val_acc", "lr"} <= set(epochs[0])
    for k in (0, 1):
        assert (omp_dir / f"{k}net_train.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import main_forget

    mask = omp_dir / "1model_SA_best.pth.tar"
    argv = [*ARCH, "--mask", str(mask), "--unlearn", "FT", "--unlearn_epochs", "2", "--save_dir", str(tmp_path)]
    main_forget.main(argv)
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert lines[0].startswith("scenario: ") and lines[-1].startswith("FT: UA ")
    assert [json.loads(line)["epoch"] for line in (tmp_path / "FT_epochs.jsonl").read_text().splitlines()] == [0, 1]


def test_a_log_txt_that_already_receives_the_output_is_not_written_twice(omp_dir, tmp_path):
    """scripts/sweep.py and main_audit.py send a run's output into its log.txt: the run then adds nothing."""
    import subprocess

    from conftest import ENV, ROOT

    tmp_path.mkdir(exist_ok=True)
    mask = omp_dir / "1model_SA_best.pth.tar"
    argv = [*ARCH, "--mask", str(mask), "--unlearn", "GA", "--unlearn_epochs", "1", "--save_dir", str(tmp_path)]
    with open(tmp_path / "log.txt", "a") as handle:
        handle.write("=== header\n")
        handle.flush()
        code = subprocess.call([sys.executable, "main_forget.py", *argv], cwd=ROOT, env=ENV, stdout=handle)
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert code == 0 and lines[0] == "=== header"
    assert sum(line.startswith("scenario: ") for line in lines) == 1 and lines[-1].startswith("GA: UA ")
