"""Review HW: three start-up refusals of a recipe's settings that named no file or line.

1. Data that is missing or does not fit, refused as the run loads it (CIFAR-10 not found, an image folder not
   found, an image folder's data.theta_split / data.limit_train counts): "error: CIFAR-10 not found: ..."; now
   located at the recipe key it is about (``FILE:LINE: data.root: ...`` when the file sets it, ``FILE: data.root:
   ...`` for an override), the data message kept, still a DataError.
2. ``device: cuda`` without a CUDA GPU: "error: device: cuda was asked for ..."; now at device's line.
3. ``supernet: DIR`` written in the recipe file was refused as "--supernet DIR: ...", a flag never given, with no
   line; now ``FILE:LINE: supernet: DIR ...``, while the flag keeps its "--supernet DIR" messages.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from automl.errors import DataError, RecipeError
import automl.pipeline.reuse as reuse
import automl.pipeline.run as run_mod
from automl.pipeline import Run
from automl.recipe import load_recipe

from helpers import cli_err, write_images

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

TINY = ["search.supernets=1", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0"]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def _line(path: Path, start: str) -> int:
    return next(i + 1 for i, line in enumerate(path.read_text().split("\n")) if line.startswith(start))


def _digits_recipe(tmp_path: Path, top: str = "", data: str = "  dataset: digits\n") -> Path:
    return _write(tmp_path, f"name: hw\nthreads: 1\n{top}space: {DIGITS}\ndata:\n{data}")


def _folder_recipe(tmp_path: Path, data: str) -> Path:
    """A recipe of the two-class image folder tmp_path/img (2 images a class) on digits.space made RGB."""
    write_images(tmp_path / "img", per_class=2, ext="png")
    space = tmp_path / "rgb.space"
    space.write_text(DIGITS.read_text().replace("input 1 x", "input 3 x"))
    return _write(tmp_path, f"name: hw\nthreads: 1\nspace: {space}\nspace_args:\n  classes: 2\ndata:\n"
                            f"  dataset: imagefolder\n  root: {tmp_path / 'img'}\n  image_size: 8\n"
                            f"  batch_size: 4\n{data}")


# ---- 1. data refused as the run loads it ------------------------------------------------------------------------

def test_cifar_not_found_is_located_at_data_root_line(tmp_path, capsys):
    path = _digits_recipe(tmp_path, data="  dataset: cifar10\n  root: /nonexistent-hw\n")
    code, err = cli_err(capsys, "run", path, *TINY, "--out", tmp_path / "run")
    assert code == 2
    assert err.startswith(f"{path}:{_line(path, '  root:')}: data.root: CIFAR-10 not found: /nonexistent-hw "), err
    assert err.count("\n") == 1, err


def test_cifar_not_found_from_an_override_names_the_key(tmp_path, capsys):
    path = _digits_recipe(tmp_path)
    code, err = cli_err(capsys, "run", path, *TINY, "data.dataset=cifar10", "data.root=/nonexistent-hw",
                        "--out", tmp_path / "run")
    assert code == 2
    assert err.startswith(f"{path}: data.root: CIFAR-10 not found: /nonexistent-hw "), err


def test_image_folder_not_found_is_located_and_still_a_data_error(tmp_path):
    path = _folder_recipe(tmp_path, "")
    (tmp_path / "img" / "train").rename(tmp_path / "img" / "training")
    with pytest.raises(DataError) as info:
        Run(load_recipe(path), tmp_path / "run").execute()
    assert isinstance(info.value, RecipeError)
    assert str(info.value).startswith(f"{path}:{_line(path, '  root:')}: data.root: image folder not found: "), \
        str(info.value)


def test_theta_split_count_is_located_at_its_line(tmp_path, capsys):
    """data.theta_split: 3 of data.limit_train: 3 images: known only after reading the folder."""
    path = _folder_recipe(tmp_path, "  theta_split: 3\n  limit_train: 3\n")
    code, err = cli_err(capsys, "run", path, *TINY, "--out", tmp_path / "run")
    assert code == 2
    assert err.startswith(f"{path}:{_line(path, '  theta_split:')}: data.theta_split=3 holds out 3 of 3 "), err


def test_limit_train_below_the_classes_is_located(tmp_path, capsys):
    path = _folder_recipe(tmp_path, "  limit_train: 1\n")
    code, err = cli_err(capsys, "run", path, *TINY, "--out", tmp_path / "run")
    assert code == 2
    assert err.startswith(f"{path}:{_line(path, '  limit_train:')}: data.limit_train=1 keeps 1 of the images "), err
    code, err = cli_err(capsys, "run", path, *TINY, "data.limit_train=null", "data.theta_split=4",
                        "--out", tmp_path / "run")
    assert code == 2
    assert err.startswith(f"{path}: data.theta_split=4 holds out 4 of 4 "), err  # the override: no line


# ---- 2. device: cuda without a GPU ------------------------------------------------------------------------------

def test_device_cuda_without_gpu_is_located(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = _digits_recipe(tmp_path, top="device: cuda\n")
    code, err = cli_err(capsys, "run", path, *TINY, "--out", tmp_path / "run")
    assert code == 2
    assert err.startswith(f"{path}:{_line(path, 'device:')}: device: cuda was asked for but no CUDA GPU"), err
    with pytest.raises(RecipeError, match=r"device: cuda was asked for"):
        Run(load_recipe(path), tmp_path / "run")
    path = _digits_recipe(tmp_path)
    code, err = cli_err(capsys, "run", path, *TINY, "device=cuda", "--out", tmp_path / "run")
    assert code == 2
    assert err.startswith(f"{path}: device: cuda was asked for"), err


# ---- 3. supernet: DIR in the recipe file ------------------------------------------------------------------------

def test_supernet_key_not_found_names_the_key_not_the_flag(tmp_path, capsys):
    gone = tmp_path / "gone"
    path = _digits_recipe(tmp_path, top=f"supernet: {gone}\n")
    code, err = cli_err(capsys, "run", path, *TINY, "--out", tmp_path / "run")
    assert code == 2
    assert err.startswith(f"{path}:{_line(path, 'supernet:')}: supernet: {gone}: no checkpoint there"), err
    assert "--supernet" not in err, err


def test_supernet_flag_keeps_its_messages(tmp_path, capsys):
    gone = tmp_path / "gone"
    code, err = cli_err(capsys, "run", _digits_recipe(tmp_path), *TINY, "--supernet", gone, "--out", tmp_path / "run")
    assert code == 2
    assert err.startswith(f"error: --supernet {gone}: no checkpoint there"), err


def test_supernet_key_as_the_runs_own_folder(tmp_path, capsys):
    own = tmp_path / "own"
    own.mkdir()
    path = _digits_recipe(tmp_path, top="supernet: own\n")  # relative: to the recipe
    code, err = cli_err(capsys, "run", path, *TINY, "--out", own)
    assert code == 2
    assert err.startswith(f"{path}:{_line(path, 'supernet:')}: supernet: {own} is the run's own folder"), err
    assert "--supernet" not in err, err


def test_supernet_key_with_a_method_that_trains_none_has_its_line(tmp_path, capsys):
    path = _digits_recipe(tmp_path, top=f"supernet: {tmp_path}\n")
    code, err = cli_err(capsys, "run", path, *TINY, "search.method=random", "--out", tmp_path / "run")
    assert code == 2
    assert err.startswith(f"{path}:{_line(path, 'supernet:')}: supernet: search.method random trains no"), err


def test_supernet_given_follows_the_value_the_file_sets(tmp_path):
    """The key's line only while the recipe's value is the file's; an override of another folder is the
    override's (tests/test_review_ih.py: the flag is named as the flag)."""
    path = _digits_recipe(tmp_path, top=f"supernet: {tmp_path / 'a'}\n")
    given = run_mod.supernet_given
    assert given(load_recipe(path)).line == _line(path, "supernet:")
    assert given(load_recipe(path, [f"supernet={tmp_path / 'b'}"])) == reuse.Given(str(path), None, True)
    bare = _digits_recipe(tmp_path)
    assert given(load_recipe(bare, [f"supernet={tmp_path / 'b'}"])) == reuse.Given(str(bare), None, True)
