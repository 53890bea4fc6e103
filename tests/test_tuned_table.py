"""scripts/tuned_table.py and reporting/tuned.py: tuned against preset, paired by trial, computed by hand."""

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ENV
from test_report import T_975_2DF, write_eval

from reporting import collect, tuned

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "tuned_table.py"


@pytest.fixture
def three_trials(tmp_path):
    """Retrain UA 10/20/30 at 95%; SalUn tuned UA 12/18/33, preset UA 40/45/35, raw UA 5 (other metrics equal)."""
    for seed, (retrain, good, bad) in enumerate(((10, 12, 40), (20, 18, 45), (30, 33, 35)), start=1):
        write_eval(tmp_path / "retrain", "retrain", seed, ua=retrain, ratio=0.05)
        write_eval(tmp_path / "tuned", "SalUn", seed, ua=good, ratio=0.05, unlearn_lr=0.0075)
        write_eval(tmp_path / "preset", "SalUn", seed, ua=bad, ratio=0.05, unlearn_lr=0.013)
        write_eval(tmp_path / "preset", "raw", seed, ua=5, ratio=0.05)  # the yardstick: no unlearning
    write_eval(tmp_path / "preset", "SalUn", 4, ua=50, ratio=0.05, unlearn_lr=0.013)  # no tuned run of trial 4
    return tmp_path


def _runs(folder):
    return collect.load_runs([folder])[0]


def test_the_paired_change_of_the_avg_gap_equals_a_hand_computation(three_trials):
    (row,) = tuned.compare(*(_runs(three_trials / side) for side in ("tuned", "preset", "retrain")))
    tuned_gaps, preset_gaps = np.array([2, 2, 3]) / 4, np.array([30, 25, 5]) / 4  # only UA differs
    change = tuned_gaps - preset_gaps
    half = T_975_2DF * change.std(ddof=1) / math.sqrt(3)
    assert row["n_trials"] == 3 and row["sparsity"] == 95.0 and row["name"] == "SalUn"  # trial 4 is left out
    assert row["gap_tuned"]["mean"] == pytest.approx(tuned_gaps.mean())
    assert row["gap_preset"]["std"] == pytest.approx(preset_gaps.std(ddof=1))
    assert (row["gap_change"]["mean"], row["gap_change"]["ci_low"], row["gap_change"]["ci_high"]) == pytest.approx(
        (change.mean(), change.mean() - half, change.mean() + half)
    )
    assert row["gap_change"]["verdict"] == "inconclusive"  # one trial gains little: the interval holds 0
    assert row["UA_tuned"]["mean"] == pytest.approx(21.0) and row["UA_preset"]["mean"] == pytest.approx(40.0)
    line = tuned.markdown([row]).splitlines()[-1]
    assert line.startswith("| 95.0% | SalUn | 21.0 / 40.0 | 50.0 / 50.0 |")
    interval = f"{change.mean():+.1f} [{change.mean() - half:+.1f}, {change.mean() + half:+.1f}]"
    assert f"| {interval} | inconclusive | 3 |" in line


def test_sparse_against_dense_pairs_each_side_with_its_own_flags_and_equals_a_hand_computation(three_trials):
    sides = ("tuned", "preset", "retrain")
    assert tuned.sparsity_change(*(_runs(three_trials / side) for side in sides)) == []  # no dense runs yet
    for seed, (retrain, good, bad) in enumerate(((10, 16, 22), (20, 20, 26), (30, 36, 30)), start=1):
        write_eval(three_trials / "retrain", "retrain", seed, ua=retrain)  # ratio 1.0: the dense model
        write_eval(three_trials / "tuned", "SalUn", seed, ua=good, unlearn_lr=0.02)  # selected for dense
        write_eval(three_trials / "preset", "SalUn", seed, ua=bad, unlearn_lr=0.013)
    (row,) = tuned.sparsity_change(*(_runs(three_trials / side) for side in sides))
    dense = {"tuned": np.array([6, 0, 6]) / 4, "preset": np.array([12, 6, 0]) / 4}  # only UA differs
    sparse = {"tuned": np.array([2, 2, 3]) / 4, "preset": np.array([30, 25, 5]) / 4}
    assert row["n_trials"] == 3 and row["sparsity"] == 95.0 and row["name"] == "SalUn"  # trial 4 has no dense run
    for side in ("tuned", "preset"):
        change = sparse[side] - dense[side]
        half = T_975_2DF * change.std(ddof=1) / math.sqrt(3)
        assert row[f"dense_{side}"]["mean"] == pytest.approx(dense[side].mean())
        assert row[f"sparse_{side}"]["std"] == pytest.approx(sparse[side].std(ddof=1))
        got = row[f"change_{side}"]
        assert (got["mean"], got["ci_low"], got["ci_high"]) == pytest.approx(
            (change.mean(), change.mean() - half, change.mean() + half)
        )
        assert got["verdict"] == "inconclusive"
    line = tuned.sparsity_markdown([row]).splitlines()[-1]
    assert line.startswith("| 95.0% | SalUn | 1.00±0.87 → 0.58±0.14 | -0.4 [")
    (flat,) = list(csv.DictReader(io.StringIO(tuned.sparsity_csv([row]))))
    assert float(flat["change_preset_mean"]) == pytest.approx(3.5) and flat["change_preset_verdict"] == "inconclusive"


