"""Review BJ: the benchmark scripts' files, JSON lines and budget.

* ranking.py's truth study writes its per-seed file atomically, and a file it cannot read (cut short by a kill or
  a full disk) is computed again, said on stderr, instead of a JSONDecodeError traceback.
* Every script's JSON line is strict JSON (a NaN τ is ``null``) and records the machine (its thread count).
* search_cost.py labels its untimed warm-up run apart from the timed ones.
* family_budgets.py checks the recipe and its --set overrides before its first run.
* gpu_check.sh skips a step the budget left cannot hold (its NEED) without starting it.

Each test runs a script's own code in this process (or gpu_check.sh with a stand-in for python3), its runs and
measurements replaced by stand-ins: none measures anything."""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _common  # noqa: E402
import family_budgets  # noqa: E402
import ranking  # noqa: E402


def _strict(line: str):
    """``line`` parsed as strict JSON (no NaN, Infinity)."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(line, parse_constant=refuse)


# ---------------------------------------------------------------------------------------- ranking.py's truth study


class _Workspace:
    def ranking_archs(self):
        return ["a", "b", "c"]


@pytest.fixture
def fake_study(monkeypatch):
    """truth_study with its retrainings replaced: architecture j on seed s scores 0.5 + 0.1 j + 0.01 s; the
    seeds retrained are recorded."""
    retrained = []

    def retrain(ws, arch, seed, j, epochs):
        retrained.append(seed)
        return {"params": 10 + j, "test_accuracy": 0.5 + 0.1 * j + 0.01 * seed, "test_loss": 1.0 - 0.1 * j}

    monkeypatch.setattr(ranking, "load_recipe", lambda *a, **k: None)
    monkeypatch.setattr(ranking, "open_workspace", lambda r: _Workspace())
    monkeypatch.setattr(ranking, "_retrain_once", retrain)
    return retrained


def test_truth_study_recomputes_a_truncated_file(fake_study, tmp_path, capsys):
    # was: json.decoder.JSONDecodeError: Unterminated string ... (a traceback) on every later run
    ranking.truth_study("r.yaml", [], tmp_path, 3, [0, 1], 2)  # both seeds retrained and written
    assert fake_study == [0] * 3 + [1] * 3
    whole = (tmp_path / "truth-study-e2-s1.json").read_text()
    cut = tmp_path / "truth-study-e2-s0.json"
    cut.write_text(cut.read_text()[:25])  # a kill in the middle of a plain write
    fake_study.clear()
    capsys.readouterr()
    res = ranking.truth_study("r.yaml", [], tmp_path, 3, [0, 1], 2)
    assert fake_study == [0] * 3  # seed 0 again, seed 1 reused
    err = capsys.readouterr().err
    assert str(cut) in err and "not JSON" in err and "computing it again" in err, err
    assert len(json.loads(cut.read_text())) == 3 and (tmp_path / "truth-study-e2-s1.json").read_text() == whole
    assert res["accuracy"] == [[0.5, 0.6, 0.7], [0.51, 0.61, 0.71]]


def test_truth_study_recomputes_a_file_of_other_archs(fake_study, tmp_path, capsys):
    # a file from an earlier --archs has the same name: its rows are not these K architectures
    (tmp_path / "truth-study-e2-s0.json").write_text(json.dumps([{"test_accuracy": 0.1, "test_loss": 1.0}] * 5))
    res = ranking.truth_study("r.yaml", [], tmp_path, 3, [0], 2)
    assert fake_study == [0] * 3 and res["accuracy"] == [[0.5, 0.6, 0.7]]
    assert "holds 5 architectures, not --archs 3" in capsys.readouterr().err


def test_truth_study_reuses_a_whole_file(fake_study, tmp_path, capsys):
    rows = [{"params": 1, "test_accuracy": a, "test_loss": 1 - a} for a in (0.3, 0.2, 0.1)]
    (tmp_path / "truth-study-e2-s0.json").write_text(json.dumps(rows))
    res = ranking.truth_study("r.yaml", [], tmp_path, 3, [0], 2)
    assert fake_study == [] and res["accuracy"] == [[0.3, 0.2, 0.1]]
    assert capsys.readouterr().err == ""


def test_an_interrupted_write_leaves_the_old_file_whole(monkeypatch, tmp_path):
    path = tmp_path / "truth-study-e2-s0.json"
    path.write_text("[1, 2]")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_common.os, "fsync", full_disk)
    with pytest.raises(OSError):
        _common.atomic_write_text(path, "[1, 2, 3]")
    assert path.read_text() == "[1, 2]" and os.listdir(tmp_path) == [path.name]  # no temporary left either
    monkeypatch.undo()
    _common.atomic_write_text(path, "[1, 2, 3]")
    assert path.read_text() == "[1, 2, 3]" and os.listdir(tmp_path) == [path.name]


# ---------------------------------------------------------------------------------------- the JSON lines


def test_emit_writes_nan_and_inf_as_null(capsys):
    # was: "tau": NaN (every truth accuracy equal), which a strict JSON reader refuses
    _common.emit("ranking_tau", [{"option": "uniform", "tau": float("nan")}],
                 retrain_noise_tau=float("inf"), truth_seed0=[0.9, float("-inf")], nested={"x": (float("nan"), 1.5)})
    out = capsys.readouterr().out.splitlines()
    line = _strict(out[-1])
    assert line["rows"] == [{"option": "uniform", "tau": None}]
    assert line["retrain_noise_tau"] is None and line["truth_seed0"] == [0.9, None]
    assert line["nested"] == {"x": [None, 1.5]}
    assert "nan" in out[1]  # the human table shows what was measured


def test_engine_speed_line_records_the_machine(monkeypatch, capsys):
    import engine_speed

    row = {"N": 8, "D": 21, "K": 7, "lam": 8, "device": "cpu", "importance_sampling": True, "sync_free": False,
           "utility": "paper", "budgets": False, "context_combinations": None, "median_ms": 0.2, "p90_ms": 0.3}
    monkeypatch.setattr(engine_speed, "time_engine", lambda **k: dict(row))
    monkeypatch.setattr(sys, "argv", ["engine_speed.py", "--iters", "1", "--warmup", "0"])
    before = torch.get_num_threads()
    try:
        engine_speed.main()
        line = _strict(capsys.readouterr().out.splitlines()[-1])
        assert line["benchmark"] == "engine_speed" and line["results"][0]["median_ms"] == 0.2
        assert line["machine"] == _common.machine() and "1 thread," in line["machine"]  # main sets one thread
    finally:
        torch.set_num_threads(before)


def test_export_latency_line_records_the_machine(monkeypatch, capsys, tmp_path):
    import export_latency

    def bench_dir(folder, threads, runs):
        ms, img = {"median": 1.0, "p95": 2.0}, {"median": 30.0, "p95": 20.0}
        return {"dir": str(folder), "params": 5, "input_shape": [3, 8, 8], "choices": [],
                "torch_b1_ms": ms, "onnxruntime_b1_ms": ms, "torch_b32_img_s": img, "onnxruntime_b32_img_s": img}

    monkeypatch.setattr(export_latency, "export_random", lambda out, *a: [out / "random-0"])
    monkeypatch.setattr(export_latency, "bench_dir", bench_dir)
    before = torch.get_num_threads()
    try:
        assert export_latency.main(["--threads", "2"]) == 0
        line = _strict(capsys.readouterr().out.splitlines()[-1])
        assert line["benchmark"] == "export_latency" and line["threads"] == 2
        assert "2 threads," in line["machine"], line["machine"]
        assert line["results"][0]["dir"] == "(temporary)/random-0"
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------- search_cost.py


def test_search_cost_labels_its_untimed_warm_up(monkeypatch, capsys):
    import search_cost

    calls = []

    def search_run(recipe, overrides):
        calls.append(overrides)
        print("results: /tmp/x/run/results.json  report: /tmp/x/run/report.md")  # what every run prints
        return {"architectures": [{"params": 10}], "search_seconds": 2.0, "iterations": 4,
                "phase_seconds": {"weights": 1.0, "theta": 1.0}, "threads": {"threads": 1}}

    monkeypatch.setattr(search_cost, "search_run", search_run)
    search_cost.main(["--no-sweep", "--repeat", "2"])
    lines = capsys.readouterr().out.splitlines()
    heads = [lines[i - 1] for i, x in enumerate(lines) if x.startswith("results: ")]
    assert len(heads) == 7 == len(calls)
    assert "warm-up" in heads[0] and "untimed" in heads[0] and "search.weight_epochs=1" in calls[0]
    assert heads[1:] == [f"== timed run: {m}, repeat {r} of 2" for r in (1, 2)
                         for m in ("importance_sampling", "separate", "simultaneous")]


# ---------------------------------------------------------------------------------------- family_budgets.py


@pytest.mark.parametrize("args,words", [(["--set", "search.bogus=1"], ["search.bogus", "unknown key"]),
                                        (["--recipe", "nope.yaml"], ["nope.yaml", "no such recipe"])],
                         ids=["bad_set", "no_recipe"])
def test_family_budgets_checks_the_recipe_before_the_first_run(monkeypatch, capsys, tmp_path, args, words):
    # was: "$ python -m automl run ..." started, printed its own error, then a second line "... failed (exit 2)"
    monkeypatch.setattr(sys, "argv", ["family_budgets.py", "--out", str(tmp_path / "fb"), "--seeds", "0", *args])
    monkeypatch.setattr(family_budgets, "run_child", lambda *a, **k: pytest.fail("a run started"))
    with pytest.raises(SystemExit) as e:
        family_budgets.run_main(family_budgets.main)
    assert e.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert all(w in err for w in words), err


def test_family_budgets_reports_a_run_that_exits_2_as_one_line(monkeypatch, capsys, tmp_path):
    # what test_benchmarks_cli's heavy test of this covered with search.bogus=1, which the check above now
    # refuses before any run: a run that passes the check and then exits 2 (e.g. its data) is one line
    monkeypatch.setattr(sys, "argv", ["family_budgets.py", "--out", str(tmp_path / "fb"), "--seeds", "0"])
    monkeypatch.setattr(family_budgets, "run_child", lambda cmd, **k: 2)
    with pytest.raises(SystemExit) as e:
        family_budgets.run_main(family_budgets.main)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1, err
    assert "automl run" in err[0] and "exit 2" in err[0], err


def test_family_budgets_checks_the_recipe_with_each_method(monkeypatch, tmp_path):
    # the run sets search.method=M before the --set overrides: the check sees what each run will
    seen = []
    monkeypatch.setattr(family_budgets, "load_recipe", lambda recipe, ov: seen.append(ov))
    monkeypatch.setattr(sys, "argv", ["family_budgets.py", "--out", str(tmp_path), "--seeds", "0",
                                      "--methods", "separate,random", "--set", "seed=3"])
    monkeypatch.setattr(family_budgets, "run_child", lambda *a, **k: pytest.fail("a run started"))
    with pytest.raises(pytest.fail.Exception, match="a run started"):
        family_budgets.main()
    assert seen == [["search.method=separate", "seed=3"], ["search.method=random", "seed=3"]]


# ---------------------------------------------------------------------------------------- gpu_check.sh


FAKE_PY = """#!/bin/sh
case "$*" in
  *"torch.cuda.is_available()"*) echo True; exit 0 ;;
