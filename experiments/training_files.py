"""The files of a training and pruning run (main_imp.py, main_synflow.py, the backdoor's poisoned model)."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch

import pruner
from experiments import run_identity
from experiments.run_files import require_same_run
from utils import (
    UsageError,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    provenance,
    require_keys,
    require_state_dict,
    safe_load,
)

TRAINING_RUN_FILES = ["[0-9]*checkpoint.pth.tar", "imp_results.json"]  # a started or finished training run


ROUND_CHECKPOINT_KEYS = (
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


def mask_file(save_dir, k: int) -> Path:
    return Path(save_dir) / f"{k}model_SA_best.pth.tar"


def round_checkpoint(save_dir, k: int) -> Path:
    return Path(save_dir) / f"{k}checkpoint.pth.tar"


def rewind_file(save_dir, epoch: int) -> Path:
    return Path(save_dir) / f"epoch_{epoch}_rewind_weight.pt"


def training_epochs_file(save_dir) -> Path:
    return Path(save_dir) / "epochs.jsonl"


def curve_file(save_dir, k: int) -> Path:
    return Path(save_dir) / f"{k}net_train.png"  # the original code's name for round k's training curve


def save_mask_file(save_dir, model, position, ratio: float, args, meta: dict) -> None:
    """Round ``position.k``'s best weights so far (with their masks): the file main_forget.py --mask takes.

    It is marked ``round_finished`` only when the round ends (``mark_round_finished``); before that it
    is a best-so-far checkpoint that main_forget.py and main_backdoor.py refuse.
    """
    atomic_torch_save(
        {
            "state_dict": model.state_dict(),
            "round_finished": False,
            "round": position.k,
            "epoch": position.best_epoch,
            "best_val": position.best_val,
            "test_acc": position.best_test,
            "remaining_weight_ratio": ratio,
            "args": vars(args),
            **meta,
        },
        mask_file(save_dir, position.k),
    )


def mark_round_finished(save_dir, k: int) -> None:
    """Round k has ended: its mask file is final (rewritten atomically with ``round_finished``)."""
    path = mask_file(save_dir, k)
    saved = safe_load(path, "mask file")
    atomic_torch_save({**saved, "round_finished": True}, path)


_MASK_SHAS: dict[tuple, str] = {}


def mask_fingerprint(path) -> str | None:
    """The content hash of a mask file's tensors (None while it does not exist), cached by path, size and mtime."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _MASK_SHAS:
        state = require_state_dict(safe_load(path, "--mask checkpoint"), path, "--mask checkpoint")
        _MASK_SHAS[key] = run_identity.tensors_fingerprint(in_our_layout(state, path))
    return _MASK_SHAS[key]


def publish_mask_file(source, target) -> Path:
    """Copy a mask file to ``target`` (atomically), e.g. the poisoned model to main_backdoor.py's --mask path."""
    data = Path(source).read_bytes()
    atomic_write_bytes(data, target)
    return Path(target)


ORIGINAL_TOP_LEVEL = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc", "features", "classifier")


def in_our_layout(state_dict: dict, path) -> dict:
    """The state dict with this project's key layout: the network under ``net.``, its input normalisation
    under ``normalize.``. The original code's files (``conv1.…``, ``layer1.…``, ``fc.…``, maybe behind
    DataParallel's ``module.``) are mapped; a file in neither layout is refused, naming the layout it has."""
    plain = {key.removeprefix("module."): value for key, value in state_dict.items()}
    tops = {key.split(".")[0] for key in plain}
    if "net" in tops:
        return plain
    if tops & set(ORIGINAL_TOP_LEVEL) and tops <= set(ORIGINAL_TOP_LEVEL) | {"normalize"}:
        return {key if key.startswith("normalize.") else f"net.{key}": value for key, value in plain.items()}
    raise UsageError(
        f"--mask '{path}' has its tensors under {', '.join(sorted(tops)[:4])}: neither this project's layout "
        f"(net.…, normalize.…) nor the original code's (conv1.…, layer1.…, fc.…); give a checkpoint of either"
    )


def load_mask_file(path, args):
    """A mask file as (state_dict, whole checkpoint); refuse one made for another --arch, --dataset or subset,
    and one from a round that has not finished (a best-so-far checkpoint of an interrupted run)."""
    checkpoint = safe_load(path, "--mask checkpoint")
    state_dict = in_our_layout(require_state_dict(checkpoint, path, "--mask checkpoint"), path)
    if "state_dict" in checkpoint:
        checkpoint = {**checkpoint, "state_dict": state_dict}
    for key, tensor in state_dict.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UsageError(
                f"--mask '{path}': tensor '{key}' holds NaN or infinite values; give a checkpoint of a run that "
                f"did not diverge"
            )
    if checkpoint.get("round_finished") is False or not _round_finished_by_results(path, checkpoint):
        raise UsageError(
            f"--mask '{path}' is from round {checkpoint.get('round')} of a training run that has not finished "
            f"it; finish that run first (rerun its command with --resume --save_dir {Path(path).parent})"
        )
    for key in ("arch", "dataset", "train_subset"):
        saved = checkpoint.get(key)
        if key in checkpoint and saved != getattr(args, key):
            fix = f"pass --{key} {saved}" if saved is not None else f"drop --{key}"
            raise UsageError(
                f"--mask '{path}' was made with --{key} {saved}, not {getattr(args, key)}; "
                f"{fix} or give another checkpoint"
            )
    return state_dict, checkpoint


