"""Review LB: the console line that ends a θ-phase or retraining epoch gives the loss the epoch's metrics.jsonl line
gives: the mean over the steps the epoch has done, not the loss sum over the loader's length. They differ after a
resume with more processes (torchrun: data.batch_size is per process, so an epoch has fewer steps) inside an epoch
whose steps done already outnumber the new epoch's (:func:`automl.pipeline.loop.run_epochs` logs its metrics line
over the steps done)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from automl.pipeline.final_stages import RetrainTask
from automl.pipeline.loop import run_epochs
from automl.pipeline.search_stages import ThetaTask
from automl.recipe import RetrainConfig
from automl.train.distributed import DistInfo

torch.set_num_threads(1)


class _Loader:
    """``steps`` batches an epoch, each a function of (epoch, index): another process count, another length."""

    def __init__(self, steps: int, make):
        self.steps, self.make = steps, make

    def __len__(self):
        return self.steps

    def epoch(self, epoch, start=0):
        return (self.make(epoch, i) for i in range(start, self.steps))

    def with_batch_size(self, batch_size):
        return self

    def with_seed(self, seed):
        return self

    def with_resolution(self, size):
        return self


class _Bar:
    def __enter__(self):
        return lambda *a, **k: None

    def __exit__(self, *exc):
        return False


class _Method:
    """A searcher method's hooks that ThetaTask reads (no non-finite losses, no extra fields)."""

    def nonfinite(self, searcher):
        return 0

    def log_fields(self, searcher):
        return {}

    def epoch_note(self, searcher):
        return ""


def _ctx(loader, stop_at: int | None = None):
    """A run context around ``loader`` that records the metrics lines, the console lines and, with ``stop_at``,
    the running sums a checkpoint after step ``stop_at`` of the first epoch holds."""
    ctx = SimpleNamespace(logged=[], console=[], checkpoint=None, device=torch.device("cpu"), info=DistInfo(),
                          log_every=3, data=SimpleNamespace(theta=loader, full=loader))

    def step_done(idx, epoch, step, steps, inner):
        if epoch == 0 and step == stop_at:
            ctx.checkpoint = {k: v.clone() if torch.is_tensor(v) else v for k, v in inner()["sums"].items()}

    ctx.reporter = SimpleNamespace(log=lambda **f: ctx.logged.append(f), info=ctx.console.append,
                                   epoch=lambda *a, **k: _Bar())
    ctx.keeper = SimpleNamespace(step_done=step_done, save=lambda *a: None)
    return ctx


def _theta_batch(epoch, i):
    v = 1.0 + 0.37 * i + 0.5 * epoch
    return torch.tensor([v, v + 0.25]), None


def _retrain_batch(epoch, i):
    g = torch.Generator().manual_seed(epoch * 100 + i)
    return torch.randn(4, 3, 2, 2, generator=g), torch.randint(0, 2, (4,), generator=g)


def _theta_task(ctx):
    theta = lambda x, y: x  # noqa: E731  (the batch's path losses)
    theta.searcher = None
    return ThetaTask(ctx, "theta", 2, _Method(), theta)


def _retrain_task(ctx):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    return RetrainTask(ctx, "retrain", model, RetrainConfig(epochs=2, grad_clip=None, lr=0.01))


def _check(make_task, make_batch, before: int, after: int, done: int):
    """A run on ``before`` steps an epoch, checkpointed after step ``done`` of its first epoch and resumed there on
    ``after`` steps an epoch: each epoch's console loss is its last metrics line's."""
    first = _ctx(_Loader(before, make_batch), stop_at=done)
    run_epochs(first, 0, make_task(first))
    assert first.checkpoint is not None
    ctx = _ctx(_Loader(after, make_batch))
    run_epochs(ctx, 0, make_task(ctx), 0, done, first.checkpoint)
    for epoch in (1, 2):
        logged = [f for f in ctx.logged if f["epoch"] == epoch][-1]["loss"]
        line = next(s for s in ctx.console if s.startswith(("theta", "retrain")) and f"epoch {epoch}/2" in s)
        assert re.search(r"loss (\S+)", line)[1] == f"{logged:.4f}", (line, logged)


# (steps an epoch before, after the resume, steps done at the checkpoint): more processes with the steps done
# past the new epoch's end, at it, within it; as many processes; fewer processes
CASES = [(11, 5, 9), (11, 5, 5), (11, 5, 4), (11, 11, 6), (5, 11, 3)]


@pytest.mark.parametrize("before,after,done", CASES)
def test_theta_epoch_line_gives_the_metrics_loss(before, after, done):
    _check(_theta_task, _theta_batch, before, after, done)


@pytest.mark.parametrize("before,after,done", CASES)
def test_retrain_epoch_line_gives_the_metrics_loss(before, after, done):
    _check(_retrain_task, _retrain_batch, before, after, done)
