"""Review AM: the search engine's public API as a Python user calls it (automl/search/).

Misuse ends in a ValueError that names the argument; numerical edge cases keep every row of theta a
distribution (finite, non-negative, summing to 1)."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch

import automl.search._registry as registry
from automl.search import (MultiEpsilonSearch, RandomSearch, best_within_budget, get_searcher, normalize_costs,
                           register_searcher, searcher_names)

D, K = 3, 3
COSTS = torch.tensor([[1.0, 0.5, 0.0]] * D)          # the last choice is the cheapest


def _engine(**kw):
    args = dict(epsilons=[0.0, 0.5], lam=4, seed=0)
    args.update(kw)
    return MultiEpsilonSearch([K] * D, COSTS, **args)


def _valid(theta: torch.Tensor) -> bool:
    return (bool(torch.isfinite(theta).all()) and bool((theta >= 0).all())
            and float((theta.sum(-1) - 1).abs().max()) < 1e-6)


def _run(s, steps, seed=1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        s.tell(s.ask(), torch.rand(s.rows_per_ask, generator=g, dtype=torch.float64))
    return s


# ---------------------------------------------------------------------------------------------- tell's inputs

def test_tell_refuses_losses_spread_over_two_axes():
    """A (2, 2) tensor of losses for lam = 4 was flattened and taken as four losses in some order."""
    s = _engine()
    arch = s.ask()
    with pytest.raises(ValueError, match=r"losses must be one loss per row .*\(2, 2\)"):
        s.tell(arch, torch.zeros(2, 2))
    assert s.step == 0
    column, flat = _engine(), _engine()          # a (lam, 1) column is one loss per row: taken as it is
    a1, a2 = column.ask(), flat.ask()
    losses = torch.tensor([0.3, 0.1, 0.4, 0.2], dtype=torch.float64)
    column.tell(a1, losses.view(4, 1))
    flat.tell(a2, losses)
    assert torch.equal(column.theta, flat.theta)


@pytest.mark.parametrize("losses", [torch.tensor([1 + 1j, 2, 3, 4]), np.array([1 + 1j, 2, 3, 4])])
def test_tell_refuses_complex_losses(losses):
    """Complex losses were cast to their real part (with only torch's UserWarning)."""
    s = _engine()
    with pytest.raises(ValueError, match="losses must be real numbers"):
        s.tell(s.ask(), losses)


@pytest.mark.parametrize("arch", [None, "0 1 2", object()])
def test_tell_names_arch_when_it_is_no_array(arch):
    """arch=None was torch's RuntimeError 'Could not infer dtype of NoneType', a string a TypeError."""
    s = _engine()
    with pytest.raises(ValueError, match="arch must be"):
        s.tell(arch, [1.0, 2.0, 3.0, 4.0])


@pytest.mark.parametrize("dtype", [torch.bool, torch.complex64])
def test_tell_refuses_arch_of_bool_or_complex_dtype(dtype):
    """A bool arch was read as choices 0 and 1; a complex one lost its imaginary part."""
    s = _engine()
    arch = torch.zeros(4, D, dtype=dtype)
    with pytest.raises(ValueError, match="arch must hold integer choice indices"):
        s.tell(arch, [1.0, 2.0, 3.0, 4.0])


def test_random_search_tell_checks_its_inputs_as_the_engine_does():
    """RandomSearch.tell passed losses straight to torch: 'abcd' was a TypeError, (2, 2) and complex were taken."""
    s = RandomSearch([3, 3], costs=[[0.0, 1.0, 2.0]] * 2, budget=[1.0, 4.0], lam=2, seed=0)
    arch = s.ask()
    for losses, match in [("abcd", "losses must be numbers"), (torch.zeros(2, 2), "losses must be one loss per row"),
                          (torch.tensor([1j, 1, 1, 1]), "losses must be real numbers"),
                          ([1.0, 2.0, 3.0], "expected 4 losses")]:
        with pytest.raises(ValueError, match=match):
            s.tell(arch, losses)
    with pytest.raises(ValueError, match="arch must be"):
        s.tell(None, [1.0, 2.0, 3.0, 4.0])


# ---------------------------------------------------------------------------------------------- constructor

@pytest.mark.parametrize("seed", [2 ** 64, -2 ** 63 - 1])
def test_a_seed_outside_the_generators_range_names_seed(seed):
    """seed=2**64 was torch's 'Overflow when unpacking long long'."""
    with pytest.raises(ValueError, match="seed must be"):
        _engine(seed=seed)
    with pytest.raises(ValueError, match="seed must be"):
        RandomSearch([3], seed=seed)


def test_the_generators_whole_seed_range_is_taken():
    for seed in (2 ** 64 - 1, -2 ** 63, np.int64(7)):
        assert torch.equal(_engine(seed=seed).ask(), _engine(seed=int(seed)).ask())


@pytest.mark.parametrize("seed", ["1", 1.5, None])
def test_random_search_names_a_seed_that_is_no_integer(seed):
    """RandomSearch took seed=1.5 as 1 and seed='x' was int()'s message."""
    with pytest.raises(ValueError, match="seed must be an integer"):
        RandomSearch([3], seed=seed)


@pytest.mark.parametrize("costs, match", [("abc", "costs must be"), ([[0.0, 1.0], [0.0, 1.0, 2.0]], "costs must be"),
                                          (torch.ones(D, K) * 1j, "costs must be real")])
def test_costs_that_are_no_real_table_are_named(costs, match):
    """A string was torch's TypeError, a ragged list its 'expected sequence of length', complex costs were cast."""
    with pytest.raises(ValueError, match=match):
        MultiEpsilonSearch([K] * D, costs, epsilons=[0.0], lam=2)


def test_init_theta_that_is_no_table_is_named():
    with pytest.raises(ValueError, match="init_theta must be"):
        _engine(init_theta="uniform")


def test_budgets_of_zero_dim_tensors_are_numbers():
    """budgets=torch.tensor([0.5, 1.0]) was refused: 'every budget must be ... a finite number, got tensor(0.5000)'."""
    s = MultiEpsilonSearch([K] * D, COSTS, budgets=torch.tensor([0.5, 1.0]), lam=4)
    assert s.budgets == [0.5, 1.0]


def test_a_numpy_float32_theta_min_is_a_number():
    """theta_min=np.float32(0.01) was refused as if out of range."""
    assert _engine(theta_min=np.float32(0.01)).theta_min == [float(np.float32(0.01))] * D


def test_a_device_torch_does_not_know_is_named():
    with pytest.raises(ValueError, match="device must be"):
        _engine(device="gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_cuda_device_without_cuda_is_named():
    """It was torch's RuntimeError 'Found no NVIDIA driver on your system'."""
    with pytest.raises(ValueError, match="device cuda"):
        _engine(device="cuda")


def test_epsilons_and_lr_beyond_float32_are_refused_for_a_float32_engine():
    """epsilon 1e300 in float32 is inf: that member's rows were kept as they were at every step, so it stayed
    uniform (best() answered choice 0, the dearest, for the largest epsilon) without a word."""
    with pytest.raises(ValueError, match="epsilons .*float32"):
        _engine(epsilons=[0.0, 1e300], dtype=torch.float32)
    with pytest.raises(ValueError, match="lr .*float32"):
        _engine(lr=1e100, dtype=torch.float32)
    s = _run(_engine(epsilons=[0.0, 1e30], dtype=torch.float32), 10)   # within float32: the cheapest wins
    assert s.best()[1].tolist() == [2] * D and _valid(s.theta)


@pytest.mark.parametrize("utility", ["paper", "weighted_quantile"])
@pytest.mark.parametrize("N", [1, 3])
def test_a_huge_learning_rate_keeps_theta_a_distribution(utility, N):
    """lr 1e300, theta_min 0: the sample term cancels to a row sum of 1 out of terms of 1e299, and rounding left
    a row with no positive entry, which the range restriction divided 0 / 0: theta NaN at the third step. The
    overflow guard covered only the cost term's size, not the sample term's (eta 2 N)."""
    s = _run(_engine(epsilons=[0.0, 1e-300, 2e-300][:N], lr=1e300, theta_min=0.0, utility=utility, lam=3), 20)
    assert _valid(s.theta)


def test_best_refuses_a_within_budget_that_is_no_flag():
    with pytest.raises(ValueError, match="within_budget"):
        _engine().best(within_budget="no")


@pytest.mark.parametrize("n", [-1, 2.5, "3", True])
def test_sample_uniform_names_a_bad_count(n):
    """sample_uniform(-1) was 'Trying to create tensor with negative dimension', 2.5 rand()'s TypeError."""
    with pytest.raises(ValueError, match="n must be an integer >= 0"):
        _engine().sample_uniform(n)
    assert _engine().sample_uniform(np.int64(0)).shape == (0, D)


# ---------------------------------------------------------------------------------------------- state

def _bad_states(sd):
    theta = sd["theta"]
    return [("theta", torch.full_like(theta, math.nan)), ("theta", theta * 2), ("theta", theta.tolist()),
            ("theta", -theta), ("eps", [0.0, 0.5]), ("eps", torch.tensor([0.1, 0.2, 0.3])),
            ("eps", torch.tensor([math.nan, 0.0])), ("generator", None),
            ("generator", torch.zeros(3, dtype=torch.uint8)), ("step", "x"), ("step", -1), ("nonfinite", "a")]


@pytest.mark.parametrize("budgets", [False, True])
def test_a_corrupt_state_is_refused_naming_its_key_and_loads_nothing(budgets):
    """A NaN or unnormalised theta loaded silently (theta NaN from then on), an eps of the wrong length broke the
    next tell with a broadcasting error, and a bad generator or step was torch's or int()'s message after theta
    had already been replaced."""
    kw = dict(epsilons=None, budgets=[None, 1.0]) if budgets else {}
    sd = _run(_engine(**kw), 3).state_dict()
    for key, value in _bad_states(sd):
        t = _run(_engine(**kw), 1)
        before, gen = t.theta.clone(), t.state_dict()["generator"]
        with pytest.raises(ValueError, match=f"state\\['{key}'\\]"):
            t.load_state_dict({**sd, key: value})
        assert torch.equal(t.theta, before) and torch.equal(t.state_dict()["generator"], gen) and t.step == 1


def test_a_state_saved_in_the_middle_of_a_step_continues_bit_identically():
    """ask(), save, load into a fresh engine of another seed, tell the asked rows there: the same thetas as
    without the round trip (the saved generator is the one after the ask)."""
    for kw in ({}, dict(utility="weighted_quantile"), dict(epsilons=None, budgets=[None, 1.0]),
               dict(importance_sampling=False)):
        ref, s = _run(_engine(**kw), 8), _run(_engine(**kw), 4)
        g = torch.Generator().manual_seed(1)
        for _ in range(4):
            torch.rand(s.rows_per_ask, generator=g, dtype=torch.float64)
        arch = s.ask()
        buf = io.BytesIO()
        torch.save(s.state_dict(), buf)
        t = _engine(**{**kw, "seed": 99})
        t.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
        t.tell(arch, torch.rand(t.rows_per_ask, generator=g, dtype=torch.float64))
        for _ in range(3):
            t.tell(t.ask(), torch.rand(t.rows_per_ask, generator=g, dtype=torch.float64))
        assert torch.equal(ref.theta, t.theta) and t.step == ref.step == 8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_state_loaded_with_map_location_cuda_restores_the_cpu_generator():
    """torch.load(map_location='cuda') moves the saved generator state too; set_state wants a CPU ByteTensor."""
    s = _run(_engine(), 2)
    buf = io.BytesIO()
    torch.save(s.state_dict(), buf)
    t = _engine(seed=5)
    t.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), map_location="cuda", weights_only=True))
    assert torch.equal(t.ask(), s.ask())


