"""Tuned against published, paired by trial: each method run with the flags main_tune.py selected and with
its published preset, on the same held-out trials, each measured against the Retrain of its trial. Which
way of setting a method's flags brings it closer to Retrain, and by how much?"""

from __future__ import annotations

import json
from collections import defaultdict

from evaluation import trial_stats
from reporting.collect import METRICS, SETTING_FIELDS, method_name, pairing_key, row_order, scenario_title
from reporting.pairing import retrain_by_trial, trial_gaps
from reporting.tables import (
    ROW_COLUMNS,
    markdown_table,
    per_setting_tables,
    summaries_csv,
    summary_interval,
    summary_spread,
)

SIDES = ("tuned", "preset")


def _by_method(runs: list[dict], side: str) -> dict:
    """{(setting, sparsity, method): {trial key: run}}; one variant per method and sparsity, else ValueError."""
    found, variant = defaultdict(dict), {}
    for run in runs:
        if run["kind"] != "unlearn" or run["method"] == "retrain":
            continue
        key = tuple(run[field] for field in SETTING_FIELDS) + (run["sparsity"], run["method"])
        if variant.setdefault(key, run["setting_id"]) != run["setting_id"]:
            raise ValueError(
                f"the {side} runs hold two variants of {method_name(run['method'])} at "
                f"{run['sparsity']:.1f}% ({run['path']}); give one folder per way of setting the flags"
            )
        found[key][pairing_key(run)] = run
    return found


def compare(tuned: list[dict], preset: list[dict], retrain: list[dict]) -> list[dict]:
    """Per setting, sparsity and method, over the trials all three sides share: each side's per-trial Avg.
    Gap to the Retrain of its trial (mean, std, 95% t-interval), each metric's mean, and the paired
    change tuned − preset of the Avg. Gap with its interval and verdict ("shrinks": tuning helped)."""
    references = retrain_by_trial(retrain)
    sides = {"tuned": _by_method(tuned, "tuned"), "preset": _by_method(preset, "preset")}
    rows = []
    for key in sorted(set(sides["tuned"]) & set(sides["preset"]), key=json.dumps):
        trials = sorted(set(sides["tuned"][key]) & set(sides["preset"][key]) & set(references), key=json.dumps)
        if not trials:
            continue
        first = sides["tuned"][key][trials[0]]
        row = {field: first[field] for field in SETTING_FIELDS + ("sparsity", "method")}
        row |= {"name": method_name(first["method"]), "variant": "", "n_trials": len(trials)}
        gaps = {}
        for side in SIDES:
            members = [sides[side][key][trial] for trial in trials]
            gaps[side] = [trial_gaps(run, references[trial])["avg_gap"] for run, trial in zip(members, trials)]
            row[f"gap_{side}"] = trial_stats.summary(gaps[side])
            row |= {f"{short}_{side}": trial_stats.summary([run[short] for run in members]) for short, _, _ in METRICS}
        row["gap_change"] = trial_stats.paired_change(gaps["preset"], gaps["tuned"])
        rows.append(row)
    return sorted(rows, key=row_order)


def untouched(runs: list[dict], retrain: list[dict]) -> list[dict]:
    """The yardstick: the model as it is (``--unlearn raw``), per setting and sparsity, its per-trial Avg. Gap
    to the Retrain of its trial (mean, std, interval) over the trials that have one."""
    references, rows = retrain_by_trial(retrain), []
    raw = _by_method([run for run in runs if run["method"] == "raw"], "yardstick")
    for _, members in sorted(raw.items(), key=lambda item: json.dumps(item[0])):
        trials = sorted(set(members) & set(references), key=json.dumps)
        if not trials:
            continue
        row = {field: members[trials[0]][field] for field in SETTING_FIELDS + ("sparsity", "method")}
        gaps = [trial_gaps(members[trial], references[trial])["avg_gap"] for trial in trials]
        rows.append(row | {"gap": trial_stats.summary(gaps), "n_trials": len(trials)})
    return rows


def untouched_text(rows: list[dict]) -> str:
    lines = [
        f"- {scenario_title(row)}, {row['sparsity']:.1f}%: Avg. Gap {summary_spread(row['gap'])} over "
        f"{row['n_trials']} trials"
        for row in rows
    ]
    head = "The yardstick, the model as it is (no unlearning, `--unlearn raw`) on the same trials:\n\n"
    return head + "\n".join(lines) + "\n" if rows else ""


