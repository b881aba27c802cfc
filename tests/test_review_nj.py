"""Under torchrun: a recipe's warnings are printed by rank 0 alone (every process loads the recipe before the ranks
meet), and ``automl export``, which computes in one process, is refused as ``automl rank`` is (exit 2, one
message, nothing written)."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import automl.commands.run as run_cmd
from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.train.distributed import DistInfo

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
DIGITS = str(ROOT / "spaces" / "digits.space")
# search.method random ignores these search settings, which quickstart.yaml sets: the recipe warns
RANDOM = ["search.method=random", "threads=1"]
IGNORED = "this recipe ignores them"


class _Stop(UserError):
    """What the stand-in for the process group's start raises: the command stops before anything is trained."""


def _no_group(kind):
    raise _Stop("stopped before the ranks meet")


def _ranks_never_meet(monkeypatch, rank: int) -> None:
    """This process plays ``rank`` of 2; the process group is never started (no rank to wait for)."""
    monkeypatch.setattr(run_cmd, "launch_info", lambda: DistInfo(rank=rank, world_size=2, local_rank=rank))
    monkeypatch.setattr(run_cmd, "init_distributed", _no_group)
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", "2")


def _recipe_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "automl.recipe" and r.levelno == logging.WARNING and IGNORED in r.getMessage()]


@pytest.mark.parametrize("rank", [0, 1])
def test_only_rank_0_logs_the_recipes_warnings(monkeypatch, caplog, capsys, tmp_path, rank):
    _ranks_never_meet(monkeypatch, rank)
    assert main(["run", QUICK, "--out", str(tmp_path / "out"), *RANDOM]) == 2
    assert len(_recipe_warnings(caplog)) == (1 if rank == 0 else 0), caplog.text
    assert ("stopped before the ranks meet" in capsys.readouterr().err) == (rank == 0)
    # the recipe's logger is as it was: a later load in this process (or a test) warns again
    assert logging.getLogger("automl.recipe").level == logging.NOTSET


def test_a_single_process_logs_the_recipes_warnings(monkeypatch, caplog, tmp_path):
    monkeypatch.setattr(run_cmd, "init_distributed", _no_group)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert main(["run", QUICK, "--out", str(tmp_path / "out"), *RANDOM]) == 2
    assert len(_recipe_warnings(caplog)) == 1, caplog.text


@pytest.mark.parametrize("rank", [0, 1])
def test_a_recipe_mistake_on_another_rank_still_stops_it_and_rank_0_prints_it(monkeypatch, caplog, capsys, rank):
    _ranks_never_meet(monkeypatch, rank)
    assert main(["run", QUICK, *RANDOM, "search.lamm=3"]) == 2
    err = capsys.readouterr().err
    assert ("override search.lamm=3: unknown key" in err) == (rank == 0), err
    assert logging.getLogger("automl.recipe").level == logging.NOTSET


def _arch(tmp_path: Path) -> str:
    cs = load_compiled(DIGITS)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": [d.choices[-1] for d in cs.decisions]}))
    return str(path)


def _torchrun_env(monkeypatch, rank: str) -> None:
    """What torchrun sets for a process of 2 (no process group is started by export)."""
    for key, value in (("WORLD_SIZE", "2"), ("RANK", rank), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")):
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize("rank", ["0", "1"])
def test_export_is_refused_under_torchrun(monkeypatch, capsys, tmp_path, rank):
    _torchrun_env(monkeypatch, rank)
    out = tmp_path / "out"
    assert main(["export", DIGITS, "--arch", _arch(tmp_path), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    said = captured.err.count("automl export computes in one process")
    assert said == (1 if rank == "0" else 0), captured.err  # rank 0 alone prints it
    assert "WORLD_SIZE=2" in captured.err if rank == "0" else captured.err == ""
    assert not out.exists() and "exported" not in captured.out


@pytest.mark.parametrize("world", ["1", "", "x"])
def test_export_of_one_process_is_not_refused(monkeypatch, capsys, tmp_path, world):
    monkeypatch.setenv("WORLD_SIZE", world)
    monkeypatch.delenv("RANK", raising=False)
    out = tmp_path / "out"
    assert main(["export", DIGITS, "--arch", _arch(tmp_path), "--out", str(out)]) == 0
    assert (out / "manifest.json").is_file()
    assert "computes in one process" not in capsys.readouterr().err


def _torchrun(port: int, *args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "-m", "automl", *[str(a) for a in args]]
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)


@pytest.mark.heavy
def test_torchrun_prints_a_recipe_warning_once(tmp_path, free_port):
    out = tmp_path / "a file"
    out.write_text("x")  # refused once the ranks have met, before anything is trained
    p = _torchrun(free_port(), "run", QUICK, "--out", out, *RANDOM)
    text = p.stdout + p.stderr
    assert p.returncode != 0 and "exitcode  : 2" in text, text[-3000:]
    assert text.count(IGNORED) == 1, text[-3000:]
    assert text.count("is a file, not a folder") == 1, text[-3000:]


@pytest.mark.heavy
def test_torchrun_export_is_refused_once(tmp_path, free_port):
    out = tmp_path / "out"
    p = _torchrun(free_port(), "export", DIGITS, "--arch", _arch(tmp_path), "--out", out)
    text = p.stdout + p.stderr
    assert p.returncode != 0 and "exitcode  : 2" in text and "exitcode  : 1 " not in text, text[-3000:]
    assert text.count("automl export computes in one process") == 1, text[-3000:]
    assert not out.exists() and "exported digits" not in text


@pytest.mark.parametrize("rank, waits", [("0", False), ("1", True)])
def test_another_rank_waits_for_rank_0_to_print_the_export_refusal(monkeypatch, capsys, tmp_path, rank, waits):
    slept = []
    monkeypatch.setattr(run_cmd.time, "sleep", slept.append)
    _torchrun_env(monkeypatch, rank)
    assert main(["export", DIGITS, "--arch", str(tmp_path / "none.json"), "--out", str(tmp_path / "out")]) == 2
    assert slept == ([run_cmd.START_GRACE] if waits else [])
    assert ("computes in one process" in capsys.readouterr().err) == (not waits)


@pytest.mark.parametrize("env", [
    {"RANK": "1"},  # a stale WORLD_SIZE/RANK, no torchrun
    {},
    {"RANK": "7", "MASTER_ADDR": "h", "MASTER_PORT": "29500"},
    {"RANK": "", "MASTER_ADDR": "h", "MASTER_PORT": "29500"},
])
def test_an_environment_torchrun_did_not_set_is_said_by_every_process(monkeypatch, capsys, tmp_path, env):
    """Was: a stale WORLD_SIZE=2 RANK=1 waited 5 s and exited 2 without a word (no rank 0 to print the refusal); then
    automl run's advice to start it with torchrun, which export refuses."""
    slept = []
    monkeypatch.setattr(run_cmd.time, "sleep", slept.append)
    monkeypatch.setenv("WORLD_SIZE", "2")
    for key in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["export", DIGITS, "--arch", str(tmp_path / "none.json"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "automl export computes in one process" in err and "unset WORLD_SIZE" in err, err
    assert "torchrun --nproc_per_node" not in err and len(err.strip().splitlines()) == 1 and slept == [], err
