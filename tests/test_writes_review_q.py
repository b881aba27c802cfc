"""Writes a run cannot make, and what --resume accepts (review Q, findings 6, 8, 9): a failed metrics.jsonl
append, a run folder removed while the run writes, the advice for a permission error, and the key a
refused --resume names."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

import automl._io as io_
import automl.train.progress as progress
from automl._io import atomic_write_text
from automl._lock import RunLock
from automl.errors import UserError
from automl.pipeline import Run
from automl.recipe import load_recipe
from automl.train.checkpoint import CheckpointStore

from conftest import Killed
from helpers import cli_err as cli

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parent.parent
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
# seconds, not minutes: one epoch of each phase on a few digits (tests/test_user_errors_recipe.py)
TINY = ["threads=1", "data.limit_train=96", "data.batch_size=32", "data.theta_batch_size=32", "search.lam=2",
        "search.weight_epochs=1", "search.theta_epochs=1", "search.budgets=[null,40k]", "retrain.epochs=0",
        "export.onnx=false", "search.supernets=1", "device=cpu"]
REMOVED = "was removed while the run was writing to it; nothing more is written; start again"


def run_argv(out: Path, *extra: str) -> list[str]:
    return ["run", QUICK, *TINY, *extra, "--out", str(out)]


def after_checkpoints(monkeypatch, n: int, then) -> None:
    """``then()`` once ``n`` checkpoints were written (``n`` = 0: before the first)."""
    real, count = CheckpointStore.save, {"n": 0}
    if n == 0:
        then()

    def save(self, state):
        path = real(self, state)
        count["n"] += 1
        if count["n"] == n:
            then()
        return path

    monkeypatch.setattr(CheckpointStore, "save", save)


def failing_appends(monkeypatch, error: OSError) -> dict:
    """From the moment ``armed["on"]`` is set, every append to metrics.jsonl raises ``error``."""
    armed = {"on": False}

    def fake_open(file, mode="r", *args, **kwargs):
        if armed["on"] and "a" in mode and Path(file).name == "metrics.jsonl":
            raise error
        return open(file, mode, *args, **kwargs)

    monkeypatch.setattr(progress, "open", fake_open, raising=False)
    return armed


# ---------------------------------------------------------------------------------------- 6a: metrics append


def test_a_full_disk_on_a_metrics_append_names_the_file_and_the_resume_command(tmp_path, monkeypatch, capsys):
    out = tmp_path / "o"
    armed = failing_appends(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    after_checkpoints(monkeypatch, 1, lambda: armed.update(on=True))
    code, err = cli(capsys, *run_argv(out))
    assert code == 2, err
    assert f"cannot write {out / 'metrics.jsonl'} (No space left on device)" in err
    assert "free space" in err and f"--out {out} --resume" in err
    monkeypatch.undo()
    code, err = cli(capsys, *run_argv(out), "--resume")  # what the message said to do
    assert code == 0, err
    assert (out / "results.json").is_file()


def test_a_failed_metrics_append_before_any_checkpoint_does_not_advise_resume(tmp_path, monkeypatch, capsys):
    out = tmp_path / "o"
    armed = failing_appends(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    armed["on"] = True
    code, err = cli(capsys, *run_argv(out))
    assert code == 2 and f"cannot write {out / 'metrics.jsonl'}" in err, err
    assert "--resume" not in err and f"rm -r {out}" in err
    monkeypatch.undo()
    shutil.rmtree(out)
    code, err = cli(capsys, *run_argv(out))  # what the message said to do
    assert code == 0, err


def test_a_metrics_append_refused_by_permissions_says_make_writable(tmp_path, monkeypatch, capsys):
    out = tmp_path / "o"
    armed = failing_appends(monkeypatch, PermissionError(errno.EACCES, "Permission denied"))
    after_checkpoints(monkeypatch, 1, lambda: armed.update(on=True))
    code, err = cli(capsys, *run_argv(out))
    assert code == 2 and "(Permission denied)" in err and "metrics.jsonl" in err, err
    assert "free space" not in err and "writable" in err and "--resume" in err


# ---------------------------------------------------------------------------------------- 6b: folder removed


@pytest.mark.parametrize("checkpoints", [1, 2])
def test_run_folder_removed_mid_run_stops_with_one_message_and_is_not_recreated(tmp_path, monkeypatch, capsys,
                                                                                checkpoints):
    """Removed after the first checkpoint (the next write is a metrics append) or just before the second
    (the next write is that checkpoint, through an atomic write that used to create its folders again)."""
    out = tmp_path / "o"
    real = CheckpointStore.save
    count = {"n": 0}

    def save(self, state):
        count["n"] += 1
        if count["n"] == checkpoints and checkpoints == 2:
            shutil.rmtree(out)
        path = real(self, state)
        if count["n"] == checkpoints and checkpoints == 1:
            shutil.rmtree(out)
        return path

    monkeypatch.setattr(CheckpointStore, "save", save)
    code, err = cli(capsys, *run_argv(out))
    assert code == 2 and f"the run folder {out} {REMOVED}" in err, err
    assert not out.exists()


def test_run_folder_removed_and_made_again_by_another_process_is_not_written_to(tmp_path, monkeypatch, capsys):
    out = tmp_path / "o"

    def replace():
        shutil.rmtree(out)
        out.mkdir()  # another process takes the path: the run's lock is on the removed folder's file

    real, count = CheckpointStore.save, {"n": 0}

    def save(self, state):
        count["n"] += 1
        if count["n"] == 2:
            replace()
        return real(self, state)

    monkeypatch.setattr(CheckpointStore, "save", save)
    code, err = cli(capsys, *run_argv(out))
    assert code == 2 and REMOVED in err, err
    assert list(out.iterdir()) == []


def test_a_moved_run_folder_says_so(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    lock = RunLock(run)
    assert lock.acquire()
    try:
        run.rename(tmp_path / "elsewhere")
        with pytest.raises(UserError, match="was moved while the run was writing to it"):
            atomic_write_text(run / "results.json", "{}")
        assert not run.exists()
    finally:
        lock.release()


def test_atomic_writes_under_a_guarded_folder_create_its_sub_folders_not_the_folder(tmp_path):
    run, gone = tmp_path / "run", {"v": None}
    run.mkdir()
    key = io_.guard_run_folder(run, lambda: gone["v"])
    try:
        atomic_write_text(run / "export" / "eps-0" / "manifest.json", "{}")  # new sub-folders: created
        assert (run / "export" / "eps-0" / "manifest.json").read_text() == "{}"
        atomic_write_text(tmp_path / "outside" / "a" / "b.json", "{}")  # outside it: created as always
        assert (tmp_path / "outside" / "a" / "b.json").is_file()
        shutil.rmtree(run)
        with pytest.raises(UserError, match="removed"):
            atomic_write_text(run / "checkpoints" / "x.json", "{}")
        assert not run.exists()
    finally:
        io_.unguard_run_folder(key)
    atomic_write_text(run / "checkpoints" / "x.json", "{}")  # no run holds it now: created as before
    assert (run / "checkpoints" / "x.json").is_file()


def test_a_run_folder_reached_through_a_symlink_and_dotdot_is_written_where_the_os_puts_it(tmp_path, capsys):
    """``link/../x`` is ``x`` next to the link's target for the OS, not next to the link (``os.path.abspath``
    would say so): the run's writes and its guard must agree with the OS."""
    (tmp_path / "target_parent" / "target").mkdir(parents=True)
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "link").symlink_to(tmp_path / "target_parent" / "target")
    out = tmp_path / "here" / "link" / ".." / "x"
    code, err = cli(capsys, *run_argv(out))
    assert code == 0, err
    assert (tmp_path / "target_parent" / "x" / "results.json").is_file() and not (tmp_path / "here" / "x").exists()