def test_random_search_refuses_a_state_that_is_no_dict():
    """It was AttributeError: 'list' object has no attribute 'get'."""
    with pytest.raises(ValueError, match="state must be"):
        RandomSearch([3]).load_state_dict([1])


# ---------------------------------------------------------------------------------------------- registry

@pytest.fixture
def clean_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def _factory(problem):
    return None


def test_registering_a_taken_name_is_refused_unless_replace(clean_registry):
    """register_searcher('random') silently replaced the paper's random baseline for the whole process."""
    builtin = get_searcher("random").create
    with pytest.raises(ValueError, match="'random' is already registered"):
        register_searcher("random", mode="sample")(_factory)
    assert get_searcher("random").create is builtin
    register_searcher("random", mode="sample", replace=True)(_factory)
    assert get_searcher("random").create is _factory
    register_searcher("am_mine")(_factory)
    register_searcher("am_mine")(_factory)       # the same factory again (a module imported twice): fine
    assert get_searcher("am_mine").create is _factory


@pytest.mark.parametrize("name, kwargs, create, match", [
    ("", {}, _factory, "name must be a non-empty string"),
    (5, {}, _factory, "name must be a non-empty string"),
    ("am_x", {"mode": "both"}, _factory, "mode must be one of"),
    ("am_x", {"logfields": len}, _factory, "unknown hook 'logfields'"),
    ("am_x", {"log_fields": 3}, _factory, "log_fields must be callable"),
    ("am_x", {}, 5, "must be callable"),
])
def test_register_searcher_names_what_is_wrong(clean_registry, name, kwargs, create, match):
    """A name 5 broke searcher_names() ('<' between int and str), an unknown hook was SearchMethod's TypeError,
    a factory 5 was registered and failed only when a run built its searcher."""
    with pytest.raises(ValueError, match=match):
        register_searcher(name, **kwargs)(create)
    assert "am_x" not in searcher_names() and all(isinstance(n, str) for n in searcher_names())


