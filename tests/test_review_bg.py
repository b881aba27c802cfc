"""Data a user brings, set up the wrong way, ends in one DataError that names the folder or file and says how to
fix it: a symbolic link that makes an image folder hold a folder twice (a link to a folder above it: images read
again and under another class), ImageNet's flat validation folder and per-class .tar archives, class folders of
train/ and val/ that differ only in case, in spaces at their ends or in how Unicode encodes their letters, and
CIFAR-10's archive left unextracted. Folders reached once through links still load as before."""

from __future__ import annotations

import os
import pickle
import tarfile
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from automl.errors import DataError
from automl.recipe import DataConfig
from automl.train.data import build_data
from helpers import rgb_folder_run, write_images

CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
needs_symlinks = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="POSIX symbolic links")


def folder_cfg(root, **kw):
    return DataConfig(dataset="imagefolder", root=str(root), image_size=8, batch_size=2, theta_split=2, **kw)


def data_error(root, **kw) -> str:
    with pytest.raises(DataError) as info:
        build_data(folder_cfg(root, **kw), ".", 0, "cpu")
    return str(info.value)


# ------------------------------------------------------------------------------------------ symbolic links


@needs_symlinks
def test_a_link_to_a_folder_above_is_refused_naming_the_link(tmp_path):
    write_images(tmp_path)
    link = tmp_path / "train" / "a" / "up"
    link.symlink_to("..")  # train/a/up -> train: b's images would be read again as class a, 40 links deep
    text = data_error(tmp_path)
    assert str(link) in text and "twice" in text and "remove the link" in text, text
    assert str(tmp_path / "train" / "a") in text


@needs_symlinks
def test_two_class_folders_linked_to_one_folder_are_refused(tmp_path):
    write_images(tmp_path, classes=("a", "b", "c"))
    (tmp_path / "shared").mkdir()
    for i in range(2):
        (tmp_path / "shared" / f"{i}.jpg").write_bytes((tmp_path / "train" / "a" / "0.jpg").read_bytes())
    for cls in ("b", "c"):
        for f in (tmp_path / "train" / cls).iterdir():
            f.unlink()
        (tmp_path / "train" / cls).rmdir()
        (tmp_path / "train" / cls).symlink_to(tmp_path / "shared")
    text = data_error(tmp_path)
    assert "as class 'b' and as class 'c'" in text and str(tmp_path / "shared") in text, text
    assert str(tmp_path / "train" / "b") in text and "remove the link" in text


@needs_symlinks
def test_linked_data_root_and_class_folders_load_the_same_items(tmp_path):
    real = tmp_path / "real"
    write_images(real)
    linked = tmp_path / "linked"
    for split in ("train", "val"):
        (linked / split).mkdir(parents=True)
        for cls in ("a", "b"):
            (linked / split / cls).symlink_to(real / split / cls)
    (tmp_path / "root_link").symlink_to(real)
    batches = []
    for root in (real, linked, tmp_path / "root_link"):
        d = build_data(folder_cfg(root), ".", 0, "cpu")
        assert len(d.full.indices) == 6 and len(d.test.indices) == 6
        batches.append([(x, y) for x, y in d.full.epoch(1)])
    for other in batches[1:]:
        assert all((x0 == x1).all() and (y0 == y1).all() for (x0, y0), (x1, y1) in zip(batches[0], other))


# ------------------------------------------------------------------------------- folders without classes


def test_flat_validation_folder_says_to_sort_its_images_into_class_folders(tmp_path):
    write_images(tmp_path)
    val = tmp_path / "val"
    for cls in ("a", "b"):
        for f in sorted((val / cls).iterdir()):
            f.rename(val / f"ILSVRC2012_val_{cls}{f.name}".replace(".jpg", ".JPEG"))
        (val / cls).rmdir()
    text = data_error(tmp_path)
    assert str(val) in text and "6 image files" in text and "ILSVRC2012_val_a0.JPEG" in text, text
    assert "into the folder of its class" in text and "and 3 more" in text


