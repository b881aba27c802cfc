"""Review DO: what an export's manifest says about its int8 model when the folder no longer holds that model.

- measuring again without quantising, in a folder whose ``model.int8.onnx`` is gone (removed, or the folder copied
  without it), turns the manifest's int8 entry into a failure entry that says so and how to quantise again; it kept
  the size and accuracies of a model that is not there, and ``int8_summary`` reported them;
- a ``model.int8.onnx`` of another size than the int8 entry records (another file copied in) is one message, not
  timed as this export's int8 model; one no int8 entry describes is not timed or recorded, and a warning says so;
- test or calibration batches that are not ``(x, y)`` batches are one message, not a Python error;
- ``int8_summary`` of a manifest whose ``latency`` is null.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from automl.errors import UserError
from automl.export.quantize import INT8_NAME, int8_summary, measure_export

from helpers import copy_of, quantised_digits

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _batches(n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 1, 8, 8, generator=gen), torch.randint(0, 10, (16,), generator=gen)) for _ in range(n)]


@pytest.fixture(scope="module")
def quantised(tmp_path_factory):
    """A digits network (fresh weights) exported and quantised once, with test accuracies; each test works on
    its own copy."""
    test = _batches(2, seed=1)
    return quantised_digits(tmp_path_factory.mktemp("do") / "net", iter(_batches(2)), lambda: test)


@pytest.fixture
def export(quantised, tmp_path):
    return copy_of(quantised, tmp_path)


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


# ---- the int8 model is gone ---------------------------------------------------------------------------------------

def test_a_missing_int8_model_becomes_a_failure_entry_that_says_how_to_get_it_back(export, caplog):
    """The entry kept the size and test accuracy of the deleted model, and int8_summary reported them (with
    latency_ms None) as if the folder held an int8 model."""
    (export / INT8_NAME).unlink()
    with caplog.at_level(logging.WARNING, logger="automl.export.quantize"):
        m = measure_export(export)
    entry = m["int8"]
    assert entry["file"] is None and set(entry) == {"file", "error"}  # no figure of a model that is not there
    assert entry["error"].startswith(f"{INT8_NAME} is missing")
    assert "quantize='int8'" in entry["error"] and "--quantize int8 --recipe" in entry["error"]
    assert f"--arch {export / 'manifest.json'}" in entry["error"]
    assert "\n" not in entry["error"]
    assert _manifest(export)["int8"] == entry  # what the folder says, not only what is returned
    assert "int8_ms" not in m["latency"] and m["latency"]["fp32_ms"] > 0
    # read as every failed quantisation is read: results.json's int8 is the error, report.md says why
    assert int8_summary(m) == {"error": entry["error"]}
    assert any(f"{INT8_NAME} is missing" in r.getMessage() for r in caplog.records)
    # the way back the message gives: quantising again writes the model and its figures
    again = measure_export(export, quantize="int8", calibration=iter(_batches(2)))
    assert again["int8"]["file"] == INT8_NAME and (export / INT8_NAME).is_file() and again["latency"]["int8_ms"] > 0


def test_measuring_a_folder_with_its_int8_model_keeps_the_entry(export):
    """The case the missing model is told apart from: the entry stays, the model is timed again."""
    before = _manifest(export)["int8"]
    m = measure_export(export)
    assert m["int8"] == before and m["latency"]["int8_ms"] > 0
    assert int8_summary(m)["size_bytes"] == before["size_bytes"] == (export / INT8_NAME).stat().st_size


# ---- another file in its place, or one no entry describes -----------------------------------------------------------

def test_another_file_in_the_int8_models_place_is_one_message(export):
    """Another ONNX model (here the fp32 one) copied over model.int8.onnx was timed and recorded as the int8
    entry's latency; it is refused before the manifest is written, naming the file and both sizes."""
    shutil.copyfile(export / "model.onnx", export / INT8_NAME)
    before = (export / "manifest.json").read_bytes()
    size, recorded = (export / INT8_NAME).stat().st_size, _manifest(export)["int8"]["size_bytes"]
    assert size != recorded
    with pytest.raises(UserError, match=rf"{INT8_NAME}: {size:,} bytes, .*records the {recorded:,} bytes.*"
                                        rf"quantise again"):
        measure_export(export)
    assert (export / "manifest.json").read_bytes() == before and (export / INT8_NAME).is_file()


