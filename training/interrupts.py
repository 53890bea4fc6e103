"""How a run stops early: on a signal (SIGTERM, SIGINT) or because it diverged.

Slurm sends SIGTERM to a job it preempts or that reaches its time limit, and a user presses
Ctrl-C. Instead of dying wherever it is, a run notes the signal; the epoch loop finishes the
batch it is on, saves its progress (mid-epoch) and raises ``Stopped``; the command line then
exits with 128 + the signal number, and ``--resume`` continues bit for bit where it stopped.
Between phases (after training, before evaluation) the run checks for a signal too; a second
signal stops the process at once.
"""

from __future__ import annotations

import contextlib
import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_requested: list[int] = []  # the signal received, if any


class Stopped(Exception):  # noqa: N818  (a state the run is in, not an error)
    """The run stopped on a signal after saving its progress; ``where`` says where it stopped."""

    def __init__(self, signum: int, where: str = ""):
        super().__init__(where)
        self.signum, self.where = signum, where

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class EpochInterrupted(Exception):  # noqa: N818
    """Raised by the epoch loop after the batch it was on: ``steps`` batches of the epoch are done."""

    def __init__(self, signum: int, steps: int, partial: dict):
        super().__init__(f"stopped by signal {signum} after {steps} batches")
        self.signum, self.steps, self.partial = signum, steps, partial


class Diverged(Exception):  # noqa: N818
    """A loss or the weights became non-finite: the run cannot go on with these settings."""

    def __init__(self, what: str, epoch: int | None = None, lr: float | None = None, advice: str = ""):
        self.what, self.epoch, self.lr, self.advice = what, epoch, lr, advice
        super().__init__(str(self))

    def __str__(self) -> str:
        where = "" if self.epoch is None else f" at epoch {self.epoch + 1}"  # counted from 1, as in the logs
        rate = "" if self.lr is None else f" (learning rate {self.lr:g})"
        advice = f"; {self.advice}" if self.advice else ""
        return f"{self.what} diverged{where}{rate}: the loss or the weights are no longer finite{advice}"

    def record(self) -> dict:
        """What a results file says about it (its epoch counted from 0, as every record counts epochs)."""
        return {"what": self.what, "epoch": self.epoch, "lr": self.lr}


def requested() -> int | None:
    """The stop signal received since the handlers were installed, if any."""
    return _requested[0] if _requested else None


def _note(signum, _frame) -> None:
    """First signal: noted, the loops stop at the next batch boundary. A second one: stop at once."""
    if _requested:
        raise SystemExit(128 + signum)
    _requested.append(signum)


def check(where: str) -> None:
    """Between the phases of a run: stop here (raise ``Stopped``) if a stop signal has arrived."""
    signum = requested()
    if signum is not None:
        raise Stopped(signum, where)


@contextlib.contextmanager
def graceful_stop():
    """While inside, SIGTERM and SIGINT are noted for the loops to act on instead of killing the process."""
    previous = {signum: signal.signal(signum, _note) for signum in STOP_SIGNALS}
    _requested.clear()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _requested.clear()