def _round_finished_by_results(path, checkpoint: dict) -> bool:
    """For a mask file that predates ``round_finished``: its round must be listed in imp_results.json beside it."""
    if "round_finished" in checkpoint or not isinstance(checkpoint.get("round"), int) or "args" not in checkpoint:
        return True  # marked, or not a file of our training rounds (no round to check)
    results = Path(path).parent / "imp_results.json"
    try:
        rounds = json.loads(results.read_text())["rounds"]
        return any(isinstance(r, dict) and r.get("round") == checkpoint["round"] for r in rounds)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def save_round_checkpoint(save_dir, model, optimizer, scheduler, rounds, args, meta: dict) -> None:
    """Everything a killed training run needs to continue bit for bit (``rounds``: a ``pruning_rounds.Rounds``)."""
    position = rounds.position
    atomic_torch_save(
        {
            "args": vars(args),
            "state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "has_rewind_state": rounds.rewind_state is not None,
            "rounds": rounds.results,
            "round": position.k,
            "epoch": position.epoch,
            "best_val": position.best_val,
            "best_epoch": position.best_epoch,
            "best_test": position.best_test,
            "epoch_log": position.log,
            "partial_epoch": position.partial,
            **meta,
        },
        round_checkpoint(save_dir, position.k),
    )


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


def load_round_checkpoint(args, model, identity: dict) -> dict:
    """Read and check everything a resumed run needs, before anything is written; loads its weights into ``model``.

    Returns the checkpoint with ``init_state`` and ``rewind_state`` (the dense weights to rewind to) added.
    """
    path = find_resume_checkpoint(args)
    saved = safe_load(path, "resume checkpoint")
    require_keys(saved, ROUND_CHECKPOINT_KEYS, path, "resume checkpoint")
    require_same_run(saved, identity, path)
    pruner.load_pruned_state(model, saved["state_dict"])
    saved["init_state"] = safe_load(rewind_file(args.save_dir, 0), "initial weights")
    rewind = rewind_file(args.save_dir, args.rewind_epoch)
    saved["rewind_state"] = safe_load(rewind, "rewind weights") if saved["has_rewind_state"] else None
    return saved


def save_rewind_weights(state: dict, save_dir, epoch: int) -> None:
    atomic_torch_save(state, rewind_file(save_dir, epoch))


def load_rewind_file(path, model=None) -> dict:
    """The dense weights of a --rewind_pth file; with ``model``, refuse (naming the tensor) one that does not fit."""
    state = pruner.dense_state(require_state_dict(safe_load(path, "--rewind_pth file"), path, "--rewind_pth file"))
    if model is not None:
        pruner.load_pruned_state(copy.deepcopy(model), state)
    return state


def load_dense_best(save_dir) -> dict:
    """Round 0's best weights, dense: what ``--prune_type pt`` rewinds to."""
    best = safe_load(mask_file(save_dir, 0), "dense best checkpoint")
    return pruner.dense_state(best["state_dict"])


def write_round_results(args, rounds: list, save_dir, identity: dict, device, diverged: dict | None = None) -> None:
    """imp_results.json: the finished rounds (and, when training diverged, where: ``diverged_at``).

    ``finished`` is true only in the record written after the last round: the run's final record.
    """
    made = provenance(device)
    extra = {} if diverged is None else {"diverged": True, "diverged_at": diverged}
    atomic_write_json(
        {
            "finished": diverged is None and len(rounds) == args.pruning_times,
            "identity": identity,
            "rounds": rounds,
            **extra,
            "train_subset": args.train_subset,
            "args": vars(args),
            "command": made["command"],
            "provenance": made,
            "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
        Path(save_dir) / "imp_results.json",
    )


def finished_training(folder) -> dict | None:
    """The identity of the finished training run in ``folder`` (None when there is none, or it is unfinished)."""
    path = Path(folder) / "imp_results.json"
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
        finished, identity = saved.get("finished") is True, saved.get("identity")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as err:
        raise UsageError(
            f"'{path}' is not a results file of a training run ({err}); remove it or use another --save_dir"
        ) from None
    return identity if finished else None