def test_two_variants_on_one_side_are_refused(three_trials):
    write_eval(three_trials / "tuned" / "other", "SalUn", 1, ua=11, ratio=0.05, unlearn_lr=0.02)
    with pytest.raises(ValueError, match="two variants of SalUn at 95.0%"):
        tuned.compare(*(_runs(three_trials / side) for side in ("tuned", "preset", "retrain")))


def _study(root, scenario, rate, method, preset_state="COMPLETE"):
    folder = root / scenario / f"r{rate}" / method
    folder.mkdir(parents=True)
    best = {"params": {"unlearn_lr": 0.0075019, "unlearn_epochs": 9}, "objective": 1.6368}
    record = {"method": method, "finished_trials": 16, "best": best}
    if preset_state:
        objective = 5.86 if preset_state == "COMPLETE" else None
        record["preset"] = {"trial": 0, "state": preset_state, "objective": objective}
    (folder / "best.json").write_text(json.dumps(record))


def test_the_script_writes_both_tables_and_the_csv(three_trials, tmp_path):
    _study(tmp_path / "studies", "random", "0.95", "SalUn")
    _study(tmp_path / "studies", "random", "0", "FT", preset_state=None)
    _study(tmp_path / "studies", "random", "0", "GA", preset_state="PRUNED")
    out = tmp_path / "out"
    args = [sys.executable, str(SCRIPT), "--tuned", str(three_trials / "tuned")]
    args += ["--preset", str(three_trials / "preset"), "--retrain", str(three_trials / "retrain")]
    args += ["--studies", str(tmp_path / "studies"), "--out", str(out)]
    subprocess.run(args, check=True, env=ENV, capture_output=True, text=True)
    text = (out / "comparison.md").read_text()
    assert "| random | 95.0% | SalUn | `--unlearn_lr 0.0075 --unlearn_epochs 9` | 1.64 | 5.86 | 16 |" in text
    assert "| random | 0.0% | FT |" in text and "| not run | 16 |" in text
    assert "| random | 0.0% | GA |" in text and "| pruned | 16 |" in text
    assert (
        "- random forgetting (4500 samples), 95.0%: Avg. Gap 3.75±2.50 over 3 trials" in text
    )  # raw's per-trial gaps 5/4, 15/4, 25/4
    (row,) = list(csv.DictReader(io.StringIO((out / "comparison.csv").read_text())))
    assert row["method"] == "SalUn" and float(row["gap_change_mean"]) == pytest.approx(-13.25 / 3)
    assert row["gap_change_verdict"] == "inconclusive" and row["n_trials"] == "3"
    assert "Sparse against dense" not in text and not (out / "sparsity.csv").exists()  # no dense runs to pair


def test_folders_without_runs_are_one_line_and_nothing_is_written(tmp_path):
    (tmp_path / "empty").mkdir()
    args = [sys.executable, str(SCRIPT), "--tuned", str(tmp_path / "empty"), "--preset", str(tmp_path / "empty")]
    done = subprocess.run(args + ["--retrain", str(tmp_path), "--out", str(tmp_path / "out")], env=ENV,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "--tuned" in done.stderr and "no *_eval.json" in done.stderr
    assert not (tmp_path / "out").exists()
