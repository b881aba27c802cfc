"""Review HZB of the benchmark scripts: gpu_check.sh reads BUDGET as a decimal number (a leading zero made bash
read it as octal, and ``090`` as no number at all: every step vanished and the script exited 0), and
latency_table.py's ``--int8-run`` reads the run's results.json as the other scripts read a run's (one line
naming the file and the field, exit 2, before anything is measured; a figure the run has none of is null)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

# a stand-in for python3 (gpu_check.sh's PY): it reports a GPU, and every step exits 0 at once
FAKE_PY = """#!/bin/sh
case "$*" in
  *"torch.cuda.is_available()"*) echo True; exit 0 ;;
  *"import torch, timm"*) echo "torch 0 timm 0"; exit 0 ;;
esac
exit 0
"""
GPU_STEPS = ["tests", "engine_speed", "supernet_overhead_digits", "supernet_overhead_proxyless",
             "engine_overhead_proxyless", "scaling", "search_cost", "quickstart"]


def _gpu_check(tmp_path: Path, budget: str) -> tuple[int, list[str], str]:
    fake = tmp_path / "python3"
    fake.write_text(FAKE_PY)
    fake.chmod(0o755)
    env = dict(os.environ, OUT=str(tmp_path / "gpu"), PY=str(fake), BUDGET=budget)
    r = subprocess.run(["bash", str(BENCH / "gpu_check.sh")], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60, env=env)
    lines = (tmp_path / "gpu" / "summary.txt").read_text().splitlines()
    return r.returncode, [x for x in lines if x.split(" ", 1)[0] in GPU_STEPS], r.stderr


def test_gpu_check_budget_with_a_leading_zero_is_decimal(tmp_path):
    """0300 is 300 s (octal, 192 s, skipped the quickstart, which needs 200)."""
    code, steps, _ = _gpu_check(tmp_path, "0300")
    assert [x.split(" ", 1)[0] for x in steps] == GPU_STEPS, steps
    assert all(" done in " in x for x in steps), steps
    assert code == 0


def test_gpu_check_budget_090_runs_the_steps_rather_than_none(tmp_path):
    """090 is no octal number: bash's arithmetic failed in every step, which then neither ran nor was recorded,
    and the script exited 0."""
    code, steps, err = _gpu_check(tmp_path, "090")
    assert "value too great" not in err, err
    assert [x.split(" ", 1)[0] for x in steps] == GPU_STEPS, steps
    assert code == 1  # 90 s: the tests (100 s) and the quickstart (200 s) are skipped, and say so
    assert steps[0] == "tests skipped: not enough budget left (needs 100 s)", steps
    assert steps[-1] == "quickstart skipped: not enough budget left (needs 200 s)", steps


# ---------------------------------------------------------------------------------------- latency_table --int8-run

INT8 = {"latency_ms": 1.0, "size_bytes": 30, "fp32_size_bytes": 100, "fp32_onnx_test_accuracy": 0.9,
        "test_accuracy": 0.89}


def _run_dir(tmp_path: Path, archs, recipe="quickstart") -> Path:
    (tmp_path / "results.json").write_text(json.dumps({"recipe": recipe, "architectures": archs}))
    return tmp_path


@pytest.mark.parametrize("archs,field", [
    (["x"], "architectures[0]"),
    ([{"latency_ms": 2.0, "int8": dict(INT8, latency_ms="fast")}], "architectures[0].int8.latency_ms"),
    ([{"latency_ms": 2.0, "int8": dict(INT8, size_bytes=True)}], "architectures[0].int8.size_bytes"),
    ([{"latency_ms": "2", "int8": INT8}], "architectures[0].latency_ms"),
], ids=["not_an_object", "latency_a_word", "size_a_bool", "fp32_latency_a_string"])
def test_int8_run_with_a_damaged_results_json_is_a_user_error_naming_the_field(tmp_path, archs, field):
    import latency_table

    from automl.errors import UserError

    run = _run_dir(tmp_path, archs)
    with pytest.raises(UserError) as e:
        latency_table.int8_from_run(run)
    assert str(run / "results.json") in str(e.value) and field in str(e.value), str(e.value)


def test_int8_run_without_a_figure_gives_null_not_a_crash(tmp_path):
    """A member whose run has no latency or size for its int8 model (null in results.json): its row's
    figures that need it are None, the others are computed."""
    import latency_table

    archs = [{"latency_ms": None, "int8": INT8},
             {"latency_ms": 2.0, "int8": dict(INT8, latency_ms=None, fp32_size_bytes=None)},
             {"latency_ms": 2.0, "int8": {"test_accuracy": 0.8}}]
    rows = latency_table.int8_from_run(_run_dir(tmp_path, archs))
    assert [(r["speedup"], r["size_ratio"]) for r in rows] == [(None, 0.3), (None, None), (None, None)]
    assert rows[0]["int8_ms"] == 1.0 and rows[1]["fp32_ms"] == 2.0
    assert rows[2]["accuracy_drop_points"] is None


def test_int8_run_figures_are_computed_the_right_way_round(tmp_path):
    import latency_table

    rows = latency_table.int8_from_run(_run_dir(tmp_path, [{"latency_ms": 2.0, "int8": INT8}]))
    assert rows[0]["speedup"] == pytest.approx(2.0)  # fp32 / int8 time: > 1 when int8 is faster
    assert rows[0]["size_ratio"] == pytest.approx(0.3)  # int8 / fp32 bytes
    assert rows[0]["accuracy_drop_points"] == pytest.approx(1.0)


@pytest.mark.heavy  # a subprocess with torch: seconds
def test_latency_table_refuses_a_damaged_int8_run_before_measuring(tmp_path):
    run = _run_dir(tmp_path, [{"latency_ms": 2.0, "int8": dict(INT8, latency_ms="fast")}])
    r = subprocess.run([sys.executable, str(BENCH / "latency_table.py"), "--spaces", "digits", "--archs", "2",
                        "--int8-run", str(run)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT)))
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 2 and r.stdout == "", (r.returncode, r.stdout)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "results.json" in lines[0] and "int8.latency_ms" in lines[0], r.stderr
