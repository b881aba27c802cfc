"""Lead's fixes of session 49: ``automl space profile`` computes in one process and is refused under torchrun, as
``automl export`` is (every process would time each piece on the same cores at once, and write one --out); where a
retraining's checkpoint after its last epoch resumes is said as done; a run's manifests record their members'
budgets; and what two reviews of the session's diff found."""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path

import pytest
import torch

import automl.train.loops as loops
from automl.cli import main
from automl.compile import load_compiled
from automl.export import export_architecture
from automl.pipeline.final_stages import RankingStage
from automl.pipeline.plan import build_plan
from automl.pipeline.rank import rank_command
from automl.pipeline.run import resume_position
from automl.pipeline.setup import load_spaces, recipe_costs
from automl.pipeline.state import RunState
from automl.recipe import load_recipe
from automl.report import render_markdown
from automl.search import MultiEpsilonSearch, get_searcher

DIGITS = str(Path(__file__).resolve().parents[1] / "spaces" / "digits.space")


@pytest.mark.parametrize("rank", ["0", "1"])
def test_space_profile_is_refused_under_torchrun(monkeypatch, capsys, tmp_path, rank):
    for key, value in (("WORLD_SIZE", "2"), ("RANK", rank), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")):
        monkeypatch.setenv(key, value)
    out = tmp_path / "latency.json"
    assert main(["space", "profile", DIGITS, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("automl space profile computes in one process") == (1 if rank == "0" else 0), err
    assert ("WORLD_SIZE=2" in err) if rank == "0" else err == ""
    assert not out.exists()


@pytest.mark.parametrize("command", [["check"], ["show"]])
def test_other_space_commands_run_under_torchrun(monkeypatch, capsys, command):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["space", *command, DIGITS]) == 0
    assert "one process" not in capsys.readouterr().err


def test_a_retrainings_checkpoint_after_its_last_epoch_is_said_as_done(tmp_path):
    """The retraining's last epoch is checkpointed before its evaluation and export: a resume there trains nothing,
    and says so (it said "retrain unconstrained epoch 2/2", as if the epoch were still to run)."""
    quick = str(Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml")
    r = load_recipe(quick, ["search.weight_epochs=2", "search.theta_epochs=2", "search.budgets=[null,80k]",
                            "search.supernets=1", "retrain.epochs=2", "ranking.archs=3", "threads=1", "device=cpu"])
    spaces = load_spaces(r)
    plan = build_plan(r, tmp_path, get_searcher(r.search.method), spaces, recipe_costs(r, spaces.search),
                      torch.device("cpu"))
    at = lambda key, epoch, step=0: resume_position(plan, RunState("x"), plan.keys.index(key), epoch, step)  # noqa
    assert at("retrain/0", 2) == "retrain unconstrained epoch 2/2 done, before its evaluation"
    assert at("ranking/1", 2) == "ranking 2/3 epoch 2/2 done, before its evaluation"
    assert at("retrain/1", 1) == "retrain budget=80k epoch 2/2"  # the last epoch still to train
    assert at("retrain/1", 1, 3) == "retrain budget=80k epoch 2/2, after step 3"


def test_a_runs_manifests_record_their_members_budgets(tmp_path):
    """results.json's ``budget`` of each member is in its export's manifest too (it had only ``epsilon``, which is
    the adapted multiplier: 0.0 for a budget that binds nothing, so nothing said it was the 80k member)."""
    out = tmp_path / "run"
    quick = str(Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml")
    assert main(["run", quick, "--out", str(out), "data.limit_train=192", "search.weight_epochs=1",
                 "search.theta_epochs=1", "search.budgets=[null,80k]", "search.lam=2", "search.supernets=1",
                 "retrain.epochs=0", "export.onnx=false", "threads=1", "device=cpu"]) == 0
    results = json.loads((out / "results.json").read_text())
    folders = sorted((out / "export").iterdir())  # budget-0-none, budget-1-80k
    budgets = [json.loads((f / "manifest.json").read_text())["budget"] for f in folders]
    assert budgets == [a["budget"] for a in results["architectures"]] == [None, 80000]


# ---------------------------------------------------------------- a diff review's findings (NL)

def test_lists_nested_past_a_tensors_dimensions_are_refused_as_costs_not_a_recursion_error():
    deep = [1.0]
    for _ in range(3000):
        deep = [deep]
    itself: list = []
    itself.append(itself)
    for costs in (deep, itself):
        with pytest.raises(ValueError, match="costs must be a table of numbers"):
            MultiEpsilonSearch([2], costs, epsilons=[0.0])


@pytest.mark.parametrize("macs, shown", [(999_960, "1M"), (999_949, "999.9k"), (400_000, "400k"), (1_234_567, "1.235M")])
def test_macs_at_a_units_edge_move_to_the_next_unit(macs, shown):
    results = {"recipe": "r", "method": "importance_sampling", "search_seconds": 1.0, "phase_seconds": {"theta": 1.0},
               "cost_metric": "params", "architectures": [
                   {"epsilon": 0.0, "budget": None, "choices": {}, "params": 10, "cost": 10, "macs": macs,
                    "test_accuracy": 0.5, "onnx": None, "latency_ms": None, "int8": None}]}
    row = next(line for line in render_markdown(results).splitlines() if line.startswith("| 0 |"))
    assert f"| {shown} |" in row, row


@pytest.mark.parametrize("argv, example", [
    (["R.yaml", "--set="], "automl run R.yaml search.lam=4"),              # an empty --set= is no override
    (["R.yaml", "--set=--out=x"], "automl run R.yaml search.lam=4"),       # nor an option given to it
    (["R.yaml", "seed=1", "--set", "a=1"], "automl run R.yaml seed=1 a=1"),  # the overrides given as they should be
])
def test_the_set_hint_of_run_shows_only_overrides(capsys, argv, example):
    with pytest.raises(SystemExit) as e:
        main(["run", *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"e.g. {example};" in err, err


@pytest.mark.parametrize("budget", ["abc", float("nan"), True])
def test_an_export_budget_that_is_no_number_is_refused_before_anything_is_written(tmp_path, budget):
    cs = load_compiled(DIGITS)
    out = tmp_path / "x"
    with pytest.raises(ValueError, match="budget must be None"):
        export_architecture(cs, [d.choices[0] for d in cs.decisions], out, onnx=False, budget=budget)
    assert not out.exists()


def test_a_re_export_keeps_the_budget_only_with_its_cost_metric(tmp_path, capsys):
    cs = load_compiled(DIGITS)
    export_architecture(cs, [d.choices[0] for d in cs.decisions], tmp_path / "a", onnx=False, space_path=DIGITS,
                        cost_metric="params", epsilon=0.0, budget=80_000)
    manifest = tmp_path / "a" / "manifest.json"
    assert main(["export", DIGITS, "--arch", str(manifest), "--out", str(tmp_path / "same")]) == 0
    assert json.loads((tmp_path / "same" / "manifest.json").read_text())["budget"] == 80_000
    m = json.loads(manifest.read_text())
    m["cost_metric"] = "latency"  # a metric this space does not price, and no latency cost recorded
    manifest.write_text(json.dumps(m))
    assert main(["export", DIGITS, "--arch", str(manifest), "--out", str(tmp_path / "other")]) == 0
    again = json.loads((tmp_path / "other" / "manifest.json").read_text())
    assert again.get("cost_metric") != "latency" and "budget" not in again  # 80k of latency's units would be wrong


def test_the_rank_command_a_stop_suggests_quotes_a_folder_with_a_space(tmp_path):
    out = tmp_path / "my runs" / "x"
    out.mkdir(parents=True)
    recipe = load_recipe(str(Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"),
                         ["ranking.archs=3", "ranking.retrain_epochs=1"])
    said = rank_command(recipe, out)
    assert said.startswith(f"automl rank '{out}' --archs 3 --retrain-epochs 1"), said


def test_a_ranking_retraining_frees_the_scored_supernet_before_building_its_network(tmp_path, monkeypatch):
    """The supernet scored for an architecture stayed referenced through the architecture's stand-alone retraining:
    on a GPU, the memory check before the retraining (for_training) counted it as taken."""

    scored, alive_at_build = [], []
    real_score, real_for_training = RankingStage._score, loops.for_training

    def score(self, *a, **k):
        net, paths, entry = real_score(self, *a, **k)
        scored.append(weakref.ref(net))
        return net, paths, entry

    def for_training(model, *a, **k):
        gc.collect()
        alive_at_build.append(sum(ref() is not None for ref in scored))
        return real_for_training(model, *a, **k)

    monkeypatch.setattr(RankingStage, "_score", score)
    monkeypatch.setattr(loops, "for_training", for_training)
    quick = str(Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml")
    assert main(["run", quick, "--out", str(tmp_path / "run"), "data.limit_train=192", "search.weight_epochs=1",
                 "search.theta_epochs=1", "search.lam=2", "search.supernets=1", "retrain.epochs=1", "ranking.archs=3",
                 "export.onnx=false", "threads=1", "device=cpu"]) == 0
    assert len(scored) == 3 and alive_at_build[-3:] == [0, 0, 0], (len(scored), alive_at_build)
