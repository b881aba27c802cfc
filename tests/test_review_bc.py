"""Review BC: what a finished run reports. A results.json edited or damaged (a key missing, null where a number
was, a member that is not an object) stops ``automl rank`` with one message naming the file and the key before
it computes anything; a damaged ranking section is left out when a finished run is resumed, not a traceback;
the report reads what an older automl wrote; an MPLBACKEND matplotlib does not know does not stop the plots."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import automl.pipeline.final_stages as final_stages
from automl.cli import main
from automl.errors import UserError
from automl.pipeline import Run
from automl.recipe import load_recipe
from automl.report import render_markdown

from helpers import cli_said as cli
from test_ranking import QUICK, TINY  # the ranking tests' tiny synthetic run

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

ROOT = Path(__file__).resolve().parents[1]
RANKED = TINY + ["search.supernets=1", "ranking.archs=3", "ranking.bn_batches=1"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished run of RANKED (its report holds a ranking); each test works on a copy (:func:`_copy`)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("bc") / "run"
        Run(load_recipe(QUICK, RANKED), out, tty=False).execute()
    finally:
        torch.set_num_threads(n)
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run, out)
    return out


def _edit(out: Path, change) -> bytes:
    """results.json of ``out`` changed by ``change(results)``; its new bytes."""
    path = out / "results.json"
    results = json.loads(path.read_text())
    change(results)
    path.write_text(json.dumps(results, indent=2))
    return path.read_bytes()


def _member(i: int, key: str, value):
    return lambda r: r["architectures"][i].__setitem__(key, value)


# ---- automl rank on a results.json edited or damaged --------------------------------------------------------

@pytest.mark.parametrize("change,said", [
    (lambda r: r.__setitem__("search_seconds", None), "search_seconds: null is not a number"),
    (lambda r: r["phase_seconds"].__setitem__("weights", None), "phase_seconds.weights: null is not a number"),
    (lambda r: r.pop("method"), "method: missing"),
    (lambda r: r["architectures"][0].pop("cost"), "architectures[0].cost: missing"),
    (_member(1, "params", "many"), 'architectures[1].params: "many" is not a whole number'),
    (lambda r: r["architectures"].__setitem__(1, 5), "architectures[1]: 5 is not an object"),
    (lambda r: r.__setitem__("supernet", "elsewhere"), 'supernet: "elsewhere" is not an object'),
], ids=["null seconds", "null phase", "no method", "no cost", "params as text", "member a number", "supernet"])
def test_automl_rank_names_the_key_of_a_damaged_results_json_before_it_computes(finished, tmp_path, capsys,
                                                                              monkeypatch, change, said):
    """Before: the whole ranking was computed, then report.md's writing raised KeyError or TypeError (exit 1,
    a traceback), on every try."""
    out = _copy(finished, tmp_path)
    damaged = _edit(out, change)
    scored = []
    monkeypatch.setattr(final_stages.RankingStage, "run", lambda self, *a: scored.append(self.j))
    code, text = cli(capsys, "rank", out)
    assert code == 2, text
    assert f"error: {out / 'results.json'}: {said} (the file is not as the run wrote it" in text, text
    assert "move it away (automl rank then writes a new one from the run's last checkpoint)" in text
    assert scored == []  # nothing computed
    assert (out / "results.json").read_bytes() == damaged  # nor written


def test_the_way_out_the_message_gives_works_a_results_json_moved_away_is_written_anew(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path)
    before = json.loads((out / "results.json").read_text())
    (out / "results.json").rename(tmp_path / "aside.json")
    code, text = cli(capsys, "rank", out)
    assert code == 0, text
    after = json.loads((out / "results.json").read_text())
    assert [a["choices"] for a in after["architectures"]] == [a["choices"] for a in before["architectures"]]
    assert after["ranking"]["archs"] == before["ranking"]["archs"]


OPTIONAL = ("latency_protocol", "supernet", "cost_metric", "utility", "cost_normalization", "threads", "device",
            "world_size")
MEMBER_OPTIONAL = ("test_accuracy", "weights", "macs", "int8", "se", "onnx", "latency_ms", "budget")


def test_automl_rank_reads_a_results_json_without_the_keys_an_older_automl_did_not_write(finished, tmp_path,
                                                                                         capsys):
    """The check asks only for what report.md cannot be written without: a member with no accuracy (not
    evaluated), no latency protocol, no supernet record, ... is reported with "—"."""
    out = _copy(finished, tmp_path)

    def older(r):
        for k in OPTIONAL:
            r.pop(k, None)
        for a in r["architectures"]:
            for k in MEMBER_OPTIONAL:
                a.pop(k, None)
        r["architectures"][1]["params"] = None
    _edit(out, older)
    code, text = cli(capsys, "rank", out)
    assert code == 0, text
    report = (out / "report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| 0")]
    assert len(rows) == 2 and all(" — |" in row for row in rows), report
    assert "None" not in report and "nan" not in report


# ---- a finished run resumed: a damaged ranking section -------------------------------------------------------

@pytest.fixture(scope="module")
def ranked_by_command(tmp_path_factory) -> Path:
    """A finished run without a ranking section in its recipe, ranked by ``automl rank --archs 3``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("bc") / "run"
        Run(load_recipe(QUICK, UNRANKED), out, tty=False).execute()
        assert main(["rank", str(out), "--archs", "3"]) == 0
    finally:
        torch.set_num_threads(n)
    return out


