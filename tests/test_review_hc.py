"""Review HC: ranking.py's parallel stability runs and Ctrl-C, its --truth run read once, run_main called twice,
the benchmarks' atomic write.

1. ``ranking.py --jobs N``, Ctrl-C while the runs go on: each run is passed SIGINT once (automl run exits at once,
   without its checkpoint, at a second one), and the runs stopped by it are no "failed stability run"; a failed
   run stops the others with the wait in the main thread, so that Ctrl-C during that wait kills them now and
   ends the script as Ctrl-C does (exit 130, its line), where it went on waiting in a worker thread and exited 2;
   the line that says a run failed names it, and the wait's says "Ctrl-C to kill now" (not "again").
2. ``ranking.py --truth RUN``: the run's results.json is read once, its ranking checked once.
3. ``_common.run_main`` called again in one process after a stop starts its children (was: each refused at once,
   "stopped by Ctrl-C" without a Ctrl-C).
4. ``_common.atomic_write_text`` (the truth study's files) gives a file the mode a plain ``open()`` does (was
   0o600, ``tempfile.mkstemp``'s), as automl's own atomic writes.

No test here trains: ``run_child`` is replaced, and the runs going on are small Python processes that trap
SIGINT."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _common  # noqa: E402
import ranking  # noqa: E402
from test_review_fk import _gone  # noqa: E402

# a run going on, in a session of its own as run_child starts it: it writes its pid to READY once its SIGINT
# handler is set, and appends a line to GOT at each SIGINT. "quick" then exits 130 at once (automl run after its
# checkpoint); "slow" exits 130 three seconds after the first (a checkpoint being written; a second SIGINT is
# only recorded); "stubborn" goes on (a long checkpoint): only SIGKILL ends it
CHILD = textwrap.dedent("""
    import os, signal, sys, time
    ready, got, how = sys.argv[1], sys.argv[2], sys.argv[3]
    seen = []
    def stop(signum, frame):
        with open(got, "a") as f:
            f.write("SIGINT\\n")
        seen.append(signum)
        if how == "quick":
            sys.exit(130)
        if how == "slow" and len(seen) == 1:
            time.sleep(3.0)
            sys.exit(130)
    signal.signal(signal.SIGINT, stop)
    with open(ready + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(ready + ".tmp", ready)
    time.sleep(120)
    """)

ARGV = ["--no-tau", "--methods", "separate", "--stability-seeds", "0", "--jobs", "2"]  # runs t1 and t2 at once


@pytest.fixture
def stop_state(monkeypatch):
    """A stop of this test's own (a stop would refuse every later child of this process), in ranking.py."""
    monkeypatch.setattr(_common, "_STOPPING", threading.Event())
    monkeypatch.setattr(_common, "_CHILDREN", set())
    monkeypatch.setattr(sys, "argv", ["ranking.py"])


def _fake_runs(monkeypatch, tmp_path: Path, how: dict[int, str]) -> None:
    """ranking.run_child replaced: the stability run of ``t{threads}`` is a :data:`CHILD` that behaves as
    ``how[threads]`` says, or "fail": exits 2 (a recipe mistake) once the others are ready."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)

    def fake_run_child(cmd, env=None, stdout=None, stderr=None, timeout=None):
        threads = int(Path(cmd[cmd.index("--out") + 1]).name.split("-t")[1].split("-")[0])
        if how[threads] != "fail":
            ready, got = tmp_path / f"t{threads}.ready", tmp_path / f"t{threads}.got"
            child = [sys.executable, str(script), str(ready), str(got), how[threads]]
            return _common.run_child(child, env, stdout, stderr)
        others = [t for t in how if how[t] != "fail"]
        _wait_for(lambda: all((tmp_path / f"t{t}.ready").exists() for t in others))
        stdout.write("error: search.lam: must be >= 0 (recipe.yaml line 3)\n")
        return 2

    monkeypatch.setattr(ranking, "run_child", fake_run_child)


def _wait_for(ready) -> bool:
    deadline = time.monotonic() + 60  # Python start-ups; not an assert: the test then goes on
    while not ready():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _ctrl_c_when(ready) -> None:
    """SIGINT to this process (a Ctrl-C at the terminal reaches the script alone) once ``ready()``."""

    def send():
        if _wait_for(ready):  # else the test fails on its own; a SIGINT now would stop pytest
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=send, daemon=True).start()


def _main(capsys, tmp_path) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as e:
        ranking.run_main(ranking.main, ["--out", str(tmp_path / "rk"), *ARGV])
    return e.value.code, capsys.readouterr().err.strip().splitlines()


STOPPED = "ranking.py: stopped by Ctrl-C (SIGINT): what it had not printed was not measured"


def test_ctrl_c_reaches_each_run_once(monkeypatch, capsys, tmp_path, stop_state):
    """t1 stops at once, t2 takes three seconds: t1's end was a "failed" run that passed SIGINT on again, and
    automl run exits at once at a second SIGINT, without its checkpoint."""
    _fake_runs(monkeypatch, tmp_path, {1: "quick", 2: "slow"})
    _ctrl_c_when(lambda: all((tmp_path / f"t{t}.ready").exists() for t in (1, 2)))
    code, err = _main(capsys, tmp_path)
    assert code == 130 and err[-1] == STOPPED, err
    assert (tmp_path / "t2.got").read_text() == "SIGINT\n", err  # was: SIGINT twice
    assert not any("stability run" in line and "failed" in line for line in err), err
    assert "Traceback" not in "\n".join(err)


def test_ctrl_c_while_a_failure_stops_the_others_kills_them_now(monkeypatch, capsys, tmp_path, stop_state):
    """t1 fails, t2 is passed SIGINT and goes on (a long checkpoint): Ctrl-C during the wait kills it now and the
    script ends as on Ctrl-C (was: the wait went on in a worker thread, which Ctrl-C does not reach, and the
    script exited 2, waiting for that thread at its exit)."""
    monkeypatch.setattr(_common, "STOP_WAIT", 10.0)  # bounds the wait the test leaves behind where it fails
    _fake_runs(monkeypatch, tmp_path, {1: "fail", 2: "stubborn"})
    _ctrl_c_when(lambda: (tmp_path / "t2.got").exists())
    code, err = _main(capsys, tmp_path)
    pid = int((tmp_path / "t2.ready").read_text())
    assert code == 130 and err[-1] == STOPPED, err
    assert _gone(pid), err  # killed before the script ends
    assert (tmp_path / "t2.got").read_text() == "SIGINT\n", err
    assert "stab-separate-t1-s0" in err[0] and "failed" in err[0], err  # which run failed is said
    assert err[1].endswith("Ctrl-C to kill now"), err  # was: "Ctrl-C again", where no Ctrl-C was given
    assert any(line.startswith("ranking.py: killed 1 child process") for line in err), err
    assert "Traceback" not in "\n".join(err)


def test_a_failure_stops_the_others_and_ends_with_its_error(monkeypatch, capsys, tmp_path, stop_state):
    """Without a Ctrl-C the failure is the script's end: its line last, exit 2; t2 was passed SIGINT once."""
    _fake_runs(monkeypatch, tmp_path, {1: "fail", 2: "slow"})
    code, err = _main(capsys, tmp_path)
    assert code == 2 and "stab-separate-t1-s0" in err[-1] and "search.lam: must be >= 0" in err[-1], err
    assert (tmp_path / "t2.got").read_text() == "SIGINT\n" and "killed" not in "\n".join(err), err


# ---- 2. --truth: read once ------------------------------------------------------------------------------------------


def test_the_truth_run_is_read_once(monkeypatch, capsys, tmp_path, stop_state):
    truth = tmp_path / "truth"
    truth.mkdir()
    archs = [{"choices": [str(j)], "params": 100 + j, "test_loss": 1.0 + j} for j in range(3)]
    (truth / "results.json").write_text(json.dumps({"ranking": {"archs": archs, "seeds": 2, "retrain_epochs": 5}}))
    option = tmp_path / "rk" / "option-uniform"
    option.mkdir(parents=True)
    scored = [{"choices": [str(j)], "supernet_loss": 1.0 + j, "supernet_loss_batch_stats": 1.0,
               "supernet_accuracy": 0.5} for j in range(3)]
    (option / "results.json").write_text(json.dumps({"phase_seconds": {"weights": 1.0}, "ranking": {"archs": scored}}))
    reads = []
    real = ranking.run_results

    def counted(folder, model, fix):
        reads.append(Path(folder))
        return real(folder, model, fix)

    monkeypatch.setattr(ranking, "run_results", counted)
    monkeypatch.setattr(ranking, "run_child", lambda *a, **k: pytest.fail("a run was started"))
    with pytest.raises(SystemExit) as e:
        ranking.run_main(ranking.main, ["--truth", str(truth), "--archs", "3", "--options", "uniform", "--no-signal",
                                        "--no-stability", "--out", str(tmp_path / "rk")])
    out = capsys.readouterr().out
    assert not e.value.code, out
    assert reads.count(truth) == 1, reads  # was: 3 (the check before any run, the truth, its parameters)
    line = json.loads(out.strip().splitlines()[-1])
    assert line["truth_seeds"] == 2 and line["params_tau"] == -1.0 and line["rows"][0]["tau"] == 1.0, line


# ---- 3. run_main twice in one process ------------------------------------------------------------------------------


def test_run_main_after_a_stop_starts_children_again(monkeypatch, capsys, tmp_path, stop_state):
    with pytest.raises(SystemExit) as e:
        _common.run_main(_common.stop_children)  # a script run that stopped (a failure with --jobs, Ctrl-C)
    assert not e.value.code
    made = tmp_path / "made"
    cmd = [sys.executable, "-c", f"open({str(made)!r}, 'w').close()"]
    with pytest.raises(SystemExit) as e:
        _common.run_main(lambda: _common.check_child(cmd, _common.run_child(cmd)))
    err = capsys.readouterr().err
    assert not e.value.code and made.exists(), err  # was: exit 130, "stopped by Ctrl-C (SIGINT)"


# ---- 1b. no run after a failure, with workers that take every queued run -------------------------------------------


class _EveryQueuedRun:
    """A pool whose workers take every queued run before the main thread sees the first failure (each run at
    once, as it is submitted), as ThreadPoolExecutor's may."""

    def __init__(self, jobs):
        pass

    def submit(self, fn, *args):
        future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001  (kept, as a worker's future keeps it)
            future.set_exception(e)
        return future

    def shutdown(self, **kw):
        pass


def test_no_stability_run_starts_after_one_failed(monkeypatch, capsys, tmp_path, stop_state):
    out = tmp_path / "rk"
    (out / "stab-separate-t1-s0").mkdir(parents=True)
    (out / "stab-separate-t1-s0" / "results.json").write_text("[]")  # the first run's results.json refused
    started = []
    monkeypatch.setattr(ranking, "run_child", lambda cmd, **k: started.append(cmd) or 1)
    monkeypatch.setattr(ranking, "ThreadPoolExecutor", _EveryQueuedRun)
    with pytest.raises(SystemExit) as e:
        ranking.run_main(ranking.main, ["--out", str(out), "--no-tau", "--methods", "separate",
                                        "--stability-seeds", "0"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "stab-separate-t1-s0" in err and started == [], (err, started)


# ---- 4. the benchmarks' atomic write: a plain open()'s mode --------------------------------------------------------


def test_atomic_write_text_gives_the_mode_of_a_plain_open(tmp_path):
    old = os.umask(0o022)
    try:
        _common.atomic_write_text(tmp_path / "written.json", "[]")
        with open(tmp_path / "plain.json", "w") as f:
            f.write("[]")
    finally:
        os.umask(old)
    mode = (tmp_path / "written.json").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain.json").stat().st_mode & 0o777 == 0o644, oct(mode)  # was: 0o600
    assert (tmp_path / "written.json").read_text() == "[]" and sorted(os.listdir(tmp_path)) == ["plain.json",
                                                                                             "written.json"]
