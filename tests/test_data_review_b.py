"""Training loaders never yield a batch of one (BatchNorm cannot train on it); an image folder's random crops
and flips are a function of (seed, epoch, item), so a resumed run sees the same pixels with or without
DataLoader workers; ``data.limit_train`` on an image folder keeps items of every class."""

from __future__ import annotations

import pickle
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from automl.recipe import DataConfig
from automl.train.data import _seed_of, build_data
import helpers

ROOT = Path(__file__).resolve().parents[1]


write_images = partial(helpers.write_images, per_class=6, val_per_class=2, size=20, ext="png")  # 20 x 20 PNGs


def write_cifar(root, per_batch):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                         b"labels": rng.integers(0, 10, per_batch).tolist()}, f)


def synthetic(num_train, batch_size, theta_split=0.5, num_test=17, test_batch_size=8):
    cfg = DataConfig(dataset="synthetic", batch_size=batch_size, theta_split=theta_split,
                     test_batch_size=test_batch_size,
                     synthetic={"num_train": num_train, "num_test": num_test, "num_classes": 3, "channels": 2,
                                "size": 4})
    return build_data(cfg, ".", seed=0, device="cpu")


def sizes(loader, epoch=0):
    return [len(y) for _, y in loader.epoch(epoch)]


# ------------------------------------------------------------------------------ no training batch of one


@pytest.mark.parametrize("world_size,batch_size", [(1, 11), (2, 8)])
def test_a_last_training_item_joins_the_batch_before_it(world_size, batch_size):
    cfg = DataConfig(dataset="synthetic", batch_size=batch_size, theta_split=0.5,
                     synthetic={"num_train": 68, "num_test": 17, "num_classes": 3, "channels": 2, "size": 4})
    per_rank = 34 // world_size  # D_W = D_theta = 34: 3 x 11 + 1, or per rank 17 = 2 x 8 + 1
    b = batch_size
    assert per_rank % b == 1  # the case under test: one item left over
    for rank in range(world_size):
        d = build_data(cfg, ".", 0, "cpu", rank=rank, world_size=world_size)
        for loader in (d.w, d.theta):
            for epoch in (0, 3):
                got = sizes(loader, epoch)
                assert min(got) > 1 and len(got) == len(loader) == per_rank // b
                assert got[-1] == b + 1 and set(got[:-1]) == {b}
                items = torch.cat(loader.batches(epoch)).tolist()
                assert items == loader.order(epoch).tolist() and len(set(items)) == per_rank
            whole = [(x.clone(), y.clone()) for x, y in loader.epoch(2)]
            for start in range(1, len(whole) + 1):  # a resume inside the epoch skips exactly the trained batches
                rest = list(loader.epoch(2, start))
                assert len(rest) == len(whole) - start
                assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(rest, whole[start:]))


def test_the_test_loader_keeps_its_last_item_alone():
    d = synthetic(68, batch_size=11, num_test=17, test_batch_size=8)
    assert sizes(d.test) == [8, 8, 1] and len(d.test) == 3


@pytest.mark.parametrize("n,b", [(34, 12), (34, 17), (34, 10), (35, 8), (34, 1), (34, 40)])
def test_other_remainders_keep_the_plain_split_of_the_order(n, b):
    d = synthetic(2 * n, batch_size=b)  # D_W = D_theta = n, D = 2n
    for loader in (d.w, d.theta, d.full):
        assert len(loader.indices) % b != 1 or b == 1
        order = loader.order(1)
        plain = [c for c in order.split(b)]
        got = [(x, y) for x, y in loader.epoch(1)]
        assert len(loader) == len(got) == len(plain)
        for (x, y), idx in zip(got, plain):
            assert torch.equal(x, loader.x[idx]) and torch.equal(y, loader.y[idx])


