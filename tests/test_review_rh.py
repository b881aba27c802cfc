"""Review RH: what a killed ``automl export`` leaves, and what running it again cleans.

- quantising writes the int8 model straight into the temporary file that becomes ``model.int8.onnx``, not into a
  temporary of that temporary (``..model.int8.onnx.X.onnx.tmp.Y.onnx.tmp``);
- an export that finishes removes the temporaries of atomic writes a killed export left in its ``--out`` (the
  export's own files' only: a user's ``.notes.tmp`` and files in sub-folders stay) and the lock file it left;
- ``automl export`` writes ``manifest.json`` last, after the measurements (latency, int8 model): a folder with a
  manifest holds a complete export, never one that looks measured without ``--quantize``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import onnxruntime.quantization
import pytest

from automl._io import TEMPORARY
from automl.compile import compile_space, load_compiled
from automl.dsl import load_space
from automl.export import export_architecture, quantize
from helpers import cli_out_err as cli

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"
QUICK = str(ROOT / "recipes" / "quickstart.yaml")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _arch(tmp_path: Path) -> str:
    cs = compile_space(load_space(DIGITS))
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    return str(path)


def _export(capsys, tmp_path: Path, out: Path, *more) -> tuple[int, str]:
    code, _, err = cli(capsys, "export", DIGITS, "--arch", _arch(tmp_path), "--out", out, *more)
    return code, err


# ---- no temporary of a temporary -----------------------------------------------------------------------------

def test_quantising_writes_no_temporary_of_the_staged_int8_model(tmp_path, monkeypatch):
    import torch

    cs = load_compiled(str(DIGITS))
    out = tmp_path / "net"
    export_architecture(cs, [0] * cs.num_decisions, out, space_path=str(DIGITS))
    seen: list[list[str]] = []
    real = onnxruntime.quantization.quantize_static

    def watching(*a, **k):  # what the export folder holds while onnxruntime quantises
        seen.append(sorted(os.listdir(out)))
        return real(*a, **k)

    monkeypatch.setattr(onnxruntime.quantization, "quantize_static", watching)
    batches = [(torch.randn(8, 1, 8, 8), torch.zeros(8, dtype=torch.long))]
    m = quantize.measure_export(out, quantize="int8", calibration=iter(batches))
    assert m["int8"]["file"] == "model.int8.onnx", m["int8"]
    assert len(seen) == 1
    temporaries = [n for n in seen[0] if TEMPORARY.fullmatch(n)]
    assert len(temporaries) == 1 and temporaries[0].startswith(".model.int8.onnx."), seen  # the staged model alone
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]


# ---- a finished export cleans what a killed one left ---------------------------------------------------------

KILLED = [".model.int8.onnx.d21c2fc7.onnx.tmp", "..model.int8.onnx.d21c2fc7.onnx.tmp.293aa4d8.onnx.tmp",
          ".manifest.json.0a1b2c3d.tmp", ".model.safetensors.0a1b2c3d.safetensors.tmp", ".model.onnx.9f8e7d6c.onnx.tmp",
          ".space.space.12345678.tmp", ".model.onnx.ab_c1234.onnx.tmp"]  # the last: an earlier automl's token
KEPT = [".notes.tmp", ".mine.0a1b2c3d.tmp", "notes.txt"]


def test_a_finished_export_removes_a_killed_exports_temporaries_and_lock(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    for name in KILLED + KEPT:
        (out / name).write_bytes(b"")
    (out / "sub").mkdir()
    (out / "sub" / ".model.onnx.0a1b2c3d.onnx.tmp").write_bytes(b"")  # not the export's: it writes no sub-folder
    # the lock file of an export killed with -9 (unlocked: its process is gone), naming it
    (out / ".lock").write_text(json.dumps({"pid": 999999999, "host": "vm", "started": "2026-12-08 01:23:59 UTC",
                                           "command": f"automl export {DIGITS} --out {out}"}))
    code, err = _export(capsys, tmp_path, out)
    assert code == 0, err
    left = sorted(os.listdir(out))
    assert left == sorted(["manifest.json", "model.onnx", "model.safetensors", "space.space", "sub", *KEPT]), left
    assert os.listdir(out / "sub") == [".model.onnx.0a1b2c3d.onnx.tmp"]


def test_a_refused_export_leaves_a_found_lock_file_and_temporaries(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / KILLED[0]).write_bytes(b"")
    record = json.dumps({"pid": 999999999, "host": "vm", "started": "2026-12-08 01:23:59 UTC",
                         "command": "automl export"})
    (out / ".lock").write_text(record)
    code, err = _export(capsys, tmp_path, out, "--opset", "1")  # refused before anything is written
    assert code == 2, err
    assert sorted(os.listdir(out)) == sorted([".lock", KILLED[0]])
    assert (out / ".lock").read_text() == record


# ---- manifest.json last ----------------------------------------------------------------------------------------

def _watch(monkeypatch, out: Path) -> list[tuple[str, bool, bool]]:
    """(what, manifest.json there?, model.int8.onnx there?) at each latency timing and each manifest write of
    the measurements."""
    seen: list[tuple[str, bool, bool]] = []

    def state(what: str) -> None:
        seen.append((what, (out / "manifest.json").is_file(), (out / "model.int8.onnx").is_file()))

    latency, write = quantize._latency, quantize.write_manifest

    def timing(*a, **k):
        state("timing")
        return latency(*a, **k)

    def writing(*a, **k):
        state("writing")
        return write(*a, **k)

    monkeypatch.setattr(quantize, "_latency", timing)
    monkeypatch.setattr(quantize, "write_manifest", writing)
    return seen


def test_export_writes_its_manifest_after_timing_the_model(tmp_path, capsys, monkeypatch):
    out = tmp_path / "o"
    seen = _watch(monkeypatch, out)
    code, err = _export(capsys, tmp_path, out)
    assert code == 0, err
    assert seen == [("timing", False, False), ("writing", False, False)], seen
    m = json.loads((out / "manifest.json").read_text())
    assert m["latency"]["fp32_ms"] > 0 and "int8" not in m


def test_export_quantize_writes_its_manifest_after_the_int8_model(tmp_path, capsys, monkeypatch):
    out = tmp_path / "o"
    seen = _watch(monkeypatch, out)
    code, err = _export(capsys, tmp_path, out, "--quantize", "int8", "--recipe", QUICK)
    assert code == 0, err
    # fp32 then int8 timed without a manifest; the manifest written once, the int8 model already in place
    assert seen == [("timing", False, False), ("timing", False, False), ("writing", False, True)], seen
    m = json.loads((out / "manifest.json").read_text())
    assert m["int8"]["file"] == "model.int8.onnx" and m["latency"]["int8_ms"] > 0
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]


def test_export_again_over_a_measured_export_removes_its_manifest_until_measured(tmp_path, capsys, monkeypatch):
    out = tmp_path / "o"
    code, err = _export(capsys, tmp_path, out, "--quantize", "int8", "--recipe", QUICK)
    assert code == 0, err
    seen = _watch(monkeypatch, out)
    code, err = _export(capsys, tmp_path, out)  # without --quantize: the earlier int8 model goes
    assert code == 0, err
    assert seen == [("timing", False, False), ("writing", False, False)], seen
    m = json.loads((out / "manifest.json").read_text())
    assert "int8" not in m and not (out / "model.int8.onnx").exists()


def test_a_failed_quantisation_is_recorded_in_the_manifest_written_last(tmp_path, capsys, monkeypatch):
    def refuse(*a, **k):
        raise RuntimeError("cannot quantise")

    monkeypatch.setattr(quantize, "quantize_int8", refuse)
    out = tmp_path / "o"
    seen = _watch(monkeypatch, out)
    code, err = _export(capsys, tmp_path, out, "--quantize", "int8", "--recipe", QUICK)
    assert code == 0, err
    assert seen == [("timing", False, False), ("writing", False, False)], seen
    m = json.loads((out / "manifest.json").read_text())
    assert m["int8"] == {"file": None, "error": "RuntimeError: cannot quantise"}
    assert not (out / "model.int8.onnx").exists()


def test_remeasuring_an_export_still_writes_the_manifest_before_replacing_its_int8_model(tmp_path, monkeypatch):
    """measure_export of an export folder (a library caller, a run's member): the earlier model and its entry stay
    together until the manifest is replaced (quantize.py's module docstring)."""
    import torch

    cs = load_compiled(str(DIGITS))
    out = tmp_path / "net"
    export_architecture(cs, [0] * cs.num_decisions, out, space_path=str(DIGITS))
    batches = [(torch.randn(8, 1, 8, 8), torch.zeros(8, dtype=torch.long))]
    quantize.measure_export(out, quantize="int8", calibration=iter(batches))
    seen = _watch(monkeypatch, out)
    (out / "model.int8.onnx").write_bytes(b"earlier")
    quantize.measure_export(out, quantize="int8", calibration=iter(batches))
    assert [s for s in seen if s[0] == "writing"] == [("writing", True, True)], seen
    assert (out / "model.int8.onnx").read_bytes() != b"earlier"
