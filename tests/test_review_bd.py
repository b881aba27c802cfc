"""An export folder's manifest.json as its readers (load_model, measure_export) trust it: a hand-edited or damaged
field is one message naming the file and the field; an older manifest without the optional fields still reads; a
folder that cannot be written is said before anything is timed; an ONNX model that onnxruntime refuses for its
opset is not called damaged."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import onnx
import pytest

from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import export_architecture, load_model, read_manifest
from automl.export.quantize import INT8_NAME, measure_export

from test_review_ay import export, exported  # noqa: F401 - fixtures: a digits export, copied per test

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
NB201 = str(ROOT / "spaces" / "nasbench201.space")
NB201_ARGS = {"size": "8", "channels": "4", "cells": "1"}


def _edit(folder: Path, **changes) -> None:
    """Change fields of the folder's manifest.json (a value of ``...``: remove the field)."""
    path = folder / "manifest.json"
    m = json.loads(path.read_text())
    for k, v in changes.items():
        if v is ...:
            m.pop(k, None)
        else:
            m[k] = v
    path.write_text(json.dumps(m))


def _one_error(call, folder: Path, field: str) -> str:
    with pytest.raises(UserError) as e:
        call(folder)
    text = str(e.value)
    assert text.startswith(f"{folder / 'manifest.json'}: \"{field}\" "), text
    assert len(text.splitlines()) == 1, text
    return text


# ---- the fields measure_export reads ------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("input_shape", ...), ("input_shape", "1x8x8"), ("input_shape", [1, 8, 0]),
    ("onnx", "model.onnx"), ("onnx", {"opset": 17}), ("int8", "model.int8.onnx"),
])
def test_a_hand_edited_field_measure_export_reads_is_one_message_with_the_command_that_writes_it_again(
        export, field, value, capsys):
    _edit(export, **{field: value})
    before = (export / "manifest.json").read_bytes()
    text = _one_error(measure_export, export, field)
    assert ("missing" in text) == (value is ...), text
    assert (export / "manifest.json").read_bytes() == before
    # the command it gives writes the export again, which then measures
    command = text.split(": automl export ", 1)[1].split("; or fix")[0].split()
    assert command[command.index("--arch") + 1] == str(export / "manifest.json")
    assert main(["export", *command]) == 0
    capsys.readouterr()
    assert measure_export(export)["latency"]["fp32_ms"] > 0


def test_a_weights_record_that_is_not_an_object_says_to_put_back_the_exported_value(export):
    _edit(export, weights="model.safetensors")
    for reader in (measure_export, load_model):
        text = _one_error(reader, export, "weights")
        assert "put back" in text and "\"file\": \"model.safetensors\"" in text, text


@pytest.mark.parametrize("field, value", [("input_shape", [1, 16, 16]), ("input_shape", [3, 8, 8])])
def test_an_input_shape_the_onnx_model_does_not_take_names_the_field_before_any_timing(export, field, value,
                                                                                      monkeypatch):
    _edit(export, **{field: value})
    monkeypatch.setattr("automl.export.quantize._latency", _never)
    text = _one_error(measure_export, export, field)
    assert "(N, 1, 8, 8)" in text and "automl export" in text, text


def test_an_input_name_the_onnx_model_does_not_have_names_the_field(export, monkeypatch):
    m = json.loads((export / "manifest.json").read_text())
    _edit(export, onnx={**m["onnx"], "input_name": "image"})
    monkeypatch.setattr("automl.export.quantize._latency", _never)
    text = _one_error(measure_export, export, "onnx.input_name")
    assert "'image'" in text and "'input'" in text, text


def _never(*a, **k):
    raise AssertionError("timed before the manifest was checked")


# ---- the fields load_model reads ----------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("params", "12,345"), ("params", None), ("weights", {"file": None}),
    ("arch_def", [["zz_r1_k3_s1_c16"]]), ("arch_def", "ds_r1_k3_s1_c16"), ("timm_kwargs", ["stem_size", 16]),
])
def test_a_hand_edited_field_load_model_reads_is_one_message(export, field, value):
    _edit(export, **{field: value})
    _one_error(load_model, export, field)


@pytest.mark.parametrize("field, value", [("se", None), ("choices", 3), ("choices", [0, 1, 2, 3, 4, 5])])
def test_a_hand_edited_field_of_a_cell_export_is_one_message(tmp_path, field, value):
    cs = load_compiled(NB201, NB201_ARGS)
    out = tmp_path / "cell"
    export_architecture(cs, [0] * cs.num_decisions, out, space_path=NB201, onnx=False)
    assert load_model(out) is not None
    _edit(out, **{field: value})
    text = _one_error(load_model, out, field)
    assert ("null" in text) == (value is None) and "put back" in text, text