def _line(row: dict) -> list[str]:
    change = row["gap_change"]
    return (
        [f"{row['sparsity']:.1f}%", row["name"]]
        + [f"{row[f'{short}_tuned']['mean']:.1f} / {row[f'{short}_preset']['mean']:.1f}" for short, _, _ in METRICS]
        + [summary_spread(row["gap_tuned"]), summary_spread(row["gap_preset"])]
        + [summary_interval(change), change["verdict"]]
        + [str(row["n_trials"])]
    )


def markdown(rows: list[dict]) -> str:
    """One table per setting: each metric's mean tuned / preset, each Avg. Gap and the paired change."""
    header = ["Sparsity", "Method"] + [f"{title} (tuned / preset)" for _, _, title in METRICS]
    header += ["Avg. Gap tuned", "Avg. Gap preset", "Tuned − preset", "Verdict", "Trials"]
    return per_setting_tables(rows, header, _line)


NOTE = (
    "Each method with the flags `main_tune.py` selected on trial 1 (tuned) and with its published preset, on "
    "the same held-out trials. Metrics: mean over the trials, tuned / preset. Avg. Gap: per trial, the mean "
    "of the four |metric − Retrain of that trial|, then mean ± std over the trials. Tuned − preset: the "
    'paired change of the Avg. Gap with its 95% t-interval; "shrinks" when the whole interval is below 0 '
    '(tuning brought the method closer to Retrain), "grows" when above.\n\n'
)


def to_csv(rows: list[dict]) -> str:
    """The same rows flat: every summary's mean, std and interval, and the change's verdict."""
    columns = list(ROW_COLUMNS)
    summaries = [f"{short}_{side}" for short, _, _ in METRICS for side in SIDES] + ["gap_tuned", "gap_preset"]
    return summaries_csv(rows, columns, summaries + ["gap_change"], "gap_change")


# ----------------------------------------------------------------------------- sparse against dense


def _gaps_by_trial(runs: list[dict], references: dict, side: str) -> dict:
    """{(setting, method): {sparsity: {trial: Avg. Gap to the Retrain of that trial and sparsity}}}."""
    found = defaultdict(lambda: defaultdict(dict))
    for (*setting, sparsity, method), members in _by_method(runs, side).items():
        for key, run in members.items():
            if key in references:
                found[(*setting, method)][sparsity][run["trial"]] = trial_gaps(run, references[key])["avg_gap"]
    return found


def sparsity_change(tuned: list[dict], preset: list[dict], retrain: list[dict]) -> list[dict]:
    """Per setting, method and sparsity above 0: each side's Avg. Gap dense and sparse, and the paired change
    sparse − dense ("shrinks": sparsity brought the method closer to Retrain), over the trials both sparsities
    and both sides share. Each side keeps its own flags at each sparsity (a tuned method is tuned per sparsity),
    so the question is the paper's, asked fairly: does a method, set as well as it can be, forget closer to
    Retrain on the sparse model?"""
    references = retrain_by_trial(retrain)
    sides = {side: _gaps_by_trial(runs, references, side) for side, runs in zip(SIDES, (tuned, preset))}
    rows = []
    for key in sorted(set(sides["tuned"]) & set(sides["preset"]), key=json.dumps):
        found = {side: sides[side][key] for side in SIDES}
        for sparsity in sorted(set(found["tuned"]) & set(found["preset"]) - {0.0}):
            at = [found[side][rate] for side in SIDES for rate in (0.0, sparsity) if rate in found[side]]
            trials = sorted(set.intersection(*(set(gaps) for gaps in at)), key=json.dumps) if len(at) == 4 else []
            if not trials:
                continue
            row = dict(zip(SETTING_FIELDS, key[:-1])) | {"sparsity": sparsity, "method": key[-1]}
            row |= {"name": method_name(key[-1]), "variant": "", "n_trials": len(trials)}
            for side in SIDES:
                dense, sparse = ([found[side][rate][trial] for trial in trials] for rate in (0.0, sparsity))
                row |= {f"dense_{side}": trial_stats.summary(dense), f"sparse_{side}": trial_stats.summary(sparse)}
                row[f"change_{side}"] = trial_stats.paired_change(dense, sparse)
            rows.append(row)
    return sorted(rows, key=row_order)


