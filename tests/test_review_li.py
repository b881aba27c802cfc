"""Review LI: what of an int8 model onnxruntime runs in float (``int8.coverage``), said where a user reads it.

report.md says, for each member whose int8 model runs ops in float (results.json's ``int8.coverage``), which op
types and how many of its weight-bearing ops, one sentence for the members that share the op types, and its int8
cell says "partly in float"; a results.json without ``coverage`` (older) or with null reports as before, and one
whose coverage is not what automl writes is named by its key. ``automl export --quantize int8`` says it once:
in the int8 line of its summary, measure_export's own console note held back while the command measures.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path

import pytest

from automl.compile import compile_space
from automl.dsl import load_space
from automl.export import quantize
from automl.report import int8_float_words, render_markdown, results_problem
from helpers import cli_out_err as cli

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"
QUICK = str(ROOT / "recipes" / "quickstart.yaml")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


# ---- report.md ---------------------------------------------------------------------------------------------

def _member(budget, coverage=..., **kw) -> dict:
    int8 = {"test_accuracy": 0.9, "fp32_onnx_test_accuracy": 0.91, "latency_ms": 0.07, "size_bytes": 40,
            "fp32_size_bytes": 100}
    if coverage is not ...:
        int8["coverage"] = coverage
    return {"epsilon": 0.1, "budget": budget, "choices": [f"c{budget}"], "params": 10, "cost": 10.0,
            "test_accuracy": 0.5, "weights": "retrained", "onnx": None, "macs": 1e3, "latency_ms": 0.02,
            "int8": int8, **kw}


def _results(archs, method="importance_sampling") -> dict:
    return {"recipe": "r", "method": method, "search_seconds": 1.0, "phase_seconds": {"x": 1.0},
            "cost_metric": "params", "supernet": None, "architectures": archs}


HSWISH = {"quantized": 12, "float": 0, "float_ops": ["HardSigmoid", "ReduceMean"]}


def _float_paragraphs(md: str) -> list[str]:
    return [p for p in md.split("\n\n") if "in float" in p and not p.startswith("|")]


def test_members_that_run_the_same_ops_in_float_are_said_in_one_sentence():
    results = _results([_member(80e3, HSWISH), _member(40e3, dict(HSWISH)), _member(20e3, None)])
    assert results_problem(results) is None
    md = render_markdown(results)
    said = _float_paragraphs(md)
    assert len(said) == 1, said
    assert said[0].startswith("The int8 models of the members of budgets ≤ 80k and ≤ 40k run HardSigmoid, "
                              "ReduceMean in float"), said
    assert "no int8 kernel for them" in said[0] and "dequantise and a quantise" in said[0], said
    assert "20k" not in said[0] and "weight-bearing" not in said[0], said  # no coverage; none run in float
    rows = [line for line in md.splitlines() if line.startswith("| ≤ ")]
    assert [("partly in float" in r) for r in rows] == [True, True, False], rows


def test_weight_bearing_ops_in_float_are_counted_per_member():
    one = _results([_member(40e3, {"quantized": 3, "float": 2, "float_ops": ["Conv", "HardSigmoid"]})])
    said = _float_paragraphs(render_markdown(one))
    assert len(said) == 1 and said[0].startswith("The int8 model of the member of budget ≤ 40k runs Conv, "
                                                 "HardSigmoid in float"), said
    # Conv has an int8 kernel: only HardSigmoid lacks one
    assert "no int8 kernel for HardSigmoid" in said[0] and "2 of its 5 weight-bearing ops" in said[0], said
    left = {"float_ops": ["Conv", "Gemm"]}
    two = _results([_member(40e3, {"quantized": 0, "float": 5, **left}),
                    _member(20e3, {"quantized": 1, "float": 3, **left})])
    said = _float_paragraphs(render_markdown(two))
    assert len(said) == 1 and "no int8 kernel" not in said[0], said
    assert "5 of 5 in ≤ 40k" in said[0] and "3 of 4 in ≤ 20k" in said[0], said


def test_a_member_without_a_budget_is_named_in_the_singular():
    said = _float_paragraphs(render_markdown(_results([_member(None, HSWISH, epsilon=0.5)])))
    assert len(said) == 1 and said[0].startswith("The int8 model of the member ε=0.5 runs HardSigmoid"), said


@pytest.mark.parametrize("coverage", [..., None, {"quantized": 12, "float": 0, "float_ops": []}])
def test_a_results_json_without_a_coverage_reports_as_before(coverage):
    results = _results([_member(40e3, coverage), _member(20e3, coverage, int8={"error": "no int8 today"})])
    assert results_problem(results) is None
    before = copy.deepcopy(results)
    for a in before["architectures"]:
        a["int8"].pop("coverage", None)
    md = render_markdown(results)
    assert md == render_markdown(before) and "in float" not in md, md
    assert "int8 quantisation failed for ≤ 20k" in md


@pytest.mark.parametrize("coverage, key", [
    ({"quantized": 1, "float": -1, "float_ops": []}, "coverage.float"),
    ({"quantized": 1, "float": 0}, "coverage.float_ops"),
    ({"quantized": 1, "float": 0, "float_ops": "Mish"}, "coverage.float_ops"),
    ([1, 0], "coverage"),
])
def test_a_coverage_automl_never_writes_is_named_by_its_key(coverage, key):
    problem = results_problem(_results([_member(40e3, coverage)]))
    assert problem is not None and problem.startswith(f"architectures[0].int8.{key}"), problem


def test_the_words_leave_an_earlier_entry_and_a_failed_one_alone():
    assert int8_float_words({"file": "model.int8.onnx"}) is None
    assert int8_float_words({"file": None, "error": "x", "coverage": HSWISH}) is None
    assert int8_float_words({"coverage": HSWISH}).startswith("runs HardSigmoid, ReduceMean in float")


# ---- automl export --quantize int8 -------------------------------------------------------------------------

def _arch(tmp_path: Path, space: Path) -> str:
    cs = compile_space(load_space(space))
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    return str(path)


def _hswish(tmp_path: Path) -> Path:
    text = DIGITS.read_text(encoding="utf-8")
    assert "\nnetwork\n" in text and "activation" not in text
    space = tmp_path / "hswish.space"
    space.write_text(text.replace("\nnetwork\n", "\nnetwork\n  activation hard_swish\n"), encoding="utf-8")
    return space


def _export(tmp_path, capsys, caplog, space: Path) -> tuple[list[str], dict]:
    caplog.set_level(logging.INFO)  # as `automl export` logs without -v
    code, out, err = cli(capsys, "export", space, "--arch", _arch(tmp_path, space), "--out", tmp_path / "o",
                         "--quantize", "int8", "--recipe", QUICK)
    assert code == 0, err
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    lines = [*out.splitlines(), *err.splitlines(), *caplog.messages]
    return lines, m


def test_export_says_the_ops_run_in_float_once_in_its_int8_line(tmp_path, capsys, caplog):
    lines, m = _export(tmp_path, capsys, caplog, _hswish(tmp_path))
    ops = m["int8"]["coverage"]["float_ops"]
    assert {"HardSigmoid", "HardSwish"} & set(ops), m["int8"]
    said = [line for line in lines if f"{', '.join(ops)} in float" in line]
    assert len(said) == 1 and said[0].startswith("int8: model.int8.onnx ("), lines
    assert '"int8.coverage" in manifest.json' in said[0] and "no int8 kernel" in said[0], said
    assert sum("int8.coverage" in line for line in lines) == 1, lines


def test_export_counts_weight_bearing_ops_left_float_once(tmp_path, capsys, caplog, monkeypatch):
    """A quantiser that leaves the model float (it copies it): every Conv and the Gemm run in float."""
    monkeypatch.setattr(quantize, "quantize_int8", lambda fp32, dst, *a, **k: shutil.copyfile(fp32, dst))
    lines, m = _export(tmp_path, capsys, caplog, DIGITS)
    n = m["int8"]["coverage"]["float"]
    assert n > 0 and m["int8"]["coverage"]["quantized"] == 0
    said = [line for line in lines if "weight-bearing ops" in line]
    assert len(said) == 1 and said[0].startswith("int8: ") and f"{n} of its {n} weight-bearing ops" in said[0], lines


def test_an_export_run_all_in_int8_says_nothing_of_float(tmp_path, capsys, caplog):
    lines, m = _export(tmp_path, capsys, caplog, DIGITS)
    assert m["int8"]["coverage"]["float_ops"] == []
    assert [line for line in lines if line.startswith("int8: model.int8.onnx (")]
    assert not [line for line in lines if "in float" in line or "int8.coverage" in line], lines


def test_measure_export_outside_the_command_still_notes_it(tmp_path, capsys, caplog):
    """The command's filter is scoped: a library caller (and the run pipeline) keeps measure_export's note."""
    _export(tmp_path, capsys, caplog, _hswish(tmp_path))
    caplog.clear()
    quantize.measure_export(tmp_path / "o")  # measured again, the earlier int8 model timed again
    assert len([r for r in caplog.messages if "int8.coverage" in r]) == 1, caplog.messages