def test_a_manifest_nested_too_deeply_is_one_message(tmp_path):
    (tmp_path / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UserError, match="manifest.json: not a readable manifest"):
        load_model(tmp_path)


def test_an_older_manifest_without_the_optional_fields_still_reads_and_measures(export):
    # fields later automl versions added, and fields a run or measuring adds, absent; null where a version wrote
    # null (no space file recorded)
    _edit(export, run=..., normalize=..., search_cost=..., epsilon=..., int8=..., latency=..., space_file=...,
          format_version=..., space=None, space_args=...)
    (export / "space.space").unlink()
    assert read_manifest(export)["choices"]
    assert load_model(export) is not None
    m = measure_export(export)
    assert m["latency"]["fp32_ms"] > 0 and "int8" not in m


# ---- a folder that cannot take the measurements ---------------------------------------------------------------

def test_a_read_only_export_folder_is_said_before_anything_is_timed(export, monkeypatch):
    real_open = os.open

    def read_only(path, flags, *args, **kw):  # as a read-only folder refuses new files (root ignores modes)
        p = Path(os.fsdecode(path))
        if flags & os.O_CREAT or flags & getattr(os, "O_TMPFILE", 0):
            if export.resolve() in (p.resolve(), p.parent.resolve()):
                raise PermissionError(errno.EACCES, "Permission denied", str(p))
        return real_open(path, flags, *args, **kw)

    before = (export / "manifest.json").read_bytes()
    monkeypatch.setattr(os, "open", read_only)
    monkeypatch.setattr("automl.export.quantize._latency", _never)
    with pytest.raises(UserError) as e:
        measure_export(export)
    text = str(e.value)
    assert text.startswith(f"{export}: cannot write") and "Permission denied" in text and "writable" in text, text
    assert (export / "manifest.json").read_bytes() == before


def test_a_failed_write_of_the_measurements_is_a_user_error(export, monkeypatch):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr("automl.export.quantize.write_manifest", full)
    with pytest.raises(UserError) as e:
        measure_export(export)
    assert "No space left on device" in str(e.value) and "manifest.json" in str(e.value)


# ---- an ONNX model onnxruntime cannot run is not "damaged" -------------------------------------------------------

def test_a_model_of_a_newer_opset_says_onnxruntime_cannot_run_it_not_that_it_is_damaged(export, capsys):
    path = export / "model.onnx"
    model = onnx.load(str(path))
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = 99
    onnx.save(model, str(path))
    with pytest.raises(UserError) as e:
        measure_export(export)
    text = str(e.value)
    assert text.startswith(f"{path}: onnxruntime ") and "cannot run" in text and "opset 99" in text, text
    assert "damaged" not in text and "truncated" not in text and ".h:" not in text and "::" not in text, text
    assert len(text.splitlines()) == 1
    command = text.split(": automl export ", 1)[1].split(" (it writes")[0].split()
    assert main(["export", *command]) == 0
    capsys.readouterr()
    assert measure_export(export)["latency"]["fp32_ms"] > 0
    assert not (export / INT8_NAME).exists()


@pytest.mark.parametrize("change, said", [
    ({"act_layer": "relu7"}, "'relu7'"), ({"stem_sizee": 16}, "'stem_sizee'"), ({"stem_size": "16"}, "'16'"),
    ({"timm_class": "ResNet"}, "'ResNet'"), ({"fix_stem": "yes"}, "'yes'"), ({"se_layer": "sigmoid"}, "'sigmoid'"),
])
def test_hand_edited_timm_kwargs_are_one_message_that_names_the_argument(export, change, said):
    m = json.loads((export / "manifest.json").read_text())
    _edit(export, timm_kwargs={**m["timm_kwargs"], **change})
    text = _one_error(load_model, export, "timm_kwargs")
    assert said in text, text


@pytest.mark.parametrize("space, args", [("mobilenetv3", {}), ("proxylessnas", {"classes": "10"})])
def test_the_timm_kwargs_an_export_writes_pass_the_check(space, args, tmp_path):
    cs = load_compiled(str(ROOT / "spaces" / f"{space}.space"), args)
    out = tmp_path / space
    export_architecture(cs, [0] * cs.num_decisions, out, onnx=False)
    assert read_manifest(out)["timm_kwargs"] == json.loads((out / "manifest.json").read_text())["timm_kwargs"]
