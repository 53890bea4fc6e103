"""Turn folders of unlearning and backdoor results into the paper's tables, a CSV and sparsity plots.

Reads every ``*_eval.json`` (main_forget.py) and ``*_backdoor.json`` (main_backdoor.py) below the
given folders. Unlearning runs are grouped by (dataset, arch, scenario + forget set, sparsity,
method) and by run identity without its seeds (runs differing in any other defining flag or input are
separate rows, labelled by the differing values, e.g. "SSD (ssd_alpha=0.5)"); each group shows
mean ± sample std over seeds of UA, MIA-Efficacy, RA and TA, each with its gap to Retrain of the same
setting, sparsity, data and inputs in parentheses, the mean of the four gaps ("Avg. Gap") and the
mean RTE.

Beside them, each method's distance to Retrain, measured seed by seed against the Retrain run of the
same setting, sparsity and seed that has the same forget indices and mask (then mean ± std over the
seeds so paired; output_distance.py):
  JS_forget      mean over D_f of the Jensen–Shannon divergence (natural log, in [0, ln 2]) between the
                 method's and Retrain's softmax outputs
  JS_test        the same over the test set (class-wise: without the forgotten class, as for TA)
  L2_to_retrain  ‖θ − θ_Retrain‖₂ over every parameter of the effective model (a pruned conv's weight
                 is weight_orig * weight_mask; batch-norm statistics are buffers, not parameters)
Lower is closer to Retrain; Retrain's own row is 0. They need every run's {method}checkpoint.pth.tar
and its dataset: each model is rebuilt and predicted in float32 (--device, default cpu). On one CPU core
that is ~0.1 s per digits run but ~18 s per Fashion-MNIST resnet20s run (5,400 forget + 9,000-10,000 test
images); --no-output-metrics skips them. A run without a usable checkpoint or a matching Retrain gets
empty cells and a line under "Problems".

Writes into ``--out`` (default: the first RESULT_DIR):
  report.md            every table, the missing/partial runs and the problems found
  report.csv           one row per unlearning group (means, stds and 95% t-intervals over trials, gaps,
                       Avg. Gap, RTE, JS_forget, JS_test, L2_to_retrain and paired_seeds)
  sparsity_effects.csv per method and sparsity: each gap's change from dense, paired by trial, its 95%
                       t-interval and verdict
  runs.csv             one row per run: every metric and every field of its run identity
  backdoor.csv         one row per backdoor group (SA/ASR before and after)
  sparsity_UA.png      UA vs sparsity, one line per method (its 95% interval as a band), one panel per
                       (dataset, arch, scenario)
  sparsity_MIA.png     MIA-Efficacy vs sparsity, same layout
  backdoor_ASR_SA.png  ASR and SA after unlearning vs sparsity, one line per method

Example:
  python report.py runs/sweep --expect-methods retrain FT GA fisher_new wfisher FT_prune --expect-seeds 1 2 3
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

import arg_parser
import audit_report
import interrupts
import output_distance
import published
import run_identity
import unlearn
from evaluation import trial_stats
from utils import UsageError, atomic_write_bytes, atomic_write_text, run_cli

# Paper names and the paper's table order come from the registry; a result file of a method that is
# no longer registered keeps its --unlearn name and sorts after the others.
METHOD_NAMES = {method.name: method.paper_name for method in unlearn.listed()}
METHOD_ORDER = tuple(method.name for method in unlearn.listed() if method.in_tables)
# (short name used in rows/CSV, key in *_eval.json, column title)
METRICS = (("UA", "UA", "UA"), ("MIA", "MIA_efficacy", "MIA-Efficacy"), ("RA", "RA", "RA"), ("TA", "TA", "TA"))
BACKDOOR_METRICS = ("SA_before", "ASR_before", "SA_after", "ASR_after", "ASR_nontarget_before", "ASR_nontarget_after")
SETTING_FIELDS = ("dataset", "arch", "scenario", "class_to_replace", "num_forget")
BACKDOOR_SETTING_FIELDS = ("dataset", "arch", "target", "num_poisoned")
# Runs are grouped by their run identity (run_identity.py) without its seeds: runs that differ in any
# defining argument or input are never averaged, and a row's label names the values that set it apart.
KIND_OF_RESULT = {"unlearn": run_identity.UNLEARNING, "backdoor": run_identity.BACKDOOR}


def method_name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def method_rank(method: str) -> tuple:
    """Retrain, FT, GA, FF, IU, ℓ1-sparse first (paper order), then the others by name."""
    if method in METHOD_ORDER:
        return (0, METHOD_ORDER.index(method), "")
    return (1, 0, method)


def sparsity_of(remaining_weight_ratio: float) -> float:
    return round(100.0 * (1.0 - remaining_weight_ratio), 1)


# ----------------------------------------------------------------------------- loading


def find_result_files(paths) -> tuple[list[Path], list[str]]:
    files, problems = set(), []
    for path in map(Path, paths):
        if path.is_dir():
            found = [*path.rglob("*_eval.json"), *path.rglob("*_backdoor.json")]
            files.update(p for p in found if p.is_file())  # regular files only: a FIFO would block the read
            problems += [f"{p}: not a regular file, skipped" for p in found if not p.is_file() and not p.is_dir()]
        elif path.is_file() and path.name.endswith(("_eval.json", "_backdoor.json")):
            files.add(path)
        else:
            problems.append(f"{path}: not a folder or a *_eval.json / *_backdoor.json file")
    return sorted(files), problems


def _field(record: dict, key: str, kind):
    if key not in record:
        raise ValueError(f"missing key '{key}'")
    value = record[key]
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"'{key}' is {value!r}, not a number")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"'{key}' is {value!r}, not an integer")
        return value
    if not isinstance(value, str) or not value:
        raise ValueError(f"'{key}' is {value!r}, not a name")
    return value


def _common_fields(record: dict, path: Path, kind: str) -> dict:
    args = record.get("args")
    if not isinstance(args, dict):
        raise ValueError("missing the 'args' dict (resolved command-line arguments)")
    ratio = _field(record, "remaining_weight_ratio", float)
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"'remaining_weight_ratio' is {ratio}, outside [0, 1]")
    return {
        "kind": kind,
        "path": str(path),
        "dataset": _field(record if "dataset" in record else args, "dataset", str),
        "arch": _field(record if "arch" in record else args, "arch", str),
        "method": _field(record, "method", str),
        "sparsity": sparsity_of(ratio),
        "seed": _field(record, "seed", int),
        **_identity_fields(record, kind),
    }


def _identity_fields(record: dict, kind: str) -> dict:
    """The run's experiment (its identity without seeds) and its trial (the seeds)."""
    identity = record.get("identity")
    if identity is None:  # written before run identities were recorded: its flags from the saved arguments
        whole_class = record.get("class_to_replace") if record.get("whole_class") else None
        forget = {"scenario": record.get("scenario", "backdoor"), "whole_class": whole_class}
        args = {**record["args"], "seed": record.get("seed")}  # the seed as the record states it
        identity = run_identity.of_args(KIND_OF_RESULT[kind], args, forget_set=forget)
    if not isinstance(identity, dict) or not isinstance(identity.get("args"), dict):
        raise ValueError("its 'identity' is not a run identity (a dict with 'args')")
    setting = run_identity.setting_of(identity)
    return {
        "identity": identity,
        "setting": setting,
        "setting_id": json.dumps(setting, sort_keys=True, default=str),
        "context_id": json.dumps(run_identity.reference_context(setting), sort_keys=True, default=str),
        "trial": run_identity.trial_of(identity),
    }


