"""Command-line recipe overrides (``automl run RECIPE key=value ...``): a section set whole to something that is not
a mapping, duplicate keys in an override's mapping, a key inside a section the file does not give as a mapping,
mappings the file shares with a YAML alias, empty key names, and overrides too long for one message."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from automl.cli import main
from automl.errors import RecipeError
from automl.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
HEAD = f"name: x\nspace: {ROOT / 'spaces' / 'digits.space'}\n"
# A recipe that loads would start a whole search: a second mistake after the one under test stops the command at
# the recipe either way, so only the message tells which mistake was found.
GUARD = "seed=not-a-number"


def refused(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.count("\n") == 1, err  # one line
    return err


def error_of(overrides, path=QUICK) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    assert info.value.exit_code == 2
    return str(info.value)


# ------------------------------------------------------------------ a section set whole to a non-mapping


@pytest.mark.parametrize("overrides, bad, name", [
    (["search=1", "search.lam=4"], "search=1", "search"),
    (["search.lam=4", "search=1"], "search=1", "search"),
    (["search=null", "search.lam=4"], "search=null", "search"),
    (["search=", "search.lam=4"], "search=", "search"),
    (["search=[1, 2]", "search.lam=4"], "search=[1, 2]", "search"),
    (["data.synthetic=1", "data.synthetic.size=4"], "data.synthetic=1", "data.synthetic"),
    (["space_args=1", "space_args.width=0.5"], "space_args=1", "space_args"),
    (["retrain.space_args=2", "retrain.space_args.width=0.5"], "retrain.space_args=2", "retrain.space_args"),
])
def test_a_section_set_to_a_non_mapping_is_refused_whatever_follows(tmp_path, capsys, overrides, bad, name):
    """``search=1 search.lam=4`` ran with search={lam: 4}: the recipe's other search keys (budgets, epochs)
    silently back at their defaults."""
    err = refused(capsys, ["run", QUICK, *overrides, GUARD, "--out", str(tmp_path / "o")])
    assert f"override {bad}: {name} is a section" in err, err
    assert f"{name}.KEY=VALUE" in err and f"{name}={{KEY: VALUE}}" in err, err
    assert not (tmp_path / "o").exists()
    assert f"override {bad}: " in error_of(overrides)


def test_an_optional_section_may_be_turned_off_and_set_again():
    """``ranking`` takes null (off); a key set after it starts the section from its defaults (the later wins)."""
    recipe = load_recipe(QUICK, ["ranking=null", "ranking.archs=5"])
    assert recipe.ranking is not None and recipe.ranking.archs == 5 and recipe.ranking.seeds == 1
    assert load_recipe(QUICK, ["ranking.archs=5", "ranking=null"]).ranking is None
    err = error_of(["ranking=5"])
    assert "override ranking=5: ranking is a section" in err and "ranking=null to turn it off" in err, err


def test_a_key_given_twice_keeps_the_later():
    """The documented rule for a key given twice (README, ``automl run --help``), also after a whole section."""
    assert load_recipe(QUICK, ["search.lam=4", "search.lam=6"]).search.lam == 6
    recipe = load_recipe(QUICK, ["search={lam: 4, weight_epochs: 3}", "search.lam=6"])
    assert (recipe.search.lam, recipe.search.weight_epochs) == (6, 3)
    assert load_recipe(QUICK, ["search.lam=6", "search={lam: 4}"]).search.lam == 4


def test_a_key_inside_a_section_the_file_gives_as_a_value_names_the_files_line(tmp_path, capsys):
    """The file's ``search: 1`` was replaced by the override's fresh mapping, hiding the file's mistake."""
    path = tmp_path / "r.yaml"
    path.write_text(HEAD + "search: 1\n", encoding="utf-8")
    err = refused(capsys, ["run", str(path), "search.lam=4", GUARD, "--out", str(tmp_path / "o")])
    assert err.startswith(f"{path}:3: search: override search.lam=4: search is not a mapping"), err
    assert "(it is 1)" in err, err


def test_a_key_inside_a_value_an_earlier_override_set_names_that_override():
    err = error_of(["data={synthetic: 1}", "data.synthetic.size=4"])
    assert ("override data.synthetic.size=4: data.synthetic is not a mapping of keys to values (override "
            "data={synthetic: 1} set it to 1)") in err, err


def test_a_mapping_that_replaces_a_section_warns_of_the_keys_it_drops(caplog):
    """``search={lam: 4}`` sets the whole section: the recipe's budgets, epochs and the rest went back to their
    defaults without a word."""
    with caplog.at_level(logging.WARNING, logger="automl.recipe"):
        recipe = load_recipe(QUICK, ["search={lam: 4, weight_epochs: 3}", "search.lam=6"])
    assert (recipe.search.lam, recipe.search.weight_epochs, recipe.search.budgets) == (6, 3, None)
    assert ("override search={lam: 4, weight_epochs: 3} replaces all of search, so the method, budgets, utility, "
            "theta_epochs, theta_lr, cost, supernets set before it are dropped (defaults apply)") in caplog.text
    assert "search.KEY=VALUE" in caplog.text and "search.lam=6" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="automl.recipe"):
        load_recipe(QUICK, ["search.lam=4", "ranking={archs: 5}", "retrain.space_args={width: 2.0}"])
    assert caplog.text == ""  # nothing set before them is dropped


