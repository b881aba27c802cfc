"""Review IH: messages about a reused supernet's folder name how the user gave it.

1. ``--supernet DIR`` with a recipe whose ``supernet:`` names the same folder was named as the recipe key
   (``FILE:LINE: supernet: DIR``), although the flag set it: the flag is applied last, so it is named.
2. A ``supernet=DIR`` override was named ``--supernet DIR``, a flag never given; it is named as the override
   (``FILE: override supernet=DIR: ...``, as a mistake in an override is), also when the file says the same.
3. ``search.method`` without a supernet with the flag named the recipe key (``FILE: supernet: ...``); and a resumed
   run's shape check (:func:`~automl.pipeline.reuse.check_resumed`) names the folder as it was given.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import automl.pipeline.reuse as reuse
import automl.pipeline.run as run_mod
from automl.errors import RecipeError, UserError
from automl.pipeline import Run
from automl.pipeline.setup import load_spaces
from automl.recipe import load_recipe

from helpers import cli_err

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

TINY = ["search.supernets=1", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0"]


def _recipe(tmp_path: Path, top: str = "") -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(f"name: ih\nthreads: 1\n{top}space: {DIGITS}\ndata:\n  dataset: digits\n")
    return path


def _line(path: Path, start: str) -> int:
    return next(i + 1 for i, line in enumerate(path.read_text().split("\n")) if line.startswith(start))


def test_the_flag_naming_the_files_folder_is_named_as_the_flag(tmp_path, capsys):
    gone = tmp_path / "gone"
    path = _recipe(tmp_path, top=f"supernet: {gone}\n")
    code, err = cli_err(capsys, "run", path, *TINY, "--supernet", gone, "--out", tmp_path / "run")
    assert code == 2
    assert err.startswith(f"error: --supernet {gone}: no checkpoint there"), err
    assert "check --supernet" in err and f"{path}:" not in err, err


def test_an_override_is_named_as_the_override(tmp_path, capsys):
    gone = tmp_path / "gone"
    path = _recipe(tmp_path)
    code, err = cli_err(capsys, "run", path, *TINY, f"supernet={gone}", "--out", tmp_path / "run")
    assert code == 2
    assert err.startswith(f"{path}: override supernet={gone}: no checkpoint there"), err
    assert "--supernet" not in err, err


def test_an_override_of_the_files_own_folder_is_named_as_the_override(tmp_path, capsys):
    gone = tmp_path / "gone"
    path = _recipe(tmp_path, top=f"supernet: {gone}\n")
    code, err = cli_err(capsys, "run", path, *TINY, f" supernet = {gone}", "--out", tmp_path / "run")
    assert code == 2
    assert err.startswith(f"{path}: override supernet={gone}: no checkpoint there"), err


def test_an_override_in_the_python_api_is_named_as_the_override(tmp_path):
    """Without the command line's word, a value that is not the file's came from an override."""
    gone = tmp_path / "gone"
    path = _recipe(tmp_path, top=f"supernet: {tmp_path / 'other'}\n")
    with pytest.raises(RecipeError) as e:
        Run(load_recipe(path, TINY + [f"supernet={gone}"]), tmp_path / "run", tty=False).execute()
    assert str(e.value).startswith(f"{path}: override supernet={gone}: no checkpoint there"), str(e.value)
    assert not (tmp_path / "run").exists()


def test_the_files_key_keeps_its_line(tmp_path, capsys):
    gone = tmp_path / "gone"
    path = _recipe(tmp_path, top=f"supernet: {gone}\n")
    code, err = cli_err(capsys, "run", path, *TINY, "--out", tmp_path / "run")
    assert code == 2
    assert err.startswith(f"{path}:{_line(path, 'supernet:')}: supernet: {gone}: no checkpoint there"), err


def test_a_method_without_a_supernet_names_the_flag(tmp_path, capsys):
    path = _recipe(tmp_path)
    code, err = cli_err(capsys, "run", path, *TINY, "search.method=random", "--supernet", tmp_path,
                        "--out", tmp_path / "run")
    assert code == 2
    assert err.startswith("error: --supernet: search.method random trains no shared supernet"), err
    assert "remove --supernet" in err and f"{path}" not in err, err


def test_a_method_without_a_supernet_names_the_override(tmp_path, capsys):
    path = _recipe(tmp_path)
    code, err = cli_err(capsys, "run", path, *TINY, "search.method=random", f"supernet={tmp_path}",
                        "--out", tmp_path / "run")
    assert code == 2
    assert err.startswith(f"{path}: override supernet={tmp_path}: search.method random trains no shared"), err


def test_supernet_given_names_what_the_command_line_typed(tmp_path):
    path = _recipe(tmp_path, top=f"supernet: {tmp_path / 'a'}\n")
    recipe = load_recipe(path)
    assert run_mod.supernet_given(recipe).line == _line(path, "supernet:")
    assert run_mod.supernet_given(recipe, "--supernet") is reuse.FLAG
    assert run_mod.supernet_given(recipe, "override") == reuse.Given(str(path), None, True)


def test_check_resumed_names_the_folder_as_given(tmp_path):
    """A resumed run holding a supernet of another shape (an older automl's): refused at the recipe key's line
    when the recipe file gives the folder, not as --supernet."""
    path = _recipe(tmp_path, top=f"supernet: {tmp_path / 'a'}\n")
    recipe = load_recipe(path)
    state = SimpleNamespace(supernet={"w": torch.zeros(3)}, supernet_origin={"from": str(tmp_path / "a")})
    given = run_mod.supernet_given(recipe)
    with pytest.raises(RecipeError) as e:
        reuse.check_resumed(state, load_spaces(recipe), 1, given)
    assert str(e.value).startswith(f"{path}:{_line(path, 'supernet:')}: supernet: {tmp_path / 'a'}: its supernet "
                                   f"has another shape"), str(e.value)
    with pytest.raises(UserError, match=r"^--supernet .*\(without --supernet\)$"):
        reuse.check_resumed(state, load_spaces(recipe), 1)
