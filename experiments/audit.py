"""A per-example audit of forgetting: N runs of a method and N Retrain runs, compared example by example.

``run_audit(args, log)`` is main_audit.py's whole job. Every run is an ordinary ``main_forget.py
--save_outputs`` subprocess in its own folder ({save_dir}/{unlearn}/seedK, {save_dir}/retrain/seedK),
so a sweep or a cluster could run the same commands, and the Retrain runs of one folder serve every
method audited there. A run whose outputs exist is reused; one that
left a checkpoint or progress file is continued with --resume. The statistics are in
evaluation/audit_stats.py.
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import unlearn
from evaluation import audit_stats
from evaluation.outputs import load_outputs
from experiments import arg_parser, run_files, run_identity, slurm, training_files, unlearning_files
from experiments.slurm import EXIT_MARK
from training import interrupts
from utils import UsageError, atomic_write_bytes, atomic_write_json, provenance, save_figure

REPO = Path(__file__).resolve().parents[1]
# Flags the audit sets for every run; a pass-through string must not set them too.
AUDIT_FLAGS = (
    "--seed", "--train_seed", "--save_dir", "--save_outputs", "--resume", "--unlearn", "--mask",
    "--class_to_replace", "--num_indexes_to_replace", "--indexes_to_replace",
)  # fmt: skip


@dataclass
class AuditRun:
    side: str  # "method" or "retrain"
    seed: int
    method: str
    save_dir: Path
    args: list[str]  # main_forget.py's arguments, without --resume

    @property
    def files(self) -> dict[str, Path]:
        return unlearning_files.paths(self.save_dir, self.method)


def split_flags(text: str, what: str) -> list[str]:
    flags = shlex.split(text or "")
    taken = [flag for flag in flags if flag.split("=")[0] in AUDIT_FLAGS]
    if taken:
        raise UsageError(f"{what} sets {taken[0]}, which the audit sets for every run; remove it")
    return flags


def forget_flags(args, common: list[str], log) -> list[str]:
    """The same forget set for every run: a whole class by its number; anything drawn (random, or part
    of a class) is drawn once here and passed as explicit indices, since main_forget.py draws from --seed."""
    if args.class_to_replace != -1 and args.num_indexes_to_replace is None:
        return ["--class_to_replace", str(args.class_to_replace)]
    # named by its draw: another draw makes other run arguments, which the reuse check refuses
    draw = f"c{args.class_to_replace}_n{args.num_indexes_to_replace}_seed{args.forget_seed}"
    path = Path(args.save_dir) / f"forget_indices_{draw}.npy"
    if not path.is_file():
        _draw_forget_set(args, common, path, log)
    return ["--indexes_to_replace", str(path)]


def _draw_forget_set(args, common: list[str], path: Path, log) -> None:
    """Draw the forget set once with --forget_seed, on the data the runs will see (their data flags)."""
    import dataset  # here: only a drawn forget set needs the data in this process

    data_parser = argparse.ArgumentParser(add_help=False)
    arg_parser.add_data_args(data_parser)
    data_args, _ = data_parser.parse_known_args(common)
    labels = dataset.load_data(data_args).train_labels.numpy()
    c, n = args.class_to_replace, args.num_indexes_to_replace
    candidates = len(labels) if c == -1 else int((labels == c).sum())
    if not 0 < n <= min(candidates, len(labels) - 1):
        most = min(candidates, len(labels) - 1)
        raise UsageError(f"--num_indexes_to_replace {n}: give 1..{most} for this forget set")
    indices = np.sort(dataset.select_forget(labels, c, n, args.forget_seed))
    buffer = io.BytesIO()
    np.save(buffer, indices)
    atomic_write_bytes(buffer.getvalue(), path)
    log(f"drew {len(indices)} forget indices with --forget_seed {args.forget_seed} -> {path}")


def plan(args, log) -> list[AuditRun]:
    unlearn.get_method(args.unlearn)  # an unknown name fails here, listing the valid ones, not in 2N logs
    clean = getattr(args, "reference_mask", None)
    if args.unlearn == "retrain" and clean is None:
        raise UsageError(
            "--unlearn retrain: Retrain is the reference side; its noise floor is in every audit "
            "(give --reference-mask to audit Retrain on the inherited mask against a clean one)"
        )
    common = split_flags(args.run_args, "--run-args")
    sides = {  # side: (method, its flags, its mask, its folder)
        "method": (args.unlearn, split_flags(args.method_args, "--method-args"), args.mask, args.unlearn),
        "retrain": ("retrain", split_flags(args.retrain_args, "--retrain-args"), clean or args.mask,
                    "retrain_clean" if clean else "retrain"),
    }  # fmt: skip
    Path(args.save_dir).mkdir(parents=True, exist_ok=True)
    forget = forget_flags(args, common, log)
    runs = []
    for side, (method, extra, mask, folder) in sides.items():
        for seed in range(1, args.num_models + 1):
            save_dir = Path(args.save_dir) / folder / f"seed{seed}"
            # --train_seed varies too: it draws Retrain's initialisation, so the Retrain models differ
            seeds = ["--seed", str(seed), "--train_seed", str(seed)]
            flags = [*common, "--mask", str(mask), "--unlearn", method, *extra, *forget, *seeds]
            runs.append(AuditRun(side, seed, method, save_dir, [*flags, "--save_dir", str(save_dir), "--save_outputs"]))
    return runs


def _command(run: AuditRun) -> list[str]:
    """Check the run's folder, record its arguments, and give its command (--resume if it left a checkpoint)."""
    record = run.save_dir / "audit_run.json"  # the arguments that made this folder: reuse only the same run
    if record.is_file() and run_files.read_json_record(record, "the audit's run record").get("args") != run.args:
        raise UsageError(f"'{run.save_dir}' holds a run with other arguments (see {record}); use another --save_dir")
    if not record.is_file():
        run.save_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json({"args": run.args}, record)
    resume = run.files["checkpoint"].is_file() or run.files["progress"].is_file()
    return [sys.executable, str(REPO / "main_forget.py"), *run.args, *(["--resume"] if resume else [])]


