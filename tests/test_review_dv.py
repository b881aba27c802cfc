"""Review DV: an export manifest's ``int8`` and ``onnx`` entries.

- an int8 entry that is neither shape measuring writes (a quantised model's ``{"file": "model.int8.onnx", ...}`` or
  a failed quantisation's ``{"file": null, "error": why}``) is one message naming the manifest and the key: a null
  file without an error, another file name, a failure's error beside a file, a size or an accuracy that is not
  one were taken, and read as a model or a failure that the entry does not describe; the same gaps of the onnx
  entry (an empty error, an error beside a file, an accuracy that is not one);
- measuring again with test batches but without quantising measured ``onnx.test_accuracy`` again and left the int8
  entry's ``fp32_test_accuracy`` (and ``test_accuracy``) of the earlier batches: the manifest reported two fp32
  accuracies of one model. The earlier int8 model is measured on the same batches now, and both figures agree.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import export_architecture, load_model, read_manifest
from automl.export.quantize import INT8_NAME, int8_summary, measure_export, onnx_accuracy

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")


def _batches(n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 1, 8, 8, generator=gen), torch.randint(0, 10, (16,), generator=gen)) for _ in range(n)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A digits network (fresh weights) exported once, not measured; each test works on its own copy."""
    cs = load_compiled(DIGITS)
    out = tmp_path_factory.mktemp("dv") / "net"
    export_architecture(cs, [0] * cs.num_decisions, out, space_path=DIGITS)
    return out


@pytest.fixture
def export(exported, tmp_path):
    out = tmp_path / "net"
    shutil.copytree(exported, out)
    return out


@pytest.fixture
def quantised(export):
    """The copy quantised, with test accuracies measured on batches of random labels."""
    test = _batches(2, seed=1)
    m = measure_export(export, quantize="int8", calibration=iter(_batches(2)), test=lambda: test)
    assert m["int8"]["file"] == INT8_NAME and m["int8"]["fp32_test_accuracy"] == m["onnx"]["test_accuracy"]
    return export


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _edit(folder: Path, field: str, entry) -> None:
    m = _manifest(folder)
    m[field] = entry
    (folder / "manifest.json").write_text(json.dumps(m))


