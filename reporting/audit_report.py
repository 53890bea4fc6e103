"""The per-example audit's table in report.py: one line per ``{method}_audit.json`` under the report's folders.

Each line sets the audit's numbers (per-example attack accuracy and ε of the method's N runs against the
N Retrain runs, and the Retrain-vs-Retrain noise floor) beside the population MIA-Efficacy and UA of the
same runs, read from their ``_eval.json`` files, so the two orderings of the methods can be compared.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

MAX_MODELS = 10_000  # far above any audit run here; a larger count is a damaged file, not an audit


def find_audits(paths) -> list[Path]:
    found = set()
    for path in map(Path, paths):
        if path.is_dir():
            found.update(p for p in path.rglob("*_audit.json") if p.is_file())
        elif path.name.endswith("_audit.json"):
            found.add(path)
    return sorted(found)


def _evals(save_dir: Path, method: str, count: int, folder: str | None = None) -> list[dict]:
    """The _eval.json of the runs seed1..seedN of one side (those present and readable), in {folder or method}/."""
    side = save_dir / (folder or method)
    files = [side / f"seed{seed}" / f"{method}_eval.json" for seed in range(1, count + 1)]
    records = []
    for file in files:
        try:
            record = json.loads(file.read_text()) if file.is_file() else None
        except (OSError, ValueError, RecursionError):
            record = None  # the usual table lists it under Problems
        if isinstance(record, dict):
            records.append(record)
    return records


def _mean(records: list[dict], key: str) -> float:
    values = [record[key] for record in records if _is_number(record.get(key))]
    return float(np.mean(values)) if values else float("nan")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _check(audit) -> None:
    """A ValueError naming the first field of an audit result that is missing or not what main_audit.py writes."""
    if not isinstance(audit, dict):
        raise ValueError("not a JSON object")
    count = audit.get("num_models")
    if not isinstance(audit.get("method"), str) or not isinstance(count, int) or isinstance(count, bool):
        raise ValueError(f"'method' {audit.get('method')!r} / 'num_models' {count!r} are not a name and a count")
    if not 2 <= count <= MAX_MODELS:
        raise ValueError(f"'num_models' is {count}, outside 2..{MAX_MODELS}")
    versus = audit.get("method_vs_retrain")
    needed = {f"method_vs_retrain.attack_accuracy.{key}": _dig(versus, "attack_accuracy", key) for key in QUANTILES}
    needed["method_vs_retrain.epsilon.mean"] = _dig(versus, "epsilon", "mean")
    needed["method_vs_retrain.largest_measurable_epsilon"] = _dig(versus, "largest_measurable_epsilon")
    if "noise_floor" not in audit or audit["noise_floor"] is not None:  # None: too few runs for a floor
        needed["noise_floor.attack_accuracy.mean"] = _dig(audit.get("noise_floor"), "attack_accuracy", "mean")
    missing = [name for name, value in needed.items() if not _is_number(value)]
    if missing:
        raise ValueError(f"'{missing[0]}' is missing or not a number")


QUANTILES = ("mean", "q10", "q90")


def _dig(value, *keys):
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


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
    """One audit's numbers and setting, from its JSON and its runs' evaluation files (ValueError: unusable)."""
    try:
        audit = json.loads(path.read_text())
        _check(audit)
    except (OSError, ValueError, RecursionError) as error:
        raise ValueError(f"not a main_audit.py result ({error}); remove it or rerun the audit") from None
    method, count = audit["method"], audit["num_models"]
    versus, floor = audit["method_vs_retrain"], audit["noise_floor"]
    clean = audit.get("reference_mask", audit.get("mask")) != audit.get("mask")  # main_audit.py --reference-mask
    runs = _evals(path.parent, method, count)
    retrain = _evals(path.parent, "retrain", count, "retrain_clean" if clean else None)
    first = (runs or retrain or [{}])[0]
    control = _dig(audit, "test_control", "method_vs_retrain", "attack_accuracy", "mean")
    return {
        "folder": str(path.parent),
        "dataset": first.get("dataset", "?"),
        "scenario": forget_title(audit, first),
        "num_forget": first.get("num_forget", len(audit.get("forget_indices", []))),
        "sparsity": round(100.0 * (1.0 - first.get("remaining_weight_ratio", float("nan"))), 1),
        "method": method,
        "name": first.get("paper_name", method) + (" (inherited mask)" if clean else ""),
        "reference": "clean Retrain" if clean else "Retrain",
        "N": count,
        "accuracy": versus["attack_accuracy"],
        "epsilon": versus["epsilon"],
        "epsilon_cap": versus["largest_measurable_epsilon"],
        "floor": None if floor is None else floor["attack_accuracy"]["mean"],
        "control": control if _is_number(control) else None,  # audits made before the control: None
        "MIA": _mean(runs, "MIA_efficacy"),
        "MIA_retrain": _mean(retrain, "MIA_efficacy"),
        "UA": _mean(runs, "UA"),
        "UA_retrain": _mean(retrain, "UA"),
    }


def audit_markdown(rows: list[dict]) -> str:
    """A Markdown table: per setting, each audited method's per-example scores beside its MIA-Efficacy."""
    header = [
        "Data", "Forget", "Sparsity", "Method", "Against", "N", "Attack acc. mean (q10–q90)", "Noise floor",
        "On test (control)", "ε mean (cap)", "MIA-Eff. (ref.)", "UA (ref.)",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 5 + ["---:"] * 7) + "|"]
    order = sorted(rows, key=lambda row: (row["dataset"], row["scenario"], row["sparsity"], row["accuracy"]["mean"]))
    for row in order:
        accuracy, floor, control = row["accuracy"], row["floor"], row["control"]
        lines.append(
            f"| {row['dataset']} | {row['scenario']} ({row['num_forget']}) | {row['sparsity']:.0f}% | {row['name']} "
            f"| {row['reference']} | {row['N']} | {accuracy['mean']:.3f} ({accuracy['q10']:.2f}–{accuracy['q90']:.2f}) "
            f"| {'n/a' if floor is None else f'{floor:.3f}'} | {'n/a' if control is None else f'{control:.3f}'} "
            f"| {row['epsilon']['mean']:.2f} ({row['epsilon_cap']:.2f}) "
            f"| {row['MIA']:.1f} ({row['MIA_retrain']:.1f}) | {row['UA']:.1f} ({row['UA_retrain']:.1f}) |"
        )
    return "\n".join(lines) + "\n"
