"""Review DN: a run whose latency table was profiled with the CPU clock refuses a coarse CPU clock at start-up; the
benchmarks' machine record counts the CPUs the process may use.

- A run times its exports with its search.cost_table's clock; on a system whose thread CPU clock is coarse
  (Windows: 15.6 ms steps) the export refused it, but only at the first export, after the weight phase, the search
  and the retraining. Now the run's start-up refuses it, naming the recipe's search.cost_table and its line;
- ``benchmarks/_common.machine()`` recorded ``os.cpu_count()`` as the cores, where automl's own records count the
  CPUs the process may run on (:func:`automl.profile.usable_cores`).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import time
from pathlib import Path

import pytest
from test_edge_fixes import _fake_time  # a latency of exactly 1 ms + 1 µs per parameter

import automl.profile as profile
from automl.cli import main
from automl.errors import RecipeError
from automl.pipeline.workspace import open_workspace
from automl.pipeline.setup import check_latency_clock, check_member_folder, load_spaces, other_run
from automl.recipe import load_recipe

pytestmark = pytest.mark.usefixtures("one_thread", "no_cpu_quota")  # conftest: the cores are shared; affinities faked

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
TINY = ["data.limit_train=96", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.weight_epochs=1", "search.theta_epochs=1", "search.epsilons=[0.5]", "search.lam=2",
        "retrain.epochs=0", "device=cpu", "threads=1"]


@pytest.fixture(scope="module")
def wall_table(tmp_path_factory) -> Path:
    """A digits latency table (fake clock: no real timing), as `space profile` writes it: the wall clock."""
    path = tmp_path_factory.mktemp("dn") / "digits.latency.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(profile, "time_module", _fake_time)
        assert main(["space", "profile", DIGITS, "--repeat", "2", "--calibrate", "3", "--out", str(path)]) == 0
    return path


@pytest.fixture()
def cpu_table(wall_table, tmp_path) -> Path:
    """The same table as profiled with `--clock cpu --threads 1 --batch 1`."""
    t = json.loads(wall_table.read_text())
    t.update(batch=1, clock="cpu")
    t["machine"]["threads"] = 1
    path = tmp_path / "cpu.latency.json"
    path.write_text(json.dumps(t))
    return path


def _recipe(tmp_path: Path, table: Path) -> Path:
    text = (ROOT / "recipes" / "quickstart.yaml").read_text().replace("../spaces/digits.space", DIGITS)
    text = text.replace("  cost: params", f"  cost: latency\n  cost_table: {table}")
    path = tmp_path / "latency.yaml"
    path.write_text(text)
    return path


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def _coarse_cpu_clock(monkeypatch) -> None:
    """A thread CPU clock that advances in scheduler ticks of 15.6 ms, as Windows' does."""
    real = time.perf_counter
    monkeypatch.setattr(time, "thread_time", lambda: math.floor(real() / 0.0156) * 0.0156)


# ---- 1. a coarse CPU clock is refused at the run's start-up -------------------------------------------------------