def parse_eval(record: dict, path: Path) -> dict:
    """One ``*_eval.json`` as a flat run dict; raises ValueError naming what is wrong."""
    run = _common_fields(record, path, "unlearn")
    run["scenario"] = _field(record, "scenario", str)
    run["class_to_replace"] = _field(record, "class_to_replace", int) if run["scenario"] == "class" else None
    run["num_forget"] = _field(record, "num_forget", int)
    run["forgotten_class"] = run["class_to_replace"] if record.get("whole_class") else None
    for short, key, _ in METRICS:
        run[short] = _percentage(record, key)
    run["RTE"] = _field(record, "RTE_min", float)
    if not run["RTE"] >= 0:
        raise ValueError(f"'RTE_min' is {run['RTE']}, not a duration (>= 0)")
    return run


def _percentage(record: dict, key: str) -> float:
    """A metric in percent: a finite number in [0, 100], or a ValueError naming the value."""
    value = _field(record, key, float)
    if not 0.0 <= value <= 100.0:  # NaN fails this too
        raise ValueError(f"'{key}' is {value}, not a percentage in [0, 100]")
    return value


def parse_backdoor(record: dict, path: Path) -> dict:
    """One ``*_backdoor.json`` as a flat run dict; raises ValueError naming what is wrong."""
    run = _common_fields(record, path, "backdoor")
    poisoned = record.get("poisoned_indices")
    run["num_poisoned"] = len(poisoned) if isinstance(poisoned, list) else None
    run["target"] = _field(record["args"], "class_to_replace", int)  # the grouping key: an int, not a list
    for key in BACKDOOR_METRICS:
        run[key] = _percentage(record, key)
    return run


def load_runs(paths) -> tuple[list[dict], list[str]]:
    """Every readable run below ``paths`` and a list of problems (unreadable files, duplicates)."""
    files, problems = find_result_files(paths)
    runs = []
    for path in files:
        try:
            record = json.loads(path.read_text())
            if not isinstance(record, dict):
                raise ValueError(f"holds a {type(record).__name__}, not a JSON object")
            if record.get("diverged"):
                problems.append(_diverged_problem(record, path))
                continue
            runs.append(parse_eval(record, path) if path.name.endswith("_eval.json") else parse_backdoor(record, path))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError, RecursionError) as err:
            problems.append(f"{path}: unreadable result, skipped ({err})")
    runs, duplicate_problems = _drop_duplicates(runs)
    return runs, problems + duplicate_problems