# ---------------------------------------------------------------------------------------------- numerical edges

def _edge_cases():
    one = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, 0.0, 0.0]])
    return {
        "N = 1": lambda: _engine(epsilons=[0.3]),
        "lam = 2": lambda: _engine(lam=2),
        "lam = 2, weighted quantile": lambda: _engine(lam=2, utility="weighted_quantile"),
        "one-choice decisions": lambda: MultiEpsilonSearch([1, 3, 1], one, epsilons=[0.0, 1.0], lam=4),
        "only one-choice decisions": lambda: MultiEpsilonSearch([1, 1], None, epsilons=[0.0, 1.0], lam=4),
        "epsilon 1e12": lambda: _engine(epsilons=[0.0, 1e12]),
        "epsilon 1e12, theta_min 0": lambda: _engine(epsilons=[0.0, 1e12], theta_min=0.0),
        "epsilon 0 everywhere": lambda: _engine(epsilons=[0.0, 0.0], importance_sampling=False),
        "equal costs": lambda: MultiEpsilonSearch([K] * D, torch.ones(D, K), epsilons=[0.0, 1.0], lam=4),
        "equal costs, budget met": lambda: MultiEpsilonSearch([K] * D, torch.ones(D, K), budgets=[None, 3.0], lam=4),
        "budgets all met": lambda: _engine(epsilons=None, budgets=[1e9, 100.0]),
        "budget at the cheapest": lambda: _engine(epsilons=None, budgets=[0.0, 1e-12]),
    }