def test_train_of_per_class_archives_says_to_extract_them(tmp_path):
    write_images(tmp_path)
    train = tmp_path / "train"
    for cls in ("a", "b"):
        with tarfile.open(train / f"n0{cls}.tar", "w") as t:
            t.add(train / cls, arcname=".")
        for f in (train / cls).iterdir():
            f.unlink()
        (train / cls).rmdir()
    text = data_error(tmp_path)
    assert str(train) in text and "2 archives (n0a.tar, n0b.tar)" in text and "extract each" in text, text


def test_an_empty_split_folder_still_says_it_holds_no_class_folder(tmp_path):
    write_images(tmp_path)
    for cls in ("a", "b"):
        for f in (tmp_path / "val" / cls).iterdir():
            f.unlink()
        (tmp_path / "val" / cls).rmdir()
    text = data_error(tmp_path)
    assert str(tmp_path / "val") in text and "holds no class folder" in text, text


# ---------------------------------------------------------------------------- train/ and val/ class names


def test_class_names_encoded_two_ways_in_unicode_are_explained(tmp_path):
    composed, decomposed = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    write_images(tmp_path, classes=(composed, "b"), per_class=1, val_classes=(decomposed, "b"))
    if {p.name for p in (tmp_path / "val").iterdir()} == {composed, "b"}:
        pytest.skip("this file system stores names composed (NFC)")
    text = data_error(tmp_path)
    assert ascii(composed) in text and ascii(decomposed) in text and "Unicode" in text, text
    assert "rename one folder" in text


@pytest.mark.parametrize("train_name, val_name, words", [
    ("cat ", "cat", "differ only in spaces at their ends"),
    ("Cat", "cat", "differ only in upper and lower case"),
])
def test_class_names_that_look_alike_are_quoted_and_explained(tmp_path, train_name, val_name, words):
    write_images(tmp_path, classes=(train_name, "dog"), per_class=1, val_classes=(val_name, "dog"))
    if len({p.name for p in (tmp_path / "val").iterdir()} | {p.name for p in (tmp_path / "train").iterdir()}) < 3:
        pytest.skip("this file system does not tell the names apart")
    text = data_error(tmp_path)
    assert f"only in {tmp_path / 'train'}: {train_name!r}" in text and words in text, text


def test_other_different_class_folders_get_no_rename_hint(tmp_path):
    write_images(tmp_path, classes=("a", "b"), per_class=1, val_classes=("a", "c"))
    text = data_error(tmp_path)
    assert "'b'" in text and "'c'" in text and "rename" not in text and "differ only" not in text, text


# ------------------------------------------------------------------------------------------------ CIFAR-10


def write_cifar_archive(root: Path) -> Path:
    staging = root / "staging"
    staging.mkdir(parents=True)
    for name in CIFAR_FILES:
        with open(staging / name, "wb") as f:
            pickle.dump({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 3]}, f)
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(staging, arcname="cifar-10-batches-py")
    for name in CIFAR_FILES:
        (staging / name).unlink()
    staging.rmdir()
    return archive


def test_cifar_archive_left_unextracted_says_to_extract_it(tmp_path):
    archive = write_cifar_archive(tmp_path)
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="cifar10", root=str(tmp_path)), ".", 0, "cpu")
    text = str(info.value)
    assert "not extracted" in text and f"tar -xf {archive} -C {tmp_path}" in text and "data.download=true" in text
    with tarfile.open(archive) as t:  # what the message says to do works
        t.extractall(tmp_path)
    d = build_data(DataConfig(dataset="cifar10", root=str(tmp_path)), ".", 0, "cpu")
    assert len(d.full.indices) == 20


def test_cifar_root_that_is_the_archive_names_its_folder(tmp_path):
    archive = write_cifar_archive(tmp_path)
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="cifar10", root=str(archive)), ".", 0, "cpu")
    text = str(info.value)
    assert "is an archive" in text and f"data.root={tmp_path}" in text and f"tar -xf {archive}" in text, text
    assert f"{archive}/cifar-10-batches-py" not in text


# ------------------------------------------------------------------------------------------------- the CLI


@needs_symlinks
def test_a_link_loop_through_the_cli_exits_2_with_one_message(tmp_path, capsys):
    from automl.cli import main

    data = tmp_path / "imgs"
    write_images(data, per_class=4)
    (data / "train" / "b" / "again").symlink_to(data / "train")
    rc = main(rgb_folder_run(tmp_path, data))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and str(data / "train" / "b" / "again") in err and err.count("error") == 1, err
