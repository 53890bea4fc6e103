"""The files of a backdoor cleanse (main_backdoor.py) and the record of how its model was poisoned."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import pruner
from experiments.run_files import command_and_provenance
from utils import (
    UsageError,
    atomic_torch_save,
    atomic_write_json,
)


def paths(save_dir, method: str) -> dict[str, Path]:
    """main_backdoor.py's files for ``method``: unlearned model, progress, results."""
    save_dir = Path(save_dir)
    return {
        "model": save_dir / f"{method}_backdoor_model.pth.tar",
        "progress": save_dir / f"{method}_backdoor_progress.pth.tar",
        "results": save_dir / f"{method}_backdoor.json",
    }


POISON_RECORD_FLAGS = {
    "target_class": "--class_to_replace",
    "trigger_size": "--trigger_size",
    "trigger_value": "--trigger_value",
    "split_seed": "--split_seed",
    "train_subset": "--train_subset",
}


def poison_record(args, data, poisoned: np.ndarray) -> dict:
    """What a poisoned model was trained on, stored in its checkpoints and checked when it is reused."""
    return {
        "target_class": args.class_to_replace,
        "trigger_size": args.trigger_size,
        "trigger_value": args.trigger_value,
        "split_seed": data.split_seed,
        "train_subset": data.train_subset,
        "poisoned_indices": poisoned.tolist(),
    }


def check_poison_record(checkpoint: dict, record: dict, path, fix: str) -> None:
    """Refuse a checkpoint poisoned with another trigger, target or set of samples than ``record``."""
    saved = checkpoint.get("backdoor")
    if not isinstance(saved, dict):
        raise UsageError(
            f"'{path}' holds no backdoor record (it was not trained by main_backdoor.py); give a "
            f"{{k}}model_SA_best.pth.tar from a main_backdoor.py run's poisoned/ folder, or drop --mask"
        )
    for key, flag in POISON_RECORD_FLAGS.items():
        if saved.get(key) != record[key]:
            raise UsageError(f"'{path}' was poisoned with {flag} {saved.get(key)}, not {record[key]}; {fix}")
    if saved.get("poisoned_indices") != record["poisoned_indices"]:
        raise UsageError(
            f"'{path}' was poisoned at other training samples ({len(saved.get('poisoned_indices') or [])} of them); "
            f"give the --num_indexes_to_replace and --seed it was made with, or {fix}"
        )


def backdoor_results(args, method, data, path, model, poisoned, before: dict, after: dict, rte_min, stats) -> dict:
    """The record of ``M_backdoor.json`` (``before``/``after``: SA, ASR, ... of θ_o and θ_u)."""
    return {
        "method": args.unlearn,
        "paper_name": method.paper_name,
        "dataset": data.name,
        "arch": args.arch,
        "poisoned_model": str(path),
        "remaining_weight_ratio": pruner.remaining_weight_ratio(model),
        "num_poisoned": len(poisoned),
        "target_class": args.class_to_replace,
        "trigger_size": args.trigger_size,
        "trigger_value": args.trigger_value,
        **{f"{name}_before": value for name, value in before.items()},
        **{f"{name}_after": value for name, value in after.items()},
        "RTE_min": rte_min,
        "seed": args.seed,
        "train_seed": args.train_seed,
        "split_seed": args.split_seed,
        "train_subset": args.train_subset,
        "poisoned_indices": poisoned.tolist(),
        "unlearn_stats": stats,
        **command_and_provenance(model),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "args": vars(args),
        **({"diverged": True, "diverged_at": stats["diverged"]} if stats.get("diverged") else {}),
    }


def save_backdoor_outputs(files: dict, model, results: dict, record: dict, args, meta: dict) -> None:
    """The unlearned model (with the poisoning record, so it can serve as --mask too), then the JSON."""
    atomic_torch_save(
        {
            "state_dict": model.state_dict(),
            "results": {key: value for key, value in results.items() if key != "unlearn_stats"},
            "args": vars(args),
            **meta,
            "backdoor": record,
        },
        files["model"],
    )
    atomic_write_json(results, files["results"])
