"""When to checkpoint inside an epoch, and stopping cleanly on SIGTERM / SIGINT.

* While the run's stages execute, SIGTERM (a cluster preempting or requeueing the job, ``kill``) and SIGINT
  (Ctrl-C) only record the signal. The training loop finishes its current step, writes a checkpoint and
  raises :class:`automl.errors.Stopped` (exit code 128 + signal: 143, 130). A second signal exits at once
  (``os._exit``); a checkpoint being written then is abandoned before its index names it, so the previous
  one stays the one ``--resume`` loads.
* ``checkpoint.every_minutes`` and ``checkpoint.every_steps`` ask for a checkpoint inside an epoch.
* Under torchrun every rank must decide the same thing at the same step, or the ranks would wait for each
  other in different collectives: after each step the ranks all-reduce (max) [signal received, checkpoint
  due], and only rank 0's clock counts for ``every_minutes``. With NCCL the exchange goes over a side gloo
  group, so it never waits for the GPU. One process: no exchange, a clock read per step.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager

import torch
import torch.distributed as dist

from automl.train.distributed import DistInfo

__all__ = ["Preemption"]

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preemption:
    def __init__(self, info: DistInfo, every_minutes: float | None = None, every_steps: int | None = None,
                 finishing: str = "the current step, then writing a checkpoint"):
        """``finishing``: what the run does before it stops, as the first signal's message says it."""
        self.info = info
        self.finishing = finishing
        self.every_s = None if every_minutes is None else float(every_minutes) * 60.0
        self.every_steps = every_steps
        self.pending = 0  # the first signal received (its number), 0: none
        self._steps = 0
        self._last = time.monotonic()
        self._group = None
        if info.enabled and dist.get_backend() != "gloo":
            self._group = dist.new_group(backend="gloo")  # collective: every rank builds one here

    @contextmanager
    def armed(self):
        """Catch SIGTERM and SIGINT inside the block (main thread only: Python allows handlers nowhere else)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {s: signal.signal(s, self._handle) for s in SIGNALS}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.pending:
            # raw writes: a handler may run in the middle of a print to the same stream
            os.write(2, f"\n{name} again: stopping now; the last checkpoint written is intact\n".encode())
            os._exit(128 + signum)
        self.pending = signum
        if self.info.is_main:
            os.write(2, f"\n{name}: finishing {self.finishing} (send it again to stop at once)\n".encode())

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
        self._steps = 0
        self._last = time.monotonic()

    def _agree(self, signum: int, due: int) -> tuple[int, int]:
        if not self.info.enabled:
            return signum, due
        t = torch.tensor([signum, due], dtype=torch.int64)  # on the CPU: gloo
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self._group)
        return int(t[0]), int(t[1])
