"""report.py on hand-made result files: the numbers are computed by hand."""

import csv
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import report  # noqa: E402
from reporting import collect, document, pairing, tables  # noqa: E402
from training import interrupts  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_eval(
    folder,
    method,
    seed,
    ua,
    mia=50.0,
    ra=99.0,
    ta=94.0,
    rte=1.0,
    ratio=1.0,
    scenario="random",
    dataset="cifar10",
    arch="resnet18",
    **extra_args,
):
    save_dir = Path(folder) / f"{dataset}_{arch}_{scenario}_{ratio}_{method}_{seed}"
    save_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "method": method,
        "scenario": scenario,
        "class_to_replace": 0 if scenario == "class" else -1,
        "num_forget": 4500,
        "forget_indices": [3, 1, 4],
        "remaining_weight_ratio": ratio,
        "seed": seed,
        "split_seed": 1,
        "UA": ua,
        "RA": ra,
        "TA": ta,
        "MIA_efficacy": mia,
        "RTE_min": rte,
        "accuracy": {"retain": ra, "forget": 100 - ua, "val": ta, "test": ta},
        "args": {"dataset": dataset, "arch": arch, "unlearn": method, "seed": seed, "save_dir": str(save_dir)}
        | extra_args,
    }
    path = save_dir / f"{method}_eval.json"
    path.write_text(json.dumps(record))
    return path


def write_backdoor(folder, method, seed, sa_after, asr_after, ratio=1.0):
    save_dir = Path(folder) / f"bd_{ratio}_{method}_{seed}"
    save_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "method": method,
        "SA_before": 94.0,
        "ASR_before": 100.0,
        "SA_after": sa_after,
        "ASR_after": asr_after,
        "ASR_nontarget_before": 99.0,
        "ASR_nontarget_after": 10.0,
        "remaining_weight_ratio": ratio,
        "poisoned_indices": list(range(20)),
        "seed": seed,
        "args": {"dataset": "cifar10", "arch": "resnet18", "class_to_replace": 0},
    }
    (save_dir / f"{method}_backdoor.json").write_text(json.dumps(record))


def row_of(rows, method, sparsity=0.0):
    (row,) = [r for r in rows if r["method"] == method and r["sparsity"] == sparsity]
    return row


@pytest.fixture
def two_methods(tmp_path):
    """Retrain: UA 100,100  MIA 100,100  RA 100,98  TA 90,92.  FT: UA 10,20  MIA 20,40  RA 99,99  TA 95,91."""
    write_eval(tmp_path, "retrain", 1, ua=100, mia=100, ra=100, ta=90, rte=30)
    write_eval(tmp_path, "retrain", 2, ua=100, mia=100, ra=98, ta=92, rte=32)
    write_eval(tmp_path, "FT", 1, ua=10, mia=20, ra=99, ta=95, rte=2)
    write_eval(tmp_path, "FT", 2, ua=20, mia=40, ra=99, ta=91, rte=4)
    return tmp_path


def test_means_sample_stds_gaps_and_avg_gap(two_methods):
    runs, problems = collect.load_runs([two_methods])
    assert problems == []
    rows = collect.summarise(runs)
    ft, retrain = row_of(rows, "FT"), row_of(rows, "retrain")
    assert (ft["UA_mean"], ft["UA_std"], ft["UA_gap"]) == pytest.approx((15.0, math.sqrt(50), 85.0))
    assert ft["UA_std"] == pytest.approx(7.0711, abs=1e-4)
    assert (ft["MIA_mean"], ft["MIA_std"], ft["MIA_gap"]) == pytest.approx((30.0, math.sqrt(200), 70.0))
    assert (ft["RA_mean"], ft["RA_std"], ft["RA_gap"]) == pytest.approx((99.0, 0.0, 0.0))
    assert (ft["TA_mean"], ft["TA_std"], ft["TA_gap"]) == pytest.approx((93.0, math.sqrt(8), 2.0))
    assert ft["avg_gap"] == pytest.approx((85 + 70 + 0 + 2) / 4)
    assert ft["RTE_mean"] == pytest.approx(3.0)
    assert retrain["RA_std"] == pytest.approx(math.sqrt(2))
    assert [retrain[f"{m}_gap"] for m in ("UA", "MIA", "RA", "TA")] == [0.0] * 4
    assert retrain["avg_gap"] == 0.0 and retrain["RTE_mean"] == pytest.approx(31.0)
    assert ft["n_seeds"] == 2 and ft["seeds"] == [1, 2] and ft["name"] == "FT"


