"""Failures met in sweeps, each answered with one line, an exit status and intact files:
divergence (3), a full disk (2), SIGTERM mid-epoch (143, then --resume bit-equal), two writers (2)."""

import errno
import json
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ARCH, ENV, ROOT
from test_resume import assert_same_files, finish, start

import main_forget
import main_imp
import utils
from reporting import document


@pytest.fixture(scope="module")
def mask(omp_dir):
    return omp_dir / "1model_SA_best.pth.tar"


def cli(main, argv, capsys):
    """Run a script's command line in-process: (exit status, stderr lines)."""
    with pytest.raises(SystemExit) as done:
        utils.run_cli(main, argv)
        raise SystemExit(0)
    return done.value.code, capsys.readouterr().err.strip().splitlines()


def forget_args(mask, out, method, *extra):
    return [*ARCH, "--mask", str(mask), "--unlearn", method, "--save_dir", str(out), *extra]


# ----------------------------------------------------------------------------- divergence


def test_diverging_unlearning_writes_marked_results_and_exits_3(mask, tmp_path, capsys):
    out = tmp_path / "ga"
    argv = forget_args(mask, out, "GA", "--unlearn_lr", "1000", "--unlearn_epochs", "5", "--class_to_replace", "-1")
    status, err = cli(main_forget.main, [*argv, "--num_indexes_to_replace", "100"], capsys)
    assert status == 3 and len(err) == 1, err
    assert "GA diverged at epoch" in err[0] and "learning rate 1000" in err[0] and "smaller --unlearn_lr" in err[0]
    results = json.loads((out / "GA_eval.json").read_text())
    assert results["diverged"] is True and results["diverged_at"]["lr"] == 1000
    assert results["MIA_efficacy"] is None and results["SVC_MIA_forget_efficacy"] is None
    assert not (out / "GA_progress.pth.tar").exists() and (out / "GAcheckpoint.pth.tar").exists()
    # --resume reuses the finished (diverged) run: same line, same status, nothing recomputed
    status, err2 = cli(main_forget.main, [*argv, "--num_indexes_to_replace", "100", "--resume"], capsys)
    assert status == 3 and err2 == err
    # the report lists it under the problems and averages nothing from it
    built = document.build_report([str(out)], tmp_path / "report")
    assert "GA diverged at epoch" in built["text"] and "left out of the means" in built["text"]
    assert built["rows"] == []


def test_fisher_forgetting_with_huge_alpha_diverges_on_the_weights(mask, tmp_path, capsys):
    out = tmp_path / "ff"
    status, err = cli(main_forget.main, forget_args(mask, out, "fisher_new", "--alpha", "1e300", "--no-aug"), capsys)
    assert status == 3 and len(err) == 1 and "fisher_new diverged" in err[0] and "smaller --alpha" in err[0]
    results = json.loads((out / "fisher_new_eval.json").read_text())
    assert results["diverged"] and results["UA"] is None and results["accuracy"] is None


def test_finite_weights_whose_outputs_overflow_are_a_divergence_not_a_traceback(mask, tmp_path, capsys):
    """A huge gradient-ascent step can leave finite weights whose logits overflow: the attack would get NaN
    features; the run is diverged instead (exit 3, results written and marked)."""
    saved = torch.load(mask, weights_only=True)
    saved["state_dict"]["net.fc.weight"] = torch.full_like(saved["state_dict"]["net.fc.weight"], 3e38)
    torch.save(saved, tmp_path / "overflowing.pth.tar")
    out = tmp_path / "raw"
    status, err = cli(main_forget.main, forget_args(tmp_path / "overflowing.pth.tar", out, "raw"), capsys)
    assert status == 3 and len(err) == 1 and "the model's outputs on" in err[0] and "diverged" in err[0]
    assert "Traceback" not in err[0]
    results = json.loads((out / "raw_eval.json").read_text())
    assert results["diverged"] and results["MIA_efficacy"] is None and results["accuracy"] is None


def test_diverging_training_is_recorded_and_exits_3(tmp_path, capsys):
    out = tmp_path / "imp"
    argv = [*ARCH, "--epochs", "3", "--lr", "1e6", "--pruning_times", "1", "--save_dir", str(out)]
    status, err = cli(main_imp.main, argv, capsys)
    assert status == 3 and len(err) == 1 and "round 1 epoch" in err[0] and "smaller --lr" in err[0]
    assert json.loads((out / "imp_results.json").read_text())["diverged"] is True


# ----------------------------------------------------------------------------- full disk


