import os
import signal
import socket
import sys
import threading
from pathlib import Path

import pytest
import torch

import automl.commands.run as run_command
from automl.train.checkpoint import CheckpointStore
from automl.train import threads
from automl.train.threads import usable_cores

ROOT = Path(__file__).resolve().parents[1]

# The networks in the tests are tiny: one intra-op thread is faster than two fighting over 2 cores.
torch.set_num_threads(1)

_START_DIR = pytest.StashKey[str]()

# Each pytest-xdist worker holds torch and timm, and a test may start a run or a 2-process torchrun of its own.
_MAX_WORKERS = 8


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject's addopts): one worker per core this process can keep busy — its CPU affinity, which
    a container's cpuset or ``taskset`` narrows, capped by a cgroup CPU quota (``docker --cpus``, a CI runner's CPU
    limit), not the machine's count — and at most ``_MAX_WORKERS``.
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides when set (pytest-xdist reads it); ``-n 0`` runs in one
    process."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return min(usable_cores(), _MAX_WORKERS)


def pytest_sessionstart(session):
    """The tests name shipped files relative to the repository root (``spaces/digits.space``, some at import
    time): run them from there whatever directory pytest was started in. The command line's paths are already
    resolved against the starting directory by then; the starting directory is restored at the end.

    SIGINT is Ctrl-C's, as on a terminal, even when pytest runs as a script's background job (``pytest &`` in a
    CI script: the shell ignores SIGINT there, and a run, its tests' own processes too, leaves an ignored signal
    ignored): the tests that stop a run by SIGINT send it as a terminal would."""
    session.config.stash[_START_DIR] = os.getcwd()
    os.chdir(ROOT)
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_sessionfinish(session):
    os.chdir(session.config.stash.get(_START_DIR, os.getcwd()))


@pytest.fixture
def free_port():
    """``free_port()``: a TCP port nobody listens on now (the kernel's pick for port 0), a different one at
    each call of a test, for a torchrun rendezvous; a fixed port collides with another test run on the same
    machine."""
    given = set()

    def pick() -> int:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("", 0))
                port = s.getsockname()[1]
            if port not in given:
                given.add(port)
                return port
    return pick


_HANDLED = [s for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)]


@pytest.fixture(autouse=True)
def _signal_handlers_are_given_back():
    """A test leaves the process's signal handlers as it found them: a handler left behind (a benchmark's main()
    called in-process set SIGTERM to exit) took a later test's signal, which then failed in another file. The
    handlers are put back, and the test that changed one fails, naming it."""
    before = {s: signal.getsignal(s) for s in _HANDLED}
    yield
    changed = [s.name for s in _HANDLED if signal.getsignal(s) != before[s]]
    for s in _HANDLED:
        signal.signal(s, before[s])
    assert not changed, f"the test left its own handler of {', '.join(changed)} installed"


@pytest.fixture(autouse=True, scope="session")
def _no_start_grace():
    """In this process, a rank that leaves a start-up mistake to rank 0 does not wait for it (automl run's
    START_GRACE, 5 s: a test that plays rank 1 would sleep); processes the tests start wait as users' do."""
    mp = pytest.MonkeyPatch()
    mp.setattr(run_command, "START_GRACE", 0.0)
    yield
    mp.undo()


@pytest.fixture(autouse=True, scope="session")
def _children_write_temp_files_under_pytests_basetemp(tmp_path_factory):
    """Processes the tests start (torchrun leaves a ``torchelastic_*`` folder per launch) get their TMPDIR
    inside pytest's basetemp, which pytest rotates, instead of littering the machine's /tmp."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TMPDIR", str(tmp_path_factory.mktemp("tmp")))
    yield
    mp.undo()


@pytest.fixture
def no_cpu_quota(monkeypatch):
    """No cgroup CPU quota on this process, whatever the machine has: a test that fakes the CPU affinity sees the
    cores it set (a real quota would cap :func:`automl.train.threads.usable_cores` below them)."""
    monkeypatch.setattr(threads, "_binding", lambda: None)


@pytest.fixture
def one_thread():
    """One intra-op thread for the test, the count before restored after (a module opts in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``): the test machine's cores are shared, and a
    test that set its own count would leave it for the next."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def not_utf8_folder(tmp_path):
    """``not_utf8_folder()``: a new folder in tmp_path named by the byte 0xff (Latin-1 'ÿ'), not valid UTF-8, a
    name in another encoding; the test is skipped where the file system or Python's file names refuse such a name
    (macOS, Windows). Each call makes one more (0xff, 0xff 0xff, ...)."""
    if sys.getfilesystemencoding().lower() not in ("utf-8", "utf8") or os.name != "posix":
        pytest.skip("file names are not bytes here")
    made = []

    def make() -> Path:
        folder = Path(os.fsdecode(os.fsencode(tmp_path) + b"/" + b"\xff" * (len(made) + 1)))
        try:
            folder.mkdir()
        except OSError as e:
            pytest.skip(f"this file system refuses a name that is not UTF-8 ({e})")
        made.append(folder)
        return folder

    return make


@pytest.fixture
def odd_path(tmp_path):
    """``odd_path(kind)``: a path in tmp_path/odd that names no usable file: ``loop`` (a link to itself),
    ``dangling`` (a link to nowhere.json), ``fifo``, ``socket``, or else /dev/null. A reader that opens the FIFO
    gets an empty file (a thread opens and closes its writing end), so that code that reads it ends instead of
    waiting."""
    stop, threads, sockets = threading.Event(), [], []
    (tmp_path / "odd").mkdir()

    def unblock(path: Path) -> None:
        while not stop.is_set():
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # ENXIO until a reader opens it
            except OSError:
                stop.wait(0.05)

    def make(kind: str) -> Path:
        path = tmp_path / "odd" / kind
        if kind == "loop":
            path.symlink_to(path.name)
        elif kind == "dangling":
            path.symlink_to("nowhere.json")
        elif kind == "fifo":
            os.mkfifo(path)
            threads.append(threading.Thread(target=unblock, args=(path,), daemon=True))
            threads[-1].start()
        elif kind == "socket":
            s = socket.socket(socket.AF_UNIX)
            s.bind(str(path))
            sockets.append(s)
        else:
            path = Path(os.devnull)
        return path

    yield make
    stop.set()
    for t in threads:
        t.join()
    for s in sockets:
        s.close()


class Killed(KeyboardInterrupt):
    """A run killed right after a checkpoint (as ``kill -9`` would, but in this process)."""


@pytest.fixture
def die_after_save(monkeypatch):
    """``die_after_save(when)``: the next checkpoint for which ``when(state, n)`` holds (``n``: checkpoints
    written so far, this one included) is written, then the run dies with :class:`Killed`; every later
    checkpoint is written normally (the resumed run's). Returns the list of (stage, epoch, step) written
    until the kill."""
    def arm(when):
        real, saved = CheckpointStore.save, []

        def save_then_die(self, state):
            path = real(self, state)
            saved.append((state["stage"], state["epoch"], state["step"]))
            if when(state, len(saved)):
                monkeypatch.setattr(CheckpointStore, "save", real)
                raise Killed()
            return path

        monkeypatch.setattr(CheckpointStore, "save", save_then_die)
        return saved
    return arm
