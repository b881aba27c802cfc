"""A run's lifecycle (review G): what a refused --out or --resume says (a folder no run wrote, a mistyped folder, a
space argument at its default), a resume with another number of processes, a finished run resumed elsewhere, and the
lock file's record of the run after a refused command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automl.train.checkpoint import CheckpointStore
from helpers import cli_said as cli
from test_writes_review_q import QUICK, ROOT, TINY  # seconds: one epoch of each phase on a few digits
from test_writes_review_q import stopped  # noqa: F401 - the fixture: a run killed after its first checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------- a folder no run wrote


@pytest.fixture
def users_folder(tmp_path) -> Path:
    """A folder of the user's own files (--out given by mistake)."""
    out = tmp_path / "thesis"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "plot.png").write_bytes(b"png")
    (out / "thesis.tex").write_text("\\documentclass{article}\n")
    return out


@pytest.mark.parametrize("resume", [False, True])
def test_a_folder_no_run_wrote_is_refused_without_advising_to_delete_it(users_folder, capsys, resume):
    code, err = cli(capsys, "run", QUICK, *TINY, "--out", users_folder, *(["--resume"] if resume else []))
    assert code == 2, err
    assert "rm -r" not in err and "delete" not in err, err  # the user's own files: never advise removing them
    assert "not an automl run's folder" in err and "choose another --out" in err, err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in users_folder.iterdir()) == ["figures", "thesis.tex"]  # nothing written


# ---------------------------------------------------------------------------------------- another process count


def _recorded_processes(out: Path, n: int | None) -> None:
    """Rewrite the run's newest checkpoint as if the run had recorded ``n`` processes (None: no count)."""
    store = CheckpointStore(out / "checkpoints")
    ckpt = store.load()
    assert ckpt.get("world_size") == 1  # a run records its process count
    if n is None:
        ckpt.pop("world_size")
    else:
        ckpt["world_size"] = n
    store.save(ckpt)


def test_a_resume_with_another_process_count_says_what_changes(stopped, capsys):
    _recorded_processes(stopped, 2)
    code, said = cli(capsys, "run", QUICK, *TINY, "--out", stopped, "--resume")
    assert code == 0, said
    warning = [line for line in said.splitlines() if line.startswith("warning:") and "processes" in line]
    assert len(warning) == 1, said
    assert "started with 2 processes" in warning[0] and "1 now" in warning[0], warning
    assert "data.batch_size" in warning[0]  # per process: the total batch is what changes
    assert (stopped / "results.json").is_file()


@pytest.mark.parametrize("recorded", [1, None])  # the same count; a checkpoint of an automl that did not record it
def test_a_resume_with_the_same_or_an_unrecorded_process_count_says_nothing(stopped, capsys, recorded):
    _recorded_processes(stopped, recorded)
    code, said = cli(capsys, "run", QUICK, *TINY, "--out", stopped, "--resume")
    assert code == 0, said
    assert "processes" not in said, said


def test_a_finished_run_resumed_with_another_process_count_says_nothing(tmp_path, capsys):
    out = tmp_path / "o"
    assert cli(capsys, "run", QUICK, *TINY, "--out", out)[0] == 0
    before = (out / "metrics.jsonl").read_bytes()
    _recorded_processes(out, 2)
    code, said = cli(capsys, "run", QUICK, *TINY, "--out", out, "--resume")
    assert code == 0 and "processes" not in said, said  # only its report is written again: nothing trains
    assert (out / "metrics.jsonl").read_bytes() == before


# ---------------------------------------------------------------------------------------- a finished run resumed


def test_a_finished_run_resumed_elsewhere_keeps_the_record_of_how_it_computed(tmp_path, capsys):
    """A requeue script that always passes --resume, on another machine or with another thread count: only the
    report is written again, and results.json still says how the run computed (threads, processes, device)."""
    out = tmp_path / "o"
    assert cli(capsys, "run", QUICK, *TINY, "--out", out)[0] == 0
    before = (out / "results.json").read_bytes()
    code, said = cli(capsys, "run", QUICK, *TINY, "threads=2", "--out", out, "--resume")
    assert code == 0, said
    assert (out / "results.json").read_bytes() == before


def test_a_finished_run_resumed_keeps_the_processes_and_device_it_recorded(tmp_path, capsys):
    """As if the run had computed on a GPU under torchrun, and its report were written again on this CPU."""
    out = tmp_path / "o"
    assert cli(capsys, "run", QUICK, *TINY, "--out", out)[0] == 0
    there = json.loads((out / "results.json").read_text())
    there.update(world_size=2, device="cuda (NVIDIA H200)")
    (out / "results.json").write_text(json.dumps(there, indent=2) + "\n")
    assert cli(capsys, "run", QUICK, *TINY, "--out", out, "--resume")[0] == 0
    assert json.loads((out / "results.json").read_text()) == there


def test_resume_into_a_folder_that_does_not_exist_says_so(tmp_path, capsys):
    """A mistyped --out: the message says the folder is not there, and nothing is created."""
    code, said = cli(capsys, "run", QUICK, *TINY, "--out", tmp_path / "typo", "--resume")
    assert code == 2 and "no checkpoint in" in said, said
    assert f"{tmp_path / 'typo'} does not exist" in said and "check --out" in said, said
    assert not (tmp_path / "typo").exists()


# ---------------------------------------------------------------------------------------- a refused --resume


def test_a_refused_resume_names_a_space_argument_left_at_its_default_by_its_value(stopped, capsys):
    """The run left ``width`` at the space's default (digits.space: ``param width = 1.0``)."""
    code, said = cli(capsys, "run", QUICK, *TINY, "space_args={width: 2}", "--out", stopped, "--resume")
    assert code == 2 and "the recipe differs" in said, said
    assert "space_args.width: 1.0 there" in said and "(absent)" not in said, said


# ---------------------------------------------------------------------------------------- the lock file's record


def test_a_refused_command_leaves_the_lock_file_naming_the_run(tmp_path, capsys):
    """``.lock`` says who held the folder last: a command refused there (no --resume) does not take its place."""
    out = tmp_path / "o"
    assert cli(capsys, "run", QUICK, *TINY, "--out", out)[0] == 0
    record = '{"pid": 4242, "host": "elsewhere", "started": "2026-01-01 00:00:00 UTC", "command": "automl run"}\n'
    (out / ".lock").write_text(record)  # as the run's own process wrote it (this test runs in one process)
    code, said = cli(capsys, "run", QUICK, *TINY, "seed=1", "--out", out)
    assert code == 2 and "already holds files" in said, said
    assert (out / ".lock").read_text() == record