def test_a_run_refuses_a_coarse_cpu_clock_before_any_training(cpu_table, tmp_path, monkeypatch, capsys):
    """Was: the weight phase, the search and the retraining ran, then the first export refused the clock. Now one
    message naming the recipe's search.cost_table line and the wall clock, exit 2, before any training."""
    recipe = _recipe(tmp_path, cpu_table)
    out = tmp_path / "run"
    _coarse_cpu_clock(monkeypatch)
    assert main(["run", str(recipe), "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    line = _line_of(recipe, "cost_table:")
    assert err.startswith(f"{recipe}:{line}: search.cost_table: {cpu_table} was profiled with \"clock\": \"cpu\""), err
    assert "in steps of 15.6 ms" in err and "--clock wall" in err and "export.onnx" in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    # nothing of the run was done: no log of metrics, no checkpoint (at most a failed start-up's files)
    left = {p.name for p in out.iterdir()} if out.exists() else set()
    assert not left & {"metrics.jsonl", "checkpoints", "results.json", "export"}, left


def test_a_clock_that_never_advances_is_refused_at_start_up(cpu_table, tmp_path, monkeypatch):
    monkeypatch.setattr(time, "thread_time", lambda: 1.0)
    recipe = load_recipe(_recipe(tmp_path, cpu_table), ["device=cpu"])
    with pytest.raises(RecipeError, match=r"search\.cost_table: .*advances too rarely to be read.*--clock wall"):
        load_spaces(recipe)


def test_the_refusal_names_the_profile_command_with_the_retrained_spaces_set_values(cpu_table, tmp_path, monkeypatch):
    """The table describes the retrained space: the wall-clock profile it points to has the same --set values."""
    monkeypatch.setattr(time, "thread_time", lambda: 1.0)
    recipe = load_recipe(_recipe(tmp_path, cpu_table), ["device=cpu", "space_args={head: 64}",
                                                        "retrain.space_args={width: 2.0}"])
    with pytest.raises(RecipeError, match=rf"`automl space profile {DIGITS} --set head=64 --set width=2.0 --clock "
                                          rf"wall --out TABLE.json`"):
        check_latency_clock(recipe, "cpu")


def test_the_clock_is_not_refused_where_the_run_times_no_export(cpu_table, tmp_path, monkeypatch):
    """export.onnx false: no export is timed, the table's costs serve the search alone."""
    _coarse_cpu_clock(monkeypatch)
    spaces = load_spaces(load_recipe(_recipe(tmp_path, cpu_table), ["device=cpu", "export.onnx=false"]))
    assert spaces.latency["clock"] == "cpu"


def test_automl_rank_and_a_workspace_time_no_export_and_take_a_coarse_clock_table(cpu_table, tmp_path, monkeypatch,
                                                                                    capsys):
    """The clock is checked where exports are timed: `automl rank` of a finished run (a run of another machine, or
    of an older automl) and a workspace time none, and are not refused for a table whose clock is coarse here."""
    recipe, out = _recipe(tmp_path, cpu_table), tmp_path / "run"
    assert main(["run", str(recipe), "--out", str(out), *TINY, "export.onnx=false"]) == 0
    (out / "recipe.resolved.yaml").write_text((out / "recipe.resolved.yaml").read_text()
                                              .replace("onnx: false", "onnx: true"))
    _coarse_cpu_clock(monkeypatch)
    capsys.readouterr()
    assert main(["rank", str(out), "--archs", "3", "--retrain-epochs", "0"]) == 0, capsys.readouterr().err
    assert json.loads((out / "results.json").read_text())["ranking"]["archs"]
    ws = open_workspace(load_recipe(recipe, ["device=cpu", *TINY]))
    assert ws.spaces.latency["clock"] == "cpu"


def test_a_wall_clock_table_and_a_fine_cpu_clock_pass(wall_table, cpu_table, tmp_path, monkeypatch):
    assert load_spaces(load_recipe(_recipe(tmp_path, cpu_table), ["device=cpu"])).latency["clock"] == "cpu"
    _coarse_cpu_clock(monkeypatch)  # a wall-clock table's exports never read the CPU clock
    assert load_spaces(load_recipe(_recipe(tmp_path, wall_table), ["device=cpu"])).latency["clock"] == "wall"


# ---- 2. the benchmarks' machine record ----------------------------------------------------------------------------

@pytest.fixture()
def common(monkeypatch):
    """benchmarks/_common.py, imported as the benchmark scripts import it (their folder on sys.path)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return importlib.import_module("_common")


def test_benchmark_machine_records_the_cores_this_process_may_use(common, monkeypatch):
    """Under ``taskset -c 0,1`` on a 16-CPU machine the benchmarks recorded 16 cores; they record 2, as automl's
    own machine records do, and the machine's 16 as machine_cores."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    m = common.machine()
    assert ", 2 CPU cores (of the machine's 16), " in m and "16 CPU cores," not in m, m
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert ", 16 CPU cores, " in common.machine() and "of the machine's" not in common.machine()


# ---- 3. another run's folder that cannot be resolved ---------------------------------------------------------------

@pytest.mark.parametrize("recorded", ["loop", "a\x00b"])
def test_a_recorded_run_folder_that_cannot_be_resolved_is_not_a_traceback(tmp_path, recorded):
    """A member folder of a shared export.dir whose manifest's run is a loop of symbolic links (or holds a NUL
    byte): Path.resolve raised RuntimeError (ValueError) out of the check made just before a member's export, after
    the whole training. Now it is another run's folder, one that does not exist: not refused."""
    (tmp_path / "loop").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop")
    owner = str(tmp_path / recorded) if recorded == "loop" else recorded
    folder = tmp_path / "export" / "eps-0.5"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"run": owner}))
    assert other_run(folder, (tmp_path / "run").resolve()) == owner
    check_member_folder(folder, tmp_path / "run", "automl run R --resume")  # nothing there: not refused
