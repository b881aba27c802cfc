"""Review AG: the benchmark scripts' figures. Each test runs a script's own code in this process, with its runs
(automl run children, busy processes, retrainings) replaced by stand-ins: none measures anything.

* threads.py: x_idle and "auto / best fixed" are relative to the runs next to 0 busy processes, whatever the
  order of --busy (it took the first value given as the idle one); --busy without 0 is refused.
* search_quality.py: a member whose optimum costs nothing (every decision at a free choice) has a cost ratio
  (it divided by zero: a traceback).
* ranking.py: --archs below 3 (ranking.archs' minimum), retrain.epochs 0 (the truth would be untrained
  networks' scores) and a --truth run without a retrained ranking are refused before any run.
* family_budgets.py: a method or seed given twice is one; the ratio of the first method to the second is
  printed with more than two methods too.
"""

from __future__ import annotations

import json
import math
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import family_budgets  # noqa: E402
import ranking  # noqa: E402
import search_quality  # noqa: E402
import threads  # noqa: E402

from automl.errors import UserError  # noqa: E402

# ---------------------------------------------------------------------------------------- threads.py


@pytest.fixture
def fake_threads(monkeypatch):
    """threads.py with stand-ins: a digits run takes 1 + (busy processes) seconds on 1 thread."""
    now = {"busy": 0}

    @contextmanager
    def busy(n):
        now["busy"] = n
        yield

    monkeypatch.setattr(threads, "Busy", busy)
    monkeypatch.setattr(threads, "torch_default_threads", lambda: 2)
    monkeypatch.setattr(threads, "run_digits", lambda s, epochs, limit: (1.0 + now["busy"], 1, False))


