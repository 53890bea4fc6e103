"""The per-example audit's table in report.py: one line per ``{method}_audit.json`` under the report's folders.

Each line sets the audit's numbers (per-example attack accuracy and ε of the method's N runs against the
N Retrain runs, and the Retrain-vs-Retrain noise floor) beside the population MIA-Efficacy and UA of the
same runs, read from their ``_eval.json`` files, so the two orderings of the methods can be compared.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from utils import UsageError


def find_audits(paths) -> list[Path]:
    found = set()
    for path in map(Path, paths):
        if path.is_dir():
            found.update(path.rglob("*_audit.json"))
        elif path.name.endswith("_audit.json"):
            found.add(path)
    return sorted(found)


def _evals(save_dir: Path, method: str, count: int) -> list[dict]:
    """The _eval.json of the runs seed1..seedN of one side (those present)."""
    files = [save_dir / method / f"seed{seed}" / f"{method}_eval.json" for seed in range(1, count + 1)]
    return [json.loads(file.read_text()) for file in files if file.is_file()]


def _mean(records: list[dict], key: str) -> float:
    return float(np.mean([record[key] for record in records])) if records else float("nan")


def forget_title(audit: dict, first: dict) -> str:
    """How the forget set was chosen: a whole class, a random draw from D, or a draw from one class."""
    forget = audit.get("forget") or {}
    if "class_to_replace" not in forget:
        return first.get("scenario", "?")
    if forget["class_to_replace"] == -1:
        return "random"
    whole = forget.get("num_indexes_to_replace") is None
    return f"class {forget['class_to_replace']}" if whole else f"part of class {forget['class_to_replace']}"


def audit_row(path: Path) -> dict:
    """One audit's numbers and setting, from its JSON and its runs' evaluation files."""
    try:
        audit = json.loads(path.read_text())
        method, count = audit["method"], audit["num_models"]
        versus, floor = audit["method_vs_retrain"], audit["noise_floor"]
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(f"'{path}' is not a main_audit.py result ({error}); remove it or rerun the audit") from None
    runs, retrain = _evals(path.parent, method, count), _evals(path.parent, "retrain", count)
    first = (runs or retrain or [{}])[0]
    return {
        "folder": str(path.parent),
        "dataset": first.get("dataset", "?"),
        "scenario": forget_title(audit, first),
        "num_forget": first.get("num_forget", len(audit.get("forget_indices", []))),
        "sparsity": round(100.0 * (1.0 - first.get("remaining_weight_ratio", float("nan"))), 1),
        "method": method,
        "name": first.get("paper_name", method),
        "N": count,
        "accuracy": versus["attack_accuracy"],
        "epsilon": versus["epsilon"],
        "epsilon_cap": versus["largest_measurable_epsilon"],
        "floor": None if floor is None else floor["attack_accuracy"]["mean"],
        "MIA": _mean(runs, "MIA_efficacy"),
        "MIA_retrain": _mean(retrain, "MIA_efficacy"),
        "UA": _mean(runs, "UA"),
        "UA_retrain": _mean(retrain, "UA"),
    }


def audit_markdown(rows: list[dict]) -> str:
    """A Markdown table: per setting, each audited method's per-example scores beside its MIA-Efficacy."""
    header = [
        "Data", "Forget", "Sparsity", "Method", "N", "Attack acc. mean (q10–q90)", "Noise floor",
        "ε mean (cap)", "MIA-Eff. (Retrain)", "UA (Retrain)",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 4 + ["---:"] * 6) + "|"]
    order = sorted(rows, key=lambda row: (row["dataset"], row["scenario"], row["sparsity"], row["accuracy"]["mean"]))
    for row in order:
        accuracy, floor = row["accuracy"], row["floor"]
        lines.append(
            f"| {row['dataset']} | {row['scenario']} ({row['num_forget']}) | {row['sparsity']:.0f}% | {row['name']} "
            f"| {row['N']} | {accuracy['mean']:.3f} ({accuracy['q10']:.2f}–{accuracy['q90']:.2f}) "
            f"| {'n/a' if floor is None else f'{floor:.3f}'} "
            f"| {row['epsilon']['mean']:.2f} ({row['epsilon_cap']:.2f}) "
            f"| {row['MIA']:.1f} ({row['MIA_retrain']:.1f}) | {row['UA']:.1f} ({row['UA_retrain']:.1f}) |"
        )
    return "\n".join(lines) + "\n"
