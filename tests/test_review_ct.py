"""Recipe mistakes a user editing a YAML file or typing overrides makes: YAML syntax errors that say where and how
to fix them, YAML 1.1's ``1e4`` (a string to it) in integer settings, a negative Cutout written as a float, and
values YAML reads as something else than the user meant (``name: 1.0``, ``grad_clip: none``)."""

from __future__ import annotations

import pytest

from automl.cli import main
from automl.recipe import load_recipe

from test_recipe_checks import HEAD, QUICK, error_of, write  # the recipe-file helpers


# ------------------------------------------------------------------------------- YAML syntax errors


@pytest.mark.parametrize("body, line, fix", [
    ("search:\n\tlam: 4\n", 4, "indent with spaces"),
    ("search:\n  lam:\t4\n", 4, "indent with spaces"),
    ("---\nseed: 3\n", 3, "one YAML document"),
    ("search:\n  lam: 4\n   cost: params\n", 5, "indentation"),
    ("search:\n  lam: 4\n cost: params\n", 5, "indentation"),
    ("search:\n  epsilons: [0, 0.1\n  lam: 4\n", 5, "opened with '[' on line 4"),
    ("search: {lam: 4\n", 3, "opened with '{' on line 3"),  # found at the end of the file: shown where it began
    ("x: 'abc\n", 3, "quote is never closed"),
    ("seed: *a\n", 3, "anchor &a"),
    ("x: \"a\\q\"\n", 3, "single quotes"),
    ("x: @a\n", 3, "quote the value"),
])
def test_a_yaml_syntax_error_names_its_line_shows_it_and_says_how_to_fix_it(tmp_path, body, line, fix):
    path = write(tmp_path, HEAD + body)
    e = error_of(path)
    assert e.startswith(f"{path}:{line}: YAML syntax error: "), e
    assert fix in e, e
    shown = (HEAD + body).splitlines()[line - 1]
    assert f"\n    {shown.expandtabs(1)}\n" in e and e.rstrip().endswith("^"), e  # the line, a caret under it


def test_a_tab_points_at_the_tab(tmp_path):
    e = error_of(write(tmp_path, HEAD + "search:\n  lam:\t4\n"))
    assert e.splitlines()[-1] == "    " + " " * len("  lam:") + "^", e


