"""Review HV: quantising again into an export folder that holds a quantised model keeps the folder consistent.

- the new int8 model is quantised into a temporary file in the folder and measured there; ``model.int8.onnx`` is
  replaced only after the manifest with its entry is written. An interrupt while timing or testing the new model
  left the new ``model.int8.onnx`` beside the earlier entry (its size, latency, accuracies);
- the int8 entry records the model's ``sha256``: a process killed between the manifest's replacement and the
  model's leaves an entry the earlier model does not match, and measuring again refuses that model; so is a model
  of the same size copied in from another quantisation (only a size that differed was noticed);
- an entry without ``sha256`` (an earlier automl's) is still read; a ``sha256`` that is not one is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import onnx
import pytest
import torch
from onnx import numpy_helper

from automl._io import TEMPORARY
from automl.errors import UserError
from automl.export import quantize as q
from automl.export.manifest import read_manifest
from automl.export.quantize import INT8_NAME, measure_export

from helpers import copy_of, quantised_digits

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _batches(n: int, seed: int = 0, scale: float = 1.0):
    gen = torch.Generator().manual_seed(seed)
    return [(scale * torch.randn(16, 1, 8, 8, generator=gen), torch.randint(0, 10, (16,), generator=gen))
            for _ in range(n)]


TEST = _batches(2, seed=1)
OTHER = _batches(2, seed=7, scale=3.0)  # other activation ranges: another int8 model of the same size


@pytest.fixture(scope="module")
def quantised(tmp_path_factory):
    """A digits network (fresh weights) exported and quantised once, with test accuracies; each test works on
    its own copy."""
    torch.manual_seed(0)  # the fresh weights
    return quantised_digits(tmp_path_factory.mktemp("hv") / "net", _batches(2), lambda: TEST)


@pytest.fixture
def export(quantised, tmp_path):
    return copy_of(quantised, tmp_path)


def _state(folder: Path) -> tuple[bytes, bytes]:
    return (folder / "manifest.json").read_bytes(), (folder / INT8_NAME).read_bytes()


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if TEMPORARY.fullmatch(p.name)]


def _consistent(folder: Path) -> None:
    """The int8 entry describes the model.int8.onnx beside it: its size, and its SHA-256 where recorded."""
    entry, data = _manifest(folder)["int8"], (folder / INT8_NAME).read_bytes()
    assert entry["size_bytes"] == len(data)
    assert entry.get("sha256", hashlib.sha256(data).hexdigest()) == hashlib.sha256(data).hexdigest()


def _interrupt_on_call(monkeypatch, name: str, call: int) -> list:
    """Make quantize.``name`` raise KeyboardInterrupt on its ``call``-th call (the first: the fp32 model's)."""
    real, calls = getattr(q, name), []

    def interrupted(*args, **kwargs):
        calls.append(name)
        if len(calls) == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(q, name, interrupted)
    return calls


def test_the_other_calibration_gives_another_model(export):
    """What the tests below rely on: quantising again on OTHER writes another model.int8.onnx."""
    before = (export / INT8_NAME).read_bytes()
    measure_export(export, quantize="int8", calibration=OTHER, test=lambda: TEST)
    assert (export / INT8_NAME).read_bytes() != before
    _consistent(export)


@pytest.mark.parametrize("name", ["_latency", "_accuracy"], ids=["timing", "testing"])
def test_an_interrupt_while_measuring_the_new_model_leaves_the_earlier_model_and_entry(export, monkeypatch, name):
    """The new model.int8.onnx was in place while it was timed and tested: Ctrl-C there left it beside the
    earlier entry's figures (of the same size: nothing noticed). Now both stay as they were, and no temporary."""
    before = _state(export)
    calls = _interrupt_on_call(monkeypatch, name, 2)  # 1: model.onnx's; 2: the new int8 model's
    with pytest.raises(KeyboardInterrupt):
        measure_export(export, quantize="int8", calibration=OTHER, test=lambda: TEST)
    assert len(calls) == 2
    assert _state(export) == before
    assert _temporaries(export) == []
    monkeypatch.undo()
    m = measure_export(export)  # the next call works: the earlier model is timed again
    assert m["latency"]["int8_ms"] > 0 and m["int8"]["size_bytes"] == len(before[1])
    m = measure_export(export, quantize="int8", calibration=OTHER, test=lambda: TEST)
    assert (export / INT8_NAME).read_bytes() != before[1]
    _consistent(export)


def _kill_before_the_model_moves(monkeypatch) -> list:
    """os.replace raises KeyboardInterrupt when it would move a temporary onto model.int8.onnx."""
    real, moves = os.replace, []

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == INT8_NAME:
            moves.append(Path(src).name)
            raise KeyboardInterrupt
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return moves


def test_a_kill_between_the_manifest_and_the_model_is_refused_and_quantising_again_mends_it(export, monkeypatch):
    """The one moment the folder cannot be made consistent (two files, two renames): the new entry is written,
    the earlier model stays. Measuring again refuses that model (by its SHA-256, or its size where that differs)
    instead of recording its latency as the new entry's, and leaves the manifest; quantising again writes both."""
    old_model = (export / INT8_NAME).read_bytes()
    moves = _kill_before_the_model_moves(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        measure_export(export, quantize="int8", calibration=OTHER, test=lambda: TEST)
    monkeypatch.undo()
    assert len(moves) == 1 and TEMPORARY.fullmatch(moves[0])  # the model was measured in a temporary file
    assert _temporaries(export) == []
    entry = _manifest(export)["int8"]
    assert (export / INT8_NAME).read_bytes() == old_model
    assert entry["sha256"] != hashlib.sha256(old_model).hexdigest()
    manifest = (export / "manifest.json").read_bytes()
    with pytest.raises(UserError, match=rf"{INT8_NAME}: (its SHA-256 is not the one the manifest's int8 entry "
                                        rf"records .*cut short|[\d,]+ bytes, where the manifest's int8 entry).*"
                                        rf"quantise again"):
        measure_export(export)
    assert (export / "manifest.json").read_bytes() == manifest
    measure_export(export, quantize="int8", calibration=OTHER, test=lambda: TEST)
    _consistent(export)
    assert measure_export(export)["latency"]["int8_ms"] > 0


def _same_size_other_model(path: Path) -> None:
    """Rewrite the int8 model at ``path`` with its first float scale initializer doubled: another model (another
    calibration's ranges) of the same size, as quantising the same network again often gives."""
    model = onnx.load(str(path))
    init = next(i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT and i.raw_data)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 2, init.name))
    size = path.stat().st_size
    onnx.save(model, str(path))
    assert path.stat().st_size == size