def _sparsity_line(row: dict) -> list[str]:
    cells = [f"{row['sparsity']:.1f}%", row["name"]]
    for side in SIDES:
        cells += [f"{summary_spread(row[f'dense_{side}'])} → {summary_spread(row[f'sparse_{side}'])}"]
        cells += [summary_interval(row[f"change_{side}"]), row[f"change_{side}"]["verdict"]]
    return cells + [str(row["n_trials"])]


def sparsity_markdown(rows: list[dict]) -> str:
    """One table per setting: each side's Avg. Gap dense → sparse and the paired change with its verdict."""
    header = ["Sparsity", "Method"]
    for side in SIDES:
        header += [f"Avg. Gap {side}, dense → sparse", f"Sparse − dense ({side})", "Verdict"]
    return per_setting_tables(rows, header + ["Trials"], _sparsity_line)


SPARSITY_NOTE = (
    "Each method's Avg. Gap on the dense model and on the sparse one, paired by trial (the same trained model "
    "before and after pruning, the same forget set), each side with its own flags at each sparsity: tuned "
    "flags were selected per sparsity. Sparse − dense: the paired change with its 95% t-interval; "
    '"shrinks" when the whole interval is below 0 (the sparse model brought the method closer to Retrain).\n\n'
)


def sparsity_csv(rows: list[dict]) -> str:
    columns = list(ROW_COLUMNS)
    summaries = [f"{part}_{side}" for side in SIDES for part in ("dense", "sparse", "change")]
    return summaries_csv(rows, columns, summaries, ("change_tuned", "change_preset"))


# ----------------------------------------------------------------------------- what tuning selected


def _number(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _flags(params: dict) -> str:
    return " ".join(f"--{name} {_number(value)}" for name, value in params.items())


def selections(studies) -> list[dict]:
    """One row per main_tune.py best.json below ``studies`` (laid out as {scenario}/r{rate}/{method}/best.json,
    the layout scripts/sweep.py --tuned reads): what was selected on trial 1 and how it compared there."""
    rows = []
    for path in sorted(studies.glob("*/r*/*/best.json")):
        record = json.loads(path.read_text())
        scenario, rate = path.parts[-4], float(path.parts[-3][1:])
        best, preset = record.get("best"), record.get("preset")
        rows.append({
            "scenario": scenario, "sparsity": round(100 * rate, 1), "method": record["method"],
            "name": method_name(record["method"]), "finished": record["finished_trials"],
            "selected": _flags(best["params"]) if best else "none finished unpruned",
            "objective": best["objective"] if best else None,
            "preset_objective": preset["objective"] if preset else None,
            "preset_state": preset["state"] if preset else "not run",
        })  # fmt: skip
    return sorted(rows, key=lambda row: (row["scenario"], row["sparsity"], row["name"]))


def _objective(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def selections_markdown(rows: list[dict]) -> str:
    header = ["Scenario", "Sparsity", "Method", "Selected flags", "Objective", "Preset's objective", "Trials"]
    body = [
        [row["scenario"], f"{row['sparsity']:.1f}%", row["name"], f"`{row['selected']}`", _objective(row["objective"]),
         _objective(row["preset_objective"]) if row["preset_state"] == "COMPLETE" else row["preset_state"].lower(),
         str(row["finished"])]
        for row in rows
    ]  # fmt: skip
    return markdown_table(header, ["---", "---:", "---", "---", "---:", "---:", "---:"], body) + "\n"


SELECTIONS_NOTE = (
    "What each study selected on trial 1: the searched flags of its best trial (every other flag is the "
    "preset's, with the setting's batch size), its objective (the Avg. Gap to trial 1's Retrain over UA, "
    "MIA-Efficacy, RA and validation accuracy) and the objective of the preset's values of the searched flags, "
    'run as trial 0 with the same other flags when they lie inside the search space ("pruned": the median '
    'pruner stopped it; "not run": a value lies outside the search space, or the preset leaves it to be tuned, '
    "as the original README leaves α).\n\n"
)
