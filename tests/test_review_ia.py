"""Review IA: a refusal of the run's data carries the recipe key its fix is the value of (``DataError.recipe_key``,
set where it is raised), and ``recipe_data``/``recipe_device`` locate it at that key's line from
``automl.pipeline.setup``, beside ``resolve_device``. The key each message gets is the one the message's text
named before the attribute existed (:func:`_key_of_text`, the reading of the text it replaces)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from automl.errors import DataError, RecipeError
from automl.recipe import DataConfig, SyntheticConfig, load_recipe
from automl.train.data import CIFAR_ARCHIVE, CIFAR_DIR, CIFAR_FILES, build_data
from automl.train.distributed import DistInfo
from helpers import write_images

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")


def _key_of_text(message: str) -> tuple[str, ...] | None:
    """The recipe key a data refusal's text names as its fix: the data.* key it starts with, the data.limit_train
    it says to raise, the data.theta_split of a split that leaves a rank no item, ``data.root`` (or the data.dataset
    it says to set) of data not found there; None for what is wrong inside the data."""
    for key in ("limit_train", "theta_split", "root", "dataset"):
        if message.startswith(f"data.{key}"):
            return "data", key
    for found, key in (("raise data.limit_train", "limit_train"), ("(data.theta_split=", "theta_split")):
        if found in message:
            return "data", key
    if message.startswith(("CIFAR-10 not found", "image folder not found")) or "needs data.root" in message:
        return ("data", "dataset") if "set data.dataset=" in message else ("data", "root")
    return None


def _cifar(tmp_path: Path, name: str) -> Path:
    """A cifar10 data.root set up the way case ``name`` says (the path given as data.root)."""
    root = tmp_path / "data"
    if name == "archive":
        root = tmp_path / "cifar-10-python.tar.gz"
        root.write_bytes(b"")
    elif name == "file":
        root.write_text("not a folder")
    elif name == "batches folder":
        root = tmp_path / CIFAR_DIR
        root.mkdir()
    elif name == "batches in root":
        root.mkdir()
        (root / CIFAR_FILES[0]).write_bytes(b"")
    elif name == "broken link":
        root.mkdir()
        os.symlink(tmp_path / "gone", root / CIFAR_DIR)
    elif name == "not extracted":
        root.mkdir()
        (root / CIFAR_ARCHIVE).write_bytes(b"")
    elif name == "image folder":
        (root / "train").mkdir(parents=True)
        (root / "val").mkdir()
    elif name == "download fails":
        root.mkdir()
    elif name == "damaged":
        (root / CIFAR_DIR).mkdir(parents=True)
        for f in CIFAR_FILES:
            (root / CIFAR_DIR / f).write_bytes(b"not a pickle")
    return root


def _offline(*args, **kwargs):
    raise OSError("no network")


CIFAR = [("missing root", ("data", "root")), ("archive", ("data", "root")), ("file", ("data", "root")),
         ("batches folder", ("data", "root")), ("batches in root", ("data", "root")),
         ("broken link", ("data", "root")), ("not extracted", None), ("image folder", ("data", "dataset")),
         ("download fails", None), ("damaged", None), ("no root", ("data", "root"))]


def _folder(tmp_path: Path, name: str) -> Path | None:
    """An imagefolder data.root set up the way case ``name`` says."""
    root = tmp_path / "data"
    if name == "file":
        root.write_text("not a folder")
    elif name == "train is a file":
        root.mkdir()
        (root / "train").write_text("")
        (root / "val").mkdir()
    elif name == "split folder":
        write_images(tmp_path / "data")
        root = root / "train"
    elif name == "renamed":
        write_images(root, splits=("train", "validation"))
    elif name == "cifar":
        (root / CIFAR_DIR).mkdir(parents=True)
        (root / "val").mkdir()
    elif name == "deeper":
        write_images(root / "inside")
        (root / "val").mkdir()
    elif name in ("limit", "one class"):
        write_images(root, classes=("a", "b", "c") if name == "limit" else ("a",))
    return None if name == "no root" else root


FOLDER = [("missing root", ("data", "root")), ("file", ("data", "root")), ("train is a file", None),
          ("split folder", ("data", "root")), ("renamed", ("data", "root")), ("cifar", ("data", "dataset")),
          ("deeper", ("data", "root")), ("limit", ("data", "limit_train")), ("one class", None),
          ("no root", ("data", "root"))]


def _refusal(cfg: DataConfig, world_size: int = 1) -> DataError:
    with pytest.raises(DataError) as info:
        build_data(cfg, ".", seed=0, device="cpu", rank=0, world_size=world_size)
    return info.value


def _check(e: DataError, key: tuple[str, ...] | None) -> None:
    assert e.recipe_key == _key_of_text(str(e)), str(e)
    assert e.recipe_key == key, str(e)


@pytest.mark.parametrize("name,key", CIFAR, ids=[c for c, _ in CIFAR])
def test_each_cifar10_refusal_carries_the_key_its_text_names(tmp_path, monkeypatch, name, key):
    root = None if name == "no root" else _cifar(tmp_path, name)
    if name == "download fails":
        import torchvision

        monkeypatch.setattr(torchvision.datasets, "CIFAR10", _offline)
    cfg = DataConfig(dataset="cifar10", root=root and str(root), download=name == "download fails")
    _check(_refusal(cfg), key)


@pytest.mark.parametrize("name,key", FOLDER, ids=[c for c, _ in FOLDER])
def test_each_image_folder_refusal_carries_the_key_its_text_names(tmp_path, name, key):
    root = _folder(tmp_path, name)
    limit = {"limit_train": 2} if name == "limit" else {}
    _check(_refusal(DataConfig(dataset="imagefolder", root=root and str(root), image_size=8, **limit)), key)


SPLITS = [({"theta_split": 1437}, 1, ("data", "theta_split")),             # holds out every item
          ({"limit_train": 1}, 1, ("data", "limit_train")),               # too small to split, cut by limit_train
          ({"limit_train": 6}, 4, ("data", "limit_train")),               # a rank's share of limited data: none
          ({"theta_split": 1}, 2, ("data", "theta_split"))]               # a rank's share of D_theta: none


@pytest.mark.parametrize("data,world_size,key", SPLITS, ids=["all held out", "limited to 1", "limited shares",
                                                              "theta shares"])
def test_each_split_refusal_carries_the_key_its_text_names(data, world_size, key):
    _check(_refusal(DataConfig(dataset="digits", **data), world_size), key)


def test_a_training_set_of_one_item_names_no_key():
    """One synthetic training item, not cut by data.limit_train: more items fix it, no recipe key."""
    _check(_refusal(DataConfig(dataset="synthetic", synthetic=SyntheticConfig(num_train=1))), None)


def test_a_data_error_keeps_its_message_and_key_when_pickled():
    e = DataError("data.root /x is a file, not a folder", recipe_key=("data", "root"))
    again = pickle.loads(pickle.dumps(e))
    assert type(again) is DataError and str(again) == str(e) == "data.root /x is a file, not a folder"
    assert again.recipe_key == ("data", "root") and again.text() == "error: data.root /x is a file, not a folder"
    assert DataError("unreadable").recipe_key is None


def _recipe(tmp_path: Path, data: str) -> Path:
    recipe = tmp_path / "r.yaml"
    recipe.write_text((ROOT / "recipes" / "quickstart.yaml").read_text().replace("../spaces/digits.space", DIGITS)
                      .replace("  dataset: digits", data))
    return recipe


def test_recipe_data_from_setup_locates_a_keyed_refusal_at_its_line(tmp_path):
    """A refusal whose key the file sets: the file, that key's line, the key (the message does not start with
    it); a located DataError still, whose recipe key is ``RecipeError.key`` shown."""
    from automl.pipeline.setup import recipe_data

    recipe = _recipe(tmp_path, f"  dataset: cifar10\n  root: {tmp_path / 'none'}")
    line = recipe.read_text().splitlines().index(f"  root: {tmp_path / 'none'}") + 1
    with pytest.raises(DataError) as info:
        recipe_data(load_recipe(recipe), "cpu")
    assert isinstance(info.value, RecipeError) and info.value.located and info.value.key == "data.root"
    assert str(info.value).startswith(f"{recipe}:{line}: data.root: CIFAR-10 not found: "), str(info.value)


def test_recipe_data_from_setup_leaves_an_unkeyed_refusal_as_raised(tmp_path):
    """What is wrong inside the data (a single class) names no recipe key: raised as build_data raised it."""
    from automl.pipeline.setup import recipe_data

    write_images(tmp_path / "d", classes=("a",))
    recipe = _recipe(tmp_path, f"  dataset: imagefolder\n  root: {tmp_path / 'd'}\n  image_size: 8")
    with pytest.raises(DataError) as info:
        recipe_data(load_recipe(recipe), "cpu", DistInfo())
    assert type(info.value) is DataError and not info.value.located
    assert str(info.value).startswith(f"{tmp_path / 'd' / 'train'} holds a single class folder"), str(info.value)


def test_recipe_device_from_setup_locates_a_device_it_cannot_have(tmp_path, monkeypatch):
    """device: cuda without a GPU: a RecipeError at device's line, the message starting with the key."""
    import torch

    from automl.pipeline.setup import recipe_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    recipe = _recipe(tmp_path, "  dataset: digits")
    recipe.write_text(recipe.read_text().replace("device: auto", "device: cuda"))
    line = recipe.read_text().splitlines().index("device: cuda") + 1
    with pytest.raises(RecipeError) as info:
        recipe_device(load_recipe(recipe), DistInfo())
    assert str(info.value) == (f"{recipe}:{line}: device: cuda was asked for but no CUDA GPU is visible; set "
                               f"device=cpu or device=auto"), str(info.value)
    assert not isinstance(info.value, DataError)
