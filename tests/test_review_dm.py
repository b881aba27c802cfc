"""Review DM: ``automl export --weights CHECKPOINT`` against what the checkpoint records it was trained with. A
recipe (or an ``--arch`` manifest) of another data set than the checkpoint's, or space_args of another input size,
exported the supernet's weights with the other data set's normalisation (or at another input size) silently; now
one message, exit 2, naming both and how to fix it. Differences that cannot change the export still export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.dsl import space_digest
from automl.train.data import normalization
from test_data import write_fake_cifar, write_fake_imagefolder

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
TINY = ["data.limit_train=96", "data.batch_size=32", "data.theta_batch_size=32", "search.weight_epochs=1",
        "search.theta_epochs=1", "search.epsilons=[0]", "search.lam=2", "search.supernets=1", "retrain.epochs=0",
        "search.budgets=null", "export.onnx=false", "threads=1", "device=cpu"]

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _rgb_space(tmp_path: Path, classes: int = 10) -> Path:
    """The digits space with 3 input channels (cifar10 and image folders) and ``classes`` classes."""
    space = tmp_path / "rgb.space"
    text = DIGITS.read_text().replace("input 1 x", "input 3 x")
    text = text.replace("param classes = 10", f"param classes = {classes}")
    assert text.count(f"param classes = {classes}") == 1
    space.write_text(text)
    return space


def _arch(tmp_path: Path, space: Path) -> Path:
    cs = load_compiled(str(space))
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    return path


def _checkpoint(tmp_path: Path, space: Path, origin: dict | None = None, **recorded) -> Path:
    """A run's checkpoint of ``space``'s supernet whose fingerprint records ``recorded`` (data.dataset, ...);
    ``origin``: its supernet_origin."""
    ckpt = tmp_path / "run" / "checkpoints" / "ckpt-000001.pt"
    ckpt.parent.mkdir(parents=True)
    fingerprint = {"space": space.name, "space.sha256": space_digest(space.read_bytes()), "space_args": {},
                   **{k.replace("_", ".", 1) if k.startswith("data_") else k: v for k, v in recorded.items()}}
    torch.save({"supernet": load_compiled(str(space)).build_supernet().state_dict(),
                "weights_fingerprint": fingerprint, "supernet_origin": origin}, ckpt)
    return ckpt


def _recipe(tmp_path: Path, space: Path, **data) -> Path:
    path = tmp_path / "other.yaml"
    path.write_text(f"name: t\nseed: 0\nspace: {space}\ndata:\n" + "".join(f"  {k}: {v}\n" for k, v in data.items()))
    return path


# -------------------------------------------------------------- 1. a recipe of another data set than the checkpoint's

SYNTHETIC = {"dataset": "synthetic", "synthetic": "{channels: 1, size: 8, num_train: 32, num_test: 8}"}


@pytest.mark.parametrize("rgb, trained_on, data", [
    (0, "digits", SYNTHETIC),                               # HEAD: exported, "normalize" left out
    (0, "synthetic", {"dataset": "digits"}),                # HEAD: exported with the digits' normalisation
    (10, "imagefolder", {"dataset": "cifar10", "root": "CIFAR", "image_size": 8}),  # HEAD: with cifar's
    (2, "cifar10", {"dataset": "imagefolder", "root": "IMGS", "image_size": 8, "theta_split": 2}),  # ImageNet's
    (0, "digits", {"dataset": "cifar10", "root": "/nowhere/cifar"}),  # HEAD: "CIFAR-10 not found"
])
def test_a_recipe_of_another_data_set_than_the_checkpoints_is_one_message(tmp_path, capsys, rgb, trained_on, data):
    """``rgb``: the classes of an RGB space (0: the digits space)."""
    space = _rgb_space(tmp_path, rgb) if rgb else DIGITS
    write_fake_cifar(tmp_path / "cifar")
    write_fake_imagefolder(tmp_path / "imgs")
    data = {k: {"CIFAR": tmp_path / "cifar", "IMGS": tmp_path / "imgs"}.get(v, v) for k, v in data.items()}
    recipe = _recipe(tmp_path, space, **data)
    ckpt = _checkpoint(tmp_path, space, data_dataset=trained_on)
    out = tmp_path / "out"
    assert main(["export", str(space), "--arch", str(_arch(tmp_path, space)), "--weights", str(ckpt),
                 "--recipe", str(recipe), "--out", str(out)]) == 2
    err = _one_error(capsys)
    assert err.startswith(f"{recipe}:5: data.dataset: {data['dataset']}, but --weights {ckpt} "), err
    assert f"trained on {trained_on}" in err and "the run's own recipe" in err and "drop --recipe" in err, err
    assert not (out / "manifest.json").exists()


def test_with_quantize_the_message_does_not_offer_to_drop_the_recipe(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path, DIGITS, data_dataset="synthetic")
    recipe = _recipe(tmp_path, DIGITS, dataset="digits")
    assert main(["export", str(DIGITS), "--arch", str(_arch(tmp_path, DIGITS)), "--weights", str(ckpt),
                 "--recipe", str(recipe), "--quantize", "int8", "--out", str(tmp_path / "out")]) == 2
    err = _one_error(capsys)
    assert "data.dataset: digits" in err and "--quantize" in err and "drop --recipe" not in err, err


def test_a_recipe_of_the_same_data_set_with_other_settings_still_exports(tmp_path):
    """Another split, seed or image folder of the same kind records the same normalisation: left as it was."""
    ckpt = _checkpoint(tmp_path, DIGITS, data_dataset="digits", data_limit_train=1000)
    recipe = _recipe(tmp_path, DIGITS, dataset="digits", limit_train=64, theta_split=0.25)
    out = tmp_path / "out"
    assert main(["export", str(DIGITS), "--arch", str(_arch(tmp_path, DIGITS)), "--weights", str(ckpt),
                 "--recipe", str(recipe), "--out", str(out)]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["dataset"] == "digits" and m["normalize"] == normalization("digits")


def test_a_run_that_forced_another_supernet_exports_with_its_own_recipe(tmp_path):
    """--supernet-force: the checkpoint's fingerprint is the source's (trained on synthetic images), the run's
    recipe another data set (digits): the run chose that, its own recipe is taken as it was."""
    ckpt = _checkpoint(tmp_path, DIGITS, {"from": "/runs/a", "forced": True}, data_dataset="synthetic",
                       space_args={"size": "8", "head": "128"})
    out = tmp_path / "out"
    assert main(["export", str(DIGITS), "--arch", str(_arch(tmp_path, DIGITS)), "--weights", str(ckpt),
                 "--recipe", str(_recipe(tmp_path, DIGITS, dataset="digits")), "--out", str(out)]) == 0
    assert json.loads((out / "manifest.json").read_text())["dataset"] == "digits"


# ------------------------------------------------------------------- 2. an --arch manifest of another data set


def test_a_manifest_of_another_data_set_than_the_checkpoints_is_one_message(tmp_path, capsys):
    """HEAD: without --recipe the manifest's data set and normalisation (cifar10's) were recorded for a supernet
    trained on an image folder."""
    space = _rgb_space(tmp_path)
    write_fake_cifar(tmp_path / "cifar")
    first = tmp_path / "first"
    assert main(["export", str(space), "--arch", str(_arch(tmp_path, space)), "--recipe",
                 str(_recipe(tmp_path, space, dataset="cifar10", root=tmp_path / "cifar", image_size=8)),
                 "--out", str(first)]) == 0
    capsys.readouterr()
    ckpt = _checkpoint(tmp_path, space, data_dataset="imagefolder")
    manifest = first / "manifest.json"
    out = tmp_path / "out"
    assert main(["export", str(space), "--arch", str(manifest), "--weights", str(ckpt), "--out", str(out)]) == 2
    err = _one_error(capsys)
    assert f"--arch {manifest} records data set cifar10" in err and "trained on imagefolder" in err, err
    assert "plain ARCH.json" in err and not (out / "manifest.json").exists()
    # the same manifest with a checkpoint of its own data set exports
    ckpt.unlink()
    ckpt = _checkpoint(tmp_path / "b", space, data_dataset="cifar10")
    assert main(["export", str(space), "--arch", str(manifest), "--weights", str(ckpt), "--out", str(out)]) == 0
    assert json.loads((out / "manifest.json").read_text())["dataset"] == "cifar10"


# ---------------------------------------------------------------- 3. a real run's checkpoint: its own recipe


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("dm") / "run"
    assert main(["run", QUICK, *TINY, "--out", str(run)]) == 0
    return run


def test_a_runs_checkpoint_with_another_recipe_names_the_runs_recipe(digits_run, tmp_path, capsys):
    ckpt = sorted((digits_run / "checkpoints").glob("ckpt-*.pt"))[-1]
    recipe = _recipe(tmp_path, DIGITS, **SYNTHETIC)
    arch = str(_arch(tmp_path, DIGITS))
    assert main(["export", str(DIGITS), "--arch", arch, "--weights", str(ckpt), "--recipe", str(recipe),
                 "--out", str(tmp_path / "o")]) == 2
    err = _one_error(capsys)
    assert "data.dataset: synthetic" in err and "trained on digits" in err, err
    assert f"the run's own recipe ({digits_run / 'recipe.resolved.yaml'})" in err, err
    # the run's own recipe exports
    assert main(["export", str(DIGITS), "--arch", arch, "--weights", str(ckpt), "--recipe",
                 str(digits_run / "recipe.resolved.yaml"), "--out", str(tmp_path / "o")]) == 0
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["dataset"] == "digits"


def test_a_runs_checkpoint_at_another_input_size_names_the_space_args(digits_run, tmp_path, capsys):
    """HEAD: --set size=16 with the digits recipe at image_size 16 exported the 8x8-trained supernet at 16x16
    (the weights fit any size) with no word; so did --set size=16 alone."""
    ckpt = sorted((digits_run / "checkpoints").glob("ckpt-*.pt"))[-1]
    recipe = _recipe(tmp_path, DIGITS, dataset="digits", image_size=16)
    cs = load_compiled(str(DIGITS), {"size": "16"})
    arch = tmp_path / "arch16.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    for extra in (["--recipe", str(recipe)], []):
        out = tmp_path / "o"
        assert main(["export", str(DIGITS), "--arch", str(arch), "--set", "size=16", "--weights", str(ckpt),
                     *extra, "--out", str(out)]) == 2
        err = _one_error(capsys)
        assert f"--weights {ckpt}" in err and "size 8" in err and "size 16" in err and "--set size=8" in err, err
        assert not (out / "manifest.json").exists()
