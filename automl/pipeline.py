"""``automl run``: from data to N retrained, exported architectures, driven by a recipe.

The run is a list of *stages* (paper §3.3, §4; Algorithms 1–3):

=====================  ============================================================================
search.method          stages
=====================  ============================================================================
importance_sampling    weights (uniform sampling, eq. 3) -> theta (all N ε at once, eq. 9–10)
separate               weights -> theta/0 … theta/N-1 (one ε each, eq. 7)
simultaneous           simultaneous/0 … /N-1 (fresh W per ε, W and θ steps interleaved)
random                 random (sample architectures, optionally within cost budgets)
=====================  ============================================================================

followed by ``retrain/i`` for every derived architecture (train from scratch on all of D, evaluate on the
test set, export), with a ``ranking`` section ``ranking/j`` for each of its K architectures (score on the
supernet, retrain stand-alone; :mod:`automl.ranking`), and the report. A checkpoint is written atomically at
the end of every epoch of every stage, inside an epoch every ``checkpoint.every_minutes`` / ``every_steps``,
and when SIGTERM or SIGINT asks the run to stop (:mod:`automl.train.preempt`); ``--resume`` restarts at the last one, and on the CPU the
resumed run's architectures equal an uninterrupted run's, because everything random is a function of the
seed and of state in the checkpoint (model init is seeded per stage, the data order is a function of
(seed, epoch, rank) and a resumed epoch skips the batches already done, the engine and samplers carry their
RNG, the global RNG state and the epoch's running sums are saved and restored). One process writes a run
folder at a time: rank 0 holds an exclusive lock on ``DIR/.lock`` for the whole run (:mod:`automl._lock`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import signal
import time
from pathlib import Path

import torch
from torch import nn

from automl._lock import LOCK_NAME, RunLock
from automl.errors import Stopped, UserError
from automl.report import short_number
from automl.train.checkpoint import CheckpointStore
from automl.train.depthwise import plain_convs
from automl.train.distributed import (DistInfo, all_reduce_mean, assert_same_on_all_ranks, barrier,
                                      broadcast_object)
from automl.train.loops import (create_optimizer, create_scheduler, evaluate, for_training, path_losses,
                                recalibrate_bn, train_step, weight_step)
from automl.train.preempt import Preemption
from automl.train.progress import Reporter

__all__ = ["Run", "plan_stages", "resolve_device"]

_logger = logging.getLogger(__name__)
CKPT_FORMAT = 1


def resolve_device(name: str, info: DistInfo) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("device: cuda was asked for but no CUDA GPU is visible; set device=cpu or device=auto")
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def plan_stages(method: str, n: int, ranking: int = 0) -> list[str]:
    """The stage keys of a run with ``n`` architectures (and ``ranking`` architectures whose ranking is measured)."""
    if method == "importance_sampling":
        search = ["weights", "theta"]
    elif method == "separate":
        search = ["weights"] + [f"theta/{i}" for i in range(n)]
    elif method == "simultaneous":
        search = [f"simultaneous/{i}" for i in range(n)]
    elif method == "random":
        search = ["random"]
    else:  # the schema rejects anything else
        raise ValueError(method)
    return search + [f"retrain/{i}" for i in range(n)] + [f"ranking/{j}" for j in range(ranking)]


def _kind(stage: str) -> str:
    return stage.split("/")[0]


class Run:
    """One run of a recipe into ``out_dir``. ``execute()`` returns the results dict (results.json)."""

    def __init__(self, recipe, out_dir: str | Path, resume: bool = False, info: DistInfo | None = None,
                 tty: bool | None = None, resume_command: str | None = None):
        self.recipe = recipe
        self.out = Path(out_dir)
        self.resume = resume
        # printed when the run stops early; commands/run.py passes the command line with its overrides
        self.resume_command = resume_command or f"automl run {recipe.source} --out {self.out} --resume"
        self.lock = RunLock(self.out)
        self._clock: tuple[str, float] | None = None  # the phase being timed, since when (see _lap)
        self.info = info or DistInfo()
        self.device = resolve_device(recipe.device, self.info)
        self.store = CheckpointStore(self.out / "checkpoints")
        self.reporter = Reporter(self.out / "metrics.jsonl", enabled=self.info.is_main, tty=tty)
        s = recipe.search
        self.method = s.method
        self.n = self._num_archs()
        self.stages = plan_stages(self.method, self.n, recipe.ranking.archs if recipe.ranking else 0)
        self.checkpointing = True  # automl rank: off (a finished run's checkpoint is left as it is)
        self.recipe_yaml = recipe.to_yaml()
        self.recipe_hash = recipe.fingerprint()
        if recipe.cost_table_path is not None and recipe.cost_table_path.is_file():
            # a latency table re-measured between an interruption and --resume is another recipe
            table = recipe.cost_table_path.read_bytes()
            self.recipe_hash = hashlib.sha256(self.recipe_hash.encode() + table).hexdigest()
        self._edge: dict[int, dict] = {}  # architecture -> measured latency / int8 of its export
        self._bn_cache: tuple[int | None, list[torch.Tensor]] = (None, [])  # (n, D_W batches) for BN recalibration
        self._rank_archs: torch.Tensor | None = None  # the ranking section's K architectures, chosen once

    # ------------------------------------------------------------------ set-up
    def _num_archs(self) -> int:
        s = self.recipe.search
        if s.budgets is not None:
            return len(s.budgets)
        if s.method == "random" and s.random_budgets:
            return len(s.random_budgets)
        return len(s.epsilons)

    def _epsilon(self, i: int) -> float | None:
        """ε of architecture ``i``: the recipe's, or with budgets the final adapted value (None for random)."""
        s = self.recipe.search
        if s.method == "random":
            return None
        if s.budgets is not None:
            final = (self.final_epsilons or [None] * self.n)[i]
            return None if final is None else float(final)
        return float(s.epsilons[i])

    def _budget(self, i: int) -> float | None:
        b = self.recipe.search.budgets
        return None if b is None else b[i]

    def _member_tag(self, i: int) -> str:
        """How logs and export folders name architecture ``i``: ``eps=0.3``, ``budget=150k``, ``random 2``."""
        if self.recipe.search.budgets is not None:
            b = self._budget(i)
            return "budget=" + ("none" if b is None else short_number(b))
        eps = self._epsilon(i)
        return f"eps={eps}" if eps is not None else f"random {i}"

    def _prepare_out(self) -> None:
        """Check the output folder before any work: writable, and not silently reusing an old run.

        Rank 0 alone checks: it owns the folder (other ranks could see its first files and take them for
        an old run, and on several machines they may not share the folder at all). If it fails, torchrun
        stops the other ranks."""
        if not self.info.is_main:
            return
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"--out {self.out} is a file, not a folder; choose a folder for the run's output")
        # a run writing here now is named first, whatever this command asks (the lock is held till the end)
        self.lock.acquire(create=False)
        if self.resume:
            if not self.store.exists():
                raise UserError(f"--resume: no checkpoint in {self.out} (looked for "
                                f"{self.store.index_path}); start a new run without --resume")
        elif self.out.exists() and any(p.name != LOCK_NAME for p in self.out.iterdir()):
            raise UserError(f"--out {self.out} already holds files; pass --resume to continue that run, "
                            f"or choose another --out")
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            probe = self.out / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            raise UserError(f"--out {self.out}: cannot write there ({e.strerror}); choose a writable folder")
        self.lock.acquire()

    def _load_spaces(self):
        from automl.compile import load_compiled

        r = self.recipe
        search_args = {k: str(v) for k, v in r.space_args.items()}
        retrain_args = dict(search_args)
        retrain_args.update({k: str(v) for k, v in r.retrain.space_args.items()})
        self.space = load_compiled(r.space_path, search_args)
        self.retrain_space = (self.space if retrain_args == search_args
                              else load_compiled(r.space_path, retrain_args))
        self.space_args, self.retrain_space_args = search_args, retrain_args
        if [d.name for d in self.retrain_space.decisions] != [d.name for d in self.space.decisions]:
            raise UserError(f"retrain.space_args changes the decisions of {r.space_path}; retraining must "
                            f"keep the search space's decisions (change sizes, not structure)")
        if r.cost_table_path is not None:
            from automl.profile import apply_cost_table, read_cost_table

            # measured for the network that is deployed: checked against the retrained space's sizes
            table = read_cost_table(r.cost_table_path, self.retrain_space, source=f"{r.source} search.cost_table")
            for sp in {id(self.space): self.space, id(self.retrain_space): self.retrain_space}.values():
                apply_cost_table(sp, table)
        if r.search.cost not in self.space.cost_table.metrics:
            raise UserError(f"{r.source}: search.cost {r.search.cost!r} is not a metric of {r.space_path.name} "
                            f"(it has {', '.join(self.space.cost_table.metrics)}); a latency table comes from "
                            f"`automl space profile SPACE --out TABLE.json` and `search.cost_table: TABLE.json`")

    def _load_data(self):
        from automl.train.data import build_data

        r = self.recipe
        self.data = build_data(r.data, base_dir=r.base_dir, seed=r.seed, device=self.device,
                               rank=self.info.rank, world_size=self.info.world_size)

    def _check_shapes(self) -> None:
        r = self.recipe
        for sp, where in ((self.space, "space_args"), (self.retrain_space, "retrain.space_args")):
            if tuple(sp.input_shape) != tuple(self.data.input_shape) or sp.num_classes != self.data.num_classes:
                raise UserError(
                    f"{r.source}: the space {r.space_path.name} (with {where}) takes input "
                    f"{tuple(sp.input_shape)} with {sp.num_classes} classes, but data.dataset "
                    f"{r.data.dataset} gives {tuple(self.data.input_shape)} with {self.data.num_classes} "
                    f"classes; set the space's size parameters in {where} (see `automl space show`)")

    def _check_ranking(self) -> None:
        """The ranking section fits the run: a weight-sharing supernet to score on, and K <= the space's size."""
        from automl.ranking import space_size

        rk, src = self.recipe.ranking, self.recipe.source or "the recipe"
        if rk is None:
            return
        if self.method not in ("importance_sampling", "separate"):
            raise UserError(f"{src}: ranking: needs the supernet of the weight phase, which search.method "
                            f"{self.method} does not train; use importance_sampling or separate, or remove ranking")
        n = space_size(self.space.num_choices)
        if rk.archs > n:
            raise UserError(f"{src}: ranking.archs: {rk.archs} architectures asked for, but the space "
                            f"{self.recipe.space_path.name} has only {n:,}; set ranking.archs to at most {n}")

    def _prepare_costs(self) -> None:
        """The engine's cost table: the recipe's metric, normalised so the largest per-choice cost is 1
        (``automl.search.normalize_costs``), which makes ε mean the same on every space."""
        from automl.search import normalize_costs

        ct = self.space.cost_table
        raw = ct.costs(self.recipe.search.cost)
        if self.recipe.search.normalize_costs:
            self.engine_costs, scale = normalize_costs(raw, ct.mask, return_scale=True)
            self.cost_scale = float(scale)
        else:
            self.engine_costs, self.cost_scale = raw, 1.0

    def _check_budgets(self) -> None:
        """search.budgets against the space: a total cost (fixed part included) in the metric's units.

        Below the smallest architecture's cost is an error; above the largest a warning (no constraint)."""
        s = self.recipe.search
        if s.budgets is None:
            return
        ct = self.space.cost_table
        low, high = ct.min_total(s.cost), ct.max_total(s.cost)  # exact with elastic depth's gates too
        where = f"{self.recipe.source}: " if self.recipe.source else ""
        for j, b in enumerate(s.budgets):
            if b is None:
                continue
            if b < low:
                raise UserError(f"{where}search.budgets[{j}]: {short_number(b)} is below the smallest architecture of "
                                f"{self.space.name} ({s.cost} {low:,.6g}, fixed part included); raise it to at "
                                f"least {short_number(low)} or use null for no constraint")
            if b >= high:
                self.reporter.info(f"warning: search.budgets[{j}] = {short_number(b)} is at or above the largest "
                                   f"architecture ({s.cost} {high:,.6g}): it does not constrain that member")

    def _warn_paper_utility(self) -> None:
        """Once per run: eq. 9 with few samples per member pulls the members together (issue #14)."""
        s = self.recipe.search
        if s.utility != "paper" or s.method != "importance_sampling" or self.n < 2 or s.lam / self.n >= 8:
            return
        self.reporter.info(
            f"warning: search.utility paper (eq. 9) with lam / N = {s.lam}/{self.n} < 8 may pull the members "
            f"together (the unconstrained one toward small networks; docs/search-engine.md); set "
            f"search.utility=weighted_quantile, or raise search.lam to about 8 N")

    def _engine_budgets(self, budgets) -> list[float | None]:
        """Total budgets (recipe units) -> the engine's normalised units: (B - fixed) / scale."""
        fixed = self.space.cost_table.fixed.get(self.recipe.search.cost, 0.0)
        return [None if b is None else (b - fixed) / self.cost_scale for b in budgets]

    def _engine(self, members):
        """An engine for the members ``members`` (indices into search.epsilons or search.budgets)."""
        from automl.search import MultiEpsilonSearch

        s = self.recipe.search
        if s.budgets is not None:
            target = dict(budgets=self._engine_budgets([s.budgets[i] for i in members]))
        else:
            target = dict(epsilons=[float(s.epsilons[i]) for i in members])
        return MultiEpsilonSearch(
            num_choices=self.space.num_choices, costs=self.engine_costs, lam=s.lam,
            lr=None if s.theta_lr == "auto" else float(s.theta_lr),
            theta_min=None if s.theta_min == "auto" else float(s.theta_min),
            seed=self.recipe.seed, device=self.device,  # on a GPU, tell() reads nothing back (sync_free)
            utility=s.utility, **target)

    def _keep_epsilons(self, members, engine) -> None:
        """Remember the final (adapted) ε of ``members`` for results.json."""
        if self.recipe.search.budgets is None:
            return
        self.final_epsilons = self.final_epsilons or [None] * self.n
        for i, e in zip(members, engine.epsilons):
            self.final_epsilons[i] = float(e)

    def _build_supernet(self, stage_idx: int) -> nn.Module:
        torch.manual_seed(self.recipe.seed * 1009 + stage_idx)
        return for_training(self.space.build_supernet(), self.device)

    def _weight_optim(self, net: nn.Module, epochs: int):
        o = self.recipe.optim
        opt = create_optimizer(net, o.name, o.lr, o.weight_decay, o.momentum, o.nesterov)
        sched = create_scheduler(opt, o.schedule, epochs, len(self.data.w), min_lr=o.min_lr,
                                 warmup_epochs=o.warmup_epochs)
        return opt, sched

    # ------------------------------------------------------------------ checkpoint
    def _rng_state(self) -> dict:
        st = {"torch": torch.get_rng_state(), "sampler": self.sampler.get_state()}
        if torch.cuda.is_available() and self.device.type == "cuda":
            st["cuda"] = torch.cuda.get_rng_state(self.device)
        return st

    def _set_rng_state(self, st: dict) -> None:
        torch.set_rng_state(st["torch"])
        self.sampler.set_state(st["sampler"])
        if "cuda" in st and self.device.type == "cuda":
            torch.cuda.set_rng_state(st["cuda"], self.device)

    def _save(self, stage_idx: int, epoch: int, step: int = 0, **objects) -> None:
        """Checkpoint ``stage_idx`` with ``epoch`` epochs and ``step`` steps of the next one done (rank 0 writes;
        all wait), then stop the run if a signal asked to (every rank takes the same decision here)."""
        if not self.checkpointing:
            return
        if self._clock is not None:  # book the phase's time so far: a resumed run does not redo it
            kind = self._clock[0]
            self._lap_done()
            self._lap(kind)
        if self.info.is_main:
            state = {"format": CKPT_FORMAT, "recipe_sha256": self.recipe_hash, "stage": stage_idx,
                     "epoch": epoch, "step": step, "archs": self.archs, "results": self.results,
                     "phase_seconds": self.phase_seconds, "supernet": self.supernet_state,
                     "final_epsilons": self.final_epsilons, "rng": self._rng_state(),
                     "metrics_bytes": self.reporter.size()}
            for k, v in objects.items():
                state[k] = v.state_dict() if hasattr(v, "state_dict") else v
            state["bad_steps"] = self.bad_steps
            try:
                self.store.save(state)
            except OSError as e:  # disk full, folder removed: the previous checkpoint is untouched
                raise UserError(f"cannot write a checkpoint in {self.store.folder} ({e.strerror or e}); the "
                                f"previous checkpoint is intact: free space and continue with --resume") from None
        barrier(self.info)
        self.preempt.saved()
        signum = self.preempt.signalled()
        if signum:
            where = f"{self._stage_name(stage_idx)}, epoch {epoch}" + (f" + {step} steps" if step else "")
            torchrun = " (under torchrun: the same torchrun command, with --resume)" if self.info.enabled else ""
            self.reporter.info(f"stopped by {signal.Signals(signum).name}; the checkpoint in {self.store.folder} "
                               f"resumes at {where}. Continue with: {self.resume_command}{torchrun}")
            raise Stopped(signum)

    def _step_done(self, idx: int, epoch: int, step: int, steps: int, state) -> None:
        """Every training loop calls this after ``step`` (1-based) of the ``steps`` of ``epoch``: a checkpoint
        inside the epoch when ``checkpoint.every_*`` is reached or a signal asks to stop (the run then stops,
        in :meth:`_save`). ``state()`` gives the stage's objects and the epoch's running sums. After the last
        step the epoch's own checkpoint (or the stage's) follows at once."""
        if step < steps and self.preempt.step():
            self._save(idx, epoch, step, **state())

    @staticmethod
    def _partial(ckpt: dict | None) -> tuple[int, dict | None]:
        """(steps already done, running sums) of the first epoch to run: nonzero for a checkpoint written
        inside an epoch."""
        if ckpt is None or not ckpt.get("step"):
            return 0, None
        return ckpt["step"], ckpt["sums"]

    def _sampler_archs(self, n: int) -> torch.Tensor:
        """``n`` weight-phase paths by ``search.weight_sampling`` (automl/train/sampling.py), from the run's
        own generator."""
        from automl.train.sampling import fair_archs, sandwich_archs, uniform_archs

        how = self.recipe.search.weight_sampling
        if how == "fair":
            return fair_archs(self.space.num_choices, n, self.sampler)
        if how == "sandwich":
            return sandwich_archs(self.space.num_choices, self.space.cost_table.costs("params"), n, self.sampler)
        return uniform_archs(self.space.num_choices, n, self.sampler)

    def _setup_threads(self) -> None:
        """The run's intra-op thread count (``threads``; automl/train/threads.py), chosen by rank 0 and set
        on every rank before any torch compute: the count changes float rounding."""
        from automl.train.threads import apply_threads, resolve_threads, save_choice, step_work

        choice = None
        if self.info.is_main:
            def work():
                try:
                    return step_work(self.recipe)
                except UserError:  # a mistake in the space: reported after the data is checked
                    return None

            local = int(os.environ.get("LOCAL_WORLD_SIZE", self.info.world_size))
            choice = resolve_threads(self.recipe.threads, out_dir=self.out, resume=self.resume, work=work,
                                     local_world_size=local)
            if not self.resume or not (self.out / "threads.json").exists():
                save_choice(self.out, choice)
        self.threads = broadcast_object(choice, self.info)
        apply_threads(self.threads.threads)
        self.reporter.info(self.threads.line())

    # ------------------------------------------------------------------ main
    def execute(self) -> dict:
        """Run every stage (from the last checkpoint with ``resume``); torch's thread count is restored after."""
        before = torch.get_num_threads()
        try:
            return self._execute()
        finally:
            self.lock.release()
            torch.set_num_threads(before)

    def _execute(self) -> dict:
        r = self.recipe
        self._prepare_out()
        self._setup_threads()
        self._load_data()  # first: a wrong data.root should fail before any space is compiled
        self._load_spaces()
        self._check_shapes()
        self._check_ranking()
        self._prepare_costs()
        self._check_budgets()
        self._warn_paper_utility()
        self.final_epsilons: list[float | None] | None = None
        self.sampler = torch.Generator().manual_seed(r.seed)
        self.archs: list[list[int]] | None = None
        self.results: dict[str, dict] = {}
        self.phase_seconds: dict[str, float] = {}
        self.supernet_state = None
        self.bad_steps = 0  # weight steps skipped for a non-finite loss (search.nan_policy: skip)
        self.preempt = Preemption(self.info, r.checkpoint.every_minutes, r.checkpoint.every_steps)
        start_stage, start_epoch, start_step, ckpt = 0, 0, 0, None
        if self.resume:
            ckpt = self.store.load() if self.info.is_main else None
            ckpt = broadcast_object(ckpt, self.info)
            if ckpt is None:
                raise UserError(f"--resume: every checkpoint in {self.store.folder} is unreadable or corrupted; "
                                f"start a new run")
            if ckpt.get("recipe_sha256") != self.recipe_hash:
                raise UserError(f"--resume: the recipe differs from the one {self.out} was started with "
                                f"(see {self.out / 'recipe.resolved.yaml'}); resume with the same recipe and "
                                f"overrides, or start a new run")
            start_stage, start_epoch, start_step = ckpt["stage"], ckpt["epoch"], ckpt.get("step", 0)
            self.archs, self.results = ckpt["archs"], ckpt["results"]
            self.phase_seconds, self.supernet_state = ckpt["phase_seconds"], ckpt["supernet"]
            self.bad_steps = ckpt.get("bad_steps", 0)
            self.final_epsilons = ckpt.get("final_epsilons")
            if start_epoch == 0 and start_step == 0:  # at a stage boundary; mid-stage, the stage restores it
                self._set_rng_state(ckpt["rng"])
            if "metrics_bytes" in ckpt:  # the lines logged after the checkpoint are logged again below
                self.reporter.cut(ckpt["metrics_bytes"])
            if self.info.is_main:
                self.store.remove_temporaries()  # of a write a kill cut short; this run holds the lock
            self.reporter.info(f"resuming {self.out} at {self._stage_name(start_stage)}, epoch {start_epoch}"
                               + (f" + {start_step} steps" if start_step else ""))
        elif self.info.is_main:
            from automl._io import atomic_write_text

            atomic_write_text(self.out / "recipe.resolved.yaml", self.recipe_yaml)
        try:
            with self.preempt.armed():  # SIGTERM / SIGINT: checkpoint after the current step, then Stopped
                for idx in range(start_stage, len(self.stages)):
                    mid_stage = ckpt is not None and idx == start_stage and (start_epoch > 0 or start_step > 0)
                    self._run_stage(idx, start_epoch if mid_stage else 0, ckpt if mid_stage else None)
        except KeyboardInterrupt:
            self.reporter.info(f"\ninterrupted; the last checkpoint is in {self.store.folder}. "
                               f"Continue with: {self.resume_command}")
            raise
        results = self._results()
        if self.info.is_main:
            from automl.report import write_report

            write_report(self.out, results, self.reporter)
        return results

    def _stage_name(self, idx: int) -> str:
        return self.stages[idx] if idx < len(self.stages) else "report"

    def _run_stage(self, idx: int, start_epoch: int, ckpt: dict | None) -> None:
        stage = self.stages[idx]
        kind = _kind(stage)
        i = int(stage.split("/")[1]) if "/" in stage else None
        if kind == "weights":
            self._stage_weights(idx, start_epoch, ckpt)
        elif kind == "theta":
            self._stage_theta(idx, start_epoch, ckpt, i)
        elif kind == "simultaneous":
            self._stage_simultaneous(idx, start_epoch, ckpt, i)
        elif kind == "random":
            self._stage_random(idx)
        elif kind == "retrain":
            self._stage_retrain(idx, start_epoch, ckpt, i)
        elif kind == "ranking":
            self._stage_ranking(idx, start_epoch, ckpt, i)

    def _timed(self, kind: str, seconds: float) -> None:
        self.phase_seconds[kind] = self.phase_seconds.get(kind, 0.0) + seconds

    def _lap(self, kind: str) -> None:
        """Start timing ``kind`` (phase_seconds); a checkpoint written meanwhile books the time so far."""
        self._clock = (kind, time.perf_counter())

    def _lap_done(self) -> None:
        kind, t0 = self._clock
        self._timed(kind, time.perf_counter() - t0)
        self._clock = None

    def _log_every(self) -> int:
        return self.recipe.search.log_every

    # ------------------------------------------------------------------ stages
    def _stage_weights(self, idx: int, start_epoch: int, ckpt: dict | None) -> None:
        """Algorithm 1 lines 2–5: train W with λ uniformly sampled paths per step (eq. 3)."""
        s = self.recipe.search
        net = self._build_supernet(idx)
        opt, sched = self._weight_optim(net, s.weight_epochs)
        num_updates = 0
        if ckpt is not None:
            net.load_state_dict(ckpt["supernet_train"])
            opt.load_state_dict(ckpt["optimizer"])
            num_updates = ckpt["num_updates"]
            self._set_rng_state(ckpt["rng"])
        criterion = nn.CrossEntropyLoss()
        partial = self._partial(ckpt)
        for epoch in range(start_epoch, s.weight_epochs):
            self._lap("weights")
            net.train()
            num_updates = self._weight_epoch(net, opt, sched, criterion, epoch, s.weight_epochs, num_updates,
                                             "weights", lambda: self._sampler_archs(s.lam),
                                             idx=idx, objects={"supernet_train": net, "optimizer": opt},
                                             partial=partial)
            partial = (0, None)
            self._lap_done()
            if epoch + 1 < s.weight_epochs:
                self._save(idx, epoch + 1, supernet_train=net, optimizer=opt, num_updates=num_updates)
        self.supernet_state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        self._save(idx + 1, 0)

    def _weight_epoch(self, net, opt, sched, criterion, epoch, epochs, num_updates, phase, sample, theta=None, *,
                      idx, objects, partial=(0, None)):
        """One epoch of W updates; with ``theta`` = (engine, theta iterator) also a θ step after each (Alg. 2).

        ``objects``: what a checkpoint inside the epoch saves besides ``num_updates`` and the running sums;
        ``partial``: (steps done, running sums) when resuming inside this epoch."""
        loader = self.data.w
        every = self._log_every()
        done, sums = partial
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        seen = 0
        s = self.recipe.search
        skip = s.nan_policy == "skip"
        good = 0  # steps applied (all of them under nan_policy stop)
        if sums is not None:
            loss_sum, correct, seen, good = (sums["loss"].to(self.device), sums["correct"].to(self.device),
                                             sums["seen"], sums["good"])
        with self.reporter.epoch(phase, epoch, epochs, len(loader)) as update:
            for step, (x, y) in enumerate(loader.epoch(epoch, done), start=done):
                archs = sample()
                loss, corr = weight_step(net, x, y, archs, opt, criterion, self.info,
                                         self.recipe.optim.grad_clip, self.device, skip_nonfinite=skip,
                                         distill=s.inplace_distill and theta is None)
                num_updates += 1
                sched.step_update(num_updates)
                if skip and not math.isfinite(loss.item()):  # not applied: count it, stop past the limit
                    self.bad_steps += 1
                    self.reporter.log(phase=phase, epoch=epoch + 1, step=step + 1, skipped="non-finite loss",
                                      bad_steps=self.bad_steps)
                    if self.bad_steps > s.max_bad_steps:
                        raise UserError(
                            f"{phase}: {self.bad_steps} weight steps had a non-finite loss (more than "
                            f"search.max_bad_steps={s.max_bad_steps}), the last at epoch {epoch + 1}, step "
                            f"{step + 1}; lower optim.lr or set optim.grad_clip")
                else:
                    good += 1
                    loss_sum += loss
                    correct += corr
                    seen += y.numel()
                if theta is not None:
                    engine, theta_batches = theta
                    xt, yt = next(theta_batches)
                    self._theta_step(net, engine, xt, yt)
                if (step + 1) % every == 0 or step + 1 == len(loader):
                    mean = loss_sum.item() / max(good, 1)
                    if not math.isfinite(mean):
                        raise UserError(f"{phase}: the training loss became {mean} at epoch {epoch + 1}, by step "
                                        f"{step + 1}; lower optim.lr or set optim.grad_clip (now "
                                        f"{self.recipe.optim.grad_clip}), or skip such steps with "
                                        f"search.nan_policy=skip")
                    acc = correct.item() / max(seen, 1)
                    update(step + 1, loss=mean, acc=acc)
                    self.reporter.log(phase=phase, epoch=epoch + 1, step=step + 1, loss=mean, accuracy=acc,
                                      lr=opt.param_groups[0]["lr"])
                self._step_done(idx, epoch, step + 1, len(loader), lambda: dict(
                    objects, num_updates=num_updates,
                    sums={"loss": loss_sum, "correct": correct, "seen": seen, "good": good}))
        self.reporter.info(f"{phase} epoch {epoch + 1}/{epochs}: loss {loss_sum.item() / max(len(loader), 1):.4f} "
                           f"acc {correct.item() / max(seen, 1):.3f} lr {opt.param_groups[0]['lr']:.4g}")
        return num_updates

    def _report_nonfinite(self, engine, phase: str, epoch: int, seen: int) -> int:
        """Once per epoch (it reads a count back from the device): θ-phase losses that were NaN or inf
        since ``seen`` were reported; returns the new total."""
        total = engine.nonfinite_losses
        new = total - seen
        if new:
            self.reporter.info(f"{phase} epoch {epoch + 1}: {new} path losses were NaN or inf; they ranked "
                               f"worst (check optim.lr or the data if this persists)")
            self.reporter.log(phase=phase, epoch=epoch + 1, nonfinite_path_losses=new)
        return total

    def _theta_step(self, net, engine, x, y) -> torch.Tensor:
        """Algorithm 1 line 8: ask λ paths, their D_θ losses (averaged over ranks), tell every distribution."""
        archs = engine.ask()  # on the engine's device; the supernet reads the indices once, from the CPU
        calibration = self._bn_batches(self.recipe.search.theta_bn_batches) \
            if self.recipe.search.theta_bn == "recalibrate" else None
        losses = all_reduce_mean(path_losses(net, x, y, archs.cpu(), self.device, calibration), self.info)
        engine.tell(archs, losses)
        return losses

    def _supernet_from_state(self, idx: int) -> nn.Module:
        net = self._build_supernet(idx)
        net.load_state_dict(self.supernet_state)
        net.train()
        return net

    def _theta_epochs(self, idx, start_epoch, ckpt, engine, phase) -> None:
        s = self.recipe.search
        net = self._supernet_from_state(idx)
        if ckpt is not None:
            engine.load_state_dict(ckpt["engine"])
            self._set_rng_state(ckpt["rng"])
        loader = self.data.theta
        nonfinite = 0
        done, sums = self._partial(ckpt)
        for epoch in range(start_epoch, s.theta_epochs):
            self._lap("theta")
            loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
            if sums is not None:
                loss_sum = sums["loss"].to(self.device)
            with self.reporter.epoch(phase, epoch, s.theta_epochs, len(loader)) as update:
                for step, (x, y) in enumerate(loader.epoch(epoch, done), start=done):
                    loss_sum += self._theta_step(net, engine, x, y).mean()
                    if (step + 1) % self._log_every() == 0 or step + 1 == len(loader):
                        mean = loss_sum.item() / (step + 1)
                        update(step + 1, loss=mean)
                        extra = {"epsilon": engine.epsilons} if engine.budgets is not None else {}
                        self.reporter.log(phase=phase, epoch=epoch + 1, step=step + 1, loss=mean,
                                          expected_cost=engine.expected_cost().tolist(), **extra)
                    self._step_done(idx, epoch, step + 1, len(loader),
                                    lambda: {"engine": engine, "sums": {"loss": loss_sum}})
            done, sums = 0, None
            self._lap_done()
            nonfinite = self._report_nonfinite(engine, phase, epoch, nonfinite)
            eps = f" ε {[round(e, 3) for e in engine.epsilons]}" if engine.budgets is not None else ""
            self.reporter.info(f"{phase} epoch {epoch + 1}/{s.theta_epochs}: loss "
                               f"{loss_sum.item() / max(len(loader), 1):.4f} max θ "
                               f"{engine.theta.amax(-1).mean(-1).tolist()}{eps}")
            if epoch + 1 < s.theta_epochs:
                self._save(idx, epoch + 1, engine=engine)

    def _stage_theta(self, idx: int, start_epoch: int, ckpt: dict | None, i: int | None) -> None:
        """importance_sampling: all N distributions at once (eq. 10); separate: distribution ``i`` alone (eq. 7)."""
        members = list(range(self.n)) if i is None else [i]
        engine = self._engine(members)
        self._theta_epochs(idx, start_epoch, ckpt, engine, "theta" if i is None else f"theta {self._member_tag(i)}")
        assert_same_on_all_ranks(engine.theta, self.info, "theta")
        best = engine.best().tolist()  # with budgets: the most probable architecture within each budget
        self._keep_epsilons(members, engine)
        if i is None:
            self.archs = best
        else:
            self.archs = (self.archs or [None] * self.n)
            self.archs[i] = best[0]
        self._save(idx + 1, 0)

    def _stage_simultaneous(self, idx: int, start_epoch: int, ckpt: dict | None, i: int) -> None:
        """Algorithm 2 for member i (ε_i or budget i): a fresh W; each step updates W with λ paths from P_θ, then θ
        on a D_θ batch."""
        s = self.recipe.search
        net = self._build_supernet(idx)
        engine = self._engine([i])
        opt, sched = self._weight_optim(net, s.weight_epochs)
        num_updates = 0
        if ckpt is not None:
            net.load_state_dict(ckpt["supernet_train"])
            opt.load_state_dict(ckpt["optimizer"])
            engine.load_state_dict(ckpt["engine"])
            num_updates = ckpt["num_updates"]
            self._set_rng_state(ckpt["rng"])
        criterion = nn.CrossEntropyLoss()

        def theta_batches(epoch, done):
            # a D_θ epoch sequence of its own, cycled to match D_W's length; ``done`` batches already used
            n = len(self.data.theta)
            e, start = epoch * 1_000_003 + done // n, done % n
            while True:
                yield from self.data.theta.epoch(e, start)
                e, start = e + 1, 0

        nonfinite = 0
        partial = self._partial(ckpt)
        for epoch in range(start_epoch, s.weight_epochs):
            self._lap("simultaneous")
            net.train()
            num_updates = self._weight_epoch(net, opt, sched, criterion, epoch, s.weight_epochs, num_updates,
                                             f"simultaneous {self._member_tag(i)}", lambda: engine.ask().cpu(),
                                             theta=(engine, theta_batches(epoch, partial[0])), idx=idx,
                                             objects={"supernet_train": net, "optimizer": opt, "engine": engine},
                                             partial=partial)
            partial = (0, None)
            self._lap_done()
            nonfinite = self._report_nonfinite(engine, f"simultaneous {self._member_tag(i)}", epoch, nonfinite)
            if epoch + 1 < s.weight_epochs:
                self._save(idx, epoch + 1, supernet_train=net, optimizer=opt, engine=engine,
                           num_updates=num_updates)
        assert_same_on_all_ranks(engine.theta, self.info, "theta")
        self.archs = (self.archs or [None] * self.n)
        self.archs[i] = engine.best()[0].tolist()
        self._keep_epsilons([i], engine)
        self._save(idx + 1, 0)

    def _stage_random(self, idx: int) -> None:
        """The paper's random baseline: uniform architectures, or uniform within each cost budget."""
        from automl.search import RandomSearch

        s = self.recipe.search
        t0 = time.perf_counter()
        # search.budgets are totals as results.json reports cost (the search space's table); random_budgets
        # are for the network that is trained and deployed (the retraining space's)
        ct, budgets = ((self.space.cost_table, s.budgets) if s.budgets is not None
                       else (self.retrain_space.cost_table, s.random_budgets))
        archs = []
        if budgets:
            raw = ct.costs(s.cost)
            fixed = ct.fixed.get(s.cost, 0.0)
            for j, budget in enumerate(budgets):
                rs = RandomSearch(self.space.num_choices, costs=raw,
                                  budget=None if budget is None else float(budget) - fixed,
                                  seed=self.recipe.seed + j)
                archs.append(rs.ask()[0].tolist())
        else:
            rs = RandomSearch(self.space.num_choices, seed=self.recipe.seed)
            archs = [rs.ask()[0].tolist() for _ in range(self.n)]
        self.archs = archs
        self._timed("random", time.perf_counter() - t0)
        self._save(idx + 1, 0)

    def _stage_retrain(self, idx: int, start_epoch: int, ckpt: dict | None, i: int) -> None:
        """Retrain architecture ``i`` from scratch on all of D, evaluate it on the test set, export it."""
        rt = self.recipe.retrain
        arch = torch.tensor(self.archs[i], dtype=torch.long)
        sp = self.retrain_space
        torch.manual_seed(self.recipe.seed * 7919 + i)
        model = for_training(sp.build_standalone(arch, se=rt.se), self.device)
        eps = self._epsilon(i)
        tag = self._member_tag(i)
        accuracy = None
        self._lap("retrain")
        if rt.epochs > 0:
            accuracy = self._retrain(idx, start_epoch, ckpt, model, tag)
        elif self.supernet_state is not None and sp is self.space:
            self._inherit(model, arch)
        self._lap_done()
        t0 = time.perf_counter()
        onnx_rel = self._export(i, model, arch, eps) if self.info.is_main else None
        self._timed("export", time.perf_counter() - t0)
        self.results[str(i)] = {"test_accuracy": accuracy, "params": sum(p.numel() for p in model.parameters()),
                                "onnx": onnx_rel, **self._edge.pop(i, {})}
        self._save(idx + 1, 0)

    # ------------------------------------------------------------------ ranking
    def _bn_batches(self, n: int) -> list[torch.Tensor]:
        """The first ``n`` D_W batches of epoch 0: the fixed images BatchNorm is recalibrated on (the same for
        every path, so paths differ only by their weights)."""
        if self._bn_cache[0] != n:
            xs = []
            for x, _ in self.data.w.epoch(0):
                if len(xs) == n:
                    break
                xs.append(x)
            self._bn_cache = (n, xs)
        return self._bn_cache[1]

    def _ranking_archs(self) -> torch.Tensor:
        from automl.ranking import select_archs

        if self._rank_archs is None:
            ct = self.space.cost_table
            # seed 0, not the recipe's: the same K architectures in every run of the space, so τ compares
            # across seeds and settings
            self._rank_archs = select_archs(self.space.num_choices, ct.costs(self.recipe.search.cost),
                                            self.recipe.ranking.archs, seed=0)
        return self._rank_archs

    def _stage_ranking(self, idx: int, start_epoch: int, ckpt: dict | None, j: int) -> None:
        """Architecture ``j`` of the ranking: its loss on the supernet and its stand-alone test accuracy."""
        rk, rt = self.recipe.ranking, self.recipe.retrain
        epochs = rt.epochs if rk.retrain_epochs is None else rk.retrain_epochs
        arch = self._ranking_archs()[j]
        net = self._supernet_from_state(idx)
        self._lap("ranking")
        with torch.no_grad():
            # what the θ phase sees by default: train mode, each batch's own statistics
            loss_batch, _ = evaluate(lambda x: net(x, arch), self.data.theta, self.device, self.info)
            recalibrate_bn(net, lambda x: net(x.contiguous(memory_format=torch.channels_last), arch),
                           self._bn_batches(rk.bn_batches))
            loss, acc = evaluate(lambda x: net(x, arch), self.data.theta, self.device, self.info)
        sp = self.retrain_space
        if epochs > 0:
            torch.manual_seed(self.recipe.seed * 7919 + 100_003 + j)
            model = for_training(sp.build_standalone(arch, se=rt.se), self.device)
            test_acc = self._retrain(idx, start_epoch, ckpt, model, f"ranking {j + 1}/{rk.archs}", epochs=epochs)
            params = sum(p.numel() for p in model.parameters())
        else:  # the supernet's own weights on the path, BatchNorm as recalibrated above
            _, test_acc = evaluate(lambda x: net(x, arch), self.data.test, self.device, self.info)
            params = net.path_params(arch)
        self._lap_done()
        self.results[f"ranking/{j}"] = {
            "choices": self.space.decode(arch), "params": params,
            "cost": float(self.space.cost_table.total(arch, self.recipe.search.cost)),
            "supernet_loss": loss, "supernet_accuracy": acc, "supernet_loss_batch_stats": loss_batch,
            "test_accuracy": test_acc}
        self.reporter.info(f"ranking {j + 1}/{rk.archs}: {params:,} params, supernet loss {loss:.4f} "
                           f"(batch statistics {loss_batch:.4f}), stand-alone test accuracy {test_acc:.4f}")
        self._save(idx + 1, 0)

    def _ranking_results(self) -> dict | None:
        from automl.ranking import summarize

        entries = [self.results.get(f"ranking/{j}") for j in range(self.recipe.ranking.archs)] \
            if self.recipe.ranking else []
        if not entries or any(e is None for e in entries):
            return None
        return summarize(entries)

    def rank(self) -> dict:
        """``automl rank``: the ranking section on the finished run in ``out`` (its last checkpoint's supernet);
        results.json and report.md are updated, the checkpoints are left as they are. Holds the run folder's
        lock (a run still writing there is named, and nothing is done)."""
        if self.info.is_main:
            self.lock.acquire(create=False)
        try:
            return self._rank()
        finally:
            self.lock.release()

    def _rank(self) -> dict:
        ckpt = self.store.load() if self.store.exists() else None
        if ckpt is None or ckpt.get("supernet") is None:
            raise UserError(f"{self.out}: no checkpoint with a trained supernet (looked in {self.store.folder}); "
                            f"automl rank needs a run of search.method importance_sampling or separate")
        self.checkpointing = False
        self.preempt = Preemption(self.info)  # no checkpoint inside an epoch: nothing is saved
        self._load_data()
        self._load_spaces()
        self._check_shapes()
        self._check_ranking()
        self.sampler = torch.Generator().manual_seed(self.recipe.seed)
        self.archs, self.results, self.phase_seconds = ckpt["archs"], dict(ckpt["results"]), {}
        self.supernet_state = ckpt["supernet"]
        first = len(self.stages) - self.recipe.ranking.archs
        for idx in range(first, len(self.stages)):
            self._run_stage(idx, 0, None)
        ranking = self._ranking_results()
        if self.info.is_main:
            import json

            from automl.report import write_report

            path = self.out / "results.json"
            results = json.loads(path.read_text()) if path.exists() else self._results()
            results["ranking"] = ranking
            write_report(self.out, results, self.reporter)
        return ranking

    def _retrain(self, idx, start_epoch, ckpt, model, tag, epochs: int | None = None) -> float:
        from timm.utils import ModelEmaV3

        rt = self.recipe.retrain
        if epochs is not None:  # the ranking's stand-alone training: the same settings, its own length
            rt = rt.model_copy(update={"epochs": epochs})
        loader = self.data.full.with_batch_size(rt.batch_size)
        opt = create_optimizer(model, rt.optimizer, rt.lr, rt.weight_decay, rt.momentum,
                               eps=rt.rmsprop_eps, alpha=rt.rmsprop_alpha)
        sched = create_scheduler(opt, rt.schedule, rt.epochs, len(loader), min_lr=rt.min_lr,
                                 warmup_epochs=rt.warmup_epochs, warmup_lr=rt.warmup_lr,
                                 decay_rate=rt.decay_rate, decay_epochs=rt.decay_epochs)
        ema = ModelEmaV3(model, decay=rt.ema) if rt.ema else None
        num_updates = 0
        if ckpt is not None:
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            if ema is not None:
                ema.load_state_dict(ckpt["ema"])
            num_updates = ckpt["num_updates"]
            self._set_rng_state(ckpt["rng"])
        sched.step_update(num_updates)
        criterion = nn.CrossEntropyLoss(label_smoothing=rt.label_smoothing)
        every = self._log_every()
        phase = f"retrain {tag}"
        objs = {"model": model, "optimizer": opt}
        if ema is not None:
            objs["ema"] = ema
        done, sums = self._partial(ckpt)
        for epoch in range(start_epoch, rt.epochs):
            model.train()
            loss_sum = torch.zeros((), device=self.device)
            correct = torch.zeros((), device=self.device)
            seen = 0
            if sums is not None:
                loss_sum, correct, seen = sums["loss"].to(self.device), sums["correct"].to(self.device), sums["seen"]
            with self.reporter.epoch(phase, epoch, rt.epochs, len(loader)) as update:
                for step, (x, y) in enumerate(loader.epoch(epoch, done), start=done):
                    loss, corr = train_step(model, x, y, opt, criterion, self.info, rt.grad_clip, self.device)
                    num_updates += 1
                    sched.step_update(num_updates)
                    if ema is not None:
                        ema.update(model, step=num_updates)
                    loss_sum += loss
                    correct += corr
                    seen += y.numel()
                    if (step + 1) % every == 0 or step + 1 == len(loader):
                        mean = loss_sum.item() / (step + 1)
                        if not math.isfinite(mean):
                            raise UserError(f"{phase}: the training loss became {mean} at epoch {epoch + 1}; "
                                            f"lower retrain.lr or set retrain.grad_clip")
                        update(step + 1, loss=mean, acc=correct.item() / max(seen, 1))
                        self.reporter.log(phase=phase, epoch=epoch + 1, step=step + 1, loss=mean,
                                          accuracy=correct.item() / max(seen, 1), lr=opt.param_groups[0]["lr"])
                    self._step_done(idx, epoch, step + 1, len(loader), lambda: dict(
                        objs, num_updates=num_updates, sums={"loss": loss_sum, "correct": correct, "seen": seen}))
            done, sums = 0, None
            self.reporter.info(f"{phase} epoch {epoch + 1}/{rt.epochs}: loss "
                               f"{loss_sum.item() / max(len(loader), 1):.4f} acc {correct.item() / max(seen, 1):.3f}")
            if epoch + 1 < rt.epochs:
                self._save(idx, epoch + 1, num_updates=num_updates, **objs)
        final = ema.module if ema is not None else model
        if ema is not None:
            model.load_state_dict(ema.module.state_dict())
        final.eval()
        test_loss, accuracy = evaluate(final, self.data.test, self.device, self.info)
        self.reporter.info(f"{phase}: test accuracy {accuracy:.4f} (loss {test_loss:.4f})")
        self.reporter.log(phase=phase, epoch=rt.epochs, step=0, loss=test_loss, accuracy=accuracy, split="test")
        return accuracy

    def _inherit(self, model: nn.Module, arch: torch.Tensor) -> None:
        """retrain.epochs 0: the exported model takes the supernet's weights on the chosen path."""
        from automl.export import inherit_weights

        net = self.space.build_supernet()
        net.load_state_dict(self.supernet_state)
        # not trained further: only exported, as a plain timm network
        inherit_weights(net.eval(), arch, plain_convs(model.cpu().eval()), tuple(self.space.input_shape))
        model.to(self.device)

    def _export(self, i: int, model: nn.Module, arch: torch.Tensor, eps) -> str | None:
        r = self.recipe
        if r.search.budgets is not None:
            b = self._budget(i)
            sub = f"budget-{i}-" + ("none" if b is None else short_number(b))
        else:
            sub = f"eps-{eps:g}" if eps is not None else f"random-{i}"
        root = r.export_root(self.out)
        folder = root / sub
        from automl.export import export_architecture

        # export_architecture exports a CPU copy in eval mode; the trained model stays where it is
        export_architecture(self.retrain_space, arch, folder, model=model, se=r.retrain.se,
                            opset=r.export.opset, onnx=r.export.onnx, epsilon=eps,
                            cost=self.space.cost_table.total(arch, r.search.cost), cost_metric=r.search.cost,
                            space_path=r.space_path, space_args=self.retrain_space_args,
                            normalize=self.data.normalize)
        if not r.export.onnx:
            return None
        from automl.export.quantize import int8_summary, measure_export

        # onnxruntime latency on this machine (and int8: calibrated on the run's own training data)
        m = measure_export(folder, quantize=r.export.quantize, calibration=self.data.full.epoch(0),
                           test=lambda: self.data.test.epoch(0))
        self._edge[i] = {"latency_ms": m["latency"]["fp32_ms"], "int8": int8_summary(m)}
        onnx_path = folder / "model.onnx"
        try:
            return str(onnx_path.relative_to(self.out))
        except ValueError:
            return str(onnx_path)

    # ------------------------------------------------------------------ results
    def _results(self) -> dict:
        r = self.recipe
        archs = []
        for i, arch in enumerate(self.archs or []):
            res = self.results.get(str(i), {})
            a = torch.tensor(arch, dtype=torch.long)
            archs.append({
                "epsilon": self._epsilon(i),
                "budget": self._budget(i),
                "choices": self.space.decode(a),
                "params": res.get("params"),
                "cost": float(self.space.cost_table.total(a, r.search.cost)),
                "test_accuracy": res.get("test_accuracy"),
                "onnx": res.get("onnx"),
                "macs": float(self.retrain_space.cost_table.total(a, "macs")),
                "latency_ms": res.get("latency_ms"),
                "int8": res.get("int8"),
            })
        search_kinds = ("weights", "theta", "simultaneous", "random")
        return {
            "recipe": r.name,
            "method": self.method,
            "search_seconds": round(sum(self.phase_seconds.get(k, 0.0) for k in search_kinds), 3),
            "phase_seconds": {k: round(v, 3) for k, v in self.phase_seconds.items()},
            "cost_metric": r.search.cost,
            "utility": r.search.utility,
            "cost_normalization": {"normalized": bool(r.search.normalize_costs),
                                   "scale": getattr(self, "cost_scale", 1.0)},
            "world_size": self.info.world_size,
            "threads": self.threads.to_dict(),
            "architectures": archs,
            **({"ranking": self._ranking_results()} if r.ranking else {}),
        }

