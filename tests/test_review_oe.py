"""Review OE: best_within_budget's argument checks, ranking.py's studies of a run without a shared supernet.

1. ``automl.search.best_within_budget`` took costs of True/False (a tensor, an array, nested lists: the mask given
   in the costs' place, read as costs of 0 and 1) and values of True/False without a word, where the engine
   (cost_table, tell) refuses them naming the argument; a (D, 0) table was torch's IndexError; a budget of
   ``tensor([3.0])``, ``tensor(True)`` or ``np.True_`` was read by ``float()`` (ContextCosts.best_within, the same
   derivation with a context, refuses each). Each is now a ValueError naming the argument.
2. ``ranking.py --replay RUN`` and ``--one-se RUN`` of a run of search.method random (no supernet, no θ phase) or
   simultaneous (a supernet per member, none kept), or of a run whose checkpoints are gone, was a traceback from
   ``load_state_dict(None)`` / ``None["supernet"]`` (exit 1) after the data was loaded; now one line naming the
   folder and what the study needs, exit 2, before any run of the list is loaded.

One tiny run of the random baseline on digits (no supernet: seconds); the other run folders are written by hand."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from automl.cli import main as automl_main
from automl.search import best_within_budget

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

QUICK = ROOT / "recipes" / "quickstart.yaml"
VALUES = torch.tensor([[0.0, -1.0, -2.0], [0.0, -0.5, -3.0]], dtype=torch.float64)
COSTS = torch.tensor([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]], dtype=torch.float64)
MASK = [[True, False, True], [False, True, True]]


# ---- 1. best_within_budget ------------------------------------------------------------------------------------

@pytest.mark.parametrize("costs", [torch.tensor(MASK), MASK, np.array(MASK), [[True, 0.0, 1.0], [1.0, 1.0, 1.0]],
                                   [[np.True_, 0.0, 1.0], [1.0, 1.0, 1.0]]],
                         ids=["tensor", "lists", "numpy", "one_bool_in_lists", "numpy_bool_in_lists"])
def test_best_within_budget_refuses_bool_costs(costs):
    with pytest.raises(ValueError, match=r"costs must be numbers \(costs per choice\), got a table of True/False"):
        best_within_budget(VALUES, costs, 1.0)


@pytest.mark.parametrize("values", [torch.tensor(MASK), MASK, np.array(MASK)], ids=["tensor", "lists", "numpy"])
def test_best_within_budget_refuses_bool_values(values):
    with pytest.raises(ValueError, match=r"values must be numbers .*got a table of True/False"):
        best_within_budget(values, COSTS, 4.0)


def test_best_within_budget_refuses_a_table_without_choices():
    with pytest.raises(ValueError, match=r"Kmax >= 1 choices, got shape \(2, 0\)"):
        best_within_budget(torch.zeros(2, 0), torch.zeros(2, 0), 1.0)


@pytest.mark.parametrize("budget", [torch.tensor([3.0]), np.array([3.0]), torch.tensor(True), np.True_, [3.0]],
                         ids=["tensor_of_one", "array_of_one", "bool_tensor", "numpy_bool", "list"])
def test_best_within_budget_refuses_a_budget_that_is_not_one_number(budget):
    with pytest.raises(ValueError, match="budget must be a number"):
        best_within_budget(VALUES, COSTS, budget)


def _brute(values, costs, budget, mask=None):
    """The best value within the budget over every architecture (None: nothing fits)."""
    mask = torch.ones_like(costs, dtype=torch.bool) if mask is None else torch.as_tensor(mask)
    best = None
    for a in range(costs.shape[1]):
        for b in range(costs.shape[1]):
            if mask[0, a] and mask[1, b] and float(costs[0, a] + costs[1, b]) <= budget:
                v = float(values[0, a] + values[1, b])
                best = v if best is None else max(best, v)
    return best


@pytest.mark.parametrize("budget, number", [(torch.tensor(3.0), 3.0), (np.float64(4.0), 4.0), (5, 5.0),
                                            (10 ** 400, math.inf), (math.inf, math.inf)],
                         ids=["0d_tensor", "numpy", "int", "huge_int", "inf"])
def test_best_within_budget_still_takes_numbers_and_integer_costs(budget, number):
    arch = best_within_budget(VALUES, COSTS.long(), budget)
    assert float(COSTS[0, arch[0]] + COSTS[1, arch[1]]) <= number
    assert float(VALUES[0, arch[0]] + VALUES[1, arch[1]]) == _brute(VALUES, COSTS, number)


@pytest.mark.parametrize("budget", [-3.0, -4.0, -5.0, -6.5])
def test_best_within_budget_with_negative_costs_and_budgets_is_exact(budget):
    costs = -COSTS.flip(1)  # -1, -2, -3: the dearest choice is the most valuable
    mask = torch.tensor(MASK)
    arch = best_within_budget(VALUES, costs, budget, mask)
    want = _brute(VALUES, costs, budget, mask)
    if want is None:
        assert arch is None
    else:
        assert bool(mask[0, arch[0]] and mask[1, arch[1]])
        assert float(costs[0, arch[0]] + costs[1, arch[1]]) <= budget
        assert float(VALUES[0, arch[0]] + VALUES[1, arch[1]]) == want


# ---- 2. ranking.py --replay / --one-se of a run without a shared supernet ----------------------------------------

@pytest.fixture(scope="module")
def random_run(tmp_path_factory) -> Path:
    """A finished tiny run of the random baseline on digits (one member, no supernet, no θ phase)."""
    out = tmp_path_factory.mktemp("oe") / "random"
    code = automl_main(["run", str(QUICK), "search.method=random", "search.epsilons=[0.0]", "device=cpu",
                        "data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32",
                        "data.test_batch_size=512", "retrain.epochs=0", "export.onnx=false", "threads=1",
                        "--out", str(out)])
    assert code == 0 and (out / "results.json").is_file()
    return out


def _hand_run(folder: Path, method: str, mode: str | None = None) -> Path:
    """A finished run's files as --replay and --one-se check them (a member, ``method`` and the searcher's ``mode``
    where given, the quickstart as its recipe with ``method``), without checkpoints/."""
    folder.mkdir()
    res = {"method": method, **({"searcher_mode": mode} if mode else {}),
           "architectures": [{"choices": ["ir_k3_e1"] * 9}]}
    (folder / "results.json").write_text(json.dumps(res))
    text = QUICK.read_text().replace("../spaces/digits.space", str(ROOT / "spaces" / "digits.space"))
    text = text.replace("method: importance_sampling", f"method: {method}")
    (folder / "recipe.resolved.yaml").write_text(text)
    return folder


def _refused(capsys, argv: list[str]) -> str:
    import ranking

    with pytest.raises(SystemExit) as e:
        ranking.run_main(ranking.main, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2, err
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("flag, needs", [("--replay", "--replay needs a run with a θ phase"),
                                         ("--one-se", "--one-se needs a run with a trained supernet")])
def test_a_study_of_a_random_run_is_one_line(capsys, tmp_path, random_run, flag, needs):
    # was: TypeError "Expected state_dict to be dict-like, got NoneType" from ws.supernet(None), exit 1
    err = _refused(capsys, [flag, str(random_run), "--out", str(tmp_path / "rk")])
    assert f"{flag} {random_run}: a run of search.method random, which trains no supernet and has no θ phase" in err
    assert needs in err and "importance_sampling" in err, err


@pytest.mark.parametrize("mode", ["interleaved", None], ids=["searcher_mode", "method_only"])
@pytest.mark.parametrize("flag", ["--replay", "--one-se"])
def test_a_study_of_a_simultaneous_run_is_one_line(capsys, tmp_path, flag, mode):
    # was: TypeError from ws.supernet(None) (its checkpoint keeps member_supernets, no supernet), exit 1
    run = _hand_run(tmp_path / "sim", "simultaneous", mode)
    err = _refused(capsys, [flag, str(run), "--out", str(tmp_path / "rk")])
    assert f"{flag} {run}: a run of search.method simultaneous, which trains no shared supernet" in err, err


@pytest.mark.parametrize("flag", ["--replay", "--one-se"])
def test_a_study_of_a_run_without_checkpoints_is_one_line(capsys, tmp_path, flag):
    # was: TypeError "'NoneType' object is not subscriptable" (CheckpointStore.load() is None), exit 1
    run = _hand_run(tmp_path / "is", "importance_sampling", "joint")
    err = _refused(capsys, [flag, str(run), "--out", str(tmp_path / "rk")])
    assert f"{flag} {run}: no trained supernet: " in err and "checkpoints" in err, err


@pytest.mark.parametrize("flag, study", [("--replay", "theta_replay"), ("--one-se", "one_se")])
def test_a_random_run_later_in_the_list_is_refused_before_the_first_is_studied(capsys, monkeypatch, tmp_path,
                                                                                random_run, flag, study):
    import ranking

    studied = []
    monkeypatch.setattr(ranking, study, lambda d, *a, **k: studied.append(d))
    good = _hand_run(tmp_path / "is", "importance_sampling", "joint")
    err = _refused(capsys, [flag, f"{good},{random_run}", "--out", str(tmp_path / "rk")])
    assert str(random_run) in err and not studied, (err, studied)


@pytest.mark.parametrize("bad", [[[True, False], [False, True]], torch.tensor([[True, False], [False, True]])])
def test_context_costs_best_within_refuses_bool_values(bad):
    # ContextCosts.best_within takes values as best_within_budget does: a mask in their place is refused, not 1/0
    from automl.search import ContextCosts
    cc = ContextCosts([0], torch.ones(2, 2, 2), torch.zeros(2), torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="values must be numbers"):
        cc.best_within(bad, 10.0)
    assert cc.best_within(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), 10.0).tolist() == [1, 0]
