"""The recipe's ``threads: auto | N``: the auto rule, who wins, what a run records, resume keeps the count."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.pipeline import Run
from automl.pipeline.setup import load_spaces
from automl.recipe import load_recipe
from automl.train import threads as th
from automl.train.threads import WORK_PER_THREAD, choose_threads, env_threads, resolve_threads, space_elements

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
TINY = ["data.limit_train=96", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.weight_epochs=1", "search.theta_epochs=1", "search.epsilons=[0,0.5]", "search.lam=2",
        "retrain.epochs=0", "export.onnx=false", "device=cpu"]
BIG = 50 * WORK_PER_THREAD  # work that would keep 50 threads busy


# ------------------------------------------------------------------------------------------ the rule

@pytest.mark.parametrize("work,cores,busy,local,expected", [
    (184_320, 16, 0.0, 1, 1),                   # the digits quickstart: too small for a second thread
    (WORK_PER_THREAD - 1, 2, 0.0, 1, 1),
    (2 * WORK_PER_THREAD, 16, 0.0, 1, 2),       # the work, not the machine, limits
    (BIG, 2, 0.0, 1, 2),                        # the machine limits
    (BIG, 2, 1.0, 1, 1),                        # one core busy: never more than the free ones
    (BIG, 2, 2.0, 1, 1),                        # every core busy: still one thread, never zero
    (BIG, 2, 5.0, 1, 1),                        # more busy than cores (a noisy sample)
    (BIG, 8, 0.4, 1, 8),                        # background noise below half a core is not a busy core
    (BIG, 8, 0.6, 1, 7),
    (BIG, 8, 2.5, 1, 5),                        # 2.5 rounds up to 3
    (BIG, 16, 0.0, 2, 8),                       # torchrun: two processes split the cores
    (BIG, 16, 3.0, 2, 6),                       # ... the free ones: (16 - 3) // 2
    (BIG, 16, 0.0, 3, 5),
    (BIG, 2, 0.0, 4, 1),                        # more processes than cores
    (3 * WORK_PER_THREAD, 16, 0.0, 2, 3),       # the work limits below the share
    (None, 4, 1.0, 1, 3),                       # work unknown: the free cores
])
def test_auto_rule(work, cores, busy, local, expected):
    n, reason = choose_threads(work, cores, busy, local)
    assert n == expected, reason
    assert f"{cores} core" in reason


def test_auto_rule_says_why():
    assert "too small to gain from more threads" in choose_threads(184_320, 16, 0.0)[1]
    assert "free core" in choose_threads(BIG, 2, 1.0)[1]
    assert "shared by 2 processes" in choose_threads(BIG, 16, 0.0, 2)[1]


def test_step_work_orders_the_spaces():
    digits = space_elements(load_compiled(ROOT / "spaces" / "digits.space"))
    proxyless = space_elements(load_compiled(ROOT / "spaces" / "proxylessnas.space"))
    # 4x4 maps after the stem against 112x112: per image the 224² network has ~450x the activations
    assert 2_000 < digits < 5_000 and 1_000_000 < proxyless < 2_000_000
    # the quickstart's step (batch 64) runs one thread; ProxylessNAS at 224², batch 8, may run several
    assert digits * 64 < WORK_PER_THREAD and proxyless * 8 >= 4 * WORK_PER_THREAD
    cells = space_elements(load_compiled(ROOT / "spaces" / "enas_micro.space", {"channels": "16"}))
    wider = space_elements(load_compiled(ROOT / "spaces" / "enas_micro.space", {"channels": "32"}))
    assert wider == 2 * cells or abs(wider - 2 * cells) < 0.05 * wider  # widths double, the stem's too


def _step_work(recipe) -> int:  # as Run computes it: the spaces the run compiles, the recipe's batch sizes
    spaces = load_spaces(recipe)
    return th.spaces_work(spaces.search, spaces.retrain, recipe.data.batch_size, recipe.retrain.batch_size,
                          recipe.retrain.epochs)


def test_step_work_takes_the_larger_retraining():
    base = ["retrain.epochs=1"]
    plain = _step_work(load_recipe(QUICK, base))
    assert _step_work(load_recipe(QUICK, base + ["retrain.batch_size=256"])) == 4 * plain
    assert _step_work(load_recipe(QUICK, ["retrain.epochs=0", "retrain.batch_size=256"])) == plain


# /proc/stat columns: user nice system idle iowait irq softirq steal guest guest_nice (guest time is already in
# user). Over the fake 0.15 s every CPU runs 100 ticks: cpu0 is half busy (idle 40 + iowait 10; its 30 guest
# ticks are inside user), cpu1, its hyper-thread, 10 % busy; cpu2 busy, cpu3, its hyper-thread, idle; cpu4 is
# busy but not one this process may run on. The "cpu" line sums every CPU and is not one.
STAT_BEFORE = """cpu  500 0 0 500 0 0 0 0 0 0
cpu0 100 0 0 100 0 0 0 0 0 0
cpu1 100 0 0 100 0 0 0 0 0 0
cpu2 100 0 0 100 0 0 0 0 0 0
cpu3 100 0 0 100 0 0 0 0 0 0
cpu4 100 0 0 100 0 0 0 0 0 0
intr 5 0 0
"""
STAT_AFTER = """cpu  9000 0 0 500 0 0 0 0 0 0
cpu0 130 0 10 140 10 0 5 5 30 0
cpu1 110 0 0 190 0 0 0 0 0 0
cpu2 200 0 0 100 0 0 0 0 0 0
cpu3 100 0 0 200 0 0 0 0 0 0
cpu4 200 0 0 100 0 0 0 0 0 0
intr 9 0 0
"""


@pytest.fixture
def fake_machine(monkeypatch):
    """CPUs 0-3 allowed, two physical cores of two hyper-threads each, /proc/stat as above (the text after
    the sleep once busy_cores has slept), and ``files`` to add or remove a file (a cgroup quota)."""
    files = {"/proc/stat": STAT_BEFORE}
    for cpu in range(5):
        files[f"/sys/devices/system/cpu/cpu{cpu}/topology/core_id"] = f"{cpu // 2}\n"
        files[f"/sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id"] = "0\n"
    monkeypatch.setattr(th, "_read", files.get)
    monkeypatch.setattr(th, "_cpus", lambda: [0, 1, 2, 3])
    monkeypatch.setattr(th, "time", SimpleNamespace(sleep=lambda s: files.update({"/proc/stat": STAT_AFTER})))
    return files


def test_busy_cores_counts_each_core_by_its_busiest_thread(fake_machine):
    assert th.physical_cores() == 2
    # core 0: max(0.5, 0.1); core 1: max(1.0, 0.0); cpu4 and the "cpu" line left out
    assert th.busy_cores() == pytest.approx(1.5)


def test_busy_cores_is_capped_by_the_cgroup_quota(fake_machine):
    fake_machine["/sys/fs/cgroup/cpu.max"] = "100000 100000\n"  # docker --cpus=1
    assert th.physical_cores() == 1 and th.busy_cores() == pytest.approx(1.0)
    fake_machine["/sys/fs/cgroup/cpu.max"] = "max 100000\n"  # no quota
    fake_machine["/proc/stat"] = STAT_BEFORE
    assert th.physical_cores() == 2 and th.busy_cores() == pytest.approx(1.5)


def test_busy_cores_without_proc_stat_is_none(fake_machine):
    del fake_machine["/proc/stat"]
    assert th.busy_cores() is None


def test_busy_cores_reads_this_machines_proc_stat():
    """The real file's layout (the fake tests above fix the arithmetic): a tick count for every CPU this process
    may run on, and a busy count between none and every core."""
    if th._cpu_times(th._cpus()) == {}:
        pytest.skip("no /proc/stat")
    ticks = th._cpu_times(th._cpus())
    assert set(ticks) == set(th._cpus()) and all(0 <= idle <= total for idle, total in ticks.values())
    assert 0.0 <= th.busy_cores(0.05) <= th.physical_cores()


# ------------------------------------------------------------------------------------------ who wins

def test_env_threads():
    assert env_threads({}) is None
    assert env_threads({"OMP_NUM_THREADS": ""}) is None
    assert env_threads({"OMP_NUM_THREADS": "3"}) == 3
    assert env_threads({"OMP_NUM_THREADS": "4,2"}) == 4  # OpenMP's nested list: the outer level
    # torchrun's own default for its workers is not the user's choice; the user's 1 is
    assert env_threads({"OMP_NUM_THREADS": "1"}, local_world_size=2, parent_without_omp=True) is None
    assert env_threads({"OMP_NUM_THREADS": "1"}, local_world_size=2, parent_without_omp=False) == 1
    assert env_threads({"OMP_NUM_THREADS": "1"}, local_world_size=1, parent_without_omp=True) == 1
    for bad in ("0", "many", "-2"):
        with pytest.raises(UserError, match="OMP_NUM_THREADS"):
            env_threads({"OMP_NUM_THREADS": bad})


def test_precedence():
    env = {"OMP_NUM_THREADS": "3"}
    # auto with no environment: the rule (work that keeps one thread busy)
    c = resolve_threads("auto", work=100, environ={})
    assert (c.threads, c.source) == (1, "auto") and c.step_work == 100
    # the environment wins over auto, and auto's work is then not even computed
    c = resolve_threads("auto", work=lambda: pytest.fail("auto should not run"), environ=env)
    assert (c.threads, c.source) == (3, "OMP_NUM_THREADS")
    # threads: N wins over auto and over the environment (and says it ignored it)
    c = resolve_threads(5, work=100, environ=env)
    assert (c.threads, c.source) == (5, "recipe") and "OMP_NUM_THREADS=3 ignored" in c.reason
    assert resolve_threads(2, work=BIG, environ={}).threads == 2


def test_resume_reuses_the_saved_count(tmp_path):
    th.save_choice(tmp_path, th.ThreadChoice(2, "auto", "why"))
    c = resolve_threads("auto", out_dir=tmp_path, resume=True, work=100, environ={})
    assert (c.threads, c.source) == (2, "resumed")  # auto would say 1 for this work
    assert resolve_threads("auto", out_dir=tmp_path, resume=False, work=100, environ={}).threads == 1
    c = resolve_threads(3, out_dir=tmp_path, resume=True, work=100, environ={})
    assert c.threads == 3 and "started with 2" in c.reason  # an explicit, different count wins, with a note
    c = resolve_threads("auto", out_dir=tmp_path, resume=True, work=100, environ={"OMP_NUM_THREADS": "4"})
    assert c.threads == 4 and "started with 2" in c.reason


# ------------------------------------------------------------------------------------------ in a run

@pytest.fixture
def seen_threads(monkeypatch):
    """The thread count torch has when the run's first weight step runs."""
    import automl.train.loops as pl

    seen = []
    real = pl.weight_step

    def spy(*a, **k):
        if not seen:
            seen.append(torch.get_num_threads())
        return real(*a, **k)

    monkeypatch.setattr(pl, "weight_step", spy)
    return seen


