"""Review PA: report.md words a run by its searcher's mode (results.json's searcher_mode), so that a plugin searcher
is worded as the built-in one of its mode (interleaved as simultaneous, per_member as separate, joint as
importance_sampling), an earlier results.json without the field by its method's name; short_number writes a value
that rounds to 1000 of a unit as 1 of the next (1M, not 1000k)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from automl.pipeline import Run
from automl.pipeline.members import Members
from automl.recipe import load_recipe
from automl.report import alike_in_short, budget_text, render_markdown, round_sig, short_number, summary_table
from automl.search import _registry as registry
from automl.search import get_searcher, register_searcher

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
TINY = ["device=cpu", "threads=1", "data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32",
        "data.test_batch_size=512", "retrain.epochs=0", "export.onnx=false", "search.weight_epochs=1",
        "search.theta_epochs=1"]
BUILT_IN = {"joint": "importance_sampling", "per_member": "separate", "interleaved": "simultaneous"}


def _as(results: dict, method: str, mode: str | None) -> dict:
    """``results`` as a run of ``method`` wrote it: with ``mode`` recorded, or (None) as an earlier automl did."""
    res = copy.deepcopy(results)
    res["method"] = method
    res.pop("searcher_mode", None)
    if mode is not None:
        res["searcher_mode"] = mode
    return res


def _title(results: dict) -> str:
    return summary_table(results).title


def _same_wording(builtin: dict, plugin: dict, name: str) -> None:
    """The plugin's report.md and summary title are the built-in's, its method's name aside."""
    method = builtin["method"]
    assert render_markdown(plugin) == render_markdown(builtin).replace(f"`{method}`", f"`{name}`")
    assert _title(plugin) == _title(builtin).replace(method, name)


# ---------------------------------------------------------------- a plugin searcher, worded by its mode

def test_a_plugin_searcher_of_mode_interleaved_is_worded_as_simultaneous(tmp_path, monkeypatch):
    """A searcher registered under its own name with mode interleaved runs as Method 1 (a supernet per member):
    its report.md says so as simultaneous's does (it said "every member's search", and that members of one
    architecture were one network of one supernet's weights)."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # the plugin goes with the test
    register_searcher("pa_interleaved", "interleaved")(get_searcher("simultaneous").create)
    # two members, each with its own supernet's weights (retrain.epochs 0)
    recipe = load_recipe(QUICK, [*TINY, "search.budgets=null", "search.epsilons=[0,0.5]"])
    Run(recipe, tmp_path / "run", tty=False, searcher="pa_interleaved").execute()
    plugin = json.loads((tmp_path / "run" / "results.json").read_text())
    assert plugin["method"] == "pa_interleaved" and plugin["searcher_mode"] == "interleaved"
    assert {a["weights"] for a in plugin["architectures"]} == {"supernet"}
    md = (tmp_path / "run" / "report.md").read_text()
    assert md == render_markdown(plugin)
    assert "a search per member, one after another, each training its own supernet" in md, md
    assert (f"the first of its member's own {plugin['supernets']} supernets (`pa_interleaved` trains each "
            f"member's)") in md, md
    for builtin in (_as(plugin, "simultaneous", "interleaved"), _as(plugin, "simultaneous", None)):
        _same_wording(builtin, plugin, "pa_interleaved")


def _hand_results(**changes) -> dict:
    """A results.json of two members of one architecture, not retrained (the supernet's weights on its path)."""
    member = {"choices": ["a", "b"], "cost": 1000, "epsilon": 0.0, "params": 1000, "test_accuracy": 0.5,
              "weights": "supernet"}
    return {"recipe": "r", "method": "m", "search_seconds": 3.0, "phase_seconds": {"weights": 1.0, "theta": 2.0},
            "cost_metric": "params", "supernets": 1, "architectures": [dict(member), dict(member)], **changes}


@pytest.mark.parametrize("supernets", [1, 2])
@pytest.mark.parametrize("mode", ["joint", "per_member", "interleaved"])
def test_a_plugin_is_worded_as_the_built_in_of_its_mode(mode, supernets):
    results = _hand_results(supernets=supernets)
    builtin = _as(results, BUILT_IN[mode], None)  # an earlier automl's: the method's name says the mode
    _same_wording(builtin, _as(results, "pa_plugin", mode), "pa_plugin")
    _same_wording(builtin, _as(results, BUILT_IN[mode], mode), BUILT_IN[mode])


def test_the_recorded_mode_decides_over_the_methods_name():
    """A results.json's searcher_mode is what the run did, whatever its method is named."""
    results = _hand_results()
    for mode, method in BUILT_IN.items():
        other = next(m for m in BUILT_IN.values() if m != method)
        _same_wording(_as(results, method, None), _as(results, other, mode), other)


def test_one_network_or_apart_follows_the_mode():
    """Members of one architecture with supernet weights are one network under one shared supernet (joint,
    per_member), and apart under interleaved's supernet per member."""
    shared = render_markdown(_as(_hand_results(), "pa_plugin", "per_member"))
    apart = render_markdown(_as(_hand_results(), "pa_plugin", "interleaved"))
    assert "are one network" in shared and "different weights" not in shared, shared
    assert ("different weights: each has its own supernet's weights on that path (`pa_plugin` trains one supernet "
            "per member)") in apart, apart


def test_an_unknown_method_without_a_mode_keeps_the_plain_wording():
    """A plugin's results.json written before searcher_mode: its mode is unknown, its wording the plain one."""
    md = render_markdown(_as(_hand_results(), "pa_plugin", None))
    assert "Search time (every member's search;" in md and "the supernet's weights on its path" in md, md


# ---------------------------------------------------------------------- short_number at a unit's end

UNIT_ENDS = [999_950, 999_960, 999_999, 999_999.9, 999_950_000, 999_999_999, -999_950, -999_999_999]


@pytest.mark.parametrize("x", UNIT_ENDS)
def test_a_value_that_rounds_to_1000_of_a_unit_is_one_of_the_next(x):
    """It is written as its four-digit rounding is (1,000,000: 1M), never ``1000k`` or ``1000M``."""
    text = short_number(x)
    assert not re.fullmatch(r"-?1000[kM]", text), text
    rounded = round_sig(abs(x), up=True) * (1 if x > 0 else -1)
    assert abs(rounded) in (1e6, 1e9) and text == short_number(rounded)


@pytest.mark.parametrize("x", [999_949, 999_900, 1_000_000, 1_000_500, 150_000, 2_500_000, 12.5, 999.95, 999_949_999,
                               999_950_000_000, 0, -999_949])
def test_values_off_a_units_end_read_as_before(x):
    """Elsewhere the text is the value over its unit in four significant digits (G the largest unit)."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            assert short_number(x) == f"{x / div:.4g}{suffix}"
            break
    else:
        assert short_number(x) == f"{x:.6g}"


def test_budgets_alike_across_a_unit_end_are_named_in_full():
    """999,960 and 1,000,000 are one number in short (1M): the budgets name them in full (they read 1000k and 1M,
    as if they were far apart), and a budget's export folder is the next unit's."""
    budgets = [999_960, 1_000_000]
    assert alike_in_short(999_960, budgets)
    assert budget_text(999_960, budgets) == "999,960" and budget_text(1_000_000, budgets) == "1,000,000"
    assert budget_text(999_960, [999_960]) == short_number(1_000_000)
    members = Members(epsilons=None, budgets=[999_960], sampled=False, n=1)
    assert members.folder(0, None) == f"budget-0-{short_number(1_000_000)}"
