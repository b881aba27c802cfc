"""Review DJ (recipes): a command-line override's YAML syntax errors in automl's words (PyYAML's raw words before),
a value's surrounding tabs ignored, ``!!binary`` refused in one line, an empty recipe named as empty, and ``threads``
read as the recipe's other integers, in a file and an override alike."""

from __future__ import annotations

import pytest

from automl.cli import main
from automl.recipe import load_recipe

from test_recipe_checks import DIGITS, HEAD, QUICK, error_of, write  # the recipe-file helpers

# PyYAML's own words, which a user cannot act on
RAW = ("<document start>", "cannot start any token", "but found", "<stream end>", "<document end>",
       "mapping values are not allowed")

# ------------------------------------------------------------- 1: an override's value that YAML cannot parse


@pytest.mark.parametrize("override, says", [
    ("search.lam=%4", "starts with % as a directive: quote the value"),
    ("search.lam=@4", "YAML reserves @ at the start of a value: quote the value"),
    ("search.lam=`4", "YAML reserves ` at the start of a value: quote the value"),
    ("search.lam=*a", "starts with * as an alias of an anchor, and an override has none: quote it"),
    ("search.lam=[1,", "close each '[' with ']'"),
    ("search.lam=...", "as the start and end of a document, not as a value: quote the value"),
    ("search.lam=4: 5: 6", "YAML reads ': ' as a key's colon: quote the value, or give a mapping in braces"),
])
def test_an_override_yaml_cannot_parse_says_how_to_fix_it(override, says):
    e = error_of(QUICK, [override])
    key, _, value = override.partition("=")
    assert f"{QUICK}: {key}: override {override}: cannot parse the value" in e and says in e, e
    assert f"""on the command line, in double quotes: "{key}='{value}'\"""" in e, e
    assert not any(raw in e for raw in RAW) and "\n" not in e, e


@pytest.mark.parametrize("value", ["4\t", "\t4", " 4\t ", "4 \t", "4\r"])
def test_a_tab_or_space_around_an_override_value_is_no_part_of_it(value):
    # was: "found character '\t' that cannot start any token" for a trailing tab from a shell script
    assert load_recipe(QUICK, [f"search.lam={value}"]).search.lam == 4


def test_a_tab_inside_an_override_value_says_to_replace_it():
    e = error_of(QUICK, ["name=a\tb"])
    assert "override name=a\\tb: cannot parse the value 'a\\tb' as YAML: the value holds a tab character" in e, e
    assert "replace it with a space" in e and "cannot start any token" not in e and "\n" not in e, e


def test_a_block_list_override_keeps_its_indentation():
    assert load_recipe(QUICK, ["search.epsilons=\n  - 0\n  - 0.5\n"]).search.epsilons == [0.0, 0.5]


@pytest.mark.parametrize("override", ["search.lam=@4", "search.lam=%4", "search.lam=4\tx"])
def test_an_override_yaml_cannot_parse_in_the_cli_is_one_line_exit_2(tmp_path, capsys, override):
    assert main(["run", str(QUICK), override, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().count("\n") == 0 and "cannot parse the value" in err, err
    assert not any(raw in err for raw in RAW) and ("quote" in err or "tab character" in err), err


# ------------------------------------------------------------- 2: !!binary


BINARY = "a recipe holds plain values (numbers, text, true or false, lists, mappings), which binary data is not"


def test_a_recipe_that_is_one_binary_value_says_so_in_one_line(tmp_path):
    path = write(tmp_path, "!!binary aGVsbG8=\n")
    e = error_of(path)
    assert e.startswith(f"{path}:1: YAML's !!binary makes binary data") and BINARY in e, e
    assert "bytes" not in e and "\n" not in e and "key: value" in e, e


@pytest.mark.parametrize("text, key, line", [
    ("seed: !!binary aGVsbG8=\n", "seed", 3),
    ("space_args: {a: !!binary aGVsbG8=}\n", "space_args.a", 3),
    ("name: !!binary aGVsbG8=\n", "name", 2),  # pydantic read it as the text 'hello'
    ("seed: !!binary '***'\n", "seed", 3),  # not base64: was 'unsupported YAML tag (failed to decode...)'
])
def test_a_binary_value_in_the_file_is_one_line_at_its_key(tmp_path, text, key, line):
    path = write(tmp_path, f"space: {DIGITS}\n" + "name: x\n" * (not text.startswith("name")) + text)
    e = error_of(path)
    assert e.startswith(f"{path}:{line}: {key}: YAML's !!binary makes binary data") and BINARY in e, e
    assert "remove the !!binary tag and write the value itself" in e and "\n" not in e, e


@pytest.mark.parametrize("override, key", [("seed=!!binary aGVsbG8=", "seed"),
                                           ("search={lam: !!binary aGVsbG8=}", "search.lam")])
def test_a_binary_override_is_one_line_at_its_key(override, key):
    e = error_of(QUICK, [override])
    assert f"{QUICK}: {key}: override {override}: YAML's !!binary makes binary data" in e and BINARY in e, e
    assert "\n" not in e, e


def test_a_binary_value_in_the_cli_is_exit_2(tmp_path, capsys):
    path = write(tmp_path, HEAD + "seed: !!binary aGVsbG8=\n")
    assert main(["run", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().count("\n") == 0 and BINARY in err, err


# ------------------------------------------------------------- 3: an empty recipe


@pytest.mark.parametrize("text", ["", "\n\n", "# a comment\n  # another\n", "---\n", "~\n"])
def test_an_empty_recipe_says_it_is_empty(tmp_path, text):
    path = write(tmp_path, text)
    e = error_of(path)
    assert e == (f"{path}: the recipe is empty: it holds no settings, and a recipe needs at least name and space; "
                 f"start from recipes/quickstart.yaml (copy it and edit the copy)"), e


def test_an_empty_recipe_with_name_and_space_overrides_still_loads(tmp_path):
    path = write(tmp_path, "# all on the command line\n")
    assert load_recipe(path, ["name=x", f"space={DIGITS}"]).name == "x"


def test_an_empty_recipe_in_the_cli_is_one_line_exit_2(tmp_path, capsys):
    path = write(tmp_path, "# nothing yet\n")
    assert main(["run", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    assert f"{path}: the recipe is empty" in err and "missing" not in err, err


def test_a_mapping_without_name_and_space_still_names_the_missing_keys(tmp_path):
    e = error_of(write(tmp_path, "seed: 3\n"))
    assert "name: required key is missing" in e and "space: required key is missing" in e, e


# ------------------------------------------------------------- 4: threads


@pytest.mark.parametrize("written", ["10.0", "1e1", "'10'", "' 10 '"])
def test_the_recipe_and_its_override_read_threads_alike(tmp_path, written):
    assert load_recipe(write(tmp_path, HEAD + f"threads: {written}\n")).threads == 10
    assert load_recipe(QUICK, [f"threads={written}"]).threads == 10
