"""Latency tables: ``automl space profile`` / ``space cost``, table checks, and a recipe searching on latency.

The tables are profiled with a fake clock (test_edge_fixes._fake_time: 1 ms per call plus 1 µs per parameter),
so that every value is known in advance and no bound depends on this machine's load;
test_profile_times_every_piece_with_onnxruntime is the one real measurement.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import onnxruntime
import pytest
import torch
from test_edge_fixes import _fake_time  # a latency of exactly 1 ms + 1 µs per parameter

import automl.profile as profile
from automl.cli import main
from automl.compile import load_compiled

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
SMALL = ["--repeat", "2", "--calibrate", "3"]


REAL_CLOCK = profile.time_module


@pytest.fixture
def fake_clock(monkeypatch):
    monkeypatch.setattr(profile, "time_module", _fake_time)


@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("profile") / "digits.latency.json"
    with pytest.MonkeyPatch.context() as mp:  # the fake clock for this table only
        mp.setattr(profile, "time_module", _fake_time)
        assert main(["space", "profile", DIGITS, *SMALL, "--out", str(path)]) == 0
    return path


def _latency(table: dict, names) -> float:
    return table["fixed"] + sum(d["choices"][c] for d, c in zip(table["decisions"], names))


def test_profile_writes_a_table_in_the_cost_table_layout(table_file):
    t = json.loads(table_file.read_text())
    cs = load_compiled(DIGITS)
    assert t["metric"] == "latency" and t["unit"] == "ms" and t["batch"] == 1 and t["input_size"] == [1, 8, 8]
    assert t["machine"]["threads"] == 1 and t["machine"]["cores"] >= 1 and t["machine"]["cpu"]
    assert t["runtime"]["name"] == "onnxruntime" and t["runtime"]["version"] == onnxruntime.__version__
    assert [d["name"] for d in t["decisions"]] == [d.name for d in cs.decisions]
    for entry, dec in zip(t["decisions"], cs.decisions):
        assert list(entry["choices"]) == list(dec.choices)
        if "skip" in entry["choices"]:
            assert entry["choices"]["skip"] == 0.0
    # the fake clock times a whole network as the sum of its pieces: the fit on 3 networks is exact
    cal = t["calibration"]
    assert cal["archs"] == 3 and cal["scale"] == pytest.approx(1.0)
    assert cal["per_piece_ms"] == pytest.approx(0.0, abs=1e-9)
    assert cal["mape_before_pct"] == pytest.approx(0.0, abs=1e-9) == cal["mape_after_pct"]
    # the per-call overhead (a parameter-free graph: 1 ms), stem and head make the fixed part
    assert set(t["fixed_parts"]) == {"overhead", "stem", "head"} and t["fixed_parts"]["overhead"] == 1.0
    assert t["fixed"] == pytest.approx(sum(t["fixed_parts"].values()))
    # every choice costs its own blocks' time: a network's latency is 1 ms + 1 µs per parameter of it
    g = torch.Generator().manual_seed(0)
    archs = [cs.cost_table.cheapest(), cs.cost_table.most_expensive()] + [
        [int(torch.randint(k, (1,), generator=g)) for k in cs.num_choices] for _ in range(6)]
    for arch in archs:
        names = [dec.choices[int(k)] for dec, k in zip(cs.decisions, arch)]
        assert _latency(t, names) == pytest.approx(1.0 + 1e-3 * cs.cost_table.total(cs.encode(names)))


def test_profile_times_every_piece_with_onnxruntime(tmp_path, monkeypatch):
    """The real clock: every piece and 3 whole networks exported to ONNX and timed by onnxruntime on one thread,
    which a fake clock skips. No bound on the times themselves: they depend on the machine and its load."""
    timed = []
    monkeypatch.setattr(profile, "time_module", lambda *a, **k: timed.append(REAL_CLOCK(*a, **k)) or timed[-1])
    path = tmp_path / "digits.latency.json"
    assert main(["space", "profile", DIGITS, *SMALL, "--out", str(path)]) == 0
    assert len(timed) > 1 + 3 and all(ms > 0 for ms in timed)  # the overhead, the pieces, the 3 networks
    t = json.loads(path.read_text())
    assert t["runtime"] == {"name": "onnxruntime", "version": onnxruntime.__version__}
    values = [v for d in t["decisions"] for v in d["choices"].values()] + list(t["fixed_parts"].values())
    assert all(math.isfinite(v) and v >= 0 for v in values)
    assert t["fixed_parts"]["overhead"] > 0  # a session.run takes time
    assert t["fixed"] == pytest.approx(sum(t["fixed_parts"].values()))
    cal = t["calibration"]
    assert cal["archs"] == 3 and all(math.isfinite(cal[k]) for k in ("scale", "per_piece_ms", "mape_after_pct"))


def test_space_cost_prints_every_metric(table_file, tmp_path, capsys):
    cs = load_compiled(DIGITS)
    names = [d.choices[-1] for d in cs.decisions]
    (tmp_path / "a.json").write_text(json.dumps({"choices": names}))
    assert main(["space", "cost", DIGITS, "--arch", str(tmp_path / "a.json")]) == 0
    plain = json.loads(capsys.readouterr().out)
    arch = cs.encode(names)
    assert plain == {"params": cs.cost_table.total(arch), "macs": cs.cost_table.total(arch, "macs"),
                     "layers": cs.cost_table.total(arch, "layers")}
    assert main(["space", "cost", DIGITS, "--arch", str(tmp_path / "a.json"), "--cost-table", str(table_file)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["latency"] == pytest.approx(_latency(json.loads(table_file.read_text()), names))
    assert got["params"] == plain["params"]


def _edit(table_file, tmp_path, fn, name="bad.json"):
    t = json.loads(table_file.read_text())
    fn(t)
    path = tmp_path / name
    path.write_text(json.dumps(t))
    return path


@pytest.mark.parametrize("edit,message", [
    (lambda t: t["decisions"][1]["choices"].pop("skip"), "no entry for choice 'skip'"),
    (lambda t: t["decisions"][0]["choices"].update(ir_k3_e1=-0.5), "negative cost"),
    (lambda t: t["decisions"][0]["choices"].update(ir_k3_e1="fast"), "expected a number"),
    (lambda t: t.update(input_size=[1, 16, 16]), "input size [1, 16, 16]"),
    (lambda t: t["decisions"].pop(), "other decisions"),
    (lambda t: t.update(metric="params"), "already a metric"),
])
def test_a_bad_table_is_one_clear_message(table_file, tmp_path, capsys, edit, message):
    bad = _edit(table_file, tmp_path, edit)
    cs = load_compiled(DIGITS)
    (tmp_path / "a.json").write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    assert main(["space", "cost", DIGITS, "--arch", str(tmp_path / "a.json"), "--cost-table", str(bad)]) == 2
    err = capsys.readouterr().err
    assert message in err and "bad.json" in err and len(err.strip().splitlines()) == 1


def test_a_table_for_another_space_names_both_files(table_file, tmp_path, capsys):
    other = str(ROOT / "spaces" / "proxylessnas.space")
    arch = tmp_path / "a.json"
    cs = load_compiled(other)
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    assert main(["space", "cost", other, "--arch", str(arch), "--cost-table", str(table_file)]) == 2
    err = capsys.readouterr().err
    assert "digits.latency.json" in err and "proxylessnas.space" in err and "digits.space" in err


def test_other_widths_are_a_mismatch(table_file, tmp_path, capsys):
    arch = tmp_path / "a.json"
    cs = load_compiled(DIGITS, {"width": "2.0"})
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    assert main(["space", "cost", DIGITS, "--set", "width=2.0", "--arch", str(arch),
                 "--cost-table", str(table_file)]) == 2
    assert "widths or ops differ" in capsys.readouterr().err


@pytest.mark.parametrize("flags,message", [
    (["--runtime", "tflite"], "--runtime tflite: unsupported runtime"),
    (["--threads", "0"], "--threads 0"),
    (["--metric", "params"], "--metric params"),
    (["--clock", "cpu", "--threads", "2"], "use --threads 1"),
    (["--clock", "gpu"], "--clock gpu"),
    (["--calibrate", "-1"], "--calibrate -1"),
])
def test_bad_profile_options_write_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "t.json"
    assert main(["space", "profile", DIGITS, *flags, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.iterdir())


def _recipe(tmp_path, table: str, cost: str = "latency") -> Path:
    text = (ROOT / "recipes" / "quickstart.yaml").read_text().replace("../spaces/digits.space", DIGITS)
    text = text.replace("  cost: params", f"  cost: {cost}\n  cost_table: {table}")
    path = tmp_path / "latency.yaml"
    path.write_text(text)
    return path


TINY = ["data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.weight_epochs=1", "search.theta_epochs=1", "search.epsilons=[0,0.5]", "search.lam=2",
        "retrain.epochs=0", "export.onnx=false", "search.log_every=2", "device=cpu"]


def test_a_recipe_searches_on_latency(table_file, tmp_path):
    import shutil

    shutil.copy(table_file, tmp_path / "t.json")  # relative to the recipe
    recipe = _recipe(tmp_path, "t.json")
    assert main(["run", str(recipe), "--out", str(tmp_path / "run"), *TINY, "export.onnx=true",
                 "export.quantize=int8"]) == 0
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["cost_metric"] == "latency"
    t = json.loads(table_file.read_text())
    cs = load_compiled(DIGITS)
    for a in res["architectures"]:
        assert a["cost"] == pytest.approx(_latency(t, a["choices"]))
        assert a["macs"] == cs.cost_table.total(cs.encode(a["choices"]), "macs")
        assert a["latency_ms"] > 0 and a["int8"]["latency_ms"] > 0 and 0 <= a["int8"]["test_accuracy"] <= 1
        assert a["int8"]["size_bytes"] < a["int8"]["fp32_size_bytes"]
    # the report shows params, MACs, latency (fp32, int8) and accuracy; the plot's axis is the cost metric
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| MACs |" in report and "latency fp32" in report and "![latency vs test accuracy]" in report
    row = next(line for line in report.splitlines() if line.startswith("| 0 |"))
    assert f"{res['architectures'][0]['latency_ms']:.3g} ms" in row and "x |" in row


def test_a_recipe_with_a_wrong_table_or_metric_stops_early(table_file, tmp_path, capsys):
    bad = _edit(table_file, tmp_path, lambda t: t["decisions"][2]["choices"].pop("ir_k5_e6"))
    recipe = _recipe(tmp_path, str(bad))
    assert main(["run", str(recipe), "--out", str(tmp_path / "run"), *TINY]) == 2
    err = capsys.readouterr().err
    assert re.search(r"latency\.yaml:\d+: search\.cost_table: ", err) and "bad.json" in err and "ir_k5_e6" in err
    recipe = _recipe(tmp_path, str(table_file), cost="latency_ms")
    assert main(["run", str(recipe), "--out", str(tmp_path / "run2"), *TINY]) == 2
    assert "search.cost 'latency_ms' is not a metric" in capsys.readouterr().err


@pytest.mark.heavy
def test_profile_proxylessnas_at_224(tmp_path):
    """The issue's acceptance: the full ProxylessNAS space at 224x224 profiles in minutes."""
    out = tmp_path / "t.json"
    assert main(["space", "profile", str(ROOT / "spaces" / "proxylessnas.space"), "--repeat", "5",
                 "--out", str(out)]) == 0
    t = json.loads(out.read_text())
    assert t["input_size"] == [3, 224, 224] and len(t["decisions"]) == 21
    slow = t["decisions"][0]["choices"]
    assert slow["ir_k7_e6"] > slow["ir_k3_e3"] > 0


