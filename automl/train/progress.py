"""Progress output and the metrics log.

On a terminal: one rich progress bar per epoch (phase, epoch, step, loss, accuracy, ETA); the bar moves at
each logged point (``search.log_every`` steps) and its ETA is the epoch's speed since the first of them,
however far apart they are. A warning logged while the bar is drawn (``logging``, to the terminal) is printed
above it, on a line of its own.
Otherwise (CI, a log file, ``nohup``, a terminal that cannot move the cursor: ``TERM=dumb``, as in Emacs's
shell): one plain line per epoch. Every logged point also goes to
``metrics.jsonl`` (one JSON object per line: phase, epoch, step, loss, accuracy, lr, seconds); a resumed
run first cuts it back to the length its checkpoint recorded, so no step appears twice. An append that fails
(disk full, permissions, the run folder removed) is a user error naming the file and how to go on.
Only rank 0 prints or writes.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from automl._io import atomic_write_bytes, check_run_folder, strict_json, write_fix
from automl.errors import UserError

__all__ = ["Reporter", "plural"]

# the seconds of updates rich's ETA averages over: all of the epoch's (rich keeps its last 1000). Its default, the
# last 30 s, holds at most one update when logged points are further apart (slow steps, a large
# search.log_every): then no ETA at all
_SPEED_WINDOW = float("inf")


# how the bar shows a logged figure: as the epoch's summary line gives it (``loss 2.6599 acc 0.100``)
_STAT_FORMAT = {"loss": ".4f", "acc": ".3f"}


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 tensor``, ``2 tensors`` (``words``: the plural where it is not ``word`` + s: ``path loss``, ``path
    losses``): a count in a message."""
    return f"{n:,} {word if n == 1 else words or word + 's'}"


def _live_terminal() -> bool:
    """Whether stdout is a terminal a progress bar can redraw: not ``TERM=dumb`` (or ``unknown``), where rich
    draws no bar but ended each epoch with an empty line."""
    return sys.stdout.isatty() and os.environ.get("TERM", "").lower() not in ("dumb", "unknown")


@contextmanager
def _logging_above_bar(before: tuple):
    """Inside the block, the logging handlers that write to the terminal streams ``before`` (sys.stdout and
    sys.stderr before a live bar started) write to what rich put in their place, which prints above the bar;
    a handler keeps the stream it was given when logging was set up, so it would write into the bar's line and
    leave that line's stale copy on the screen. A stream that is not a terminal (a log file) is left alone."""
    now = {id(old): new for old, new in zip(before, (sys.stdout, sys.stderr))
           if new is not old and _isatty(old)}
    loggers = [logging.getLogger(), *(v for v in list(logging.Logger.manager.loggerDict.values())
                                      if isinstance(v, logging.Logger))]
    moved = [(h, h.stream) for lg in loggers for h in lg.handlers
             if type(h) is logging.StreamHandler and id(h.stream) in now]
    for h, old in moved:
        h.setStream(now[id(old)])
    try:
        yield
    finally:
        for h, old in moved:
            h.setStream(old)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no such method, or a closed stream
        return False


class Reporter:
    """``then(error)``: what to do after a failed append, worded by the run (its last checkpoint and --resume
    command); without it, fix the cause and run the command again."""

    def __init__(self, metrics_path: Path | None, enabled: bool = True, tty: bool | None = None,
                 then: Callable[[OSError], str] | None = None):
        self.metrics_path = metrics_path
        self.then = then
        self.enabled = enabled
        self.tty = _live_terminal() if tty is None else tty
        self._t0 = time.perf_counter()
        self._progress = None
        self._task = None

    def log(self, **fields) -> None:
        """Append one line to metrics.jsonl; in a run folder removed or moved meanwhile, nothing (a user error,
        :func:`automl._io.check_run_folder`), and an ``OSError`` is a user error naming the file."""
        if not self.enabled or self.metrics_path is None:
            return
        fields.setdefault("seconds", round(time.perf_counter() - self._t0, 3))
        # strict JSON has no NaN/Infinity: a non-finite number (a diverged loss, at any depth) is written as null
        line = json.dumps(strict_json(fields), allow_nan=False) + "\n"
        check_run_folder(self.metrics_path)
        try:
            with open(self.metrics_path, "a", encoding="utf-8") as f:
                f.write(line)
        except OSError as e:
            check_run_folder(self.metrics_path)  # the folder went since the check: that is the message
            then = self.then(e) if self.then is not None else f"{write_fix(e)} and run the command again"
            raise UserError(f"cannot write {self.metrics_path} ({e.strerror or e}); {then}") from None

    def size(self) -> int:
        """Bytes in metrics.jsonl now (a checkpoint records it: a resumed run cuts the log back to it)."""
        try:
            return self.metrics_path.stat().st_size if self.enabled and self.metrics_path else 0
        except FileNotFoundError:
            return 0

    def synced_size(self) -> int:
        """:meth:`size`, after the lines logged so far are flushed to the disk (``fsync``): a checkpoint that
        records this length is written after them, so a power cut never leaves it longer than the log."""
        if self.enabled and self.metrics_path:
            try:
                fd = os.open(self.metrics_path, os.O_RDONLY)
            except FileNotFoundError:
                return 0
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return self.size()

    def cut(self, size: int) -> None:
        """Cut metrics.jsonl back to its first ``size`` bytes, atomically: the lines logged after the
        checkpoint a run resumes from are logged again by the resumed run, and only once."""
        if not self.enabled or self.metrics_path is None or self.size() <= size:
            return
        with open(self.metrics_path, "rb") as f:
            head = f.read(size)
        atomic_write_bytes(self.metrics_path, head)

    def info(self, message: str) -> None:
        if self.enabled:
            print(message, flush=True)

    @contextmanager
    def epoch(self, phase: str, epoch: int, epochs: int, steps: int, done: int = 0):
        """Context for one epoch: ``update(step, loss=..., acc=...)`` advances the bar; ``done``: the steps a
        resumed epoch had done already (the bar starts there)."""
        if not (self.enabled and self.tty):
            yield lambda *a, **k: None
            return
        before = (sys.stdout, sys.stderr)
        # the epoch as its summary line names it, its steps, and the time left in this epoch (not the phase's)
        columns = (TextColumn("[bold]{task.description}"), BarColumn(),
                   TextColumn("{task.completed}/{task.total} steps"), TextColumn("{task.fields[stats]}"),
                   TimeRemainingColumn())
        with (Progress(*columns, transient=True, speed_estimate_period=_SPEED_WINDOW) as progress,
              _logging_above_bar(before)):
            task = progress.add_task(f"{phase} epoch {epoch + 1}/{epochs}", total=steps, completed=done,
                                     stats="")

            def update(step: int, **stats):
                text = " ".join(f"{k} {v:{_STAT_FORMAT.get(k, '.4g')}}" for k, v in stats.items() if v is not None)
                progress.update(task, completed=step, stats=text)

            yield update
