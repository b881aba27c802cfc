"""Exports into a folder whose name is not valid UTF-8 (torch's exporter, onnx's checker, onnxruntime and
safetensors take only UTF-8 file names), and the advice for a write past the file size limit (EFBIG)."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.export import export_architecture, load_model
from automl.export.inherit import load_checkpoint
from automl.export.onnx import export_onnx
from automl.export.quantize import INT8_NAME, measure_export, quantize_int8
from automl.recipe import load_recipe
from automl.train.data import build_data

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
QUICK = str(ROOT / "recipes" / "quickstart.yaml")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture(scope="module")
def digits():
    return load_compiled(DIGITS)


@pytest.fixture(scope="module")
def data():
    r = load_recipe(QUICK)
    return build_data(r.data, base_dir=r.base_dir, seed=0, device="cpu")


def _moved(src: Path, dst: Path) -> Path:
    shutil.move(str(src), str(dst))
    return dst


def test_onnx_export_into_a_folder_whose_name_is_not_utf8(tmp_path, digits, not_utf8_folder):
    # was: TypeError: _export_onnx(): incompatible function arguments (torch's exporter took the file's name)
    folder = not_utf8_folder()
    model = digits.build_standalone(torch.zeros(digits.num_decisions, dtype=torch.long)).eval()
    entry = export_onnx(model, folder / "model.onnx", digits.input_shape)
    assert entry["file"] == "model.onnx" and entry["parity_max_rel_diff"] < 1e-3
    assert (folder / "model.onnx").stat().st_size > 1000
    assert [p.name for p in folder.iterdir()] == ["model.onnx"]  # no temporary left


def test_int8_and_latency_of_an_export_in_a_folder_whose_name_is_not_utf8(tmp_path, digits, data, not_utf8_folder):
    # was: "model.onnx: not a readable ONNX model (TypeError ...)" from onnxruntime's session, and onnxruntime's
    # quantiser failed on the name too
    out = tmp_path / "net"
    export_architecture(digits, [0] * digits.num_decisions, out)
    folder = _moved(out, not_utf8_folder() / "net")
    m = measure_export(folder, quantize="int8", calibration=data.full.epoch(0), test=lambda: data.test.epoch(0))
    assert m["int8"]["file"] == INT8_NAME, m["int8"]
    assert (folder / INT8_NAME).stat().st_size == m["int8"]["size_bytes"] < m["int8"]["fp32_size_bytes"]
    assert m["latency"]["fp32_ms"] > 0 and m["latency"]["int8_ms"] > 0
    assert m["onnx"]["test_accuracy"] is not None and m["int8"]["test_accuracy"] is not None
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    # measuring again times the int8 model the quantisation wrote
    again = measure_export(folder)
    assert again["latency"]["int8_ms"] > 0 and again["int8"]["file"] == INT8_NAME


def test_int8_quantisation_of_a_model_in_a_folder_whose_name_is_not_utf8_is_preprocessed(
        tmp_path, digits, caplog, not_utf8_folder):
    # was: onnxruntime's pre-processing (shape inference, graph optimisation) failed on the name, logging "ONNX
    # Runtime Model Optimization Failed!" with a traceback, and the model was quantised without it
    out = tmp_path / "net"
    export_architecture(digits, [0] * digits.num_decisions, out)
    folder = _moved(out, not_utf8_folder() / "net")
    calibration = [np.random.default_rng(0).random((4, *digits.input_shape), dtype=np.float32)]
    with caplog.at_level(logging.DEBUG):
        quantize_int8(folder / "model.onnx", folder / INT8_NAME, calibration)
    assert not [r for r in caplog.records if "quant_pre_process failed" in r.getMessage()
                or r.levelno >= logging.ERROR], caplog.text
    assert onnx.load(str(folder / INT8_NAME)).graph.node  # onnx's Python loader takes the name
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_load_model_of_an_export_in_a_folder_whose_name_is_not_utf8(tmp_path, digits, not_utf8_folder):
    # was: UserError "cannot read the weights (Path ... is not valid UTF-8)" from safetensors' load_file
    out = tmp_path / "net"
    export_architecture(digits, [0] * digits.num_decisions, out, onnx=False)
    expected = load_model(out).state_dict()
    folder = _moved(out, not_utf8_folder() / "net")
    got = load_model(folder).state_dict()
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got)


def test_weights_file_of_an_export_in_a_folder_whose_name_is_not_utf8(tmp_path, digits, not_utf8_folder):
    # was: UserError "--weights ...: not a readable torch checkpoint" from safetensors' load_file
    out = tmp_path / "net"
    export_architecture(digits, [0] * digits.num_decisions, out, onnx=False)
    expected = load_checkpoint(out / "model.safetensors")
    folder = _moved(out, not_utf8_folder() / "net")
    got = load_checkpoint(folder / "model.safetensors")
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got)


def test_automl_export_into_a_folder_whose_name_is_not_utf8(tmp_path, digits, monkeypatch, not_utf8_folder):
    # was: exit 1, "the ONNX export failed: TypeError: _export_onnx(): incompatible function arguments ... This
    # is a bug"
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in digits.decisions]}))
    out = not_utf8_folder() / "x"
    # standard output and error as Python opens them in a C.UTF-8 locale: the folder's name is printed as it is
    streams = {name: io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="surrogateescape", write_through=True)
               for name in ("stdout", "stderr")}
    for name, stream in streams.items():
        monkeypatch.setattr(sys, name, stream)
    code = main(["export", DIGITS, "--arch", str(arch), "--out", str(out), "--quantize", "int8", "--recipe", QUICK])
    printed = {name: stream.buffer.getvalue() for name, stream in streams.items()}
    assert code == 0, printed
    assert os.fsencode(out) in printed["stdout"] and b"int8: model.int8.onnx" in printed["stdout"], printed
    m = json.loads((out / "manifest.json").read_text())
    assert m["onnx"]["file"] == "model.onnx" and m["int8"]["file"] == INT8_NAME
    assert (out / "model.onnx").is_file() and (out / INT8_NAME).is_file()


_EFBIG_CHILD = textwrap.dedent("""
    import resource, signal, sys
    from pathlib import Path
    from automl.errors import UserError
    from automl.train.progress import Reporter
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        Reporter(Path(sys.argv[1]), tty=False).log(note="x" * 10000)
    except UserError as e:
        print(e)
""")


def test_a_write_past_the_file_size_limit_says_to_raise_it(tmp_path):
    # was: "cannot write .../metrics.jsonl (File too large); fix the cause and run the command again"
    resource = pytest.importorskip("resource")
    if not hasattr(resource, "RLIMIT_FSIZE") or not hasattr(__import__("signal"), "SIGXFSZ"):
        pytest.skip("no file size limit here")
    path = tmp_path / "metrics.jsonl"
    done = subprocess.run([sys.executable, "-c", _EFBIG_CHILD, str(path)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    said = done.stdout.strip()
    assert said.startswith(f"cannot write {path} (File too large); "), said
    assert "raise the file size limit (ulimit -f) or write to another file system" in said, said
    assert "fix the cause" not in said