esac
echo "$*" >>"{calls}"
exit 0
"""


def _gpu_check(tmp_path: Path, budget: str) -> tuple[subprocess.CompletedProcess, list[str], str]:
    fake = tmp_path / "python3"
    fake.write_text(FAKE_PY.replace("{calls}", str(tmp_path / "calls")))
    fake.chmod(0o755)
    env = dict(os.environ, OUT=str(tmp_path / "gpu"), PY=str(fake), BUDGET=budget, PYTHONPATH=str(ROOT))
    r = subprocess.run(["bash", str(BENCH / "gpu_check.sh")], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60, env=env)
    return r, (tmp_path / "gpu" / "summary.txt").read_text().splitlines(), (tmp_path / "calls").read_text()


def _needs() -> dict[str, tuple[int, int]]:
    """gpu_check.sh's steps: name -> (NEED, LIMIT)."""
    text = (BENCH / "gpu_check.sh").read_text().replace("\\\n", " ")
    out = {}
    for line in text.splitlines():
        if line.startswith("step "):
            words = shlex.split(line, comments=True)
            out[words[1]] = (int(words[2]), int(words[3]))
    return out


def test_gpu_check_skips_a_step_the_budget_left_cannot_hold(tmp_path):
    # was: the quickstart (196 s on the H200) started with its limit cut to the 150 s left: a sure failure
    # that spent them all
    needs = _needs()
    assert needs["quickstart"][0] > 150 >= max(n for name, (n, _) in needs.items() if name != "quickstart")
    r, summary, calls = _gpu_check(tmp_path, "150")
    assert r.returncode == 1
    assert f"quickstart skipped: not enough budget left (needs {needs['quickstart'][0]} s)" in summary, summary
    assert "automl run" not in calls and "search_cost.py" in calls  # skipped: not even started
    # fits, its limit cut to what is left: 150 s less the seconds the stand-in steps before it took (0-2 s)
    cut = re.search(r"^search_cost done in \d+ s \(limit (\d+)\)$", "\n".join(summary), re.M)
    assert cut and 140 <= int(cut[1]) <= 150, summary


