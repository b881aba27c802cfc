"""Review NG: what a run writes against what the docs say (automl/pipeline/results.py, automl/report.py):
results.json's cost_normalization records the space's fixed part; the random baseline records null for the
utility and normalisation it never reads; report.md's draw column, MACs in the budgets' style, the int8 size's
reference, right-aligned number columns, ranking.png's colour bar in short, the phase times' final period."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from automl.pipeline import Run
from automl.pipeline.setup import engine_costs, load_spaces
from automl.recipe import load_recipe
from automl.report import plot_ranking, render_markdown, short_number, summary_table

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
# seconds: as tests/test_review_ef.py's TINY, with a θ phase long enough to log expected_cost
TINY = ["device=cpu", "threads=1", "data.dataset=synthetic", "data.synthetic.channels=1",
        "data.synthetic.num_train=128", "data.synthetic.num_test=64", "data.batch_size=32",
        "data.theta_batch_size=32", "search.weight_epochs=1", "search.theta_epochs=2", "search.lam=2",
        "retrain.epochs=0", "export.onnx=false", "search.log_every=1", "search.budgets=[null,40k]",
        "search.supernets=1"]
RANDOM = ["device=cpu", "threads=1", "data.dataset=synthetic", "data.synthetic.channels=1",
          "data.synthetic.num_train=128", "data.synthetic.num_test=64", "data.batch_size=32",
          "data.theta_batch_size=32", "retrain.epochs=0", "export.onnx=false", "search.method=random",
          "search.budgets=[null,40k]"]


def _run(tmp_path: Path, sets: list[str]) -> tuple[dict, object, Path]:
    recipe = load_recipe(QUICK, sets)
    out = tmp_path / "run"
    Run(recipe, out, tty=False).execute()
    return json.loads((out / "results.json").read_text()), recipe, out


# ---- 1. cost_normalization.fixed ------------------------------------------------------------------------------

def test_cost_normalization_records_the_fixed_part_that_turns_engine_costs_back_into_totals(tmp_path):
    """results.json had normalized and scale but not the space's fixed part: metrics.jsonl's expected_cost
    ((total - fixed) / scale) could not be turned back into the budgets' units."""
    results, recipe, out = _run(tmp_path, TINY)
    norm = results["cost_normalization"]
    assert norm["normalized"] is True and results["utility"] == recipe.search.utility
    space = load_spaces(recipe).search
    table = engine_costs(space, "params", True)
    assert table.fixed > 0  # the digits space has a stem and a head: the test tells fixed from 0
    for a in results["architectures"]:  # fixed + scale * R is every architecture's cost
        arch = space.encode(a["choices"])
        engine = float(sum(table.costs[d, k] for d, k in enumerate(arch.tolist())))
        assert norm["fixed"] + norm["scale"] * engine == pytest.approx(a["cost"], rel=1e-9)
    assert isinstance(norm["fixed"], int)  # a count, as cost
    # metrics.jsonl's expected costs, turned back into parameters, lie between the smallest and largest network
    lines = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    expected = [c for ln in lines if "expected_cost" in ln for c in ln["expected_cost"]]
    assert expected
    ct = space.cost_table
    low, high = ct.min_total("params"), ct.max_total("params")
    assert all(low - 1e-6 <= norm["fixed"] + norm["scale"] * c <= high + 1e-6 for c in expected)


# ---- 2. the random baseline's utility and cost_normalization ------------------------------------------------

def test_the_random_baseline_records_null_for_the_utility_and_normalisation_it_never_reads(tmp_path):
    results, _, out = _run(tmp_path, RANDOM)
    assert "utility" in results and "cost_normalization" in results  # the fields stay
    assert results["utility"] is None and results["cost_normalization"] is None
    md = (out / "report.md").read_text()
    assert "| budget | draw |" in md and "None" not in md


# ---- 3. and 4. report.md -------------------------------------------------------------------------------------

def _member(cost, budget=None, eps=0.0, **kw):
    return {"epsilon": eps, "budget": budget, "choices": [str(cost)], "params": int(cost), "cost": float(cost),
            "test_accuracy": 0.5, "weights": "retrained", "macs": 4e5, "latency_ms": 0.02,
            "int8": {"latency_ms": 0.01, "test_accuracy": 0.5, "size_bytes": 51, "fp32_size_bytes": 100},
            "onnx": None, **kw}


def _results(method="importance_sampling", archs=None, **kw):
    phases = {"random": 0.011, "retrain": 1.0} if method == "random" else {"weights": 4.3, "theta": 1.4,
                                                                           "retrain": 1.6}
    archs = archs if archs is not None else [_member(80e3, budget=80e3), _member(20e3, budget=20e3, eps=0.5)]
    return {"recipe": "r", "method": method, "search_seconds": sum(v for k, v in phases.items() if k != "retrain"),
            "phase_seconds": phases, "cost_metric": "params", "supernet": None, "architectures": archs, **kw}


