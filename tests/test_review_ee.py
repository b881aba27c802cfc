"""Review EE: ``automl run``'s exit around a signal at the very start and the very end.

1. A finished run ignores SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 while Python exits (unloading torch takes
   seconds): the process exits 0, as its results are complete, where the signal's default ended it with 128 + the
   signal and no word (a requeueing script took the finished run for a stopped one).
2. A signal during the start-up of a run into a ``--out`` folder that did not exist says nothing was removed: only
   a ``runs/`` folder the command chose itself is removed.
3. ``automl space check`` says "1 decision", not "1 decisions".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_review_e import QUICK, ROOT, TINY, _stop_at

from automl.cli import main

# `automl run` in a child process whose last exit function (registered before the run, so it runs after every
# one the run registers) sends the child SIGNAL and gives it time to act on it: the window in which Python
# unloads the modules, where a real signal to a finished run arrives
AT_EXIT = """
import atexit, os, signal, sys, time
sig = getattr(signal, sys.argv[1])
atexit.register(lambda: (os.kill(os.getpid(), sig), time.sleep(0.5)))
from automl.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _signal_at_exit(cwd: Path, signame: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OMP_NUM_THREADS", None)

    def dispositions():  # as an interactive shell starts a command
        for sig in (signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)

    return subprocess.run([sys.executable, "-c", AT_EXIT, signame, "run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=dispositions)


@pytest.mark.parametrize("signame", ["SIGTERM", pytest.param("SIGINT", marks=pytest.mark.heavy)])
def test_a_signal_while_a_finished_run_exits_leaves_exit_code_0(tmp_path, signame):
    done = _signal_at_exit(tmp_path, signame, QUICK, *TINY, "--out", str(tmp_path / "run"))
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert (tmp_path / "run" / "results.json").is_file() and "Traceback" not in done.stderr


def test_only_a_finished_run_ignores_a_signal_at_exit(tmp_path):
    """A run that ends in a user error leaves the signals as they were: the child's own SIGTERM at exit ends it."""
    done = _signal_at_exit(tmp_path, "SIGTERM", QUICK, *TINY, "search.lam=nope")
    assert done.returncode == -signal.SIGTERM and "search.lam" in done.stderr, done.stderr


def test_a_signal_during_start_up_into_a_new_out_folder_removes_nothing(tmp_path):
    out = tmp_path / "mine"
    done = _stop_at(tmp_path, "SIGTERM", "__init__", QUICK, *TINY, "--out", str(out))  # before it makes the folder
    assert done.returncode == 143, done.stderr
    assert "before its first checkpoint: nothing to resume; start the run again" in done.stderr, done.stderr
    assert "removed" not in done.stderr, done.stderr


def test_a_signal_during_start_up_into_a_chosen_folder_says_it_was_removed(tmp_path):
    done = _stop_at(tmp_path, "SIGTERM", "build_data", QUICK, *TINY)
    assert done.returncode == 143 and "removed)" in done.stderr and not (tmp_path / "runs").exists(), done.stderr


def test_space_check_counts_one_decision_in_the_singular(tmp_path, capsys):
    space = tmp_path / "one.space"
    space.write_text("space one\ninput 1 x 8 x 8\nclasses 10\nchoices block = ir_k3_e1, ir_k3_e3\n\nnetwork\n"
                     "  stem width 16\n  stage s1 width 24 repeat 1 choose block\n  head width 32\nend\n")
    assert main(["space", "check", str(space)]) == 0
    out = capsys.readouterr().out
    assert ", 1 decision, " in out, out


OPEN_NETWORK = ("space t\ninput 1 x 8 x 8\nclasses 10\nchoices block = ir_k3_e1, ir_k3_e3\n\nnetwork\n  stem width 16\n"
                "  stage s1 width 24 repeat 1 choose block\n  head width 32\n\n")


@pytest.mark.parametrize("after, says", [
    ("cell normal\n  inputs a, b\n  node n1 = conv3x3(a)\n  output n1\nend\n",
     "did you mean 'cells'? If not, the `network` block of line 6 has no `end`: add `end` before line 11"),
    ("metric layers\n  default = 1\nend\n", "; the `network` block of line 6 has no `end`: add `end` before line 11"),
])
def test_a_top_level_statement_after_an_open_network_block_says_where_its_end_goes(tmp_path, capsys, after, says):
    space = tmp_path / "open.space"
    space.write_text(OPEN_NETWORK + after)
    assert main(["space", "check", str(space)]) == 2
    err = capsys.readouterr().err
    assert f"{space}:11:1: " in err and says in err, err