def test_threads_x_idle_is_relative_to_zero_busy_whatever_the_order(fake_threads, capsys):
    threads.main(["--busy", "1,0", "--repeat", "1", "--workloads", "digits"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    x_idle = {(r["setting"], r["busy"]): r["x_idle"] for r in out["rows"]}
    for setting in ("auto", "1", "default (2)"):
        assert x_idle[(setting, 0)] == 1.0 and x_idle[(setting, 1)] == 2.0, x_idle
    assert out["summary"]["digits"] == {"auto_worst_x_idle": 2.0, "auto_idle_over_best_fixed": 1.0}


def test_threads_refuses_busy_without_zero(fake_threads, capsys):
    with pytest.raises(SystemExit) as e:
        threads.main(["--busy", "1,2", "--repeat", "1", "--workloads", "digits"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--busy" in err and "0" in err and err.count("\n") == 1, err


# ---------------------------------------------------------------------------------------- search_quality.py


def test_search_quality_cost_ratio_when_the_optimum_is_free():
    a, costs = search_quality.make_index_problem(1, 2, 0)  # one decision: choice 0 costs 0, choice 1 costs 1
    assert float(costs[0, 0]) == 0.0
    eps = 1.0  # large enough that the free choice is the optimum
    assert int(search_quality.optimum(a, costs, eps)[0]) == 0
    ratio, regret, ok = search_quality.member_score(a, costs, torch.tensor([0]), eps=eps)
    assert ratio == 1.0 and regret == 0.0 and ok
    ratio, regret, ok = search_quality.member_score(a, costs, torch.tensor([1]), eps=eps)
    assert math.isinf(ratio) and regret > 0


# ---------------------------------------------------------------------------------------- ranking.py


@pytest.fixture
def no_runs(monkeypatch):
    """ranking.py with every run and retraining replaced by a failure: a test passes only if none starts."""

    def started(*args, **kwargs):
        raise AssertionError("a run started")

    for name in ("automl_run", "truth_study", "retrain_named"):
        monkeypatch.setattr(ranking, name, started)


def test_ranking_refuses_fewer_than_3_archs_before_any_run(no_runs, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        ranking.main(["--archs", "2", "--no-stability", "--out", str(tmp_path / "rk")])
    assert e.value.code == 2 and "--archs" in capsys.readouterr().err
    assert not (tmp_path / "rk").exists()


@pytest.mark.parametrize("args,hint", [([], "--no-tau"), (["--truth-seeds", "0"], "--truth-epochs")],
                         ids=["tau", "truth_study"])
def test_ranking_refuses_a_truth_of_zero_epochs(no_runs, tmp_path, args, hint):
    with pytest.raises(UserError, match="retrain.epochs is 0") as e:
        ranking.main(["retrain.epochs=0", "--no-stability", "--out", str(tmp_path / "rk"), *args])
    assert hint in e.value.text()
    assert not (tmp_path / "rk").exists()


def test_ranking_with_zero_epochs_still_runs_what_needs_no_truth(no_runs, tmp_path):
    # --truth-epochs gives the truth study its epochs; the stability table retrains nothing
    with pytest.raises(AssertionError, match="a run started"):
        ranking.main(["retrain.epochs=0", "--truth-seeds", "0", "--truth-epochs", "1", "--out", str(tmp_path / "a")])
    with pytest.raises(AssertionError, match="a run started"):
        ranking.main(["retrain.epochs=0", "--no-tau", "--out", str(tmp_path / "b")])


def _finished_run(folder: Path, ranking_section) -> Path:
    folder.mkdir()
    res = {"recipe": "quickstart", "architectures": [], "search_seconds": 1.0}
    if ranking_section is not None:
        res["ranking"] = ranking_section
    (folder / "results.json").write_text(json.dumps(res))
    return folder


@pytest.mark.parametrize("section,words", [
    (None, "no ranking"),
    ({"archs": [{"choices": ["a"], "test_loss": 1.0, "params": 5}] * 3, "seeds": 1, "retrain_epochs": 0},
     "retrain_epochs 0")], ids=["no_ranking", "not_retrained"])
def test_ranking_refuses_a_truth_run_without_a_retrained_ranking(no_runs, tmp_path, section, words):
    run = _finished_run(tmp_path / "run", section)
    with pytest.raises(UserError, match=words):
        ranking.main(["--truth", str(run), "--archs", "3", "--no-stability", "--out", str(tmp_path / "rk")])
    assert not (tmp_path / "rk").exists()


def test_ranking_reads_a_retrained_truth(tmp_path):
    archs = [{"choices": [str(j)], "test_loss": 1.0 + j, "params": 5} for j in range(3)]
    run = _finished_run(tmp_path / "run", {"archs": archs, "seeds": 4, "retrain_epochs": 25})
    assert ranking.truth_of(ranking.checked_truth(run, 3)) == ([-1.0, -2.0, -3.0], [["0"], ["1"], ["2"]], 4)


# ---------------------------------------------------------------------------------------- family_budgets.py


def _family_budgets(monkeypatch, capsys, out: Path, seconds: dict, *args: str) -> tuple[list[str], dict]:
    """family_budgets.py over finished runs (one member each) in ``out``; its printed lines and JSON line."""
    for name, s in seconds.items():
        (out / name).mkdir(parents=True)
        arch = {"budget": None, "epsilon": 0.0, "params": 10, "cost": 10.0, "test_accuracy": 0.9}
        (out / name / "results.json").write_text(json.dumps({"search_seconds": s, "architectures": [arch]}))
    monkeypatch.setattr(sys, "argv", ["family_budgets.py", "--out", str(out), *args])
    monkeypatch.setattr(family_budgets, "run_child", lambda *a, **k: pytest.fail("a run started"))
    family_budgets.main()
    lines = capsys.readouterr().out.strip().splitlines()
    return lines, json.loads(lines[-1])


def test_family_budgets_a_method_or_seed_given_twice_is_one(monkeypatch, capsys, tmp_path):
    lines, out = _family_budgets(monkeypatch, capsys, tmp_path, {"separate-s0": 3.0},
                                 "--methods", "separate,separate", "--seeds", "0,0")
    assert len(out["rows"]) == 1 and out["search_seconds"] == {"separate": [3.0]}
    assert out["ratio_median"] is None and not any(x.startswith("search seconds") for x in lines)


def test_family_budgets_ratio_of_the_first_two_of_three_methods(monkeypatch, capsys, tmp_path):
    lines, out = _family_budgets(monkeypatch, capsys, tmp_path,
                                 {"importance_sampling-s0": 1.0, "separate-s0": 4.0, "simultaneous-s0": 8.0},
                                 "--methods", "importance_sampling,separate,simultaneous", "--seeds", "0")
    assert out["ratio_median"] == 0.25
    assert "search seconds importance_sampling / separate: median 0.25 over 1 seed (0.25)" in lines


# ---------------------------------------------------------------------------------------- search_cost.py


def test_search_cost_refuses_zero_weight_epochs_before_any_run(monkeypatch):
    import search_cost

    # ms_per_iteration divides by the weight steps taken: with none it was a ZeroDivisionError after every run
    monkeypatch.setattr(search_cost, "search_run", lambda *a, **k: pytest.fail("a run started"))
    with pytest.raises(UserError, match="search.weight_epochs is 0"):
        search_cost.main(["search.weight_epochs=0", "--no-sweep"])


# ---------------------------------------------------------------------------------------- latency_table.py


def test_latency_table_times_spnasnet_int8_at_the_batch_given(monkeypatch):
    import argparse

    import latency_table

    import automl.export
    import automl.export.quantize as quantize

    def export(cs, arch, folder, **kw):
        (Path(folder) / "model.onnx").write_bytes(b"x" * 100)

    def quantize_int8(fp32, int8, calib, **kw):
        Path(int8).write_bytes(b"x" * 30)

    batches = []

    def latency(path, shape, threads=1, batch=1, **kw):
        batches.append(batch)
        return 2.0 if str(path).endswith("model.onnx") else 1.0

    monkeypatch.setattr(automl.export, "export_architecture", export)
    monkeypatch.setattr(quantize, "quantize_int8", quantize_int8)
    monkeypatch.setattr(quantize, "onnx_latency", latency)
    args = argparse.Namespace(threads=1, batch=4, measure_repeat=1, clock="wall")
    row = latency_table.bench_int8_proxyless(args)
    assert batches == [4] * 6, batches
    assert row["speedup"] == 2.0 and row["size_ratio"] == 0.3 and "batch 4" in row["model"]


def test_ranking_better_half_is_at_least_a_pair():
    # K = 3 (ranking.archs' minimum): a half of one architecture has no pair, and every "top" figure was NaN
    L = np.array([[3.0, 3.0], [1.0, 1.5], [2.0, 2.0]])
    assert ranking.better_half(L).tolist() == [1, 2]
    assert math.isfinite(ranking._pair_stats(L[ranking.better_half(L)])["snr"])
    assert ranking.better_half(np.arange(20.0)[::-1, None].repeat(2, 1)).tolist() == list(range(19, 9, -1))


# ---------------------------------------------------------------------------------------- _common.py


def test_device_refuses_a_gpu_index_that_does_not_exist(monkeypatch):
    import argparse

    from _common import device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert device("cuda") == torch.device("cuda") and device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(argparse.ArgumentTypeError, match="cuda:1: torch sees 1 CUDA GPU"):
        device("cuda:1")
