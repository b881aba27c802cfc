"""Review LF: a refused command leaves the run folder's lock file as it found it (its bytes and times, or absent),
while the lock still keeps a second writer out; and a rank that waits for rank 0 to print a start-up mistake
(``START_GRACE``) ends the wait quietly on a stop signal, exiting 2 as it would have after the wait."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import fcntl
import pytest

import automl._lock as run_lock
import automl.commands.run as run_cmd
import automl.pipeline.run as pipeline_run
from automl._lock import LOCK_NAME, RunLock
from automl.cli import main
from automl.errors import UserError
from automl.train.distributed import DistInfo
from helpers import cli_err as cli
from test_writes_review_q import QUICK, ROOT, TINY
from test_writes_review_q import stopped  # noqa: F401 - the fixture: a run killed after its first checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

RECORD = '{"pid": 4242, "host": "elsewhere", "started": "2026-01-01 00:00:00 UTC", "command": "automl run"}\n'
LONG_AGO = 1_000_000_000_000_000_000  # ns: 2001, the lock file's times before the command


def _as_left(lock: Path) -> tuple[bytes, int] | None:
    """The lock file's bytes and modification time (ns); None where there is none. (Its access time is not
    compared: reading it, here too, may set it.)"""
    if not lock.exists():
        return None
    return lock.read_bytes(), lock.stat().st_mtime_ns


def _named_long_ago(folder: Path) -> Path:
    lock = folder / LOCK_NAME
    lock.write_text(RECORD)
    os.utime(lock, ns=(LONG_AGO, LONG_AGO))
    return lock


# ---------------------------------------------------------------------------------------- 1: a refused resume


@pytest.mark.parametrize("other", ["retrain.lr=0.1", "space_args={width: 2}"])
def test_a_refused_resume_leaves_the_lock_file_as_it_was(stopped, capsys, other):
    lock = _named_long_ago(stopped)
    before = _as_left(lock)
    code, err = cli(capsys, "run", QUICK, *TINY, other, "--out", stopped, "--resume")
    assert code == 2 and "the recipe differs" in err, err
    assert _as_left(lock) == before  # the same record (not this process), the same time


def test_a_refused_resume_leaves_no_lock_file_where_there_was_none(stopped, capsys):
    (stopped / LOCK_NAME).unlink()
    code, err = cli(capsys, "run", QUICK, *TINY, "retrain.lr=0.1", "--out", stopped, "--resume")
    assert code == 2 and "the recipe differs" in err, err
    assert not (stopped / LOCK_NAME).exists()


def test_a_resume_with_nothing_to_continue_leaves_the_lock_files_time(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    lock = _named_long_ago(out)
    before = _as_left(lock)
    code, err = cli(capsys, "run", QUICK, *TINY, "--out", out, "--resume")
    assert code == 2 and "no checkpoint" in err, err
    assert _as_left(lock) == before


@pytest.mark.parametrize("had_one", [True, False])
def test_a_second_writer_is_refused_while_a_resume_checks(stopped, capsys, monkeypatch, had_one):
    """While a resume checks the folder (its lock only a look, put back if refused), the lock is held all the
    same: another command there is refused, naming this process."""
    if had_one:
        _named_long_ago(stopped)
    else:
        (stopped / LOCK_NAME).unlink()
    real, refusals = pipeline_run._check_recipe_first, []

    def second_writer_then_check(run):
        with pytest.raises(UserError) as e:
            RunLock(stopped).acquire()
        refusals.append(str(e.value))
        real(run)

    monkeypatch.setattr(pipeline_run, "_check_recipe_first", second_writer_then_check)
    code, err = cli(capsys, "run", QUICK, *TINY, "retrain.lr=0.1", "--out", stopped, "--resume")
    assert code == 2 and "the recipe differs" in err, err
    assert len(refusals) == 1 and "is in use" in refusals[0] and f"process {os.getpid()}" in refusals[0], refusals
    assert (stopped / LOCK_NAME).exists() == had_one


def test_a_resume_that_goes_on_leaves_the_lock_file_naming_it(stopped, capsys):
    _named_long_ago(stopped)
    code, err = cli(capsys, "run", QUICK, *TINY, "--out", stopped, "--resume")
    assert code == 0, err
    assert json.loads((stopped / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_a_lock_file_removed_before_it_is_locked_is_opened_again(tmp_path, monkeypatch):
    """A refused look that made the lock file removes it while it holds it; a command that opened it meanwhile
    locks the file in place (a new one), never the removed one, which no other command would see."""
    real, calls = fcntl.flock, []

    def flock_after_a_removal(fd, op):
        calls.append(op)
        if len(calls) == 1:
            os.unlink(tmp_path / LOCK_NAME)
        return real(fd, op)

    monkeypatch.setattr(run_lock.fcntl, "flock", flock_after_a_removal)
    lock = RunLock(tmp_path)
    assert lock.acquire()
    try:
        held, now = os.fstat(lock.fd), os.stat(tmp_path / LOCK_NAME)
        assert held.st_nlink == 1 and (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)
    finally:
        lock.release()


# ---------------------------------------------------------------------------------------- 2: the grace wait


def _signal_during_the_wait(monkeypatch, signum: int) -> None:
    """The next ``time.sleep`` (the rank's wait for rank 0) gets ``signum`` 0.2 s into it."""
    real = time.sleep

    def sleep(seconds):
        threading.Timer(0.2, os.kill, (os.getpid(), signum)).start()
        real(seconds)

    monkeypatch.setattr(run_cmd.time, "sleep", sleep)


def test_ctrl_c_during_the_wait_for_rank_0_exits_2_quietly(monkeypatch, capsys):
    monkeypatch.setattr(run_cmd, "START_GRACE", 5.0)
    monkeypatch.setattr(run_cmd, "launch_info", lambda: DistInfo(rank=1, world_size=2, local_rank=1))
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    _signal_during_the_wait(monkeypatch, signal.SIGINT)
    start = time.monotonic()
    code = main(["run", QUICK, "search.lamb=8"])
    took = time.monotonic() - start
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err == "", (code, out, err)  # rank 0 says the mistake; this rank nothing
    assert took < 4, took  # the signal ended the wait


_RANK_1 = """
import os, signal, sys, threading, time
import automl.commands.run as run_cmd
from automl.cli import main
from automl.train.distributed import DistInfo
run_cmd.START_GRACE = 30.0
run_cmd.launch_info = lambda: DistInfo(rank=1, world_size=2, local_rank=1)
real = time.sleep
def sleep(seconds):
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
    real(seconds)
run_cmd.time.sleep = sleep
sys.exit(main(["run", sys.argv[1], "search.lamb=8"]))
"""


def test_torchruns_sigterm_during_the_wait_for_rank_0_exits_2_quietly():
    """torchrun stops the other ranks with SIGTERM once rank 0 has exited: each exits 2 (not by the signal)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), RANK="1", LOCAL_RANK="1")
    start = time.monotonic()
    p = subprocess.run([sys.executable, "-c", _RANK_1, QUICK], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2 and p.stdout == "" and p.stderr == "", (p.returncode, p.stdout, p.stderr[-2000:])
    assert time.monotonic() - start < 30
