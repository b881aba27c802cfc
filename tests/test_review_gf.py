"""Review GF: pareto.png and the logging of the report stage.

1. matplotlib's own INFO and DEBUG lines are not printed with the run's: a machine's first plot logged "generated new
   fontManager" among the run's lines, and ``-v`` some 300 lines of font scores.
2. pareto.png's count axis gives its ticks in short (``140k``, ``1.2M``): the quickstart's 100000 to 160000 ran
   into one another, and MACs had a ``1e6`` in the corner.
3. Labels stacked above points high in pareto.png stay in the figure, under the title: the top ones were cut off.
"""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import automl.report as report
from automl.report import plot_pareto

ROOT = Path(__file__).resolve().parents[1]


def _member(cost: float, acc: float, budget=None, eps: float = 0.0, choices=None, **extra) -> dict:
    return {"epsilon": eps, "budget": budget, "choices": choices or [f"op{cost:g}"], "params": int(cost),
            "cost": float(cost), "test_accuracy": acc, "weights": "retrained", "macs": 3.0 * cost, **extra}


def _results(archs: list[dict], method: str = "importance_sampling", **extra) -> dict:
    return {"recipe": "quickstart", "method": method, "search_seconds": 1.0, "phase_seconds": {"theta": 1.0},
            "cost_metric": "params", "architectures": archs, **extra}


@pytest.fixture
def figures(monkeypatch):
    """The figures the plots draw, as they were saved."""
    seen = []
    real = report._png

    def spy(fig, ax, labels=()):
        seen.append((fig, ax, list(labels)))
        return real(fig, ax, labels)

    monkeypatch.setattr(report, "_png", spy)
    return seen


# ---- 1. matplotlib's logging ---------------------------------------------------------------------------------

def test_matplotlib_logs_nothing_among_the_runs_lines(tmp_path):
    """A fresh process as `automl run -v` sets logging up (the root logger at DEBUG), on a machine without
    matplotlib's font cache (a new MPLCONFIGDIR): its plot logs no line of matplotlib's."""
    script = textwrap.dedent("""
        import logging
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
        from automl.report import plot_pareto
        archs = [{"epsilon": 0.0, "budget": None, "choices": ["a"], "params": 100, "cost": 100.0,
                  "test_accuracy": 0.5, "weights": "retrained"}]
        png = plot_pareto({"recipe": "r", "method": "importance_sampling", "search_seconds": 1.0,
                           "phase_seconds": {}, "architectures": archs})
        assert png[:4] == b"\\x89PNG"
        logging.getLogger("automl").info("the run's own line")
    """)
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "mpl"), "OMP_NUM_THREADS": "1"}
    env.pop("MPLBACKEND", None)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "automl: the run's own line" in lines, done.stderr  # the caller's logging is as it was
    assert not [line for line in lines if line.startswith("matplotlib")], done.stderr[:2000]


def test_a_level_set_for_matplotlibs_logger_is_kept():
    logger = logging.getLogger("matplotlib")
    before = logger.level
    try:
        logger.setLevel(logging.DEBUG)
        plot_pareto(_results([_member(100, 0.5)]))
        assert logger.level == logging.DEBUG
    finally:
        logger.setLevel(before)


# ---- 2. the count axis's ticks -------------------------------------------------------------------------------

def _ticks(fig, ax) -> list:
    """The x axis's tick labels drawn (inside the view)."""
    low, high = sorted(ax.get_xlim())
    return [t for t in ax.get_xticklabels() if t.get_text() and low <= t.get_position()[0] <= high]


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


QUICKSTART_FAMILY = [_member(150_000, 0.97, eps=0.0), _member(62_290, 0.96, budget=80e3, eps=0.2),
                     _member(23_002, 0.95, budget=40e3, eps=0.5), _member(18_562, 0.93, budget=20e3, eps=1.5)]


def test_the_parameter_axis_ticks_do_not_run_into_one_another(figures):
    plot_pareto(_results(QUICKSTART_FAMILY))
    (fig, ax, _), = figures
    ticks = _ticks(fig, ax)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ticks]
    assert len(boxes) >= 3
    assert not [(a.get_text(), b.get_text()) for (a, x), (b, y) in itertools.combinations(zip(ticks, boxes), 2)
                if _overlap(x, y)]
    assert "140k" in [t.get_text() for t in ticks]
    assert ax.xaxis.get_offset_text().get_text() == ""


