"""The files of an unlearning run (main_forget.py): progress, finished checkpoint, results."""

from __future__ import annotations

from pathlib import Path

import pruner
from experiments.run_files import command_and_provenance, read_json_record, require_same_run
from utils import (
    UsageError,
    atomic_torch_save,
    atomic_write_json,
    require_keys,
    require_state_dict,
    safe_load,
)

# What the finished checkpoint and the per-epoch progress file must hold to be resumed from.
FINISHED_KEYS = ("args", "forget_indices", "state_dict", "stats", "evaluation", "RTE_min")
PROGRESS_KEYS = (
    "args",
    "forget_indices",
    "state_dict",
    "stats",
    "elapsed",
    "epoch",
    "optimizer",
    "scheduler",
    "history",
)


def paths(save_dir, method: str) -> dict[str, Path]:
    """main_forget.py's files for ``method``: finished checkpoint, progress, results, per-example outputs."""
    save_dir = Path(save_dir)
    return {
        "checkpoint": save_dir / f"{method}checkpoint.pth.tar",
        "progress": save_dir / f"{method}_progress.pth.tar",
        "results": save_dir / f"{method}_eval.json",
        "outputs": save_dir / f"{method}_outputs.npz",
        "epochs": save_dir / f"{method}_epochs.jsonl",
    }


def _check_same_run(saved, identity: dict, path, keys) -> None:
    require_keys(saved, keys, path, "--resume file")
    require_same_run(saved, identity, path)


def save_progress(path, state: dict, model, elapsed: float, stats: dict, forget_indices, args, identity) -> None:
    """After an unlearning epoch: the loop's ``state`` (epoch, optimiser, scheduler, history) and the weights."""
    atomic_torch_save(
        {
            **state,
            "identity": identity,
            "state_dict": model.state_dict(),
            "elapsed": elapsed,
            "stats": stats,
            "forget_indices": forget_indices.tolist(),
            "args": vars(args),
        },
        path,
    )


def load_progress(path, identity: dict) -> dict:
    progress = safe_load(path, "unlearning progress")
    _check_same_run(progress, identity, path, PROGRESS_KEYS)
    return progress


def save_finished(path, model, evaluation: dict, rte_min: float, stats: dict, forget_indices, args, meta) -> None:
    """The finished unlearning run; ``evaluation`` may be partial (filled in while it is measured).
    ``meta`` holds the set-up and the run's ``identity``."""
    atomic_torch_save(
        {
            "state_dict": model.state_dict(),
            "evaluation": evaluation,
            "RTE_min": rte_min,
            "stats": stats,
            "forget_indices": forget_indices.tolist(),
            "args": vars(args),
            **meta,
        },
        path,
    )


def load_finished(path, identity: dict) -> dict:
    saved = safe_load(path, "unlearning checkpoint")
    _check_same_run(saved, identity, path, FINISHED_KEYS)
    return saved


def read_finished(path) -> dict:
    """A finished unlearning checkpoint read back for comparison (report.py): checked to hold what it must."""
    saved = safe_load(path, "unlearning checkpoint")
    require_keys(saved, FINISHED_KEYS, path, "unlearning checkpoint")
    require_state_dict(saved, path, "unlearning checkpoint")
    if not isinstance(saved["args"], dict) or not {"arch", "dataset"} <= saved["args"].keys():
        raise UsageError(f"unlearning checkpoint '{path}' has no 'args' with the arch and dataset; give another file")
    return saved


def finished_unlearning(save_dir, method: str) -> dict | None:
    """The identity in ``{method}_eval.json`` (the run's final record), or None when there is none yet."""
    path = paths(save_dir, method)["results"]
    if not path.is_file():
        return None
    return read_json_record(path, "unlearning results").get("identity", {})


def write_eval_results(path, args, method, data, forget, model, evaluation: dict, rte_min, stats, identity) -> dict:
    """``M_eval.json``, the run's final record (written last): what report.py reads. Returns the record written."""
    results = {
        "identity": identity,
        "method": args.unlearn,
        "paper_name": method.paper_name,
        "scenario": forget.scenario,
        "class_to_replace": args.class_to_replace if forget.scenario != "indices" else None,
        "whole_class": forget.forgotten_class is not None,
        "num_forget": len(forget.forget_indices),
        "forget_indices": forget.forget_indices.tolist(),
        "remaining_weight_ratio": pruner.remaining_weight_ratio(model),
        "seed": args.seed,
        "train_seed": args.train_seed,
        "split_seed": args.split_seed,
        "train_subset": args.train_subset,
        "dataset": data.name,
        "arch": args.arch,
        "UA": evaluation["UA"],
        "RA": evaluation["RA"],
        "TA": evaluation["TA"],
        "MIA_efficacy": evaluation["MIA_efficacy"],
        "RTE_min": rte_min,
        "accuracy": evaluation["accuracy"],
        "relearn": evaluation.get("relearn"),  # main_forget.py --relearn, else None
        "SVC_MIA_forget_efficacy": evaluation["SVC_MIA_forget_efficacy"],
        "SVC_MIA_training_privacy": evaluation["SVC_MIA_training_privacy"],
        "unlearn_stats": stats,
        **command_and_provenance(model),
        "args": vars(args),
    }
    if stats.get("diverged"):
        results.update(diverged=True, diverged_at=stats["diverged"])
    atomic_write_json(results, path)
    return results


def artefact_file(save_dir, method: str, name: str) -> Path:
    return Path(save_dir) / f"{method}_{name}.pth.tar"


def save_artefacts(save_dir, method: str, artefacts: dict) -> None:
    """What a method returned (e.g. SalUn's saliency mask), one torch file per artefact, beside its results."""
    for name, tensors in artefacts.items():
        atomic_torch_save(tensors, artefact_file(save_dir, method, name))
