"""Review LH: ``automl rank`` takes the run folder's lock only to look until its checks have passed (a refused rank
leaves ``.lock`` as it found it: its bytes and modification time, or absent; one that goes on leaves it naming
itself; a second writer is refused meanwhile); and a ``--resume`` (or a new run) in a folder whose only run file
is a ``.lock``, beside the user's own files, is refused without advice to delete the folder."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import automl.pipeline.rank as pipeline_rank
from automl._lock import LOCK_NAME, RunLock
from automl.errors import UserError
from automl.pipeline import Run
from automl.recipe import load_recipe
from helpers import cli_err as cli
from test_ranking import QUICK, TINY
from test_review_lf import LONG_AGO, RECORD, _as_left, _named_long_ago

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def finished_once(tmp_path_factory):
    out = tmp_path_factory.mktemp("lh") / "run"
    Run(load_recipe(QUICK, TINY + ["threads=1"]), out, tty=False).execute()
    return out


@pytest.fixture
def finished(finished_once, tmp_path):
    """A copy of a finished run (no ranking section), its lock file naming another process, long ago."""
    out = tmp_path / "run"
    shutil.copytree(finished_once, out)
    _named_long_ago(out)
    return out


def _damage_results(out: Path) -> str:
    path = out / "results.json"
    results = json.loads(path.read_text())
    results["architectures"] = "edited"
    path.write_text(json.dumps(results))
    return "not as the run wrote it"


def _remove_checkpoints(out: Path) -> str:
    shutil.rmtree(out / "checkpoints")
    return "no usable checkpoint"


def _other_data(out: Path) -> str:
    """The run's recorded recipe now names more synthetic images than the run trained on."""
    path = out / "recipe.resolved.yaml"
    text = path.read_text()
    assert "num_train: 128" in text
    path.write_text(text.replace("num_train: 128", "num_train: 160"))
    return "is not what the run in"


# ---------------------------------------------------------------------------------------- 1: automl rank


REFUSALS = {
    "damaged results.json": _damage_results,
    "no checkpoint": _remove_checkpoints,
    "the data changed": _other_data,
}


@pytest.mark.parametrize("why", list(REFUSALS))
def test_a_refused_rank_leaves_the_lock_file_as_it_was(finished, capsys, why):
    said = REFUSALS[why](finished)
    lock = finished / LOCK_NAME
    before = _as_left(lock)
    code, err = cli(capsys, "rank", finished, "--archs", "3")
    assert code == 2 and said in err and "Traceback" not in err, err
    assert _as_left(lock) == before  # the same record (not this process's), the same time


@pytest.mark.parametrize("why", list(REFUSALS))
def test_a_refused_rank_leaves_no_lock_file_where_there_was_none(finished, capsys, why):
    said = REFUSALS[why](finished)
    (finished / LOCK_NAME).unlink()  # a copy made without dot files
    code, err = cli(capsys, "rank", finished, "--archs", "3")
    assert code == 2 and said in err, err
    assert not (finished / LOCK_NAME).exists()


def test_a_rank_refused_on_a_run_that_has_not_finished_leaves_the_lock_file(tmp_path, capsys, die_after_save):
    out = tmp_path / "run"
    die_after_save(lambda state, n: state["stage"] >= 2)  # after the weight and θ phases
    with pytest.raises(KeyboardInterrupt):
        Run(load_recipe(QUICK, TINY + ["threads=1"]), out, tty=False).execute()
    lock = _named_long_ago(out)
    before = _as_left(lock)
    code, err = cli(capsys, "rank", out, "--archs", "3")
    assert code == 2 and "has not finished" in err, err
    assert _as_left(lock) == before


def test_a_rank_that_goes_on_leaves_the_lock_file_naming_it(finished, capsys):
    code, err = cli(capsys, "rank", finished, "--archs", "3", "--retrain-epochs", "0")
    assert code == 0, err
    assert json.loads((finished / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert "ranking" in json.loads((finished / "results.json").read_text())


@pytest.mark.parametrize("had_one", [True, False])
def test_a_second_writer_is_refused_while_a_rank_checks(finished, capsys, monkeypatch, had_one):
    """While automl rank checks the folder (its lock only a look), the lock is held all the same: another
    command there is refused, naming this process; and, refused itself, the rank leaves the file as it was."""
    if not had_one:
        (finished / LOCK_NAME).unlink()
    before = _as_left(finished / LOCK_NAME)
    real, refusals = pipeline_rank._checked_checkpoint, []

    def second_writer_then_check(run):
        with pytest.raises(UserError) as e:
            RunLock(finished).acquire()
        refusals.append(str(e.value))
        return real(run)

    monkeypatch.setattr(pipeline_rank, "_checked_checkpoint", second_writer_then_check)
    said = _other_data(finished)
    code, err = cli(capsys, "rank", finished, "--archs", "3")
    assert code == 2 and said in err, err
    assert len(refusals) == 1 and "is in use" in refusals[0] and f"process {os.getpid()}" in refusals[0], refusals
    assert _as_left(finished / LOCK_NAME) == before


# ---------------------------------------------------------------------------------------- 2: a folder with only a .lock


@pytest.fixture
def users_folder(tmp_path):
    """A folder of the user's own files, and a lock file (all ``rm -r DIR/*`` leaves of a run: not its dot files)."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    _named_long_ago(out)
    return out


@pytest.mark.parametrize("resume", [True, False])
def test_a_folder_of_the_users_files_and_a_lock_is_not_advised_for_deletion(users_folder, capsys, resume):
    before = _as_left(users_folder / LOCK_NAME)
    code, err = cli(capsys, "run", QUICK, *TINY, "--out", users_folder, *(["--resume"] if resume else []))
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "rm -r" not in err and "delete it" not in err, err
    assert "nothing to continue" in err or "nothing there for --resume to continue" in err, err
    if resume:
        assert "no checkpoint" in err and str(users_folder / LOCK_NAME) in err and "notes.txt" in err, err
    assert (users_folder / "notes.txt").read_text() == "mine\n"
    assert _as_left(users_folder / LOCK_NAME) == before


@pytest.mark.parametrize("resume", [True, False])
def test_a_folder_a_run_wrote_in_is_still_advised_for_deletion(users_folder, capsys, resume):
    """The run's own start-up files beside the lock: the folder is a run's (one that stopped before its first
    checkpoint, with a file of the user's added), and the refusal still says how to start again there."""
    (users_folder / "threads.json").write_text("{}\n")
    code, err = cli(capsys, "run", QUICK, *TINY, "--out", users_folder, *(["--resume"] if resume else []))
    assert code == 2 and f"rm -r {users_folder}" in err, err
