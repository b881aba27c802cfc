"""Review CL: an ONNX export that fails for one member of `automl run` is recorded, and the run goes on."""

import json
import logging
from pathlib import Path

import pytest
import torch

import automl.export.onnx as onnx_mod
from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import export_architecture, load_model
from automl.export.onnx import OnnxParityError
from automl.export.quantize import measure_export

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
# two members (ε 0 and 0.5), one epoch of everything, ONNX on: the smallest run that exports two ONNX models
TINY = ["data.limit_train=96", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.weight_epochs=1", "search.theta_epochs=1", "search.epsilons=[0,0.5]", "search.lam=2",
        "search.supernets=1", "retrain.epochs=1", "export.onnx=true", "search.log_every=2"]


def _fail_on_call(monkeypatch, n: int, exc: Exception, where: str = "export"):
    """Make the ``n``-th ONNX export (1-based) fail with ``exc``: torch's exporter raising it (``where`` export)
    or the parity check (``parity``); returns the list of calls made."""
    calls = []
    real_export, real_parity = onnx_mod._torch_export, onnx_mod.onnx_parity

    def torch_export(model, example, path, opset):
        calls.append(path)
        if where == "export" and len(calls) == n:
            raise exc
        return real_export(model, example, path, opset)

    def parity(path, model, inputs):
        if where == "parity" and len(calls) == n:
            raise exc
        return real_parity(path, model, inputs)
    monkeypatch.setattr(onnx_mod, "_torch_export", torch_export)
    monkeypatch.setattr(onnx_mod, "onnx_parity", parity)
    return calls


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


@pytest.mark.parametrize("where, exc, shown", [
    ("export", RuntimeError("ONNX export failed: Couldn't export operator aten::weird_op"), "RuntimeError: ONNX export "
     "failed: Couldn't export operator aten::weird_op"),
    ("parity", OnnxParityError("ONNX export of EfficientNet disagrees with torch"), "OnnxParityError: ONNX export "
     "of EfficientNet disagrees with torch"),
])
def test_a_members_failed_onnx_export_is_recorded_and_the_run_finishes(tmp_path, monkeypatch, caplog, where, exc,
                                                                       shown):
    # was: the exception ended the run (exit 1), and every --resume raised it again: no results.json ever
    out = tmp_path / "run"
    calls = _fail_on_call(monkeypatch, 1, exc, where)
    with caplog.at_level(logging.WARNING):
        assert main(["run", QUICK, *TINY, "--out", str(out)]) == 0
    assert len(calls) == 2
    failed, other = out / "export" / "eps-0", out / "export" / "eps-0.5"
    m = _manifest(failed)
    assert m["onnx"] == {"file": None, "error": shown}
    assert not (failed / "model.onnx").exists() and (failed / m["weights"]["file"]).is_file()
    assert "latency" not in m  # nothing was measured
    assert (other / "model.onnx").is_file() and _manifest(other)["onnx"]["file"] == "model.onnx"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "ONNX" in r.getMessage()]
    assert len(warnings) == 1 and str(failed) in warnings[0] and shown in warnings[0], warnings
    res = json.loads((out / "results.json").read_text())["architectures"]
    assert res[0]["onnx"] is None and res[0]["latency_ms"] is None
    assert res[1]["onnx"] == "export/eps-0.5/model.onnx" and res[1]["latency_ms"] > 0
    assert (out / "report.md").is_file()

    # a finished run resumed: the failure is the member's record, not exported (and failing) again
    calls.clear()
    assert main(["run", QUICK, *TINY, "--out", str(out), "--resume"]) == 0
    assert calls == [] and _manifest(failed)["onnx"] == {"file": None, "error": shown}


