"""Progress output and the metrics log.

On a terminal: one rich progress bar per epoch (phase, epoch, step, loss, accuracy, ETA).
Otherwise (CI, a log file, ``nohup``): one plain line per epoch. Every logged point also goes to
``metrics.jsonl`` (one JSON object per line: phase, epoch, step, loss, accuracy, lr, seconds); a resumed
run first cuts it back to the length its checkpoint recorded, so no step appears twice.
Only rank 0 prints or writes.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from automl._io import atomic_write_bytes, strict_json

__all__ = ["Reporter"]


class Reporter:
    def __init__(self, metrics_path: Path | None, enabled: bool = True, tty: bool | None = None):
        self.metrics_path = metrics_path
        self.enabled = enabled
        self.tty = sys.stdout.isatty() if tty is None else tty
        self._t0 = time.perf_counter()
        self._progress = None
        self._task = None

    def log(self, **fields) -> None:
        """Append one line to metrics.jsonl."""
        if not self.enabled or self.metrics_path is None:
            return
        fields.setdefault("seconds", round(time.perf_counter() - self._t0, 3))
        # strict JSON has no NaN/Infinity: a non-finite number (a diverged loss, at any depth) is written as null
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(strict_json(fields), allow_nan=False) + "\n")

    def size(self) -> int:
        """Bytes in metrics.jsonl now (a checkpoint records it: a resumed run cuts the log back to it)."""
        try:
            return self.metrics_path.stat().st_size if self.enabled and self.metrics_path else 0
        except FileNotFoundError:
            return 0

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
    def epoch(self, phase: str, epoch: int, epochs: int, steps: int):
        """Context for one epoch: ``update(step, loss=..., acc=...)`` advances the bar."""
        if not (self.enabled and self.tty):
            yield lambda *a, **k: None
            return
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), transient=True) as progress:
            task = progress.add_task(f"{phase} {epoch + 1}/{epochs}", total=steps, stats="")

            def update(step: int, **stats):
                text = " ".join(f"{k} {v:.4g}" for k, v in stats.items() if v is not None)
                progress.update(task, completed=step, stats=text)

            yield update
