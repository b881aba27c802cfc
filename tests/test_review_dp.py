"""Review dp: the ranking's statistics and choices (automl/ranking.py, automl/pipeline/rank.py,
automl/commands/rank.py)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

import automl.commands.rank as rank_command
from automl.cli import main
from automl.ranking import mean_over_seeds, summarize

ROOT = Path(__file__).resolve().parents[1]


def _entry(score: float, accuracies: list[float]) -> dict:
    return {"choices": [], "params": 1, "cost": 1.0, "supernet_loss": 1.0 - score, "supernet_accuracy": score,
            "supernet_loss_batch_stats": 1.0 - score, "supernet_accuracy_batch_stats": score,
            "retrainings": [{"seed": s, "test_loss": 1.0 - a, "test_accuracy": a} for s, a in enumerate(accuracies)]}


# ---- a tie in the mean over seeds is a tie ------------------------------------------------------

@pytest.mark.parametrize("n,seeds", [(360, 3), (360, 4), (10_000, 3)])
def test_means_of_the_same_number_right_are_equal_whatever_the_split_and_order(n, seeds):
    """Test accuracies are (number right) / n: two architectures whose retrainings got the same total right
    have the same mean accuracy, a tie, however the seeds split it and in whatever order they came."""
    means: dict[int, set] = {}
    for counts in itertools.combinations_with_replacement(range(n - (14 if seeds < 4 else 8), n + 1), seeds):
        for order in set(itertools.permutations(counts)):
            m = mean_over_seeds([{"test_loss": 0.0, "test_accuracy": c / n} for c in order])["test_accuracy"]
            assert m == pytest.approx(sum(counts) / (n * seeds), rel=1e-12, abs=0)
            means.setdefault(sum(counts), set()).add(m)
    assert all(len(m) == 1 for m in means.values()), {t: m for t, m in means.items() if len(m) > 1}


def test_a_tied_mean_accuracy_counts_as_a_tie_in_tau_b_and_rho():
    # the first two architectures both got 918 of 3 x 360 test images right (0.85), in another order
    n = 360
    entries = [_entry(0.5, [300 / n, 303 / n, 315 / n]), _entry(0.6, [315 / n, 300 / n, 303 / n]),
               _entry(0.7, [1.0, 1.0, 1.0])]
    rk = summarize(entries, "accuracy")
    assert rk["archs"][0]["test_accuracy"] == rk["archs"][1]["test_accuracy"]
    assert rk["pairs"] == {"total": 3, "concordant": 2, "discordant": 0, "tied": 1, "undefined": 0}
    # τ-b = 2 / sqrt(3 x 2) = 0.816 (scipy.stats.kendalltau), not 1.0; ρ of ranks (1, 2, 3) and (1.5, 1.5, 3)
    assert rk["kendall_tau"] == pytest.approx(2 / math.sqrt(6), abs=1e-12)
    assert rk["spearman"] == pytest.approx(math.sqrt(3) / 2, abs=1e-12)


def test_one_retraining_is_its_own_mean_and_a_diverged_one_is_nan():
    r = [{"seed": 0, "test_loss": 0.1 + 0.2, "test_accuracy": 301 / 360}]
    assert mean_over_seeds(r) == {"test_loss": 0.1 + 0.2, "test_accuracy": 301 / 360}  # bit for bit
    m = mean_over_seeds([{"test_loss": float("nan"), "test_accuracy": 0.5}, {"test_loss": 1.0, "test_accuracy": 0.7}])
    assert math.isnan(m["test_loss"]) and m["test_accuracy"] == pytest.approx(0.6)
    assert mean_over_seeds([{"test_loss": math.inf, "test_accuracy": 0.5}] * 2)["test_loss"] == math.inf


# ---- automl rank's last line: why a correlation is undefined ------------------------------------

def _fake_rank(monkeypatch, tmp_path, tau, rho):
    """A run folder automl rank reads (its recipe) and a Run whose ranking is (tau, rho): no computation."""
    out = tmp_path / "run"
    out.mkdir()
    text = (ROOT / "recipes" / "quickstart.yaml").read_text().replace("../spaces/", f"{ROOT / 'spaces'}/")
    (out / "recipe.resolved.yaml").write_text(text)
    ranking = {"kendall_tau": tau, "spearman": rho, "archs": [{}] * 3, "seeds": 1, "truth": "loss",
               "retrain_epochs": 1}

    class FakeLock:  # automl rank holds the run folder's lock while it ranks
        def acquire(self, then: str = "", look: bool = False) -> None:
            pass

        def release(self) -> None:
            pass

    class FakeRun:
        def __init__(self, recipe, folder):
            self.lock = FakeLock()

        def rank(self):
            return ranking

    monkeypatch.setattr(rank_command, "Run", FakeRun)
    return out


def test_automl_rank_says_why_a_correlation_can_be_undefined_and_where_it_is_said(tmp_path, capsys, monkeypatch):
    out = _fake_rank(monkeypatch, tmp_path, None, None)
    assert main(["rank", str(out)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("kendall_tau undefined  spearman undefined")
    assert "NaN" in line and "same score" in line and str(out / "report.md") in line


def test_automl_rank_with_defined_correlations_prints_them_alone(tmp_path, capsys, monkeypatch):
    out = _fake_rank(monkeypatch, tmp_path, 0.5, 0.625)
    assert main(["rank", str(out)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line == "kendall_tau 0.5000  spearman 0.6250  (3 architectures, 1 retraining(s) each, truth: mean test loss)"
