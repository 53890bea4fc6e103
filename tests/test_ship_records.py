"""scripts/ship_records.py: a sweep's records without its checkpoints, from which report.py gives the same tables."""

import sys
from pathlib import Path

import pytest
from test_report import write_backdoor, write_eval

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import ship_records  # noqa: E402

import report  # noqa: E402
import utils  # noqa: E402


@pytest.fixture
def sweep(tmp_path):
    """Two trials of Retrain and FT, as report.py's tests write them."""
    for seed, (ua, ra) in enumerate([(10, 99), (20, 97)], start=1):
        write_eval(tmp_path, "retrain", seed, ua=100, mia=100, ra=100 - seed, ta=90 + seed)
        write_eval(tmp_path, "FT", seed, ua=ua, mia=2 * ua, ra=ra, ta=93)
    return tmp_path


def tree(folder: Path) -> dict:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_records_are_copied_with_their_paths_and_checkpoints_are_not(sweep, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("shipped")
    (next(sweep.glob("*_FT_1")) / "FTcheckpoint.pth.tar").write_bytes(b"weights")
    (sweep / "prune").mkdir()
    (sweep / "prune" / "imp_results.json").write_text('{"finished": true}')
    (sweep / "prune" / "1model_SA_best.pth.tar").write_bytes(b"mask")
    write_backdoor(sweep, "FT", 1, sa_after=90.0, asr_after=5.0)
    (sweep / "audit").mkdir()
    (sweep / "audit" / "FT_audit.json").write_text('{"method": "FT"}')
    (sweep / "audit" / "FT_outputs.npz").write_bytes(b"logits")
    out = tmp_path / "shipped"
    assert ship_records.main([str(sweep), str(out)]) == {"copied": 7, "records": 7}
    shipped = tree(out)
    assert len(shipped) == 7 and not any(name.endswith((".pth.tar", ".npz")) for name in shipped)
    assert "audit/FT_audit.json" in shipped
    assert all(shipped[name] == (sweep / name).read_bytes() for name in shipped)
    ours = report.main([str(sweep), "--out", str(tmp_path / "a"), "--no-output-metrics"])
    again = report.main([str(out), "--out", str(tmp_path / "b"), "--no-output-metrics"])
    assert ours["rows"] == again["rows"] and ours["backdoor_rows"] == again["backdoor_rows"]
    assert ship_records.main([str(sweep), str(out)]) == {"copied": 0, "records": 7}  # a rerun copies nothing


def test_another_record_behind_the_same_path_is_refused_and_nothing_is_written(sweep, tmp_path_factory, capsys):
    out = tmp_path_factory.mktemp("shipped")
    ship_records.main([str(sweep), str(out)])
    first, *_ = sorted(out.rglob("*_eval.json"))
    first.write_text("{}")
    for path in sorted(out.rglob("*_eval.json"))[1:]:
        path.unlink()
    before = tree(out)
    with pytest.raises(SystemExit) as stopped:
        utils.run_cli(ship_records.main, [str(sweep), str(out)])
    assert stopped.value.code == 2 and "holds another record" in capsys.readouterr().err
    assert tree(out) == before
    with pytest.raises(utils.UsageError, match="no result records"):
        ship_records.main([str(tmp_path_factory.mktemp("empty")), str(out)])
    with pytest.raises(utils.UsageError, match="inside"):
        ship_records.main([str(sweep), str(sweep / "copy")])


RESULTS = ROOT / "docs" / "results"
TUNED = "fashionmnist_tuned"  # held-out trials 2-4 of the tuned comparison: checked by its own test below
SHIPPED_FOLDERS = sorted(path.name for path in RESULTS.iterdir() if path.name != TUNED)


def test_the_folders_the_docs_quote_are_among_those_checked():
    """The parametrised check below runs over whatever docs/results holds: it must find the folders the docs quote."""
    quoted = {
        "fashionmnist_table1", "fashionmnist_random_avx512", "fashionmnist_curve_avx512", "fashionmnist_mask_memory"
    }  # fmt: skip
    assert quoted <= set(SHIPPED_FOLDERS) and (RESULTS / TUNED).is_dir()


@pytest.mark.parametrize("folder", SHIPPED_FOLDERS)
def test_the_shipped_fashionmnist_records_are_three_one_thread_trials_and_give_their_report(
    folder, tmp_path, monkeypatch
):
    """The records behind docs/fashionmnist.md's tables: every group holds trials 1-3, each trained, pruned and
    unlearned with one thread, and report.py turns them into the report shipped beside them (report/{scenario}).
    A folder with unlearn_clean/ (Retrain on masks trained without the forget set) is reported against it."""
    from collections import Counter

    from reporting import collect

    shipped = Path("docs/results") / folder
    monkeypatch.chdir(ROOT)
    clean = shipped / "unlearn_clean"
    runs, problems = collect.load_runs([shipped / "unlearn"] + ([clean] if clean.is_dir() else []))
    assert problems == [] and runs
    assert set(Counter(collect.group_key(run) for run in runs).values()) == {3}
    assert {run_identity_trial(run) for run in runs} == {(1, 1), (2, 2), (3, 3)}
    for run in runs:
        made_by = run["identity"]["inputs"]["mask"]["made_by"]
        assert run["identity"]["args"]["threads"] == made_by["args"]["threads"] == 1
    assert clean.is_dir() == any(run["clean_mask"] for run in runs)
    for scenario in sorted(path.name for path in (shipped / "unlearn").iterdir()):
        paths = [str(shipped / "unlearn" / scenario)]
        if clean.is_dir():
            paths += [str(clean / scenario), "--reference", "clean"]
        result = report.main([*paths, "--out", str(tmp_path / scenario), "--no-output-metrics"])
        assert result["text"] == (shipped / "report" / scenario / "report.md").read_text(), scenario
    if (shipped / "audit").is_dir():  # the per-example audits and their runs
        result = report.main([str(shipped / "audit"), "--out", str(tmp_path / "audit"), "--no-output-metrics"])
        assert result["audits"] and result["text"] == (shipped / "report" / "audit" / "report.md").read_text()


def run_identity_trial(run) -> tuple:
    """(the seed that trained the mask, the unlearning seed)."""
    return run["identity"]["inputs"]["mask"]["made_by"]["args"]["seed"], run["identity"]["args"]["seed"]


def test_the_shipped_tuned_comparison_is_three_held_out_one_thread_trials_and_gives_its_tables(tmp_path, monkeypatch):
    """The records behind docs/tuning.md's table: every method tuned and preset at each sparsity on trials 2-4
    (trial 1 selected the flags), one thread each; report.py and scripts/tuned_table.py rebuild the shipped
    reports and the comparison, with what each study selected, byte for byte."""
    from collections import Counter

    import tuned_table

    from reporting import collect

    shipped = Path("docs/results") / TUNED
    monkeypatch.chdir(ROOT)
    settings = None
    for side in ("tuned", "preset", "unlearn"):
        runs, problems = collect.load_runs([shipped / side])
        assert problems == [] and set(Counter(collect.group_key(run) for run in runs).values()) == {3}
        assert {run_identity_trial(run) for run in runs} == {(2, 2), (3, 3), (4, 4)}
        assert {run["identity"]["args"]["threads"] for run in runs} == {1}
        assert settings in (None, {(run["scenario"], run["sparsity"]) for run in runs})  # the same on every side
        settings = {(run["scenario"], run["sparsity"]) for run in runs}
        if side != "unlearn":
            paths = [str(shipped / "unlearn"), str(shipped / side)]
            result = report.main([*paths, "--out", str(tmp_path / side), "--no-output-metrics"])
            assert result["text"] == (shipped / "report" / side / "report.md").read_text(), side
    folders = {"tuned": "tuned", "preset": "preset", "retrain": "unlearn"}
    sides = [f"--{side}={shipped / folder}" for side, folder in folders.items()]
    rows = tuned_table.main([*sides, "--studies", str(shipped / "studies"), "--out", str(tmp_path / "comparison")])
    assert list(Counter(row["method"] for row in rows).values()) == [len(settings)] * 12  # every method, everywhere
    for name in ("comparison.md", "sparsity.csv"):
        assert (tmp_path / "comparison" / name).read_text() == (shipped / "report" / name).read_text(), name

    def rows(path):  # the lines of the comparison's two tables (not the selections, which start with the scenario)
        return [line for line in path.read_text().splitlines() if line.startswith(("| 95.0% |", "| 0.0% |"))]

    assert sorted(rows(Path("docs/tuning.md"))) == sorted(rows(shipped / "report" / "comparison.md"))  # as they are
