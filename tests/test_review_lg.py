"""Review LG: how much of an int8 export onnxruntime actually runs in int8.

The int8 model (onnxruntime's static quantisation, QDQ format) puts every op between a DequantizeLinear and a
QuantizeLinear, but onnxruntime has int8 kernels for some only: the others (a hard-swish's HardSigmoid, a cell
network's BatchNormalization, ...) run in float between the two, and nothing said so. The int8 entry now records
``coverage``: ``{"quantized": n, "float": m, "float_ops": [...]}``, the weight-bearing ops (Conv, MatMul, Gemm)
onnxruntime runs in int8 and in float and the op types it runs in float; one note on the console says when any
op runs in float; ``int8_summary`` (results.json) carries it; ``read_manifest`` reads an entry without it (an
earlier automl's) and refuses one that is not what measuring writes; measuring an earlier export again adds it.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import export_architecture, read_manifest
from automl.export import quantize
from automl.export.quantize import int8_summary, measure_export

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"
COMPUTE = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def _batches(n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 1, 8, 8, generator=gen), torch.randint(0, 10, (16,), generator=gen)) for _ in range(n)]


def _export(space: Path, out: Path) -> Path:
    cs = load_compiled(str(space))
    export_architecture(cs, [0] * cs.num_decisions, out, space_path=str(space))
    return out


@pytest.fixture(scope="module")
def relu_export(tmp_path_factory):
    """The digits network (ReLU: onnxruntime has an int8 kernel for every op of it), exported, not measured."""
    return _export(DIGITS, tmp_path_factory.mktemp("lg") / "relu")


@pytest.fixture(scope="module")
def hswish_export(tmp_path_factory):
    """The digits network with hard-swish activations (no int8 kernel in onnxruntime), exported, not measured."""
    folder = tmp_path_factory.mktemp("lg")
    text = DIGITS.read_text(encoding="utf-8")
    assert "\nnetwork\n" in text and "activation" not in text
    space = folder / "hswish.space"
    space.write_text(text.replace("\nnetwork\n", "\nnetwork\n  activation hard_swish\n"), encoding="utf-8")
    return _export(space, folder / "hswish")


@pytest.fixture
def copy(tmp_path):
    def make(export: Path) -> Path:
        shutil.copytree(export, tmp_path / "net")
        return tmp_path / "net"
    return make


def _compute_ops(path: Path) -> int:
    """The weight-bearing ops of the fp32 ONNX model at ``path``."""
    return sum(n.op_type in COMPUTE for n in onnx.load(str(path)).graph.node)


def _notes(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "int8.coverage" in r.getMessage()]


def test_an_op_onnxruntime_runs_in_float_is_recorded_and_said_once(hswish_export, copy, caplog):
    out = copy(hswish_export)
    caplog.set_level(logging.INFO)
    m = measure_export(out, quantize="int8", calibration=iter(_batches(2)))
    cover = m["int8"]["coverage"]
    # every Conv and the Gemm have int8 kernels; hard-swish (HardSwish, or the HardSigmoid x Mul it is rewritten
    # into before quantising) has none, and runs in float between a DequantizeLinear and a QuantizeLinear
    assert cover["quantized"] == _compute_ops(out / "model.onnx") > 0 and cover["float"] == 0
    assert {"HardSigmoid", "HardSwish"} & set(cover["float_ops"]) and "Conv" not in cover["float_ops"]
    assert cover["float_ops"] == sorted(set(cover["float_ops"]))
    assert json.loads((out / "manifest.json").read_text())["int8"]["coverage"] == cover
    assert int8_summary(m)["coverage"] == cover  # results.json's int8
    notes = _notes(caplog)
    assert len(notes) == 1 and str(out) in notes[0] and all(op in notes[0] for op in cover["float_ops"]), notes
    assert "weight-bearing" not in notes[0]  # no Conv, MatMul or Gemm runs in float


def test_a_network_onnxruntime_runs_all_in_int8_records_no_float_op_and_says_nothing(relu_export, copy, caplog):
    out = copy(relu_export)
    caplog.set_level(logging.INFO)
    m = measure_export(out, quantize="int8", calibration=iter(_batches(2)))
    assert m["int8"]["coverage"] == {"quantized": _compute_ops(out / "model.onnx"), "float": 0, "float_ops": []}
    assert not _notes(caplog)


def test_weight_bearing_ops_left_float_are_counted_and_the_note_says_how_many(relu_export, copy, caplog, monkeypatch):
    """A quantiser that leaves the model float (here: copies it): every Conv and Gemm runs in float."""
    out = copy(relu_export)
    monkeypatch.setattr(quantize, "quantize_int8", lambda fp32, dst, *a, **k: shutil.copyfile(fp32, dst))
    caplog.set_level(logging.INFO)
    m = measure_export(out, quantize="int8", calibration=iter(_batches(1)))
    n = _compute_ops(out / "model.onnx")
    cover = m["int8"]["coverage"]
    assert cover["quantized"] == 0 and cover["float"] == n and {"Conv", "Gemm"} <= set(cover["float_ops"])
    notes = _notes(caplog)
    assert len(notes) == 1 and f"{n} of its {n} weight-bearing ops" in notes[0], notes


def _conv_model(quantised_input: bool, quantised_output: bool) -> bytes:
    """x -> [Q -> DQ] -> Conv (int8 weight through a DequantizeLinear) -> [Q -> DQ] -> y."""
    w = np.arange(2 * 1 * 3 * 3, dtype=np.float32).reshape(2, 1, 3, 3) / 10
    arrays = {"s": np.array(0.02, np.float32), "z": np.array(128, np.uint8), "ws": np.array(0.01, np.float32),
              "wz": np.array(0, np.int8), "wq": np.round(w / 0.01).astype(np.int8)}
    nodes = [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"])]
    if quantised_input:
        nodes += [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"])]
    nodes.append(helper.make_node("Conv", ["xd" if quantised_input else "x", "w"], ["c" if quantised_output else "y"]))
    if quantised_output:
        nodes += [helper.make_node("QuantizeLinear", ["c", "s", "z"], ["cq"]),
                  helper.make_node("DequantizeLinear", ["cq", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [numpy_helper.from_array(a, name) for name, a in arrays.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.mark.parametrize("quantised_input, quantised_output, want", [
    (True, True, {"quantized": 1, "float": 0, "float_ops": []}),
    # a QDQ weight alone is not enough: onnxruntime runs the Conv in float on the dequantised weight
    (True, False, {"quantized": 0, "float": 1, "float_ops": ["Conv"]}),
    (False, True, {"quantized": 0, "float": 1, "float_ops": ["Conv"]}),
])
def test_a_conv_counts_as_int8_only_where_onnxruntime_runs_it_so(quantised_input, quantised_output, want):
    assert quantize.int8_coverage(_conv_model(quantised_input, quantised_output)) == want


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_an_earlier_entry_without_coverage_reads_and_measuring_again_adds_it(relu_export, copy):
    out = copy(relu_export)
    counted = measure_export(out, quantize="int8", calibration=iter(_batches(2)))["int8"]["coverage"]
    m = _manifest(out)
    del m["int8"]["coverage"]  # an earlier automl's entry
    (out / "manifest.json").write_text(json.dumps(m))
    assert "coverage" not in read_manifest(out)["int8"]
    again = measure_export(out)
    assert again["int8"]["coverage"] == counted == _manifest(out)["int8"]["coverage"]


@pytest.mark.parametrize("coverage", [
    {"quantized": -1, "float": 0, "float_ops": []}, {"quantized": 1, "float": True, "float_ops": []},
    {"quantized": 1, "float": 0, "float_ops": "Mish"}, {"quantized": 1, "float": 0, "float_ops": [""]}, [1, 0],
    {"quantized": 1, "float": 0},
])
def test_a_coverage_measuring_never_writes_is_one_message_naming_the_key(relu_export, copy, coverage):
    out = copy(relu_export)
    measure_export(out, quantize="int8", calibration=iter(_batches(1)))
    m = _manifest(out)
    m["int8"]["coverage"] = coverage
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match=r'"int8\.coverage" must be'):
        read_manifest(out)
