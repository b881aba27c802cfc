"""Review AJ: the ranking's retrainings recorded by one command are reused by the next only when computed as it
computes (``automl run --resume`` after a stopped ``automl rank``; a run resumed with another process count),
and a stopped, resumed or corrupted ranking keeps its results.json and report.md right."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

import automl.pipeline.rank as rank
from automl.cli import main
from automl.pipeline import Run
from automl.recipe import load_recipe
from automl.train.checkpoint import CheckpointStore

from test_ranking import QUICK, TINY  # the ranking tests' tiny synthetic run
from test_review_s import (RANKING, _ranking, _retrainings, _same_numbers,  # noqa: F401 (a fixture)
                           stopped_in_its_ranking)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

COMPUTED_ON = "computed_on"  # a ranking entry's record in the checkpoint: {seed: {device, world_size}}


def _sigterm_after(monkeypatch, done: str) -> None:
    """``automl rank`` gets SIGTERM once ``done`` ("k of K") retrainings are over: it stops after them."""
    real = rank.stop_ranking_if_signalled

    def then_stop(preempt, reporter, recipe, out, now):
        if now == done:
            os.kill(os.getpid(), signal.SIGTERM)
        real(preempt, reporter, recipe, out, now)

    monkeypatch.setattr(rank, "stop_ranking_if_signalled", then_stop)


def _ranking_paragraph(out) -> str:
    text = (out / "report.md").read_text()
    return text[text.index("## How well the supernet ranks"):].split("\n\n## ")[0]


# ---- 1. automl run --resume reuses what a stopped automl rank recorded -----------------------------------------

def test_resume_after_a_stopped_automl_rank_reuses_its_retrainings(stopped_in_its_ranking, monkeypatch, capsys):
    """Run killed in its ranking (3 of 6 retrainings in its checkpoint), then ``automl rank RUN`` stopped after
    the fourth (ranking_partial holds it), then ``automl run --resume``: only the last two retrainings run, the
    ranking is bit for bit the uninterrupted run's, and results.json keeps no ranking_partial."""
    recipe, out, whole = stopped_in_its_ranking
    _sigterm_after(monkeypatch, "4 of 6")
    calls = _retrainings(monkeypatch)
    assert main(["rank", str(out)]) == 143
    assert calls == [1]  # ranking/1/1
    partial = json.loads((out / "results.json").read_text())["ranking_partial"]
    assert [len(a.get("retrainings", [])) for a in partial["archs"]] == [2, 2, 0]
    monkeypatch.undo()
    calls = _retrainings(monkeypatch)
    capsys.readouterr()
    res = Run(recipe, out, resume=True, tty=False).execute()
    assert sorted(calls) == [0, 1]  # ranking/2, ranking/2/1: ranking/1/1 is automl rank's
    assert "(recorded earlier" in capsys.readouterr().out
    on_disk = json.loads((out / "results.json").read_text())
    assert "ranking_partial" not in on_disk and "ranking_partial" not in res
    _same_numbers(_ranking(out), _ranking(whole))
    assert _ranking_paragraph(out) == _ranking_paragraph(whole)


# ---- 2. a run resumed with another process count: each retraining is reused by its own record -----------------

def _mark_computed_with(out, world_size: int, started: int | None = None) -> None:
    """The last checkpoint of ``out`` as if its ranking's retrainings so far were computed with ``world_size``
    processes (and, with ``started``, as if the run started with that many: torchrun)."""
    store = CheckpointStore(out / "checkpoints")
    ckpt = store.load()
    for key, entry in ckpt["results"].items():
        if key.startswith("ranking/"):
            entry[COMPUTED_ON] = {seed: {**how, "world_size": world_size}
                                  for seed, how in entry.get(COMPUTED_ON, {}).items()}
    if started is not None:
        ckpt["world_size"] = started
    store.save(ckpt)


@pytest.mark.heavy  # CI only (pytest -m heavy): the default suite stays under 15 minutes
def test_automl_rank_reruns_the_retrainings_a_run_computed_with_another_process_count(stopped_in_its_ranking,
                                                                                       monkeypatch):
    """A run started with 2 processes (torchrun), killed in its ranking (3 retrainings), resumed in one process
    (its results.json then says world_size 1, its ranking section nothing): ``automl rank`` in one process
    computes again the 3 retrainings made with 2 processes and reuses those the resumed part made with one
    (each records how it was computed; one of the run's parts had this command's count), so its ranking is all
    one process's."""
    recipe, out, whole = stopped_in_its_ranking
    _mark_computed_with(out, 2, started=2)
    Run(recipe, out, resume=True, tty=False).execute()
    assert json.loads((out / "results.json").read_text())["world_size"] == 1
    calls = _retrainings(monkeypatch)
    assert main(["rank", str(out)]) == 0
    assert sorted(calls) == [0, 0, 1]  # the seeds of the three made with 2 processes
    mine = _ranking(out)
    assert mine.pop("world_size") == 1 and mine.pop("device") == "cpu"
    _same_numbers(mine, _ranking(whole))


