"""Review CW: what an export tells timm's data tooling, the input normalisation `automl export` records from a run's
checkpoint, and the opsets the int8 model imports; on a tiny real run."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import timm.data
import torch
from PIL import Image

import automl.export.quantize as quantize
from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import export_architecture, load_model
from automl.pipeline import Run
from automl.recipe import load_recipe
from automl.train.data import build_data

from test_review_ce import QUICK, TINY

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
ENAS = str(ROOT / "spaces" / "enas_micro.space")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny digits run with one member, exported with ONNX."""
    out = tmp_path_factory.mktemp("cw") / "run"
    overrides = [o for o in TINY if o != "export.onnx=false"] + ["search.epsilons=null", "search.budgets=[null]"]
    Run(load_recipe(QUICK, overrides), out, resume=False, tty=False).execute()
    return out


@pytest.fixture(scope="module")
def data():
    r = load_recipe(QUICK)
    return build_data(r.data, base_dir=r.base_dir, seed=0, device="cpu")


def _member(run: Path) -> Path:
    (folder,) = (run / "export").iterdir()
    return folder


def test_timm_data_tooling_reads_the_exports_input_size_and_normalisation(run):
    folder = _member(run)
    m = json.loads((folder / "manifest.json").read_text())
    model = load_model(folder)
    cfg = timm.data.resolve_model_data_config(model)
    assert cfg["input_size"] == tuple(m["input_shape"]) == (1, 8, 8)  # not timm's (3, 224, 224)
    assert cfg["mean"] == pytest.approx(m["normalize"]["mean"]) and cfg["std"] == pytest.approx(m["normalize"]["std"])
    assert model.pretrained_cfg["num_classes"] == m["num_classes"] and model.default_cfg is model.pretrained_cfg
    # a grey 20x20 picture becomes one normalised 8x8 image that the model takes
    x = timm.data.create_transform(**cfg)(Image.new("L", (20, 20), 128))
    assert x.shape == (1, 8, 8)
    want = (128 / 255 - m["normalize"]["mean"][0]) / m["normalize"]["std"][0]
    assert torch.allclose(x, torch.full_like(x, want), atol=1e-5)
    assert model(x[None]).shape == (1, m["num_classes"])


def test_a_cell_export_without_normalisation_gives_its_input_size(tmp_path):
    cs = load_compiled(ENAS)
    export_architecture(cs, [0] * cs.num_decisions, tmp_path / "net", onnx=False)
    cfg = timm.data.resolve_model_data_config(load_model(tmp_path / "net"))
    assert cfg["input_size"] == tuple(cs.input_shape) and cfg["crop_pct"] == 1.0


@pytest.mark.parametrize("normalize, expect", [
    ({"mean": [0.1, 0.2], "std": [0.3, 0.4]}, "one of each per input channel"),
    ({"mean": [0.1], "std": [0.0]}, "every std > 0"),
])
def test_a_manifests_bad_normalize_is_named_when_the_model_is_loaded(run, tmp_path, normalize, expect):
    folder = tmp_path / "net"
    shutil.copytree(_member(run), folder)
    m = json.loads((folder / "manifest.json").read_text())
    m["normalize"] = normalize
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match=expect) as e:
        load_model(folder)
    assert '"normalize"' in str(e.value) and "manifest.json" in str(e.value)


def test_export_from_a_runs_checkpoint_records_the_runs_normalisation(run, tmp_path, capsys):
    member = json.loads((_member(run) / "manifest.json").read_text())
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"choices": member["choices"]}))
    ckpt = sorted((run / "checkpoints").glob("ckpt-*.pt"))[-1]
    out = tmp_path / "out"
    assert main(["export", DIGITS, "--arch", str(arch), "--weights", str(ckpt), "--out", str(out)]) == 0
    assert json.loads((out / "manifest.json").read_text())["normalize"] == member["normalize"]
    assert "normalisation" not in capsys.readouterr().err


def test_a_checkpoint_that_records_no_data_set_says_so_in_one_line(run, tmp_path, capsys):
    member = json.loads((_member(run) / "manifest.json").read_text())
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"choices": member["choices"]}))
    obj = torch.load(sorted((run / "checkpoints").glob("ckpt-*.pt"))[-1], map_location="cpu", weights_only=False)
    ckpt = tmp_path / "bare.pt"
    torch.save({"supernet": obj["supernet"]}, ckpt)
    out = tmp_path / "out"
    assert main(["export", DIGITS, "--arch", str(arch), "--weights", str(ckpt), "--out", str(out)]) == 0
    assert "normalize" not in json.loads((out / "manifest.json").read_text())
    err = [ln for ln in capsys.readouterr().err.splitlines() if "normalisation" in ln]
    assert len(err) == 1 and "--recipe" in err[0] and str(ckpt) in err[0]


def test_the_int8_model_imports_only_the_opsets_its_nodes_use(run, tmp_path, data, monkeypatch):
    folder = tmp_path / "net"
    shutil.copytree(_member(run), folder)
    m = quantize.measure_export(folder, quantize="int8", calibration=data.full.without_cutout().epoch(0),
                                test=lambda: data.test.epoch(0))
    model = onnx.load(str(folder / quantize.INT8_NAME))
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain for o in model.opset_import} == {""} | {n.domain for n in model.graph.node} == {""}
    # the same int8 network as onnxruntime's quantiser writes it: its outputs and recorded accuracy are unchanged
    monkeypatch.setattr(quantize, "_drop_unused_opsets", lambda path: None)
    full = tmp_path / "full.onnx"
    calibration = quantize.calibration_batches(data.full.without_cutout().epoch(0))
    quantize.quantize_int8(folder / "model.onnx", full, calibration)
    assert len(onnx.load(str(full)).opset_import) > 1  # the premise: onnxruntime declares unused domains
    x = np.concatenate([x.numpy() for x, _ in data.test.epoch(0)])
    ours, theirs = (quantize.ort_session(str(p), 1).run(None, {"input": x})[0] for p in (folder / quantize.INT8_NAME,
                                                                                          full))
    assert np.array_equal(ours, theirs)
    assert m["int8"]["test_accuracy"] == quantize.onnx_accuracy(full, data.test.epoch(0))
