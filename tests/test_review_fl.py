"""Review FL: what a refused run leaves, the parser cache's stale temporaries, the run's note on cores.

1. A new ``automl run`` refused after its start-up wrote its files (a budget below the smallest network, a space
   file that does not exist, an ``export.dir`` that cannot be written) left ``.lock`` and ``threads.json`` in the
   ``--out`` folder it created, or in an empty one, which the next run then took over with "the run there stopped
   before its first checkpoint" (automl/pipeline/run.py: ``_left_as_found``). A folder that held anything before is
   left alone.
2. A write of the ``.space`` parser's cache killed midway (``kill -9``) left its ~60 KB temporary in
   ``$XDG_CACHE_HOME/automl/`` for good; the next process now removes those older than ``STALE_SECONDS``, and never
   a younger one (another process's write in progress) (automl/dsl/_parser.py: ``_remove_stale_temporaries``).
3. The run's note on a thread count above the cores said "more than this machine's 2 cores" under a CPU affinity
   or a cgroup quota (a 16-core machine), and never named the CPUs ``automl space profile`` counts; it now names
   the cores this process can use as that warning names its CPUs and, where hyper-threads make the CPUs more, both
   (automl/train/threads.py: ``_cores_words``). The count chosen is unchanged.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from helpers import cli_out_err
from test_review_eq import _cache_file, _fresh, cache_home  # noqa: F401 - its parser-cache fixture and helpers

from automl.dsl import _parser
from automl.pipeline.run import STARTUP_FILES
from automl.profile import threads_warning
from automl.train import threads as th

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
FAST = ["threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
        "search.supernets=1", "data.limit_train=64", "data.batch_size=32", "data.theta_batch_size=32",
        "search.lam=2", "search.budgets=null", "search.epsilons=[0]", "export.onnx=false"]
# refusals found once the start-up wrote in --out: the budget and the space after threads.json, export.dir after .lock
REFUSED = {
    "budget below the smallest network": (["search.budgets=[1k]", "search.epsilons=null"], "search.budgets[0]"),
    "missing space file": (["space=/nonexist-fl.space"], "/nonexist-fl.space"),
    "unwritable export.dir": (["export.dir=/proc/automl-review-fl"], "export.dir /proc/automl-review-fl"),
}


cli = partial(cli_out_err, internal_ok=True)  # (code, stdout, stderr); no traceback


def refused(capsys, case: str, *flags) -> str:
    extra, named = REFUSED[case]
    code, _, err = cli(capsys, "run", QUICK, *FAST, *extra, *flags)
    assert code == 2 and named in err, err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    return err


# ------------------------------------------------------------------------------------------ 1: a refused run's folder


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_refused_run_removes_the_out_folder_it_created(tmp_path, capsys, case):
    out = tmp_path / "new" / "deeper" / "run"
    refused(capsys, case, "--out", out)
    assert not (tmp_path / "new").exists()  # the folder, and those above it the run made
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_refused_run_leaves_an_empty_out_folder_empty(tmp_path, capsys, case):
    out = tmp_path / "empty"
    out.mkdir()
    refused(capsys, case, "--out", out)
    assert out.is_dir() and list(out.iterdir()) == []


def test_a_refused_run_without_out_leaves_no_run_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(capsys, "budget below the smallest network")
    assert not (tmp_path / "runs").exists()


def test_a_folder_holding_a_killed_start_ups_files_is_kept(tmp_path, capsys):
    """A previous run's files (a start-up killed with -9): the refused run takes the folder over and leaves its own
    start-up's files there, never the folder removed."""
    out = tmp_path / "r"
    out.mkdir()
    (out / ".lock").write_text('{"pid": 999999}\n')
    (out / "threads.json").write_text('{"threads": 2}\n')
    refused(capsys, "budget below the smallest network", "--out", out)
    assert out.is_dir() and {p.name for p in out.iterdir()} <= set(STARTUP_FILES)


