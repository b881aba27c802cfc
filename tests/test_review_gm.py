"""Review GM: ranking.py's parallel stability runs, its --one-se study, family_budgets.py's budget column.

1. ``ranking.py --jobs N``: a stability run that fails stops the runs still going as Ctrl-C does (passed on once,
   each saves a checkpoint and exits), then the script ends with the failure's message and exit code, where it
   waited for every other run to end on its own (and, the runs being read in order, reported an earlier run's
   problem instead of the failure).
2. ``ranking.py --one-se RUN,...``: a damaged results.json is refused before any run's recipe, data or supernet is
   loaded (was: after the first run's whole study).
3. ``family_budgets.py``: a budget of 0 (a cost metric whose cheapest network costs 0: automl accepts a budget
   down to the cheapest architecture's cost) is a budget, not "unconstrained", as automl's report says it.

No test here trains: the run folders are written by hand and ``run_child`` is replaced (the run that is stopped is
a small Python process that sleeps until it gets SIGINT)."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _common  # noqa: E402
import family_budgets  # noqa: E402
import ranking  # noqa: E402

from automl.errors import UserError  # noqa: E402


def _arch(**kw) -> dict:
    return {"params": 1000, "cost": 1000.0, "budget": None, "epsilon": 0.0, "test_accuracy": 0.9,
            "choices": ["a"], **kw}


def _results(**kw) -> dict:
    return {"search_seconds": 2.0, "architectures": [_arch()], **kw}


def _no_run(*a, **k):
    pytest.fail("a run was started")


def _exit(capsys, call) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        call()
    out, err = capsys.readouterr()
    return e.value.code, out, err


# ---- 1. --jobs N: a failure stops the runs still going -------------------------------------------------------------

# an automl run that would go on until it is stopped: SIGINT (once) makes it record "stopped" and exit 130, as
# automl run exits after its checkpoint; left alone it records "finished" after a while and exits 0
SLEEPER = """
import signal, sys, time
from pathlib import Path
marker = Path(sys.argv[1])
def stop(signum, frame):
    marker.write_text("stopped")
    sys.exit(130)
