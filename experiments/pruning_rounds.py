"""Training rounds: train, prune and rewind (OMP: 2 rounds, IMP: more); used by main_imp.py,
main_synflow.py and main_backdoor.py.

Round 0 trains the model as it is (dense, or SynFlow-pruned); every later round prunes the last
epoch's weights by global magnitude, rewinds the survivors and trains again. The files it writes
are described in run_files.py.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import warnings
from pathlib import Path

import torch

import dataset
import pruner
import utils
from experiments import run_files, run_identity, training_files
from experiments.arg_parser import parse_milestones
from experiments.experiment import build_model, make_runtime, validate_common
from training.interrupts import Diverged, EpochInterrupted, Stopped
from training.trainer import accuracy, make_optimizer, make_scheduler, train_epoch, training_loss
from utils import UsageError

PRUNE_TYPES = ("lt", "pt", "rewind_lt")


def validate(args) -> None:
    """Checks of a training run that need no data (and, with --resume, that there is something to resume)."""
    validate_common(args)
    if args.prune_type not in PRUNE_TYPES:
        raise UsageError(f"unknown --prune_type '{args.prune_type}'; choose from {', '.join(PRUNE_TYPES)}")
    pruner.check_rate(args.rate)
    training_loss(args.label_smoothing)  # refuses an epsilon outside [0, 1)
    if args.pruning_times < 1:
        raise UsageError(f"--pruning_times {args.pruning_times} must be at least 1 (round 0 is the dense one)")
    if args.epochs < 1:
        raise UsageError(f"--epochs {args.epochs}: each round must train at least 1 epoch to have a best checkpoint")
    if args.rewind_epoch > args.epochs:
        raise UsageError(f"--rewind_epoch {args.rewind_epoch} is after the last epoch ({args.epochs}); lower it")
    if args.resume:
        training_files.find_resume_checkpoint(args)
    _warn_unused_forget_flags(args)


def _warn_unused_forget_flags(args) -> None:
    """The forget-set flags choose what --leave_out_forget leaves out; without it they are not used (said once)."""
    if getattr(args, "leave_out_forget", True):
        return
    given = [f"--{name}" for name in ("num_indexes_to_replace", "indexes_to_replace", "forget_seed")
             if getattr(args, name, None) is not None]  # fmt: skip
    if getattr(args, "class_to_replace", 0) != 0:
        given.append("--class_to_replace")
    if getattr(args, "index_numbering", "split") != "split":
        given.append("--index_numbering")
    for flag in given:
        print(f"warning: {flag} is not used without --leave_out_forget (main_forget.py chooses the forget set)",
              file=sys.stderr, flush=True)  # fmt: skip


def left_out_forget_set(args, data):
    """With --leave_out_forget: the forget set main_forget.py would choose (its --seed is --forget_seed, by
    default --seed); else None."""
    if not getattr(args, "leave_out_forget", False):
        return None
    seed = args.forget_seed if args.forget_seed is not None else args.seed
    chooser = argparse.Namespace(**{**vars(args), "seed": seed})
    return dataset.forget_set_of(data, chooser)


def training_model(args, data, runtime, kind: str = run_identity.TRAINING, **inputs):
    """(model, resume state, identity) of a training run: the --rewind_pth and resume files are read and
    checked now, not after a round of training, and nothing is written. ``inputs`` join the identity
    (main_backdoor.py's poisoning record)."""
    model = runtime.prepare(build_model(args, data, seed=args.seed))
    if args.rewind_pth:
        rewind = training_files.load_rewind_file(args.rewind_pth, model)
        inputs["rewind_pth"] = run_identity.tensors_fingerprint(rewind)
    identity = run_identity.of_args(kind, args, **inputs)
    resume = training_files.load_round_checkpoint(args, model, identity) if args.resume else None
    return model, resume, identity


def set_up(args, kind: str = run_identity.TRAINING):
    """(runtime, data, model, resume state, identity) of a training run; every file is read and checked, none
    written. ``kind``: main_imp.py's training or main_synflow.py's; a --resume of the other's folder is refused.
    """
    utils.begin_log()
    runtime = make_runtime(args)
    data = dataset.load_data(args, runtime.device)
    inputs, forget = {}, left_out_forget_set(args, data)
    if forget is not None:  # recorded by content, so a resume with another forget set is refused
        inputs["left_out"] = run_identity.left_out_input(forget)
        utils.log(
            "left out of every training batch: "
            + forget.describe(len(data.train_labels)).removeprefix("scenario: ").split(";")[0]
        )
        data = data.without_train(forget.forget_indices)
    model, resume, identity = training_model(args, data, runtime, kind, **inputs)
    return runtime, data, model, resume, identity


def folder_lock(args) -> run_files.FolderLock:
    """The run's lock on --save_dir, taken at once when the folder exists (see ``run_files.FolderLock``)."""
    refuse = lambda: run_files.refuse_to_overwrite(args.save_dir, training_files.TRAINING_RUN_FILES, args.resume)  # noqa: E731
    return run_files.FolderLock(args.save_dir, "imp", check=refuse)


@contextlib.contextmanager
def open_save_dir(args, lock: run_files.FolderLock):
    """Once every input is checked: create --save_dir, hold its lock (``lock``), write args.json."""
    save_dir = run_files.check_save_dir(args.save_dir)
    lock.hold()
    utils.keep_log(save_dir)
    run_files.save_args(args, save_dir)
    yield save_dir


def describe_data(data, args, runtime) -> str:
    return (
        f"{data.name}: {len(data.train_labels)} train / {len(data.val_labels)} val / {len(data.test_labels)} test, "
        f"{args.arch} on {runtime.device}"
    )


def describe_round(result: dict, test: str = "test") -> str:
    return (
        f"round {result['round'] + 1}: remaining {100 * result['remaining_weight_ratio']:.2f}%  "
        f"best val {result['best_val_acc']:.2f}%  {test} {result['test_acc']:.2f}%  "
        f"-> {training_files.mask_file('', result['round']).name}"
    )


class RoundState:
    """What a round needs to continue after a crash: its position, best result and epoch log."""

    def __init__(self, k, epoch=0, best_val=-1.0, best_epoch=-1, best_test=float("nan"), log=None, partial=None):
        self.k, self.epoch, self.best_val, self.best_epoch, self.best_test = k, epoch, best_val, best_epoch, best_test
        self.log = log or []
        self.partial = partial  # how far the epoch got when a signal stopped it mid-way (see trainer.train_epoch)


def run_imp(args, data, model, runtime, log=print, meta=None, resume=None):
    """Run (or resume) every round; returns the per-round results written to imp_results.json.

    ``resume``: what ``training_files.load_round_checkpoint`` returned for a --resume run (None: start
    afresh). ``meta`` goes into every checkpoint (the set-up, the pruning kind, the run's ``identity``).
    """
    rounds = Rounds(args, model, dict(meta or {}))
    optimizer_state = rounds.resume(resume, log) if resume is not None else rounds.start()
    while rounds.position.k < args.pruning_times:
        k = rounds.position.k
        optimizer, scheduler = round_optimizer(args, model, k, optimizer_state)
        optimizer_state = None
        ratio = pruner.remaining_weight_ratio(model)
        log(f"round {k + 1}/{args.pruning_times}: {100 * ratio:.2f}% of prunable weights remain")  # logs count from 1
        train_round(rounds, data, runtime, optimizer, scheduler, ratio, log)
        finish_round(rounds, ratio, log)
        if k + 1 < args.pruning_times:
            targets = rounds.init_state, rounds.rewind_state
            _prune_and_rewind(args, model, rounds.save_dir, *targets, args.seed + k, runtime.memory_format)
            rounds.save(optimizer, scheduler)  # the new round starts at epoch 0 with a fresh optimiser
    return rounds.results


class Rounds:
    """The state that runs through the rounds: the rewind targets, finished rounds and the current position."""

    def __init__(self, args, model, meta: dict):
        self.args, self.model, self.meta = args, model, meta
        self.save_dir = Path(args.save_dir)
        self.init_state = self.rewind_state = None
        self.results, self.position = [], RoundState(0)

    def start(self):
        """A fresh run: keep the initial weights (round 0's rewind target). No optimiser state to restore."""
        self.init_state = copy.deepcopy(pruner.dense_state(self.model.state_dict()))
        training_files.save_rewind_weights(self.init_state, self.save_dir, 0)
        return None

    def resume(self, saved: dict, log):
        """Continue from a round checkpoint; returns its (optimiser, scheduler) states, or None at a round's start."""
        self.init_state, self.rewind_state = saved["init_state"], saved["rewind_state"]
        self.results = saved["rounds"]
        fields = ("round", "epoch", "best_val", "best_epoch", "best_test", "epoch_log")
        self.position = RoundState(*(saved[name] for name in fields), partial=saved.get("partial_epoch"))
        batch = f", after batch {self.position.partial['steps']}" if self.position.partial else ""
        log(f"resuming round {self.position.k + 1} at epoch {self.position.epoch + 1}{batch}")  # logs count from 1
        # A checkpoint written right after a prune starts a round: its optimiser state is the old round's.
        started = self.position.epoch or self.position.partial
        return (saved["optimizer"], saved["scheduler"]) if started else None

    def save(self, optimizer, scheduler) -> None:
        training_files.save_round_checkpoint(
            self.save_dir, self.model, optimizer, scheduler, self, self.args, self.meta
        )


def round_optimizer(args, model, k: int, saved_state=None):
    """Round k's optimiser (--optimizer) and LR schedule; a rewound round continues the schedule where its
    weights were saved."""
    optimizer = make_optimizer(model, args.lr, args.momentum, args.weight_decay, kind=args.optimizer)
    scheduler = make_scheduler(optimizer, parse_milestones(args.decreasing_lr), kind=args.schedule, epochs=args.epochs)
    if k > 0 and args.prune_type == "rewind_lt":
        with warnings.catch_warnings():  # stepping before any optimiser step is the point here
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(args.rewind_epoch):
                scheduler.step()
    if saved_state is not None:
        optimizer.load_state_dict(saved_state[0])
        scheduler.load_state_dict(saved_state[1])
    return optimizer, scheduler


def train_round(rounds: Rounds, data, runtime, optimizer, scheduler, ratio: float, log) -> None:
    """The remaining epochs of the current round, each followed by a checkpoint."""
    args, model, position = rounds.args, rounds.model, rounds.position
    k = position.k
    batches = data.train_batches(batch_size=args.batch_size, augment=not args.no_aug, seed=args.seed + 7919 * k)
    for epoch in range(position.epoch, args.epochs):
        batches.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        stats = _train_epoch(rounds, batches, runtime, optimizer, scheduler, epoch)
        scheduler.step()
        val_acc = accuracy(model, data.eval_batches("val"), runtime)
        if val_acc > position.best_val:
            position.best_val, position.best_epoch = val_acc, epoch
            position.best_test = accuracy(model, data.eval_batches("test"), runtime)
            training_files.save_mask_file(rounds.save_dir, model, position, ratio, args, rounds.meta)
        if k == 0 and epoch + 1 == args.rewind_epoch:
            rounds.rewind_state = copy.deepcopy(pruner.dense_state(model.state_dict()))
            training_files.save_rewind_weights(rounds.rewind_state, rounds.save_dir, args.rewind_epoch)
        position.log.append(
            {
                "epoch": epoch,
                "lr": lr,
                "train_loss": stats["loss"],
                "train_acc": stats["acc"],
                "val_acc": val_acc,
                "img_s": stats["img_s"],
                "seconds": stats["seconds"],
            }
        )
        position.epoch = epoch + 1
        _write_epochs(rounds)
        log(
            f"round {k + 1} epoch {epoch + 1}: loss {stats['loss']:.4f} train {stats['acc']:.2f}% "
            f"val {val_acc:.2f}% lr {lr:.4g} ({stats['img_s']:.0f} img/s)"
        )
        rounds.save(optimizer, scheduler)


def _write_epochs(rounds: Rounds) -> None:
    """epochs.jsonl: every epoch of every round so far, one JSON object per line (round and epoch from 0,
    as in imp_results.json)."""
    done = [{"round": r["round"], **e} for r in rounds.results for e in r["epochs"]]
    current = [{"round": rounds.position.k, **e} for e in rounds.position.log]
    run_files.write_epoch_lines(training_files.training_epochs_file(rounds.save_dir), done + current)


def plot_round(epochs: list[dict], k: int, path: Path) -> None:
    """Round k's training curve: train loss, train and validation accuracy per epoch."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.2))
    numbers = [entry["epoch"] + 1 for entry in epochs]
    loss_ax.plot(numbers, [entry["train_loss"] for entry in epochs], marker="o")
    loss_ax.set(xlabel="epoch", ylabel="train loss", title=f"round {k + 1}")
    acc_ax.plot(numbers, [entry["train_acc"] for entry in epochs], marker="o", label="train")
    acc_ax.plot(numbers, [entry["val_acc"] for entry in epochs], marker="o", label="validation")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)")
    acc_ax.legend()
    utils.save_figure(fig, path)


def _train_epoch(rounds: Rounds, batches, runtime, optimizer, scheduler, epoch: int) -> dict:
    """One epoch of the round; a stop signal saves the position mid-epoch, divergence is recorded."""
    args, position = rounds.args, rounds.position
    where = f"round {position.k + 1} epoch {epoch + 1}"
    try:
        stats = train_epoch(
            rounds.model,
            batches,
            optimizer,
            runtime,
            training_loss(args.label_smoothing),
            epoch=epoch,
            warmup=args.warmup,
            desc=where,
            resume=position.partial,
        )
    except EpochInterrupted as stop:
        position.partial = stop.partial
        rounds.save(optimizer, scheduler)
        raise Stopped(stop.signum, f"{where} after batch {stop.steps} of {len(batches)}") from None
    except Diverged as err:
        diverged = Diverged(where, epoch, optimizer.param_groups[0]["lr"])
        identity = rounds.meta["identity"]
        device = model_device(rounds.model)
        training_files.write_round_results(args, rounds.results, rounds.save_dir, identity, device, diverged.record())
        diverged.advice = f"recorded in {rounds.save_dir / 'imp_results.json'}; try a smaller --lr"
        raise diverged from err
    position.partial = None
    return stats


def finish_round(rounds: Rounds, ratio: float, log) -> None:
    """Record the round's result, write imp_results.json and move to the next round."""
    position = rounds.position
    rounds.results.append(
        {
            "round": position.k,
            "remaining_weight_ratio": ratio,
            "best_val_acc": position.best_val,
            "best_epoch": position.best_epoch,
            "test_acc": position.best_test,
            "epochs": position.log,
        }
    )
    log(
        f"round {position.k + 1} done: best val {position.best_val:.2f}% at epoch {position.best_epoch + 1}, "
        f"test {position.best_test:.2f}%, {100 * ratio:.2f}% weights remain"
    )
    plot_round(position.log, position.k, training_files.curve_file(rounds.save_dir, position.k))
    training_files.mark_round_finished(rounds.save_dir, position.k)
    identity, device = rounds.meta["identity"], model_device(rounds.model)
    training_files.write_round_results(rounds.args, rounds.results, rounds.save_dir, identity, device)
    rounds.position = RoundState(position.k + 1)


def _rewind_target(args, save_dir: Path, init_state: dict, rewind_state):
    """Dense weights the surviving weights go back to after a prune."""
    if args.rewind_pth:
        return training_files.load_rewind_file(args.rewind_pth)
    if args.prune_type == "pt":
        return training_files.load_dense_best(save_dir)
    if args.prune_type == "rewind_lt" and args.rewind_epoch > 0:
        return rewind_state
    return init_state


def _prune_and_rewind(args, model, save_dir, init_state, rewind_state, seed, memory_format=torch.contiguous_format):
    """Prune the last epoch's weights, then put the survivors back at the rewind target.

    torch's global pruning flattens weights with ``view(-1)``, which channels-last tensors (CUDA runs
    without --fp32) refuse: prune in the standard layout, then return to ``memory_format``.
    """
    model.to(memory_format=torch.contiguous_format)
    pruner.global_prune(model, args.rate, "random" if args.random_prune else "l1", seed=seed)
    masks = pruner.masks_of(model)
    pruner.remove_pruning(model)
    target = _rewind_target(args, save_dir, init_state, rewind_state)
    model.load_state_dict({key: value.to(model_device(model)) for key, value in target.items()})
    pruner.apply_mask(model, masks)
    model.to(memory_format=memory_format)
    pruner.refresh_weights(model)


def model_device(model) -> torch.device:
    return next(model.parameters()).device
