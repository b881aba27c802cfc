"""Stop signals turned into an exception for the length of a block, so that the code inside can keep or remove
what it made before the process ends (a run's start-up, ``automl space profile``,
``automl export``)."""

from __future__ import annotations

import atexit
import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

__all__ = ["raising_on", "Interrupted", "ignored_at_exit", "ignoring"]


class Interrupted(BaseException):
    """A stop signal :func:`raising_on` turned into an exception: like ``KeyboardInterrupt``, no ``except
    Exception`` takes it for an error of its own. ``signum``: the signal."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


@contextmanager
def raising_on(signals: Iterable[int], error: Callable[[int], BaseException], enabled: bool = True) -> Iterator[None]:
    """Inside the block, each of ``signals`` raises ``error(signum)`` where it would end the process: its handler
    is the default (for SIGINT, Python's ``KeyboardInterrupt``), not one a caller chose or ignored (``nohup``
    ignores SIGHUP). A second signal ends the process at once. Nothing is caught outside the main thread (Python
    sets handlers there only) or when not ``enabled``; the handlers are restored after the block."""
    default = {signal.SIGINT: signal.default_int_handler}
    caught = [s for s in signals if signal.getsignal(s) is default.get(s, signal.SIG_DFL)]
    if not enabled or threading.current_thread() is not threading.main_thread():
        caught = []

    def stop(signum, frame):
        for s in caught:
            signal.signal(s, signal.SIG_DFL)
        raise error(signum)

    old = {s: signal.signal(s, stop) for s in caught}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


_AT_EXIT: set[int] = set()  # the signals the process ignores once Python exits (ignored_at_exit)


def _ignore_at_exit() -> None:
    """Ignore the signals of :func:`ignored_at_exit` from now on; one whose handler cannot be set (not the main
    thread) is left as it is."""
    for sig in sorted(_AT_EXIT):
        try:
            signal.signal(sig, signal.SIG_IGN)
        except (ValueError, OSError):
            pass


def ignored_at_exit(signals: Iterable[int]) -> None:
    """The process ignores ``signals`` once Python exits (``atexit``), for a command whose work is complete:
    unloading torch takes seconds (4 s on a loaded 2-core machine), and a signal there would end the process with
    128 + the signal and no word, which a script takes for a stopped command; ignored, the process exits with the
    command's status. Registered once per process, however many commands it runs (tests)."""
    _AT_EXIT.update(signals)
    atexit.unregister(_ignore_at_exit)
    atexit.register(_ignore_at_exit)


@contextmanager
def ignoring(signals: Iterable[int]) -> Iterator[None]:
    """The block runs with ``signals`` ignored, their handlers restored after it: a cleanup that a second signal
    must not cut short (a stopped export removing what it wrote). Outside the main thread, handlers cannot be
    set: the block runs as it is."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in signals:
            try:
                previous[sig] = signal.signal(sig, signal.SIG_IGN)
            except (ValueError, OSError):
                pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
