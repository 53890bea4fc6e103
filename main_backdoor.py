"""Trojan-model cleanse (SPEC §8): poison part of D with a trigger, train on it (or load --mask), unlearn the poison.

The original README's command (θ_o from --mask, unlearned with FT):
    python -u main_backdoor.py --save_dir out --mask runs/backdoor/poisoned/1model_SA_best.pth.tar \\
        --unlearn FT --num_indexes_to_replace 4500
On digits, whose background is black, the trigger must be white and smaller:
    python -u main_backdoor.py --dataset digits --arch resnet20s --epochs 30 --lr 0.05 --decreasing_lr 20,25 \\
        --batch_size 128 --no-aug --pruning_times 2 --rate 0.95 --rewind_epoch 3 --trigger_value 1 \\
        --trigger_size 3 --num_indexes_to_replace 129 --unlearn FT --save_dir runs/backdoor
Without --mask the poisoned model is trained as main_imp.py does into {save_dir}/poisoned/ (one
{k}model_SA_best.pth.tar per round, each recording the trigger and the poisoned indices); the last
round's is unlearned, and a later run with the same arguments and another --unlearn reuses it.
D_f = the poisoned samples, D_r = the clean rest. Outputs: {save_dir}/{unlearn}_backdoor.json
(SA, ASR before/after) and {save_dir}/{unlearn}_backdoor_model.pth.tar.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import arg_parser
import backdoor
import dataset
import main_imp
import pruner
import unlearn
from experiment import build_model, make_runtime, model_meta, save_args, validate_common
from forget_set import ForgetSet
from main_forget import load_mask_checkpoint, prepare_model, run_unlearning
from pruning_rounds import EXPERIMENT_ARGS, run_imp
from trainer import accuracy
from utils import UsageError, atomic_torch_save, atomic_write_json, run_cli

POISON_FOLDER = "poisoned"


def make_parser():
    parser = arg_parser.Parser(description=__doc__, formatter_class=arg_parser.argparse.RawDescriptionHelpFormatter)
    arg_parser.add_data_args(parser)
    arg_parser.add_model_args(parser)
    arg_parser.add_run_args(parser, save_dir_default="runs/backdoor")
    arg_parser.add_train_args(parser)
    arg_parser.add_prune_args(parser)
    arg_parser.add_unlearn_args(parser)
    arg_parser.add_attack_args(parser)
    for action in parser._actions:  # shared flags that mean something more specific here
        action.help = BACKDOOR_HELP.get(action.dest, action.help)
    return parser


BACKDOOR_HELP = {
    "mask": "poisoned checkpoint to unlearn ({k}model_SA_best.pth.tar of a main_backdoor.py run); default: train one",
    "num_indexes_to_replace": "number of training samples to poison (they are the forget set)",
    "class_to_replace": "target class: the label of the poisoned samples (default 0)",
    "resume": "continue the interrupted training in {save_dir}/poisoned and the unlearning progress",
}


def training_args(args) -> argparse.Namespace:
    """The arguments of the poisoned model's training run: the same, saved under {save_dir}/poisoned."""
    return argparse.Namespace(**{**vars(args), "save_dir": str(Path(args.save_dir) / POISON_FOLDER)})


def validate(args) -> None:
    """Checks that need no data."""
    if args.mask is None:
        main_imp.validate(training_args(args))
        if args.epochs < 1:
            raise UsageError(f"--epochs {args.epochs}: the poisoned model must be trained for at least 1 epoch")
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
    if not 0.0 <= args.trigger_value <= 1.0:
        raise UsageError(f"--trigger_value {args.trigger_value} is outside [0, 1]; 0 is black, 1 is white")


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
    backdoor.check_trigger(args.trigger_size, args.trigger_value, tuple(data.train_images.shape[1:]))


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


RECORD_FLAGS = {
    "target_class": "--class_to_replace",
    "trigger_size": "--trigger_size",
    "trigger_value": "--trigger_value",
    "split_seed": "--split_seed",
    "train_subset": "--train_subset",
}


