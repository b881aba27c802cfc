"""The benchmark scripts (benchmarks/*.py, gpu_check.sh) as a user meets them: a mistake in the arguments ends in
one message and exit 2, found right after parsing, before any measurement (review K, F2-F5, F7, F8).

Every case runs a script as a subprocess with arguments that must be refused; none runs a benchmark.
gpu_check.sh also runs with a stand-in for python3 that reports a GPU and exits as told, to check the
outcome it records for each step."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def bench(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / script), *args], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def refused(r: subprocess.CompletedProcess, *words: str) -> str:
    """``r`` exited 2 with one line on stderr, no traceback, naming every word; the line."""
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


# ---------------------------------------------------------------------------------------- the shared helpers


def test_positive_int_refuses_zero_and_words():
    import argparse

    from _common import int_list, names, positive_int

    assert positive_int("3") == 3
    for bad in ("0", "-1", "x", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_int(bad)
    assert int_list()("0,1,2") == [0, 1, 2]
    with pytest.raises(argparse.ArgumentTypeError):
        int_list()("0,x")
    with pytest.raises(argparse.ArgumentTypeError):
        int_list(1)("0")
    assert names(["a", "b"])("b,a") == ["b", "a"]
    with pytest.raises(argparse.ArgumentTypeError, match="'c'.*choose from a, b"):
        names(["a", "b"])("a,c")


def test_every_located_error_is_a_user_error():
    from automl.dsl._parser import ParamError
    from automl.errors import DataError, RecipeError, SpaceError, UserError

    for cls in (RecipeError, SpaceError, ParamError, DataError):
        assert issubclass(cls, UserError)


def test_run_main_prints_a_user_error_and_exits_2(capsys):
    from _common import ChildFailed, run_main

    from automl.errors import RecipeError, UserError

    def bad():
        raise UserError("--set 'width': expected KEY=VALUE")

    with pytest.raises(SystemExit) as e:
        run_main(bad)
    assert e.value.code == 2
    assert capsys.readouterr().err == "error: --set 'width': expected KEY=VALUE\n"

    def located():
        raise RecipeError("must be an integer", "r.yaml", "search.lam")

    with pytest.raises(SystemExit) as e:
        run_main(located)
    assert e.value.code == 2 and capsys.readouterr().err == "r.yaml: search.lam: must be an integer\n"

    def child():
        raise ChildFailed([sys.executable, "-m", "automl", "run", "r.yaml"], 2)

    with pytest.raises(SystemExit) as e:
        run_main(child)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "automl run r.yaml" in err and "exit 2" in err

    def fine(x):
        assert x == 5

    with pytest.raises(SystemExit) as e:
        run_main(fine, 5)
    assert not e.value.code


def test_child_failure_other_than_2_exits_1(capsys):
    from _common import ChildFailed, run_main

    def crash():
        raise ChildFailed(["python", "-m", "automl", "run"], 1, detail="RuntimeError: boom")

    with pytest.raises(SystemExit) as e:
        run_main(crash)
    assert e.value.code == 1 and "RuntimeError: boom" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- F2: counts and names

CASES = [
    ("engine_overhead.py", ["--set", "width"], "KEY=VALUE"),
    ("engine_overhead.py", ["--set", "foo=1"], "foo"),
    ("engine_overhead.py", ["/nonexist.space"], "/nonexist.space"),
    ("engine_overhead.py", ["--lam", "0"], "--lam"),
    ("engine_overhead.py", ["--device", "tpu"], "--device"),
    ("engine_overhead.py", ["--batch", "0"], "--batch"),
    ("engine_speed.py", ["--iters", "0"], "--iters"),
    ("supernet_overhead.py", ["--archs", "0"], "--archs"),
    ("depthwise_grad.py", ["--channels", "0"], "--channels"),
    ("export_latency.py", ["--runs", "0"], "--runs"),
    ("export_latency.py", ["--threads", "0"], "--threads"),
    ("export_latency.py", ["--set", "width"], "KEY=VALUE"),
    ("export_latency.py", ["/nonexist/export"], "/nonexist/export"),
    ("search_cost.py", ["threads=1", "search.lam=abc", "--no-sweep"], "search.lam"),
    ("search_cost.py", ["/nonexist/none.yaml", "--no-sweep"], "none.yaml"),
    ("search_cost.py", ["--repeat", "0", "--no-sweep"], "--repeat"),
    ("search_quality.py", ["--seeds", "0"], "--seeds"),
    ("search_quality.py", ["--N", "3"], "--N"),
    ("search_quality.py", ["--methods", "bogus"], "bogus"),
    ("latency_table.py", ["--archs", "0"], "--archs"),
    ("latency_table.py", ["--batch", "0"], "--batch"),
    ("threads.py", ["--busy", "x"], "--busy"),
    ("threads.py", ["--repeat", "0"], "--repeat"),
    ("family_budgets.py", ["--seeds", "x"], "--seeds"),
    ("family_budgets.py", ["--methods", "bogus"], "bogus"),
    ("ranking.py", ["--archs", "0"], "--archs"),
    ("ranking.py", ["--stability-seeds", "a"], "--stability-seeds"),
]


def _first_in_default(cases):
    """The first case in the default suite, the others heavy (every case starts a Python with torch, a few
    seconds each; CI runs them all)."""
    for n, (script, args, word) in enumerate(cases):
        yield pytest.param(script, args, word, marks=[pytest.mark.heavy] if n else [], id=f"{script}-{' '.join(args)}")


@pytest.mark.parametrize("script,args,word", list(_first_in_default(CASES)))
def test_a_mistake_is_one_message_and_exit_2(script, args, word):
    refused(bench(script, *args), word)


# ---------------------------------------------------------------------------------------- F4: choice-like flags


@pytest.mark.heavy  # a subprocess with torch: seconds
def test_threads_refuses_an_unknown_workload():
    refused(bench("threads.py", "--workloads", "foo", "--repeat", "1", "--busy", "0"), "foo", "digits")


@pytest.mark.heavy  # a subprocess with torch: seconds
def test_search_quality_refuses_an_unknown_mode():
    refused(bench("search_quality.py", "--iters", "20", "--modes", "foo"), "foo", "budget")


# ---------------------------------------------------------------------------------------- F3: checked before the work


@pytest.mark.heavy  # a subprocess with torch: seconds
def test_latency_table_checks_int8_run_before_measuring(tmp_path):
    r = bench("latency_table.py", "--spaces", "digits", "--archs", "2", "--int8-run", str(tmp_path / "nope"),
              timeout=60)
    refused(r, str(tmp_path / "nope"), "results.json")
    assert r.stdout == ""  # nothing was profiled


def test_ranking_checks_options_before_retraining(tmp_path):
    r = bench("ranking.py", "--options", "unifrom", "--no-stability", "--out", str(tmp_path / "rk"), timeout=60)
    refused(r, "unifrom", "uniform")
    assert not (tmp_path / "rk").exists() or not any((tmp_path / "rk").iterdir())


@pytest.mark.heavy  # starts automl runs or imports the recipe machinery: seconds each
def test_ranking_checks_the_recipe_before_retraining(tmp_path):
    r = bench("ranking.py", "search.lam=abc", "--out", str(tmp_path / "rk"), timeout=60)
    refused(r, "search.lam")
    assert not (tmp_path / "rk").exists() or not any((tmp_path / "rk").iterdir())


# ---------------------------------------------------------------------------------------- a child's exit 2


@pytest.mark.heavy  # starts automl runs or imports the recipe machinery: seconds each
def test_ranking_and_threads_children_exit_2_raise_child_failed(tmp_path):
    import ranking
    import threads
    from _common import ChildFailed

    with pytest.raises(ChildFailed) as e:
        ranking.automl_run(str(ROOT / "recipes" / "quickstart.yaml"), ["search.bogus=1"], tmp_path / "r")
    assert e.value.exit_code == 2 and "automl run" in e.value.text()
    with pytest.raises(ChildFailed) as e:
        threads.run_digits("bogus", 1, 120)
    assert e.value.exit_code == 2 and "threads=bogus" in e.value.text()


# ---------------------------------------------------------------------------------------- F1, F5: the workloads


def test_scaling_pins_one_thread_and_one_supernet_in_every_row():
    import scaling

    for nproc in (1, 2):
        cmd, env = scaling.command(nproc, "cpu", Path("/tmp/x"))
        assert "threads=1" in cmd and "search.supernets=1" in cmd
        assert env["OMP_NUM_THREADS"] == "1"
        # a local rendezvous on a port the kernel picks: no fixed --master_port to collide with another run
        assert "--standalone" in cmd and not any(a.startswith("--master_port") for a in cmd)
    assert "supernets=1" in scaling.__doc__ and "two epochs" in scaling.__doc__


@pytest.mark.parametrize("nproc", [1, 2])
def test_scaling_counts_the_images_the_weight_phase_trains_on(nproc):
    """images/s divides by what the ranks' D_W loaders yield in one epoch, not by a count of the digits."""
    import scaling

    from automl.recipe import load_recipe
    from automl.train.data import build_data

    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml", scaling.OVERRIDES)
    seen = sum(len(y) for rank in range(nproc) for _, y in
               build_data(recipe.data, recipe.base_dir, recipe.seed, "cpu", rank, nproc).w.epoch(0))
    assert scaling.weight_images(nproc) == seen


