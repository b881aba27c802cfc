"""Review EW: a rank lost (``kill -9`` of rank 1 under torchrun) once rank 0 has written the run's report.

Rank 0 wrote results.json and report.md, then its last broadcast failed and it exited 1 with RanksLost's "continue
the run with --resume", although the run was complete (a --resume only wrote the report again). The unit tests
simulate the lost rank in one process (the collectives raise :class:`RanksLost` where gloo would); the heavy test
kills rank 1 under torchrun as rank 0 writes the report."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from automl.cli import main
from automl.pipeline import context, results
from automl.pipeline import run as run_module
from automl.train.distributed import RanksLost
from automl.train.preempt import Preemption

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
FAST = ["threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
        "search.supernets=1", "data.limit_train=64", "data.batch_size=32", "data.theta_batch_size=32",
        "search.lam=2", "search.budgets=null", "search.epsilons=[0]", "export.onnx=false"]

LOST = ("rank 0 of 2: rank 1, the run's other process, ended (a crash, an out-of-memory kill, a signal) or its "
        "machine went away: its own message above, or torchrun's summary, says why (rank 0 telling the others: "
        "Connection closed by peer [127.0.0.1]:12502); the checkpoints written so far are intact: continue the run "
        "with --resume")
COMPLETE = "the run is complete, with nothing to resume"


def _lose_rank_after(monkeypatch, write_fails: bool = False) -> list:
    """The broadcast that follows rank 0's write of the report raises RanksLost (rank 1 was killed meanwhile);
    ``write_fails``: that write fails first (a full disk). Returns the list of writes tried."""
    real_write, real_broadcast, tried = results.write_report, context.broadcast_object, []

    def write(*args, **kwargs):
        tried.append(1)
        if write_fails:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(*args, **kwargs)

    def broadcast(obj, info):
        if tried:
            raise RanksLost(LOST)
        return real_broadcast(obj, info)

    monkeypatch.setattr(results, "write_report", write)
    monkeypatch.setattr(context, "broadcast_object", broadcast)
    return tried


def _run(out: Path, capsys) -> tuple[int, str]:
    code = main(["run", QUICK, *FAST, "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _complete(out: Path) -> None:
    assert json.loads((out / "results.json").read_text())["architectures"], "results.json without architectures"
    assert (out / "report.md").stat().st_size > 0


def test_a_rank_lost_after_rank_0_wrote_the_report_leaves_a_finished_run(tmp_path, monkeypatch, capsys):
    """Rank 0 exited 1 with "continue the run with --resume" after it had written results.json and report.md."""
    out = tmp_path / "r"
    _lose_rank_after(monkeypatch)
    code, text = _run(out, capsys)
    assert code == 0, text
    _complete(out)
    assert "continue the run with --resume" not in text, text
    lines = [line for line in text.splitlines() if COMPLETE in line]
    assert len(lines) == 1 and lines[0].startswith("warning: another rank of the run ended"), text
    assert f"{out / 'results.json'} and {out / 'report.md'}" in lines[0], lines[0]


@pytest.mark.parametrize("where", ["barrier", "agreement"])
def test_a_rank_lost_while_the_ranks_wait_for_the_report_leaves_a_finished_run(where, tmp_path, monkeypatch,
                                                                              capsys):
    """Rank 1 ended after rank 0 told it the report was written (the barrier after it, or the agreement on a late
    signal, failed on rank 0)."""
    real_write, real_signalled, written = results.write_report, Preemption.signalled, []

    def write(*args, **kwargs):
        written.append(real_write(*args, **kwargs))

    def lost(*args, **kwargs):
        raise RanksLost(LOST)

    def signalled(self):  # after every checkpoint too: lost only once the report is written
        return lost() if written else real_signalled(self)

    monkeypatch.setattr(results, "write_report", write)
    if where == "barrier":
        monkeypatch.setattr(run_module, "barrier", lost)
    else:
        monkeypatch.setattr(Preemption, "signalled", signalled)
    code, text = _run(tmp_path / "r", capsys)
    assert code == 0 and "continue the run with --resume" not in text, text
    assert text.count(COMPLETE) == 1, text
    _complete(tmp_path / "r")


def test_a_rank_lost_after_a_failed_write_of_the_report_still_says_resume(tmp_path, monkeypatch, capsys):
    """The report was not written (a full disk): the rank lost then is RanksLost, exit 1, as before."""
    tried = _lose_rank_after(monkeypatch, write_fails=True)
    code, text = _run(tmp_path / "r", capsys)
    assert tried and code == 1, text
    assert "continue the run with --resume" in text and COMPLETE not in text, text
    assert not (tmp_path / "r" / "results.json").exists()


def test_a_rank_lost_before_the_report_still_says_resume(tmp_path, monkeypatch, capsys):
    """A rank lost in an earlier stage (here: as rank 0 tells the others its first checkpoint is written): exit 1,
    "continue the run with --resume", no report."""
    real_save, saves = context.Keeper.save, []

    def save(self, *args, **kwargs):
        saves.append(1)
        real_save(self, *args, **kwargs)
        raise RanksLost(LOST)

    monkeypatch.setattr(context.Keeper, "save", save)
    code, text = _run(tmp_path / "r", capsys)
    assert saves == [1] and code == 1, text
    assert "continue the run with --resume" in text and COMPLETE not in text, text
    assert not (tmp_path / "r" / "report.md").exists()


# ------------------------------------------------------------------ under torchrun

WORKER = textwrap.dedent("""
    import os, signal, sys, time
    from automl.pipeline import results
    real_write = results.write_report
    rank = os.environ["RANK"]

    def write(*args, **kwargs):  # rank 0: rank 1 is killed as it writes the report
        out = real_write(*args, **kwargs)
        deadline = time.monotonic() + 30
        while not os.path.exists(os.environ["EW_DEAD"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        return out

    def run(self, ctx, state, idx):  # rank 1 dies (kill -9) as the report stage starts
        open(os.environ["EW_DEAD"], "w").close()
        os.kill(os.getpid(), signal.SIGKILL)

    results.write_report = write
    if rank == "1":
        results.ReportStage.run = run
    from automl.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def torchrun_quickstart(script: Path, out: Path, env: dict, port: int, timeout: float,
                        *launcher: str) -> tuple[int, str]:
    """The FAST quickstart under torchrun, 2 processes of ``script`` (a worker that runs automl's CLI) with the
    ``launcher`` options: torchrun's exit code and output (a run that does not end fails the test)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--rdzv-backend=c10d", *launcher,
           f"--rdzv-endpoint=127.0.0.1:{port}", str(script), "run", QUICK, *FAST, "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        text, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        text, _ = proc.communicate(timeout=60)
        pytest.fail("the run did not end:\n" + text[-3000:])
    return proc.returncode, text


@pytest.mark.heavy
def test_torchrun_kill_9_of_rank_1_as_rank_0_writes_the_report(tmp_path, free_port):
    script, out = tmp_path / "worker.py", tmp_path / "run"
    script.write_text(WORKER)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT),
               EW_DEAD=str(tmp_path / "dead"))
    code, text = torchrun_quickstart(script, out, env, free_port(), 120)
    assert code == 1, text[-3000:]  # torchrun: one of its workers failed
    assert "rank 1, the run's other process, ended or stopped answering as rank 0 finished the report" in text, \
        text[-3000:]
    assert "continue the run with --resume" not in text, text[-3000:]
    workers = text[:text.index("failed (exitcode")]  # then torchrun's own traceback (ChildFailedError)
    assert "Traceback" not in workers, text[-3000:]
    _complete(out)
    # rank 0 exited 0: torchrun names the killed rank 1 alone
    assert "<NO_OTHER_FAILURES>" in text and "rank      : 1" in text and "rank      : 0" not in text, text[-3000:]
