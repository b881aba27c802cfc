"""Review KL: a run resumed with more processes (torchrun: data.batch_size is per process, so an epoch has fewer
steps) inside an epoch whose steps already done are as many as the new epoch has: the batch loop has nothing left,
and the epoch's metrics line is still logged, as an epoch end logs it, over the steps done; a task resumed there
logs the rate of the schedule's last update (:func:`automl.pipeline.loop.schedule_at`), not the initial one."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from automl.pipeline.loop import EpochTask, run_epochs, schedule_at
from automl.train import loops


class _Loader:
    def __init__(self, steps: int):
        self.steps = steps

    def __len__(self):
        return self.steps

    def epoch(self, epoch, done):
        return iter(range(done, self.steps))


class _Task(EpochTask):
    """Each step adds 1.0 to the loss sum; ``lr`` as a task with a schedule gives it."""

    phase = "weights"

    def __init__(self, epochs: int, steps: int):
        self.epochs, self.loader, self.lr = epochs, _Loader(steps), 0.3
        self.loss_sum, self.ended = 0.0, []

    def begin_epoch(self, epoch, done, sums):
        self.loss_sum = 0.0 if sums is None else sums["loss"]

    def step(self, epoch, step, batch):
        self.loss_sum += 1.0

    def progress(self, epoch, steps):
        return {"loss": self.loss_sum / steps, "lr": self.lr}

    def end_epoch(self, epoch):
        self.ended.append(epoch)

    def objects(self):
        return {}

    def sums(self):
        return {"loss": self.loss_sum}


def _run(task: _Task, start_epoch=0, done=0, sums=None, every=100):
    logged, saved = [], []
    reporter = SimpleNamespace(log=lambda **f: logged.append(f), epoch=lambda *a, **k: _Bar())
    keeper = SimpleNamespace(step_done=lambda *a: None, save=lambda idx, epoch, step, objs: saved.append(epoch))
    run_epochs(SimpleNamespace(log_every=every, keeper=keeper, reporter=reporter), 0, task, start_epoch, done, sums)
    return [(x["epoch"], x["step"], x["loss"]) for x in logged], saved


class _Bar:
    def __enter__(self):
        return lambda *a, **k: None

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("done", [9, 5])
def test_an_epoch_the_steps_done_already_end_logs_its_line(done):
    # 9 steps done of an epoch that had 11 (one process); on two it has 5: the loop has none left
    task = _Task(epochs=3, steps=5)
    lines, saved = _run(task, 0, done, {"loss": float(done)})
    assert lines == [(1, done, 1.0), (2, 5, 1.0), (3, 5, 1.0)]
    assert task.ended == [0, 1, 2] and saved == [1, 2]


def test_an_epoch_resumed_on_as_many_processes_logs_as_before():
    task = _Task(epochs=2, steps=5)
    assert _run(task, 0, 3, {"loss": 3.0})[0] == [(1, 5, 1.0), (2, 5, 1.0)]
    assert _run(_Task(epochs=2, steps=5), 1, 0, None)[0] == [(2, 5, 1.0)]
    # every 2 steps: the resumed epoch's lines from where it stands, each once
    assert _run(_Task(epochs=1, steps=5), 0, 3, {"loss": 3.0}, every=2)[0] == [(1, 4, 1.0), (1, 5, 1.0)]


def test_the_last_epoch_ended_by_the_steps_done_logs_it():
    task = _Task(epochs=2, steps=4)
    lines, saved = _run(task, 1, 6, {"loss": 6.0})
    assert lines == [(2, 6, 1.0)] and task.ended == [1] and saved == []


@pytest.mark.parametrize("kind", [{"schedule": "cosine"}, {"schedule": "cosine", "warmup_epochs": 1, "warmup_lr": 0.01},
                                  {"schedule": "step", "decay_epochs": 1, "decay_rate": 0.5}])
def test_schedule_at_gives_the_rate_the_last_update_used(kind):
    def fresh():
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.3)
        return opt, loops.create_scheduler(opt, kind["schedule"], 8, 5, **{k: v for k, v in kind.items()
                                                                            if k != "schedule"})

    opt, sched = fresh()  # as a task steps: the rate used, then the schedule set for the next update
    used = []
    for n in range(1, 13):
        used.append(opt.param_groups[0]["lr"])
        sched.step_update(n)
    assert len(set(used)) > 2
    for n in (1, 5, 9, 12):
        opt, sched = fresh()
        assert schedule_at(sched, opt, n) == pytest.approx(used[n - 1])
        nxt = opt.param_groups[0]["lr"]  # the next update's rate, as the uninterrupted run's
        ref_opt, ref = fresh()
        ref.step_update(n)
        assert nxt == pytest.approx(ref_opt.param_groups[0]["lr"])
    opt, sched = fresh()
    assert schedule_at(sched, opt, 0) == pytest.approx(used[0])