def test_full_disk_is_one_line_exit_2_and_resume_continues(mask, tmp_path, capsys, monkeypatch):
    argv = ["--unlearn_epochs", "3", "--class_to_replace", "-1", "--num_indexes_to_replace", "100"]
    reference = tmp_path / "reference"
    main_forget.main(forget_args(mask, reference, "FT", *argv))

    out = tmp_path / "full"
    real_save, saves = torch.save, []

    class FullDisk:
        """A file object whose writes fail as on a full filesystem once a few bytes went through."""

        def __init__(self, handle):
            self.handle, self.written = handle, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 1000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.handle.write(data)

        def flush(self):
            return self.handle.flush()

    def save(obj, handle, *rest, **options):
        saves.append(1)
        target = FullDisk(handle) if len(saves) == 2 else handle  # the second save: after epoch 2
        return real_save(obj, target, *rest, **options)

    monkeypatch.setattr(utils.torch, "save", save)
    status, err = cli(main_forget.main, forget_args(mask, out, "FT", *argv), capsys)
    assert status == 2 and len(err) == 1, err
    assert "FT_progress.pth.tar" in err[0] and "No space left on device" in err[0] and "--resume" in err[0]
    progress = torch.load(out / "FT_progress.pth.tar", weights_only=True)
    assert progress["epoch"] == 1  # the last finished epoch's file is intact
    assert not [path for path in out.iterdir() if path.name.endswith(".tmp")]
    monkeypatch.setattr(utils.torch, "save", real_save)
    main_forget.main(forget_args(mask, out, "FT", *argv, "--resume"))
    assert_same_files(reference, out, ["FTcheckpoint.pth.tar"])


# ----------------------------------------------------------------------------- SIGTERM mid-epoch


def terminate_mid_epoch(script, argv, trigger: str):
    """Start the script, wait for a line starting with ``trigger``, then SIGTERM it a random moment later."""
    process = start(script, argv)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith(trigger):
            time.sleep(random.Random(len(lines)).uniform(0.05, 0.4))
            process.send_signal(signal.SIGTERM)
            break
    output, _ = process.communicate(timeout=300)
    return process.returncode, "".join(lines) + output


def test_sigterm_mid_epoch_of_unlearning_then_resume_is_bit_equal(mask, tmp_path):
    run = ["--unlearn_epochs", "4", "--batch_size", "16", "--class_to_replace", "-1", "--num_indexes_to_replace", "100"]
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    finish(start("main_forget.py", forget_args(mask, reference, "FT", *run)))
    status, output = terminate_mid_epoch("main_forget.py", forget_args(mask, stopped, "FT", *run), "FT epoch 1:")
    assert status == 143, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("stopped by SIGTERM during FT epoch") and "--resume" in last, output
    assert "Traceback" not in output
    progress = torch.load(stopped / "FT_progress.pth.tar", weights_only=True)
    assert progress["partial_epoch"] is not None and progress["partial_epoch"]["steps"] > 0
    resumed = finish(start("main_forget.py", forget_args(mask, stopped, "FT", *run, "--resume")))
    assert "resuming at epoch" in resumed and "batch" in resumed
    assert_same_files(reference, stopped, ["FTcheckpoint.pth.tar"])


def test_sigterm_mid_epoch_of_training_then_resume_is_bit_equal(tmp_path):
    run = [*ARCH, "--epochs", "3", "--pruning_times", "2", "--rate", "0.5", "--rewind_epoch", "1", "--batch_size", "16"]
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    finish(start("main_imp.py", [*run, "--save_dir", str(reference)]))
    status, output = terminate_mid_epoch("main_imp.py", [*run, "--save_dir", str(stopped)], "round 2 epoch 1:")
    assert status == 143 and "stopped by SIGTERM during round 2 epoch" in output, output
    resumed = finish(start("main_imp.py", [*run, "--save_dir", str(stopped), "--resume"]))
    assert "resuming round 2 at epoch" in resumed
    assert_same_files(reference, stopped, ["1model_SA_best.pth.tar", "1checkpoint.pth.tar"])


# ----------------------------------------------------------------------------- one writer per run folder


def test_a_second_identical_command_is_refused_while_the_first_runs(mask, tmp_path):
    out = tmp_path / "busy"
    run = forget_args(mask, out, "FT", "--unlearn_epochs", "50", "--batch_size", "16")
    first = start("main_forget.py", run)
    for line in first.stdout:
        if line.startswith("FT epoch 2:"):  # it holds the lock, and epoch 1's progress is saved
            break
    began = time.time()
    second = subprocess.run([sys.executable, "main_forget.py", *run], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert second.returncode == 2 and time.time() - began < 60
    err = second.stderr.strip().splitlines()
    assert len(err) == 1 and f"process {first.pid}" in err[0] and "is in use" in err[0], second.stderr
    first.send_signal(signal.SIGKILL)  # a lock left by a killed holder is no obstacle
    first.communicate(timeout=60)
    status, output = terminate_mid_epoch("main_forget.py", [*run, "--resume"], "FT: resuming at epoch")
    assert status == 143 and "is in use" not in output, output
