"""Review BA: the search engine's public API at its edges (state dicts, dtypes, cost models, the knapsack)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch

from automl.search import ContextCosts, MultiEpsilonSearch, RandomSearch, best_within_budget

COSTS = torch.tensor([[0.0, 0.1, 0.3], [0.2, 0.0, 0.4], [0.1, 0.5, 0.0]], dtype=torch.float64)


def _random(seed=0, lam=2):
    return RandomSearch([3, 3, 3], COSTS, budget=[0.3, 0.8], seed=seed, lam=lam)


def _reload(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


# ---- RandomSearch state dicts -----------------------------------------------------------------------------

def test_random_search_with_a_numpy_lam_saves_a_state_that_loads_weights_only():
    """lam given as a NumPy integer (np.arange, a config read with NumPy) is accepted; its state dict must still
    be plain Python values, as the engine's is, so torch.load(weights_only=True) reads it back."""
    s = RandomSearch([3, 3, 3], seed=1, lam=np.int64(2))
    s.tell(s.ask(), [2.0, 1.0])
    state = s.state_dict()
    assert type(state["lam"]) is int
    again = RandomSearch([3, 3, 3], seed=5, lam=2)
    again.load_state_dict(_reload(state))
    assert torch.equal(again.best(), s.best()) and torch.equal(again.ask(), s.ask())


@pytest.mark.parametrize("key", ["generator", "best_arch", "best_loss", "told", "last", "costs", "num_choices"])
def test_random_search_refuses_a_state_without_a_key_naming_it(key):
    s = _random()
    s.tell(s.ask(), [1.0, 2.0, 3.0, 4.0])
    state = s.state_dict()
    del state[key]
    with pytest.raises(ValueError, match=rf"RandomSearch state lacks {key}: it is not a whole state_dict"):
        _random().load_state_dict(state)


@pytest.mark.parametrize("key, value, says", [
    ("best_arch", torch.full((2, 3), 7), r"state\['best_arch'\] must be a \(2, 3\) tensor of choice indices"),
    ("best_arch", torch.zeros(5, 1, dtype=torch.long), r"state\['best_arch'\] must be a \(2, 3\) tensor"),
    ("last", torch.zeros(1, 3, dtype=torch.long), r"state\['last'\] must be a \(4, 3\) tensor"),
    ("best_loss", [1.0, 2.0], r"state\['best_loss'\] must be a float tensor of shape \(2,\)"),
    ("told", torch.ones(3, dtype=torch.bool), r"state\['told'\] must be a bool tensor of shape \(2,\)"),
    ("generator", None, r"state\['generator'\] is not a torch.Generator state"),
])
def test_random_search_refuses_a_corrupt_state_before_loading_anything(key, value, says):
    """A corrupt entry is one ValueError naming it, and the searcher is left as it was: it still draws what a
    fresh searcher of its seed draws (before, best_arch with choice 7 was loaded and returned by best(), and a
    bad best_loss was an AttributeError after the generator had been replaced)."""
    source = _random(seed=1)
    for _ in range(3):
        source.tell(source.ask(), [4.0, 3.0, 2.0, 1.0])
    state = source.state_dict()
    state[key] = value
    target = _random(seed=2)
    with pytest.raises(ValueError, match=says):
        target.load_state_dict(state)
    assert torch.equal(target.ask(), _random(seed=2).ask())


# ---- the engine's dtypes -----------------------------------------------------------------------------------

def _engine(dtype, costs=COSTS, **kw):
    return MultiEpsilonSearch([3, 3, 3], costs, epsilons=[0.0, 0.5], lam=4, seed=0, dtype=dtype, **kw)


def test_a_float32_engine_ranks_float64_losses_without_rounding_them():
    """Losses are only ranked: a float32 engine told four distinct float64 losses makes the update of their
    order (before, they were rounded to float32 first and all tied)."""
    told, ranked = _engine(torch.float32), _engine(torch.float32)
    arch = told.ask()
    assert torch.equal(arch, ranked.ask())
    told.tell(arch, torch.tensor([1.0 + 3e-9, 1.0, 1.0 + 2e-9, 1.0 + 1e-9], dtype=torch.float64))
    ranked.tell(arch, torch.tensor([4.0, 1.0, 3.0, 2.0]))
    assert torch.equal(told.theta, ranked.theta)


