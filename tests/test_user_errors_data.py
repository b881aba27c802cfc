"""Bad data ends in one DataError that names the file and says how to fix it: corrupt images (also from
DataLoader workers, and through ``automl run``: exit 2, no traceback), CIFAR-10 batches with wrong contents,
image folders that are files, too small to split, or whose class folders differ."""

from __future__ import annotations

import pickle
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from automl.errors import DataError
from automl.recipe import DataConfig
import automl.train.data as data_module
from automl.train.data import build_data
import helpers

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


# ---------------------------------------------------------------------------------------- image folder


write_images = partial(helpers.write_images, per_class=4, ext="png")  # 4 PNGs a class in train/ and val/


def folder_cfg(root, **kw):
    return DataConfig(dataset="imagefolder", root=str(root), image_size=8, batch_size=4, theta_split=2, **kw)


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_image_is_a_data_error_naming_the_file(tmp_path, monkeypatch, workers):
    """Met when its batch comes up (a large folder, where build_data checks only a sample)."""
    monkeypatch.setattr(data_module, "CHECK_FILES", 0)
    write_images(tmp_path)
    bad = tmp_path / "train" / "a" / "bad.png"
    bad.write_text("garbage")
    d = build_data(folder_cfg(tmp_path, workers=workers), ".", 0, "cpu")
    with pytest.raises(DataError) as info:
        for _ in d.full.epoch(0):
            pass
    text = str(info.value)
    assert str(bad) in text and "replace it" in text and "remove it" in text
    assert "Traceback" not in text and "DataLoader worker" not in text and "_io.BufferedReader" not in text


@pytest.mark.heavy  # a run over an ImageFolder of generated JPEGs: 10 s
def test_truncated_image_in_val_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "CHECK_FILES", 0)  # met when the test set is read (a large folder's)
    write_images(tmp_path)
    good = tmp_path / "val" / "b" / "0.png"
    good.write_bytes(good.read_bytes()[:60])
    d = build_data(folder_cfg(tmp_path), ".", 0, "cpu")
    with pytest.raises(DataError, match="remove or replace") as info:
        list(d.test.epoch(0))
    assert str(good) in str(info.value)


