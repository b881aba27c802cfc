"""Review BK: torchrun's environment, a rank that ends or stops answering, and the signals of preemptible
clusters (a scheduler that signals every process of the job, Slurm's ``--signal=USR1@60``)."""

from __future__ import annotations

import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_kill_resume import _env

from automl.errors import UserError
from automl.train import distributed
from automl.train.checkpoint import CheckpointStore
from automl.train.distributed import DistInfo, init_distributed

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals")

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
FAST = ["threads=1", "device=cpu", "search.weight_epochs=2", "search.theta_epochs=1", "retrain.epochs=0",
        "search.supernets=1", "data.limit_train=64", "data.batch_size=32", "data.theta_batch_size=32",
        "search.lam=2", "search.budgets=null", "search.epsilons=[0]", "export.onnx=false"]
DIST_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _python(script: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_env(), timeout=timeout)


# ------------------------------------------------------------------ the same signal twice: scheduler + torchrun

_RANK_OF_TWO = """
import os, signal, sys, time
import torch.distributed as dist
from automl.train import preempt
from automl.train.distributed import DistInfo
dist.init_process_group("gloo", init_method="file://{rdv}", rank=0, world_size=1)
p = preempt.Preemption(DistInfo(rank=0, world_size=2))  # rank 0 of a torchrun run of two
preempt.REPEAT_S = {repeat}
with p.armed():
    os.kill(os.getpid(), signal.{name})   # from the scheduler, to every process of the job
    assert p.pending == signal.{name}
    time.sleep({gap})
    os.kill(os.getpid(), signal.{name})   # torchrun passing the scheduler's signal on
    time.sleep(0.05)
print("still running", p.pending)
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGUSR1"])
def test_under_torchrun_the_same_signal_again_at_once_is_one_request_not_stop_now(tmp_path, name):
    """Slurm (scancel, preemption, the time limit) and systemd signal every process of the job: each rank gets
    the signal directly and again from torchrun, which passes on what it receives. That copy must not make the
    rank exit at once without its checkpoint (seen: "SIGTERM again: stopping now", no checkpoint, and the other
    rank's internal error)."""
    p = _python(_RANK_OF_TWO.format(rdv=tmp_path / "rdv", repeat=5.0, gap=0.05, name=name))
    assert p.returncode == 0 and f"still running {getattr(signal, name).value}" in p.stdout, p.stderr[-2000:]
    assert "stopping now" not in p.stderr


def test_under_torchrun_a_signal_sent_again_later_still_stops_at_once(tmp_path):
    p = _python(_RANK_OF_TWO.format(rdv=tmp_path / "rdv", repeat=0.2, gap=0.4, name="SIGTERM"))
    assert p.returncode == 143 and "SIGTERM again: stopping now" in p.stderr, p.stderr[-2000:]
    assert "still running" not in p.stdout


# ------------------------------------------------------------------ SIGUSR1 / SIGUSR2 (Slurm --signal, submitit)

@pytest.mark.parametrize("name", ["SIGUSR1", "SIGUSR2"])
def test_sigusr1_and_sigusr2_ask_for_a_checkpoint_like_sigterm(name):
    """Slurm's ``--signal=USR1@60`` warns a job 60 s before its time limit (submitit uses USR2); by default
    either signal ends Python at once, without a checkpoint."""
    script = f"""
import os, signal
from automl.train.distributed import DistInfo
from automl.train.preempt import Preemption
p = Preemption(DistInfo())
with p.armed():
    os.kill(os.getpid(), signal.{name})
    print("recorded", p.pending, p.step(), flush=True)
    os.kill(os.getpid(), signal.{name})  # a second one: at once
print("not reached")
"""
    p = _python(script)
    signum = getattr(signal, name).value
    assert f"recorded {signum} True" in p.stdout and "not reached" not in p.stdout, (p.returncode, p.stderr)
    assert p.returncode == 128 + signum and f"{name}: finishing the current step" in p.stderr, p.stderr


def test_sigusr1_to_a_real_run_checkpoints_inside_the_epoch_and_exits_138(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "automl", "run", QUICK, *FAST, "data.limit_train=320", "search.log_every=1",
           "--out", str(out)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env(), text=True) as proc:
        t0 = time.monotonic()
        while not any('"step": 1' in line for line in _log(out)):
            assert proc.poll() is None and time.monotonic() - t0 < 300, proc.stdout.read()[-3000:]
            time.sleep(0.02)
        proc.send_signal(signal.SIGUSR1)
        text = proc.communicate(timeout=300)[0]
    assert proc.returncode == 128 + signal.SIGUSR1, text[-3000:]
    assert "stopped by SIGUSR1" in text and "--resume" in text and "Traceback" not in text, text[-3000:]
    done = CheckpointStore(out / "checkpoints").load()
    assert done["stage"] == 0 and done["step"] > 0, text[-3000:]


def _log(out: Path) -> list[str]:
    try:
        return [line for line in (out / "metrics.jsonl").read_text().splitlines() if '"weights' in line]
    except FileNotFoundError:
        return []


# ------------------------------------------------------------------ torchrun's environment

def _clean_env(monkeypatch, **env) -> list:
    """``env`` as the process's torchrun variables; init_process_group records its calls (it would wait)."""
    for k in DIST_ENV:
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    calls = []
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: calls.append(kw))
    return calls