def test_cifar_augmentation_stream_is_unchanged_when_no_item_is_left_over(tmp_path):
    """Remainder other than one: each batch is augmented by the loader's generator in order, as before."""
    write_cifar(tmp_path / "c", per_batch=20)
    d = build_data(DataConfig(dataset="cifar10", root=str(tmp_path / "c"), batch_size=16, theta_split=0.5), ".", 0,
                   "cpu")
    loader = d.w  # 50 items: 3 x 16 + 2
    g = torch.Generator().manual_seed(_seed_of(loader.seed, 4, loader.name, loader.rank, "augment"))
    plain = loader.order(4).split(16)
    got = list(loader.epoch(4))
    assert [len(y) for _, y in got] == [16, 16, 16, 2]
    for (x, y), idx in zip(got, plain):
        assert torch.equal(x, loader.transform(loader.x[idx], g)) and torch.equal(y, loader.y[idx])


def test_cifar_merged_batch_resumes_with_the_same_crops(tmp_path):
    write_cifar(tmp_path / "c", per_batch=20)
    d = build_data(DataConfig(dataset="cifar10", root=str(tmp_path / "c"), batch_size=10, theta_split=49), ".", 0,
                   "cpu")
    assert len(d.w.indices) == 51
    whole = list(d.w.epoch(1))
    assert [len(y) for _, y in whole] == [10, 10, 10, 10, 11] and len(d.w) == 5
    rest = list(d.w.epoch(1, start=3))
    assert all(torch.equal(p[0], q[0]) for p, q in zip(rest, whole[3:])) and len(rest) == 2


@pytest.mark.parametrize("workers", [0, 2])
def test_folder_loader_merges_the_last_item_and_resumes_inside_the_epoch(tmp_path, workers):
    write_images(tmp_path)  # 12 training images; D_theta 3, D_W 9 = 2 x 4 + 1
    cfg = DataConfig(dataset="imagefolder", root=str(tmp_path), image_size=8, batch_size=4, theta_split=3,
                     workers=workers)
    d = build_data(cfg, ".", 0, "cpu")
    targets = d.w.dataset.targets
    for epoch in (0, 1):
        got = [(x.clone(), y.clone()) for x, y in d.w.epoch(epoch)]
        assert [len(y) for _, y in got] == [4, 5] and len(d.w) == 2
        assert torch.cat([y for _, y in got]).tolist() == [targets[i] for i in d.w.order(epoch).tolist()]
    rest = [(x.clone(), y.clone()) for x, y in d.w.epoch(1, start=1)]
    assert len(rest) == 1 and torch.equal(rest[0][0], got[1][0]) and torch.equal(rest[0][1], got[1][1])


def test_weight_phase_finishes_on_a_1x1_head_with_one_item_left_over(tmp_path):
    """proxylessnas at 32 x 32 reaches 1 x 1 maps: a batch of one in train mode was an internal error (exit 1)."""
    from automl.cli import main

    recipe = tmp_path / "prox.yaml"
    recipe.write_text(
        f"name: prox\nseed: 0\ndevice: cpu\nthreads: 1\nspace: {ROOT / 'spaces' / 'proxylessnas.space'}\n"
        "space_args: {classes: 2, size: 32, width: 0.25, head: 16}\n"
        "data:\n  dataset: synthetic\n"
        "  synthetic: {num_train: 34, num_test: 4, num_classes: 2, channels: 3, size: 32}\n"
        "  theta_split: 0.5\n  batch_size: 16\n"
        "search:\n  method: importance_sampling\n  epsilons: [0.0]\n  lam: 2\n  weight_epochs: 1\n"
        "  theta_epochs: 1\nretrain:\n  epochs: 0\nexport:\n  onnx: false\n")
    assert main(["run", str(recipe), "--out", str(tmp_path / "run")]) == 0
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert any('"step": 1' in line and '"weights"' in line for line in lines)


# ------------------------------------------------------------------- image folder augmentation on resume


def folder_epoch(loader, epoch, start=0):
    return [(x.clone(), y.clone()) for x, y in loader.epoch(epoch, start)]


def same(a, b):
    return len(a) == len(b) and all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    write_images(root, per_class=12, size=24)
    return root


def folder_cfg(root, workers):
    return DataConfig(dataset="imagefolder", root=str(root), batch_size=5, image_size=16, workers=workers,
                      theta_split=0.5)


