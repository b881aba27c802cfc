"""Review AB: retrain.se with no retraining is refused; the sandwich rule's smallest path on a cell space is one
in which information flows (no `none` edge); results.json records the random baseline's search.random_budgets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.errors import RecipeError
from automl.pipeline.members import Members
from automl.recipe import load_recipe
from automl.report import render_markdown, summary_table
from automl.train.sampling import sandwich_ends

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "recipes" / "quickstart.yaml"
SPACES = ROOT / "spaces"


def _error_of(overrides, path=QUICK) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    assert info.value.exit_code == 2
    return info.value


# ---- retrain.se with retrain.epochs 0 -------------------------------------------------------------------

def test_retrain_se_without_retraining_is_refused_naming_both_keys_and_the_fix():
    e = _error_of(["retrain.epochs=0", "retrain.se=0.25"])
    msg = str(e)
    assert e.key == "retrain.se" and "retrain.epochs 0" in msg and "untrained squeeze-and-excitation" in msg, msg
    assert "set retrain.epochs above 0" in msg and "retrain.se: 0" in msg, msg
    e = _error_of(["retrain.se=0.25", "retrain.epochs=0"])  # the key set last is the one named
    assert e.key == "retrain.epochs" and "retrain.se (0.25)" in str(e), str(e)


def test_the_imagenet_recipe_without_retraining_is_refused_at_retrain_epochs():
    """recipes/imagenet.yaml has retrain.se 0.25: a quick try with retrain.epochs=0 names that override."""
    e = _error_of(["retrain.epochs=0", "data.root=/data"], ROOT / "recipes" / "imagenet.yaml")
    assert e.key == "retrain.epochs" and "override retrain.epochs=0" in str(e), str(e)


def test_retrain_se_without_retraining_in_the_file_names_its_line(tmp_path):
    text = QUICK.read_text().replace("retrain:\n  epochs: 25\n", "retrain:\n  epochs: 0\n  se: 0.25\n")
    assert text != QUICK.read_text()
    path = tmp_path / "q.yaml"
    path.write_text(text.replace("../spaces/", str(SPACES) + "/"))
    e = _error_of([], path)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t == "  se: 0.25")
    assert e.key == "retrain.se" and f"q.yaml:{line}:" in str(e), str(e)


def test_retrain_se_without_retraining_exits_2_before_training(tmp_path, capsys):
    small = ["search.weight_epochs=1", "search.theta_epochs=1", "search.supernets=1", "data.limit_train=64",
             "export.onnx=false", "device=cpu"]  # short, should the check ever let it run
    code = main(["run", str(QUICK), *small, "retrain.epochs=0", "retrain.se=0.25", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "retrain.se" in err and "retrain.epochs" in err and "Traceback" not in err, err
    assert not (tmp_path / "run" / "results.json").exists()


@pytest.mark.parametrize("overrides", [
    ["retrain.epochs=1", "retrain.se=0.25"],         # retrained: the layers are trained
    ["retrain.epochs=0", "retrain.se=0"],            # the supernet's networks as searched
    ["retrain.epochs=0", "retrain.se=0.25", "search.method=random"],  # no supernet: exported "untrained" anyway
])
def test_retrain_se_is_accepted_where_nothing_untrained_passes_for_trained(overrides):
    load_recipe(QUICK, overrides)


# ---- the sandwich rule's smallest path on a cell space ----------------------------------------------------

def _op_decisions(cs) -> set[int]:
    return {d for t in cs.plan.templates for n in t.nodes for d in n.op_decisions}


@pytest.mark.parametrize("name", ["darts", "nasbench201"])
def test_the_smallest_sandwich_path_of_a_cell_space_has_no_none_edge(name):
    """Every op `none` is the table's cheapest network but computes zeros; the smallest path is the cheapest
    without `none` (ops of no parameters remain: pooling, identity), so costs no more here."""
    cs = load_compiled(str(SPACES / f"{name}.space"))
    _, smallest = sandwich_ends(cs)
    ops = _op_decisions(cs)
    chosen = [cs.decisions[d].choices[k] for d, k in enumerate(smallest.tolist())]
    assert ops and not any(chosen[d] == "none" for d in ops), chosen
    costs = cs.cost_table.costs("params")
    for d in ops:  # each op decision: the cheapest of its choices other than none
        others = [k for k, c in enumerate(cs.decisions[d].choices) if c != "none"]
        assert costs[d, smallest[d]] == min(costs[d, k] for k in others)
    assert cs.cost_table.total(smallest) == cs.cost_table.min_total()


def test_the_smallest_sandwich_path_of_nasbench201_depends_on_its_input():
    """With every edge `none` every cell outputs zeros and the logits are the same for every image."""
    cs = load_compiled(str(SPACES / "nasbench201.space"), {"channels": "4", "cells": "1", "size": "8"})
    _, smallest = sandwich_ends(cs)
    torch.manual_seed(0)
    net = cs.build_supernet().eval()
    x = torch.randn(2, *cs.input_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = net(x, smallest)
    assert not torch.allclose(out[0], out[1]), out


OFA_SMALL = {"classes": "4", "size": "16", "width": "0.25", "wide": "2", "head": "32"}


@pytest.mark.parametrize("name", ["digits", "fbnet", "mobilenetv3", "proxylessnas", "ofa_mbv3", "enas_micro"])
def test_the_sandwich_paths_of_spaces_without_none_are_the_tables_extremes(name):
    """Chain spaces (whose `skip` passes its input on) and a cell space without `none` keep the cost table's
    cheapest architecture as the smallest path, at the smallest input size where that is a decision."""
    cs = load_compiled(str(SPACES / f"{name}.space"), OFA_SMALL if name == "ofa_mbv3" else None)
    largest, smallest = sandwich_ends(cs)
    want = cs.cost_table.cheapest("params")
    if cs.resolution_dec is not None:
        want[cs.resolution_dec] = torch.tensor(cs.resolutions).argmin()
    assert smallest.tolist() == want.tolist()
    assert largest.tolist() != smallest.tolist()


# ---- results.json: the random baseline's search.random_budgets -------------------------------------------

RANDOM_RUN = ["search.method=random", "search.epsilons=[0.0]", "device=cpu", "data.limit_train=192",
              "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512", "retrain.epochs=0",
              "export.onnx=false", "threads=1"]


def test_members_give_the_random_budget_each_member_was_drawn_under():
    search = load_recipe(QUICK, ["search.method=random", "search.random_budgets=[100k,40k]",
                                 "search.epsilons=[0.0]"]).search
    m = Members.of(search, sampled=True)
    assert m.n == 2 and [m.retrained_budget(i) for i in range(2)] == [1e5, 4e4]
    assert [m.budget(i) for i in range(2)] == [None, None]  # search.budgets: of the searched network's cost
    plain = Members.of(load_recipe(QUICK).search, sampled=False)
    assert plain.retrained_budget(1) is None and plain.budget(1) == 80e3


def test_results_json_records_the_random_budgets_and_the_report_says_whose(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(QUICK), *RANDOM_RUN, "search.random_budgets=[100k,40k]", "--out", str(out)]) == 0
    archs = json.loads((out / "results.json").read_text())["architectures"]
    assert [(a["budget"], a["retrained_budget"]) for a in archs] == [(None, 1e5), (None, 4e4)]
    assert all(a["params"] <= a["retrained_budget"] for a in archs)  # no retrain.space_args: the same network
    report = (out / "report.md").read_text()
    assert "Budgets are total params of the retrained network (`search.random_budgets`" in report, report
    assert "| ≤ 100k (retrained) | random 0 |" in report and "| ≤ 40k (retrained) | random 1 |" in report, report
    assert "- ≤ 40k (retrained): `" in report, report


def _arch(**kw) -> dict:
    return {"epsilon": None, "budget": None, "choices": ["x"], "params": 10, "cost": 10.0, "test_accuracy": 0.5,
            "weights": "retrained", "onnx": None, "macs": 1e3, "latency_ms": None, "int8": None, **kw}


def _results(archs, method="random") -> dict:
    return {"recipe": "r", "method": method, "search_seconds": 1.0, "phase_seconds": {"random": 1.0},
            "cost_metric": "params", "supernet": None, "architectures": archs}


def test_the_report_of_search_budgets_is_as_before():
    """search.budgets (of the searched network, the cost column): no `(retrained)`, no retrained-network note."""
    md = render_markdown(_results([_arch(budget=None), _arch(budget=40e3)], method="importance_sampling"))
    assert "| unconstrained | " in md and "| ≤ 40k | " in md, md
    assert "retrained" not in md.replace("Not retrained", ""), md
    md = render_markdown(_results([_arch(budget=40e3)]))
    assert "Budgets are total params; `random`" in md and "(retrained)" not in md, md
    md = render_markdown(_results([_arch(retrained_budget=40e3), _arch(retrained_budget=20e3)]))
    assert "| ≤ 40k (retrained) |" in md and "of the retrained network" in md, md
    assert summary_table(_results([_arch(retrained_budget=40e3)])).columns[0].header == "budget"


def test_automl_export_refuses_se_with_a_supernet_checkpoint(tmp_path, capsys):
    """`automl export --se 0.25 --weights SUPERNET_CKPT` exported untrained squeeze-and-excitation layers and
    recorded the weights as the supernet's; one message, exit 2, naming --se and --weights."""
    digits = load_compiled(str(SPACES / "digits.space"))
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"choices": {d.name: d.choices[0] for d in digits.decisions}}))
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"supernet": digits.build_supernet().state_dict(), "epoch": 3}, ckpt)
    argv = ["export", str(SPACES / "digits.space"), "--arch", str(arch), "--out", str(tmp_path / "out"),
            "--weights", str(ckpt)]
    assert main(argv + ["--se", "0.25"]) == 2
    err = capsys.readouterr().err
    assert "--se 0.25" in err and "supernet checkpoint" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert main(argv) == 0  # without --se the supernet's weights are what the network computes with