@pytest.mark.parametrize("env", [
    {"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"},
    {"WORLD_SIZE": "2", "RANK": "-1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"},
    {"RANK": "1"},  # WORLD_SIZE forgotten: the run would go on alone, its user errors unsaid (rank 1 prints none)
])
def test_a_rank_outside_the_world_size_is_one_message_by_that_rank(monkeypatch, capsys, env):
    """A hand-made launch (Slurm's srun with RANK=$SLURM_PROCID) whose RANK is not below WORLD_SIZE: rank 0 waits
    30 minutes for ranks that never come, or the process runs alone and its messages go unsaid."""
    calls = _clean_env(monkeypatch, **env)
    with pytest.raises(UserError) as info:
        init_distributed("cpu")
    assert f"RANK={env['RANK']}" in str(info.value) and "torchrun" in str(info.value) and not calls
    assert info.value.printed and str(info.value) in capsys.readouterr().err  # the CLI prints rank 0's only


def test_a_user_error_of_a_rank_other_than_0_in_its_environment_is_printed(monkeypatch, capsys):
    _clean_env(monkeypatch, WORLD_SIZE="2", RANK="1")
    with pytest.raises(UserError) as info:
        init_distributed("cpu")
    assert info.value.printed and "MASTER_ADDR, MASTER_PORT" in capsys.readouterr().err


