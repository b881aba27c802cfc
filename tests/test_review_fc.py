"""Review FC: rank 0 lost (``kill -9``, an out-of-memory kill) after it wrote the run's report, seen by rank 1.

Rank 1 gets past the report stage's exchange only once rank 0's write of results.json and report.md returned, so
the run is complete then; but when rank 0 ended after it, rank 1's wait for it (the barrier, or the agreement on a
late signal) failed, printed RanksLost's "continue the run with --resume" and rank 1 exited 1. Rank 0's side is
tests/test_review_ew.py. The unit tests run ``_finish`` as rank 1 of a run in one process, with the collectives of
torch.distributed failing as gloo's do when the other end is gone; the heavy test kills rank 0 under torchrun."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from automl.errors import UserError
from automl.pipeline import context
from automl.pipeline import run as run_module
from automl.train import distributed
from automl.train.distributed import DistInfo, RanksLost, losses_unsaid
from automl.train.preempt import Preemption
from test_review_ew import torchrun_quickstart

ROOT = Path(__file__).resolve().parents[1]
GONE = "[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:29500"
RESUME = "continue the run with --resume"
COMPLETE = "the run is complete, with nothing to resume"


class _ReportStage:
    """The report stage as a rank other than 0 runs it: rank 0 writes, then tells the others (the broadcast)."""

    key = "report"

    def __init__(self, out: Path):
        self.out, self.ran = out, False

    def run(self, ctx, state, idx):
        context.written_on_main(ctx.info, f"the results in {self.out}", lambda: None, lambda fix: fix)
        self.ran = True


def _collectives(monkeypatch, lost: str) -> list[str]:
    """torch.distributed's collectives, faked for rank 1 of a run whose rank 0 wrote its report; the one named
    ``lost`` (``broadcast``: the report stage's own exchange, ``barrier``, ``agreement``) fails as gloo's does when
    rank 0's process has ended. Returns the collectives called, in order."""
    dist, called = distributed.dist, []

    def fake(name, answer=None):
        def call(*args, **kwargs):
            called.append(name)
            if name == lost:
                raise RuntimeError(GONE)
            if answer is not None:
                answer(*args)
        return call

    def told(box, src=0):  # rank 0's (answer, error) of its write: it returned, without an error
        box[0] = (None, None)

    monkeypatch.setattr(dist, "broadcast_object_list", fake("broadcast", told))
    monkeypatch.setattr(dist, "barrier", fake("barrier"))
    monkeypatch.setattr(dist, "all_reduce", fake("agreement"))
    monkeypatch.setattr(dist, "get_backend", lambda *a, **k: "gloo")
    return called


def _finish_as(rank: int, world: int, lost: str, tmp_path, monkeypatch):
    """``_finish`` on rank ``rank`` of ``world``, the collective ``lost`` failing. Returns (run, stage, called)."""
    monkeypatch.setenv("RANK", str(rank))
    called = _collectives(monkeypatch, lost)
    info = DistInfo(rank=rank, world_size=world, local_rank=rank)
    stage = _ReportStage(tmp_path)
    plan = SimpleNamespace(stages=[stage], report=SimpleNamespace(written=False))  # rank 1 never writes it
    run = SimpleNamespace(info=info, out=tmp_path, finished=False, late_signal=0)
    ctx = SimpleNamespace(info=info)
    run_module._finish(run, plan, ctx, SimpleNamespace(), Preemption(info))
    return run, stage, called


@pytest.mark.parametrize("lost", ["barrier", "agreement"])
def test_rank_1_losing_rank_0_after_the_report_was_written_finishes_the_run(lost, tmp_path, monkeypatch, capsys):
    """Rank 0 ended after it told rank 1 the report was written: rank 1 says the run is complete (one line, no
    "--resume"), and its run is finished (no RanksLost: exit 0)."""
    run, stage, called = _finish_as(1, 2, lost, tmp_path, monkeypatch)
    assert called[0] == "broadcast" and called[-1] == lost, called
    err = capsys.readouterr().err
    assert RESUME not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("warning: rank 1 of 2: rank 0, the run's other process, ended or stopped answering "
                               "after it wrote the report"), err
    assert COMPLETE in lines[0] and f"{tmp_path / 'results.json'} and {tmp_path / 'report.md'}" in lines[0], err
    assert stage.ran and run.finished and run.late_signal == 0


def test_a_rank_of_several_that_loses_another_after_the_report_does_not_name_rank_0(tmp_path, monkeypatch, capsys):
    """With more than two ranks, rank 2 cannot tell which rank ended: it says another rank did."""
    run, _, _ = _finish_as(2, 3, "barrier", tmp_path, monkeypatch)
    err = capsys.readouterr().err
    assert err.startswith("warning: rank 2 of 3: another rank of the run ended or stopped answering after rank 0 "
                          "wrote the report"), err
    assert err.count("\n") == 1 and COMPLETE in err and RESUME not in err, err
    assert run.finished


def test_rank_1_losing_rank_0_before_the_write_returned_still_says_resume(tmp_path, monkeypatch, capsys):
    """The report stage's own exchange failed on rank 1: rank 0 may not have written the report, so RanksLost's
    "--resume", said once, as it was raised; the run is not finished."""
    with pytest.raises(RanksLost) as raised:
        _finish_as(1, 2, "broadcast", tmp_path, monkeypatch)
    err = capsys.readouterr().err
    assert raised.value.printed and err.count(RESUME) == 1 and COMPLETE not in err, err
    assert "rank 1 of 2: rank 0, the run's other process, ended" in err, err


def test_a_lost_rank_inside_losses_unsaid_is_not_printed(monkeypatch, capsys):
    """Inside the block (nested too) a rank other than 0 raises RanksLost unsaid; outside, printed as before, and
    a rank's own error (not a lost rank) is printed inside too."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(distributed.dist, "barrier", lambda *a, **k: (_ for _ in ()).throw(RuntimeError(GONE)))
    info = DistInfo(rank=1, world_size=2, local_rank=1)
    with losses_unsaid():
        with losses_unsaid():
            with pytest.raises(RanksLost) as inner:
                distributed.barrier(info)
        with pytest.raises(RanksLost) as outer:
            distributed.barrier(info)
        own = distributed.said_by_this_rank(UserError("this rank's own mistake"))
    assert not inner.value.printed and not outer.value.printed and own.printed
    err = capsys.readouterr().err
    assert "this rank's own mistake" in err and RESUME not in err, err
    with pytest.raises(RanksLost) as after:
        distributed.barrier(info)
    assert after.value.printed and RESUME in capsys.readouterr().err


# ------------------------------------------------------------------ under torchrun

WORKER = textwrap.dedent("""
    import os, signal, sys
    from automl.pipeline import run

    def barrier(info):  # rank 0 dies (kill -9) once it wrote the report and told rank 1 so
        os.kill(os.getpid(), signal.SIGKILL)

    if os.environ["RANK"] == "0":
        run.barrier = barrier
    from automl.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.heavy
def test_torchrun_kill_9_of_rank_0_after_it_wrote_the_report(tmp_path, free_port):
    script, out = tmp_path / "worker.py", tmp_path / "run"
    script.write_text(WORKER)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    # torchrun looks at its workers every 10 s (not 0.1): rank 1 exits on its own, not stopped by torchrun
    code, text = torchrun_quickstart(script, out, env, free_port(), 180, "--monitor-interval=10")
    assert code == 1, text[-3000:]  # torchrun: one of its workers failed
    assert text.count("warning: rank 1 of 2: rank 0, the run's other process, ended or stopped answering after it "
                      "wrote the report") == 1, text[-3000:]
    assert RESUME not in text, text[-3000:]
    workers = text[:text.index("failed (exitcode")]  # then torchrun's own traceback (ChildFailedError)
    assert "Traceback" not in workers, text[-3000:]
    assert json.loads((out / "results.json").read_text())["architectures"]
    assert (out / "report.md").stat().st_size > 0
    # rank 1 exited 0: torchrun names the killed rank 0 alone
    assert "<NO_OTHER_FAILURES>" in text and "rank      : 0" in text and "rank      : 1" not in text, text[-3000:]
