"""Review KG: `automl export --recipe R` prices the exported network by R's search.cost_table as a run of R does
(the manifest's ``cost`` holds the table's latency prediction, ``cost_metric`` R's search.cost); a table that does
not fit the exported space still times the export, with one note saying it prices nothing and why; a manifest given
as ``--arch`` whose latency was timed otherwise than this export times says so; an export into a run's member folder
says that the run's results.json and report.md are not updated."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_profile import TINY, _recipe  # the quickstart on latency with a given table; a tiny run's settings
from test_review_jb import _edited  # a copy of a table, edited
from test_review_y import table_file  # noqa: F401 (a fixture: digits' latency table by a fake clock)

from automl.cli import main
from automl.compile import load_compiled

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _arch(tmp_path: Path, space: str = DIGITS, pick: int = 1) -> Path:
    cs = load_compiled(space)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": [d.choices[min(pick, len(d.choices) - 1)] for d in cs.decisions]}))
    return path


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _export(*args) -> int:
    return main(["export", *map(str, args)])


def test_a_fitting_table_prices_the_export_as_space_cost_does(table_file, tmp_path, capsys):
    """The manifest's cost had no latency and cost_metric was params, though the recipe searches on latency."""
    arch = _arch(tmp_path)
    assert main(["space", "cost", DIGITS, "--arch", str(arch), "--cost-table", str(table_file)]) == 0
    priced = json.loads(capsys.readouterr().out)
    assert "latency" in priced, priced
    out = tmp_path / "out"
    assert _export(DIGITS, "--arch", arch, "--out", out, "--recipe", _recipe(tmp_path, str(table_file))) == 0
    m = _manifest(out)
    assert m["cost"] == pytest.approx(priced) and set(m["cost"]) == set(priced), m["cost"]
    assert m["cost_metric"] == "latency"
    assert "does not price" not in capsys.readouterr().err


def test_a_recipe_on_macs_records_its_cost_metric(table_file, tmp_path):
    out = tmp_path / "out"
    assert _export(DIGITS, "--arch", _arch(tmp_path), "--out", out,
                   "--recipe", _recipe(tmp_path, str(table_file), cost="macs")) == 0
    m = _manifest(out)
    assert m["cost_metric"] == "macs" and "latency" in m["cost"], m


@pytest.fixture(scope="module")
def run_folder(table_file, tmp_path_factory):
    """A tiny run of the quickstart on digits' latency table, its members exported (batch 2 on 2 threads)."""
    tmp = tmp_path_factory.mktemp("kg-run")
    _edited(table_file, tmp, lambda t: (t.update(batch=2), t["machine"].update(threads=2)), "t.json")
    assert main(["run", str(_recipe(tmp, "t.json")), "--out", str(tmp / "run"), *TINY, "export.onnx=true"]) == 0
    return tmp / "run"


def test_an_export_with_the_runs_recipe_has_its_members_costs(run_folder, tmp_path, capsys):
    member = sorted((run_folder / "export").glob("*/manifest.json"))[-1]
    ran = json.loads(member.read_text())
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"choices": ran["choices"]}))
    out = tmp_path / "out"
    assert _export(DIGITS, "--arch", arch, "--out", out, "--recipe", run_folder / "recipe.resolved.yaml") == 0
    m = _manifest(out)
    assert m["cost"] == ran["cost"] and m["cost_metric"] == ran["cost_metric"] == "latency", (m["cost"], ran)
    assert (m["latency"]["batch"], m["latency"]["threads"]) == (2, 2)
    err = capsys.readouterr().err
    assert "note:" not in err, err


def test_an_export_into_a_runs_member_folder_says_the_runs_results_are_not_updated(run_folder, capsys):
    """The last test on the run: it replaces a member's export (the same network, exported again)."""
    folder = sorted((run_folder / "export").glob("*/manifest.json"))[0].parent
    weights = folder / _manifest(folder)["weights"]["file"]
    keep = folder.parent.parent / "kept-weights.safetensors"
    shutil.copy(weights, keep)
    capsys.readouterr()
    assert _export(DIGITS, "--arch", folder / "manifest.json", "--weights", keep, "--out", folder,
                   "--recipe", run_folder / "recipe.resolved.yaml") == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "results.json" in line]
    assert len(notes) == 1 and str(folder) in notes[0] and "report.md" in notes[0] and "not updated" in notes[0], err
    assert _manifest(folder)["run"] == str(run_folder.resolve())