def _table(md: str) -> list[list[str]]:
    """The table's lines (header, separator, rows) as cells."""
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in md.splitlines() if ln.startswith("|")]


@pytest.mark.parametrize("budgeted", [True, False])
def test_the_random_baseline_numbers_its_draws_under_draw_and_states_its_search_time_once(budgeted):
    archs = [_member(80e3, budget=80e3 if budgeted else None, epsilon=None),
             _member(20e3, budget=20e3 if budgeted else None, epsilon=None)]
    results = _results("random", archs=archs)
    md = render_markdown(results)
    header, sep, *rows = _table(md)
    assert "ε" not in header and header[1 if budgeted else 0] == "draw", header
    assert [r[1 if budgeted else 0] for r in rows] == ["random 0", "random 1"]
    assert md.count("0.011 s") == 2 and "**0.011 s**" in md and "random 0.011 s" in md, md  # sentence, phases
    assert "search time" not in header and len(sep) == len(header) and all(len(r) == len(header) for r in rows)
    assert "the draw column numbers them" in md and "ε column" not in md
    assert summary_table(results).columns[1 if budgeted else 0].header == "draw"


def test_other_methods_keep_the_eps_header_and_the_search_time_column():
    results = _results()
    header, sep, *rows = _table(render_markdown(results))
    assert header[1] == "ε" and header[-1] == "search time" and len(sep) == len(header)
    assert all(r[-1] == "5.7 s (shared)" for r in rows)
    assert summary_table(results).columns[1].header == "ε"


def test_macs_are_written_as_the_budgets_are():
    archs = [_member(80e3, budget=80e3, macs=4e5), _member(20e3, budget=20e3, eps=0.5, macs=1.5e6),
             _member(10e3, budget=10e3, eps=1.0, macs=None)]
    header, _, *rows = _table(render_markdown(_results(archs=archs)))
    col = header.index("MACs")
    assert [r[col] for r in rows] == [short_number(4e5), short_number(1.5e6), "—"] == ["400k", "1.5M", "—"]
    assert rows[0][0] == "≤ 80k"  # the budget, in the same style


def test_the_int8_size_says_it_is_relative_to_fp32():
    header, _, *rows = _table(render_markdown(_results()))
    col = next(i for i, h in enumerate(header) if h.startswith("int8"))
    assert "fp32" in header[col] and "size" in header[col], header
    assert rows[0][col].endswith("0.51x")


@pytest.mark.parametrize("method", ["importance_sampling", "random"])
def test_every_number_column_is_right_aligned(method):
    archs = None if method == "importance_sampling" else [_member(80e3, budget=80e3, epsilon=None)]
    header, sep, *_ = _table(render_markdown(_results(method, archs=archs)))
    assert len(sep) == len(header) and all(c == "---:" for c in sep), sep


def test_the_phase_times_line_ends_with_a_period():
    for results in (_results(), _results("random", archs=[_member(80e3, epsilon=None)])):
        (line,) = [ln for ln in render_markdown(results).splitlines() if ln.startswith("Phase times:")]
        assert line.endswith(" s."), line


# ---- 4. ranking.png's colour bar -----------------------------------------------------------------------------

from test_review_ef import figures  # noqa: E402,F401  (the figures the plots draw: a spy on report._png)


def test_the_ranking_colour_bar_writes_parameters_in_short_as_pareto_png_does(figures):
    archs = [{"choices": [f"c{j}"], "params": p, "supernet_loss": 1.0 + j, "supernet_accuracy": 0.1 * j,
              "test_loss": 2.0 - 0.1 * j, "test_accuracy": 0.2 + 0.1 * j}
             for j, p in enumerate([20_000, 90_000, 160_000])]
    results = _results(archs=[], ranking={"kendall_tau": 1.0, "spearman": 1.0, "archs": archs, "truth": "accuracy",
                                          "seeds": 1, "retrain_epochs": 0})
    plot_ranking(results)
    ((fig, ax),) = figures
    (bar,) = [a for a in fig.axes if a is not ax]
    ticks = [t.get_text() for t in bar.get_yticklabels() if t.get_text()]
    assert ticks and all(t.endswith("k") for t in ticks), ticks
    assert bar.yaxis.get_offset_text().get_text() == ""  # no "1e5" in the corner
    assert torch.tensor([float(t[:-1]) * 1e3 for t in ticks]).diff().gt(0).all()
