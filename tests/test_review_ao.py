"""Review AO: report.md, the plots and the summary table (automl/report.py), and the progress output
(automl/train/progress.py), built from results dicts directly (no run): markup in paths, NaN measurements, one
member, latency costs, members at one point, long names, stale plots, a failed drawing, TERM=dumb, piped
output, ranks other than 0."""

import io
import itertools
import json
import math
import sys

import matplotlib.axes
import matplotlib.pyplot as plt
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from rich.console import Console

import automl.report as report
from automl.report import plot_pareto, plot_ranking, render_markdown, summary_table, write_report
from automl.train.progress import Reporter


def _member(cost, acc, budget=None, eps=0.0, **kw):
    return {"epsilon": eps, "budget": budget, "choices": ["x"], "params": int(cost), "cost": float(cost),
            "test_accuracy": acc, "weights": "retrained", "macs": 1e6, "latency_ms": None, "int8": None,
            "onnx": None, **kw}


def _results(archs, **kw):
    return {"recipe": "r", "method": "importance_sampling", "search_seconds": 1.0,
            "phase_seconds": {"weights": 0.5, "theta": 0.5}, "cost_metric": "params", "supernet": None,
            "architectures": archs, **kw}


def _ranking():
    archs = [{"choices": [str(j)], "params": 10 + j, "supernet_accuracy": 0.1 * j,
              "supernet_accuracy_batch_stats": 0.1 * j, "test_accuracy": 0.5 + 0.1 * j,
              "retrainings": [{"seed": 0, "test_loss": 1.0, "test_accuracy": 0.5 + 0.1 * j}]} for j in range(3)]
    return {"kendall_tau": 1.0, "spearman": 1.0, "kendall_tau_batch_stats": 1.0, "seeds": 1, "truth": "accuracy",
            "archs": archs, "pairs": {"concordant": 3, "discordant": 0, "tied": 0, "total": 3},
            "retrain_epochs": 1, "seconds": 1.0}


@pytest.fixture
def texts(monkeypatch):
    """The Text objects the plots make: ``labels`` (ax.annotate) and ``titles`` (ax.set_title)."""
    seen = {"labels": [], "titles": []}
    annotate, set_title = matplotlib.axes.Axes.annotate, matplotlib.axes.Axes.set_title

    def spy_annotate(self, *args, **kwargs):
        seen["labels"].append(annotate(self, *args, **kwargs))
        return seen["labels"][-1]

    def spy_title(self, *args, **kwargs):
        seen["titles"].append(set_title(self, *args, **kwargs))
        return seen["titles"][-1]

    monkeypatch.setattr(matplotlib.axes.Axes, "annotate", spy_annotate)
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", spy_title)
    return seen


def _extent(text):
    """Where ``text`` was drawn, in pixels of its figure."""
    return text.get_window_extent(FigureCanvasAgg(text.figure).get_renderer())


# ---- the summary table: paths are text, not rich markup ----------------------------------------------------

def test_the_summary_table_prints_paths_with_brackets_as_they_are():
    """An absolute export.dir is the onnx column as it is: ``[/tmp]`` made rich raise a MarkupError after the
    whole run (and on every --resume), ``[red]`` vanished from the path."""
    results = _results([_member(100, 0.5, onnx="/data/[/tmp]/eps-0/model.onnx"),
                        _member(90, 0.4, eps=0.5, onnx="/data/[red]x/eps-0.5/model.onnx")])
    console = Console(file=io.StringIO(), width=200)
    console.print(summary_table(results))
    printed = console.file.getvalue()
    assert "/data/[/tmp]/eps-0/model.onnx" in printed and "/data/[red]x/eps-0.5/model.onnx" in printed


# ---- report.md -----------------------------------------------------------------------------------------