def test_the_lock_file_deleted_alone_mid_run_says_resume(tmp_path, monkeypatch, capsys):
    """A tmp cleaner (or a user) deleting only DIR/.lock: the folder and its checkpoints are intact, so the
    advice is --resume, not "start again"; and the resume finishes."""
    out = tmp_path / "o"
    real, count = CheckpointStore.save, {"n": 0}

    def save(self, state):
        count["n"] += 1
        if count["n"] == 2:
            (out / ".lock").unlink()
        return real(self, state)

    monkeypatch.setattr(CheckpointStore, "save", save)
    code, err = cli(capsys, *run_argv(out))
    assert code == 2 and f"the lock file {out / '.lock'} was deleted" in err and "--resume" in err, err
    assert REMOVED not in err
    monkeypatch.setattr(CheckpointStore, "save", real)
    code, err = cli(capsys, *run_argv(out), "--resume")
    assert code == 0 and (out / "results.json").is_file(), err


def test_the_guard_is_dropped_after_a_chdir_mid_run(tmp_path, monkeypatch):
    """The lock registers the folder's real path and releases that key, whatever the working folder is by then."""
    (tmp_path / "a" / "c").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a")
    lock = RunLock(Path("c"))
    assert lock.acquire()
    monkeypatch.chdir(tmp_path)
    lock.release()
    assert io_._RUN_FOLDERS == {}