def _diverged_problem(record: dict, path: Path) -> str:
    """A diverged run is listed, never averaged: its numbers are not those of a trained model."""
    at = record.get("diverged_at") if isinstance(record.get("diverged_at"), dict) else {}
    where = f" at epoch {at['epoch']}" if at.get("epoch") is not None else ""
    lr = f" with learning rate {at['lr']:g}" if isinstance(at.get("lr"), (int, float)) else ""
    return f"{path}: {record.get('method', 'the run')} diverged{where}{lr}; left out of the means"


def group_key(run: dict) -> tuple:
    """Runs of one experiment: the same setting, sparsity, method and run identity (seeds aside)."""
    return _base_key(run) + (run["setting_id"],)


def _base_key(row: dict) -> tuple:
    fields = SETTING_FIELDS if row["kind"] == "unlearn" else BACKDOOR_SETTING_FIELDS
    return (row["kind"],) + tuple(row[field] for field in fields) + (row["sparsity"], row["method"])


def _drop_duplicates(runs: list[dict]) -> tuple[list[dict], list[str]]:
    kept, seen, problems = [], {}, []
    for run in runs:
        key = group_key(run) + (run["trial"],)
        if key in seen:
            problems.append(
                f"{run['path']}: the same experiment and trial ({_trial_text(run['trial'])}) as {seen[key]}; ignored"
            )
            continue
        seen[key] = run["path"]
        kept.append(run)
    return kept, problems


def _trial_text(trial: tuple) -> str:
    mask_seed, *seeds = trial
    text = ", ".join(f"--{name} {value}" for name, value in zip(run_identity.TRIAL_FLAGS, seeds, strict=True))
    return text if mask_seed is None else f"mask trained with --seed {mask_seed}, {text}"


def variant_labels(runs: list[dict]) -> dict[str, str]:
    """{setting_id: label} naming what sets a variant apart from the other runs of its method and setting
    (e.g. ``ssd_alpha=0.5``); empty where a method has one variant. A label holds at every sparsity."""
    by_base = defaultdict(dict)
    for run in runs:
        by_base[_base_key(run)][run["setting_id"]] = run_identity.flat(run["setting"])
    varying = defaultdict(set)  # per (kind, setting, method), over every sparsity
    for key, variants in by_base.items():
        items = {item for flat in variants.values() for item in flat}
        varying[_without_sparsity(key)] |= {item for item in items if _differs(variants.values(), item)}
    labels = {}
    for key, variants in by_base.items():
        names = sorted(varying[_without_sparsity(key)])
        for setting_id, flat in variants.items():
            labels[setting_id] = ", ".join(
                f"{run_identity.label(item)}={_value_text(flat.get(item))}" for item in names
            )
    return labels


def _without_sparsity(key: tuple) -> tuple:
    return key[:-2] + key[-1:]


def _differs(flats, item: str) -> bool:
    return len({json.dumps(flat.get(item), sort_keys=True, default=str) for flat in flats}) > 1


def _value_text(value) -> str:
    if isinstance(value, str) and len(value) == 64:
        return value[:8]  # a content hash
    return format(value, "g") if isinstance(value, float) else str(value)


def _describe(row: dict) -> str:
    if "target" in row:  # backdoor runs and rows
        head = f"{row['dataset']}/{row['arch']} backdoor"
    else:
        head = f"{row['dataset']}/{row['arch']} {scenario_title(row)}"
    return f"{head}, sparsity {row['sparsity']:.1f}%, {method_name(row['method'])}"


def scenario_title(row: dict) -> str:
    if row["scenario"] == "class":
        return f"class-wise forgetting (class {row['class_to_replace']}, {row['num_forget']} samples)"
    if row["scenario"] == "random":
        return f"random forgetting ({row['num_forget']} samples)"
    return f"{row['scenario']} forgetting ({row['num_forget']} samples)"


# ----------------------------------------------------------------------------- summarising


def _mean_std(values) -> tuple[float, float | None]:
    """Mean and sample std over trials; the std is None (a blank cell), not 0, for one trial."""
    result = trial_stats.summary(values)
    return result["mean"], result["std"]


def _with_interval(row: dict, name: str, values) -> None:
    """``{name}_mean``, ``_std`` and the 95% t-interval ``_ci_low``/``_ci_high`` (None for one trial)."""
    result = trial_stats.summary(values)
    for key in ("mean", "std", "ci_low", "ci_high"):
        row[f"{name}_{key}"] = result[key]


def _group(runs: list[dict], kind: str) -> dict:
    groups = defaultdict(list)
    for run in runs:
        if run["kind"] == kind:
            groups[group_key(run)].append(run)
    return groups


def summarise(runs: list[dict]) -> list[dict]:
    """One row per unlearning group: mean/std/gap per metric, Avg. Gap and mean RTE, in table order."""
    rows, labels = [], variant_labels(runs)
    for members in _group(runs, "unlearn").values():
        first = members[0]
        row = {field: first[field] for field in SETTING_FIELDS + ("sparsity", "method", "setting_id", "context_id")}
        label = labels.get(first["setting_id"])
        row |= {
            "name": method_name(first["method"]) + (f" ({label})" if label else ""),
            "variant": label or "",
            "n_seeds": len(members),
            "seeds": sorted(run["seed"] for run in members),
        }
        for short, _, _ in METRICS:
            _with_interval(row, short, [run[short] for run in members])
        row["RTE_mean"], row["RTE_std"] = _mean_std([run["RTE"] for run in members])
        row |= _output_distances(members)
        rows.append(row)
    references = _retrain_references(rows)
    for row in rows:
        reference = references.get(id(row))
        row["has_retrain"] = isinstance(reference, dict)
        row["retrain_ambiguous"] = reference == "ambiguous"
        for short, _, _ in METRICS:
            gap = abs(row[f"{short}_mean"] - reference[f"{short}_mean"]) if row["has_retrain"] else math.nan
            row[f"{short}_gap"] = gap
        row["avg_gap"] = float(np.mean([row[f"{short}_gap"] for short, _, _ in METRICS]))
    return sorted(rows, key=_row_order)


