"""Review QJ: the lock record's torchrun, and what rank 0 says of a signal the ranks never agreed on.

1. Under torchrun the record named rank 0's parent as its torchrun: with a wrapper (``torchrun --no-python
   ./job.sh``, a script that runs python without exec) the advice killed the shell. Torchrun is now found among the
   parents by its command line; where it cannot be found (no /proc: macOS) the record says the run is under
   torchrun without a pid, and the advice is to stop that torchrun, not "started without torchrun".
2. Where the kernel names another holder than the record's pid (a run in a container), the message named the
   record's torchrun but advised ``kill`` of rank 0 alone: the advice now goes through the holder's torchrun.
3. The run took the first signal as agreed by the ranks once it was pending after a step's exchange, even where it
   came as the exchange ran (the ranks' result had no signal): :attr:`Preemption.agreed` is now the exchange's.
4. The RanksLost message said "the report was not finished" by what the run was finishing when the rank was lost,
   not by what the notice had announced (a checkpoint): :attr:`Preemption.announced` keeps the notice's.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import automl._lock as lock_module
from automl._lock import LOCK_NAME, RunLock
from automl.errors import UserError
from automl.pipeline import run as run_module
from automl.train import preempt
from automl.train.distributed import DistInfo, RanksLost
from automl.train.preempt import Preemption

pytestmark = pytest.mark.skipif(os.name != "posix", reason="flock, signals")

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = "/v/bin/python3 /v/bin/torchrun --nproc_per_node=2 --no-python ./job.sh"


def _processes(monkeypatch, table: dict[int, tuple[int, str]] | None) -> None:
    """/proc as if the processes of ``table`` (pid -> (parent, command line)) ran; any other pid's entries are
    unreadable (gone, hidden). ``table`` None: no /proc at all (macOS)."""
    real_open = builtins.open

    def fake_open(file, *args, **kwargs):
        if not (isinstance(file, str) and file.startswith("/proc/")):
            return real_open(file, *args, **kwargs)
        parts = file.split("/")
        pid = int(parts[2]) if len(parts) == 4 and parts[2].isdigit() else None
        if table is None or pid not in table:
            if table is not None and pid is None:
                return real_open(file, *args, **kwargs)  # /proc/locks
            raise FileNotFoundError(2, "No such file or directory", file)
        parent, command = table[pid]
        name = command.split()[0].rsplit("/", 1)[-1][:15]
        data = ("\0".join(command.split()) + "\0").encode() if parts[3] == "cmdline" else \
            f"{pid} ({name}) S {parent} {pid} {pid} 0 -1".encode()
        return io.BytesIO(data)

    monkeypatch.setattr(builtins, "open", fake_open)


def _torchrun_env(monkeypatch) -> None:
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "GROUP_WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in (("WORLD_SIZE", "2"), ("RANK", "0"), ("LOCAL_RANK", "0"), ("GROUP_WORLD_SIZE", "1"),
                 ("LOCAL_WORLD_SIZE", "2")):
        monkeypatch.setenv(k, v)


def _refusal(folder: Path, monkeypatch) -> tuple[str, dict]:
    """This process takes the lock as rank 0 under torchrun (the env and /proc faked before), then a second writer
    (one process) is refused: its message and the record."""
    held = RunLock(folder)
    assert held.acquire()
    try:
        record = json.loads((folder / LOCK_NAME).read_text())
        for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "GROUP_WORLD_SIZE", "LOCAL_WORLD_SIZE"):
            monkeypatch.delenv(k)
        with pytest.raises(UserError) as e:
            RunLock(folder).acquire()
    finally:
        held.release()
    return str(e.value), record


# ------------------------------------------------------------------ 1. torchrun among the parents

def test_a_wrapper_between_torchrun_and_rank_0_is_not_taken_for_torchrun(tmp_path, monkeypatch):
    """torchrun --no-python ./job.sh: rank 0's parent is the script's shell; the record and the advice name the
    torchrun above it."""
    _torchrun_env(monkeypatch)
    me = os.getpid()
    _processes(monkeypatch, {me: (9001, "python -m automl run r.yaml"), 9001: (9000, "/bin/bash ./job.sh"),
                             9000: (1, TORCHRUN), 1: (0, "/sbin/init")})
    monkeypatch.setattr(os, "getppid", lambda: 9001)
    message, record = _refusal(tmp_path, monkeypatch)
    assert record["torchrun"] == 9000, record
    assert "its torchrun is process 9000)" in message, message
    assert "stop the whole run through its torchrun (kill 9000, which passes the signal on to every rank" in message
    assert "9001" not in message, message


@pytest.mark.parametrize("command, found", [
    ("/v/bin/python3 /v/bin/torchrun --nproc_per_node=2 x.py", True), ("torchrun --standalone x.py", True),
    ("python -m torch.distributed.run --nproc_per_node=2 x.py", True), ("python3 -mtorch.distributed.run x.py", True),
    ("python -X dev -m torch.distributed.launch x.py", True),
    ("python /v/lib/python3.11/site-packages/torch/distributed/run.py x.py", True),
    ("timeout 60 torchrun x.py", False), ("python job.py torchrun", False), ("python -c torchrun", False),
    ("python -m automl run r.yaml", False)])
def test_torchrun_is_told_by_its_command_line(command, found, monkeypatch):
    """Torchrun's console script, module or file, after the interpreter's options; not a word further on."""
    _processes(monkeypatch, {500: (400, "python worker.py"), 400: (1, command), 1: (0, "/sbin/init")})
    assert lock_module._torchrun_above(500) == (400 if found else None)


def _without_proc(tmp_path, monkeypatch, leads: bool) -> tuple[str, dict]:
    _torchrun_env(monkeypatch)
    _processes(monkeypatch, None)
    monkeypatch.setattr(os, "getppid", lambda: 9001)
    monkeypatch.setattr(os, "getsid", lambda pid: os.getpid() if leads else 9001)
    return _refusal(tmp_path, monkeypatch)


def test_without_proc_a_rank_in_a_wrapper_is_said_to_run_under_torchrun_without_a_pid(tmp_path, monkeypatch):
    """No /proc (macOS) and rank 0 does not lead its session (torch starts each worker in one: its wrapper does):
    its parent may be the wrapper, so no pid; the message says it runs under torchrun and to stop that torchrun."""
    message, record = _without_proc(tmp_path, monkeypatch, leads=False)
    assert "torchrun" in record and record["torchrun"] is None, record
    assert "rank 0 of 2 under torchrun, process " in message and "without torchrun" not in message, message
    assert (f"stop the whole run through its torchrun (kill the torchrun that started process {os.getpid()}, which "
            f"passes the signal on to every rank: it writes a checkpoint and exits)") in message, message
    assert "9001" not in message, message


def test_without_proc_a_rank_leading_its_session_names_its_parent(tmp_path, monkeypatch):
    """No /proc, and rank 0 leads a session of its own: torch started it there, so its parent is torchrun."""
    message, record = _without_proc(tmp_path, monkeypatch, leads=True)
    assert record["torchrun"] == 9001, record
    assert "stop the whole run through its torchrun (kill 9001, which" in message, message


@pytest.mark.parametrize("extra, head, stop", [
    ({}, "rank 0 of 2 (started without torchrun), process 4242 on ", "stop it (kill 4242: "),
    ({"torchrun": 4200}, "rank 0 of 2 under torchrun, process 4242 on ", "through its torchrun (kill 4200, which")])
def test_an_older_automls_record_reads_as_before(extra, head, stop, tmp_path):
    """Records written before: no torchrun (by hand), or its pid."""
    record = {"pid": 4242, "host": socket.gethostname(), "started": "x", "command": "automl run r.yaml",
              "rank": 0, "world_size": 2, **extra}
    who, how, _ = _holder_of(tmp_path, record)
    assert who.startswith(head) and stop in how, (who, how)


def _holder_of(folder: Path, record: dict, holders: list[int] | None = None) -> tuple[str, str, object]:
    """What a refusal says of the lock record ``record``, the kernel naming ``holders``."""
    path = folder / LOCK_NAME
    path.write_text(json.dumps(record))
    return lock_module._holder(path, holders)


# ------------------------------------------------------------------ 2. the kernel names another holder

CONTAINER = {"pid": 7, "host": socket.gethostname(), "started": "x", "command": "automl run r.yaml", "rank": 0,
             "world_size": 2, "torchrun": 1}  # written inside a container: torchrun is its pid 1


def test_a_holder_the_kernel_names_is_stopped_through_its_torchrun(monkeypatch, tmp_path):
    _processes(monkeypatch, {9100: (9050, "python -m automl run r.yaml"), 9050: (8000, TORCHRUN),
                             8000: (1, "containerd-shim"), 1: (0, "/sbin/init")})
    who, how, _ = _holder_of(tmp_path, CONTAINER, [9100])
    assert who.startswith("process 9100 on ") and "started by torchrun process 9050" in who, who
    assert how.startswith("stop the whole run through its torchrun (kill 9050, which passes the signal on"), how
    assert "kill 9100" not in how and "kill 1" not in how, how


def test_a_holder_whose_torchrun_is_not_found_is_stopped_through_it_all_the_same(monkeypatch, tmp_path):
    """The record says torchrun (the container's pid 1, not this namespace's): the advice is the torchrun that
    started the holder, without a pid."""
    _processes(monkeypatch, {9100: (9050, "python -m automl run r.yaml")})  # its parent hidden
    who, how, _ = _holder_of(tmp_path, CONTAINER, [9100])
    assert "its lock file names rank 0 of 2 under torchrun, process 7" in who, who
    assert how.startswith("stop the whole run through its torchrun (kill the torchrun that started process 9100, "
                          "which passes"), how


def test_a_holder_the_kernel_names_without_torchrun_is_killed_itself(monkeypatch, tmp_path):
    _processes(monkeypatch, {9100: (9050, "python -m automl rank r"), 9050: (1, "bash"), 1: (0, "/sbin/init")})
    who, how, _ = _holder_of(tmp_path, {**CONTAINER, "rank": None, "world_size": None, "torchrun": None}, [9100])
    assert how.startswith("stop it (kill 9100: it finishes the current retraining"), how


# ------------------------------------------------------------------ 3-4. a signal, then a rank lost

LOST = "rank 0 of 2: rank 1, the run's other process, ended; continue the run with --resume"


class _Stage:
    def __init__(self, act):
        self.act = act

    def run(self, ctx, state, idx):
        self.act()


def _lost_after(monkeypatch, first, report=None) -> str:
    """rank 0 of 2 runs a stage (``first``), then the report stage (``report``; default: rank 1 is lost there), as
    automl/pipeline/run.py's _run_stages does: the error it ends with."""
    for k in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(preempt.dist, "get_backend", lambda *a: "gloo")
    info = DistInfo(rank=0, world_size=2)
    p = Preemption(info)  # the run's Preemption

    def lose():
        raise RanksLost(LOST)

    run = SimpleNamespace(info=info, reporter=None, resume_command="automl run r.yaml --resume", finished=False)
    plan = SimpleNamespace(stages=[_Stage(lambda: first(p)), _Stage(report or lose)],
                           report=SimpleNamespace(written=False))
    with pytest.raises(RanksLost) as e:
        run_module._run_stages(run, plan, SimpleNamespace(), SimpleNamespace(stage=0), p)
    return str(e.value)


