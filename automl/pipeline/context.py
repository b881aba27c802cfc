"""What every stage works with: the run's resources (:class:`RunContext`) and its checkpointing
(:class:`Keeper`: the one place that writes a checkpoint, times the phases and stops on a signal)."""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from automl._io import pasted_path, shell_path, write_fix
from automl.errors import Stopped, UserError
from automl.pipeline.setup import Spaces
from automl.pipeline.state import RunState, capture_rng, restore_rng
from automl.train.checkpoint import CheckpointStore
from automl.train.distributed import DistInfo, barrier, broadcast_object
from automl.train.preempt import Preemption
from automl.train.progress import Reporter

__all__ = ["RunContext", "Keeper", "on_main", "written_on_main", "how_to_go_on", "shell_path", "rng_of"]


def on_main(info: DistInfo, check: Callable[[], object]) -> object:
    """``check()`` on rank 0 alone, its answer on every rank. A user error it raises is raised on every rank,
    so each exits 2 (rank 0 prints it) instead of waiting for rank 0 in the next collective."""
    answer, error, raised = None, None, None
    if info.is_main:
        try:
            answer = check()
        except UserError as e:
            raised, error = e, (str(e), e.located)
    answer, error = broadcast_object((answer, error), info)
    if error is None:
        return answer
    if raised is None:
        raised = UserError(error[0])
        raised.located = error[1]
    elif info.enabled:  # printed before any rank exits: torchrun stops the other ranks when one exits
        print(raised.text(), file=sys.stderr, flush=True)
        raised.printed = True
    barrier(info)
    raise raised


def written_on_main(info: DistInfo, what: str, write: Callable[[], object], then: Callable[[str], str]) -> object:
    """``write()`` on rank 0 alone (:func:`on_main`). An ``OSError`` (disk full, folder removed, permissions)
    is the user error "cannot write ``what`` (why); ``then(fix)``" on every rank: a run's files are written
    where its user said, and what is written is intact, so it is not an internal error. ``fix`` is the advice
    for the error's errno (:func:`automl._io.write_fix`: "free space", "make the folder writable" for a
    permission error, "fix the cause" for one neither of space nor of permissions)."""
    def guarded() -> object:
        try:
            return write()
        except OSError as e:
            raise UserError(f"cannot write {what} ({e.strerror or e}); {then(write_fix(e))}") from None

    return on_main(info, guarded)


def how_to_go_on(saved: bool, out: Path, resume_command: str, fix: str = "free space") -> str:
    """What to do after a write of the run in ``out`` failed: ``fix`` the cause, then continue from the
    checkpoint written before (``saved``) with ``resume_command``; with none yet, nothing can be resumed: start
    again in an emptied folder."""
    if saved:
        return f"the previous checkpoint is intact: {fix} and continue with: {resume_command}"
    return (f"no checkpoint was written yet, so nothing to resume: {fix}, delete the folder "
            f"(rm -r {pasted_path(out)}) and run the command again")


