"""Review DW: the benchmark scripts' flags read as automl's own, and their means as automl's ranking takes them.

* Every integer flag of benchmarks/*.py reads a whole number as ``automl``'s integer flags do
  (:func:`automl.cli.whole_number`): ``1e1`` and ``10.0`` are 10; ``2.5`` and ``nan`` one line naming the flag,
  exit 2. No flag is left to argparse's ``int`` or ``float``.
* ranking.py averages an architecture's retrainings with :func:`automl.ranking.seed_mean` (the mean
  results.json records), not ``np.mean``: means equal in exact arithmetic tie in τ-b, as in ``automl rank``.
* Flags that ended in a traceback, a segfault or a meaningless figure are refused before any work: a thread
  count beyond automl's bound, ``--limit inf``, ``--sigma nan``, ``sep =evals`` with fewer iterations than
  members, a ``--retrain`` file that is not JSON, a study's option without its study.

Each test parses a script's flags in this process, or runs its own code with its retrainings replaced by
stand-ins; one runs a script as a user does. None measures anything."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import ranking  # noqa: E402
import search_quality  # noqa: E402

from automl.errors import UserError  # noqa: E402
from automl.ranking import kendall_tau_b, mean_over_seeds  # noqa: E402

SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py") if not p.stem.startswith("_"))


class _Parsed(Exception):
    pass


def parser_of(script: str) -> argparse.ArgumentParser:
    """The argument parser a script's ``main`` builds, caught as it parses (nothing after it runs)."""
    main = importlib.import_module(script).main
    got = []

    def caught(self, args=None, namespace=None):
        got.append(self)
        raise _Parsed

    with pytest.MonkeyPatch.context() as m:
        m.setattr(argparse.ArgumentParser, "parse_args", caught)
        with pytest.raises(_Parsed):
            main([]) if inspect.signature(main).parameters else main()
    return got[0]


def integer_flags(p: argparse.ArgumentParser) -> list[argparse.Action]:
    """The flags whose type reads ``7`` as 7 (or [7]: a list of them)."""
    out = []
    for action in p._actions:
        if action.option_strings and callable(action.type):
            try:
                seven = action.type("7")
            except (argparse.ArgumentTypeError, ValueError, TypeError):
                continue
            if seven == 7 and type(seven) is int or seven == [7]:
                out.append(action)
    return out


@pytest.fixture(scope="module")
def parsers():
    return {s: parser_of(s) for s in SCRIPTS}


def test_every_script_has_integer_flags_and_none_is_left_to_argparse_int_or_float(parsers):
    for script, p in parsers.items():
        types = {a.option_strings[-1]: a.type for a in p._actions if a.option_strings and a.type is not None}
        assert int not in types.values() and float not in types.values(), (script, types)
    assert sum(len(integer_flags(p)) for p in parsers.values()) >= 30


@pytest.mark.parametrize("text", ["1e1", "10.0", " 1e1 ", "100e-1"])
def test_every_integer_flag_reads_a_whole_number_as_automl_does(parsers, text):
    for script, p in parsers.items():
        for action in integer_flags(p):
            flag = action.option_strings[-1]
            want = getattr(p.parse_args([flag, "10"]), action.dest)
            got = getattr(p.parse_args([flag, text]), action.dest)
            assert got == want and want in (10, [10]), (script, flag, text, got)


@pytest.mark.parametrize("text, says", [("2.5", "(got '2.5'); give 2 or 3"), ("nan", "not a finite number"),
                                        ("ten", "not a number"), ("1e400", "at most 31 digits")])
def test_every_integer_flag_refuses_what_is_no_whole_number_in_one_line(parsers, capsys, text, says):
    for script, p in parsers.items():
        for action in integer_flags(p):
            flag = action.option_strings[-1]
            with pytest.raises(SystemExit) as e:
                p.parse_args([flag, text])
            err = capsys.readouterr().err
            assert e.value.code == 2 and err.count("\n") == 1, (script, flag, err)
            assert f"argument {'/'.join(action.option_strings)}: must be a whole number" in err, (script, err)
            assert says in err, (script, flag, err)


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


