"""Safe loading (weights_only, foreign code never runs) and atomic writes (a crash never truncates a file)."""

import json
import os
import random
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import ARCH, ENV, ROOT

import main_forget
import main_imp
import utils
from utils import UsageError


class CreatesFile:
    """Unpickling this calls open(path, 'w'): a stand-in for any code a foreign pickle could run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def malicious_checkpoint(path, marker):
    """A checkpoint-shaped dict whose state_dict would run code (create ``marker``) when unpickled."""
    torch.save({"state_dict": {"net.fc.weight": CreatesFile(marker)}, "args": {}}, path)
    return path


def snapshot(*folders):
    """Every file under ``folders`` with its size and mtime (None for a folder that is not there)."""
    state = {}
    for folder in folders:
        folder = Path(folder)
        state[str(folder)] = None if not folder.exists() else folder.is_dir()
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            info = path.stat()  # a folder's own mtime is left out: a removed temporary file moves it
            state[str(path)] = "folder" if path.is_dir() else (info.st_size, info.st_mtime_ns)
    return state


def run_cli(main, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        utils.run_cli(main, argv)
    return exit_info.value.code, capsys.readouterr().err


# ----------------------------------------------------------------------------- safe loading


def test_the_payload_is_real_and_safe_load_never_runs_it(tmp_path):
    control_marker, marker = tmp_path / "control_ran", tmp_path / "ran"
    torch.load(malicious_checkpoint(tmp_path / "control.pt", control_marker), weights_only=False)
    assert control_marker.exists(), "the payload must create its file when unpickled without weights_only"
    with pytest.raises(UsageError) as err:
        utils.safe_load(malicious_checkpoint(tmp_path / "evil.pt", marker), "--mask checkpoint")
    assert not marker.exists()
    message = str(err.value)
    assert "refused" in message and "nothing in it was run" in message and "evil.pt" in message
    assert "\n" not in message and "weights_only` set to `False`" not in message  # never advise the unsafe load


def test_malicious_mask_is_refused_by_main_forget(tmp_path, capsys):
    marker = tmp_path / "ran"
    evil = malicious_checkpoint(tmp_path / "evil.pth.tar", marker)
    before = snapshot(tmp_path)
    code, err = run_cli(main_forget.main, [*ARCH, "--mask", str(evil), "--save_dir", str(tmp_path / "out")], capsys)
    assert code == 2 and "--mask checkpoint" in err and "refused" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists() and snapshot(tmp_path) == before


def test_malicious_mask_in_a_real_process(tmp_path):
    """End to end: exit status 2, one line on stderr, no traceback, and the payload never ran."""
    marker = tmp_path / "ran"
    evil = malicious_checkpoint(tmp_path / "evil.pth.tar", marker)
    result = subprocess.run(
        [sys.executable, "main_forget.py", *ARCH, "--mask", str(evil), "--save_dir", str(tmp_path / "out")],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "refused" in result.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["0checkpoint.pth.tar", "epoch_0_rewind_weight.pt"])
def test_malicious_resume_files_are_refused_by_main_imp(omp_dir, tmp_path, capsys, name):
    """A planted file among the run's own files: the resume refuses it and leaves the folder as it was."""
    run = tmp_path / "run"
    run.mkdir()
    for path in omp_dir.iterdir():
        (run / path.name).write_bytes(path.read_bytes())
    for stale in run.glob("1*"):  # resume from round 0 so the planted file is read
        stale.unlink()
    marker = tmp_path / "ran"
    malicious_checkpoint(run / name, marker)
    before = snapshot(tmp_path)
    argv = [*ARCH, "--epochs", "1", "--pruning_times", "2", "--rate", "0.5", "--save_dir", str(run), "--resume"]
    code, err = run_cli(main_imp.main, argv, capsys)
    assert code == 2 and "refused" in err and name in err
    assert not marker.exists() and snapshot(tmp_path) == before


