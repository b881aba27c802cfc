"""Review E: ``automl run`` start-up and resume.

1. A signal during start-up (after the run folder is made, before the stages take the signals over) leaves no
   run folder behind, and ``--resume`` without ``--out`` passes over a folder that holds nothing to continue
   (one a ``kill -9`` during start-up left) for the latest run that does.
2. ``--resume`` with ``threads: auto`` whose threads.json is lost keeps the count the run's checkpoint (or
   results.json) records, and without any record warns, naming the file and the count chosen.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from automl.cli import main
from automl.commands.run import _latest_run
from automl.pipeline import Run
import automl.pipeline.run as pr
from automl.pipeline.run import _recorded_threads
from automl.pipeline.state import RunState
from automl.recipe import load_recipe
from automl.train import threads as th
from automl.train.threads import resolve_threads

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
# seconds: one epoch of each phase on a few digits, one thread (tests/test_run_dirs_review_q.py)
TINY = ["device=cpu", "threads=1", "data.limit_train=96", "data.batch_size=32", "data.theta_batch_size=32",
        "search.lam=2", "search.weight_epochs=1", "search.theta_epochs=1", "search.budgets=[null,40k]",
        "retrain.epochs=0", "export.onnx=false"]
AUTO = [o for o in TINY if o != "threads=1"]

# `automl run` in a child process that sends itself SIGNAL when the run reaches WHERE (a start-up step); the
# signal is real, so on an automl that leaves it to the default action the child dies of it
STOP_AT = """
import os, signal, sys
import automl.pipeline.run as pr
import automl.pipeline.setup as ps
import automl.train.loops as loops
sig, where, argv = getattr(signal, sys.argv[1]), sys.argv[2], sys.argv[3:]
owner = ps if where == "build_data" else loops if where == "weight_step" else pr.Run
real, sent = getattr(owner, where), []
def stop(*a, **k):
    if not sent:
        sent.append(os.kill(os.getpid(), sig))
    return real(*a, **k)
