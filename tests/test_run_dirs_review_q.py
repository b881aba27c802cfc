"""``automl run`` without ``--out``: the default run folder is claimed atomically (runs started in the same
second get their own), and ``--resume`` without ``--out`` takes the run with the latest time in its name,
not the folder modified last (review Q, findings 1 and 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from automl.cli import main
from automl.commands.run import STAMP, _latest_run, default_out_dir

ROOT = Path(__file__).resolve().parent.parent
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
# seconds, not minutes: one epoch of each phase on a few digits
TINY = ["device=cpu", "threads=1", "data.limit_train=96", "data.batch_size=32", "data.theta_batch_size=32",
        "search.lam=2", "search.weight_epochs=1", "search.theta_epochs=1", "search.budgets=[null,40k]",
        "retrain.epochs=0", "export.onnx=false"]
NOW = "20260101-000000"


@pytest.fixture
def one_second(monkeypatch):
    """Every run folder's time stamp is the same second; other formats are left to time.strftime."""
    real = time.strftime
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: NOW if fmt == STAMP else real(fmt, *a))


def make_run(tmp_path: Path, name: str) -> Path:
    """A folder that looks like an interrupted run: a checkpoint index and a resolved recipe."""
    d = tmp_path / "runs" / name
    (d / "checkpoints").mkdir(parents=True)
    (d / "checkpoints" / "checkpoints.json").write_text("{}", encoding="utf-8")
    (d / "recipe.resolved.yaml").write_text("name: q\n", encoding="utf-8")
    return d


def test_resume_takes_the_latest_time_in_the_name_not_the_folder_modified_last(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old, new = make_run(tmp_path, "q-20260101-000000"), make_run(tmp_path, "q-20260102-000000")
    os.utime(new, (1000, 1000))
    os.utime(old, None)  # e.g. `automl rank` wrote results.json into the older, finished run
    assert old.stat().st_mtime > new.stat().st_mtime
    assert _latest_run("q") == Path("runs") / "q-20260102-000000"


def test_resume_orders_same_second_runs_by_their_number(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for i, name in enumerate(["q-20260102-000000-10", "q-20260101-000000-11", "q-20260102-000000",
                              "q-20260102-000000-9", "q-20260102-000000-x"]):
        os.utime(make_run(tmp_path, name), (5000 - i, 5000 - i))
    assert _latest_run("q") == Path("runs") / "q-20260102-000000-10"  # 10 after 9: a number, not text


def test_two_default_folders_in_one_second_differ(tmp_path, monkeypatch, one_second):
    monkeypatch.chdir(tmp_path)
    first, second = default_out_dir("q"), default_out_dir("q")
    assert first != second and first.is_dir() and second.is_dir()
    assert first == Path("runs") / f"q-{NOW}" and second == Path("runs") / f"q-{NOW}-2"
    assert _latest_run("q") == second


def test_a_file_of_that_name_is_skipped_too(tmp_path, monkeypatch, one_second):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / f"q-{NOW}").write_text("not a run", encoding="utf-8")
    assert default_out_dir("q") == Path("runs") / f"q-{NOW}-2"


def test_two_runs_started_in_one_second_each_get_a_folder(tmp_path, monkeypatch, capsys, one_second):
    monkeypatch.chdir(tmp_path)
    for seed in (1, 2):
        code = main(["run", QUICK, *TINY, f"seed={seed}"])
        assert code == 0, capsys.readouterr().err
    folders = sorted((tmp_path / "runs").iterdir())
    assert [p.name for p in folders] == [f"quickstart-{NOW}", f"quickstart-{NOW}-2"]
    seeds = [yaml.safe_load((p / "recipe.resolved.yaml").read_text(encoding="utf-8"))["seed"] for p in folders]
    assert seeds == [1, 2] and all((p / "results.json").is_file() for p in folders)


def test_a_start_up_error_leaves_no_default_run_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["run", QUICK, *TINY, "data.dataset=cifar10", f"data.root={tmp_path / 'nowhere'}"])
    err = capsys.readouterr().err
    assert code == 2 and "CIFAR-10 not found" in err and "Traceback" not in err, err
    assert sorted(os.listdir(tmp_path)) == []


def test_a_supernet_error_leaves_no_default_run_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()  # a runs/ folder the user had stays
    code = main(["run", QUICK, *TINY, "--supernet", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert code == 2 and "--supernet" in err and "Traceback" not in err, err
    assert os.listdir(tmp_path) == ["runs"] and os.listdir(tmp_path / "runs") == []


def test_a_run_folder_that_cannot_be_made_is_a_user_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("a file", encoding="utf-8")
    code = main(["run", QUICK, *TINY])
    err = capsys.readouterr().err
    assert code == 2 and "runs/quickstart-" in err and "--out" in err and "Traceback" not in err, err


def _torchrun(cwd: Path, port: int, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "-m", "automl", "run", QUICK, *TINY, "search.supernets=1", *overrides]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.heavy
def test_torchrun_without_out_writes_one_default_folder(tmp_path, free_port):
    p = _torchrun(tmp_path, free_port())
    assert p.returncode == 0, p.stderr[-3000:]
    (folder,) = (tmp_path / "runs").iterdir()  # rank 0 made it; rank 1 wrote into it, not one of its own
    assert folder.name.startswith("quickstart-")
    assert json.loads((folder / "results.json").read_text(encoding="utf-8"))["world_size"] == 2


@pytest.mark.heavy
def test_torchrun_start_up_error_leaves_no_default_folder(tmp_path, free_port):
    p = _torchrun(tmp_path, free_port(), "data.dataset=cifar10", f"data.root={tmp_path / 'nowhere'}")
    assert p.returncode != 0 and p.stderr.count("CIFAR-10 not found") == 1, p.stderr[-3000:]
    assert os.listdir(tmp_path) == []
