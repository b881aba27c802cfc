"""Review KR: a data.theta_split whose D_W or D_theta holds no item of some classes (of two items or more) is warned
about, as data.limit_train's classes are, naming the classes, the half and a data.theta_split that keeps them all;
the usual splits (the quick start's, an image folder's half) say nothing new, and a half left empty is still refused."""

from __future__ import annotations

import logging
import re
from functools import partial
from pathlib import Path

import pytest
import torch

from automl.errors import DataError
from automl.recipe import DataConfig, load_recipe
from automl.train.data import build_data
import helpers

LOGGER = "automl.train.data"
ROOT = Path(__file__).resolve().parent.parent

write_images = partial(helpers.write_images, val_per_class=1, size=8)


def built(caplog, cfg: DataConfig, **rank):
    """``cfg``'s data and the warnings building it logged."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        data = build_data(cfg, ".", 0, "cpu", **rank)
    return data, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def classes_of(data, loader) -> set[int]:
    return set(torch.as_tensor(data.full.dataset.targets)[loader.indices].tolist())


def folder(root, theta_split, **kw) -> DataConfig:
    return DataConfig(dataset="imagefolder", root=str(root), image_size=8, batch_size=2, theta_split=theta_split, **kw)


def test_a_large_fraction_that_leaves_classes_out_of_d_w_is_warned_about(tmp_path, caplog):
    root = write_images(tmp_path, classes=("cat", "dog", "fish"), per_class=20)
    data, said = built(caplog, folder(root, 0.99))
    assert len(classes_of(data, data.w)) == 1  # what the warning is about: 1 image in D_W
    assert len(said) == 1, said
    text = said[0]
    missing = sorted({"cat", "dog", "fish"} - {data.full.dataset.classes[c] for c in classes_of(data, data.w)})
    assert "data.theta_split=0.99" in text and "D_W no item of 2 of its 3 classes" in text, text
    assert f"classes {', '.join(missing)}" in text, text
    fraction = float(re.search(r"set data.theta_split to ([0-9.]+) \(a fraction", text).group(1))
    count = int(re.search(r"a count at most (\d+)", text).group(1))
    assert count == 60 - 3  # each class keeps its last image in D_W
    for quiet in (fraction, count):  # the value it names keeps every class in both halves, and says nothing
        data, said = built(caplog, folder(root, quiet))
        assert said == [] and classes_of(data, data.w) == classes_of(data, data.theta) == {0, 1, 2}, (quiet, said)
    data, said = built(caplog, folder(root, count + 1))  # one more leaves a class out of D_W
    assert len(said) == 1 and "D_W no item of 1 of its 3 classes" in said[0], said


def test_a_small_split_that_leaves_classes_out_of_d_theta_is_warned_about(tmp_path, caplog):
    root = write_images(tmp_path, classes=("a", "b", "c", "d"), per_class=10)
    data, said = built(caplog, folder(root, 2))
    assert len(said) == 1 and "data.theta_split=2" in said[0], said
    assert "D_theta no item of 2 of its 4 classes" in said[0] and "a count at least 4" in said[0], said
    assert "D_W no item" not in said[0]
    _, said = built(caplog, folder(root, 4))
    assert said == []
    _, said = built(caplog, folder(root, 2), rank=1, world_size=2)  # said once, by rank 0
    assert said == []


def test_a_class_of_one_image_is_not_missed(tmp_path, caplog):
    """A class of one image can only be in one half: no warning for it."""
    root = write_images(tmp_path, per_class={"a": 6, "b": 6, "one": 1})
    _, said = built(caplog, folder(root, 0.5))
    assert said == []


def test_digits_extreme_fraction_is_warned_about_and_its_fix_is_quiet(caplog):
    data, said = built(caplog, DataConfig(dataset="digits", theta_split=0.999))
    assert len(set(data.full.y[data.w.indices].tolist())) < 10
    assert len(said) == 1 and "data.theta_split=0.999" in said[0] and "D_W no item of" in said[0], said
    fraction = float(re.search(r"set data.theta_split to ([0-9.]+) \(a fraction", said[0]).group(1))
    data, said = built(caplog, DataConfig(dataset="digits", theta_split=fraction))
    assert said == [] and len(set(data.full.y[data.w.indices].tolist())) == 10


@pytest.mark.parametrize("theta_split", [0.5, 0.25, 0.8, 100])
def test_usual_splits_say_nothing(tmp_path, caplog, theta_split):
    quick = load_recipe(str(ROOT / "recipes" / "quickstart.yaml"))
    _, said = built(caplog, quick.data.model_copy(update={"theta_split": theta_split}))
    assert said == [], said
    root = write_images(tmp_path, classes=("a", "b", "c"), per_class=50)
    _, said = built(caplog, folder(root, theta_split))
    assert said == [], said


def test_a_split_that_leaves_a_half_empty_is_still_refused(tmp_path):
    root = write_images(tmp_path, classes=("a", "b"), per_class=3)
    with pytest.raises(DataError, match="theta_split=6 holds out 6 of 6"):
        build_data(folder(root, 6), ".", 0, "cpu")


def test_where_no_value_keeps_every_class_the_warning_does_not_say_a_seed_would():
    from automl.train.data import _classes_split_off

    text = _classes_split_off(torch.tensor([0, 0, 1, 1, 2, 2, 2, 2]), 1, 0.125, "t")
    assert "no data.theta_split keeps every class in both halves" in text, text
    assert text.endswith("set data.split_seed (another seed draws another order)"), text
