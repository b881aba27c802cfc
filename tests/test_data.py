"""Datasets and loaders: shapes, splits, deterministic order, sharding, fake CIFAR-10 and image folders."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from automl.errors import DataError
from automl.recipe import DataConfig
from automl.train.data import build_data


@pytest.fixture(scope="module")
def digits():
    return build_data(DataConfig(dataset="digits", batch_size=100), base_dir=".", seed=0, device="cpu")


def batches(loader, epoch):
    return [(x.clone(), y.clone()) for x, y in loader.epoch(epoch)]


def seen(loader, epoch):
    return torch.cat([i for i in loader.batches(epoch)]).tolist()


def test_digits_shapes_and_split(digits):
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    assert len(digits.full.indices) == 1437 and len(digits.test.indices) == 360
    assert len(digits.w.indices) + len(digits.theta.indices) == 1437
    assert set(digits.w.indices.tolist()).isdisjoint(digits.theta.indices.tolist())
    assert set(digits.w.indices.tolist()) | set(digits.theta.indices.tolist()) == set(range(1437))
    counts = torch.bincount(digits.test.y, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38  # stratified
    x, y = next(iter(digits.w.epoch(0)))
    assert x.shape == (100, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.long
    assert abs(float(digits.full.x.mean())) < 1e-3  # normalised by the training part
    assert len(digits.w) == -(-len(digits.w.indices) // 100)
    assert all(len(b) > 0 for b in digits.w.batches(0))


def test_digits_test_set_is_independent_of_seed(digits):
    other = build_data(DataConfig(dataset="digits"), ".", seed=7, device="cpu")
    assert torch.equal(other.test.x, digits.test.x) and torch.equal(other.test.y, digits.test.y)


@pytest.mark.parametrize("dataset", ["digits", "imagefolder"])
def test_the_split_is_fixed_by_split_seed_or_follows_the_run_seed(tmp_path, dataset):
    def split(seed, **kw):
        if dataset == "imagefolder":
            cfg = DataConfig(dataset="imagefolder", root="imgs", image_size=32, batch_size=3, theta_split=3, **kw)
        else:
            cfg = DataConfig(dataset="digits", **kw)
        d = build_data(cfg, tmp_path, seed=seed, device="cpu")
        return d.w.indices.tolist(), d.theta.indices.tolist(), seen(d.w, 0)

    if dataset == "imagefolder":
        write_fake_imagefolder(tmp_path / "imgs")
    fixed = [split(s) for s in range(4)]
    assert all(f[:2] == fixed[0][:2] for f in fixed)             # the default split_seed 0: one split
    assert len({tuple(f[2]) for f in fixed}) == 4               # the seed still orders the batches
    assert split(5, split_seed=None)[:2] == split(0, split_seed=5)[:2]
    seeded = [split(s, split_seed=None)[:2] for s in range(4)]
    assert len({tuple(w) for w, _ in seeded}) == 4              # null: the run's seed draws the split
    assert seeded[0] == fixed[0][:2]                            # seed 0: the same split either way


def test_order_is_a_function_of_seed_epoch(digits):
    again = build_data(DataConfig(dataset="digits", batch_size=100), ".", seed=0, device="cpu")
    for a, b in zip(batches(digits.w, 3), batches(again.w, 3)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert seen(digits.w, 0) != seen(digits.w, 1)
    assert sorted(seen(digits.w, 0)) == sorted(seen(digits.w, 1)) == sorted(digits.w.indices.tolist())
    assert seen(digits.w, 0) != seen(digits.theta, 0)[: len(seen(digits.w, 0))]
    assert seen(digits.test, 0) == seen(digits.test, 5) == list(range(360))


@pytest.mark.parametrize("split,n_theta", [(100, 100), (0.25, round(0.25 * 1437)), (0.5, round(0.5 * 1437))])
def test_theta_split_count_and_fraction(split, n_theta):
    d = build_data(DataConfig(dataset="digits", theta_split=split), ".", 0, "cpu")
    assert len(d.theta.indices) == n_theta and len(d.w.indices) == 1437 - n_theta


def test_limit_train_truncates_first():
    d = build_data(DataConfig(dataset="digits", limit_train=50, theta_split=10), ".", 0, "cpu")
    assert len(d.full.indices) == 50 and len(d.theta.indices) == 10 and len(d.w.indices) == 40
    assert int(d.full.indices.max()) < 50


def test_theta_split_too_large_is_a_data_error():
    with pytest.raises(DataError, match="theta_split"):
        build_data(DataConfig(dataset="digits", limit_train=50, theta_split=50), ".", 0, "cpu")


def test_sharding_two_ranks():
    cfg = DataConfig(dataset="digits", batch_size=32, theta_split=0.5)
    ranks = [build_data(cfg, ".", 0, "cpu", rank=r, world_size=2) for r in range(2)]
    for name in ("w", "theta", "full"):
        a, b = (seen(getattr(d, name), 4) for d in ranks)
        split = getattr(ranks[0], name).indices.tolist()
        assert len(a) == len(b) == len(split) // 2
        assert len(getattr(ranks[0], name)) == len(getattr(ranks[1], name))
        assert set(a).isdisjoint(b) and set(a) | set(b) <= set(split)
        if len(split) % 2 == 0:
            assert set(a) | set(b) == set(split)
    ta, tb = (seen(d.test, 0) for d in ranks)
    assert sorted(ta + tb) == list(range(360))


def test_synthetic_shapes_and_resize():
    cfg = DataConfig(dataset="synthetic", image_size=12,
                     synthetic={"num_train": 40, "num_test": 10, "num_classes": 3, "channels": 2, "size": 6})
    d = build_data(cfg, ".", 0, "cpu")
    assert d.input_shape == (2, 12, 12) and d.num_classes == 3
    x, y = next(iter(d.full.epoch(0)))
    assert x.shape[1:] == (2, 12, 12) and int(y.max()) < 3
    assert sum(len(y) for _, y in d.test.epoch(0)) == 10


def test_digits_resize():
    d = build_data(DataConfig(dataset="digits", image_size=16), ".", 0, "cpu")
    assert d.input_shape == (1, 16, 16) and next(iter(d.test.epoch(0)))[0].shape[1:] == (1, 16, 16)


# ------------------------------------------------------------------------------------------- CIFAR-10


def write_fake_cifar(root, per_batch=20):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, per_batch).tolist(), b"batch_label": name.encode()}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)


def test_cifar10_from_fake_pickles(tmp_path):
    write_fake_cifar(tmp_path / "cifar")
    cfg = DataConfig(dataset="cifar10", root="cifar", batch_size=16, theta_split=0.5)
    d = build_data(cfg, base_dir=tmp_path, seed=0, device="cpu")
    assert d.input_shape == (3, 32, 32) and d.num_classes == 10
    assert len(d.full.indices) == 100 and len(d.test.indices) == 20 and len(d.w.indices) == 50
    x, y = next(iter(d.w.epoch(0)))
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.long
    # augmentation replays exactly for the same epoch and differs between epochs
    a, b, c = batches(d.w, 1), batches(d.w, 1), batches(d.w, 2)
    assert all(torch.equal(p[0], q[0]) for p, q in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0])
    # the test set is not augmented: normalised raw pixels
    xt, _ = next(iter(d.test.epoch(0)))
    raw = d.test.x[:1].float() / 255
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
    assert torch.allclose(xt[:1], (raw - mean) / std, atol=1e-5)
    small = build_data(cfg.model_copy(update={"image_size": 16}), tmp_path, 0, "cpu")
    assert small.input_shape == (3, 16, 16) and next(iter(small.w.epoch(0)))[0].shape[1:] == (3, 16, 16)


def test_cifar10_crop_is_a_shifted_window(tmp_path):
    write_fake_cifar(tmp_path / "c")
    d = build_data(DataConfig(dataset="cifar10", root=str(tmp_path / "c")), ".", 0, "cpu")
    x = torch.arange(2 * 3 * 32 * 32).remainder(256).to(torch.uint8).view(2, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    out = d.w.transform(x, g)
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4)).float() / 255
    padded = (padded - mean) / std  # zero padding, then normalised like black pixels
    for b in range(2):
        windows = [padded[b, :, i:i + 32, j:j + 32] for i in range(9) for j in range(9)]
        windows += [w.flip(2) for w in windows]
        assert any(torch.allclose(out[b], w, atol=1e-5) for w in windows)


def test_missing_cifar_root_names_the_path(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="cifar10", root=str(root)), ".", 0, "cpu")
    text = str(info.value)
    assert str(root) in text and "cifar-10-batches-py" in text and "data.download=true" in text


def test_missing_cifar_files_are_listed(tmp_path):
    write_fake_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataError, match="test_batch"):
        build_data(DataConfig(dataset="cifar10", root=str(tmp_path)), ".", 0, "cpu")


# ---------------------------------------------------------------------------------------- image folder


def write_fake_imagefolder(root):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(4):
                img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
                Image.fromarray(img).save(folder / f"{i}.jpg")


def test_imagefolder_from_generated_jpegs(tmp_path):
    write_fake_imagefolder(tmp_path / "imgs")
    cfg = DataConfig(dataset="imagefolder", root="imgs", image_size=32, batch_size=3, theta_split=2)
    d = build_data(cfg, tmp_path, seed=0, device="cpu")
    assert d.input_shape == (3, 32, 32) and d.num_classes == 2
    assert len(d.w.indices) == 6 and len(d.theta.indices) == 2 and len(d.test.indices) == 8
    got = [(x.shape, y.dtype) for x, y in d.w.epoch(0)]
    assert [s[0] for s, _ in got] == [3, 3] and all(s[1:] == (3, 32, 32) for s, _ in got)
    assert torch.cat([y for _, y in d.w.epoch(0)]).tolist() == [d.w.dataset.targets[i] for i in seen(d.w, 0)]
    xt, yt = next(iter(d.test.epoch(0)))
    assert xt.shape == (8, 3, 32, 32) and yt.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


@pytest.mark.parametrize("make", ["none", "no_val"])
def test_missing_imagefolder_names_the_path(tmp_path, make):
    root = tmp_path / "imagenet"
    missing = root
    if make == "no_val":
        (root / "train" / "a").mkdir(parents=True)
        missing = root / "val"
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="imagefolder", root=str(root)), ".", 0, "cpu")
    assert f"{missing} does not exist" in str(info.value) and "<root>/train/<class>" in str(info.value)


def test_with_batch_size_keeps_the_order(digits):
    big = digits.full.with_batch_size(500)
    assert big.batch_size == 500 and len(big) == 3 and digits.full.batch_size == 100
    assert seen(big, 2) == seen(digits.full, 2) and digits.full.with_batch_size(None) is digits.full


def test_epoch_from_a_start_batch_is_the_rest_of_the_epoch(tmp_path):
    """A run resumed inside an epoch gets exactly the batches an uninterrupted epoch has after the first k:
    the same items and, with CIFAR's augmentation, the same crops and flips."""
    write_fake_cifar(tmp_path / "cifar")
    d = build_data(DataConfig(dataset="cifar10", root="cifar", batch_size=8, theta_split=0.5), tmp_path, 0, "cpu")
    whole = list(d.w.epoch(3))
    for k in (1, 4, len(whole)):
        rest = list(d.w.epoch(3, start=k))
        assert len(rest) == len(whole) - k
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(rest, whole[k:]))
    write_fake_imagefolder(tmp_path / "imgs")
    f = build_data(DataConfig(dataset="imagefolder", root="imgs", image_size=32, batch_size=2, theta_split=2),
                   tmp_path, 0, "cpu")
    labels = [y.tolist() for _, y in f.w.epoch(1)]
    assert [y.tolist() for _, y in f.w.epoch(1, start=1)] == labels[1:]