@pytest.mark.heavy  # CI only (pytest -m heavy): the default suite stays under 15 minutes
def test_automl_rank_checks_each_retraining_of_a_run_resumed_with_another_process_count(stopped_in_its_ranking,
                                                                                         monkeypatch):
    """The checkpoint records how each retraining was computed: the run started in one process (as automl rank
    here), one retraining computed after a resume with 2 is run again, the others are reused."""
    _, out, whole = stopped_in_its_ranking
    store = CheckpointStore(out / "checkpoints")
    ckpt = store.load()
    assert ckpt["world_size"] == 1
    assert ckpt["results"]["ranking/0"][COMPUTED_ON] == {0: {"device": "cpu", "world_size": 1},
                                                         1: {"device": "cpu", "world_size": 1}}
    ckpt["results"]["ranking/0"][COMPUTED_ON][1]["world_size"] = 2  # ranking/0/1, after a resume with 2
    store.save(ckpt)
    calls = _retrainings(monkeypatch)
    assert main(["rank", str(out)]) == 0
    assert sorted(calls) == [0, 1, 1, 1]  # ranking/0/1, and the three the run had not finished
    mine = _ranking(out)
    assert "computed_on" not in json.dumps(mine)  # the checkpoint's record only
    mine.pop("world_size"), mine.pop("device")
    _same_numbers(mine, _ranking(whole))


@pytest.mark.heavy
def test_torchrun_resume_then_automl_rank_in_one_process_reruns_the_two_process_retrainings(
        stopped_in_its_ranking, monkeypatch, free_port):
    """The same through torchrun: a run killed in its ranking in one process, resumed with 2 processes to its
    end; ``automl rank`` in one process reruns the 3 retrainings the 2 processes computed."""
    from test_kill_resume import _env

    recipe, out, whole = stopped_in_its_ranking
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           "-m", "automl", "run", QUICK, *TINY, *RANKING, "--out", str(out), "--resume"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    calls = _retrainings(monkeypatch)
    assert main(["rank", str(out)]) == 0
    assert sorted(calls) == [0, 1, 1]  # ranking/1/1, ranking/2, ranking/2/1
    mine = _ranking(out)
    assert mine.pop("world_size") == 1
    mine.pop("device")
    _same_numbers(mine, _ranking(whole))


# ---- 3. a kill inside a retraining leaves its lines once; damaged records are not taken ----------------------

def _repeated_lines(out) -> list:
    """metrics.jsonl's lines logged twice (the same phase, epoch, step and split)."""
    seen = [(d.get("phase"), d.get("epoch"), d.get("step"), d.get("split"))
            for d in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]
    return sorted({k for k in seen if seen.count(k) > 1}, key=str)


def _killed_in_a_ranking_step(monkeypatch, k: int) -> None:
    """The next ranking retraining dies (as kill -9 would) at its k-th step, after the lines of those before."""
    import automl.pipeline.final_stages as fs

    real, steps = fs.RetrainTask.step, []

    def step(self, *a):
        if self.phase.startswith("ranking"):
            steps.append(1)
            if len(steps) == k:
                monkeypatch.setattr(fs.RetrainTask, "step", real)
                raise KeyboardInterrupt
        return real(self, *a)

    monkeypatch.setattr(fs.RetrainTask, "step", step)


@pytest.mark.heavy  # CI only (pytest -m heavy): the default suite stays under 15 minutes
def test_automl_rank_killed_in_its_first_retraining_leaves_no_line_twice(tmp_path, monkeypatch):
    """``automl rank`` killed inside the first retraining it computes (after a logged step) has recorded no
    retraining yet; the next one cuts the lines the kill left, so metrics.jsonl holds each line once."""
    out = tmp_path / "run"
    Run(load_recipe(QUICK, TINY), out, tty=False).execute()
    _killed_in_a_ranking_step(monkeypatch, 3)  # search.log_every 2: step 2 is logged
    assert main(["rank", str(out), "--archs", "3"]) == 130
    assert '"phase": "ranking 1/3"' in (out / "metrics.jsonl").read_text()
    assert main(["rank", str(out), "--archs", "3"]) == 0
    assert _repeated_lines(out) == []