signal.signal(signal.SIGINT, stop)
Path(sys.argv[2]).write_text("ready")
time.sleep(20)
marker.write_text("finished")
"""


def _wait_for(path: Path) -> None:
    for _ in range(3000):  # the sleeper's start (a Python start-up); not an assert: the test then goes on
        if path.exists():
            return
        time.sleep(0.01)


@pytest.mark.parametrize("going, failing", [(1, 2), (2, 1)])  # the run going on read before the failure, or after
def test_a_failed_stability_run_stops_the_others(monkeypatch, capsys, tmp_path, going, failing):
    out, marker, ready = tmp_path / "rk", tmp_path / "marker", tmp_path / "ready"
    started = []
    monkeypatch.setattr(_common, "_STOPPING", threading.Event())  # the stop is this test's alone

    def fake_run_child(cmd, env=None, stdout=None, stderr=None, timeout=None):
        folder = Path(cmd[cmd.index("--out") + 1]).name
        started.append(folder)
        if f"-t{going}-" in folder:  # the run that goes on: a real child process, in run_child's care
            return _common.run_child([sys.executable, "-c", SLEEPER, str(marker), str(ready)], env, stdout, stderr)
        _wait_for(ready)  # fails while the other runs (its SIGINT handler set)
        stdout.write("error: search.lam: must be >= 0 (recipe.yaml line 3)\n")
        return 2

    monkeypatch.setattr(ranking, "run_child", fake_run_child)
    monkeypatch.setattr(sys, "argv", ["ranking.py"])
    argv = ["--out", str(out), "--no-tau", "--methods", "separate", "--stability-seeds", "0", "--jobs", "2"]
    code, _, err = _exit(capsys, lambda: ranking.run_main(ranking.main, argv))
    # was: the script waited for the other run to end on its own (then, that run read first, named its missing
    # results.json; read after, at exit, once it had printed the failure)
    assert marker.exists() and marker.read_text() == "stopped", err
    assert code == 2 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert f"stab-separate-t{failing}-s0" in last and "failed (exit 2)" in last, err
    assert "search.lam: must be >= 0" in last, err
    assert "SIGINT passed on" in err and "killed" not in err, err
    assert sorted(started) == ["stab-separate-t1-s0", "stab-separate-t2-s0"]


def test_no_stability_run_is_started_after_a_failure(monkeypatch, capsys, tmp_path):
    """One job: the first run fails, the three after it are not started; the script ends with its failure."""
    started = []
    monkeypatch.setattr(_common, "_STOPPING", threading.Event())

    def fake_run_child(cmd, env=None, stdout=None, stderr=None, timeout=None):
        started.append(Path(cmd[cmd.index("--out") + 1]).name)
        return 1

    monkeypatch.setattr(ranking, "run_child", fake_run_child)
    monkeypatch.setattr(sys, "argv", ["ranking.py"])
    argv = ["--out", str(tmp_path / "rk"), "--no-tau", "--methods", "separate", "--stability-seeds", "0,1"]
    code, _, err = _exit(capsys, lambda: ranking.run_main(ranking.main, argv))
    assert code == 1 and started == ["stab-separate-t1-s0"] and "stab-separate-t1-s0" in err, err


# ---- 2. --one-se: results.json before anything is loaded -----------------------------------------------------------


def _run_folder(path: Path, results: str) -> Path:
    path.mkdir(parents=True)
    (path / "results.json").write_text(results)
    (path / "recipe.resolved.yaml").write_text("name: x\n")
    return path


def _no_load(*a, **k):
    pytest.fail("a run's recipe or workspace was loaded before its results.json was checked")


@pytest.fixture
def no_loading(monkeypatch):
    monkeypatch.setattr(ranking, "load_recipe", _no_load)
    monkeypatch.setattr(ranking, "open_workspace", _no_load)


@pytest.mark.parametrize("text, words", [
    ('{"architectures": [{"choi', "not JSON ("),
    (json.dumps({"architectures": [{"params": 3}]}), "architectures[0].choices: missing"),
    (json.dumps({"architectures": []}), "architectures: [] is not a list of at least one"),
])
def test_one_se_reads_results_json_first(no_loading, tmp_path, text, words):
    run = _run_folder(tmp_path / "run", text)
    with pytest.raises(UserError) as e:
        ranking.one_se(run, 1.0)
    assert str(run / "results.json") in e.value.text() and words in e.value.text()


def test_one_se_refuses_a_damaged_run_before_any_study(no_loading, monkeypatch, capsys, tmp_path):
    """The second run's results.json is damaged: refused before the first run's study (its supernet loaded)."""
    good = _run_folder(tmp_path / "good", json.dumps(_results()))
    bad = _run_folder(tmp_path / "bad", json.dumps({"architectures": [{"choices": "a"}]}))
    monkeypatch.setattr(sys, "argv", ["ranking.py"])
    code, _, err = _exit(capsys, lambda: ranking.run_main(ranking.main, ["--one-se", f"{good},{bad}"]))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert str(bad / "results.json") in err and "architectures[0].choices" in err, err


# ---- 3. family_budgets.py: a budget of 0 ---------------------------------------------------------------------------


def _family_table(monkeypatch, capsys, tmp_path, members: list[dict]) -> tuple[list[list[str]], str]:
    """family_budgets.py's table rows (split into words) and its whole output, for one reused run of
    ``members``."""
    run = tmp_path / "fb" / "importance_sampling-s0"
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps(_results(architectures=members)))
    monkeypatch.setattr(sys, "argv", ["family_budgets.py", "--out", str(tmp_path / "fb"), "--seeds", "0",
                                      "--methods", "importance_sampling"])
    monkeypatch.setattr(family_budgets, "run_child", _no_run)
    code, out, _ = _exit(capsys, lambda: family_budgets.run_main(family_budgets.main))
    assert not code
    return [line.split() for line in out.splitlines() if line.split()[:2] == ["0", "importance_sampling"]], out


def test_family_budgets_shows_a_budget_of_0(monkeypatch, capsys, tmp_path):
    table, out = _family_table(monkeypatch, capsys, tmp_path, [_arch(budget=0.0, cost=0.0), _arch(budget=None)])
    assert [row[2:4] for row in table] == [["0", "0.0"], ["1", "unconstrained"]], out
    assert table[0][6] == "—" and json.loads(out.strip().splitlines()[-1])["rows"][0]["budget"] == 0.0


def test_family_budgets_shows_no_epsilon_as_none(monkeypatch, capsys, tmp_path):
    """A member with no ε recorded (null) was shown as 0.000, an ε of 0."""
    table, out = _family_table(monkeypatch, capsys, tmp_path, [_arch(epsilon=None), _arch(epsilon=0.0)])
    assert [row[4] for row in table] == ["—", "0.000"], out
