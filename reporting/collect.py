"""Result files read back: each run's metrics, grouped by run identity, averaged over trials."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

import unlearn
from evaluation import trial_stats
from experiments import run_identity
from reporting import output_distance

# Paper names and the paper's table order come from the registry; a result file of a method that is
# no longer registered keeps its --unlearn name and sorts after the others.
METHOD_NAMES = {method.name: method.paper_name for method in unlearn.listed()}


METHOD_ORDER = tuple(method.name for method in unlearn.listed() if method.in_tables)


# (short name used in rows/CSV, key in *_eval.json, column title)
METRICS = (("UA", "UA", "UA"), ("MIA", "MIA_efficacy", "MIA-Efficacy"), ("RA", "RA", "RA"), ("TA", "TA", "TA"))


GAPS = tuple(short for short, _, _ in METRICS) + ("avg_gap",)
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
        "files_of": _field(record, "method", str),  # the --unlearn name its files carry, kept when renamed
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
        "clean_context_id": json.dumps(run_identity.clean_reference_context(setting), sort_keys=True, default=str),
        "clean_mask": _mask_left_out(identity),
        "trial": run_identity.trial_of(identity),
    }


def _mask_left_out(identity: dict) -> bool:
    """Whether the run's mask was trained with its forget set left out (main_imp.py --leave_out_forget)."""
    made_by = (identity.get("inputs", {}).get("mask") or {}).get("made_by")
    return isinstance(made_by, dict) and "left_out" in (made_by.get("inputs") or {})


INHERITED_RETRAIN = "Retrain (inherited mask)"


def against_clean_retrain(runs: list[dict]) -> list[dict]:
    """The runs re-keyed so that every run on an inherited mask is measured against the clean Retrain: the
    Retrain whose mask was trained and pruned without this run's forget set (same recipe, seeds, sparsity).
    The Retrain of the inherited mask becomes a run like any method, named INHERITED_RETRAIN; each re-keyed
    run is marked ``against_clean`` (its mask differs from its reference's by design)."""
    moved = []
    for run in runs:
        if run["kind"] != "unlearn" or run["clean_mask"]:
            moved.append(run)
            continue
        method = INHERITED_RETRAIN if run["method"] == "retrain" else run["method"]
        moved.append({**run, "method": method, "context_id": run["clean_context_id"], "against_clean": True})
    return moved


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
    relearn = record.get("relearn")  # main_forget.py --relearn; steps None: not reached within its max
    run["relearn_measured"] = isinstance(relearn, dict)
    run["relearn_steps"] = relearn.get("steps") if run["relearn_measured"] else None
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


def describe(row: dict) -> str:
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
        row |= _output_distances(members) | _relearn(members)
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
    return sorted(rows, key=row_order)


def _retrain_references(rows: list[dict]) -> dict:
    """{id(row): its Retrain row, or "ambiguous" when several Retrain variants share its setting and inputs}."""
    retrain = defaultdict(list)
    for row in rows:
        if row["method"] == "retrain":
            retrain[reference_key(row)].append(row)
    found = {}
    for row in rows:
        candidates = retrain.get(reference_key(row), [])
        if row["method"] == "retrain":
            found[id(row)] = row
        elif len(candidates) == 1:
            found[id(row)] = candidates[0]
        elif candidates:
            found[id(row)] = "ambiguous"
    return found


def reference_key(run: dict) -> tuple:
    """A run and the Retrain it is measured against share this: setting, sparsity, data and inputs."""
    return setting_key(run) + (run["sparsity"], run["context_id"])


def _output_distances(members: list[dict]) -> dict:
    """Mean/std over the seeds whose distances to Retrain were measured (None when none was)."""
    measured = [run for run in members if run.get(output_distance.OUTPUT_METRICS[0]) is not None]
    row = {"paired_seeds": len(measured)}
    for name in output_distance.OUTPUT_METRICS:
        values = [run[name] for run in measured]
        row[f"{name}_mean"], row[f"{name}_std"] = _mean_std(values) if values else (None, None)
    return row


def _relearn(members: list[dict]) -> dict:
    """Relearn steps, mean/std over the trials that measured and reached the target; how many did not reach it."""
    measured = [run for run in members if run.get("relearn_measured")]
    reached = [run["relearn_steps"] for run in measured if run["relearn_steps"] is not None]
    mean, std = _mean_std(reached) if reached else (None, None)
    return {"relearn_mean": mean, "relearn_std": std, "relearn_measured": len(measured),
            "relearn_not_reached": len(measured) - len(reached)}  # fmt: skip


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


def setting_key(row: dict) -> tuple:
    return tuple(row[field] for field in SETTING_FIELDS)


def pairing_key(run: dict) -> tuple:
    """A run is compared with the Retrain run of its setting, sparsity, data and inputs, and of its trial."""
    return reference_key(run) + (run["trial"],)


def _sortable(value) -> tuple:
    return (value is None, str(type(value)), value if value is not None else 0)


def row_order(row: dict) -> tuple:
    fields = tuple(_sortable(row[f]) for f in SETTING_FIELDS)
    return fields + (row["sparsity"], method_rank(row["method"]), row["variant"])


def _backdoor_order(row: dict) -> tuple:
    fields = tuple(_sortable(row[f]) for f in BACKDOOR_SETTING_FIELDS)
    return fields + (row["sparsity"], method_rank(row["method"]), row["variant"])