def test_threads_digits_workload_is_one_supernet():
    import threads

    cmd = threads.digits_command("auto", 1, Path("/tmp/x"))
    assert "search.supernets=1" in cmd and "threads=auto" in cmd
    assert "search.supernets=1" in threads.__doc__


# ---------------------------------------------------------------------------------------- F8: the small slips


def test_int8_rows_of_a_budgets_run_name_the_budget_and_a_rounded_eps(tmp_path):
    import latency_table

    q = {"latency_ms": 1.0, "size_bytes": 30, "fp32_size_bytes": 100, "fp32_onnx_test_accuracy": 0.9,
         "test_accuracy": 0.89}
    archs = [{"budget": None, "epsilon": 0.0, "latency_ms": 2.0, "int8": q},
             {"budget": 80000.0, "epsilon": 0.0, "latency_ms": 2.0, "int8": q},
             {"budget": 40000.0, "epsilon": 0.507046702629149, "latency_ms": 2.0, "int8": q}]
    (tmp_path / "results.json").write_text(json.dumps({"recipe": "quickstart", "architectures": archs}))
    labels = [r["model"] for r in latency_table.int8_from_run(tmp_path)]
    assert len(set(labels)) == 3, labels
    assert "budget=80000" in labels[1] and "eps=0.507" in labels[2] and "0.50704" not in labels[2], labels


