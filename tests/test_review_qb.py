"""Review QB: what a user sees under torchrun.

1. ``kill -9`` of rank 1: torchrun sends SIGTERM to rank 0, which printed "SIGTERM: finishing the current step, then
   writing a checkpoint" and then stopped with RanksLost without writing one (the ranks cannot agree without rank
   1). Rank 0's error now says first that no checkpoint was written on that SIGTERM. The unit tests lose the rank in
   one process (a collective raises :class:`RanksLost` where gloo would); the heavy test kills rank 1 under torchrun.
2. The run folder's lock record named rank 0's process only: it now says "rank 0 of 2 under torchrun" and names
   torchrun's process, through which the whole run stops.
3. ``Run(...)`` in a script under torchrun said to continue with the one-process ``automl run ... --resume``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import automl._lock as lock_module
from automl._lock import LOCK_NAME, RunLock
from automl.cli import main
from automl.errors import UserError
from automl.pipeline import context
from automl.pipeline.run import Run
from automl.recipe import load_recipe
from automl.train.distributed import DistInfo, RanksLost
from automl.train.preempt import Preemption

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
FAST = ["threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
        "search.supernets=1", "data.limit_train=64", "data.batch_size=16", "data.theta_batch_size=16",
        "search.lam=2", "search.budgets=null", "search.epsilons=[0]", "export.onnx=false"]
LOST = ("rank 0 of 2: rank 1, the run's other process, ended (a crash, an out-of-memory kill, a signal) or its "
        "machine went away: its own message above, or torchrun's summary, says why (averaging gradients or BatchNorm "
        "statistics: Connection closed by peer [127.0.0.1]:12502); the checkpoints written so far are intact: "
        "continue the run with --resume")
NOTICE = "SIGTERM: finishing the current step, then writing a checkpoint"
UNKEPT = "no checkpoint was written on the SIGTERM above"


def _run(out: Path, capfd) -> tuple[int, str]:
    code = main(["run", QUICK, *FAST, "--out", str(out)])
    captured = capfd.readouterr()
    return code, captured.out + captured.err


# ------------------------------------------------------------------ 1. the notice of a signal, then a rank lost

def test_a_rank_lost_after_the_signal_notice_says_no_checkpoint_was_written(tmp_path, monkeypatch, capfd):
    """SIGTERM (torchrun's, as rank 1 died) during a step, then the step's all-reduce finds rank 1 gone: the
    notice promised a checkpoint; the error says none was written, then what to do."""
    def step_done(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # recorded by the run's handler, which prints the notice
        raise RanksLost(LOST)

    monkeypatch.setattr(context.Keeper, "step_done", step_done)
    code, text = _run(tmp_path / "r", capfd)
    assert code == 1, text
    assert NOTICE in text, text
    error = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and error[0].startswith(f"error: {UNKEPT} (torchrun sends SIGTERM"), text
    assert LOST in error[0], text  # what happened, and --resume from the checkpoints written before


def test_a_rank_lost_once_the_ranks_agreed_on_the_signal_keeps_the_message(tmp_path, monkeypatch, capfd):
    """The ranks agreed on the signal (rank 0 then writes the checkpoint) and a rank was lost after: the
    checkpoint was written, and the error is RanksLost's own."""
    real_step_done, real_signalled = context.Keeper.step_done, Preemption.signalled
    sent = []

    def step_done(self, *args, **kwargs):
        if not sent:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step_done(self, *args, **kwargs)

    def signalled(self):  # after the checkpoint the signal asked for: rank 1 is gone
        if self.pending:
            raise RanksLost(LOST)
        return real_signalled(self)

    monkeypatch.setattr(context.Keeper, "step_done", step_done)
    monkeypatch.setattr(Preemption, "signalled", signalled)
    code, text = _run(tmp_path / "r", capfd)
    assert code == 1 and sent, text
    assert NOTICE in text and UNKEPT not in text, text
    assert f"error: {LOST}" in text, text
    assert json.loads((tmp_path / "r" / "checkpoints" / "checkpoints.json").read_text()), text


WORKER = textwrap.dedent("""
    import os, signal, sys, time
    from automl.train import loops
    real, calls = loops.all_reduce_grads, [0]

    def all_reduce_grads(*args, **kwargs):  # rank 1 dies at its third step; rank 0's third step is a long one
        calls[0] += 1
        if calls[0] == 3 and os.environ["RANK"] == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        if calls[0] == 3 and os.environ["RANK"] == "0":
            time.sleep(3)  # torchrun sends SIGTERM meanwhile (it looks at its workers every 0.1 s)
        return real(*args, **kwargs)

    loops.all_reduce_grads = all_reduce_grads
    from automl.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.heavy
def test_torchrun_kill_9_of_rank_1_mid_step_promises_no_checkpoint(tmp_path, free_port):
    script, out = tmp_path / "worker.py", tmp_path / "run"
    script.write_text(WORKER)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           str(script), "run", QUICK, *FAST, "search.weight_epochs=3", "data.limit_train=256",
           "data.batch_size=32", "--out", str(out)]  # two steps an epoch on each rank
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the run did not end:\n{e.output}")
    code, text = p.returncode, p.stdout + p.stderr
    assert code == 1, text[-3000:]
    assert NOTICE in text, text[-3000:]  # torchrun's SIGTERM to rank 0, as rank 1 died
    assert f"error: {UNKEPT}" in text and "rank 1, the run's other process, ended" in text, text[-3000:]
    assert "continue the run with --resume: torchrun --nproc_per_node=2 -m automl" in text, text[-3000:]
    workers = text[:text.index("failed (exitcode")]
    assert "Traceback" not in workers, text[-3000:]


# ------------------------------------------------------------------ 2. the lock record under torchrun

def _launched(monkeypatch, world: str | None, torchrun: bool) -> None:
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "GROUP_WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    if world is not None:
        monkeypatch.setenv("WORLD_SIZE", world)
        monkeypatch.setenv("RANK", "0")
        monkeypatch.setenv("LOCAL_RANK", "0")
    if torchrun:
        monkeypatch.setenv("GROUP_WORLD_SIZE", "1")
        monkeypatch.setenv("LOCAL_WORLD_SIZE", world)


def _refused(tmp_path, monkeypatch, world: str | None, torchrun: bool) -> tuple[str, dict]:
    """The refusal a second writer (one process) gets while this process holds the lock as launched."""
    _launched(monkeypatch, world, torchrun)
    held = RunLock(tmp_path)
    assert held.acquire()
    try:
        record = json.loads((tmp_path / LOCK_NAME).read_text())
        _launched(monkeypatch, None, False)
        with pytest.raises(UserError) as e:
            RunLock(tmp_path).acquire()
    finally:
        held.release()
    return str(e.value), record


def test_the_lock_of_rank_0_under_torchrun_names_the_run_and_its_torchrun(tmp_path, monkeypatch):
    torchrun, real = os.getppid(), lock_module._cmdline  # the parent made to look like torchrun
    monkeypatch.setattr(lock_module, "_cmdline",
                        lambda p: ["python3", "/v/bin/torchrun", "x.py"] if p == torchrun else real(p))
    message, record = _refused(tmp_path, monkeypatch, "2", torchrun=True)
    pid, host = os.getpid(), socket.gethostname()
    assert record["rank"] == 0 and record["world_size"] == 2 and record["torchrun"] == torchrun, record
    assert f"rank 0 of 2 under torchrun, process {pid} on {host}, started " in message, message
    assert f"; its torchrun is process {torchrun})" in message, message
    assert (f"stop the whole run through its torchrun (kill {torchrun}, which passes the signal on to every rank: "
            f"it writes a checkpoint and exits)") in message, message
    assert f"kill {pid}" not in message, message


def test_the_lock_of_a_run_launched_by_hand_names_its_rank(tmp_path, monkeypatch):
    """RANK, WORLD_SIZE ... set by hand: no torchrun to name; a signal to rank 0 stops every rank."""
    message, record = _refused(tmp_path, monkeypatch, "2", torchrun=False)
    assert "torchrun" not in record, record
    assert f"rank 0 of 2 (started without torchrun), process {os.getpid()} on " in message, message
    assert f"stop it (kill {os.getpid()}: it writes a checkpoint and exits)" in message, message


def test_the_lock_of_one_process_is_as_before(tmp_path, monkeypatch):
    message, record = _refused(tmp_path, monkeypatch, None, torchrun=False)
    assert not {"rank", "world_size", "torchrun"} & set(record), record
    assert f"(process {os.getpid()} on " in message and "rank 0" not in message, message
    assert f"stop it (kill {os.getpid()}: it writes a checkpoint and exits)" in message, message


# ------------------------------------------------------------------ 3. Run(...) in a script under torchrun

def test_a_scripts_run_under_torchrun_is_continued_with_torchrun(tmp_path, monkeypatch):
    _launched(monkeypatch, "2", torchrun=True)
    monkeypatch.setenv("RANK", "1")  # any rank: each says what continues the run
    out = tmp_path / "run"
    run = Run(load_recipe(QUICK, FAST), out, info=DistInfo(rank=1, world_size=2, local_rank=1), tty=False)
    resolved = out / "recipe.resolved.yaml"  # the recipe has overrides: the run's own resolved recipe names them
    assert run.resume_command == f"torchrun --nproc_per_node=2 -m automl run {resolved} --out {out} --resume"


def test_a_scripts_run_of_one_process_is_continued_with_automl_run(tmp_path, monkeypatch):
    _launched(monkeypatch, None, torchrun=False)
    out = tmp_path / "run"
    run = Run(load_recipe(QUICK), out, tty=False)
    assert run.resume_command == f"automl run {QUICK} --out {out} --resume"