def test_folder_augmentation_resumes_bit_for_bit_with_workers(images):
    cfg = folder_cfg(images, workers=2)
    torch.manual_seed(123)
    d = build_data(cfg, ".", seed=0, device="cpu")
    folder_epoch(d.w, 0)
    state = torch.get_rng_state()  # what the end-of-epoch checkpoint saves
    e1 = folder_epoch(d.w, 1)
    # resumed: a new process builds the data again, restores the checkpoint's RNG, runs epoch 1
    torch.manual_seed(999)
    d2 = build_data(cfg, ".", seed=0, device="cpu")
    torch.set_rng_state(state)
    assert same(folder_epoch(d2.w, 1), e1)
    # resumed inside epoch 1, after its first batch, by yet another process
    torch.manual_seed(7)
    d3 = build_data(cfg, ".", seed=0, device="cpu")
    assert same(folder_epoch(d3.w, 1, start=1), e1[1:])


def test_folder_augmentation_does_not_depend_on_the_workers(images):
    with_workers = build_data(folder_cfg(images, workers=2), ".", seed=0, device="cpu")
    without = build_data(folder_cfg(images, workers=0), ".", seed=0, device="cpu")
    for loader in ("w", "theta", "full", "test"):
        a, b = getattr(with_workers, loader), getattr(without, loader)
        assert same(folder_epoch(a, 2), folder_epoch(b, 2))


def test_folder_augmentation_is_random_per_item_and_epoch_and_leaves_the_global_rng_alone(images):
    d = build_data(folder_cfg(images, workers=0), ".", seed=0, device="cpu")
    state = torch.get_rng_state()
    by_epoch = []
    for epoch in (0, 1):
        xs = torch.cat([x for x, _ in d.w.epoch(epoch)])
        order = d.w.order(epoch).tolist()
        by_epoch.append({i: xs[k] for k, i in enumerate(order)})
    assert torch.equal(torch.get_rng_state(), state)  # training's own draws are not moved by the loader
    # an item is cropped anew each epoch, and differently under another seed
    assert sum(not torch.equal(by_epoch[0][i], by_epoch[1][i]) for i in by_epoch[0]) >= len(by_epoch[0]) - 1
    other = build_data(folder_cfg(images, workers=0), ".", seed=1, device="cpu")
    xs = torch.cat([x for x, _ in other.w.epoch(0)])
    mine = {i: xs[k] for k, i in enumerate(other.w.order(0).tolist())}
    shared = set(mine) & set(by_epoch[0])
    assert sum(not torch.equal(mine[i], by_epoch[0][i]) for i in shared) >= len(shared) - 1


# ------------------------------------------------------------------------------- limit_train, image folder


def test_limit_train_on_an_image_folder_keeps_every_class(tmp_path):
    write_images(tmp_path, classes=("a", "b", "c"), per_class=8, size=12)

    def limited(n, **kw):
        cfg = DataConfig(dataset="imagefolder", root=str(tmp_path), image_size=8, batch_size=4, limit_train=n,
                         theta_split=0.5, **kw)
        return build_data(cfg, ".", seed=0, device="cpu")

    d = limited(6)
    targets = d.full.dataset.targets
    kept = d.full.indices.tolist()
    assert len(kept) == 6 and len(set(kept)) == 6
    assert sorted(targets[i] for i in kept) == [0, 0, 1, 1, 2, 2]  # every class, as evenly as possible
    assert sorted(d.w.indices.tolist() + d.theta.indices.tolist()) == sorted(kept)
    assert {targets[i] for i in limited(3).full.indices.tolist()} == {0, 1, 2}
    assert limited(6).full.indices.tolist() == kept  # the same seed: the same subset
    draws = {tuple(limited(6, split_seed=s).full.indices.tolist()) for s in range(6)}
    assert len(draws) > 1  # which items of a class are kept is drawn, not the first ones
    unlimited = limited(None)
    assert unlimited.full.indices.tolist() == list(range(24))
    assert limited(24).full.indices.tolist() == list(range(24))
