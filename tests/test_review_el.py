"""YAML 1.1 quirks in recipes and their command-line overrides: base-60 numbers (``1:30`` is 90), octal numbers
with a leading 0 (``017`` is 15, ``018`` is 18), a lone ``=`` or ``<<`` as a value, words YAML reads as booleans
(``no``, ``off``, ``on``) where a name or a choice is expected, and a lone ``-`` (a list) as an override."""

from __future__ import annotations

import pytest

from automl.cli import main
from automl.recipe import load_recipe

from test_recipe_checks import HEAD, QUICK, error_of, write  # the recipe-file helpers


# ------------------------------------------------------------------------ base-60 and octal numbers


@pytest.mark.parametrize("value, reads", [("1:30", "base-60"), ("1:30:00", "base-60"), ("1:30.5", "base-60"),
                                          ("017", "octal number 15"), ("-010", "octal number -8")])
def test_a_number_yaml_1_1_reads_otherwise_is_refused_in_the_file_at_its_line(tmp_path, value, reads):
    path = write(tmp_path, HEAD + f"checkpoint:\n  every_minutes: {value}\n")
    e = error_of(path)
    assert e.startswith(f"{path}:4: checkpoint.every_minutes: YAML 1.1 reads {value}"), e
    assert reads in e and f"quote it ('{value}')" in e, e


@pytest.mark.parametrize("item, key", [("checkpoint.every_minutes=1:30", "checkpoint.every_minutes"),
                                       ("search.lam=010", "search.lam"), ("seed=017", "seed"),
                                       ("threads=1:00", "threads"), ("name=1:30", "name"),
                                       ("search.budgets=[80k, 1:30]", "search.budgets[1]"),
                                       ("space_args={a: 017}", "space_args.a"),
                                       ("search={lam: 010}", "search.lam")])
def test_a_number_yaml_1_1_reads_otherwise_is_refused_as_an_override(item, key):
    e = error_of(QUICK, [item])
    assert f": {key}: override {item}: YAML 1.1 reads " in e, e


def test_the_quote_hint_of_an_override_says_how_the_shell_keeps_the_quotes():
    e = error_of(QUICK, ["checkpoint.every_minutes=1:30"])
    assert "(90, or 1.5 for a time in units of its first field)" in e, e
    assert "in double quotes: \"checkpoint.every_minutes='1:30'\"" in e, e


@pytest.mark.parametrize("value, expected", [("07", 7), ("00", 0), ("08", 8), ("0x1F", 31), ("1_000", 1000),
                                             ("1e3", 1000)])
def test_numbers_that_mean_what_they_look_like_still_load(tmp_path, value, expected):
    """Only what YAML 1.1 reads otherwise than it looks is refused: 07 is 7 in octal too, 08 no octal at all."""
    assert load_recipe(write(tmp_path, HEAD + f"seed: {value}\n")).seed == expected
    assert load_recipe(QUICK, [f"seed={value}"]).seed == expected


def test_a_quoted_base_60_number_is_text(tmp_path):
    r = load_recipe(write(tmp_path, HEAD + "space_args:\n  tag: '1:30'\n"))
    assert r.space_args == {"tag": "1:30"}


def test_a_base_60_key_is_still_an_unknown_key(tmp_path):
    e = error_of(write(tmp_path, HEAD + "checkpoint:\n  1:30: 3\n"))
    assert ":4: checkpoint.1:30: unknown key (YAML reads 1:30 as a number, not a name)" in e, e


# -------------------------------------------------------------------------- a lone = or << as a value


@pytest.mark.parametrize("value", ["=", "<<"])
def test_a_lone_equals_or_merge_as_a_value_names_its_key_and_says_to_quote_it(tmp_path, value):
    path = write(tmp_path, HEAD + f"export:\n  dir: {value}\n")
    e = error_of(path)
    assert e.startswith(f"{path}:4: export.dir: YAML 1.1 reads a lone {value} as "), e
    assert f"quote it ('{value}')" in e and "Python objects" not in e, e
    e = error_of(QUICK, [f"name={value}"])
    assert f"name: override name={value}: YAML 1.1 reads a lone {value}" in e and "constructor" not in e, e


def test_a_merge_key_still_merges(tmp_path):
    r = load_recipe(write(tmp_path, HEAD + "retrain:\n  <<: {epochs: 2}\n  lr: 0.5\n"))
    assert (r.retrain.epochs, r.retrain.lr) == (2, 0.5)


