"""Review FI: an image folder's D_W / D_theta split is stratified by class (a small class is no longer drawn wholly
into one half), with the totals of the plain split; digits and CIFAR-10 keep their first data.limit_train items,
and a warning says when those miss classes, naming the smallest data.limit_train that keeps every class."""

from __future__ import annotations

import logging
import pickle
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from automl.errors import DataError
from automl.pipeline.reuse import differences, weights_fingerprint
from automl.recipe import DataConfig, load_recipe
from automl.train.data import _split, build_data
import helpers

LOGGER = "automl.train.data"


write_images = partial(helpers.write_images, val_per_class=1, size=8)  # per_class={class: count}; 1 val/ JPEG a class


def folder_data(root, seed=0, **kw):
    """The image folder's data, split by ``seed`` (data.split_seed)."""
    cfg = DataConfig(dataset="imagefolder", root=str(root), image_size=8, batch_size=4, split_seed=seed, **kw)
    return build_data(cfg, ".", seed=0, device="cpu")


def class_counts(data, loader) -> list[int]:
    targets = torch.as_tensor(data.full.dataset.targets)
    return torch.bincount(targets[loader.indices], minlength=len(data.full.dataset.classes)).tolist()


# ------------------------------------------------------------------------------------ stratified split


def test_an_image_folders_split_keeps_every_class_in_both_halves(tmp_path):
    sizes = {"big": 20, "mid": 10, "small": 2}
    write_images(tmp_path, per_class=sizes)
    n = sum(sizes.values())
    for seed in range(6):  # an unstratified draw puts both "small" images in one half for most of these seeds
        data = folder_data(tmp_path, seed=seed, theta_split=0.25)
        w, theta = data.w.indices.tolist(), data.theta.indices.tolist()
        assert sorted(w + theta) == list(range(n)) and not set(w) & set(theta)
        assert len(theta) == len(_split(n, 0.25, seed)[1])  # the plain split's total
        in_w, in_theta = class_counts(data, data.w), class_counts(data, data.theta)
        assert min(in_w) >= 1 and min(in_theta) >= 1, (seed, in_w, in_theta)
        # each class near its share of D_theta (8 of 32): big 20 x 8 / 32 = 5, mid 2.5, small 0.5 (kept at 1)
        assert in_theta[0] == 20 * len(theta) // n and in_theta[1] in (2, 3), in_theta
    again = folder_data(tmp_path, seed=3, theta_split=0.25)
    assert again.theta.indices.tolist() == folder_data(tmp_path, seed=3, theta_split=0.25).theta.indices.tolist()
    draws = {tuple(folder_data(tmp_path, seed=s, theta_split=0.25).theta.indices.tolist()) for s in range(4)}
    assert len(draws) > 1  # which items of a class are held out is drawn from the seed


def test_a_split_count_and_limit_train_are_stratified_too(tmp_path):
    write_images(tmp_path, per_class={"a": 8, "b": 8, "c": 8})
    for seed in range(5):
        data = folder_data(tmp_path, seed=seed, theta_split=3)
        assert class_counts(data, data.theta) == [1, 1, 1] and class_counts(data, data.w) == [7, 7, 7]
        limited = folder_data(tmp_path, seed=seed, theta_split=0.5, limit_train=12)
        assert class_counts(limited, limited.theta) == [2, 2, 2] == class_counts(limited, limited.w)
        assert set(limited.theta.indices.tolist()) | set(limited.w.indices.tolist()) == \
            set(limited.full.indices.tolist())


def test_the_split_keeps_its_errors_on_an_image_folder(tmp_path):
    write_images(tmp_path, per_class={"a": 2, "b": 2})
    with pytest.raises(DataError) as info:
        folder_data(tmp_path, theta_split=4)
    assert "data.theta_split=4 holds out 4 of 4 training items, leaving none for D_W" in str(info.value)


def test_digits_keep_their_unstratified_split():
    data = build_data(DataConfig(dataset="digits", limit_train=200, theta_split=0.3, split_seed=5), ".", 0, "cpu")
    w, theta = _split(200, 0.3, 5)
    assert torch.equal(data.w.indices, w) and torch.equal(data.theta.indices, theta)
    assert torch.equal(data.full.indices, torch.arange(200))


# ------------------------------------------------------------------------ limit_train missing classes


def smallest_limit(labels: list[int]) -> int:
    """The fewest first items that hold every class of ``labels``."""
    return max(labels.index(c) for c in set(labels)) + 1


def test_digits_limit_train_that_misses_classes_is_warned_about(caplog):
    labels = build_data(DataConfig(dataset="digits"), ".", 0, "cpu").full.y.tolist()
    enough = smallest_limit(labels)
    n = 64
    missing = 10 - len(set(labels[:n]))
    assert missing > 0 and enough > n  # the bundled digits' order: what this test is about
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        data = build_data(DataConfig(dataset="digits", limit_train=n), ".", 0, "cpu")
    assert torch.equal(data.full.indices, torch.arange(n))  # the same items kept
    text = caplog.text
    assert f"data.limit_train={n}" in text and f"no item of {missing} of its 10 classes" in text, text
    assert f"at least {enough}" in text, text
    for quiet in (dict(limit_train=enough), dict(limit_train=None), dict(limit_train=n, rank=1, world_size=2)):
        caplog.clear()
        rank = dict(rank=quiet.pop("rank", 0), world_size=quiet.pop("world_size", 1))
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            build_data(DataConfig(dataset="digits", **quiet), ".", 0, "cpu", **rank)
        assert "limit_train" not in caplog.text, (quiet, caplog.text)


def write_cifar(root, per_batch=20):
    """Fake CIFAR-10 batches whose labels come sorted within a batch: the first items hold classes 0, 1, ..."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = sorted(i % 10 for i in range(per_batch))
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": list(labels)}, f)
    return labels


def test_cifar_limit_train_that_misses_classes_is_warned_about(tmp_path, caplog):
    labels = write_cifar(tmp_path)
    n = 7
    missing, enough = 10 - len(set(labels[:n])), smallest_limit(labels)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        data = build_data(DataConfig(dataset="cifar10", root=str(tmp_path), limit_train=n, batch_size=2), ".", 0,
                          "cpu")
    assert data.full.y.tolist() == labels[:n]
    text = caplog.text
    assert f"data.limit_train={n}" in text and f"no item of {missing} of its 10 classes" in text, text
    assert f"at least {enough}" in text, text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        build_data(DataConfig(dataset="cifar10", root=str(tmp_path), limit_train=enough, batch_size=2), ".", 0, "cpu")
    assert "limit_train" not in caplog.text


def test_an_image_folders_supernet_records_its_split_by_class(tmp_path):
    """A supernet trained on an image folder before the split went class by class trained its weights on items
    now in D_theta: its fingerprint lacks the mark, so --supernet names the difference; digits' is unchanged."""
    root = Path(__file__).resolve().parents[1]
    quick, space = str(root / "recipes" / "quickstart.yaml"), root / "spaces" / "digits.space"

    def fingerprint(*overrides):
        recipe = load_recipe(quick, ["threads=1", *overrides])
        return weights_fingerprint(recipe, space, {k: str(v) for k, v in recipe.space_args.items()})

    folder = fingerprint("data.dataset=imagefolder", f"data.root={tmp_path}")
    assert folder["data.split"] == "by class"
    older = {k: v for k, v in folder.items() if k != "data.split"}
    assert differences(older, folder, only_read=True) == ['data.split: "(absent)" there, "by class" here']
    assert "data.split" not in fingerprint()
