"""Every file a run leaves in --save_dir: its name, what it holds, writing it and reading it back.

Training rounds (main_imp.py, main_synflow.py, main_backdoor.py's ``poisoned/`` folder), round k:
  {k}model_SA_best.pth.tar    the mask file: round k's best-validation weights with their masks
  {k}checkpoint.pth.tar       round k's resumable state, rewritten after every epoch
  epoch_{e}_rewind_weight.pt  dense weights to rewind to (e = 0: the initialisation)
  imp_results.json, args.json the per-round results; the resolved arguments
Unlearning (main_forget.py), for method M:
  M_progress.pth.tar          state after each unlearning epoch; removed when the run is finished
  Mcheckpoint.pth.tar         the finished run: weights, evaluation, RTE
  M_eval.json                 the results
  M_outputs.npz               with --save_outputs: per-example logits of D_f and a fixed test sample
  M_saliency_mask.pth.tar     SalUn only: its weight-saliency mask (written by unlearn/salun.py)
Backdoor cleanse (main_backdoor.py): M_backdoor_progress.pth.tar, M_backdoor_model.pth.tar, M_backdoor.json.
Every run holds a lock file, .imp.lock / .M.lock / .backdoor_M.lock, while it runs (``run_lock``).

Torch files are plain dicts of tensors and plain data, read back with ``weights_only=True``; every
write is atomic (a killed run leaves the old file or the new one). A resumed or reused run must
record the same run identity as the saved one (``require_same_run``, run_identity.py), and a run is
finished only when its final record (imp_results.json with ``finished``, M_eval.json, M_backdoor.json)
exists; a mask file counts only once its round is finished (``round_finished``).
See docs/design.md for the formats in full.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import torch

import pruner
import run_identity
from utils import (
    UsageError,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    provenance,
    require_keys,
    require_state_dict,
    safe_load,
)

# ----------------------------------------------------------------------------- the same-experiment check


def require_same_run(saved: dict, identity: dict, path, fix: str = "use the same arguments or another --save_dir"):
    """Refuse a resumed or reused file unless it records this run's identity (run_identity.py)."""
    if not isinstance(saved, dict):
        raise UsageError(f"'{path}' is not a checkpoint dict written by these scripts; {fix}")
    run_identity.require_same(saved.get("identity"), identity, path, fix)


# ----------------------------------------------------------------------------- one writer per run


@contextlib.contextmanager
def run_lock(save_dir, name: str, check=None):
    """Hold ``{save_dir}/.{name}.lock`` (an exclusive ``flock``) for the run's lifetime.

    A second identical command on the same folder (a resubmitted array task, a double Enter) is
    refused at once, naming the process that holds the lock. The kernel releases a flock when its
    holder dies, so a lock file left by a killed run is no obstacle. ``check`` runs once the lock is
    held, before anything else (the "already holds a run" test). The file is removed when the run
    ends, while still locked; a process that opened it just before then sees that the path no
    longer names the file it locked, and starts over.
    """
    path = Path(save_dir) / f".{name}.lock"
    handle = _locked_file(path, save_dir)
    try:
        if check is not None:
            check()
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield path
    finally:
        path.unlink(missing_ok=True)
        handle.close()


class FolderLock:
    """``run_lock`` taken as early as it can be: at once when ``save_dir`` exists already (a sweep or audit
    made it, so ``--status`` sees a run that is still loading its data as running), else by ``hold()`` once
    every input is checked and the folder is created."""

    def __init__(self, save_dir, name: str, check=None):
        self.args, self._held = (save_dir, name, check), None

    def __enter__(self):
        if Path(self.args[0]).is_dir():
            self.hold()
        return self

    def hold(self) -> None:
        if self._held is None:
            self._held = run_lock(*self.args)
            self._held.__enter__()

    def __exit__(self, *exc):
        return self._held.__exit__(*exc) if self._held is not None else False


def _locked_file(path: Path, save_dir):
    """``path`` opened and exclusively flocked, and still the file that ``path`` names."""
    while True:
        handle = open(path, "a+")  # noqa: SIM115  (held open for the whole run)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UsageError(
                f"--save_dir '{save_dir}' is in use: {holder} is running this command there now; wait for it "
                f"to finish (then add --resume to reuse its result) or choose another --save_dir"
            ) from None
        try:
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                return handle
        except FileNotFoundError:
            pass
        handle.close()  # the holder removed it as we opened it: try again with the new file


# ----------------------------------------------------------------------------- training rounds

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


def write_epoch_lines(path, records: list[dict]) -> None:
    """Per-epoch numbers as JSON lines (one object per epoch), rewritten whole after every epoch."""
    atomic_write_text("".join(json.dumps(record) + "\n" for record in records), path)


