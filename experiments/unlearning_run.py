"""One unlearning run: load the mask file, prepare θ_o, unlearn with per-epoch progress, evaluate, write results.

``run(args, log)`` is main_forget.py's whole job; main_backdoor.py uses ``prepare_model`` and
``run_unlearning`` with its own forget set (the poisoned samples) and its own metrics.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

import dataset
import pruner
import unlearn
import utils
from dataset import forget_set_of
from evaluation.metrics import evaluate, evaluate_diverged
from evaluation.outputs import per_example_outputs, save_outputs
from experiments import relearn_run, run_files, run_identity, training_files, unlearning_files
from experiments.arg_parser import parse_milestones
from experiments.experiment import build_model, make_runtime, model_meta, validate_common
from training import interrupts
from training.interrupts import Diverged
from training.trainer import weights_are_finite
from unlearn.context import Progress, UnlearnContext
from utils import UsageError


def validate(args) -> None:
    """Checks of main_forget.py that need no data."""
    validate_common(args)
    unlearn.get_method(args.unlearn)
    relearn_run.validate(args)
    if args.mask is None:
        raise UsageError(
            "--mask is required: give the checkpoint to unlearn from (e.g. runs/omp/1model_SA_best.pth.tar)"
        )


def prepare_model(args, data, method, state_dict, runtime):
    """θ_o from the checkpoint, or (retrain) a fresh initialisation seeded by --train_seed under its mask."""
    model = build_model(args, data, seed=args.seed)
    pruner.load_pruned_state(model, state_dict)  # also checks the file fits this architecture
    if not method.loads_weights:
        masks = pruner.masks_of(model)
        model = build_model(args, data, seed=args.train_seed)
        pruner.apply_mask(model, masks)
    return runtime.prepare(model)


def unlearning_context(args, data, forget, runtime, method, log) -> UnlearnContext:
    """The frozen context a method is handed, with a fresh checkpointing handle."""
    milestones = tuple(parse_milestones(args.decreasing_lr))
    return UnlearnContext(data, forget, args, runtime, method, milestones, Progress(log=log))


def run_unlearning(model, method, ctx: UnlearnContext, progress_file: Path, identity: dict):
    """Run the method, saving progress after every epoch; returns (RTE in minutes, method stats).

    With --resume and a progress file, continue from it (only if it records the same ``identity``).
    RTE counts the unlearning step only: not
    evaluation, not the progress saves, and across a resume it adds the time spent before the interruption.
    """
    args = ctx.args
    spent_before, saving = 0.0, 0.0
    began = time.perf_counter()
    if method.prepare is not None:  # from θ_o, before saved progress replaces it (counted in RTE)
        ctx.progress.prepared = method.prepare(model, ctx)
    preparing = time.perf_counter() - began
    if args.resume and progress_file.is_file():
        progress = unlearning_files.load_progress(progress_file, identity)
        pruner.load_pruned_state(model, progress["state_dict"])
        ctx.progress.resume, ctx.progress.stats, spent_before = progress, progress["stats"], progress["elapsed"]
    start = time.perf_counter() - preparing

    def on_epoch(state):
        nonlocal saving
        began = time.perf_counter()
        elapsed = spent_before + began - start - saving
        unlearning_files.save_progress(
            progress_file, state, model, elapsed, ctx.stats, ctx.forget_indices, args, identity
        )
        epochs = progress_file.with_name(progress_file.name.replace("_progress.pth.tar", "_epochs.jsonl"))
        run_files.write_epoch_lines(epochs, state["history"])
        saving += time.perf_counter() - began

    ctx.progress.save = on_epoch
    try:
        artefacts = method.fn(model, ctx) or {}
        unlearning_files.save_artefacts(args.save_dir, args.unlearn, artefacts)
    except Diverged as err:  # the results still get written, marked as diverged
        ctx.stats["diverged"] = err.record()
    pruner.refresh_weights(model)
    if "diverged" not in ctx.stats and not weights_are_finite(model):  # FF and IU have no loss to watch
        ctx.stats["diverged"] = Diverged(args.unlearn).record()
    if ctx.runtime.device.type == "cuda":
        torch.cuda.synchronize(ctx.runtime.device)
    return (spent_before + time.perf_counter() - start - saving) / 60, ctx.stats


def run(args, log) -> dict:
    """main_forget.py after parsing and ``validate``: returns the record written to ``{unlearn}_eval.json``."""
    utils.begin_log()
    method = unlearn.get_method(args.unlearn)
    state_dict, checkpoint = training_files.load_mask_file(args.mask, args)
    files = unlearning_files.paths(args.save_dir, args.unlearn)
    if args.resume and not files["checkpoint"].is_file() and not files["progress"].is_file():
        raise UsageError(f"--resume: nothing to resume, '{files['checkpoint']}' does not exist; drop --resume")
    names = [files["checkpoint"].name, files["progress"].name]
    refuse = lambda: run_files.refuse_to_overwrite(args.save_dir, names, args.resume)  # noqa: E731
    with run_files.FolderLock(args.save_dir, args.unlearn, check=refuse) as lock:
        runtime = make_runtime(args)
        data = dataset.load_data(args, runtime.device)
        forget = forget_set_of(data, args)
        run_identity.check_left_out(checkpoint, forget)
        model = prepare_model(args, data, method, state_dict, runtime)
        identity = unlearning_identity(args, checkpoint, state_dict, forget)
        relearn_run.check_reference(args, identity)  # a --relearn_reference of another setting: refused now
        if args.resume:  # refused now, before anything (log.txt included) is written
            _check_resumable(files, identity)
        run_files.check_save_dir(args.save_dir)
        lock.hold()
        return _run_locked(args, method, data, forget, model, runtime, files, identity, log)


def _check_resumable(files: dict, identity: dict) -> None:
    """The finished checkpoint or the progress file a --resume would use records this run's identity."""
    if files["checkpoint"].is_file():
        unlearning_files.load_finished(files["checkpoint"], identity)
    elif files["progress"].is_file():
        unlearning_files.load_progress(files["progress"], identity)