def _retrain_references(rows: list[dict]) -> dict:
    """{id(row): its Retrain row, or "ambiguous" when several Retrain variants share its setting and inputs}."""
    retrain = defaultdict(list)
    for row in rows:
        if row["method"] == "retrain":
            retrain[_reference_key(row)].append(row)
    found = {}
    for row in rows:
        candidates = retrain.get(_reference_key(row), [])
        if row["method"] == "retrain":
            found[id(row)] = row
        elif len(candidates) == 1:
            found[id(row)] = candidates[0]
        elif candidates:
            found[id(row)] = "ambiguous"
    return found


def _reference_key(run: dict) -> tuple:
    """A run and the Retrain it is measured against share this: setting, sparsity, data and inputs."""
    return _setting(run) + (run["sparsity"], run["context_id"])


def _output_distances(members: list[dict]) -> dict:
    """Mean/std over the seeds whose distances to Retrain were measured (None when none was)."""
    measured = [run for run in members if run.get(output_distance.OUTPUT_METRICS[0]) is not None]
    row = {"paired_seeds": len(measured)}
    for name in output_distance.OUTPUT_METRICS:
        values = [run[name] for run in measured]
        row[f"{name}_mean"], row[f"{name}_std"] = _mean_std(values) if values else (None, None)
    return row


def summarise_backdoor(runs: list[dict]) -> list[dict]:
    """One row per backdoor group: mean/std of SA and ASR before and after unlearning."""
    rows, labels = [], variant_labels(runs)
    for members in _group(runs, "backdoor").values():
        first = members[0]
        row = {field: first[field] for field in BACKDOOR_SETTING_FIELDS + ("sparsity", "method")}
        label = labels.get(first["setting_id"])
        row |= {
            "name": method_name(first["method"]) + (f" ({label})" if label else ""),
            "variant": label or "",
            "n_seeds": len(members),
            "seeds": sorted(run["seed"] for run in members),
        }
        for key in BACKDOOR_METRICS:
            _with_interval(row, key, [run[key] for run in members])
        rows.append(row)
    return sorted(rows, key=_backdoor_order)


def _setting(row: dict) -> tuple:
    return tuple(row[field] for field in SETTING_FIELDS)


def _pairing_key(run: dict) -> tuple:
    """A run is compared with the Retrain run of its setting, sparsity, data and inputs, and of its trial."""
    return _reference_key(run) + (run["trial"],)


def _sortable(value) -> tuple:
    return (value is None, str(type(value)), value if value is not None else 0)


def _row_order(row: dict) -> tuple:
    fields = tuple(_sortable(row[f]) for f in SETTING_FIELDS)
    return fields + (row["sparsity"], method_rank(row["method"]), row["variant"])


def _backdoor_order(row: dict) -> tuple:
    fields = tuple(_sortable(row[f]) for f in BACKDOOR_SETTING_FIELDS)
    return fields + (row["sparsity"], method_rank(row["method"]), row["variant"])


# ----------------------------------------------------------------------------- dense vs sparse, paired by trial

GAPS = tuple(short for short, _, _ in METRICS) + ("avg_gap",)


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
    return sorted(effects, key=lambda row: _row_order(row))


def _trial_gaps(runs: list[dict]):
    """(run, {metric: |run − Retrain of the same trial, sparsity and inputs|, avg_gap}) for every run but Retrain."""
    retrain = {_pairing_key(run): run for run in runs if run["kind"] == "unlearn" and run["method"] == "retrain"}
    for run in runs:
        reference = retrain.get(_pairing_key(run)) if run["kind"] == "unlearn" else None
        if reference is None or run["method"] == "retrain":
            continue
        gaps = {short: abs(run[short] - reference[short]) for short, _, _ in METRICS}
        gaps["avg_gap"] = float(np.mean(list(gaps.values())))
        yield run, gaps


def _effect_key(run: dict) -> tuple:
    setting = {**run["setting"], "inputs": {k: v for k, v in run["setting"]["inputs"].items() if k != "mask"}}
    return _setting(run) + (run["method"], json.dumps(setting, sort_keys=True, default=str))


def _effect(run: dict, sparsity: float, dense: list[dict], sparse: list[dict]) -> dict:
    row = {field: run[field] for field in SETTING_FIELDS + ("method",)}
    row |= {"sparsity": sparsity, "variant": run["setting_id"], "n_trials": len(dense)}
    for gap in GAPS:
        change = trial_stats.paired_change([d[gap] for d in dense], [s[gap] for s in sparse])
        row |= {f"{gap}_change": change["mean"], f"{gap}_ci_low": change["ci_low"]}
        row |= {f"{gap}_ci_high": change["ci_high"], f"{gap}_verdict": change["verdict"]}
    return row