def _own_answers(export: Path, n: int = 24):
    """Test batches labelled with the exported network's own answers (its fp32 accuracy 1.0) for half the images
    and other classes for the rest (0.5): an accuracy that is measured, and not the random labels' one."""
    x = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        y = load_model(export)(x).argmax(1)
    return [(x[: n // 2], y[: n // 2]), (x[n // 2:], (y[n // 2:] + 1) % 10)]


def _one_error(call, folder: Path, key: str) -> str:
    before = (folder / "manifest.json").read_bytes()
    with pytest.raises(UserError) as e:
        call(folder)
    text = str(e.value)
    assert text.startswith(f"{folder / 'manifest.json'}: \"{key}\" "), text
    assert len(text.splitlines()) == 1, text
    assert (folder / "manifest.json").read_bytes() == before  # nothing measured, nothing written
    return text


# ---- the int8 entry ---------------------------------------------------------------------------------------------

_QUANTISED = {"file": INT8_NAME, "format": "QDQ", "size_bytes": 5000, "fp32_size_bytes": 9000,
              "test_accuracy": 0.5, "fp32_test_accuracy": 0.5}


@pytest.mark.parametrize("entry, key, says", [
    ({"file": None}, "int8.error", "is missing: a null \"int8.file\" is a failed quantisation's entry"),
    ({}, "int8.error", "is missing"),
    ({"file": None, "error": "  "}, "int8.error", "a non-empty text"),
    ({"file": None, "error": 3}, "int8.error", "is 3"),
    ({**_QUANTISED, "file": "other.onnx"}, "int8.file", f"must be \"{INT8_NAME}\""),
    ({**_QUANTISED, "error": "RuntimeError: no kernel"}, "int8.error", "a failed quantisation's reason"),
    ({**_QUANTISED, "size_bytes": "5000"}, "int8.size_bytes", "a whole number of bytes, got '5000'"),
    ({**_QUANTISED, "size_bytes": 4999.5}, "int8.size_bytes", "a whole number of bytes"),
    ({**_QUANTISED, "fp32_size_bytes": 0}, "int8.fp32_size_bytes", "a whole number of bytes"),
    ({**_QUANTISED, "test_accuracy": 50}, "int8.test_accuracy", "a share in [0, 1]"),
    ({**_QUANTISED, "fp32_test_accuracy": "0.5"}, "int8.fp32_test_accuracy", "a share in [0, 1]"),
], ids=["null-file-no-error", "empty", "blank-error", "error-not-text", "other-file", "file-and-error",
        "size-text", "size-fraction", "fp32-size-zero", "accuracy-percent", "fp32-accuracy-text"])
def test_an_int8_entry_measuring_never_writes_is_one_message_naming_the_key(export, entry, key, says):
    """They were accepted: a null file without an error read as a failure with no reason, another file name or an
    error beside a file as a model the entry does not describe, a size that is not one skipped the check that
    model.int8.onnx is the model quantised, an accuracy that is not one went on into results and reports."""
    _edit(export, "int8", entry)
    for reader in (measure_export, load_model):
        text = _one_error(reader, export, key)
        assert says in text and "automl export " in text, text


@pytest.mark.parametrize("entry", [
    {"file": None, "error": "RuntimeError: no kernel"},
    {**_QUANTISED, "test_accuracy": None, "fp32_test_accuracy": None},  # measured on no image
    {k: v for k, v in _QUANTISED.items() if "accuracy" not in k},  # quantised without test batches
], ids=["failure", "null-accuracies", "no-accuracies"])
def test_the_int8_entries_measuring_writes_are_read(export, entry):
    _edit(export, "int8", entry)
    assert read_manifest(export)["int8"] == entry
    assert load_model(export) is not None


def test_the_command_the_message_gives_writes_a_manifest_that_is_read_again(quantised, capsys):
    """`automl export --arch` of the manifest (the command the message gives) does not read the int8 entry, and
    writes the export again (without int8) into a folder that measures."""
    _edit(quantised, "int8", {"file": None})
    text = _one_error(measure_export, quantised, "int8.error")
    command = text.split(": automl export ", 1)[1].split("; or fix")[0].split()
    assert main(["export", *command]) == 0
    capsys.readouterr()
    assert "int8" not in measure_export(quantised)


# ---- the onnx entry ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, key", [
    ({"file": None, "error": ""}, "onnx"),
    ({"error": "RuntimeError: exporter"}, "onnx.error"),
    ({"test_accuracy": 1.5}, "onnx.test_accuracy"),
    ({"test_accuracy": True}, "onnx.test_accuracy"),
], ids=["null-file-empty-error", "file-and-error", "accuracy-over-1", "accuracy-bool"])
def test_an_onnx_entry_export_never_writes_is_one_message_naming_the_key(export, change, key):
    _edit(export, "onnx", {**_manifest(export)["onnx"], **change})
    for reader in (measure_export, load_model):
        _one_error(reader, export, key)


# ---- measuring again with test batches --------------------------------------------------------------------------

def test_measuring_again_with_test_batches_measures_the_earlier_int8_model_on_them_too(quantised):
    """The int8 entry kept the fp32 and int8 accuracies of the earlier (random-label) batches beside an
    onnx.test_accuracy of the new ones: two fp32 accuracies of one model in one manifest."""
    batches = _own_answers(quantised)
    before = _manifest(quantised)["int8"]
    m = measure_export(quantised, test=lambda: iter(batches))
    fp32 = onnx_accuracy(quantised / "model.onnx", batches)
    assert fp32 == 0.5 != before["fp32_test_accuracy"]  # batches the earlier figure was not measured on
    entry = m["int8"]
    assert entry["fp32_test_accuracy"] == m["onnx"]["test_accuracy"] == fp32
    assert entry["test_accuracy"] == onnx_accuracy(quantised / INT8_NAME, batches)
    assert {k: v for k, v in entry.items() if "accuracy" not in k} == \
        {k: v for k, v in before.items() if "accuracy" not in k}  # the model's record is unchanged
    assert _manifest(quantised)["int8"] == entry and m["latency"]["int8_ms"] > 0
    assert int8_summary(m)["fp32_onnx_test_accuracy"] == fp32
    # without test batches nothing is measured again, and what was stays
    assert measure_export(quantised)["int8"] == entry


def test_an_int8_model_quantised_without_test_batches_gains_both_accuracies_when_measured_with_them(export):
    m = measure_export(export, quantize="int8", calibration=iter(_batches(2)))
    assert "test_accuracy" not in m["int8"] and "test_accuracy" not in m["onnx"]
    batches = _own_answers(export)
    m = measure_export(export, test=batches)
    assert m["int8"]["fp32_test_accuracy"] == m["onnx"]["test_accuracy"] == 0.5
    assert m["int8"]["test_accuracy"] == onnx_accuracy(export / INT8_NAME, batches)