def test_corrupt_image_through_the_cli_exits_2_with_one_message(tmp_path, capsys):
    from automl.cli import main

    data = tmp_path / "imgs"
    write_images(data, per_class=6)
    bad = data / "train" / "a" / "bad.png"
    bad.write_text("garbage")
    space = tmp_path / "rgb.space"
    space.write_text((ROOT / "spaces" / "digits.space").read_text().replace("input 1 x", "input 3 x"))
    rc = main(["run", QUICK, f"space={space}", "data.dataset=imagefolder", f"data.root={data}",
               "space_args.classes=2", "data.image_size=8", "data.batch_size=4", "data.theta_batch_size=4",
               "data.workers=1", "threads=1", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
               "search.supernets=1", "search.lam=2", "search.budgets=[null]", "export.onnx=false",
               "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and str(bad) in err and "remove or replace" in err
    assert err.count("error:") == 1


# ---------------------------------------------------------------------------------------- CIFAR-10


def write_cifar(root, edit=None, per_batch=10):
    """Valid fake CIFAR-10 batches; ``edit(name, batch)`` returns what to pickle into file ``name``."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in CIFAR_FILES:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, per_batch).tolist()}
        if edit is not None:
            batch = edit(name, batch)
        (folder / name).write_bytes(pickle.dumps(batch))
    return folder


def cifar_error(tmp_path, edit):
    folder = write_cifar(tmp_path, edit)
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="cifar10", root=str(tmp_path)), ".", 0, "cpu")
    return folder, str(info.value)


def only(file, change):
    return lambda name, batch: change(batch) if name == file else batch


@pytest.mark.parametrize("file, change, words", [
    ("data_batch_1", lambda b: {b"data": np.zeros((10, 100), np.uint8), b"labels": [0] * 10}, "(10, 100)"),
    ("data_batch_3", lambda b: {**b, b"labels": [99] * 10}, "99"),
    ("test_batch", lambda b: {**b, b"labels": [-1] + b[b"labels"][1:]}, "-1"),
    ("data_batch_2", lambda b: {**b, b"labels": b[b"labels"][:7]}, "7 labels"),
    ("data_batch_1", lambda b: {**b, b"data": b[b"data"].astype(np.float32)}, "float32"),
    ("data_batch_4", lambda b: {b"labels": b[b"labels"]}, "no b'data'"),
    ("data_batch_5", lambda b: {b"data": b[b"data"]}, "no b'labels'"),
    ("data_batch_1", lambda b: [1, 2, 3], "list"),
    ("data_batch_1", lambda b: {**b, b"labels": "abc"}, "labels"),
    ("data_batch_1", lambda b: {b"data": b[b"data"][:0], b"labels": []}, "no images"),
])
def test_cifar_batch_with_wrong_contents_names_the_file_and_the_problem(tmp_path, file, change, words):
    folder, text = cifar_error(tmp_path, only(file, change))
    assert str(folder / file) in text and words in text, text
    assert "data.download=true" in text  # how to fix it


def test_cifar_batch_of_4d_images_is_accepted(tmp_path):
    write_cifar(tmp_path, lambda n, b: {**b, b"data": b[b"data"].reshape(-1, 3, 32, 32)})
    d = build_data(DataConfig(dataset="cifar10", root=str(tmp_path), theta_split=0.5), ".", 0, "cpu")
    assert d.input_shape == (3, 32, 32) and len(d.full.indices) == 50


def test_cifar_root_that_is_a_file_says_so(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(DataError, match="is a file, not a folder") as info:
        build_data(DataConfig(dataset="cifar10", root=str(f)), ".", 0, "cpu")
    assert str(f) in str(info.value) and "data.root" in str(info.value)


# ---------------------------------------------------------------------------------------- wording


def test_imagefolder_root_that_is_a_file_says_so(tmp_path):
    f = tmp_path / "quickstart.yaml"
    f.write_text("x")
    with pytest.raises(DataError) as info:
        build_data(folder_cfg(f), ".", 0, "cpu")
    text = str(info.value)
    assert f"{f} is a file, not a folder" in text and "data.root" in text and "does not exist" not in text


def test_imagefolder_train_that_is_a_file_says_so(tmp_path):
    (tmp_path / "val" / "a").mkdir(parents=True)
    (tmp_path / "train").write_text("x")
    with pytest.raises(DataError, match="is a file, not a folder") as info:
        build_data(folder_cfg(tmp_path), ".", 0, "cpu")
    assert str(tmp_path / "train") in str(info.value)


def test_training_set_too_small_to_split_does_not_suggest_the_current_value(tmp_path):
    write_images(tmp_path, classes=("a",), per_class=1)
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="imagefolder", root=str(tmp_path), theta_split=0.5), ".", 0, "cpu")
    text = str(info.value)
    assert "too small to split" in text and "at least 2" in text and "use a fraction" not in text
    assert str(tmp_path / "train") in text


def test_limit_train_too_small_to_split_names_limit_train():
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="digits", limit_train=1, theta_split=0.5), ".", 0, "cpu")
    assert "too small to split" in str(info.value) and "data.limit_train" in str(info.value)


def test_theta_split_count_too_large_still_suggests_a_fraction():
    with pytest.raises(DataError, match="theta_split=0.5 or a count below 50"):
        build_data(DataConfig(dataset="digits", limit_train=50, theta_split=50), ".", 0, "cpu")


def test_different_class_folders_are_named(tmp_path):
    write_images(tmp_path, classes=("a", "b"), per_class=1, val_classes=("a", "c"))
    with pytest.raises(DataError) as info:
        build_data(folder_cfg(tmp_path), ".", 0, "cpu")
    text = str(info.value)
    assert "only in" in text and "b" in text.split("only in")[1] and "c" in text.split("only in")[2]
    assert "2 vs 2" not in text
