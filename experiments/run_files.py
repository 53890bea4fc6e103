"""What every kind of run shares on disk: locks, the same-run check, the output folder's checks.

The files a run leaves in --save_dir (each kind's own module writes and reads them:
training_files.py, unlearning_files.py, backdoor_files.py):

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
  M_saliency_mask.pth.tar     SalUn only: its weight-saliency mask (returned by unlearn/salun.py)
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
import fcntl
import json
import os
import socket
from pathlib import Path

from experiments import run_identity
from utils import (
    UsageError,
    atomic_write_json,
    atomic_write_text,
    provenance,
)


def require_same_run(saved: dict, identity: dict, path, fix: str = "use the same arguments or another --save_dir"):
    """Refuse a resumed or reused file unless it records this run's identity (run_identity.py)."""
    if not isinstance(saved, dict):
        raise UsageError(f"'{path}' is not a checkpoint dict written by these scripts; {fix}")
    run_identity.require_same(saved.get("identity"), identity, path, fix)


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


def write_epoch_lines(path, records: list[dict]) -> None:
    """Per-epoch numbers as JSON lines (one object per epoch), rewritten whole after every epoch."""
    atomic_write_text("".join(json.dumps(record) + "\n" for record in records), path)


def save_args(args, save_dir, name="args.json") -> None:
    atomic_write_json(vars(args), Path(save_dir) / name)


def command_and_provenance(model) -> dict:
    made = provenance(next(model.parameters()).device)
    return {"command": made["command"], "provenance": made}


def read_json_record(path, what: str) -> dict:
    """A JSON result record read back (a dict), or one line saying what is wrong with it."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise UsageError(f"{what} '{path}' cannot be read ({err}); remove it or use another --save_dir") from None
    if not isinstance(record, dict):
        raise UsageError(f"{what} '{path}' is not a JSON object; remove it or use another --save_dir")
    return record


def refuse_to_overwrite(save_dir, patterns, resume: bool) -> None:
    """Never overwrite a run already in ``save_dir`` by accident: continue it with --resume or use another folder.

    ``patterns`` are glob patterns of the files this script's run leaves there (e.g. ``[0-9]*checkpoint.pth.tar``).
    """
    if resume:
        return
    for pattern in patterns:
        found = sorted(Path(save_dir).glob(pattern))
        if found:
            raise UsageError(
                f"--save_dir '{save_dir}' already holds a run of this command ({found[0].name}); add --resume to "
                f"continue or reuse it, or choose another --save_dir (delete the old one to start over)"
            )


def check_save_dir(path, flag: str = "--save_dir") -> Path:
    """Create ``path`` (given by ``flag``) if needed and make sure we can write there, before any work starts."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"{flag} '{path}' cannot be created ({err.strerror}); choose a writable folder") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} '{path}' is not writable; choose a writable folder")
    return path