def ensure_run(run: AuditRun, env: dict | None = None) -> str:
    """Run, resume or reuse one run; returns which. A failed run stops the audit with its log's path.

    A run is reused only when its final record names the experiment this command would run (its run
    identity: flags, the mask's content and an explicit forget set's content)."""
    if run.files["outputs"].is_file():
        _command(run)  # its check that the folder holds this run's arguments
        saved = unlearning_files.finished_unlearning(run.save_dir, run.method)
        expected = run_identity.expected_from_argv(["main_forget.py", *run.args], training_files.mask_fingerprint)
        fix = "remove that folder to rerun it, or use another --save_dir"
        run_identity.require_same(saved, expected, run.files["results"], fix, partial=True)
        return "reused"
    interrupts.check(f"the audit, before {run.save_dir}")  # a stop starts no new run
    argv = _command(run)
    with open(run.save_dir / "log.txt", "a") as handle:
        handle.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(argv)}\n")
        handle.flush()
        status = subprocess.call(argv, stdout=handle, stderr=subprocess.STDOUT, env=env)
        handle.write(f"{EXIT_MARK}{status}\n")
    if status in (128 + signal.SIGTERM, 128 + signal.SIGINT, -signal.SIGTERM, -signal.SIGINT):
        raise interrupts.Stopped(abs(status) % 128, f"the audit's run {run.save_dir} (its progress is saved)")
    if status != 0 or not run.files["outputs"].is_file():
        raise UsageError(f"run {run.save_dir} failed (exit {status}); see {run.save_dir / 'log.txt'}")
    return "resumed" if "--resume" in argv else "ran"


def child_env(jobs: int) -> dict | None:
    """With several runs at once, each gets its share of the cores (unless OMP_NUM_THREADS is set already)."""
    if jobs == 1 or "OMP_NUM_THREADS" in os.environ:
        return None
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    return {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def ensure_runs(runs: list[AuditRun], jobs: int, log) -> dict:
    """Run, resume or reuse every run, ``jobs`` at a time; counts of each outcome. A failure stops the rest."""
    outcomes = {"ran": 0, "resumed": 0, "reused": 0}
    env = child_env(jobs)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(ensure_run, run, env) for run in runs]
        try:
            for run, future in zip(runs, futures):
                outcome = future.result()
                outcomes[outcome] += 1
                log(f"{outcome:>7} {run.save_dir}")
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # the runs already started finish; no new one starts
            raise
    return outcomes


