"""Review OC: report.md follows results.json on whether the members were drawn (a searcher of mode sample, not
only the method named random); an empty phase_seconds writes no "Phase times: ." sentence; the random baseline's
search.random_budgets bound is its export's manifest budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automl.cli import main
from automl.export.manifest import read_manifest
from automl.pipeline import Run
from automl.recipe import load_recipe
from automl.report import render_markdown, results_problem
from automl.search import _registry as registry
from automl.search import get_searcher, register_searcher

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
DIGITS = str(ROOT / "spaces" / "digits.space")
TINY = ["device=cpu", "threads=1", "data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32",
        "data.test_batch_size=512", "retrain.epochs=0", "export.onnx=false"]


def _results(**changes) -> dict:
    """A results.json of two members drawn without ε, as report.md reads it."""
    member = {"choices": ["a"], "cost": 1000, "epsilon": None, "budget": None, "params": 1000,
              "test_accuracy": None, "weights": "untrained"}
    return {"recipe": "r", "method": "random", "search_seconds": 0.01, "phase_seconds": {"random": 0.01},
            "cost_metric": "params", "architectures": [dict(member), dict(member)], **changes}


def _header(markdown: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith("| ") and "params" in line)


# ------------------------------------------------------------------------ drawn members: one rule for report.md

def test_a_plugin_searcher_of_mode_sample_gets_the_random_baselines_report(tmp_path, monkeypatch):
    """A searcher registered with mode sample draws its members as the random baseline does: results.json has
    null utility and cost_normalization, no supernets, and records the mode; report.md has the draw column (no
    ε header, no search-time column) and says the method has no ε (it said ε and gave a search-time column)."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # the plugin goes with the test
    register_searcher("oc_sampler", "sample")(get_searcher("random").create)
    recipe = load_recipe(QUICK, [*TINY, "search.budgets=null", "search.epsilons=[0,0.5]"])
    res = Run(recipe, tmp_path / "run", tty=False, searcher="oc_sampler").execute()
    written = json.loads((tmp_path / "run" / "results.json").read_text())
    assert written["method"] == "oc_sampler" and written["searcher_mode"] == "sample" == res["searcher_mode"]
    assert written["utility"] is None and written["cost_normalization"] is None and written["supernets"] == 0
    assert all(a["epsilon"] is None for a in written["architectures"])
    md = (tmp_path / "run" / "report.md").read_text()
    header = _header(md)
    assert "| draw |" in header and "ε" not in header and "search time" not in header, header
    assert "`oc_sampler` has no ε: each member is drawn among all" in md, md  # not "uniformly": its own way
    assert "drawing the architectures: `oc_sampler` trains no supernet" in md, md
    assert "| random 0 |" in md and "| random 1 |" in md, md


def test_the_recorded_mode_decides_and_an_older_results_json_falls_back_on_the_method():
    sampled = render_markdown(_results(method="mine", searcher_mode="sample"))
    assert "| draw |" in _header(sampled) and "`mine` has no ε" in sampled
    joint = render_markdown(_results(method="random", searcher_mode="joint",
                                     architectures=[{"choices": ["a"], "cost": 1000, "epsilon": 0.5}]))
    assert "| ε |" in _header(joint) and "search time" in _header(joint) and "has no ε" not in joint
    older = render_markdown(_results())  # no searcher_mode: the method's name says it
    assert "| draw |" in _header(older) and "`random` has no ε: each member is drawn uniformly" in older
    older = render_markdown(_results(method="mine"))
    assert "| ε |" in _header(older) and "has no ε" not in older
    assert results_problem(_results(searcher_mode="sample")) is None
    assert results_problem(_results(searcher_mode=3)) == "searcher_mode: 3 is not text"


# ------------------------------------------------------------------------------------------- phase times

def test_an_empty_phase_seconds_writes_no_empty_sentence():
    md = render_markdown(_results(phase_seconds={}))
    assert "Phase times" not in md and " ." not in md.replace("](pareto.png)", ""), md
    assert "Phase times: random 0.01 s." in render_markdown(_results())


def test_an_empty_phase_seconds_keeps_automl_ranks_time_as_a_sentence():
    ranking = {"kendall_tau": 1.0, "spearman": 1.0, "kendall_tau_batch_stats": 1.0,
               "pairs": {"total": 1, "concordant": 1, "discordant": 0, "tied": 0}, "archs": [{}, {}],
               "seconds": 2.5, "world_size": 1}
    md = render_markdown(_results(phase_seconds={}, ranking=ranking))
    assert "Phase times" not in md
    assert "\nThe ranking below was measured by `automl rank` in 2.5 s.\n" in md, md
    md = render_markdown(_results(ranking=ranking))
    assert "Phase times: random 0.01 s; the ranking below was measured by `automl rank` in 2.5 s." in md


# ------------------------------------------------------------------ search.random_budgets in the manifests

@pytest.fixture(scope="module")
def random_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("oc") / "run"
    assert main(["run", QUICK, *TINY, "search.method=random", "search.budgets=null",
                 "search.random_budgets=[80k,40k]", "--out", str(out)]) == 0
    return out


def test_a_random_budget_is_its_exports_manifest_budget(random_run):
    """Each member's manifest records the bound it was drawn under (results.json's retrained_budget), a count
    as an int as its cost is; it recorded null, as for a member without a budget."""
    results = json.loads((random_run / "results.json").read_text())
    for i, a in enumerate(results["architectures"]):
        m = read_manifest(random_run / "export" / f"random-{i}", require=("budget",))
        assert a["budget"] is None and a["retrained_budget"] == [80000, 40000][i]
        assert m["budget"] == a["retrained_budget"] and type(m["budget"]) is int
        assert m["cost"]["params"] == a["params"] <= m["budget"]  # it bounds the exported network's cost


def test_a_re_export_of_a_random_member_keeps_its_budget(random_run, tmp_path, capsys):
    """automl export --arch MANIFEST (the member's own weights) keeps the manifest's budget."""
    member = random_run / "export" / "random-1"
    again = tmp_path / "again"
    code = main(["export", DIGITS, "--arch", str(member / "manifest.json"), "--weights",
                 str(member / read_manifest(member)["weights"]["file"]), "--out", str(again)])
    assert code == 0, capsys.readouterr().err
    assert read_manifest(again)["budget"] == read_manifest(member)["budget"] == 40000