def test_an_export_into_a_folder_of_no_run_says_nothing_of_a_run(table_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert _export(DIGITS, "--arch", _arch(tmp_path), "--out", out) == 0
    assert _export(DIGITS, "--arch", _arch(tmp_path), "--out", out) == 0  # again into its own export
    assert "results.json" not in capsys.readouterr().err


def _space_copy(tmp_path: Path, old: str, new: str) -> str:
    text = Path(DIGITS).read_text()
    assert old in text, old
    path = tmp_path / "digits-edited.space"
    path.write_text(text.replace(old, new, 1))
    return str(path)


@pytest.mark.parametrize("edit", ["rename", "layers"])
def test_a_table_that_does_not_fit_still_times_the_export_and_says_so(table_file, tmp_path, capsys, edit):
    """A table of another space (a decision renamed), or of this space before its layers were edited: the export
    is timed by the table's batch and threads as before, and one note says the table prices nothing, and why."""
    table = _edited(table_file, tmp_path, lambda t: (t.update(batch=2), t["machine"].update(threads=2)))
    if edit == "rename":
        space = _space_copy(tmp_path, "stage s1 ", "stage t1 ")
        why = "other decisions"
    else:
        space = _space_copy(tmp_path, "32 * width stride 2", "32 * width stride 1")
        why = "layers"
    out = tmp_path / "out"
    assert _export(space, "--arch", _arch(tmp_path, space), "--out", out,
                   "--recipe", _recipe(tmp_path, str(table))) == 0
    m = _manifest(out)
    assert "latency" not in m["cost"] and m["cost_metric"] == "params", m["cost"]
    assert (m["latency"]["batch"], m["latency"]["threads"]) == (2, 2), m["latency"]
    said = capsys.readouterr()
    notes = [line for line in said.err.splitlines() if "does not price" in line]
    assert len(notes) == 1, said.err
    assert str(table.name) in notes[0] and why in notes[0] and "batch 2 on 2 threads" in notes[0], notes[0]
    assert "automl space profile" in notes[0] and "Traceback" not in said.err, notes[0]


def test_a_manifest_timed_otherwise_says_so_and_takes_the_tables_prediction_now(table_file, tmp_path, capsys):
    """A member's manifest whose latency was timed at batch 1 on one thread, its table profiled again at batch 2 on
    2 threads: the new manifest held the old prediction next to a measurement of other settings, without a word."""
    first = tmp_path / "first"
    assert _export(DIGITS, "--arch", _arch(tmp_path), "--out", first,
                   "--recipe", _recipe(tmp_path, str(table_file))) == 0
    old = _manifest(first)
    old["cost"]["latency"] = 123.0  # the prediction of the table before it was profiled again
    old["cost_metric"] = "latency"
    (first / "manifest.json").write_text(json.dumps(old))
    again = _edited(table_file, tmp_path, lambda t: (t.update(batch=2), t["machine"].update(threads=2)), "again.json")
    capsys.readouterr()
    assert main(["space", "cost", DIGITS, "--arch", str(_arch(tmp_path)), "--cost-table", str(again)]) == 0
    now = json.loads(capsys.readouterr().out)["latency"]
    out = tmp_path / "out"
    assert _export(DIGITS, "--arch", first / "manifest.json", "--weights", first / "model.safetensors", "--out", out,
                   "--recipe", _recipe(tmp_path, str(again))) == 0
    m = _manifest(out)
    assert m["cost"]["latency"] == pytest.approx(now) != 123.0 and m["cost_metric"] == "latency", m["cost"]
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "records a latency" in line]
    assert len(notes) == 1 and "at batch 1 on one thread" in notes[0] and "batch 2 on 2 threads" in notes[0], err
    assert str(first / "manifest.json") in notes[0] and f"{old['latency']['fp32_ms']:.3g} ms" in notes[0], notes[0]
    # the same protocol: nothing to say
    assert _export(DIGITS, "--arch", out / "manifest.json", "--weights", out / "model.safetensors", "--out",
                   tmp_path / "third", "--recipe", _recipe(tmp_path, str(again))) == 0
    assert "records a latency" not in capsys.readouterr().err
    # without --recipe (batch 1 on one thread): said too, with what would time it as it was
    assert _export(DIGITS, "--arch", out / "manifest.json", "--weights", out / "model.safetensors", "--out",
                   tmp_path / "fourth") == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "records a latency" in line]
    assert len(notes) == 1 and "at batch 2 on 2 threads" in notes[0] and "--recipe" in notes[0], notes
