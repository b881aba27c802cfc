"""Review RF: what ``automl run`` says and records when it stops, resumes at its report, or refuses a resume.

1. A second signal after a checkpoint exists said ``SIGTERM again: stopping now; the last checkpoint written is
   intact`` and nothing more, where every other stop names the command that continues the run: the run's
   :class:`~automl.train.preempt.Preemption` now names ``Run.resume_command`` (chosen as the message is made).
2. A run stopped just before its report and resumed with another thread count recorded this command's count in
   results.json's ``threads`` (with "the resumed part may differ"), though the report computes nothing that depends
   on it and the run computed everything with its own: the record is the run's (threads.json's), as a finished
   run's resume keeps its results.json's; threads.json is left as it is.
3. A resume refused for a changed override said "resume with the same recipe and overrides": it now names the
   command that resumes it with the run's own recipe.resolved.yaml, which works when pasted.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from automl.cli import main
import automl.train.threads as th
from automl.train.threads import ThreadChoice

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
# seconds: one epoch of each search phase on a few digits, one thread, no retraining (tests/test_review_e.py)
TINY = ["device=cpu", "threads=1", "data.limit_train=96", "data.batch_size=32", "data.theta_batch_size=32",
        "search.lam=2", "search.weight_epochs=1", "search.theta_epochs=1", "search.budgets=[null,40k]",
        "retrain.epochs=0", "export.onnx=false"]

# `automl run` in a child process: SIGTERM twice right after its first checkpoint (TWICE), or once as its last
# retraining stage starts, so that it stops with only its report left (REPORT)
SIGNALLED = """
import os, signal, sys
import automl.pipeline.final_stages as fs
from automl.train.preempt import Preemption
if sys.argv[1] == "TWICE":
    real = Preemption.saved
    def saved(self):
        real(self)
        os.kill(os.getpid(), signal.SIGTERM)  # the first: recorded
        os.kill(os.getpid(), signal.SIGTERM)  # the second: at once
    Preemption.saved = saved
else:
    real, calls = fs.RetrainStage.run, []
    def run(*a, **k):
        calls.append(1)
        if len(calls) == 2:  # the last of the two budgets' retrainings: the checkpoint after it resumes at report
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)
    fs.RetrainStage.run = run
from automl.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _signalled(how: str, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", SIGNALLED, how, "run", QUICK, *TINY, "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)


def _again(out: Path) -> str:
    return shlex.join(["automl", "run", QUICK, *TINY, "--out", str(out), "--resume"])


def _pasted(command: str) -> int:
    """``command``, an ``automl ...`` line as printed, run as a user pasting it would."""
    words = shlex.split(command)
    assert words[0] == "automl", command
    return main(words[1:])


@pytest.fixture(scope="module")
def at_report(tmp_path_factory) -> Path:
    """A run stopped by SIGTERM with only its report left (no results.json yet)."""
    out = tmp_path_factory.mktemp("rf") / "at-report"
    p = _signalled("REPORT", out)
    assert p.returncode == 143, p.stderr[-3000:]
    assert f"resumes at report. Continue with: {_again(out)}" in p.stdout + p.stderr, p.stdout + p.stderr
    assert not (out / "results.json").exists()
    return out


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


# ------------------------------------------------------------------ 1. a second signal names the resume command

