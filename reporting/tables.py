"""The report's markdown tables and CSV files."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict

from experiments import run_identity
from reporting import output_distance
from reporting.collect import (
    BACKDOOR_METRICS,
    BACKDOOR_SETTING_FIELDS,
    GAPS,
    METRICS,
    SETTING_FIELDS,
    scenario_title,
    setting_key,
)


def _number(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def spread(mean: float, std: float | None, digits: int = 2) -> str:
    """``mean±std``; one trial has no spread, so only the mean."""
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f}±{std:.{digits}f}"


def signed_interval(mean: float, low: float | None, high: float | None) -> str:
    """A signed change with its 95% interval, ``+1.2 [-0.3, +2.7]``; one trial has none."""
    return f"{mean:+.1f}" + ("" if low is None else f" [{low:+.1f}, {high:+.1f}]")


def summary_spread(summary: dict) -> str:
    """A trial_stats summary as ``mean±std``."""
    return spread(summary["mean"], summary["std"])


def summary_interval(summary: dict) -> str:
    """A trial_stats summary (a paired change) as ``+1.2 [-0.3, +2.7]``."""
    return signed_interval(summary["mean"], summary["ci_low"], summary["ci_high"])


def _cell(row: dict, short: str) -> str:
    mean, std = row[f"{short}_mean"], row[f"{short}_std"]
    return f"{_number(mean)}{'' if std is None else '±' + _number(std)} ({_number(row[f'{short}_gap'])})"


def markdown_table(header: list[str], align: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def by_setting(rows: list[dict]) -> list[list[dict]]:
    """The rows grouped by (dataset, arch, scenario), in the order their settings first appear."""
    groups = defaultdict(list)
    for row in rows:
        groups[setting_key(row)].append(row)
    return list(groups.values())


def setting_heading(row: dict) -> str:
    return f"### {row['dataset']} · {row['arch']} · {scenario_title(row)}"


def per_setting_tables(rows: list[dict], header: list[str], body_row) -> str:
    """One titled Markdown table per setting, ``body_row(row)`` giving each line; right-aligned but Method."""
    align = ["---:", "---"] + ["---:"] * (len(header) - 2)
    parts = [
        setting_heading(group[0]) + "\n\n" + markdown_table(header, align, [body_row(row) for row in group])
        for group in by_setting(rows)
    ]
    return "\n\n".join(parts) + ("\n" if parts else "")


def to_markdown(rows: list[dict]) -> str:
    """One Markdown table per (dataset, arch, scenario): cells are mean±std (|gap to Retrain|)."""
    header = ["Sparsity", "Method"] + [title for _, _, title in METRICS] + ["Avg. Gap", "RTE (min)", "Trials"]
    align = ["---:", "---"] + ["---:"] * (len(header) - 2)
    parts = []
    for setting_rows in by_setting(rows):
        body = [
            [f"{row['sparsity']:.1f}%", row["name"]]
            + [_cell(row, short) for short, _, _ in METRICS]
            + [_number(row["avg_gap"]), _number(row["RTE_mean"]), str(row["n_seeds"])]
            for row in setting_rows
        ]
        parts.append(setting_heading(setting_rows[0]) + "\n\n" + markdown_table(header, align, body))
        if any(row["UA_ci_low"] is not None for row in setting_rows):
            parts.append(interval_markdown(setting_rows))
        if any(row.get("paired_seeds") for row in setting_rows):
            parts.append(distance_markdown(setting_rows))
        if any(row.get("relearn_measured") for row in setting_rows):
            parts.append(relearn_markdown(setting_rows))
    return "\n\n".join(parts) + ("\n" if parts else "")


def interval_markdown(setting_rows: list[dict]) -> str:
    """One setting's 95% t-intervals of the mean over trials (n − 1 degrees of freedom; blank for one trial)."""
    header = ["Sparsity", "Method"] + [title for _, _, title in METRICS] + ["Trials"]

    def interval(row, short):
        low, high = row[f"{short}_ci_low"], row[f"{short}_ci_high"]
        return "" if low is None else f"[{low:.1f}, {high:.1f}]"

    body = [
        [f"{row['sparsity']:.1f}%", row["name"]] + [interval(row, s) for s, _, _ in METRICS] + [str(row["n_seeds"])]
        for row in setting_rows
    ]
    return (
        "95% t-interval of each mean over its trials (Student t, n − 1 degrees of freedom; none for one trial):\n\n"
        + markdown_table(header, ["---:", "---"] + ["---:"] * 5, body)
    )


def _distance_cell(row: dict, name: str, digits: int) -> str:
    mean, std = row.get(f"{name}_mean"), row.get(f"{name}_std")
    return "" if mean is None else spread(mean, std, digits)


def distance_markdown(setting_rows: list[dict]) -> str:
    """One setting's distances to Retrain of the same seed; an empty cell: no seed could be paired."""
    header = ["Sparsity", "Method", "JS on D_f", "JS on test", "ℓ2 to Retrain", "Paired seeds"]
    body = [
        [f"{row['sparsity']:.1f}%", row["name"]]
        + [_distance_cell(row, "JS_forget", 4), _distance_cell(row, "JS_test", 4)]
        + [_distance_cell(row, "L2_to_retrain", 3), f"{row.get('paired_seeds', 0)} of {row['n_seeds']}"]
        for row in setting_rows
    ]
    return (
        "Distance to Retrain of the same seed, mean±std over paired seeds (JS in nats; lower is closer):\n\n"
        + markdown_table(header, ["---:", "---"] + ["---:"] * 4, body)
    )


