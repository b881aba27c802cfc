"""Review DG: ``automl space profile`` and automl.profile as a user measuring latency on their own CPU.

The tables here are profiled with the fake clock of test_edge_fixes (1 ms a call plus 1 µs a parameter), except
where the clock itself is what is tested.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import pytest
import torch
from test_edge_fixes import _fake_time

import automl.profile as profile
from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
TINY = ["--repeat", "1", "--calibrate", "0"]


def test_profile_space_leaves_the_callers_random_state_as_it_was(monkeypatch):
    """The Python API seeds the pieces' weights, but must not reseed the caller's torch generator (a user who
    profiles, then trains, would otherwise get seed 0's numbers whatever seed they set)."""
    monkeypatch.setattr(profile, "time_module", _fake_time)
    cs = load_compiled(DIGITS)
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    a = profile.profile_space(cs, repeat=1, calibrate=2, progress=False)
    assert torch.equal(torch.rand(4), expected)
    # and the table is still the same one every time: the pieces' weights are seeded inside
    torch.manual_seed(7)
    b = profile.profile_space(cs, repeat=1, calibrate=2, progress=False)
    assert a["decisions"] == b["decisions"] and a["calibration"] == b["calibration"]


def test_a_cpu_clock_too_coarse_to_time_a_piece_is_one_message(tmp_path, monkeypatch, capsys):
    """A thread CPU clock that advances in scheduler ticks (Windows counts thread time in 15.6 ms steps) gives
    every piece of a few µs a median of 0 ms: a table of zeros written as if measured. Refused, naming --clock."""
    real = time.perf_counter
    monkeypatch.setattr(time, "thread_time", lambda: math.floor(real() / 0.0156) * 0.0156)
    out = tmp_path / "t.json"
    assert main(["space", "profile", DIGITS, *TINY, "--clock", "cpu", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--clock cpu" in err and "--clock wall" in err and "Traceback" not in err
    assert not out.exists()


def test_a_fine_clock_passes_the_check():
    for clock in profile.CLOCKS:
        assert profile.clock_step(clock) < 1e-4


def test_a_clock_that_never_advances_is_named_so(monkeypatch):
    monkeypatch.setattr(time, "thread_time", lambda: 1.0)
    with pytest.raises(UserError, match="--clock cpu: .* advances too rarely to be read.*use --clock wall"):
        profile.check_profile_args("onnxruntime", 1, 1, 1, "cpu")


def test_latency_table_reads_a_run_whose_accuracies_are_null(tmp_path):
    """A run without test images records its accuracies as null; the benchmark's int8 rows say "no drop
    measured" (None) instead of a TypeError traceback after the whole measurement."""
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    import latency_table

    q = {"latency_ms": 1.0, "size_bytes": 30, "fp32_size_bytes": 100, "fp32_onnx_test_accuracy": None,
         "test_accuracy": None}
    archs = [{"budget": None, "epsilon": 0.0, "latency_ms": 2.0, "int8": q},
             {"budget": None, "epsilon": 1.0, "latency_ms": 2.0, "int8": {**q, "fp32_onnx_test_accuracy": 0.9,
                                                                          "test_accuracy": 0.85}}]
    (tmp_path / "results.json").write_text(json.dumps({"recipe": "quickstart", "architectures": archs}))
    rows = latency_table.int8_from_run(tmp_path)
    assert rows[0]["accuracy_drop_points"] is None and rows[0]["speedup"] == 2.0
    assert rows[1]["accuracy_drop_points"] == pytest.approx(5.0)
