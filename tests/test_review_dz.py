"""Review DZ: ``automl export`` and export manifests.

1. The export command's summary read an int8 entry's accuracies and sizes with ``[]``: an int8 entry of a model
   quantised without test batches (which the manifest reader accepts) ended in a KeyError traceback.
2. A manifest's file names (``onnx.file``, ``weights.file``, ``space_file``) were taken as any text: a hand-edited
   ``"../x.onnx"`` or an absolute path made measuring, loading or exporting again read a file outside the export
   folder. Now one message naming the manifest and the key, exit 2.
3. ``--recipe`` of an image folder at another path than the one the checkpoint's supernet was trained on
   recalibrated and tested on that folder without a word; now a note names both folders.
4. An ``--arch`` manifest of an earlier automl (no ``"dataset"``) whose normalisation is another data set's than
   the checkpoint's was exported with that normalisation for the checkpoint's weights; now refused, as a manifest
   that names another data set is.
"""

from __future__ import annotations

import json
import os
import types
from pathlib import Path

import numpy as np
import pytest

from automl.cli import main
from automl.commands.export import _report
from automl.errors import UserError
from automl.export import load_model, read_manifest
from automl.export.manifest import INT8_NAME, plain_name
from automl.export.quantize import measure_export
from test_data import write_fake_cifar, write_fake_imagefolder
from test_review_dm import _arch, _checkpoint, _recipe, _rgb_space

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """A fresh digits export (ONNX, no int8, no test accuracy)."""
    tmp = tmp_path_factory.mktemp("dz")
    out = tmp / "e"
    assert main(["export", str(DIGITS), "--arch", str(_arch(tmp, DIGITS)), "--out", str(out)]) == 0
    return out


def _copy(export: Path, dest: Path, **edits) -> Path:
    """A copy of the export folder with its manifest's fields set to ``edits`` (``onnx__file``: onnx.file)."""
    dest.mkdir()
    for f in export.iterdir():
        (dest / f.name).write_bytes(f.read_bytes())
    m = json.loads((dest / "manifest.json").read_text())
    for key, value in edits.items():
        *outer, last = key.split("__")
        entry = m
        for k in outer:
            entry = entry[k]
        entry[last] = value
    (dest / "manifest.json").write_text(json.dumps(m))
    return dest


# ---------------------------------------------------------------- 1. int8 figures that an entry does not record


def test_the_summary_of_an_int8_model_quantised_without_test_batches(export, tmp_path, capsys):
    """HEAD: KeyError 'test_accuracy' from the summary line."""
    out = _copy(export, tmp_path / "q")
    rng = np.random.default_rng(0)
    shape = read_manifest(out)["input_shape"]
    calibration = [(rng.standard_normal((8, *shape)).astype(np.float32), np.zeros(8, dtype=np.int64))]
    manifest = measure_export(out, quantize="int8", calibration=iter(calibration))
    assert manifest["int8"]["file"] == INT8_NAME and "test_accuracy" not in manifest["int8"], manifest["int8"]
    assert read_manifest(out)["int8"] == manifest["int8"]  # the reader takes it
    args = types.SimpleNamespace(out=str(out), recipe=None)
    _report(args, manifest, None, None)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"int8: {INT8_NAME} (") and "x the size" in line and " ms here" in line, line
    assert "not tested" in line and "test accuracy" not in line, line
    # an earlier automl's entry without sizes or a latency: what it records is said, nothing made up
    manifest["int8"] = {"file": INT8_NAME, "test_accuracy": 0.5, "fp32_test_accuracy": None}
    manifest["latency"].pop("int8_ms")
    _report(args, manifest, None, None)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line == f"int8: {INT8_NAME} (test accuracy 50.00 % vs fp32 —)", line


# ---------------------------------------------------------------- 2. file names that leave the export folder


@pytest.mark.parametrize("name, ok", [
    ("model.onnx", True), ("model 2.onnx", True), ("../x.onnx", False), ("/tmp/model.onnx", False),
    ("sub/model.onnx", False), ("..", False), (".", False), ("", False), (" ", False), ("a\\b.onnx", False),
    ("C:model.onnx", False), ("a\0b", False), (None, False), (3, False),
])
def test_plain_name(name, ok):
    assert plain_name(name) is ok


