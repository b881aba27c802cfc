"""Benchmark flags that were silently ignored or unbounded (review JL): latency_table.py's --int8-run with
--no-int8, ranking.py's flags of a part the run skips (--no-tau, --no-stability) and --se without --one-se are
refused before any work (one line, exit 2); threads.py's --repeat, --steps and --epochs, search_cost.py's --repeat
and latency_table.py's --archs and --measure-repeat have an upper bound; search_cost.py says that the run folders
its runs' ``results:`` lines name were temporary and are gone.

Each script's main() is called in-process with its measurements and runs replaced by stand-ins that fail the test
when work starts."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from automl.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))


def started(*args, **kwargs):
    raise AssertionError("work started")


def refused(capsys, call) -> str:
    """The one line a refused command prints on stderr (exit 2)."""
    with pytest.raises(SystemExit) as e:
        call()
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1, err
    return err


# ---------------------------------------------------------------------------------------- latency_table.py


@pytest.fixture
def latency_table(monkeypatch):
    import latency_table

    for name in ("bench_space", "bench_int8_proxyless"):
        monkeypatch.setattr(latency_table, name, started)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the script's own count: not this process's
    return latency_table


def test_latency_table_refuses_int8_run_with_no_int8(latency_table, monkeypatch, capsys, tmp_path):
    # was: --int8-run was not read and its rows were left out without a word
    monkeypatch.setattr(sys, "argv", ["latency_table.py", "--int8-run", str(tmp_path), "--no-int8"])
    err = refused(capsys, latency_table.main)
    assert "--int8-run" in err and "--no-int8" in err, err


def test_latency_table_reads_int8_run_without_no_int8(latency_table, monkeypatch, tmp_path):
    """--int8-run alone is no refusal: its folder is read first (here: no results.json there)."""
    monkeypatch.setattr(sys, "argv", ["latency_table.py", "--int8-run", str(tmp_path)])
    with pytest.raises(UserError, match="no results.json there"):
        latency_table.main()


@pytest.mark.parametrize("flags,words", [
    (["--archs", "1001"], "argument --archs: 1001: at most 1,000"),
    (["--measure-repeat", "100001"], "argument --measure-repeat: 100001: at most 100,000")])
def test_latency_table_bounds_its_counts(latency_table, monkeypatch, capsys, flags, words):
    monkeypatch.setattr(sys, "argv", ["latency_table.py", *flags])
    err = refused(capsys, latency_table.main)
    assert words in err, err


# ---------------------------------------------------------------------------------------- ranking.py


@pytest.fixture
def ranking(monkeypatch):
    import ranking

    for name in ("automl_run", "truth", "truth_study", "retrain_named", "stability_runs", "checked_truth"):
        monkeypatch.setattr(ranking, name, started)
    return ranking


@pytest.mark.parametrize("flags,named", [
    (["--no-tau", "--truth", "TRUTH"], "--truth: it is an option of the part --no-tau skips"),
    (["--no-tau", "--options", "fair", "--threads", "1"],
     "--options, --threads: they are options of the part --no-tau"),
    (["--no-tau", "--archs", "20"], "--archs: it is"),  # the default's value, given: still ignored
    (["--no-tau", "--supernet-seeds", "0,1"], "--supernet-seeds: it is"),
    (["--no-tau", "--no-signal"], "--no-signal: it is"),
    (["--no-stability", "--jobs", "2"], "--jobs: it is an option of the part --no-stability skips"),
    (["--no-stability", "--methods", "separate", "--stability-seeds", "0"],
     "--methods, --stability-seeds: they are options of the part --no-stability"),
    (["--no-stability", "--jobs", "1"], "--jobs: it is"),
], ids=["truth", "options_threads", "archs", "supernet_seeds", "no_signal", "jobs", "methods_seeds", "jobs_default"])
def test_ranking_refuses_a_flag_of_a_part_it_skips(ranking, capsys, tmp_path, flags, named):
    # was: the flag was not read (--truth: its folder only checked to exist) and the other part ran
    (tmp_path / "truth").mkdir()
    (tmp_path / "truth" / "results.json").write_text("{}")
    flags = [str(tmp_path / "truth") if f == "TRUTH" else f for f in flags]
    err = refused(capsys, lambda: ranking.main([*flags, "--out", str(tmp_path / "rk")]))
    assert named in err and "leave out one or the other" in err, err
    assert not (tmp_path / "rk").exists()


def test_ranking_refuses_se_without_one_se(ranking, tmp_path):
    # was: --se was read by --one-se alone, and the τ and stability parts ran
    with pytest.raises(UserError, match="--se is an option of --one-se"):
        ranking.main(["--se", "2", "--out", str(tmp_path / "rk")])
    assert not (tmp_path / "rk").exists()


def test_ranking_takes_a_study_flag_with_no_tau_and_the_defaults_left_out(ranking, monkeypatch, tmp_path):
    """The truth study reads --archs (--no-tau with it is no refusal); the options left out get their defaults."""
    seen = {}

    def study(recipe, overrides, out, k, seeds, epochs):
        seen["archs"] = k
        raise AssertionError("work started")

    monkeypatch.setattr(ranking, "truth_study", study)
    with pytest.raises(AssertionError, match="work started"):
        ranking.main(["--no-tau", "--truth-seeds", "0", "--archs", "5", "--out", str(tmp_path / "a")])
    assert seen == {"archs": 5}

    def runs(a, out, combos):
        seen.update(jobs=a.jobs, methods=a.methods, seeds=a.stability_seeds, se=a.se, combos=len(combos))
        raise AssertionError("work started")

    monkeypatch.setattr(ranking, "stability_runs", runs)
    with pytest.raises(AssertionError, match="work started"):
        ranking.main(["--no-tau", "--out", str(tmp_path / "b")])
    assert seen == {"archs": 5, "jobs": 1, "methods": ["separate", "importance_sampling"], "seeds": [0, 1, 2],
                    "se": 1.0, "combos": 12}
    shown = " ".join(ranking._parser().format_help().split())
    for words in ("at least 3) (default: 20)", "(default: 0,1,2)", "(default: separate,importance_sampling)",
                  "standard errors allowed (default: 1.0)"):
        assert words in shown, words


# ---------------------------------------------------------------------------------------- threads.py


@pytest.mark.parametrize("flags,words", [(["--steps", "1001"], "argument --steps: 1001: at most 1,000"),
                                         (["--repeat", "101"], "argument --repeat: 101: at most 100"),
                                         (["--epochs", "1001"], "argument --epochs: 1001: at most 1,000")])
def test_threads_bounds_its_counts(monkeypatch, capsys, flags, words):
    # was: any count was taken (a typo's extra digits ran for days)
    import threads

    for name in ("torch_default_threads", "run_digits", "run_proxyless", "child_proxyless"):
        monkeypatch.setattr(threads, name, started)
    err = refused(capsys, lambda: threads.main(flags))
    assert words in err, err


# ---------------------------------------------------------------------------------------- search_cost.py


class FakeRun:
    """automl.pipeline.Run's stand-in: writes results.json in its folder and prints its ``results:`` line."""

    def __init__(self, recipe, out, tty=None):
        self.recipe, self.out = recipe, Path(out)

    def execute(self) -> dict:
        self.out.mkdir(parents=True)
        (self.out / "results.json").write_text("{}")
        print(f"results: {self.out / 'results.json'}  report: {self.out / 'report.md'}", flush=True)
        n = len(self.recipe.search.epsilons or self.recipe.search.budgets or [0])
        return {"architectures": [{"params": 100}] * n, "search_seconds": 2.0,
                "phase_seconds": {"weights": 1.0, "theta": 1.0}, "threads": {"threads": 1}}


