"""Review DB: one source for a data set's input normalisation (:func:`automl.train.data.normalization`), the test
images' centre crop recorded in an export's manifest and taken over by its timm config, and an ONNX opset the
installed onnxruntime cannot run refused up front as the user's choice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import timm.data
import torch
from PIL import Image

import automl.export.onnx as onnx_mod
from automl.cli import main
from automl.compile import load_compiled
from automl.dsl import space_digest
from automl.errors import UserError
from automl.export import load_model
from automl.recipe import DataConfig
from automl.train.data import build_data, normalization
from test_data import write_fake_cifar, write_fake_imagefolder

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
TINY = ["data.limit_train=96", "data.batch_size=32", "data.theta_batch_size=32", "search.weight_epochs=1",
        "search.theta_epochs=1", "search.epsilons=[0]", "search.lam=2", "search.supernets=1", "retrain.epochs=0"]

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _rgb_space(tmp_path: Path) -> Path:
    """The digits space with 3 input channels (cifar10 and image folders)."""
    space = tmp_path / "rgb.space"
    space.write_text(Path(DIGITS).read_text().replace("input 1 x", "input 3 x"))
    return space


def _arch(tmp_path: Path, space: Path, **sets) -> Path:
    cs = load_compiled(str(space), {k: str(v) for k, v in sets.items()} or None)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    return path


def _checkpoint(tmp_path: Path, space: Path, dataset: str) -> Path:
    """A run's checkpoint of ``space``'s supernet that records it was trained on ``dataset``."""
    ckpt = tmp_path / "run" / "checkpoints" / "ckpt-000001.pt"
    ckpt.parent.mkdir(parents=True)
    fingerprint = {"space": space.name, "space.sha256": space_digest(space.read_bytes()), "data.dataset": dataset}
    torch.save({"supernet": load_compiled(str(space)).build_supernet().state_dict(),
                "weights_fingerprint": fingerprint}, ckpt)
    return ckpt


def _imagefolder_recipe(tmp_path: Path, space: Path) -> Path:
    write_fake_imagefolder(tmp_path / "imgs")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: t\nseed: 0\nspace: {space}\ndata:\n  dataset: imagefolder\n  root: {tmp_path / 'imgs'}\n"
                      f"  image_size: 8\n  batch_size: 4\n  theta_split: 2\n")
    return recipe


# ------------------------------------------------------------------------------- 1. one normalisation


def test_normalization_is_what_each_builder_records(tmp_path):
    digits = build_data(DataConfig(dataset="digits"), ".", 0, "cpu")
    assert normalization("digits") == digits.normalize
    # the recipe's split and size apply after the digits' normalisation: it stays the same
    other = build_data(DataConfig(dataset="digits", limit_train=300, theta_split=0.25, image_size=12), ".", 3, "cpu")
    assert other.normalize == digits.normalize
    write_fake_cifar(tmp_path / "cifar")
    cifar = build_data(DataConfig(dataset="cifar10", root=str(tmp_path / "cifar")), ".", 0, "cpu")
    assert normalization("cifar10") == cifar.normalize and len(cifar.normalize["mean"]) == 3
    write_fake_imagefolder(tmp_path / "imgs")
    folder = build_data(DataConfig(dataset="imagefolder", root=str(tmp_path / "imgs"), image_size=8, theta_split=2),
                        ".", 0, "cpu")
    assert normalization("imagefolder") == folder.normalize and folder.normalize != cifar.normalize
    assert normalization("synthetic") is None
    assert build_data(DataConfig(dataset="synthetic"), ".", 0, "cpu").normalize is None
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        normalization("mnist")


def test_normalization_hands_out_copies():
    a = normalization("cifar10")
    a["mean"][0] = 99.0
    assert normalization("cifar10")["mean"][0] != 99.0


def test_a_digits_checkpoint_exported_without_a_recipe_records_the_digits_normalisation(tmp_path):
    ckpt = _checkpoint(tmp_path, Path(DIGITS), "digits")
    out = tmp_path / "out"
    assert main(["export", DIGITS, "--arch", str(_arch(tmp_path, Path(DIGITS))), "--weights", str(ckpt),
                 "--out", str(out)]) == 0
    m = _manifest(out)
    assert m["normalize"] == build_data(DataConfig(dataset="digits"), ".", 0, "cpu").normalize
    assert m["dataset"] == "digits" and "crop_pct" not in m  # digits are not cropped


def test_a_cifar10_checkpoint_exported_without_a_recipe_records_cifars_normalisation(tmp_path):
    space = _rgb_space(tmp_path)
    ckpt = _checkpoint(tmp_path, space, "cifar10")
    out = tmp_path / "out"
    assert main(["export", str(space), "--arch", str(_arch(tmp_path, space)), "--weights", str(ckpt),
                 "--out", str(out)]) == 0
    write_fake_cifar(tmp_path / "cifar")
    cifar = build_data(DataConfig(dataset="cifar10", root=str(tmp_path / "cifar")), ".", 0, "cpu")
    m = _manifest(out)
    assert m["normalize"] == cifar.normalize and m["dataset"] == "cifar10"
    assert load_model(out).pretrained_cfg["crop_pct"] == 1.0  # cifar images are resized whole


def test_an_imagefolder_checkpoint_exported_without_a_recipe_records_its_centre_crop(tmp_path):
    space = _rgb_space(tmp_path)
    out = tmp_path / "out"
    assert main(["export", str(space), "--arch", str(_arch(tmp_path, space)), "--weights",
                 str(_checkpoint(tmp_path, space, "imagefolder")), "--out", str(out)]) == 0
    m = _manifest(out)
    assert m["normalize"] == normalization("imagefolder") and m["dataset"] == "imagefolder"
    assert load_model(out).pretrained_cfg["crop_pct"] == m["crop_pct"] == 0.875


def test_a_checkpoint_of_another_channel_count_records_neither_normalisation_nor_data_set(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path, Path(DIGITS), "cifar10")  # a 1-channel space said to be trained on cifar10
    out = tmp_path / "out"
    assert main(["export", DIGITS, "--arch", str(_arch(tmp_path, Path(DIGITS))), "--weights", str(ckpt),
                 "--out", str(out)]) == 0
    m = _manifest(out)
    assert "normalize" not in m and "dataset" not in m
    assert "records data set cifar10, of images of 3 channels" in capsys.readouterr().err


# ------------------------------------------------------------------------ 2. the test images' crop


@pytest.fixture(scope="module")
def folder_export(tmp_path_factory) -> tuple[Path, Path, Path, Path]:
    """(an export of an RGB network with an image folder's recipe, its space, its recipe, its arch)."""
    tmp = tmp_path_factory.mktemp("db")
    space = _rgb_space(tmp)
    recipe = _imagefolder_recipe(tmp, space)
    arch = _arch(tmp, space, classes=2)
    out = tmp / "out"
    assert main(["export", str(space), "--arch", str(arch), "--set", "classes=2", "--recipe", str(recipe),
                 "--out", str(out)]) == 0
    return out, space, recipe, arch


def test_an_imagefolder_export_records_its_centre_crop_and_timm_evaluates_as_automl_does(folder_export, tmp_path):
    out, _, _, _ = folder_export
    m = _manifest(out)
    assert m["dataset"] == "imagefolder" and m["crop_pct"] == 0.875 and m["interpolation"] == "bilinear"
    model = load_model(out)
    cfg = timm.data.resolve_model_data_config(model)
    assert cfg["crop_pct"] == 0.875 and cfg["interpolation"] == "bilinear" and cfg["input_size"] == (3, 8, 8)
    # timm's eval transform of that config makes of a validation image exactly the tensor automl tested on
    transform = timm.data.create_transform(**cfg)
    data = build_data(DataConfig(dataset="imagefolder", root=str(out.parent / "imgs"), image_size=8, theta_split=2),
                      ".", 0, "cpu")
    path, _ = data.test.dataset.samples[0]
    ours = data.test.dataset[0][0]
    theirs = transform(Image.open(path).convert("RGB"))
    assert ours.shape == theirs.shape == (3, 8, 8) and torch.allclose(ours, theirs, atol=1e-6)


def test_reexport_from_the_manifest_keeps_the_data_set_and_crop(folder_export, tmp_path):
    out, space, _, _ = folder_export
    again = tmp_path / "again"
    assert main(["export", str(space), "--arch", str(out / "manifest.json"), "--weights",
                 str(out / "model.safetensors"), "--out", str(again)]) == 0
    m = _manifest(again)
    assert (m["dataset"], m["crop_pct"], m["interpolation"]) == ("imagefolder", 0.875, "bilinear")


def test_a_recipe_of_another_data_set_than_the_manifests_is_refused(folder_export, tmp_path, capsys):
    out, space, recipe, _ = folder_export
    other = tmp_path / "m"
    shutil.copytree(out, other)
    m = _manifest(other)
    m["dataset"] = "cifar10"  # its normalisation the image folder's: only the data sets differ
    (other / "manifest.json").write_text(json.dumps(m))
    assert main(["export", str(space), "--arch", str(other / "manifest.json"), "--weights",
                 str(other / "model.safetensors"), "--recipe", str(recipe), "--out", str(tmp_path / "o")]) == 2
    err = _one_error(capsys)
    assert f"--recipe {recipe}" in err and "imagefolder" in err and "cifar10" in err, err
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_an_old_manifest_without_the_fields_loads_with_whole_images(folder_export, tmp_path):
    out, _, _, _ = folder_export
    old = tmp_path / "old"
    shutil.copytree(out, old)
    m = _manifest(old)
    for k in ("dataset", "crop_pct", "interpolation"):
        del m[k]
    (old / "manifest.json").write_text(json.dumps(m))
    cfg = load_model(old).pretrained_cfg
    assert cfg["crop_pct"] == 1.0 and cfg["interpolation"] == "bilinear"


@pytest.mark.parametrize("field, value", [("crop_pct", 1.5), ("crop_pct", "0.875"), ("interpolation", "sharpest"),
                                          ("dataset", "mnist")])
def test_a_hand_edited_crop_or_data_set_is_one_error_naming_the_field(folder_export, tmp_path, field, value):
    out, _, _, _ = folder_export
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    m = _manifest(bad)
    m[field] = value
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match=f'"{field}"'):
        load_model(bad)