def test_a_master_port_in_use_is_a_user_error_naming_it(monkeypatch):
    """Without torchrun rank 0 listens on MASTER_PORT; another program there was torch's DistNetworkError
    traceback, an internal error."""
    for k in DIST_ENV:
        monkeypatch.delenv(k, raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for k, v in {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}.items():
            monkeypatch.setenv(k, v)
        with pytest.raises(UserError) as info:
            init_distributed("cpu")
    assert f"MASTER_PORT={port} is in use" in str(info.value) and info.value.exit_code == 2
    assert not dist.is_initialized()


# ------------------------------------------------------------------ a rank that ends, or stops answering

def _lose_a_rank(rank: int, init: str, out: str) -> None:
    """Rank 1 of 2 ends in the middle of the run; rank 0 records what its collectives raise, as the pipeline's
    calls meet them (its next step's average, then the agreement whether to stop)."""
    from automl.train.distributed import all_reduce_mean, shutdown_distributed
    from automl.train.preempt import Preemption

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    info = DistInfo(rank=rank, world_size=2)
    preempt = Preemption(info)
    dist.barrier()
    if rank == 1:
        time.sleep(0.5)
        os._exit(0)  # as an out-of-memory kill or a crash would
    raised = []
    for call in (lambda: all_reduce_mean(torch.ones(2), info), preempt.signalled):
        try:
            call()
            raised.append("nothing")
        except Exception as e:  # noqa: BLE001 - recorded for the test to read
            raised.append({"type": type(e).__name__, "text": str(e), "code": getattr(e, "exit_code", None)})
    Path(out, "raised.json").write_text(json.dumps(raised))
    shutdown_distributed()


def test_a_rank_that_ends_is_named_in_one_message_not_an_internal_error(tmp_path):
    """Rank 0 in a collective with a rank that died (an out-of-memory kill, a crash) got gloo's RuntimeError
    ("Connection closed by peer ... GLHF!"), printed as an internal error asking for a bug report."""
    mp.spawn(_lose_a_rank, args=(f"file://{tmp_path / 'rendezvous'}", str(tmp_path)), nprocs=2)
    averaged, agreed = json.loads((tmp_path / "raised.json").read_text())
    for raised in (averaged, agreed):
        assert raised != "nothing" and raised["type"] == "RanksLost" and raised["code"] == 1, raised
        assert raised["text"].startswith("rank 0 of 2: rank 1, the run's other process,"), raised
        assert "--resume" in raised["text"] and "GLHF" not in raised["text"], raised
    assert "ended (a crash" in averaged["text"] and "(averaging over the ranks: Connection closed by peer" in \
        averaged["text"], averaged
    assert "agreeing whether to checkpoint or stop" in agreed["text"], agreed


def test_a_collective_that_times_out_says_the_other_rank_did_not_answer():
    with pytest.raises(distributed.RanksLost) as info:
        with distributed.collective(DistInfo(rank=1, world_size=4), "waiting for every rank"):
            raise RuntimeError("[/__w/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out "
                               "waiting 1800000ms for recv operation to complete")
    assert str(info.value) == (
        "rank 1 of 4: another rank did not answer within the process group's timeout (30 minutes): it is stuck or "
        "paused, or the ranks are in different steps (waiting for every rank: Timed out waiting 1800000ms for recv "
        "operation to complete); the checkpoints written so far are intact: continue the run with --resume")


def test_an_error_of_a_collective_that_is_not_a_lost_rank_stays_an_internal_error():
    with pytest.raises(RuntimeError, match="shapes differ") as info:
        with distributed.collective(DistInfo(rank=0, world_size=2), "x"):
            raise RuntimeError("shapes differ")
    assert type(info.value) is RuntimeError


# ------------------------------------------------------------------ end to end under torchrun

@pytest.mark.heavy
def test_sigterm_to_torchrun_and_to_every_rank_checkpoints_once_and_exits_143(tmp_path, free_port):
    """What Slurm's scancel / preemption and systemd do: SIGTERM to every process of the job at once, so each
    rank gets it directly and again from torchrun. Every rank stops at one step with a checkpoint."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           "-m", "automl", "run", QUICK, *FAST, "data.limit_train=320", "search.log_every=1", "--out", str(out)]
    with open(tmp_path / "log.txt", "w") as log, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                                  env=_env()) as proc:
        t0 = time.monotonic()
        while not any('"step": 1' in line for line in _log(out)):
            assert proc.poll() is None and time.monotonic() - t0 < 300
            time.sleep(0.02)
        ranks = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(ranks) == 2
        for pid in [proc.pid, *map(int, ranks)]:
            os.kill(pid, signal.SIGTERM)
        proc.wait(timeout=120)
    text = (tmp_path / "log.txt").read_text()
    assert "stopped by SIGTERM" in text and "stopping now" not in text and "internal error" not in text, text[-4000:]
    done = CheckpointStore(out / "checkpoints").load()
    assert done["stage"] == 0 and done["step"] > 0, text[-3000:]