@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_a_second_signal_after_a_checkpoint_names_the_command_that_continues_the_run(tmp_path, monkeypatch):
    out = tmp_path / "run"
    p = _signalled("TWICE", out)
    assert p.returncode == 143, p.stderr[-3000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last == f"SIGTERM again: stopping now; the last checkpoint written is intact. Continue with: {_again(out)}"
    monkeypatch.chdir(tmp_path)  # what it says works from any folder
    assert _pasted(last.split("Continue with: ", 1)[1]) == 0
    assert (out / "results.json").is_file()


_SECOND = """
import os, signal, sys
from automl.train.distributed import DistInfo
from automl.train.preempt import Preemption
checkpointed = {"True": True, "False": False, "None": None}[sys.argv[1]]
resume = None if sys.argv[2] == "-" else (lambda: sys.argv[2])
p = Preemption(DistInfo(), checkpointed=checkpointed, resume=resume)
with p.armed():
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGTERM)
print("not reached")
"""


@pytest.mark.skipif(os.name != "posix", reason="signals")
@pytest.mark.parametrize("checkpointed,resume,said", [
    ("True", "automl run R --out D --resume",
     "no checkpoint was written since this command started; --resume continues from the run's previous checkpoint. "
     "Continue with: automl run R --out D --resume"),
    ("None", "automl run R --out D --resume",
     "no checkpoint was written since this command started (--resume continues from the run's previous checkpoint, "
     "if it has one: automl run R --out D --resume)"),
    ("False", "automl run R --out D --resume",  # nothing to resume: no resume command
     "no checkpoint was written yet, so there is nothing to resume: run the same command again (in the same folder "
     "it starts the run afresh, in place of what this one left)"),
    ("None", "-",  # without one, as before
     "no checkpoint was written since this command started (--resume continues from the run's previous checkpoint, "
     "if it has one)"),
])
def test_a_second_signal_names_the_resume_command_where_there_is_a_checkpoint(checkpointed, resume, said):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-c", _SECOND, checkpointed, resume], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 128 + signal.SIGTERM and "not reached" not in p.stdout, p.stderr
    assert p.stderr.strip().splitlines()[-1] == f"SIGTERM again: stopping now; {said}"


# ------------------------------------------------------------------ 2. a resume at the report keeps the run's threads

@pytest.mark.parametrize("record", ["kept", "lost"])
def test_a_resume_at_the_report_with_another_thread_count_records_the_runs(at_report, tmp_path, record):
    """The run computed everything with 1 thread; the resume (threads=2) only writes its report. ``lost``: its
    threads.json is gone, and the checkpoint's count is the record (threads.json is saved with it)."""
    out = _copy(at_report, tmp_path / "run")
    started = json.loads((out / "threads.json").read_text(encoding="utf-8"))
    assert started["threads"] == 1
    if record == "lost":
        (out / "threads.json").unlink()
    before = None if record == "lost" else (out / "threads.json").read_bytes()
    assert main(["run", QUICK, *[o for o in TINY if o != "threads=1"], "threads=2", "--out", str(out),
                 "--resume"]) == 0
    threads = json.loads((out / "results.json").read_text(encoding="utf-8"))["threads"]
    if record == "kept":  # as an uninterrupted run records it
        assert threads == started
        assert (out / "threads.json").read_bytes() == before  # no part computed with 2: no history
    else:
        assert threads["threads"] == 1 and threads["source"] == "resumed" and "history" not in threads, threads
        assert "its checkpoint's" in threads["reason"] and "may differ" not in threads["reason"], threads
        assert json.loads((out / "threads.json").read_text(encoding="utf-8"))["threads"] == 1


def test_a_resume_at_the_report_records_the_last_parts_count_where_threads_json_lists_several(tmp_path):
    (tmp_path / "threads.json").write_text(json.dumps({"threads": 1, "source": "auto", "reason": "one core",
                                                       "history": [1, 2]}), encoding="utf-8")
    now = ThreadChoice(3, "recipe", "from the recipe; the run started with 1, so the resumed part may differ")
    kept = th.report_only_choice(tmp_path, 1, now)
    assert (kept.threads, kept.source, kept.history) == (2, "resumed", (1, 2)), kept
    (tmp_path / "threads.json").write_text(json.dumps({"threads": 1, "source": "auto", "reason": "one core"}),
                                           encoding="utf-8")
    assert th.report_only_choice(tmp_path, 1, now) == ThreadChoice(1, "auto", "one core")
    (tmp_path / "threads.json").write_text("[1]", encoding="utf-8")  # damaged: the checkpoint's count
    assert th.report_only_choice(tmp_path, 1, now).threads == 1
    assert th.report_only_choice(tmp_path, None, now) is now  # recorded nowhere: this command's


# ------------------------------------------------------------------ 3. a refused resume names the command that works

def test_a_resume_with_another_override_names_the_command_that_resumes_the_run(at_report, tmp_path, monkeypatch,
                                                                               capsys):
    out = _copy(at_report, tmp_path / "run")
    monkeypatch.chdir(tmp_path)  # --out given relative: the command names it absolute
    changed = [o if o != "search.lam=2" else "search.lam=3" for o in TINY]
    capsys.readouterr()
    assert main(["run", QUICK, *changed, "--out", "run", "--resume"]) == 2
    err = capsys.readouterr().err
    command = shlex.join(["automl", "run", str(out / "recipe.resolved.yaml"), "--out", str(out), "--resume"])
    assert "search.lam: 2 there, 3 here" in err, err
    assert f"resume with the recipe it was started with ({command}), or start a new run" in err, err
    assert "Traceback" not in err
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert _pasted(command) == 0
    assert (out / "results.json").is_file()
