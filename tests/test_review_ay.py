"""Exporting for edge devices: undefined ONNX accuracies, a damaged model.onnx, a refused export into an earlier
export's folder, calibration and test batches that do not fit the model, and timing an earlier int8 model again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import export_architecture, load_model
from automl.export.quantize import INT8_NAME, int8_summary, measure_export, onnx_accuracy

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A digits network (fresh weights) exported once; each test works on its own copy."""
    cs = load_compiled(DIGITS)
    out = tmp_path_factory.mktemp("ay") / "net"
    export_architecture(cs, [0] * cs.num_decisions, out, space_path=DIGITS)
    return out


@pytest.fixture
def export(exported, tmp_path):
    out = tmp_path / "net"
    shutil.copytree(exported, out)
    return out


def _batches(n: int, size: int = 8, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 1, size, size, generator=gen), torch.zeros(16, dtype=torch.long)) for _ in range(n)]


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


# ---- accuracy over no test image is undefined, not 0 --------------------------------------------------------

def test_accuracy_over_no_test_images_is_undefined(export):
    onnx = export / "model.onnx"
    assert onnx_accuracy(onnx, []) is None
    assert onnx_accuracy(onnx, [(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))]) is None
    # with images it is the share of right answers: labels set to the model's own answers score 1.0
    x = torch.randn(8, 1, 8, 8)
    with torch.no_grad():
        y = load_model(export)(x).argmax(1)
    assert onnx_accuracy(onnx, [(x, y)]) == 1.0
    m = measure_export(export, quantize="int8", calibration=iter(_batches(2)), test=lambda: iter([]))
    assert m["int8"]["file"] == INT8_NAME
    on_disk = _manifest(export)["int8"]
    assert "test_accuracy" in on_disk and on_disk["test_accuracy"] is None and on_disk["fp32_test_accuracy"] is None
    assert int8_summary(m)["test_accuracy"] is None and int8_summary(m)["fp32_onnx_test_accuracy"] is None


# ---- a damaged or missing model.onnx ------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "missing", "garbage"])
def test_a_damaged_onnx_model_is_one_user_error_that_says_how_to_export_it_again(export, damage, capsys):
    onnx = export / "model.onnx"
    data = onnx.read_bytes()
    if damage == "truncated":
        onnx.write_bytes(data[:len(data) // 2])
    elif damage == "missing":
        onnx.unlink()
    else:
        onnx.write_bytes(b"\x00not an onnx model" * 50)
    with pytest.raises(UserError) as e:
        measure_export(export)
    text = str(e.value)
    assert text.startswith(f"{onnx}: ") and "export the network again" in text and "onnxruntime" not in text.lower()
    assert len(text.splitlines()) == 1
    assert ("missing" in text) == (damage == "missing")
    # the command it gives writes the export again, which then measures
    command = text.split(": automl export ", 1)[1].split()
    assert main(["export", *command]) == 0
    capsys.readouterr()
    assert measure_export(export)["latency"]["fp32_ms"] > 0


# ---- an export refused for its input leaves the earlier export in the folder as it was ------------------------

@pytest.mark.parametrize("bad", ["nan", "misfit"])
def test_a_refused_export_leaves_the_earlier_export_whole(export, bad):
    cs = load_compiled(DIGITS)
    arch = [0] * cs.num_decisions
    before = {p.name: p.read_bytes() for p in export.iterdir()}
    weights = load_model(export).state_dict()
    if bad == "nan":
        key = next(k for k in weights if k.endswith("weight"))
        weights[key] = weights[key] * float("nan")
    else:
        weights.pop(next(iter(weights)))
    with pytest.raises(UserError):
        export_architecture(cs, arch, export, weights=weights)
    assert {p.name: p.read_bytes() for p in export.iterdir()} == before
    assert load_model(export) is not None


def test_a_refused_export_keeps_the_earlier_int8_model(export):
    cs = load_compiled(DIGITS)
    measure_export(export, quantize="int8", calibration=iter(_batches(2)))
    weights = load_model(export).state_dict()
    weights = {k: v * float("inf") if k.endswith("weight") else v for k, v in weights.items()}
    with pytest.raises(UserError, match="NaN or inf"):
        export_architecture(cs, [0] * cs.num_decisions, export, weights=weights)
    assert (export / INT8_NAME).is_file() and _manifest(export)["int8"]["file"] == INT8_NAME


# ---- batches that do not fit the model ----------------------------------------------------------------------

def test_calibration_batches_of_another_size_are_a_user_error(export):
    before = (export / "manifest.json").read_bytes()
    with pytest.raises(UserError) as e:
        measure_export(export, quantize="int8", calibration=iter(_batches(2, size=16)))
    text = str(e.value)
    assert "calibration batch" in text and "(16, 1, 16, 16)" in text and "(N, 1, 8, 8)" in text, text
    assert not (export / INT8_NAME).exists() and (export / "manifest.json").read_bytes() == before


def test_test_batches_of_another_size_are_a_user_error_before_anything_is_written(export):
    before = (export / "manifest.json").read_bytes()
    with pytest.raises(UserError) as e:
        measure_export(export, quantize="int8", calibration=iter(_batches(2)),
                       test=lambda: iter(_batches(1, size=16)))
    text = str(e.value)
    assert text.startswith(str(export / "model.onnx")) and "test batch" in text and "(N, 1, 8, 8)" in text, text
    assert not (export / INT8_NAME).exists() and (export / "manifest.json").read_bytes() == before


def test_an_unquantisable_model_says_the_whole_reason(export, monkeypatch):
    def refuse(*a, **k):
        raise RuntimeError("first line\nthe reason, on the second line")
    monkeypatch.setattr("automl.export.quantize.quantize_int8", refuse)
    m = measure_export(export, quantize="int8", calibration=iter(_batches(1)))
    assert m["int8"]["file"] is None and "the reason, on the second line" in m["int8"]["error"]
    assert "\n" not in m["int8"]["error"]


# ---- measuring again ------------------------------------------------------------------------------------------

def test_measuring_again_times_the_earlier_int8_model_too(export):
    m = measure_export(export, quantize="int8", calibration=iter(_batches(2)))
    assert m["latency"]["int8_ms"] > 0
    again = measure_export(export)
    assert again["int8"] == m["int8"] and again["latency"]["int8_ms"] > 0
    assert int8_summary(again)["latency_ms"] == again["latency"]["int8_ms"]
    (export / INT8_NAME).unlink()  # gone: not timed
    assert "int8_ms" not in measure_export(export)["latency"]