# ------------------------------------------------------------------ booleans where a word is expected


def test_an_override_of_a_lone_dash_says_yaml_reads_a_list_and_how_to_quote_it():
    e = error_of(QUICK, ["name=-"])
    assert "name: override name=-: must be a string (got -); YAML reads it as a list ([null])" in e, e
    assert "[null])" not in e.split("YAML reads")[0] and "in double quotes: \"name='-'\"" in e, e


@pytest.mark.parametrize("word, reads", [("no", "false"), ("off", "false"), ("yes", "true")])
def test_a_name_yaml_reads_as_a_boolean_shows_it_as_written(tmp_path, word, reads):
    path = write(tmp_path, f"name: {word}\nspace: s.space\n")
    e = error_of(path)
    assert f"{path}:1: name: must be a string (got {word}); YAML reads it as a boolean ({reads}): put it in " \
           f"quotes" in e, e
    e = error_of(QUICK, [f"name={word}"])
    assert f"(got {word}); YAML reads it as a boolean ({reads})" in e, e
    assert f"in double quotes: \"name='{word}'\"" in e, e


@pytest.mark.parametrize("item, key", [("search.method=on", "search.method"), ("data.dataset=off", "data.dataset"),
                                       ("search={method: on}", "search.method")])
def test_a_choice_yaml_reads_as_a_boolean_shows_the_word_and_says_to_quote_it(item, key):
    e = error_of(QUICK, [item])
    word = item.rstrip("}").rsplit(" ", 1)[-1].rsplit("=", 1)[-1]
    assert f"{key}: override {item}: must be one of " in e, e
    assert f"(got {word}, which YAML reads as " in e and f"quote a word meant as text ('{word}')" in e, e


def test_a_choice_yaml_reads_as_a_boolean_in_the_file_names_its_line(tmp_path):
    path = write(tmp_path, HEAD + "search:\n  method: on\n")
    e = error_of(path)
    assert e.startswith(f"{path}:4: search.method: must be one of ") and "(got on, which YAML reads as true)" in e, e


def test_the_cli_exits_2_on_a_quirk(tmp_path, capsys):
    # before the fix the run started: kept to seconds and inside tmp_path (retrain.epochs=0 and one epoch each)
    tiny = ["search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0", "data.limit_train=64",
            "search.supernets=1", "export.onnx=false"]
    assert main(["run", str(QUICK), "checkpoint.every_minutes=1:30", *tiny, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "YAML 1.1 reads 1:30" in err, err


# ------------------------------------------------------------------------------ thousands separators


@pytest.mark.parametrize("item, shown", [("search.budgets=[1,000]", "1,000 in a list as 2 items (1, 000)"),
                                         ("search.budgets=[null,2,500,000]", "2,500,000 in a list as 3 items"),
                                         ("search.epsilons=[0,000.5]", "0,000.5 in a list as 2 items")])
def test_a_number_with_thousands_separators_in_a_list_is_refused(item, shown):
    e = error_of(QUICK, [item])
    assert f"override {item}: YAML reads {shown}" in e and "without thousands separators" in e, e


def test_a_number_with_thousands_separators_in_the_file_names_its_line(tmp_path):
    path = write(tmp_path, HEAD + "search:\n  budgets: [null, 1,000]\n")
    e = error_of(path)
    assert e.startswith(f"{path}:4: search.budgets[2]: YAML reads 1,000 in a list as 2 items"), e


@pytest.mark.parametrize("item, expected", [("search.budgets=[10,100]", [10.0, 100.0]),
                                            ("search.budgets=[1, 200]", [1.0, 200.0]),
                                            ("search.epsilons=[0,0.5]", [0.0, 0.5])])
def test_list_items_after_a_bare_comma_still_load(item, expected):
    r = load_recipe(QUICK, [item])
    assert (r.search.budgets if "budgets" in item else r.search.epsilons) == expected


@pytest.mark.parametrize("value", ["1" + "0" * 400 + ":30", "1" + "0" * 400 + ":30.5", "0" + "1" * 400])
def test_a_huge_quirky_number_is_refused_in_one_short_message(value):
    e = error_of(QUICK, [f"seed={value}"])
    assert "YAML 1.1 reads " in e and len(e) < 800, e
