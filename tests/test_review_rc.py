"""Review RC: the compiled cost table records which metrics' tables are an estimate of the built networks' costs
(``CostTable.estimate``, metric -> why), set by the compiler for cell spaces such as DARTS and ENAS, empty for
NAS-Bench-201 and chain spaces; ``space show --json`` reports it and show/check/cost word their notes from it."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

import automl.nn.measure as measure
from automl.cli import main
from automl.commands import space as space_cmd
from automl.compile import CostTable, compile_space, load_compiled
from automl.dsl import parse_space

ROOT = Path(__file__).resolve().parents[1]
ENAS = str(ROOT / "spaces" / "enas_micro.space")
DARTS = str(ROOT / "spaces" / "darts.space")
NB201 = str(ROOT / "spaces" / "nasbench201.space")
DIGITS = str(ROOT / "spaces" / "digits.space")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

WHY = {
    DARTS: "ops of stride 2 counted at stride 1",
    ENAS: "an output conv counted for every node, an op two slots share counted twice, ops of stride 2 counted at "
          "stride 1",
}


@pytest.mark.parametrize("path", [DARTS, ENAS])
def test_a_cell_space_whose_table_approximates_records_why_for_params_and_macs(path):
    ct = load_compiled(path).cost_table
    assert ct.estimate == {"params": WHY[path], "macs": WHY[path]}


@pytest.mark.parametrize("path", [NB201, DIGITS])
def test_an_exact_table_records_no_estimate(path):
    ct = load_compiled(path).cost_table
    assert ct.estimate == {}


def test_a_cell_space_with_resolutions_records_it_and_builds_each_op_once(monkeypatch):
    """The resolutions' tables (one per resolution) are as approximate; the reasons weigh the ops the costs were
    measured with, built once (compiling builds each distinct op once, tests/test_review_gl.py)."""
    counts: collections.Counter = collections.Counter()
    create = measure.create_op

    def counting(name, in_ch, out_ch, stride=1, **kw):
        counts[(name, in_ch, out_ch, stride, repr(sorted((k, v) for k, v in kw.items() if k != "device")))] += 1
        return create(name, in_ch, out_ch, stride, **kw)

    monkeypatch.setattr(measure, "create_op", counting)
    text = Path(DARTS).read_text().replace("classes classes\n", "classes classes\nresolution size, size // 2\n")
    cs = compile_space(parse_space(text, "darts_res.space", {"channels": "4", "normal_cells": "1"}))
    assert cs.resolutions and cs.cost_table.context("params") is not None
    assert cs.cost_table.estimate == {"params": WHY[DARTS], "macs": WHY[DARTS]}
    assert counts and max(counts.values()) == 1, {k: n for k, n in counts.items() if n > 1}


def test_a_metric_added_later_is_not_an_estimate():
    cs = load_compiled(DARTS)
    cs.cost_table.add_metric("latency", [[1.0] * len(d.choices) for d in cs.decisions])
    assert "latency" not in cs.cost_table.estimate and set(cs.cost_table.estimate) == {"params", "macs"}


def test_cost_table_estimate_defaults_empty_and_refuses_an_unknown_metric():
    assert CostTable([["a", "b"]], {"params": [[1.0, 2.0]]}, {"params": 0.0}).estimate == {}
    ct = CostTable([["a", "b"]], {"params": [[1.0, 2.0]]}, {"params": 0.0}, estimate={"params": "why"})
    assert ct.estimate == {"params": "why"} and "estimate" in repr(ct)
    with pytest.raises(ValueError, match="latency"):
        CostTable([["a", "b"]], {"params": [[1.0, 2.0]]}, {"params": 0.0}, estimate={"latency": "why"})


@pytest.mark.parametrize("path", [DARTS, ENAS, NB201, DIGITS])
@pytest.mark.parametrize("metric", ["params", "macs"])
def test_show_json_reports_the_estimate(path, metric, capsys):
    assert main(["space", "show", path, "--json", "--metric", metric]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["estimate"] == ({"params": WHY[path], "macs": WHY[path]} if path in WHY else {})
    assert obj["metric"] == metric and "min_cost" in obj and "context_decisions" in obj  # the other keys stay


def test_show_and_check_word_their_note_from_the_table(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "400")  # show's lines unfolded
    why = load_compiled(ENAS).cost_table.estimate["params"]
    note = f" (table estimate: {why}; built networks can differ)"
    assert main(["space", "check", ENAS]) == 0
    assert capsys.readouterr().out.rstrip("\n").endswith(note)
    assert main(["space", "show", ENAS, "--metric", "macs"]) == 0
    assert note in capsys.readouterr().out


def test_the_commands_read_the_table_not_a_rule_of_their_own(monkeypatch, capsys):
    """A table that says it is exact gets no note; one that says its params are an estimate gets the note."""
    real = space_cmd.load_compiled

    def cleared(*args, **kwargs):
        cs = real(*args, **kwargs)
        cs.cost_table.estimate.clear()
        return cs

    monkeypatch.setattr(space_cmd, "load_compiled", cleared)
    assert main(["space", "check", ENAS]) == 0
    assert "table estimate" not in capsys.readouterr().out

    def marked(*args, **kwargs):
        cs = real(*args, **kwargs)
        cs.cost_table.estimate["params"] = "a reason of the table's"
        return cs

    monkeypatch.setattr(space_cmd, "load_compiled", marked)
    assert main(["space", "check", DIGITS]) == 0
    assert "(table estimate: a reason of the table's; built networks can differ)" in capsys.readouterr().out
