"""Review NK: ``automl rank`` stopped by a signal counts the retrainings recorded (not the stages passed); it says
the run's recipe warnings once, and refuses a run of a method without a supernet before any of them; a run folder
held by ``automl rank`` is refused with advice that fits it (it writes no checkpoint: nothing to --resume)."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
from pathlib import Path

import pytest
import yaml

import automl.pipeline.rank as rank
from automl._lock import RunLock
from automl.cli import main
from automl.errors import UserError
from automl.pipeline import Run
from automl.recipe import load_recipe
from helpers import DIGITS_SPACE, QUICK, cli_out_err
from test_ranking import TINY

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


# ---- 1. the stop message counts what results.json records -----------------------------------------------------

def _counts(text: str, pattern: str) -> list[tuple[int, int]]:
    return [(int(k), int(n)) for k, n in re.findall(pattern, text)]


def test_a_stopped_rank_counts_the_retrainings_recorded_further_on(tmp_path, monkeypatch, capsys):
    """A ranking of 3 architectures (seed 0 each), then one of 2 seeds stopped after its first computed retraining
    (architecture 1, seed 1): seed 0 of architectures 2 and 3 are recorded too (the first ranking's), so the
    message (and a second signal's) says as many as the rerun reuses, not the 2 stages passed."""
    out = tmp_path / "run"
    Run(load_recipe(QUICK, TINY), out, tty=False).execute()
    assert main(["rank", str(out), "--archs", "3"]) == 0
    capsys.readouterr()
    real_stop, real_preemption, second = rank.stop_ranking_if_signalled, rank.Preemption, []
    calls = []

    def preemption(*a, **k):  # what a second signal would say, kept to ask it at the stop
        second.append(k["stopping_now"])
        return real_preemption(*a, **k)

    def stop_after_the_first_computed(preempt, reporter, recipe, where, done):
        calls.append(done)
        if len(calls) == 2:  # after stage 2 (architecture 1, seed 1: computed; seed 0 was reused)
            second.append(second[0]())
            os.kill(os.getpid(), signal.SIGTERM)
        real_stop(preempt, reporter, recipe, where, done)

    monkeypatch.setattr(rank, "Preemption", preemption)
    monkeypatch.setattr(rank, "stop_ranking_if_signalled", stop_after_the_first_computed)
    assert main(["rank", str(out), "--archs", "3", "--seeds", "2"]) == 128 + signal.SIGTERM
    monkeypatch.undo()
    said = "".join(capsys.readouterr())
    stopped = _counts(said, r"stopped by SIGTERM; (\d+) of (\d+) retrainings are recorded")
    assert stopped == [(4, 6)], said
    assert _counts(second[1], r"^(\d+) of (\d+) retrainings are recorded") == [(4, 6)], second[1]
    assert main(["rank", str(out), "--archs", "3", "--seeds", "2"]) == 0
    rerun = _counts(capsys.readouterr().out, r"(\d+) of (\d+) retrainings were recorded by an earlier ranking")
    assert rerun == stopped


# ---- 2. the run's recipe warnings, once; a random run's refusal alone -------------------------------------------

def _run_folder(tmp_path: Path, **changes) -> Path:
    """A run folder holding only its recipe.resolved.yaml: the quickstart's, with ``changes`` (section: dict)."""
    out = tmp_path / "run"
    out.mkdir()
    recipe = yaml.safe_load(Path(QUICK).read_text())
    recipe["space"], recipe["device"] = DIGITS_SPACE, "cpu"
    for section, values in changes.items():
        recipe[section].update(values)
    (out / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe))
    return out


def _recipe_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "automl.recipe" and r.levelno == logging.WARNING]


def test_rank_says_the_run_recipes_warnings_once(tmp_path, capsys, caplog):
    out = _run_folder(tmp_path, retrain={"warmup_epochs": 25})  # as long as retrain.epochs: warned
    caplog.set_level(logging.WARNING)
    code, _, err = cli_out_err(capsys, "rank", out, "--archs", "4")
    assert code == 2 and "no usable checkpoint" in err, err  # the folder holds no run: refused after the load
    warned = [w for w in _recipe_warnings(caplog) if "retrain.warmup_epochs (25) is not below" in w]
    assert len(warned) == 1, _recipe_warnings(caplog)


def test_rank_refuses_a_random_run_before_its_recipe_warnings(tmp_path, capsys, caplog):
    """The resolved recipe of a random run holds the quickstart's search.lam and the like (the user never set
    them): automl rank's refusal is its one message, not after a warning that they are ignored."""
    out = _run_folder(tmp_path, search={"method": "random"})
    caplog.set_level(logging.WARNING)
    code, stdout, err = cli_out_err(capsys, "rank", out, "--archs", "4")
    assert code == 2, err
    # the methods named are the registry's (another test may have registered one of its own in this process)
    assert err.strip().startswith(f"error: {out}: search.method random trains no shared supernet to rank with; "
                                  f"automl rank needs a run of search.method ") and len(err.strip().splitlines()) == 1
    assert "importance_sampling" in err and "separate" in err, err
    assert _recipe_warnings(caplog) == [] and "warning" not in stdout + err


# ---- 3. the lock's holder: automl rank is stopped, then the command run again (no --resume) ----------------------

@pytest.mark.parametrize("program, flags", [("/venv/bin/automl", []), ("/src/automl/__main__.py", []),
                                            ("/venv/bin/automl", ["-v"])])  # a global flag before the verb
def test_a_folder_held_by_automl_rank_is_refused_with_advice_that_fits_it(tmp_path, monkeypatch, program, flags):
    monkeypatch.setattr(sys, "argv", [program, *flags, "rank", str(tmp_path), "--archs", "4"])
    holder = RunLock(tmp_path)
    assert holder.acquire(then="then run automl rank again", look=True)
    holder.keep()  # past its checks (the lock file has named it since acquire): it keeps naming it after release
    monkeypatch.setattr(sys, "argv", ["automl", "run", "r.yaml", "--out", str(tmp_path), "--resume"])
    try:
        with pytest.raises(UserError) as e:
            RunLock(tmp_path).acquire()
    finally:
        holder.release()
    said = str(e.value)
    assert f"(automl {' '.join([*flags, 'rank'])} {tmp_path} --archs 4)" in said, said
    assert (f"stop it (kill {os.getpid()}: it finishes the current retraining, records it in results.json and "
            f"exits), then run this command again, or choose another --out") in said, said
    assert "checkpoint" not in said and "--resume" not in said, said


def test_a_folder_held_by_automl_run_keeps_its_advice(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/automl", "run", "r.yaml", "--out", str(tmp_path)])
    holder = RunLock(tmp_path)
    assert holder.acquire()
    try:
        with pytest.raises(UserError) as e:
            RunLock(tmp_path).acquire()
    finally:
        holder.release()
    assert (f"another automl run is writing there (process {os.getpid()} on" in str(e.value)
            and f"stop it (kill {os.getpid()}: it writes a checkpoint and exits), then continue it with --resume, or "
                f"choose another --out" in str(e.value)), str(e.value)