def result_files(save_dir, method: str) -> dict[str, Path]:
    """Where one method's audit goes: beside the runs, named after the method like its _eval.json."""
    return {"json": Path(save_dir) / f"{method}_audit.json", "plot": Path(save_dir) / f"{method}_audit_accuracy.png"}


def submit_slurm(args, log) -> int:
    """Submit the pending runs as one Slurm job array (scripts/sweep.py's array script, so the logs carry
    the same marks); once it has finished, the same command without --slurm reuses every run."""
    pending = [run for run in plan(args, log) if not run.files["outputs"].is_file()]
    if not pending:
        log("nothing to submit: every run has its outputs; rerun without --slurm for the audit")
        return 0
    here = shlex.quote(str(Path.cwd()))  # the array runs from the repository: relative paths stay ours
    commands = [f"cd {here} && {shlex.join(_command(run))}" for run in pending]
    options = {"slurm_args": args.slurm_args, "gpus": args.slurm_gpus, "dry_run": args.dry_run}
    job = slurm.submit_array(
        f"{args.unlearn}_audit", commands, [run.save_dir for run in pending], args.save_dir, options, log
    )
    if job is None:
        return 0
    log(f"submitted job {job}: {len(pending)} array tasks; rerun without --slurm after")
    return 0


def scores(runs: list[AuditRun], part: str = "forget") -> tuple[np.ndarray, np.ndarray]:
    """φ of every example of ``part`` ("forget": the forget set; "test": the fixed test sample, which no run
    trained on) under every run: (runs, examples), and the example indices they share."""
    phis, indices = [], None
    for run in runs:
        outputs = load_outputs(run.files["outputs"])
        if indices is not None and not np.array_equal(outputs[f"{part}_indices"], indices):
            raise UsageError(f"'{run.files['outputs']}' has another {part} set than the other runs")
        if not np.isfinite(outputs[f"{part}_logits"]).all():
            raise UsageError(f"'{run.files['outputs']}' has non-finite logits (the run diverged); audit without it")
        indices = outputs[f"{part}_indices"]
        phis.append(audit_stats.scaled_confidence(outputs[f"{part}_logits"], outputs[f"{part}_labels"]))
    return np.stack(phis), indices


def compare(side_a: np.ndarray, side_b: np.ndarray) -> dict:
    """Per-example attack accuracy and ε of side A against side B, with their summaries."""
    accuracy = audit_stats.lira_accuracy(side_a, side_b)
    return _result(accuracy, audit_stats.epsilon_estimate(side_a, side_b), len(side_a), len(side_b))


def _result(accuracy: np.ndarray, epsilon: np.ndarray, count_a: int, count_b: int) -> dict:
    """One comparison's record: models per side, the summaries, the cap on ε, and the per-example values."""
    return {
        "models": [count_a, count_b],
        "attack_accuracy": audit_stats.summary(accuracy),
        "epsilon": audit_stats.summary(epsilon),
        "largest_measurable_epsilon": audit_stats.largest_epsilon(count_a, count_b),
        "per_example": {"attack_accuracy": accuracy.tolist(), "epsilon": epsilon.tolist()},
    }


FLOOR_SPLITS = 20  # random halvings of the Retrain runs that the noise floor averages over


def noise_floor(retrain: np.ndarray, splits: int = FLOOR_SPLITS) -> dict | None:
    """Retrain against Retrain, its runs split into two disjoint halves: what an exact unlearner scores.

    Averaged per example over ``splits`` random halvings (seeded): the models differ as a whole (one
    Retrain run may be far less confident on every forget example than another), so a single split can
    put the unusual runs on one side and look like a difference.
    """
    half = len(retrain) // 2
    if half < 2:
        return None  # leave-one-model-out needs two models per half
    rng = np.random.default_rng(0)
    accuracy, epsilon = np.zeros(retrain.shape[1]), np.zeros(retrain.shape[1])
    for _ in range(splits):
        order = rng.permutation(len(retrain))
        side_a, side_b = retrain[order[:half]], retrain[order[half : 2 * half]]
        accuracy += audit_stats.lira_accuracy(side_a, side_b) / splits
        epsilon += audit_stats.epsilon_estimate(side_a, side_b) / splits
    return {**_result(accuracy, epsilon, half, half), "splits": splits}