UNRANKED = TINY + ["search.supernets=1"]
DAMAGED_RANKINGS = {"no pairs": lambda r: r["ranking"].pop("pairs"),
                    "an arch as text": lambda r: r["ranking"]["archs"].__setitem__(0, "x"),
                    "tau as text": lambda r: r["ranking"].__setitem__("kendall_tau", "high")}


@pytest.mark.parametrize("damage", DAMAGED_RANKINGS)
def test_a_finished_run_resumed_leaves_out_the_ranking_automl_rank_wrote_when_its_report_cannot_show_it(
        ranked_by_command, tmp_path, capsys, damage):
    """Before: KeyError 'pairs' or TypeError (exit 1, a traceback) on every --resume; "high" was kept, and the
    report said τ was undefined. Now as a ranking that is not an object: left out (automl rank measures it
    again)."""
    out = _copy(ranked_by_command, tmp_path)
    _edit(out, DAMAGED_RANKINGS[damage])
    code, text = cli(capsys, "run", QUICK, *UNRANKED, "--out", out, "--resume")
    assert code == 0, text
    assert "ranking" not in json.loads((out / "results.json").read_text())
    assert "How well the supernet ranks" not in (out / "report.md").read_text()
    assert not (out / "ranking.png").exists()


@pytest.mark.parametrize("damage", DAMAGED_RANKINGS)
def test_a_finished_run_resumed_writes_its_own_ranking_over_a_damaged_one(finished, tmp_path, capsys, damage):
    """The run's recipe has a ranking section: the resumed report has the ranking of its checkpoint."""
    out = _copy(finished, tmp_path)
    before = json.loads((out / "results.json").read_text())["ranking"]
    _edit(out, DAMAGED_RANKINGS[damage])
    code, text = cli(capsys, "run", QUICK, *RANKED, "--out", out, "--resume")
    assert code == 0, text
    assert json.loads((out / "results.json").read_text())["ranking"] == before
    assert "How well the supernet ranks" in (out / "report.md").read_text()


@pytest.mark.parametrize("run", ["finished", "ranked_by_command"])
def test_a_finished_run_resumed_keeps_its_ranking_section(request, tmp_path, capsys, run):
    out = _copy(request.getfixturevalue(run), tmp_path)
    before = json.loads((out / "results.json").read_text())["ranking"]
    code, text = cli(capsys, "run", QUICK, *(RANKED if run == "finished" else UNRANKED), "--out", out, "--resume")
    assert code == 0, text
    assert json.loads((out / "results.json").read_text())["ranking"] == before


# ---- report.md of an edited entry ---------------------------------------------------------------------------

def _results(**extra) -> dict:
    return {"recipe": "r", "method": "separate", "search_seconds": 1.0, "phase_seconds": {"weights": 1.0},
            "architectures": [{"epsilon": 0.0, "choices": ["a"], "params": 10, "cost": 10.0,
                               "test_accuracy": 0.5, **extra}]}


def test_an_int8_entry_without_its_size_is_reported_without_one():
    report = render_markdown(_results(int8={"test_accuracy": 0.5, "latency_ms": 1.0, "fp32_size_bytes": 40}))
    assert "| 1 ms, 50.00 %, — |" in report


def test_a_ranking_of_one_architecture_says_why_it_has_no_correlation():
    arch = {"params": 10, "supernet_loss": 1.0, "test_loss": 2.0, "supernet_loss_batch_stats": 1.0}
    rk = {"kendall_tau": None, "spearman": None, "kendall_tau_batch_stats": None, "truth": "loss", "seeds": 1,
          "pairs": {"total": 0, "concordant": 0, "discordant": 0, "tied": 0}, "archs": [arch]}
    report = render_markdown({**_results(), "ranking": rk})
    assert "is not a number: fewer than two architectures." in report
    assert "same test loss" not in report


# ---- matplotlib's backend ------------------------------------------------------------------------------------

DRAW = """
import json, os, sys
from automl.report import plot_pareto
png = plot_pareto({"recipe": "r", "method": "separate", "architectures": [
    {"epsilon": 0.0, "choices": ["a"], "cost": 10.0, "test_accuracy": 0.5}]})
import matplotlib.pyplot as plt
print(json.dumps([png[:4].hex(), os.environ["MPLBACKEND"], plt.get_backend().lower()]))
"""


@pytest.mark.parametrize("backend,pyplot", [("inline", "agg"), ("svg", "svg")])
def test_the_plots_are_drawn_whatever_mplbackend_says_and_pyplot_gets_it_as_before(backend, pyplot):
    """Before: ``MPLBACKEND=inline`` (a notebook's, outside one) made the report stage raise ValueError after
    the whole run (exit 1), and again on each --resume. A backend matplotlib knows is pyplot's as before."""
    env = {**os.environ, "MPLBACKEND": backend, "DISPLAY": ""}
    p = subprocess.run([sys.executable, "-c", DRAW], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == ["89504e47", backend, pyplot]


def test_run_rank_from_python_refuses_a_damaged_results_json_before_it_computes(finished, tmp_path, monkeypatch):
    """The Python API (``Run(...).rank()``) checks results.json as ``automl rank`` does, before a retraining."""
    out = _copy(finished, tmp_path)
    damaged = _edit(out, lambda r: r.__setitem__("search_seconds", None))
    scored = []
    monkeypatch.setattr(final_stages.RankingStage, "run", lambda self, *a: scored.append(self.j))
    with pytest.raises(UserError, match=r"search_seconds: null is not a number \(the file is not as the run"):
        Run(load_recipe(out / "recipe.resolved.yaml"), out).rank()
    assert scored == [] and (out / "results.json").read_bytes() == damaged
