"""What an export's manifest.json records: kept when the network is exported again from the manifest
(`automl export --arch DIR/manifest.json --weights DIR/model.safetensors`), and a run's `cost`/`search_cost`."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.export import export_architecture

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
NORMALIZE = {"mean": [0.25], "std": [0.375]}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err  # one message, no traceback
    return err


@pytest.fixture
def run_export(tmp_path):
    """An export as `automl run` writes it: a trained model with its normalisation, ε and provenance."""
    cs = load_compiled(DIGITS)
    arch = [d.choices[1] for d in cs.decisions]
    torch.manual_seed(0)
    model = cs.build_standalone(cs.encode(arch)).eval()
    out = tmp_path / "run-export"
    export_architecture(cs, arch, out, model=model, epsilon=0.5, normalize=NORMALIZE, space_path=DIGITS,
                        provenance={"source": "retrained"})
    return out


def test_reexport_keeps_normalize_epsilon_and_provenance(run_export, tmp_path, capsys):
    before = manifest(run_export)
    again = tmp_path / "again"
    assert main(["export", DIGITS, "--arch", str(run_export / "manifest.json"), "--weights",
                 str(run_export / "model.safetensors"), "--out", str(again), "--opset", "18"]) == 0
    m = manifest(again)
    assert m["normalize"] == NORMALIZE and m["epsilon"] == 0.5
    assert m["weights"]["source"] == "retrained" and m["onnx"]["opset"] == 18
    assert m["choices"] == before["choices"] and m["params"] == before["params"]
    # into the export's own folder (adding --quantize later): the run's record stays
    assert main(["export", DIGITS, "--arch", str(run_export / "manifest.json"), "--weights",
                 str(run_export / "model.safetensors"), "--out", str(run_export)]) == 0
    m = manifest(run_export)
    assert m["normalize"] == NORMALIZE and m["epsilon"] == 0.5 and m["weights"]["source"] == "retrained"


def test_reexport_with_other_weights_records_them(run_export, tmp_path):
    other = tmp_path / "other.safetensors"
    other.write_bytes((run_export / "model.safetensors").read_bytes())
    assert main(["export", DIGITS, "--arch", str(run_export / "manifest.json"), "--weights", str(other),
                 "--out", str(tmp_path / "o")]) == 0
    m = manifest(tmp_path / "o")
    assert m["weights"]["source"] == "standalone" and m["normalize"] == NORMALIZE  # the input contract stays


def test_reexport_applies_the_manifests_se(tmp_path, capsys):
    cs = load_compiled(DIGITS)
    arch = tmp_path / "a.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    se = tmp_path / "se"
    assert main(["export", DIGITS, "--arch", str(arch), "--out", str(se), "--se", "0.25"]) == 0
    flags = ["--arch", str(se / "manifest.json"), "--weights", str(se / "model.safetensors")]
    assert main(["export", DIGITS, *flags, "--out", str(tmp_path / "re")]) == 0
    assert manifest(tmp_path / "re")["se"] == 0.25
    assert main(["export", DIGITS, *flags, "--out", str(tmp_path / "same"), "--se", "0.25"]) == 0
    capsys.readouterr()
    assert main(["export", DIGITS, *flags, "--out", str(tmp_path / "bad"), "--se", "0.5"]) == 2
    err = _err(capsys)
    assert "--se 0.5" in err and "0.25" in err and "manifest.json" in err
    assert main(["export", DIGITS, *flags, "--out", str(tmp_path / "bad"), "--se", "0"]) == 2  # 0 is a value too
    assert "--se 0 contradicts" in _err(capsys)
    assert not (tmp_path / "bad").exists()


def test_reexport_applies_the_manifests_space_args(tmp_path, capsys):
    cs = load_compiled(DIGITS, {"size": "16", "width": "2"})
    arch = tmp_path / "a.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    first = tmp_path / "first"
    assert main(["export", DIGITS, "--set", "size=16", "--set", "width=2", "--arch", str(arch),
                 "--out", str(first)]) == 0
    flags = ["--arch", str(first / "manifest.json"), "--weights", str(first / "model.safetensors")]
    assert main(["export", DIGITS, *flags, "--out", str(tmp_path / "re")]) == 0
    m = manifest(tmp_path / "re")
    assert m["input_shape"] == [1, 16, 16] and m["space_args"] == {"size": "16", "width": "2"}
    # the same values again, or a parameter the manifest leaves at the space's default, set to that default
    assert main(["export", DIGITS, *flags, "--set", "size=16", "--set", "head=128", "--out", str(tmp_path / "s")]) == 0
    capsys.readouterr()
    assert main(["export", DIGITS, *flags, "--set", "size=8", "--out", str(tmp_path / "bad")]) == 2
    err = _err(capsys)
    assert "--set size=8" in err and "size=16" in err and "manifest.json" in err
    assert main(["export", DIGITS, *flags, "--set", "head=64", "--out", str(tmp_path / "bad")]) == 2
    err = _err(capsys)
    assert "--set head=64" in err and "128" in err
    assert not (tmp_path / "bad").exists()
    # automl space cost prices the manifest's network (its space_args), not the space's defaults
    assert main(["space", "cost", DIGITS, "--arch", str(first / "manifest.json")]) == 0
    cost = json.loads(capsys.readouterr().out)
    assert cost["params"] == m["params"] and cost["macs"] == m["cost"]["macs"]
    assert main(["space", "cost", DIGITS, "--arch", str(first / "manifest.json"), "--set", "size=8"]) == 2
    assert "--set size=8" in _err(capsys)


def test_recipe_records_its_normalisation(tmp_path, capsys):
    cs = load_compiled(DIGITS)
    arch = tmp_path / "a.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    from automl.recipe import load_recipe
    from automl.train.data import build_data

    r = load_recipe(QUICK)
    want = build_data(r.data, base_dir=r.base_dir, seed=r.seed, device="cpu").normalize
    assert main(["export", DIGITS, "--arch", str(arch), "--out", str(tmp_path / "e"), "--recipe", QUICK]) == 0
    m = manifest(tmp_path / "e")
    assert m["normalize"] == {"mean": [float(v) for v in want["mean"]], "std": [float(v) for v in want["std"]]}
    # a manifest's normalisation that the recipe's data contradicts: the int8 calibration would be wrong
    wrong = dict(m, normalize=NORMALIZE)
    (tmp_path / "e" / "manifest.json").write_text(json.dumps(wrong))
    capsys.readouterr()
    assert main(["export", DIGITS, "--arch", str(tmp_path / "e" / "manifest.json"), "--out", str(tmp_path / "x"),
                 "--recipe", QUICK]) == 2
    err = _err(capsys)
    assert "normalize" in err and "quickstart.yaml" in err


def _exporter(tmp_path, overrides):
    from automl.pipeline.final_stages import Exporter
    from automl.pipeline.setup import load_spaces
    from automl.recipe import load_recipe

    recipe = load_recipe(QUICK, ["export.onnx=false", *overrides])
    spaces = load_spaces(recipe)
    said = []
    ctx = SimpleNamespace(spaces=spaces, data=SimpleNamespace(normalize=NORMALIZE, dataset="digits"),
                          reporter=SimpleNamespace(info=said.append))
    arch = spaces.search.encode([d.choices[2] for d in spaces.search.decisions])
    model = spaces.retrain.build_standalone(arch).eval()
    Exporter(recipe, tmp_path)(ctx, "net", model, arch, 0.0, {"source": "retrained"})
    folder = recipe.export_root(tmp_path) / "net"
    assert said == [f"exported digits ({manifest(folder)['params']:,} params) to {folder}"], said
    return manifest(folder), spaces, arch


def test_run_manifest_cost_is_the_exported_networks(tmp_path):
    m, spaces, arch = _exporter(tmp_path, ["retrain.space_args={width: 2.0}"])
    retrain, search = spaces.retrain.cost_table, spaces.search.cost_table
    assert m["cost"] == {k: float(retrain.total(arch, k)) for k in retrain.metrics}
    assert m["cost"]["params"] == m["params"]
    assert m["search_cost"] == {k: float(search.total(arch, k)) for k in search.metrics}
    assert m["search_cost"]["params"] < m["cost"]["params"]
    # one space: no search_cost
    m, spaces, arch = _exporter(tmp_path / "same", [])
    assert "search_cost" not in m and m["cost"]["params"] == m["params"]


def test_reexport_with_weights_that_do_not_fit_their_own_manifest(run_export, tmp_path, capsys):
    from safetensors.torch import save_file

    cs = load_compiled(DIGITS)
    other = cs.build_standalone(cs.encode([d.choices[-1] for d in cs.decisions])).state_dict()
    save_file({k: v.contiguous() for k, v in other.items()}, str(run_export / "model.safetensors"))
    arch = str(run_export / "manifest.json")
    assert main(["export", DIGITS, "--arch", arch, "--weights", str(run_export / "model.safetensors"),
                 "--out", str(tmp_path / "o")]) == 2
    err = _err(capsys)
    assert "do not fit the network" in err and f"give --arch {arch}" not in err