def test_a_signal_that_came_as_the_ranks_exchanged_is_not_taken_as_agreed(monkeypatch, capfd):
    """SIGTERM (torchrun's, as rank 1 died) handled while the step's exchange ran: the ranks' result has no signal,
    so they did not agree on it; rank 1 is then lost: no checkpoint was written on it."""
    def all_reduce(t, op=None, group=None):  # the other rank sent nothing; the signal comes meanwhile
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)

    def first(p):
        monkeypatch.setattr(preempt.dist, "all_reduce", all_reduce)
        assert p.step() is False and p.pending == signal.SIGTERM
        raise RanksLost(LOST)

    message = _lost_after(monkeypatch, first)
    assert message == (f"no checkpoint was written on the SIGTERM above (torchrun sends SIGTERM to the workers left "
                       f"when one of them ends): {LOST}"), message
    assert "SIGTERM: finishing the current step, then writing a checkpoint" in capfd.readouterr().err


def test_a_signal_in_the_ranks_result_is_agreed(monkeypatch):
    """The exchange returned the signal: the ranks agreed, the checkpoint was written; a rank lost after keeps
    RanksLost's own message."""
    def all_reduce(t, op=None, group=None):
        t[0] = max(int(t[0]), signal.SIGTERM * 2)  # rank 1 received SIGTERM

    def first(p):
        monkeypatch.setattr(preempt.dist, "all_reduce", all_reduce)
        assert p.step() is True and p.pending == signal.SIGTERM and p.agreed
        raise RanksLost(LOST)

    assert _lost_after(monkeypatch, first) == LOST


