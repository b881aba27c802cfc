"""Review GA: one definition of the atomic writes' temporary names; what a refused start-up leaves of export.dir.

1. ``automl._io.temporary_pattern`` is the one regular expression of the temporaries ``atomic_path`` names
   (``.NAME.RANDOM{suffix}.tmp``); the parser cache's (automl/dsl/_parser.py: ``_CACHE_TEMPORARY``), a start-up's
   and a first checkpoint's (automl/pipeline/run.py: ``_STARTUP_TEMPORARY``, ``_CHECKPOINT_TEMPORARY``) and
   ``_io.TEMPORARY`` are made with it. The tests take the names the real writers make, so a change of the naming
   that the patterns do not follow fails here.
2. A new run refused at start-up (here: a budget below the smallest network) removed the ``--out`` folder it made,
   but not an ``export.dir`` two levels deep in it (``export.dir=a/b``: the folder stayed, with the run's ``.lock``
   and ``threads.json``), nor the folders it made for an absolute ``export.dir`` outside it. Both are now removed
   when empty (automl/pipeline/run.py: ``_new_export_folders``, ``_undo_start_up``); a folder that existed before,
   or holds anything, stays.
"""

from __future__ import annotations

import os
from pathlib import Path

import lark
import pytest

from automl import _io
from automl._lock import LOCK_NAME
from automl.cli import main
from automl.dsl import _parser
from automl.errors import UserError
from automl.pipeline import run as run_mod
from automl.pipeline.run import RESOLVED, leftovers
from automl.train.checkpoint import CheckpointStore
from automl.train.threads import THREADS_FILE

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
FAST = ["threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
        "search.supernets=1", "data.limit_train=64", "data.batch_size=32", "data.theta_batch_size=32",
        "search.lam=2", "export.onnx=false"]
REFUSED = ["search.budgets=[1k]", "search.epsilons=null"]  # refused after the start-up made export.dir

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture
def made(monkeypatch):
    """The temporaries the atomic writes of the test make (their paths; renamed or removed since)."""
    names: list[Path] = []
    real = _io._create_temporary

    def record(path, suffix):
        tmp = real(path, suffix)
        names.append(tmp)
        return tmp

    monkeypatch.setattr(_io, "_create_temporary", record)
    return names


def _left(tmp: Path) -> Path:
    """A file by the name of the temporary ``tmp`` (as a write killed midway leaves it)."""
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(b"cut short")
    return tmp


# ------------------------------------------------------------------------------------------ 1: temporary names


def test_a_start_ups_temporaries_match_and_are_taken_over(tmp_path, made):
    out = tmp_path / "run"
    _io.atomic_write_json(out / THREADS_FILE, {"threads": 1})  # as threads.save_choice and Run._new_state write
    _io.atomic_write_text(out / RESOLVED, "name: x\n")
    ckpt = CheckpointStore(tmp_path / "elsewhere" / "checkpoints")
    ckpt.save({"x": 1})
    startup = [p for p in made if p.parent == out]
    first = next(p for p in made if p.name.startswith(".ckpt-"))
    assert len(startup) == 2 and all(run_mod._STARTUP_TEMPORARY.fullmatch(p.name) for p in startup), made
    assert run_mod._CHECKPOINT_TEMPORARY.fullmatch(first.name), first
    left = [_left(p) for p in startup] + [_left(out / "checkpoints" / first.name)]
    assert leftovers(out) == sorted([out / THREADS_FILE, out / RESOLVED, *left])


def test_a_parser_caches_temporary_matches_and_a_stale_one_is_removed(tmp_path, monkeypatch, made):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = _parser.parser_cache_file("start: \"a\"\n")
    _parser._store_parser(lark.Lark('start: "a"', parser="lalr"), path, b"key")
    assert Path(path).read_bytes().startswith(b"key\n")
    (tmp,) = made
    assert tmp.parent == Path(path).parent and _parser._CACHE_TEMPORARY.fullmatch(tmp.name), tmp
    stale = _left(tmp)
    os.utime(stale, (1, 1))
    _parser._remove_stale_temporaries(str(stale.parent))
    assert not stale.exists() and Path(path).exists()


