"""Review BR: the weight phase's path sampling (fair sampling with too few paths per step) and the progress bar
(warnings logged while it is drawn)."""

from __future__ import annotations

import logging
import os
import pty
import re
import select
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from automl.train import progress as progress_mod
from automl.pipeline import search_stages
from automl.train.sampling import fair_shortfall

from test_user_errors_run import FAST, QUICK, cli  # the tiny quickstart run, and the CLI without a traceback

ROOT = Path(__file__).resolve().parents[1]


# ---- fair sampling with search.lam below a decision's number of choices ------------------------------------------

def test_fair_shortfall_names_lam_the_largest_choice_count_and_an_exactly_fair_lam():
    msg = fair_shortfall([3, 4, 4], 2)
    assert msg.startswith("warning: search.weight_sampling fair with search.lam 2:")
    assert "a decision of 4 choices" in msg and "at least 4" in msg
    assert "(12, a multiple of every decision's number of choices" in msg  # lcm(3, 4): exactly fair
    assert "search.weight_sampling: uniform" in msg


@pytest.mark.parametrize("nc, lam", [([3, 4, 4], 4), ([3, 4], 5), ([2, 2], 2), ([5], 10), ([], 2)])
def test_fair_shortfall_is_none_when_lam_covers_every_choice_count(nc, lam):
    assert fair_shortfall(nc, lam) is None


def test_fair_shortfall_suggests_no_multiple_when_the_largest_count_is_one():
    msg = fair_shortfall([2, 4, 4], 3)
    assert "at least 4;" in msg and "a multiple" not in msg  # lcm(2, 4) = 4 = the largest: no second number


def _shortfall_records(caplog):
    return [r for r in caplog.records if r.name == search_stages.__name__ and "search.lam" in r.getMessage()]


@pytest.mark.parametrize("is_main", [True, False])
def test_the_fair_path_sampler_warns_on_rank_0_only(caplog, is_main):
    space = SimpleNamespace(num_choices=[3, 4], cost_table=SimpleNamespace(gates=None))
    ctx = SimpleNamespace(spaces=SimpleNamespace(search=space), info=SimpleNamespace(is_main=is_main),
                          sampler=torch.Generator().manual_seed(0))
    with caplog.at_level(logging.WARNING, logger=search_stages.__name__):
        sample = search_stages.path_sampler(ctx, SimpleNamespace(weight_sampling="fair"), 2)
        assert sample().shape == (2, 2)
    assert len(_shortfall_records(caplog)) == int(is_main)


def test_a_run_with_fair_sampling_and_too_few_paths_warns_once(tmp_path, capsys, caplog):
    """The quickstart space has decisions of 3 and 4 choices; search.lam 2 with fair sampling warns once in the
    weight phase (not once per step), and the run completes."""
    with caplog.at_level(logging.WARNING, logger=search_stages.__name__):
        code, _ = cli(capsys, "run", QUICK, "--out", tmp_path / "run", *FAST, "search.weight_sampling=fair",
                      "search.log_every=1", "data.batch_size=8", "data.theta_batch_size=8")
    assert code == 0
    recs = _shortfall_records(caplog)
    assert len(recs) == 1 and "search.lam 2" in recs[0].getMessage() and "4 choices" in recs[0].getMessage()
    assert "(12, a multiple" in recs[0].getMessage()
    steps = [r for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"weights"' in r]
    assert len(steps) >= 2  # more than one weight step ran, and only one warning came


# ---- a warning logged while a progress bar is drawn ------------------------------------------------------------

_BAR_SCRIPT = textwrap.dedent("""
    import logging, sys, time
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    to_file = logging.StreamHandler(open(sys.argv[1], "w"))
    logging.getLogger().addHandler(to_file)
    from automl.train.progress import Reporter
    r = Reporter(None)
    assert r.tty
    with r.epoch("weights", 0, 1, 4) as update:
        for step in range(4):
            update(step + 1, loss=1.5)
            time.sleep(0.15)
            if step == 1:
                logging.getLogger("automl.x").warning("warning: mid-epoch")
    handler = logging.getLogger().handlers[0]
    print("stream restored", handler.stream is sys.stderr, to_file.stream.name == sys.argv[1])
""")


def _run_in_terminal(argv: list[str], timeout: float = 120) -> str:
    """What ``argv`` writes to a pseudo-terminal (its stdout and stderr)."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    out = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        proc.wait(timeout=timeout)
    return out.decode("utf-8", "replace")


def test_a_warning_logged_during_a_progress_bar_gets_a_line_of_its_own(tmp_path):
    """On a terminal, a warning logged mid-epoch is printed above the bar (after the bar's line is erased), not
    appended to the bar's line, which would stay on the screen; the handlers get their streams back after it,
    and a handler writing to a file keeps writing plain lines there."""
    log = tmp_path / "log.txt"
    out = _run_in_terminal([sys.executable, "-c", _BAR_SCRIPT, str(log)])
    assert "warning: mid-epoch" in out, out
    assert re.search(r"(\x1b\[2K|\n)warning: mid-epoch", out), repr(out)
    assert not re.search(r"loss 1\.5 [^\r\n]*warning: mid-epoch", out), repr(out)
    assert "stream restored True True" in out, out
    assert log.read_text() == "warning: mid-epoch\n"


# ---- the progress bar's ETA when logged points are far apart ---------------------------------------------------

def test_the_bars_eta_shows_when_logged_points_are_more_than_30_seconds_apart(monkeypatch):
    """Slow steps (or a large search.log_every) put the bar's updates more than 30 s apart; the ETA is then the
    epoch's speed since the first update, not "-:--:--" (rich's default averages the last 30 s only, which
    then hold one update and so no speed) for the whole epoch."""
    now = [0.0]
    made = []

    class Recorded(progress_mod.Progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, get_time=lambda: now[0], auto_refresh=False, **kwargs)
            made.append(self)

    monkeypatch.setattr(progress_mod, "Progress", Recorded)
    reporter = progress_mod.Reporter(None, tty=True)
    with reporter.epoch("weights", 0, 1, 1000) as update:
        for step in (50, 100, 150):  # 50 steps every 40 s: 0.8 s a step
            now[0] += 40.0
            update(step, loss=1.0)
        task = made[0].tasks[0]
        assert task.time_remaining == pytest.approx((1000 - 150) * 0.8)
