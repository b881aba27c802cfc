"""Review Y: the export manifest's costs with squeeze-and-excitation, latency tables' batch and threads,
and int8 quantisation of cell spaces' head BatchNorm."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import onnx
import pytest
import torch
from onnx import numpy_helper
from test_edge_fixes import _fake_time  # a latency of exactly 1 ms + 1 µs per parameter

import automl.export.quantize as quantize
import automl.profile as profile
from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.nn.measure import count_macs, count_params

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
NB201 = str(ROOT / "spaces" / "nasbench201.space")
NB201_SMALL = ["--set", "size=8", "--set", "channels=4", "--set", "cells=1"]

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _arch_file(tmp_path: Path, cs, pick: int = 1) -> Path:
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": [d.choices[min(pick, len(d.choices) - 1)] for d in cs.decisions]}))
    return path


# ---- 1. the manifest's cost describes the exported network (with squeeze-and-excitation) -----------------

def test_se_export_manifest_cost_is_the_exported_networks(tmp_path):
    cs = load_compiled(DIGITS)
    arch_file = _arch_file(tmp_path, cs)
    out = tmp_path / "se"
    assert main(["export", DIGITS, "--arch", str(arch_file), "--out", str(out), "--se", "0.25"]) == 0
    m = _manifest(out)
    arch = cs.encode(json.loads(arch_file.read_text())["choices"])
    with torch.device("meta"):
        net = cs.build_standalone(arch, se=0.25)
    assert m["se"] == 0.25 and m["params"] == count_params(net)
    # cost.params and cost.macs are the exported network's, as `params` is
    assert m["cost"]["params"] == m["params"]
    assert m["cost"]["macs"] == count_macs(net, tuple(cs.input_shape))[0]
    # what the search's cost table priced (no squeeze-and-excitation) is kept, under search_cost
    assert m["search_cost"]["params"] == cs.cost_table.total(arch, "params") < m["params"]
    assert m["search_cost"]["macs"] == cs.cost_table.total(arch, "macs")
    # exported again from its manifest: the same record
    again = tmp_path / "again"
    assert main(["export", DIGITS, "--arch", str(out / "manifest.json"), "--weights",
                 str(out / "model.safetensors"), "--out", str(again)]) == 0
    m2 = _manifest(again)
    assert m2["cost"] == m["cost"] and m2["search_cost"] == m["search_cost"]


def test_plain_export_manifest_cost_unchanged(tmp_path):
    cs = load_compiled(DIGITS)
    out = tmp_path / "plain"
    assert main(["export", DIGITS, "--arch", str(_arch_file(tmp_path, cs)), "--out", str(out)]) == 0
    m = _manifest(out)
    arch = cs.encode(m["choices"])
    assert "search_cost" not in m and m["cost"]["params"] == m["params"] == cs.cost_table.total(arch)


# ---- 2. a latency table's batch and threads --------------------------------------------------------------

@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("profile-y") / "digits.latency.json"
    with pytest.MonkeyPatch.context() as mp:  # the fake clock: no real timing
        mp.setattr(profile, "time_module", _fake_time)
        assert main(["space", "profile", DIGITS, "--repeat", "2", "--calibrate", "3", "--out", str(path)]) == 0
    return path


def _edited(table_file: Path, tmp_path: Path, fn) -> Path:
    t = json.loads(table_file.read_text())
    fn(t)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(t))
    return path


@pytest.mark.parametrize("edit,field", [
    (lambda t: t.update(batch="eight"), '"batch"'),
    (lambda t: t.update(batch=0), '"batch"'),
    (lambda t: t.update(batch=True), '"batch"'),
    (lambda t: t["machine"].update(threads=-2), '"machine.threads"'),
    (lambda t: t["machine"].update(threads=2.5), '"machine.threads"'),
    (lambda t: t.update(machine="a laptop"), '"machine"'),
])
def test_a_malformed_batch_or_threads_is_one_clear_message(table_file, tmp_path, capsys, edit, field):
    bad = _edited(table_file, tmp_path, edit)
    arch = _arch_file(tmp_path, load_compiled(DIGITS))
    assert main(["space", "cost", DIGITS, "--arch", str(arch), "--cost-table", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "edited.json" in err and field in err, err


def test_a_run_times_its_exports_as_its_latency_table_was_measured(table_file, tmp_path):
    """A table profiled with --batch 2 --threads 2: the run's exports were timed at batch 1 with one thread, so
    results.json's cost (the table's latency) and latency_ms measured different things. Now they are timed as
    the table was (its "batch" and "machine.threads"); a run without a table keeps batch 1, one thread."""
    table = _edited(table_file, tmp_path, lambda t: (t.update(batch=2), t["machine"].update(threads=2)))
    from test_profile import _recipe  # the quickstart on latency with this table
    recipe = _recipe(tmp_path, str(table))
    tiny = ["data.limit_train=96", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
            "search.weight_epochs=1", "search.theta_epochs=1", "search.epsilons=[0.5]", "search.lam=2",
            "retrain.epochs=0", "device=cpu", "threads=1"]
    assert main(["run", str(recipe), "--out", str(tmp_path / "run"), *tiny]) == 0
    [folder] = (tmp_path / "run" / "export").iterdir()
    latency = _manifest(folder)["latency"]
    assert (latency["batch"], latency["threads"]) == (2, 2), latency
    # results.json and report.md say so (report.md said "batch 1, one thread" whatever the table)
    protocol = json.loads((tmp_path / "run" / "results.json").read_text())["latency_protocol"]
    assert protocol == {"batch": 2, "threads": 2, "clock": "wall"}
    assert "(CPU, batch 2, 2 threads)" in (tmp_path / "run" / "report.md").read_text()
    assert profile.table_protocol(json.loads(table.read_text())) == {"batch": 2, "threads": 2}
    assert profile.table_protocol({}) == profile.EXPORT_PROTOCOL  # a table written by hand: the default


# ---- 3. int8: a cell space's head BatchNorm is quantised per channel, without a stray warning ---------------

def test_cell_int8_head_batchnorm_per_channel(tmp_path, caplog):
    recipe = tmp_path / "syn.yaml"
    recipe.write_text(f"name: syn\nspace: {NB201}\ndata:\n  dataset: synthetic\n  batch_size: 32\n"
                      f"  synthetic: {{num_train: 64, num_test: 32, channels: 3, size: 8}}\n")
    cs = load_compiled(NB201, {"size": "8", "channels": "4", "cells": "1"})
    out = tmp_path / "nb"
    with caplog.at_level(logging.WARNING):
        assert main(["export", NB201, *NB201_SMALL, "--arch", str(_arch_file(tmp_path, cs, 0)), "--out", str(out),
                     "--quantize", "int8", "--recipe", str(recipe)]) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    m = onnx.load(str(out / "model.int8.onnx"))
    inits = {t.name: t for t in m.graph.initializer}
    made_by = {o: n for n in m.graph.node for o in n.output}
    bns = [n for n in m.graph.node if n.op_type == "BatchNormalization"]
    assert bns, "the head BatchNorm of a cell space stays a BatchNormalization node"
    for bn in bns:
        dq = made_by[bn.input[1]]
        assert dq.op_type == "DequantizeLinear"
        scale = numpy_helper.to_array(inits[dq.input[1]])
        channels = numpy_helper.to_array(inits[dq.input[0]]).shape[0]
        assert scale.shape == (channels,) and channels > 1  # one scale per channel, not one per tensor


# ---- a hand-edited manifest given as --arch: one message naming the field, exit 2 --------------------------

@pytest.fixture(scope="module")
def plain_export(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plain-y")
    cs = load_compiled(DIGITS)
    out = tmp / "plain"
    assert main(["export", DIGITS, "--arch", str(_arch_file(tmp, cs)), "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("field,value", [
    ("se", "x"), ("se", [0.25]), ("epsilon", "big"), ("weights", "w"), ("space_args", [1]),
    ("search_cost", {"params": "x"}), ("search_cost", 5),
    ("cost_metric", [1]),
    ("normalize", {"mean": 1, "std": [1]}), ("normalize", "abc"), ("normalize", {"mean": [0.5], "std": [0]}),
    ("normalize", {"mean": [0.5, 0.5], "std": [1, 1]}),  # two channels for a space of one
])
def test_a_malformed_manifest_field_is_one_clear_message(plain_export, tmp_path, capsys, field, value):
    m = _manifest(plain_export)
    m[field] = value
    bad = tmp_path / "manifest.json"
    bad.write_text(json.dumps(m))
    capsys.readouterr()
    assert main(["export", DIGITS, "--arch", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and f'"{field}"' in err, err
    assert not (tmp_path / "out" / "manifest.json").exists()


# ---- profile arguments: a typo of a few extra digits is a message, not an allocation or 100,000 threads -----

@pytest.mark.parametrize("flags,message", [
    (["--batch", str(2**21)], "--batch 2097152"),
    (["--threads", "100000"], "--threads 100000"),
    (["--repeat", str(10**9)], "--repeat 1000000000"),
])
def test_huge_profile_options_are_refused(tmp_path, capsys, monkeypatch, flags, message):
    def never(*a, **k):
        raise AssertionError("nothing is timed")
    monkeypatch.setattr(profile, "time_module", never)
    out = tmp_path / "t.json"
    assert main(["space", "profile", DIGITS, *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_out_of_memory_while_profiling_names_the_batch(tmp_path, capsys, monkeypatch):
    def no_memory(module, shapes, *a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 25600000000 bytes")
    monkeypatch.setattr(profile, "time_module", no_memory)
    out = tmp_path / "t.json"
    assert main(["space", "profile", DIGITS, "--batch", "4096", "--calibrate", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--batch 4096" in err and "memory" in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_a_table_that_is_not_json_names_file_line_and_column(table_file, tmp_path, capsys):
    lines = table_file.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.lstrip().startswith('"fixed":'))
    col = lines[row].index(":")
    lines[row] = lines[row][:col] + " " + lines[row][col + 1:]  # "fixed" 1.2: the colon is missing
    bad = tmp_path / "broken.json"
    bad.write_text("\n".join(lines))
    arch = _arch_file(tmp_path, load_compiled(DIGITS))
    assert main(["space", "cost", DIGITS, "--arch", str(arch), "--cost-table", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{bad}:{row + 1}:" in err and len(err.splitlines()) == 1, err


def test_a_malformed_weights_record_with_weights_is_one_clear_message(plain_export, tmp_path, capsys):
    m = _manifest(plain_export)
    m["weights"] = {**m["weights"], "file": 5}
    bad = tmp_path / "manifest.json"
    bad.write_text(json.dumps(m))
    capsys.readouterr()
    assert main(["export", DIGITS, "--arch", str(bad), "--weights", str(plain_export / "model.safetensors"),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and '"weights"' in err, err


def test_a_table_for_an_elastic_resolution_space_says_resolution(table_file, tmp_path, capsys):
    space = tmp_path / "res.space"
    space.write_text(Path(DIGITS).read_text().replace("input 1 x size x size", "input 1 x size x size\nresolution 6, 8"))
    cs = load_compiled(str(space))
    assert cs.cost_table.context_decisions  # the resolution decision only: no elastic width
    t = json.loads(table_file.read_text())
    t["decisions"] = [{"name": d.name, "choices": {c: 0.01 for c in d.choices}} for d in cs.decisions]
    t["space"].pop("params_fingerprint")
    table = tmp_path / "res.json"
    table.write_text(json.dumps(t))
    arch = _arch_file(tmp_path, cs, 0)
    assert main(["space", "cost", str(space), "--arch", str(arch), "--cost-table", str(table)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "res.json" in err and "elastic resolution" in err, err
    assert "elastic widths" not in err


def test_a_run_times_its_exports_by_the_clock_its_latency_table_was_timed_with(table_file, tmp_path, monkeypatch):
    """A table profiled with --clock cpu: the run's exports were timed by wall clock (the table's protocol carried
    no clock), so under load latency_ms and the table's cost measured different things. Now by the table's own."""
    table = _edited(table_file, tmp_path, lambda t: (t.update(batch=1, clock="cpu"), t["machine"].update(threads=1)))
    clocks = []
    timed = quantize.time_session
    monkeypatch.setattr(quantize, "time_session", lambda *a, **k: clocks.append(k.get("clock")) or timed(*a, **k))
    from test_profile import _recipe
    tiny = ["data.limit_train=96", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
            "search.weight_epochs=1", "search.theta_epochs=1", "search.epsilons=[0.5]", "search.lam=2",
            "retrain.epochs=0", "device=cpu", "threads=1"]
    assert main(["run", str(_recipe(tmp_path, str(table))), "--out", str(tmp_path / "run"), *tiny]) == 0
    assert clocks and set(clocks) == {"cpu"}, clocks
    [folder] = (tmp_path / "run" / "export").iterdir()
    assert _manifest(folder)["latency"]["clock"] == "cpu"
    assert json.loads((tmp_path / "run" / "results.json").read_text())["latency_protocol"]["clock"] == "cpu"
    assert "(CPU, batch 1, one thread, the thread's CPU time)" in (tmp_path / "run" / "report.md").read_text()
