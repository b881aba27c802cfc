"""Review EK: a run folder left by a hard kill (``kill -9``, a power loss) before the run's first checkpoint is
taken over by a new run and by ``--resume`` (one line says it starts afresh), while a folder holding anything
more (a checkpoint, results, exports, the user's files, a live run's lock) is refused and left as it was; and an
unreadable ``search.cost_table`` or ``--supernet`` path is one message naming the key or the flag (exit 2)."""

import errno
import json
import os
import pathlib
from functools import partial
from pathlib import Path

import pytest

from automl._lock import RunLock
from automl.cli import main
from automl.commands.run import _latest_run
import automl.pipeline.run as run_module
from helpers import cli_out_err

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
FAST = ["threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
        "search.supernets=1", "data.limit_train=64", "data.batch_size=32", "data.theta_batch_size=32",
        "search.lam=2", "search.budgets=null", "search.epsilons=[0]", "export.onnx=false"]
# a line of the killed run's log: its "seconds" tells it from the new run's lines
OLD_LINE = json.dumps({"phase": "weights", "epoch": 1, "step": 10, "loss": 2.66, "accuracy": 0.1, "lr": 0.3,
                       "seconds": 12345.678})


cli = partial(cli_out_err, internal_ok=True)  # (code, stdout, stderr); no traceback


def killed_before_first_checkpoint(out: Path) -> Path:
    """What ``automl run recipes/quickstart.yaml --out OUT`` leaves when killed with -9 in its first epoch (seen:
    .lock, threads.json, recipe.resolved.yaml, metrics.jsonl), with the temporaries of two writes the kill cut
    short (start-up's recipe, the first checkpoint) and a last log line cut in the middle."""
    (out / "checkpoints").mkdir(parents=True)
    (out / ".lock").write_text(json.dumps({"pid": 999999, "host": "h", "started": "2026-01-01 00:00:00 UTC",
                                           "command": "automl run"}) + "\n")
    (out / "threads.json").write_text('{"threads": 2, "source": "auto"}\n')
    (out / "recipe.resolved.yaml").write_text("name: quickstart\nseed: 7\n")
    (out / ".recipe.resolved.yaml.0a1b2c3d.tmp").write_text("name: quick")
    (out / "checkpoints" / ".ckpt-000001.pt.9f8e7d6c.tmp").write_bytes(b"PK\x03\x04 cut short")
    (out / "metrics.jsonl").write_text(OLD_LINE + "\n" + OLD_LINE + "\n" + OLD_LINE[:40])
    return out


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("resume", [False, True])
def test_a_run_killed_before_its_first_checkpoint_is_started_afresh(tmp_path, capsys, resume):
    """Was: "--out DIR already holds files (metrics.jsonl); ... delete it (rm -r DIR)", and for --resume "no
    checkpoint in DIR ... delete it (rm -r DIR)": a user who lost nothing had to delete the folder by hand."""
    out = killed_before_first_checkpoint(tmp_path / "r")
    code, said, err = cli(capsys, "run", QUICK, *FAST, "--out", out, *(["--resume"] if resume else []))
    assert code == 0, err
    first = said.splitlines()[0]
    if resume:
        assert first.startswith(f"--resume: no checkpoint in {out}: the run there stopped before its first one"), said
    else:
        assert first.startswith(f"--out {out}: the run there stopped before its first checkpoint"), said
    assert "starting" in first and "afresh" in first and "(its 2 lines of metrics.jsonl replaced)" in first, first
    assert (out / "results.json").is_file()
    log = (out / "metrics.jsonl").read_text()
    assert "12345.678" not in log and log.endswith("\n"), log  # only the new run's lines, each whole
    assert not list(out.rglob("*.tmp"))
    assert "seed: 0" in (out / "recipe.resolved.yaml").read_text()
    assert json.loads((out / ".lock").read_text())["pid"] == os.getpid()  # the lock file stays, naming this run


def test_a_folder_with_only_the_lock_and_start_up_files_gets_the_note_too(tmp_path, capsys):
    """What a kill in start-up leaves (seen: .lock, threads.json, recipe.resolved.yaml): a new run said nothing."""
    out = tmp_path / "r"
    out.mkdir()
    (out / ".lock").write_text("")
    (out / "threads.json").write_text('{"threads": 2}\n')
    code, said, err = cli(capsys, "run", QUICK, *FAST, "--out", out)
    assert code == 0, err
    assert said.startswith(f"--out {out}: the run there stopped before its first checkpoint, so nothing to continue; "
                           f"starting afresh in its place\n"), said


