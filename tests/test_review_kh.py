"""A cost table whose widths, ops, input size or layers differ from the space's: the refusal says which space the
table was profiled for when it is another one (and never suggests overwriting that table), says the space file
changed when it is the same one (and suggests profiling it again), and speaks of --set values only when they
differ."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import automl.profile as profile
from automl.cli import main
from automl.compile import load_compiled
from test_edge_fixes import _fake_time

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"
BLOCK = "choices block = ir_k3_e1, ir_k3_e3, ir_k5_e6"


@pytest.fixture(autouse=True)
def _fake_timing(monkeypatch):
    monkeypatch.setattr(profile, "time_module", _fake_time)


def _cli(capsys, *argv) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _profile(capsys, space, table, *flags) -> None:
    code, err = _cli(capsys, "space", "profile", space, *flags, "--repeat", "1", "--calibrate", "0", "--out", table)
    assert code == 0, err


def _cost(capsys, space, table, tmp_path, *flags) -> tuple[int, str]:
    cs = load_compiled(str(space))
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    return _cli(capsys, "space", "cost", space, *flags, "--arch", arch, "--cost-table", table)


def _other_space(tmp_path, edit=lambda text: text.replace(BLOCK, "choices block = ir_k3_e1, ir_k3_e3")) -> Path:
    """digits.space renamed ``other``, with (by default) one choice fewer: the same decision names."""
    other = tmp_path / "other.space"
    text = DIGITS.read_text()
    assert BLOCK in text
    other.write_text(edit(text.replace("space digits", "space other", 1)))
    return other


def test_another_spaces_table_is_named_and_kept(tmp_path, capsys):
    other = _other_space(tmp_path)
    table = tmp_path / "lat_other.json"
    _profile(capsys, other, table)
    code, err = _cost(capsys, DIGITS, table, tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    new = tmp_path / "digits-latency.json"
    assert f"cost table {table} does not fit space {DIGITS}" in err, err
    assert f"profiled for space other ({other})" in err, err
    assert f"`automl space profile {DIGITS} --out {new}` and give --cost-table {new} (keep {table}" in err, err
    assert f"--out {table}`" not in err, err  # that table still fits space other
    assert "--set" not in err, err  # no --set values on either side: nothing to say of them
    assert f"if you meant space other, give its file in place of {DIGITS}" in err, err


def _latency_recipe(tmp_path: Path, space: Path, table: Path) -> Path:
    """The quickstart recipe on ``space``, searching on the latency table ``table``."""
    recipe = tmp_path / "latency.yaml"
    recipe.write_text((ROOT / "recipes" / "quickstart.yaml").read_text()
                      .replace("../spaces/digits.space", str(space))
                      .replace("  cost: params", f"  cost: latency\n  cost_table: {table}"))
    return recipe


def test_another_spaces_table_in_a_recipe_names_the_key(tmp_path, capsys):
    other = _other_space(tmp_path)
    table = tmp_path / "lat_other.json"
    _profile(capsys, other, table)
    recipe = _latency_recipe(tmp_path, DIGITS, table)
    code, err = _cli(capsys, "run", recipe, "search.budgets=[null]", "--out", tmp_path / "run")
    assert code == 2 and "Traceback" not in err, err
    assert f"{recipe}:" in err and "search.cost_table" in err and f"profiled for space other ({other})" in err, err
    new = tmp_path / "digits-latency.json"
    assert f"--out {new}` and give search.cost_table {new}" in err, err
    assert f"--out {table}`" not in err and "no --set values" not in err, err
    assert "give its file as the recipe's `space`" in err, err


def test_another_spaces_table_at_another_input_size_is_not_overwritten(tmp_path, capsys):
    other = _other_space(tmp_path, lambda text: text.replace("param size = 8 ", "param size = 16"))
    assert "param size = 16" in other.read_text()
    table = tmp_path / "lat_other.json"
    _profile(capsys, other, table)
    code, err = _cost(capsys, DIGITS, table, tmp_path)
    assert code == 2 and f"profiled for space other ({other}) at input size [1, 16, 16]" in err, err
    assert f"--out {table}`" not in err, err


def test_another_spaces_set_values_are_said(tmp_path, capsys):
    other = _other_space(tmp_path)
    table = tmp_path / "lat_other.json"
    _profile(capsys, other, table, "--set", "width=2.0")
    code, err = _cost(capsys, DIGITS, table, tmp_path)
    said = f"profiled for space other ({other}) with --set width=2.0, and this space's widths or ops differ"
    assert code == 2 and said in err, err


@pytest.mark.parametrize("edit", [
    lambda text: text.replace("stage s1 width 24 * width", "stage s1 width 40 * width"),  # a changed width
    lambda text: text.replace(BLOCK, BLOCK + ", ir_k5_e3"),  # an added choice
])
def test_a_table_made_stale_by_editing_its_space_says_so(tmp_path, capsys, edit):
    space = tmp_path / "digits.space"
    space.write_text(DIGITS.read_text())
    table = tmp_path / "latency.json"
    _profile(capsys, space, table)
    edited = edit(space.read_text())
    assert edited != space.read_text()
    space.write_text(edited)
    code, err = _cost(capsys, space, table, tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"(has {space} changed since it was profiled?); profile it again with " \
           f"`automl space profile {space} --out {table}`" in err, err  # the table is stale: overwrite it
    assert "--set" not in err and "profiled for space" not in err, err


def test_the_same_file_given_by_another_path_is_the_same_space(tmp_path, capsys, monkeypatch):
    """The table records the path `space profile` was given (relative here): the file read through its absolute
    path is still the space it was profiled for."""
    (tmp_path / "spaces").mkdir()
    space = tmp_path / "spaces" / "digits.space"
    space.write_text(DIGITS.read_text())
    monkeypatch.chdir(tmp_path)
    _profile(capsys, "spaces/digits.space", "latency.json")
    assert json.loads((tmp_path / "latency.json").read_text())["space"]["file"] == "spaces/digits.space"
    space.write_text(space.read_text().replace("stage s1 width 24 * width", "stage s1 width 40 * width"))
    monkeypatch.chdir(space.parent)
    code, err = _cost(capsys, space, tmp_path / "latency.json", tmp_path)
    assert code == 2 and f"has {space} changed since it was profiled?" in err, err


def test_an_edited_copy_of_the_space_names_the_original_file(tmp_path, capsys):
    """A copy of digits.space (the same name) with a wider stage: the table fits the file it was profiled for."""
    table = tmp_path / "latency.json"
    _profile(capsys, DIGITS, table)
    copy = tmp_path / "digits.space"
    copy.write_text(DIGITS.read_text().replace("stage s1 width 24 * width", "stage s1 width 40 * width"))
    code, err = _cost(capsys, copy, table, tmp_path)
    assert code == 2 and f"profiled for space digits ({DIGITS})" in err, err
    assert f"--out {tmp_path / 'digits-latency.json'}`" in err and f"--out {table}`" not in err, err


def test_other_decisions_never_suggest_overwriting_the_table(tmp_path, capsys):
    """A table named digits-latency.json that holds another space's decisions: the command it suggests writes
    another file."""
    other = tmp_path / "other.space"
    other.write_text(DIGITS.read_text().replace("space digits", "space other", 1)
                     .replace("stage s3 width 48 * width repeat 3", "stage s3 width 48 * width repeat 2"))
    table = tmp_path / "digits-latency.json"
    _profile(capsys, other, table)
    code, err = _cost(capsys, DIGITS, table, tmp_path)
    assert code == 2 and "other decisions" in err and "profiled for space 'other'" in err, err
    assert f"--out {table}`" not in err and f"--out {tmp_path / 'digits-latency-default.json'}`" in err, err


def test_a_recorded_space_file_that_is_no_path_is_another_file(tmp_path, capsys):
    """A table edited by hand whose space.file holds a NUL byte (no path resolves it): one message, exit 2."""
    space = tmp_path / "digits.space"
    space.write_text(DIGITS.read_text())
    table = tmp_path / "latency.json"
    _profile(capsys, space, table)
    t = json.loads(table.read_text())
    t["space"]["file"] = "/no\u0000where/digits.space"
    table.write_text(json.dumps(t))
    space.write_text(space.read_text().replace("stage s1 width 24 * width", "stage s1 width 40 * width"))
    code, err = _cost(capsys, space, table, tmp_path)
    assert code == 2 and "profiled for space digits (/no" in err and "Traceback" not in err, err
