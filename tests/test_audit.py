"""The per-example audit: its statistics on synthetic scores, --save_outputs, and main_audit.py end to end."""

import itertools
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ARCH
from scipy.stats import norm

import main_audit
import main_forget
import report
from evaluation import audit_stats
from evaluation.outputs import KEYS, load_outputs, sampled_test_indices, save_outputs
from experiments import audit
from reporting import audit_report
from training import interrupts
from utils import UsageError

RUN_ARGS = " ".join(ARCH)


@pytest.fixture(scope="module")
def trained_mask(tmp_path_factory):
    """A dense model that knows digits (conftest's one-epoch model does not): three epochs, one round."""
    import main_imp

    out = tmp_path_factory.mktemp("dense")
    main_imp.main(
        [*ARCH, "--epochs", "3", "--lr", "0.05", "--decreasing_lr", "2", "--pruning_times", "1", "--save_dir", str(out)]
    )
    return out / "0model_SA_best.pth.tar"


def gaussians(mean_a, mean_b, models, examples, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(mean_a, 1.0, (models, examples)), rng.normal(mean_b, 1.0, (models, examples))


def test_scaled_confidence_is_the_log_odds_and_stays_finite():
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0], [100.0, 0.0, 0.0]])
    labels = np.array([0, 2, 0])
    phi = audit_stats.scaled_confidence(logits, labels)
    p = torch.softmax(torch.tensor(logits[:2]), 1).numpy()[[0, 1], labels[:2]]
    assert phi[:2] == pytest.approx(np.log(p / (1 - p)))
    assert phi[2] == pytest.approx(100 - np.log(2))  # p_y rounds to 1 in float64; φ does not


def test_equal_variances_make_the_ratio_test_a_midpoint_rule():
    x = np.linspace(-5, 7, 1001)
    ratio = audit_stats.gaussian_log_ratio(x, 0.0, 1.7, 2.0, 1.7)
    assert np.array_equal(ratio > 0, x < 1.0)  # side A (mean 0) below the midpoint 1


def test_lira_accuracy_matches_the_closed_form():
    # 300 models a side: the fitted Gaussians are close to the true ones, so the accuracy is Φ(|μ1 - μ0| / 2σ)
    side_a, side_b = gaussians(0.0, 1.0, models=300, examples=300)
    accuracy = audit_stats.lira_accuracy(side_a, side_b)
    assert accuracy.mean() == pytest.approx(norm.cdf(0.5), abs=0.01)


def test_the_same_distribution_on_both_sides_is_the_noise_floor():
    side_a, side_b = gaussians(0.0, 0.0, models=200, examples=300)
    accuracy = audit_stats.lira_accuracy(side_a, side_b)
    assert accuracy.mean() == pytest.approx(0.5, abs=0.02)  # the sd of one example's accuracy is ~0.035
    epsilon = audit_stats.epsilon_estimate(side_a, side_b)
    # the Clopper-Pearson bounds keep ε at 0 unless the sides differ beyond 400 models' sampling noise
    assert epsilon.mean() < 0.05 and np.quantile(epsilon, 0.5) == 0.0
    assert epsilon.max() < audit_stats.largest_epsilon(200, 200) / 3


def test_separated_distributions_are_always_told_apart():
    side_a, side_b = gaussians(0.0, 10.0, models=20, examples=50)
    assert np.all(audit_stats.lira_accuracy(side_a, side_b) == 1.0)
    assert np.all(audit_stats.lira_accuracy(side_b, side_a) == 1.0)
    epsilon = audit_stats.epsilon_estimate(side_a, side_b)
    assert epsilon == pytest.approx(np.full(50, audit_stats.largest_epsilon(20, 20)))
    # 20 models a side: the rates cannot be bounded below 1 - 0.025^(1/20) = 0.168, hence ε <= log(0.832/0.168)
    assert audit_stats.largest_epsilon(20, 20) == pytest.approx(np.log((1 - 1e-5 - 0.1684) / 0.1684), abs=1e-3)


def test_clopper_pearson_upper_bounds():
    assert audit_stats.clopper_pearson_upper(0, 10) == pytest.approx(1 - 0.025**0.1)
    assert audit_stats.clopper_pearson_upper(10, 10) == 1.0
    assert audit_stats.clopper_pearson_upper(5, 10) == pytest.approx(0.8129, abs=1e-4)