def test_markdown_cells(two_methods):
    rows = collect.summarise(collect.load_runs([two_methods])[0])
    text = tables.to_markdown(rows)
    assert "### cifar10 · resnet18 · random forgetting (4500 samples)" in text
    assert (
        "| 0.0% | FT | 15.00±7.07 (85.00) | 30.00±14.14 (70.00) | 99.00±0.00 (0.00) | 93.00±2.83 (2.00) | "
        "39.25 | 3.00 | 2 |" in text
    )
    assert "| 0.0% | Retrain | 100.00±0.00 (0.00) |" in text


def test_one_trial_has_a_blank_std_and_no_interval(tmp_path):
    write_eval(tmp_path, "retrain", 1, ua=5)
    write_eval(tmp_path, "GA", 1, ua=7)
    rows = collect.summarise(collect.load_runs([tmp_path])[0])
    ga = row_of(rows, "GA")
    assert (ga["UA_std"], ga["UA_ci_low"], ga["UA_ci_high"]) == (None, None, None)
    text = tables.to_markdown(rows)
    assert "| GA | 7.00 (2.00) |" in text and "±" not in text and "t-interval" not in text
    (row,) = [r for r in csv.DictReader(io.StringIO(tables.to_csv(rows))) if r["method"] == "GA"]
    assert (row["UA_mean"], row["UA_std"], row["UA_ci_low"]) == ("7.0", "", "")


def test_sparsities_are_separate_rows_each_gapped_to_its_own_retrain(tmp_path):
    write_eval(tmp_path, "retrain", 1, ua=10, ratio=1.0)
    write_eval(tmp_path, "FT", 1, ua=4, ratio=1.0)
    write_eval(tmp_path, "retrain", 1, ua=20, ratio=0.05)
    write_eval(tmp_path, "FT", 1, ua=15, ratio=0.0500004)  # measured ratios differ in the last digits
    rows = collect.summarise(collect.load_runs([tmp_path])[0])
    assert [(r["sparsity"], r["method"]) for r in rows] == [
        (0.0, "retrain"),
        (0.0, "FT"),
        (95.0, "retrain"),
        (95.0, "FT"),
    ]
    assert row_of(rows, "FT", 0.0)["UA_gap"] == pytest.approx(6.0)
    assert row_of(rows, "FT", 95.0)["UA_gap"] == pytest.approx(5.0)


def test_scenarios_and_datasets_are_separate_tables(tmp_path):
    write_eval(tmp_path, "retrain", 1, ua=10)
    write_eval(tmp_path, "retrain", 1, ua=100, scenario="class")
    write_eval(tmp_path, "FT", 1, ua=90, scenario="class")
    write_eval(tmp_path, "retrain", 1, ua=3, dataset="digits", arch="resnet20s")
    rows = collect.summarise(collect.load_runs([tmp_path])[0])
    assert row_of([r for r in rows if r["scenario"] == "class"], "FT")["UA_gap"] == pytest.approx(10.0)
    assert tables.to_markdown(rows).count("### ") == 3


def test_method_order_and_display_names(tmp_path):
    for method in ("zeta", "FT_prune", "raw", "wfisher", "fisher_new", "GA", "FT", "retrain"):
        write_eval(tmp_path, method, 1, ua=1)
    rows = collect.summarise(collect.load_runs([tmp_path])[0])
    assert [r["name"] for r in rows] == ["Retrain", "FT", "GA", "FF", "IU", "ℓ1-sparse", "Original", "zeta"]


def test_missing_retrain_gives_na_and_a_problem(tmp_path):
    write_eval(tmp_path, "FT", 1, ua=10)
    rows = collect.summarise(collect.load_runs([tmp_path])[0])
    assert math.isnan(rows[0]["UA_gap"]) and math.isnan(rows[0]["avg_gap"])
    assert "10.00 (n/a)" in tables.to_markdown(rows)
    (problem,) = pairing.gap_problems(rows)
    assert "no Retrain run" in problem and "sparsity 0.0%" in problem


