"""Published results beside ours: the paper's and SalUn's CIFAR-10 tables (``reference/published.csv``).

A report row (one setting, sparsity and method, averaged over seeds) is compared with every published
row of the same dataset, architecture, scenario, forget-set size, sparsity and method; settings that
no table covers are simply not compared.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from utils import UsageError

PUBLISHED_FILE = Path(__file__).resolve().parents[1] / "reference" / "published.csv"
METRICS = ("UA", "MIA", "RA", "TA", "RTE")  # report.py's short names; MIA is MIA-Efficacy


def load(path=PUBLISHED_FILE) -> list[dict]:
    """The published rows: source, setting, method, metric, mean and std (None when not given)."""
    try:
        lines = [line for line in Path(path).read_text().splitlines() if line and not line.startswith("#")]
        records = list(csv.DictReader(lines))
        return [
            {
                **record,
                "num_forget": int(record["num_forget"]),
                "sparsity": float(record["sparsity"]),
                "mean": float(record["mean"]),
                "std": float(record["std"]) if record["std"] else None,
            }
            for record in records
        ]
    except (OSError, KeyError, ValueError) as err:
        raise UsageError(f"published results '{path}' cannot be read ({err}); restore it from the repository") from None


def _key(row: dict) -> tuple:
    return (row["dataset"], row["arch"], row["scenario"], row["num_forget"], float(row["sparsity"]), row["method"])


# published.csv's columns, written even when nothing matched (an empty table keeps its header)
CSV_COLUMNS = (
    "dataset", "arch", "scenario", "num_forget", "sparsity", "method", "metric",
    "ours", "ours_std", "published", "published_std", "difference", "source",
)  # fmt: skip


def compare(rows: list[dict], published: list[dict]) -> tuple[list[dict], list[str]]:
    """(one line per matching metric: ours, published, difference, source; the settings with no reference)."""
    by_key = {}
    for record in published:
        by_key.setdefault(_key(record), []).append(record)
    lines, unmatched = [], []
    for row in rows:
        matches = by_key.get(_key(row), [])
        if not matches:
            setting = f"{row['dataset']} · {row['arch']} · {row['scenario']} ({row['num_forget']} forgotten)"
            unmatched += [setting] if setting not in unmatched else []
            continue
        for record in matches:
            ours = row[f"{record['metric']}_mean"]
            lines.append(
                {
                    "dataset": row["dataset"],
                    "arch": row["arch"],
                    "scenario": row["scenario"],
                    "num_forget": row["num_forget"],
                    "sparsity": row["sparsity"],
                    "method": row["name"],
                    "metric": record["metric"],
                    "ours": ours,
                    "ours_std": row.get(f"{record['metric']}_std", math.nan),
                    "published": record["mean"],
                    "published_std": record["std"],
                    "difference": ours - record["mean"],
                    "source": record["source"],
                }
            )
    order = {metric: index for index, metric in enumerate(METRICS)}
    lines.sort(
        key=lambda line: (line["source"], line["scenario"], line["sparsity"], line["method"], order[line["metric"]])
    )
    return lines, unmatched


def _value(mean, std) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.2f}"
    return f"{mean:.2f}±{std:.2f}"


def to_markdown(lines: list[dict], unmatched: list[str]) -> str:
    """The comparison table, then the settings with no published reference."""
    parts = []
    if lines:
        header = "| Table | Scenario | Sparsity | Method | Metric | Ours | Published | Ours − published |\n"
        header += "|---|---|---:|---|---|---:|---:|---:|\n"
        body = "".join(
            f"| {line['source']} | {line['scenario']} ({line['num_forget']}) | {line['sparsity']:.1f}% | "
            f"{line['method']} | {line['metric']} | {_value(line['ours'], line['ours_std'])} | "
            f"{_value(line['published'], line['published_std'])} | {line['difference']:+.2f} |\n"
            for line in lines
        )
        parts.append(header + body)
    if unmatched:
        parts.append("No published reference for: " + "; ".join(unmatched) + ".\n")
    return "\n".join(parts) if parts else "No results to compare.\n"
