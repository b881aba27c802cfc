"""Review by the lead (session 38): the exact knapsack's inputs, the budgets' per-tell cost of the mode, and the
warm-up rate's product with the weight decay."""
import math
from pathlib import Path

import pytest
import torch

from automl.errors import RecipeError
from automl.recipe import load_recipe
from automl.search import ContextCosts
from automl.search._budgets import BudgetTargets
from automl.search._knapsack import best_within_budget

COSTS = torch.tensor([[1.0, 2.0], [3.0, 4.0]])


def test_a_budget_beyond_float_is_inf_or_nothing():
    """An int too large for a float fits every architecture (positive) or none (negative); it was an OverflowError."""
    assert best_within_budget(COSTS, COSTS, 10 ** 400).tolist() == best_within_budget(COSTS, COSTS, math.inf).tolist()
    assert best_within_budget(COSTS, COSTS, -10 ** 400) is None


@pytest.mark.parametrize("mask, message", [
    ([[1, 0.5], [1, 1]], r"mask must be True/False \(or 0/1\).*\[0\.5\]"),
    ([[1, 1]], r"mask must be the shape of the costs \(2, 2\)"),
    ([[0, 0], [1, 1]], r"mask has a decision with no choice \(rows \[0\] all False\)"),
])
def test_a_mask_is_checked_as_everywhere(mask, message):
    """0.5 was read as True (a choice that exists); the mask is checked as the searchers check theirs."""
    with pytest.raises(ValueError, match=message):
        best_within_budget(-COSTS, COSTS, 5.0, mask)


def test_an_integer_mask_gives_the_bool_masks_answer():
    ints = best_within_budget(-COSTS, COSTS, 5.0, [[0, 1], [1, 1]])
    bools = best_within_budget(-COSTS, COSTS, 5.0, torch.tensor([[False, True], [True, True]]))
    assert ints.tolist() == bools.tolist() == [1, 0]


def test_the_mode_cost_of_context_costs_skips_the_users_check(monkeypatch):
    """mode_cost reads the searcher's own argmax rows: it takes the unchecked path, and gives the checked totals."""
    mask = torch.ones(2, 2, dtype=torch.bool)
    tables = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]])
    costs = ContextCosts([0], tables, torch.tensor([0.5, 1.5]), mask)
    theta = torch.tensor([[[0.9, 0.1], [0.2, 0.8]], [[0.3, 0.7], [0.6, 0.4]]])
    targets = BudgetTargets.__new__(BudgetTargets)
    targets._costs = costs
    expected = costs.totals(theta.argmax(-1))
    calls = []
    monkeypatch.setattr(ContextCosts, "_checked_arch", lambda self, arch: calls.append(arch) or arch)
    assert torch.equal(BudgetTargets.mode_cost(targets, theta), expected)
    assert not calls


# ------------------------------------------------------------------------------ recipes: the warm-up's rate too

def test_a_warmup_rate_times_weight_decay_of_1_is_refused_naming_warmup_lr():
    """lr x weight_decay below 1 was checked, but a larger warm-up rate took the whole weight away in the warm-up."""
    quick = str(Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml")
    with pytest.raises(RecipeError) as info:
        load_recipe(quick, ["optim.warmup_lr=50", "optim.warmup_epochs=1", "optim.weight_decay=0.5"])
    assert info.value.key == "optim.weight_decay" and "optim.warmup_lr (50) x optim.weight_decay (0.5) is 25" \
        in str(info.value), str(info.value)
    # without warm-up epochs the warm-up rate is not used: lr's product decides
    assert load_recipe(quick, ["optim.warmup_lr=50", "optim.weight_decay=0.5"]).optim.weight_decay == 0.5
