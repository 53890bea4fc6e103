"""Bad input: one line on stderr naming the problem and the fix, exit status 2, no traceback, nothing written.

Most cases call ``utils.run_cli(main, argv)`` in this process (a subprocess costs seconds of
torch import); a few real subprocesses prove the end-to-end behaviour of the scripts.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ARCH, ENV, ROOT

import main_forget
import main_imp
import models
import utils

IMP = [*ARCH, "--epochs", "1", "--pruning_times", "2", "--rate", "0.5"]
FORGET = [*ARCH, "--mask", "{mask}", "--unlearn", "FT", "--unlearn_epochs", "1"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A real mask from main_imp plus broken, foreign and partial files made from it."""
    root = tmp_path_factory.mktemp("inputs")
    main_imp.main([*IMP, "--save_dir", str(root / "omp")])
    mask = root / "omp" / "1model_SA_best.pth.tar"
    saved = torch.load(mask, weights_only=True)
    files = {"mask": mask, "omp": root / "omp", "missing": root / "no_such_file.pth.tar"}

    def save(name, obj):
        torch.save(obj, root / name)
        files[name.split(".")[0]] = root / name

    save("no_meta.pth.tar", {"state_dict": saved["state_dict"]})
    nan_weights = dict(saved["state_dict"])
    nan_weights["net.fc.weight"] = torch.full_like(nan_weights["net.fc.weight"], float("nan"))
    save("nan_weights.pth.tar", {**saved, "state_dict": nan_weights})
    save("not_a_dict.pth.tar", torch.ones(3))
    save("strings.pth.tar", {"state_dict": {"net.fc.weight": "not a tensor"}})
    foreign = models.build_model("resnet44s", num_classes=10, in_channels=1).state_dict()
    save("arch_meta.pth.tar", {"state_dict": foreign, "arch": "resnet44s", "dataset": "digits"})
    save("arch_plain.pth.tar", foreign)  # no metadata: only the tensors can tell
    seven = dict(saved["state_dict"])
    seven["net.fc.weight"], seven["net.fc.bias"] = seven["net.fc.weight"][:7], seven["net.fc.bias"][:7]
    save("classes.pth.tar", {**saved, "state_dict": seven})
    for name, array in (("float", [0.9, 1.9]), ("grid", [[1, 2], [3, 4]]), ("huge", [np.uint64(2**63 + 5)])):
        np.save(root / f"{name}.npy", np.asarray(array))
        files[f"{name}_npy"] = root / f"{name}.npy"
    (root / "random.bin").write_bytes(bytes(range(256)) * 16)
    files["random"] = root / "random.bin"
    (root / "truncated.pth.tar").write_bytes(mask.read_bytes()[: mask.stat().st_size // 2])
    files["truncated"] = root / "truncated.pth.tar"
    (root / "tiny").mkdir()
    (root / "tiny" / "wnids.txt").write_text("n01443537\n")  # val/val_annotations.txt is missing
    files["tiny"] = root / "tiny"
    (root / "a_file.txt").write_text("not a folder")
    files["a_file"] = root / "a_file.txt"
    return files


def snapshot(*folders):
    """Every path under ``folders`` with its size and mtime (None for a folder that is not there)."""
    state = {}
    for folder in map(Path, folders):
        state[str(folder)] = folder.is_dir() if folder.exists() else None
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            info = path.stat()  # a folder's own mtime is left out: a removed temporary file moves it
            state[str(path)] = "folder" if path.is_dir() else (info.st_size, info.st_mtime_ns)
    return state


def fill(argv, inputs, tmp_path):
    names = {**{key: str(value) for key, value in inputs.items()}, "tmp": str(tmp_path)}
    return [arg.format(**names) for arg in argv]


def assert_refused(code, err, words):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"


def refuse(main, argv, capsys, words, *watched):
    """Run ``main(argv)`` through run_cli; check the one-line refusal and that ``watched`` did not change."""
    before = snapshot(*watched)
    with pytest.raises(SystemExit) as exit_info:
        utils.run_cli(main, argv)
    assert_refused(exit_info.value.code, capsys.readouterr().err, words)
    assert snapshot(*watched) == before


BOTH = [
    (["--dataset", "mnist"], ["--dataset 'mnist'", "choose from", "digits"]),
    (["--arch", "resnet19"], ["--arch 'resnet19'", "choose from", "resnet20s"]),
    (["--decreasing_lr", "91;136"], ["--decreasing_lr '91;136'", "does not parse", "like 91,136"]),
    (["--decreasing_lr", "5,-1"], ["--decreasing_lr", "negative"]),
    (["--save_dir", "{a_file}/out"], ["--save_dir", "a_file.txt/out", "cannot be created", "writable folder"]),
    (["--no_such_flag"], ["unrecognized arguments: --no_such_flag"]),
    (["--seed", "-1"], ["--seed -1 is outside 0..4294967295"]),
    (["--seed", "8589934592"], ["--seed 8589934592 is outside 0..4294967295"]),
    (["--split_seed", "-1"], ["--split_seed -1 is outside"]),
    (["--weight_decay", "inf"], ["--weight_decay inf is not a finite number"]),
]
IMP_ONLY = [
    (["--epochs", "x"], ["--epochs", "invalid int value", "--help"]),
    (["--lr", "nan"], ["--lr nan is not a finite number"]),
    (["--prune_type", "lth"], ["--prune_type 'lth'", "choose from", "rewind_lt"]),
    (["--rate", "1.0"], ["--rate 1.0", "outside [0, 1)"]),
    (["--rate", "-0.1"], ["--rate -0.1", "outside [0, 1)"]),
    (["--epochs", "-1"], ["--epochs -1", "negative", ">= 0"]),
    (["--epochs", "0"], ["--epochs 0", "at least 1 epoch"]),
    (["--lr", "-0.1"], ["--lr -0.1", "negative"]),
    (["--pruning_times", "0"], ["--pruning_times 0", "at least 1"]),
    (["--train_subset", "10"], ["--train_subset 10 leaves no validation samples", "100 or more"]),
    (["--train_subset", "15"], ["--train_subset 15 leaves no validation samples"]),
    (["--resume"], ["--resume", "nothing to resume", "drop --resume"]),
    (["--rewind_pth", "{missing}"], ["--rewind_pth file", "no_such_file.pth.tar", "does not exist"]),
    (["--rewind_pth", "{truncated}"], ["--rewind_pth file", "truncated", "intact copy"]),
    (["--rewind_pth", "{arch_plain}"], ["has an extra tensor 'net.layer1.3.conv1.weight'", "--arch"]),
    (["--dataset", "TinyImagenet", "--data_dir", "{tmp}/absent"], ["TinyImageNet", "absent", "lacks wnids.txt"]),
    (["--dataset", "TinyImagenet", "--data_dir", "{tiny}"], ["lacks val/val_annotations.txt", "put the official"]),
]
FORGET_ONLY = [
    (["--unlearn", "forget_everything"], ["--unlearn 'forget_everything'", "choose from", "FT"]),
    (["--unlearn_lr", "-0.01"], ["--unlearn_lr -0.01", "negative"]),
    (["--unlearn_epochs", "-2"], ["--unlearn_epochs -2", "negative"]),
    (["--class_to_replace", "10"], ["--class_to_replace 10", "not a class", "0..9 or -1"]),
    (["--class_to_replace", "-2"], ["--class_to_replace -2", "not a class"]),
    (["--num_indexes_to_replace", "0"], ["--num_indexes_to_replace 0", "must be positive"]),
    (["--num_indexes_to_replace", "-5"], ["--num_indexes_to_replace -5", "must be positive"]),
    (["--num_indexes_to_replace", "129"], ["--num_indexes_to_replace 129", "more than the 128 samples of class 0"]),
    (["--class_to_replace", "-1", "--num_indexes_to_replace", "1299"], ["more than the 1298 training samples"]),
    (["--num_indexes_to_replace", "5", "--indexes_to_replace", "1,2"], ["--indexes_to_replace", "not both"]),
    (["--class_to_replace", "-1", "--num_indexes_to_replace", "1298"], ["whole training set", "forget fewer"]),
    (["--indexes_to_replace", "3,1298"], ["--indexes_to_replace holds 1298", "0..1297"]),
    (["--indexes_to_replace", "{float_npy}"], ["float.npy", "float64 values, not integers"]),
    (["--indexes_to_replace", "{grid_npy}"], ["grid.npy", "2-D array", "1-D array"]),
    (["--indexes_to_replace", "{huge_npy}"], ["holds 9223372036854775813", "far outside"]),
    (["--indexes_to_replace", "99999999999999999999999"], ["holds 99999999999999999999999", "far outside"]),
    (["--train_seed", "-1"], ["--train_seed -1 is outside"]),
    (["--unlearn", "fisher_new", "--alpha", "-1"], ["--alpha -1.0 is negative"]),
    (["--unlearn_lr", "nan"], ["--unlearn_lr nan is not a finite number"]),
    (["--mask", "{nan_weights}"], ["nan_weights.pth.tar", "'net.fc.weight' holds NaN or infinite values"]),
    (["--mask", "{missing}"], ["--mask checkpoint", "no_such_file.pth.tar", "does not exist"]),
    (["--mask", "{random}"], ["--mask checkpoint", "random.bin", "not a checkpoint", "nothing in it was run"]),
    (["--mask", "{truncated}"], ["--mask checkpoint", "truncated.pth.tar", "truncated or corrupt", "intact copy"]),
    (["--mask", "{not_a_dict}"], ["not_a_dict.pth.tar", "holds a Tensor, not a checkpoint dict"]),
    (["--mask", "{strings}"], ["'net.fc.weight' is a str, not a tensor"]),
    (["--mask", "{arch_meta}"], ["--mask", "--arch resnet44s, not resnet20s", "pass --arch resnet44s"]),
    (["--mask", "{arch_plain}"], ["has an extra tensor 'net.layer1.3.conv1.weight'", "another --arch"]),
    (["--mask", "{classes}"], ["'net.fc.weight' has shape (7, 64)", "(10, 64)", "number of classes"]),
    (["--resume"], ["--resume", "nothing to resume", "drop --resume"]),
    (["--dataset", "TinyImagenet", "--mask", "{no_meta}", "--data_dir", "{tmp}/absent"], ["TinyImageNet", "absent"]),
    (["--dataset", "TinyImagenet", "--mask", "{no_meta}", "--data_dir", "{tiny}"], ["lacks val/val_annotations"]),
]
CASES = (
    [("imp", *case) for case in BOTH + IMP_ONLY]
    + [("forget", *case) for case in BOTH + FORGET_ONLY]
    + [("forget", [], ["--mask is required", "give the checkpoint"])]  # FORGET without its --mask
)
SCRIPTS = {"imp": (main_imp.main, IMP), "forget": (main_forget.main, FORGET)}


@pytest.mark.parametrize("script,extra,words", CASES, ids=[f"{s}:{' '.join(e)}" for s, e, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(inputs, tmp_path, capsys, script, extra, words):
    main, base = SCRIPTS[script]
    if script == "forget" and not extra:
        base = [arg for arg in base if arg not in ("--mask", "{mask}")]
    save_dir = tmp_path / "out"
    argv = fill([*base, "--save_dir", str(save_dir), *extra], inputs, tmp_path)
    refuse(main, argv, capsys, words, tmp_path, inputs["omp"].parent)
    assert not save_dir.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("script", ["imp", "forget"])
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_is_refused(inputs, tmp_path, capsys, script, device):
    main, base = SCRIPTS[script]
    argv = fill([*base, "--save_dir", str(tmp_path / "out"), "--device", device], inputs, tmp_path)
    refuse(main, argv, capsys, [f"--device {device}", "no CUDA GPU", "--device cpu"], tmp_path)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("script", ["imp", "forget"])
@pytest.mark.parametrize("data_exists", [False, True])
def test_missing_cifar_whose_download_fails_leaves_no_trace(inputs, tmp_path, capsys, monkeypatch, script, data_exists):
    """torchvision makes the folder and writes the archive as it arrives: a failed download is undone."""
    import torchvision

    class FailingDownload:
        def __init__(self, root, download=False, **_):
            Path(root).mkdir(parents=True, exist_ok=True)
            (Path(root) / "cifar-10-python.tar.gz").write_bytes(b"the first bytes")
            raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FailingDownload)
    data = tmp_path / "data" / "nested"
    if data_exists:
        data.mkdir(parents=True)
        (data / "notes.txt").write_text("keep me")
    main, base = SCRIPTS[script]
    argv = [*base, "--save_dir", str(tmp_path / "out"), "--dataset", "cifar10", "--data", str(data)]
    words = ["CIFAR10 not found", "cifar-10-batches-py", "lacks data_batch_1", "download failed", "--data"]
    refuse(main, fill(argv + ["--mask", "{no_meta}"] * (script == "forget"), inputs, tmp_path), capsys, words, tmp_path)
    assert data.exists() == data_exists and not (tmp_path / "out").exists()


def test_existing_output_folder_is_left_as_it_was(inputs, tmp_path, capsys):
    """A refused command aimed at a folder that holds a finished run changes none of its files."""
    run = tmp_path / "run"
    shutil.copytree(inputs["omp"], run)
    refuse(main_imp.main, [*IMP, "--save_dir", str(run), "--rate", "2"], capsys, ["--rate 2.0"], run)
    argv = fill([*FORGET, "--save_dir", str(run), "--class_to_replace", "11"], inputs, tmp_path)
    refuse(main_forget.main, argv, capsys, ["--class_to_replace 11"], run)


def test_a_run_in_save_dir_is_not_overwritten_without_resume(inputs, tmp_path, capsys):
    """Rerunning a command into a folder that holds its run is refused (--resume continues it), files unchanged."""
    run = tmp_path / "run"
    shutil.copytree(inputs["omp"], run)
    words = ["already holds a run of this command", "0checkpoint.pth.tar", "add --resume", "another --save_dir"]
    refuse(main_imp.main, [*IMP, "--save_dir", str(run)], capsys, words, run)
    forget_dir = tmp_path / "forget"
    argv = fill([*FORGET, "--save_dir", str(forget_dir)], inputs, tmp_path)
    utils.run_cli(main_forget.main, argv)  # a finished FT run
    capsys.readouterr()
    refuse(main_forget.main, argv, capsys, ["already holds a run", "FTcheckpoint.pth.tar", "--resume"], forget_dir)
    other = fill([*FORGET, "--save_dir", str(forget_dir), "--unlearn", "GA"], inputs, tmp_path)
    utils.run_cli(main_forget.main, other)  # another method in the same folder is another run (the original's usage)
    assert (forget_dir / "GA_eval.json").is_file() and (forget_dir / "FT_eval.json").is_file()


REAL_PROCESSES = [
    ("main_imp.py", IMP, ["--arch", "resnet19"], ["--arch 'resnet19'", "choose from"]),
    ("main_imp.py", IMP, ["--save_dir", "{a_file}/out"], ["--save_dir", "cannot be created"]),
    ("main_imp.py", IMP, ["--resume"], ["nothing to resume"]),
    ("main_forget.py", FORGET, ["--mask", "{truncated}"], ["--mask checkpoint", "truncated"]),
    ("main_forget.py", FORGET, ["--num_indexes_to_replace", "5000"], ["--num_indexes_to_replace 5000"]),
]


def test_real_processes_exit_2_with_one_line_and_no_traceback(inputs, tmp_path):
    """The scripts as researchers run them; started together to share the seconds of torch import."""
    before = snapshot(tmp_path, inputs["omp"].parent)
    processes = []
    for index, (script, base, extra, _) in enumerate(REAL_PROCESSES):
        argv = fill([*base, "--save_dir", str(tmp_path / f"out{index}"), *extra], inputs, tmp_path)
        command = [sys.executable, script, *argv]
        processes.append(subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for process, (*_, words) in zip(processes, REAL_PROCESSES):
        _, err = process.communicate(timeout=300)
        assert_refused(process.returncode, err.decode(), words)
    assert snapshot(tmp_path, inputs["omp"].parent) == before


def test_a_failed_download_keeps_what_another_process_wrote_beside_it(inputs, tmp_path, capsys, monkeypatch):
    """Two array tasks start from an empty --data: one's failed download must not delete the other's files."""
    import torchvision

    new = tmp_path / "NEW"

    class FailingDownload:
        def __init__(self, root, download=False, **_):
            Path(root).mkdir(parents=True, exist_ok=True)
            (new / "other_result.txt").write_text("written by another process meanwhile")
            (Path(root) / "cifar-10-python.tar.gz").write_bytes(b"the first bytes")
            raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FailingDownload)
    argv = [*IMP, "--save_dir", str(tmp_path / "out"), "--dataset", "cifar10", "--data", str(new / "data")]
    with pytest.raises(SystemExit) as exit_info:
        utils.run_cli(main_imp.main, argv)
    assert_refused(exit_info.value.code, capsys.readouterr().err, ["download failed"])
    assert (new / "other_result.txt").read_text() == "written by another process meanwhile"
    assert not (new / "data").exists()  # what the download made is gone, and only that


def test_the_original_shared_flags_main_forget_does_not_use_are_named_never_silently_ignored(inputs, tmp_path, capsys):
    import json

    argv = fill([*FORGET, "--save_dir", str(tmp_path / "run")], inputs, tmp_path)
    main_forget.main([*argv, "--lr", "0.5", "--epochs", "3", "--rate", "0.9", "--random_prune"])
    err = capsys.readouterr().err.splitlines()
    assert "warning: --epochs is not used by main_forget.py; unlearning uses --unlearn_epochs" in err
    # the original's retrain_sam reads --lr and its FT_prune_bi --rate and --random_prune; FT reads none
    assert "warning: --sam_lr/--lr is read only by --unlearn retrain_sam; --unlearn FT ignores it" in err
    assert "warning: --bi_rate/--rate is read only by --unlearn FT_prune_bi; --unlearn FT ignores it" in err
    assert (
        "warning: --bi_random_prune/--random_prune is read only by --unlearn FT_prune_bi; --unlearn FT ignores it"
        in err
    )
    record = json.loads((tmp_path / "run" / "FT_eval.json").read_text())
    assert "epochs" not in record["args"]  # not recorded as if it were used


# Every flag of the original's one shared parser (its arg_parser.py), with a value of the right kind.
ORIGINAL_FLAGS = {
    "--data": "x", "--dataset": "digits", "--input_size": "32", "--data_dir": "x", "--num_workers": "4",
    "--num_classes": "10", "--arch": "resnet20s", "--imagenet_arch": None, "--seed": "2", "--train_seed": "1",
    "--gpu": "0", "--workers": "4", "--resume": None, "--checkpoint": "x", "--save_dir": "x", "--mask": "x",
    "--batch_size": "64", "--lr": "0.1", "--momentum": "0.9", "--weight_decay": "5e-4", "--epochs": "1",
    "--warmup": "0", "--print_freq": "50", "--decreasing_lr": "1", "--no-aug": None, "--prune": "omp",
    "--pruning_times": "1", "--rate": "0.2", "--prune_type": "lt", "--random_prune": None, "--rewind_epoch": "1",
    "--unlearn": "FT", "--unlearn_lr": "0.1", "--unlearn_epochs": "1", "--num_indexes_to_replace": "10",
    "--class_to_replace": "0", "--indexes_to_replace": "1", "--alpha": "0.2", "--attack": "backdoor",
    "--trigger_size": "4",
}  # fmt: skip


@pytest.mark.parametrize("script", ["main_imp", "main_synflow", "main_forget", "main_backdoor"])
def test_every_script_accepts_every_flag_of_the_originals_shared_parser(script, capsys):
    """A wrapper passing the original's flags still runs; a flag the script does not use gets one warning line."""
    import importlib

    from experiments import arg_parser

    module = importlib.import_module(script)
    argv = [part for flag, value in ORIGINAL_FLAGS.items() for part in (flag, value) if part is not None]
    args = module.make_parser().parse_args(argv)  # an unknown flag would exit 2 here
    unused = getattr(module, "UNUSED", arg_parser.UNUSED_BY_TRAINING if script != "main_backdoor" else {})
    arg_parser.warn_unused(args, f"{script}.py", unused)
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert len(warned) == len(set(unused) & set(ORIGINAL_FLAGS))
    assert all(f" is not used by {script}.py; " in line for line in warned)
    assert not any(hasattr(args, flag.lstrip("-")) for flag in unused)  # not kept as if used
