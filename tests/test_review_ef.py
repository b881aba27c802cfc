"""Review EF: what a finished run tells its user (results.json, report.md, ranking.png).

1. ranking.png's y label fits the figure: a ranking without retraining ("test accuracy [%], supernet's own weights
   (BatchNorm recalibrated)") ran off the plot at both ends.
2. ranking.png draws an architecture whose ``params`` results.json does not hold (null) in grey: it vanished.
3. report.md says whose weights a network not retrained has: with several supernets the first one's, with
   `simultaneous` its member's own (results.json's new ``supernets``); it said "the supernet's weights".
4. report.md's phase times say the time of a ranking `automl rank` measured (results.json's ``ranking.seconds``):
   their ``ranking`` was the run's own stages' time, not that of the ranking shown.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import automl.report as report
from automl.pipeline import Run
from automl.recipe import load_recipe
from automl.report import plot_ranking, render_markdown

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
# seconds: tests/test_report_output.py's BASE, one thread
TINY = ["device=cpu", "threads=1", "data.dataset=synthetic", "data.synthetic.channels=1",
        "data.synthetic.num_train=128", "data.synthetic.num_test=64", "data.batch_size=32",
        "data.theta_batch_size=32", "search.weight_epochs=1", "search.theta_epochs=1", "search.lam=2",
        "retrain.epochs=0", "export.onnx=false", "search.log_every=2", "search.budgets=[null,40k]"]


def _ranked(j: int, params=None) -> dict:
    return {"choices": [f"c{j}"], "params": params, "supernet_loss": 1.0 + j, "supernet_accuracy": 0.1 * j,
            "supernet_loss_batch_stats": 1.0 + j, "supernet_accuracy_batch_stats": 0.1 * j,
            "test_loss": 2.0 - 0.1 * j, "test_accuracy": 0.2 + 0.1 * j}


def _results(truth="accuracy", retrain_epochs=0, seeds=1, archs=None, **ranking) -> dict:
    archs = archs or [_ranked(j, 1000 * (j + 1)) for j in range(3)]
    return {"recipe": "quickstart", "method": "importance_sampling", "search_seconds": 1.0,
            "phase_seconds": {"weights": 0.5, "theta": 0.5, "ranking": 3.1}, "architectures": [],
            "ranking": {"kendall_tau": 1.0, "spearman": 1.0, "kendall_tau_batch_stats": 1.0,
                        "pairs": {"total": 3, "concordant": 3, "discordant": 0, "tied": 0}, "archs": archs,
                        "truth": truth, "seeds": seeds, "retrain_epochs": retrain_epochs, **ranking}}


@pytest.fixture
def figures(monkeypatch):
    """The figures the plots draw, as they were saved."""
    seen = []
    real = report._png

    def spy(fig, ax, labels=()):
        seen.append((fig, ax))
        return real(fig, ax, labels)

    monkeypatch.setattr(report, "_png", spy)
    return seen


# ---- 1. and 2. ranking.png ---------------------------------------------------------------------------------

@pytest.mark.parametrize("truth, retrain_epochs, seeds", [("accuracy", 0, 1), ("loss", 0, 1), ("accuracy", 5, 12)])
def test_the_ranking_plots_y_label_fits_the_figure(figures, truth, retrain_epochs, seeds):
    plot_ranking(_results(truth, retrain_epochs, seeds))
    (fig, ax), = figures
    label = ax.yaxis.label
    box = label.get_window_extent(fig.canvas.get_renderer())
    assert 0 <= box.y0 and box.y1 <= fig.bbox.height, (box, fig.bbox)
    assert 0 <= box.x0, box
    words = " ".join(label.get_text().split())
    assert truth in words and (("supernet's own weights" in words) == (retrain_epochs == 0))
    assert (f"mean of {seeds} seeds" in words) == (seeds > 1)


def test_an_architecture_without_params_is_drawn_in_the_ranking_plot(figures):
    plot_ranking(_results(archs=[_ranked(0, 1000), _ranked(1, None), _ranked(2, 3000)]))
    (fig, ax), = figures
    (points,) = ax.collections
    colours = points.get_facecolors()
    assert len(colours) == 3 and all(c[3] > 0 for c in colours), colours  # none transparent


# ---- 3. whose weights a network not retrained has ------------------------------------------------------------

def _not_retrained(text: str) -> str:
    (line,) = [p for p in text.split("\n\n") if p.startswith("Not retrained")]
    return line


@pytest.fixture(scope="module")
def two_supernets(tmp_path_factory):
    out = tmp_path_factory.mktemp("ef") / "run"
    res = Run(load_recipe(QUICK, TINY + ["search.supernets=2"]), out, tty=False).execute()
    return out, res


def test_a_network_not_retrained_from_several_supernets_has_the_first_ones_weights(two_supernets):
    out, res = two_supernets
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["supernets"] == res["supernets"] == 2
    assert [a["weights"] for a in on_disk["architectures"]] == ["supernet", "supernet"]
    line = _not_retrained((out / "report.md").read_text())
    assert "the weights of the first of the 2 supernets (`search.supernets`) on its path" in line, line
    one = _not_retrained(render_markdown({**on_disk, "supernets": 1}))
    assert "each network has the supernet's weights on its path" in one, one
    older = _not_retrained(render_markdown({k: v for k, v in on_disk.items() if k != "supernets"}))
    assert older == one  # an older results.json, without the count


def test_a_network_not_retrained_by_simultaneous_has_its_members_own_supernets_weights(two_supernets):
    _, res = two_supernets
    sim = {**json.loads(json.dumps(res)), "method": "simultaneous", "searcher_mode": "interleaved",
           "supernets": 1}
    line = _not_retrained(render_markdown(sim))
    assert "its member's own supernet's weights (`simultaneous` trains a supernet per member)" in line, line
    line = _not_retrained(render_markdown({**sim, "supernets": 3}))
    assert "the first of its member's own 3 supernets" in line, line


def test_the_random_baseline_records_no_supernets(tmp_path):
    res = Run(load_recipe(QUICK, TINY + ["search.method=random"]), tmp_path / "run", tty=False).execute()
    assert res["supernets"] == 0 and "Not retrained" not in (tmp_path / "run" / "report.md").read_text()


# ---- 4. the time of the ranking automl rank measured ------------------------------------------------------------

def _phase_times(text: str) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.startswith("Phase times:")]
    return line


def test_the_phase_times_say_the_time_of_the_ranking_automl_rank_measured():
    # automl rank's (it records where it computed): its own time beside the run's phase times
    ranked = _phase_times(render_markdown(_results(seconds=4.972, device="cpu", world_size=1)))
    assert ranked == ("Phase times: weights 0.5 s, theta 0.5 s, ranking 3.1 s; the ranking below was measured by "
                      "`automl rank` in 5.0 s."), ranked
    # the run's own ranking: its time is the phase time; the ranking section itself holds no time (two runs'
    # sections compare equal)
    own = render_markdown(_results(seconds=3.1))
    assert _phase_times(own) == "Phase times: weights 0.5 s, theta 0.5 s, ranking 3.1 s."
    assert " s." not in own.split("## How well")[1] and " s." not in render_markdown(
        _results(seconds=4.972, device="cpu", world_size=1)).split("## How well")[1]


# ---- 5. a results.json the report can read is one it can write report.md from ------------------------------------

def test_members_named_one_network_with_weights_automl_does_not_write_with_it_are_reported():
    """``same_network_as`` on an untrained member (results.json edited: automl writes it for a retrained one):
    results_problem finds nothing wrong, and report.md was a KeyError (`automl rank`: a traceback)."""
    member = {"epsilon": None, "budget": None, "choices": ["a", "b"], "params": 10, "cost": 10.0,
              "test_accuracy": None, "weights": "untrained", "macs": 1e3}
    results = {"recipe": "r", "method": "random", "search_seconds": 0.0, "phase_seconds": {},
               "architectures": [member, {**member, "same_network_as": 0}]}
    assert report.results_problem(results) is None
    text = render_markdown(results)
    assert "The members random 0 and random 1 are one network (the same choices)" in text, text
