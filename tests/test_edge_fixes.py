"""Edge deployment fixes: latency tables (checks, calibration with elastic depth, the profile summary, elastic
widths), re-exporting a latency-searched network, the ONNX test accuracies under torchrun, the weights file's mode."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import automl.profile as profile
from automl.cli import build_parser, main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import export_architecture
from automl.export._export import save_weights
from automl.export.quantize import onnx_accuracy
from automl.nn.measure import count_params
from automl.pipeline import final_stages
from automl.pipeline.setup import load_spaces
from automl.profile import apply_cost_table, profile_space, read_cost_table
from automl.recipe import DataConfig, load_recipe
from automl.train.data import build_data

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
QUICK = ROOT / "recipes" / "quickstart.yaml"

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

# the elastic-depth chain of docs/space-language.md, small: a layer beyond a stage's depth is not built
ELASTIC = """space elastic
input 3 x 16 x 16
classes 10
choices mb = ir_k3_e3, ir_k5_e3, ir_k3_e6
network
  stem width 16
  stage s1 width 24 stride 2 depth 1, 2, 3 choose mb
  stage s2 width 40 stride 2 depth 2, 3 se 0.25 choose mb
  head width 256
end
"""


def _fake_time(module, shapes, threads, repeat, warmup, clock="wall"):
    """A deterministic 'latency': 1 ms per call plus 1 µs per parameter, so that a whole network takes exactly
    the sum of its pieces (and one per-call overhead)."""
    return 1.0 + 1e-3 * count_params(module)


@pytest.fixture
def fake_timing(monkeypatch):
    monkeypatch.setattr(profile, "time_module", _fake_time)


@pytest.fixture
def elastic(tmp_path):
    path = tmp_path / "elastic.space"
    path.write_text(ELASTIC)
    return str(path)


def _digits_table(tmp_path) -> Path:
    """A latency table of digits (fake timings: no onnxruntime), written to tmp_path/lat.json."""
    table = profile_space(load_compiled(DIGITS), repeat=1, calibrate=0, progress=False)
    path = tmp_path / "lat.json"
    path.write_text(json.dumps(table))
    return path


def _arch(tmp_path) -> str:
    cs = load_compiled(DIGITS)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": [d.choices[-1] for d in cs.decisions]}))
    return str(path)


# ---- F3: calibration counts only the layers the depth keeps -----------------------------------------------

def test_calibration_counts_only_the_layers_an_elastic_depth_keeps(elastic, fake_timing):
    # every whole network takes exactly the sum of its own pieces: the fit is exact (scale 1, no per-piece cost)
    # only when a layer beyond the chosen depth is left out of the sums, as the network leaves it out
    table = profile_space(load_compiled(elastic), repeat=1, calibrate=8, progress=False)
    cal = table["calibration"]
    assert cal["mape_before_pct"] == pytest.approx(0.0, abs=1e-9)
    assert cal["scale"] == pytest.approx(1.0) and cal["per_piece_ms"] == pytest.approx(0.0, abs=1e-9)


# ---- F6: the profile's summary line ----------------------------------------------------------------------

def test_profile_summary_gives_the_tables_real_fastest_and_slowest(elastic, fake_timing, tmp_path, capsys):
    out = tmp_path / "el.json"
    assert main(["space", "profile", elastic, "--repeat", "1", "--calibrate", "0", "--out", str(out)]) == 0
    line = capsys.readouterr().out
    cs = load_compiled(elastic)
    apply_cost_table(cs, read_cost_table(out, cs))
    ct = cs.cost_table
    low, high = ct.min_total("latency"), ct.max_total("latency")
    # the cheapest network: the shallowest depths, whose left-out layers cost nothing
    assert low < json.loads(out.read_text())["fixed"] + sum(
        min(d["choices"].values()) for d in json.loads(out.read_text())["decisions"])
    assert f"fastest {low:.3g} ms" in line and f"slowest {high:.3g} ms" in line


# ---- F4, F5, F8: the table's shape ------------------------------------------------------------------------

@pytest.mark.parametrize("edit,message", [
    (lambda t: t.update(decisions=5), '"decisions" must be a list'),
    (lambda t: t.update(decisions={"s1_1": {}}), '"decisions" must be a list'),
    (lambda t: t.update(input_size=5), '"input_size" must be a list'),
    (lambda t: t.pop("fixed"), 'no "fixed"'),
    (lambda t: t.update(unit="s"), '"unit" is \'s\''),
    (lambda t: t.pop("unit"), '"unit" is None'),
])
def test_a_malformed_table_is_one_message_naming_the_key(fake_timing, tmp_path, capsys, edit, message):
    t = json.loads(_digits_table(tmp_path).read_text())
    edit(t)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(t))
    assert main(["space", "cost", DIGITS, "--arch", _arch(tmp_path), "--cost-table", str(bad)]) == 2
    err = capsys.readouterr().err
    assert message in err and "bad.json" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and "internal error" not in err
    if "unit" in message:
        assert '"ms"' in err  # what is accepted


def test_a_well_formed_table_still_reads(fake_timing, tmp_path, capsys):
    assert main(["space", "cost", DIGITS, "--arch", _arch(tmp_path), "--cost-table",
                 str(_digits_table(tmp_path))]) == 0
    assert json.loads(capsys.readouterr().out)["latency"] > 0


# ---- F7: a table checked against the retrained space -------------------------------------------------------

def test_a_table_checked_against_the_retrained_space_says_so(fake_timing, tmp_path):
    table = _digits_table(tmp_path)
    text = QUICK.read_text().replace("../spaces/digits.space", DIGITS)
    text = text.replace("  cost: params", f"  cost: latency\n  cost_table: {table}")
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as e:
        load_spaces(load_recipe(path, ["retrain.space_args.width=2"]))
    msg = str(e.value)
    assert "retrain.space_args" in msg and "--set width=2" in msg and "lat.json" in msg
    assert "other --set values {}" not in msg
    load_spaces(load_recipe(path, []))  # the table fits the search space as it is


# ---- F9: elastic widths and resolution ---------------------------------------------------------------------

WIDE = """space wide
input 3 x 16 x 16
resolution 8, 16
classes 10
choices mb = ir_k3_e3, ir_k5_e3
network
  stem width 8
  stage s1 width 16, 24 stride 2 choose mb
  stage s2 width 32 stride 2 choose mb
  head width 64
