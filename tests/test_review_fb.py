"""Review FB: recipes refuse learning rates and weight decays far outside any sensible range (they ran into NaN
mid-run, retrain.* after the whole search); the digits' size is one constant, checked against the bundled data;
an image folder's train/ and val/ are listed once; data.limit_train below an image folder's classes is refused."""

from __future__ import annotations

import collections
import gzip
import os
from pathlib import Path

import numpy as np
import pytest

import automl.train.data as data_module
from automl.cli import main
from automl.errors import DataError, RecipeError
from automl.recipe import DIGITS_IMAGES, MAX_LR, DataConfig, load_recipe
from automl.train.data import build_data

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
RATES = ["optim.lr", "optim.warmup_lr", "retrain.lr", "retrain.warmup_lr"]


def _refused(overrides, path=QUICK) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    return info.value


# ------------------------------------------------------------------------------ learning rate, weight decay


@pytest.mark.parametrize("key", RATES)
@pytest.mark.parametrize("value", ["1e30", f"{MAX_LR * 1.01:g}"])
def test_a_learning_rate_above_the_most_is_refused_naming_the_key(key, value):
    e = _refused([f"{key}={value}"])
    assert e.key == key and f"must be at most {MAX_LR:g}" in str(e) and "check the value" in str(e), str(e)


@pytest.mark.parametrize("key", RATES)
def test_a_learning_rate_of_the_most_is_taken(key):
    section, name = key.split(".")
    r = load_recipe(QUICK, [f"{key}={MAX_LR:g}"])
    assert getattr(getattr(r, section), name) == MAX_LR


@pytest.mark.parametrize("key", ["optim.weight_decay", "retrain.weight_decay"])
def test_a_weight_decay_above_1_is_refused_and_1_is_taken(key):
    for value in ("1e30", "1.5"):
        e = _refused([f"{key}={value}"])
        assert e.key == key and "must be at most 1" in str(e), str(e)
    section = key.split(".")[0]
    r = load_recipe(QUICK, [f"{key}=1", f"{section}.lr=0.5"])
    assert getattr(r, section).weight_decay == 1


def test_lr_times_weight_decay_of_1_or_more_is_refused_at_its_line(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: x\nspace: {ROOT / 'spaces' / 'digits.space'}\noptim:\n  lr: 2\n  weight_decay: 0.6\n")
    e = _refused(None, recipe)
    assert e.key == "optim.weight_decay" and e.line == 5, str(e)
    assert "optim.lr (2) x optim.weight_decay (0.6) is 1.2" in str(e) and "lower" in str(e)
    e = _refused(["retrain.lr=4", "retrain.weight_decay=0.25"])  # the override named
    assert e.key == "retrain.weight_decay" and "override retrain.weight_decay=0.25" in str(e), str(e)
    assert load_recipe(QUICK, ["retrain.lr=4", "retrain.weight_decay=0.2"]).retrain.weight_decay == 0.2


def test_the_shipped_recipes_keep_their_rates():
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        r = load_recipe(path)
        assert r.optim.lr > 0 and r.retrain.lr > 0, path


def test_a_huge_retrain_lr_stops_before_the_search(tmp_path, capsys):
    """It used to run the whole search, then stop on the retraining's NaN loss."""
    small = ["threads=1", "device=cpu", "data.limit_train=96", "search.weight_epochs=1", "search.theta_epochs=1",
             "search.supernets=1", "retrain.epochs=1", "export.onnx=false"]
    code = main(["run", QUICK, *small, "retrain.lr=1e30", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "retrain.lr" in err and f"at most {MAX_LR:g}" in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------- digits' size


def test_bundled_digits_of_another_size_are_a_data_error(tmp_path, monkeypatch):
    rows = np.loadtxt(gzip.open(data_module.DIGITS_CSV, "rt"), delimiter=",", dtype=np.float32)
    assert len(rows) == DIGITS_IMAGES  # the recipe's constant is the bundled data's size
    short = tmp_path / "digits.csv.gz"
    with gzip.open(short, "wt") as f:
        np.savetxt(f, rows[:100], delimiter=",", fmt="%g")
    monkeypatch.setattr(data_module, "DIGITS_CSV", short)
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="digits"), ".", 0, "cpu")
    text = str(info.value)
    assert str(short) in text and f"holds 100 rows of 65 values, where it has {DIGITS_IMAGES}" in text, text
    assert "reinstall automl" in text


# ------------------------------------------------------------------------------------------- image folders


def _write_images(root: Path, classes=("a", "b"), per_class=3):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in classes:
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(root / split / cls / f"{i}.png")


def _cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(dataset="imagefolder", root=str(root), image_size=8, batch_size=2, **kw)


def test_train_and_val_are_listed_once(tmp_path, monkeypatch):
    _write_images(tmp_path)
    listed = collections.Counter()
    real = os.scandir

    def scandir(path="."):
        listed[os.fspath(path)] += 1
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    build_data(_cfg(tmp_path), ".", 0, "cpu")
    assert listed[str(tmp_path / "val")] == 1 and listed[str(tmp_path / "train")] == 1, listed


def test_images_beside_the_class_folders_are_still_named(tmp_path):
    _write_images(tmp_path)
    (tmp_path / "val" / "a" / "0.png").rename(tmp_path / "val" / "loose.png")
    with pytest.raises(DataError) as info:
        build_data(_cfg(tmp_path), ".", 0, "cpu")
    assert f"{tmp_path / 'val'} holds 1 image file beside its class folders (loose.png)" in str(info.value)


def test_limit_train_below_the_classes_is_refused(tmp_path):
    _write_images(tmp_path, classes=("a", "b", "c"))
    with pytest.raises(DataError) as info:
        build_data(_cfg(tmp_path, limit_train=2, theta_split=1), ".", 0, "cpu")
    text = str(info.value)
    assert "data.limit_train=2" in text and "fewer than its 3 classes" in text and "at least 3" in text, text
    data = build_data(_cfg(tmp_path, limit_train=3, theta_split=1), ".", 0, "cpu")
    assert sorted(data.full.dataset.targets[i] for i in data.full.indices.tolist()) == [0, 1, 2]