def test_a_folder_of_the_users_is_refused_untouched(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, _, err = cli(capsys, "run", QUICK, *FAST, "search.budgets=[1k]", "search.epsilons=null", "--out", out)
    assert code == 2 and "already holds files" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_the_next_run_in_the_folder_finds_nothing_to_take_over(tmp_path, capsys):
    """Was: the fixed run said "--out DIR: the run there stopped before its first checkpoint, so nothing to
    continue; starting afresh in its place" about the refused one."""
    out = tmp_path / "r"
    refused(capsys, "missing space file", "--out", out)
    code, said, err = cli(capsys, "run", QUICK, *FAST, "--out", out)
    assert code == 0, err
    assert "stopped before its first checkpoint" not in said + err and (out / "results.json").is_file()


# ------------------------------------------------------------------------------------------ 2: the parser cache

DAY = 86_400  # older than any write in progress (STALE_SECONDS)


def _temporary(folder: Path, age: float, name: str | None = None) -> Path:
    """A temporary of a cache write (atomic_path's name for the cache file), last modified ``age`` seconds ago."""
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / (name or f".{_cache_file().name}.{os.urandom(4).hex()}.tmp")
    p.write_bytes(b"x" * 60_000)
    os.utime(p, (time.time() - age, time.time() - age))
    return p


def test_the_next_store_removes_only_stale_temporaries(cache_home):
    folder = cache_home / "automl"
    stale = _temporary(folder, DAY)
    old_version = _temporary(folder, DAY, ".space-0123456789abcdef.lark-cache.a1b2c3d4.tmp")  # another automl's
    fresh = _temporary(folder, 5)  # another process writing it now
    mine = _temporary(folder, DAY, "notes.tmp")
    assert _fresh().source_path == "<string>"  # built, and stored
    assert not stale.exists() and not old_version.exists()
    assert fresh.exists() and mine.exists() and _cache_file().is_file()


def test_the_next_load_removes_them_too(cache_home):
    assert _fresh().source_path == "<string>"
    stale = _temporary(cache_home / "automl", DAY)
    assert _fresh().source_path == "<deserialized>"
    assert not stale.exists()


def test_what_a_killed_write_leaves_is_removed_once_stale(cache_home):
    """A real write killed with -9 in the middle (Lark's save): its temporary stays, younger ones are kept, and
    once stale the next process removes it."""
    code = ("import os, signal, lark\n"
            "def save(self, f, *a, **k):\n"
            "    f.write(b'x' * 60000); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
            "lark.Lark.save = save\n"
            "from automl.dsl import space_parser\n"
            "space_parser()\n")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "XDG_CACHE_HOME": str(cache_home)},
                          cwd=ROOT, capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    (left,) = (cache_home / "automl").iterdir()
    assert left.name.endswith(".tmp") and left.stat().st_size >= 60_000
    assert _fresh().source_path == "<string>"
    assert left.exists()  # young: it could be a write in progress
    os.utime(left, (time.time() - DAY,) * 2)
    _fresh()
    assert not left.exists() and [p.name for p in (cache_home / "automl").iterdir()] == [_cache_file().name]


# ------------------------------------------------------------------------------------------ 3: the run's note on cores

def _machine(monkeypatch, cpus: int, per_core: int = 1, allowed: int | None = None, quota: float | None = None):
    """A machine of ``cpus`` CPUs (``per_core`` hyper-threads a core), this process allowed the first ``allowed``
    of them (taskset), under a cgroup CPU quota of ``quota`` CPUs."""
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    monkeypatch.setattr(th, "_cpus", lambda: list(range(allowed or cpus)))
    monkeypatch.setattr(th, "_core_of", lambda cpu: (cpu // per_core,))
    monkeypatch.setattr(th, "_binding", lambda: None if quota is None else (quota, ()))


@pytest.mark.parametrize("where", ["taskset", "quota"])
def test_the_note_names_the_cores_this_process_can_use(monkeypatch, where):
    """docker --cpus=1.5, or taskset -c 0,1, on a 16-core machine: "more than this machine's 2 cores" was wrong."""
    _machine(monkeypatch, 16, allowed=2 if where == "taskset" else None, quota=1.5 if where == "quota" else None)
    c = th.resolve_threads(4, environ={})
    assert c.threads == 4 and c.source == "recipe"  # the count is the recipe's, as before
    assert "more than the 2 cores this process can use (its CPU affinity and any cgroup CPU quota): slower" \
        in c.reason, c.reason
    assert "this machine" not in c.reason and "\n" not in c.line()
    # the same count as automl space profile's warning for --threads 4
    assert "the 2 CPUs this process can use" in threads_warning(4, th.usable_cores(), "x")


def test_the_note_names_the_cpus_where_hyper_threads_count_apart(monkeypatch):
    """4 CPUs, 2 cores of 2 hyper-threads: threads=3 is one thread per CPU (space profile says nothing) but more
    than the cores; the note says both."""
    _machine(monkeypatch, 4, per_core=2)
    c = th.resolve_threads(3, environ={})
    assert c.threads == 3
    assert "more than the 2 cores among the 4 CPUs this process can use" in c.reason, c.reason
    assert threads_warning(3, th.usable_cores(), "x") is None


def test_a_kept_count_names_them_too(tmp_path, monkeypatch):
    th.save_choice(tmp_path, th.ThreadChoice(8, "auto", "a 16-core machine", cores=16))
    _machine(monkeypatch, 16, quota=2)
    c = th.resolve_threads("auto", out_dir=tmp_path, resume=True, environ={}, local_world_size=2)
    assert (c.threads, c.source) == (8, "resumed")
    assert ("more than the 2 cores this process can use (its CPU affinity and any cgroup CPU quota) for 2 processes: "
            "threads=1 is faster") in c.reason, c.reason


def test_a_whole_machine_says_the_same(monkeypatch):
    _machine(monkeypatch, 2)
    assert th.resolve_threads(4, environ={}).reason == (
        "from the recipe; more than the 2 cores this process can use (its CPU affinity and any cgroup CPU quota): "
        "slower")
    assert "core" not in th.resolve_threads(2, environ={}).reason
