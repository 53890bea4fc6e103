"""Train, prune and rewind in rounds (OMP / IMP, SPEC §4–§5); shared by main_imp.py and main_synflow.py.

Files in ``save_dir`` (round k): ``{k}checkpoint.pth.tar`` (resumable state, rewritten after
every epoch), ``{k}model_SA_best.pth.tar`` (best-validation weights with their masks: the mask
file), ``epoch_{e}_rewind_weight.pt`` (dense weights to rewind to) and ``imp_results.json``.
"""

from __future__ import annotations

import copy
import time
import warnings
from pathlib import Path

import torch

import pruner
from arg_parser import parse_milestones
from trainer import accuracy, make_optimizer, make_scheduler, train_epoch
from utils import UsageError, atomic_torch_save, atomic_write_json, require_keys, require_state_dict, safe_load

# Arguments that define the experiment: a resumed run must agree on all of them.
EXPERIMENT_ARGS = (
    "dataset",
    "arch",
    "imagenet_arch",
    "split_seed",
    "train_subset",
    "seed",
    "lr",
    "momentum",
    "weight_decay",
    "epochs",
    "warmup",
    "decreasing_lr",
    "no_aug",
    "batch_size",
    "pruning_times",
    "rate",
    "prune_type",
    "random_prune",
    "rewind_epoch",
    "rewind_pth",
)


def checkpoint_path(save_dir, k: int) -> Path:
    return Path(save_dir) / f"{k}checkpoint.pth.tar"


def find_resume_checkpoint(args) -> Path:
    """``--checkpoint`` if given, else the latest round's ``{k}checkpoint.pth.tar`` in ``--save_dir``."""
    if args.checkpoint:
        path = Path(args.checkpoint)
        if not path.is_file():
            raise UsageError(f"--checkpoint '{path}' does not exist; give a {{k}}checkpoint.pth.tar file")
        return path
    found = [p for p in Path(args.save_dir).glob("*checkpoint.pth.tar") if p.name.split("c")[0].isdigit()]
    found.sort(key=lambda p: int(p.name.split("c")[0]))  # other scripts' {method}checkpoint files are skipped
    if not found:
        raise UsageError(
            f"--resume: nothing to resume in '{args.save_dir}' (no {{k}}checkpoint.pth.tar); drop --resume"
        )
    return found[-1]


def check_same_experiment(saved: dict, args, names=EXPERIMENT_ARGS) -> None:
    if not isinstance(saved, dict):
        raise UsageError("--resume: the saved run's 'args' is not a dict; it was not written by these scripts")
    for name in names:
        old, new = saved.get(name), getattr(args, name, None)
        if old != new:
            raise UsageError(
                f"--resume: the saved run has {name}={old!r} but this command gives {new!r}; "
                f"use the same arguments or another --save_dir"
            )


RESUME_KEYS = (
    "args",
    "state_dict",
    "optimizer",
    "scheduler",
    "has_rewind_state",
    "rounds",
    "round",
    "epoch",
    "best_val",
    "best_epoch",
    "best_test",
    "epoch_log",
)


def load_resume(args, model) -> dict:
    """Read and check everything a resumed run needs, before anything is written; loads its weights into ``model``.

    Returns the checkpoint with ``init_state`` and ``rewind_state`` (the dense weights to rewind to) added.
    """
    path = find_resume_checkpoint(args)
    saved = safe_load(path, "resume checkpoint")
    require_keys(saved, RESUME_KEYS, path, "resume checkpoint")
    check_same_experiment(saved["args"], args)
    pruner.load_pruned_state(model, saved["state_dict"])
    save_dir = Path(args.save_dir)
    saved["init_state"] = safe_load(save_dir / "epoch_0_rewind_weight.pt", "initial weights")
    rewind_file = save_dir / f"epoch_{args.rewind_epoch}_rewind_weight.pt"
    saved["rewind_state"] = safe_load(rewind_file, "rewind weights") if saved["has_rewind_state"] else None
    return saved


def load_rewind_file(path, model=None) -> dict:
    """The dense weights of a --rewind_pth file; with ``model``, refuse (naming the tensor) one that does not fit."""
    state = pruner.dense_state(require_state_dict(safe_load(path, "--rewind_pth file"), path, "--rewind_pth file"))
    if model is not None:
        pruner.load_pruned_state(copy.deepcopy(model), state)
    return state


def _rewind_target(args, save_dir: Path, init_state: dict, rewind_state):
    """Dense weights the surviving weights go back to after a prune."""
    if args.rewind_pth:
        return load_rewind_file(args.rewind_pth)
    if args.prune_type == "pt":
        best = safe_load(save_dir / "0model_SA_best.pth.tar", "dense best checkpoint")
        return pruner.dense_state(best["state_dict"])
    if args.prune_type == "rewind_lt" and args.rewind_epoch > 0:
        return rewind_state
    return init_state


class RoundState:
    """What a round needs to continue after a crash: its position, best result and epoch log."""

    def __init__(self, k, epoch=0, best_val=-1.0, best_epoch=-1, best_test=float("nan"), log=None):
        self.k, self.epoch, self.best_val, self.best_epoch, self.best_test = k, epoch, best_val, best_epoch, best_test
        self.log = log or []

    def as_dict(self):
        return {
            "round": self.k,
            "epoch": self.epoch,
            "best_val": self.best_val,
            "best_epoch": self.best_epoch,
            "best_test": self.best_test,
            "epoch_log": self.log,
        }


