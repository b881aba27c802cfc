"""An image folder set up the wrong way in ways that used to load without a word and give wrong data: train/ with a
single class folder (every label 0: nothing to learn; often images one folder too deep), val/ that reads train/'s
folders through a symbolic link (the test images would be training images), and images of a format torchvision's
ImageFolder leaves out (.gif, .jfif, ...: a class would lose them silently). Each is now one DataError naming the
folder or file and saying how to fix it. And data of another kind than data.dataset (CIFAR-10's binary version,
CIFAR-100, an image folder for cifar10, CIFAR-10 for imagefolder) is named as such where the data is not found."""

from __future__ import annotations

import os

import pytest

from automl.errors import DataError
from automl.recipe import DataConfig
from automl.train.data import build_data
from helpers import rgb_folder_run, write_images

needs_symlinks = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="POSIX symbolic links")


def data_error(root) -> str:
    cfg = DataConfig(dataset="imagefolder", root=str(root), image_size=8, batch_size=2, theta_split=2)
    with pytest.raises(DataError) as info:
        build_data(cfg, ".", 0, "cpu")
    return str(info.value)


# ---------------------------------------------------------------------------------------------- one class


def test_a_single_class_folder_is_refused(tmp_path):
    write_images(tmp_path, classes=("images",))
    text = data_error(tmp_path)
    assert str(tmp_path / "train") in text and "'images'" in text and "at least 2 classes" in text, text


def test_images_one_folder_too_deep_say_to_move_the_classes_up(tmp_path):
    write_images(tmp_path / "train", classes=("cat", "dog"), splits=("train",))  # train/train/cat, train/train/dog
    write_images(tmp_path / "val", classes=("cat", "dog"), splits=("val",))
    text = data_error(tmp_path)
    assert f"{tmp_path / 'train' / 'train'} holds the folders cat, dog" in text and "move them up" in text, text


# ------------------------------------------------------------------------------------- val/ is train/


@needs_symlinks
def test_val_linked_to_train_is_refused_naming_the_link(tmp_path):
    write_images(tmp_path, splits=("train",))
    (tmp_path / "val").symlink_to(tmp_path / "train")
    text = data_error(tmp_path)
    assert f"through the symbolic link {tmp_path / 'val'}" in text and "training images" in text, text


@needs_symlinks
def test_one_class_of_val_linked_to_train_is_refused(tmp_path):
    write_images(tmp_path, classes=("a",), per_class=3)
    write_images(tmp_path, classes=("b",), per_class=3, splits=("train",))
    (tmp_path / "val" / "b").symlink_to(tmp_path / "train" / "b")
    text = data_error(tmp_path)
    assert str(tmp_path / "val" / "b") in text and str(tmp_path / "train" / "b") in text, text
    assert str(tmp_path / "val" / "a") not in text, text


@needs_symlinks
def test_val_linked_to_a_folder_of_its_own_still_loads(tmp_path):
    write_images(tmp_path / "real", splits=("val",))
    write_images(tmp_path, splits=("train",))
    (tmp_path / "val").symlink_to(tmp_path / "real" / "val")
    cfg = DataConfig(dataset="imagefolder", root=str(tmp_path), image_size=8, batch_size=2, theta_split=2)
    d = build_data(cfg, ".", 0, "cpu")
    assert d.num_classes == 2 and len(d.test.indices) == 6


# --------------------------------------------------------------------------------- formats left out


def test_a_gif_among_jpegs_is_named(tmp_path):
    from PIL import Image

    write_images(tmp_path)
    Image.new("RGB", (12, 12)).save(tmp_path / "train" / "a" / "extra.GIF", format="GIF")
    Image.new("RGB", (12, 12)).save(tmp_path / "train" / "a" / "._hidden.gif", format="GIF")  # macOS: not an image
    text = data_error(tmp_path)
    assert str(tmp_path / "train" / "a" / "extra.GIF") in text and ".gif" in text and "convert it" in text, text
    assert "._hidden" not in text, text


def test_a_class_of_jfif_files_says_their_format_is_not_read(tmp_path):
    write_images(tmp_path, classes=("a",))
    write_images(tmp_path, classes=("b",), ext="jpg")
    for split in ("train", "val"):
        for p in (tmp_path / split / "b").iterdir():
            p.rename(p.with_suffix(".jfif"))
    text = data_error(tmp_path)
    assert f"{tmp_path / 'train'} holds 3 image files of a format that is not read (.jfif" in text, text


def test_other_files_in_class_folders_are_still_ignored(tmp_path):
    write_images(tmp_path)
    (tmp_path / "train" / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / "a" / "Thumbs.db").write_bytes(b"\0" * 16)
    cfg = DataConfig(dataset="imagefolder", root=str(tmp_path), image_size=8, batch_size=2, theta_split=2)
    assert len(build_data(cfg, ".", 0, "cpu").full.indices) == 6


# ------------------------------------------------------------------------------ the wrong dataset's data


@pytest.mark.parametrize("other, what", [("cifar-10-batches-bin", "CIFAR-10's binary version"),
                                         ("cifar-100-python", "CIFAR-100")])
def test_cifar10_says_which_other_cifar_it_found(tmp_path, other, what):
    (tmp_path / other).mkdir()
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="cifar10", root=str(tmp_path)), ".", 0, "cpu")
    text = str(info.value)
    assert f"{tmp_path / other}/ is {what}" in text and "reads only CIFAR-10's python version" in text, text


def test_cifar10_pointed_at_an_image_folder_says_set_dataset_imagefolder(tmp_path):
    write_images(tmp_path)
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="cifar10", root=str(tmp_path)), ".", 0, "cpu")
    assert "set data.dataset=imagefolder" in str(info.value), info.value


def test_imagefolder_pointed_at_cifar10_says_set_dataset_cifar10(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    text = data_error(tmp_path)
    assert f"{tmp_path / 'train'} does not exist" in text and "set data.dataset=cifar10" in text, text


# ------------------------------------------------------------------------------------------------- the CLI


def test_a_single_class_through_the_cli_exits_2_naming_the_folder(tmp_path, capsys):
    from automl.cli import main

    data = tmp_path / "imgs"
    write_images(data, classes=("all",), per_class=4)
    rc = main(rgb_folder_run(tmp_path, data))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and f"{data / 'train'} holds a single class folder" in err, err
    assert err.count("error") == 1, err