def _change_cell(row: dict, gap: str) -> str:
    low, high = row[f"{gap}_ci_low"], row[f"{gap}_ci_high"]
    interval = "" if low is None else f" [{low:+.1f}, {high:+.1f}]"
    return f"{row[f'{gap}_change']:+.1f}{interval}"


def effects_markdown(effects: list[dict]) -> str:
    """One table per setting: the change of each gap from dense to sparse, paired by trial."""
    header = ["Sparsity", "Method"] + [t for _, _, t in METRICS] + ["Avg. Gap", "Verdict (Avg. Gap)", "Trials"]
    by_setting = defaultdict(list)
    for row in effects:
        by_setting[_setting(row)].append(row)
    parts = []
    for rows in by_setting.values():
        body = [
            [f"{row['sparsity']:.1f}%", row["name"]] + [_change_cell(row, gap) for gap in GAPS]
            + [row["avg_gap_verdict"], str(row["n_trials"])]
            for row in rows
        ]  # fmt: skip
        title = f"### {rows[0]['dataset']} · {rows[0]['arch']} · {scenario_title(rows[0])}"
        parts.append(title + "\n\n" + _markdown_table(header, ["---:", "---"] + ["---:"] * 7, body))
    return "\n\n".join(parts) + ("\n" if parts else "")


def gap_problems(rows: list[dict]) -> list[str]:
    """One line per (setting, sparsity) that has runs but no single Retrain run to gap them against."""
    lacking = {}
    for row in rows:
        if not row["has_retrain"]:
            lacking.setdefault(_reference_key(row), row)
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
                lines.append(f"partial: {_describe(row)} has {row['n_seeds']} of {most} seeds (seeds {seeds})")
    return lines


def _missing_combinations(rows, expect_methods, expect_seeds, expect_sparsities) -> list[str]:
    by_setting = defaultdict(list)
    for row in rows:
        by_setting[_setting(row)].append(row)
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
                    described = _describe(setting_rows[0] | {"sparsity": sparsity, "method": method})
                    lines.append(f"missing: {described}, seed{'s' * (len(absent) > 1)} {', '.join(absent)}")
    return lines


# ----------------------------------------------------------------------------- formatting


def _number(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def _spread(mean: float, std: float | None, digits: int = 2) -> str:
    """``mean±std``; one trial has no spread, so only the mean."""
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f}±{std:.{digits}f}"


def _cell(row: dict, short: str) -> str:
    mean, std = row[f"{short}_mean"], row[f"{short}_std"]
    return f"{_number(mean)}{'' if std is None else '±' + _number(std)} ({_number(row[f'{short}_gap'])})"


def _markdown_table(header: list[str], align: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def to_markdown(rows: list[dict]) -> str:
    """One Markdown table per (dataset, arch, scenario): cells are mean±std (|gap to Retrain|)."""
    header = ["Sparsity", "Method"] + [title for _, _, title in METRICS] + ["Avg. Gap", "RTE (min)", "Seeds"]
    align = ["---:", "---"] + ["---:"] * (len(header) - 2)
    by_setting = defaultdict(list)
    for row in rows:
        by_setting[_setting(row)].append(row)
    parts = []
    for setting_rows in by_setting.values():
        first = setting_rows[0]
        body = [
            [f"{row['sparsity']:.1f}%", row["name"]]
            + [_cell(row, short) for short, _, _ in METRICS]
            + [_number(row["avg_gap"]), _number(row["RTE_mean"]), str(row["n_seeds"])]
            for row in setting_rows
        ]
        parts.append(
            f"### {first['dataset']} · {first['arch']} · {scenario_title(first)}\n\n"
            + _markdown_table(header, align, body)
        )
        if any(row["UA_ci_low"] is not None for row in setting_rows):
            parts.append(interval_markdown(setting_rows))
        if any(row.get("paired_seeds") for row in setting_rows):
            parts.append(distance_markdown(setting_rows))
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
        + _markdown_table(header, ["---:", "---"] + ["---:"] * 5, body)
    )


def _distance_cell(row: dict, name: str, digits: int) -> str:
    mean, std = row.get(f"{name}_mean"), row.get(f"{name}_std")
    return "" if mean is None else _spread(mean, std, digits)


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
        + _markdown_table(header, ["---:", "---"] + ["---:"] * 4, body)
    )


