"""Review EO: torchrun's elastic restart (``--max-restarts``) of automl's process group.

torchrun restarts a failed worker group in the same agent store, where the dead ranks' gloo addresses are still
written; before the fix the restarted ranks connected to those and retried for the process group's 30-minute
timeout, printing nothing."""

import datetime
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch.distributed as dist

from automl.cli import main
from automl.train import distributed

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def agent_store(monkeypatch, free_port):
    """A TCP store where torchrun's agent hosts it, and the variables torchrun gives rank 1 of 2 of a worker
    group it restarted once."""
    port = free_port()
    store = dist.TCPStore("127.0.0.1", port, 2, is_master=True, timeout=datetime.timedelta(seconds=10),
                          wait_for_workers=False)
    for k, v in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2", "RANK": "1",
                 "LOCAL_RANK": "1", "TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_RESTART_COUNT": "1"}.items():
        monkeypatch.setenv(k, v)
    return store


def test_a_restarted_worker_group_does_not_read_the_keys_of_the_one_before(agent_store, monkeypatch):
    info = distributed.launch_info()
    agent_store.set("default_pg/0//cpu//0/rank_0", b"the address of a rank that is gone")  # left by the first start
    kwargs = distributed._restarted_store(info)
    assert (kwargs["rank"], kwargs["world_size"]) == (1, 2)
    restarted = kwargs["store"]
    assert not restarted.check(["default_pg/0//cpu//0/rank_0"])
    restarted.set("k", b"restart 1")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "2")  # a second restart: apart from the first one's keys too
    again = distributed._restarted_store(info)["store"]
    assert not again.check(["k"])
    again.set("k", b"restart 2")
    assert restarted.get("k") == b"restart 1"


def test_a_first_start_uses_torchs_own_rendezvous(agent_store, monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    assert distributed._restarted_store(distributed.launch_info()) == {}
    monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT")
    assert distributed.elastic_restart() == 0
    assert distributed._restarted_store(distributed.launch_info()) == {}


def test_a_restart_count_that_is_no_number_is_named(monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "x")
    with pytest.raises(distributed.UserError, match="TORCHELASTIC_RESTART_COUNT='x' is not a whole number"):
        distributed.elastic_restart()


WORKER = textwrap.dedent("""
    import os, signal, sys, torch, torch.distributed as dist
    from automl.train.distributed import init_distributed, all_reduce_sum, shutdown_distributed
    info = init_distributed("cpu")
    total = all_reduce_sum(torch.ones(1), info)
    if info.rank == 1 and os.environ["TORCHELASTIC_RESTART_COUNT"] == "0":
        os.kill(os.getpid(), signal.SIGKILL)  # the first start dies: torchrun restarts both ranks
    all_reduce_sum(torch.ones(1), info)
    print(f"rank {info.rank} restart {os.environ['TORCHELASTIC_RESTART_COUNT']} met {int(total)}", flush=True)
    shutdown_distributed()
""")


@pytest.mark.heavy
def test_torchrun_max_restarts_brings_the_ranks_together_again(tmp_path, free_port):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--max-restarts=1",
           "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_port()}", str(script)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        out, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:  # the restarted ranks wait for the dead ones' addresses
        proc.send_signal(signal.SIGTERM)  # torchrun ends its workers (their own sessions: not our signal's)
        out, _ = proc.communicate(timeout=60)
        pytest.fail("the restarted worker group never met:\n" + out[-3000:])
    assert proc.returncode == 0, out[-3000:]
    assert "rank 0 restart 1 met 2" in out and "rank 1 restart 1 met 2" in out, out[-3000:]


# ---------------------------------------------------------------------------------------- a restart resumes

QUICK = str(ROOT / "recipes" / "quickstart.yaml")
FAST = ["threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
        "search.supernets=1", "data.limit_train=64", "data.batch_size=32", "data.theta_batch_size=32",
        "search.lam=2", "search.budgets=null", "search.epsilons=[0]", "export.onnx=false"]


def test_a_restarted_worker_group_resumes_the_run_in_its_out_folder(tmp_path, monkeypatch, capsys):
    """torchrun --max-restarts starts the workers again with the command as given, without --resume: the run in
    --out, which has a checkpoint, is continued (it was refused: 'already holds files; pass --resume')."""
    out = tmp_path / "r"
    assert main(["run", QUICK, *FAST, "--out", str(out)]) == 0
    capsys.readouterr()
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert main(["run", QUICK, *FAST, "--out", str(out)]) == 0, capsys.readouterr().err
    assert f"resuming the run in {out}" in capsys.readouterr().err
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")  # a first start is refused as before
    assert main(["run", QUICK, *FAST, "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
