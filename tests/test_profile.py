"""Latency tables: ``automl space profile`` / ``space cost``, table checks, and a recipe searching on latency."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automl.cli import main
from automl.compile import load_compiled

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
SMALL = ["--repeat", "2", "--calibrate", "3"]


@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("profile") / "digits.latency.json"
    assert main(["space", "profile", DIGITS, *SMALL, "--out", str(path)]) == 0
    return path


def test_profile_writes_a_table_in_the_cost_table_layout(table_file):
    t = json.loads(table_file.read_text())
    cs = load_compiled(DIGITS)
    assert t["metric"] == "latency" and t["unit"] == "ms" and t["batch"] == 1 and t["input_size"] == [1, 8, 8]
    assert t["machine"]["threads"] == 1 and t["machine"]["cores"] >= 1 and t["machine"]["cpu"]
    assert t["runtime"]["name"] == "onnxruntime" and t["runtime"]["version"]
    assert [d["name"] for d in t["decisions"]] == [d.name for d in cs.decisions]
    for entry, dec in zip(t["decisions"], cs.decisions):
        assert list(entry["choices"]) == list(dec.choices)
        assert all(v >= 0 for v in entry["choices"].values())
        if "skip" in entry["choices"]:
            assert entry["choices"]["skip"] == 0.0
    # the per-piece correction was fitted on 3 whole networks, and its errors there recorded
    cal = t["calibration"]
    assert cal["archs"] == 3 and 0.5 <= cal["scale"] <= 2 and cal["mape_before_pct"] >= 0 <= cal["mape_after_pct"]
    # stem, head and the per-call overhead make the fixed part
    assert set(t["fixed_parts"]) == {"overhead", "stem", "head"}
    assert t["fixed"] == pytest.approx(sum(t["fixed_parts"].values())) and t["fixed"] > 0


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
    t = json.loads(table_file.read_text())
    expected = t["fixed"] + sum(d["choices"][c] for d, c in zip(t["decisions"], names))
    assert got["latency"] == pytest.approx(expected) and got["params"] == plain["params"]


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
        expected = t["fixed"] + sum(d["choices"][c] for d, c in zip(t["decisions"], a["choices"]))
        assert a["cost"] == pytest.approx(expected)
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
    assert "latency.yaml search.cost_table" in err and "bad.json" in err and "ir_k5_e6" in err
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


def test_profile_a_cell_space(tmp_path):
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
