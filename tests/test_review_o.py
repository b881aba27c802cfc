"""Review O: training data and loops on tiny or odd inputs.

* A training split (D_W, D_theta) with fewer items than torchrun ranks: the ranks' shares were empty, so the
  phase took no step at all (the θ phase silently learnt nothing; the simultaneous method divided by zero): a
  DataError at start-up naming the split, its size and the keys to change.
* A training batch of one item on 1 x 1 maps (a split of one item, or a batch size of 1): BatchNorm's
  ValueError was an internal error (exit 1); now a user error naming the batch-size keys (exit 2).
* data.root one folder too deep (the CIFAR-10 batches folder itself, an image folder's train/ or val/), and
  an empty class folder: one message naming the folder to use or the class folder at fault (data.download
  no longer fetches CIFAR-10 again into the batches folder).
"""

from pathlib import Path

import pytest
import torch

from automl.errors import DataError
from automl.recipe import DataConfig
from automl.train.data import build_data
from helpers import write_images
from test_data_review_b import write_cifar as write_batches  # the six pickle batches CIFAR-10 ships

ROOT = Path(__file__).resolve().parents[1]


def synthetic_cfg(num_train, theta_split, **kw):
    return DataConfig(dataset="synthetic", theta_split=theta_split, batch_size=4,
                      synthetic={"num_train": num_train, "num_test": 5, "num_classes": 2, "channels": 1,
                                 "size": 4}, **kw)


# ------------------------------------------------------------------ every rank trains on a share of each split


@pytest.mark.parametrize("num_train,theta_split,world_size,split,fix", [
    (20, 1, 2, "D_theta", "raise data.theta_split"),   # 1 item over 2 ranks: none on one of them
    (20, 0.01, 2, "D_theta", "raise data.theta_split"),  # a fraction rounded up to one item
    (20, 19, 2, "D_W", "lower data.theta_split"),      # one item left for the weights
    (20, 17, 4, "D_W", "lower data.theta_split"),      # 3 items over 4 ranks
])
def test_a_training_split_with_fewer_items_than_ranks_is_a_data_error(num_train, theta_split, world_size, split,
                                                                     fix):
    for rank in range(world_size):
        with pytest.raises(DataError) as info:
            build_data(synthetic_cfg(num_train, theta_split), ".", 0, "cpu", rank=rank, world_size=world_size)
        text = str(info.value)
        assert text.startswith(split) and f"{world_size} ranks" in text and fix in text
        assert f"data.theta_split={theta_split}" in text and "--nproc_per_node" in text


def test_the_message_names_limit_train_when_it_cut_the_data():
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="digits", limit_train=5, theta_split=1), ".", 0, "cpu", rank=0, world_size=2)
    assert "data.limit_train" in str(info.value) and "D_theta" in str(info.value)


def test_an_image_folder_split_with_fewer_items_than_ranks_is_a_data_error(tmp_path):
    write_images(tmp_path, per_class=3)  # 6 training images
    cfg = DataConfig(dataset="imagefolder", root=str(tmp_path), image_size=8, batch_size=2, theta_split=2)
    build_data(cfg, ".", 0, "cpu", rank=1, world_size=2)  # D_theta 2: one per rank
    with pytest.raises(DataError, match="D_theta") as info:
        build_data(cfg, ".", 0, "cpu", rank=1, world_size=3)
    assert str(tmp_path / "train") in str(info.value)


@pytest.mark.parametrize("num_train,theta_split,world_size", [(2, 1, 1), (4, 2, 2), (9, 0.5, 4)])
def test_every_rank_gets_batches_of_each_split(num_train, theta_split, world_size):
    for rank in range(world_size):
        d = build_data(synthetic_cfg(num_train, theta_split), ".", 0, "cpu", rank=rank, world_size=world_size)
        for loader in (d.w, d.theta, d.full):
            sizes = [len(y) for _, y in loader.epoch(0)]
            assert len(sizes) == len(loader) >= 1 and min(sizes) >= 1


# ------------------------------------------------------------------ a batch of one on 1 x 1 maps


def prox_recipe(tmp_path, num_train, theta_split, batch_size, retrain_epochs=0):
    recipe = tmp_path / "prox.yaml"
    recipe.write_text(
        f"name: prox\nseed: 0\ndevice: cpu\nthreads: 1\nspace: {ROOT / 'spaces' / 'proxylessnas.space'}\n"
        "space_args: {classes: 2, size: 32, width: 0.25, head: 16}\n"
        "data:\n  dataset: synthetic\n"
        f"  synthetic: {{num_train: {num_train}, num_test: 4, num_classes: 2, channels: 3, size: 32}}\n"
        f"  theta_split: {theta_split}\n  batch_size: {batch_size}\n"
        "search:\n  method: importance_sampling\n  epsilons: [0.0]\n  lam: 2\n  weight_epochs: 1\n"
        f"  theta_epochs: 1\nretrain:\n  epochs: {retrain_epochs}\nexport:\n  onnx: false\n")
    return recipe