class Keeper:
    """Writes the run's checkpoints (rank 0; every rank waits) and stops the run when a signal asked to.

    Also the phase clock: :meth:`start` / :meth:`stop` time a phase into ``state.phase_seconds``, and a
    checkpoint written meanwhile books the time so far, so a resumed run does not count it twice."""

    def __init__(self, state: RunState, store: CheckpointStore, info: DistInfo, reporter: Reporter,
                 preempt: Preemption, position: Callable[[int, int, int], str], resume_command: str | object,
                 rng: Callable[[], dict], enabled: bool = True, saved: bool = True):
        self.state, self.store, self.info, self.reporter = state, store, info, reporter
        # (stage, epoch, step) of a checkpoint -> where it resumes, in the log's words (pipeline.run.resume_position)
        self.preempt, self.position, self.resume_given = preempt, position, resume_command
        self.rng = rng
        self.enabled = enabled  # automl rank: off (a finished run's checkpoint is left as it is)
        self.saved = saved  # a checkpoint of the run exists: a resumed run, or a new one once it wrote one
        self._clock: tuple[str, float] | None = None

    @property
    def resume_command(self) -> str:
        """The command that continues the run, as a message names it now: ``resume_command`` as given (a string:
        ``automl run``'s), or its ``str()`` at this time (a script's ``Run(...)``: pipeline.run's ``_ScriptResume``,
        which names the run's recipe.resolved.yaml once the recipe's file was edited)."""
        return str(self.resume_given)

    # ------------------------------------------------------------------ the phase clock
    def start(self, phase: str) -> None:
        self._clock = (phase, time.perf_counter())

    def stop(self) -> None:
        phase, t0 = self._clock
        self.state.add_seconds(phase, time.perf_counter() - t0)
        self._clock = None

    # ------------------------------------------------------------------ checkpoints
    def save(self, stage: int, epoch: int, step: int = 0, inner: dict[str, Any] | None = None) -> None:
        """Checkpoint: ``stage`` stages done, then ``epoch`` epochs and ``step`` steps of the next, with
        the stage's ``inner`` objects (``state_dict()`` of those that have one); then stop if signalled."""
        if not self.enabled:
            return
        if self._clock is not None:  # book the phase's time so far: a resumed run does not redo it
            phase = self._clock[0]
            self.stop()
            self.start(phase)
        st = self.state
        st.stage, st.epoch, st.step = stage, epoch, step

        def write() -> None:  # rank 0; every rank waits for it and raises what it raised
            self.store.save({**st.to_checkpoint(), "rng": self.rng(), "metrics_bytes": self.reporter.synced_size(),
                             "inner": {k: v.state_dict() if hasattr(v, "state_dict") else v
                                       for k, v in (inner or {}).items()}})

        # disk full, permissions: the previous checkpoint is untouched (a removed run folder: its own message)
        written_on_main(self.info, f"a checkpoint in {self.store.folder}", write,
                        lambda fix: how_to_go_on(self.saved, self.store.folder.parent, self.resume_command, fix))
        self.saved = True
        self.preempt.saved()
        self._stop_if_signalled(stage, epoch, step)

    def step_done(self, stage: int, epoch: int, step: int, steps: int, inner: Callable[[], dict]) -> None:
        """After ``step`` (1-based) of the ``steps`` of ``epoch``: a checkpoint inside the epoch when
        ``checkpoint.every_*`` is reached or a signal asks to stop. After the last step the epoch's own
        checkpoint (or the stage's) follows at once."""
        if step < steps and self.preempt.step():
            self.save(stage, epoch, step, inner())

    def _stop_if_signalled(self, stage: int, epoch: int, step: int) -> None:
        signum = self.preempt.signalled()
        if signum:
            where = self.position(stage, epoch, step)
            # the command is the torchrun one under torchrun (automl/commands/run.py: resume_command)
            self.reporter.info(f"stopped by {signal.Signals(signum).name}; the checkpoint in {self.store.folder} "
                               f"resumes at {where}. Continue with: {self.resume_command}")
            raise Stopped(signum)


@dataclass
class RunContext:
    """The resources of a run, built once at start-up and read by every stage."""

    info: DistInfo
    device: torch.device
    data: Any                      # automl.train.data.RunData: loaders w, theta, full, test
    spaces: Spaces
    reporter: Reporter
    keeper: Keeper
    sampler: torch.Generator       # the weight phase's path sampler (its state is in every checkpoint)
    log_every: int
    reused: tuple | None = None    # --supernet: load_supernet's answer, read once before anything is written

    def restore(self, state: RunState, objects: dict[str, Any]) -> dict[str, Any]:
        """The one restore of a stage resumed mid-way: load each object's saved state, the RNG, and
        return the rest of the stage's saved values (update count, running sums)."""
        inner = state.inner
        for k, obj in objects.items():
            obj.load_state_dict(inner[k])
        restore_rng(state.rng, self.sampler, self.device)
        return {k: v for k, v in inner.items() if k not in objects}


def rng_of(sampler: torch.Generator, device: torch.device) -> Callable[[], dict]:
    return lambda: capture_rng(sampler, device)