def unlearning_identity(args, checkpoint: dict, state_dict: dict, forget) -> dict:
    """This run's identity: its defining flags, the mask file's content and the forget set (run_identity.py)."""
    return run_identity.of_args(
        run_identity.UNLEARNING,
        args,
        mask=run_identity.mask_input(checkpoint, state_dict),
        forget_set=run_identity.forget_input(forget.scenario, forget.forget_indices, forget.forgotten_class),
    )


def _run_locked(args, method, data, forget, model, runtime, files, identity, log) -> dict:
    utils.keep_log(args.save_dir)
    log(forget.describe(len(data.train_labels)))
    log(
        f"method: {args.unlearn} ({method.paper_name}); {100 * pruner.remaining_weight_ratio(model):.2f}% of prunable "
        f"weights remain; {args.arch} on {runtime.device}"
    )
    if getattr(args, "preset", None):
        log(
            f"--preset {args.preset}: {method.preset.args} (from {method.preset.source}); the command line overrides it"
        )
    done, rte_min, stats = _unlearn_or_reuse(args, model, method, data, forget, runtime, files, identity, log)

    def save(evaluation):
        meta = {**model_meta(args, data), "identity": identity}
        unlearning_files.save_finished(
            files["checkpoint"], model, evaluation, rte_min, stats, forget.forget_indices, args, meta
        )

    save(done)
    files["progress"].unlink(missing_ok=True)  # superseded by the finished checkpoint
    interrupts.check("the evaluation (the unlearning step is saved)")
    sets = (model, data, forget.forget_indices, forget.retain_indices, runtime, forget.forgotten_class)
    evaluation = _evaluate(sets, done, stats, log)
    if args.relearn and not stats.get("diverged"):
        interrupts.check("the relearn time (the evaluation is saved)")
        evaluation["relearn"] = relearn_run.measure(args, model, data, forget, runtime, identity, evaluation, log)
    save(evaluation)
    results = unlearning_files.write_eval_results(
        files["results"], args, method, data, forget, model, evaluation, rte_min, stats, identity
    )
    if args.save_outputs:
        save_outputs(per_example_outputs(model, data, forget.forget_indices, runtime), files["outputs"])
        log(f"per-example outputs -> {files['outputs']}")
    if stats.get("diverged"):
        at = stats["diverged"]
        smaller = "--unlearn_lr" if at["epoch"] is not None else "--alpha (FF, IU) or --unlearn_lr"
        advice = f"results in {files['results']} (marked diverged); try a smaller {smaller}"
        raise Diverged(at["what"], at["epoch"], at["lr"], advice)
    return results


def _evaluate(sets, done, stats, log) -> dict:
    """The evaluation; a divergence the loop could not see (finite weights, non-finite outputs) is recorded
    in ``stats`` and the run measured as diverged."""
    if not stats.get("diverged"):
        try:
            return evaluate(*sets, done=done, log=log)
        except Diverged as err:
            stats["diverged"] = err.record()
    return evaluate_diverged(*sets, log=log)


def _unlearn_or_reuse(args, model, method, data, forget, runtime, files, identity, log):
    """(evaluation so far, RTE, stats): the finished step of an earlier run with --resume, else a new one."""
    if args.resume and files["checkpoint"].is_file():
        saved = unlearning_files.load_finished(files["checkpoint"], identity)
        pruner.load_pruned_state(model, saved["state_dict"])
        log(f"resumed the finished unlearning step from {files['checkpoint']}")
        return saved["evaluation"], saved["RTE_min"], saved["stats"]
    ctx = unlearning_context(args, data, forget, runtime, method, log)
    rte_min, stats = run_unlearning(model, method, ctx, files["progress"], identity)
    log(f"unlearning took {rte_min:.3f} min")
    return {}, rte_min, stats
