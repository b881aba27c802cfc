"""Review of the int8 path (measure_export's calibration): batches without an image and non-finite images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import export_architecture
from automl.export.quantize import INT8_NAME, calibration_batches, measure_export

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")


@pytest.fixture()
def export(tmp_path):
    cs = load_compiled(DIGITS)
    export_architecture(cs, [0] * cs.num_decisions, tmp_path)
    return tmp_path


def test_calibration_batches_leave_out_batches_without_an_image():
    empty, two = (torch.zeros(0, 1, 8, 8), torch.zeros(0)), (torch.ones(2, 1, 8, 8), torch.zeros(2))
    assert calibration_batches([empty]) == []
    assert [len(b) for b in calibration_batches([empty, two, empty])] == [2]


def test_calibration_batches_without_an_image_are_a_failed_quantisation(export):
    """A batch of no image calibrates nothing: the int8 entry records the failure (as documented for batches without
    an image), not a model "calibrated" on 0 images with made-up activation ranges."""
    empty = (np.zeros((0, 1, 8, 8), np.float32), np.zeros(0, np.int64))
    m = measure_export(export, quantize="int8", calibration=[empty])
    assert m["int8"]["file"] is None and "no calibration data" in m["int8"]["error"]
    assert not (export / INT8_NAME).exists() and "int8_ms" not in m["latency"]
    assert json.loads((export / "manifest.json").read_text())["int8"] == m["int8"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_calibration_images_are_one_message_before_anything_is_written(export, bad):
    x = np.random.default_rng(0).standard_normal((8, 1, 8, 8)).astype(np.float32)
    x[3, 0, 2, 2] = bad
    before = (export / "manifest.json").read_bytes()
    with pytest.raises(UserError, match="calibration batch holds NaN or infinite values"):
        measure_export(export, quantize="int8", calibration=[(x, np.zeros(8, np.int64))])
    assert (export / "manifest.json").read_bytes() == before and not (export / INT8_NAME).exists()
