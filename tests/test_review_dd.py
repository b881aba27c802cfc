"""Review DD: the public API of automl.search as an Optuna user meets it: RandomSearch.tell given rows that ask()
could not have drawn (over their group's budget, under its band), a saved state whose answer is over budget,
epsilons and budgets given as strings, bools, complex numbers or a dict. Each test failed before its fix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from automl.search import MultiEpsilonSearch, RandomSearch

TABLE = [[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]        # R(M) = k_0 + k_1


def _cost(row) -> float:
    return float(sum(TABLE[d][k] for d, k in enumerate(row)))


# ---------------------------------------------------------------------------------------------- RandomSearch.tell

def test_a_row_over_its_groups_budget_is_refused_and_best_stays_within_it():
    """tell took [2, 2] (R = 4) for the budget-1 group, and best() then answered it: over the budget."""
    s = RandomSearch([3, 3], costs=TABLE, budget=[1.0, 4.0], lam=2, seed=0)
    arch = s.ask()
    s.tell(arch, [3.0, 2.0, 1.0, 0.5])
    before = s.best().clone()
    bad = arch.clone()
    bad[1] = torch.tensor([2, 2])
    with pytest.raises(ValueError, match=r"row 1 \(budget group 0\) costs R\(M\) = 4, over its budget 1;.*ask\(\)"):
        s.tell(bad, [0.0, 0.0, 0.0, 0.0])
    assert torch.equal(s.best(), before) and _cost(s.best()[0]) <= 1.0
    mine = torch.tensor([[1, 0], [0, 0], [2, 2], [0, 1]])   # rows of one's own, each within its group's budget
    s.tell(mine, [0.1, 5.0, 0.1, 5.0])                        # are taken, as Optuna's add_trial takes them
    assert s.best().tolist() == [[1, 0], [2, 2]]


def test_a_row_under_its_groups_band_is_refused():
    """With a band, a row far below it is not what the group draws; tell took it and best() answered it."""
    s = RandomSearch([3, 3], costs=TABLE, budget=4.0, band=0.75, lam=2, seed=0)
    arch = s.ask()
    assert all(3.0 <= _cost(row) <= 4.0 for row in arch.tolist())
    with pytest.raises(ValueError, match=r"row 0 \(budget group 0\) costs R\(M\) = 0, under its band's floor 3"):
        s.tell(torch.tensor([[0, 0], [2, 2]]), [0.0, 1.0])
    s.tell(torch.tensor([[1, 2], [2, 2]]), [0.0, 1.0])        # within the band: taken
    assert s.best().tolist() == [[1, 2]]


def test_a_state_whose_best_is_over_budget_is_refused_before_loading():
    """A state whose best_arch is over its budget (saved by the old tell, or edited) loaded, and best() answered
    it; it is refused naming the key, and the searcher keeps its own state."""
    s = RandomSearch([3, 3], costs=TABLE, budget=1.0, lam=2, seed=0)
    s.tell(s.ask(), [1.0, 2.0])
    state = s.state_dict()
    state["best_arch"] = torch.tensor([[2, 2]])
    fresh = RandomSearch([3, 3], costs=TABLE, budget=1.0, lam=2, seed=0)
    with pytest.raises(ValueError, match=r"state\['best_arch'\] row 0 \(budget group 0\) costs R\(M\) = 4, over"):
        fresh.load_state_dict(state)
    assert _cost(fresh.best()[0]) <= 1.0
    state["told"] = torch.tensor([False])                     # an answer never told is not the answer: it loads
    fresh.load_state_dict(state)
    assert _cost(fresh.best()[0]) <= 1.0


def test_random_search_refuses_none_as_a_budget_naming_math_inf():
    """budget=[None, 1.0] (the engine's way to say 'unconstrained') said only 'must be a number'."""
    with pytest.raises(ValueError, match=r"budget=math.inf here"):
        RandomSearch([3, 3], costs=TABLE, budget=[None, 1.0])
    assert RandomSearch([3, 3], costs=TABLE, budget=[math.inf, 1.0]).budgets == [math.inf, 1.0]


# ---------------------------------------------------------------------------------------------- epsilons, budgets

@pytest.mark.parametrize("epsilons, match", [
    ("05", "epsilons must be a list of numbers"),             # was [0.0, 5.0]
    (["0.1"], "epsilons must be real numbers"),               # was [0.1]
    ([True, False], "epsilons must be real numbers"),         # was [1.0, 0.0]
    (np.array([1 + 1j]), "epsilons must be real numbers"),    # was [1.0] (a ComplexWarning)
    ({0.1: "a"}, "epsilons must be a list of numbers"),       # was [0.1] (the keys)
])
def test_epsilons_that_are_not_real_numbers_are_refused(epsilons, match):
    with pytest.raises(ValueError, match=match):
        MultiEpsilonSearch([3, 3], torch.tensor(TABLE), epsilons=epsilons, lam=4)


@pytest.mark.parametrize("budgets", [{1.0: "a"}, torch.tensor(1.0)])
def test_budgets_that_are_not_a_list_are_one_value_error(budgets):
    """A dict gave its keys as budgets; a 0-d tensor was a raw TypeError (iteration over a 0-d tensor)."""
    with pytest.raises(ValueError, match="budgets must be a list of numbers or None"):
        MultiEpsilonSearch([3, 3], torch.tensor(TABLE), budgets=budgets, lam=4)


def test_epsilons_and_budgets_of_numpy_and_torch_numbers_still_work():
    e = MultiEpsilonSearch([3, 3], torch.tensor(TABLE), epsilons=np.array([0.0, 0.5]), lam=4)
    t = MultiEpsilonSearch([3, 3], torch.tensor(TABLE), epsilons=torch.tensor([0.0, 0.5]), lam=4)
    b = MultiEpsilonSearch([3, 3], torch.tensor(TABLE), budgets=[None, np.float32(2.0), torch.tensor(3.0)], lam=4)
    assert e.epsilons == t.epsilons == [0.0, 0.5] and b.budgets == [None, 2.0, 3.0]


# ---------------------------------------------------------------------------------------------- tell's losses

@pytest.mark.parametrize("losses", [[True, False, True, False], torch.tensor([True, False, True, False]),
                                    np.array([True, False, True, False])])
@pytest.mark.parametrize("searcher", ["engine", "random"])
def test_bool_losses_are_refused_not_read_as_zero_and_one(searcher, losses):
    """A flag per row (pred == y) was told as losses 1.0 / 0.0: True, the good row, ranked the worse."""
    s = (MultiEpsilonSearch([3, 3], torch.tensor(TABLE), epsilons=[0.0, 0.5], lam=4) if searcher == "engine"
         else RandomSearch([3, 3], lam=4))
    theta = s.theta.clone() if searcher == "engine" else None
    with pytest.raises(ValueError, match="losses must be real numbers .*got bools"):
        s.tell(s.ask(), losses)
    assert searcher == "random" or torch.equal(s.theta, theta)
    s.tell(s.ask(), [1.0, 0.0, 1.0, 0.0])                   # the numbers themselves are taken


@pytest.mark.parametrize("saved", [math.nan, -math.inf])
def test_a_state_whose_best_loss_no_loss_can_beat_is_refused(saved):
    """tell() keeps NaN and -inf as +inf, so a saved best loss of NaN or -inf is corrupt: it loaded, and no later
    loss ever replaced that answer (NaN < x and x < -inf are both False)."""
    s = RandomSearch([3, 3], lam=2, seed=0)
    s.tell(s.ask(), [1.0, 2.0])
    state = s.state_dict()
    state["best_loss"] = torch.tensor([saved], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"state\['best_loss'\] must be .* losses or \+inf"):
        RandomSearch([3, 3], lam=2, seed=0).load_state_dict(state)