@pytest.mark.heavy  # a subprocess with torch: seconds
def test_ranking_help_shows_the_whole_first_sentence():
    r = bench("ranking.py", "--help")
    assert r.returncode == 0
    assert "(issue #20)" in " ".join(r.stdout.split())


def test_usage_lines_name_the_real_commands():
    assert "/work/venv" not in (BENCH / "engine_speed.py").read_text()
    import search_cost

    assert "--repeat" in search_cost.__doc__.split("\n\n")[1]


# ---------------------------------------------------------------------------------------- F7: gpu_check.sh


@pytest.mark.heavy  # python3 imports torch: seconds (the test below covers the script's logic with a fake)
@pytest.mark.skipif(torch.cuda.is_available(), reason="runs every GPU step on a GPU machine")
def test_gpu_check_stops_at_once_without_a_gpu(tmp_path):
    r = subprocess.run(["bash", str(BENCH / "gpu_check.sh")], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env=dict(_env(), OUT=str(tmp_path / "gpu"), PY=sys.executable, BUDGET="30"))
    assert r.returncode != 0
    out = (r.stdout + r.stderr).strip().splitlines()
    assert len(out) == 1 and "GPU" in out[0], out
    assert (tmp_path / "gpu" / "summary.txt").read_text().strip() == out[0]


