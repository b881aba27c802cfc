"""Review IC: what report.md says of a ranking's time and of a missing cost, and the int8 model measured once.

1. report.md's phase times said the ranking was "measured by `automl rank` in N s" when that command reused every
   retraining an earlier ranking of the run recorded (its N s: the supernet scores alone); `automl rank` now
   records how many it reused (``ranking.reused_retrainings``) and the sentence says so.
2. A cost that is not finite (a cost table's NaN or inf) was "nan" / "inf" in report.md's table and the summary
   table; it is "—", as every other missing measurement there.
3. Quantising loaded the new int8 model into two onnxruntime sessions (one timed, one tested); one session of the
   bytes the manifest records now does both, and the manifest says the same.
"""

from __future__ import annotations

import hashlib
import io
import json
import math

import pytest
import torch
from rich.console import Console

import automl.export.quantize as quantize
from automl.cli import main
from automl.export.quantize import INT8_NAME, measure_export, onnx_accuracy
from automl.report import print_summary, ranking_problem, render_markdown, summary_table

from helpers import quantised_digits
from test_ranking import QUICK, TINY  # the ranking tests' tiny synthetic run
from test_review_ef import _phase_times, _results

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


# ---- 1. the time of a ranking whose retrainings were reused -----------------------------------------------------

def _ranked_by_automl_rank(**ranking) -> str:
    return _phase_times(render_markdown(_results(seconds=0.41, device="cpu", world_size=1, retrain_epochs=2,
                                                 **ranking)))


def test_a_ranking_that_reused_every_retraining_says_its_time_is_the_scores_alone():
    line = _ranked_by_automl_rank(reused_retrainings=3)
    assert line == ("Phase times: weights 0.5 s, theta 0.5 s, ranking 3.1 s; the ranking below was measured by "
                    "`automl rank` in 0.4 s, which reused all 3 retrainings from an earlier ranking of this run (the "
                    "time is that of the supernet scores alone)."), line


def test_a_ranking_that_reused_some_retrainings_says_how_many():
    # 3 architectures, 2 seeds each: 6 retrainings
    line = _ranked_by_automl_rank(reused_retrainings=4, seeds=2)
    assert line.endswith("`automl rank` in 0.4 s, which reused 4 of its 6 retrainings from an earlier ranking of "
                         "this run (their time is not in it)."), line


def test_a_ranking_that_reused_none_or_an_older_automls_says_only_its_time():
    for ranking in ({"reused_retrainings": 0}, {}):  # none reused; an older automl's section, without the key
        assert _ranked_by_automl_rank(**ranking).endswith("measured by `automl rank` in 0.4 s."), ranking


def test_a_count_of_reused_retrainings_that_automl_does_not_write_is_named():
    for bad, why in ((-1, "greater than or equal to 0"), ("3", "whole number"), (True, "whole number")):
        problem = ranking_problem({**_results()["ranking"], "reused_retrainings": bad})
        assert problem and "reused_retrainings" in problem and why in problem, (bad, problem)


def test_automl_rank_records_the_retrainings_it_reused_and_report_md_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", QUICK, "--out", str(out), "device=cpu", "threads=1", *TINY]) == 0
    assert main(["rank", str(out), "--archs", "3", "--seeds", "1"]) == 0
    first = json.loads((out / "results.json").read_text())["ranking"]
    assert first["reused_retrainings"] == 0
    assert _phase_times((out / "report.md").read_text()).endswith(
        f"measured by `automl rank` in {first['seconds']:.1f} s.")
    assert main(["rank", str(out), "--archs", "3", "--seeds", "1"]) == 0  # every retraining recorded
    capsys.readouterr()
    second = json.loads((out / "results.json").read_text())["ranking"]
    assert second["reused_retrainings"] == 3
    assert _phase_times((out / "report.md").read_text()).endswith(
        "which reused all 3 retrainings from an earlier ranking of this run (the time is that of the supernet "
        "scores alone).")


