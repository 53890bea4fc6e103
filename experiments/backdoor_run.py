"""One backdoor cleanse: poison D, get θ_o (a --mask file, a finished earlier training, or train it now),
unlearn the poisoned samples, measure SA and ASR before and after, write the results.

``run(args, log)`` is main_backdoor.py's whole job. The poisoned model is trained by
pruning_rounds.py into ``{save_dir}/poisoned``; the unlearning step is unlearning_run.py's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import dataset
import pruner
import unlearn
import utils
from dataset import ForgetSet, poisoning
from evaluation import attack
from experiments import backdoor_files, pruning_rounds, run_files, run_identity, training_files
from experiments.experiment import build_model, make_runtime, model_meta, validate_common
from experiments.pruning_rounds import run_imp
from experiments.unlearning_run import prepare_model, run_unlearning, unlearning_context
from training.interrupts import Diverged
from training.trainer import accuracy
from utils import UsageError

POISON_FOLDER = "poisoned"


def training_args(args) -> argparse.Namespace:
    """The arguments of the poisoned model's training run: the same, saved under {save_dir}/poisoned."""
    return argparse.Namespace(**{**vars(args), "save_dir": str(Path(args.save_dir) / POISON_FOLDER)})


def trains_poisoned_model(args) -> bool:
    """No --mask, or a --mask path that does not exist yet: the poisoned model is trained (and saved there)."""
    return args.mask is None or not Path(args.mask).exists()


def validate(args) -> None:
    """Checks that need no data."""
    if trains_poisoned_model(args):
        pruning_rounds.validate(training_args(args))
    else:
        validate_common(args)
    unlearn.get_method(args.unlearn)
    if args.indexes_to_replace is not None:
        raise UsageError(
            "--indexes_to_replace is not used here; give how many samples to poison with --num_indexes_to_replace"
        )
    if args.num_indexes_to_replace is None or args.num_indexes_to_replace <= 0:
        raise UsageError(
            f"--num_indexes_to_replace {args.num_indexes_to_replace}: give how many training samples to poison (> 0)"
        )
    poisoning.check_trigger_value(args.trigger_value)


def check_poisoning(args, data) -> None:
    """Checks that need the data: target class, number of poisoned samples, trigger size."""
    if not 0 <= args.class_to_replace < data.num_classes:
        raise UsageError(
            f"--class_to_replace {args.class_to_replace} is not a class of {data.name}; "
            f"give the target class, 0..{data.num_classes - 1}"
        )
    n_train = len(data.train_labels)
    if args.num_indexes_to_replace >= n_train:
        raise UsageError(
            f"--num_indexes_to_replace {args.num_indexes_to_replace}: D has {n_train} training samples and at least "
            f"one must stay clean; give at most {n_train - 1}"
        )
    poisoning.check_trigger(args.trigger_size, args.trigger_value, tuple(data.train_images.shape[1:]))


def plan_poisoned_model(args, data, record, runtime, log):
    """Where θ_o comes from, all checked before anything is written.

    Returns (checkpoint path, loaded checkpoint or None, training or None); ``training`` is
    (model, resume state) when the poisoned model must still be trained (or its training resumed).
    """
    if not trains_poisoned_model(args):
        _, checkpoint = training_files.load_mask_file(args.mask, args)
        backdoor_files.check_poison_record(checkpoint, record, args.mask, "give the matching flags or another --mask")
        return Path(args.mask), checkpoint, None
    train_args = training_args(args)
    folder = Path(train_args.save_dir)
    final = training_files.mask_file(folder, args.pruning_times - 1)
    fix = f"use the same arguments or another --save_dir than '{args.save_dir}'"
    poison = {"sha256": run_identity.record_fingerprint(record)}
    saved_identity = training_files.finished_training(folder)
    if saved_identity is not None:
        expected = run_identity.of_args(run_identity.TRAINING, train_args, poison=poison)
        flags_only = {**expected, "inputs": {}}  # the flags first, then the poisoning by name, then all of it
        run_identity.require_same(saved_identity, flags_only, folder, fix, partial=True)
        if not final.is_file():
            raise UsageError(f"'{folder}' records a finished training run but lacks {final.name}; {fix}")
        _, checkpoint = training_files.load_mask_file(final, args)
        backdoor_files.check_poison_record(checkpoint, record, final, fix)
        run_identity.require_same(saved_identity, expected, folder, fix)
        log(f"reusing the poisoned model {final} (trained earlier with the same arguments; no retraining)")
        return final, checkpoint, None
    if args.mask is not None:  # the original trains the poisoned model and saves it at --mask
        _check_mask_folder(Path(args.mask))
    model, resume, identity = pruning_rounds.training_model(train_args, data, runtime, poison=poison)
    if resume is not None:
        backdoor_files.check_poison_record(resume, record, folder, fix)
    return final, None, (model, resume, identity)


def _check_mask_folder(mask: Path) -> None:
    try:
        mask.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(
            f"--mask '{mask}' does not exist yet, so the poisoned model would be saved there, but its folder "
            f"cannot be created ({err.strerror}); give a path in a writable folder"
        ) from None