def test_gpu_check_needs_are_within_their_limits():
    needs = _needs()
    assert {"tests", "engine_speed", "scaling", "search_cost", "quickstart"} <= set(needs), needs
    assert all(20 <= need <= limit for need, limit in needs.values()), needs


@pytest.mark.heavy  # the step's limit is 5 s, and the kill comes 10 s after it
def test_gpu_check_kills_a_step_that_ignores_its_time_limit_with_needs(tmp_path):
    # test_review_be's version gives BUDGET=20, which no longer starts the tests step (it needs 100 s): here
    # the script itself, with the tests step's NEED and LIMIT lowered to 5 s
    text = (BENCH / "gpu_check.sh").read_text()
    script = tmp_path / "gpu_check.sh"
    script.write_text(re.sub(r"^step tests \d+ \d+ ", "step tests 5 5 ", text, flags=re.M))
    fake = tmp_path / "python3"
    fake.write_text('#!/bin/sh\ncase "$*" in *"torch.cuda.is_available()"*) echo True; exit 0 ;; esac\n'
                    'case "$*" in *"-m pytest"*) trap "" TERM; sleep 40 ;; esac\nexit 0\n')
    fake.chmod(0o755)
    r = subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=35,
                       env=dict(os.environ, OUT=str(tmp_path / "gpu"), PY=str(fake), BUDGET="25"))
    summary = (tmp_path / "gpu" / "summary.txt").read_text()
    assert r.returncode == 1 and "tests FAILED rc=137 (time limit)" in summary, summary
