"""Review JA: a run whose parts computed with different numbers of processes (started in one, resumed under
torchrun with 2, or the other way) records each part's count in order: the checkpoint's ``world_sizes``
(RunState.note_world_size), results.json's ``world_sizes`` beside ``world_size`` (the last part's count), and a
sentence in report.md; a run that kept one count writes results.json as before (no ``world_sizes``), and a
finished run's report written again keeps the history."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from automl.pipeline import Run
from automl.pipeline.results import carry_over
from automl.pipeline.state import CKPT_FORMAT, RunState
from automl.recipe import load_recipe
from automl.report import render_markdown, results_problem
from automl.train.checkpoint import CheckpointStore

from test_ranking import QUICK, TINY  # the ranking tests' tiny synthetic run

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

SENTENCE = "The run computed with"


# ---- the checkpoint's record ----------------------------------------------------------------------------------

def test_each_part_with_another_count_is_listed_in_order():
    state = RunState("x", world_size=1)
    state.note_world_size(1)
    assert state.world_sizes is None  # one count so far: nothing new
    state.note_world_size(2)
    assert state.world_sizes == [1, 2]
    state.note_world_size(2)  # a resume with as many as the last part: listed once
    assert state.world_sizes == [1, 2]
    state.note_world_size(1)
    assert state.world_sizes == [1, 2, 1]
    assert state.world_size == 1  # still the count it started with (what _warn_processes compares against)


def test_a_checkpoint_without_the_record_resumes_and_then_records_parts():
    """A checkpoint of the automl before (no ``world_sizes``) is read; one of an automl that did not record the
    count it started with (``world_size`` None) gets no list, whose first parts would be unknown."""
    ckpt = {k: v for k, v in RunState("x", world_size=2).to_checkpoint().items() if k != "world_sizes"}
    state = RunState.from_checkpoint(ckpt, "ckpt")
    assert state.world_sizes is None and state.world_size == 2
    state.note_world_size(1)
    again = RunState.from_checkpoint(state.to_checkpoint(), "ckpt")
    assert again.world_sizes == [2, 1] and again.to_checkpoint()["format"] == CKPT_FORMAT
    older = RunState.from_checkpoint({"format": CKPT_FORMAT, "recipe_sha256": "x"}, "ckpt")
    older.note_world_size(2)
    assert older.world_sizes is None


# ---- results.json read back, and report.md ------------------------------------------------------------------

def _results(**extra) -> dict:
    return {"recipe": "r", "method": "separate", "search_seconds": 1.0, "phase_seconds": {"weights": 1.0},
            "world_size": 2, "architectures": [{"epsilon": 0.0, "choices": ["a"], "params": 10, "cost": 10.0,
                                                 "test_accuracy": 0.5}], **extra}


def _sentence(report: str) -> str | None:
    lines = [line for line in report.splitlines() if line.startswith(SENTENCE)]
    assert len(lines) <= 1
    return lines[0] if lines else None


def test_report_says_each_parts_process_count():
    one_then_two = _sentence(render_markdown(_results(world_sizes=[1, 2])))
    assert one_then_two.startswith("The run computed with 1, then 2 processes: ")
    assert "`data.batch_size` is per process" in one_then_two
    assert _sentence(render_markdown(_results(world_sizes=[2, 1, 2]))).startswith(
        "The run computed with 2, then 1, then 2 processes: ")
    assert _sentence(render_markdown(_results(world_sizes=[2, 1]))).startswith(
        "The run computed with 2, then 1 process: ")


@pytest.mark.parametrize("extra", [{}, {"world_sizes": [2]}, {"world_sizes": "1, 2"}, {"world_sizes": [0, 2]},
                                   {"world_sizes": [True, 2]}, {"world_sizes": None}])
def test_report_of_one_count_or_an_edited_list_says_nothing_of_processes(extra):
    assert _sentence(render_markdown(_results(**extra))) is None


def test_an_edited_world_sizes_is_named_as_the_key_the_report_cannot_read():
    assert results_problem(_results(world_sizes=[1, 2])) is None
    assert results_problem(_results(world_sizes="1, 2")) == 'world_sizes: "1, 2" is not a list'
    assert results_problem(_results(world_sizes=[1, "2"])).startswith("world_sizes[1]: ")


def test_a_finished_runs_report_written_again_keeps_the_process_history(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_results(world_sizes=[1, 2], device="cpu")))
    kept, _ = carry_over(path, 0, finished=True, measures_ranking=False)
    assert kept["world_size"] == 2 and kept["world_sizes"] == [1, 2] and kept["device"] == "cpu"
    kept, _ = carry_over(path, 0, finished=False, measures_ranking=False)  # computed again: its own record
    assert "world_sizes" not in kept and "world_size" not in kept


# ---- end to end: a finished run's report written again -----------------------------------------------------

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished tiny run in one process (and the recipe it ran)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        recipe, out = load_recipe(QUICK, TINY), tmp_path_factory.mktemp("ja") / "run"
        Run(recipe, out, tty=False).execute()
    finally:
        torch.set_num_threads(n)
    return recipe, out


def _copy(finished_run, tmp_path):
    recipe, out = finished_run
    shutil.copytree(out, tmp_path / "run")
    return recipe, tmp_path / "run"


def test_a_run_that_kept_one_count_writes_results_json_as_before(finished_run):
    _, out = finished_run
    results = json.loads((out / "results.json").read_text())
    assert results["world_size"] == 1 and "world_sizes" not in results
    assert _sentence((out / "report.md").read_text()) is None
    assert CheckpointStore(out / "checkpoints").load()["world_sizes"] is None


def test_a_finished_run_resumed_keeps_the_history_its_results_json_records(finished_run, tmp_path):
    """results.json of a run started in one process and finished under torchrun with 2: resumed (its report written
    again, here in one process) it keeps both counts, and report.md says so."""
    recipe, out = _copy(finished_run, tmp_path)
    path = out / "results.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "world_size": 2, "world_sizes": [1, 2]}))
    Run(recipe, out, resume=True, tty=False).execute()
    results = json.loads(path.read_text())
    assert results["world_size"] == 2 and results["world_sizes"] == [1, 2]
    assert _sentence((out / "report.md").read_text()).startswith("The run computed with 1, then 2 processes: ")


def test_results_json_written_anew_takes_the_history_from_the_checkpoint(finished_run, tmp_path):
    """A finished run whose checkpoint records a start under torchrun with 2, then a part in one process, and
    whose results.json is gone: the report written again names both, ``world_size`` the last part's."""
    recipe, out = _copy(finished_run, tmp_path)
    store = CheckpointStore(out / "checkpoints")
    ckpt = store.load()
    store.save({**ckpt, "world_size": 2, "world_sizes": [2, 1]})
    (out / "results.json").unlink()
    Run(recipe, out, resume=True, tty=False).execute()
    results = json.loads((out / "results.json").read_text())
    assert results["world_size"] == 1 and results["world_sizes"] == [2, 1]
    assert list(results).index("world_sizes") == list(results).index("world_size") + 1
    assert _sentence((out / "report.md").read_text()).startswith("The run computed with 2, then 1 process: ")