def check_record(checkpoint: dict, record: dict, path, fix: str) -> None:
    saved = checkpoint.get("backdoor")
    if not isinstance(saved, dict):
        raise UsageError(
            f"'{path}' holds no backdoor record (it was not trained by main_backdoor.py); give a "
            f"{{k}}model_SA_best.pth.tar from a main_backdoor.py run's {POISON_FOLDER}/ folder, or drop --mask"
        )
    for key, flag in RECORD_FLAGS.items():
        if saved.get(key) != record[key]:
            raise UsageError(f"'{path}' was poisoned with {flag} {saved.get(key)}, not {record[key]}; {fix}")
    if saved.get("poisoned_indices") != record["poisoned_indices"]:
        raise UsageError(
            f"'{path}' was poisoned at other training samples ({len(saved.get('poisoned_indices') or [])} of them); "
            f"give the --num_indexes_to_replace and --seed it was made with, or {fix}"
        )


def finished_training_args(folder: Path):
    """The arguments of the finished training run in ``folder`` (None when there is none)."""
    path = folder / "imp_results.json"
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
        rounds, saved_args = saved["rounds"], saved["args"]
        done = len(rounds) == saved_args["pruning_times"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise UsageError(
            f"'{path}' is not a results file of a training run ({err}); remove it or use another --save_dir"
        ) from None
    return saved_args if done else None


def plan_poisoned_model(args, data, record, runtime, log):
    """Where θ_o comes from, all checked before anything is written.

    Returns (checkpoint path, loaded checkpoint or None, training or None); ``training`` is
    (model, resume state) when the poisoned model must still be trained (or its training resumed).
    """
    if args.mask is not None:
        _, checkpoint = load_mask_checkpoint(args.mask, args)
        check_record(checkpoint, record, args.mask, "give the matching flags or another --mask")
        return Path(args.mask), checkpoint, None
    train_args = training_args(args)
    folder = Path(train_args.save_dir)
    final = folder / f"{args.pruning_times - 1}model_SA_best.pth.tar"
    fix = f"use the same arguments or another --save_dir than '{args.save_dir}'"
    saved_args = finished_training_args(folder)
    if saved_args is not None:
        for name in EXPERIMENT_ARGS:
            if saved_args.get(name) != getattr(args, name, None):
                raise UsageError(
                    f"'{folder}' holds a poisoned model trained with {name}={saved_args.get(name)!r}, "
                    f"not {getattr(args, name, None)!r}; {fix}"
                )
        if not final.is_file():
            raise UsageError(f"'{folder}' records a finished training run but lacks {final.name}; {fix}")
        _, checkpoint = load_mask_checkpoint(final, args)
        check_record(checkpoint, record, final, fix)
        log(f"reusing the poisoned model {final} (trained earlier with the same arguments; no retraining)")
        return final, checkpoint, None
    model, resume = main_imp.training_model(train_args, data, runtime)
    if resume is not None:
        check_record(resume, record, folder, fix)
    return final, None, (model, resume)


def train_poisoned_model(args, data, record, model, resume, runtime, log) -> None:
    train_args = training_args(args)
    folder = arg_parser.check_save_dir(train_args.save_dir)
    save_args(train_args, folder)
    log(f"training the poisoned model into {folder} ({args.pruning_times} round(s), rate {args.rate})")
    meta = {**model_meta(args, data), "backdoor": record}
    for result in run_imp(train_args, data, model, runtime, log=log, meta=meta, resume=resume):
        log(
            f"poisoned round {result['round']}: remaining {100 * result['remaining_weight_ratio']:.2f}%  "
            f"best val {result['best_val_acc']:.2f}%  clean test {result['test_acc']:.2f}%"
        )


def measure(model, data, poisoned, args, runtime) -> dict:
    """SA, ASR and ASR_nontarget on the (clean) test set, and the accuracy on D_f under its poisoned labels."""
    metrics = backdoor.backdoor_metrics(
        model, data, args.trigger_size, args.trigger_value, args.class_to_replace, runtime
    )
    return {**metrics, "forget_acc": accuracy(model, data.eval_batches("train", poisoned), runtime)}


def collect_results(args, method, clean, path, model, poisoned, before, after, rte_min, stats) -> dict:
    return {
        "method": args.unlearn,
        "paper_name": method.paper_name,
        "dataset": clean.name,
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
        "command": " ".join(sys.argv),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "args": vars(args),
    }


def save_outputs(args, clean, model, record, results, save_dir: Path) -> None:
    """The unlearned model (with the poisoning record, so it can serve as --mask too), then the JSON."""
    atomic_torch_save(
        {
            "state_dict": model.state_dict(),
            "results": {key: value for key, value in results.items() if key != "unlearn_stats"},
            "args": vars(args),
            **model_meta(args, clean),
            "backdoor": record,
        },
        save_dir / f"{args.unlearn}_backdoor_model.pth.tar",
    )
    atomic_write_json(results, save_dir / f"{args.unlearn}_backdoor.json")


def print_summary(args, before, after, rte_min, save_dir, log) -> None:
    target = args.class_to_replace
    log(f"unlearning ({args.unlearn}) took {rte_min:.3f} min")
    log(f"SA  (clean test accuracy):              before {before['SA']:.2f}%  after {after['SA']:.2f}%")
    log(f"ASR (triggered test set, all classes):  before {before['ASR']:.2f}%  after {after['ASR']:.2f}%")
    log(
        f"ASR (triggered, true class != {target}):     before {before['ASR_nontarget']:.2f}%  "
        f"after {after['ASR_nontarget']:.2f}%"
    )
    log(
        f"accuracy on the poisoned samples (label {target}): before {before['forget_acc']:.2f}%  "
        f"after {after['forget_acc']:.2f}%"
    )
    log(f"-> {save_dir / f'{args.unlearn}_backdoor.json'}")


def main(argv=None):
    args = make_parser().parse_args(argv)
    validate(args)
    method = unlearn.get_method(args.unlearn)
    runtime = make_runtime(args)
    clean = dataset.load_data(args, runtime.device)
    check_poisoning(args, clean)
    poisoned = backdoor.choose_poisoned(clean.train_labels.cpu().numpy(), args.num_indexes_to_replace, args.seed)
    data = backdoor.poison(clean, poisoned, args.trigger_size, args.trigger_value, args.class_to_replace)
    record = poison_record(args, clean, poisoned)
    log = lambda line: print(line, flush=True)  # noqa: E731
    log(
        f"backdoor: {len(poisoned)} of {len(clean.train_labels)} training samples carry a "
        f"{args.trigger_size}x{args.trigger_size} trigger of value {args.trigger_value} "
        f"(pixel {backdoor.trigger_pixel(args.trigger_value)}) and the label {args.class_to_replace}"
    )
    path, checkpoint, training = plan_poisoned_model(args, data, record, runtime, log)
    names = [f"{args.unlearn}_backdoor.json", f"{args.unlearn}_backdoor_progress.pth.tar"]
    arg_parser.refuse_to_overwrite(args.save_dir, names, args.resume)
    save_dir = arg_parser.check_save_dir(args.save_dir)
    if training is not None:
        train_poisoned_model(args, data, record, *training, runtime, log)
        _, checkpoint = load_mask_checkpoint(path, args)
    state_dict = checkpoint["state_dict"]

    original = build_model(args, data, seed=args.seed)
    pruner.load_pruned_state(original, state_dict)
    before = measure(runtime.prepare(original), data, poisoned, args, runtime)
    model = prepare_model(args, data, method, state_dict, runtime)
    log(
        f"method: {args.unlearn} ({method.paper_name}) on {path}; "
        f"{100 * pruner.remaining_weight_ratio(model):.2f}% of conv weights remain; {args.arch} on {runtime.device}"
    )
    forget = ForgetSet("backdoor", poisoned, np.setdiff1d(np.arange(len(clean.train_labels)), poisoned), None)
    progress_file = save_dir / f"{args.unlearn}_backdoor_progress.pth.tar"
    rte_min, stats = run_unlearning(model, method, data, forget, args, runtime, log, progress_file)
    after = measure(model, data, poisoned, args, runtime)

    results = collect_results(args, method, clean, path, model, poisoned, before, after, rte_min, stats)
    save_outputs(args, clean, model, record, results, save_dir)
    progress_file.unlink(missing_ok=True)  # superseded by the saved model
    print_summary(args, before, after, rte_min, save_dir, log)
    return results


if __name__ == "__main__":
    run_cli(main)
