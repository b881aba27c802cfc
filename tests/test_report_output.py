"""What a finished run writes about itself: strict JSON (no NaN/Infinity tokens), report.md's wording for an
undefined rank correlation, the random baseline and a ranking without retraining, pareto.png's points, the
ranking's own time, and the adapted ε in metrics.jsonl with search.method simultaneous."""

import json
import math
from pathlib import Path

import matplotlib.axes
import numpy as np
import pytest

import automl.pipeline.final_stages as final_stages
from automl._io import atomic_write_json
from automl.cli import main
from automl.export.manifest import write_manifest
from automl.pipeline import Run
from automl.pipeline.results import recorded_retrainings
from automl.ranking import summarize
from automl.recipe import load_recipe
from automl.report import plot_pareto, plot_ranking, render_markdown, summary_table
from automl.train.progress import Reporter

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
# tests/test_ranking.py's TINY, one supernet, and no search.epsilons (some tests here give budgets)
BASE = ["data.dataset=synthetic", "data.synthetic.channels=1", "data.synthetic.num_train=128",
        "data.synthetic.num_test=64", "data.batch_size=32", "data.theta_batch_size=32", "search.weight_epochs=1",
        "search.theta_epochs=1", "search.lam=2", "retrain.epochs=1", "export.onnx=false", "search.log_every=2",
        "search.supernets=1"]
TINY = BASE + ["search.epsilons=[0,0.5]"]
RANKING = ["ranking.archs=3", "ranking.bn_batches=1"]


def _strict(text: str):
    """``text`` parsed as RFC 8259 JSON: the tokens NaN, Infinity and -Infinity are refused."""
    def refuse(token):
        raise ValueError(f"not JSON: {token}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def drawn(monkeypatch):
    """What the plots draw: ``points`` (the (x, y) of each marker line plotted) and ``ylabels``."""
    seen = {"points": [], "ylabels": []}
    plot, set_ylabel = matplotlib.axes.Axes.plot, matplotlib.axes.Axes.set_ylabel

    def spy_plot(self, *args, **kwargs):
        lines = plot(self, *args, **kwargs)
        for line in lines:
            if line.get_marker() not in (None, "None", ""):
                seen["points"] += list(zip(line.get_xdata(), line.get_ydata()))
        return lines

    def spy_ylabel(self, label, *args, **kwargs):
        seen["ylabels"].append(label)
        return set_ylabel(self, label, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy_plot)
    monkeypatch.setattr(matplotlib.axes.Axes, "set_ylabel", spy_ylabel)
    return seen


# ---- 1. strict JSON, and an undefined rank correlation ------------------------------------------------

def test_json_files_write_non_finite_numbers_as_null(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"tau": float("nan"), "inf": [float("inf"), -float("inf"), 1.5],
                             "deep": {"np": np.float64("nan"), "ok": 2, "s": "NaN"}, "t": (0.25, float("nan"))})
    text = path.read_text()
    assert "NaN," not in text and "Infinity" not in text
    assert _strict(text) == {"tau": None, "inf": [None, None, 1.5], "deep": {"np": None, "ok": 2, "s": "NaN"},
                             "t": [0.25, None]}


def test_summary_of_a_constant_truth_has_no_correlation():
    entries = [{"supernet_loss": 1.0 + j, "supernet_loss_batch_stats": 2.0 + j, "supernet_accuracy": 0.1 * j,
                "supernet_accuracy_batch_stats": 0.2, "retrainings": [{"seed": 0, "test_loss": 0.5,
                                                                       "test_accuracy": 0.5 + 0.1 * j}]}
               for j in range(3)]
    rk = summarize(entries, "loss")  # every architecture has the same test loss
    assert rk["kendall_tau"] is None and rk["spearman"] is None and rk["kendall_tau_batch_stats"] is None
    rk = summarize(entries, "accuracy")  # the truth varies; the batch-statistics score does not
    assert rk["kendall_tau"] == pytest.approx(1.0) and rk["kendall_tau_batch_stats"] is None