@pytest.mark.parametrize("case", list(_edge_cases()))
def test_numerical_edge_cases_keep_theta_a_distribution(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        s = _edge_cases()[case]()
        _run(s, 30)
        s.tell(s.ask(), [math.nan] * s.rows_per_ask)            # a step of NaN losses only
        s.tell(s.ask(), [math.inf, -math.inf] * (s.rows_per_ask // 2))
    assert _valid(s.theta) and s.nonfinite_losses == 2 * s.rows_per_ask
    best = s.best()
    assert best.shape == (s.num_distributions, len(s.num_choices))
    assert bool((best < torch.tensor(s.num_choices)).all())
    if s.budgets is not None:                                     # a derived member is within its budget
        totals = s.costs.gather(1, best.t()).sum(0)
        assert all(b is None or float(c) <= b + 1e-9 for b, c in zip(s.budgets, totals))


def test_the_largest_epsilon_takes_the_cheapest_choices():
    s = _run(_engine(epsilons=[0.0, 1e12]), 5)
    assert s.best()[1].tolist() == [2] * D


def test_normalize_costs_and_the_knapsack_refuse_complex_or_unreadable_tables():
    """normalize_costs(1j * ones) returned a table of zeros (the real part), best_within_budget took complex
    values; a string was torch's TypeError 'new(): invalid data type'."""
    with pytest.raises(ValueError, match="costs must be real numbers"):
        normalize_costs(torch.ones(2, 2) * 1j)
    with pytest.raises(ValueError, match="costs must be a .* table of numbers"):
        normalize_costs("abc")
    with pytest.raises(ValueError, match="values must be real numbers"):
        best_within_budget(torch.zeros(2, 2) * 1j, torch.zeros(2, 2), 1.0)
    with pytest.raises(ValueError, match="values must be a table of numbers"):
        best_within_budget("abc", torch.zeros(2, 2), 1.0)
