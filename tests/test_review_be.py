"""The benchmark scripts run for the first time (review BE): gpu_check.sh refuses a bad BUDGET and a Python that
cannot import what its steps need before any step (one line, exit 2), kills a step that ignores its time limit,
and keeps the figures of the steps that finished when it is stopped from outside; scaling.py prints each row as
it is measured; latency_table.py refuses a Kendall's τ of one architecture.

gpu_check.sh runs with a stand-in for python3 (its PY) that reports a GPU; none of these tests needs one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))


def _env(**extra: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), **extra)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def fake_python(tmp_path: Path, body: str) -> Path:
    """A stand-in for python3: it answers gpu_check's GPU question with True, then runs ``body`` (sh)."""
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\n"
                    'case "$*" in *"torch.cuda.is_available()"*) echo True; exit 0 ;; esac\n'
                    f'echo "$*" >>"{tmp_path}/calls"\n'
                    f"{body}\n")
    fake.chmod(0o755)
    return fake


def gpu_check(tmp_path: Path, fake: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(BENCH / "gpu_check.sh")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout, env=_env(OUT=str(tmp_path / "gpu"), PY=str(fake), **env))


def one_line_refusal(r: subprocess.CompletedProcess, tmp_path: Path, *words: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == "", r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0] == (tmp_path / "gpu" / "summary.txt").read_text().strip()
    assert "nothing was run" in lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not (tmp_path / "gpu" / "all.log").exists()
    return lines[0]


# ---------------------------------------------------------------------------------------- gpu_check.sh


@pytest.mark.parametrize("budget", ["8m", "abc", "-5", "4.5"])
def test_gpu_check_refuses_a_budget_that_is_not_whole_seconds(tmp_path, budget):
    # was: BUDGET=8m ran no step ("value too great for base" per step) and exited 0; abc: "unbound variable",
    # exit 1, after nvidia-smi and a Python start; -5: every step "skipped: budget spent", exit 1
    r = gpu_check(tmp_path, fake_python(tmp_path, "exit 0"), BUDGET=budget)
    one_line_refusal(r, tmp_path, f"BUDGET={budget}", "whole number of seconds")
    assert not (tmp_path / "calls").exists()  # refused before anything started, the GPU question included


def test_gpu_check_stops_before_any_step_when_a_module_is_missing(tmp_path):
    # the real interpreter, with lark (a dependency the device machine lacks unless .whl/ brings it) hidden by
    # a package of that name that cannot be imported, first on its PYTHONPATH
    (tmp_path / "lark").mkdir()
    (tmp_path / "lark" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'lark'\", name='lark')\n")
    fake = fake_python(tmp_path, f'PYTHONPATH="{tmp_path}:$PYTHONPATH" exec "{sys.executable}" "$@"')
    r = gpu_check(tmp_path, fake, timeout=120)
    line = one_line_refusal(r, tmp_path, "automl.pipeline", "No module named 'lark'", ".whl/")
    assert "Traceback" not in line


def test_gpu_check_keeps_the_figures_of_finished_steps_when_stopped_from_outside(tmp_path):
    # the device tool stops a command at its limit: the figures of the steps that finished must be in OUT
    fake = fake_python(tmp_path, 'case "$*" in\n'
                                 '  *engine_speed.py*) echo \'{"benchmark": "engine_speed", "rows": []}\' ;;\n'
                                 '  *scaling.py*) exec sleep 30 ;;\n'
                                 'esac\nexit 0')
    p = subprocess.Popen(["bash", str(BENCH / "gpu_check.sh")], cwd=tmp_path, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True,
                         env=_env(OUT=str(tmp_path / "gpu"), PY=str(fake)))
    log = tmp_path / "gpu" / "all.log"
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and "=== scaling" in log.read_text()):
            assert p.poll() is None and time.monotonic() < deadline, "gpu_check.sh never reached its scaling step"
            time.sleep(0.1)
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    lines = (tmp_path / "gpu" / "benchmarks.jsonl").read_text().splitlines()
    assert [json.loads(x)["benchmark"] for x in lines] == ["engine_speed"]


# ---------------------------------------------------------------------------------------- scaling.py


def test_scaling_prints_each_row_before_the_next_is_measured(monkeypatch, capsys):
    import scaling
    from _common import ChildFailed

    def run(nproc, device):
        if nproc == 2:
            raise ChildFailed(["torchrun"], 1, "stopped")
        return {"processes": 1, "device": device, "threads": 1, "weights_s": 2.0, "images_per_s": 1417.0,
                "theta_s": 0.5}

    monkeypatch.setattr(scaling, "run", run)
    monkeypatch.setattr(sys, "argv", ["scaling.py"])
    with pytest.raises(SystemExit) as e:
        scaling.run_main(scaling.main)
    assert e.value.code == 1
    out = capsys.readouterr().out
    assert "1 process on cpu: 1417 img/s" in out and "weight phase 2.00 s" in out, out


# ---------------------------------------------------------------------------------------- latency_table.py


def test_latency_table_refuses_one_architecture():
    # was: --archs 1 measured, then printed "kendall_tau": NaN, which is not JSON
    r = subprocess.run([sys.executable, str(BENCH / "latency_table.py"), "--archs", "1", "--spaces", "digits",
                        "--repeat", "1", "--measure-repeat", "1", "--no-int8"], cwd=ROOT, env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--archs" in lines[0] and ">= 2" in lines[0], r.stderr
    assert r.stdout == ""


def _steps() -> dict[str, list[str]]:
    """gpu_check.sh's steps: name -> the command's words after the interpreter (continuation lines joined)."""
    import shlex

    text = (BENCH / "gpu_check.sh").read_text().replace("\\\n", " ")
    steps = {}
    for line in text.splitlines():
        if line.startswith("step "):
            words = shlex.split(line, comments=True)
            steps[words[1]] = words[5:]  # step NAME NEED LIMIT $PY ...
    return steps


def test_gpu_check_steps_name_files_flags_and_recipe_keys_that_exist():
    # a renamed flag or recipe key would be found only on the lent GPU, at the cost of its minutes
    from automl.recipe import load_recipe

    steps = _steps()
    assert {"tests", "engine_speed", "scaling", "search_cost", "quickstart"} <= set(steps), steps
    for name, words in steps.items():
        files = [w for w in words if w.endswith((".py", ".space", ".yaml"))]
        assert all((ROOT / f).is_file() for f in files), (name, files)
        scripts = [f for f in files if f.startswith("benchmarks/")]
        for flag in (w for w in words if w.startswith("--") and scripts):
            source = (ROOT / scripts[0]).read_text() + (BENCH / "_common.py").read_text()  # space_parser's flags
            assert f'"{flag}"' in source, (name, flag)
        recipes = [f for f in files if f.endswith(".yaml")]
        if recipes:
            load_recipe(ROOT / recipes[0], [w for w in words if "=" in w and not w.startswith("-")])
