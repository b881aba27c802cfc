"""User mistakes around a .space file: space parameters given in a recipe (named by the recipe key, not a
``--set`` flag the user never typed), a metric that costs a choice twice, and a choice list without brackets.
Each is one message, exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from automl.cli import main
from automl.compile import load_compiled
from automl.dsl import load_space, parse_space
from automl.errors import RecipeError, SpaceError
from automl.pipeline.setup import load_spaces
from automl.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"
QUICK = str(ROOT / "recipes" / "quickstart.yaml")


def _recipe(tmp_path: Path, body: str, overrides: list[str] | None = None):
    path = tmp_path / "r.yaml"
    path.write_text(f"name: x\nspace: {DIGITS}\nthreads: 1\n{body}", encoding="utf-8")
    return path, load_recipe(path, overrides)


# ---- 1. space parameters given in a recipe -----------------------------------------------------

def test_unknown_space_arg_in_the_recipe_names_the_key_and_line(tmp_path):
    path, recipe = _recipe(tmp_path, "space_args:\n  widht: 2\n")
    with pytest.raises(RecipeError) as info:
        load_spaces(recipe)
    e = info.value
    assert e.key == "space_args.widht" and e.line == 5 and e.filename == str(path.absolute())
    text = str(e)
    assert text.startswith(f"{path.absolute()}:5: space_args.widht: ")
    assert "--set" not in text and "'widht'" in text and "classes, head, size, width" in text
    assert "did you mean width" in text and str(DIGITS) in text


def test_bad_space_arg_value_from_an_override_names_the_key(tmp_path):
    path, recipe = _recipe(tmp_path, "", ["space_args.width=abc"])
    with pytest.raises(RecipeError) as info:
        load_spaces(recipe)
    e = info.value
    assert e.key == "space_args.width" and e.line is None  # not in the file: given on the command line
    assert "--set" not in str(e) and "expected a number" in str(e) and '"abc"' in str(e)


def test_override_of_a_space_arg_in_the_file_is_not_given_the_files_line(tmp_path):
    _, recipe = _recipe(tmp_path, "space_args:\n  size: 8\n", ["space_args.size=2.5"])
    with pytest.raises(RecipeError) as info:
        load_spaces(recipe)
    assert info.value.key == "space_args.size" and info.value.line is None
    assert "whole number" in str(info.value)


def test_unknown_retrain_space_arg_names_the_retrain_key(tmp_path):
    path, recipe = _recipe(tmp_path, "retrain:\n  space_args:\n    size: 8\n", ["retrain.space_args.foo=3"])
    with pytest.raises(RecipeError) as info:
        load_spaces(recipe)
    assert info.value.key == "retrain.space_args.foo" and "--set" not in str(info.value)
    _, recipe = _recipe(tmp_path, "retrain:\n  space_args:\n    size: 8\n    foo: 3\n")
    with pytest.raises(RecipeError) as info:
        load_spaces(recipe)
    assert (info.value.key, info.value.line) == ("retrain.space_args.foo", 7)


def test_space_arg_mistake_from_the_cli_run_is_one_message(tmp_path, capsys):
    code = main(["run", QUICK, "data.dataset=synthetic", "data.synthetic.channels=1", "data.synthetic.size=8",
                 "data.synthetic.num_classes=10", "device=cpu", "threads=1", "space_args.widht=2",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "space_args.widht" in err and "--set" not in err


def test_set_flag_keeps_its_wording(capsys):
    assert main(["space", "show", str(DIGITS), "--set", "widht=2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{DIGITS}: --set widht: unknown parameter 'widht'") and "Traceback" not in err
    with pytest.raises(SpaceError, match=r"--set width=abc: expected a number"):
        load_space(DIGITS, {"width": "abc"})


# ---- 2. a metric that costs a choice twice -----------------------------------------------------

SPACE = """space t
input 3 x 32 x 32
classes 10
choices mb = ir_k3_e3, ir_k5_e6
network
  stem width 16
  stage s1 width 24 repeat 2 choose mb then [mb, skip]
end
metric lat
{entries}
end
"""


@pytest.mark.parametrize("entries, line, col, parts", [
    ("  default = 1\n  ir_k3_e3 = 2\n  ir_k3_e3 = 3", 12, 3, ["duplicate cost for 'ir_k3_e3'", "line 11"]),
    ("  default = 1\n  ir_k3_e3 in s1_1 = 2\n  ir_k3_e3 in s1_1 = 3", 12, 3,
     ["duplicate cost for 'ir_k3_e3' in s1_1", "line 11"]),
    ("  default = 1\n  default = 2", 11, 3, ["duplicate 'default'", "line 10"]),
    ("  default = 1\n  fixed = 1\n  fixed = 2", 12, 3, ["duplicate 'fixed'", "line 11"]),
])
def test_duplicate_metric_entry_is_an_error(tmp_path, entries, line, col, parts):
    path = tmp_path / "dup.space"
    path.write_text(SPACE.format(entries=entries), encoding="utf-8")
    with pytest.raises(SpaceError) as info:
        load_compiled(path)
    e = info.value
    assert (e.line, e.column) == (line, col), str(e)
    for part in parts:
        assert part in e.message and "metric lat" in e.message, str(e)


def test_same_choice_in_general_and_specific_entries_is_fine(tmp_path):
    path = tmp_path / "ok.space"
    path.write_text(SPACE.format(entries="  default = 1\n  ir_k3_e3 = 2\n  ir_k3_e3 in s1_1 = 3"), encoding="utf-8")
    cs = load_compiled(path)
    assert "lat" in cs.cost_table.metrics


def test_duplicate_metric_entry_from_the_cli(tmp_path, capsys):
    path = tmp_path / "dup.space"
    path.write_text(SPACE.format(entries="  default = 1\n  ir_k3_e3 = 2\n  ir_k3_e3 = 3"), encoding="utf-8")
    assert main(["space", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:12:3: duplicate cost for 'ir_k3_e3'") and "Traceback" not in err


# ---- 3. a list of choices without brackets -----------------------------------------------------

@pytest.mark.parametrize("body, hint", [
    ("stage s1 width 24 choose ir_k3_e3, ir_k5_e3", "`choose [ir_k3_e3, ir_k5_e3]`"),
    ("stage s1 width 24 choose ir_k3_e3 then skip,ir_k3_e3", "`then [skip, ir_k3_e3]`"),
])
def test_choose_list_without_brackets_hints_the_brackets(body, hint):
    text = f"space t\ninput 3 x 32 x 32\nclasses 10\nnetwork\n  stem width 16\n  {body}\nend\n"
    with pytest.raises(SpaceError) as info:
        parse_space(text, "t.space")
    e = info.value
    assert e.line == 6 and "unexpected ','" in e.message and hint in e.message, str(e)


def test_through_list_without_brackets_hints_the_brackets():
    text = "cell c\n  inputs a\n  node n sums 1 of a through sep_3x3, skip\nend\n"
    with pytest.raises(SpaceError) as info:
        parse_space(text, "t.space")
    assert "`through [sep_3x3, skip]`" in info.value.message, str(info.value)
