"""Review JB: `automl export --recipe R` times the exported network's latency as a run of R times its exports: by
its search.cost_table's clock, batch and threads (results.json's latency_protocol), not always by the wall clock at
batch 1 on one thread; the manifest's latency records that protocol and the printed line says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_profile import _recipe  # the quickstart on latency with a given table
from test_review_y import table_file  # noqa: F401 (a fixture: digits' latency table by a fake clock)

import automl.export.quantize as quantize
import automl.profile as profile
from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _edited(table_file: Path, tmp_path: Path, fn, name: str = "edited.json") -> Path:
    t = json.loads(table_file.read_text())
    fn(t)
    path = tmp_path / name
    path.write_text(json.dumps(t))
    return path


def _arch(tmp_path: Path) -> Path:
    cs = load_compiled(DIGITS)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    return path


@pytest.fixture
def clocks(monkeypatch):
    """The clocks the export's latencies are timed by."""
    seen: list = []
    timed = quantize.time_session
    monkeypatch.setattr(quantize, "time_session", lambda *a, **k: seen.append(k.get("clock")) or timed(*a, **k))
    return seen


def test_export_with_a_recipe_times_by_its_cost_tables_clock(table_file, tmp_path, clocks, capsys):
    """A recipe whose table was profiled with --clock cpu: the run's exports are timed by the thread's CPU time,
    `automl export --recipe` timed by the wall clock (and the manifest said "wall"). Now by the table's clock."""
    table = _edited(table_file, tmp_path, lambda t: (t.update(batch=1, clock="cpu"), t["machine"].update(threads=1)))
    recipe = _recipe(tmp_path, str(table))
    out = tmp_path / "out"
    assert main(["export", DIGITS, "--arch", str(_arch(tmp_path)), "--out", str(out), "--recipe", str(recipe)]) == 0
    assert clocks and set(clocks) == {"cpu"}, clocks
    latency = json.loads((out / "manifest.json").read_text())["latency"]
    assert (latency["clock"], latency["batch"], latency["threads"]) == ("cpu", 1, 1), latency
    said = capsys.readouterr().out
    assert "ms here by the thread's CPU time at batch 1 on one thread, as --recipe's search.cost_table" in said, said
    assert str(table) in said, said
    # without --recipe: batch 1, one thread, the wall clock, as before (and nothing said about it)
    clocks.clear()
    plain = tmp_path / "plain"
    assert main(["export", DIGITS, "--arch", str(_arch(tmp_path)), "--out", str(plain)]) == 0
    assert set(clocks) == {"wall"}, clocks
    assert json.loads((plain / "manifest.json").read_text())["latency"]["clock"] == "wall"
    assert "search.cost_table" not in capsys.readouterr().out


def test_export_with_a_recipe_times_at_its_cost_tables_batch_and_threads(table_file, tmp_path, clocks):
    """A table profiled with --batch 2 --threads 2: a run times its exports so; `automl export --recipe` too."""
    table = _edited(table_file, tmp_path, lambda t: (t.update(batch=2), t["machine"].update(threads=2)))
    out = tmp_path / "out"
    assert main(["export", DIGITS, "--arch", str(_arch(tmp_path)), "--out", str(out),
                 "--recipe", str(_recipe(tmp_path, str(table)))]) == 0
    latency = json.loads((out / "manifest.json").read_text())["latency"]
    assert (latency["clock"], latency["batch"], latency["threads"]) == ("wall", 2, 2), latency
    assert set(clocks) == {"wall"}, clocks


def test_a_recipe_whose_table_is_not_here_still_exports_and_says_how_it_timed(table_file, tmp_path, clocks,
                                                                              capsys):
    """A run folder copied without its table: `automl export --recipe RUN/recipe.resolved.yaml` exports all the
    same, timed by the default protocol, and says that the table is not there and where to copy it."""
    table = _edited(table_file, tmp_path, lambda t: (t.update(batch=1, clock="cpu"), t["machine"].update(threads=1)))
    recipe = _recipe(tmp_path, str(table))
    table.unlink()
    out = tmp_path / "out"
    assert main(["export", DIGITS, "--arch", str(_arch(tmp_path)), "--out", str(out), "--recipe", str(recipe)]) == 0
    assert set(clocks) == {"wall"}, clocks
    latency = json.loads((out / "manifest.json").read_text())["latency"]
    assert (latency["clock"], latency["batch"], latency["threads"]) == ("wall", 1, 1), latency
    said = capsys.readouterr()
    assert "is not here" in said.err and str(table) in said.err and "Traceback" not in said.err, said.err
    assert "search.cost_table" not in said.out, said.out


def test_a_bad_table_clock_is_one_message_at_the_recipes_key_before_anything_is_written(table_file, tmp_path,
                                                                                          capsys):
    table = _edited(table_file, tmp_path, lambda t: t.update(clock="sundial"))
    recipe = _recipe(tmp_path, str(table))
    out = tmp_path / "out"
    assert main(["export", DIGITS, "--arch", str(_arch(tmp_path)), "--out", str(out), "--recipe", str(recipe)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"{recipe}:") and "search.cost_table" in err, err
    assert "sundial" in err and "Traceback" not in err, err
    assert not out.exists()


def test_a_coarse_cpu_clock_is_refused_before_anything_is_written(table_file, tmp_path, capsys, monkeypatch):
    """Where the thread CPU clock steps coarsely (Windows' 15.6 ms), a table of --clock cpu cannot time the export:
    refused at the recipe's search.cost_table before the export is written, not after it."""
    table = _edited(table_file, tmp_path, lambda t: (t.update(batch=1, clock="cpu"), t["machine"].update(threads=1)))
    recipe = _recipe(tmp_path, str(table))
    step = profile.clock_step
    monkeypatch.setattr(profile, "clock_step",
                        lambda clock, *a, **k: 0.0156 if clock == "cpu" else step(clock, *a, **k))
    out = tmp_path / "out"
    assert main(["export", DIGITS, "--arch", str(_arch(tmp_path)), "--out", str(out), "--recipe", str(recipe)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"{recipe}:") and "search.cost_table" in err, err
    assert "clock wall" in err and "too coarse" in err, err
    assert not out.exists()


def test_table_timing_is_a_runs_latency_protocol(table_file, tmp_path):
    assert profile.table_timing(table_file) == {"batch": 1, "threads": 1, "clock": "wall"}
    cpu = _edited(table_file, tmp_path, lambda t: t.update(clock="cpu"))
    assert profile.table_timing(cpu) == {"batch": 1, "threads": 1, "clock": "cpu"}
    old = _edited(table_file, tmp_path, lambda t: (t.pop("clock"), t.pop("batch")), "old.json")
    assert profile.table_timing(old) == {"batch": 1, "threads": 1, "clock": "wall"}  # one that records none
    many = _edited(table_file, tmp_path, lambda t: (t.update(clock="cpu"), t["machine"].update(threads=4)), "m.json")
    with pytest.raises(UserError, match="machine.threads"):
        profile.table_timing(many)
    with pytest.raises(UserError, match="no such file"):
        profile.table_timing(tmp_path / "missing.json")
