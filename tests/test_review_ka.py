"""Review KA: an export's manifest writes the costs of metrics that count (params, MACs, a space file's metric of
whole numbers) as ints, as ``automl space cost`` does (one rule, :func:`automl.export.manifest.whole_metric`), in
``cost`` and ``search_cost``; a latency and a metric of real costs stay floats, and a manifest an older automl
wrote with ``"params": 32290.0`` is still read and exported again."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.export import export_architecture, read_manifest
from automl.export.manifest import check_recorded

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _types(costs: dict) -> dict:
    return {k: type(v) for k, v in costs.items()}


def _export(cs, arch, out: Path, **kw) -> dict:
    export_architecture(cs, arch, out, onnx=False, **kw)
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture
def work(tmp_path, monkeypatch):
    """``tmp_path`` with ``sp/digits.space``; the working folder is ``tmp_path``."""
    (tmp_path / "sp").mkdir()
    shutil.copy(DIGITS, tmp_path / "sp" / "digits.space")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_manifest_cost_is_what_space_cost_prints(work, capsys):
    cs = load_compiled("sp/digits.space")
    choices = [d.choices[1] for d in cs.decisions]
    (work / "arch.json").write_text(json.dumps({"choices": choices}))
    assert main(["space", "cost", "sp/digits.space", "--arch", "arch.json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    m = _export(cs, cs.encode(choices), work / "exp")
    assert m["cost"] == printed and _types(m["cost"]) == _types(printed) == dict.fromkeys(printed, int), m["cost"]
    text = (work / "exp" / "manifest.json").read_text()
    assert f'"params": {m["params"]},' in text and ".0," not in text.split('"cost"')[1].split("}")[0], text


def test_search_cost_counts_are_ints_and_a_latency_stays_a_float(work):
    cs = load_compiled("sp/digits.space")
    arch = torch.zeros(cs.num_decisions, dtype=torch.long)
    search = {"params": 30000.0, "macs": 160000.0, "layers": 8.0, "latency": 2.0, "gpu_ms": 3.0}
    m = _export(cs, arch, work / "exp", cost={"latency": 1.0, "gpu_ms": 4.0}, cost_metric="latency",
                search_cost=search)
    # a latency (and a metric the space's table does not hold) is a real number, whole or not
    assert _types(m["cost"]) == {"params": int, "macs": int, "layers": int, "latency": float, "gpu_ms": float}
    assert m["cost"]["latency"] == 1.0 and m["cost"]["params"] == cs.cost_table.total(arch, "params")
    assert m["search_cost"] == search
    assert _types(m["search_cost"]) == {"params": int, "macs": int, "layers": int, "latency": float,
                                        "gpu_ms": float}, m["search_cost"]


def test_with_se_the_counted_params_and_macs_are_ints(work):
    cs = load_compiled("sp/digits.space")
    arch = torch.ones(cs.num_decisions, dtype=torch.long)
    m = _export(cs, arch, work / "exp", se=0.25)
    assert m["cost"]["params"] == m["params"] > m["search_cost"]["params"]
    assert _types(m["cost"]) == _types(m["search_cost"]) == {"params": int, "macs": int, "layers": int}


def test_a_metric_of_real_costs_stays_a_float_where_a_total_is_whole(work):
    text = DIGITS.read_text().replace("  default = 1\n", "  default = 0.5\n")
    assert "default = 0.5" in text
    (work / "sp" / "half.space").write_text(text)
    cs = load_compiled("sp/half.space")
    ct = cs.cost_table
    # an architecture whose layers total is whole (an even number of layers at 0.5): a float all the same
    arch = next(a for a in (torch.tensor(c) for c in itertools.product(*(range(len(d.choices)) for d in cs.decisions)))
                if float(ct.total(a, "layers")).is_integer())
    m = _export(cs, arch, work / "exp", search_cost={m: ct.total(arch, m) for m in ct.metrics})
    for costs in (m["cost"], m["search_cost"]):
        assert _types(costs) == {"params": int, "macs": int, "layers": float}, costs
        assert costs["layers"] == ct.total(arch, "layers")


def test_an_older_manifest_with_float_costs_is_still_read(work, capsys):
    cs = load_compiled("sp/digits.space")
    arch = torch.ones(cs.num_decisions, dtype=torch.long)
    m = _export(cs, arch, work / "old", se=0.25)
    # as an earlier automl wrote it: every cost a float
    old = {**m, "cost": {k: float(v) for k, v in m["cost"].items()},
           "search_cost": {k: float(v) for k, v in m["search_cost"].items()}}
    (work / "old" / "manifest.json").write_text(json.dumps(old, indent=1))
    assert read_manifest(work / "old")["search_cost"] == m["search_cost"]
    check_recorded(old, "old/manifest.json")
    code = main(["export", "sp/digits.space", "--arch", "old/manifest.json", "--weights", "old/model.safetensors",
                 "--out", "new", "--se", "0.25"])
    _, err = capsys.readouterr()
    assert code == 0, err
    new = read_manifest(work / "new")
    # the same record, its counts now ints
    assert new["cost"] == old["cost"] and new["search_cost"] == old["search_cost"]
    assert _types(new["search_cost"]) == {"params": int, "macs": int, "layers": int}, new["search_cost"]
