"""The benchmark scripts run as a user reproducing the README's Performance figures would run them (review JF):
each script's output ends with its one JSON line, a flag that cannot be honoured on this machine is refused
before any work (one line, exit 2), and gpu_check.sh runs its steps from any folder and replaces
benchmarks.jsonl whole.

The Python scripts are called in-process with their measurements replaced by stand-ins, or as a subprocess with
arguments that must be refused; gpu_check.sh runs with a stand-in for python3 that reports a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))


def _env(**extra: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return {**env, **extra}


def last_json(out: str) -> dict:
    """The last line of a script's standard output, which must be its JSON line."""
    lines = [x for x in out.splitlines() if x.strip()]
    assert lines, out
    assert lines[-1].startswith('{"benchmark"'), f"the output does not end with its JSON line: {lines[-3:]}"
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------------------- the JSON line ends it


def test_latency_table_ends_with_its_json_line_after_the_int8_lines(monkeypatch, capsys):
    # was: the int8 lines were printed after the JSON line, so the output's last line was no JSON
    import latency_table

    def space(name, args):
        return {"space": name, "mape_pct": 3.0, "kendall_tau": 0.9, "_detail": {"predicted": [1.0]}}

    int8 = {"model": "spnasnet_100 (stand-in)", "fp32_ms": 2.0, "int8_ms": 1.0, "speedup": 2.0, "size_ratio": 0.3,
            "accuracy_drop_points": None}
    monkeypatch.setattr(latency_table, "bench_space", space)
    monkeypatch.setattr(latency_table, "bench_int8_proxyless", lambda args: dict(int8))
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the script's own thread count: not this process's
    monkeypatch.setattr(sys, "argv", ["latency_table.py", "--spaces", "digits", "--archs", "2", "--threads", "1"])
    latency_table.main()
    out = capsys.readouterr().out
    line = last_json(out)
    assert line["benchmark"] == "latency_table" and line["int8"][0]["speedup"] == 2.0
    assert "int8 spnasnet_100 (stand-in): fp32 2 ms, int8 1 ms, speed-up 2.00x, size 0.30x" in out


def test_ranking_stability_ends_with_its_json_line_after_the_summary(monkeypatch, capsys, tmp_path):
    # was: "METHOD: most accurate member ..." was printed after the ranking_stability JSON line
    import ranking

    sizes = iter([100, 250])
    monkeypatch.setattr(ranking, "stability_runs",
                        lambda a, out, combos: [{"architectures": [{"params": next(sizes)}]} for _ in combos])
    ranking.main(["--no-tau", "--out", str(tmp_path / "bench"), "--methods", "importance_sampling",
                  "--stability-seeds", "0", "search.supernets=1"])
    out = capsys.readouterr().out
    line = last_json(out)
    assert line["benchmark"] == "ranking_stability"
    assert [r["params"] for r in line["rows"]] == [[100], [250]]
    assert "importance_sampling: most accurate member 100-250 parameters, max/min 2.50" in out


# ---------------------------------------------------------------------------------------- refused before any work


def test_threads_refuses_a_batch_past_automls_bound_before_any_run(tmp_path):
    # was: --batch 99999999 was taken, and the first ProxylessNAS process failed to allocate its batch (exit 1,
    # after the runs before it)
    r = subprocess.run([sys.executable, str(BENCH / "threads.py"), "--batch", "99999999", "--repeat", "1", "--busy",
                        "0", "--workloads", "proxylessnas", "--steps", "1", "--limit", "30"],
                       cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--batch" in lines[0] and "99999999" in lines[0], r.stderr
    assert r.stdout == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU machine measures the GPU rows")
def test_scaling_refuses_gpus_without_a_gpu_before_the_cpu_rows(monkeypatch, capsys):
    # was: --gpus on a machine without a GPU measured the CPU rows (a minute) and said nothing of the GPU rows
    import scaling

    def run(nproc, device):
        raise AssertionError(f"measured {nproc} process(es) on {device}")

    monkeypatch.setattr(scaling, "run", run)
    monkeypatch.setattr(sys, "argv", ["scaling.py", "--gpus"])
    with pytest.raises(SystemExit) as e:
        scaling.main()
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--gpus" in err[0] and "no CUDA GPU" in err[0], err


# ---------------------------------------------------------------------------------------- gpu_check.sh

# A stand-in for python3 (gpu_check.sh's PY): it reports a GPU; a step given a script, space, recipe or test file
# that does not exist where the step runs fails as python would (exit 2); engine_speed prints a JSON line
FAKE_PY = """#!/bin/sh
case "$*" in
  *"torch.cuda.is_available()"*) echo True; exit 0 ;;
  *"import torch, timm"*) echo "torch 0 timm 0"; exit 0 ;;
  *"import importlib"*) exit 0 ;;
esac
for a in "$@"; do
  case "$a" in
    *.py | *.space | *.yaml) [ -e "$a" ] || { echo "can't open file '$a'"; exit 2; } ;;
  esac
done
case "$*" in *engine_speed.py*) echo '{"benchmark": "engine_speed", "results": []}' ;; esac
exit 0
"""
STEPS = ["tests", "engine_speed", "supernet_overhead_digits", "supernet_overhead_proxyless",
         "engine_overhead_proxyless", "scaling", "search_cost", "quickstart"]


def gpu_check(tmp_path: Path, cwd: Path) -> subprocess.CompletedProcess:
    fake = tmp_path / "python3"
    fake.write_text(FAKE_PY)
    fake.chmod(0o755)
    return subprocess.run(["bash", str(BENCH / "gpu_check.sh")], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env=_env(OUT=str(tmp_path / "gpu"), PY=str(fake), BUDGET="480"))


def test_gpu_check_finds_its_steps_files_from_another_folder(tmp_path):
    # was: each step named benchmarks/..., spaces/..., recipes/... and tests/... relative to the folder it was run
    # from: run from any other, every step failed ("can't open file"), the whole device lease spent on nothing
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = gpu_check(tmp_path, elsewhere)
    summary = (tmp_path / "gpu" / "summary.txt").read_text().splitlines()
    outcomes = {x.split(" ", 1)[0]: x for x in summary if x.split(" ", 1)[0] in STEPS}
    assert list(outcomes) == STEPS, summary
    assert all(" done in " in x for x in outcomes.values()), (summary, r.stdout[-2000:])
    assert r.returncode == 0, r.stderr


def test_gpu_check_replaces_benchmarks_jsonl_whole(tmp_path):
    # was: rewritten in place (truncated, then written): a stop meanwhile left it empty or cut short; now a
    # temporary file is renamed over it, so a reader of the old file (here: a hard link to it) keeps it whole
    out = tmp_path / "gpu"
    out.mkdir()
    (out / "benchmarks.jsonl").write_text('{"benchmark": "earlier"}\n')
    os.link(out / "benchmarks.jsonl", tmp_path / "earlier")
    r = gpu_check(tmp_path, ROOT)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr)
    assert (tmp_path / "earlier").read_text() == '{"benchmark": "earlier"}\n'
    assert json.loads((out / "benchmarks.jsonl").read_text())["benchmark"] == "engine_speed"
    assert not list(out.glob(".*.tmp"))