def backdoor_markdown(rows: list[dict]) -> str:
    """One Markdown table per backdoor setting: SA and ASR before/after unlearning, mean±std."""
    keys = ("SA_before", "ASR_before", "SA_after", "ASR_after")
    header = ["Sparsity", "Method", "SA before", "ASR before", "SA after", "ASR after", "Seeds"]
    align = ["---:", "---"] + ["---:"] * 5
    by_setting = defaultdict(list)
    for row in rows:
        by_setting[tuple(row[f] for f in BACKDOOR_SETTING_FIELDS)].append(row)
    parts = []
    for setting_rows in by_setting.values():
        first = setting_rows[0]
        body = [
            [f"{row['sparsity']:.1f}%", row["name"]]
            + [_spread(row[f"{k}_mean"], row[f"{k}_std"]) for k in keys]
            + [str(row["n_seeds"])]
            for row in setting_rows
        ]
        parts.append(
            f"### {first['dataset']} · {first['arch']} · backdoor (target class {first['target']}, "
            f"{first['num_poisoned']} poisoned samples)\n\n" + _markdown_table(header, align, body)
        )
    return "\n\n".join(parts) + ("\n" if parts else "")


def _csv_text(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([" ".join(map(str, row[c])) if c == "seeds" else _csv_value(row[c]) for c in columns])
    return buffer.getvalue()


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
    return _csv_text(rows, columns + ["paired_seeds"])


RUN_FIELDS = ("path", "kind", "dataset", "arch", "method", "sparsity", "seed")


def runs_to_csv(runs: list[dict]) -> str:
    """runs.csv: one row per run read, with every metric and every field of its run identity
    (``identity.args.unlearn_lr``, ``identity.inputs.mask.sha256``, ...)."""
    metrics = [short for short, _, _ in METRICS] + ["RTE", *output_distance.OUTPUT_METRICS, *BACKDOOR_METRICS]
    flats = [{f"identity.{k}": v for k, v in run_identity.flat(run["identity"]).items()} for run in runs]
    identity_columns = sorted({column for flat in flats for column in flat})
    rows = [
        {**{f: run.get(f) for f in RUN_FIELDS + ("scenario", "num_forget")}, **{m: run.get(m) for m in metrics}, **flat}
        for run, flat in zip(runs, flats, strict=True)
    ]
    columns = [*RUN_FIELDS, "scenario", "num_forget", *metrics, *identity_columns]
    return _csv_text([{c: row.get(c) for c in columns} for row in rows], columns)


def effects_to_csv(effects: list[dict]) -> str:
    columns = list(SETTING_FIELDS) + ["sparsity", "method", "name", "n_trials"]
    for gap in GAPS:
        columns += [f"{gap}_change", f"{gap}_ci_low", f"{gap}_ci_high", f"{gap}_verdict"]
    return _csv_text(effects, columns)


def backdoor_to_csv(rows: list[dict]) -> str:
    columns = list(BACKDOOR_SETTING_FIELDS) + ["sparsity", "method", "name", "variant", "n_seeds", "seeds"]
    for key in BACKDOOR_METRICS:
        columns += [f"{key}_mean", f"{key}_std"]
    return _csv_text(rows, columns)


# ----------------------------------------------------------------------------- plotting


def _figure(n_panels: int, n_cols: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = math.ceil(n_panels / n_cols)
    fig, axes = plt.subplots(rows, n_cols, figsize=(5.0 * n_cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    return fig, axes.flat


def _save_figure(fig, path: Path) -> Path:
    """The PNG written like every other file (atomically, with the usual permissions): never half a PNG."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.tight_layout()
        fig.savefig(buffer, format="png", dpi=120)
    finally:
        plt.close(fig)
    atomic_write_bytes(buffer.getvalue(), path)
    return path


def _method_lines(ax, rows: list[dict], metric: str) -> None:
    """One line per method variant (its row name), in table order, with its 95% t-interval over trials as a
    band where there are two trials or more."""
    names = sorted({(method_rank(row["method"]), row["name"]) for row in rows})
    for _, name in names:
        points = sorted(
            (row["sparsity"], row[f"{metric}_mean"], row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high"))
            for row in rows
            if row["name"] == name
        )
        x, y, low, high = zip(*points, strict=True)
        (line,) = ax.plot(x, y, marker="o", label=name)
        if all(value is not None for value in low + high):
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)


def plot_sparsity(rows: list[dict], metric: str, path) -> Path | None:
    """``metric`` (UA or MIA) vs sparsity, one line per method, one panel per (dataset, arch, scenario)."""
    titles = {short: title for short, _, title in METRICS}
    if metric not in titles:
        raise UsageError(f"unknown metric '{metric}'; choose from {', '.join(titles)}")
    by_setting = defaultdict(list)
    for row in rows:
        by_setting[_setting(row)].append(row)
    if not by_setting:
        return None
    fig, axes = _figure(len(by_setting), min(3, len(by_setting)))
    for ax, setting_rows in zip(axes, by_setting.values(), strict=False):
        _method_lines(ax, setting_rows, metric)
        first = setting_rows[0]
        ax.set_title(f"{first['dataset']} {first['arch']}\n{scenario_title(first)}", fontsize=9)
        ax.set_xlabel("sparsity (%)")
        ax.set_ylabel(f"{titles[metric]} (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save_figure(fig, Path(path))


def plot_backdoor(rows: list[dict], path) -> Path | None:
    """ASR and SA after unlearning vs sparsity, one line per method, the model before unlearning dashed."""
    by_setting = defaultdict(list)
    for row in rows:
        by_setting[tuple(row[f] for f in BACKDOOR_SETTING_FIELDS)].append(row)
    if not by_setting:
        return None
    fig, axes = _figure(2 * len(by_setting), 2)
    axes = list(axes)
    for index, setting_rows in enumerate(by_setting.values()):
        first = setting_rows[0]
        for ax, metric in zip(axes[2 * index : 2 * index + 2], ("ASR", "SA"), strict=True):
            _method_lines(ax, setting_rows, f"{metric}_after")
            before = defaultdict(list)
            for row in setting_rows:
                before[row["sparsity"]].append(row[f"{metric}_before_mean"])
            x = sorted(before)
            ax.plot(x, [np.mean(before[s]) for s in x], "k--", label="before unlearning")
            ax.set_title(f"{first['dataset']} {first['arch']}: {metric} after unlearning", fontsize=9)
            ax.set_xlabel("sparsity (%)")
            ax.set_ylabel(f"{metric} (%)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    return _save_figure(fig, Path(path))


# ----------------------------------------------------------------------------- the command

AUDIT_NOTE = (
    "Per forget example, the method's N runs against N Retrain runs: the accuracy of a leave-one-model-out "
    "likelihood-ratio test on φ = log(p_y/(1−p_y)) (0.5: indistinguishable), its mean and 10–90% quantiles over "
    "the forget set; the noise floor is Retrain against Retrain (disjoint halves), what an exact unlearner "
    "scores; ε with δ = 1e-5 from Clopper–Pearson-bounded error rates, at most the cap N models can show. "
    "MIA-Efficacy and UA: means over the same runs (Retrain's in brackets).\n\n"
)


def _listing(title: str, lines: list[str]) -> str:
    return f"## {title}\n\n" + ("\n".join(f"- {line}" for line in lines) if lines else "None.") + "\n"


def build_report(
    paths,
    out,
    expect_methods=None,
    expect_seeds=None,
    expect_sparsities=None,
    with_published=False,
    meter: output_distance.OutputMeter | None = None,
    log=None,
):
    """Load, summarise, write report.md / report.csv / backdoor.csv / PNGs into ``out``; return what was made.

    With ``meter``, each unlearning run's JS divergences and ℓ2 distance to Retrain are measured too.
    """
    runs, problems = load_runs(paths)
    if not runs and not problems:
        raise UsageError(f"no *_eval.json or *_backdoor.json found under {', '.join(map(str, paths))}")
    interrupts.check("report.py, after reading the results")
    if meter is not None:
        skipped = output_distance.measure(runs, _pairing_key, meter, log)
        problems += [f"{_describe(run)}, seed {run['seed']}: no JS/ℓ2 to Retrain, {why}" for run, why in skipped]
    rows, backdoor_rows = summarise(runs), summarise_backdoor(runs)
    problems += gap_problems(rows)
    missing = find_missing(rows, backdoor_rows, expect_methods, expect_seeds, expect_sparsities)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.md", out / "report.csv"]
    interrupts.check("report.py, before writing its files")  # a stop writes nothing
    figures = [plot_sparsity(rows, "UA", out / "sparsity_UA.png"), plot_sparsity(rows, "MIA", out / "sparsity_MIA.png")]
    if backdoor_rows:
        atomic_write_text(backdoor_to_csv(backdoor_rows), out / "backdoor.csv")
        written.append(out / "backdoor.csv")
        figures.append(plot_backdoor(backdoor_rows, out / "backdoor_ASR_SA.png"))
    figures = [figure for figure in figures if figure is not None]
    effects = sparsity_effects(runs)
    audits = _read_audits(paths, problems)
    text = _report_text(paths, runs, rows, backdoor_rows, missing, problems, figures, effects)
    if audits:
        text += "\n## Per-example audit (main_audit.py)\n\n" + AUDIT_NOTE + audit_report.audit_markdown(audits)
    comparison = []
    if with_published:
        comparison, unmatched = published.compare(rows, published.load())
        text += "\n## Published results beside ours\n\n" + published.to_markdown(comparison, unmatched)
        atomic_write_text(_csv_text(comparison, published.CSV_COLUMNS), out / "published.csv")
        written.append(out / "published.csv")
    written += _write_tables(out, rows, effects, runs)
    atomic_write_text(text, out / "report.md")
    return {
        "text": text,
        "rows": rows,
        "effects": effects,
        "backdoor_rows": backdoor_rows,
        "missing": missing,
        "problems": problems,
        "published": comparison,
        "audits": audits,
        "files": written + figures,
    }


def _read_audits(paths, problems: list[str]) -> list[dict]:
    """Every usable ``*_audit.json`` below ``paths``; an unusable one becomes a line of ``problems``."""
    audits = []
    for path in audit_report.find_audits(paths):
        try:
            audits.append(audit_report.audit_row(path))
        except ValueError as err:
            problems.append(f"{path}: unusable audit result, skipped ({err})")
    return audits


def _write_tables(out: Path, rows, effects, runs) -> list[Path]:
    """report.csv, sparsity_effects.csv and runs.csv (report.csv was listed already)."""
    atomic_write_text(to_csv(rows), out / "report.csv")
    atomic_write_text(effects_to_csv(effects), out / "sparsity_effects.csv")
    atomic_write_text(runs_to_csv(runs), out / "runs.csv")
    return [out / "sparsity_effects.csv", out / "runs.csv"]


EFFECTS_NOTE = (
    "## Sparse against dense, paired by trial\n\n"
    'The paper\'s claim "sparsity closes the gap to Retrain", tested: for each trial (the seed that trained and '
    "pruned the model, and the unlearning seed), each |gap to Retrain of the same trial| at the sparsity "
    "minus the same gap dense; mean over trials and its 95% t-interval. Negative: closer to Retrain when "
    "sparse. Verdict on Avg. Gap: shrinks (the interval is below 0), grows (above 0), inconclusive (it "
    "contains 0, or one trial).\n\n"
)


def _report_text(paths, runs, rows, backdoor_rows, missing, problems, figures, effects=()) -> str:
    sources = ", ".join(f"`{path}`" for path in paths)
    parts = [
        f"# Unlearning report\n\n{len(runs)} runs read from {sources}. Cells: mean±std over trials "
        "(|gap to Retrain of the same setting and sparsity|); Avg. Gap = mean of the four gaps. "
        "JS: mean Jensen–Shannon divergence of the softmax outputs to Retrain's of the same seed and forget "
        "set, on D_f and on the test set; ℓ2: distance of the effective weights to Retrain's.\n"
    ]
    if rows:
        parts.append("## Unlearning\n\n" + to_markdown(rows))
    if effects:
        parts.append(EFFECTS_NOTE + effects_markdown(effects))
    if backdoor_rows:
        parts.append("## Backdoor cleanse\n\n" + backdoor_markdown(backdoor_rows))
    parts.append(_listing("Missing or partial runs", missing))
    parts.append(_listing("Problems", problems))
    if figures:
        parts.append("## Figures\n\n" + "\n".join(f"![{fig.stem}]({fig.name})" for fig in figures) + "\n")
    return "\n".join(parts)


def _flat_list(values, kind, flag):
    items = [item for value in values or [] for item in str(value).split(",") if item]
    try:
        return [kind(item) for item in items] or None
    except ValueError:
        raise UsageError(f"{flag} takes {kind.__name__} values separated by spaces or commas; got {values}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = arg_parser.Parser(description=__doc__, formatter_class=arg_parser.HelpFormatter)
    parser.add_argument(
        "result_dirs",
        nargs="+",
        metavar="RESULT_DIR",
        help="folders searched recursively for *_eval.json and *_backdoor.json (or such files)",
    )
    parser.add_argument("--out", default=None, help="where report.md/.csv and the PNGs go (default: first RESULT_DIR)")
    parser.add_argument(
        "--expect-methods",
        nargs="+",
        default=None,
        metavar="METHOD",
        help="methods every setting should have (--unlearn names or display names, e.g. retrain FT)",
    )
    parser.add_argument(
        "--expect-seeds",
        nargs="+",
        default=None,
        metavar="SEED",
        help="seeds every (setting, sparsity, method) should have, e.g. 1 2 3",
    )
    parser.add_argument(
        "--expect-rates",
        nargs="+",
        default=None,
        metavar="RATE",
        help="pruning rates (fractions as in the sweep's --rates, e.g. 0 0.5 0.9) every setting should "
        "have; default: the sparsities seen",
    )
    parser.add_argument(
        "--no-output-metrics",
        action="store_true",
        help="skip JS_forget, JS_test and L2_to_retrain (they rebuild and predict every run's checkpoint, "
        "~18 s per Fashion-MNIST resnet20s run on one CPU core, ~0.1 s per digits run)",
    )
    parser.add_argument(
        "--device", default="cpu", help="where the output metrics predict: cpu (default), cuda, cuda:N or auto"
    )
    parser.add_argument(
        "--data", default=None, help="folder of the dataset files for the output metrics (default: each run's --data)"
    )
    parser.add_argument(
        "--published",
        action="store_true",
        help="add the published CIFAR-10 ResNet-18 values (the paper's and SalUn's Table 1, "
        "reference/published.csv) beside ours, with the difference, for the settings they cover",
    )
    return parser


# run_cli's wording for this script: its output flag, and what to do after a stop (it has no --resume)
ENDINGS = ("--out", "nothing was written; rerun the same command")


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    by_display = {name: method for method, name in METHOD_NAMES.items()}
    methods = _flat_list(args.expect_methods, str, "--expect-methods")
    methods = [by_display.get(method, method) for method in methods] if methods else None
    rates = _flat_list(args.expect_rates, float, "--expect-rates")
    sparsities = [sparsity_of(1.0 - rate) for rate in rates] if rates else None
    seeds = _flat_list(args.expect_seeds, int, "--expect-seeds")
    first = Path(args.result_dirs[0])
    out = Path(args.out) if args.out else (first if first.is_dir() else first.parent)
    meter = None if args.no_output_metrics else output_distance.OutputMeter(args.device, args.data)
    progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731  (stdout carries the report)
    result = build_report(
        args.result_dirs, out, methods, seeds, sparsities, with_published=args.published, meter=meter, log=progress
    )
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")
    print(result["text"])
    print("wrote " + ", ".join(str(path) for path in result["files"]))
    return result


if __name__ == "__main__":
    run_cli(main, how=ENDINGS)