def test_bad_files_are_problems_not_crashes(tmp_path):
    write_eval(tmp_path, "retrain", 1, ua=10)
    (tmp_path / "broken_eval.json").write_text("{not json")
    (tmp_path / "list_eval.json").write_text("[1, 2]")
    no_ua = json.loads(write_eval(tmp_path / "x", "FT", 1, ua=1).read_text())
    del no_ua["UA"]
    (tmp_path / "x" / "noua_eval.json").write_text(json.dumps(no_ua))
    (tmp_path / "text_backdoor.json").write_text(json.dumps({"method": "FT", "SA_after": "high"}))
    runs, problems = collect.load_runs([tmp_path, tmp_path / "does_not_exist"])
    assert sorted(run["method"] for run in runs) == ["FT", "retrain"]
    assert len(problems) == 5
    joined = "\n".join(problems)
    for expected in ("broken_eval.json", "list_eval.json", "missing key 'UA'", "text_backdoor.json", "does_not_exist"):
        assert expected in joined


def test_duplicates_are_problems_and_other_settings_are_other_rows(tmp_path):
    write_eval(tmp_path / "a", "fisher_new", 1, ua=1, alpha=1e-8)
    write_eval(tmp_path / "b", "fisher_new", 1, ua=2, alpha=1e-8)
    write_eval(tmp_path / "a", "fisher_new", 2, ua=3, alpha=1e-7)
    runs, problems = collect.load_runs([tmp_path])
    assert len(runs) == 2
    assert len(problems) == 1 and "same experiment and trial (--seed 1" in problems[0] and "ignored" in problems[0]
    rows = collect.summarise(runs)
    assert sorted((row["name"], row["UA_mean"]) for row in rows) == [
        ("FF (alpha=1e-07)", 3.0),
        ("FF (alpha=1e-08)", 1.0),
    ]


def test_missing_and_partial_runs(tmp_path):
    for seed in (1, 2, 3):
        write_eval(tmp_path, "retrain", seed, ua=10)
    write_eval(tmp_path, "FT", 1, ua=10)
    write_eval(tmp_path, "FT", 3, ua=10)
    rows = collect.summarise(collect.load_runs([tmp_path])[0])
    partial = pairing.find_missing(rows)
    assert len(partial) == 1 and partial[0].startswith("partial:") and "FT has 2 of 3 seeds (seeds 1, 3)" in partial[0]
    lines = pairing.find_missing(
        rows, expect_methods=["retrain", "FT", "GA"], expect_seeds=[1, 2, 3, 4], expect_sparsities=[0.0, 50.0]
    )
    missing = [line for line in lines if line.startswith("missing:")]
    assert any(line.endswith("sparsity 0.0%, Retrain, seed 4") for line in missing)
    assert any(line.endswith("sparsity 0.0%, FT, seeds 2, 4") for line in missing)
    assert any(line.endswith("sparsity 0.0%, GA, seeds 1, 2, 3, 4") for line in missing)
    assert any(line.endswith("sparsity 50.0%, Retrain, seeds 1, 2, 3, 4") for line in missing)
    assert len(missing) == 6


def test_backdoor_table_means(tmp_path):
    write_backdoor(tmp_path, "FT_prune", 1, sa_after=90, asr_after=10)
    write_backdoor(tmp_path, "FT_prune", 2, sa_after=94, asr_after=20)
    write_backdoor(tmp_path, "FT", 1, sa_after=93, asr_after=80, ratio=0.05)
    rows = collect.summarise_backdoor(collect.load_runs([tmp_path])[0])
    l1 = row_of(rows, "FT_prune")
    assert (l1["SA_after_mean"], l1["SA_after_std"]) == pytest.approx((92.0, math.sqrt(8)))
    assert (l1["ASR_after_mean"], l1["ASR_after_std"]) == pytest.approx((15.0, math.sqrt(50)))
    assert l1["num_poisoned"] == 20 and l1["target"] == 0
    text = tables.backdoor_markdown(rows)
    assert "| 0.0% | ℓ1-sparse | 94.00±0.00 | 100.00±0.00 | 92.00±2.83 | 15.00±7.07 | 2 |" in text
    assert "| 95.0% | FT |" in text