def test_another_int8_model_of_the_same_size_is_refused(export):
    """Another quantisation's model of the same size in model.int8.onnx: the size check let it through, and its
    latency was recorded as this export's."""
    _same_size_other_model(export / INT8_NAME)
    before = (export / "manifest.json").read_bytes()
    with pytest.raises(UserError, match=r"its SHA-256 is not the one .*\"int8.sha256\".*another model took its place"):
        measure_export(export)
    assert (export / "manifest.json").read_bytes() == before


def test_the_entry_records_the_sha256_of_the_model_in_place(export):
    m = measure_export(export, quantize="int8", calibration=OTHER)
    assert m["int8"]["sha256"] == hashlib.sha256((export / INT8_NAME).read_bytes()).hexdigest()
    assert _manifest(export)["int8"] == m["int8"]
    assert measure_export(export)["int8"]["sha256"] == m["int8"]["sha256"]  # timed again: kept


def test_an_entry_without_sha256_is_still_read_and_checked_by_its_size(export):
    """An earlier automl's entry: no sha256; the model is timed again, and nothing is made up for it."""
    m = _manifest(export)
    del m["int8"]["sha256"]
    (export / "manifest.json").write_text(json.dumps(m))
    got = measure_export(export, test=lambda: TEST)
    assert "sha256" not in got["int8"] and got["latency"]["int8_ms"] > 0
    assert got["int8"]["test_accuracy"] == m["int8"]["test_accuracy"]


@pytest.mark.parametrize("digest", ["abc", 5, "A" * 64, "g" * 64], ids=["short", "number", "upper", "not-hex"])
def test_a_sha256_that_is_not_one_is_refused_naming_the_key(export, digest):
    m = _manifest(export)
    m["int8"]["sha256"] = digest
    (export / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match=r"\"int8.sha256\" must be the int8 model's SHA-256, 64 lowercase hex"):
        read_manifest(export)


def test_a_failed_quantisation_over_an_earlier_one_records_the_failure_and_removes_the_model(export):
    """The failure entry is written, the earlier model removed, and no temporary is left."""
    empty = (torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))
    m = measure_export(export, quantize="int8", calibration=[empty])
    assert m["int8"]["file"] is None and "no calibration data" in m["int8"]["error"]
    assert _manifest(export)["int8"] == m["int8"] and "int8_ms" not in m["latency"]
    assert not (export / INT8_NAME).exists() and _temporaries(export) == []


def test_a_new_model_onnxruntime_cannot_run_is_recorded_and_the_earlier_one_removed(export, monkeypatch):
    """The int8 model is timed and tested on one onnxruntime session of the bytes its entry records; one
    onnxruntime cannot run (its kernels are looked up when the session is made) is a failure entry, and the
    earlier model, which no entry describes any more, is removed."""
    real, made = q.ort_session, []

    def no_int8_kernel(model, *a, **k):
        if isinstance(model, bytes) and b"QuantizeLinear" in model:  # the new int8 model
            made.append(model)
            raise RuntimeError("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : no ConvInteger(10) kernel")
        return real(model, *a, **k)

    monkeypatch.setattr(q, "ort_session", no_int8_kernel)
    m = measure_export(export, quantize="int8", calibration=OTHER)
    assert len(made) == 1  # the earlier model's session is not made: its entry is replaced
    assert m["int8"]["error"].startswith("quantised, but onnxruntime cannot run the int8 model: RuntimeError")
    assert _manifest(export)["int8"] == m["int8"] and "int8_ms" not in m["latency"]
    assert not (export / INT8_NAME).exists() and _temporaries(export) == []
