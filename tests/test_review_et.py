"""Review ET: what a torchrun run says about a signal that reached one rank only, about ranks that did not meet as
the run started, and where its signal notices put a newline."""

from __future__ import annotations

import datetime
import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp
from test_kill_resume import _env

from automl.train import distributed
from automl.train.distributed import DistInfo, RanksLost, init_distributed
from automl.train.preempt import Preemption

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals")

NOTICE = "SIGTERM: finishing the current step, then writing a checkpoint"


# ------------------------------------------------------------------ a signal that reached one rank only

# scenario: (the ranks SIGTERM reaches during the first step, whether rank 0's own copy comes after they agreed)
SCENARIOS = {"rank 1": ((1,), False), "rank 1, then 0": ((1,), True), "both": ((0, 1), False)}


def _signal_ranks(rank: int, init: str, out: str) -> None:
    """Two ranks of a run, each step agreeing with the other, in each of :data:`SCENARIOS` in turn. Each rank's
    standard error goes to ``out/SCENARIO-err-RANK``; what its step answered, the agreed signal and its own
    pending one to ``out/SCENARIO-RANK.json``."""
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    for k, (name, (to, again_at_0)) in enumerate(SCENARIOS.items()):
        err = os.open(os.path.join(out, f"{k}-err-{rank}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(err, 2)
        os.close(err)
        p = Preemption(DistInfo(rank=rank, world_size=2))
        with p.armed():
            if rank in to:
                os.kill(os.getpid(), signal.SIGTERM)
            stop = p.step()
            if again_at_0 and rank == 0:
                os.kill(os.getpid(), signal.SIGTERM)  # torchrun passing the scheduler's signal on, late
                time.sleep(0.05)
            agreed = p.signalled()
        Path(out, f"{k}-{rank}.json").write_text(json.dumps([stop, agreed, p.pending]))
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def signalled_ranks(tmp_path_factory):
    """Scenario name -> (rank 0's answers, rank 1's, rank 0's standard error, rank 1's): one pair of processes
    for them all (each takes seconds to start)."""
    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(_signal_ranks, args=(f"file://{out / 'rendezvous'}", str(out)), nprocs=2)
    return {name: tuple([json.loads((out / f"{k}-{r}.json").read_text()) for r in (0, 1)]
                        + [(out / f"{k}-err-{r}").read_text() for r in (0, 1)])
            for k, name in enumerate(SCENARIOS)}


def test_sigterm_to_rank_1_only_is_said_once_by_rank_0_naming_rank_1(signalled_ranks):
    """A node-local preemption, or ``kill`` of one worker, signals rank 1 alone: the run stopped after the step
    with "stopped by SIGTERM", but the "SIGTERM: finishing the current step" notice never came (only rank 0 says
    it, and rank 0 had not received it)."""
    zero, one, err0, err1 = signalled_ranks["rank 1"]
    term = signal.SIGTERM.value
    assert zero == [True, term, term] and one == [True, term, term], (zero, one)
    assert err0.count(NOTICE) == 1 and "rank 1 received it; send it again to stop at once" in err0, err0
    assert NOTICE not in err1, err1


def test_rank_0_s_own_late_copy_of_a_signal_rank_1_received_says_nothing_more(signalled_ranks):
    """The scheduler's signal reached rank 1 at once and rank 0 only after the ranks agreed on it: one notice,
    and the copy is the same request (it does not stop rank 0 at once)."""
    zero, one, err0, err1 = signalled_ranks["rank 1, then 0"]
    assert zero[1] == signal.SIGTERM and one[1] == signal.SIGTERM, (zero, one)
    assert err0.count("SIGTERM") == 1 and "again" not in err0.replace("send it again", ""), err0


def test_sigterm_to_both_ranks_is_said_once_as_before(signalled_ranks):
    zero, one, err0, err1 = signalled_ranks["both"]
    assert zero[:2] == [True, signal.SIGTERM] and one[:2] == [True, signal.SIGTERM], (zero, one)
    assert err0.count(NOTICE) == 1 and "received it" not in err0, err0
    assert NOTICE not in err1, err1


# ------------------------------------------------------------------ ranks that did not meet as the run started

# what gloo raised on a torchrun worker whose peer's address refused the connection (seen after 3 s of 30 minutes)
REFUSED = ("Gloo connectFullMesh failed with [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:152] "
           "timed out connecting: SO_ERROR: Connection refused, remote=[127.0.0.1]:24486$1")


def _torchrun_env(monkeypatch, rank: int) -> None:
    for k, v in {"WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": "29511"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT", raising=False)


def test_ranks_that_gloo_gave_up_on_within_seconds_say_so_not_30_minutes(monkeypatch, capsys):
    """The message said the processes "did not all meet ... within 30 minutes" when gloo had given up after
    a few seconds on a connection refused: it says how long the rank waited, and why, without gloo's source
    paths."""
    _torchrun_env(monkeypatch, 1)

    def refused(**kwargs):
        time.sleep(0.2)
        raise RuntimeError(REFUSED)

    monkeypatch.setattr(dist, "init_process_group", refused)
    with pytest.raises(RanksLost) as info:
        init_distributed("cpu")
    text = str(info.value)
    assert "30 minutes" not in text and "gave up after 0 s" in text, text
    assert "Connection refused, remote=[127.0.0.1]:24486)" in text and "pair.cc" not in text, text
    assert "another of its processes had ended" in text and info.value.exit_code == 1, text
    assert capsys.readouterr().err.count("did not all meet at 127.0.0.1:29511") == 1  # rank 1 says its own


def test_ranks_that_never_met_within_the_timeout_still_say_the_timeout(monkeypatch):
    _torchrun_env(monkeypatch, 0)
    monkeypatch.setattr(distributed, "TIMEOUT", datetime.timedelta(seconds=0.3))

    def silent(**kwargs):
        time.sleep(0.35)
        raise dist.DistStoreError("Timed out after 1801 seconds waiting for clients. 1/2 clients joined.")

    monkeypatch.setattr(dist, "init_process_group", silent)
    with pytest.raises(RanksLost) as info:
        init_distributed("cpu")
    assert str(info.value) == (
        "rank 0 of 2: the run's 2 processes did not all meet at 127.0.0.1:29511 within 0.3 s (Timed out after 1801 "
        "seconds waiting for clients): start every process with the same MASTER_ADDR and MASTER_PORT, or start the "
        "run with torchrun")


# ------------------------------------------------------------------ a newline before a notice: on a terminal only

_SIGNAL_SELF = """
import os, signal
from automl.train.distributed import DistInfo
from automl.train.preempt import Preemption
p = Preemption(DistInfo())
with p.armed():
    os.kill(os.getpid(), signal.{name})
    print("step", p.step(), flush=True)
"""


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_notice_to_a_log_file_or_pipe_has_no_blank_line_before_it(name):
    """The newline that ends a terminal's ``^C`` came before every notice, in a log file too (a blank line)."""
    p = subprocess.run([sys.executable, "-c", _SIGNAL_SELF.format(name=name)], capture_output=True, text=True,
                       env=_env(), timeout=120)
    assert p.returncode == 0 and "step True" in p.stdout, p.stderr[-2000:]
    assert p.stderr.startswith(f"{name}: finishing the current step"), repr(p.stderr)


def test_a_notice_on_a_terminal_starts_on_a_line_of_its_own():
    """On a terminal the newline stays: Ctrl-C's ``^C`` (or a progress line) is on the line the cursor is on."""
    main, sub = pty.openpty()
    try:
        p = subprocess.run([sys.executable, "-c", _SIGNAL_SELF.format(name="SIGINT")], stdout=subprocess.PIPE,
                           stderr=sub, env=_env(), timeout=120)
        os.close(sub)
        seen = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the other end closed
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(main)
    assert p.returncode == 0, seen
    text = seen.decode().replace("\r\n", "\n")
    assert text.startswith("\nSIGINT: finishing the current step"), repr(text)
