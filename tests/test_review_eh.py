"""Recipe mistakes a recipe fuzzer found named otherwise than by the recipe's key: a space_args value that the
space refuses where it is used (a cell count out of range) named the space file's line only, not the recipe's key
and line; run names such as ``.``, ``..`` or ``-x`` made a hidden run folder or one that reads as an option; a
search.cost that is no metric of the space was echoed whole (5,000 characters)."""

from pathlib import Path

import pytest

from automl.cli import main
from automl.compile import load_compiled
from automl.errors import RecipeError, SpaceError
from automl.pipeline.setup import load_spaces
from automl.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
ENAS = str(ROOT / "spaces" / "enas_micro.space")
DIGITS = str(ROOT / "spaces" / "digits.space")


def _recipe(tmp_path: Path, text: str, space: str = ENAS) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(f"name: r\nspace: {space}\ndata:\n  dataset: synthetic\n" + text, encoding="utf-8")
    return path


def _spaces_refused(path: Path, overrides: list[str] | None = None) -> RecipeError:
    recipe = load_recipe(path, overrides)
    with pytest.raises(RecipeError) as info:
        load_spaces(recipe)
    return info.value


# ------------------------------------------------------------------------------ space_args out of a range


def test_space_args_value_out_of_range_names_the_recipe_key_and_line(tmp_path):
    e = _spaces_refused(_recipe(tmp_path, "space_args:\n  normal_cells: 1e3\n"))
    text = e.text()
    assert e.key == "space_args.normal_cells" and e.line == 6, text
    assert text.startswith(f"{tmp_path / 'r.yaml'}:6: space_args.normal_cells: the space refuses this value: "), text
    # the space file's line stays, with its excerpt and caret
    assert f"{ENAS}:50:18: cell count must be between 1 and 256, got 1000 (from space_args.normal_cells=1e3)" in text
    assert "cells normal x normal_cells split by" in text and "given with --set" not in text


def test_retrain_space_args_value_out_of_range_names_retrain_key(tmp_path):
    e = _spaces_refused(_recipe(tmp_path, "retrain:\n  space_args:\n    channels: 1e9\n"))
    assert e.key == "retrain.space_args.channels" and e.line == 7, e.text()
    assert f"{ENAS}:48:14: stem width must be between 1 and 65536" in e.text()
    assert "(from retrain.space_args.channels=1e9)" in e.text()


def test_space_args_override_out_of_range_names_the_key_without_a_line(tmp_path):
    e = _spaces_refused(_recipe(tmp_path, "space_args:\n  normal_cells: 2\n"), ["space_args.normal_cells=300"])
    assert e.key == "space_args.normal_cells" and e.line is None
    assert "got 300 (from space_args.normal_cells=300)" in e.text()


def test_space_error_carries_the_parameters_given_from_outside(tmp_path):
    with pytest.raises(SpaceError) as info:
        load_compiled(ENAS, {"normal_cells": "1e3"})
    assert info.value.given == ("normal_cells",)
    # the file's own value out of range: nothing given from outside, the SpaceError stays the space's
    own = tmp_path / "own.space"
    own.write_text(Path(ENAS).read_text(encoding="utf-8").replace("param normal_cells = 6", "param normal_cells = 999"),
                   encoding="utf-8")
    with pytest.raises(SpaceError) as info:
        load_compiled(own, {"channels": "8"})
    assert info.value.given == () and "(from `param normal_cells = 999` at line 21)" in str(info.value)
    recipe = load_recipe(_recipe(tmp_path, "space_args:\n  channels: 8\n", space=str(own)))
    with pytest.raises(SpaceError):
        load_spaces(recipe)


def test_space_check_with_set_still_names_the_flag(capsys):
    code = main(["space", "check", ENAS, "--set", "normal_cells=1e3"])
    out = capsys.readouterr()
    text = out.err + out.out
    assert code == 2 and "enas_micro.space:50:18: cell count must be between 1 and 256, got 1000" in text
    assert "(from normal_cells=1e3, given with --set or a recipe's space_args)" in text
    assert "Traceback" not in text


# ------------------------------------------------------------------------------ run names


@pytest.mark.parametrize("name", [".", "..", "-x", ".hidden", "--", ".-"])
def test_name_with_a_leading_dot_or_dash_is_refused_at_its_line(tmp_path, name):
    path = tmp_path / "n.yaml"
    path.write_text(f"seed: 1\nname: '{name}'\nspace: {DIGITS}\n", encoding="utf-8")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    e = info.value
    assert e.key == "name" and e.line == 2, e.text()
    assert "must start with a letter, a digit or '_'" in e.text() and "rename it, e.g. to " in e.text()
    suggested = e.text().rsplit("e.g. to ", 1)[1]
    assert load_recipe(path, [f"name={suggested}"]).name == suggested  # the name it suggests is taken


@pytest.mark.parametrize("name", ["a/b", "a b", " ", "../x"])
def test_name_with_a_slash_or_space_is_still_refused(name):
    with pytest.raises(RecipeError) as info:
        load_recipe(QUICK, [f"name={name}"])
    assert info.value.key == "name" and "may contain only letters, digits" in info.value.text()


@pytest.mark.parametrize("name", ["x.y", "a..b", "x-", "_x", "7up"])
def test_names_with_dots_and_dashes_inside_are_taken(name):
    assert load_recipe(QUICK, [f"name={name}"]).name == name


def test_run_with_a_hidden_name_stops_before_making_a_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # search.cost=nope: a run that took the name would stop at start-up, after making runs/.-<time>, not train
    code = main(["run", QUICK, "name=.", "device=cpu", "search.cost=nope"])
    err = capsys.readouterr().err
    assert code == 2 and "name: override name=.: must start with a letter" in err, err
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------ search.cost shortened


def test_long_search_cost_is_shortened_in_its_message():
    cost = "c" * 4990 + "0123456789"
    e = _spaces_refused(Path(QUICK), [f"search.cost={cost}"])
    text = e.text()
    assert len(text) < 400, len(text)
    assert f"search.cost '{'c' * 40}'...'{'c' * 10}0123456789' (5,000 characters) is not a metric of digits.space" \
        in text
    assert "(it has params, macs, layers)" in text


def test_short_search_cost_is_shown_whole():
    e = _spaces_refused(Path(QUICK), ["search.cost=latency"])
    assert "search.cost 'latency' is not a metric of digits.space" in e.text()
