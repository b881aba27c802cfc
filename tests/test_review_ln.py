"""Review LN: an own image folder given to ``automl run recipes/imagenet.yaml data.root=DIR``: a DIR of class folders
without train/ and val/, or without val/, says what to do; the bad-image messages say which files are read as images
(and skipped files are counted once); more data.workers than CPUs is said once by automl, not twice by torch."""
from __future__ import annotations

import logging
import warnings

import pytest
import torch
from PIL import Image

import automl.train.data as data_module
from automl.errors import DataError
from automl.recipe import DataConfig
from automl.train.data import build_data
from helpers import write_images


def _cfg(root, **kw) -> DataConfig:
    return DataConfig(dataset="imagefolder", root=str(root), image_size=8, batch_size=2, theta_split=2, **kw)


def _error(root) -> DataError:
    with pytest.raises(DataError) as info:
        build_data(_cfg(root), ".", 0, "cpu")
    return info.value


def _data_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "automl.train.data" and r.levelno == logging.WARNING]


# ------------------------------------------------------------------------------ class folders without train/ and val/


def test_a_root_of_class_folders_says_to_move_them_into_train_and_val(tmp_path):
    root = write_images(tmp_path / "pets", classes=("cat", "dog", "fox"), splits=("",))
    e = _error(root)
    text = str(e)
    assert text.startswith(f"image folder not found: {root / 'train'} does not exist;"), text
    assert f"data.root {root} holds class folders (cat, dog, fox) but no train/ and val/" in text, text
    assert f"move them into {root}/train/" in text and "mv cat dog fox train/" in text, text
    assert f"held-out images of each class, not in train/, in {root}/val/<class>/" in text, text
    assert e.recipe_key == ("data", "root")


def test_class_folders_beside_val_say_to_move_them_into_train(tmp_path):
    root = write_images(tmp_path / "pets", classes=("cat", "dog"), splits=("", "val"))
    text = str(_error(root))
    assert f"data.root {root} holds class folders (cat, dog) but no train/: move them into {root}/train/" in text, text
    assert "held-out" not in text, text


def test_folders_without_images_are_not_called_class_folders(tmp_path):
    for name in ("docs", "notes"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "readme.txt").write_text("x")
    text = str(_error(tmp_path))
    assert f"{tmp_path / 'train'} does not exist" in text and "class folders" not in text, text


def test_a_missing_val_names_the_classes_it_must_hold(tmp_path):
    root = write_images(tmp_path / "pets", classes=("cat", "dog", "fox"), splits=("train",))
    e = _error(root)
    text = str(e)
    assert f"{root / 'val'} does not exist; val/ must hold held-out images (not in train/) of the classes of " \
           f"{root / 'train'} (cat, dog, fox), one folder for each, {root}/val/<class>/" in text, text
    assert "move a tenth of each class's images from train/<class>/ to val/<class>/" in text, text
    assert e.recipe_key == ("data", "root")


def test_a_missing_train_names_the_classes_of_val(tmp_path):
    root = write_images(tmp_path / "pets", classes=("cat", "dog"), splits=("val",))
    text = str(_error(root))
    assert f"{root / 'train'} does not exist; train/ must hold the training images of the classes of " \
           f"{root / 'val'} (cat, dog), one folder for each, {root}/train/<class>/" in text, text


# ------------------------------------------------------------------------------ which files are read as images


def test_the_bad_image_message_names_the_files_read_as_images(tmp_path):
    from torchvision.datasets.folder import IMG_EXTENSIONS

    write_images(tmp_path)
    bad = tmp_path / "train" / "a" / "0.jpg"
    bad.write_bytes(b"not a jpeg")
    (tmp_path / "train" / "a" / "notes.txt").write_text("not an image either, and skipped")
    text = str(_error(tmp_path))
    assert f"cannot read the image {bad}" in text, text
    assert "every file in a class folder" not in text, text  # was: said of notes.txt too, which is skipped
    for ext in IMG_EXTENSIONS:  # the files torchvision's ImageFolder would read
        assert ext in text, (ext, text)
    assert "files of other names, and those whose names start with '.', are skipped" in text, text
    assert "notes.txt" not in text, text


def test_the_extensions_read_are_torchvisions(tmp_path):
    from torchvision.datasets.folder import IMG_EXTENSIONS

    write_images(tmp_path)
    for i, ext in enumerate(IMG_EXTENSIONS):  # one more image of class a of each format, the extension upper case
        img = Image.new("L" if ext in (".pgm",) else "RGB", (12, 12), 100)
        img.save(tmp_path / "train" / "a" / f"x{i}{ext.upper()}", format=Image.registered_extensions()[ext])
    data = build_data(_cfg(tmp_path), ".", 0, "cpu")
    assert len(data.full.dataset) == 6 + len(IMG_EXTENSIONS)


