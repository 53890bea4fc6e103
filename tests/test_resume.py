"""Crash and resume: SIGKILL a run, rerun it with --resume, get bit-identical results on the CPU.

Also: a resume that would mix two experiments is refused, and two runs with the same seeds agree.
"""

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ARCH, ENV, ROOT

import main_forget
import main_imp
import utils

# Keys that differ between two identical runs: timings, the command line and paths into the run folder.
TIMING = {"img_s", "seconds", "RTE_min", "elapsed", "written", "command", "args", "poisoned_model", "provenance"}


def start(script, argv):
    command = [sys.executable, script, *argv]
    return subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_at(script, argv, trigger) -> str:
    """Run the script and SIGKILL it as soon as it prints a line starting with ``trigger``; return its output."""
    process = start(script, argv)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith(trigger):
            process.send_signal(signal.SIGKILL)
            break
    process.stdout.close()
    process.wait(timeout=300)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed:\n" + "".join(lines)
    return "".join(lines)


def finish(process) -> str:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    return output


def assert_same(a, b, where=""):
    """Tensors bit-equal, numbers and strings equal, timings (and the command line) ignored."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        keys = set(a) - TIMING
        assert keys == set(b) - TIMING, where
        for key in keys:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{index}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_files(reference: Path, resumed: Path, names):
    for name in names:
        if name.endswith(".json"):
            assert_same(json.loads((reference / name).read_text()), json.loads((resumed / name).read_text()), name)
        else:
            assert_same(torch.load(reference / name, weights_only=True), torch.load(resumed / name, weights_only=True))


IMP_RUN = [*ARCH, "--epochs", "4", "--pruning_times", "2", "--rate", "0.5", "--lr", "0.05", "--decreasing_lr", "2,3"]
IMP_RUN += ["--rewind_epoch", "1", "--train_subset", "600"]  # 540 digits: each killed process is short


def test_main_imp_killed_three_times_and_resumed_equals_an_uninterrupted_run(tmp_path):
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    uninterrupted = start("main_imp.py", [*IMP_RUN, "--save_dir", str(reference)])  # runs alongside

    kill_at("main_imp.py", [*IMP_RUN, "--save_dir", str(resumed)], "round 1 epoch 2:")
    assert not (resumed / "imp_results.json").exists()
    output = kill_at("main_imp.py", [*IMP_RUN, "--save_dir", str(resumed), "--resume"], "round 1 done")
    assert "resuming round 1 at epoch" in output  # epoch 2 or 3: the kill races the end-of-epoch save
    output = kill_at("main_imp.py", [*IMP_RUN, "--save_dir", str(resumed), "--resume"], "round 2 epoch 2:")
    assert "resuming round" in output
    output = finish(start("main_imp.py", [*IMP_RUN, "--save_dir", str(resumed), "--resume"]))
    assert "resuming round 2 at epoch" in output
    finish(uninterrupted)

    names = ["imp_results.json", "0model_SA_best.pth.tar", "1model_SA_best.pth.tar", "1checkpoint.pth.tar"]
    assert_same_files(reference, resumed, [*names, "epoch_0_rewind_weight.pt", "epoch_1_rewind_weight.pt"])
    results = json.loads((resumed / "imp_results.json").read_text())
    assert [len(r["epochs"]) for r in results["rounds"]] == [4, 4]  # no epoch run twice or lost
    visible = [sorted(p.name for p in run.iterdir() if not p.name.startswith(".")) for run in (reference, resumed)]
    assert visible[0] == visible[1]  # a kill during a write may leave a hidden .{name}.*.tmp, nothing else


@pytest.mark.parametrize("method", ["FT", "retrain"])
def test_main_forget_killed_and_resumed_equals_an_uninterrupted_run(omp_dir, tmp_path, method):
    run = [*ARCH, "--mask", str(omp_dir / "1model_SA_best.pth.tar"), "--unlearn", method, "--unlearn_epochs", "4"]
    run += ["--decreasing_lr", "2", "--class_to_replace", "-1", "--num_indexes_to_replace", "100"]
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    uninterrupted = start("main_forget.py", [*run, "--save_dir", str(reference)])

    kill_at("main_forget.py", [*run, "--save_dir", str(resumed)], f"{method} epoch 2:")
    assert (resumed / f"{method}_progress.pth.tar").exists() and not (resumed / f"{method}_eval.json").exists()
    output = finish(start("main_forget.py", [*run, "--save_dir", str(resumed), "--resume"]))
    assert f"{method}: resuming at epoch" in output
    finish(uninterrupted)

    assert_same_files(reference, resumed, [f"{method}_eval.json", f"{method}checkpoint.pth.tar"])
    results = json.loads((resumed / f"{method}_eval.json").read_text())
    assert [entry["epoch"] for entry in results["unlearn_stats"]["epochs"]] == [0, 1, 2, 3]
    assert not (resumed / f"{method}_progress.pth.tar").exists()  # superseded by the finished checkpoint


# ----------------------------------------------------------------------------- refused resumes


def refused(main, argv, capsys, *words):
    with pytest.raises(SystemExit) as exit_info:
        utils.run_cli(main, argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"


def files_of(folder):
    return {path.name: path.read_bytes() for path in sorted(Path(folder).iterdir())}


OMP_ARGS = [*ARCH, "--epochs", "1", "--pruning_times", "2", "--rate", "0.5"]


@pytest.mark.parametrize(
    "change,name",
    [
        (["--lr", "0.05"], "--lr is 0.1 there, 0.05 here"),
        (["--rate", "0.6"], "--rate is 0.5 there, 0.6 here"),
        (["--seed", "3"], "--seed is 2 there, 3 here"),
        (["--arch", "resnet44s"], '--arch is "resnet20s" there, "resnet44s" here'),
        (["--prune_type", "lt"], '--prune_type is "rewind_lt" there, "lt" here'),
        (["--no-aug"], "--no_aug is false there, true here"),
    ],
)
def test_main_imp_resume_with_other_arguments_is_refused(omp_dir, tmp_path, capsys, change, name):
    run = tmp_path / "run"
    shutil.copytree(omp_dir, run)
    before = files_of(run)
    refused(main_imp.main, [*OMP_ARGS, "--save_dir", str(run), "--resume", *change], capsys, name, "--save_dir")
    assert files_of(run) == before  # args.json included: nothing is rewritten before the check


def test_main_imp_resume_from_a_file_that_is_not_a_resume_checkpoint_is_refused(omp_dir, tmp_path, capsys):
    argv = [*OMP_ARGS, "--save_dir", str(tmp_path / "run"), "--resume"]
    refused(main_imp.main, [*argv, "--checkpoint", str(omp_dir / "1model_SA_best.pth.tar")], capsys, "lacks")
    refused(main_imp.main, [*argv, "--checkpoint", str(tmp_path / "none.pth.tar")], capsys, "does not exist")
    assert not (tmp_path / "run").exists()


def test_main_imp_resume_of_a_finished_run_changes_no_result(omp_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(omp_dir, run)
    main_imp.main([*OMP_ARGS, "--save_dir", str(run), "--resume"])
    assert_same_files(omp_dir, run, ["imp_results.json", "1model_SA_best.pth.tar", "1checkpoint.pth.tar"])


@pytest.fixture
def finished_forget_run(omp_dir, tmp_path):
    argv = [*ARCH, "--mask", str(omp_dir / "1model_SA_best.pth.tar"), "--unlearn", "FT", "--unlearn_epochs", "1"]
    argv += ["--class_to_replace", "-1", "--num_indexes_to_replace", "20", "--save_dir", str(tmp_path / "run")]
    main_forget.main(argv)
    return argv, tmp_path / "run"


@pytest.mark.parametrize(
    "change,words",
    [
        (["--unlearn_lr", "0.02"], ["--unlearn_lr is 0.01 there, 0.02 here"]),
        (["--unlearn_epochs", "2"], ["--unlearn_epochs is 1 there, 2 here"]),
        (["--seed", "5"], ["--seed is 2 there, 5 here"]),
        (["--batch_size", "64"], ["--batch_size is 128 there, 64 here"]),
        (["--num_indexes_to_replace", "21"], ["--num_indexes_to_replace is 20 there, 21 here"]),
        (["--class_to_replace", "3"], ["--class_to_replace is -1 there, 3 here"]),
    ],
)
def test_main_forget_resume_with_other_arguments_is_refused(finished_forget_run, capsys, change, words):
    argv, run = finished_forget_run
    before = files_of(run)
    refused(main_forget.main, [*argv, "--resume", *change], capsys, "holds another experiment", *words)
    assert files_of(run) == before


def test_main_forget_resume_from_a_foreign_progress_file_is_refused(finished_forget_run, capsys):
    argv, run = finished_forget_run
    (run / "FTcheckpoint.pth.tar").unlink()
    torch.save({"epoch": 1, "state_dict": {}}, run / "FT_progress.pth.tar")  # loads, but is not our progress
    before = files_of(run)
    refused(main_forget.main, [*argv, "--resume"], capsys, "FT_progress.pth.tar", "lacks 'args'")
    assert files_of(run) == before


# ----------------------------------------------------------------------------- determinism


def test_same_seeds_give_identical_forget_sets_weights_and_metrics(omp_dir, tmp_path):
    base = [*ARCH, "--mask", str(omp_dir / "1model_SA_best.pth.tar"), "--unlearn", "FT", "--unlearn_epochs", "1"]
    base += ["--class_to_replace", "-1", "--num_indexes_to_replace", "50"]
    runs = [main_forget.main([*base, "--save_dir", str(tmp_path / name)]) for name in ("a", "b")]
    assert_same(runs[0], runs[1])
    assert_same_files(tmp_path / "a", tmp_path / "b", ["FT_eval.json", "FTcheckpoint.pth.tar"])
    other = main_forget.main([*base, "--save_dir", str(tmp_path / "c"), "--seed", "3"])
    assert other["forget_indices"] != runs[0]["forget_indices"] and other["RA"] != runs[0]["RA"]


def test_same_seeds_give_identical_masks_and_weights(tmp_path):
    argv = [*OMP_ARGS, "--random_prune", "--rewind_epoch", "1"]
    for name in ("a", "b"):
        main_imp.main([*argv, "--save_dir", str(tmp_path / name)])
    names = ["imp_results.json", "1model_SA_best.pth.tar", "1checkpoint.pth.tar", "epoch_1_rewind_weight.pt"]
    assert_same_files(tmp_path / "a", tmp_path / "b", names)
    main_imp.main([*argv, "--save_dir", str(tmp_path / "c"), "--seed", "3"])
    masks = [torch.load(tmp_path / n / "1model_SA_best.pth.tar", weights_only=True)["state_dict"] for n in "ac"]
    assert not torch.equal(masks[0]["net.conv1.weight_mask"], masks[1]["net.conv1.weight_mask"])


# ----------------------------------------------------------------------------- the other two scripts

SYNFLOW_RUN = [*ARCH, "--epochs", "3", "--pruning_times", "1", "--rate", "0.9", "--lr", "0.05", "--decreasing_lr", "2"]


def test_main_synflow_killed_and_resumed_equals_an_uninterrupted_run(tmp_path):
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    uninterrupted = start("main_synflow.py", [*SYNFLOW_RUN, "--save_dir", str(reference)])

    kill_at("main_synflow.py", [*SYNFLOW_RUN, "--save_dir", str(resumed)], "round 1 epoch 2:")
    assert not (resumed / "imp_results.json").exists()
    output = finish(start("main_synflow.py", [*SYNFLOW_RUN, "--save_dir", str(resumed), "--resume"]))
    assert "resuming round 1 at epoch" in output
    finish(uninterrupted)

    assert_same_files(reference, resumed, ["imp_results.json", "0model_SA_best.pth.tar", "0checkpoint.pth.tar"])
    assert [len(r["epochs"]) for r in json.loads((resumed / "imp_results.json").read_text())["rounds"]] == [3]


BACKDOOR_RUN = [*ARCH, "--epochs", "3", "--pruning_times", "2", "--rate", "0.5", "--rewind_epoch", "1"]
BACKDOOR_RUN += ["--lr", "0.05", "--decreasing_lr", "2", "--trigger_value", "1", "--trigger_size", "3", "--no-aug"]
BACKDOOR_RUN += ["--num_indexes_to_replace", "60", "--unlearn", "FT", "--unlearn_epochs", "3", "--unlearn_lr", "0.01"]


def test_main_backdoor_killed_in_training_and_in_unlearning_then_resumed_equals_an_uninterrupted_run(tmp_path):
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    uninterrupted = start("main_backdoor.py", [*BACKDOOR_RUN, "--save_dir", str(reference)])

    kill_at("main_backdoor.py", [*BACKDOOR_RUN, "--save_dir", str(resumed)], "round 2 epoch 2:")
    output = kill_at("main_backdoor.py", [*BACKDOOR_RUN, "--save_dir", str(resumed), "--resume"], "FT epoch 2:")
    assert "resuming round 2 at epoch" in output
    assert not (resumed / "FT_backdoor.json").exists()
    output = finish(start("main_backdoor.py", [*BACKDOOR_RUN, "--save_dir", str(resumed), "--resume"]))
    assert "FT: resuming at epoch" in output
    finish(uninterrupted)

    assert_same_files(reference, resumed, ["FT_backdoor.json", "FT_backdoor_model.pth.tar"])
    assert_same_files(
        reference / "poisoned", resumed / "poisoned", ["0model_SA_best.pth.tar", "1model_SA_best.pth.tar"]
    )
    results = json.loads((resumed / "FT_backdoor.json").read_text())
    assert [entry["epoch"] for entry in results["unlearn_stats"]["epochs"]] == [0, 1, 2]