def test_an_undefined_rank_correlation_is_null_in_results_json_and_explained_in_the_report(tmp_path, monkeypatch):
    # every stand-alone network evaluates to the same test loss and accuracy: the truth is constant
    real = final_stages.evaluate
    monkeypatch.setattr(final_stages, "evaluate", lambda *a, **k: (real(*a, **k), (0.75, 0.5))[1])
    out = tmp_path / "run"
    recipe = load_recipe(QUICK, TINY + RANKING)
    res = Run(recipe, out, tty=False).execute()
    monkeypatch.undo()
    on_disk = _strict((out / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(res))
    rk = on_disk["ranking"]
    assert rk["kendall_tau"] is None and rk["spearman"] is None and rk["kendall_tau_batch_stats"] is None
    report = (out / "report.md").read_text()
    assert "nan" not in report  # as Python formats NaN
    assert "**undefined**" in report and "every architecture got the same test loss (0.75)" in report
    assert (out / "ranking.png").read_bytes()[:4] == b"\x89PNG"

    # read back: a --resume of the finished run, and automl rank (Run.rank, as `automl rank` calls it)
    resumed = Run(recipe, out, resume=True, tty=False).execute()
    assert resumed["ranking"] == rk and (out / "report.md").read_text() == report
    ranked = Run(load_recipe(out / "recipe.resolved.yaml"), out, tty=False).rank()
    assert ranked["kendall_tau"] is None and ranked["archs"] == rk["archs"]  # its retrainings reused
    assert _strict((out / "results.json").read_text())["ranking"]["kendall_tau"] is None


def test_a_null_test_loss_in_results_json_is_read_back_as_nan():
    recipe = load_recipe(QUICK, TINY + RANKING)
    choices = [["a"], ["b"], ["c"]]
    ranking = {"retrain_epochs": 1, "archs": [
        {"choices": c, "params": 10 + j, "retrainings": [{"seed": 0, "test_loss": None if j == 1 else 0.5,
                                                           "test_accuracy": 0.5}]}
        for j, c in enumerate(choices)]}
    rec = recorded_retrainings(recipe, ranking, choices)
    assert math.isnan(rec[(1, 0)]["test_loss"]) and rec[(0, 0)]["test_loss"] == 0.5
    entries = [{"supernet_loss": 1.0 + j, "supernet_loss_batch_stats": 1.0 + j, "supernet_accuracy": 0.1 * j,
                "supernet_accuracy_batch_stats": 0.1 * j, "params": rec[(j, 0)]["params"],
                "retrainings": [{"seed": 0, **{k: rec[(j, 0)][k] for k in ("test_loss", "test_accuracy")}}]}
               for j in range(3)]
    rk = summarize(entries, "loss")
    assert rk["kendall_tau"] is None
    results = {"recipe": "r", "method": "separate", "search_seconds": 1.0, "phase_seconds": {},
               "architectures": [], "ranking": json.loads(json.dumps(rk).replace("NaN", "null"))}  # as read back
    report = render_markdown(results)
    assert "a value is NaN or inf" in report and "nan" not in report
    assert plot_ranking(results)[:4] == b"\x89PNG"


# ---- 7. the random baseline's report --------------------------------------------------------------

def test_the_random_baselines_report_says_how_its_members_were_drawn(tmp_path, drawn):
    out = tmp_path / "run"
    res = Run(load_recipe(QUICK, BASE + ["search.method=random", "search.budgets=[null,40k]", "retrain.epochs=0"]),
              out, tty=False).execute()
    assert [a["test_accuracy"] for a in res["architectures"]] == [None, None]
    report = (out / "report.md").read_text()
    assert "adapted" not in report
    assert "`random` has no ε: each member is drawn uniformly among the architectures within its budget" in report
    # 8. no member was evaluated: pareto.png has no points (none at 0 %), and the report says so
    assert drawn["points"] == []
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert "pareto.png shows none of the 2 architectures: none has a test accuracy" in report


# ---- 8. pareto.png without the members that have no test accuracy ---------------------------------

def _member(cost, acc, budget=None, eps=0.0):
    return {"epsilon": eps, "budget": budget, "choices": ["x"], "params": int(cost), "cost": float(cost),
            "test_accuracy": acc, "weights": "retrained", "macs": 1e6, "latency_ms": None, "int8": None,
            "onnx": None}


def test_pareto_leaves_out_the_members_without_a_test_accuracy(drawn):
    results = {"recipe": "r", "method": "importance_sampling", "search_seconds": 1.0, "phase_seconds": {},
               "architectures": [_member(100, 0.9), _member(50, None, eps=0.5), _member(20, 0.7, eps=1.0)]}
    assert plot_pareto(results)[:4] == b"\x89PNG"
    assert sorted(drawn["points"]) == [(20.0, pytest.approx(70.0)), (100.0, pytest.approx(90.0))]
    assert "pareto.png leaves out the 1 architecture without a test accuracy" in render_markdown(results)
    every = {**results, "architectures": [_member(100, 0.9)]}
    assert "pareto.png" not in render_markdown(every).replace("](pareto.png)", "")


# ---- 9. a ranking without retraining, and 5. the ranking's own time -------------------------------

@pytest.fixture(scope="module")
def zero_epoch_ranking(tmp_path_factory):
    out = tmp_path_factory.mktemp("rank0") / "run"
    res = Run(load_recipe(QUICK, TINY + RANKING + ["ranking.retrain_epochs=0"]), out, tty=False).execute()
    return out, res


def test_a_ranking_without_retraining_says_its_truth_is_the_supernets_own_weights(zero_epoch_ranking, drawn):
    out, res = zero_epoch_ranking
    assert res["ranking"]["retrain_epochs"] == 0
    report = (out / "report.md").read_text()
    assert "retrained stand-alone" not in report and "stand-alone" not in report.split("## How well")[1]
    assert ("not retrained (`retrain_epochs: 0`; the truth is the test loss of the supernet's own weights on "
            "each path, BatchNorm recalibrated as for its score") in report
    plot_ranking(res)
    assert "test loss, supernet's own weights (BatchNorm recalibrated)" in drawn["ylabels"]
    assert not any("stand-alone" in label for label in drawn["ylabels"])
    # the same ranking had it been retrained for an epoch
    retrained = {**res, "ranking": {**res["ranking"], "retrain_epochs": 1}}
    assert "retrained stand-alone (once; the truth is the mean test loss)" in render_markdown(retrained)
    drawn["ylabels"].clear()
    plot_ranking(retrained)
    assert "stand-alone test loss" in drawn["ylabels"]


def test_the_ranking_section_records_its_own_time(zero_epoch_ranking):
    out, res = zero_epoch_ranking
    on_disk = _strict((out / "results.json").read_text())
    assert on_disk["ranking"]["seconds"] == round(res["phase_seconds"]["ranking"], 3) == \
        on_disk["phase_seconds"]["ranking"]
    assert on_disk["ranking"]["seconds"] > 0


# ---- 11. search.method simultaneous logs the adapted ε ------------------------------------------

def test_simultaneous_with_budgets_logs_the_adapted_epsilon(tmp_path):
    out = tmp_path / "run"
    res = Run(load_recipe(QUICK, BASE + ["search.method=simultaneous", "search.budgets=[null,20k]",
                                         "search.weight_epochs=2", "retrain.epochs=0"]), out, tty=False).execute()
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = []
    for i, a in enumerate(res["architectures"]):
        mine = [m for m in lines if m["phase"] == f"simultaneous {'unconstrained' if i == 0 else 'budget=20k'}"
                and "split" not in m]
        assert len(mine) == 2 and all(len(m["epsilon"]) == 1 and len(m["expected_cost"]) == 1 for m in mine)
        assert mine[-1]["epsilon"][0] == pytest.approx(a["epsilon"])  # the last step's: the final ε
        logged.append([m["epsilon"][0] for m in mine])
    # the 20k member's ε adapts during the phase (from 0, its start); the unconstrained one's stays 0
    assert logged[0] == [0.0, 0.0] and 0 < logged[1][0] < logged[1][1]


def test_automl_rank_prints_an_undefined_correlation_as_such(tmp_path, monkeypatch, capsys):
    real = final_stages.evaluate
    monkeypatch.setattr(final_stages, "evaluate", lambda *a, **k: (real(*a, **k), (0.75, 0.5))[1])
    out = tmp_path / "run"
    Run(load_recipe(QUICK, TINY + RANKING), out, tty=False).execute()
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["rank", str(out)]) == 0  # the run's own retrainings, reused: the truth stays constant
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed.startswith("kendall_tau undefined  spearman undefined  (3 architectures")


