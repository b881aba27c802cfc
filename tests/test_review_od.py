"""Review OD: a run folder's lock held by a command whose record is not in the file yet (it took the lock, the file
still names the last holder, or nothing) is refused with the advice of the command that holds it (its command line),
not the last holder's; an ``automl rank`` stopped part-way keeps in results.json the retrainings an earlier stopped
one recorded that it reuses, so a rerun does not compute them again."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from automl._lock import LOCK_NAME, RunLock
from automl.cli import main
from automl.errors import UserError
from automl.pipeline import Run
from automl.pipeline.results import PARTIAL
from automl.recipe import load_recipe
from helpers import QUICK, stopped_rank
from test_ranking import TINY

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared
STOPPED = r"stopped by SIGTERM; (\d+) of (\d+) retrainings are recorded"


def _counts(text: str, pattern: str) -> list[tuple[int, int]]:
    return [(int(k), int(n)) for k, n in re.findall(pattern, text)]


# ---- 1. the lock's holder named by the command it runs, while its record is the last holder's -------------------

def _new_holder(tmp_path: Path, folder: Path, verb: str) -> subprocess.Popen:
    """A process that runs a program named ``automl`` (as the console script runs: the interpreter, then the
    script) with ``verb`` on ``folder``, holding its lock without having written its record yet."""
    script = tmp_path / "bin" / "automl"
    script.parent.mkdir()
    script.write_text("import fcntl, os, sys, time\n"
                      f"fd = os.open({str(folder / LOCK_NAME)!r}, os.O_RDWR | os.O_CREAT, 0o644)\n"
                      "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
                      "print('ready', flush=True)\n"
                      "time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, str(script), verb, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="Linux: the kernel's list of locks")
@pytest.mark.parametrize("last", ["automl run r.yaml --out RUN", None])  # the last holder's record, or none
def test_a_new_holder_not_yet_recorded_gets_the_advice_of_its_own_command(tmp_path, monkeypatch, last):
    folder = tmp_path / "run"
    folder.mkdir()
    if last is not None:  # the run that held it last (ended: its pid is no process now)
        (folder / LOCK_NAME).write_text(json.dumps({"pid": 4194304 + 1, "host": socket.gethostname(),
                                                    "started": "2026-01-01 00:00:00 UTC", "command": last}))
    holder = _new_holder(tmp_path, folder, "rank")
    monkeypatch.setattr(sys, "argv", ["automl", "run", "r.yaml", "--out", str(folder), "--resume"])
    try:
        with pytest.raises(UserError) as e:
            RunLock(folder).acquire()
    finally:
        holder.kill()
        holder.wait()
    said = str(e.value)
    assert f"an automl rank is writing there (process {holder.pid} on {socket.gethostname()} (automl rank " \
           f"{folder})" in said, said
    assert (f"stop it (kill {holder.pid}: it finishes the current retraining, records it in results.json and "
            f"exits), then run this command again") in said, said
    assert "checkpoint" not in said and "--resume" not in said, said


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="Linux: the kernel's list of locks")
def test_a_rank_that_holds_the_lock_to_look_is_named_with_its_advice(tmp_path, monkeypatch):
    """automl rank in its checks (a look, before keep): its lock file names it, not the run that held it last."""
    monkeypatch.setattr(sys, "argv", ["automl", "run", "r.yaml", "--out", str(tmp_path)])
    run = RunLock(tmp_path)
    assert run.acquire()
    run.release()
    monkeypatch.setattr(sys, "argv", ["automl", "rank", str(tmp_path)])
    looking = RunLock(tmp_path)
    assert looking.acquire(then="then run automl rank again", look=True)
    monkeypatch.setattr(sys, "argv", ["automl", "run", "r.yaml", "--out", str(tmp_path), "--resume"])
    try:
        with pytest.raises(UserError) as e:
            RunLock(tmp_path).acquire()
    finally:
        looking.release()
    said = str(e.value)
    assert "an automl rank is writing there" in said and f"(automl rank {tmp_path})" in said, said
    assert "then run this command again" in said and "--resume" not in said, said
    assert json.loads((tmp_path / LOCK_NAME).read_text())["command"].startswith("automl run r.yaml")  # as it was


# ---- 2. a stopped automl rank keeps the retrainings of an earlier stopped one that it reuses ---------------------

def _stopped_rank(out: Path, monkeypatch, capsys, stop_at: int, *flags: str) -> tuple[str, dict]:
    """``automl rank out flags`` stopped (SIGTERM) after its ``stop_at``-th stage: what it said, and results.json's
    partial ranking then."""
    said, code = stopped_rank(out, monkeypatch, capsys, stop_at, *flags)
    assert code == 128 + signal.SIGTERM
    monkeypatch.undo()
    return said, json.loads((out / "results.json").read_text())[PARTIAL]


def _seeds(partial: dict) -> list[list[int]]:
    return [sorted(t["seed"] for t in a.get("retrainings", [])) for a in partial["archs"]]


def test_a_stopped_rank_keeps_the_retrainings_of_an_earlier_stopped_one_it_reuses(tmp_path, monkeypatch, capsys):
    """A ranking of 3 architectures stopped after 2 (seed 0 of architectures 1 and 2 recorded), then one of 2
    seeds stopped after its first computed retraining (architecture 1, seed 1): its record keeps seed 0 of
    architecture 2 (the first one's, which it would reuse further on), the stop says it, and the rerun reuses it."""
    out = tmp_path / "run"
    Run(load_recipe(QUICK, TINY), out, tty=False).execute()
    capsys.readouterr()
    said, first = _stopped_rank(out, monkeypatch, capsys, 2, "--archs", "3")
    assert _counts(said, STOPPED) == [(2, 3)], said
    assert _seeds(first) == [[0], [0], []]
    said, second = _stopped_rank(out, monkeypatch, capsys, 2, "--archs", "3", "--seeds", "2")
    assert _seeds(second) == [[0, 1], [0], []], second
    assert second["archs"][1] == first["archs"][1]  # as the first ranking measured it
    stopped = _counts(said, STOPPED)
    assert stopped == [(3, 6)], said
    assert main(["rank", str(out), "--archs", "3", "--seeds", "2"]) == 0
    rerun = _counts(capsys.readouterr().out, r"(\d+) of (\d+) retrainings were recorded by an earlier ranking")
    assert rerun == stopped
    assert PARTIAL not in json.loads((out / "results.json").read_text())  # complete: no partial record left


def test_an_earlier_partial_of_other_settings_is_not_kept(tmp_path, monkeypatch, capsys):
    """A stopped ranking of other epochs: its retrainings are no use to this one (another stand-alone network), and
    this one's record holds its own only."""
    out = tmp_path / "run"
    Run(load_recipe(QUICK, TINY), out, tty=False).execute()
    capsys.readouterr()
    _, first = _stopped_rank(out, monkeypatch, capsys, 2, "--archs", "3", "--retrain-epochs", "2")
    assert _seeds(first) == [[0], [0], []] and first["retrain_epochs"] == 2
    said, second = _stopped_rank(out, monkeypatch, capsys, 1, "--archs", "3")
    assert _seeds(second) == [[0], [], []] and second["retrain_epochs"] == 1, second
    assert _counts(said, STOPPED) == [(1, 3)], said
