"""Unlearn a forget set from a (sparse) checkpoint, evaluate UA/RA/TA/MIA/RTE, save the results.

Class-wise forgetting of class 0 (the original README's command, 4,500 = all of CIFAR-10's class 0):
    python main_forget.py --save_dir out --mask runs/omp/1model_SA_best.pth.tar --unlearn FT \\
        --num_indexes_to_replace 4500 --unlearn_lr 0.01 --unlearn_epochs 10
Random forgetting: add --class_to_replace -1. Outputs: {save_dir}/{unlearn}_eval.json and
{save_dir}/{unlearn}checkpoint.pth.tar.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

import arg_parser
import dataset
import pruner
import unlearn
from evaluation.metrics import evaluate
from experiment import build_model, make_runtime, model_meta, validate_common
from forget_set import choose_forget_set
from pruning_rounds import check_same_experiment
from unlearn.context import UnlearnContext
from utils import (
    UsageError,
    atomic_torch_save,
    atomic_write_json,
    require_keys,
    require_state_dict,
    run_cli,
    safe_load,
)


def make_parser():
    parser = arg_parser.Parser(description=__doc__, formatter_class=arg_parser.argparse.RawDescriptionHelpFormatter)
    arg_parser.add_data_args(parser)
    arg_parser.add_model_args(parser)
    arg_parser.add_run_args(parser, save_dir_default="runs/unlearn")
    arg_parser.add_train_args(parser)
    arg_parser.add_unlearn_args(parser)
    return parser


def load_mask_checkpoint(path, args):
    """The --mask file as (state_dict, metadata); refuse files made for another set-up."""
    checkpoint = safe_load(path, "--mask checkpoint")
    state_dict = require_state_dict(checkpoint, path, "--mask checkpoint")
    for key in ("arch", "dataset", "train_subset"):
        saved = checkpoint.get(key)
        if key in checkpoint and saved != getattr(args, key):
            fix = f"pass --{key} {saved}" if saved is not None else f"drop --{key}"
            raise UsageError(
                f"--mask '{path}' was made with --{key} {saved}, not {getattr(args, key)}; "
                f"{fix} or give another checkpoint"
            )
    return state_dict, checkpoint


def prepare_model(args, data, method, state_dict, runtime):
    """θ_o from the checkpoint, or (retrain) a fresh initialisation seeded by --train_seed under its mask."""
    model = build_model(args, data, seed=args.seed)
    pruner.load_pruned_state(model, state_dict)  # also checks the file fits this architecture
    if not method.loads_weights:
        masks = pruner.masks_of(model)
        model = build_model(args, data, seed=args.train_seed)
        pruner.apply_mask(model, masks)
    return runtime.prepare(model)


# Arguments that define an unlearning run: a resumed run must agree on all of them.
RUN_ARGS = (
    "dataset",
    "arch",
    "mask",
    "unlearn",
    "unlearn_lr",
    "unlearn_epochs",
    "alpha",
    "no_l1_epochs",
    "seed",
    "train_seed",
    "split_seed",
    "train_subset",
    "batch_size",
    "no_aug",
    "decreasing_lr",
    "warmup",
    "momentum",
    "weight_decay",
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


def check_same_run(saved, args, forget, path, keys) -> None:
    require_keys(saved, keys, path, "--resume file")
    check_same_experiment(saved["args"], args, RUN_ARGS)
    if not np.array_equal(np.asarray(saved["forget_indices"]), forget.forget_indices):
        raise UsageError(f"--resume: '{path}' was made for another forget set; use another --save_dir")


def run_unlearning(model, method, data, forget, args, runtime, log, progress_file):
    """Run the method, saving progress after every epoch; returns (RTE in minutes, method stats).

    RTE counts the unlearning step only: not evaluation, not the progress saves, and across a
    resume it adds the time spent before the interruption.
    """
    ctx = UnlearnContext(data, forget.forget_indices, forget.retain_indices, args, runtime, forget.forgotten_class, log)
    spent_before, saving = 0.0, 0.0
    if args.resume and progress_file.is_file():
        progress = safe_load(progress_file, "unlearning progress")
        check_same_run(progress, args, forget, progress_file, PROGRESS_KEYS)
        pruner.load_pruned_state(model, progress["state_dict"])
        ctx.resume, ctx.stats, spent_before = progress, progress["stats"], progress["elapsed"]
    start = time.perf_counter()

    def on_epoch(state):
        nonlocal saving
        began = time.perf_counter()
        elapsed = spent_before + began - start - saving
        atomic_torch_save(
            {
                **state,
                "state_dict": model.state_dict(),
                "elapsed": elapsed,
                "stats": ctx.stats,
                "forget_indices": forget.forget_indices.tolist(),
                "args": vars(args),
            },
            progress_file,
        )
        saving += time.perf_counter() - began

    ctx.on_epoch = on_epoch
    method.fn(model, ctx)
    pruner.refresh_weights(model)
    if runtime.device.type == "cuda":
        torch.cuda.synchronize(runtime.device)
    return (spent_before + time.perf_counter() - start - saving) / 60, ctx.stats


def main(argv=None):
    args = make_parser().parse_args(argv)
    validate_common(args)
    method = unlearn.get_method(args.unlearn)
    if args.mask is None:
        raise UsageError(
            "--mask is required: give the checkpoint to unlearn from (e.g. runs/omp/1model_SA_best.pth.tar)"
        )
    state_dict, _ = load_mask_checkpoint(args.mask, args)
    save_dir = Path(args.save_dir)
    checkpoint_file = save_dir / f"{args.unlearn}checkpoint.pth.tar"
    progress_file = save_dir / f"{args.unlearn}_progress.pth.tar"
    if args.resume and not checkpoint_file.is_file() and not progress_file.is_file():
        raise UsageError(f"--resume: nothing to resume, '{checkpoint_file}' does not exist; drop --resume")
    runtime = make_runtime(args)
    data = dataset.load_data(args, runtime.device)
    forget = choose_forget_set(data.train_labels.cpu().numpy(), data.num_classes, args)
    model = prepare_model(args, data, method, state_dict, runtime)
    arg_parser.refuse_to_overwrite(save_dir, [checkpoint_file.name, progress_file.name], args.resume)
    arg_parser.check_save_dir(save_dir)
    log = lambda line: print(line, flush=True)  # noqa: E731
    log(forget.describe(len(data.train_labels)))
    log(
        f"method: {args.unlearn} ({method.paper_name}); {100 * pruner.remaining_weight_ratio(model):.2f}% of conv "
        f"weights remain; {args.arch} on {runtime.device}"
    )

    done = {}
    if args.resume and checkpoint_file.is_file():
        saved = safe_load(checkpoint_file, "unlearning checkpoint")
        check_same_run(saved, args, forget, checkpoint_file, FINISHED_KEYS)
        pruner.load_pruned_state(model, saved["state_dict"])
        done, rte_min, stats = saved["evaluation"], saved["RTE_min"], saved["stats"]
        log(f"resumed the finished unlearning step from {checkpoint_file}")
    else:
        rte_min, stats = run_unlearning(model, method, data, forget, args, runtime, log, progress_file)
        log(f"unlearning took {rte_min:.3f} min")

    def save(evaluation):
        atomic_torch_save(
            {
                "state_dict": model.state_dict(),
                "evaluation": evaluation,
                "RTE_min": rte_min,
                "stats": stats,
                "forget_indices": forget.forget_indices.tolist(),
                "args": vars(args),
                **model_meta(args, data),
            },
            checkpoint_file,
        )

    save(done)
    evaluation = evaluate(
        model, data, forget.forget_indices, forget.retain_indices, runtime, forget.forgotten_class, done=done, log=log
    )
    save(evaluation)
    progress_file.unlink(missing_ok=True)  # superseded by the finished checkpoint
    results = {
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
        "SVC_MIA_forget_efficacy": evaluation["SVC_MIA_forget_efficacy"],
        "SVC_MIA_training_privacy": evaluation["SVC_MIA_training_privacy"],
        "unlearn_stats": stats,
        "command": " ".join(sys.argv),
        "args": vars(args),
    }
    atomic_write_json(results, save_dir / f"{args.unlearn}_eval.json")
    log(
        f"{args.unlearn}: UA {results['UA']:.2f}  MIA-Eff {results['MIA_efficacy']:.2f}  RA {results['RA']:.2f}  "
        f"TA {results['TA']:.2f}  RTE {rte_min:.3f} min -> {save_dir / f'{args.unlearn}_eval.json'}"
    )
    return results


if __name__ == "__main__":
    run_cli(main)
