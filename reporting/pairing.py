"""Sparse against dense, paired by trial; gaps to Retrain; what an expected grid is missing."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np

from evaluation import trial_stats
from reporting.collect import (
    GAPS,
    METRICS,
    SETTING_FIELDS,
    describe,
    method_name,
    method_rank,
    pairing_key,
    reference_key,
    row_order,
    scenario_title,
    setting_key,
    variant_labels,
)
from reporting.tables import per_setting_tables, signed_interval


def sparsity_effects(runs: list[dict]) -> list[dict]:
    """Per method variant and sparsity: each gap to Retrain at that sparsity minus the dense one, paired by
    trial (the same training seed and unlearning seed on both sides), with its 95% t-interval and verdict."""
    by_variant = defaultdict(dict)  # (setting, method, variant without the mask) -> {(sparsity, trial): gaps}
    names, labels = {}, variant_labels(runs)
    for run, gaps in _trial_gaps(runs):
        key = _effect_key(run)
        by_variant[key][(run["sparsity"], run["trial"])] = gaps
        names[key, run["sparsity"]] = run
    effects = []
    for key, gaps in by_variant.items():
        dense = {trial: value for (sparsity, trial), value in gaps.items() if sparsity == 0.0}
        for sparsity in sorted({sparsity for sparsity, _ in gaps if sparsity > 0.0}):
            trials = sorted((t for (s, t) in gaps if s == sparsity and t in dense), key=json.dumps)
            if trials:
                run = names[key, sparsity]
                row = _effect(run, sparsity, [dense[t] for t in trials], [gaps[sparsity, t] for t in trials])
                label = labels.get(run["setting_id"])
                effects.append(row | {"name": method_name(run["method"]) + (f" ({label})" if label else "")})
    return sorted(effects, key=lambda row: row_order(row))


def unpaired(runs: list[dict]) -> list[str]:
    """One line per sparse method variant left out of sparsity_effects although its method has dense runs of
    the same setting: their flags differ (a method set per sparsity, as a tuned one is)."""
    keys = {_effect_key(run): run for run, _ in _trial_gaps(runs)}
    dense = {key for key, run in keys.items() if run["sparsity"] == 0.0}
    methods = {key[:-1] for key in dense}  # setting and method, any flags
    left = {
        describe(run): run
        for key, run in keys.items()
        if run["sparsity"] > 0.0 and key not in dense and key[:-1] in methods
    }
    return [line for line, _ in sorted(left.items(), key=lambda item: row_order(item[1] | {"variant": ""}))]


UNPAIRED_NOTE = (
    "Not paired, because no dense run of the same method has the same flags (a method set per sparsity, as a "
    "tuned one is; scripts/tuned_table.py pairs those by trial, each sparsity with its own flags):\n\n"
)


def unpaired_text(lines: list[str]) -> str:
    return "\n" + UNPAIRED_NOTE + "".join(f"- {line}\n" for line in lines) if lines else ""


def retrain_by_trial(runs: list[dict]) -> dict:
    """{pairing key: the Retrain run of that setting, sparsity, data, inputs and trial}."""
    return {pairing_key(run): run for run in runs if run["kind"] == "unlearn" and run["method"] == "retrain"}


def _trial_gaps(runs: list[dict]):
    """(run, {metric: |run − Retrain of the same trial, sparsity and inputs|, avg_gap}) for every run but Retrain."""
    retrain = retrain_by_trial(runs)
    for run in runs:
        reference = retrain.get(pairing_key(run)) if run["kind"] == "unlearn" else None
        if reference is None or run["method"] == "retrain":
            continue
        yield run, trial_gaps(run, reference)


def trial_gaps(run: dict, reference: dict) -> dict:
    """{metric: |run − reference|} of one trial, and their mean, avg_gap."""
    gaps = {short: abs(run[short] - reference[short]) for short, _, _ in METRICS}
    gaps["avg_gap"] = float(np.mean(list(gaps.values())))
    return gaps


def _effect_key(run: dict) -> tuple:
    setting = {**run["setting"], "inputs": {k: v for k, v in run["setting"]["inputs"].items() if k != "mask"}}
    return setting_key(run) + (run["method"], json.dumps(setting, sort_keys=True, default=str))


def _effect(run: dict, sparsity: float, dense: list[dict], sparse: list[dict]) -> dict:
    row = {field: run[field] for field in SETTING_FIELDS + ("method",)}
    row |= {"sparsity": sparsity, "variant": run["setting_id"], "n_trials": len(dense)}
    for gap in GAPS:
        change = trial_stats.paired_change([d[gap] for d in dense], [s[gap] for s in sparse])
        row |= {f"{gap}_change": change["mean"], f"{gap}_ci_low": change["ci_low"]}
        row |= {f"{gap}_ci_high": change["ci_high"], f"{gap}_verdict": change["verdict"]}
    return row


def _change_cell(row: dict, gap: str) -> str:
    return signed_interval(row[f"{gap}_change"], row[f"{gap}_ci_low"], row[f"{gap}_ci_high"])


def effects_markdown(effects: list[dict]) -> str:
    """One table per setting: the change of each gap from dense to sparse, paired by trial."""
    header = ["Sparsity", "Method"] + [t for _, _, t in METRICS] + ["Avg. Gap", "Verdict (Avg. Gap)", "Trials"]
    return per_setting_tables(effects, header, _effect_line)


def _effect_line(row: dict) -> list[str]:
    return (
        [f"{row['sparsity']:.1f}%", row["name"]] + [_change_cell(row, gap) for gap in GAPS]
        + [row["avg_gap_verdict"], str(row["n_trials"])]
    )  # fmt: skip


def gap_problems(rows: list[dict]) -> list[str]:
    """One line per (setting, sparsity) that has runs but no single Retrain run to gap them against."""
    lacking = {}
    for row in rows:
        if not row["has_retrain"]:
            lacking.setdefault(reference_key(row), row)
    return [
        f"{row['dataset']}/{row['arch']} {scenario_title(row)}, sparsity {row['sparsity']:.1f}%: "
        + (
            "several Retrain variants share this setting and mask, so gaps are n/a (give one report call one Retrain)"
            if row["retrain_ambiguous"]
            else "no Retrain run, so gaps are n/a"
        )
        for row in lacking.values()
    ]


def find_missing(
    rows: list[dict], backdoor_rows=(), expect_methods=None, expect_seeds=None, expect_sparsities=None
) -> list[str]:
    """Runs that should be there but are not.

    With any ``expect_*`` given, every (setting, sparsity, method, seed) combination without a result
    (an ``expect_*`` left out defaults to what was seen for that setting); always, every group with
    fewer seeds than the largest group.
    """
    lines = []
    if expect_methods or expect_seeds or expect_sparsities:
        lines += _missing_combinations(rows, expect_methods, expect_seeds, expect_sparsities)
    for group_rows in (rows, backdoor_rows):
        most = max((row["n_seeds"] for row in group_rows), default=0)
        for row in group_rows:
            if row["n_seeds"] < most:
                seeds = ", ".join(map(str, row["seeds"]))
                lines.append(f"partial: {describe(row)} has {row['n_seeds']} of {most} seeds (seeds {seeds})")
    return lines


def _missing_combinations(rows, expect_methods, expect_seeds, expect_sparsities) -> list[str]:
    by_setting = defaultdict(list)
    for row in rows:
        by_setting[setting_key(row)].append(row)
    lines = []
    for setting_rows in by_setting.values():
        have = {(row["sparsity"], row["method"], seed) for row in setting_rows for seed in row["seeds"]}
        sparsities = expect_sparsities or sorted({row["sparsity"] for row in setting_rows})
        methods = expect_methods or sorted({row["method"] for row in setting_rows}, key=method_rank)
        seeds = expect_seeds or sorted({seed for row in setting_rows for seed in row["seeds"]})
        for sparsity in sparsities:
            for method in methods:
                absent = [str(seed) for seed in seeds if (sparsity, method, seed) not in have]
                if absent:
                    described = describe(setting_rows[0] | {"sparsity": sparsity, "method": method})
                    lines.append(f"missing: {described}, seed{'s' * (len(absent) > 1)} {', '.join(absent)}")
    return lines
