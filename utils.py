"""Small shared helpers: errors, seeding, device choice, safe checkpoint I/O, atomic writes."""

from __future__ import annotations

import json
import os
import pickle
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch


class UsageError(ValueError):
    """Bad input from the user: the CLI prints its message as one line and exits with status 2."""


RESUMABLE = ("--save_dir", "progress saved: rerun the same command with --resume to continue")


def run_cli(main, argv=None, how=RESUMABLE) -> None:
    """Run ``main(argv)`` with graceful stops; every way a run can end is one line and an exit status.

    0 done; 2 bad input or an I/O problem (nothing already on disk damaged); 3 the run diverged
    (its results are written, marked so); 128 + n stopped by signal n after saving its progress.
    ``how``: (the script's output flag, what to do after a stop), for scripts without --save_dir/--resume.
    """

    from training import interrupts  # imported here: utils is imported by every module, interrupts by few

    output_flag, after_stop = how
    try:
        with interrupts.graceful_stop():
            main(argv)
    except UsageError as err:
        _fail(f"error: {err}", 2)
    except OSError as err:
        _fail(f"error: {describe_os_error(err, output_flag, resumable=how == RESUMABLE)}", 2)
    except interrupts.Diverged as err:
        _fail(f"error: {err}", 3)
    except interrupts.Stopped as err:
        _fail(f"stopped by {signal_name(err.signum)} during {err.where}; {after_stop}", err.exit_status)


def one_line(text: str) -> str:
    """``text`` with its control characters escaped (a path holding a newline must not break the one line)."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def _fail(line: str, status: int) -> None:
    print(one_line(line), file=sys.stderr, flush=True)
    sys.exit(status)


def signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def describe_os_error(err: OSError, output_flag: str = "--save_dir", resumable: bool = True) -> str:
    """One line for a failed read or write: the file, what the system said, and what to do."""
    import errno

    where = f"'{err.filename}'" if err.filename else "a file"
    if err.errno:
        reason = err.strerror or os.strerror(err.errno)
    else:
        reason = str(err)
    other = f"(or choose another {output_flag})"
    advice = {
        errno.ENOSPC: f"free some space {other}",
        errno.EDQUOT: f"free some of your quota {other}",
        errno.EROFS: f"choose a writable {output_flag}",
        errno.EACCES: f"fix the folder's permissions {other}",
        errno.EPERM: f"fix the folder's permissions {other}",
    }.get(err.errno, "fix the problem")
    rerun = "rerun the same command (add --resume to continue)" if resumable else "rerun the same command"
    return f"cannot write or read {where}: {reason}; {advice}, then {rerun}"


_LOG = {"lines": [], "file": None}  # lines printed since the run began; the run's log.txt once it has one


def log(line: str) -> None:
    """The scripts' progress lines: printed at once, so a log file or a pipe shows them while the run goes on,
    and kept in the run's ``log.txt`` (``keep_log``)."""
    print(line, flush=True)
    if _LOG["file"] is not None:
        _LOG["file"].write(line + "\n")
        _LOG["file"].flush()
    else:
        _LOG["lines"].append(line)


def begin_log() -> None:
    """A new run in this process: forget the lines of an earlier one and close its log.txt."""
    if _LOG["file"] is not None:
        _LOG["file"].close()
    _LOG.update(lines=[], file=None)


def keep_log(save_dir) -> None:
    """From now on ``log`` lines also go to ``{save_dir}/log.txt``, after those printed so far; unless the
    standard output is that file already (scripts/sweep.py and main_audit.py send a run's output there)."""
    path = Path(save_dir) / "log.txt"
    try:
        same = path.exists() and os.path.samestat(os.fstat(sys.stdout.fileno()), path.stat())
    except (OSError, ValueError, AttributeError):  # a captured or closed stdout has no file behind it
        same = False
    earlier = _LOG["lines"]
    begin_log()
    if not same:
        _LOG["file"] = open(path, "a")  # noqa: SIM115  (open for the run's lifetime; a log is appended)
        _LOG["file"].write("".join(line + "\n" for line in earlier))
        _LOG["file"].flush()


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
_STARTED = time.time()  # this process's start, as close as the first import of utils
PROVENANCE_PACKAGES = ("torch", "torchvision", "numpy", "scikit-learn", "scipy", "optuna")