@pytest.mark.parametrize("entry", [None, {"file": None, "error": "RuntimeError: no kernel"}],
                         ids=["no-entry", "failed-entry"])
def test_an_int8_model_no_entry_describes_is_not_timed_and_a_warning_says_so(export, entry, caplog):
    """A model.int8.onnx left beside a manifest that describes no int8 model: nothing says which model it was
    made from, so it is neither timed nor recorded (as before), and no longer silently: a warning names it."""
    m = _manifest(export)
    if entry is None:
        del m["int8"]
    else:
        m["int8"] = entry
    (export / "manifest.json").write_text(json.dumps(m))
    with caplog.at_level(logging.WARNING, logger="automl.export.quantize"):
        got = measure_export(export)
    assert got.get("int8") == entry and "int8_ms" not in got["latency"]
    assert (export / INT8_NAME).is_file()  # the user's file is left alone
    warned = [r.getMessage() for r in caplog.records if str(export / INT8_NAME) in r.getMessage()]
    assert len(warned) == 1 and "not timed or recorded" in warned[0]
    assert ("failed quantisation" if entry else "no int8 entry") in warned[0]


# ---- batches that are not (x, y) batches ----------------------------------------------------------------------------

@pytest.mark.parametrize("test, message", [
    (lambda: None, "the test batches: got NoneType, not batches"),
    (lambda: 5, "the test batches: got int, not batches"),
    (lambda: [torch.randn(4, 1, 8, 8)], "the test batches: a batch of type Tensor, not an"),  # images, no labels
    (lambda: [(torch.randn(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), 1)], "the test batches: a batch of 3 items"),
], ids=["none", "int", "images-only", "triple"])
def test_test_batches_that_are_not_pairs_are_one_message(export, test, message):
    before = (export / "manifest.json").read_bytes()
    with pytest.raises(UserError, match=rf"model\.onnx: {message}.*give \(x, y\) batches"):
        measure_export(export, test=test)
    assert (export / "manifest.json").read_bytes() == before


@pytest.mark.parametrize("calibration, message", [
    (5, "calibration: got int, not batches"),
    ([7], "calibration: a batch of type int, not an"),
    ([()], "calibration: a batch of 0 items"),
], ids=["int", "int-batch", "empty-batch"])
def test_calibration_that_is_not_batches_is_one_message(export, calibration, message):
    before = (export / "manifest.json").read_bytes()
    with pytest.raises(UserError, match=rf"{message}.*give \(x, y\) batches"):
        measure_export(export, quantize="int8", calibration=calibration)
    assert (export / "manifest.json").read_bytes() == before


def test_calibration_batches_of_images_and_more_still_calibrate(export):
    """Calibration reads only the images: (x,) and (x, y, anything) batches are taken, as before."""
    x = _batches(1)[0][0]
    m = measure_export(export, quantize="int8", calibration=[(x,), (x, None, "w")])
    assert m["int8"]["file"] == INT8_NAME and m["int8"]["calibration_samples"] == 32


# ---- int8_summary ----------------------------------------------------------------------------------------------------

def test_int8_summary_of_a_manifest_whose_latency_is_null(export):
    """read_manifest takes a null latency (not measured); int8_summary raised AttributeError on it."""
    m = _manifest(export)
    m["latency"] = None
    got = int8_summary(m)
    assert got["latency_ms"] is None and got["size_bytes"] == m["int8"]["size_bytes"]