def test_malicious_rewind_file_is_refused_by_main_imp(tmp_path, capsys):
    marker = tmp_path / "ran"
    evil = malicious_checkpoint(tmp_path / "rewind.pt", marker)
    argv = [*ARCH, "--epochs", "1", "--rewind_pth", str(evil), "--save_dir", str(tmp_path / "out")]
    code, err = run_cli(main_imp.main, argv, capsys)
    assert code == 2 and "--rewind_pth" in err and "refused" in err
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("planted", ["FTcheckpoint.pth.tar", "FT_progress.pth.tar"])
def test_malicious_unlearning_resume_files_are_refused(omp_dir, tmp_path, capsys, planted):
    save_dir = tmp_path / "out"
    save_dir.mkdir()
    marker = tmp_path / "ran"
    malicious_checkpoint(save_dir / planted, marker)
    before = snapshot(tmp_path)
    argv = [*ARCH, "--mask", str(omp_dir / "1model_SA_best.pth.tar"), "--unlearn", "FT", "--unlearn_epochs", "1"]
    code, err = run_cli(main_forget.main, [*argv, "--save_dir", str(save_dir), "--resume"], capsys)
    assert code == 2 and "refused" in err and planted in err
    assert not marker.exists() and snapshot(tmp_path) == before


def _random_bytes(path):
    path.write_bytes(random.Random(0).randbytes(4096))


def _text(path):
    path.write_text("state_dict = {}\n")


def _empty(path):
    path.write_bytes(b"")


def _truncated(path):
    torch.save({"state_dict": {"w": torch.randn(64, 64)}}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _plain_pickle(path):
    import pickle

    path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}))


def _folder(path):
    path.mkdir()


@pytest.mark.parametrize(
    "make,expected",
    [
        (_random_bytes, "refused"),
        (_text, "not a readable torch checkpoint"),
        (_empty, "not a readable torch checkpoint"),
        (_truncated, "truncated"),
        (_plain_pickle, "refused"),
        (_folder, "is not a file"),
    ],
)
def test_files_that_are_not_checkpoints_are_refused_in_one_line(tmp_path, make, expected):
    path = tmp_path / "file.pt"
    make(path)
    with pytest.raises(UsageError, match=expected) as err:
        utils.safe_load(path, "--mask checkpoint")
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_checkpoint_of_tensors_and_plain_data_round_trips(tmp_path):
    saved = {"state_dict": {"w": torch.arange(6.0).view(2, 3)}, "args": {"lr": 0.1, "name": "x", "ok": True}, "n": [1]}
    utils.atomic_torch_save(saved, tmp_path / "c.pt")
    loaded = utils.safe_load(tmp_path / "c.pt")
    assert torch.equal(loaded["state_dict"]["w"], saved["state_dict"]["w"])
    assert loaded["args"] == saved["args"] and loaded["n"] == [1]


def test_every_file_the_scripts_write_loads_with_weights_only(omp_dir, tmp_path):
    """Checkpoints hold tensors and plain Python data only: no Namespace, numpy array or class instance."""
    main_forget.main(
        [*ARCH, "--mask", str(omp_dir / "1model_SA_best.pth.tar"), "--unlearn", "FT", "--unlearn_epochs", "1"]
        + ["--class_to_replace", "-1", "--num_indexes_to_replace", "20", "--save_dir", str(tmp_path)]
    )
    files = sorted(omp_dir.glob("*.pt*")) + sorted(tmp_path.glob("*.pt*"))
    assert {path.name for path in files} >= {"0checkpoint.pth.tar", "1model_SA_best.pth.tar", "FTcheckpoint.pth.tar"}
    for path in files:
        torch.load(path, map_location="cpu", weights_only=True)
    leftovers = [path.name for folder in (omp_dir, tmp_path) for path in folder.iterdir() if path.suffix == ".tmp"]
    assert leftovers == []


