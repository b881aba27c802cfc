"""The Searcher contract, checked for every searcher (after Optuna's tests/samplers_tests)."""

from __future__ import annotations

import io

import pytest
import torch

import automl.search as search
from automl.search import MultiEpsilonSearch, RandomSearch, Searcher

NUM_CHOICES = [3, 1, 4, 2, 4]
COSTS = torch.tensor([[0.1, 0.5, 0.9, 0.0], [0.2, 0.0, 0.0, 0.0], [0.0, 0.3, 0.6, 1.0],
                      [0.4, 0.8, 0.0, 0.0], [0.5, 0.1, 0.7, 0.2]], dtype=torch.float64)

FACTORIES = {
    "multi_epsilon": lambda seed=0: MultiEpsilonSearch(NUM_CHOICES, COSTS, [0.0, 0.3, 0.5], lam=4, seed=seed),
    "multi_epsilon_single": lambda seed=0: MultiEpsilonSearch(NUM_CHOICES, COSTS, [0.1], lam=2, seed=seed),
    "multi_epsilon_method2": lambda seed=0: MultiEpsilonSearch(NUM_CHOICES, COSTS, [0.0, 0.5], lam=3,
                                                               seed=seed, importance_sampling=False),
    "multi_epsilon_float32": lambda seed=0: MultiEpsilonSearch(NUM_CHOICES, COSTS, [0.0, 0.5], lam=2,
                                                               seed=seed, dtype=torch.float32),
    "random": lambda seed=0: RandomSearch(NUM_CHOICES, seed=seed, lam=3),
    "random_budget": lambda seed=0: RandomSearch(NUM_CHOICES, COSTS, budget=[1.5, 2.5], seed=seed, lam=2),
}


@pytest.fixture(params=sorted(FACTORIES))
def make(request):
    return FACTORIES[request.param]


def _loss(arch):
    return (arch * torch.arange(1, arch.shape[1] + 1)).sum(1).double()


def _run(s, steps=4):
    for _ in range(steps):
        arch = s.ask()
        s.tell(arch, _loss(arch))


def test_exports():
    assert set(search.__all__) >= {"MultiEpsilonSearch", "RandomSearch", "Searcher", "normalize_costs"}


def test_is_a_searcher(make):
    s = make()
    assert isinstance(s, Searcher)
    assert s.num_decisions == len(NUM_CHOICES) and list(s.num_choices) == NUM_CHOICES


def test_ask_shape_and_range(make):
    s = make()
    for _ in range(3):
        arch = s.ask()
        assert arch.dtype == torch.long and arch.dim() == 2 and arch.shape[1] == len(NUM_CHOICES)
        assert (arch >= 0).all() and (arch < torch.tensor(NUM_CHOICES)).all()
        s.tell(arch, _loss(arch))


def test_best_shape_and_range(make):
    s = make()
    _run(s)
    best = s.best()
    assert best.dtype == torch.long and best.shape == (s.num_distributions, len(NUM_CHOICES))
    assert (best >= 0).all() and (best < torch.tensor(NUM_CHOICES)).all()


def _assert_lockstep(a, b, steps: int = 3) -> None:
    """``a`` and ``b`` ask identical architectures, stay identical after the same tells, agree on best()."""
    for _ in range(steps):
        xa, xb = a.ask(), b.ask()
        assert torch.equal(xa, xb)
        a.tell(xa, _loss(xa))
        b.tell(xb, _loss(xb))
    assert torch.equal(a.best(), b.best())


def test_seed_reproduces(make):
    _assert_lockstep(make(seed=7), make(seed=7))


def test_state_dict_round_trip(make):
    a = make(seed=1)
    _run(a, 3)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = make(seed=2)
    b.load_state_dict(torch.load(buf, weights_only=True))
    _assert_lockstep(a, b)


def test_wrong_state_is_rejected(make):
    s = make()
    other = MultiEpsilonSearch([2, 2], None, [0.0], lam=2) if not isinstance(s, MultiEpsilonSearch) \
        else RandomSearch([2, 2])
    kind = type(other).__name__
    with pytest.raises(ValueError, match=rf"not a {type(s).__name__} state \(version \d+\): kind='{kind}'"):
        s.load_state_dict(other.state_dict())


def test_state_of_another_version_is_rejected(make):
    """A state of this searcher's own kind, written by a version it cannot read, is refused by its version
    (not by a later check on its settings)."""
    s = make()
    _run(s, 2)
    state = s.state_dict()
    assert state["kind"] == type(s).__name__
    state["version"] = 99
    with pytest.raises(ValueError, match=rf"not a {type(s).__name__} state \(version \d+\): .*version=99$"):
        make().load_state_dict(state)


def test_tell_rejects_wrong_number_of_losses(make):
    s = make()
    arch = s.ask()
    with pytest.raises(ValueError, match=rf"expected {arch.shape[0]} losses"):
        s.tell(arch, torch.zeros(arch.shape[0] + 1))


def test_random_budget_is_respected_and_infeasible_budget_is_clear():
    s = RandomSearch(NUM_CHOICES, COSTS, budget=[1.2, 3.0], seed=0, lam=50)
    arch = s.ask()
    cost = COSTS.gather(1, arch.t()).sum(0).view(2, 50)
    # within each budget up to the engine's rounding slack (a sum may be 1.2000000000000002)
    assert (cost[0] <= 1.2 + 1e-9).all() and (cost[1] <= 3.0 + 1e-9).all()
    with pytest.raises(ValueError, match="cheapest"):
        RandomSearch(NUM_CHOICES, COSTS, budget=0.1)
    with pytest.raises(ValueError, match="too tight"):
        RandomSearch(NUM_CHOICES, COSTS, budget=0.8001, max_tries=1, batch=4).ask()
    with pytest.raises(ValueError, match="cost table"):
        RandomSearch(NUM_CHOICES, budget=1.0)


def test_normalize_costs():
    mask = torch.arange(4) < torch.tensor(NUM_CHOICES).unsqueeze(1)
    raw = COSTS * 1e6
    raw[1, 3] = float("nan")                                     # padding is ignored
    norm, scale = search.normalize_costs(raw, mask, return_scale=True)
    assert scale == pytest.approx(1e6) and search.cost_scale(raw, mask) == scale
    assert norm[mask].max() == 1.0 and (norm[~mask] == 0).all()
    torch.testing.assert_close(norm * scale, torch.where(mask, raw, torch.zeros(())))
    assert torch.equal(search.normalize_costs(torch.zeros(2, 2)), torch.zeros(2, 2, dtype=torch.float64))
    with pytest.raises(ValueError):
        search.normalize_costs(torch.zeros(3))


def test_the_search_packages_public_names_include_the_registry():
    assert {"register_searcher", "get_searcher", "SearchProblem"} <= set(search.__all__)
    assert all(hasattr(search, name) for name in search.__all__)


def test_budget_cost_without_budgets_says_so():
    s = MultiEpsilonSearch([3] * 4, torch.rand(4, 3, dtype=torch.float64), epsilons=[0.0, 0.1])
    with pytest.raises(RuntimeError, match="needs an engine built with budgets"):
        s.budget_cost()