def test_the_lost_ranks_message_says_what_the_notice_announced(monkeypatch, capfd):
    """The notice of SIGTERM announced a checkpoint (it came during a stage); the ranks had not agreed on it when
    rank 1 was lost in the report stage: no checkpoint was written, not "the report was not finished"."""
    message = _lost_after(monkeypatch, lambda p: p._handle(signal.SIGTERM, None))
    assert "SIGTERM: finishing the current step, then writing a checkpoint" in capfd.readouterr().err
    assert message.startswith("no checkpoint was written on the SIGTERM above"), message


def test_a_notice_during_the_report_says_the_report_was_not_finished(monkeypatch, capfd):
    holder = {}

    def first(p):
        holder["p"] = p

    def report():
        holder["p"]._handle(signal.SIGTERM, None)
        raise RanksLost(LOST)

    message = _lost_after(monkeypatch, first, report)
    assert "SIGTERM: finishing the report, the run's last step" in capfd.readouterr().err
    assert message.startswith("the report was not finished on the SIGTERM above"), message


# ------------------------------------------------------------------ 1, for real: torchrun --no-python ./job.sh

WORKER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from automl._lock import RunLock
    out = Path(sys.argv[1])
    if os.environ["RANK"] == "0":
        lock = RunLock(out)
        assert lock.acquire()
        (out / "held").write_text("")
        end = time.monotonic() + 60
        while not (out / "done").exists() and time.monotonic() < end:
            time.sleep(0.05)
        lock.release()
