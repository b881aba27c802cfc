"""Review V of the search engine: the range restriction under huge steps, RandomSearch's budget edge and
tell, and the checks of tell's and the constructor's inputs (each test failed before its fix)."""

import math

import numpy as np
import pytest
import torch

from automl.search import ContextCosts, MultiEpsilonSearch, RandomSearch


def test_theta_stays_on_the_simplex_when_rounding_of_a_huge_step_leaves_no_mass():
    """Costs of ~1e18 (η ε max|c| ~ 4e18, below the old guard's 1e300): the step's rounding can leave a row with
    no entry above θ_min, which was 0 / 0 = NaN in the restriction; the docs promise that with theta_min=0 θ
    stays on the simplex even when η ε c is huge (a decision whose step broke keeps its previous distribution)."""
    broken = 0
    for seed in range(10):
        g = torch.Generator().manual_seed(seed)
        costs = torch.rand(3, 4, dtype=torch.float64, generator=g) * 1e18
        s = MultiEpsilonSearch([4, 4, 4], costs, epsilons=[1.0, 50.0], lam=4, theta_min=0.0, seed=seed)
        floor = torch.tensor(s.theta_min, dtype=torch.float64).view(1, -1, 1)
        for _ in range(40):
            arch = s.ask()
            s.tell(arch, torch.randn(4, generator=g, dtype=torch.float64))
            theta = s.theta
            ok = (bool(torch.isfinite(theta).all()) and bool((theta >= floor - 1e-15).all())
                  and bool(torch.allclose(theta.sum(-1), torch.ones(2, 3, dtype=torch.float64), atol=1e-12)))
            if not ok:
                broken += 1
                break
    assert broken == 0


def test_a_normal_step_is_unchanged_by_the_restriction_guard():
    """The guard only replaces rows that broke: on ordinary costs θ equals a direct computation of the
    restriction (θ_min + (θ − θ_min)(1 − K θ_min) / (Σθ − K θ_min) after lifting to θ_min)."""
    costs = torch.tensor([[0.0, 0.4, 1.0], [0.2, 0.0, 0.7]], dtype=torch.float64)
    s = MultiEpsilonSearch([3, 3], costs, epsilons=[0.0, 3.0], lam=4, theta_min=0.05, seed=0)
    s._restrict.guard_overflow = True
    t = MultiEpsilonSearch([3, 3], costs, epsilons=[0.0, 3.0], lam=4, theta_min=0.05, seed=0)
    for step in range(30):
        arch = s.ask()
        assert torch.equal(arch, t.ask())
        losses = torch.tensor([3.0, 1.0, 2.0, 0.5]) + step
        s.tell(arch, losses)
        t.tell(arch, losses)
        assert torch.equal(s.theta, t.theta)


def test_random_search_tell_refuses_choices_outside_the_space():
    """tell took any integers and best() then returned an architecture the space does not have."""
    s = RandomSearch([3, 2], lam=2, seed=0)
    arch = s.ask()
    with pytest.raises(ValueError, match="outside 0..K_d-1"):
        s.tell(arch + torch.tensor([0, 5]), [1.0, 2.0])
    with pytest.raises(ValueError, match="integer"):
        s.tell(arch.double() + 0.5, [1.0, 2.0])
    s.tell(arch, [1.0, 2.0])
    assert torch.equal(s.best(), arch[:1])


def test_random_search_minus_inf_loss_ranks_worst_as_in_the_engine():
    """NaN, +inf and -inf losses rank worst in the engine; RandomSearch took -inf as the best loss."""
    s = RandomSearch([3, 3], lam=3, seed=0)
    arch = torch.tensor([[0, 0], [1, 1], [2, 2]])
    s.tell(arch, [-math.inf, 5.0, math.nan])
    assert s.best().tolist() == [[1, 1]]


@pytest.mark.parametrize("budget", [np.float32(2.0), np.int64(2), torch.tensor(2.0), [np.float32(2.0)]])
def test_random_search_takes_numpy_and_tensor_budgets(budget):
    """A numpy or 0-d tensor budget was a TypeError ('not iterable')."""
    s = RandomSearch([3, 3], costs=[[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]], budget=budget, lam=50, seed=0)
    arch = s.ask()
    assert s.budgets == [2.0] and bool((arch.sum(1) <= 2).all())


def test_random_search_refuses_a_bool_budget():
    with pytest.raises(ValueError, match="budget"):
        RandomSearch([3, 3], costs=[[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]], budget=True)


def test_engine_tell_refuses_non_integer_choice_indices():
    """A float arch of 1.5 was silently truncated to 1; integral floats still work."""
    s = MultiEpsilonSearch([3, 2, 4], None, epsilons=[0.0], lam=4, seed=0)
    arch = s.ask()
    with pytest.raises(ValueError, match="integer"):
        s.tell(arch.double() + 0.5, torch.rand(4))
    s.tell(arch.double(), torch.rand(4))
    assert s.step == 1


@pytest.mark.parametrize("theta_min", ["abc", [0.1], {"a": 1}])
def test_a_theta_min_of_the_wrong_type_is_a_value_error_naming_it(theta_min):
    """theta_min=[0.1] was a TypeError from float(), 'abc' a ValueError that did not name the argument."""
    with pytest.raises(ValueError, match="theta_min"):
        MultiEpsilonSearch([3, 3], None, epsilons=[0.0], lam=2, theta_min=theta_min)


def test_a_context_budget_just_below_the_cheapest_cost_derives_instead_of_crashing():
    """A budget within the accepted rounding slack (1e-9 relative) below the cheapest network: the engine takes
    it, and with a plain table best() derives the cheapest network. With a ContextCosts whose fixed part is
    most of the cost, the per-width knapsack took the slack of the budget less F[a] only, found nothing, and
    best() raised TypeError (None assigned into the result)."""
    mask = torch.ones(2, 2, dtype=torch.bool)
    tables = torch.tensor([[[0.0, 0.0], [0.5, 0.9]], [[0.0, 0.0], [0.6, 1.0]]], dtype=torch.float64)
    costs = ContextCosts([0], tables, torch.tensor([100.0, 100.0], dtype=torch.float64), mask)
    cheapest = costs.extremes()[0]                               # 100.5: width 0, choice 0 of decision 1
    budget = cheapest - 0.9e-9 * cheapest
    theta = torch.tensor([[0.5, 0.5], [0.2, 0.8]], dtype=torch.float64)  # mode (0, 1) costs 100.9
    s = MultiEpsilonSearch([2, 2], costs, budgets=[budget], lam=4, init_theta=theta)
    assert s.best().tolist() == [[0, 0]]