def test_a_measurement_that_is_not_a_number_is_a_dash_not_nan():
    """In memory a diverged measurement is NaN (results.json writes null): the table said "nan %", "nan ms"."""
    nan = float("nan")
    results = _results([_member(100, nan, latency_ms=nan, macs=nan, int8={"latency_ms": nan, "test_accuracy": nan,
                                                                           "size_bytes": 1, "fp32_size_bytes": 4}),
                        _member(50, 0.5, eps=0.5)])
    md = render_markdown(results)
    assert "nan" not in md.lower() and "Latency:" not in md, md  # no latency shown: no line on its timing
    row = next(line for line in md.splitlines() if line.startswith("| 0 | 100 |"))
    assert row == "| 0 | 100 | — | 100 | — | — | —, —, 0.25x | 1.0 s (shared) |"
    cells = [list(c.cells) for c in summary_table(results).columns]
    assert cells[3][0] == "—"


def test_one_member_is_one_architecture():
    assert render_markdown(_results([_member(100, 0.5)])).startswith("# r: 1 architecture by `importance_sampling`")
    assert render_markdown(_results([_member(100, 0.5)] * 2)).startswith("# r: 2 architectures by")


def test_latency_costs_say_they_are_milliseconds():
    results = _results([_member(1.25, 0.5, budget=2.0), _member(3.5, 0.6, budget=None, eps=0.5)],
                       cost_metric="latency")
    md = render_markdown(results)
    assert "| cost (latency, ms) |" in md and "Budgets are total latency (ms);" in md
    assert "| 1.25 |" in md
    assert [c.header for c in summary_table(results).columns][3] == "cost (ms)"
    # params and MACs read as before
    md = render_markdown({**results, "cost_metric": "macs"})
    assert "| cost (macs) |" in md and "Budgets are total macs;" in md


# ---- pareto.png and ranking.png ----------------------------------------------------------------------------

def _overlap(a, b) -> bool:
    return a.x0 < b.x1 - 0.5 and b.x0 < a.x1 - 0.5 and a.y0 < b.y1 - 0.5 and b.y0 < a.y1 - 0.5


@pytest.mark.parametrize("accuracies", [(0.5, 0.5, 0.5), (0.5, 0.5002, 0.5004)])
def test_labels_of_members_at_one_point_do_not_cover_one_another(texts, accuracies):
    """Several ε that find the same architecture with weights of their own (Method 1 with retrain.epochs 0: a
    supernet each) sit at one cost, at equal or nearby accuracies: their labels were drawn over one another,
    unreadable (members that are one network are one point: test_review_ck)."""
    archs = [_member(100, acc, eps=eps, weights="supernet") for acc, eps in zip(accuracies, (0.0, 0.5, 1.0))]
    archs += [_member(20, 0.9, eps=2)]
    assert plot_pareto(_results(archs, method="simultaneous"))[:4] == b"\x89PNG"
    labels = [t for t in texts["labels"] if t.get_text().startswith("ε=")]
    assert sorted(t.get_text() for t in labels) == ["ε=0", "ε=0.5", "ε=1", "ε=2"]
    boxes = [_extent(t) for t in labels]
    assert not any(_overlap(a, b) for a, b in itertools.combinations(boxes, 2))


def test_members_with_one_budget_draw_one_budget_line(texts):
    archs = [_member(100, 0.5, budget=150e3), _member(90, 0.6, budget=150e3, eps=0.5)]
    plot_pareto(_results(archs))
    assert [t.get_text() for t in texts["labels"]].count("budget 150k") == 1


@pytest.mark.parametrize("plot", ["pareto", "ranking"])
def test_a_long_recipe_name_is_cut_to_fit_the_title(texts, plot):
    """A recipe's name may be 200 characters: the title ran off both sides of the figure."""
    name = "a_very_long_recipe_name_" * 8 + "end"
    results = _results([_member(100, 0.5)], recipe=name, ranking=_ranking())
    (plot_pareto if plot == "pareto" else plot_ranking)(results)
    title = texts["titles"][-1]
    box, width = _extent(title), title.figure.bbox.width
    assert 0 <= box.x0 and box.x1 <= width
    text = title.get_text()
    assert text.startswith("a_very") and "…" in text
    assert text.endswith("end (importance_sampling)" if plot == "pareto" else "end: Kendall τ 1.000, Spearman 1.000")
    short = _results([_member(100, 0.5)], recipe="digits")
    plot_pareto(short)
    assert texts["titles"][-1].get_text() == "digits (importance_sampling)"  # a name that fits is left whole


