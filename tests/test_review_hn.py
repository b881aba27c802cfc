"""Review HN: recipe mistakes that ended in no clear, located user error.

1. A data.theta_split count that leaves D_W no item, or a training set of fewer than 2 items (data.limit_train,
   data.synthetic.num_train), on a dataset whose size is known without reading it (digits, synthetic): refused
   when the recipe loads, at the key's line or override; it was refused only as the run loaded its data, with
   "error: data.theta_split=..." naming no file or line.
2. The start-up's refusals of search.budgets (below the smallest network), ranking (no supernet, more
   architectures than the space has) and search.cost_table (missing, not JSON, not this space's) name the
   recipe's file, the line of the key when the file gives it, and the key; they were "error: FILE: key: ..."
   without the line (or, for the table, "FILE search.cost_table: ...").
3. One wording of "the SE ratio is too small: timm rounds the layer to 0 channels"
   (automl.nn.standalone.se_too_small_message) for build_standalone, ``--se`` and retrain.se, each with its own
   prefix and advice.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import automl.nn.standalone as standalone
import automl.recipe as recipe_mod
import automl.train.data as data_mod
from automl.cli import main
from automl.compile import load_compiled
from automl.errors import RecipeError, UserError
from automl.export._export import check_se
from automl.pipeline.setup import TooManyArchs, check_budgets, check_ranking, load_spaces
from automl.recipe import DIGITS_IMAGES, load_recipe

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "recipes" / "quickstart.yaml"
DIGITS = str(ROOT / "spaces" / "digits.space")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _recipe(tmp_path: Path, replace: dict[str, str] | None = None, add: str = "") -> tuple[Path, list[str]]:
    """The quickstart recipe in tmp_path (its space by absolute path), each line starting with a key of
    ``replace`` replaced by its value, ``add`` appended; returns the path and its lines."""
    lines = QUICK.read_text().replace("../spaces/", str(ROOT / "spaces") + "/").split("\n")
    for start, new in (replace or {}).items():
        i = next(i for i, line in enumerate(lines) if line.startswith(start))
        lines[i] = new
    text = "\n".join(lines) + add
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path, text.split("\n")


def _line(lines: list[str], start: str) -> int:
    return next(i + 1 for i, line in enumerate(lines) if line.startswith(start))


# ---- 1. a split that leaves D_W or D_theta empty, refused as the recipe loads -----------------------------------

def test_digits_test_images_match_the_data_module():
    """The recipe's count of digits' training items is the data module's."""
    assert recipe_mod.DIGITS_TEST_IMAGES == data_mod.DIGITS_TEST
    assert DIGITS_IMAGES - recipe_mod.DIGITS_TEST_IMAGES == 1437


def test_a_theta_split_count_of_the_whole_training_set_is_refused_at_its_line(tmp_path):
    path, lines = _recipe(tmp_path, {"  theta_split:": "  theta_split: 1437"})
    with pytest.raises(RecipeError) as e:
        load_recipe(path)
    assert e.value.line == _line(lines, "  theta_split:") and e.value.key == "data.theta_split"
    assert "1,437 items of the digits training set" in str(e.value) and "below 1437" in str(e.value)
    load_recipe(path, ["data.theta_split=1436"])  # one item left for D_W: accepted


def test_a_theta_split_count_against_limit_train_is_refused_naming_the_override():
    with pytest.raises(RecipeError) as e:
        load_recipe(QUICK, ["data.limit_train=5", "data.theta_split=5"])
    assert e.value.key == "data.theta_split" and "override data.theta_split=5" in str(e.value)
    assert "5 of the 5 items" in str(e.value)
    load_recipe(QUICK, ["data.limit_train=5", "data.theta_split=4"])


@pytest.mark.parametrize("overrides, key", [
    (["data.limit_train=1"], "data.limit_train"),
    (["data.dataset=synthetic", "data.synthetic.num_train=1"], "data.synthetic.num_train"),
    (["data.dataset=synthetic", "data.synthetic.num_train=4", "data.limit_train=1"], "data.limit_train"),
])
def test_a_training_set_of_one_item_is_refused_at_its_key(overrides, key):
    with pytest.raises(RecipeError) as e:
        load_recipe(QUICK, overrides)
    assert e.value.key == key and "too few to split" in str(e.value) and f"set {key} to 2 or more" in str(e.value)


