"""The search stages (paper §3.3, Algorithms 1–2): train the supernet weights W, then find θ through a
:class:`~automl.search.Searcher`; or W and θ interleaved; or sample architectures without a supernet.

Every stage reaches its searcher only through ask / tell / best and its registered hooks
(:mod:`automl.search`'s registry), so any registered searcher runs here.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable

import torch
from torch import nn

from automl.errors import UserError
from automl.nn.ensemble import SupernetEnsemble, ensemble_size, member_weights
from automl.pipeline.context import RunContext
from automl.pipeline.loop import EpochTask, run_epochs, schedule_at, updates_done
from automl.pipeline.members import Members
from automl.pipeline.state import RunState
from automl.search import SearchMethod, SearchProblem, Searcher
from automl.train import loops
from automl.train.distributed import all_reduce_mean, assert_same_on_all_ranks
from automl.train.progress import plural
from automl.train.sampling import fair_archs, fair_shortfall, sandwich_archs, sandwich_ends, uniform_archs

_logger = logging.getLogger(__name__)

# ensemble member m > 0 (search.supernets): its initialisation and D_W order are seeded this far from member 0's
MEMBER_SEED = 1_000_003
# the seed of the paths (:func:`probe_paths`: every choice of every decision runs on one of them) that check, after
# the weight phase's last epoch, that the supernet still computes finite outputs; a generator of their own: the
# run's sampling is untouched
PROBE_PATHS = 0

__all__ = ["build_supernet", "supernet_from_state", "probe_paths", "WeightsStage", "ThetaStage",
           "SimultaneousStage", "SampleStage"]


def build_supernet(space, device: torch.device, seed: int, idx: int, members: int = 1,
                   copies: loops.Copies | int | None = None) -> nn.Module:
    """The search space's supernet, its initial weights seeded per stage (a resumed stage gets the same);
    with ``members`` M > 1 (``search.supernets``) an ensemble of M, member m seeded apart (member 0 as the
    single supernet). ``copies``: of its weights on a GPU (:func:`automl.train.loops.check_fits_on_gpu`; None:
    a training's with SGD)."""
    if members > 1:  # all of them at once, before the first is built (each build checks itself alone)
        space.check_supernet_fits(members)
    nets = []
    for m in range(members):
        torch.manual_seed(seed * 1009 + idx + MEMBER_SEED * m)
        nets.append(space.build_supernet())
    return loops.for_training(nets[0] if members == 1 else SupernetEnsemble(nets), device, copies=copies)


def supernet_from_state(space, device: torch.device, weights: dict, seed: int, idx: int) -> nn.Module:
    """The supernet (or ensemble: :func:`automl.nn.ensemble.ensemble_size`) with trained ``weights``, in train
    mode (the θ phase's default BatchNorm)."""
    net = build_supernet(space, device, seed, idx, ensemble_size(weights), copies=1)  # no optimiser: weights
    net.load_state_dict(weights)
    return net.train()


def probe_paths(space) -> torch.Tensor:
    """The paths of the check after the weight phase (:data:`PROBE_PATHS`) that together run every choice of
    every decision: Kmax fair paths (:func:`automl.train.sampling.fair_archs`); with elastic depth also the same
    paths with every depth decision at the choice that keeps the most layers, so that the choices of a layer a
    shallower depth drops run too (on the fair paths alone a choice may fall only on paths without its layer)."""
    paths = fair_archs(space.num_choices, max(space.num_choices), torch.Generator().manual_seed(PROBE_PATHS))
    gates = space.cost_table.gates  # gated decision -> (its depth decision, whether its layer is there per choice)
    if not gates:
        return paths
    deep = paths.clone()
    for g in sorted({g for g, _ in gates.values()}):
        kept = [sum(on[k] for h, on in gates.values() if h == g) for k in range(space.num_choices[g])]
        deep[:, g] = kept.index(max(kept))
    return torch.cat([paths, deep])


def path_sampler(ctx: RunContext, search, n: int) -> Callable[[], torch.Tensor]:
    """A function that samples ``n`` weight-phase paths by ``search.weight_sampling``
    (automl/train/sampling.py) from the run's own generator; the sandwich's two fixed paths are found once."""
    space = ctx.spaces.search
    if search.weight_sampling == "fair":
        shortfall = fair_shortfall(space.num_choices, n)
        if shortfall and ctx.info.is_main:
            _logger.warning(shortfall)
        return lambda: fair_archs(space.num_choices, n, ctx.sampler, space.cost_table.gates)
    if search.weight_sampling == "sandwich":
        ends = sandwich_ends(space)
        return lambda: sandwich_archs(space.num_choices, ends, n, ctx.sampler)
    return lambda: uniform_archs(space.num_choices, n, ctx.sampler)


def buildable(method: SearchMethod, problem: SearchProblem) -> SearchProblem:
    """``problem`` once ``method`` builds its searcher from it: the stages are built at start-up, so a setting
    the searcher refuses (a ``ValueError`` that names its argument) stops the run there (exit 2), not after
    the weight phase. The setup's own checks (automl/pipeline/setup.py) name the recipe's keys first."""
    try:
        method.create(problem)
    except ValueError as e:
        raise UserError(f"search.method {method.name}: the searcher refuses the recipe's search settings: {e}; "
                        f"change them in the recipe's search section") from None
    return problem


class ThetaStep:
    """Algorithm 1 line 8: ask λ paths, their D_θ losses (averaged over ranks), tell the searcher."""

    def __init__(self, ctx: RunContext, net: nn.Module, searcher: Searcher, calibration: list | None):
        self.ctx, self.net, self.searcher, self.calibration = ctx, net, searcher, calibration

    def __call__(self, x, y) -> torch.Tensor:
        archs = self.searcher.ask()  # on the searcher's device; the supernet reads the indices from the CPU
        info = self.ctx.info
        losses = all_reduce_mean(loops.path_losses(self.net, x, y, archs.cpu(), self.ctx.device, self.calibration,
                                                   info), info)
        self.searcher.tell(archs, losses)
        return losses


def report_nonfinite(ctx: RunContext, method: SearchMethod, searcher: Searcher, phase: str, epoch: int,
                     seen: int) -> int:
    """Once per epoch (it reads a count back from the device): θ-phase losses that were NaN or inf
    since ``seen`` are reported; returns the new total."""
    total = method.nonfinite(searcher)
    if total - seen:
        n = total - seen
        ctx.reporter.info(f"{phase} epoch {epoch + 1}: {plural(n, 'path loss', 'path losses')} "
                          f"{'was' if n == 1 else 'were'} NaN or inf; {'it' if n == 1 else 'they'} ranked worst "
                          f"(check optim.lr or the data if this persists)")
        ctx.reporter.log(phase=phase, epoch=epoch + 1, nonfinite_path_losses=total - seen)
    return total


def theta_batches(loader, epoch: int, done: int):
    """Algorithm 2's D_θ batches for weight epoch ``epoch``: a D_θ epoch sequence of its own, cycled to match D_W's
    length; ``done`` batches already used. A generator of the loader alone: one that held its task would keep the
    task, its supernet and optimiser state (on a GPU: their memory) alive in a reference cycle after the stage,
    until Python's cyclic collector ran, while the next member's supernet is built."""
    n = len(loader)
    e, start = epoch * 1_000_003 + done // n, done % n
    while True:
        yield from loader.epoch(e, start)
        e, start = e + 1, 0


class WeightTask(EpochTask):
    """W updates (eq. 3) with λ paths per step from ``sample()``; with ``theta`` also a θ step after each
    on a D_θ batch (Algorithm 2).

    An ensemble's members (``search.supernets``) are each updated in every step, one after the other, with
    their own λ paths and their own D_W batch (member m > 0 reads D_W in an order seeded apart); the one
    optimiser steps only the member whose gradients are set, so the members never mix."""

    def __init__(self, ctx: RunContext, state: RunState, phase: str, net, search, optim, sample,
                 theta: ThetaStep | None = None, method: SearchMethod | None = None):
        self.ctx, self.state, self.phase, self.net = ctx, state, phase, net
        self.search, self.grad_clip, self.sample, self.theta = search, optim.grad_clip, sample, theta
        self.epochs, self.loader = search.weight_epochs, ctx.data.w
        self.opt = loops.create_optimizer(net, optim.name, optim.lr, optim.weight_decay, optim.momentum,
                                          optim.nesterov)
        self.sched = loops.create_scheduler(self.opt, optim.schedule, self.epochs, len(self.loader),
                                            min_lr=optim.min_lr, warmup_epochs=optim.warmup_epochs,
                                            warmup_lr=optim.warmup_lr, decay_rate=optim.decay_rate,
                                            decay_epochs=optim.decay_epochs)
        self.criterion = nn.CrossEntropyLoss()
        self.method = method
        self.num_updates = 0
        self.lr = self.opt.param_groups[0]["lr"]  # the rate the last step used (logged), not the next one's
        self.nonfinite = 0  # the searcher's non-finite losses reported so far
        self.theta_batches = None
        self.nets = list(net.members) if isinstance(net, SupernetEnsemble) else [net]
        self.member_batches: list = []
        self.loss_sum = self.correct = None
        self.seen = self.good = 0

    def begin_epoch(self, epoch, done, sums):
        self.net.train()
        dev = self.ctx.device
        if sums is None:
            self.loss_sum, self.correct = torch.zeros((), device=dev), torch.zeros((), device=dev)
            self.seen = self.good = 0
        else:
            self.loss_sum, self.correct = sums["loss"].to(dev), sums["correct"].to(dev)
            self.seen, self.good = sums["seen"], sums["good"]
            # inside an epoch: what its last end reported (the searcher's count holds this epoch's losses too)
            self.nonfinite = sums.get("nonfinite", self.nonfinite)
        if self.theta is not None:
            self.theta_batches = theta_batches(self.ctx.data.theta, epoch, done)
        w = self.loader
        self.member_batches = [w.with_seed(w.seed + MEMBER_SEED * m).epoch(epoch, done)
                               for m in range(1, len(self.nets))]

    def step(self, epoch, step, batch):
        s = self.search
        skip = s.nan_policy == "skip"
        batches = [batch, *(next(b) for b in self.member_batches)]
        # every member's paths before the first weight step: a sampler on the device (Method 1's searcher) then
        # waits for the device once per step, not behind each member's step
        paths = [self.sample() for _ in self.nets]
        for m, (net, (x, y), archs) in enumerate(zip(self.nets, batches, paths)):
            loss, corr = loops.weight_step(net, x, y, archs, self.opt, self.criterion, self.ctx.info,
                                           self.grad_clip, self.ctx.device, skip_nonfinite=skip,
                                           distill=s.inplace_distill and self.theta is None)
            if skip and not math.isfinite(loss.item()):  # not applied: count it, stop past the limit
                self._skipped(epoch, step, m)
            else:
                self.good += 1
                self.loss_sum += loss
                self.correct += corr
                self.seen += y.numel()
        self.num_updates += 1
        self.lr = self.opt.param_groups[0]["lr"]
        self.sched.step_update(self.num_updates)
        if self.theta is not None:
            self.theta(*next(self.theta_batches))

    def _skipped(self, epoch: int, step: int, member: int) -> None:
        """A skipped update of supernet ``member``: with several supernets each one's update is a weight step
        of its own, counted against search.max_bad_steps and logged with the supernet's index."""
        st, s, m = self.state, self.search, len(self.nets)
        st.bad_steps += 1
        which = {"supernet": member} if m > 1 else {}
        self.ctx.reporter.log(phase=self.phase, epoch=epoch + 1, step=step + 1, **which, skipped="non-finite loss",
                              bad_steps=st.bad_steps)
        if st.bad_steps > s.max_bad_steps:
            of, at = (f" (of {m} supernets, each step one per supernet)", f", supernet {member}") if m > 1 else ("", "")
            raise UserError(f"{self.phase}: {plural(st.bad_steps, 'weight step')}{of} had a non-finite loss (more "
                            f"than search.max_bad_steps={s.max_bad_steps}), the last at epoch {epoch + 1}, step "
                            f"{step + 1}{at}; lower optim.lr or set optim.grad_clip")

    def progress(self, epoch, steps):
        if not self.good:  # every step so far skipped (search.nan_policy=skip): no loss to show, not 0
            return {"loss": None, "accuracy": None, "lr": self.lr, **self._theta_fields()}
        mean = self.loss_sum.item() / self.good
        if not math.isfinite(mean):
            raise UserError(f"{self.phase}: the training loss became {mean} at epoch {epoch + 1}, by step "
                            f"{steps}; lower optim.lr or set optim.grad_clip (now {self.grad_clip}), or skip "
                            f"such steps with search.nan_policy=skip")
        return {"loss": mean, "accuracy": self.correct.item() / self.seen, "lr": self.lr, **self._theta_fields()}

    def _theta_fields(self) -> dict:
        """Algorithm 2's θ steps: the fields the θ phase logs (with budgets the adapted ε)."""
        return {} if self.theta is None else self.method.log_fields(self.theta.searcher)

    def end_epoch(self, epoch):
        done = (f"loss {self.loss_sum.item() / self.good:.4f} acc {self.correct.item() / self.seen:.3f}" if self.good
                else "no step applied (every one had a non-finite loss and was skipped)")
        # Algorithm 2: θ's state after the epoch's θ steps, as the θ phase's line gives it (with budgets the ε)
        note = "" if self.theta is None else self.method.epoch_note(self.theta.searcher)
        self.ctx.reporter.info(f"{self.phase} epoch {epoch + 1}/{self.epochs}: {done} lr {self.lr:.4g}{note}")
        self._check_weights(epoch)
        if self.theta is not None:
            self.nonfinite = report_nonfinite(self.ctx, self.method, self.theta.searcher, self.phase, epoch,
                                              self.nonfinite)

    def _check_weights(self, epoch: int) -> None:
        """After every epoch (whatever search.nan_policy: a skipped step cannot undo an applied one): the
        supernet's weights and BatchNorm statistics are finite; after the phase's last epoch also its outputs on
        every choice (:data:`PROBE_PATHS`). A step's loss is computed before its update, so no loss sees an update
        that overflowed, or made the weights so large that the next forward overflows, when it is the phase's
        last (earlier, the next step's loss shows it)."""
        bad = loops.nonfinite_tensors(self.net)
        what = f"weights became NaN or inf ({plural(len(bad), 'tensor')}, e.g. {bad[0]})" if bad else None
        if what is None and epoch + 1 == self.epochs:
            paths = probe_paths(self.ctx.spaces.search)
            if not loops.finite_outputs(self.net, self.ctx.data.bn_batches(1)[0], paths, self.ctx.device,
                                        self.ctx.info):
                what = "outputs became NaN or inf on a D_W batch (its weights grew too large)"
        if what is not None:
            raise UserError(f"{self.phase}: the supernet's {what} by the end of epoch {epoch + 1}, though the "
                            f"training loss was finite: a weight update overflowed; lower optim.lr or set "
                            f"optim.grad_clip (now {self.grad_clip})")

    def objects(self):
        objs = {"supernet_train": self.net, "optimizer": self.opt, "num_updates": self.num_updates}
        if self.theta is not None:
            objs["engine"] = self.theta.searcher
        return objs

    def sums(self):
        return {"loss": self.loss_sum, "correct": self.correct, "seen": self.seen, "good": self.good,
                "nonfinite": self.nonfinite}

    def resume(self, ctx: RunContext, state: RunState) -> tuple[int, int, Any]:
        """Restore a checkpoint written inside this stage: (start epoch, steps done, running sums)."""
        restorable = {"supernet_train": self.net, "optimizer": self.opt}
        if self.theta is not None:
            restorable["engine"] = self.theta.searcher
        rest = ctx.restore(state, restorable)
        # the schedule where this run's epochs are (another process count changes an epoch's steps)
        self.num_updates = updates_done(state.epoch, state.step, len(self.loader))
        self.lr = schedule_at(self.sched, self.opt, self.num_updates)  # the last update's rate, until a step
        if self.theta is not None:  # at an epoch's start all reported; inside an epoch begin_epoch's sums say
            self.nonfinite = self.method.nonfinite(self.theta.searcher)
        return state.epoch, state.step, rest.get("sums")


class ThetaTask(EpochTask):
    """θ updates on D_θ batches through the searcher (Algorithm 1 lines 6–9)."""

    def __init__(self, ctx: RunContext, phase: str, epochs: int, method: SearchMethod, theta: ThetaStep):
        self.ctx, self.phase, self.epochs, self.method, self.theta = ctx, phase, epochs, method, theta
        self.loader = ctx.data.theta
        self.loss_sum = None
        # the epoch's steps done, resumed ones too, that had a finite path loss: what its loss is a mean over (more
        # than len(loader) when resumed with more processes inside an epoch whose steps done already end it), as the
        # epoch's metrics line; a tensor on the device (counted without a sync)
        self.good = None
        # a searcher resumed at an epoch's start: its count was reported (inside an epoch: begin_epoch's sums)
        self.nonfinite = method.nonfinite(theta.searcher)

    def begin_epoch(self, epoch, done, sums):
        dev = self.ctx.device
        self.loss_sum = (torch.zeros((), device=dev, dtype=torch.float64) if sums is None
                         else sums["loss"].to(dev))
        # a checkpoint without "good" had every step's loss in its sum
        self.good = torch.as_tensor(done if sums is None else sums.get("good", done), device=dev)
        if sums is not None:  # inside an epoch: what its last end reported (the searcher's count holds more)
            self.nonfinite = sums.get("nonfinite", self.nonfinite)

    def step(self, epoch, step, batch):
        # the mean of the step's finite path losses: a NaN or inf one ranks worst in the searcher and is counted
        # (report_nonfinite); in the epoch's loss it would make every later line inf
        losses = self.theta(*batch)
        finite = torch.isfinite(losses)
        n = finite.sum()
        self.loss_sum += torch.where(finite, losses, 0).sum() / n.clamp(min=1)
        self.good += n > 0

    def _mean(self) -> float | None:
        """The epoch's loss so far: the mean over its steps of their finite path losses' mean; None where no
        step had one."""
        good = int(self.good.item())
        return self.loss_sum.item() / good if good else None

    def progress(self, epoch, steps):
        return {"loss": self._mean(), **self.method.log_fields(self.theta.searcher)}

    def end_epoch(self, epoch):
        searcher = self.theta.searcher
        self.nonfinite = report_nonfinite(self.ctx, self.method, searcher, self.phase, epoch, self.nonfinite)
        mean = self._mean()
        self.ctx.reporter.info(f"{self.phase} epoch {epoch + 1}/{self.epochs}: loss "
                               + (f"{mean:.4f}" if mean is not None else "none (every path loss was NaN or inf)")
                               + self.method.epoch_note(searcher))

    def objects(self):
        return {"engine": self.theta.searcher}

    def sums(self):
        return {"loss": self.loss_sum, "good": self.good, "nonfinite": self.nonfinite}


class WeightsStage:
    """Algorithm 1 lines 2–5: train W with λ paths per step, sampled by search.weight_sampling (eq. 3)."""

    key = "weights"

    def __init__(self, search, optim, seed: int):
        self.search, self.optim, self.seed = search, optim, seed

    def run(self, ctx: RunContext, state: RunState, idx: int) -> None:
        net = build_supernet(ctx.spaces.search, ctx.device, self.seed, idx, self.search.supernets,
                             loops.training_copies(self.optim.name, self.optim.momentum, supernet=True))
        task = WeightTask(ctx, state, "weights", net, self.search, self.optim,
                          path_sampler(ctx, self.search, self.search.lam))
        start = task.resume(ctx, state) if state.mid_stage else (0, 0, None)
        ctx.keeper.start("weights")
        run_epochs(ctx, idx, task, *start)
        ctx.keeper.stop()
        state.supernet = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        ctx.keeper.save(idx + 1, 0)


class ThetaStage:
    """importance_sampling: one searcher for all N members (eq. 10); separate: member ``i`` alone (eq. 7)."""

    def __init__(self, method: SearchMethod, problem: SearchProblem, members: Members, search, seed: int,
                 member: int | None = None):
        self.method, self.members, self.search, self.seed = method, members, search, seed
        self.problem, self.member = buildable(method, problem), member
        self.key = "theta" if member is None else f"theta/{member}"

    def run(self, ctx: RunContext, state: RunState, idx: int) -> None:
        s = self.search
        searcher = self.method.create(self.problem)
        net = supernet_from_state(ctx.spaces.search, ctx.device, state.supernet, self.seed, idx)
        start = (0, 0, None)
        if state.mid_stage:
            rest = ctx.restore(state, {"engine": searcher})
            start = (state.epoch, state.step, rest.get("sums"))
        calibration = ctx.data.bn_batches(s.theta_bn_batches) if s.theta_bn == "recalibrate" else None
        phase = "theta" if self.member is None else f"theta {self.members.tag(self.member, state)}"
        task = ThetaTask(ctx, phase, s.theta_epochs, self.method, ThetaStep(ctx, net, searcher, calibration))
        ctx.keeper.start("theta")
        run_epochs(ctx, idx, task, *start)
        ctx.keeper.stop()
        finish_search(ctx, state, self.method, searcher, self.problem.members, self.members.n)
        ctx.keeper.save(idx + 1, 0)


def finish_search(ctx: RunContext, state: RunState, method: SearchMethod, searcher: Searcher,
                  members: list[int], n: int) -> None:
    """The members' architectures are the searcher's answer (with budgets: the most probable within
    each); their final ε is kept for results.json."""
    best = searcher.best()
    if method.mode != "sample":
        assert_same_on_all_ranks(best, ctx.info, "the searcher's answer")
    eps = method.epsilons(searcher)
    for k, i in enumerate(members):
        state.set_arch(i, best[k].tolist(), n)
        if eps is not None:
            state.final_epsilons = state.final_epsilons or [None] * n
            state.final_epsilons[i] = eps[k]


class SimultaneousStage:
    """Algorithm 2 for member i (ε_i or budget i): a fresh W; each step updates W with λ paths from the
    searcher, then θ on a D_θ batch. With ``search.supernets`` M > 1, W is an ensemble of M (each member
    updated on its own λ paths from the searcher and its own D_W batch) and θ is told the members' mean loss,
    as in the θ phase of the other methods. With ``keep_weights`` (retrain.epochs 0) the member's W (its first
    supernet) stays in the run's state for its exported network to inherit."""

    def __init__(self, method: SearchMethod, problem: SearchProblem, members: Members, search, optim,
                 seed: int, member: int, keep_weights: bool = False):
        self.method, self.problem, self.members = method, buildable(method, problem), members
        self.search, self.optim, self.seed, self.member = search, optim, seed, member
        self.keep_weights = keep_weights
        self.key = f"simultaneous/{member}"

    def run(self, ctx: RunContext, state: RunState, idx: int) -> None:
        net = build_supernet(ctx.spaces.search, ctx.device, self.seed, idx, self.search.supernets,
                             loops.training_copies(self.optim.name, self.optim.momentum, supernet=True))
        searcher = self.method.create(self.problem)
        phase = f"simultaneous {self.members.tag(self.member, state)}"
        task = WeightTask(ctx, state, phase, net, self.search, self.optim, lambda: searcher.ask().cpu(),
                          theta=ThetaStep(ctx, net, searcher, None), method=self.method)
        start = task.resume(ctx, state) if state.mid_stage else (0, 0, None)
        ctx.keeper.start("simultaneous")
        run_epochs(ctx, idx, task, *start)
        ctx.keeper.stop()
        finish_search(ctx, state, self.method, searcher, [self.member], self.members.n)
        if self.keep_weights:
            state.member_supernets = {**(state.member_supernets or {}), str(self.member): {
                k: v.detach().cpu() for k, v in member_weights(net.state_dict()).items()}}
        ctx.keeper.save(idx + 1, 0)


class SampleStage:
    """The paper's random baseline: each member's searcher answers without any loss (uniform
    architectures, or uniform within each cost budget)."""

    key = "random"

    def __init__(self, method: SearchMethod, problems: list[SearchProblem], n: int):
        self.method, self.problems, self.n = method, problems, n
        self.searchers: list | None = None  # drawn ahead of the stage (:meth:`draw`), each used once
        self.draw_seconds = 0.0

    def draw(self) -> None:
        """Build each problem's searcher now, which draws its architectures: a band or budget the draws cannot meet
        raises here (a new run's start-up checks call this); :meth:`run` then uses these and counts their time."""
        t0 = time.perf_counter()
        self.searchers = [self.method.create(problem) for problem in self.problems]
        self.draw_seconds = time.perf_counter() - t0

    def run(self, ctx: RunContext, state: RunState, idx: int) -> None:
        t0 = time.perf_counter()
        searchers, self.searchers = self.searchers or [self.method.create(p) for p in self.problems], None
        for problem, searcher in zip(self.problems, searchers):
            finish_search(ctx, state, self.method, searcher, problem.members, self.n)
        state.add_seconds("random", time.perf_counter() - t0 + self.draw_seconds)
        ctx.keeper.save(idx + 1, 0)
