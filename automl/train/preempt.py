"""When to checkpoint inside an epoch, and stopping cleanly on SIGTERM / SIGINT / SIGHUP / SIGUSR1 / SIGUSR2.

* While the run's stages execute, SIGTERM (a cluster preempting or requeueing the job, ``kill``), SIGINT
  (Ctrl-C), SIGHUP (the terminal or ssh session closed), SIGUSR1 and SIGUSR2 (Slurm's ``--signal=USR1@60``,
  sent that long before the job's time limit; submitit's ``USR2``) only record the signal; one that is ignored
  as the run starts stays ignored (SIGHUP under ``nohup``, SIGINT in a script's background job). The training
  loop finishes its current step, writes a checkpoint and raises :class:`automl.errors.Stopped` (exit code
  128 + signal: 143, 130, 129, 138, 140). A second one exits at once (``os._exit``); a checkpoint being
  written then is abandoned before its index names it, so the previous one stays the one ``--resume`` loads
  (the message says whether this command wrote one: before its first, only an earlier run's is there, or, for a
  run that has none, that there is nothing to resume: the same command again starts it afresh; where there is
  one, it names the command that continues the run, as the run's other stops do).
  A second SIGHUP does not: a terminal that closes sends it more than once. Under torchrun neither does the same
  signal again within :data:`REPEAT_S` seconds of the first: a scheduler that signals every process of the job
  (Slurm, systemd) reaches each rank directly and through torchrun, which passes it on.
* A terminal that hung up fails every write to it (EIO): on SIGHUP, standard output and error that were
  that terminal go to ``/dev/null`` instead, so the step, the checkpoint and the exit code do not depend on
  output nobody can read. DataLoader workers leave all five signals to the main process
  (:func:`automl.train.data.leave_signals_to_the_main_process`).
* ``checkpoint.every_minutes`` and ``checkpoint.every_steps`` ask for a checkpoint inside an epoch.
* Under torchrun every rank must decide the same thing at the same step, or the ranks would wait for each
  other in different collectives: after each step the ranks all-reduce (max) [signal received, checkpoint
  due], and only rank 0's clock counts for ``every_minutes``. With NCCL the exchange goes over a side gloo
  group, so it never waits for the GPU. One process: no exchange, a clock read per step. A signal that reached
  one rank only (a node-local preemption, ``kill`` of one worker) is said once too: by rank 0, as the ranks agree
  on it, naming the rank that received it; from then on every rank holds it as its own first signal.
* The notices go to standard error, after a newline only where that is a terminal (it leaves the ``^C`` the
  terminal echoed, or a progress line, on a line of its own; a log file gets no blank line).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager
from typing import Callable

import torch
import torch.distributed as dist

from automl.train.distributed import DistInfo, collective

__all__ = ["Preemption"]

# the signals that stop a run after its current step (Windows has no SIGHUP, SIGUSR1 nor SIGUSR2)
SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2")
                if hasattr(signal, name))

# under torchrun, the same signal again within this many seconds of the first is the same request, passed on
REPEAT_S = 5.0


class Preemption:
    def __init__(self, info: DistInfo, every_minutes: float | None = None, every_steps: int | None = None,
                 finishing: str = "the current step, then writing a checkpoint",
                 stopping_now: Callable[[], str] | None = None, checkpointed: bool | None = None,
                 resume: Callable[[], str] | None = None):
        """``finishing``: what the run does before it stops, as the first signal's message says it;
        ``stopping_now``: what a second signal's message says is kept (default: the checkpoints' state). Both may
        change as the run goes on: its report stage, the last, finishes rather than stops (automl/pipeline/run.py).
        ``checkpointed``: whether the run had a checkpoint when this command started (a ``--resume``), which a
        second signal before this command's first checkpoint names; None: not known. ``resume``: the command that
        continues the run from its checkpoint, which the default second-signal message names where the run has one
        (``Continue with: ...``, as every other stop says it), called as the message is made."""
        self.info = info
        self.finishing, self.stopping_now, self.resume = finishing, stopping_now, resume
        self.every_s = None if every_minutes is None else float(every_minutes) * 60.0
        self.every_steps = every_steps
        self.pending = 0  # the first signal received (its number; under torchrun: or another rank's), 0: none
        # the ranks agreed on it: a step() or signalled() returned it (the exchange's result, the same on every rank;
        # one process: its own), so the run does what the notice said; under torchrun a rank lost before that
        # (torchrun's SIGTERM to the workers left when one ended) leaves the notice's promise unkept
        self.agreed = False
        self.announced: str | None = None  # what rank 0's notice of it said the run finishes (finishing then)
        self._pending_at = 0.0  # when it came (time.monotonic())
        self._steps = 0
        self._last = time.monotonic()
        self._written = False  # a checkpoint was written since this command started (saved())
        self._checkpointed = checkpointed
        self._group = None
        self._ttys: list[int] = []  # standard output and error when they were a terminal as the block began
        if info.enabled and dist.get_backend() != "gloo":
            self._group = dist.new_group(backend="gloo")  # collective: every rank builds one here

    @contextmanager
    def armed(self):
        """Catch :data:`SIGNALS` inside the block (main thread only: Python allows handlers nowhere
        else). A signal ignored when the block begins stays ignored, as during start-up: SIGHUP under ``nohup``,
        so that the run outlives its terminal, and SIGINT in a job that a script starts with ``&`` (the shell
        ignores it there, so that a Ctrl-C meant for the script does not reach its background jobs)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        self._ttys = [fd for fd in (1, 2) if _isatty(fd)]
        caught = [s for s in SIGNALS if signal.getsignal(s) != signal.SIG_IGN]
        old = {s: signal.signal(s, self._handle) for s in caught}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        hang_up = signum == getattr(signal, "SIGHUP", None)
        if hang_up:
            _forget_hung_up(self._ttys)
            if self.pending:
                # a closing terminal sends SIGHUP more than once (the shell passes it on to its jobs, and the
                # kernel sends it to the foreground job when the shell exits): not a request to stop at once
                return
        if self.pending and self.info.enabled and signum == self.pending \
                and time.monotonic() - self._pending_at < REPEAT_S:
            return  # the scheduler's signal to every process, and torchrun's copy of it: one request
        if self.pending:
            kept = self.stopping_now() if self.stopping_now is not None else self._kept()
            _say(f"{name} again: stopping now; {kept}")
            os._exit(128 + signum)
        self.pending, self._pending_at = signum, time.monotonic()
        if self.info.is_main:
            self._announce(signum)

    def _kept(self) -> str:
        """What a second signal's message says is kept of the run: its checkpoints' state, and the command that
        continues it (:attr:`resume`) where it has a checkpoint."""
        if self._checkpointed is False and not self._written:
            return ("no checkpoint was written yet, so there is nothing to resume: run the same command again (in "
                    "the same folder it starts the run afresh, in place of what this one left)")
        try:  # a stop now must not fail on how it words the way on
            command = None if self.resume is None else self.resume()
        except Exception:  # noqa: BLE001
            command = None
        go_on = "" if command is None else f". Continue with: {command}"
        if self._written:
            return f"the last checkpoint written is intact{go_on}"
        if self._checkpointed:
            return ("no checkpoint was written since this command started; --resume continues from the run's "
                    f"previous checkpoint{go_on}")
        return ("no checkpoint was written since this command started (--resume continues from the run's previous "
                f"checkpoint, if it has one{'' if command is None else f': {command}'})")

    def _announce(self, signum: int, by: int | None = None) -> None:
        """Say that the run finishes ``self.finishing`` before it stops, on ``signum``; ``by``: the rank that
        received it, when not this one. Under torchrun the same signal within :data:`REPEAT_S` of the first is
        the same request (:meth:`_handle`): the notice says how long to wait before the one that stops at once."""
        if signum == getattr(signal, "SIGHUP", None):
            hurry = "send SIGTERM to stop at once"
        elif self.info.enabled:
            hurry = f"send it again to stop at once, {REPEAT_S:g} s or more after the first"
        else:
            hurry = "send it again to stop at once"
        whose = "" if by is None else f"rank {by} received it; "
        self.announced = self.finishing
        _say(f"{signal.Signals(signum).name}: finishing {self.finishing} ({whose}{hurry})")

    def step(self) -> bool:
        """After a training step: checkpoint now? (a signal, or ``every_*`` reached). The same on every rank."""
        self._steps += 1
        due = bool(self.every_steps and self._steps >= self.every_steps)
        if self.every_s is not None and self.info.is_main and not due:
            due = time.monotonic() - self._last >= self.every_s
        signum, due = self._agree(self.pending, int(due))
        return bool(due or signum)

    def signalled(self) -> int:
        """The signal some rank received (the same on every rank; a collective), 0: none."""
        return self._agree(self.pending, 0)[0]

    def saved(self) -> None:
        """A checkpoint was written: the ``every_*`` counts start again."""
        self._written = True
        self._steps = 0
        self._last = time.monotonic()

    def _agree(self, signum: int, due: int) -> tuple[int, int]:
        """The largest ``signum`` and ``due`` over the ranks; a signal among them sets :attr:`agreed` (one received
        as the exchange runs is not: the other ranks may not have it). A signal this rank did not receive becomes its
        :attr:`pending` one (a second signal then stops it at once, as on the rank that received it), and rank 0
        says the notice the receiving rank leaves to it (:meth:`_announce`), naming that rank."""
        if not self.info.enabled:
            self.agreed = self.agreed or bool(signum)
            return signum, due
        world = self.info.world_size
        # the signal and, among the ranks that received the largest, the lowest rank: signum * world + world-1-rank
        who = signum * world + world - 1 - self.info.rank if signum else 0
        t = torch.tensor([who, due], dtype=torch.int64)  # on the CPU: gloo
        with collective(self.info, "agreeing whether to checkpoint or stop"):
            dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self._group)
        signum, by = divmod(int(t[0]), world)
        self.agreed = self.agreed or bool(signum)  # the reduced value: a signal handled meanwhile is not in it
        if signum and not self.pending:  # another rank's signal
            self.pending, self._pending_at = signum, time.monotonic()
            if self.info.is_main:
                self._announce(signum, by=world - 1 - by)
        return signum, int(t[1])


def _say(text: str) -> None:
    """``text`` to standard error as a line of its own, in one raw write (a handler may run in the middle of a
    print to the same stream): on a terminal after a newline, which ends the line the cursor is on (the ``^C``
    echoed by Ctrl-C, a progress line), elsewhere (a log file, a pipe) not, which would leave a blank line;
    nothing when it cannot be written (a terminal gone)."""
    try:
        os.write(2, (f"\n{text}\n" if _isatty(2) else f"{text}\n").encode())
    except OSError:
        pass


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _forget_hung_up(ttys: list[int]) -> None:
    """Point each of ``ttys`` that is no longer a terminal (it hung up: its writes fail with EIO, and its
    ioctls, which ``isatty`` asks, too) at ``/dev/null``; a terminal still there (``kill -HUP`` by hand) stays."""
    for fd in ttys:
        if _isatty(fd):
            continue
        try:
            null = os.open(os.devnull, os.O_WRONLY)
        except OSError:
            return
        try:
            os.dup2(null, fd)
        except OSError:
            pass
        finally:
            os.close(null)