# A stand-in for python3 (gpu_check.sh's PY): it reports a GPU; a step whose command contains $FAIL exits $FAIL_RC,
# the others exit 0
FAKE_PY = """#!/bin/sh
case "$*" in
  *"torch.cuda.is_available()"*) echo True; exit 0 ;;
  *"import torch, timm"*) echo "torch 0 timm 0"; exit 0 ;;
esac
echo "fake step: $*"
if [ -n "$FAIL" ]; then case "$*" in *"$FAIL"*) exit "$FAIL_RC" ;; esac; fi
exit 0
"""
GPU_STEPS = ["tests", "engine_speed", "supernet_overhead_digits", "supernet_overhead_proxyless",
             "engine_overhead_proxyless", "scaling", "search_cost", "quickstart"]


def gpu_check(tmp_path: Path, **env: str) -> tuple[int, list[str]]:
    """gpu_check.sh run with FAKE_PY in an empty folder (no .whl/ to install); its exit status and the
    lines of its summary.txt that give a step's outcome."""
    fake = tmp_path / "python3"
    fake.write_text(FAKE_PY)
    fake.chmod(0o755)
    r = subprocess.run(["bash", str(BENCH / "gpu_check.sh")], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60, env=dict(_env(), OUT=str(tmp_path / "gpu"), PY=str(fake), **env))
    lines = (tmp_path / "gpu" / "summary.txt").read_text().splitlines()
    return r.returncode, [x for x in lines if x.split(" ", 1)[0] in GPU_STEPS]


@pytest.mark.parametrize("answer,says", [("echo False", "torch.cuda.is_available() is False"),
                                         ("echo 'ModuleNotFoundError: torch' >&2; exit 1", "cannot import torch")],
                         ids=["no_cuda", "no_torch"])
def test_gpu_check_without_a_gpu_runs_no_step(tmp_path, answer, says):
    fake = tmp_path / "python3"
    fake.write_text(f"#!/bin/sh\n{answer}\n")
    fake.chmod(0o755)
    r = subprocess.run(["bash", str(BENCH / "gpu_check.sh")], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60, env=dict(_env(), OUT=str(tmp_path / "gpu"), PY=str(fake)))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [(tmp_path / "gpu" / "summary.txt").read_text().strip()]
    assert "no GPU to check" in r.stderr and says in r.stderr and "nothing was run" in r.stderr, r.stderr


def test_gpu_check_records_a_failed_steps_exit_status(tmp_path):
    code, steps = gpu_check(tmp_path, FAIL="engine_speed.py", FAIL_RC="3")
    assert code == 1
    assert [x.split(" ", 1)[0] for x in steps] == GPU_STEPS, steps
    assert re.fullmatch(r"engine_speed FAILED rc=3 in \d+ s \(limit 45\)", steps[1]), steps
    others = steps[:1] + steps[2:]
    assert all(re.fullmatch(r"\w+ done in \d+ s \(limit \d+\)", x) for x in others), steps


def test_gpu_check_exits_0_when_every_step_passes(tmp_path):
    code, steps = gpu_check(tmp_path)
    assert code == 0
    assert [x.split(" ", 1)[0] for x in steps] == GPU_STEPS and all(" done in " in x for x in steps), steps


def test_gpu_check_skips_every_step_once_its_budget_is_spent(tmp_path):
    code, steps = gpu_check(tmp_path, BUDGET="10")
    assert code == 1
    assert steps == [f"{name} skipped: budget spent" for name in GPU_STEPS]


# ---------------------------------------------------------------------------------------- shape (#15)


def test_benchmark_functions_are_short():
    bad = []
    for p in sorted(BENCH.glob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 80:
                    bad.append(f"{p.name}:{node.lineno} {node.name}: {n} lines")
    assert not bad, bad
