"""Review PH: ``automl rank`` on a run whose own ranking (or an earlier ``automl rank``'s) has the same settings but
was computed otherwise (with 2 processes under torchrun, or on another device) reuses none of it: before any
retraining it says so (how they were computed, how it computes, that it retrains them and replaces that ranking,
how to keep it, and ``--device`` where only the device differs); one that reuses them says nothing of it. And
report.md says a run computed with several processes (results.json's ``world_size``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from automl.cli import main
from automl.pipeline import Run
from automl.recipe import load_recipe
from automl.report import render_markdown
from automl.train.checkpoint import CheckpointStore

from test_ranking import QUICK, TINY
from test_review_s import _retrainings

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

RANKING = ["ranking.archs=3", "ranking.retrain_epochs=1", "ranking.bn_batches=1"]
NOTICE = re.compile(r"this ranking does not reuse the (\d+) retrainings of the same architectures, epochs and seeds "
                    r"that (.*?) recorded: they were computed (.*?); automl rank computes (.*?), which gives other "
                    r"results; so it runs (.*?) retrainings(.*?); (.*)\n")
H100 = "cuda (NVIDIA H100 80GB HBM3)"


def _computed_as(out: Path, world_size: int, device: str) -> None:
    """The run's last checkpoint (and its results.json) as if the run had computed with ``world_size`` processes
    on ``device``: each ranking retraining's record, and the run's."""
    store = CheckpointStore(out / "checkpoints")
    ckpt = store.load()
    for key, entry in ckpt["results"].items():
        if key.startswith("ranking/"):
            entry["computed_on"] = {seed: {"device": device, "world_size": world_size}
                                    for seed in entry["computed_on"]}
    store.save({**ckpt, "world_size": world_size, "device": device})
    results = json.loads((out / "results.json").read_text())
    (out / "results.json").write_text(json.dumps({**results, "world_size": world_size, "device": device}))


@pytest.fixture
def ranked_run(tmp_path: Path, capsys) -> Path:
    """A run with its own ranking (3 architectures, 1 retraining of 1 epoch each), in one process on the CPU."""
    out = tmp_path / "run"
    Run(load_recipe(QUICK, TINY + RANKING), out, tty=False).execute()
    capsys.readouterr()
    return out


def _ranked_again(out: Path, monkeypatch, capsys, *flags: str) -> tuple[list, str, list]:
    """``automl rank out flags`` (exit 0): the retrainings it computed, what it said, and its one notice's parts."""
    calls = _retrainings(monkeypatch)
    assert main(["rank", str(out), *flags]) == 0
    said = capsys.readouterr().out
    found = NOTICE.findall(said)
    assert len(found) == 1, said
    return calls, said, found


def test_a_torchrun_runs_own_ranking_is_said_to_be_retrained_and_replaced(ranked_run, monkeypatch, capsys):
    out = ranked_run
    _computed_as(out, 2, "cpu")
    calls, said, found = _ranked_again(out, monkeypatch, capsys)
    count, whose, then, now, retrains, where, keep = found[0]
    assert (count, whose, retrains) == ("3", "the run's own ranking", "all 3")
    batch = load_recipe(QUICK, TINY).data.batch_size
    assert then == (f"with 2 processes under torchrun (data-parallel: data.batch_size {batch} per process, a total "
                    f"batch of {2 * batch})")
    assert now == f"in one process (a total batch of {batch}; it refuses torchrun) on cpu"
    assert where == f", and replaces the ranking in {out / 'results.json'}"
    assert keep == f"to keep that ranking, stop now (Ctrl-C) and copy {out / 'results.json'} first"  # no --device
    assert said.index("this ranking does not reuse") < said.index("ranking 1/3")  # before any retraining
    assert len(calls) == 3 and "were recorded by an earlier ranking" not in said
    ranking = json.loads((out / "results.json").read_text())["ranking"]
    assert ranking["world_size"] == 1 and ranking["reused_retrainings"] == 0


def test_a_run_ranked_on_another_device_gets_the_device_flag(ranked_run, monkeypatch, capsys):
    """Only the device differs: the notice names it and the command with --device that reuses them; the
    ranking section of results.json it replaces is the run's own."""
    out = ranked_run
    _computed_as(out, 1, H100)
    calls, said, found = _ranked_again(out, monkeypatch, capsys)
    count, whose, then, now, retrains, where, keep = found[0]
    batch = load_recipe(QUICK, TINY).data.batch_size
    assert (count, then, now, retrains) == ("3", f"on {H100}", f"in one process (a total batch of {batch}) on cpu",
                                            "all 3")
    assert re.search(f"first; or, to reuse them, rank where that device is: automl rank {re.escape(str(out))} "
                     r"--archs 3 --retrain-epochs 1 --seeds 1 --truth \w+ --device cuda$", keep), keep
    assert len(calls) == 3