# ---- 2. a cost that is not finite ------------------------------------------------------------------------------

def _member(cost) -> dict:
    return {"choices": ["a"], "cost": cost, "epsilon": 0.5, "params": 1234, "test_accuracy": 0.5}


def _run_results(*costs) -> dict:
    return {"recipe": "quickstart", "method": "importance_sampling", "search_seconds": 1.0,
            "phase_seconds": {"theta": 1.0}, "architectures": [_member(c) for c in costs]}


def _cost_cells(text: str) -> list[str]:
    header, _, *rows = [ln for ln in text.splitlines() if ln.startswith("|")]
    column = [c.strip() for c in header.split("|")].index("cost (params)")
    return [[c.strip() for c in row.split("|")][column] for row in rows]


def test_a_cost_that_is_not_finite_is_a_dash_in_report_md():
    cells = _cost_cells(render_markdown(_run_results(math.nan, math.inf, -math.inf, 1234567.0, 0.125)))
    assert cells == ["—", "—", "—", "1,234,567", "0.125"], cells


def test_a_cost_that_is_not_finite_is_a_dash_in_the_summary_table():
    console = Console(file=io.StringIO(), width=200)  # no terminal: the table as a log gets it
    print_summary(summary_table(_run_results(math.nan, math.inf, 42.0)), console)
    shown = console.file.getvalue()
    assert "nan" not in shown and "inf" not in shown, shown
    rows = [ln for ln in shown.splitlines() if "1,234" in ln]
    assert len(rows) == 3 and all("—" in r for r in rows[:2]) and "42" in rows[2], shown


# ---- 3. the int8 model: one session, the same manifest -----------------------------------------------------------

def _batches(seed: int, n: int = 2) -> list:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(32, 1, 8, 8, generator=gen), torch.randint(0, 10, (32,), generator=gen)) for _ in range(n)]


def test_quantising_loads_the_int8_model_into_one_session(tmp_path, monkeypatch):
    loads = []
    real = quantize.ort_session

    def counting(model, threads=1):
        loads.append(model)
        return real(model, threads)

    monkeypatch.setattr(quantize, "ort_session", counting)
    torch.manual_seed(0)
    out = quantised_digits(tmp_path / "net", _batches(0), lambda: _batches(1))
    fp32 = str(out / "model.onnx")
    int8 = [m for m in loads if m != fp32]
    assert len(int8) == 1, loads
    # the session is of the bytes the manifest records
    assert hashlib.sha256(int8[0]).hexdigest() == json.loads((out / "manifest.json").read_text())["int8"]["sha256"]


def test_the_int8_entry_records_the_figures_of_the_model_it_describes(tmp_path):
    torch.manual_seed(0)
    test = _batches(1)
    out = quantised_digits(tmp_path / "net", _batches(0), lambda: test)
    m = json.loads((out / "manifest.json").read_text())
    entry, data = m["int8"], (out / INT8_NAME).read_bytes()
    assert set(entry) == {"file", "format", "weights", "activations", "fp32_size_bytes", "size_bytes", "sha256",
                          "calibration_samples", "test_accuracy", "fp32_test_accuracy", "coverage"}, entry
    assert entry["file"] == INT8_NAME and entry["calibration_samples"] == 64
    assert entry["size_bytes"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["fp32_size_bytes"] == (out / "model.onnx").stat().st_size
    assert entry["test_accuracy"] == onnx_accuracy(out / INT8_NAME, test)
    assert entry["fp32_test_accuracy"] == m["onnx"]["test_accuracy"] == onnx_accuracy(out / "model.onnx", test)
    assert m["latency"]["int8_ms"] > 0 and m["latency"]["fp32_ms"] > 0
    # measuring again without quantising times and tests the same model: the same accuracy
    again = measure_export(out, test=lambda: test)
    assert again["int8"]["test_accuracy"] == entry["test_accuracy"] and again["latency"]["int8_ms"] > 0