def save_args(args, save_dir, name="args.json") -> None:
    atomic_write_json(vars(args), Path(save_dir) / name)


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


def _command_and_provenance(model) -> dict:
    made = provenance(next(model.parameters()).device)
    return {"command": made["command"], "provenance": made}


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


# ----------------------------------------------------------------------------- unlearning

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


def unlearning_files(save_dir, method: str) -> dict[str, Path]:
    """main_forget.py's files for ``method``: finished checkpoint, progress, results, per-example outputs."""
    save_dir = Path(save_dir)
    return {
        "checkpoint": save_dir / f"{method}checkpoint.pth.tar",
        "progress": save_dir / f"{method}_progress.pth.tar",
        "results": save_dir / f"{method}_eval.json",
        "outputs": save_dir / f"{method}_outputs.npz",
        "epochs": save_dir / f"{method}_epochs.jsonl",
    }


def backdoor_files(save_dir, method: str) -> dict[str, Path]:
    """main_backdoor.py's files for ``method``: unlearned model, progress, results."""
    save_dir = Path(save_dir)
    return {
        "model": save_dir / f"{method}_backdoor_model.pth.tar",
        "progress": save_dir / f"{method}_backdoor_progress.pth.tar",
        "results": save_dir / f"{method}_backdoor.json",
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


def read_json_record(path, what: str) -> dict:
    """A JSON result record read back (a dict), or one line saying what is wrong with it."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise UsageError(f"{what} '{path}' cannot be read ({err}); remove it or use another --save_dir") from None
    if not isinstance(record, dict):
        raise UsageError(f"{what} '{path}' is not a JSON object; remove it or use another --save_dir")
    return record


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
    path = unlearning_files(save_dir, method)["results"]
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
        "SVC_MIA_forget_efficacy": evaluation["SVC_MIA_forget_efficacy"],
        "SVC_MIA_training_privacy": evaluation["SVC_MIA_training_privacy"],
        "unlearn_stats": stats,
        **_command_and_provenance(model),
        "args": vars(args),
    }
    if stats.get("diverged"):
        results.update(diverged=True, diverged_at=stats["diverged"])
    atomic_write_json(results, path)
    return results


# ----------------------------------------------------------------------------- backdoor cleanse

POISON_RECORD_FLAGS = {
    "target_class": "--class_to_replace",
    "trigger_size": "--trigger_size",
    "trigger_value": "--trigger_value",
    "split_seed": "--split_seed",
    "train_subset": "--train_subset",
}


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


def check_poison_record(checkpoint: dict, record: dict, path, fix: str) -> None:
    """Refuse a checkpoint poisoned with another trigger, target or set of samples than ``record``."""
    saved = checkpoint.get("backdoor")
    if not isinstance(saved, dict):
        raise UsageError(
            f"'{path}' holds no backdoor record (it was not trained by main_backdoor.py); give a "
            f"{{k}}model_SA_best.pth.tar from a main_backdoor.py run's poisoned/ folder, or drop --mask"
        )
    for key, flag in POISON_RECORD_FLAGS.items():
        if saved.get(key) != record[key]:
            raise UsageError(f"'{path}' was poisoned with {flag} {saved.get(key)}, not {record[key]}; {fix}")
    if saved.get("poisoned_indices") != record["poisoned_indices"]:
        raise UsageError(
            f"'{path}' was poisoned at other training samples ({len(saved.get('poisoned_indices') or [])} of them); "
            f"give the --num_indexes_to_replace and --seed it was made with, or {fix}"
        )


def backdoor_results(args, method, data, path, model, poisoned, before: dict, after: dict, rte_min, stats) -> dict:
    """The record of ``M_backdoor.json`` (``before``/``after``: SA, ASR, ... of θ_o and θ_u)."""
    return {
        "method": args.unlearn,
        "paper_name": method.paper_name,
        "dataset": data.name,
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
        **_command_and_provenance(model),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "args": vars(args),
        **({"diverged": True, "diverged_at": stats["diverged"]} if stats.get("diverged") else {}),
    }


def save_backdoor_outputs(files: dict, model, results: dict, record: dict, args, meta: dict) -> None:
    """The unlearned model (with the poisoning record, so it can serve as --mask too), then the JSON."""
    atomic_torch_save(
        {
            "state_dict": model.state_dict(),
            "results": {key: value for key, value in results.items() if key != "unlearn_stats"},
            "args": vars(args),
            **meta,
            "backdoor": record,
        },
        files["model"],
    )
    atomic_write_json(results, files["results"])
