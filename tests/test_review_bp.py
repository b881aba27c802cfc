"""Image folders and CIFAR-10 batches this user may not read, class folders that are broken symbolic links, and
empty image files: each ends in one DataError that names the file or folder and says how to fix it (the tests
run as root, so a folder or file this user may not read is simulated by making os.scandir or open refuse it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import automl.train.data as data
from automl.errors import DataError
from automl.recipe import DataConfig
from automl.train.data import build_data
from test_user_errors_data import folder_cfg, write_cifar, write_images


def data_error(root, **kw) -> str:
    with pytest.raises(DataError) as info:
        build_data(folder_cfg(root, **kw), ".", 0, "cpu")
    return str(info.value)


def epoch_error(root, loader="full", **kw) -> str:
    """The error of an epoch of ``loader``: a file met when its batch comes up (build_data checks no image here,
    as of a folder larger than it checks whole)."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(data, "CHECK_FILES", 0)
        d = build_data(folder_cfg(root, **kw), ".", 0, "cpu")
    with pytest.raises(DataError) as info:
        for _ in getattr(d, loader).epoch(0):
            pass
    return str(info.value)


def refuse_listing(monkeypatch, denied: Path):
    """os.scandir (which torchvision's os.walk lists folders with) raises PermissionError for ``denied``."""
    scandir = os.scandir

    def fake(path="."):
        if Path(path) == denied:
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", fake)


def refuse_opening(monkeypatch, denied: Path):
    """data.py's open raises PermissionError for ``denied``."""
    def fake(path, *args, **kw):
        if Path(path) == denied:
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *args, **kw)

    monkeypatch.setattr(data, "open", fake, raising=False)


# ------------------------------------------------------------------------------- folders this user may not read


def test_a_class_folder_this_user_may_not_list_is_not_called_empty(tmp_path, monkeypatch):
    write_images(tmp_path)
    denied = tmp_path / "train" / "b"
    refuse_listing(monkeypatch, denied)
    text = data_error(tmp_path)
    assert f"cannot read the class folder {denied}: this user may not list the folder (permission denied)" in text
    assert f"chmod -R a+rX {denied}" in text and "holds no image" not in text, text


@pytest.mark.parametrize("split", ["train", "val"])
def test_a_split_folder_this_user_may_not_list_says_how_to_make_it_readable(tmp_path, monkeypatch, split):
    write_images(tmp_path)
    denied = tmp_path / split
    refuse_listing(monkeypatch, denied)
    text = data_error(tmp_path)
    assert f"cannot read {denied}: this user may not list the folder (permission denied)" in text, text
    assert f"chmod -R a+rX {denied}" in text and "Errno" not in text, text


@pytest.mark.parametrize("workers", [0, 2])
def test_an_image_this_user_may_not_read_says_to_make_it_readable_not_to_remove_it(tmp_path, monkeypatch,
                                                                                    workers):
    write_images(tmp_path)
    denied = tmp_path / "train" / "a" / "1.png"
    refuse_opening(monkeypatch, denied)  # forked workers inherit the patch
    text = epoch_error(tmp_path, workers=workers)
    assert f"cannot read the image {denied}: this user may not read it (permission denied)" in text, text
    assert f"chmod -R a+rX {denied}" in text and "remove or replace" not in text, text


def test_a_cifar_batch_this_user_may_not_read_is_not_to_be_deleted(tmp_path, monkeypatch):
    folder = write_cifar(tmp_path, None)
    denied = folder / "data_batch_3"
    refuse_opening(monkeypatch, denied)
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="cifar10", root=str(tmp_path)), ".", 0, "cpu")
    text = str(info.value)
    assert f"cannot read {denied}: this user may not read it (permission denied)" in text, text
    assert f"chmod -R a+rX {denied}" in text and "Delete" not in text and "Errno" not in text, text


# ------------------------------------------------------------------------------- broken symbolic links


@pytest.mark.heavy  # runs over an ImageFolder of generated JPEGs: 10 s
def test_a_broken_link_in_both_splits_is_not_silently_dropped(tmp_path):
    write_images(tmp_path)
    gone = tmp_path / "moved_away"
    for split in ("train", "val"):
        (tmp_path / split / "c").symlink_to(gone, target_is_directory=True)
    link = tmp_path / "train" / "c"
    text = data_error(tmp_path)
    assert f"the symbolic link {link} (to {gone}) leads to nothing that exists, so it is no class folder" in text
    assert f"ln -sfn /path/to/<class> {link}" in text, text


