"""Review RG: a run's folder that cannot be written, and commands printed to paste.

1. ``automl run R --out DIR --resume`` (and ``automl rank DIR``) on a run folder made read-only said "make it
   writable or choose another --out" (the lock file), then "cannot write there (Permission denied); choose a
   writable folder": another folder holds no checkpoint to continue. A folder that holds a run's checkpoints now
   says to make it writable (``chmod -R u+w DIR``) and run the command again (only a new run may go elsewhere).
2. ``automl rank`` on an unfinished run, and ``--supernet`` of a run whose weight phase has not finished (or that
   stopped before its first checkpoint), printed the template ``automl run RECIPE --out RUN --resume, with its
   recipe and overrides``; the run folder's recipe.resolved.yaml makes it a command to paste.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import automl._io as io_module
import automl._lock as lock_module
from automl._io import pasted_path, writable_dir
from automl._lock import LOCK_NAME, RunLock
from automl.errors import UserError
from automl.pipeline import rank as rank_module
from automl.pipeline.final_stages import RankingStage
from automl.pipeline.reuse import Given, _store, _untrained, run_command
from automl.train.checkpoint import CheckpointStore

ROOT = Path(__file__).resolve().parents[1]


def _run_folder(folder: Path, checkpoint: bool = True, recipe: bool = True) -> Path:
    """A run's folder as a stopped run leaves it: its lock file, recipe.resolved.yaml, a checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_NAME).write_text("{}\n")
    if recipe:
        (folder / "recipe.resolved.yaml").write_text("name: t\n")
    if checkpoint:
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / "ckpt-000001.pt").write_bytes(b"x")
    return folder


@pytest.fixture
def refused(monkeypatch):
    """Writes in the folders added to the returned list fail with EACCES (the lock file's open, a new file)."""
    folders: list[Path] = []
    real_open, real_temporary = os.open, io_module.tempfile.TemporaryFile

    def refuse_open(path, flags, *a, **k):
        if any(str(path) == str(f / LOCK_NAME) for f in folders) and flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, *a, **k)

    def refuse_temporary(*a, dir=None, **k):
        if dir is not None and any(str(dir) == str(f) for f in folders):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_temporary(*a, dir=dir, **k)

    monkeypatch.setattr(lock_module.os, "open", refuse_open)
    monkeypatch.setattr(io_module.tempfile, "TemporaryFile", refuse_temporary)
    return folders


# ------------------------------------------------------------------ 1. a read-only run folder: continue it there


def test_resume_in_a_read_only_run_folder_says_to_make_it_writable(tmp_path, refused):
    run = _run_folder(tmp_path / "run")
    refused.append(run)
    fix = f"make it writable (chmod -R u+w {pasted_path(run)})"
    with pytest.raises(UserError) as e:
        RunLock(run).acquire(create=False)  # automl run's first look at its --out
    text = str(e.value)
    assert f"--out {run}: cannot open its lock file {run / LOCK_NAME} (Permission denied)" in text, text
    assert f"the folder holds a run's checkpoints: {fix} and run the command again" in text, text
    assert "or choose another --out" not in text and "a new run may choose another --out instead" in text, text
    with pytest.raises(UserError) as e:
        writable_dir(run, "--out")  # the lock file made writable, the folder not
    text = str(e.value)
    assert text == (f"--out {run}: cannot write there (Permission denied); the folder holds a run's checkpoints: "
                    f"{fix} and run the command again"), text


def test_rank_in_a_read_only_run_folder_says_to_make_it_writable(tmp_path, refused):
    run = _run_folder(tmp_path / "run")
    refused.append(run)
    then = f"then run automl rank {pasted_path(run)} again"
    with pytest.raises(UserError) as e:
        RunLock(run).acquire(then=then, look=True)
    assert str(e.value).endswith(f"(Permission denied); the folder holds a run's checkpoints: make it writable "
                                 f"(chmod -R u+w {pasted_path(run)}), {then}"), str(e.value)


def test_a_folder_without_checkpoints_keeps_its_messages(tmp_path, refused):
    """A new run's folder (no checkpoint to continue): another --out is still a way out."""
    folder = _run_folder(tmp_path / "new", checkpoint=False)
    refused.append(folder)
    with pytest.raises(UserError, match=r"\(Permission denied\); make it writable or choose another --out$"):
        RunLock(folder).acquire(create=False)
    with pytest.raises(UserError, match=r"cannot write there \(Permission denied\); choose a writable folder$"):
        writable_dir(folder, "--out")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="drops root's override capability with setpriv")