def test_plots_are_drawn_without_a_display_and_leave_pyplot_alone(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    before = plt.get_fignums()
    assert plot_pareto(_results([_member(100, 0.5)], ranking=_ranking()))[:4] == b"\x89PNG"
    assert plot_ranking(_results([], ranking=_ranking()))[:4] == b"\x89PNG"
    assert plt.get_fignums() == before


# ---- write_report: again on --resume ---------------------------------------------------------------------

def test_a_report_written_again_without_a_ranking_removes_the_earlier_ranking_png(tmp_path):
    write_report(tmp_path, _results([_member(100, 0.5)], ranking=_ranking()))
    assert (tmp_path / "ranking.png").read_bytes()[:4] == b"\x89PNG"
    assert "ranking.png" in (tmp_path / "report.md").read_text()
    write_report(tmp_path, _results([_member(100, 0.5)]))  # results.json's ranking damaged: dropped on --resume
    assert not (tmp_path / "ranking.png").exists()
    assert "ranking.png" not in (tmp_path / "report.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pareto.png", "report.md", "results.json"]


def test_a_drawing_that_fails_leaves_the_earlier_report_as_it_was(tmp_path, monkeypatch):
    """results.json was written before the plots were drawn: a failure left it newer than report.md."""
    write_report(tmp_path, _results([_member(100, 0.5)], ranking=_ranking()))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken(results):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(report, "plot_ranking", broken)
    with pytest.raises(RuntimeError):
        write_report(tmp_path, _results([_member(50, 0.7)], ranking=_ranking()))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# ---- progress output ---------------------------------------------------------------------------------------

class _Terminal(io.StringIO):
    """A stdout that says it is a terminal."""

    def isatty(self):
        return True


def _an_epoch(reporter):
    with reporter.epoch("weights", 0, 1, 3) as update:
        for step in range(3):
            update(step + 1, loss=0.5, acc=None)
    reporter.info("weights epoch 1/1: loss 0.5000")


def test_a_dumb_terminal_gets_the_plain_lines_only(monkeypatch, tmp_path):
    """TERM=dumb (Emacs's shell): rich draws no bar there but ended every epoch with an empty line."""
    out = _Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setenv("TERM", "dumb")
    reporter = Reporter(tmp_path / "metrics.jsonl")
    assert not reporter.tty
    _an_epoch(reporter)
    assert out.getvalue() == "weights epoch 1/1: loss 0.5000\n"
    monkeypatch.setenv("TERM", "xterm-256color")
    assert Reporter(tmp_path / "metrics.jsonl").tty  # a real terminal keeps its bar


def test_piped_output_has_no_control_characters(monkeypatch, tmp_path):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setenv("TERM", "xterm-256color")
    reporter = Reporter(tmp_path / "metrics.jsonl")
    assert not reporter.tty
    _an_epoch(reporter)
    write_report(tmp_path, _results([_member(100, 0.5, budget=150e3)]), reporter)
    printed = out.getvalue()
    assert printed.startswith("weights epoch 1/1: loss 0.5000\n") and "results:" in printed
    assert not any(ord(c) < 32 and c != "\n" for c in printed), repr(printed)


def test_ranks_other_than_0_print_and_write_nothing(monkeypatch, tmp_path, capsys):
    path = tmp_path / "metrics.jsonl"
    reporter = Reporter(path, enabled=False, tty=True)
    _an_epoch(reporter)
    reporter.log(phase="weights", epoch=1, step=1, loss=math.nan)
    reporter.cut(0)
    assert reporter.size() == 0 and not path.exists()
    assert capsys.readouterr().out == ""
    on_main = Reporter(path)
    on_main.log(phase="weights", epoch=1, step=1, loss=math.inf)
    assert json.loads(path.read_text())["loss"] is None
