"""Review EX: ``automl rank RUN_DIR`` given one of a run's own folders, or a run that stopped before its first
checkpoint. Both are one message, exit 2; neither reads data nor trains."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import cli_err as _cli

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")


@pytest.fixture(autouse=True)
def _rank_zero(monkeypatch):
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)  # rank 0 of no torchrun: it prints the errors


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A folder with a run's recipe.resolved.yaml (quickstart's) and what a run killed before its first checkpoint
    leaves besides (threads.json, a line of metrics.jsonl)."""
    text = (ROOT / "recipes" / "quickstart.yaml").read_text(encoding="utf-8")
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.resolved.yaml").write_text(text.replace("../spaces/digits.space", DIGITS), encoding="utf-8")
    (run / "threads.json").write_text('{"threads": 1}\n', encoding="utf-8")
    (run / "metrics.jsonl").write_text('{"phase": "weights", "epoch": 0, "seconds": 0.1}\n', encoding="utf-8")
    return run


@pytest.mark.parametrize("inside", ["checkpoints", "export/eps-0"])
def test_a_folder_inside_a_run_names_the_run_folder(run_dir, capsys, monkeypatch, inside):
    """``automl rank RUN/checkpoints`` said only "no recipe.resolved.yaml; RUN_DIR must be the --out folder";
    now it names the run folder above it, as given (relative stays relative) and as a command."""
    (run_dir / inside).mkdir(parents=True)
    code, err = _cli(capsys, "rank", run_dir / inside)
    assert code == 2 and err.count("\n") == 1, err
    assert f"is inside the run folder {run_dir}: automl rank {run_dir}" in err, err
    monkeypatch.chdir(run_dir / inside)
    code, err = _cli(capsys, "rank", ".")
    above = "/".join([".."] * len(Path(inside).parts))
    assert code == 2 and f"is inside the run folder {above}: automl rank {above}\n" in err, err


def test_a_folder_inside_no_run_says_only_what_a_run_dir_is(tmp_path, capsys):
    (tmp_path / "a" / "b").mkdir(parents=True)
    code, err = _cli(capsys, "rank", tmp_path / "a" / "b")
    assert code == 2 and "must be the --out folder of an automl run" in err and "inside the run folder" not in err, err


def test_a_run_stopped_before_its_first_checkpoint_is_one_to_finish(run_dir, capsys):
    """A run killed before its first checkpoint has not finished: advice to finish it (``--resume`` starts it afresh
    in its place), not to restore the folder "from a copy" as if its checkpoints had been lost."""
    code, err = _cli(capsys, "rank", run_dir, "--retrain-epochs", "0")
    assert code == 2 and err.count("\n") == 1, err
    assert "the run stopped before its first one" in err and "has not finished" in err, err
    assert f"automl run {run_dir / 'recipe.resolved.yaml'} --out {run_dir} --resume" in err, err
    assert "from a copy" not in err, err


def test_a_finished_run_whose_checkpoints_are_gone_still_says_restore(run_dir, capsys):
    """A finished run (its report written) without its checkpoints: they were lost, not never written."""
    (run_dir / "report.md").write_text("# quickstart\n", encoding="utf-8")
    code, err = _cli(capsys, "rank", run_dir, "--retrain-epochs", "0")
    assert code == 2 and "no usable checkpoint" in err and "restore the folder (from a copy)" in err, err
    assert "stopped before its first" not in err, err
