"""Lead: a run resumed with another process count records each part's, and is warned against the last part's count."""

from __future__ import annotations

import json

import pytest

from automl.cli import main
from automl.pipeline import Run
from automl.recipe import load_recipe
from automl.train.checkpoint import CheckpointStore

from test_ranking import QUICK, TINY  # the ranking tests' tiny synthetic run
from test_review_l import killed_after_ranking

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def test_a_run_resumed_with_another_process_count_records_each_parts(tmp_path, die_after_save, capsys):
    """A run stopped inside its weight phase whose checkpoint says it started under torchrun with 2 processes,
    resumed in one: results.json's world_size is the last part's (1), world_sizes [2, 1], report.md says so, and
    the checkpoints keep the count it started with and the list (for the next resume)."""
    recipe, out = load_recipe(QUICK, [*TINY, "checkpoint.every_steps=1"]), tmp_path / "run"
    die_after_save(lambda state, n: state["stage"] == 0 and state["step"] > 0)
    with pytest.raises(KeyboardInterrupt):
        Run(recipe, out, tty=False).execute()
    store = CheckpointStore(out / "checkpoints")
    store.save({**store.load(), "world_size": 2})
    capsys.readouterr()
    Run(recipe, out, resume=True, tty=False).execute()
    assert "the run started with 2 processes, 1 now" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["world_size"] == 1 and results["world_sizes"] == [2, 1]
    assert "The run computed with 2, then 1 process: " in (out / "report.md").read_text()
    ckpt = CheckpointStore(out / "checkpoints").load()
    assert ckpt["world_size"] == 2 and ckpt["world_sizes"] == [2, 1]


def test_a_resume_compares_with_the_last_parts_process_count(tmp_path, die_after_save, capsys):
    """A run that started in one process and went on under torchrun with 2, resumed in one process: the warning
    compares with the last part's 2 (it compared with the count the run started with, and so said nothing), and
    world_sizes lists the three parts."""
    recipe, out = load_recipe(QUICK, [*TINY, "checkpoint.every_steps=1"]), tmp_path / "run"
    die_after_save(lambda state, n: state["stage"] == 0 and state["step"] > 0)
    with pytest.raises(KeyboardInterrupt):
        Run(recipe, out, tty=False).execute()
    store = CheckpointStore(out / "checkpoints")
    store.save({**store.load(), "world_size": 1, "world_sizes": [1, 2]})
    capsys.readouterr()
    Run(recipe, out, resume=True, tty=False).execute()
    said = capsys.readouterr().out
    assert "warning: the run last computed with 2 processes, 1 now" in said, said
    assert "to continue it as it last computed, resume with 2 processes (torchrun)" in said, said
    results = json.loads((out / "results.json").read_text())
    assert results["world_size"] == 1 and results["world_sizes"] == [1, 2, 1]
    assert "The run computed with 1, then 2, then 1 process: " in (out / "report.md").read_text()


def test_a_run_resumed_with_another_process_count_writes_the_count_it_computed_with_into_a_rebuilt_results_json(
        tmp_path, capsys):
    """A finished run that computed with 2 processes (its checkpoint says so, and lists no other part) whose
    results.json is lost: a resume in one process writes it anew with world_size 2, as the run computed (it wrote
    the count of the process that wrote it, 1)."""
    recipe, out = load_recipe(QUICK, TINY), tmp_path / "run"
    Run(recipe, out, tty=False).execute()
    store = CheckpointStore(out / "checkpoints")
    store.save({**store.load(), "world_size": 2})
    (out / "results.json").unlink()
    Run(recipe, out, resume=True, tty=False).execute()
    results = json.loads((out / "results.json").read_text())
    assert results["world_size"] == 2 and "world_sizes" not in results, results


def test_automl_rank_reuses_the_runs_own_retrainings_made_after_a_resume_with_another_process_count(
        tmp_path, capsys, die_after_save):
    """A run started under torchrun with 2 processes and resumed in one before its ranking, killed after its
    ranking's retrainings: `automl rank` in one process reuses them (each records that it computed with 1); it
    compared with the count the run started with only, and so retrained all three again."""
    out = killed_after_ranking(tmp_path, die_after_save)
    store = CheckpointStore(out / "checkpoints")
    store.save({**store.load(), "world_size": 2, "world_sizes": [2, 1]})
    capsys.readouterr()
    assert main(["rank", str(out), "--archs", "3", "--retrain-epochs", "1"]) == 0
    said = capsys.readouterr().out
    assert "3 of 3 retrainings were recorded by" in said, said
