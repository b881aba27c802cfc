"""Review EJ: what report.md, the summary table and pareto.png say (automl/report.py), built from results dicts
shaped as each search method writes them: the search-time column per method, units on latency budgets, one name
for a member without a budget, short times, plural forms."""

import io

import matplotlib.axes
import pytest
from rich.console import Console

from automl.report import plot_pareto, render_markdown, summary_table

# phase_seconds as each method's run records them (automl/pipeline/search_stages.py)
PHASES = {"importance_sampling": {"weights": 4.3, "theta": 1.4, "retrain": 1.6},
          "separate": {"weights": 2.4, "theta": 3.1, "retrain": 0.8},
          "simultaneous": {"simultaneous": 25.5, "retrain": 1.0},
          "random": {"random": 0.011, "retrain": 0.0}}


def _member(cost, budget=None, eps=0.0, **kw):
    return {"epsilon": eps, "budget": budget, "choices": [str(cost)], "params": int(cost * 1e6) + 1,
            "cost": float(cost), "test_accuracy": 0.5, "weights": "retrained", "macs": 1e6, "latency_ms": None,
            "int8": None, "onnx": None, **kw}


def _results(method="importance_sampling", archs=None, **kw):
    phases = PHASES[method]
    archs = archs if archs is not None else [_member(1.0), _member(0.5, eps=0.5)]
    return {"recipe": "r", "method": method, "search_seconds": sum(v for k, v in phases.items() if k != "retrain"),
            "phase_seconds": phases, "cost_metric": "params", "supernet": None, "architectures": archs, **kw}


def _rows(md: str) -> list[list[str]]:
    """The table's rows below its header, as cells."""
    lines = [ln for ln in md.splitlines() if ln.startswith("|")][2:]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


@pytest.fixture
def labels(monkeypatch):
    """The texts pareto.png annotates (point labels and budget lines)."""
    seen = []
    annotate = matplotlib.axes.Axes.annotate

    def spy(self, text, *args, **kwargs):
        seen.append(text)
        return annotate(self, text, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "annotate", spy)
    return seen


# ---- 1. the search-time column and sentence say what each method did ---------------------------------------

@pytest.mark.parametrize("method", ["separate", "simultaneous", "random"])
def test_the_search_time_is_not_called_shared_where_members_do_not_share_one_search(method):
    """Every row said "X s (shared)": Method 1 runs a search per member, Method 2 a θ phase per member, and the
    random baseline draws; the sentence said "weight + θ phases" for the random baseline, which has neither."""
    md = render_markdown(_results(method))
    cells = [row[-1] for row in _rows(md)]
    total = _results(method)["search_seconds"]
    if method == "random":  # its search time, one for all, is the sentence's alone (tests/test_review_ng.py)
        assert "search time |" not in md and not any(" in all " in c for c in cells), md
    else:
        assert all("(shared)" not in c and " in all " in c for c in cells), cells
        assert all(c.startswith(f"{total:.1f} s" if total >= 0.1 else f"{total:.2g} s") for c in cells), cells
    sentence = next(ln for ln in md.splitlines() if ln.startswith("Search time"))
    assert "weight + θ phases" not in sentence, sentence
    want = {"separate": "a θ phase per member", "simultaneous": "a search per member",
            "random": "trains no supernet"}[method]
    assert want in sentence, sentence


def test_importance_sampling_shares_one_search_and_a_reused_supernet_skips_the_weight_phase():
    md = render_markdown(_results())
    assert all(row[-1] == "5.7 s (shared)" for row in _rows(md))
    assert "one weight phase, then one θ phase that searches every member at once" in md
    reused = render_markdown(_results(supernet={"from": "/runs/a", "forced": False, "differs": []}))
    sentence = next(ln for ln in reused.splitlines() if ln.startswith("Search time"))
    assert "one weight phase" not in sentence and "the weight phase was skipped" in sentence, sentence


def test_a_search_shorter_than_a_tenth_of_a_second_is_not_zero_seconds():
    """The random baseline's draws took 0.011 s: report.md and the summary said "0.0 s"."""
    results = _results("random")
    md = render_markdown(results)
    assert "0.0 s" not in md.replace("retrain 0.0 s", ""), md
    assert "**0.011 s**" in md and "random 0.011 s" in md
    assert summary_table(results).title.endswith("search 0.011 s in all (drawing only)")


# ---- 2. latency budgets carry their unit ---------------------------------------------------------------------