def test_metrics_lines_write_a_non_finite_number_at_any_depth_as_null(tmp_path):
    reporter = Reporter(tmp_path / "metrics.jsonl")
    reporter.log(phase="theta", loss=float("nan"), epsilon=[0.0, float("inf")], expected_cost=[1.5, float("nan")])
    line = (tmp_path / "metrics.jsonl").read_text()
    fields = _strict(line)
    assert fields["loss"] is None and fields["epsilon"] == [0.0, None] and fields["expected_cost"] == [1.5, None]


def test_a_manifest_writes_a_non_finite_number_as_null(tmp_path):
    path = write_manifest(tmp_path, {"params": 10, "int8": {"test_accuracy": float("nan")}, "latency": {}})
    assert _strict(path.read_text())["int8"]["test_accuracy"] is None


@pytest.mark.parametrize("origin, said", [
    ({"from": None, "fingerprint": "f", "forced": False, "differs": []}, None),
    ({"from": "/runs/first", "fingerprint": "f", "forced": False, "differs": []},
     "Supernet: the trained supernet of `/runs/first` (weight phase skipped; trained with the settings this "
     "recipe asks for)."),
    ({"from": "/runs/first", "fingerprint": "f", "forced": True, "differs": ["search.weight_epochs: 6 there, 3 here"]},
     "Supernet: the trained supernet of `/runs/first` (weight phase skipped), **forced** (`--supernet-force` / "
     "`supernet_force: true`): it was trained with other settings: search.weight_epochs: 6 there, 3 here."),
])
def test_the_report_says_where_the_supernet_came_from(origin, said):
    results = {"recipe": "r", "method": "importance_sampling", "search_seconds": 1.0, "phase_seconds": {},
               "architectures": [], "supernet": origin}
    report = render_markdown(results)
    assert ("Supernet:" in report) == (said is not None)
    assert said is None or said in report