def provenance(device=None) -> dict:
    """Where, when and with what a result was made; every result file records it.

    The git commit and whether the checkout had uncommitted changes (None outside a checkout), the
    Python and package versions, the resolved device and its name (a CPU's model), threads, the CPU's vector
    instruction set (its kernels, and so its low bits, depend on it), host, start and end time (UTC), and
    the command shell-quoted with its interpreter.
    """
    import platform
    import shlex
    import socket
    from importlib import metadata

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    device = torch.device(device) if device is not None else None
    name = torch.cuda.get_device_name(device) if device is not None and device.type == "cuda" else _cpu_model()
    return {
        **_git_state(),
        "python": platform.python_version(),
        "packages": {package: version(package) for package in PROVENANCE_PACKAGES},
        "device": str(device) if device is not None else None,
        "device_name": name or platform.machine(),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the vector instructions CPU kernels use
        "host": socket.gethostname(),
        "started_utc": _utc(_STARTED),
        "finished_utc": _utc(time.time()),
        "command": shlex.join([sys.executable, *sys.argv]),
    }


def _cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo's, where platform.processor() is empty)."""
    import platform

    try:
        with open("/proc/cpuinfo") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor()


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _git_state() -> dict:
    """{"git_commit", "git_dirty"} of the checkout this code runs from (None, None when it is not one)."""
    import subprocess

    repo = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {"git_commit": None, "git_dirty": None}
        status = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit.stdout.strip(), "git_dirty": bool(status.stdout.strip())}


def _atomic_write(path, write) -> None:
    """Write through ``write(file_object)`` into a temp file beside ``path``, then rename it in place.

    A killed process leaves the old file or the new one, never a truncated one. (No fsync: that
    guards against power loss too, but costs seconds per checkpoint on slow disks.)
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        cause = _os_error_in(err)
        if cause is not None:  # torch's serializer wraps a failed write in a RuntimeError: report the cause
            raise OSError(cause.errno, cause.strerror, str(path)) from None
        raise


def _os_error_in(err: BaseException) -> OSError | None:
    """The OSError that ``err`` is or was caused by (torch.save re-raises write errors as RuntimeError)."""
    seen = 0
    while err is not None and seen < 5:
        if isinstance(err, OSError):
            return err
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


def atomic_torch_save(obj, path) -> None:
    _atomic_write(path, lambda handle: torch.save(obj, handle))


def atomic_write_json(obj, path) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    _atomic_write(path, lambda handle: handle.write(text.encode()))


def atomic_write_bytes(data: bytes, path) -> None:
    _atomic_write(path, lambda handle: handle.write(data))


def save_figure(figure, path, dpi: int = 100) -> Path:
    """A matplotlib figure laid out, closed and written as a PNG like every other file (atomically): never
    half a PNG."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        figure.tight_layout()
        figure.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(figure)
    atomic_write_bytes(buffer.getvalue(), path)
    return Path(path)


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


def _torch_load_reason(err: BaseException) -> str:
    """The part of torch's long, multi-line load error that says what it found (never its advice)."""
    lines = [line.split("WeightsUnpickler error:")[-1].strip() for line in str(err).splitlines()]
    found = [line for line in lines if "unsupported" in line.lower()]
    if found:  # e.g. "Unsupported global: GLOBAL io.open was not an allowed global by default"
        return found[0].split(". Please use")[0].rstrip(".")
    advice = ("Weights only load failed", "Please file an issue", "Check the documentation", "(")
    useful = [line for line in lines if line and not line.startswith(advice)]
    return useful[0] if useful else type(err).__name__


def safe_load(path, what: str = "checkpoint"):
    """Load a torch file with ``weights_only=True``; anything else is refused with a UsageError."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} '{path}' does not exist or is not a file; check the path")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about the pickle protocol of foreign files
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UsageError(
            f"{what} '{path}' was refused: it is not a checkpoint of tensors and plain data "
            f"({_torch_load_reason(err)}); nothing in it was run; give a file written by these scripts"
        ) from None
    except Exception as err:  # whatever torch trips over in a damaged file: a bad file, not a bug
        raise UsageError(
            f"{what} '{path}' is not a readable torch checkpoint (truncated or corrupt? {_torch_load_reason(err)}); "
            f"give an intact copy of the file"
        ) from None


def require_keys(saved, keys, path, what: str = "checkpoint") -> None:
    """Refuse a loaded file that is not the dict these scripts write (it lacks one of ``keys``)."""
    if not isinstance(saved, dict):
        raise UsageError(f"{what} '{path}' holds a {type(saved).__name__}, not a checkpoint dict; give another file")
    missing = [key for key in keys if key not in saved]
    if missing:
        raise UsageError(f"{what} '{path}' lacks '{missing[0]}'; it was not written by this script, give another file")


def require_state_dict(saved, path, what: str = "checkpoint") -> dict:
    """The state dict in a loaded file (its 'state_dict' entry, or the file itself): a non-empty dict of tensors."""
    require_keys(saved, (), path, what)
    state_dict = saved.get("state_dict", saved)
    if not isinstance(state_dict, dict) or not state_dict:
        raise UsageError(f"{what} '{path}' holds no state_dict; give a checkpoint written by these scripts")
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise UsageError(f"{what} '{path}': '{key}' is a {type(value).__name__}, not a tensor; give another file")
    return state_dict