def relearn_markdown(setting_rows: list[dict]) -> str:
    """One setting's relearn time (main_forget.py --relearn): steps until D_f accuracy passes Retrain's + margin."""
    header = ["Sparsity", "Method", "Relearn steps", "Not reached", "Trials measured"]
    body = [
        [f"{row['sparsity']:.1f}%", row["name"], _distance_cell(row, "relearn", 1)]
        + [str(row["relearn_not_reached"]) if row.get("relearn_measured") else "", str(row.get("relearn_measured", 0))]
        for row in setting_rows
    ]
    return (
        "Relearn time: SGD steps on D_f until its accuracy reaches Retrain's plus the margin, mean±std over the "
        "trials that reached it (fewer steps: more of D_f is still in the weights):\n\n"
        + markdown_table(header, ["---:", "---"] + ["---:"] * 3, body)
    )


def backdoor_markdown(rows: list[dict]) -> str:
    """One Markdown table per backdoor setting: SA and ASR before/after unlearning, mean±std."""
    keys = ("SA_before", "ASR_before", "SA_after", "ASR_after")
    header = ["Sparsity", "Method", "SA before", "ASR before", "SA after", "ASR after", "Trials"]
    align = ["---:", "---"] + ["---:"] * 5
    by_setting = defaultdict(list)
    for row in rows:
        by_setting[tuple(row[f] for f in BACKDOOR_SETTING_FIELDS)].append(row)
    parts = []
    for setting_rows in by_setting.values():
        first = setting_rows[0]
        body = [
            [f"{row['sparsity']:.1f}%", row["name"]]
            + [spread(row[f"{k}_mean"], row[f"{k}_std"]) for k in keys]
            + [str(row["n_seeds"])]
            for row in setting_rows
        ]
        parts.append(
            f"### {first['dataset']} · {first['arch']} · backdoor (target class {first['target']}, "
            f"{first['num_poisoned']} poisoned samples)\n\n" + markdown_table(header, align, body)
        )
    return "\n\n".join(parts) + ("\n" if parts else "")


def csv_text(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([" ".join(map(str, row[c])) if c == "seeds" else _csv_value(row[c]) for c in columns])
    return buffer.getvalue()


SUMMARY_KEYS = ("mean", "std", "ci_low", "ci_high")


# The plain columns that lead every per-method summary CSV: the setting, then which row it is.
ROW_COLUMNS = (*SETTING_FIELDS, "sparsity", "method", "name", "n_trials")


def summaries_csv(rows: list[dict], columns: list[str], summaries: list[str], verdicts: str | tuple[str, ...]) -> str:
    """Rows whose ``summaries`` are trial_stats dicts, flat: each as {name}_{mean,std,ci_low,ci_high}, after the
    plain ``columns``, then each of the ``verdicts`` summaries' verdict as {name}_verdict."""
    verdicts = (verdicts,) if isinstance(verdicts, str) else verdicts
    flat = []
    for row in rows:
        item = {key: value for key, value in row.items() if not isinstance(value, dict)}
        for name in summaries:
            item |= {f"{name}_{key}": row[name][key] for key in SUMMARY_KEYS}
        flat.append(item | {f"{name}_verdict": row[name]["verdict"] for name in verdicts})
    columns = columns + [f"{name}_{key}" for name in summaries for key in SUMMARY_KEYS]
    return csv_text(flat, columns + [f"{name}_verdict" for name in verdicts])


def _csv_value(value):
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else value


def to_csv(rows: list[dict]) -> str:
    columns = list(SETTING_FIELDS) + ["sparsity", "method", "name", "variant", "n_seeds", "seeds"]
    for short, _, _ in METRICS:
        columns += [f"{short}_mean", f"{short}_std", f"{short}_ci_low", f"{short}_ci_high", f"{short}_gap"]
    columns += ["RTE_mean", "RTE_std", "avg_gap"]
    for name in output_distance.OUTPUT_METRICS:
        columns += [f"{name}_mean", f"{name}_std"]
    columns += ["paired_seeds", "relearn_mean", "relearn_std", "relearn_measured", "relearn_not_reached"]
    return csv_text(rows, columns)


RUN_FIELDS = ("path", "kind", "dataset", "arch", "method", "sparsity", "seed")


def runs_to_csv(runs: list[dict]) -> str:
    """runs.csv: one row per run read, with every metric and every field of its run identity
    (``identity.args.unlearn_lr``, ``identity.inputs.mask.sha256``, ...)."""
    metrics = [short for short, _, _ in METRICS] + ["RTE", *output_distance.OUTPUT_METRICS, *BACKDOOR_METRICS]
    metrics.append("relearn_steps")
    flats = [{f"identity.{k}": v for k, v in run_identity.flat(run["identity"]).items()} for run in runs]
    identity_columns = sorted({column for flat in flats for column in flat})
    rows = [
        {**{f: run.get(f) for f in RUN_FIELDS + ("scenario", "num_forget")}, **{m: run.get(m) for m in metrics}, **flat}
        for run, flat in zip(runs, flats, strict=True)
    ]
    columns = [*RUN_FIELDS, "scenario", "num_forget", *metrics, *identity_columns]
    return csv_text([{c: row.get(c) for c in columns} for row in rows], columns)


def effects_to_csv(effects: list[dict]) -> str:
    columns = list(ROW_COLUMNS)
    for gap in GAPS:
        columns += [f"{gap}_change", f"{gap}_ci_low", f"{gap}_ci_high", f"{gap}_verdict"]
    return csv_text(effects, columns)


def backdoor_to_csv(rows: list[dict]) -> str:
    columns = list(BACKDOOR_SETTING_FIELDS) + ["sparsity", "method", "name", "variant", "n_seeds", "seeds"]
    for key in BACKDOOR_METRICS:
        columns += [f"{key}_mean", f"{key}_std"]
    return csv_text(rows, columns)