def test_build_report_writes_every_file(two_methods, tmp_path):
    write_eval(two_methods, "FT", 1, ua=30, ratio=0.1)
    write_backdoor(two_methods, "FT", 1, sa_after=90, asr_after=10)
    out = tmp_path / "out"
    result = document.build_report([two_methods], out, expect_seeds=[1, 2])
    names = {path.name for path in result["files"]}
    assert names == {
        "report.md",
        "report.csv",
        "sparsity_effects.csv",
        "runs.csv",
        "backdoor.csv",
        "sparsity_UA.png",
        "sparsity_MIA.png",
        "backdoor_ASR_SA.png",
    }
    for name in ("sparsity_UA.png", "sparsity_MIA.png", "backdoor_ASR_SA.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
        assert (out / name).stat().st_mode & 0o044 == (out / "report.md").stat().st_mode & 0o044  # as readable
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"
    markdown = (out / "report.md").read_text()
    assert "## Missing or partial runs" in markdown and "sparsity 90.0%, FT, seed 2" in markdown
    assert "no Retrain run" in markdown
    table = list(csv.DictReader(io.StringIO((out / "report.csv").read_text())))
    ft = [r for r in table if r["method"] == "FT" and r["sparsity"] == "0.0"][0]
    assert float(ft["UA_mean"]) == 15.0 and float(ft["UA_gap"]) == 85.0 and float(ft["avg_gap"]) == 39.25
    assert ft["n_seeds"] == "2" and ft["name"] == "FT"
    sparse = [r for r in table if r["sparsity"] == "90.0"][0]
    assert math.isnan(float(sparse["UA_gap"]))
    assert "SA_after_mean" in (out / "backdoor.csv").read_text()


def test_cli(two_methods, tmp_path, capsys):
    out = tmp_path / "cli"
    report.main(
        [str(two_methods), "--out", str(out), "--expect-methods", "Retrain,FT", "FF", "--expect-seeds", "1", "2"]
    )
    printed = capsys.readouterr().out
    assert "| 0.0% | FT | 15.00±7.07 (85.00)" in printed
    assert "sparsity 0.0%, FF, seeds 1, 2" in printed
    assert (out / "report.md").is_file() and (out / "report.csv").is_file()


def test_cli_rejects_empty_folder(tmp_path):
    with pytest.raises(report.UsageError, match="no \\*_eval.json"):
        report.main([str(tmp_path)])


@pytest.mark.parametrize(
    "key,value,words",
    [
        ("UA", -500, "'UA' is -500.0, not a percentage"),
        ("RA", 5000, "'RA' is 5000.0, not a percentage"),
        ("TA", float("nan"), "'TA' is nan"),
        ("MIA_efficacy", float("inf"), "'MIA_efficacy' is inf"),
        ("RTE_min", -3, "'RTE_min' is -3.0, not a duration"),
    ],
)
def test_impossible_metrics_are_problems_not_table_cells(tmp_path, key, value, words):
    write_eval(tmp_path, "FT", 1, ua=10)
    write_eval(tmp_path, "FT", 2, ua=20)
    (path,) = [p for p in tmp_path.rglob("FT_eval.json") if "_2" in p.parent.name]
    record = json.loads(path.read_text())
    record[key] = value
    path.write_text(json.dumps(record))  # json writes NaN and Infinity as Python reads them back
    runs, problems = collect.load_runs([tmp_path])
    (row,) = collect.summarise(runs)
    assert (row["n_seeds"], row["UA_mean"]) == (1, 10.0)  # the bad seed is left out, not averaged in
    assert len(problems) == 1 and str(path) in problems[0] and words in problems[0]


def test_a_result_that_is_not_a_regular_file_is_listed_and_not_read(tmp_path):
    import os

    write_eval(tmp_path, "FT", 1, ua=10)
    os.mkfifo(tmp_path / "GA_eval.json")  # reading it would block for ever
    nested = tmp_path / "deep" / "retrain_eval.json"
    nested.parent.mkdir()
    nested.write_text("[" * 100_000 + "]" * 100_000)
    runs, problems = collect.load_runs([tmp_path])
    assert len(runs) == 1
    assert any("GA_eval.json: not a regular file" in p for p in problems)
    assert any("retrain_eval.json: unreadable result" in p for p in problems)


T_975_2DF = 4.302652729911275  # Student t quantile 0.975 at 2 degrees of freedom (tables), not from scipy


def test_intervals_and_paired_changes_equal_a_hand_computation(tmp_path):
    """Three trials dense and 95% sparse: the FT group's t-interval and the paired change of its UA gap."""
    retrain, ft_dense, ft_sparse = [10, 20, 30], [40, 50, 65], [15, 22, 36]
    for seed in (1, 2, 3):
        for ratio, ft in ((1.0, ft_dense), (0.05, ft_sparse)):
            write_eval(tmp_path, "retrain", seed, ua=retrain[seed - 1], ratio=ratio)
            write_eval(tmp_path, "FT", seed, ua=ft[seed - 1], ratio=ratio)
    runs, _ = collect.load_runs([tmp_path])
    row = row_of(collect.summarise(runs), "FT")
    values = np.array(ft_dense, dtype=float)
    half = T_975_2DF * values.std(ddof=1) / math.sqrt(3)
    assert (row["UA_ci_low"], row["UA_ci_high"]) == pytest.approx((values.mean() - half, values.mean() + half))
    (effect,) = [e for e in pairing.sparsity_effects(runs) if e["method"] == "FT"]
    diffs = np.abs(np.subtract(ft_sparse, retrain)) - np.abs(np.subtract(ft_dense, retrain))  # -25, -28, -29
    half = T_975_2DF * diffs.std(ddof=1) / math.sqrt(3)
    assert effect["n_trials"] == 3 and effect["sparsity"] == 95.0
    assert (effect["UA_change"], effect["UA_ci_low"], effect["UA_ci_high"]) == pytest.approx(
        (diffs.mean(), diffs.mean() - half, diffs.mean() + half)
    )
    assert effect["UA_verdict"] == "shrinks" and effect["RA_verdict"] == "inconclusive"  # RA gaps are 0 both
    assert effect["avg_gap_change"] == pytest.approx(diffs.mean() / 4) and effect["avg_gap_verdict"] == "shrinks"
    text = pairing.effects_markdown(pairing.sparsity_effects(runs))
    assert f"| 95.0% | FT | {diffs.mean():+.1f} [{diffs.mean() - half:+.1f}, {diffs.mean() + half:+.1f}] |" in text


def test_a_sparse_method_whose_dense_flags_differ_is_named_as_not_paired(tmp_path):
    """FT set per sparsity (as a tuned method is) cannot be paired by report.py; the report says so, per method,
    while GA, with the same flags at both sparsities, is paired as usual."""
    for seed in (1, 2):
        for ratio, lr in ((1.0, 0.01), (0.05, 0.02)):
            write_eval(tmp_path, "retrain", seed, ua=10, ratio=ratio)
            write_eval(tmp_path, "FT", seed, ua=20, ratio=ratio, unlearn_lr=lr)
            write_eval(tmp_path, "GA", seed, ua=30, ratio=ratio, unlearn_lr=0.001)
        write_eval(tmp_path, "RL", seed, ua=30, ratio=0.05)  # no dense RL at all: nothing to say about it
    runs, _ = collect.load_runs([tmp_path])
    assert [effect["method"] for effect in pairing.sparsity_effects(runs)] == ["GA"]
    assert pairing.unpaired(runs) == ["cifar10/resnet18 random forgetting (4500 samples), sparsity 95.0%, FT"]
    text = document.build_report([tmp_path], tmp_path / "out")["text"]
    assert "Not paired, because no dense run of the same method has the same flags" in text
    assert "\n- cifar10/resnet18 random forgetting (4500 samples), sparsity 95.0%, FT\n" in text


def test_a_gap_that_grows_and_one_trial_get_their_verdicts():
    from evaluation import trial_stats

    assert trial_stats.paired_change([1, 2, 3], [5, 7, 8])["verdict"] == "grows"
    single = trial_stats.paired_change([1], [9])
    assert (single["verdict"], single["std"], single["ci_low"]) == ("inconclusive", None, None)
    assert trial_stats.paired_change([1, 2, 3], [2, 1, 3])["verdict"] == "inconclusive"


def test_runs_csv_has_one_row_per_run_with_its_identity_and_metrics(two_methods, tmp_path):
    write_backdoor(two_methods, "FT", 1, sa_after=90, asr_after=10)
    result = document.build_report([two_methods], tmp_path / "out")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "runs.csv").read_text())))
    runs, _ = collect.load_runs([two_methods])
    assert len(rows) == len(runs) == 5 and sorted(r["path"] for r in rows) == sorted(run["path"] for run in runs)
    ft = [r for r in rows if r["method"] == "FT" and r["kind"] == "unlearn"]
    assert sorted(float(r["UA"]) for r in ft) == [10.0, 20.0] and {r["identity.args.unlearn"] for r in ft} == {"FT"}
    assert {r["identity.kind"] for r in rows} == {"unlearning", "backdoor"}
    backdoor = [r for r in rows if r["kind"] == "backdoor"][0]
    assert float(backdoor["SA_after"]) == 90.0 and backdoor["UA"] == ""
    assert tmp_path / "out" / "runs.csv" in result["files"]


