"""Lead's fixes of session 49: ``automl space profile`` computes in one process and is refused under torchrun, as
``automl export`` is (every process would time each piece on the same cores at once, and write one --out); where a
retraining's checkpoint after its last epoch resumes is said as done; a run's manifests record their members'
budgets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.pipeline.plan import build_plan
from automl.pipeline.run import resume_position
from automl.pipeline.setup import load_spaces, recipe_costs
from automl.pipeline.state import RunState
from automl.recipe import load_recipe
from automl.search import get_searcher

DIGITS = str(Path(__file__).resolve().parents[1] / "spaces" / "digits.space")


@pytest.mark.parametrize("rank", ["0", "1"])
def test_space_profile_is_refused_under_torchrun(monkeypatch, capsys, tmp_path, rank):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
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