def test_resume_refuses_a_remeasured_table(table_file, tmp_path, capsys):
    import shutil

    from automl.pipeline import Run
    from automl.recipe import load_recipe

    shutil.copy(table_file, tmp_path / "t.json")
    recipe = _recipe(tmp_path, "t.json")
    out = tmp_path / "run"
    assert main(["run", str(recipe), "--out", str(out), *TINY]) == 0
    same = Run(load_recipe(recipe, TINY), out, resume=True, tty=False)
    t = json.loads((tmp_path / "t.json").read_text())
    t["fixed"] += 1.0
    (tmp_path / "t.json").write_text(json.dumps(t))
    other = Run(load_recipe(recipe, TINY), out, resume=True, tty=False)
    assert same.recipe_hash != other.recipe_hash
    assert main(["run", str(recipe), "--out", str(out), "--resume", *TINY]) == 2
    assert "the recipe differs" in capsys.readouterr().err


def test_profile_a_cell_space(tmp_path, fake_clock):
    """Cells: each op at stride 1 on the cell's output shape, summed over the template's instances; inputs
    cost nothing; preprocessing and output convs are fixed."""
    out = tmp_path / "enas.json"
    args = ["--set", "size=8", "--set", "channels=4", "--set", "normal_cells=1", "--set", "classes=3"]
    assert main(["space", "profile", str(ROOT / "spaces" / "enas_micro.space"), *args, *SMALL, "--out", str(out)]) == 0
    t = json.loads(out.read_text())
    assert len(t["decisions"]) == 40 and t["calibration"] is None
    for d in t["decisions"]:
        if "_input" in d["name"]:
            assert set(d["choices"].values()) == {0.0}
        else:
            assert d["choices"]["sep_k5"] > 0
    assert {"stem", "head", "cell 1 preprocessing", "cell 1 output"} <= set(t["fixed_parts"])