def test_published_csv_keeps_its_header_when_nothing_matches(tmp_path):
    write_eval(tmp_path / "runs", "FT", 1, ua=10, dataset="digits", arch="resnet20s")
    document.build_report([tmp_path / "runs"], tmp_path / "out", with_published=True)
    header = (tmp_path / "out" / "published.csv").read_text().splitlines()
    assert header[0].split(",")[:3] == ["dataset", "arch", "scenario"] and len(header) == 1


def test_a_stop_signal_ends_report_py_with_143_and_writes_nothing(two_methods, tmp_path, monkeypatch, capsys):
    import signal

    import utils

    monkeypatch.setattr(interrupts, "requested", lambda: signal.SIGTERM)
    with pytest.raises(SystemExit) as exit_info:
        argv = [str(two_methods), "--out", str(tmp_path / "out"), "--no-output-metrics"]
        utils.run_cli(report.main, argv, how=report.ENDINGS)
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        exit_info.value.code == 143 and len(err) == 1 and "nothing was written" in err[0] and "--resume" not in err[0]
    )
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


AUDIT = {
    "method": "FT",
    "num_models": 2,
    "method_vs_retrain": {
        "attack_accuracy": {"mean": 0.7, "q10": 0.5, "q90": 0.9},
        "epsilon": {"mean": 1.0},
        "largest_measurable_epsilon": 2.0,
    },
    "noise_floor": None,
}