def test_a_digits_recipe_records_the_data_set_and_no_crop(tmp_path):
    out = tmp_path / "out"
    assert main(["export", DIGITS, "--arch", str(_arch(tmp_path, Path(DIGITS))), "--recipe", QUICK,
                 "--out", str(out)]) == 0
    m = _manifest(out)
    assert m["dataset"] == "digits" and "crop_pct" not in m and "interpolation" not in m
    assert m["normalize"] == normalization("digits")


# -------------------------------------------------------------------- 3. onnxruntime's newest opset


@pytest.fixture
def onnxruntime_up_to(monkeypatch):
    """Make the installed onnxruntime say its operators go up to opset ``n`` (an older onnxruntime)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_c

    real = ort_c.get_all_operator_schema()
    cached = getattr(onnx_mod, "_onnxruntime_newest_opset", None)

    def limit(n: int) -> None:
        capped = [s for s in real if s.domain not in ("", "ai.onnx") or s.since_version <= n]
        monkeypatch.setattr(ort_c, "get_all_operator_schema", lambda: capped)
        if cached is not None:
            cached.cache_clear()

    yield limit
    if cached is not None:
        cached.cache_clear()


def test_an_opset_onnxruntime_cannot_run_is_one_message_before_anything_is_written(tmp_path, onnxruntime_up_to,
                                                                                   capsys):
    import onnxruntime

    onnxruntime_up_to(18)
    out = tmp_path / "out"
    assert main(["export", DIGITS, "--arch", str(_arch(tmp_path, Path(DIGITS))), "--out", str(out),
                 "--opset", "19"]) == 2
    err = _one_error(capsys)
    assert "--opset 19" in err and f"onnxruntime {onnxruntime.__version__}" in err, err
    assert "up to 18" in err and "from 17 to 18" in err and "upgrade onnxruntime" in err, err
    assert not (out / "manifest.json").exists()
    # the opsets it runs still export
    assert main(["export", DIGITS, "--arch", str(tmp_path / "arch.json"), "--out", str(out), "--opset", "18"]) == 0


def test_the_recipes_export_opset_is_checked_against_onnxruntime(tmp_path, onnxruntime_up_to, capsys):
    onnxruntime_up_to(18)
    assert main(["run", QUICK, *TINY, "export.opset=19", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "export.opset" in err and "onnxruntime" in err and "up to 18" in err and "Traceback" not in err, err
    assert not (tmp_path / "run" / "results.json").exists()


def test_the_newest_opset_is_one_the_installed_onnxruntime_loads():
    import onnxruntime
    from onnx import TensorProto, helper

    newest, why = onnx_mod.newest_opset()
    assert "onnxruntime" in why
    info = helper.make_tensor_value_info
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [info("x", TensorProto.FLOAT, [1])],
                              [info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", newest)], ir_version=10)
    onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


# ------------------------------------------------------------------------------------------- 4. others


def test_a_manifest_nested_too_deeply_has_no_run_and_is_no_traceback(tmp_path):
    from automl.export import run_of
    from automl.pipeline.setup import other_run

    folder = tmp_path / "member"
    folder.mkdir()
    (folder / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    assert run_of(folder) is None  # as for any manifest that cannot be read
    assert other_run(folder, tmp_path / "run") is None  # a run's start-up check of its export.dir