def test_a_broken_link_in_train_is_named_instead_of_a_class_only_in_val(tmp_path):
    write_images(tmp_path, val_classes=("a", "b", "c"))
    link = tmp_path / "train" / "c"
    link.symlink_to("../elsewhere/c")
    text = data_error(tmp_path)
    assert f"the symbolic link {link} (to ../elsewhere/c) leads to nothing that exists" in text, text
    assert "different class folders" not in text


def test_several_broken_links_and_a_loop_are_listed_in_one_message(tmp_path):
    write_images(tmp_path)
    val = tmp_path / "val"
    (val / "x").symlink_to(val / "y")
    (val / "y").symlink_to(val / "x")  # a loop
    (val / "z").symlink_to(tmp_path / "nothing")
    (val / ".hidden").symlink_to(tmp_path / "nothing")  # hidden: not a class, not named
    text = data_error(tmp_path)
    assert f"3 symbolic links in {val} lead to nothing that exists, so they are no class folders" in text, text
    assert all(f"{val / n} (to " in text for n in "xyz") and ".hidden" not in text, text


def test_a_link_to_an_existing_class_folder_is_still_a_class(tmp_path):
    write_images(tmp_path, classes=("a", "b"))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "train" / "b").rename(tmp_path / "elsewhere" / "b")
    (tmp_path / "train" / "b").symlink_to(tmp_path / "elsewhere" / "b")
    d = build_data(folder_cfg(tmp_path), ".", 0, "cpu")
    assert d.num_classes == 2 and len(d.full.indices) == 8


# ------------------------------------------------------------------------------- empty image files


def test_an_empty_image_file_is_called_empty(tmp_path):
    write_images(tmp_path)
    empty = tmp_path / "val" / "b" / "9.jpg"
    empty.write_bytes(b"")
    text = epoch_error(tmp_path, loader="test")
    assert f"cannot read the image {empty}: the file is empty (0 bytes); remove or replace it" in text, text


def test_a_text_file_named_as_an_image_is_still_not_an_image(tmp_path):
    write_images(tmp_path)
    bad = tmp_path / "val" / "b" / "9.jpg"
    bad.write_text("not an image")
    text = epoch_error(tmp_path, loader="test")
    assert f"cannot read the image {bad}: not an image file PIL can read; remove or replace it" in text, text


# ------------------------------------------------------------------------------- cut lists of names


def test_long_lists_of_names_are_cut_with_a_count_of_the_rest(tmp_path):
    write_images(tmp_path, classes=[f"c{i:02}" for i in range(13)], per_class=1, val_classes=["c00", "z"])
    text = data_error(tmp_path)
    assert f"only in {tmp_path / 'train'}: 'c01', 'c02', 'c03', 'c04', 'c05', 'c06', 'c07', 'c08', 'c09', 'c10' " \
           f"and 2 more; only in {tmp_path / 'val'}: 'z'); give both" in text, text
    for i in range(7):
        (tmp_path / "train" / f"e{i}").mkdir()
    text = data_error(tmp_path)
    assert f"class folders {', '.join(str(tmp_path / 'train' / f'e{i}') for i in range(5))} and 2 more hold no " \
           f"image" in text, text


# ------------------------------------------------------------------------------- roots that are broken links


def test_an_image_folder_root_that_is_a_broken_link_says_so(tmp_path):
    root = tmp_path / "imagenet"
    root.symlink_to(tmp_path / "unmounted" / "imagenet")
    text = data_error(root)
    assert f"{root} is a symbolic link to {tmp_path / 'unmounted' / 'imagenet'}, which does not exist" in text, text


def test_a_root_below_a_broken_link_names_the_link(tmp_path):
    (tmp_path / "mnt").symlink_to(tmp_path / "unmounted")
    root = tmp_path / "mnt" / "imagenet"
    text = data_error(root)
    assert f"{root} does not exist: {tmp_path / 'mnt'} is a symbolic link to {tmp_path / 'unmounted'}, which " \
           f"does not exist" in text, text


def test_a_plain_missing_root_still_just_does_not_exist(tmp_path):
    text = data_error(tmp_path / "typo")
    assert f"image folder not found: {tmp_path / 'typo'} does not exist;" in text, text


@pytest.mark.parametrize("download", [False, True])
def test_a_cifar_folder_that_is_a_broken_link_says_so_before_any_download(tmp_path, download):
    folder = tmp_path / "cifar-10-batches-py"
    folder.symlink_to(tmp_path / "gone")
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="cifar10", root=str(tmp_path), download=download), ".", 0, "cpu")
    text = str(info.value)
    assert f"{folder} is a symbolic link to {tmp_path / 'gone'}, which does not exist" in text, text
    assert "make the link lead to the folder that holds CIFAR-10's batch files" in text, text