""")


@pytest.mark.heavy
def test_torchrun_with_a_wrapper_script_is_named_in_the_lock(tmp_path, free_port):
    """A real torchrun of two CPU processes, each started by a bash script that runs python (no exec): the record
    names torchrun (the process this test started), not the script's shell."""
    out, script, job = tmp_path / "run", tmp_path / "worker.py", tmp_path / "job.sh"
    out.mkdir()
    script.write_text(WORKER)
    job.write_text(f"#!/bin/bash\n{sys.executable} {script} {out}\necho done $?\n")
    job.chmod(0o755)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    for k in ("WORLD_SIZE", "RANK", "GROUP_WORLD_SIZE"):
        env.pop(k, None)
    p = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          f"--master_port={free_port()}", "--no-python", str(job)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        end = time.monotonic() + 120
        while not (out / "held").exists() and p.poll() is None and time.monotonic() < end:
            time.sleep(0.05)
        assert (out / "held").exists(), p.communicate(timeout=60)[0] if p.poll() is not None else "no lock"
        record = json.loads((out / LOCK_NAME).read_text())
        with pytest.raises(UserError) as e:
            RunLock(out).acquire()
    finally:
        (out / "done").write_text("")
        text = p.communicate(timeout=120)[0]
    assert p.returncode == 0, text
    assert record["torchrun"] == p.pid and record["rank"] == 0 and record["world_size"] == 2, (record, p.pid)
    assert f"kill {p.pid}, which passes the signal on to every rank" in str(e.value), str(e.value)
