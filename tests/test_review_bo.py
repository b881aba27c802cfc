"""Review BO: how ``automl run`` starts under torchrun or a launch of one's own (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT set by hand, Slurm's srun): the launch variables are checked before the recipe, every
process that must say a mistake says it, and a launch torch would refuse with a traceback is one message."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from automl.cli import main
from automl.errors import UserError
from automl.train.distributed import DistInfo, init_distributed, launch_info, reported

from test_review_bk import _clean_env

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
SLURM = ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")
BAD_OVERRIDE = "search.lamm=3"
RECIPE_MISTAKE = "unknown key search.lamm"


def _env(monkeypatch, **env) -> list:
    """Only ``env`` of the launch variables (Slurm's too); init_process_group records its calls instead of starting
    a group (test_review_bk's ``_clean_env``)."""
    for k in SLURM:
        monkeypatch.delenv(k, raising=False)
    return _clean_env(monkeypatch, **env)


def _cli(capsys, *argv) -> tuple[int, str]:
    code = main(["run", *map(str, argv)])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    return code, err


# ------------------------------------------------------------------ a launch mistake and a recipe mistake together

@pytest.mark.parametrize("env,words", [
    ({"RANK": "1"}, "RANK=1 with WORLD_SIZE=1"),
    ({"RANK": "1", "WORLD_SIZE": "1"}, "RANK=1 with WORLD_SIZE=1"),
    ({"RANK": "1", "WORLD_SIZE": "2"}, "not MASTER_ADDR, MASTER_PORT"),
    ({"RANK": "0", "WORLD_SIZE": "2"}, "not MASTER_ADDR, MASTER_PORT"),
])
def test_a_launch_mistake_is_said_before_a_recipe_mistake_on_every_rank(tmp_path, monkeypatch, capsys, env, words):
    """The recipe was read first: its mistake stopped rank 1 with exit 2 and nothing printed (the CLI prints rank
    0's errors only), and rank 0 said the recipe's mistake though the launch was wrong too."""
    _env(monkeypatch, **env)
    code, err = _cli(capsys, QUICK, BAD_OVERRIDE, "--out", tmp_path / "out")
    assert code == 2 and err.count(words) == 1 and RECIPE_MISTAKE not in err, err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("rank", ["", " ", "00", " 0"])
def test_one_process_whose_rank_is_empty_or_spelled_otherwise_says_its_mistakes(tmp_path, monkeypatch, capsys,
                                                                                   rank):
    """``RANK=`` (a script's ``RANK=$SLURM_PROCID`` outside Slurm) is rank 0 of one process, but the CLI printed
    only for RANK unset or "0": every mistake of the run exited 2 unsaid."""
    _env(monkeypatch, RANK=rank)
    code, err = _cli(capsys, QUICK, BAD_OVERRIDE, "--out", tmp_path / "out")
    assert code == 2 and err.count(RECIPE_MISTAKE) == 1, err
    (tmp_path / "afile").write_text("x")  # a mistake the run finds after its start
    code, err = _cli(capsys, QUICK, "device=cpu", "--out", tmp_path / "afile")
    assert code == 2 and err.count("is a file, not a folder") == 1, err


# ------------------------------------------------------------------ which rank says a mistake found before the start

TWO_MACHINES = {"WORLD_SIZE": "4", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", "LOCAL_WORLD_SIZE": "2"}


@pytest.mark.parametrize("rank,local,says", [("2", "0", True), ("3", "1", False), ("1", "1", False)])
def test_a_recipe_mistake_is_said_once_on_each_machine(tmp_path, monkeypatch, capsys, rank, local, says):
    """Before the ranks meet each process reads the recipe for itself (it may be missing on one machine only):
    the first process of each machine says the mistake, there, as rank 0 does on its own; the others stop on
    it unsaid. Rank 2, the first on the second machine, stopped unsaid before."""
    calls = _env(monkeypatch, RANK=rank, LOCAL_RANK=local, **TWO_MACHINES)
    code, err = _cli(capsys, QUICK, BAD_OVERRIDE, "--out", tmp_path / "out")
    assert code == 2 and err.count(RECIPE_MISTAKE) == (1 if says else 0), err
    assert not calls  # stopped before the process group


def test_reported_after_the_start_leaves_the_other_ranks_to_rank_0(monkeypatch, capsys):
    """After the ranks met, rank 0 says what all of them stop on: rank 2 (first on its machine) says nothing."""
    _env(monkeypatch, RANK="2", LOCAL_RANK="0", **TWO_MACHINES)
    e = reported(UserError("a mistake"), DistInfo(rank=2, world_size=4, local_rank=0))
    assert not e.printed and capsys.readouterr().err == ""
    e = reported(UserError("a mistake"), DistInfo(rank=2, world_size=4, local_rank=0), before_start=True)
    assert e.printed and capsys.readouterr().err == "error: a mistake\n"


# ------------------------------------------------------------------ Slurm's srun without torchrun

def test_srun_of_several_tasks_without_torchrun_is_one_message(tmp_path, monkeypatch, capsys):
    """``srun -n 2 automl run ...`` started two runs of one process each, side by side (each its own runs/
    folder, both on GPU 0): now one message, said by task 0, and every task exits 2."""
    _env(monkeypatch, SLURM_STEP_NUM_TASKS="2", SLURM_PROCID="0", SLURM_NTASKS="2", SLURM_LOCALID="0")
    monkeypatch.setattr("automl.commands.run.Run", None)  # a run that starts fails at once (internal error)
    code, err = _cli(capsys, QUICK, "device=cpu", "--out", tmp_path / "out")
    assert code == 2 and err.count("srun started 2 tasks") == 1 and "torchrun" in err, err
    assert "LOCAL_RANK=$SLURM_LOCALID" in err and not (tmp_path / "out").exists(), err
    monkeypatch.setenv("SLURM_PROCID", "1")
    code, err = _cli(capsys, QUICK, "device=cpu", "--out", tmp_path / "out")
    assert code == 2 and err == "", err


@pytest.mark.parametrize("env", [
    {"SLURM_NTASKS": "4", "SLURM_PROCID": "0"},  # a batch script (or salloc's shell) of a job of 4 tasks
    {"SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"},  # srun --ntasks=1
    {"SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "1", "RANK": "0", "WORLD_SIZE": "1"},  # torchrun in each task
])
def test_one_process_under_slurm_runs(monkeypatch, env):
    _env(monkeypatch, **env)
    assert launch_info() == DistInfo()


# ------------------------------------------------------------------ values torch refuses with a traceback

@pytest.mark.parametrize("port,words", [("abc", "MASTER_PORT='abc' is not a whole number"),
                                        ("70000", "MASTER_PORT=70000, which is no port"),
                                        ("0", "MASTER_PORT=0, which is no port")])
def test_a_master_port_that_is_no_port_is_one_message(monkeypatch, port, words):
    """torch's env:// rendezvous raised ValueError (an internal error, exit 1) for abc and 70000, and rank 0
    listened on a port of the system's choice for port 0, where no other rank would find it."""
    calls = _env(monkeypatch, WORLD_SIZE="2", RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    with pytest.raises(UserError) as info:
        init_distributed("cpu")
    assert words in str(info.value) and not calls


def test_a_negative_local_rank_is_one_message(monkeypatch, capsys):
    """LOCAL_RANK=-1 made the run's device cuda:-1: torch's RuntimeError, an internal error."""
    calls = _env(monkeypatch, WORLD_SIZE="2", RANK="1", LOCAL_RANK="-1", MASTER_ADDR="127.0.0.1", MASTER_PORT="1")
    with pytest.raises(UserError) as info:
        init_distributed("cpu")
    assert "LOCAL_RANK=-1" in str(info.value) and info.value.printed and not calls
    assert "LOCAL_RANK=-1" in capsys.readouterr().err  # rank 1 says it itself


def _gpus(monkeypatch, count: int, calls: list) -> None:
    """``count`` CUDA GPUs visible; set_device records its calls instead of touching a GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.append(("set_device", i)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)


@pytest.mark.parametrize("rank", ["0", "1"])
def test_nccl_without_local_rank_is_one_message_on_every_rank(monkeypatch, capsys, rank):
    """A launch of one's own (srun with RANK=$SLURM_PROCID, WORLD_SIZE=$SLURM_NTASKS) without LOCAL_RANK put
    every process on GPU 0 (nccl then fails on a duplicate GPU, or the GPUs share one): one message naming
    LOCAL_RANK and SLURM_LOCALID, before any GPU is touched."""
    calls = _env(monkeypatch, WORLD_SIZE="2", RANK=rank, MASTER_ADDR="127.0.0.1", MASTER_PORT="29500")
    _gpus(monkeypatch, 2, calls)
    with pytest.raises(UserError) as info:
        init_distributed("cuda")
    assert "LOCAL_RANK=$SLURM_LOCALID" in str(info.value) and calls == []
    assert (str(info.value) in capsys.readouterr().err) == (rank != "0")  # rank 0's: the CLI prints it


def test_gloo_does_not_need_local_rank(monkeypatch):
    calls = _env(monkeypatch, WORLD_SIZE="2", RANK="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="29500")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    assert init_distributed("cpu") == DistInfo(rank=1, world_size=2, local_rank=0)
    assert [c["backend"] for c in calls] == ["gloo"]


def test_device_cuda_on_a_machine_without_gpus_is_said_before_the_start(tmp_path, monkeypatch, capsys):
    """torchrun's rank 0 of two, LOCAL_RANK 0, device=cuda where no GPU is visible: the device's message, no
    process group."""
    calls = _env(monkeypatch, WORLD_SIZE="2", RANK="0", LOCAL_RANK="0", LOCAL_WORLD_SIZE="2",
                 MASTER_ADDR="127.0.0.1", MASTER_PORT="29500")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, err = _cli(capsys, QUICK, "device=cuda", "--out", tmp_path / "out")
    assert code == 2 and err.count("no CUDA GPU is visible") == 1 and not calls, err


def test_the_launch_is_read_once_per_rank(monkeypatch):
    """launch_info starts nothing: it may be called before the recipe is read."""
    calls = _env(monkeypatch, WORLD_SIZE="2", RANK="1", LOCAL_RANK="1", MASTER_ADDR="h", MASTER_PORT="29500")
    assert launch_info() == DistInfo(rank=1, world_size=2, local_rank=1) and not calls
