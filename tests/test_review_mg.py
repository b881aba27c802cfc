"""Review MG: the random baseline's draws are part of a new run's start-up.

A ``search.random_band`` the space has (next to) no networks in was refused only by the random stage's draws,
after the start-up had said its thread line and written ``.lock``, ``recipe.resolved.yaml`` and ``threads.json``
in a new ``--out``. The draws are now made in the start-up (automl/pipeline/run.py ``_draw_at_start_up``): the
refusal is the run's only message, exit 2, and a new or empty ``--out`` is left as it was (as for every other
start-up refusal: docs/reliability.md). The stage takes the searchers drawn there (nothing is drawn twice), and
a random run stopped during its retraining still resumes to the same result.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

import automl.train.loops
from automl.cli import main
from automl.errors import Stopped
from automl.pipeline.run import Run
from automl.recipe import load_recipe
from automl.search import RandomSearch

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals")

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
RANDOM = ["search.method=random", "search.epsilons=[0.0]", "device=cpu", "threads=1"]
TINY = ["data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "export.onnx=false", "search.log_every=1"]
# inside the digits space's range (13,554 to 178,170 parameters), but its networks jump from 13,554 to 15,066:
# none in [14,250, 15,000], so the draws find none (plan.py's start-up check, band x budget above the largest
# network, lets it through)
EMPTY_BAND = ["search.random_budgets=[15000]", "search.random_band=0.95"]
BANDS = ["search.random_budgets=[100000,60000]", "search.random_band=0.9"]


@pytest.mark.parametrize("folder", ["new", "empty"])
def test_a_band_the_draws_cannot_meet_is_a_start_up_refusal(tmp_path, capsys, folder):
    out = tmp_path / "runs" / "r1" if folder == "new" else tmp_path / "r1"
    if folder == "empty":
        out.mkdir()
    code = main(["run", QUICK, *RANDOM, *TINY, "retrain.epochs=0", *EMPTY_BAND, "--out", str(out)])
    text = capsys.readouterr()
    assert code == 2, text
    assert "Traceback" not in text.err
    # the message as the random stage gave it
    assert ("search.random_band: 0.95 asks search.random_budgets[0] = 15k for a network of 14.25k to 15k params, "
            "but 102,400 uniform architectures of the space gave none in that range (it has none there, or too few "
            "to draw); lower search.random_band or change the budget") in text.err, text.err
    if folder == "new":  # before the fix: .lock, recipe.resolved.yaml and threads.json
        assert not (tmp_path / "runs").exists()  # not even the folders above it
    else:
        assert sorted(p.name for p in out.iterdir()) == []
    assert "threads:" not in text.out + text.err  # the refusal alone, as for the other start-up checks


def _count_asks(monkeypatch) -> list[int]:
    """How many times RandomSearch.ask draws, in a list of one count."""
    calls, real = [0], RandomSearch.ask

    def counted(self):
        calls[0] += 1
        return real(self)

    monkeypatch.setattr(RandomSearch, "ask", counted)
    return calls


def _signal_at(monkeypatch, k: int) -> None:
    """The k-th retraining step sends this process SIGINT (as Ctrl-C would)."""
    real, calls = automl.train.loops.train_step, [0]

    def step(*a, **kw):
        calls[0] += 1
        if calls[0] == k:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **kw)

    monkeypatch.setattr(automl.train.loops, "train_step", step)


def _run(out: Path, resume: bool = False) -> dict:
    recipe = load_recipe(QUICK, [*RANDOM, *TINY, "retrain.epochs=2", *BANDS])
    return Run(recipe, out, resume=resume, tty=False).execute()


def _archs(results: dict) -> list:
    return [(a["choices"], a["params"], a["test_accuracy"]) for a in results["architectures"]]


def _lines(out: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_the_stage_draws_nothing_again_and_a_stopped_random_run_resumes(tmp_path, monkeypatch, capfd):
    asks = _count_asks(monkeypatch)
    ref = _run(tmp_path / "ref")
    assert asks[0] == 2  # one draw per member, in the start-up; the stage takes those searchers
    assert "random" in ref["phase_seconds"]  # the draws' time is the search's, as before
    for a, b in zip(ref["architectures"], (100_000, 60_000)):
        assert 0.9 * b <= a["params"] <= b, (a, b)

    out, asks[0] = tmp_path / "run", 0
    with monkeypatch.context() as mp:
        _signal_at(mp, 16)  # member 1's retraining, epoch 1, step 4 (6 steps an epoch, 2 epochs a member)
        with pytest.raises(Stopped) as stop:
            _run(out)
    assert stop.value.exit_code == 130
    assert asks[0] == 2
    assert "resumes at retrain" in capfd.readouterr().out
    resumed = _run(out, resume=True)
    assert asks[0] == 2  # resumed after the random stage: nothing drawn
    assert _archs(resumed) == _archs(ref)
    assert _lines(out) == _lines(tmp_path / "ref")
