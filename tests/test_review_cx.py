"""Review CX: signals at the end of ``automl run`` and during ``automl rank``; ``automl rank`` as a user meets it."""

from __future__ import annotations

import json
import shutil
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_kill_resume import _env

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals")

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
FAST = ["threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
        "search.supernets=1", "data.limit_train=64", "data.batch_size=32", "data.theta_batch_size=32",
        "data.test_batch_size=512", "search.lam=2", "search.budgets=null", "search.epsilons=[0]", "export.onnx=false"]


def _python(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=_env(),
                          timeout=timeout, cwd=ROOT)


# ------------------------------------------------------------------ automl run: a signal once the stages ended

_SIGNAL_AT_THE_END = """
import os, signal, sys
import automl._lock
from automl.cli import main
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a background job ignores it)
real, name = automl._lock.RunLock.release, sys.argv[1]

def release(self, *args, **kwargs):  # the run folder's, in Run.execute, once its stages have all finished
    real(self, *args, **kwargs)
    if os.path.abspath(self.folder) == os.path.abspath(sys.argv[2]):  # not a member export folder's
        os.kill(os.getpid(), getattr(signal, name))  # a real signal

automl._lock.RunLock.release = release
sys.exit(main(["run", {quick!r}, *{fast!r}, "--out", sys.argv[2]]))
"""


@pytest.mark.heavy  # a run in a subprocess, signalled after it finished: 5-9 s each
@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_signal_after_the_run_finished_says_so_and_exits_0(tmp_path, name):
    """Seen: ``stopped by SIGTERM while the run started; its checkpoints are as they were. Continue with: ...
    --resume``, exit 143, for a run whose results.json and report.md were written: a scheduler would requeue a
    finished job, and the user would resume a run that has nothing left to do."""
    out = tmp_path / "run"
    p = _python(_SIGNAL_AT_THE_END.format(quick=QUICK, fast=FAST), name, str(out))
    assert p.returncode == 0, (p.returncode, p.stderr[-3000:])
    assert "--resume" not in p.stderr and "while the run started" not in p.stderr
    assert p.stderr.splitlines()[-1] == (f"{name} after the run had finished: nothing was stopped; its results are "
                                         f"in {out / 'results.json'} and {out / 'report.md'}")
    assert json.loads((out / "results.json").read_text())["architectures"]


_SIGNAL_IN_START_UP = """
import os, signal, sys
import automl.pipeline.run
from automl.cli import main
real = automl.pipeline.run.Run.start_up

def start_up(self, *a, **k):
    os.kill(os.getpid(), signal.SIGTERM)
    return real(self, *a, **k)

automl.pipeline.run.Run.start_up = start_up
sys.exit(main(["run", {quick!r}, *{fast!r}, "--out", sys.argv[1], *sys.argv[2:]]))
"""


@pytest.mark.heavy  # a run, then its resume in a subprocess: 13 s
def test_a_signal_while_a_finished_run_is_resumed_is_still_a_stop_in_its_start_up(tmp_path):
    """The other side of the test above: a finished run resumed (its report written again) and stopped in its
    start-up has not written its report again; what it says is the start-up's."""
    out = tmp_path / "run"
    first = subprocess.run([sys.executable, "-m", "automl", "run", QUICK, *FAST, "--out", str(out)],
                           capture_output=True, text=True, env=_env(), timeout=300, cwd=ROOT)
    assert first.returncode == 0 and (out / "report.md").is_file(), first.stderr[-3000:]
    p = _python(_SIGNAL_IN_START_UP.format(quick=QUICK, fast=FAST), str(out), "--resume")
    assert p.returncode == 128 + signal.SIGTERM, (p.returncode, p.stderr[-3000:])
    assert "stopped by SIGTERM while the run started; its checkpoints are as they were" in p.stderr


# ------------------------------------------------------------------ automl rank