@pytest.mark.parametrize("key, value", [
    ("onnx__file", "../outside.onnx"), ("onnx__file", "/abs/model.onnx"), ("onnx__file", "sub/model.onnx"),
    ("weights__file", "../outside.safetensors"), ("weights__file", "/abs/model.safetensors"),
    ("space_file", "../space.space"), ("space_file", ".."),
])
def test_a_manifest_file_name_outside_the_folder_is_one_message(export, tmp_path, key, value):
    """HEAD: read_manifest took them; measure_export and load_model then opened ``out_dir / value``."""
    out = _copy(export, tmp_path / "x", **{key: value})
    field = key.replace("__", ".")
    for read in (read_manifest, measure_export, load_model):
        with pytest.raises(UserError) as e:
            read(out)
        msg = str(e.value)
        assert msg.startswith(f"{out / 'manifest.json'}: \"{field}\" ") and repr(value) in msg, msg
        assert "\n" not in msg


def test_measuring_does_not_time_a_model_outside_the_folder(export, tmp_path):
    """HEAD: the manifest of folder b named a's model.onnx as ../a/model.onnx: b was measured with a's model."""
    a = _copy(export, tmp_path / "a")
    b = _copy(export, tmp_path / "b", onnx__file="../a/model.onnx")
    (b / "model.onnx").unlink()
    before = (b / "manifest.json").read_bytes()
    with pytest.raises(UserError, match="onnx.file"):
        measure_export(b)
    assert (b / "manifest.json").read_bytes() == before  # nothing measured, nothing written
    assert (a / "model.onnx").is_file()


def test_arch_manifest_with_a_weights_path_outside_its_folder_is_refused(export, tmp_path, capsys):
    """HEAD: exported (the manifest's weights record was taken as it stood)."""
    src = _copy(export, tmp_path / "src", weights__file="../elsewhere/model.safetensors")
    assert main(["export", str(DIGITS), "--arch", str(src / "manifest.json"), "--weights",
                 str(src / "model.safetensors"), "--out", str(tmp_path / "o")]) == 2
    err = _one_error(capsys)
    assert f"--arch {src / 'manifest.json'}: \"weights\" must be" in err and "name in the export folder" in err, err
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_out_whose_manifest_names_trained_weights_outside_it_is_not_refused(export, tmp_path, capsys):
    """--out's old manifest names ``../trained/model.safetensors``: a fresh export writes --out's own weights file,
    not that one. HEAD: refused as if --out held those trained weights."""
    trained = tmp_path / "trained"
    trained.mkdir()
    (trained / "model.safetensors").write_bytes((export / "model.safetensors").read_bytes())
    out = _copy(export, tmp_path / "out", weights={"file": "../trained/model.safetensors", "source": "supernet"})
    assert main(["export", str(DIGITS), "--arch", str(_arch(tmp_path, DIGITS)), "--out", str(out)]) == 0
    assert (trained / "model.safetensors").read_bytes() == (export / "model.safetensors").read_bytes()
    assert json.loads((out / "manifest.json").read_text())["weights"]["file"] == "model.safetensors"


# ------------------------------------------------------- 3. an image folder at another path than the checkpoint's


@pytest.fixture
def imagefolder(tmp_path):
    space = _rgb_space(tmp_path, 2)
    write_fake_imagefolder(tmp_path / "imgs")
    recipe = _recipe(tmp_path, space, dataset="imagefolder", root=tmp_path / "imgs", image_size=8, theta_split=2)
    return space, recipe


def test_an_image_folder_at_another_path_than_the_checkpoints_is_a_note(imagefolder, tmp_path, capsys):
    """HEAD: exported without a word, BatchNorm recalibrated on the recipe's folder."""
    space, recipe = imagefolder
    trained = tmp_path / "train_imgs"
    ckpt = _checkpoint(tmp_path, space, data_dataset="imagefolder", data_root=str(trained))
    out = tmp_path / "out"
    assert main(["export", str(space), "--arch", str(_arch(tmp_path, space)), "--weights", str(ckpt),
                 "--recipe", str(recipe), "--out", str(out)]) == 0
    notes = [n for n in capsys.readouterr().err.splitlines() if n.startswith("note:")]
    assert len(notes) == 1, notes
    assert f"from {(tmp_path / 'imgs').resolve()} (data.root)" in notes[0], notes
    assert f"trained on those in {trained} (the checkpoint's data.root)" in notes[0], notes
    assert f"data.root {trained}" in notes[0]
    assert json.loads((out / "manifest.json").read_text())["dataset"] == "imagefolder"