@pytest.mark.heavy  # a whole journey of subprocesses: 15 s
def test_what_a_user_sees(tmp_path):
    """A script run as a user runs it: 2.5 is one line and exit 2; 1e1 iterations are 10."""
    cmd = [sys.executable, str(BENCH / "search_quality.py"), "--seeds", "1", "--D", "2", "--K", "2", "--lam",
           "2", "--N", "2", "--modes", "eps", "--methods", "IS paper"]
    r = subprocess.run([*cmd, "--iters", "2.5"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and not r.stdout and "Traceback" not in r.stderr, r.stderr
    assert r.stderr == ("search_quality.py: error: argument --iters: must be a whole number (got '2.5'); give 2 "
                        "or 3 (see --help)\n")
    r = subprocess.run([*cmd, "--iters", "1e1"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["iters"] == 10


# ---------------------------------------------------------------------------------------- bounds and combinations


@pytest.mark.parametrize("script, args, says", [
    ("export_latency", ["--threads", "100000"], "at most 1,024"),  # was: torch.set_num_threads, then a segfault
    ("export_latency", ["--threads", "1e30"], "at most 1,024"),  # was: ValueError, a traceback
    ("ranking", ["--threads", "5000"], "at most 1,024"),
    ("threads", ["--limit", "inf"], "finite"),  # was: an OverflowError traceback at the first workload
    ("threads", ["--limit", "1e30"], "at most 1,000,000 seconds"),
    ("search_quality", ["--sigma", "nan"], "finite"),  # was: a table of figures from NaN losses
    ("search_quality", ["--sigma", "-1"], ">= 0"),
    ("search_quality", ["--budget-lr", "inf"], "finite"),
    ("export_latency", ["--seed", "1e20"], "-10^15 to 10^15"),  # was: accepted, then torch's ValueError
    ("latency_table", ["--seed", "2.5"], "give 2 or 3"),
    ("latency_table", ["--threads", "5000"], "at most 1,024"),
    ("latency_table", ["--batch", "1e12"], "at most 1,048,576"),  # was: accepted, then torch's allocation failed
    ("depthwise_grad", ["--batch", "1e12"], "at most 1,048,576"),
    ("engine_overhead", ["--batch", "1e12"], "at most 1,048,576"),  # every per-space benchmark's --batch
])
def test_a_flag_beyond_what_the_script_can_do_is_one_line(parsers, capsys, script, args, says):
    with pytest.raises(SystemExit) as e:
        parsers[script].parse_args(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and f"argument {args[0]}" in err and says in err, err


def test_sep_evals_with_fewer_iterations_than_members_is_refused(monkeypatch, capsys):
    """``--iters 4 --N 8``: 'sep =evals' gave each member 0 iterations and printed the figures of an engine that
    never searched."""
    monkeypatch.setattr(sys, "argv", ["search_quality.py", "--seeds", "1", "--D", "2", "--K", "2", "--lam", "2",
                                      "--iters", "4", "--N", "8", "--modes", "eps", "--methods", "sep =evals"])
    with pytest.raises(SystemExit) as e:
        search_quality.main()
    out = capsys.readouterr()
    assert e.value.code == 2 and not out.out and out.err.count("\n") == 1, out
    assert "--iters 4" in out.err and "--iters >= 8" in out.err, out.err


@pytest.fixture
def no_runs(monkeypatch):
    """ranking.py with every run and retraining replaced by a failure: a test passes only if none starts."""

    def started(*args, **kwargs):
        raise AssertionError("a run started")

    for name in ("automl_run", "truth_study", "retrain_named", "_retrain_once", "one_se", "theta_replay"):
        monkeypatch.setattr(ranking, name, started)


@pytest.mark.parametrize("args, says", [
    (["--truth-seeds", "0", "--retrain", "{spec}"], "not JSON"),  # was: a JSONDecodeError traceback
    (["--truth-seeds", "0", "--retrain", "{folder}"], "cannot be read"),
    (["--truth-seeds", "0", "--retrain", "{list}"], "must be a JSON object"),
    (["--retrain", "{good}"], "--retrain is an option of --truth-seeds"),  # was: the whole benchmark, no retrain
    (["--truth-epochs", "1"], "--truth-epochs is an option of --truth-seeds"),
    (["--costlier"], "--costlier is an option of --one-se"),
    (["--one-se", "{folder}", "--replay", "{folder}"], "--one-se and --replay are two studies"),
])
def test_ranking_refuses_a_study_flag_out_of_place_before_any_run(no_runs, tmp_path, args, says):
    (tmp_path / "spec.json").write_text("{not json")
    (tmp_path / "list.json").write_text('[["a", "b"]]')
    (tmp_path / "good.json").write_text('{"a": ["x"]}')
    names = {"spec": tmp_path / "spec.json", "list": tmp_path / "list.json", "good": tmp_path / "good.json",
             "folder": tmp_path}
    argv = [a.format(**names) for a in args]
    with pytest.raises(UserError) as e:
        ranking.main([*argv, "--out", str(tmp_path / "rk")])
    assert says in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert not (tmp_path / "rk").exists()


class _Search:
    def encode(self, choices):
        if "bad" in choices:
            raise UserError("decision d0: 'bad' is not a choice; the choices are x, y")
        return choices


class _Workspace:
    class spaces:
        search = _Search()


def test_retrain_checks_every_architecture_before_retraining_any(monkeypatch):
    """A misspelt choice in the second architecture was found after the first one's retraining."""
    retrained = []
    monkeypatch.setattr(ranking, "load_recipe", lambda *a, **k: None)
    monkeypatch.setattr(ranking, "open_workspace", lambda r: _Workspace())
    monkeypatch.setattr(ranking, "_retrain_once", lambda *a: retrained.append(a))
    with pytest.raises(UserError, match=r"--retrain 'second': decision d0: 'bad' is not a choice"):
        ranking.retrain_named("r.yaml", [], {"first": ["x"], "second": ["bad"]}, [0], 1)
    assert not retrained


# ---------------------------------------------------------------------------------------- the means of ranking.py

# Two architectures whose retrainings have the same exact mean, 0.15, summed in another order: np.mean makes
# them 0.15000000000000002 and 0.15 (an order where there is a tie); automl's ranking makes both 0.15.
A, B = [0.1, 0.2], [0.05, 0.25]


def _automl_mean(values: list[float]) -> float:
    return mean_over_seeds([{"test_loss": v, "test_accuracy": v} for v in values])["test_accuracy"]


def test_truth_study_averages_halves_as_automl_ranks(tmp_path, monkeypatch):
    """The τ between the means of two halves of the seeds: each architecture's means of A, B (and a third,
    apart) in the first half are B, A's in the second, ties both; np.mean ordered them oppositely (τ 1/3)."""
    assert np.mean(A) != np.mean(B) and _automl_mean(A) == _automl_mean(B)  # what the test rests on
    k, epochs = 3, 2
    per_seed = [[A[0], B[0], 0.5], [A[1], B[1], 0.6], [B[0], A[0], 0.5], [B[1], A[1], 0.6]]  # seeds 0-3 x archs
    for seed, values in enumerate(per_seed):
        rows = [{"params": 1, "test_accuracy": v, "test_loss": v} for v in values]
        (tmp_path / f"truth-study-e{epochs}-s{seed}.json").write_text(json.dumps(rows))
    monkeypatch.setattr(ranking, "open_workspace", lambda r: pytest.fail("a file was not reused"))
    res = ranking.truth_study("r.yaml", [], tmp_path, k, [0, 1, 2, 3], epochs)
    first = [_automl_mean([per_seed[0][j], per_seed[1][j]]) for j in range(k)]
    second = [_automl_mean([per_seed[2][j], per_seed[3][j]]) for j in range(k)]
    assert res["tau_mean_acc_halves"] == kendall_tau_b(first, second) == 1.0
    assert res["tau_mean_loss_halves"] == kendall_tau_b([-x for x in first], [-x for x in second]) == 1.0


def test_retrain_reports_the_mean_results_json_would(monkeypatch):
    values = {"first": A, "second": B}
    monkeypatch.setattr(ranking, "load_recipe", lambda *a, **k: None)
    monkeypatch.setattr(ranking, "open_workspace", lambda r: _Workspace())

    def retrain(ws, arch, seed, j, epochs):
        v = values[["first", "second"][j]][seed]
        return {"params": 1, "test_accuracy": v, "test_loss": 1 - v}

    monkeypatch.setattr(ranking, "_retrain_once", retrain)
    rows = ranking.retrain_named("r.yaml", [], {"first": ["x"], "second": ["y"]}, [0, 1], 1)
    for row in rows:
        v = values[row["name"]]
        want = mean_over_seeds([{"test_accuracy": x, "test_loss": 1 - x} for x in v])
        assert (row["mean_accuracy"], row["mean_loss"]) == (want["test_accuracy"], want["test_loss"]), row
    assert rows[0]["mean_accuracy"] == rows[1]["mean_accuracy"]
