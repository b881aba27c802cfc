"""The one epoch loop of every training stage (weights, θ, simultaneous, retraining, ranking).

A stage describes one epoch's work as an :class:`EpochTask`; :func:`run_epochs` runs its epochs from where
the run stands (inside an epoch too), logs every ``search.log_every`` steps, checkpoints inside an epoch
when asked (``checkpoint.every_*``, a signal) and after every epoch but the last, where the stage's own end
checkpoint follows with nothing long between (the weight and θ phases: a copy of the weights, the searcher's
answer). A stage with long work after its last epoch (a retraining's test evaluation, export and measurements:
:attr:`EpochTask.work_after`) is checkpointed after its last epoch too: a kill during that work resumes at it
(``epoch`` = ``epochs``: no training left), not at the last epoch's start.
"""

from __future__ import annotations

import abc
from typing import Any, Iterator

from automl.pipeline.context import RunContext

__all__ = ["EpochTask", "run_epochs", "updates_done", "schedule_at"]


class EpochTask(abc.ABC):
    """One stage's training, one step at a time. ``loader`` gives the epoch's batches."""

    phase: str      # how logs name it: "weights", "theta eps=0.3", "retrain budget=150k"
    epochs: int
    loader: Any
    # the stage has long work after its last epoch (a retraining's evaluation and export): checkpoint after it too
    work_after: bool = False

    def batches(self, epoch: int, done: int) -> Iterator:
        """The epoch's batches, less the ``done`` already used (a resumed epoch)."""
        return self.loader.epoch(epoch, done)

    @abc.abstractmethod
    def begin_epoch(self, epoch: int, done: int, sums: dict | None) -> None:
        """Zero the epoch's running sums, or restore ``sums`` from a checkpoint written inside it."""

    @abc.abstractmethod
    def step(self, epoch: int, step: int, batch) -> None:
        """One training step on ``batch`` (step is 0-based)."""

    @abc.abstractmethod
    def progress(self, epoch: int, steps: int) -> dict[str, Any]:
        """The fields logged after ``steps`` steps ("loss", "accuracy", ...): reads the device once."""

    @abc.abstractmethod
    def end_epoch(self, epoch: int) -> None:
        """The epoch's summary line."""

    @abc.abstractmethod
    def objects(self) -> dict[str, Any]:
        """What a checkpoint of this stage holds (objects with ``state_dict()`` and plain values)."""

    @abc.abstractmethod
    def sums(self) -> dict[str, Any]:
        """The epoch's running sums, for a checkpoint inside it."""


def updates_done(epoch: int, step: int, steps: int) -> int:
    """The updates a task that steps once per batch (:func:`run_epochs`) has made at ``step`` of ``epoch``, with
    ``steps`` batches an epoch: where its learning-rate schedule (a function of the update count, set for
    ``steps`` an epoch) stands there. It equals the count a checkpoint records when the epoch's length is the one it
    ran with; a ``--resume`` with another number of processes (torchrun: data.batch_size is per process) changes
    the length, and the recorded count would put the schedule elsewhere than the epochs are."""
    return epoch * steps + min(step, steps)


def schedule_at(sched, opt, updates: int) -> float:
    """Set ``sched`` (stepped once per update, :func:`automl.train.loops.create_scheduler`) where ``updates``
    updates leave it, for the next step, and return the rate the last of them used: what a task that resumes
    there logs as ``lr`` until it steps again (an epoch that the steps already done have ended logs no step
    of its own). Before any update, the rate the first will use."""
    last = None
    if updates > 0:
        sched.step_update(updates - 1)
        last = opt.param_groups[0]["lr"]
    sched.step_update(updates)
    return opt.param_groups[0]["lr"] if last is None else last


def run_epochs(ctx: RunContext, idx: int, task: EpochTask, start_epoch: int = 0, done: int = 0,
               sums: dict | None = None) -> None:
    """Run ``task``'s epochs from ``start_epoch`` (``done`` steps of it already done, with running ``sums``);
    none when ``start_epoch`` is ``task.epochs`` (a checkpoint after the last epoch of a task with
    :attr:`~EpochTask.work_after`: its objects restored, the stage goes on with the work after its training)."""
    every, keeper, reporter = ctx.log_every, ctx.keeper, ctx.reporter
    for epoch in range(start_epoch, task.epochs):
        task.begin_epoch(epoch, done, sums)
        steps = len(task.loader)
        with reporter.epoch(task.phase, epoch, task.epochs, steps, done) as update:
            for step, batch in enumerate(task.batches(epoch, done), start=done):
                task.step(epoch, step, batch)
                if (step + 1) % every == 0 or step + 1 == steps:
                    fields = task.progress(epoch, step + 1)
                    update(step + 1, loss=fields.get("loss"), acc=fields.get("accuracy"))
                    reporter.log(phase=task.phase, epoch=epoch + 1, step=step + 1, **fields)
                keeper.step_done(idx, epoch, step + 1, steps, lambda: {**task.objects(), "sums": task.sums()})
            if done and done >= steps:
                # resumed with more processes (shorter epochs): the steps done already end the epoch, and no step
                # is left to log its line; it is logged here, over the steps done
                fields = task.progress(epoch, done)
                update(steps, loss=fields.get("loss"), acc=fields.get("accuracy"))
                reporter.log(phase=task.phase, epoch=epoch + 1, step=done, **fields)
        done, sums = 0, None
        task.end_epoch(epoch)
        if epoch + 1 < task.epochs or task.work_after:
            keeper.save(idx, epoch + 1, 0, task.objects())