def test_latency_budgets_say_ms_in_the_table_the_lines_the_summary_and_the_plot(labels):
    """A latency budget was "≤ 0.05" everywhere but the sentence above the table."""
    archs = [_member(0.045, budget=0.05), _member(0.09, budget=0.1, eps=0.1), _member(0.12)]
    results = _results(archs=archs, cost_metric="latency")
    md = render_markdown(results)
    assert [row[0] for row in _rows(md)] == ["≤ 0.05 ms", "≤ 0.1 ms", "unconstrained"]
    assert "- ≤ 0.05 ms: `0.045`" in md and "- ≤ 0.1 ms: `0.09`" in md
    assert list(summary_table(results).columns[0].cells) == ["≤ 0.05 ms", "≤ 0.1 ms", "unconstrained"]
    plot_pareto(results)
    assert sorted(labels) == ["budget 0.05 ms", "budget 0.1 ms", "unconstrained", "≤ 0.05 ms", "≤ 0.1 ms"]


def test_budgets_of_counts_stay_as_they_were():
    md = render_markdown(_results(archs=[_member(1.0, budget=80e3), _member(2.0, budget=None)]))
    assert [row[0] for row in _rows(md)] == ["≤ 80k", "unconstrained"]


# ---- 3. one name for the member without a budget --------------------------------------------------------------

def test_the_member_without_a_budget_has_one_name_everywhere(labels):
    """The table and the summary said "none", the chosen operations and the plot "unconstrained"; the random
    baseline's paragraph said "any architecture for `none`"."""
    archs = [_member(1.0, budget=None), _member(0.5, budget=40e3, eps=0.5)]
    for method in ("importance_sampling", "random"):
        results = _results(method, archs=[dict(a, epsilon=None) if method == "random" else a for a in archs])
        md = render_markdown(results)
        assert "none" not in md.lower().replace("none of", ""), md
        assert _rows(md)[0][0] == "unconstrained" and "- unconstrained: `1.0`" in md
        assert list(summary_table(results).columns[0].cells)[0] == "unconstrained"
    assert "any architecture for the unconstrained member" in md
    plot_pareto(results)
    assert "unconstrained" in labels


def test_members_of_one_network_are_named_as_the_table_names_them():
    archs = [_member(1.0, budget=None), _member(1.0, budget=178170, eps=0.1)]
    md = render_markdown(_results(archs=archs))
    assert "The unconstrained member and the member of budget ≤ 178.2k are one network (the same choices)" in md
    archs = [_member(1.0, budget=80e3), _member(1.0, budget=40e3, eps=0.1)]
    assert "The members of budgets ≤ 80k and ≤ 40k are one network" in render_markdown(_results(archs=archs))


def test_random_budgets_of_the_retrained_network_name_no_unconstrained_member():
    """search.random_budgets has no null: the paragraph spoke of a member that is not there."""
    archs = [_member(1.0, retrained_budget=100e3, epsilon=None), _member(0.5, retrained_budget=40e3, epsilon=None)]
    md = render_markdown(_results("random", archs=archs))
    assert "of the retrained network" in md and "unconstrained" not in md and "`none`" not in md, md


def test_only_budgeted_members_are_said_to_have_an_adapted_epsilon():
    md = render_markdown(_results(archs=[_member(1.0), _member(0.5, budget=40e3, eps=0.3)]))
    assert "each budgeted member's ε was adapted to meet its budget" in md


# ---- what else a reader sees ------------------------------------------------------------------------------------

def test_random_draws_without_budgets_are_explained():
    """Without budgets the ε column of the random baseline said "random 0" with no word on why."""
    archs = [_member(1.0, epsilon=None), _member(0.5, epsilon=None)]
    md = render_markdown(_results("random", archs=archs))
    assert [row[0] for row in _rows(md)] == ["random 0", "random 1"]
    assert "`random` has no ε: each member is drawn uniformly among all the architectures" in md


def test_one_architecture_without_an_accuracy_is_not_none_of_the_1_architectures():
    md = render_markdown(_results(archs=[_member(1.0, test_accuracy=None)]))
    assert "none of the 1 architectures" not in md and "pareto.png shows no point" in md
    md = render_markdown(_results(archs=[_member(1.0, test_accuracy=None), _member(0.5, test_accuracy=None)]))
    assert "pareto.png shows none of the 2 architectures" in md


def test_the_summary_tables_epsilon_column_holds_the_number_as_report_md_does():
    """Under the header "ε" the summary said "ε=0.5"; report.md says "0.5"."""
    results = _results()
    console = Console(file=io.StringIO(), width=200)
    console.print(summary_table(results))
    assert list(summary_table(results).columns[0].cells) == ["0", "0.5"] == [row[0] for row in
                                                                          _rows(render_markdown(results))]
