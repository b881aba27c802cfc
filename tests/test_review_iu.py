"""Review IU: `automl space encode --arch-def` with an export's manifest of another space says first which space it
was made for (as `automl export --arch` does); a missing .space file suggests the file it likely means; a recipe
given to `automl space` is told to go to `automl run`; `automl run --KEY VALUE` for a recipe key suggests the
override KEY=VALUE."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from automl import cli
from automl.cli import main
from automl.compile import load_compiled
from automl.recipe import Recipe
from helpers import cli_err

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"
MOBILENET = ROOT / "spaces" / "mobilenetv3.space"
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture(scope="module")
def digits_export(tmp_path_factory) -> Path:
    """An export folder of space digits (its manifest.json and the copy space.space)."""
    root = tmp_path_factory.mktemp("iu")
    cs = load_compiled(str(DIGITS))
    arch = root / "arch.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    assert main(["export", str(DIGITS), "--arch", str(arch), "--out", str(root / "exp")]) == 0
    return root / "exp"


# 1. encode --arch-def with a manifest of another space

def test_encode_a_manifest_of_another_space_says_that_first(digits_export, tmp_path, capsys):
    capsys.readouterr()
    manifest = digits_export / "manifest.json"
    code, err = cli_err(capsys, "space", "encode", MOBILENET, "--arch-def", manifest, "--out", tmp_path / "a.json")
    assert code == 2
    assert err.startswith(f"error: --arch-def {manifest} is an export of space digits, not of mobilenetv3: give "
                          f"that space file (its folder holds a copy: {digits_export / 'space.space'})"), err
    assert "is not one of its choices" in err  # what does not fit, after it
    assert not (tmp_path / "a.json").exists()


def test_encode_a_manifest_of_its_own_space_still_works(digits_export, tmp_path, capsys):
    capsys.readouterr()
    code, err = cli_err(capsys, "space", "encode", DIGITS, "--arch-def", digits_export / "manifest.json",
                        "--out", tmp_path / "a.json")
    assert code == 0, err
    assert json.loads((tmp_path / "a.json").read_text())["params"] > 0


# 2. a missing .space file: the file it likely means

@pytest.mark.parametrize("given, meant", [("digits", "digits.space"), ("digit.space", "digits.space"),
                                          ("mobilenet", "mobilenetv3.space")])
def test_a_missing_space_file_suggests_the_one_meant(tmp_path, capsys, given, meant):
    folder = tmp_path / "spaces"
    folder.mkdir()
    for name in ("digits.space", "mobilenetv3.space", "darts.space"):
        shutil.copy(ROOT / "spaces" / name, folder / name)
    code, err = cli_err(capsys, "space", "show", folder / given)
    assert code == 2
    assert f"{folder / given}: no such file; did you mean {folder / meant}?" in err, err


def test_a_missing_space_file_without_a_close_one_says_check_the_path(tmp_path, capsys):
    (tmp_path / "digits.space").write_text(DIGITS.read_text())
    code, err = cli_err(capsys, "space", "show", tmp_path / "unrelated.space")
    assert code == 2 and "no such file; check the path" in err and "did you mean" not in err, err


# 3. a recipe given to `automl space`

@pytest.mark.parametrize("name", ["recipe.yaml", "recipe.YML"])
def test_a_recipe_given_as_a_space_file_is_sent_to_automl_run(tmp_path, capsys, name):
    path = tmp_path / name
    shutil.copy(QUICKSTART, path)
    code, err = cli_err(capsys, "space", "check", path)
    assert code == 2
    assert f"{path} looks like a recipe (YAML), not a .space file: use `automl run {path}`" in err, err


def test_a_space_file_named_yaml_failing_later_gets_no_recipe_hint(tmp_path, capsys):
    path = tmp_path / "space.yaml"
    path.write_text(DIGITS.read_text() + "\nname: oops\n")
    code, err = cli_err(capsys, "space", "check", path)
    assert code == 2 and "looks like a recipe" not in err, err


# 4. `automl run --KEY VALUE` for a recipe key

@pytest.mark.parametrize("argv, hint", [(["--threads", "1"], "threads=1"), (["--seed=3"], "seed=3"),
                                        (["--search.epochs", "2"], "search.epochs=2"),
                                        (["--cudnn-benchmark", "true"], "cudnn_benchmark=true"),
                                        (["--device"], "device=VALUE")])
def test_a_recipe_key_as_a_flag_of_run_suggests_the_override(capsys, argv, hint):
    code, err = cli_err(capsys, "run", QUICKSTART, *argv, usage_exit=True)
    assert code == 2
    assert f"unrecognized arguments: {argv[0]}; did you mean the override {hint}? see automl run --help" in err, err


def test_an_unknown_flag_of_run_gets_no_override_hint(capsys):
    code, err = cli_err(capsys, "run", QUICKSTART, "--bogus", "1", usage_exit=True)
    assert code == 2 and "unrecognized arguments: --bogus; see automl run --help" in err, err


def test_the_cli_knows_every_top_level_recipe_key():
    assert cli.RECIPE_KEYS == set(Recipe.model_fields)  # the keys its override hint knows