def test_any_temporary_with_a_suffix_matches_and_is_removed(tmp_path, made):
    with _io.atomic_path(tmp_path / "member" / "model.onnx", ".onnx") as tmp:
        tmp.write_bytes(b"x")
    with _io.atomic_path(tmp_path / "member" / "manifest.json") as tmp:
        tmp.write_bytes(b"{}")
    assert len(made) == 2 and all(_io.TEMPORARY.fullmatch(p.name) for p in made), made
    left = [_left(p) for p in made]
    _io.remove_temporaries([tmp_path])
    assert not any(p.exists() for p in left) and (tmp_path / "member" / "model.onnx").exists()


CACHE = "space-0123456789abcdef.lark-cache"
NEAR_MISSES = {
    "_CACHE_TEMPORARY": [f".{CACHE}.deadbee.tmp", f".{CACHE}.deadbeef0.tmp", f".{CACHE}.DEADBEEF.tmp",
                         f".{CACHE}.dead_eef.tmp", f"{CACHE}.deadbeef.tmp", f".{CACHE}.deadbeef.onnx.tmp",
                         ".space-0123.lark-cache.deadbeef.tmp", f".{CACHE}Xdeadbeef.tmp", f".{CACHE}.deadbeef.tmpx",
                         f".{CACHE}.deadbeef"],
    "_STARTUP_TEMPORARY": [".threads.json.deadbee.tmp", ".threads.json.deadbeef0.tmp", ".metrics.jsonl.deadbeef.tmp",
                           ".threads.json.deadbeef.json.tmp", "threads.json.deadbeef.tmp", ".threadsXjson.deadbeef.tmp",
                           ".recipe.resolved.yaml.deadbeef", ".ckpt-000001.pt.deadbeef.tmp",
                           ".threads.json.DEADBEEF.tmp", ".x.threads.json.deadbeef.tmp"],
    "_CHECKPOINT_TEMPORARY": [".ckpt-000001.pt.deadbee.tmp", ".ckpt-.pt.deadbeef.tmp", ".checkpoints.json.deadbeef.tmp",
                              ".ckpt-1Xpt.deadbeef.tmp", ".ckpt-1.pt.deadbeef.pt.tmp", "ckpt-1.pt.deadbeef.tmp",
                              ".ckpt-1.pt.deadbeef", ".threads.json.deadbeef.tmp"],
    "TEMPORARY": ["model.onnx.deadbeef.tmp", ".model.onnx.deadbee.tmp", ".model.onnx.deadbeef0.tmp",
                  ".model.onnx.deadbeef.tmp.x", ".model.deadbeef.a.b.tmp", "..deadbeef.tmp"],
}
MATCHES = {
    "_CACHE_TEMPORARY": [f".{CACHE}.deadbeef.tmp", f".{CACHE}.01234567.tmp"],
    # an earlier automl's temporaries (tempfile's names) are a start-up's and a checkpoint's too
    "_STARTUP_TEMPORARY": [".threads.json.deadbeef.tmp", ".recipe.resolved.yaml.dead_eef.tmp"],
    "_CHECKPOINT_TEMPORARY": [".ckpt-000001.pt.deadbeef.tmp", ".ckpt-12.pt.x_y_z_12.tmp"],
    "TEMPORARY": [".model.onnx.deadbeef.tmp", ".model.deadbeef.onnx.tmp", ".a.b.dead_eef.pt.tmp"],
}
PATTERNS = {"_CACHE_TEMPORARY": _parser._CACHE_TEMPORARY, "_STARTUP_TEMPORARY": run_mod._STARTUP_TEMPORARY,
            "_CHECKPOINT_TEMPORARY": run_mod._CHECKPOINT_TEMPORARY, "TEMPORARY": _io.TEMPORARY}