def test_skipped_files_are_counted_in_one_warning(tmp_path, caplog):
    write_images(tmp_path)
    (tmp_path / "train" / "a" / "notes.txt").write_text("x")
    (tmp_path / "val" / "b" / "Thumbs.db").write_bytes(b"\0" * 16)
    (tmp_path / "train" / "b" / ".DS_Store").write_bytes(b"\0" * 16)  # hidden: not counted
    with caplog.at_level(logging.WARNING, logger="automl.train.data"):
        data = build_data(_cfg(tmp_path), ".", 0, "cpu")
    assert len(data.full.dataset) == 6
    said = [m for m in _data_warnings(caplog) if "skipping" in m]
    assert len(said) == 1, said
    assert said[0].startswith(f"warning: skipping 2 files in the class folders of {tmp_path / 'train'} and "
                              f"{tmp_path / 'val'} whose names do not end in an image extension (e.g. "), said
    assert str(tmp_path / "train" / "a" / "notes.txt") in said[0] or str(tmp_path / "val" / "b" / "Thumbs.db") \
        in said[0], said
    assert ".DS_Store" not in said[0] and ".jpg" in said[0], said


def test_hidden_files_alone_are_not_warned_about(tmp_path, caplog):
    write_images(tmp_path)
    (tmp_path / "train" / "a" / ".DS_Store").write_bytes(b"\0" * 16)
    (tmp_path / "val" / "a" / "._0.jpg").write_bytes(b"\0" * 16)
    with caplog.at_level(logging.WARNING, logger="automl.train.data"):
        build_data(_cfg(tmp_path), ".", 0, "cpu")
    assert not [m for m in _data_warnings(caplog) if "skipping" in m]


# ------------------------------------------------------------------------------ data.workers above the CPUs


def _torch_worker_warnings(loader) -> list[str]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in loader.epoch(0):
            pass
    return [str(w.message) for w in seen if "worker processes" in str(w.message)]


def test_more_workers_than_cpus_is_said_once_by_automl(tmp_path, caplog, monkeypatch):
    write_images(tmp_path)
    monkeypatch.setattr(data_module, "usable_cores", lambda: 1, raising=False)
    monkeypatch.setattr(torch._utils, "cpu_count", lambda: 1)  # torch's own check (its DataLoader) sees 1 CPU too
    with caplog.at_level(logging.WARNING, logger="automl.train.data"):
        data = build_data(_cfg(tmp_path, workers=2), ".", 0, "cpu")
    said = [m for m in _data_warnings(caplog) if "data.workers" in m]
    assert said == [m for m in said if m.startswith("warning: data.workers: 2 is more than the 1 CPU this process "
                                                    "can use")] and len(said) == 1, said
    assert "set data.workers=1 or fewer" in said[0], said
    assert data.w.workers == 2  # the count is used as set


def test_torchs_worker_count_warning_is_not_shown(tmp_path, monkeypatch):
    """torch's own warning, twice and with its site-packages path, repeated what automl says (above)."""
    write_images(tmp_path)
    monkeypatch.setattr(torch._utils, "cpu_count", lambda: 1)  # what torch's check (its DataLoader) reads
    data = build_data(_cfg(tmp_path, workers=2), ".", 0, "cpu")
    assert _torch_worker_warnings(data.w) == []
    assert _torch_worker_warnings(data.test) == []


def test_workers_within_the_cpus_are_not_warned_about(tmp_path, caplog, monkeypatch):
    write_images(tmp_path)
    monkeypatch.setattr(data_module, "usable_cores", lambda: 2, raising=False)
    with caplog.at_level(logging.WARNING, logger="automl.train.data"):
        build_data(_cfg(tmp_path, workers=2), ".", 0, "cpu")
    assert not [m for m in _data_warnings(caplog) if "data.workers" in m]


def test_torchs_other_warnings_still_show(tmp_path, monkeypatch):
    """Only the worker-count warning is silenced around the DataLoader."""
    write_images(tmp_path)
    data = build_data(_cfg(tmp_path), ".", 0, "cpu")
    real = torch.utils.data.DataLoader.__init__

    def init(self, *a, **kw):
        real(self, *a, **kw)
        warnings.warn("another torch warning", UserWarning)

    monkeypatch.setattr(torch.utils.data.DataLoader, "__init__", init)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in data.w.epoch(0):
            pass
    assert "another torch warning" in [str(w.message) for w in seen]
