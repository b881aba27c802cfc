"""Review lead3: a recipe whose ``space`` names a missing file suggests the ``.space`` file it likely means, as
``automl space`` does (``dsl.SpaceFileError.suggestion``), written as the recipe or the override gave the path."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers import cli_out_err

ROOT = Path(__file__).resolve().parents[1]


def _recipe(tmp_path: Path, space: str) -> Path:
    (tmp_path / "spaces").mkdir(exist_ok=True)
    shutil.copy(ROOT / "spaces" / "digits.space", tmp_path / "spaces" / "digits.space")
    (tmp_path / "r").mkdir(exist_ok=True)
    path = tmp_path / "r" / "a.yaml"
    path.write_text(f"name: x\nthreads: 1\nspace: {space}\ndata:\n  dataset: digits\n")
    return path


def test_a_relative_space_path_missing_its_ending_suggests_it_as_the_recipe_writes_it(tmp_path, capsys):
    code, _, err = cli_out_err(capsys, "run", _recipe(tmp_path, "../spaces/digit"), "--out", tmp_path / "o")
    assert code == 2 and f"{tmp_path / 'r' / 'a.yaml'}:3: space: ../spaces/digit" in err, err
    assert "did you mean space: ../spaces/digits.space?" in err, err
    assert not (tmp_path / "o").exists()


def test_an_absolute_space_path_suggests_the_file_meant(tmp_path, capsys):
    code, _, err = cli_out_err(capsys, "run", _recipe(tmp_path, str(tmp_path / "spaces" / "digits.spac")),
                               "--out", tmp_path / "o")
    assert code == 2 and f"did you mean {tmp_path / 'spaces' / 'digits.space'}?" in err, err


def test_an_override_suggests_the_override_to_give(tmp_path, capsys):
    recipe = _recipe(tmp_path, "../spaces/digits.space")
    code, _, err = cli_out_err(capsys, "run", recipe, f"space={tmp_path / 'spaces' / 'digits'}", "--out",
                               tmp_path / "o")
    assert code == 2 and "override space=" in err, err
    assert f"did you mean space={tmp_path / 'spaces' / 'digits.space'}?" in err, err


def test_no_close_name_keeps_the_advice_on_the_path(tmp_path, capsys):
    code, _, err = cli_out_err(capsys, "run", _recipe(tmp_path, "../spaces/zzzzzz"), "--out", tmp_path / "o")
    assert code == 2 and "did you mean" not in err, err
    assert "give an absolute path, or one relative to the recipe's folder" in err, err
