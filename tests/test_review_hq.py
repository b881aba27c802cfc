"""Review HQ: pareto.png and ranking.png as a run draws them.

1. The label of a point near the right edge of pareto.png (the largest network, named by each of its members:
   "ε=0, ε=0.125, ε=0.25") is drawn left of its point, inside the axes: it ran past them, the layout shrank the
   plot to keep it in the figure, and a longer one was cut off ("Tight layout not applied").
2. Ticks are written in full, never as an offset in the axis' corner: test accuracies close together (a large test
   set) had ticks "0.000" to "0.003" under "+5e1".
"""

from __future__ import annotations

import warnings

import pytest

import automl.report as report
from automl.report import plot_pareto, plot_ranking


def _member(cost: float, acc: float, eps: float, choices: list[str], same=None) -> dict:
    return {"epsilon": eps, "budget": None, "choices": choices, "params": int(cost), "cost": float(cost),
            "test_accuracy": acc, "weights": "retrained", "same_network_as": same, "macs": 6.0 * cost}


def _results(archs: list[dict], **extra) -> dict:
    return {"recipe": "quickstart", "method": "importance_sampling", "search_seconds": 1.0,
            "phase_seconds": {"weights": 1.0, "theta": 1.0}, "cost_metric": "params", "architectures": archs,
            **extra}


@pytest.fixture
def figures(monkeypatch):
    """The figures the plots draw, as they were saved."""
    seen = []
    real = report._png

    def spy(fig, ax, labels=()):
        png = real(fig, ax, labels)
        seen.append((fig, ax, list(labels)))
        return png

    monkeypatch.setattr(report, "_png", spy)
    return seen


def _family(shared: int) -> dict:
    """An ε family whose first ``shared`` members derived the largest network (one network: retrained once)."""
    big = ["ir_k5_e6"] * 9
    archs = [_member(62_290, 0.1028, 0.125 * i, big, same=0 if i else None) for i in range(shared)]
    archs += [_member(23_002, 0.1222, 0.5, ["ir_k3_e3"] * 9), _member(18_562, 0.1611, 1.0, ["skip"] * 9)]
    return _results(archs)


@pytest.mark.parametrize("shared", [3, 8])
def test_the_label_of_the_rightmost_point_stays_inside_the_axes(figures, shared):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Tight layout not applied"
        plot_pareto(_family(shared))
    (fig, ax, labels), = figures
    renderer = fig.canvas.get_renderer()
    right = max(labels, key=lambda t: t.xy[0])
    assert right.get_text().startswith("ε=0, ε=0.125, ε=0.25")
    box = right.get_window_extent(renderer)
    assert ax.bbox.x0 <= box.x0 and box.x1 <= ax.bbox.x1, (box, ax.bbox)
    # the plot keeps the figure's width: no room is taken from it for a label
    assert ax.bbox.x1 > 0.9 * fig.bbox.width
    # the others keep their place, right of their points
    for label in labels:
        if label is not right:
            assert label.get_window_extent(renderer).x0 > ax.transData.transform(label.xy)[0]


def test_close_accuracies_are_ticked_in_full_without_an_offset(figures):
    archs = [_member(50_000 + i, 0.5 + 1e-5 * i, 0.1 * i, [f"op{i}"]) for i in range(4)]
    plot_pareto(_results(archs))
    (fig, ax, _), = figures
    assert ax.yaxis.get_offset_text().get_text() == ""
    texts = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert texts and all(49.99 < float(t) < 50.01 for t in texts), texts


def test_close_supernet_losses_are_ticked_in_full_without_an_offset(figures):
    archs = [{"params": 1000 * (i + 1), "supernet_loss": 2.44162 + 1e-5 * i, "test_loss": 1.1 + 0.1 * i,
              "supernet_loss_batch_stats": 2.4, "supernet_accuracy": 0.1, "test_accuracy": 0.7,
              "supernet_accuracy_batch_stats": 0.1} for i in range(4)]
    ranking = {"kendall_tau": 1.0, "spearman": 1.0, "kendall_tau_batch_stats": None, "truth": "loss", "seeds": 1,
               "retrain_epochs": 1, "pairs": {"total": 6, "concordant": 6, "discordant": 0, "tied": 0},
               "archs": archs}
    plot_ranking(_results([_member(1000, 0.5, 0.0, ["a"])], ranking=ranking))
    (fig, ax, _), = figures
    assert ax.xaxis.get_offset_text().get_text() == ""
    texts = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert texts and all(2.44 < float(t) < 2.45 for t in texts), texts