def test_with_resolution_resizes_every_batch_and_keeps_the_rest(digits):
    from PIL import Image

    def pil(x, size):  # PIL's bilinear resize of each image, the reference for images resized in a loader
        return torch.from_numpy(np.stack([[np.asarray(Image.fromarray(c.numpy(), mode="F").resize(
            (size, size), Image.BILINEAR)) for c in img] for img in x]))

    loader = digits.full
    assert loader.with_resolution(None) is loader
    small = loader.with_resolution(6)
    assert len(small) == len(loader) and small.batch_size == loader.batch_size
    for (x, y), (xs, ys) in zip(loader.epoch(1), small.epoch(1)):
        assert xs.shape == (*x.shape[:2], 6, 6) and torch.equal(ys, y)
        torch.testing.assert_close(xs, pil(x, 6), atol=1e-5, rtol=1e-5)
    # the other views keep the resolution (or replace it)
    resized = small.with_batch_size(500).with_seed(3)
    assert resized.batch_size == 500 and resized.seed == 3 and next(resized.epoch(0))[0].shape[-1] == 6
    assert small.with_resolution(None) is loader and next(small.with_resolution(4).epoch(0))[0].shape[-1] == 4
    # a run resumed inside the epoch gets the same batches resized
    (xs, _), (x, _) = next(small.epoch(1, start=len(loader) - 1)), next(loader.epoch(1, start=len(loader) - 1))
    torch.testing.assert_close(xs, pil(x, 6), atol=1e-5, rtol=1e-5)
