"""An export read back and measured through the Python API: a cell export's choices or space_args that do not fit
its space, and timm arguments timm cannot build from, are one message naming manifest.json and the field; the fp32
ONNX test accuracy is recorded without int8 too; measure_export's batch, threads and test arguments are checked;
an ARCH.json of another space says so."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import choices_from_json, export_architecture, load_model, read_arch_file
from automl.export.quantize import INT8_NAME, int8_summary, measure_export, onnx_accuracy
from automl.limits import MAX_BATCH
from automl.recipe import load_recipe
from automl.train.data import build_data
from automl.train.threads import MAX_THREADS

from test_review_ay import export, exported  # noqa: F401 - fixtures: a digits export, copied per test

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
PROXYLESS = str(ROOT / "spaces" / "proxylessnas.space")
NB201 = str(ROOT / "spaces" / "nasbench201.space")
NB201_ARGS = {"size": "8", "channels": "4", "cells": "1"}
QUICK = str(ROOT / "recipes" / "quickstart.yaml")


@pytest.fixture(scope="module")
def cell_exported(tmp_path_factory):
    cs = load_compiled(NB201, NB201_ARGS)
    out = tmp_path_factory.mktemp("bi-cell") / "cell"
    export_architecture(cs, [1] * cs.num_decisions, out, space_path=NB201, onnx=False)
    return out


@pytest.fixture
def cell(cell_exported, tmp_path):
    out = tmp_path / "cell"
    shutil.copytree(cell_exported, out)
    return out


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _edit(folder: Path, **changes) -> None:
    m = _manifest(folder)
    m.update(changes)
    (folder / "manifest.json").write_text(json.dumps(m))


def _one_message(call, *args, **kw) -> str:
    with pytest.raises(UserError) as e:
        call(*args, **kw)
    text = str(e.value)
    assert len(text.splitlines()) == 1, text
    return text


def _batches(n: int, size: int = 8, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 1, size, size, generator=gen), torch.zeros(16, dtype=torch.long)) for _ in range(n)]


def _never(*a, **k):
    raise AssertionError("timed before the arguments were checked")


# ---- load_model: a cell export's choices and space_args ---------------------------------------------------------

@pytest.mark.parametrize("choices, said", [
    (["x", "none", "none", "none", "none", "none"], "'x' is not a choice"),
    (["none", "none"], "has 6 decisions; got 2"),
    ({"nb201_zz": "none"}, "unknown decision 'nb201_zz'"),
])
def test_cell_choices_that_are_not_the_spaces_name_the_manifest_and_the_field(cell, choices, said):
    assert load_model(cell) is not None
    _edit(cell, choices=choices)
    text = _one_message(load_model, cell)
    assert text.startswith(f"{cell / 'manifest.json'}: \"choices\" do not fit space nasbench201"), text
    assert said in text and str(cell / "space.space") in text and "put back in \"choices\"" in text, text


def test_cell_choices_read_through_the_recorded_space_path_say_that_file_may_have_changed(cell):
    m = _manifest(cell)
    (cell / m.pop("space_file")).unlink()
    m["choices"] = ["x"] + m["choices"][1:]
    (cell / "manifest.json").write_text(json.dumps(m))
    text = _one_message(load_model, cell)
    assert f"space file {NB201}, the manifest's \"space\", which may have changed" in text, text


@pytest.mark.parametrize("args, said", [({**NB201_ARGS, "size": "abc"}, "size=abc"),
                                        ({"sizee": "8"}, "sizee=8")])
def test_cell_space_args_the_space_refuses_name_the_manifest_not_a_set_flag(cell, args, said):
    _edit(cell, space_args=args)
    text = _one_message(load_model, cell)
    assert text.startswith(f"{cell / 'manifest.json'}: \"space_args\" has {said}"), text
    assert "--set" not in text and "put back in \"space_args\"" in text, text


def test_a_missing_space_file_says_where_to_put_it(cell):
    _edit(cell, space=None)
    (cell / "space.space").unlink()
    text = _one_message(load_model, cell)
    assert f"copy the space file the network was exported from to {cell / 'space.space'}" in text, text


# ---- load_model: timm arguments timm cannot build from -----------------------------------------------------------

@pytest.mark.parametrize("field, change, said", [
    ("timm_kwargs", {"stem_size": 0}, "ZeroDivisionError"),
    ("timm_kwargs", {"global_pool": "zzz"}, "Invalid pool type: zzz"),
    ("timm_kwargs", {"norm_kwargs": {"epsx": 1}}, "'epsx'"),
    ("timm_kwargs", {"norm_kwargs": "x"}, "TypeError"),
    ("arch_def", [], "IndexError"),
    ("arch_def", [["ds_r1_k3_s0_c8"]], "AssertionError"),
])
def test_timm_arguments_timm_cannot_build_from_are_one_message_naming_the_manifest(export, field, change, said):
    m = _manifest(export)
    _edit(export, **{field: {**m[field], **change} if isinstance(change, dict) else change})
    text = _one_message(load_model, export)
    assert text.startswith(f"{export / 'manifest.json'}: timm cannot build the network its \"arch_def\" and "
                           f"\"timm_kwargs\" describe ("), text
    assert said in text and "put back" in text and "automl export " in text and "timm 0" not in text, text


def test_the_command_a_timm_build_failure_gives_writes_a_loadable_export(export, capsys):
    _edit(export, timm_kwargs={**_manifest(export)["timm_kwargs"], "global_pool": "zzz"})
    text = _one_message(load_model, export)
    command = text.split(": automl export ", 1)[1].split()
    assert main(["export", *command]) == 0
    capsys.readouterr()
    assert load_model(export) is not None


def test_a_timm_build_failure_names_the_timm_the_export_was_written_with(export):
    m = _manifest(export)
    _edit(export, timm_kwargs={**m["timm_kwargs"], "global_pool": "zzz"}, versions={**m["versions"], "timm": "0.0.1"})
    text = _one_message(load_model, export)
    assert "written with timm 0.0.1, this is timm " in text, text


@pytest.mark.parametrize("error", [NotImplementedError("a timm without this"), RecursionError("deep"),
                                   AttributeError("a bug"), MemoryError()])
def test_a_build_failure_that_says_nothing_of_the_values_stays_internal(export, monkeypatch, error):
    def fail(*a, **k):
        raise error
    monkeypatch.setattr("automl.export._export.build_timm_model", fail)
    with pytest.raises(type(error)) as e:
        load_model(export)
    assert not isinstance(e.value, UserError)


# ---- measure_export: the fp32 ONNX test accuracy ----------------------------------------------------------------

def _own_answers(export: Path, n: int = 24):
    """Test batches labelled with the exported network's own answers (accuracy 1.0) and, half of them, with others
    (accuracy 0.5): an accuracy that is measured, not a constant."""
    x = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = load_model(export)(x).argmax(1)
    wrong = (y + 1) % 10
    return [(x[: n // 2], y[: n // 2]), (x[n // 2:], wrong[n // 2:])]


def test_test_batches_without_quantize_record_the_fp32_onnx_accuracy(export):
    batches = _own_answers(export)
    m = measure_export(export, test=lambda: iter(batches))
    assert m["onnx"]["test_accuracy"] == 0.5 == onnx_accuracy(export / "model.onnx", batches)
    assert _manifest(export)["onnx"]["test_accuracy"] == 0.5 and "int8" not in m
    # measured again without test batches: the recorded accuracy stays; with them it is measured again
    assert measure_export(export)["onnx"]["test_accuracy"] == 0.5
    assert measure_export(export, test=batches[:1])["onnx"]["test_accuracy"] == 1.0  # a list of batches
    assert measure_export(export, test=lambda: iter([]))["onnx"]["test_accuracy"] is None  # no image: undefined
    # an export into the folder describes another model.onnx: no accuracy of the earlier one
    cs = load_compiled(DIGITS)
    export_architecture(cs, [1] * cs.num_decisions, export, space_path=DIGITS)
    assert "test_accuracy" not in _manifest(export)["onnx"]


def test_the_fp32_onnx_accuracy_is_kept_when_quantisation_fails_and_matches_the_int8_record(export, monkeypatch):
    batches = _own_answers(export)
    m = measure_export(export, quantize="int8", calibration=iter(_batches(1)), test=lambda: iter(batches))
    assert m["int8"]["fp32_test_accuracy"] == m["onnx"]["test_accuracy"] == 0.5
    assert int8_summary(m)["fp32_onnx_test_accuracy"] == 0.5

    def refuse(*a, **k):
        raise RuntimeError("cannot quantise")
    monkeypatch.setattr("automl.export.quantize.quantize_int8", refuse)
    m = measure_export(export, quantize="int8", calibration=iter(_batches(1)), test=lambda: iter(batches[:1]))
    assert m["int8"]["file"] is None and m["onnx"]["test_accuracy"] == 1.0
    assert _manifest(export)["onnx"]["test_accuracy"] == 1.0


def test_test_batches_of_another_size_without_quantize_stop_before_anything_is_timed(export, monkeypatch):
    before = (export / "manifest.json").read_bytes()
    monkeypatch.setattr("automl.export.quantize._latency", _never)
    text = _one_message(measure_export, export, test=lambda: iter(_batches(1, size=16)))
    assert text.startswith(str(export / "model.onnx")) and "test batch" in text, text
    assert (export / "manifest.json").read_bytes() == before


def test_test_batches_given_as_a_one_pass_iterator_are_refused(export, monkeypatch):
    before = (export / "manifest.json").read_bytes()
    monkeypatch.setattr("automl.export.quantize._latency", _never)
    text = _one_message(measure_export, export, quantize="int8", calibration=iter(_batches(1)),
                        test=iter(_batches(1)))
    assert text.startswith("test: expected a callable") and "list_iterator" in text, text
    assert (export / "manifest.json").read_bytes() == before and not (export / INT8_NAME).exists()


def test_the_export_command_with_a_recipe_records_the_fp32_onnx_accuracy(tmp_path, capsys):
    cs = load_compiled(DIGITS)
    arch = tmp_path / "a.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    out = tmp_path / "e"
    assert main(["export", DIGITS, "--arch", str(arch), "--out", str(out), "--recipe", QUICK]) == 0
    said = capsys.readouterr().out
    r = load_recipe(QUICK)
    test = build_data(r.data, base_dir=r.base_dir, seed=r.seed, device="cpu").test.epoch(0)
    assert _manifest(out)["onnx"]["test_accuracy"] == pytest.approx(onnx_accuracy(out / "model.onnx", test),
                                                                     abs=1e-12)
    assert f"test accuracy {100 * _manifest(out)['onnx']['test_accuracy']:.2f} %), model.safetensors" in said, said


# ---- measure_export: batch and threads -----------------------------------------------------------------------------

@pytest.mark.parametrize("arg, value", [
    ("batch", -1), ("batch", 0), ("batch", 2.5), ("batch", True), ("batch", "4"), ("batch", MAX_BATCH + 1),
    ("threads", 0), ("threads", -2), ("threads", 1.0), ("threads", None), ("threads", MAX_THREADS + 1),
])
def test_a_batch_or_thread_count_out_of_range_is_one_message_naming_the_argument(export, monkeypatch, arg, value):
    before = (export / "manifest.json").read_bytes()
    monkeypatch.setattr("automl.export.quantize._latency", _never)
    text = _one_message(measure_export, export, **{arg: value})
    assert text.startswith(f"{arg} {value!r}: ") and "whole number from 1 to" in text, text
    most = MAX_BATCH if arg == "batch" else MAX_THREADS
    assert f"{most:,}" in text, text
    assert (export / "manifest.json").read_bytes() == before


def test_numpy_whole_numbers_are_a_batch_and_threads(export):
    m = measure_export(export, batch=np.int64(2), threads=np.int32(1))
    assert m["latency"]["batch"] == 2 and type(m["latency"]["batch"]) is int
    assert _manifest(export)["latency"]["threads"] == 1


# ---- an ARCH.json of another space ----------------------------------------------------------------------------

def test_an_arch_json_of_another_space_says_so_and_names_the_file(tmp_path):
    digits, proxyless = load_compiled(DIGITS), load_compiled(PROXYLESS, {"classes": "10"})
    nb201 = load_compiled(NB201, NB201_ARGS)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": nb201.decode([3] * nb201.num_decisions)}))
    text = _one_message(read_arch_file, path, digits)
    assert text.startswith(f"{path}: 6 choices given, the space has 9 decisions; 6 of its 6 names ('conv_k3') are "
                           f"choices of no decision of space digits: {path} looks like an architecture of another "
                           f"space"), text
    assert f"automl space show {DIGITS}" in text, text
    # the same count: every name unknown is another space's architecture too
    text = _one_message(choices_from_json, {"choices": nb201.decode([3] * 6)[:1] * 9}, digits, source="a.json")
    assert "looks like an architecture of another space" in text, text
    # names that are this space's, in the wrong number (another space's list of them, or other --set values)
    text = _one_message(choices_from_json, {"choices": proxyless.decode([0] * proxyless.num_decisions)}, digits,
                        source="a.json")
    assert "21 choices given, the space has 9 decisions; give one choice per decision of space digits" in text, text
    assert "another space" in text and "no decision" not in text, text


def test_a_typo_in_one_choice_is_not_taken_for_another_space():
    digits = load_compiled(DIGITS)
    names = digits.decode([0] * digits.num_decisions)
    text = _one_message(choices_from_json, {"choices": names[:-1] + ["ir_k3_e7"]}, digits, source="a.json")
    assert "unknown choice 'ir_k3_e7'" in text and "another space" not in text, text


def test_the_export_command_says_an_arch_json_is_of_another_space(tmp_path, capsys):
    nb201 = load_compiled(NB201, NB201_ARGS)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": nb201.decode([3] * nb201.num_decisions)}))
    assert main(["export", DIGITS, "--arch", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "another space" in err, err


# ---- other arguments and records ----------------------------------------------------------------------------------

def test_quantising_without_calibration_is_said_before_anything_is_timed(export, monkeypatch):
    monkeypatch.setattr("automl.export.quantize._latency", _never)
    text = _one_message(measure_export, export, quantize="int8")
    assert text.startswith("quantize 'int8' needs calibration") and "training images" in text, text
    assert "int8" not in _manifest(export) and not (export / INT8_NAME).exists()


def test_the_cpu_clock_with_more_than_one_thread_is_refused(export, monkeypatch):
    monkeypatch.setattr("automl.export.quantize._latency", _never)
    text = _one_message(measure_export, export, clock="cpu", threads=2)
    assert text.startswith("clock 'cpu' ") and "threads=1" in text, text


@pytest.mark.parametrize("labels", [torch.zeros(8, 10), torch.zeros(5, dtype=torch.long)])
def test_test_labels_that_are_not_one_class_index_per_image_are_one_message(export, labels):
    text = _one_message(measure_export, export, test=[(torch.randn(8, 1, 8, 8), labels)])
    assert text.startswith(f"{export / 'model.onnx'}: a test batch holds labels of shape {tuple(labels.shape)} for "
                           f"8 images") and "(8,)" in text, text


def test_a_manifest_params_count_that_is_not_the_networks_names_the_field(export):
    _edit(export, params=123)
    text = _one_message(load_model, export)
    assert text.startswith(f"{export / 'manifest.json'}: \"params\" is 123, but the network") and "automl export" in text


def test_weights_of_another_export_say_to_put_back_one_exports_files(export, tmp_path):
    cs = load_compiled(DIGITS)
    other = tmp_path / "other"
    export_architecture(cs, [2] * cs.num_decisions, other, onnx=False)
    shutil.copyfile(other / "model.safetensors", export / "model.safetensors")
    text = _one_message(load_model, export)
    assert "the weights do not fit" in text and "not from one export: put back the files" in text, text


@pytest.mark.parametrize("se", ["abc", None, [0.25]])
def test_an_se_that_is_no_number_is_a_user_error(tmp_path, se):
    cs = load_compiled(DIGITS)
    text = _one_message(export_architecture, cs, [0] * cs.num_decisions, tmp_path / "e", se=se, onnx=False)
    assert text.startswith(f"--se {se!r}: the squeeze-and-excitation ratio is a number"), text
    assert not (tmp_path / "e").exists()
