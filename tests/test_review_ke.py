"""Review KE: results.json writes the costs of metrics that count (params, MACs, a space file's metric of whole
numbers) as ints, by the export manifest's rule (:func:`automl.export.manifest.json_cost`): each member's ``cost``
and ``macs``, and each ranked architecture's ``cost``, in a fresh run, in ``automl rank``'s ranking, and in a
results.json written again from the checkpoint (``--resume`` of a finished run, an older automl's checkpoint or
results.json with ``26962.0``). A budget stays as the recipe holds it (a float), a latency stays a float, and
report.md reads the same as with floats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import automl.pipeline.final_stages
from automl.cli import main
from automl.pipeline import Run
from automl.pipeline.results import json_ranking_costs
from automl.pipeline.setup import load_spaces
from automl.recipe import load_recipe
from automl.report import render_markdown

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
TINY = ["data.dataset=synthetic", "data.synthetic.channels=1", "data.synthetic.num_train=128",
        "data.synthetic.num_test=64", "data.batch_size=32", "data.theta_batch_size=32", "search.weight_epochs=1",
        "search.theta_epochs=1", "search.lam=2", "retrain.epochs=1", "export.onnx=false", "search.log_every=2"]
RANKED = ["ranking.archs=3", "ranking.retrain_epochs=0", "ranking.bn_batches=1"]

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _count_types(res: dict) -> list[type]:
    """The types of every cost of a count results.json holds: each member's cost and macs, each ranked one's cost."""
    return ([type(a[k]) for a in res["architectures"] for k in ("cost", "macs")]
            + [type(a["cost"]) for a in (res.get("ranking") or {}).get("archs", [])])


def _as_floats(res: dict) -> dict:
    """``res`` as an older automl wrote it: every cost and MACs count a float (``26962.0``)."""
    res = json.loads(json.dumps(res))
    for a in res["architectures"]:
        a["cost"], a["macs"] = float(a["cost"]), float(a["macs"])
    for a in (res.get("ranking") or {}).get("archs", []):
        a["cost"] = float(a["cost"])
    return res


def test_a_fresh_run_writes_counts_as_ints_and_its_resume_too_with_the_same_report(tmp_path):
    recipe = load_recipe(QUICK, TINY + ["search.budgets=[null,30k]"] + RANKED)
    out = tmp_path / "run"
    res = Run(recipe, out, tty=False).execute()
    text = (out / "results.json").read_text()
    on_disk = json.loads(text)
    assert on_disk == json.loads(json.dumps(res))
    assert set(_count_types(on_disk)) == {int}, text
    assert len(_count_types(on_disk)) == 2 * 2 + 3
    assert all(a["cost"] > 0 and a["macs"] > 0 for a in on_disk["architectures"])
    # budgets as the recipe holds them (30k: 30000.0), not counted costs
    assert [a["budget"] for a in on_disk["architectures"]] == [None, 30000.0]
    assert type(on_disk["architectures"][1]["budget"]) is float
    # report.md's figures are the same as from the floats an older automl wrote (26,962, not 26,962.0)
    report = (out / "report.md").read_text()
    assert render_markdown(_as_floats(on_disk)) == report
    assert f"{on_disk['architectures'][0]['cost']:,} |" in report

    # an older automl's results.json (floats) of the finished run: --resume writes it again, the counts as ints
    (out / "results.json").write_text(json.dumps(_as_floats(on_disk)))
    again = Run(recipe, out, resume=True, tty=False).execute()
    written = json.loads((out / "results.json").read_text())
    assert set(_count_types(written)) == {int} and set(_count_types(again)) == {int}
    assert written["architectures"] == on_disk["architectures"]
    assert written["ranking"]["archs"] == on_disk["ranking"]["archs"]
    assert (out / "report.md").read_text() == report


def test_results_written_anew_from_an_older_checkpoint_write_the_ranked_costs_as_ints(tmp_path, monkeypatch):
    recipe = load_recipe(QUICK, TINY + ["search.epsilons=[0]"] + RANKED)
    out = tmp_path / "run"
    recorded = []

    def older(value, whole):  # the ranking entries an older automl's checkpoint holds: 26962.0
        recorded.append(value)
        return float(value)

    monkeypatch.setattr(automl.pipeline.final_stages, "json_cost", older)
    first = Run(recipe, out, tty=False).execute()
    assert len(recorded) == 3
    monkeypatch.undo()
    (out / "results.json").unlink()  # written anew from the last checkpoint
    res = Run(recipe, out, resume=True, tty=False).execute()
    written = json.loads((out / "results.json").read_text())
    assert [type(a["cost"]) for a in written["ranking"]["archs"]] == [int] * 3
    assert [a["cost"] for a in written["ranking"]["archs"]] == [int(v) for v in recorded]
    assert set(_count_types(res)) == {int} and set(_count_types(first)) == {int}


def test_automl_rank_writes_the_ranked_costs_as_ints(tmp_path, capsys):
    recipe = load_recipe(QUICK, TINY + ["search.epsilons=[0]"])
    out = tmp_path / "run"
    res = Run(recipe, out, tty=False).execute()
    assert main(["rank", str(out), "--archs", "3", "--retrain-epochs", "0"]) == 0
    capsys.readouterr()
    on_disk = json.loads((out / "results.json").read_text())
    assert [type(a["cost"]) for a in on_disk["ranking"]["archs"]] == [int] * 3
    assert on_disk["architectures"] == json.loads(json.dumps(res["architectures"]))
    assert set(_count_types(on_disk)) == {int}


def test_ranked_costs_follow_the_metrics_rule_and_leave_what_is_no_cost_alone():
    table = load_spaces(load_recipe(QUICK, TINY)).search.cost_table
    ranking = {"seeds": 1, "archs": [{"cost": 26962.0}, {"cost": 0.25}, {"cost": "x"}, {"cost": True}, {}, 7]}
    counted = json_ranking_costs(ranking, table, "params")
    assert counted["archs"] == [{"cost": 26962}, {"cost": 0.25}, {"cost": "x"}, {"cost": True}, {}, 7]
    assert type(counted["archs"][0]["cost"]) is int and counted["seeds"] == 1
    assert type(json_ranking_costs(ranking, table, "macs")["archs"][0]["cost"]) is int
    # a latency (milliseconds) is a real number, whole or not
    timed = json_ranking_costs(ranking, table, "latency")
    assert type(timed["archs"][0]["cost"]) is float
    assert ranking["archs"][0]["cost"] == 26962.0 and type(ranking["archs"][0]["cost"]) is float  # not changed
    assert json_ranking_costs(None, table, "params") is None
    assert json_ranking_costs({"archs": "x"}, table, "params") == {"archs": "x"}
