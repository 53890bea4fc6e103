"""The loop shared by every iterative method: SGD on one subset with a per-epoch loss."""

from __future__ import annotations

from training.interrupts import Diverged, EpochInterrupted, Stopped
from training.trainer import make_optimizer, make_scheduler, train_epoch


def iterate(model, ctx, subset, loss_for_epoch, on_optimizer=None) -> list[dict]:
    """``--unlearn_epochs`` epochs of SGD(--unlearn_lr, momentum, wd) + MultiStepLR on ``subset``.

    ``subset`` is 'retain' or 'forget', or any batches object with ``set_epoch``, ``__len__`` and
    ``iterate_from`` (see ``dataset.Batches``) for methods whose epoch is something else.
    ``loss_for_epoch(epoch)`` returns the ``loss_fn(model, images, labels) -> (loss, logits)`` of that
    epoch (the contract: unlearn/context.py), so schedules such as the l1 coefficient live in the
    method, not here. After every epoch ``ctx.progress.save`` keeps the state to continue from;
    ``ctx.progress.resume`` (such a state) continues from it. Logs and errors carry ``ctx.name``.
    ``on_optimizer(optimizer)``, if given, is called once before the first step (e.g. to register
    step hooks that restrict which weights move).
    """
    args, name, resume = ctx.args, ctx.name, ctx.progress.resume
    optimizer = make_optimizer(model, args.unlearn_lr, args.momentum, args.weight_decay)
    scheduler = make_scheduler(optimizer, ctx.milestones)
    if on_optimizer is not None:
        on_optimizer(optimizer)
    batches = ctx.batches(subset) if isinstance(subset, str) else subset
    label = subset if isinstance(subset, str) else getattr(subset, "name", "its batches")
    history, start, partial = [], 0, None
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        history, start = list(resume["history"]), resume["epoch"]
        partial = resume.get("partial_epoch")
        at = f"epoch {start + 1}" + (f", after batch {partial['steps']}" if partial else "")  # logs count from 1
        ctx.log(f"{name}: resuming at {at}")
    for epoch in range(start, args.unlearn_epochs):
        batches.set_epoch(epoch)
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
