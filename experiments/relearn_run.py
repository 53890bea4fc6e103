"""main_forget.py --relearn: the relearn time of the unlearned model (evaluation/relearn.py), after the evaluation.

The target is the D_f accuracy of the Retrain run of the same mask and forget set (--relearn_reference; a
Retrain run is its own) plus --relearn_margin points, capped at 100. The flags only say how to measure:
they do not define the run, and the result records them.
"""

from __future__ import annotations

from pathlib import Path

from evaluation.relearn import RelearnSettings, relearn_time
from experiments import run_files, run_identity, unlearning_files
from utils import UsageError


def validate(args) -> None:
    """The relearn flags, checked before anything runs."""
    if not getattr(args, "relearn", False):
        return
    for name in ("relearn_batch_size", "relearn_max_steps"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} {getattr(args, name)} must be at least 1")
    if args.relearn_samples is not None and args.relearn_samples < 1:
        raise UsageError(f"--relearn_samples {args.relearn_samples} must be at least 1 (or left out: all of D_f)")
    if not args.relearn_lr > 0 or not 0 <= args.relearn_margin <= 100:
        raise UsageError("--relearn_lr must be > 0 and --relearn_margin in [0, 100]")
    if args.unlearn != "retrain" and args.relearn_reference is None:
        raise UsageError(
            "--relearn needs --relearn_reference: the folder of the Retrain run of the same --mask and forget set"
        )
    if args.relearn_reference is not None and not _record_path(args.relearn_reference).is_file():
        raise UsageError(
            f"--relearn_reference '{args.relearn_reference}' holds no finished Retrain run (no retrain_eval.json); "
            "run main_forget.py --unlearn retrain there first"
        )


def _record_path(folder) -> Path:
    return unlearning_files.paths(folder, "retrain")["results"]


def check_reference(args, identity: dict) -> float | None:
    """The reference's D_f accuracy, once it is checked to be this run's Retrain (called before unlearning, so a
    wrong one is refused at once); None without --relearn or without a reference (Retrain is its own)."""
    if not getattr(args, "relearn", False) or args.relearn_reference is None:
        return None
    path = _record_path(args.relearn_reference)
    record = run_files.read_json_record(path, "unlearning results")
    saved = record.get("identity") if isinstance(record.get("identity"), dict) else {}
    problem = run_identity.reference_problem(saved, identity)
    if problem:
        raise UsageError(
            f"--relearn_reference '{args.relearn_reference}' is not this run's Retrain: {problem}; give the Retrain "
            "run of the same --mask and forget set"
        )
    return float(record["accuracy"]["forget"])


def reference_accuracy(args, identity: dict, evaluation: dict) -> float:
    """Retrain's D_f accuracy: this run's own for --unlearn retrain without a reference, else the reference's."""
    if args.relearn_reference is None:
        return evaluation["accuracy"]["forget"]
    return check_reference(args, identity)


def measure(args, model, data, forget, runtime, identity: dict, evaluation: dict, log) -> dict:
    """The relearn record (evaluation/relearn.py) of ``model``, logged in one line."""
    base = reference_accuracy(args, identity, evaluation)
    target = min(100.0, base + args.relearn_margin)
    settings = RelearnSettings(
        args.relearn_lr, args.relearn_batch_size, args.relearn_max_steps, args.relearn_samples, args.seed
    )
    result = relearn_time(model, data, forget.forget_indices, runtime, target, settings)
    result["reference_accuracy"] = base
    after = f"{result['steps']} steps" if result["reached"] else f"not within {settings.max_steps} steps"
    log(
        f"relearn time: {after} to D_f accuracy {target:.2f}% (Retrain's {base:.2f}% + {args.relearn_margin}); "
        f"D_f accuracy {result['accuracy_before']:.2f}% -> {result['accuracy_after']:.2f}%"
    )
    return result
