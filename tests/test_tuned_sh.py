"""scripts/tuned.sh, stage 1: which studies it starts for each scenario, with which forget set and where.

A stand-in interpreter records main_tune.py's arguments instead of running it, so the wiring is checked in
a second; the studies themselves are tested in test_tune.py."""

import shlex
import subprocess
from pathlib import Path

from conftest import ENV, ROOT

SCRIPT = ROOT / "scripts" / "tuned.sh"


def _tuned_sh(tmp_path, scenarios, with_retrain=()):
    calls = tmp_path / "calls.txt"
    interpreter = tmp_path / "python"
    interpreter.write_text(f'#!/usr/bin/env bash\necho "$*" >> {calls}\n')
    interpreter.chmod(0o755)
    fm = tmp_path / "fm" / "fashionmnist_resnet20s"
    for scenario in with_retrain:  # trial 1's Retrain of the scenario at 95% is finished
        reference = fm / "unlearn" / scenario / "r0.95" / "retrain" / "train_seed1" / "seed1"
        reference.mkdir(parents=True)
        (reference / "retraincheckpoint.pth.tar").write_bytes(b"")
    env = ENV | {"SCENARIOS": scenarios, "STAGES": "1", "RATES": "0.95", "METHODS": "FT"}
    done = subprocess.run(
        ["bash", str(SCRIPT), str(interpreter), str(tmp_path / "tuned"), str(tmp_path / "fm")],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    lines = calls.read_text().splitlines() if calls.exists() else []
    return done, [shlex.split(line) for line in lines]


def _flag(args, name):
    return args[args.index(name) + 1]


def test_each_scenario_gets_its_own_forget_set_reference_and_study_folder(tmp_path):
    done, calls = _tuned_sh(tmp_path, "random class", with_retrain=("random", "class"))
    assert done.returncode == 0, done.stderr
    assert [_flag(args, "--save_dir") for args in calls] == [
        str(tmp_path / "tuned" / "random" / "r0.95" / "FT"),
        str(tmp_path / "tuned" / "class" / "r0.95" / "FT"),
    ]
    random, klass = calls
    assert _flag(random, "--class_to_replace") == "-1" and _flag(random, "--num_indexes_to_replace") == "270"
    assert _flag(klass, "--class_to_replace") == "1" and "--num_indexes_to_replace" not in klass  # the whole class
    assert "/unlearn/class/r0.95/retrain/train_seed1/" in _flag(klass, "--reference")
    assert all(_flag(args, "--mask").endswith("prune_r0.95/train_seed1/1model_SA_best.pth.tar") for args in calls)


def test_a_scenario_without_trial_1_retrain_is_skipped_with_a_line(tmp_path):
    done, calls = _tuned_sh(tmp_path, "random class", with_retrain=("random",))
    assert done.returncode == 0 and len(calls) == 1 and _flag(calls[0], "--class_to_replace") == "-1"
    assert "skipped FT, class, rate 0.95: trial 1's Retrain" in done.stdout


def test_an_unknown_scenario_stops_before_anything_runs(tmp_path):
    done, calls = _tuned_sh(tmp_path, "random klass", with_retrain=("random",))
    assert done.returncode == 2 and calls == [] and not Path(tmp_path / "tuned").exists()
    assert done.stderr.strip() == "SCENARIOS: unknown scenario 'klass'; use random, class or both"
