"""Runs on an inherited mask against both references, paired by trial: the Retrain of the same (inherited)
mask and the clean Retrain, whose mask was trained and pruned without the forget set (report.py
--reference clean). Does the inherited mask's Retrain differ from the clean one, and does measuring a method
against the clean Retrain change its gap?"""

from __future__ import annotations

import json
from collections import defaultdict

from evaluation import trial_stats
from reporting.collect import (
    METRICS,
    SETTING_FIELDS,
    group_key,
    method_name,
    pairing_key,
    row_order,
)
from reporting.pairing import retrain_by_trial, trial_gaps
from reporting.tables import (
    ROW_COLUMNS,
    per_setting_tables,
    signed_interval,
    summaries_csv,
    summary_interval,
    summary_spread,
)


def _retrain_by_trial(runs: list[dict], clean: bool) -> dict:
    return retrain_by_trial([run for run in runs if run["clean_mask"] == clean])


def _paired(runs: list[dict]) -> dict:
    """{group: [(run, its inherited Retrain, its clean Retrain)]} for every inherited-mask run that has both."""
    inherited, clean = _retrain_by_trial(runs, False), _retrain_by_trial(runs, True)
    groups = defaultdict(list)
    for run in runs:
        if run["kind"] != "unlearn" or run["clean_mask"]:
            continue
        own = inherited.get(pairing_key(run))
        other = clean.get(pairing_key({**run, "context_id": run["clean_context_id"]}))
        if own is not None and other is not None:
            groups[group_key(run)].append((run, own, other))
    return groups


def two_references(runs: list[dict]) -> list[dict]:
    """Per inherited-mask group: each metric minus the clean Retrain's (signed, paired by trial, with its 95%
    t-interval), and the per-trial Avg. Gap to each reference with the paired change (clean − inherited)."""
    rows = []
    for members in _paired(runs).values():
        members.sort(key=lambda triple: json.dumps(triple[0]["trial"]))
        first = members[0][0]
        row = {field: first[field] for field in SETTING_FIELDS + ("sparsity", "method")}
        row |= {"name": method_name(first["method"]), "variant": "", "n_trials": len(members)}
        row["name"] += " (inherited mask)" if first["method"] == "retrain" else ""
        for short, _, _ in METRICS:
            difference = trial_stats.summary([run[short] - clean[short] for run, _, clean in members])
            row |= {f"{short}_minus_clean_{key}": difference[key] for key in ("mean", "ci_low", "ci_high")}
        to_own = [trial_gaps(run, own)["avg_gap"] for run, own, _ in members]
        to_clean = [trial_gaps(run, clean)["avg_gap"] for run, _, clean in members]
        row |= {"gap_inherited": trial_stats.summary(to_own), "gap_clean": trial_stats.summary(to_clean)}
        row["gap_change"] = trial_stats.paired_change(to_own, to_clean)
        rows.append(row)
    return sorted(rows, key=row_order)


def _difference(row: dict, short: str) -> str:
    return signed_interval(*(row[f"{short}_minus_clean_{key}"] for key in ("mean", "ci_low", "ci_high")))


def two_references_markdown(rows: list[dict]) -> str:
    """One table per setting: the signed differences to the clean Retrain and the Avg. Gap to each reference."""
    header = ["Sparsity", "Method"] + [f"{title} − clean" for _, _, title in METRICS]
    header += ["Avg. Gap to inherited Retrain", "Avg. Gap to clean Retrain", "Change", "Trials"]
    return per_setting_tables(rows, header, _two_references_line)


def _two_references_line(row: dict) -> list[str]:
    return (
        [f"{row['sparsity']:.1f}%", row["name"]]
        + [_difference(row, short) for short, _, _ in METRICS]
        + [summary_spread(row["gap_inherited"]), summary_spread(row["gap_clean"])]
        + [summary_interval(row["gap_change"]), str(row["n_trials"])]
    )


TWO_REFERENCES_NOTE = (
    "## Against both references, paired by trial\n\n"
    "Each run on the inherited mask against the Retrain of the same trial on the clean mask (trained and "
    "pruned without the forget set): per metric, run − clean Retrain (signed; mean over trials and its 95% "
    "t-interval). Avg. Gap here is per trial (mean of the four |differences|), then averaged: to the "
    "inherited mask's Retrain (the table above) and to the clean Retrain; Change = clean − inherited, with "
    "its 95% t-interval.\n\n"
)


def two_references_csv(rows: list[dict]) -> str:
    """The same rows flat: the signed differences and each Avg. Gap's mean, std and interval."""
    columns = list(ROW_COLUMNS)
    columns += [f"{short}_minus_clean_{key}" for short, _, _ in METRICS for key in ("mean", "ci_low", "ci_high")]
    return summaries_csv(rows, columns, ["gap_inherited", "gap_clean", "gap_change"], "gap_change")
