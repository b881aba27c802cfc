"""Review AX: threads (``threads: auto``), the run folder's lock and stopping on signals.

* A signal ignored when the run starts stays ignored while the stages execute, as during start-up: a shell
  without job control (a script) starts a job with ``&`` with SIGINT ignored, so that a Ctrl-C meant for the
  script does not stop it; ``Preemption.armed`` caught it anyway (the run stopped with 130).
* A damaged ``threads.json`` (a count of 0, -3, a billion, not JSON, not ASCII) made ``--resume`` an internal
  error (torch's "set_num_threads expects a positive integer", exit 1) or a count torch cannot start; it is
  now unreadable like a missing one, and the run's checkpoint decides.
* A run folder held by a process on another host: the message said ``kill PID``, which on this host signals
  whatever process has that pid here; it now names the host.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from automl._lock import LOCK_NAME, RunLock
from automl.errors import UserError
from automl.train import threads as th
from automl.train.distributed import DistInfo
from automl.train.preempt import Preemption

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals and flock")

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ preempt


@pytest.fixture
def dispositions():
    """Restores SIGTERM, SIGINT and SIGHUP as they were before the test."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_ignored_when_the_stages_start_stays_ignored(dispositions, signum):
    signal.signal(signum, signal.SIG_IGN)
    p = Preemption(DistInfo())
    with p.armed():
        assert signal.getsignal(signum) == signal.SIG_IGN
        os.kill(os.getpid(), signum)
        assert p.pending == 0  # the run goes on
    assert signal.getsignal(signum) == signal.SIG_IGN


def test_a_signal_not_ignored_is_still_caught(dispositions):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ignored: not caught
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the default: caught, the run stops after its step
    p = Preemption(DistInfo())
    with p.armed():
        os.kill(os.getpid(), signal.SIGINT)
        assert p.pending == 0
        os.kill(os.getpid(), signal.SIGTERM)
        assert p.pending == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_scripts_background_job_ignores_sigint_in_the_stages():
    """The real case: ``automl run ... &`` in a script. bash ignores SIGINT for the job; inside the stages'
    block the job still ignores it (before the fix it printed "SIGINT: finishing ..." and stopped)."""
    child = ("import os, signal\n"
             "from automl.train.distributed import DistInfo\n"
             "from automl.train.preempt import Preemption\n"
             "p = Preemption(DistInfo())\n"
             "with p.armed():\n"
             "    os.kill(os.getpid(), signal.SIGINT)\n"
             "    print('pending', p.pending, flush=True)\n")
    script = f"{sys.executable} -c \"$CHILD\" & wait $!"
    r = subprocess.run(["bash", "-c", script], env={**os.environ, "CHILD": child}, cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["pending", "0"]
    assert "SIGINT" not in r.stderr


# ------------------------------------------------------------------------------------------ threads


@pytest.mark.parametrize("content", [b'{"threads": 0}', b'{"threads": -3}', b'{"threads": 1000000000}',
                                     b'{"threads": true}', b'{"threads": 2.5}', b'{"threads": "4"}',
                                     b'\xff\xfe\x00garbage', b'{"threads": 2, "reason": "\xc3\xa9"}'])
def test_a_damaged_threads_json_is_unreadable_and_the_checkpoint_decides(tmp_path, content):
    (tmp_path / th.THREADS_FILE).write_bytes(content)
    c = th.resolve_threads("auto", out_dir=tmp_path, resume=True, work=100, environ={},
                           recorded=lambda: (3, "its checkpoint in DIR/checkpoints"))
    assert (c.threads, c.source) == (3, "resumed")
    assert f"as its checkpoint in DIR/checkpoints records it: {th.THREADS_FILE} is missing or unreadable" in c.reason


def test_a_damaged_threads_json_without_other_records_chooses_anew(tmp_path):
    (tmp_path / th.THREADS_FILE).write_text('{"threads": 0}')
    c = th.resolve_threads("auto", out_dir=tmp_path, resume=True, work=100, environ={}, recorded=lambda: None)
    assert (c.threads, c.source) == (1, "auto")


def test_a_valid_threads_json_is_kept(tmp_path):
    th.save_choice(tmp_path, th.ThreadChoice(7, "auto", "why"))
    c = th.resolve_threads("auto", out_dir=tmp_path, resume=True, work=100, environ={},
                           recorded=lambda: pytest.fail("threads.json is readable"))
    assert (c.threads, c.source) == (7, "resumed")


# ------------------------------------------------------------------------------------------ lock


def _held_by(folder: Path, host: str, pid: int = 4242) -> int:
    """A lock on ``folder`` held through another open file (flock: a second open conflicts even in this
    process), naming ``pid`` on ``host`` as its holder; returns the descriptor to close."""
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    text = json.dumps({"pid": pid, "host": host, "started": "2026-01-01 00:00:00 UTC", "command": "automl run r.yaml"})
    os.pwrite(fd, text.encode(), 0)
    return fd


def _refusal(tmp_path, monkeypatch, holder_host: str) -> str:
    """The message of a run refused by a lock that a process on ``holder_host`` holds (this host: login1)."""
    monkeypatch.setattr(socket, "gethostname", lambda: "login1")
    fd = _held_by(tmp_path, holder_host)
    try:
        with pytest.raises(UserError) as e:
            RunLock(tmp_path).acquire()
    finally:
        os.close(fd)
    return str(e.value)


def test_a_holder_on_another_host_is_killed_there(tmp_path, monkeypatch):
    message = _refusal(tmp_path, monkeypatch, "node17")
    assert "process 4242 on node17" in message
    assert "stop it (kill 4242 on node17: it writes a checkpoint and exits)" in message


def test_a_holder_on_this_host_is_killed_here(tmp_path, monkeypatch):
    assert "stop it (kill 4242: it writes a checkpoint and exits)" in _refusal(tmp_path, monkeypatch, "login1")
    lock = RunLock(tmp_path)
    assert lock.acquire()  # free once the holder's descriptor is closed
    lock.release()