def test_a_deterministic_side_with_zero_variance_is_handled():
    side_a = np.zeros((3, 4))  # e.g. raw: every run is the same model
    side_b = np.random.default_rng(0).normal(-5.0, 1.0, (3, 4))
    assert np.all(audit_stats.lira_accuracy(side_a, side_b) == 1.0)


def test_the_noise_floor_averages_over_halvings_so_a_few_unusual_models_do_not_make_a_difference():
    rng = np.random.default_rng(3)
    # 10 Retrain runs of 100 examples; runs 8-10 are far less confident on every example (a model-level shift)
    retrain = rng.normal(0.0, 1.0, (10, 100)) + np.array([0.0] * 7 + [-12.0] * 3)[:, None]
    one_split = audit_stats.lira_accuracy(retrain[:5], retrain[5:]).mean()  # all three unusual runs on one side
    every_split = np.mean(
        [
            audit_stats.lira_accuracy(retrain[list(half)], np.delete(retrain, list(half), axis=0)).mean()
            for half in itertools.combinations(range(10), 5)
        ]
    )
    floor = audit.noise_floor(retrain)
    # 20 random halvings estimate the mean over all 252 of them; the one unlucky split reads far higher
    assert floor["attack_accuracy"]["mean"] == pytest.approx(every_split, abs=0.02)
    assert one_split > floor["attack_accuracy"]["mean"] + 0.1
    assert floor["models"] == [5, 5] and floor["splits"] == 20
    assert len(floor["per_example"]["attack_accuracy"]) == 100
    assert audit.noise_floor(retrain) == floor  # seeded
    assert audit.noise_floor(retrain[:3]) is None


def test_pass_through_flags_may_not_set_what_the_audit_sets():
    with pytest.raises(UsageError, match="--seed"):
        audit.split_flags("--unlearn_epochs 2 --seed 3", "--method-args")
    with pytest.raises(UsageError, match="--save_dir"):
        audit.split_flags("--save_dir=x", "--retrain-args")


# ----------------------------------------------------------------------------- on digits


def test_save_outputs_writes_the_logits_of_the_forget_set_and_the_test_sample(omp_dir, tmp_path):
    argv = [*ARCH, "--mask", str(omp_dir / "1model_SA_best.pth.tar"), "--unlearn", "raw", "--save_outputs"]
    main_forget.main([*argv, "--class_to_replace", "-1", "--num_indexes_to_replace", "40", "--save_dir", str(tmp_path)])
    saved = json.loads((tmp_path / "raw_eval.json").read_text())
    with np.load(tmp_path / "raw_outputs.npz", allow_pickle=False) as outputs:
        assert sorted(outputs.files) == sorted(KEYS)
        assert outputs["forget_logits"].shape == (40, 10) and outputs["forget_logits"].dtype == np.float32
        assert outputs["forget_indices"].tolist() == saved["forget_indices"]
        test_indices = outputs["test_indices"]
        assert outputs["test_logits"].shape == (len(test_indices), 10) and outputs["test_labels"].shape == (
            len(test_indices),
        )
    assert (
        np.array_equal(test_indices, sampled_test_indices(360)) and len(test_indices) == 360
    )  # digits: 360 test samples
    accuracy = (outputs_forget := load_outputs(tmp_path / "raw_outputs.npz"))["forget_logits"].argmax(1)
    assert 100 * np.mean(accuracy == outputs_forget["forget_labels"]) == pytest.approx(saved["accuracy"]["forget"])
    assert not list(tmp_path.glob(".*.tmp"))


def test_test_sample_is_fixed_sorted_and_capped():
    assert (
        np.array_equal(sampled_test_indices(10000), sampled_test_indices(10000))
        and len(sampled_test_indices(10000)) == 1000
    )
    assert np.all(np.diff(sampled_test_indices(10000)) > 0)