def test_the_cli_refuses_a_theta_split_count_before_start_up(tmp_path, capsys):
    path, lines = _recipe(tmp_path, {"  theta_split:": "  theta_split: 5000"})
    out = tmp_path / "out"
    rc = main(["run", str(path), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith(f"{path}:{_line(lines, '  theta_split:')}: data.theta_split: "), err
    assert "Traceback" not in err and not out.exists()


# ---- 2. start-up refusals name the file, the line and the key ------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    return load_compiled(DIGITS)


def test_a_budget_below_the_smallest_network_names_its_line(tmp_path, digits):
    path, lines = _recipe(tmp_path, {"  budgets:": "  budgets: [null, 80k, 1k]"})
    with pytest.raises(RecipeError) as e:
        check_budgets(load_recipe(path), digits, print)
    assert e.value.line == _line(lines, "  budgets:") and e.value.key == "search.budgets[2]"
    assert str(e.value).startswith(f"{path}:{e.value.line}: search.budgets[2]: 1k is below the smallest")


def test_the_cli_says_a_budget_below_the_smallest_network_at_its_line(tmp_path, capsys):
    path, lines = _recipe(tmp_path, {"  budgets:": "  budgets: [null, 1k]"})
    rc = main(["run", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith(f"{path}:{_line(lines, '  budgets:')}: search.budgets[1]: 1k is below"), err


def test_a_budget_from_an_override_names_the_key_without_a_line(digits):
    with pytest.raises(RecipeError) as e:
        check_budgets(load_recipe(QUICK, ["search.budgets=[null,1k]"]), digits, print)
    assert e.value.line is None and e.value.key == "search.budgets[1]"
    assert str(e.value).startswith(f"{QUICK}: search.budgets[1]: override search.budgets=[null,1k]: 1k is below "
                                   f"the smallest")


def test_a_ranking_without_a_supernet_names_its_line(tmp_path, digits):
    path, lines = _recipe(tmp_path, {"  method:": "  method: random", "ranking:": "ranking: {archs: 3}"})
    with pytest.raises(RecipeError) as e:
        check_ranking(load_recipe(path), digits, has_supernet=False)
    assert e.value.line == _line(lines, "ranking:") and e.value.key == "ranking"
    assert "needs the supernet of the weight phase" in str(e.value)


SMALL = """space small
input 1 x 8 x 8
classes 10
choices block = ir_k3_e1, ir_k5_e3, ir_k3_e6
network
  stem width 16
  stage s1 width 24 stride 2 repeat 1 choose block
  head width 32
end
"""


def test_too_many_ranked_archs_names_the_line(tmp_path):
    space_file = tmp_path / "small.space"
    space_file.write_text(SMALL)
    space = load_compiled(str(space_file))
    path, lines = _recipe(tmp_path, {"ranking:": "ranking:\n  archs: 5"})
    with pytest.raises(TooManyArchs) as e:
        check_ranking(load_recipe(path), space, has_supernet=True)
    assert isinstance(e.value, RecipeError) and e.value.line == _line(lines, "  archs:")
    assert str(e.value).startswith(f"{path}:{e.value.line}: ranking.archs: 5 architectures asked for, but the space")
    assert "set ranking.archs to at most 3" in str(e.value) and (e.value.asked, e.value.size) == (5, 3)


@pytest.mark.parametrize("table, said", [("missing.json", "no such file"), ("bad.json", "not valid JSON")])
def test_a_cost_table_mistake_names_the_recipes_line(tmp_path, table, said):
    (tmp_path / "bad.json").write_text("not json")
    path, lines = _recipe(tmp_path, {"  cost: params": f"  cost: params\n  cost_table: {table}"})
    recipe = load_recipe(path)
    with pytest.raises(RecipeError) as e:
        load_spaces(recipe, timed=False)
    assert e.value.line == _line(lines, "  cost_table:") and e.value.key == "search.cost_table"
    assert said in str(e.value) and f"{path} search.cost_table" not in str(e.value), str(e.value)


# ---- 3. one wording of an SE ratio too small -----------------------------------------------------------------------

def test_se_too_small_message_words():
    text = standalone.se_too_small_message(0.01, 0.0313, "this network", "here", "give --se 0.0313 or more")
    assert text == ("too small for this network: timm rounds a block's squeeze-and-excitation width (its channels x "
                    "0.01) to 0 channels, which it cannot build; the smallest ratio that works here is 0.0313 (give "
                    "--se 0.0313 or more, or 0 for none)")
    assert standalone.se_too_small_message(0.01, 0.0313, "x").endswith("the smallest ratio that works is 0.0313 (or 0 for none)")


def test_the_three_se_refusals_share_the_wording(digits):
    arch = torch.zeros(digits.num_decisions, dtype=torch.long)
    with pytest.raises(ValueError) as built:
        digits.build_standalone(arch, se=0.01)
    with pytest.raises(UserError) as flag:
        check_se(0.01, digits, arch)
    with pytest.raises(RecipeError) as key:
        load_spaces(load_recipe(QUICK, ["retrain.se=0.01"]), timed=False)
    assert str(built.value) == "se 0.01: " + standalone.se_too_small_message(0.01, 0.0313, "this network")
    assert str(flag.value) == "--se 0.01: " + standalone.se_too_small_message(0.01, 0.0313, "this network", "here",
                                                                   "give --se 0.0313 or more")
    assert str(key.value).endswith("retrain.se: 0.01: " + standalone.se_too_small_message(
        0.01, 0.0313, "digits", "for every architecture of the space", "set retrain.se to 0.0313 or more"))