def control_on_test(runs: list[AuditRun]) -> dict:
    """The same comparison on the fixed test sample, which neither side trained on: how far the two sides
    differ as models, whatever the forget set. A forget-set separation well above this one is about D_f."""
    method, indices = scores([run for run in runs if run.side == "method"], "test")
    retrain, retrain_indices = scores([run for run in runs if run.side == "retrain"], "test")
    if not np.array_equal(indices, retrain_indices):
        raise UsageError("the method's runs and the retrain runs saw different test samples; use a fresh --save_dir")
    return {"test_indices": indices.tolist(), "method_vs_retrain": compare(method, retrain),
            "noise_floor": noise_floor(retrain)}  # fmt: skip


def plot_accuracy(audit: dict, path: Path) -> None:
    """Histogram of per-example attack accuracy: method vs Retrain, and the noise floor when measured."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a cluster node
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 21)
    clean = audit["reference_mask"] != audit["mask"]
    label = f"{audit['method']} (inherited mask) vs clean retrain" if clean else f"{audit['method']} vs retrain"
    series = [(label, audit["method_vs_retrain"])]
    if audit["noise_floor"] is not None:
        series.append(("retrain vs retrain (noise floor)", audit["noise_floor"]))
    series.append(("the same on test examples (control)", audit["test_control"]["method_vs_retrain"]))
    for label, result in series:
        values = result["per_example"]["attack_accuracy"]
        axes.hist(values, bins=bins, weights=np.full(len(values), 1 / len(values)), alpha=0.6, label=label)
    axes.set(xlabel="per-example attack accuracy (leave-one-model-out LR test)", ylabel="fraction of examples")
    axes.legend()
    save_figure(figure, path)


DEFINITIONS = {
    "phi": "log(p_y / (1 - p_y)) = z_y - logsumexp(z_j, j != y) from the logits of each model",
    "attack_accuracy": "per example: fraction of models, each held out in turn, that a likelihood-ratio test "
    "with Gaussians fitted to the remaining models of each side assigns to their own side (ties count 1/2)",
    "epsilon": "per example: max over thresholds (both directions) of max(log((1-delta-FPR)/FNR), "
    "log((1-delta-FNR)/FPR)), floored at 0, with FPR and FNR replaced by their Clopper-Pearson upper bounds",
    "delta": audit_stats.DELTA,
    "clopper_pearson_alpha": audit_stats.ALPHA,
    "noise_floor": "retrain runs against retrain runs, N/2 a side, per example the mean over FLOOR_SPLITS random "
    "disjoint halvings",
    "test_control": "the same comparisons on a fixed sample of test examples (evaluation/outputs.py), which no "
    "run trained on: the separation of the two sides as models, not specific to the forget set",
}


def run_audit(args, log) -> dict:
    """Run or reuse every run, compare the sides, write {unlearn}_audit.json and the histogram; returns it."""
    began = time.perf_counter()
    runs = plan(args, log)
    outcomes = ensure_runs(runs, args.jobs, log)
    method, indices = scores([run for run in runs if run.side == "method"])
    retrain, retrain_indices = scores([run for run in runs if run.side == "retrain"])
    if not np.array_equal(indices, retrain_indices):
        raise UsageError("the method's runs and the retrain runs forgot different sets; use a fresh --save_dir")
    audit = {
        "method": args.unlearn,
        "num_models": args.num_models,
        "mask": args.mask,
        "reference_mask": getattr(args, "reference_mask", None) or args.mask,  # the Retrain side's
        "forget": {"class_to_replace": args.class_to_replace, "num_indexes_to_replace": args.num_indexes_to_replace},
        "runs": outcomes,
        "definitions": DEFINITIONS,
        "forget_indices": indices.tolist(),
        "method_vs_retrain": compare(method, retrain),
        "noise_floor": noise_floor(retrain),
        "test_control": control_on_test(runs),
    }
    audit["seconds"] = time.perf_counter() - began
    files = result_files(args.save_dir, args.unlearn)
    atomic_write_json({**audit, "provenance": provenance()}, files["json"])
    plot_accuracy(audit, files["plot"])
    return audit
