"""report.py --published: the paper's and SalUn's CIFAR-10 numbers beside made-up results of ours."""

import csv

import pytest
from test_report import write_eval

from reporting import document, published


def test_the_published_file_holds_both_tables():
    rows = published.load()
    assert len(rows) == 200
    paper = [row for row in rows if row["source"] == "paper Table 1"]
    assert len(paper) == 2 * 5 * 10  # scenarios x methods x (4 metrics x 2 sparsities + RTE x 2)
    ft_class_sparse = [
        r for r in paper if (r["scenario"], r["method"], r["metric"], r["sparsity"]) == ("class", "FT", "UA", 95)
    ]
    assert [(r["mean"], r["std"]) for r in ft_class_sparse] == [(73.64, 9.46)]
    salun = {
        (row["method"], row["metric"]): row["mean"]
        for row in rows
        if row["source"].startswith("SalUn") and row["num_forget"] == 4500
    }
    assert salun[("SalUn", "UA")] == 2.85 and salun[("FT_prune", "MIA")] == 9.84 and salun[("retrain", "RTE")] == 43.29


def test_report_puts_published_values_and_differences_beside_ours(tmp_path):
    for seed, ua in ((1, 20.0), (2, 30.0)):
        write_eval(tmp_path / "runs", "FT", seed, ua, mia=70.0, ra=99.0, ta=94.0, rte=2.0, scenario="class")
        write_eval(tmp_path / "runs", "retrain", seed, 100.0, mia=100.0, ra=100.0, ta=95.0, rte=40.0, scenario="class")
        write_eval(tmp_path / "runs", "FT", seed, 70.0, ratio=0.05, scenario="class")
        write_eval(tmp_path / "runs", "FT", seed, 5.0, scenario="random")
        write_eval(tmp_path / "runs", "FT", seed, 1.0, scenario="random", dataset="digits", arch="resnet20s")
    built = document.build_report([str(tmp_path / "runs")], tmp_path / "out", with_published=True)
    lines = {(x["source"], x["scenario"], x["sparsity"], x["method"], x["metric"]): x for x in built["published"]}
    dense_ft_ua = lines[("paper Table 1", "class", 0.0, "FT", "UA")]
    assert dense_ft_ua["ours"] == 25.0 and dense_ft_ua["published"] == 22.53
    assert dense_ft_ua["difference"] == pytest.approx(25.0 - 22.53)
    assert lines[("paper Table 1", "class", 95.0, "FT", "UA")]["difference"] == pytest.approx(70.0 - 73.64)
    assert lines[("paper Table 1", "class", 0.0, "Retrain", "RTE")]["published"] == 43.23
    # dense random 10% FT is in both tables, each row naming its source
    assert lines[("paper Table 1", "random", 0.0, "FT", "UA")]["published"] == 6.83
    assert lines[("SalUn Table 1 (random 10%)", "random", 0.0, "FT", "UA")]["published"] == 0.63
    # digits is in no table: not compared, and said so
    assert not [line for line in built["published"] if line["dataset"] == "digits"]
    assert "No published reference for: digits · resnet20s · random (4500 forgotten)" in built["text"]
    assert "| paper Table 1 | class (4500) | 95.0% | FT | UA | 70.00±0.00 | 73.64±9.46 | -3.64 |" in built["text"]
    with open(tmp_path / "out" / "published.csv") as handle:
        assert len(list(csv.DictReader(handle))) == len(built["published"])


def test_without_the_flag_nothing_is_compared(tmp_path):
    write_eval(tmp_path / "runs", "FT", 1, 20.0, scenario="class")
    built = document.build_report([str(tmp_path / "runs")], tmp_path / "out")
    assert built["published"] == [] and "Published results" not in built["text"]
    assert not (tmp_path / "out" / "published.csv").exists()