EXTRA = {
    "the user's file": lambda out: (out / "notes.txt").write_text("mine"),
    "results": lambda out: (out / "results.json").write_text("{}"),
    "an export": lambda out: ((out / "export" / "budget-0-none").mkdir(parents=True),
                              (out / "export" / "budget-0-none" / "model.onnx").write_bytes(b"onnx")),
    "a checkpoint without its index": lambda out: (out / "checkpoints" / "ckpt-000001.pt").write_bytes(b"x" * 64),
    "a file of the user's in checkpoints/": lambda out: (out / "checkpoints" / "keep.txt").write_text("mine"),
    "a metrics.jsonl that is not a run's log": lambda out: (out / "metrics.jsonl").write_text('{"mine": 1}\n'),
    "a metrics.jsonl linked to the user's file": lambda out: ((out / "metrics.jsonl").unlink(),
                                                              (out / "metrics.jsonl").symlink_to(out.parent / "log")),
    "another temporary": lambda out: (out / ".report.md.0a1b2c3d.tmp").write_text("#"),
}


@pytest.mark.parametrize("extra", list(EXTRA))
def test_a_folder_holding_more_is_refused_and_left_as_it_was(tmp_path, capsys, extra):
    (tmp_path / "log").write_text(OLD_LINE + "\n")
    out = killed_before_first_checkpoint(tmp_path / "r")
    EXTRA[extra](out)
    before = snapshot(out)
    for resume in ([], ["--resume"]):
        code, said, err = cli(capsys, "run", QUICK, *FAST, "--out", out, *resume)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "afresh" not in said + err
        assert snapshot(out) == before


def test_a_live_runs_folder_is_not_taken_over(tmp_path, capsys):
    """A run in its first epoch leaves the same files: while it holds the lock it is named, and nothing is touched."""
    out = killed_before_first_checkpoint(tmp_path / "r")
    lock = RunLock(out)
    assert lock.acquire()
    try:
        before = snapshot(out)
        for resume in ([], ["--resume"]):
            code, said, err = cli(capsys, "run", QUICK, *FAST, "--out", out, *resume)
            assert code == 2 and "is in use" in err and "afresh" not in said, err
            assert snapshot(out) == before
    finally:
        lock.release()


def test_leftovers_tells_a_runs_log_from_other_files(tmp_path):
    out = killed_before_first_checkpoint(tmp_path / "r")
    assert sorted(p.name for p in run_module.leftovers(out)) == [
        ".ckpt-000001.pt.9f8e7d6c.tmp", ".recipe.resolved.yaml.0a1b2c3d.tmp",
        "metrics.jsonl", "recipe.resolved.yaml", "threads.json"]
    (out / "metrics.jsonl").write_text(OLD_LINE + "\nnot json\n")
    assert run_module.leftovers(out) is None
    (out / "metrics.jsonl").write_text(OLD_LINE + "\n" + '{"mine": ')  # a cut line that is not the run's
    assert run_module.leftovers(out) is None


@pytest.mark.skipif(not Path("/proc/self/mem").is_file(), reason="Linux: /proc/self/mem reads with an I/O error")
def test_an_unreadable_cost_table_names_the_key(tmp_path, capsys):
    """Was: an OSError traceback and "internal error" (exit 1) from the run's recipe fingerprint."""
    code = main(["run", QUICK, *FAST, "search.cost_table=/proc/self/mem", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "search.cost_table: cannot read the cost table /proc/self/mem (Input/output error)" in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_a_supernet_folder_that_cannot_be_looked_at_names_the_flag(tmp_path, capsys, monkeypatch):
    """Was: "automl: DIR: Permission denied; check the path ..." naming no flag (a folder on the way that this user
    may not search; root may search every folder, so the refusal is the file system's, simulated here)."""
    source = tmp_path / "locked" / "run"
    is_dir = pathlib.Path.is_dir

    def refusing(self):
        if self == source:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return is_dir(self)

    monkeypatch.setattr(pathlib.Path, "is_dir", refusing)
    code, said, err = cli(capsys, "run", QUICK, *FAST, "--supernet", source, "--out", tmp_path / "new")
    assert code == 2 and err.startswith(f"error: --supernet {source}: cannot look at it (Permission denied)"), err
    assert not (tmp_path / "new").exists()


def test_resume_without_out_passes_over_a_run_killed_in_its_first_epoch(tmp_path, monkeypatch, capsys):
    """As over a folder a killed start-up left: the latest run with something to continue is resumed (was: the
    killed run's folder, refused with "no checkpoint in ... rm -r")."""
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    (runs / "q-20260101-000000" / "checkpoints").mkdir(parents=True)
    (runs / "q-20260101-000000" / "results.json").write_text("{}")
    killed_before_first_checkpoint(runs / "q-20260102-000000")
    assert _latest_run("q") == Path("runs/q-20260101-000000")
    assert "passed over runs/q-20260102-000000: no checkpoint" in capsys.readouterr().out
    (runs / "q-20260102-000000" / "notes.txt").write_text("mine")  # more than a run leaves: chosen, as before
    assert _latest_run("q") == Path("runs/q-20260102-000000")