def test_a_float32_engine_takes_finite_float64_losses_beyond_float32_as_finite():
    """1e300 is a finite loss: it is neither warned about as 'NaN or inf' nor counted in nonfinite_losses, and it
    ranks by its value (before: inf in float32, so all four tied as the worst)."""
    big, small = _engine(torch.float32), _engine(torch.float32)
    arch = big.ask()
    small.ask()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        big.tell(arch, [4e300, 1e300, 3e300, 2e300])
    small.tell(arch, [4.0, 1.0, 3.0, 2.0])
    assert big.nonfinite_losses == 0
    assert torch.equal(big.theta, small.theta)


def test_a_float32_engine_refuses_costs_float32_cannot_hold():
    """Raw costs beyond 3.4e38 are finite in float64 but inf in float32, where the epsilon term is NaN and no
    member ever moved (theta stayed uniform, ε = 0 included); it is refused as an ε beyond float32 is."""
    raw = COSTS * 1e39
    with pytest.raises(ValueError, match=r"costs are beyond torch.float32's largest number .*normalize_costs.*"
                                         r"dtype=torch.float64"):
        _engine(torch.float32, costs=raw)
    mask = torch.ones(3, 3, dtype=torch.bool)
    context = ContextCosts([0], raw.expand(3, 3, 3), torch.zeros(3), mask)
    with pytest.raises(ValueError, match="costs are beyond torch.float32's largest number"):
        _engine(torch.float32, costs=context)
    assert torch.isfinite(_engine(torch.float64, costs=raw).costs).all()   # float64 holds them


# ---- ContextCosts and the knapsack -------------------------------------------------------------------------

@pytest.mark.parametrize("decisions, says", [
    ([0.5], r"context_decisions must be a list of decision indices \(integers\), got \[0.5\]"),
    ([True], r"context_decisions must be a list of decision indices \(integers\)"),
    (0, r"context_decisions must be a list of decision indices, got 0"),
    ("01", r"context_decisions must be a list of decision indices, got '01'"),
])
def test_context_costs_refuse_decisions_that_are_not_indices(decisions, says):
    """Before: [0.5] became decision 0 silently, the string '01' decisions 0 and 1, and 0 a TypeError."""
    mask = torch.ones(3, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match=says):
        ContextCosts(decisions, torch.zeros(3, 3, 3), torch.zeros(3), mask)


def test_context_costs_take_numpy_and_tensor_indices_and_refuse_a_flat_mask():
    mask = torch.ones(3, 3, dtype=torch.bool)
    model = ContextCosts([np.int64(1), torch.tensor(2)], torch.zeros(9, 3, 3), torch.zeros(9), mask)
    assert model.context_decisions == (1, 2)
    with pytest.raises(ValueError, match=r"mask must be a \(D, Kmax\) table.*got shape \(3,\)"):
        ContextCosts([0], torch.zeros(3, 3, 3), torch.zeros(3), torch.ones(3, dtype=torch.bool))


def test_best_within_budget_refuses_plus_inf_values_and_decisions_without_choices():
    """Both used to return None, the answer for 'nothing fits the budget', with the budget far above every cost."""
    with pytest.raises(ValueError, match=r"values contain NaN or \+inf"):
        best_within_budget(torch.full((3, 3), float("inf")), COSTS, 10.0)
    mask = torch.tensor([[1, 1, 1], [0, 0, 0], [1, 0, 0]], dtype=torch.bool)
    with pytest.raises(ValueError, match=r"mask has a decision with no choice \(rows \[1\] all False\)"):
        best_within_budget(torch.zeros(3, 3), COSTS, 10.0, mask)
    values = torch.tensor([[-float("inf"), -1.0, 0.0], [0.0, -2.0, -1.0], [-1.0, 0.0, -3.0]])
    assert best_within_budget(values, COSTS, 10.0).tolist() == [2, 0, 1]   # -inf is still a choice never taken
    assert best_within_budget(values, COSTS, 0.25).tolist() == [1, 1, 0]   # under a budget, -inf is not taken