@pytest.mark.parametrize("which", list(PATTERNS))
def test_near_misses_are_refused(which):
    pattern = PATTERNS[which]
    assert [n for n in MATCHES[which] if not pattern.fullmatch(n)] == []
    assert [n for n in NEAR_MISSES[which] if pattern.fullmatch(n)] == []


def test_temporary_pattern_is_the_naming_of_atomic_path(tmp_path, made):
    with _io.atomic_path(tmp_path / "a.b", ".pt") as tmp:
        tmp.write_bytes(b"x")
    assert _io.temporary_pattern(r"a\.b", r"\.pt").fullmatch(made[0].name)
    assert not _io.temporary_pattern(r"a\.b").fullmatch(made[0].name)  # another suffix
    assert not _io.temporary_pattern(r"a\.c", r"\.pt").fullmatch(made[0].name)  # another file's


# ------------------------------------------------------------------------------------------ 2: export.dir left


def refused(capsys, out: Path, *extra) -> None:
    code = main([str(a) for a in ["run", QUICK, *FAST, *REFUSED, *extra, "--out", out]])
    err = capsys.readouterr().err
    assert code == 2 and "search.budgets[0]" in err and "Traceback" not in err, err


def test_a_relative_export_dir_two_levels_deep_goes_with_the_new_out_folder(tmp_path, capsys):
    out = tmp_path / "new" / "run"
    refused(capsys, out, "export.dir=a/b")
    assert list(tmp_path.iterdir()) == []


def test_a_relative_export_dir_two_levels_deep_leaves_an_empty_out_empty(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    refused(capsys, out, "export.dir=a/b/c")
    assert out.is_dir() and list(out.iterdir()) == []


def test_the_folders_made_for_an_absolute_export_dir_are_removed(tmp_path, capsys):
    refused(capsys, tmp_path / "run", f"export.dir={tmp_path / 'exports' / 'quick'}")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_existed_before_an_absolute_export_dir_stays(tmp_path, capsys):
    (tmp_path / "exports").mkdir()
    refused(capsys, tmp_path / "run", f"export.dir={tmp_path / 'exports' / 'a' / 'b'}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exports"] and list((tmp_path / "exports").iterdir()) == []


def _refuse_after(monkeypatch, act) -> None:
    """The start-up's budget check does ``act()``, then refuses the recipe."""
    def check_budgets(*args, **kwargs):
        act()
        raise UserError("refused by the test")

    monkeypatch.setattr(run_mod, "check_budgets", check_budgets)


def _run_refused(capsys, out: Path, *extra) -> None:
    code = main([str(a) for a in ["run", QUICK, *FAST, *extra, "--out", out]])
    err = capsys.readouterr().err
    assert code == 2 and "refused by the test" in err, err


@pytest.mark.parametrize("inside", [True, False])
def test_an_export_folder_holding_a_file_stays(tmp_path, capsys, monkeypatch, inside):
    out = tmp_path / "run"
    export = out / "a" / "b" if inside else tmp_path / "exports" / "a" / "b"
    _refuse_after(monkeypatch, lambda: (export / "theirs.txt").write_text("x"))
    _run_refused(capsys, out, f"export.dir={'a/b' if inside else export}")
    assert (export / "theirs.txt").read_text() == "x"
    assert (out / LOCK_NAME).exists() if inside else not out.exists()  # a folder holding more is left as it is


def test_nothing_is_removed_once_the_lock_is_not_the_runs(tmp_path, capsys, monkeypatch):
    out, export = tmp_path / "run", tmp_path / "exports" / "a"
    _refuse_after(monkeypatch, lambda: (out / LOCK_NAME).unlink())
    _run_refused(capsys, out, f"export.dir={export}")
    assert export.is_dir() and out.is_dir()