# ----------------------------------------------------------------------------- atomic writes


class FailsWhenPickled:
    def __reduce__(self):
        raise RuntimeError("cannot serialise this")


def old_file(tmp_path):
    path = tmp_path / "checkpoint.pth.tar"
    utils.atomic_torch_save({"version": 1, "w": torch.ones(3)}, path)
    return path, path.read_bytes()


def assert_old_file_intact(path, content):
    assert path.read_bytes() == content
    assert utils.safe_load(path)["version"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name], "a temporary file was left behind"


def test_atomic_torch_save_keeps_old_file_when_serialisation_fails_midway(tmp_path):
    path, content = old_file(tmp_path)
    with pytest.raises(RuntimeError, match="cannot serialise"):
        utils.atomic_torch_save({"version": 2, "w": torch.zeros(1000), "bad": FailsWhenPickled()}, path)
    assert_old_file_intact(path, content)


def test_atomic_torch_save_keeps_old_file_when_the_disk_fails_after_half_the_bytes(tmp_path, monkeypatch):
    path, content = old_file(tmp_path)
    seen = {}

    def half_then_fail(obj, handle):
        handle.write(content[: len(content) // 2])
        handle.flush()
        (seen["tmp"],) = [p for p in path.parent.iterdir() if p != path]  # written beside the target
        assert seen["tmp"].stat().st_size == len(content) // 2
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        utils.atomic_torch_save({"version": 2}, path)
    monkeypatch.undo()
    assert not seen["tmp"].exists()
    assert_old_file_intact(path, content)


@pytest.mark.parametrize("interrupt", [OSError("rename failed"), KeyboardInterrupt()])
def test_atomic_json_and_text_keep_old_file_when_interrupted_before_the_rename(tmp_path, monkeypatch, interrupt):
    path = tmp_path / "results.json"
    utils.atomic_write_json({"version": 1}, path)
    content = path.read_bytes()

    def fail(*_):
        raise interrupt

    monkeypatch.setattr(utils.os, "replace", fail)
    for write in (lambda: utils.atomic_write_json({"version": 2}, path), lambda: utils.atomic_write_text("2", path)):
        with pytest.raises(type(interrupt)):
            write()
        assert path.read_bytes() == content and [p.name for p in tmp_path.iterdir()] == ["results.json"]
    monkeypatch.undo()
    utils.atomic_write_json({"version": 2}, path)
    assert json.loads(path.read_text()) == {"version": 2}


def test_atomic_json_refuses_unserialisable_values_before_touching_the_file(tmp_path):
    path = tmp_path / "results.json"
    utils.atomic_write_json({"version": 1}, path)
    content = path.read_bytes()
    with pytest.raises(TypeError, match="cannot write object"):
        utils.atomic_write_json({"version": 2, "bad": object()}, path)
    assert path.read_bytes() == content and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_written_files_get_the_usual_permissions(tmp_path):
    utils.atomic_write_text("x", tmp_path / "a.txt")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask


KILLED_WRITER = """
import sys, time
sys.path.insert(0, {root!r})
import torch
import utils

def slow_save(obj, handle):
    handle.write(b"PK\\x03\\x04 the first bytes of a zip")
    handle.flush()
    print("half written", flush=True)
    time.sleep(60)

torch.save = slow_save
utils.atomic_torch_save({{"version": 2}}, {path!r})
"""


def test_sigkill_in_the_middle_of_a_write_leaves_the_old_file(tmp_path):
    path, content = old_file(tmp_path)
    code = KILLED_WRITER.format(root=str(ROOT), path=str(path))
    process = subprocess.Popen([sys.executable, "-c", code], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "half written"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    assert path.read_bytes() == content and utils.safe_load(path)["version"] == 1
    leftovers = [p for p in tmp_path.iterdir() if p != path]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".checkpoint.pth.tar.")  # the dead write's temp file
    assert not zipfile.is_zipfile(leftovers[0])