@pytest.mark.parametrize("same", ["path", "link"])
def test_the_checkpoints_own_image_folder_has_no_note(imagefolder, tmp_path, capsys, same):
    space, recipe = imagefolder
    root = tmp_path / "imgs"
    if same == "link":  # another spelling of the same folder
        os.symlink(root, tmp_path / "link")
        root = tmp_path / "link"
    ckpt = _checkpoint(tmp_path, space, data_dataset="imagefolder", data_root=str(root))
    assert main(["export", str(space), "--arch", str(_arch(tmp_path, space)), "--weights", str(ckpt),
                 "--recipe", str(recipe), "--out", str(tmp_path / "out")]) == 0
    assert "note:" not in capsys.readouterr().err


def test_data_sets_whose_root_only_locates_them_have_no_note(tmp_path, capsys):
    """cifar10's root is not recorded in fingerprints (a copy elsewhere is the same data); one recorded by an
    earlier automl is not compared either."""
    space = _rgb_space(tmp_path)
    write_fake_cifar(tmp_path / "cifar")
    ckpt = _checkpoint(tmp_path, space, data_dataset="cifar10", data_root="/elsewhere/cifar")
    recipe = _recipe(tmp_path, space, dataset="cifar10", root=tmp_path / "cifar", image_size=8)
    assert main(["export", str(space), "--arch", str(_arch(tmp_path, space)), "--weights", str(ckpt),
                 "--recipe", str(recipe), "--out", str(tmp_path / "out")]) == 0
    assert "note:" not in capsys.readouterr().err


# ------------------------------------------------- 4. a manifest of an earlier automl, without "dataset"


def _old_manifest(tmp_path: Path, space: Path, **data) -> Path:
    """The manifest of an export of ``space`` with the recipe's ``data``, less its "dataset" (as earlier automl
    versions wrote it)."""
    first = tmp_path / "first"
    assert main(["export", str(space), "--arch", str(_arch(tmp_path, space)), "--recipe",
                 str(_recipe(tmp_path, space, **data)), "--out", str(first)]) == 0
    manifest = first / "manifest.json"
    m = json.loads(manifest.read_text())
    del m["dataset"]
    assert m["normalize"] is not None
    manifest.write_text(json.dumps(m))
    return manifest


@pytest.mark.parametrize("trained_on", ["imagefolder", "synthetic"])
def test_an_old_manifest_of_another_data_sets_normalisation_is_refused(tmp_path, capsys, trained_on):
    """HEAD: exported, recording cifar10's normalisation for weights trained on ``trained_on``."""
    space = _rgb_space(tmp_path)
    write_fake_cifar(tmp_path / "cifar")
    manifest = _old_manifest(tmp_path, space, dataset="cifar10", root=tmp_path / "cifar", image_size=8)
    capsys.readouterr()
    ckpt = _checkpoint(tmp_path, space, data_dataset=trained_on)
    out = tmp_path / "out"
    assert main(["export", str(space), "--arch", str(manifest), "--weights", str(ckpt), "--out", str(out)]) == 2
    err = _one_error(capsys)
    assert f"--arch {manifest} records normalize mean [0.4914" in err and "no data set" in err, err
    assert f"trained on {trained_on}" in err and "plain ARCH.json" in err, err
    assert not (out / "manifest.json").exists()


def test_an_old_manifest_of_the_checkpoints_data_set_exports(tmp_path):
    space = _rgb_space(tmp_path)
    write_fake_cifar(tmp_path / "cifar")
    manifest = _old_manifest(tmp_path, space, dataset="cifar10", root=tmp_path / "cifar", image_size=8)
    ckpt = _checkpoint(tmp_path, space, data_dataset="cifar10")
    out = tmp_path / "out"
    assert main(["export", str(space), "--arch", str(manifest), "--weights", str(ckpt), "--out", str(out)]) == 0
    assert json.loads((out / "manifest.json").read_text())["normalize"] == json.loads(manifest.read_text())[
        "normalize"]
