"""Image-folder mistakes that ended badly or late. A split folder under another name (validation/, valid/, test/,
training/, Train/) or the image folder one level down got only "does not exist"; they are now named, with the
rename, link or data.root to set. A damaged image was found only when its batch came up (val/: once the search was
over); the images of a small folder, and a bounded sample of a larger one, are now decoded before the run starts,
and one that fails is one message naming it, exit 2. A symbolic link to nothing is called that, a val/ image that
is a link to a train/ image is refused (the test images would be training images), and a damaged image met in a
torchrun rank other than 0 is said by that rank (the CLI prints rank 0's errors only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from automl.errors import DataError
from automl.recipe import DataConfig
from automl.train import data as data_module
from automl.train.data import build_data
from helpers import rgb_folder_run, write_images

needs_symlinks = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="POSIX symbolic links")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def config(root, **kw) -> DataConfig:
    return DataConfig(dataset="imagefolder", root=str(root), image_size=8, batch_size=2, theta_split=2, **kw)


def data_error(root, **kw) -> str:
    with pytest.raises(DataError) as info:
        build_data(config(root, **kw), ".", 0, "cpu")
    return str(info.value)


# ------------------------------------------------------------------------------------ split folders renamed


@pytest.mark.parametrize("split,other", [("val", "validation"), ("val", "valid"), ("val", "test"), ("val", "Val"),
                                         ("train", "training"), ("train", "Train")])
def test_a_split_folder_of_another_name_is_named_with_the_rename(tmp_path, split, other):
    write_images(tmp_path, splits=("train", "val"))
    (tmp_path / split).rename(tmp_path / other)
    if (tmp_path / split).is_dir():  # a case-insensitive file system finds Val/ as val/: nothing to say
        pytest.skip("case-insensitive file system")
    text = data_error(tmp_path)
    assert f"{tmp_path} holds {other}/ but no {split}/" in text, text
    assert f"mv {tmp_path / other} {tmp_path / split}" in text and f"ln -s {other} {tmp_path / split}" in text, text


def test_both_split_folders_renamed_are_named_in_one_message(tmp_path):
    write_images(tmp_path, splits=("training", "validation"))
    text = data_error(tmp_path)
    assert "holds training/ but no train/" in text and "holds validation/ but no val/" in text, text


def test_two_candidates_for_val_say_to_rename_the_held_out_one(tmp_path):
    write_images(tmp_path, splits=("train", "test", "valid"))
    text = data_error(tmp_path)
    assert "holds test/ and valid/ but no val/: rename the one that holds the held-out images to val/" in text, text


def test_an_image_folder_one_level_down_says_which_root_to_set(tmp_path):
    write_images(tmp_path / "imagenet" / "extracted")
    text = data_error(tmp_path)
    assert f"{tmp_path / 'imagenet' / 'extracted'} holds train/ and val/: set data.root=" \
           f"{tmp_path / 'imagenet' / 'extracted'}" in text, text


# ------------------------------------------------------------------------------------ unreadable images


@pytest.mark.parametrize("split", ["val", "train"])
def test_a_truncated_jpeg_of_a_small_folder_is_refused_before_the_run(tmp_path, split):
    write_images(tmp_path, size=40)
    bad = tmp_path / split / "b" / "1.jpg"
    truncate(bad)
    text = data_error(tmp_path)
    assert f"cannot read the image {bad}: image file is truncated" in text and "remove or replace it" in text, text


def test_files_that_are_no_images_are_counted_and_named(tmp_path, monkeypatch):
    """Git LFS pointers in place of images: a larger folder is checked in part (CHECK_FILES), the message says how
    many of the images checked failed and names some."""
    write_images(tmp_path, per_class=15)
    pointers = sorted((tmp_path / "val").rglob("*.jpg"))
    for p in pointers:
        p.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1234\n")
    monkeypatch.setattr(data_module, "CHECK_FILES", 4, raising=False)
    text = data_error(tmp_path)
    assert f"cannot read 4 of 4 images checked (of 30) in {tmp_path / 'val'}:" in text, text
    assert "not an image file PIL can read" in text and "and 1 more" not in text, text  # 4 named, none hidden


def test_an_image_outside_limit_train_is_not_checked(tmp_path):
    """data.limit_train keeps some training images: one it leaves out is never read, so it stops nothing (a guard:
    this passed before the check existed)."""
    write_images(tmp_path, per_class=6, size=40)
    cfg = config(tmp_path, limit_train=4)
    data = build_data(cfg, ".", 0, "cpu")
    kept = {data.full.dataset.samples[i][0] for i in data.full.indices.tolist()}
    bad = next(Path(p) for p, _ in data.full.dataset.samples if p not in kept)
    truncate(bad)
    data = build_data(cfg, ".", 0, "cpu")
    assert {data.full.dataset.samples[i][0] for i in data.full.indices.tolist()} == kept
    for _ in data.full.epoch(0):
        pass


@needs_symlinks
def test_an_image_that_is_a_link_to_nothing_says_so(tmp_path):
    write_images(tmp_path)
    link = tmp_path / "val" / "a" / "9.jpg"
    os.symlink(tmp_path / "gone" / "9.jpg", link)
    text = data_error(tmp_path)
    assert f"cannot read the image {link}: it is a symbolic link to {tmp_path / 'gone' / '9.jpg'}, which does not " \
           f"exist" in text, text


def test_a_run_stops_on_a_damaged_val_image_before_training(tmp_path, capsys):
    from automl.cli import main

    data = tmp_path / "imgs"
    write_images(data, per_class=4, size=40)
    bad = data / "val" / "b" / "3.jpg"
    truncate(bad)
    rc = main(rgb_folder_run(tmp_path, data))
    out = capsys.readouterr()
    assert rc == 2, out.err
    assert "Traceback" not in out.err and f"cannot read the image {bad}: image file is truncated" in out.err, out.err
    assert out.err.count("error") == 1, out.err
    assert "weights epoch" not in out.out + out.err, out.out + out.err  # it stopped before the search trained


def test_a_damaged_image_met_by_rank_1_is_said_by_it(tmp_path, monkeypatch, capsys):
    """Under torchrun the CLI prints rank 0's error only; a damaged image in another rank's share (found when its
    batch comes up: a large folder is checked in part) was said by nobody, rank 0 saying only that a rank was lost."""
    write_images(tmp_path, size=40)
    bad = tmp_path / "val" / "a" / "1.jpg"
    truncate(bad)
    monkeypatch.setattr(data_module, "_check_images", lambda *a, **k: 0, raising=False)  # as if the sample missed it
    data = build_data(config(tmp_path), ".", 0, "cpu")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(DataError) as info:
        for _ in data.test.epoch(0):
            pass
    err = capsys.readouterr().err
    assert f"cannot read the image {bad}" in err and info.value.printed, err


# ------------------------------------------------------------------------------------ val/ linked to train/


@needs_symlinks
def test_val_images_linked_to_train_images_are_refused(tmp_path):
    write_images(tmp_path)
    for i in range(2):
        os.symlink(tmp_path / "train" / "a" / f"{i}.jpg", tmp_path / "val" / "a" / f"link{i}.jpg")
    text = data_error(tmp_path)
    assert f"2 images of {tmp_path / 'val'} are symbolic links to images of {tmp_path / 'train'}" in text, text
    assert f"{tmp_path / 'val' / 'a' / 'link0.jpg'} (to {tmp_path / 'train' / 'a' / '0.jpg'})" in text, text


@needs_symlinks
def test_val_images_linked_elsewhere_still_load(tmp_path):
    """A guard: a val/ image linked from outside train/ is read as before."""
    write_images(tmp_path)
    write_images(tmp_path / "extra", splits=("more",))
    os.symlink(tmp_path / "extra" / "more" / "a" / "0.jpg", tmp_path / "val" / "a" / "linked.jpg")
    data = build_data(config(tmp_path), ".", 0, "cpu")
    assert len(data.test.indices) == 7
