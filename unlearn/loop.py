"""The loop shared by every iterative method: SGD on one subset with a per-epoch loss."""

from __future__ import annotations

from arg_parser import parse_milestones
from trainer import make_optimizer, make_scheduler, train_epoch


def iterate(model, ctx, subset: str, loss_for_epoch, name: str) -> list[dict]:
    """``--unlearn_epochs`` epochs of SGD(--unlearn_lr, momentum, wd) + MultiStepLR on ``subset``.

    ``loss_for_epoch(epoch)`` returns the ``loss_fn(model, images, labels)`` of that epoch, so
    schedules such as the l1 coefficient live in the method, not here. After every epoch
    ``ctx.on_epoch`` may save progress; ``ctx.resume`` (such saved progress) continues from it.
    """
    args = ctx.args
    optimizer = make_optimizer(model, args.unlearn_lr, args.momentum, args.weight_decay)
    scheduler = make_scheduler(optimizer, parse_milestones(args.decreasing_lr))
    batches = ctx.batches(subset)
    history, start = [], 0
    if ctx.resume is not None:
        optimizer.load_state_dict(ctx.resume["optimizer"])
        scheduler.load_state_dict(ctx.resume["scheduler"])
        history, start = list(ctx.resume["history"]), ctx.resume["epoch"]
        ctx.log(f"{name}: resuming at epoch {start}")
    for epoch in range(start, args.unlearn_epochs):
        batches.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        stats = train_epoch(
            model,
            batches,
            optimizer,
            ctx.runtime,
            loss_for_epoch(epoch),
            epoch=epoch,
            warmup=args.warmup,
            desc=f"{name} epoch {epoch}",
        )
        scheduler.step()
        history.append({"epoch": epoch, "lr": lr, **stats})
        ctx.log(
            f"{name} epoch {epoch}: loss {stats['loss']:.4f} acc {stats['acc']:.2f}% on {subset} "
            f"lr {lr:.4g} ({stats['img_s']:.0f} img/s)"
        )
        if ctx.on_epoch is not None:
            ctx.on_epoch(
                {
                    "epoch": epoch + 1,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "history": history,
                }
            )
    ctx.stats.setdefault("epochs", []).extend(history)
    return history
