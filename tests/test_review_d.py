"""Image folders: hidden folders and files (names starting with '.') are neither classes nor images, in
train/ and val/ alike; 16-bit grayscale images are scaled to 8 bits, not clipped to white; 8-bit images
read exactly as torchvision's loader reads them."""

from __future__ import annotations

import pickle
from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image

from automl.errors import DataError
from automl.recipe import DataConfig
from automl.train.data import IMAGENET_MEAN, IMAGENET_STD, _read_image, build_data
import helpers


write_images = partial(helpers.write_images, per_class=4, ext="png")  # 4 PNGs a class in each split


def folder_cfg(root, **kw):
    return DataConfig(dataset="imagefolder", root=str(root), image_size=8, batch_size=4, theta_split=2, **kw)


# ---------------------------------------------------------------------------------------- hidden entries


def test_hidden_folders_with_images_are_not_classes(tmp_path):
    write_images(tmp_path, classes=("a", "b", ".thumbs"))
    d = build_data(folder_cfg(tmp_path), ".", 0, "cpu")
    assert d.num_classes == 2
    for loader in (d.full, d.test):
        assert loader.dataset.classes == ["a", "b"]
        assert len(loader.dataset) == 8 and set(loader.dataset.targets) == {0, 1}
        assert not any("/.thumbs/" in p for p, _ in loader.dataset.samples)


def test_empty_hidden_folder_in_train_only_is_ignored(tmp_path):
    write_images(tmp_path)
    (tmp_path / "train" / ".ipynb_checkpoints").mkdir()
    d = build_data(folder_cfg(tmp_path), ".", 0, "cpu")
    assert d.num_classes == 2 and d.full.dataset.classes == d.test.dataset.classes == ["a", "b"]


def test_only_hidden_folders_is_a_data_error(tmp_path):
    write_images(tmp_path, classes=(".ipynb_checkpoints",))
    with pytest.raises(DataError) as info:
        build_data(folder_cfg(tmp_path), ".", 0, "cpu")
    text = str(info.value)
    assert str(tmp_path / "train") in text and "no class folder" in text and "start with '.'" in text


def test_hidden_files_and_hidden_subfolders_hold_no_images(tmp_path):
    write_images(tmp_path)
    (tmp_path / "train" / "a" / "._0.png").write_bytes(b"\x00\x05\x16\x07 macOS AppleDouble")  # not an image
    hidden = tmp_path / "train" / "b" / ".cache"
    hidden.mkdir()
    Image.new("RGB", (12, 12)).save(hidden / "x.png")
    d = build_data(folder_cfg(tmp_path), ".", 0, "cpu")
    assert len(d.full.dataset) == 8
    assert sum(len(y) for _, y in d.full.epoch(0)) == 8  # no DataError for ._0.png


def test_data_under_a_hidden_parent_folder_is_read(tmp_path):
    root = tmp_path / ".cache" / "imgs"  # only names below train/ and val/ count
    write_images(root)
    d = build_data(folder_cfg(root), ".", 0, "cpu")
    assert d.num_classes == 2 and len(d.full.dataset) == 8 and len(d.test.dataset) == 8


def test_image_folder_dataset_pickles_for_spawned_workers(tmp_path):
    write_images(tmp_path)
    d = build_data(folder_cfg(tmp_path), ".", 0, "cpu")
    copy = pickle.loads(pickle.dumps(d.full.dataset))
    assert copy.classes == ["a", "b"] and copy[0][0].shape == (3, 8, 8)


# ---------------------------------------------------------------------------------------- 16-bit images


def test_16_bit_png_is_scaled_to_8_bits(tmp_path):
    a = np.array([[0, 255, 256, 1000], [32768, 65280, 65534, 65535]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode in ("I;16", "I")
    x = np.asarray(_read_image(str(tmp_path / "g16.png")))
    assert x.dtype == np.uint8 and x.shape == (2, 4, 3)
    assert (x == (a >> 8)[..., None]).all()


def test_big_endian_16_bit_tiff_is_scaled_to_8_bits(tmp_path):
    a = np.array([[0, 256, 1000], [32768, 65280, 65535]], dtype=np.uint16)
    Image.fromarray(a.byteswap().view(">u2")).save(tmp_path / "big.tif")
    assert Image.open(tmp_path / "big.tif").mode == "I;16B"
    x = np.asarray(_read_image(str(tmp_path / "big.tif")))
    assert (x == (a >> 8)[..., None]).all()


def test_32_bit_integer_tiff_is_read_as_pil_reads_it(tmp_path):
    from torchvision.datasets.folder import default_loader

    a = np.array([[0, 7, 100], [128, 200, 255]], dtype=np.int32)  # mode I: not a 16-bit image, not scaled
    Image.fromarray(a).save(tmp_path / "i32.tif")
    assert Image.open(tmp_path / "i32.tif").mode == "I"
    path = str(tmp_path / "i32.tif")
    assert (np.asarray(_read_image(path)) == np.asarray(default_loader(path))).all()


def test_16_bit_class_folder_reaches_the_model_scaled(tmp_path):
    write_images(tmp_path)
    for split in ("train", "val"):
        Image.fromarray(np.full((12, 12), 32768, dtype=np.uint16)).save(tmp_path / split / "a" / "0.png")
    d = build_data(folder_cfg(tmp_path), ".", 0, "cpu")
    i = [p for p, _ in d.test.dataset.samples].index(str(tmp_path / "val" / "a" / "0.png"))
    x = d.test.dataset[i][0] * torch.tensor(IMAGENET_STD)[:, None, None] + torch.tensor(IMAGENET_MEAN)[:, None, None]
    assert float((x - 128 / 255).abs().max()) < 1e-4  # 32768 >> 8 == 128, not clipped to 255


@pytest.mark.parametrize("mode,ext", [(m, "png") for m in ("RGB", "RGBA", "L", "LA", "P", "1")]
                         + [(m, "jpg") for m in ("RGB", "L", "1")])
def test_8_bit_images_read_as_torchvision_reads_them(tmp_path, mode, ext):
    from torchvision.datasets.folder import default_loader

    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)).convert(mode)
    img.save(tmp_path / f"x.{ext}")
    ours, theirs = _read_image(str(tmp_path / f"x.{ext}")), default_loader(str(tmp_path / f"x.{ext}"))
    assert ours.mode == theirs.mode == "RGB" and np.array_equal(np.asarray(ours), np.asarray(theirs))
