"""A recipe mistake under torchrun found by every rank before the ranks meet: rank 0 prints it, even when it
finds it later than another rank (a busier node, a slower start). The other ranks wait for it before they exit,
since torchrun stops every worker as soon as one exits."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import automl.commands.run as run_cmd
from automl.cli import main
from automl.train.distributed import DistInfo

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")


@pytest.mark.parametrize("rank, waits", [(0, False), (1, True)])
def test_only_a_rank_that_leaves_the_message_to_rank_0_waits(monkeypatch, capsys, rank, waits):
    slept = []
    monkeypatch.setattr(run_cmd.time, "sleep", slept.append)
    monkeypatch.setattr(run_cmd, "launch_info", lambda: DistInfo(rank=rank, world_size=2, local_rank=rank))
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    assert main(["run", QUICK, "search.lamb=8"]) == 2
    assert slept == ([run_cmd.START_GRACE] if waits else [])
    err = capsys.readouterr().err
    assert ("lamb" in err) == (rank == 0), err  # rank 0 alone prints it


def test_a_single_process_does_not_wait(monkeypatch, capsys):
    slept = []
    monkeypatch.setattr(run_cmd.time, "sleep", slept.append)
    assert main(["run", QUICK, "search.lamb=8"]) == 2
    assert slept == [] and "lamb" in capsys.readouterr().err


@pytest.mark.heavy
def test_rank_0_slower_to_start_still_prints_the_mistake(tmp_path, free_port):
    wrapper = tmp_path / "slow0.sh"
    wrapper.write_text(f'#!/bin/bash\n[ "$RANK" = "0" ] && sleep 2\nexec {sys.executable} -m automl "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           "--no-python", str(wrapper), "run", QUICK, "search.lamb=8", "--out", str(tmp_path / "out")]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    text = p.stdout + p.stderr
    assert p.returncode != 0 and "internal error" not in text, text[-3000:]
    assert text.count("unknown key search.lamb") == 1, text[-3000:]  # printed once, by rank 0
    assert "exitcode  : 2" in text, text[-3000:]
    assert not (tmp_path / "out").exists()
