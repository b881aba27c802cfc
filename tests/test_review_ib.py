"""Review IB: automl.recipe.file_line reads a recipe file's settings once for several lookups; `space profile
--metric` says what a suggested name other than latency costs a recipe's budgets; recipe messages show a long
value shortened."""

from __future__ import annotations

from pathlib import Path

import pytest

from automl.cli import main
from automl.errors import RecipeError
from automl.recipe import Recipe, file_line, load_recipe

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"


def _recipe_file(tmp_path: Path, name: str = "ib") -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(f"name: {name}\nspace: {DIGITS}\nsearch:\n  lam: 4\n  budgets: [null, 80k]\n")
    return path


def _count_validations(monkeypatch) -> list:
    calls: list = []
    real = Recipe.model_validate.__func__

    def counting(cls, *args, **kwargs):
        calls.append(1)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(Recipe, "model_validate", classmethod(counting))
    return calls


# ---- file_line ------------------------------------------------------------------------------------------------

def test_two_file_line_lookups_validate_the_file_once(tmp_path, monkeypatch):
    # a TooManyArchs refusal looks up ranking.archs, then ranking: each lookup validated the whole file again
    recipe = load_recipe(_recipe_file(tmp_path))
    calls = _count_validations(monkeypatch)
    assert file_line(recipe, ("search", "lam")) == 4
    assert file_line(recipe, ("search", "budgets")) == 5
    assert len(calls) <= 1, calls


def test_file_line_after_caching_still_says_none_for_an_override(tmp_path):
    path = _recipe_file(tmp_path)
    recipe = load_recipe(path, overrides=["search.lam=6"])
    for _ in range(2):
        assert file_line(recipe, ("search", "lam")) is None  # the override's value, not the file's
        assert file_line(recipe, ("search", "budgets")) == 5


def test_file_line_sees_the_file_as_it_is_now(tmp_path):
    path = _recipe_file(tmp_path)
    recipe = load_recipe(path)
    assert file_line(recipe, ("search", "lam")) == 4
    path.write_text(path.read_text().replace("  lam: 4\n", "  lam: 5\n"))  # no longer the recipe's value
    assert file_line(recipe, ("search", "lam")) is None
    path.write_text("\n" + path.read_text().replace("  lam: 5\n", "  lam: 4\n"))  # moved a line down
    assert file_line(recipe, ("search", "lam")) == 5


# ---- space profile --metric -----------------------------------------------------------------------------------

def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_suggested_metric_other_than_latency_says_its_budgets_take_no_time_unit(tmp_path, capsys):
    # recipe budgets of 8ms work for search.cost latency alone: latency_2 takes them in plain milliseconds
    space = tmp_path / "lat.space"
    space.write_text(Path(DIGITS).read_text().replace("metric layers", "metric latency"))
    assert main(["space", "profile", str(space), "--out", str(tmp_path / "t.json")]) == 2
    err = _one_error(capsys)
    assert "e.g. --metric latency_2" in err
    assert "plain milliseconds" in err and "8ms is only for latency" in err
    assert not (tmp_path / "t.json").exists()


def test_suggested_latency_has_no_note_on_time_units(tmp_path, capsys):
    assert main(["space", "profile", DIGITS, "--metric", "params", "--out", str(tmp_path / "t.json")]) == 2
    err = _one_error(capsys)
    assert err.endswith("e.g. --metric latency"), err


def test_a_recipe_with_the_suggested_metric_takes_plain_milliseconds_and_refuses_a_time(tmp_path):
    # what the note says, as the recipe checks it
    path = tmp_path / "r.yaml"
    path.write_text(f"name: ib\nspace: {DIGITS}\nsearch:\n  cost: latency_2\n  budgets: [null, 8]\n")
    assert load_recipe(path).search.budgets == [None, 8.0]
    path.write_text(path.read_text().replace("[null, 8]", "[null, 8ms]"))
    with pytest.raises(RecipeError, match="is a time, but search.cost is latency_2"):
        load_recipe(path)


# ---- long values in recipe messages ---------------------------------------------------------------------------

LONG = 3000


@pytest.mark.parametrize("overrides, start", [
    (["search.budgets=[" + "1" * LONG + "ms]"], "item 0: '1111"),
    (["search.budgets=[8" + "x" * LONG + "]"], "'xxxx"),
    (["export.dir=" + "./" * LONG], "'././"),
    (["data.dataset=cifar10", "data.root={tmp}", "data.cutout=" + "9" * LONG], "data.cutout (9999"),
    (["data.dataset=cifar10", "data.root={tmp}", "data.image_size=32", "data.cutout=" + "9" * LONG],
     "data.cutout (9999"),
    (["data.theta_split=" + "9" * LONG], "data.theta_split (9999"),
], ids=["time-budget", "unit", "export-dir", "cutout", "cutout-size", "theta-split"])
def test_a_long_value_is_shown_shortened(tmp_path, overrides, start):
    with pytest.raises(RecipeError) as info:
        load_recipe(QUICKSTART, overrides=[o.replace("{tmp}", str(tmp_path)) for o in overrides])
    text = str(info.value)
    assert start in text and "characters)" in text, text[:500]
    assert len(text) < 1200, len(text)  # the override (100 characters) and the message around the value
    assert "1" * 200 not in text and "x" * 200 not in text and "./" * 100 not in text and "9" * 200 not in text