setattr(owner, where, stop)
from automl.cli import main
sys.exit(main(argv))
"""


def _stop_at(cwd: Path, signame: str, where: str, *args: str, nohup: bool = False) -> subprocess.CompletedProcess:
    """``nohup``: the child starts with SIGHUP ignored, as ``nohup`` starts it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OMP_NUM_THREADS", None)

    def dispositions():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN if nohup else signal.SIG_DFL)

    return subprocess.run([sys.executable, "-c", STOP_AT, signame, where, "run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, preexec_fn=dispositions)


# ------------------------------------------------------------------------------ 1: signals during start-up


@pytest.mark.parametrize("signame,where", [  # the first in the default suite, the others in CI's heavy run
    pytest.param(*case, marks=[pytest.mark.heavy] if i else [])
    for i, case in enumerate([("SIGTERM", "build_data"), ("SIGHUP", "build_data"), ("SIGINT", "build_data"),
                              ("SIGTERM", "context")])])
def test_a_signal_during_start_up_leaves_no_default_run_folder(tmp_path, signame, where):
    """build_data: threads.json is written, the data not yet read; context: recipe.resolved.yaml is written too,
    the stages have not begun."""
    done = _stop_at(tmp_path, signame, where, QUICK, *TINY)
    assert done.returncode == 128 + getattr(signal, signame), done.stderr
    assert "while the run started, before its first checkpoint: nothing to resume" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()  # the folder, and runs/ this command made for it, are gone


def test_a_signal_during_the_start_up_of_a_resume_keeps_the_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", QUICK, *TINY]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    done = _stop_at(tmp_path, "SIGTERM", "build_data", QUICK, *TINY, "--resume")
    assert done.returncode == 143, done.stderr
    assert "its checkpoints are as they were. Continue with: automl run" in done.stderr, done.stderr
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


def test_a_signal_during_start_up_keeps_a_folder_named_with_out(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    done = _stop_at(tmp_path, "SIGTERM", "build_data", QUICK, *TINY, "--out", str(out))
    assert done.returncode == 143, done.stderr
    assert out.is_dir() and "removed" not in done.stderr


@pytest.mark.parametrize("where", ["build_data", pytest.param("weight_step", marks=pytest.mark.heavy)])
def test_sighup_under_nohup_is_ignored_in_start_up_and_in_the_stages(tmp_path, where):
    """docs/reliability.md: start a run under nohup to keep it going when its terminal closes."""
    done = _stop_at(tmp_path, "SIGHUP", where, QUICK, *TINY, "--out", str(tmp_path / "r"), nohup=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r" / "results.json").is_file() and "SIGHUP" not in done.stderr


def _started_only(runs: Path, name: str) -> Path:
    """What a start-up killed with -9 leaves: the lock file and the thread choice."""
    d = runs / name
    d.mkdir(parents=True)
    (d / ".lock").write_text("pid 1\n", encoding="utf-8")
    (d / "threads.json").write_text('{"threads": 1}\n', encoding="utf-8")
    (d / "checkpoints").mkdir()
    return d


def test_resume_without_out_passes_over_a_folder_a_killed_start_up_left(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", QUICK, *TINY]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    stub = _started_only(tmp_path / "runs", "quickstart-20991231-235959")
    capsys.readouterr()
    assert main(["run", QUICK, *TINY, "--resume"]) == 0
    out = capsys.readouterr().out
    assert f"resuming runs/{run.name} at report" in out, out
    assert f"--resume: passed over runs/{stub.name}: no checkpoint" in out
    assert stub.is_dir()  # a run may be starting there: named, never deleted


def test_latest_run_passes_over_only_folders_with_nothing_to_continue(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    _started_only(runs, "q-20260101-000000")
    assert _latest_run("q") == Path("runs/q-20260101-000000")  # none holds more: the latest, as before
    (runs / "q-20260102-000000").mkdir()
    (runs / "q-20260102-000000" / "metrics.jsonl").write_text("{}\n", encoding="utf-8")  # a run's log: kept
    _started_only(runs, "q-20260103-000000")
    (runs / "q-20260104-000000").write_text("a file", encoding="utf-8")
    assert _latest_run("q") == Path("runs/q-20260102-000000")
    out = capsys.readouterr().out
    assert "passed over runs/q-20260103-000000" in out and "q-20260104" not in out


# ------------------------------------------------------------------------------ 2: threads.json lost


def test_resolve_threads_takes_a_count_another_record_holds(tmp_path):
    c = resolve_threads("auto", out_dir=tmp_path, resume=True, work=100, environ={},
                        recorded=lambda: (3, "its checkpoint in X"))
    assert (c.threads, c.source) == (3, "resumed")
    assert "its checkpoint in X" in c.reason and "threads.json is missing" in c.reason
    c = resolve_threads(2, out_dir=tmp_path, resume=True, work=100, environ={}, recorded=lambda: (3, "X"))
    assert c.threads == 2 and "started with 3" in c.reason
    th.save_choice(tmp_path, th.ThreadChoice(4, "auto", "why"))  # threads.json wins; the record is not read
    c = resolve_threads("auto", out_dir=tmp_path, resume=True, work=100, environ={},
                        recorded=lambda: pytest.fail("threads.json holds the count"))
    assert c.threads == 4


def test_recorded_threads_reads_results_json_without_a_checkpoint(tmp_path):
    assert _recorded_threads(tmp_path) is None
    (tmp_path / "results.json").write_text(json.dumps({"threads": {"threads": 3, "source": "auto"}}))
    assert _recorded_threads(tmp_path) == (3, str(tmp_path / "results.json"))
    (tmp_path / "results.json").write_text(json.dumps({"threads": {"threads": True}}))
    assert _recorded_threads(tmp_path) is None


def _killed_then_resumed(tmp_path, monkeypatch, die_after_save, capsys) -> tuple[dict, str]:
    """A threads: auto run (one thread here) killed after its first checkpoint, its threads.json deleted, then
    resumed where auto would now choose 2."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    extra = AUTO + ["search.weight_epochs=2"]
    die_after_save(lambda state, n: n == 1)
    with pytest.raises(KeyboardInterrupt):
        Run(load_recipe(QUICK, extra), tmp_path / "k", tty=False).execute()
    (tmp_path / "k" / "threads.json").unlink()
    monkeypatch.setattr(th, "choose_threads", lambda *a, **k: (2, "a busier or bigger machine"))
    monkeypatch.setattr(pr, "apply_threads", lambda n: None)  # the count is checked; the test computes with 1
    capsys.readouterr()
    resumed = Run(load_recipe(QUICK, extra), tmp_path / "k", resume=True, tty=False).execute()
    return resumed, capsys.readouterr().out


def test_resume_without_threads_json_keeps_the_checkpoints_count(tmp_path, monkeypatch, die_after_save, capsys):
    resumed, out = _killed_then_resumed(tmp_path, monkeypatch, die_after_save, capsys)
    assert resumed["threads"]["threads"] == 1 and resumed["threads"]["source"] == "resumed", out
    assert f"as its checkpoint in {tmp_path / 'k' / 'checkpoints'} records it" in out
    assert json.loads((tmp_path / "k" / "threads.json").read_text())["threads"] == 1  # the record is back


def test_resume_without_any_record_of_the_count_warns(tmp_path, monkeypatch, die_after_save, capsys):
    """A checkpoint of an automl that did not record the count (no ``threads`` in it), no results.json."""
    real = RunState.to_checkpoint
    monkeypatch.setattr(RunState, "to_checkpoint", lambda self: {k: v for k, v in real(self).items()
                                                                  if k != "threads"})
    resumed, out = _killed_then_resumed(tmp_path, monkeypatch, die_after_save, capsys)
    assert resumed["threads"]["threads"] == 2 and resumed["threads"]["source"] == "auto"
    warning = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert warning and str(tmp_path / "k" / "threads.json") in warning[0], out
    assert "2 threads chosen anew" in warning[0] and "threads=" in warning[0]