def run_imp(args, data, model, runtime, log=print, meta=None, resume=None):
    """Run (or resume) every round; returns the per-round results written to imp_results.json.

    ``resume``: what ``load_resume(args, model)`` returned for a --resume run (None: start afresh).
    """
    save_dir = Path(args.save_dir)
    milestones = parse_milestones(args.decreasing_lr)
    meta = dict(meta or {})
    if resume is not None:
        saved = resume
        init_state, rewind_state = saved["init_state"], saved["rewind_state"]
        rounds = saved["rounds"]
        position = RoundState(
            saved["round"],
            saved["epoch"],
            saved["best_val"],
            saved["best_epoch"],
            saved["best_test"],
            saved["epoch_log"],
        )
        # A checkpoint written right after a prune starts a round: its optimiser state is the old round's.
        opt_state, sched_state = (saved["optimizer"], saved["scheduler"]) if position.epoch else (None, None)
        log(f"resuming round {position.k} at epoch {position.epoch}")
    else:
        init_state = copy.deepcopy(pruner.dense_state(model.state_dict()))
        atomic_torch_save(init_state, save_dir / "epoch_0_rewind_weight.pt")
        rewind_state, rounds, position, opt_state, sched_state = None, [], RoundState(0), None, None

    def save_checkpoint(optimizer, scheduler):
        atomic_torch_save(
            {
                "args": vars(args),
                "state_dict": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "has_rewind_state": rewind_state is not None,
                "rounds": rounds,
                **{k: v for k, v in position.as_dict().items() if k != "epoch_log"},
                "epoch_log": position.log,
                **meta,
            },
            checkpoint_path(save_dir, position.k),
        )

    while position.k < args.pruning_times:
        k = position.k
        optimizer = make_optimizer(model, args.lr, args.momentum, args.weight_decay)
        scheduler = make_scheduler(optimizer, milestones)
        if k > 0 and args.prune_type == "rewind_lt":
            with warnings.catch_warnings():  # stepping before any optimiser step is the point here
                warnings.simplefilter("ignore", UserWarning)
                for _ in range(args.rewind_epoch):  # the rewound weights continue the schedule where they were saved
                    scheduler.step()
        if opt_state is not None:
            optimizer.load_state_dict(opt_state)
            scheduler.load_state_dict(sched_state)
            opt_state = sched_state = None
        ratio = pruner.remaining_weight_ratio(model)
        log(f"round {k}/{args.pruning_times - 1}: {100 * ratio:.2f}% of conv weights remain")
        batches = data.train_batches(batch_size=args.batch_size, augment=not args.no_aug, seed=args.seed + 7919 * k)
        for epoch in range(position.epoch, args.epochs):
            batches.set_epoch(epoch)
            lr = optimizer.param_groups[0]["lr"]
            stats = train_epoch(
                model, batches, optimizer, runtime, epoch=epoch, warmup=args.warmup, desc=f"round {k} epoch {epoch}"
            )
            scheduler.step()
            val_acc = accuracy(model, data.eval_batches("val"), runtime)
            entry = {
                "epoch": epoch,
                "lr": lr,
                "train_loss": stats["loss"],
                "train_acc": stats["acc"],
                "val_acc": val_acc,
                "img_s": stats["img_s"],
                "seconds": stats["seconds"],
            }
            if val_acc > position.best_val:
                position.best_val, position.best_epoch = val_acc, epoch
                position.best_test = accuracy(model, data.eval_batches("test"), runtime)
                atomic_torch_save(
                    {
                        "state_dict": model.state_dict(),
                        "round": k,
                        "epoch": epoch,
                        "best_val": val_acc,
                        "test_acc": position.best_test,
                        "remaining_weight_ratio": ratio,
                        "args": vars(args),
                        **meta,
                    },
                    save_dir / f"{k}model_SA_best.pth.tar",
                )
            if k == 0 and epoch + 1 == args.rewind_epoch:
                rewind_state = copy.deepcopy(pruner.dense_state(model.state_dict()))
                atomic_torch_save(rewind_state, save_dir / f"epoch_{args.rewind_epoch}_rewind_weight.pt")
            position.log.append(entry)
            position.epoch = epoch + 1
            log(
                f"round {k} epoch {epoch}: loss {stats['loss']:.4f} train {stats['acc']:.2f}% "
                f"val {val_acc:.2f}% lr {lr:.4g} ({stats['img_s']:.0f} img/s)"
            )
            save_checkpoint(optimizer, scheduler)
        rounds.append(
            {
                "round": k,
                "remaining_weight_ratio": ratio,
                "best_val_acc": position.best_val,
                "best_epoch": position.best_epoch,
                "test_acc": position.best_test,
                "epochs": position.log,
            }
        )
        log(
            f"round {k} done: best val {position.best_val:.2f}% at epoch {position.best_epoch}, "
            f"test {position.best_test:.2f}%, {100 * ratio:.2f}% weights remain"
        )
        write_results(args, rounds, save_dir)
        position = RoundState(k + 1)
        if k + 1 < args.pruning_times:
            _prune_and_rewind(args, model, save_dir, init_state, rewind_state, args.seed + k, runtime.memory_format)
            save_checkpoint(optimizer, scheduler)  # the new round starts at epoch 0 with a fresh optimiser
    return rounds


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


def write_results(args, rounds, save_dir: Path) -> None:
    atomic_write_json(
        {
            "rounds": rounds,
            "train_subset": args.train_subset,
            "args": vars(args),
            "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
        save_dir / "imp_results.json",
    )