def test_a_read_only_run_folder_for_real(tmp_path):
    """``chmod -R a-w`` on a run's folder, as a user without root's override: the lock file, then the folder."""
    run = _run_folder(tmp_path / "run")
    for p in [run, *run.rglob("*")]:
        p.chmod(stat.S_IMODE(p.stat().st_mode) & ~0o222)
    code = ("import os, sys\nfrom automl._lock import RunLock\nfrom automl._io import writable_dir\n"
            "from automl.errors import UserError\nrun = sys.argv[1]\n"
            "for step in (lambda: RunLock(run).acquire(create=False), lambda: os.chmod(run + '/.lock', 0o644),\n"
            "             lambda: writable_dir(run, '--out')):\n"
            "    try:\n        step()\n    except UserError as e:\n        print(e)\n")
    try:
        out = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-c",
                              code, str(run)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    finally:
        for p in [run, *run.rglob("*")]:
            p.chmod(stat.S_IMODE(p.stat().st_mode) | 0o200)
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and len(lines) == 2, (out.stdout, out.stderr[-2000:])
    fix = f"the folder holds a run's checkpoints: make it writable (chmod -R u+w {pasted_path(run)})"
    assert "cannot open its lock file" in lines[0] and fix in lines[0] and "run the command again" in lines[0], lines
    assert "cannot write there" in lines[1] and fix in lines[1] and "writable folder" not in lines[1], lines


# ------------------------------------------------------------------ 2. the command to finish the run, to paste


def _resume(run: Path) -> str:
    return f"automl run {pasted_path(run / 'recipe.resolved.yaml')} --out {pasted_path(run)} --resume"


def test_run_command_names_the_recorded_recipe(tmp_path):
    run = _run_folder(tmp_path / "my run")
    assert run_command(run, resume=True) == _resume(run)
    assert run_command(run, "NEW_DIR") == f"automl run {pasted_path(run / 'recipe.resolved.yaml')} --out NEW_DIR"
    bare = _run_folder(tmp_path / "bare", recipe=False)
    assert run_command(bare, resume=True) == (f"automl run RECIPE --out {pasted_path(bare)} --resume, with its recipe "
                                              f"and overrides")


def test_rank_of_a_run_stopped_before_its_first_checkpoint(tmp_path):
    run = _run_folder(tmp_path / "run", checkpoint=False)
    fake = SimpleNamespace(out=run, method=None, store=CheckpointStore(run / "checkpoints"))
    with pytest.raises(UserError) as e:
        rank_module._checked_checkpoint(fake)
    assert f"finish it first ({_resume(run)}: it starts afresh in its place)" in str(e.value), str(e.value)
    assert "RECIPE" not in str(e.value)


def test_rank_of_a_run_whose_weight_phase_has_not_finished(tmp_path, monkeypatch):
    run = _run_folder(tmp_path / "run")
    store = SimpleNamespace(load=lambda: {"supernet": None}, missing=lambda: False)
    monkeypatch.setattr(rank_module, "check_trains_a_supernet", lambda out, method: None)
    with pytest.raises(UserError) as e:
        rank_module._checked_checkpoint(SimpleNamespace(out=run, method=None, store=store))
    assert str(e.value).endswith(f"finish it first ({_resume(run)})"), str(e.value)


def test_rank_of_a_run_that_has_not_finished(tmp_path):
    run = _run_folder(tmp_path / "run")
    plan = SimpleNamespace(stages=[SimpleNamespace(key="retrain"), object.__new__(RankingStage)])
    fake = SimpleNamespace(out=run, store=SimpleNamespace(problems=[]))
    with pytest.raises(UserError) as e:
        rank_module._check_finished(fake, SimpleNamespace(stage=0), plan)
    assert str(e.value).endswith(f"(next: its stage retrain); automl rank ranks a finished run: finish it first "
                                 f"({_resume(run)})"), str(e.value)


def test_supernet_of_a_run_whose_weight_phase_has_not_finished(tmp_path):
    run = _run_folder(tmp_path / "run")
    store = SimpleNamespace(problems=[], loaded=None)
    with pytest.raises(UserError) as e:
        _untrained({"supernet_origin": "trained"}, store, run, Given())
    assert str(e.value).endswith(f"finish it first ({_resume(run)})"), str(e.value)
    with pytest.raises(UserError) as e:
        _untrained({"supernet_origin": "trained"}, SimpleNamespace(problems=["damaged"], loaded="x"), run, Given())
    assert str(e.value).endswith(f"train the rest of that weight phase again ({_resume(run)})"), str(e.value)


def test_supernet_of_a_run_stopped_before_its_first_checkpoint(tmp_path):
    run = _run_folder(tmp_path / "run", checkpoint=False)
    with pytest.raises(UserError) as e:
        _store(run, Given())
    again = f"automl run {pasted_path(run / 'recipe.resolved.yaml')} --out {pasted_path(run)}: it starts afresh"
    assert f"run it again to train its supernet ({again} there)" in str(e.value), str(e.value)
    assert "RECIPE" not in str(e.value)
