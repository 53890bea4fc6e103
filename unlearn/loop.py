"""The loop shared by every iterative method: SGD on one subset with a per-epoch loss."""

from __future__ import annotations

import models
from training.interrupts import Diverged, EpochInterrupted, Stopped
from training.trainer import make_optimizer, make_scheduler, train_epoch


def iterate(model, ctx, subset, loss_for_epoch, on_optimizer=None, before_epoch=None, epoch_optimizer=None):
    """``--unlearn_epochs`` epochs of SGD(--unlearn_lr, momentum, wd) + MultiStepLR on ``subset`` (for a model
    registered with another optimiser, e.g. swin_t, that one: ``models.unlearn_optimizer``).

    ``subset`` is 'retain' or 'forget', or any batches object with ``set_epoch``, ``__len__`` and
    ``iterate_from`` (see ``dataset.Batches``) for methods whose epoch is something else.
    ``loss_for_epoch(epoch)`` returns the ``loss_fn(model, images, labels) -> (loss, logits)`` of that
    epoch (the contract: unlearn/context.py), so schedules such as the l1 coefficient live in the
    method, not here. After every epoch ``ctx.progress.save`` keeps the state to continue from;
    ``ctx.progress.resume`` (such a state) continues from it. Logs and errors carry ``ctx.name``.
    ``on_optimizer(optimizer)``, if given, is called once before the first step (e.g. to register
    step hooks that restrict which weights move). ``before_epoch(epoch)``, if given, runs at the start
    of every epoch, but not again when a resumed run continues an epoch stopped mid-way (FT_prune_bi
    prunes there). ``epoch_optimizer(model)``, if given, makes a fresh optimiser at the start of every
    epoch that takes the steps at its own constant rate, instead of the one SGD + MultiStepLR of the
    whole run (retrain_sam).
    """
    args, name, resume = ctx.args, ctx.name, ctx.progress.resume
    optimizer, scheduler, history, start, partial = _start(model, ctx, on_optimizer, epoch_optimizer)
    batches = ctx.batches(subset) if isinstance(subset, str) else subset
    label = subset if isinstance(subset, str) else getattr(subset, "name", "its batches")
    for epoch in range(start, args.unlearn_epochs):
        batches.set_epoch(epoch)
        if before_epoch is not None and partial is None:
            before_epoch(epoch)
        if epoch_optimizer is not None:
            optimizer = _fresh(epoch_optimizer, model, resume["optimizer"] if partial is not None else None)
        lr = optimizer.param_groups[0]["lr"]
        try:
            stats = train_epoch(
                model,
                batches,
                optimizer,
                ctx.runtime,
                loss_for_epoch(epoch),
                epoch=epoch,
                warmup=args.warmup,
                desc=f"{name} epoch {epoch + 1}/{args.unlearn_epochs}",
                resume=partial,
            )
        except EpochInterrupted as stop:
            _save(ctx, epoch, optimizer, scheduler, history, partial=stop.partial)
            where = f"{name} epoch {epoch + 1} after batch {stop.steps} of {len(batches)}"
            raise Stopped(stop.signum, where) from None
        except Diverged as err:
            raise Diverged(name, epoch, lr) from err
        partial = None
        scheduler.step()
        history.append({"epoch": epoch, "lr": lr, **stats})
        ctx.log(
            f"{name} epoch {epoch + 1}: loss {stats['loss']:.4f} acc {stats['acc']:.2f}% on {label} "
            f"lr {lr:.4g} ({stats['img_s']:.0f} img/s)"
        )
        _save(ctx, epoch + 1, optimizer, scheduler, history)
    ctx.stats.setdefault("epochs", []).extend(history)
    return history


def _start(model, ctx, on_optimizer, epoch_optimizer):
    """The run's optimiser and schedule, and (history, first epoch, partial epoch) to continue from."""
    args, resume = ctx.args, ctx.progress.resume
    kind, schedule = models.unlearn_optimizer(getattr(args, "arch", None))  # Adam + cosine for swin_t
    optimizer = make_optimizer(model, args.unlearn_lr, args.momentum, args.weight_decay, kind=kind)
    if epoch_optimizer is None:
        scheduler = make_scheduler(optimizer, ctx.milestones, kind=schedule, epochs=args.unlearn_epochs)
    else:
        scheduler = _Constant()
    if on_optimizer is not None:
        on_optimizer(optimizer)
    if resume is None:
        return optimizer, scheduler, [], 0, None
    if epoch_optimizer is None:
        optimizer.load_state_dict(resume["optimizer"])
    scheduler.load_state_dict(resume["scheduler"])
    start, partial = resume["epoch"], resume.get("partial_epoch")
    at = f"epoch {start + 1}" + (f", after batch {partial['steps']}" if partial else "")  # logs count from 1
    ctx.log(f"{ctx.name}: resuming at {at}")
    return optimizer, scheduler, list(resume["history"]), start, partial


class _Constant:
    """The schedule of a run whose every epoch has a fresh optimiser: nothing to step or keep."""

    def step(self) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _fresh(epoch_optimizer, model, state):
    """A new epoch's optimiser; ``state``: the one of the epoch a signal stopped, to continue it."""
    optimizer = epoch_optimizer(model)
    if state is not None:
        optimizer.load_state_dict(state)
    return optimizer


def _save(ctx, epoch, optimizer, scheduler, history, partial=None) -> None:
    """Progress for ``ctx.progress.save``: the next epoch to run and, when stopped mid-epoch, how far it got."""
    if ctx.progress.save is None:
        return
    state = {"epoch": epoch, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    ctx.progress.save({**state, "history": history, "partial_epoch": partial})


class TwoPasses:
    """One epoch as two subsets' batches in a row, for methods whose epoch is not one subset.

    ``first`` runs only in epochs where ``first_when(epoch)`` holds; ``relabel(epoch, number, labels)``
    may replace the labels of its batch ``number``. ``in_first`` tells a loss which pass the batch just
    handed out belongs to: it is set before each yield, and the loop computes a batch's loss before
    asking for the next one. Resumable mid-epoch like ``dataset.Batches``.
    """

    def __init__(self, first, second, name: str, first_when=None, relabel=None):
        self.first, self.second, self.name = first, second, name
        self.first_when, self.relabel = first_when, relabel
        self.epoch, self.in_first = 0, False

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.first.set_epoch(epoch)
        self.second.set_epoch(epoch)

    def first_steps(self) -> int:
        return len(self.first) if self.first_when is None or self.first_when(self.epoch) else 0

    def __len__(self) -> int:
        return self.first_steps() + len(self.second)

    def iterate_from(self, first_batch: int):
        steps = self.first_steps()
        if first_batch < steps:
            self.in_first = True
            for number, (images, labels) in enumerate(self.first.iterate_from(first_batch), start=first_batch):
                yield images, labels if self.relabel is None else self.relabel(self.epoch, number, labels)
        self.in_first = False
        yield from self.second.iterate_from(max(0, first_batch - steps))