end
"""


def test_the_elastic_width_refusal_says_what_to_edit(tmp_path, capsys):
    path = tmp_path / "wide.space"
    path.write_text(WIDE)
    assert main(["space", "profile", str(path), "--out", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "t.json").exists()
    widths = re.search(r"elastic widths \(([^)]*)\)", err)
    assert widths and widths.group(1) == "s1_width"  # resolution is not a width
    assert "resolution" in err and "wide.space" in err
    assert "stage s1" in err and "width A, B" in err  # what to edit in the file
    assert "`--set`" not in err  # no --set turns a width decision into one width


def test_a_resolution_alone_is_refused_as_a_resolution(tmp_path, capsys):
    path = tmp_path / "res.space"
    path.write_text(WIDE.replace("width 16, 24", "width 16"))
    assert main(["space", "profile", str(path), "--out", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert "elastic resolution" in err and "elastic widths" not in err and "`resolution`" in err


# ---- F2: re-exporting a latency-searched network -----------------------------------------------------------

def test_reexport_keeps_a_table_metric_and_its_cost(fake_timing, tmp_path):
    cs = load_compiled(DIGITS)
    apply_cost_table(cs, read_cost_table(_digits_table(tmp_path), cs))
    arch = cs.encode([d.choices[-1] for d in cs.decisions])
    first = tmp_path / "first"
    export_architecture(cs, arch, first, cost_metric="latency", epsilon=0.0, onnx=False)
    before = json.loads((first / "manifest.json").read_text())
    assert before["cost_metric"] == "latency" and before["cost"]["latency"] > 0
    again = tmp_path / "again"
    assert main(["export", DIGITS, "--arch", str(first / "manifest.json"), "--weights",
                 str(first / "model.safetensors"), "--out", str(again)]) == 0
    after = json.loads((again / "manifest.json").read_text())
    assert after["cost_metric"] == "latency" and after["epsilon"] == 0.0
    assert after["cost"] == before["cost"]  # params, macs, layers recomputed (the same), latency kept


def test_reexport_of_a_params_search_is_unchanged(tmp_path):
    cs = load_compiled(DIGITS)
    arch = cs.encode([d.choices[0] for d in cs.decisions])
    first = tmp_path / "first"
    export_architecture(cs, arch, first, cost_metric="macs", epsilon=1.0, onnx=False)
    again = tmp_path / "again"
    assert main(["export", DIGITS, "--arch", str(first / "manifest.json"), "--weights",
                 str(first / "model.safetensors"), "--out", str(again)]) == 0
    after = json.loads((again / "manifest.json").read_text())
    assert after["cost_metric"] == "macs" and set(after["cost"]) == {"params", "macs", "layers"}


# ---- F12: --weights' help ---------------------------------------------------------------------------------

def test_export_help_says_weights_takes_an_exports_own_file():
    export = build_parser().verbs["automl export"]
    weights = next(a for a in export._actions if "--weights" in a.option_strings)
    assert "model.safetensors" in weights.help and "supernet" in weights.help


# ---- finding 4 of review I: the weights file's mode --------------------------------------------------------

def test_the_weights_file_gets_the_mode_a_plain_open_gives(tmp_path):
    old = os.umask(0o022)
    try:
        entry = save_weights(torch.nn.Linear(3, 2), tmp_path)
        plain = tmp_path / "plain"
        plain.write_bytes(b"")
    finally:
        os.umask(old)
    assert entry["file"] == "model.safetensors"
    mode = stat.S_IMODE((tmp_path / "model.safetensors").stat().st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode) == 0o644
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


# ---- F1: the ONNX test accuracies cover the whole test set under torchrun -----------------------------------

def test_rank_0s_export_measures_onnx_accuracy_on_the_whole_test_set(tmp_path, monkeypatch):
    recipe = load_recipe(QUICK, ["export.quantize=int8", "device=cpu"])
    spaces = load_spaces(recipe)
    data = build_data(DataConfig(dataset="digits"), base_dir=".", seed=0, device="cpu", rank=0, world_size=2)
    whole = build_data(DataConfig(dataset="digits"), base_dir=".", seed=0, device="cpu")
    seen = []
    real = final_stages.measure_export

    def spy(folder, **kw):
        seen.append(sum(len(y) for _, y in kw["test"]()))
        return real(folder, **kw)

    monkeypatch.setattr(final_stages, "measure_export", spy)
    cs = spaces.retrain
    arch = cs.encode([d.choices[-1] for d in cs.decisions])
    torch.manual_seed(0)
    model = cs.build_standalone(arch)
    ctx = SimpleNamespace(spaces=spaces, data=data, reporter=SimpleNamespace(info=lambda text: None))
    edge = final_stages.Exporter(recipe, tmp_path)(ctx, "eps-0", model, arch, 0.0, {"source": "retrained"})
    assert seen == [len(whole.test.indices)] == [360]  # not rank 0's 180
    onnx_file = tmp_path / edge["onnx"]
    assert edge["int8"]["fp32_onnx_test_accuracy"] == onnx_accuracy(onnx_file, whole.test.epoch(0))
    assert edge["int8"]["test_accuracy"] == onnx_accuracy(onnx_file.with_name("model.int8.onnx"),
                                                          whole.test.epoch(0))


@pytest.mark.heavy
def test_torchrun_int8_accuracies_cover_the_whole_test_set(tmp_path, free_port):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           "-m", "automl", "run", str(QUICK), "data.limit_train=512", "data.batch_size=32",
           "data.theta_batch_size=32", "search.weight_epochs=1", "search.theta_epochs=1", "search.budgets=[null]",
           "search.supernets=1", "retrain.epochs=3", "export.onnx=true", "export.quantize=int8", "device=cpu",
           "threads=1", "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    whole = build_data(DataConfig(dataset="digits"), base_dir=".", seed=0, device="cpu")
    res = json.loads((out / "results.json").read_text())
    assert res["world_size"] == 2
    for a in res["architectures"]:
        assert a["test_accuracy"] > 0.5  # a trained network: rank 0's half and the whole set score differently
        onnx_file = out / a["onnx"]
        assert a["int8"]["fp32_onnx_test_accuracy"] == onnx_accuracy(onnx_file, whole.test.epoch(0))
        assert a["int8"]["test_accuracy"] == onnx_accuracy(onnx_file.with_name("model.int8.onnx"),
                                                           whole.test.epoch(0))