@pytest.mark.parametrize(
    "change,words",
    [
        ({"num_models": "2"}, "'num_models' '2'"),
        ({"num_models": 10**10}, "'num_models' is 10000000000, outside 2..10000"),
        ({"method_vs_retrain": {"attack_accuracy": {"mean": 0.7, "q10": 0.5, "q90": 0.9}}}, "epsilon.mean"),
        ({"noise_floor": {"attack_accuracy": {}}}, "noise_floor.attack_accuracy.mean"),
    ],
)
def test_a_damaged_audit_result_is_a_problem_and_the_report_goes_on(two_methods, tmp_path, change, words):
    (two_methods / "FT_audit.json").write_text(json.dumps({**AUDIT, **change}))
    result = document.build_report([two_methods], tmp_path / "out")
    assert result["audits"] == [] and len(result["rows"]) == 2
    assert any("FT_audit.json: unusable audit result" in p and words in p for p in result["problems"])


def test_a_backdoor_record_whose_target_is_a_list_is_a_problem(tmp_path):
    write_backdoor(tmp_path, "FT", 1, sa_after=90, asr_after=10)
    (path,) = tmp_path.rglob("FT_backdoor.json")
    record = json.loads(path.read_text())
    record["args"]["class_to_replace"] = [0, 1]
    path.write_text(json.dumps(record))
    runs, problems = collect.load_runs([tmp_path])
    assert runs == [] and len(problems) == 1 and "'class_to_replace' is [0, 1], not an integer" in problems[0]


def test_a_well_formed_audit_result_is_read(two_methods, tmp_path):
    (two_methods / "FT_audit.json").write_text(json.dumps(AUDIT))
    result = document.build_report([two_methods], tmp_path / "out")
    (row,) = result["audits"]
    assert (row["method"], row["N"], row["accuracy"]["mean"], row["floor"]) == ("FT", 2, 0.7, None)


def test_the_interval_band_is_cut_to_the_percent_range_and_kept_inside_it():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reporting import plots

    rows = [
        {"method": "FT", "name": "FT", "sparsity": s, "UA_mean": m, "UA_ci_low": lo, "UA_ci_high": hi}
        for s, m, lo, hi in [(0.0, 48.0, 15.2, 80.8), (95.0, 97.0, 45.8, 109.6), (99.0, 1.0, -4.0, 6.0)]
    ]
    fig, ax = plt.subplots()
    try:
        ((x, low, high),) = plots._method_lines(ax, rows, "UA")
    finally:
        plt.close(fig)
    assert list(x) == [0.0, 95.0, 99.0]
    assert list(low) == [15.2, 45.8, 0.0] and list(high) == [80.8, 100.0, 6.0]
    no_interval = [{**rows[0], "UA_ci_low": None, "UA_ci_high": None}]
    fig, ax = plt.subplots()
    try:
        assert plots._method_lines(ax, no_interval, "UA") == []
    finally:
        plt.close(fig)