def test_a_failed_onnx_export_with_int8_says_the_member_was_not_quantised(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _fail_on_call(monkeypatch, 2, RuntimeError("exporter bug"))
    assert main(["run", QUICK, *TINY, "export.quantize=int8", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())["architectures"]
    assert res[1]["int8"] == {"error": "not quantised: the ONNX export failed"} and res[1]["latency_ms"] is None
    assert res[0]["int8"] is not None and not res[0]["int8"].get("error") and res[0]["latency_ms"] > 0
    assert (out / "export" / "eps-0" / "model.int8.onnx").is_file()
    assert not (out / "export" / "eps-0.5" / "model.int8.onnx").exists()


@pytest.fixture(scope="module")
def digits():
    return load_compiled(str(ROOT / "spaces" / "digits.space"))


def test_a_failure_replaces_an_earlier_exports_onnx_model(tmp_path, monkeypatch, digits):
    arch = torch.zeros(len(digits.num_choices), dtype=torch.long)
    export_architecture(digits, arch, tmp_path)
    assert (tmp_path / "model.onnx").is_file()
    _fail_on_call(monkeypatch, 1, RuntimeError("exporter bug"))
    m = export_architecture(digits, arch, tmp_path, onnx_failure="record")
    assert m["onnx"] == {"file": None, "error": "RuntimeError: exporter bug"} == _manifest(tmp_path)["onnx"]
    assert not (tmp_path / "model.onnx").exists()  # the earlier network's model does not describe this export


def test_without_record_a_failure_still_raises(tmp_path, monkeypatch, digits):
    arch = torch.zeros(len(digits.num_choices), dtype=torch.long)
    _fail_on_call(monkeypatch, 1, OnnxParityError("off"), "parity")
    with pytest.raises(OnnxParityError):
        export_architecture(digits, arch, tmp_path)
    assert not (tmp_path / "manifest.json").exists()


@pytest.mark.parametrize("exc", [UserError("opset 99: torch's ONNX exporter does not write it"),
                                 OSError(28, "No space left on device")])
def test_the_users_and_the_disks_failures_are_not_recorded(tmp_path, monkeypatch, digits, exc):
    # an opset this torch cannot write stays the user's error; a full disk stays a write error (the run says so)
    arch = torch.zeros(len(digits.num_choices), dtype=torch.long)
    _fail_on_call(monkeypatch, 1, exc)
    with pytest.raises(type(exc)):
        export_architecture(digits, arch, tmp_path, onnx_failure="record")
    assert not (tmp_path / "manifest.json").exists()


def test_onnx_failure_takes_raise_or_record(tmp_path, digits):
    with pytest.raises(ValueError, match="onnx_failure"):
        export_architecture(digits, torch.zeros(len(digits.num_choices), dtype=torch.long), tmp_path,
                            onnx_failure="ignore")


def test_the_run_reads_the_opset_error_as_the_users(tmp_path, monkeypatch):
    # an opset the installed torch refuses (where newest_opset could not read torch's limit) ends the run as a
    # user error, exit 2, not as a member's recorded failure
    def refuse(*a, **k):
        raise RuntimeError("Unsupported onnx_opset_version: 17")
    monkeypatch.setattr(onnx_mod.torch.onnx, "export", refuse)
    assert main(["run", QUICK, *TINY, "--out", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run" / "results.json").exists()


def test_results_and_report_show_the_failure_and_the_export_loads(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _fail_on_call(monkeypatch, 1, RuntimeError("exporter bug"))
    assert main(["run", QUICK, *TINY, "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())["architectures"]
    assert res[0]["onnx_error"] == "RuntimeError: exporter bug" and res[1]["onnx_error"] is None
    report = (out / "report.md").read_text()
    assert "ONNX export failed for ε=0 (its weights and manifest.json are exported, no model.onnx, no latency): " \
           "RuntimeError: exporter bug" in report
    assert report.count("ONNX export failed") == 1
    assert "failed" in capsys.readouterr().out  # the summary table's onnx column
    folder = out / "export" / "eps-0"
    assert isinstance(load_model(folder), torch.nn.Module)
    with pytest.raises(UserError, match="its ONNX export failed \\(RuntimeError: exporter bug\\); export the network "
                                        "again: automl export"):
        measure_export(folder)


def test_automl_export_says_the_onnx_export_failed(tmp_path, monkeypatch, capsys):
    arch = tmp_path / "arch.json"
    c = load_compiled(str(ROOT / "spaces" / "digits.space"))
    arch.write_text(json.dumps({"choices": c.decode(torch.zeros(len(c.num_choices), dtype=torch.long))}))
    _fail_on_call(monkeypatch, 1, RuntimeError("exporter bug"))
    assert main(["export", str(ROOT / "spaces" / "digits.space"), "--arch", str(arch), "--out",
                 str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "error: the ONNX export failed: RuntimeError: exporter bug; the network's weights" in err
    assert "Traceback" not in err and (tmp_path / "x" / "model.safetensors").is_file()