@pytest.mark.heavy  # CI only (pytest -m heavy): the default suite stays under 15 minutes
def test_automl_rank_after_a_run_killed_inside_a_ranking_retraining_leaves_no_line_twice(tmp_path, monkeypatch):
    """A run killed inside a retraining of its ranking (lines logged after its last checkpoint), then
    ``automl rank``: those lines are cut, the retraining's lines are in metrics.jsonl once."""
    out = tmp_path / "run"
    _killed_in_a_ranking_step(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        Run(load_recipe(QUICK, TINY + RANKING), out, tty=False).execute()
    assert '"phase": "ranking 1/3 seed 0"' in (out / "metrics.jsonl").read_text()
    assert main(["rank", str(out)]) == 0
    assert _repeated_lines(out) == []


@pytest.mark.parametrize("damage", ["no test loss", "params as text", "archs not a list", "log length as text"])
@pytest.mark.heavy  # CI only (pytest -m heavy): the default suite stays under 15 minutes
def test_automl_rank_runs_again_the_retrainings_a_damaged_results_json_records(tmp_path, monkeypatch, capsys,
                                                                                damage):
    """results.json edited or damaged in its ranking_partial: no traceback; what it records is not taken (the
    retrainings run again) and the log is not cut at a length it does not hold."""
    out = tmp_path / "run"
    Run(load_recipe(QUICK, TINY), out, tty=False).execute()
    _sigterm_after(monkeypatch, "1 of 3")
    assert main(["rank", str(out), "--archs", "3"]) == 143
    monkeypatch.undo()
    path = out / "results.json"
    results = json.loads(path.read_text())
    partial = results["ranking_partial"]
    if damage == "no test loss":
        del partial["archs"][0]["retrainings"][0]["test_loss"]
    elif damage == "params as text":
        partial["archs"][0]["params"] = "many"
    elif damage == "archs not a list":
        partial["archs"] = "three"
    else:
        partial["metrics_bytes"] = "many"
    path.write_text(json.dumps(results))
    calls = _retrainings(monkeypatch)
    capsys.readouterr()
    assert main(["rank", str(out), "--archs", "3"]) == 0, capsys.readouterr().err
    assert calls == ([0, 0] if damage == "log length as text" else [0, 0, 0])
    assert "ranking_partial" not in json.loads(path.read_text())


@pytest.mark.heavy  # CI only (pytest -m heavy): the default suite stays under 15 minutes
def test_resume_of_a_finished_run_whose_results_json_has_a_damaged_ranking_writes_its_report(tmp_path, capsys):
    """A finished run whose results.json holds a ranking that is not one (edited or damaged): ``--resume``
    writes results.json and report.md without it, no traceback."""
    recipe = load_recipe(QUICK, TINY)
    out = tmp_path / "run"
    Run(recipe, out, tty=False).execute()
    path = out / "results.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "ranking": "lost"}))
    res = Run(recipe, out, resume=True, tty=False).execute()
    assert "ranking" not in res and "ranking" not in json.loads(path.read_text())
    assert "How well the supernet ranks" not in (out / "report.md").read_text()


def test_a_partial_ranking_is_dropped_only_when_a_complete_ranking_holds_every_retraining_it_records():
    from automl.pipeline.results import superseded

    def ranking(epochs, *seeds_per_arch):
        return {"retrain_epochs": epochs, "archs": [
            {"choices": [str(j)], **({"retrainings": [{"seed": s} for s in seeds]} if seeds else {})}
            for j, seeds in enumerate(seeds_per_arch)]}

    done = ranking(1, [0, 1], [0, 1], [0, 1])
    assert superseded(ranking(1, [0, 1], [0], []), done)
    assert superseded(ranking(1, [0, 1], [0, 1], [0, 1]), done)
    assert not superseded(ranking(1, [0, 1, 2], [], []), done)  # automl rank --seeds 3: kept for the next one
    assert not superseded(ranking(2, [0], [], []), done)  # other epochs
    assert not superseded(ranking(1, [0], [], [], []), done)  # another K
    assert not superseded(ranking(1, [0], [], []), None)  # no complete ranking
    assert not superseded({"archs": "three", "retrain_epochs": 1}, done)
    assert not superseded(ranking(1, [[0]], [], []), done)  # a seed that is not one
    assert not superseded(ranking(1, [0], [], []), {"retrain_epochs": 1, "archs": "abc"})  # edited


@pytest.mark.heavy  # CI only (pytest -m heavy): the default suite stays under 15 minutes
def test_stopped_at_every_turn_the_ranking_is_the_uninterrupted_runs_and_the_log_has_no_line_twice(
        stopped_in_its_ranking, monkeypatch):
    """Run killed in its ranking; ``automl rank`` stopped after its fourth retraining; the run resumed and
    killed inside the fifth (lines logged after its checkpoint); ``automl rank`` again: it cuts those lines,
    runs the last two retrainings, and ranks bit for bit as the uninterrupted run."""
    recipe, out, whole = stopped_in_its_ranking
    _sigterm_after(monkeypatch, "4 of 6")
    assert main(["rank", str(out)]) == 143
    monkeypatch.undo()
    _killed_in_a_ranking_step(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        Run(recipe, out, resume=True, tty=False).execute()
    assert '"phase": "ranking 3/3 seed 0"' in (out / "metrics.jsonl").read_text()
    calls = _retrainings(monkeypatch)
    assert main(["rank", str(out)]) == 0
    assert sorted(calls) == [0, 1]  # ranking/2, ranking/2/1
    assert _repeated_lines(out) == []
    mine = _ranking(out)
    mine.pop("world_size"), mine.pop("device")
    _same_numbers(mine, _ranking(whole))
    assert _ranking_paragraph(out) == _ranking_paragraph(whole)
