"""Review CP: reusing a supernet (``--supernet RUN_DIR``) from a run still writing its folder, and from a run whose
data set was at another path."""

import errno
import fcntl
import json
import os
import socket
from pathlib import Path

import pytest
import torch

import automl._lock as run_lock
from automl.cli import main
from automl.errors import UserError
from automl.pipeline import results as results_module
from automl.pipeline.context import how_to_go_on
from automl.pipeline.reuse import differences, fingerprint_digest, load_supernet, weights_fingerprint
from automl.pipeline.state import CKPT_FORMAT
from automl.recipe import load_recipe
from automl.train.checkpoint import CheckpointStore

from test_reuse_fixes import DIGITS, FAST, QUICK  # the tiny run the reuse tests share


def _fingerprint(*overrides):
    recipe = load_recipe(QUICK, FAST + list(overrides))
    return weights_fingerprint(recipe, DIGITS, {k: str(v) for k, v in recipe.space_args.items()})


def _run_folder(folder: Path, fingerprint: dict, trained: bool = True, checkpoint: bool = True) -> Path:
    """A run's folder: its checkpoint holds the trained supernet (``trained``) or one from inside its weight phase;
    ``checkpoint`` False: a run that has not written its first checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    if checkpoint:
        CheckpointStore(folder / "checkpoints").save({
            "format": CKPT_FORMAT, "recipe_sha256": "x", "stage": 1 if trained else 0, "epoch": 0 if trained else 1,
            "supernet": {"w": torch.zeros(3)} if trained else None,
            "supernet_origin": {"from": None, "fingerprint": fingerprint_digest(fingerprint), "forced": False,
                                "differs": []},
            "weights_fingerprint": fingerprint})
    return folder


@pytest.fixture
def running(tmp_path):
    """``hold(folder)``: an exclusive lock on ``folder/.lock`` naming a run, as a run writing there holds it (a
    second open file of this process: flock locks of two open files conflict)."""
    fds = []

    def hold(folder: Path) -> None:
        fd = os.open(folder / run_lock.LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, (json.dumps({"pid": 4242, "host": socket.gethostname(), "started": "2026-12-05 05:00:00 UTC",
                                  "command": "automl run recipes/quickstart.yaml --out A"}) + "\n").encode())
        fds.append(fd)

    yield hold
    for fd in fds:
        os.close(fd)


# ------------------------------------------------------------------ a source run still writing its folder

def test_a_run_still_in_its_weight_phase_is_named_as_running_not_to_be_resumed(tmp_path, running):
    fp = _fingerprint()
    source = _run_folder(tmp_path / "A", fp, trained=False)
    running(source)
    with pytest.raises(UserError) as e:
        load_supernet(source, fp, force=False, space_path=DIGITS)
    msg = str(e.value)
    # --resume would be refused (the folder is in use): the message says to wait, naming the run
    assert "still in its weight phase" in msg and "process 4242" in msg and "wait for its weight phase" in msg
    assert "--resume" not in msg


def test_a_stopped_run_in_its_weight_phase_is_still_to_be_resumed(tmp_path):
    fp = _fingerprint()
    source = _run_folder(tmp_path / "A", fp, trained=False)
    with pytest.raises(UserError, match=r"its weight phase has not finished; finish it first \(automl run RECIPE "
                                         r"--out .* --resume"):
        load_supernet(source, fp, force=False, space_path=DIGITS)


def test_a_run_that_has_not_checkpointed_yet_is_named_as_running(tmp_path, running, capsys):
    source = _run_folder(tmp_path / "A", _fingerprint(), checkpoint=False)
    running(source)
    out = tmp_path / "B"
    code = main(["run", QUICK, *FAST, "--out", str(out), "--supernet", str(source)])
    err = capsys.readouterr().err
    assert code == 2 and "no checkpoint yet: it is still running" in err and "process 4242" in err
    assert not out.exists()


def test_a_running_source_whose_weight_phase_is_done_is_reused(tmp_path, running):
    fp = _fingerprint()
    source = _run_folder(tmp_path / "A", fp)
    running(source)
    assert load_supernet(source, fp, force=False, space_path=DIGITS).differs == []
    assert run_lock.held_by(source) is not None  # only looked: the run's lock is still its own


def test_held_by_looks_without_taking_the_lock(tmp_path, running):
    folder = tmp_path / "A"
    folder.mkdir()
    assert run_lock.held_by(folder) is None  # no lock file
    (folder / run_lock.LOCK_NAME).write_text("{}\n")
    assert run_lock.held_by(folder) is None  # a lock file nobody holds
    assert (folder / run_lock.LOCK_NAME).read_text() == "{}\n"  # left as it was
    running(folder)
    assert "4242" in run_lock.held_by(folder)


# ------------------------------------------------------------------ data.root: where the data is, not what it is

def test_cifar10_at_another_path_trained_the_same_supernet(tmp_path):
    theirs = _fingerprint("data.dataset=cifar10", "data.root=/machine1/data/cifar10")
    ours = _fingerprint("data.dataset=cifar10", "data.root=/scratch/cifar10")
    source = _run_folder(tmp_path / "A", theirs)
    reused = load_supernet(source, ours, force=False, space_path=DIGITS)
    assert reused.differs == [] and not reused.origin["forced"]


def test_a_run_recorded_with_its_cifar10_root_is_reused_with_the_data_elsewhere(tmp_path):
    ours = _fingerprint("data.dataset=cifar10", "data.root=/scratch/cifar10")
    theirs = {**ours, "data.root": "/machine1/data/cifar10"}  # as the fingerprint recorded it before
    assert differences(theirs, ours, DIGITS) == []


def test_another_imagefolder_root_is_another_data_set(tmp_path):
    theirs = _fingerprint("data.dataset=imagefolder", "data.root=/data/flowers")
    ours = _fingerprint("data.dataset=imagefolder", "data.root=/data/birds")
    source = _run_folder(tmp_path / "A", theirs)
    with pytest.raises(UserError, match='data.root: "/data/flowers" there, "/data/birds" here'):
        load_supernet(source, ours, force=False, space_path=DIGITS)


# ------------------------------------------------------------------ the lock file on a full disk

def test_a_lock_file_that_cannot_be_written_is_one_message_and_no_lock(tmp_path, monkeypatch):
    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    folder = tmp_path / "run"
    folder.mkdir()
    monkeypatch.setattr(run_lock.os, "pwrite", full)
    lock = run_lock.RunLock(folder)
    with pytest.raises(UserError) as e:
        lock.acquire()
    monkeypatch.undo()
    assert str(e.value) == (f"--out {folder}: cannot write its lock file {folder / '.lock'} (No space left on device); "
                            f"free space and run the command again")
    assert lock.fd is None and run_lock.held_by(folder) is None  # not held: the next command takes it
    again = run_lock.RunLock(folder)
    assert again.acquire() and json.loads((folder / ".lock").read_text())["pid"] == os.getpid()
    again.release()


def test_held_by_leaves_this_process_own_lock_alone(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    lock = run_lock.RunLock(folder)
    assert lock.acquire()
    try:
        # not another run; and no copy of the file is opened and closed (on NFS that would drop the lock)
        assert run_lock.held_by(folder) is None
        with pytest.raises(UserError, match="is in use"):
            run_lock.RunLock(folder).acquire()
    finally:
        lock.release()


# ------------------------------------------------------------------ --resume on a full disk

def test_a_resume_that_cannot_rewrite_results_json_names_it(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    partial = {"retrain_epochs": 1, "archs": [{"choices": ["a"]}], "metrics_bytes": 10}
    path.write_text(json.dumps({"recipe": "quickstart", results_module.PARTIAL: partial}))
    before = path.read_text()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results_module, "atomic_write_json", full)
    with pytest.raises(UserError) as e:
        results_module.carry_over(path, 100, finished=False, measures_ranking=False)
    assert str(e.value) == (f"--resume: cannot write {path} (No space left on device); free space and run the same "
                            f"command again (the run's checkpoints and its results.json are intact)")
    assert path.read_text() == before


# ------------------------------------------------------------------ advice to delete a folder, as a shell reads it

@pytest.mark.parametrize("out, quoted", [("my runs/first", True), ("runs/a;b", True), ("-x", False),
                                         ("runs/plain", False)])
def test_the_folder_to_delete_is_named_as_a_shell_reads_it(out, quoted, tmp_path, monkeypatch):
    # named from the root (a leading - is then no option), quoted where a shell would split or run it
    monkeypatch.chdir(tmp_path)
    advice = how_to_go_on(False, Path(out), "automl run R --out X --resume")
    shown = f"'{tmp_path / out}'" if quoted else str(tmp_path / out)
    assert f"delete the folder (rm -r {shown}) and run the command again" in advice, advice


def test_a_run_folder_that_cannot_be_resumed_is_named_for_the_shell(tmp_path, monkeypatch, capsys):
    # the --resume refusal and the "already holds files" refusal quote the folder as the context's advice does
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "my run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "results.json").write_text("{}")
    (out / "metrics.jsonl").write_text("")
    assert main(["run", QUICK, "--out", "my run", "--resume"]) == 2
    assert f"(rm -r '{out}')" in capsys.readouterr().err  # absolute: the same folder pasted from any other
    assert main(["run", QUICK, "--out", "my run"]) == 2
    assert f"(rm -r '{out}')" in capsys.readouterr().err


def test_a_run_that_reused_a_supernet_resumes_after_both_folders_moved(tmp_path):
    # was: "--resume: the recipe differs ...: supernet: "/old/A" there, "/new/A" here" (the path was fingerprinted)
    import shutil
    from automl.pipeline import Run
    Run(load_recipe(QUICK, FAST), tmp_path / "old" / "A", tty=False).execute()
    Run(load_recipe(QUICK, FAST + [f"supernet={tmp_path / 'old' / 'A'}"]), tmp_path / "old" / "B",
        tty=False).execute()
    shutil.move(tmp_path / "old", tmp_path / "new")
    new_a, new_b = tmp_path / "new" / "A", tmp_path / "new" / "B"
    res = Run(load_recipe(QUICK, FAST + [f"supernet={new_a}"]), new_b, resume=True, tty=False).execute()
    assert res["architectures"] and res["supernet"] is not None
    with pytest.raises(UserError, match="pass it again"):  # the supernet still counts: left out, it is refused
        Run(load_recipe(QUICK, FAST), new_b, resume=True, tty=False).execute()