def test_search_cost_says_the_run_folders_its_runs_name_are_gone(monkeypatch, capsys):
    # was: each run's "results: /tmp/tmpXXX/run/results.json" named a folder removed right after, without a word
    import search_cost

    monkeypatch.setattr(search_cost, "Run", FakeRun)
    monkeypatch.setattr(search_cost, "open_workspace", lambda recipe: SimpleNamespace(data=SimpleNamespace(w=[0] * 3)))
    search_cost.main(["--no-sweep"])
    lines = capsys.readouterr().out.splitlines()
    named = [(i, Path(x.split()[1]).parents[1]) for i, x in enumerate(lines) if x.startswith("results: ")]
    assert len(named) == 4, lines  # the warm-up and the three methods
    for i, folder in named:
        assert not folder.exists()
        after = lines[i + 1]
        assert str(folder) in after and "temporary folder and is removed" in after, lines[i:i + 2]
    assert lines[-1].startswith('{"benchmark": "search_cost"'), lines[-1]


def test_search_cost_bounds_repeat(monkeypatch, capsys):
    import search_cost

    monkeypatch.setattr(search_cost, "Run", started)
    err = refused(capsys, lambda: search_cost.main(["--repeat", "101"]))
    assert "argument --repeat: 101: at most 100 " in err, err
