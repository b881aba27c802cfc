"""Review S: an interrupted ranking resumes without repeating its finished retrainings (``automl rank`` and
``automl run --resume``), and never takes retrainings that other settings computed."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest

import automl.pipeline.final_stages as fs
import automl.pipeline.rank as rank
from automl.cli import main
from automl.pipeline import Run
from automl.recipe import load_recipe

from test_ranking import QUICK, TINY  # the ranking tests' tiny synthetic run

RANKING = ["ranking.archs=3", "ranking.retrain_epochs=1", "ranking.bn_batches=1", "ranking.seeds=2"]
FIRST_RANKING_STAGE = 4  # weights, θ, retrain/0, retrain/1


def _retrainings(monkeypatch) -> list[int]:
    """The seeds of the ranking's stand-alone retrainings from now on (the family's own pass no data_seed)."""
    calls: list[int] = []
    real = fs.retrain
    monkeypatch.setattr(fs, "retrain", lambda *a, **k: ("data_seed" in k and calls.append(k["data_seed"]))
                        or real(*a, **k))
    return calls


def _ranking(out) -> dict:
    rk = json.loads((out / "results.json").read_text())["ranking"]
    rk.pop("seconds")  # each command's own clock
    return rk


def _same_numbers(a: dict, b: dict) -> None:
    """Bit for bit: τ, ρ, the pairs and every architecture's numbers (each retraining's, the supernet's)."""
    for key in ("kendall_tau", "spearman", "kendall_tau_batch_stats", "pairs", "seeds", "retrain_epochs"):
        assert a[key] == b[key], key
    assert a["archs"] == b["archs"]


@pytest.fixture
def stopped_in_its_ranking(tmp_path, die_after_save):
    """A run with a ranking section (3 architectures, 2 seeds: 6 retrainings) killed at the start of its fourth
    retraining (ranking/1/1: three finished), and the same run uninterrupted."""
    recipe = load_recipe(QUICK, TINY + RANKING)
    whole = tmp_path / "whole"
    Run(recipe, whole, tty=False).execute()
    die_after_save(lambda state, n: state["stage"] == FIRST_RANKING_STAGE + 3 and state["epoch"] == 0)
    with pytest.raises(KeyboardInterrupt):
        Run(recipe, tmp_path / "run", tty=False).execute()
    return recipe, tmp_path / "run", whole


def test_automl_rank_on_a_run_stopped_in_its_ranking_reuses_its_finished_retrainings(stopped_in_its_ranking,
                                                                                      monkeypatch, capsys):
    """``automl rank RUN`` with the run's own settings runs only the three retrainings the run had not finished
    (it ran all six), says so, and ranks bit for bit as the uninterrupted run."""
    _, out, whole = stopped_in_its_ranking
    capsys.readouterr()
    calls = _retrainings(monkeypatch)
    assert main(["rank", str(out)]) == 0
    assert sorted(calls) == [0, 1, 1]  # ranking/1/1, ranking/2, ranking/2/1
    assert "3 of 6 retrainings were recorded" in capsys.readouterr().out
    mine, ref = _ranking(out), _ranking(whole)
    assert mine.pop("device") == "cpu" and mine.pop("world_size") == 1
    _same_numbers(mine, ref)


def test_automl_rank_with_other_settings_never_reuses_a_stopped_runs_retrainings(stopped_in_its_ranking,
                                                                                   monkeypatch):
    """Other epochs, or other architectures (another K), than the run's own ranking: every retraining runs."""
    _, out, _ = stopped_in_its_ranking
    shutil.copytree(out, out.parent / "copy")
    calls = _retrainings(monkeypatch)
    assert main(["rank", str(out), "--retrain-epochs", "2"]) == 0
    assert sorted(calls) == [0, 0, 0, 1, 1, 1]
    calls.clear()
    assert main(["rank", str(out.parent / "copy"), "--archs", "4", "--seeds", "1"]) == 0
    assert calls == [0, 0, 0, 0]


def test_resume_of_a_run_stopped_in_its_ranking_runs_only_the_rest(stopped_in_its_ranking, monkeypatch):
    """``automl run --resume`` continues the ranking at its checkpoint: the three unfinished retrainings only,
    and the ranking bit for bit as the uninterrupted run's."""
    recipe, out, whole = stopped_in_its_ranking
    calls = _retrainings(monkeypatch)
    Run(recipe, out, resume=True, tty=False).execute()
    assert sorted(calls) == [0, 1, 1]
    _same_numbers(_ranking(out), _ranking(whole))


@pytest.mark.heavy  # CI only (pytest -m heavy): the default suite stays under 15 minutes
def test_automl_rank_never_reuses_retrainings_computed_on_another_device(tmp_path, monkeypatch, capsys):
    """A retraining an ``automl rank`` recorded on another device (its float rounding is another) is run again:
    the partial record of a stopped one, and a finished ranking's; on the same device both are reused."""
    Run(load_recipe(QUICK, TINY), tmp_path / "run", tty=False).execute()
    out, results = tmp_path / "run", tmp_path / "run" / "results.json"
    real = rank.stop_ranking_if_signalled

    def sigterm_first(*a):  # SIGTERM during the first retraining: automl rank stops after it
        os.kill(os.getpid(), signal.SIGTERM)
        real(*a)

    monkeypatch.setattr(rank, "stop_ranking_if_signalled", sigterm_first)
    assert main(["rank", str(out), "--archs", "3"]) == 143
    monkeypatch.undo()
    kept = json.loads(results.read_text())
    assert len(kept["ranking_partial"]["archs"][0]["retrainings"]) == 1
    elsewhere = {**kept, "ranking_partial": {**kept["ranking_partial"], "device": "cuda (NVIDIA H200)"}}
    results.write_text(json.dumps(elsewhere))
    calls = _retrainings(monkeypatch)
    assert main(["rank", str(out), "--archs", "3"]) == 0
    assert calls == [0, 0, 0]  # the recorded one is of another device
    assert json.loads(results.read_text())["ranking"]["device"] == "cpu"
    capsys.readouterr()
    calls.clear()
    assert main(["rank", str(out), "--archs", "3", "--seeds", "2"]) == 0  # the same device: seed 0 reused
    assert calls == [1, 1, 1] and "3 of 6 retrainings were recorded" in capsys.readouterr().out
    done = json.loads(results.read_text())
    results.write_text(json.dumps({**done, "ranking": {**done["ranking"], "device": "cuda (NVIDIA H200)"}}))
    calls.clear()
    assert main(["rank", str(out), "--archs", "3", "--seeds", "2"]) == 0
    assert sorted(calls) == [0, 0, 0, 1, 1, 1]