def test_a_run_stopped_in_its_torchrun_ranking_says_its_checkpoint_keeps_them(tmp_path, die_after_save,
                                                                              monkeypatch, capsys):
    """A run with 2 processes killed in its ranking (2 retrainings done, no results.json yet): automl rank says it
    retrains those 2 (all 3 in all), and how to use them instead: the run's own ranking finished."""
    out = tmp_path / "run"
    die_after_save(lambda state, n: state["stage"] == 4 + 2 and state["epoch"] == 0)  # weights, θ, retrain/0, /1
    with pytest.raises(KeyboardInterrupt):
        Run(load_recipe(QUICK, TINY + RANKING), out, tty=False).execute()
    store = CheckpointStore(out / "checkpoints")
    ckpt = store.load()
    for key, entry in ckpt["results"].items():
        if key.startswith("ranking/"):
            entry["computed_on"] = {seed: {**how, "world_size": 2} for seed, how in entry["computed_on"].items()}
    store.save({**ckpt, "world_size": 2})
    capsys.readouterr()
    calls, said, found = _ranked_again(out, monkeypatch, capsys)
    count, whose, _, _, retrains, where, keep = found[0]
    assert (count, whose, retrains) == ("2", "the run's own ranking", "all 3")
    assert where == " (the run's checkpoint keeps its own: automl rank leaves it as it is)"
    assert keep.startswith("to use them instead, finish the run's own ranking (its automl run command with --resume")
    assert len(calls) == 3


def test_an_earlier_automl_rank_on_another_device_and_other_seeds(tmp_path, monkeypatch, capsys):
    """An earlier automl rank's section (of a run without a ranking of its own) recorded on another device: this
    one with 2 seeds says the one it shares is not reused (not "not run again"), and the earlier ranking's."""
    out = tmp_path / "run"
    Run(load_recipe(QUICK, TINY), out, tty=False).execute()
    assert main(["rank", str(out), "--archs", "3", "--retrain-epochs", "1"]) == 0
    results = json.loads((out / "results.json").read_text())
    results["ranking"]["device"] = H100
    (out / "results.json").write_text(json.dumps(results))
    capsys.readouterr()
    calls = _retrainings(monkeypatch)
    assert main(["rank", str(out), "--archs", "3", "--retrain-epochs", "1", "--seeds", "2"]) == 0
    said = capsys.readouterr().out
    assert "replaces the one in" in said and "both share are not run again" not in said, said
    found = NOTICE.findall(said)
    assert len(found) == 1, said
    assert found[0][:2] == ("3", "an earlier automl rank") and found[0][4] == "all 6"
    assert len(calls) == 6


def test_a_ranking_that_reuses_the_runs_own_says_nothing_of_it(ranked_run, monkeypatch, capsys):
    calls = _retrainings(monkeypatch)
    assert main(["rank", str(ranked_run)]) == 0
    said = capsys.readouterr().out
    assert "does not reuse" not in said and "3 of 3 retrainings were recorded by an earlier ranking" in said
    assert calls == []


# ---- report.md: the processes of a run that kept one count -------------------------------------------------------

def _results(**extra) -> dict:
    return {"recipe": "r", "method": "separate", "search_seconds": 1.0, "phase_seconds": {"weights": 1.0},
            "architectures": [{"epsilon": 0.0, "choices": ["a"], "params": 10, "cost": 10.0,
                               "test_accuracy": 0.5}], **extra}


def test_report_says_the_processes_of_a_run_under_torchrun():
    text = render_markdown(_results(world_size=2))
    lines = [line for line in text.splitlines() if line.startswith("Run with ")]
    assert lines == ["Run with 2 processes (torchrun, data-parallel): the batch sizes of recipe.resolved.yaml "
                     "(`data.batch_size`, `retrain.batch_size`, ...) are per process, so each training step's total "
                     "batch was 2 × theirs."], text
    assert "Run with 3 processes" in render_markdown(_results(world_size=3))


def test_report_of_a_torchrun_run_ranked_by_automl_rank_says_the_ranking_was_one_process(ranked_run):
    """A 2-process run's ranking replaced by automl rank (its section records its own world_size, 1)."""
    results = json.loads((ranked_run / "results.json").read_text())
    ranking = results["ranking"]
    text = render_markdown({**results, "world_size": 2, "ranking": {**ranking, "world_size": 1, "device": "cpu"}})
    assert "total batch was 2 × theirs. The ranking below was measured by `automl rank` in one process.\n" in text
    assert "The ranking below was measured" not in render_markdown({**results, "world_size": 2})  # the run's own


@pytest.mark.parametrize("extra", [{}, {"world_size": 1}, {"world_size": True}, {"world_size": "2"},
                                   {"world_size": 2, "world_sizes": [1, 2]}])
def test_report_of_one_process_an_older_or_a_resumed_run_says_no_such_line(extra):
    """One process, none recorded (an older automl), an edited count, or a run resumed with another count (whose
    sentence gives every part's)."""
    assert not any(line.startswith("Run with ") for line in render_markdown(_results(**extra)).splitlines())