@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished run (one supernet, no ranking of its own); each test ranks a copy (:func:`_copy`)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    p = subprocess.run([sys.executable, "-m", "automl", "run", QUICK, *FAST, "--out", str(out)], capture_output=True,
                       text=True, env=_env(), timeout=300, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    return out


def _copy(finished: Path, to: Path) -> Path:
    shutil.copytree(finished, to, ignore=shutil.ignore_patterns(".lock"))
    return to


_RANK_SIGNALLED = """
import os, signal, sys
import automl.pipeline.final_stages as fs
from automl.cli import main
signal.signal(signal.SIGINT, signal.default_int_handler)
real, calls, twice = fs.retrain, [], sys.argv[2] == "twice"

def retrain(*a, **k):
    calls.append(1)
    if len(calls) == 2:  # in the second retraining: a real signal (and, twice, another at once)
        os.kill(os.getpid(), signal.SIGTERM)
        if twice:
            os.kill(os.getpid(), signal.SIGTERM)
    return real(*a, **k)

fs.retrain = retrain
rc = main(["rank", sys.argv[1], "--archs", "3", "--retrain-epochs", "1"])
print("retrainings", len(calls))
sys.exit(rc)
"""


@pytest.mark.heavy  # automl rank in a subprocess, then again: 9 s each
@pytest.mark.parametrize("twice", [False, True])
def test_automl_rank_stopped_by_a_signal_says_what_results_json_keeps(tmp_path, finished, twice):
    """Seen on the second signal: ``SIGTERM again: stopping now; no checkpoint was written since this command
    started (--resume continues from the run's previous checkpoint, if it has one)``: automl rank writes no
    checkpoint and is not continued with --resume; its finished retrainings are in results.json."""
    run = _copy(finished, tmp_path / "run")
    again = f"automl rank {run} --archs 3 --retrain-epochs 1 --seeds 1 --truth loss"
    p = _python(_RANK_SIGNALLED, str(run), "twice" if twice else "once")
    assert p.returncode == 128 + signal.SIGTERM, (p.returncode, p.stderr[-3000:])
    assert "SIGTERM: finishing the current retraining, then stopping; results.json keeps those finished" in p.stderr
    assert "checkpoint" not in p.stderr and "--resume" not in p.stderr
    if twice:
        assert p.stderr.splitlines()[-1] == (f"SIGTERM again: stopping now; 1 of 3 retrainings are recorded in "
                                             f"{run / 'results.json'} and are not run again (the one cut short "
                                             f"is). Continue with: {again}")
    else:
        assert (f"stopped by SIGTERM; 2 of 3 retrainings are recorded in {run / 'results.json'} and are not run "
                f"again. Continue with: {again}") in p.stdout + p.stderr
    # what the message says: the command given goes on, without the retrainings recorded
    rest = _python(_RANK_SIGNALLED.replace("len(calls) == 2", "False"), str(run), "once")
    assert rest.returncode == 0, rest.stderr[-3000:]
    assert f"retrainings {2 if twice else 1}" in rest.stdout
    assert len(json.loads((run / "results.json").read_text())["ranking"]["archs"]) == 3


def _rank(run: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "automl", "rank", str(run), *flags], capture_output=True, text=True,
                          env=_env(), timeout=300, cwd=ROOT)


@pytest.mark.heavy  # two rankings: 15 s
def test_automl_rank_with_other_settings_says_it_replaces_the_earlier_ranking(tmp_path, finished):
    """Seen: a second ``automl rank`` with other settings replaced the first's ranking in results.json (its τ, and
    retrainings the new one does not use) without a word; said now before any work, so it can be kept."""
    run = _copy(finished, tmp_path / "run")
    first = _rank(run, "--archs", "3", "--retrain-epochs", "0")
    assert first.returncode == 0 and "replaces" not in first.stdout, first.stderr[-3000:]
    tau = json.loads((run / "results.json").read_text())["ranking"]["kendall_tau"]
    said = "undefined" if tau is None else f"{tau:.4f}"
    second = _rank(run, "--archs", "4", "--retrain-epochs", "0", "--truth", "accuracy")
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.splitlines()[0] == (
        f"this ranking (4 architectures, not retrained, truth accuracy) replaces the one in {run / 'results.json'} "
        f"(3 architectures, not retrained, truth loss: kendall_tau {said}); to keep that one, stop now (Ctrl-C) "
        f"and copy the file")
    same = _rank(run, "--archs", "4", "--retrain-epochs", "0", "--truth", "accuracy")
    assert same.returncode == 0 and "replaces" not in same.stdout


@pytest.mark.heavy  # a run, then automl rank: 5 s each (and the run fixture, 7 s)
@pytest.mark.parametrize("text", ['{"architectures": [', "{}", "[1, 2]"])  # cut short; empty (not damaged); a list
def test_automl_rank_says_it_writes_a_damaged_results_json_anew(tmp_path, finished, text):
    run = _copy(finished, tmp_path / "run")
    (run / "results.json").write_text(text)
    p = _rank(run, "--archs", "3", "--retrain-epochs", "0")
    assert p.returncode == 0, p.stderr[-3000:]
    assert (f"{run / 'results.json'} holds no results automl can read (empty, cut short, edited, not UTF-8, or "
            f"nested too deeply): automl rank writes it anew from the run's last checkpoint") in p.stdout
    assert json.loads((run / "results.json").read_text())["architectures"]