# The runs below compute with one thread: two threads on the shared 2-core test machine can take minutes
# (the very collapse `auto` avoids). Which setting won is told by the count *and* by `source`.

def test_run_sets_records_and_restores(tmp_path, seen_threads, monkeypatch, capsys):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    torch.set_num_threads(2)  # the caller's count: not the run's, and restored afterwards
    try:
        res = Run(load_recipe(QUICK, TINY + ["threads=1"]), tmp_path / "r", tty=False).execute()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert seen_threads == [1]
    assert res["threads"]["threads"] == 1 and res["threads"]["source"] == "recipe"
    assert json.loads((tmp_path / "r" / "results.json").read_text())["threads"] == res["threads"]
    assert json.loads((tmp_path / "r" / "threads.json").read_text())["threads"] == 1
    assert "threads: 1 (from the recipe)" in capsys.readouterr().out


def test_run_auto_and_env(tmp_path, seen_threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    res = Run(load_recipe(QUICK, TINY), tmp_path / "a", tty=False).execute()
    assert seen_threads == [1] and res["threads"]["source"] == "auto"
    assert res["threads"]["step_work"] == _step_work(load_recipe(QUICK, TINY))
    assert "too small" in res["threads"]["reason"]
    seen_threads.clear()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(th, "choose_threads", lambda *a: pytest.fail("the environment should win over auto"))
    res = Run(load_recipe(QUICK, TINY), tmp_path / "b", tty=False).execute()
    assert seen_threads == [1] and res["threads"]["source"] == "OMP_NUM_THREADS"


def test_resumed_run_keeps_the_count_it_started_with(tmp_path, seen_threads, monkeypatch, die_after_save):
    """Started with threads=1, interrupted, resumed with threads: auto on a machine where auto would now
    pick 2: the resumed part runs the one thread it started with, and equals an uninterrupted run."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    extra = TINY + ["search.weight_epochs=2"]
    reference = Run(load_recipe(QUICK, extra + ["threads=1"]), tmp_path / "ref", tty=False).execute()
    die_after_save(lambda state, n: n == 1)  # after the first checkpoint: mid weight phase
    with pytest.raises(KeyboardInterrupt):
        Run(load_recipe(QUICK, extra + ["threads=1"]), tmp_path / "k", tty=False).execute()
    monkeypatch.setattr(th, "choose_threads", lambda *a: (2, "a busier or bigger machine"))
    seen_threads.clear()
    resumed = Run(load_recipe(QUICK, extra), tmp_path / "k", resume=True, tty=False).execute()
    assert seen_threads == [1]
    assert resumed["threads"]["threads"] == 1 and resumed["threads"]["source"] == "resumed"
    strip = lambda r: [(a["choices"], a["params"]) for a in r["architectures"]]  # noqa: E731
    assert strip(resumed) == strip(reference)


@pytest.mark.parametrize("value", ["0", "-1", "many", "2.5", "true"])
def test_bad_values_are_one_message_exit_2(tmp_path, capsys, value):
    code = main(["run", QUICK, f"threads={value}", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "threads" in err and "must be 'auto' or a whole number of threads from 1 to 1024" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("value", ["1025", "1000000"])
def test_more_threads_than_any_machine_has_are_one_message_exit_2(tmp_path, capsys, monkeypatch, value):
    code = main(["run", QUICK, f"threads={value}", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "threads=" + value in err and "from 1 to 1024" in err and "Traceback" not in err
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    with pytest.raises(UserError, match=f"OMP_NUM_THREADS='{value}' in the environment: must be a whole number "
                                        f"from 1 to 1024"):
        env_threads()


def test_bad_value_in_the_file_names_its_line(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\nspace: {ROOT / 'spaces' / 'digits.space'}\nthreads: 0\n")
    code = main(["run", str(recipe), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and f"{recipe}:3: threads: must be" in err


def test_bad_environment_is_a_user_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    code = main(["run", QUICK, *TINY, "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "OMP_NUM_THREADS='lots'" in err and "Traceback" not in err


@pytest.mark.heavy
def test_torchrun_workers_split_the_cores(tmp_path, free_port):
    """torchrun sets OMP_NUM_THREADS=1 for its workers when the user did not: that is not the user's choice,
    so ``auto`` decides, for two processes on this machine."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(ROOT)
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           "-m", "automl", "run", QUICK, *TINY, "--out", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    t = json.loads((out / "results.json").read_text())["threads"]
    assert t["source"] == "auto" and t["local_world_size"] == 2 and t["threads"] == 1
    assert "threads: 1 (auto:" in proc.stdout