def test_a_macs_axis_has_no_power_of_ten_in_its_corner(figures):
    archs = [{**a, "cost": 10 * a["cost"], "budget": None} for a in QUICKSTART_FAMILY]
    plot_pareto(_results(archs, cost_metric="macs"))
    (fig, ax, _), = figures
    texts = [t.get_text() for t in _ticks(fig, ax)]
    assert ax.xaxis.get_offset_text().get_text() == "", texts
    assert any(t.endswith("k") for t in texts) and any(t.endswith("M") for t in texts), texts


def test_a_latency_axis_keeps_its_milliseconds(figures):
    archs = [{**a, "cost": a["cost"] / 1e5, "budget": None} for a in QUICKSTART_FAMILY]
    plot_pareto(_results(archs, cost_metric="latency"))
    (fig, ax, _), = figures
    texts = [t.get_text() for t in _ticks(fig, ax)]
    assert texts and not any(t.endswith(("k", "M")) for t in texts), texts


# ---- 3. stacked labels stay in the figure --------------------------------------------------------------------

def test_labels_stacked_high_in_the_plot_stay_in_the_figure_under_the_title(figures):
    """`simultaneous` with retrain.epochs 0: four members found one architecture, each with its own supernet's
    weights, at one cost and nearby accuracies at the top of the plot."""
    archs = [_member(150_000, 0.97 + 0.001 * i, budget=b, eps=0.1 * i, choices=["same"], weights="supernet")
             for i, b in enumerate([None, 80e3, 40e3, 20e3])]
    archs.append(_member(18_562, 0.16, budget=10e3, eps=2.0))
    plot_pareto(_results(archs, method="simultaneous"))
    (fig, ax, labels), = figures
    renderer = fig.canvas.get_renderer()
    assert sorted(t.get_text() for t in labels) == sorted(["unconstrained", "≤ 80k", "≤ 40k", "≤ 20k", "≤ 10k"])
    title = ax.title.get_window_extent(renderer)
    boxes = {t.get_text(): t.get_window_extent(renderer) for t in labels}
    for text, box in boxes.items():
        assert 0 <= box.y0 and box.y1 <= min(title.y0, fig.bbox.height), (text, box, title)
        assert box.x1 <= fig.bbox.width, (text, box)
    assert not any(_overlap(a, b) for a, b in itertools.combinations(boxes.values(), 2))
    # every point is still drawn inside the axes
    (line,) = ax.lines[:1]
    low, high = ax.get_ylim()
    assert all(low <= y <= high for y in line.get_ydata())


def test_a_plot_whose_labels_fit_keeps_its_y_axis(figures):
    """Headroom is added only where a label would leave the figure or cross the title."""
    plot_pareto(_results([_member(62_290, 0.10), _member(23_002, 0.12, eps=0.5), _member(18_562, 0.16, eps=1.0)]))
    (fig, ax, _), = figures
    assert ax.get_ylim()[1] < 16.5  # matplotlib's own margin above 16 %


def test_ticks_of_costs_close_together_are_told_apart(figures):
    """1,000,000 and 1,000,010 parameters: at six digits every tick read "1M" or "1.00001M"."""
    plot_pareto(_results([_member(1_000_000, 0.9), _member(1_000_010, 0.8, eps=0.5)]))
    (fig, ax, _), = figures
    texts = [t.get_text() for t in _ticks(fig, ax)]
    assert len(texts) >= 3 and len(set(texts)) == len(texts), texts


def test_a_zero_tick_is_no_negative_zero():
    assert report._count_tick(-0.0) == "0" and report._count_tick(-2500.0) == "-2.5k"


def test_a_stack_too_tall_to_fit_keeps_the_points_in_view(figures):
    """30 members of one architecture at the top of the plot: raising the axis for their labels squashed every
    point to the bottom (the axis to 3 million %); it is raised to twice its height at most."""
    archs = [_member(150_000, 0.97 + 0.0001 * i, budget=10e3 * (i + 1), eps=0.1 * i, choices=["same"],
                     weights="supernet") for i in range(30)]
    plot_pareto(_results(archs, method="simultaneous"))
    (fig, ax, _), = figures
    low, high = ax.get_ylim()
    assert high < 110, (low, high)  # accuracies of 97 %