def train_poisoned_model(args, data, record, model, resume, identity, runtime, log) -> None:
    train_args = training_args(args)
    folder = run_files.check_save_dir(train_args.save_dir)
    run_files.save_args(train_args, folder)
    log(f"training the poisoned model into {folder} ({args.pruning_times} round(s), rate {args.rate})")
    meta = {**model_meta(args, data), "backdoor": record, "identity": identity}
    for result in run_imp(train_args, data, model, runtime, log=log, meta=meta, resume=resume):
        log(f"poisoned {pruning_rounds.describe_round(result, test='clean test')}")


def measure(model, data, poisoned, args, runtime) -> dict:
    """SA, ASR and ASR_nontarget on the (clean) test set, and the accuracy on D_f under its poisoned labels."""
    metrics = attack.backdoor_metrics(
        model, data, args.trigger_size, args.trigger_value, args.class_to_replace, runtime
    )
    return {**metrics, "forget_acc": accuracy(model, data.eval_batches("train", poisoned), runtime)}


def poisoned_data(args, clean, log):
    """(poisoned data, poisoned indices, poisoning record) of this run's --seed, trigger and target."""
    poisoned = poisoning.choose_poisoned(clean.train_labels.cpu().numpy(), args.num_indexes_to_replace, args.seed)
    data = poisoning.poison(clean, poisoned, args.trigger_size, args.trigger_value, args.class_to_replace)
    log(
        f"backdoor: {len(poisoned)} of {len(clean.train_labels)} training samples carry a "
        f"{args.trigger_size}x{args.trigger_size} trigger of value {args.trigger_value} "
        f"(pixel {poisoning.trigger_pixel(args.trigger_value)}) and the label {args.class_to_replace}"
    )
    return data, poisoned, backdoor_files.poison_record(args, clean, poisoned)


def run(args, log) -> dict:
    """main_backdoor.py after parsing and ``validate``: returns the record written to ``{unlearn}_backdoor.json``."""
    utils.begin_log()
    method = unlearn.get_method(args.unlearn)
    runtime = make_runtime(args)
    clean = dataset.load_data(args, runtime.device)
    check_poisoning(args, clean)
    data, poisoned, record = poisoned_data(args, clean, log)
    path, checkpoint, training = plan_poisoned_model(args, data, record, runtime, log)
    files = backdoor_files.paths(args.save_dir, args.unlearn)
    run_files.check_save_dir(args.save_dir)
    names = [files["results"].name, files["progress"].name]
    refuse = lambda: run_files.refuse_to_overwrite(args.save_dir, names, args.resume)  # noqa: E731
    with run_files.run_lock(args.save_dir, f"backdoor_{args.unlearn}", check=refuse):
        return _run_locked(args, method, runtime, clean, data, poisoned, record, path, checkpoint, training, files, log)


def _run_locked(args, method, runtime, clean, data, poisoned, record, path, checkpoint, training, files, log) -> dict:
    if training is not None:
        utils.keep_log(args.save_dir)
        train_poisoned_model(args, data, record, *training, runtime, log)
        _, checkpoint = training_files.load_mask_file(path, args)
        if args.mask is not None:
            path = training_files.publish_mask_file(path, args.mask)
            log(f"saved the poisoned model at --mask {path}; later runs with this --mask reuse it")
    state_dict = checkpoint["state_dict"]
    forget = ForgetSet("backdoor", poisoned, np.setdiff1d(np.arange(len(clean.train_labels)), poisoned), None)
    identity = run_identity.of_args(
        run_identity.BACKDOOR,
        args,
        mask=run_identity.mask_input(checkpoint, state_dict),
        forget_set=run_identity.forget_input(forget.scenario, forget.forget_indices),
    )
    if args.resume and files["results"].is_file():
        return _reuse_cleanse(files["results"], identity, log)
    utils.keep_log(args.save_dir)  # after the reuse check: a refused or reused cleanse writes nothing

    original = build_model(args, data, seed=args.seed)
    pruner.load_pruned_state(original, state_dict)
    before = measure(runtime.prepare(original), data, poisoned, args, runtime)
    model = prepare_model(args, data, method, state_dict, runtime)
    log(
        f"method: {args.unlearn} ({method.paper_name}) on {path}; "
        f"{100 * pruner.remaining_weight_ratio(model):.2f}% of prunable weights remain; {args.arch} on {runtime.device}"
    )
    ctx = unlearning_context(args, data, forget, runtime, method, log)
    rte_min, stats = run_unlearning(model, method, ctx, files["progress"], identity)
    after = measure(model, data, poisoned, args, runtime)

    results = backdoor_files.backdoor_results(args, method, clean, path, model, poisoned, before, after, rte_min, stats)
    results["identity"] = identity
    meta = {**model_meta(args, clean), "identity": identity}
    backdoor_files.save_backdoor_outputs(files, model, results, record, args, meta)
    files["progress"].unlink(missing_ok=True)  # superseded by the saved model
    if stats.get("diverged"):
        at = stats["diverged"]
        advice = f"results in {files['results']} (marked diverged); try a smaller --unlearn_lr"
        raise Diverged(at["what"], at["epoch"], at["lr"], advice)
    return results


def _reuse_cleanse(path: Path, identity: dict, log) -> dict:
    """--resume of a finished cleanse: its results when it is the same experiment; anything else is refused."""
    results = run_files.read_json_record(path, "backdoor results")
    run_files.require_same_run(results, identity, path, "use the same arguments, or another --save_dir")
    log(f"reused the finished cleanse in {path} (same run identity; nothing recomputed)")
    return results