# ---- budgets alike in short form, and costs in full ---------------------------------------------------------

def test_budgets_alike_in_short_form_are_told_apart_and_costs_are_written_in_full():
    """1,234,567 and 1,235,000 were both "≤ 1.235M" in the table, the summary and the labels; a cost of
    2,393,962 parameters was "2.39396e+06"."""
    results = {"recipe": "r", "method": "importance_sampling", "search_seconds": 1.0, "phase_seconds": {},
               "architectures": [_member(2_393_962, 0.9, budget=2_400_000), _member(1_200_000, 0.8, budget=1_234_567),
                                 _member(1_100_000, 0.7, budget=1_235_000), _member(0.5, 0.6, budget=0.75)]}
    report = render_markdown(results)
    assert "≤ 1,234,567" in report and "≤ 1,235,000" in report and "≤ 1.235M" not in report
    assert "≤ 2.4M" in report and "≤ 0.75" in report  # no look-alike: short, as before
    assert "Latency:" not in report  # no member has a latency (export.onnx false): no line about how it was timed
    assert "| 2,393,962 |" in report and "e+06" not in report
    table = summary_table(results)
    cells = [list(c.cells) for c in table.columns]
    assert cells[0][1:3] == ["≤ 1,234,567", "≤ 1,235,000"] and cells[3][0] == "2,393,962" and cells[3][3] == "0.5"