# ---------------------------------------------------------------------------------------- 9: advice by errno


def test_a_permission_error_on_a_checkpoint_does_not_say_free_space(tmp_path, monkeypatch, capsys):
    out = tmp_path / "o"
    real, count = CheckpointStore.save, {"n": 0}

    def save(self, state):
        count["n"] += 1
        if count["n"] == 2:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(self, state)

    monkeypatch.setattr(CheckpointStore, "save", save)
    code, err = cli(capsys, *run_argv(out))
    assert code == 2 and "cannot write a checkpoint" in err and "(Permission denied)" in err, err
    assert "free space" not in err and "make the folder writable" in err
    assert "previous checkpoint is intact" in err and "--resume" in err


def test_another_errno_on_a_checkpoint_gets_neutral_advice(tmp_path, monkeypatch, capsys):
    out = tmp_path / "o"
    real, count = CheckpointStore.save, {"n": 0}

    def save(self, state):
        count["n"] += 1
        if count["n"] == 2:
            raise OSError(errno.EIO, "Input/output error")
        return real(self, state)

    monkeypatch.setattr(CheckpointStore, "save", save)
    code, err = cli(capsys, *run_argv(out))
    assert code == 2 and "(Input/output error)" in err, err
    assert "free space" not in err and "writable" not in err and "--resume" in err


# ---------------------------------------------------------------------------------------- 8: resume keys


@pytest.fixture
def stopped(tmp_path, die_after_save):
    """A run killed right after its first checkpoint."""
    out = tmp_path / "o"
    die_after_save(lambda state, n: n == 1)
    with pytest.raises(Killed):
        Run(load_recipe(QUICK, TINY), out, tty=False).execute()
    return out


def test_a_refused_resume_names_each_differing_key_with_both_values(stopped, capsys):
    code, err = cli(capsys, *run_argv(stopped, "retrain.lr=0.1", "checkpoint.every_steps=5"), "--resume")
    assert code == 2 and "the recipe differs" in err, err
    assert "retrain.lr: 0.05 there, 0.1 here" in err
    assert "checkpoint" not in err.split("differs", 1)[1].split("resume with")[0]  # may differ: not listed


def test_a_resume_may_change_the_data_workers(stopped, capsys):
    code, err = cli(capsys, *run_argv(stopped, "data.workers=2"), "--resume")
    assert code == 0, err
    assert (stopped / "results.json").is_file()


def test_data_workers_lets_no_other_key_through(stopped, capsys):
    code, err = cli(capsys, *run_argv(stopped, "data.workers=2", "retrain.lr=0.1"), "--resume")
    assert code == 2 and "retrain.lr: 0.05 there, 0.1 here" in err, err
    assert "data.workers" not in err