def test_a_null_section_in_the_file_takes_a_key_from_the_command_line(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(HEAD + "ranking: null\n", encoding="utf-8")
    assert load_recipe(path, ["ranking.archs=4"]).ranking.archs == 4


def test_an_override_changes_only_the_key_it_names_when_the_file_shares_a_mapping(tmp_path):
    """``space_args: &a {...}`` and ``retrain: {space_args: *a}`` are one mapping to PyYAML: an override of
    space_args.width changed retrain.space_args too."""
    path = tmp_path / "r.yaml"
    path.write_text(HEAD + "space_args: &a {head: 64}\nretrain:\n  space_args: *a\n", encoding="utf-8")
    recipe = load_recipe(path, ["space_args.width=0.5"])
    assert recipe.space_args == {"head": 64, "width": 0.5}
    assert recipe.retrain.space_args == {"head": 64}
    recipe = load_recipe(path, ["retrain.space_args.width=2.0"])
    assert recipe.space_args == {"head": 64} and recipe.retrain.space_args == {"head": 64, "width": 2.0}


# ------------------------------------------------------------------ duplicate keys in an override's mapping


@pytest.mark.parametrize("override, key", [
    ("search={lam: 4, lam: 8}", "search.lam"),
    ("search={lam: 4, 'lam': 8}", "search.lam"),
    ("retrain={space_args: {width: 1.0, width: 2.0}}", "retrain.space_args.width"),
    ("search={budgets: [null, {a: 1, a: 2}]}", "search.budgets[1].a"),
])
def test_a_duplicate_key_in_an_overrides_mapping_is_refused(tmp_path, capsys, override, key):
    """A recipe file's duplicate key is refused; an override's was last-wins without a word."""
    err = refused(capsys, ["run", QUICK, override, GUARD, "--out", str(tmp_path / "o")])
    last = key.rsplit(".", 1)[-1]
    assert f": {key}: override {override}: duplicate key {last} in the mapping; give each key once" in err, err
    assert f"{key}: override {override}: duplicate key" in error_of([override])


def test_a_merge_key_in_an_overrides_mapping_is_not_a_duplicate():
    recipe = load_recipe(QUICK, ["space_args={<<: {width: 0.5, head: 64}, width: 0.75}"])
    assert recipe.space_args == {"width": 0.75, "head": 64}


def test_a_recipe_files_duplicate_key_is_still_refused_at_its_line(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(HEAD + "search:\n  lam: 4\n  budgets: [null, {a: 1}]\n  lam: 8\nseed: 1\nseed: 2\n",
                    encoding="utf-8")
    assert error_of([], path) == f"{path}:6: search.lam: duplicate key (first on line 4)"


# ------------------------------------------------------------------ key names


@pytest.mark.parametrize("override", ["search..lam=4", ".lam=4", "search.=4", ".=4"])
def test_an_empty_name_in_an_overrides_key_says_so(tmp_path, capsys, override):
    """``search..lam=4`` was "unknown key search.; known keys here: method, ...", as if ``search.`` were a name."""
    err = refused(capsys, ["run", QUICK, override, GUARD, "--out", str(tmp_path / "o")])
    assert f"override {override}: the key {override.split('=')[0]} has an empty name" in err, err


@pytest.mark.parametrize("override, fix", [("search={lam:4}", "lam: 4"), ("space_args={width:0.5}", "width: 0.5")])
def test_a_colon_without_a_space_in_an_overrides_mapping_says_to_add_one(override, fix):
    """YAML reads ``{lam:4}`` as the key ``lam:4`` without a value: the message was "unknown key" for it."""
    err = error_of([override])
    assert f"override {override}: YAML reads" in err and f"put a space after the colon ({fix})" in err, err


# ------------------------------------------------------------------ long and multi-line values


@pytest.mark.parametrize("override", [
    "name=" + "x" * 100_000,
    "search.lamm=" + "x" * 100_000,
    "search.lam='" + "x" * 100_000,
    "search=" + "x" * 100_000,
    "x" * 100_000 + "=1",
    "search.lam=4\n5",
])
def test_an_overrides_message_is_one_short_line(tmp_path, capsys, override):
    """Messages repeated the whole override: 100,000 characters of value made a 100 kB message, and a newline in
    it split the message over lines."""
    err = refused(capsys, ["run", QUICK, override, "--out", str(tmp_path / "o")])
    assert len(err) < 1000, len(err)
    assert "override " + override[:50].replace("\n", "\\n") in err, err[:300]
