"""Small shared helpers: errors, seeding, device choice, safe checkpoint I/O, atomic writes."""

from __future__ import annotations

import json
import os
import pickle
import random
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch


class UsageError(ValueError):
    """Bad input from the user: the CLI prints its message as one line and exits with status 2."""


def run_cli(main, argv=None) -> None:
    """Run ``main(argv)``; turn a UsageError into one line on stderr and exit status 2."""
    try:
        main(argv)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str = "auto", gpu: int | None = None) -> torch.device:
    """``auto`` picks ``cuda:{gpu}`` when a GPU is there, else the CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device(f"cuda:{gpu or 0}")
        return torch.device("cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device} was asked for but no CUDA GPU is available; use --device cpu or auto")
        index = device.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise UsageError(f"--device {device}: no such GPU (found {torch.cuda.device_count()}); use cuda:0..")
        return torch.device(device if index else f"cuda:{gpu or 0}")
    raise UsageError(f"unknown --device '{device}'; choose auto, cpu, cuda or cuda:N")


_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic_write(path, write) -> None:
    """Write through ``write(file_object)`` into a temp file beside ``path``, then rename it in place.

    A killed process leaves the old file or the new one, never a truncated one. (No fsync: that
    guards against power loss too, but costs seconds per checkpoint on slow disks.)
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj, path) -> None:
    _atomic_write(path, lambda handle: torch.save(obj, handle))


def atomic_write_json(obj, path) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    _atomic_write(path, lambda handle: handle.write(text.encode()))


def atomic_write_text(text: str, path) -> None:
    _atomic_write(path, lambda handle: handle.write(text.encode()))


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def safe_load(path, what: str = "checkpoint"):
    """Load a torch file with ``weights_only=True``; anything else is refused with a UsageError."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} '{path}' does not exist; check the path")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(
            f"{what} '{path}' holds something other than tensors and plain data and was not loaded "
            f"({first}); only load files written by these scripts"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(
            f"{what} '{path}' is not a readable torch checkpoint (truncated or corrupt?): {first}"
        ) from None