def test_save_outputs_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "raw_outputs.npz"
    path.write_bytes(b"old")
    outputs = {key: np.zeros(3, dtype=np.int64) for key in KEYS}

    def fail(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        save_outputs(outputs, path)
    assert path.read_bytes() == b"old" and not list(tmp_path.glob(".*.tmp"))


def test_audit_of_raw_against_retrain_class_wise_and_its_reuse(trained_mask, tmp_path):
    argv = [
        *("--mask", str(trained_mask), "--unlearn", "raw", "-N", "3"),
        *("--save_dir", str(tmp_path), "--run-args", RUN_ARGS, "--retrain-args", "--unlearn_epochs 1"),
        *("--class_to_replace", "3"),
    ]
    first = main_audit.main(argv)
    assert first["runs"] == {"ran": 6, "resumed": 0, "reused": 0}
    written = json.loads((tmp_path / "raw_audit.json").read_text())
    accuracy = written["method_vs_retrain"]["attack_accuracy"]
    # raw still knows class 3, Retrain never saw it: told apart on (nearly) every example
    assert accuracy["mean"] >= 0.95 and accuracy["q10"] >= 5 / 6
    assert len(written["forget_indices"]) == len(written["method_vs_retrain"]["per_example"]["attack_accuracy"])
    assert written["noise_floor"] is None  # 3 retrain runs: a half of 1 cannot be fitted leave-one-out
    assert (tmp_path / "raw_audit_accuracy.png").stat().st_size > 1000
    control = check_the_test_control(tmp_path, written)

    logs = {path: path.read_text() for path in tmp_path.glob("*/seed*/log.txt")}
    stamps = {path: path.stat().st_mtime_ns for path in tmp_path.glob("*/seed*/*_outputs.npz")}
    assert len(logs) == 6 and len(stamps) == 6
    assert main_audit.main(argv)["runs"] == {"ran": 0, "resumed": 0, "reused": 6}
    assert {path: path.read_text() for path in logs} == logs  # no subprocess started
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps

    (tmp_path / "retrain" / "seed2" / "retrain_outputs.npz").unlink()  # as if stopped after its checkpoint
    assert main_audit.main(argv)["runs"] == {"ran": 0, "resumed": 1, "reused": 5}
    log = (tmp_path / "retrain" / "seed2" / "log.txt").read_text()
    starts = [line for line in log.splitlines() if line.startswith("=== ") and not line.startswith(audit.EXIT_MARK)]
    assert len(starts) == 2 and "--resume" in starts[-1] and "resumed the finished unlearning step" in log

    # a second method in the same folder, two runs at once: its own runs, the same Retrain runs
    retrain_stamps = {path: path.stat().st_mtime_ns for path in (tmp_path / "retrain").glob("seed*/*_outputs.npz")}
    second = [*argv[:3], "GA", *argv[4:], "--method-args", "--unlearn_epochs 1", "--jobs", "2"]
    assert main_audit.main(second)["runs"] == {"ran": 3, "resumed": 0, "reused": 3}
    assert {path: path.stat().st_mtime_ns for path in retrain_stamps} == retrain_stamps
    assert len(list((tmp_path / "GA").glob("seed*/GA_outputs.npz"))) == 3
    assert json.loads((tmp_path / "GA_audit.json").read_text())["method"] == "GA"
    assert json.loads((tmp_path / "raw_audit.json").read_text())["method"] == "raw"  # untouched

    # report.py: the runs' usual table, and one audit line per method beside its MIA-Efficacy
    reported = report.main([str(tmp_path), "--out", str(tmp_path / "report"), "--no-output-metrics"])
    lines = {row["method"]: row for row in reported["audits"]}
    assert sorted(lines) == ["GA", "raw"] and lines["raw"]["N"] == 3 and lines["raw"]["scenario"] == "class 3"
    assert lines["raw"]["accuracy"]["mean"] == written["method_vs_retrain"]["attack_accuracy"]["mean"]
    assert lines["raw"]["control"] == pytest.approx(control) and lines["raw"]["reference"] == "Retrain"
    raw_evals = [json.loads(p.read_text()) for p in tmp_path.glob("raw/seed*/raw_eval.json")]
    assert lines["raw"]["MIA"] == pytest.approx(np.mean([record["MIA_efficacy"] for record in raw_evals]))
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Per-example audit" in text and text.count("| digits | class 3 (") == 2

    # damaged files in the folder: one line and exit 2 each, never a traceback
    result = tmp_path / "raw" / "seed1" / "raw_eval.json"
    result.write_text(result.read_text()[:40])  # truncated
    with pytest.raises(UsageError, match="raw_eval.json' cannot be read"):
        main_audit.main(argv)
    (tmp_path / "raw" / "seed1" / "audit_run.json").write_text("{not json")
    with pytest.raises(UsageError, match="audit_run.json' cannot be read"):
        main_audit.main(argv)


def check_the_test_control(folder, written) -> float:
    """The control is the same test on the fixed test sample, from the runs' saved test logits; its mean."""
    control = written["test_control"]
    assert control["test_indices"] == sampled_test_indices(360).tolist() and control["noise_floor"] is None
    sides = []
    for side in ("raw", "retrain"):
        outputs = [load_outputs(folder / side / f"seed{k}" / f"{side}_outputs.npz") for k in (1, 2, 3)]
        sides.append(np.stack([audit_stats.scaled_confidence(o["test_logits"], o["test_labels"]) for o in outputs]))
    expected = audit_stats.lira_accuracy(*sides)
    assert control["method_vs_retrain"]["per_example"]["attack_accuracy"] == pytest.approx(expected.tolist())
    return float(expected.mean())


def test_a_drawn_forget_set_is_drawn_once_for_every_run(tmp_path):
    args = main_audit.make_parser().parse_args(
        [
            *("--mask", "m.pth.tar", "--unlearn", "FT", "-N", "3", "--save_dir", str(tmp_path)),
            *("--run-args", RUN_ARGS, "--class_to_replace", "-1", "--num_indexes_to_replace", "50"),
        ]
    )
    runs = audit.plan(args, log=lambda line: None)
    path = tmp_path / "forget_indices_c-1_n50_seed1.npy"
    indices = np.load(path, allow_pickle=False)
    assert len(indices) == 50 and len(np.unique(indices)) == 50
    assert all(run.args[run.args.index("--indexes_to_replace") + 1] == str(path) for run in runs)
    assert [(run.side, run.seed) for run in runs] == [(s, k) for s in ("method", "retrain") for k in (1, 2, 3)]
    assert all(run.args[run.args.index("--train_seed") + 1] == str(run.seed) for run in runs)


def test_retrain_is_refused_as_the_audited_method_unless_against_a_clean_mask(tmp_path):
    argv = ["--mask", "m.pth.tar", "--unlearn", "retrain", "--save_dir", str(tmp_path), "--class_to_replace", "3"]
    with pytest.raises(UsageError, match="reference side"):
        main_audit.main(argv)
    args = main_audit.make_parser().parse_args([*argv, "-N", "2", "--reference-mask", "clean.pth.tar"])
    runs = audit.plan(args, log=lambda line: None)
    masks = {(run.side, run.args[run.args.index("--mask") + 1], run.save_dir.parent.name) for run in runs}
    assert masks == {("method", "m.pth.tar", "retrain"), ("retrain", "clean.pth.tar", "retrain_clean")}


def test_an_audit_against_a_clean_mask_reads_the_reference_side_from_its_own_folder(tmp_path):
    """--reference-mask: the audited side is Retrain on the inherited mask (retrain/), the reference the clean
    Retrain (retrain_clean/); the table's bracketed numbers are the clean side's. Without a control: n/a."""
    summary = {"mean": 0.75, "q10": 0.5, "q90": 1.0}
    record = {
        "method": "retrain", "num_models": 2, "mask": "inherited.pth.tar", "reference_mask": "clean.pth.tar",
        "forget": {"class_to_replace": -1, "num_indexes_to_replace": 5}, "noise_floor": None,
        "method_vs_retrain": {"attack_accuracy": summary, "epsilon": {"mean": 0.1}, "largest_measurable_epsilon": 0},
    }  # fmt: skip
    (tmp_path / "retrain_audit.json").write_text(json.dumps(record))
    for folder, mia in (("retrain", [10.0, 20.0]), ("retrain_clean", [30.0, 50.0])):
        for seed, value in enumerate(mia, start=1):
            (tmp_path / folder / f"seed{seed}").mkdir(parents=True)
            evaluation = {"MIA_efficacy": value, "UA": value / 10, "paper_name": "Retrain", "dataset": "digits"}
            (tmp_path / folder / f"seed{seed}" / "retrain_eval.json").write_text(json.dumps(evaluation))
    row = audit_report.audit_row(tmp_path / "retrain_audit.json")
    assert (row["MIA"], row["MIA_retrain"], row["UA"], row["UA_retrain"]) == (15.0, 40.0, 1.5, 4.0)
    assert row["name"] == "Retrain (inherited mask)" and row["reference"] == "clean Retrain" and row["control"] is None
    line = audit_report.audit_markdown([row]).splitlines()[-1]
    assert "| Retrain (inherited mask) | clean Retrain | 2 | 0.750 (0.50–1.00) | n/a | n/a |" in line


def test_slurm_dry_run_writes_one_array_of_the_pending_runs(tmp_path, capsys):
    argv = [
        *("--mask", "m.pth.tar", "--unlearn", "FT", "-N", "2", "--save_dir", str(tmp_path), "--run-args", RUN_ARGS),
        *("--class_to_replace", "3", "--slurm", "--slurm-gpus", "0", "--dry-run"),
    ]
    (tmp_path / "retrain" / "seed2").mkdir(parents=True)
    (tmp_path / "retrain" / "seed2" / "retrain_outputs.npz").write_bytes(b"")  # finished: not submitted
    assert main_audit.main(argv) == 0
    commands = (tmp_path / "FT_audit.commands").read_text().splitlines()
    dirs = (tmp_path / "FT_audit.dirs").read_text().splitlines()
    assert len(commands) == 3 and dirs == [str(tmp_path / d) for d in ("FT/seed1", "FT/seed2", "retrain/seed1")]
    assert all("main_forget.py" in line and "--save_outputs" in line for line in commands)
    assert "--seed 2 --train_seed 2" in commands[1]
    script = (tmp_path / "FT_audit.sbatch").read_text()
    assert "#SBATCH --array=0-2" in script and "--gres" not in script and audit.EXIT_MARK in script
    assert "would run: sbatch --parsable" in capsys.readouterr().out


def test_the_report_names_how_the_forget_set_was_chosen():
    title = audit_report.forget_title
    assert title({"forget": {"class_to_replace": -1, "num_indexes_to_replace": 129}}, {}) == "random"
    assert title({"forget": {"class_to_replace": 2, "num_indexes_to_replace": None}}, {}) == "class 2"
    assert title({"forget": {"class_to_replace": 2, "num_indexes_to_replace": 40}}, {}) == "part of class 2"
    assert title({}, {"scenario": "indices"}) == "indices"  # an audit written before the field existed


def test_a_stop_signal_starts_no_further_run_and_exits_143(trained_mask, tmp_path, monkeypatch, capsys):
    import signal

    import utils

    monkeypatch.setattr(interrupts, "requested", lambda: signal.SIGTERM)
    argv = ["--mask", str(trained_mask), "--unlearn", "raw", "-N", "2", "--save_dir", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        argv += ["--run-args", RUN_ARGS, "--class_to_replace", "3"]
        utils.run_cli(main_audit.main, argv, how=main_audit.ENDINGS)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 143 and len(err) == 1 and "rerun the same command" in err[0]
    assert not list(tmp_path.glob("*/seed*/log.txt"))  # no run was started


def test_the_audit_figure_draws_the_forget_set_the_control_and_the_floor_of_each_audit(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import audit_figure

    def result(mean):
        return {"attack_accuracy": {"mean": mean}}

    paths = []
    for name, (forget, test, floor) in {"a": (0.9, 0.6, 0.45), "b": (0.2, 0.4, 0.5)}.items():
        record = {"method_vs_retrain": result(forget), "noise_floor": result(floor)}
        record["test_control"] = {"method_vs_retrain": result(test)}
        paths.append(tmp_path / f"{name}_audit.json")
        paths[-1].write_text(json.dumps(record))
    out = tmp_path / "figure.png"
    bars = audit_figure.main([*map(str, paths), "--labels", "A", "B", "--out", str(out)])
    assert bars == [[0.9, 0.6, 0.45], [0.2, 0.4, 0.5]] and out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(UsageError, match="one label per audit"):
        audit_figure.main([*map(str, paths), "--labels", "A", "--out", str(out)])
    paths[1].write_text(json.dumps({"method_vs_retrain": result(0.2), "noise_floor": None}))
    with pytest.raises(UsageError, match="no test examples"):
        audit_figure.main([*map(str, paths), "--labels", "A", "B", "--out", str(out)])