@pytest.mark.parametrize("num_train,theta_split,batch_size", [
    (3, 2, 16),   # D_W of one item
    (3, 1, 16),   # D_theta of one item (the weight phase trains on 2)
    (4, 2, 1),    # data.batch_size 1
])
def test_a_batch_of_one_on_1x1_maps_exits_2_naming_the_batch_sizes(tmp_path, capsys, num_train, theta_split,
                                                                    batch_size):
    """proxylessnas at 32 x 32 reaches 1 x 1 maps: a training batch of one item was an internal error (exit 1)."""
    from automl.cli import main

    recipe = prox_recipe(tmp_path, num_train, theta_split, batch_size)
    assert main(["run", str(recipe), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    assert "data.batch_size" in err and "data.theta_split" in err and "1 x 1" in err


def test_recalibrating_on_a_batch_of_one_names_the_batch_sizes():
    from automl.errors import UserError
    from automl.train.loops import recalibrate_bn

    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))
    recalibrate_bn(net, net, [torch.randn(1, 2, 2, 2)])  # 4 values per channel: fine
    with pytest.raises(UserError, match="retrain.batch_size"):
        recalibrate_bn(net, net, [torch.randn(2, 2, 1, 1), torch.randn(1, 2, 1, 1)])

    def broken(x):
        raise ValueError("some other fault")

    with pytest.raises(ValueError, match="some other fault"):  # not BatchNorm's refusal: passed on as it is
        recalibrate_bn(net, broken, [torch.randn(1, 2, 1, 1)])


# ------------------------------------------------------------------ data.root one folder too deep, empty classes


def write_cifar(root: Path, per_batch=4) -> Path:
    """CIFAR-10's six pickle batches of ``per_batch`` random images under ``root``; their folder."""
    write_batches(root, per_batch)
    return root / "cifar-10-batches-py"


@pytest.mark.parametrize("download", [False, True])
def test_cifar_root_that_is_the_batches_folder_names_its_parent(tmp_path, download, monkeypatch):
    import torchvision

    downloads = []
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", lambda *a, **k: downloads.append(a))
    folder = write_cifar(tmp_path)
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="cifar10", root=str(folder), download=download), ".", 0, "cpu")
    text = str(info.value)
    assert not downloads  # not again, into a folder inside the batches folder
    assert f"data.root={tmp_path}" in text and "cifar-10-batches-py/cifar-10-batches-py" not in text


def test_cifar_batch_files_directly_in_root_say_where_they_belong(tmp_path):
    folder = write_cifar(tmp_path / "mine")
    for f in folder.iterdir():
        f.rename(tmp_path / "mine" / f.name)
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="cifar10", root=str(tmp_path / "mine")), ".", 0, "cpu")
    assert f"move them into {folder}/" in str(info.value)


def test_cifar_root_holding_the_batches_folder_still_loads(tmp_path):
    write_cifar(tmp_path)
    d = build_data(DataConfig(dataset="cifar10", root=str(tmp_path), theta_split=4), ".", 0, "cpu")
    assert len(d.full.indices) == 20 and len(d.test.indices) == 4


@pytest.mark.parametrize("split", ["train", "val"])
def test_imagefolder_root_that_is_its_train_or_val_folder_names_the_parent(tmp_path, split):
    write_images(tmp_path / "imgs")
    root = tmp_path / "imgs" / split
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="imagefolder", root=str(root), image_size=8), ".", 0, "cpu")
    text = str(info.value)
    assert f"data.root={tmp_path / 'imgs'}" in text and f"{split}/train" not in text


@pytest.mark.parametrize("split", ["train", "val"])
def test_an_empty_class_folder_is_named_with_its_split(tmp_path, split):
    write_images(tmp_path)
    (tmp_path / "train" / "c").mkdir()
    (tmp_path / "val" / "c").mkdir()
    write_images(tmp_path, classes=("c",), splits=("val",) if split == "train" else ("train",))
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="imagefolder", root=str(tmp_path), image_size=8), ".", 0, "cpu")
    text = str(info.value)
    assert str(tmp_path / split / "c") in text and ".jpg" in text


# ------------------------------------------------------------------ WORLD_SIZE without torchrun

DIST_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.mark.parametrize("env,words", [
    ({"WORLD_SIZE": "2"}, "RANK, MASTER_ADDR, MASTER_PORT"),
    ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_ADDR, MASTER_PORT"),
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two'"),
    ({"WORLD_SIZE": "2", "RANK": "x", "MASTER_ADDR": "localhost", "MASTER_PORT": "1"}, "RANK='x'"),
])
def test_a_world_size_in_the_environment_without_torchrun_is_a_user_error(monkeypatch, env, words):
    from automl.errors import UserError
    from automl.train.distributed import init_distributed

    for k in DIST_ENV:
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(UserError) as info:
        init_distributed("cpu")
    assert words in str(info.value) and "torchrun" in str(info.value)


@pytest.mark.parametrize("world", ["1", "0", ""])
def test_a_world_size_of_one_or_none_is_one_process(monkeypatch, world):
    from automl.train.distributed import init_distributed

    for k in DIST_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("WORLD_SIZE", world)
    info = init_distributed("cpu")
    assert info.world_size == 1 and info.rank == 0 and not info.enabled


def test_a_world_size_without_torchrun_exits_2_through_the_cli(tmp_path, monkeypatch, capsys):
    from automl.cli import main

    for k in DIST_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    code = main(["run", str(ROOT / "recipes" / "quickstart.yaml"), "device=cpu", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "WORLD_SIZE=2" in err and "Traceback" not in err


def test_a_retraining_step_on_a_batch_of_one_names_the_batch_sizes():
    from automl.errors import UserError
    from automl.train.distributed import DistInfo
    from automl.train.loops import train_step

    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 2), torch.nn.BatchNorm2d(3), torch.nn.Flatten())  # 2x2 -> 1x1
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    crit = torch.nn.CrossEntropyLoss()
    train_step(net, torch.randn(2, 2, 2, 2), torch.tensor([0, 1]), opt, crit, DistInfo(), None, torch.device("cpu"))
    with pytest.raises(UserError, match="retrain.batch_size"):
        train_step(net, torch.randn(1, 2, 2, 2), torch.tensor([0]), opt, crit, DistInfo(), None, torch.device("cpu"))
