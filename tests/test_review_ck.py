"""Review CK: report.md and pareto.png for members that derived the same architecture (the same choices): one
network (retrained once, or one supernet's weights) is said under the table and drawn as one point; with
retrain.epochs 0 and weights of their own they are the same architecture, not one network."""

import matplotlib.axes
import pytest

from automl.pipeline import Run
from automl.recipe import load_recipe
from automl.report import plot_pareto, render_markdown

from test_review_ce import QUICK, SAME, TINY  # D of 192 images, one supernet, one epoch of each phase


def _member(choices, acc, eps=0.0, budget=None, weights="retrained", cost=100):
    return {"epsilon": eps, "budget": budget, "choices": list(choices), "params": int(cost), "cost": float(cost),
            "test_accuracy": acc, "weights": weights, "macs": 1e6, "latency_ms": None, "int8": None, "onnx": None}


def _results(archs, method="importance_sampling"):
    return {"recipe": "r", "method": method, "search_seconds": 1.0, "phase_seconds": {"weights": 0.5},
            "cost_metric": "params", "supernet": None, "architectures": archs}


def _rows(md: str) -> list[str]:
    return [line for line in md.splitlines() if line.startswith("| ") and "---" not in line][1:]


def test_members_retrained_once_are_said_to_be_one_network_under_the_table():
    """Their rows were identical with nothing saying why."""
    md = render_markdown(_results([_member("ab", 0.9), _member("ab", 0.9, eps=0.5), _member("c", 0.8, eps=1, cost=50)]))
    assert ("The members ε=0 and ε=0.5 are one network (the same choices): one retraining, one test accuracy; "
            "each exports its weights.") in md
    assert "ε=1 are" not in md and "the same architecture" not in md
    assert len(_rows(md)) == 3  # the table keeps a row per member
    table_end = md.index(_rows(md)[-1])
    assert table_end < md.index("are one network") < md.index("Phase times")  # under the table


def test_budgeted_members_are_named_by_their_budgets_and_rows_where_two_share_one():
    md = render_markdown(_results([_member("ab", 0.9, budget=None), _member("ab", 0.9, budget=178170)]))
    assert "The unconstrained member and the member of budget ≤ 178.2k are one network (the same choices)" in md
    md = render_markdown(_results([_member("ab", 0.9, budget=40e3), _member("ab", 0.9, eps=1, budget=40e3)]))
    assert "The members of budgets ≤ 40k (row 1) and ≤ 40k (row 2) are one network" in md


@pytest.mark.parametrize("method, weights, accs, want", [
    # Method 1 keeps a supernet per member: one path, other weights
    ("simultaneous", "supernet", (0.9, 0.9), "each has its own supernet's weights on that path"),
    ("importance_sampling", "untrained", (None, None), "each is initialised on its own (untrained)"),
    # retrained apart (an earlier member's export could not be read back): two test accuracies
    ("importance_sampling", "retrained", (0.9, 0.85), "each was retrained on its own"),
])
def test_the_same_architecture_with_weights_of_its_own_is_not_one_network(method, weights, accs, want):
    md = render_markdown(_results([_member("ab", accs[0], weights=weights),
                                   _member("ab", accs[1], eps=0.5, weights=weights)], method=method))
    assert f"The members ε=0 and ε=0.5 are the same architecture (the same choices) with different weights: {want}" \
        in md, md
    assert "one network" not in md


def test_one_supernets_weights_without_retraining_are_one_network():
    """retrain.epochs 0 with one supernet: the same path's weights, recalibrated on the same batches."""
    md = render_markdown(_results([_member("ab", 0.7, weights="supernet"),
                                   _member("ab", 0.7, eps=0.5, weights="supernet")]))
    assert "The members ε=0 and ε=0.5 are one network (the same choices): not retrained" in md


@pytest.fixture
def drawn(monkeypatch):
    """What plot_pareto draws: the points of ``ax.plot`` and the labels' texts."""
    seen = {"points": [], "labels": []}
    plot, annotate = matplotlib.axes.Axes.plot, matplotlib.axes.Axes.annotate

    def spy_plot(self, xs, ys, *args, **kwargs):
        seen["points"] += list(zip(xs, ys))
        return plot(self, xs, ys, *args, **kwargs)

    def spy_annotate(self, text, *args, **kwargs):
        seen["labels"].append(text)
        return annotate(self, text, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy_plot)
    monkeypatch.setattr(matplotlib.axes.Axes, "annotate", spy_annotate)
    return seen


def test_one_network_is_one_point_labelled_with_each_member(drawn):
    """The shared point was drawn twice, with two labels stacked on it."""
    plot_pareto(_results([_member("ab", 0.9), _member("ab", 0.9, eps=0.5), _member("c", 0.8, eps=1, cost=50)]))
    assert sorted(drawn["points"]) == [(50.0, 80.0), (100.0, 90.0)]
    assert sorted(drawn["labels"]) == ["ε=0, ε=0.5", "ε=1"]


def test_the_same_architecture_with_other_weights_keeps_a_point_each(drawn):
    plot_pareto(_results([_member("ab", 0.9, weights="supernet"), _member("ab", 0.8, eps=0.5, weights="supernet")],
                         method="simultaneous"))
    assert sorted(drawn["points"]) == [(100.0, 80.0), (100.0, 90.0)]
    assert sorted(drawn["labels"]) == ["ε=0", "ε=0.5"]


def test_a_run_whose_members_derive_one_network_says_so_in_report_md(tmp_path, drawn):
    out = tmp_path / "run"
    res = Run(load_recipe(QUICK, TINY + SAME), out, resume=False, tty=False).execute()
    a, b = res["architectures"]
    assert a["choices"] == b["choices"]  # the setting's premise
    assert "one network" in (out / "report.md").read_text()
    assert ("The unconstrained member and the member of budget ≤ 178.2k are one network"
            in (out / "report.md").read_text())
    assert [label for label in drawn["labels"] if not label.startswith("budget ")] == ["unconstrained, ≤ 178.2k"]


def test_a_run_not_retrained_on_one_supernet_says_its_members_are_one_network(tmp_path, drawn):
    """retrain.epochs 0, one supernet: each member takes the same weights on the same path and recalibrates
    BatchNorm on the same batches: one network, evaluated for each."""
    out = tmp_path / "run"
    res = Run(load_recipe(QUICK, TINY + SAME + ["retrain.epochs=0"]), out, resume=False, tty=False).execute()
    a, b = res["architectures"]
    assert a["choices"] == b["choices"] and a["weights"] == b["weights"] == "supernet"
    assert a["test_accuracy"] == b["test_accuracy"]  # the same weights
    report = (out / "report.md").read_text()
    assert ("The unconstrained member and the member of budget ≤ 178.2k are one network (the same choices): "
            "not retrained") in report
    assert [label for label in drawn["labels"] if not label.startswith("budget ")] == ["unconstrained, ≤ 178.2k"]


def test_the_summary_printed_at_the_end_names_members_of_one_network_under_its_table():
    # was: report.md said it, the table printed at the end of the run showed identical rows and nothing else
    from rich.console import Console
    from automl.report import summary_table
    console = Console(width=200, record=True)
    results = _results([_member("ab", 0.9), _member("ab", 0.9, eps=0.5), _member("c", 0.8, eps=1, cost=50)])
    console.print(summary_table(results))
    text = " ".join(console.export_text().split())
    assert "The members ε=0 and ε=0.5 are one network (the same choices)" in text, text
    console.print(summary_table(_results([_member("ab", 0.9), _member("c", 0.8, eps=1, cost=50)])))
    assert "one network" not in console.export_text()
