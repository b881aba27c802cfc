"""Data paths a user points a recipe at: an unreadable image met when its batch comes up says how to resume the run
(a training image: replace it under its name, as removing it redraws the D_W / D_theta split), and CIFAR-10 not
found says where CIFAR-100 or CIFAR-10 one folder down is."""

from __future__ import annotations

import pickle
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

import automl.train.data as data_module
from automl.errors import DataError
from automl.recipe import DataConfig
from automl.train.data import build_data
import helpers

CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


write_images = partial(helpers.write_images, per_class=4)  # 4 JPEGs a class in train/ and val/


def folder_cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(dataset="imagefolder", root=str(root), image_size=8, batch_size=4, theta_split=0.5, **kw)


def batch_error(root: Path, loader: str) -> str:
    d = build_data(folder_cfg(root), ".", 0, "cpu")
    with pytest.raises(DataError) as info:
        for _ in getattr(d, loader).epoch(0):
            pass
    return str(info.value)


# ------------------------------------------------------------------------- an unreadable image met in a batch


def test_a_bad_training_image_met_in_a_batch_says_to_replace_it_under_its_name_to_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "CHECK_FILES", 0)  # a large folder: only a sample is checked before the run
    write_images(tmp_path)
    bad = tmp_path / "train" / "b" / "2.jpg"
    bad.write_text("not an image")
    text = batch_error(tmp_path, "full")
    assert f"cannot read the image {bad}: not an image file PIL can read; replace it" in text, text
    fix = ("replace it with a readable image of its class under the same name and run the same command again "
           "(automl run: with --resume)")
    assert fix in text, text
    assert "D_W / D_theta split" in text and "or remove it and start a new run" in text, text


def test_removing_a_training_image_redraws_the_split_as_the_message_says(tmp_path):
    """What the message above warns of: the split of the folder without one image puts training images of D_W
    into D_theta (a resumed run is not told)."""
    write_images(tmp_path, per_class=20)
    before = build_data(folder_cfg(tmp_path), ".", 0, "cpu")
    w_before = {before.w.dataset.samples[i][0] for i in before.w.indices.tolist()}
    (tmp_path / "train" / "b" / "19.jpg").unlink()
    after = build_data(folder_cfg(tmp_path), ".", 0, "cpu")
    theta_after = {after.theta.dataset.samples[i][0] for i in after.theta.indices.tolist()}
    assert w_before & theta_after


def test_a_bad_test_image_met_in_a_batch_says_to_resume_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "CHECK_FILES", 0)
    write_images(tmp_path)
    bad = tmp_path / "val" / "a" / "1.jpg"
    bad.write_bytes(b"")
    text = batch_error(tmp_path, "test")
    assert f"cannot read the image {bad}: the file is empty (0 bytes); remove or replace it, then run the same " \
           f"command again (automl run: with --resume)" in text, text
    assert "same name" not in text, text  # removing a test image leaves the split as it was


def test_a_bad_image_found_before_the_run_says_nothing_of_resuming(tmp_path):
    write_images(tmp_path)
    bad = tmp_path / "train" / "a" / "0.jpg"
    bad.write_text("not an image")
    with pytest.raises(DataError) as info:
        build_data(folder_cfg(tmp_path), ".", 0, "cpu")
    text = str(info.value)
    assert str(bad) in text and "remove or replace it" in text and "--resume" not in text, text


# ------------------------------------------------------------------------------------------------ CIFAR-10


def write_cifar(folder: Path, per_batch=10):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in CIFAR_FILES:
        (folder / name).write_bytes(pickle.dumps({b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                                                  b"labels": rng.integers(0, 10, per_batch).tolist()}))


def cifar100_batch(n=10) -> dict:
    rng = np.random.default_rng(1)
    return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"fine_labels": rng.integers(0, 100, n).tolist(),
            b"coarse_labels": rng.integers(0, 20, n).tolist()}


def write_cifar100(folder: Path):
    folder.mkdir(parents=True)
    for name in ("train", "test"):
        (folder / name).write_bytes(pickle.dumps(cifar100_batch()))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [], b"coarse_label_names": []}))


def cifar_error(root: Path) -> str:
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="cifar10", root=str(root)), ".", 0, "cpu")
    return str(info.value)


def test_data_root_set_to_cifar100s_folder_says_it_is_cifar100(tmp_path):
    root = tmp_path / "cifar-100-python"
    write_cifar100(root)
    text = cifar_error(root)
    assert f"{root} holds train, test, meta, the files of CIFAR-100" in text, text


def test_cifar100s_files_in_the_cifar10_folder_are_said_to_be_cifar100(tmp_path):
    write_cifar100(tmp_path / "cifar-10-batches-py")
    text = cifar_error(tmp_path)
    assert f"{tmp_path / 'cifar-10-batches-py'} holds train, test, meta, the files of CIFAR-100" in text, text


def test_a_cifar100_batch_in_place_of_a_cifar10_batch_is_named_as_cifar100(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "data_batch_2").write_bytes(pickle.dumps(cifar100_batch()))
    text = cifar_error(tmp_path)
    assert f"{folder / 'data_batch_2'} is not a CIFAR-10 python batch" in text, text
    assert "as a batch of CIFAR-100 has (b'fine_labels')" in text, text


def test_cifar10_one_folder_further_down_says_which_root_to_set(tmp_path):
    write_cifar(tmp_path / "downloads" / "cifar10" / "cifar-10-batches-py")
    text = cifar_error(tmp_path)
    assert f"set data.root={tmp_path / 'downloads' / 'cifar10'}" in text, text
    d = build_data(DataConfig(dataset="cifar10", root=str(tmp_path / "downloads" / "cifar10")), ".", 0, "cpu")
    assert len(d.full.indices) == 50 and isinstance(d.test.y, torch.Tensor)


def test_a_folder_that_may_not_be_entered_gives_no_cifar10_hint(tmp_path, monkeypatch):
    """The hint's look into the folders of data.root does not replace the error by one of its own."""
    write_cifar(tmp_path / "locked" / "cifar-10-batches-py")
    is_file = data_module._is_file

    def denied(path):
        if "locked" in str(path):
            raise DataError(f"cannot read {path}: this user may not enter the folder")
        return is_file(path)

    monkeypatch.setattr(data_module, "_is_file", denied)
    text = cifar_error(tmp_path)
    assert text.startswith("CIFAR-10 not found: missing") and "set data.root=" not in text, text
