"""Review DF: a signal as ``automl run`` writes its report (its last step), the run telling the CLI that it finished
(not report.md's inode and time), and a signal while torchrun's ranks wait for rank 0's report."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_kill_resume import _env
from test_review_cx import FAST  # the tiniest end-to-end run: one weight and one θ epoch on 64 images

import automl.pipeline.results
from automl._io import atomic_write_text
from automl.cli import main
from automl.pipeline import Run

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals")

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
# no supernet, nothing trained: the random baseline's member exported with its initial weights, then the report
RANDOM = ["threads=1", "device=cpu", "search.method=random", "retrain.epochs=0", "data.limit_train=64",
          "data.batch_size=16", "data.test_batch_size=512", "search.budgets=null", "search.epsilons=[0]",
          "export.onnx=false"]


def _during_report(out: Path, name: str = "SIGTERM") -> str:
    return (f"{name} came as the run wrote its report, its last step: the run finished it and is complete, with "
            f"nothing to resume; its results are in {out / 'results.json'} and {out / 'report.md'}")


# ------------------------------------------------------------------ a signal during the report stage

def test_a_signal_during_the_report_lets_it_finish_and_says_the_run_is_complete(tmp_path, monkeypatch, capfd):
    """Seen: ``SIGTERM: finishing the current step, then writing a checkpoint``, then the run ended with exit 0 and
    nothing more: no checkpoint was written, and nothing said whether the run had finished or what to resume."""
    out, real = tmp_path / "run", automl.pipeline.results.write_report

    def write_report(*a, **k):  # the report stage, after the last member was retrained and exported
        os.kill(os.getpid(), signal.SIGTERM)  # a real signal: only recorded by the run's handler
        return real(*a, **k)

    monkeypatch.setattr(automl.pipeline.results, "write_report", write_report)
    assert main(["run", QUICK, *FAST, "--out", str(out)]) == 0
    captured = capfd.readouterr()
    assert "SIGTERM: finishing the report, the run's last step; the run then ends, complete, with nothing to " \
           "resume (send it again to stop at once)" in captured.err
    assert "writing a checkpoint" not in captured.err and "--resume" not in captured.err + captured.out
    assert captured.err.splitlines()[-1] == _during_report(out)
    assert json.loads((out / "results.json").read_text())["architectures"] and (out / "report.md").is_file()


_TWICE_IN_THE_REPORT = """
import os, signal, sys
import automl.pipeline.results as results
from automl.cli import main
real = results.write_report

def write_report(*a, **k):
    os.kill(os.getpid(), signal.SIGTERM)  # the first: the report is finished...
    for _ in range(1000):  # (its handler runs here: two signals pending at once would be taken as one)
        pass
    os.kill(os.getpid(), signal.SIGTERM)  # ...unless a second one stops the run at once
    return real(*a, **k)

results.write_report = write_report
sys.exit(main(["run", {quick!r}, *{fast!r}, "--out", sys.argv[1]]))
"""


@pytest.mark.heavy  # a run in a subprocess (a second signal ends the process at once): 5-9 s
def test_a_second_signal_during_the_report_says_that_resume_writes_it_again(tmp_path):
    """Seen: ``SIGTERM again: stopping now; the last checkpoint written is intact``: nothing said that the run's
    stages were all done and only its report was left, nor how to write it."""
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-c", _TWICE_IN_THE_REPORT.format(quick=QUICK, fast=RANDOM), str(out)],
                       capture_output=True, text=True, env=_env(), timeout=300, cwd=ROOT)
    assert p.returncode == 128 + signal.SIGTERM, (p.returncode, p.stderr[-3000:])
    again = shlex.join(["automl", "run", QUICK, *RANDOM, "--out", str(out), "--resume"])
    assert p.stderr.splitlines()[-1] == (
        f"SIGTERM again: stopping now; the run's stages are done and its last checkpoint is intact, but its report "
        f"may be unfinished (each file is whole, the new version or the earlier one); {again} writes it again")
    assert not (out / "report.md").exists()


# ------------------------------------------------------------------ "the run finished", said by the run itself

def test_a_report_md_replaced_while_the_run_starts_is_not_taken_for_the_run_finishing(tmp_path, monkeypatch, capfd):
    """The CLI told a finished run from one stopped in its start-up by report.md's inode, time and size before and
    after: a report.md written by another process meanwhile (automl rank, or the run's earlier command finishing,
    before this one's lock is checked) made a command that ran nothing say ``SIGTERM after the run had finished:
    nothing was stopped`` and exit 0. The run now says itself that its stages finished."""
    out = tmp_path / "run"
    out.mkdir()
    atomic_write_text(out / "report.md", "# the run's report\n")
    real = Run._check_supernet

    def first_check(self):  # the run's first step, before it takes the folder's lock
        atomic_write_text(self.out / "report.md", "# the run's report, written again by another process\n")
        os.kill(os.getpid(), signal.SIGTERM)
        return real(self)

    monkeypatch.setattr(Run, "_check_supernet", first_check)
    assert main(["run", QUICK, *RANDOM, "--out", str(out), "--resume"]) == 128 + signal.SIGTERM
    err = capfd.readouterr().err
    assert "after the run had finished" not in err
    assert err.splitlines()[-1].startswith("stopped by SIGTERM while the run started")


# ------------------------------------------------------------------ torchrun: the ranks waiting for rank 0's report

_AT_THE_FINAL_BARRIER = """
import os, signal, sys
import torch.distributed as dist
from automl.cli import main
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a background job ignores it)
# rank 0 of two as torchrun starts it, in a process group of one: no second rank to wait for
os.environ.update(WORLD_SIZE="2", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="29500")
dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
real, name = dist.barrier, sys.argv[2]

def barrier(*a, **k):  # the ranks' last wait, for rank 0's report: a signal to every process of the job
    os.kill(os.getpid(), getattr(signal, name))
    return real(*a, **k)

dist.barrier = barrier
sys.exit(main(["run", {quick!r}, *{fast!r}, "--out", sys.argv[1]]))
"""


@pytest.mark.heavy  # a run in a subprocess: 5-9 s each
@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_signal_while_torchruns_ranks_wait_for_the_report_is_caught(tmp_path, name):
    """Seen: under torchrun the ranks' final barrier came after the run's stages had given their signal handlers
    back (and the start-up's are off under torchrun): SIGTERM killed the rank (exit -15, nothing said), SIGINT was a
    KeyboardInterrupt (``interrupted``, exit 130), for a run whose report was written."""
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-c", _AT_THE_FINAL_BARRIER.format(quick=QUICK, fast=RANDOM), str(out), name],
                       capture_output=True, text=True, env=_env(), timeout=300, cwd=ROOT)
    assert p.returncode == 0, (p.returncode, p.stderr[-3000:])
    assert "Traceback" not in p.stderr
    assert p.stderr.splitlines()[-1] == _during_report(out, name)
    assert json.loads((out / "results.json").read_text())["world_size"] == 2
