"""Review FO: what ``automl run`` says of its ``--out`` folder when a signal stops its start-up.

A start-up stopped by SIGTERM said "(DIR removed)" only for a folder the command chose itself; for a ``--out``
folder it said nothing of the folder, though the start-up may have made it and removed it again
(automl/pipeline/run.py: ``_left_as_found``), left it empty, or left a start-up's files there. The message now says
what is there (automl/commands/run.py: ``_left_in``). Where ``--out`` holds a checkpoint, "its checkpoints are as
they were. Continue with: ... --resume" was said to a new run (the checkpoints are another run's) and for a
checkpoint no ``--resume`` can use; each now says what is there.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
from pathlib import Path

import pytest
from test_review_e import _stop_at

import automl.commands.run as cmd_run
import automl.pipeline.run as pr
import automl.pipeline.setup as ps
from automl.cli import main
from automl.pipeline.run import leftovers

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals")

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
FAST = ["threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
        "search.supernets=1", "data.limit_train=64", "data.batch_size=32", "data.theta_batch_size=32",
        "search.lam=2", "search.budgets=null", "search.epsilons=[0]", "export.onnx=false"]


def _stopped(monkeypatch, capfd, out: Path, where: str, *flags: str) -> str:
    """``automl run`` into ``--out out``, in this process, sent a real SIGTERM at ``where``: ``build_data`` (the
    folder is made and holds the start-up's files) or ``_check_supernet`` (the run's first step, before it looks at
    the folder). Its last line on standard error."""
    owner = ps if where == "build_data" else pr.Run
    real = getattr(owner, where)

    def stop(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)

    monkeypatch.setattr(owner, where, stop)
    assert main(["run", QUICK, *FAST, "--out", str(out), *flags]) == 128 + signal.SIGTERM
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
    return err.splitlines()[-1]


def test_a_new_out_folder_the_start_up_made_and_removed_is_said_to_be_gone(tmp_path):
    """A real child process, as a user's run: the folders it made (``new/run``) are gone, and it says so."""
    out = tmp_path / "new" / "run"
    done = _stop_at(tmp_path, "SIGTERM", "build_data", QUICK, *FAST, "--out", str(out))
    assert done.returncode == 143, done.stderr
    assert not (tmp_path / "new").exists()
    assert done.stderr.splitlines()[-1] == (
        f"stopped by SIGTERM while the run started, before its first checkpoint: nothing to resume ({out} does not "
        f"exist: nothing was left behind); start the run again")


def test_an_empty_out_folder_is_said_to_be_left_empty(tmp_path, monkeypatch, capfd):
    out = tmp_path / "mine"
    out.mkdir()
    last = _stopped(monkeypatch, capfd, out, "build_data")
    assert out.is_dir() and not any(out.iterdir())
    assert f"({out} is empty: nothing was left in it)" in last and "removed" not in last, last


def test_a_folder_of_a_killed_start_up_is_said_to_hold_only_what_a_new_run_takes_over(tmp_path, monkeypatch, capfd):
    """Not empty before (a start-up killed with -9 left its files): the start-up's files stay, named."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / ".lock").write_text("pid 1\n", encoding="utf-8")
    (out / "threads.json").write_text('{"threads": 1}\n', encoding="utf-8")
    last = _stopped(monkeypatch, capfd, out, "build_data")
    names = sorted(p.name for p in out.iterdir())
    assert ".lock" in names and "threads.json" in names
    assert leftovers(out) is not None  # what the message says: a new run takes them over
    assert (f"({out} holds only what a start-up writes ({', '.join(names)}), which a new run there takes over)"
            in last), last


def test_a_folder_of_the_users_files_is_said_to_be_left_as_it_is(tmp_path, monkeypatch, capfd):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n", encoding="utf-8")
    last = _stopped(monkeypatch, capfd, out, "_check_supernet")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert f"({out} left as it is, holding notes.txt)" in last, last


def _checkpoints(out: Path, indexed: bool) -> None:
    """A run folder's checkpoints/: a checkpoint file, with an index naming it (``indexed``) or without one."""
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "ckpt-1.pt").write_bytes(b"a checkpoint")
    if indexed:
        (out / "checkpoints" / "checkpoints.json").write_text(
            json.dumps({"checkpoints": [{"seq": 1, "file": "ckpt-1.pt", "sha256": "0" * 64}]}), encoding="utf-8")


def test_a_new_run_into_another_runs_folder_is_not_told_its_checkpoints_are_its_own(tmp_path, monkeypatch, capfd):
    out = tmp_path / "other"
    _checkpoints(out, indexed=True)
    last = _stopped(monkeypatch, capfd, out, "_check_supernet")
    again = shlex.join(["automl", "run", QUICK, *FAST, "--out", str(out), "--resume"])
    assert last == (f"stopped by SIGTERM while the run started, before it wrote anything in {out}, which holds "
                    f"another run's checkpoints (left as they were); to continue that run, if it is this "
                    f"recipe's: {again}")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoints.json", "ckpt-1.pt"]


def test_a_resume_of_a_folder_without_a_usable_checkpoint_is_not_told_to_continue(tmp_path, monkeypatch, capfd):
    out = tmp_path / "other"
    _checkpoints(out, indexed=False)
    last = _stopped(monkeypatch, capfd, out, "_check_supernet", "--resume")
    assert "Continue with" not in last and "its checkpoints are as they were" not in last, last
    assert last.startswith(f"stopped by SIGTERM while the run started; {out} is left as it was, with no checkpoint "
                           f"--resume can use: "), last
    assert "ckpt-1.pt" in last, last  # why_none names the file it found


def test_a_chosen_folder_is_removed_when_the_signal_comes_before_the_run_takes_it(tmp_path, monkeypatch, capfd):
    """A signal between the command's ``mkdir`` of runs/<name>-<time> and the run taking that folder (the window
    ``_restart_resumes`` stands in) left the empty folder, and runs/, behind, and said nothing of them."""
    monkeypatch.chdir(tmp_path)
    real = cmd_run._restart_resumes

    def stop(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)

    monkeypatch.setattr(cmd_run, "_restart_resumes", stop)
    assert main(["run", QUICK, *FAST]) == 128 + signal.SIGTERM
    last = capfd.readouterr().err.splitlines()[-1]
    assert not (tmp_path / "runs").exists()
    assert "nothing to resume (runs/quickstart-" in last and " removed); start the run again" in last, last