def test_a_yaml_syntax_error_in_the_cli_is_one_message_and_exit_2(tmp_path, capsys):
    path = write(tmp_path, HEAD + "search:\n\tlam: 4\n")
    assert main(["run", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4: YAML syntax error" in err and "spaces" in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


def test_another_yaml_problem_keeps_pyyamls_words_and_context(tmp_path):
    e = error_of(write(tmp_path, HEAD + "x: 1\nretrain: >x\n"))
    assert ":4: YAML syntax error: expected chomping or indentation indicators" in e, e
    assert "(while scanning a block scalar on line 4)" in e, e


# ------------------------------------------------------------------------- 1e4 in an integer setting


@pytest.mark.parametrize("body, get, want", [
    ("data: {limit_train: 1e4}", lambda r: r.data.limit_train, 10000),
    ("search: {weight_epochs: 1E2}", lambda r: r.search.weight_epochs, 100),
    ("seed: 1e3", lambda r: r.seed, 1000),
    ("data: {theta_split: 1e-1}", lambda r: r.data.theta_split, 0.1),
    ("data: {theta_split: 1e3}", lambda r: r.data.theta_split, 1000),
])
def test_yaml_1_1_exponent_numbers_load_in_integer_settings(tmp_path, body, get, want):
    r = load_recipe(write(tmp_path, HEAD + body + "\n"))
    assert get(r) == want and type(get(r)) is type(want)


def test_an_exponent_number_on_the_command_line_loads_too():
    assert load_recipe(QUICK, ["data.limit_train=2e2"]).data.limit_train == 200


@pytest.mark.parametrize("body, message", [
    ("data: {limit_train: 1.5e0}", "data.limit_train: must be an integer"),
    ("data: {limit_train: 1e999999}", "data.limit_train: must be an integer"),
    ("search: {lam: 1e0}", "search.lam: must be >= 2"),
    ("data: {theta_split: 0e0}", "data.theta_split: must be a fraction in (0, 1) or a count >= 1"),
])
def test_exponent_numbers_are_still_checked(tmp_path, body, message):
    assert message in error_of(write(tmp_path, HEAD + body + "\n"))


# ---------------------------------------------------------------------------------- negative Cutout


@pytest.mark.parametrize("value", ["-1.0", "'-1'", "-16.0"])
def test_a_negative_cutout_is_refused_however_it_is_written(tmp_path, value):
    e = error_of(write(tmp_path, HEAD + f"data: {{dataset: cifar10, root: {tmp_path}, cutout: {value}}}\n"))
    assert ":3: data.cutout: must be the side of the Cutout square" in e, e


def test_a_cutout_written_as_a_float_still_loads(tmp_path):
    r = load_recipe(write(tmp_path, HEAD + f"data: {{dataset: cifar10, root: {tmp_path}, cutout: 16.0}}\n"))
    assert r.data.cutout == 16


# ------------------------------------------------------------------- values YAML reads another way


@pytest.mark.parametrize("value, reads", [("1.0", "a number"), ("2024", "a number"), ("yes", "a boolean"),
                                          ("2020-01-01", "a date")])
def test_a_name_yaml_reads_as_another_type_says_to_quote_it(tmp_path, value, reads):
    e = error_of(write(tmp_path, f"name: {value}\nspace: s.space\n"))
    assert ":1: name: must be a string" in e and f"YAML reads it as {reads}" in e and "quote" in e, e


def test_an_override_name_yaml_reads_as_a_number_says_to_quote_it():
    e = error_of(QUICK, ["name=2024"])
    assert "name: override name=2024: must be a string" in e and "quote" in e, e


def test_a_date_in_space_args_is_one_message(tmp_path):
    e = error_of(write(tmp_path, HEAD + "space_args: {x: 2020-01-01}\n"))
    assert ":3: space_args.x: " in e and " or must be" not in e and "date" in e and "quote" in e, e


@pytest.mark.parametrize("body, key", [("optim: {grad_clip: none}", "optim.grad_clip"),
                                       ("ranking: None", "ranking"),
                                       ("data: {split_seed: None}", "data.split_seed")])
def test_python_none_for_null_says_how_yaml_writes_null(tmp_path, body, key):
    e = error_of(write(tmp_path, HEAD + body + "\n"))
    assert f":3: {key}: " in e and "write null" in e, e


def test_none_where_null_is_not_allowed_gets_no_null_hint(tmp_path):
    e = error_of(write(tmp_path, HEAD + "search: {lam: none}\n"))
    assert "search.lam: must be an integer" in e and "write null" not in e, e


def test_an_empty_section_says_to_remove_it_or_give_it_a_key(tmp_path):
    e = error_of(write(tmp_path, HEAD + "search:\n# lam: 4\n"))
    assert ":3: search: must be a mapping of keys to values (got null)" in e and "remove" in e, e


# -------------------------------------------------------------------------- random_band without budgets


@pytest.mark.parametrize("search", ["{method: random, random_band: 0.9}",
                                    "{method: random, random_band: 0.9, epsilons: [0, 0.5]}",
                                    "{method: random, random_band: 0.9, budgets: [null]}"])
def test_random_band_without_a_budget_is_refused_not_ignored(tmp_path, search):
    e = error_of(write(tmp_path, HEAD + f"search: {search}\n"))
    assert ":3: search.random_band: " in e and "search.budgets or search.random_budgets" in e, e


def test_random_band_without_a_budget_on_the_command_line_names_the_override():
    e = error_of(QUICK, ["search.method=random", "search.epsilons=[0,0.5]", "search.random_band=0.9"])
    assert "search.random_band: override search.random_band=0.9: " in e, e


@pytest.mark.parametrize("given", [[], ["search.budgets=null", "search.random_budgets=[80k,40k]"]])
def test_random_band_with_a_budget_loads(given):
    r = load_recipe(QUICK, ["search.method=random", "search.random_band=0.9", *given])
    assert r.search.random_band == 0.9


# ------------------------------------------------------------------------- no space after the colon


@pytest.mark.parametrize("body, line, message", [
    ("search: lam:4\n", 3, "search: must be a mapping of keys to values (got 'lam:4'); YAML needs a space after the "
                           "colon (lam: 4)"),
    ("search: {lam:4}\n", 3, "search.lam:4: unknown key (YAML reads lam:4 as one key: put a space after the colon, "
                             "lam: 4)"),
    ("seed:4\ndevice: cpu\n", 3, "YAML syntax error: this line has no ': ': write key: value, with a space after "
                                 "the colon\n    seed:4\n    ^"),
])
def test_a_missing_space_after_a_colon_is_named(tmp_path, body, line, message):
    path = write(tmp_path, HEAD + body)
    assert error_of(path).startswith(f"{path}:{line}: {message}")
