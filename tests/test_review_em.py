"""Review em: the search engine's Python API refuses every bad argument with one ValueError that names it (at
construction or at the call), not a torch error or a silent wrong result later; RandomSearch warns of NaN losses
as the engine does (docs/search-engine.md, "API" and "NaN and inf losses")."""

import math
import re
import warnings

import pytest
import torch

from automl.search import (ContextCosts, MultiEpsilonSearch, RandomSearch, SearchProblem, best_within_budget,
                           cost_extremes, get_searcher, normalize_context)

K, D = 3, 4
COSTS = torch.tensor([[0.0, 0.5, 1.0]] * D, dtype=torch.float64)


def _engine(**kw):
    return MultiEpsilonSearch(**{**dict(num_choices=[K] * D, costs=COSTS, epsilons=[0.0, 0.5], lam=4, seed=0), **kw})


def _run(s, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        s.tell(s.ask(), torch.rand(s.rows_per_ask, generator=g, dtype=torch.float64))
    return s


# ------------------------------------------------------------------------------------------ equal epsilons / budgets

@pytest.mark.parametrize("kw, key, item", [
    (dict(epsilons=[0.0, 0.5, 0.5]), "epsilons", "item 3 (0.5) is given twice (item 2)"),
    (dict(epsilons=[0.0, -0.0]), "epsilons", "item 2 (-0.0) is given twice (item 1)"),
    (dict(epsilons=None, budgets=[None, 1.0, 1.0]), "budgets", "item 3 (1.0) is given twice (item 2)"),
    (dict(epsilons=None, budgets=[None, None]), "budgets", "item 2 (None) is given twice (item 1)"),
    (dict(epsilons=[0.5, 0.5], init_theta=torch.full((D, K), 1 / 3)), "epsilons", "item 2 (0.5) is given twice (item 1)"),
])
def test_equal_members_that_would_search_for_one_network_are_refused(kw, key, item):
    """As the recipe's search.epsilons / search.budgets: two members of one ε (or budget) from one start see the
    same samples with the same importance ratios, so they stay equal at every step (one network twice, and that ε's
    share of the mixture's samples doubled). They were taken silently."""
    with pytest.raises(ValueError, match=f"^{key}: {re.escape(item)}: the two members would search for the same "
                                         f"network"):
        _engine(**kw)


def test_why_equal_members_are_refused_they_stay_equal_at_every_step():
    """The fact the refusal rests on. Two members of ε 0.5 from different starts are taken; given one θ (a state in
    which both are the first's), they stay equal, bit for bit, at every step after, beside a third member."""
    start = torch.stack([torch.tensor([[0.5, 0.25, 0.25]] * D), torch.tensor([[0.25, 0.25, 0.5]] * D),
                         torch.full((D, K), 1 / 3)]).double()
    s = _engine(epsilons=[0.5, 0.5, 0.0], init_theta=start)
    state = s.state_dict()
    state["theta"] = state["theta"][[0, 0, 2]]
    s.load_state_dict(state)
    for step in range(200):
        _run(s, 1, seed=step)
        assert torch.equal(s.theta[0], s.theta[1])
    assert not torch.equal(s.theta[0], start[0])                      # and they did move


def test_equal_members_that_search_apart_are_taken():
    """Without importance sampling (each member samples its own rows) or from different starts, two members of one
    ε are independent searches: taken, and they do differ."""
    apart = _run(_engine(epsilons=[0.5, 0.5], importance_sampling=False), 50)
    assert not torch.equal(apart.theta[0], apart.theta[1])
    start = torch.stack([torch.tensor([[0.5, 0.25, 0.25]] * D), torch.tensor([[0.25, 0.25, 0.5]] * D)]).double()
    two_starts = _run(_engine(epsilons=[0.5, 0.5], init_theta=start), 5)
    assert not torch.equal(two_starts.theta[0], two_starts.theta[1])


# ------------------------------------------------------------------------------------------ RandomSearch's NaN losses

@pytest.mark.parametrize("bad", [math.nan, -math.inf, math.inf])
def test_random_search_warns_of_nan_and_inf_losses_as_the_engine_does(bad):
    """docs "NaN and inf losses": they rank worst and a RuntimeWarning says how many; RandomSearch.tell said
    nothing."""
    s = RandomSearch([K] * D, costs=COSTS, budget=[2.0, 3.0], lam=2, seed=0)
    arch = s.ask()
    with pytest.warns(RuntimeWarning, match="1 of 4 losses are NaN or inf"):
        s.tell(arch, [bad, 0.3, 0.2, 0.1])
    worst = RandomSearch([K] * D, costs=COSTS, budget=[2.0, 3.0], lam=2, seed=0)
    worst.ask()
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # finite losses: no warning
        worst.tell(arch, [0.4, 0.3, 0.2, 0.1])
    assert s.best().tolist() == [arch[1].tolist(), arch[3].tolist()] == worst.best().tolist()  # it ranks worst


# ------------------------------------------------------------------------------------------ sizes that cannot run

def test_a_lam_whose_tell_cannot_fit_is_refused_at_construction():
    """lam = 10^6 was taken, and its first tell asked for N x lam x lam = 2·10^12 numbers; lam = 2^40 failed inside
    torch ("DefaultCPUAllocator: can't allocate memory")."""
    for lam in (10 ** 6, 2 ** 40):
        with pytest.raises(ValueError, match=r"^lam=.* is too large: tell\(\)'s \(N, lam, lam\) tables .* use lam <= "
                                             r"46,340$"):
            _engine(lam=lam)
    assert _engine(lam=46_340).lam == 46_340                       # the largest that fits (N = 2) is taken


@pytest.mark.parametrize("kw, name", [(dict(lam=2 ** 40), "lam"), (dict(batch=2 ** 40), "batch")])
def test_random_search_refuses_draws_that_cannot_fit(kw, name):
    with pytest.raises(ValueError, match=f"^{name}=.* is too large: .* use {name} <= "):
        RandomSearch([K] * D, costs=COSTS, budget=2.0, **kw)


# ------------------------------------------------------------------------------------------ arguments named

def test_the_meta_device_is_refused():
    """device='meta' failed inside torch: 'Tensor.item() cannot be called on meta tensors'."""
    with pytest.raises(ValueError, match="device meta holds no numbers"):
        _engine(device="meta")
    with pytest.raises(ValueError, match="device meta"):
        RandomSearch([K] * D, device="meta")


def test_num_choices_of_bools_are_refused():
    """[True, 2] was read as [1, 2] (a flag is no count of choices)."""
    with pytest.raises(ValueError, match=r"num_choices must be a list of positive integers, got \[True, 2\]"):
        MultiEpsilonSearch([True, 2], None, epsilons=[0.0], lam=2)


@pytest.mark.parametrize("costs, mask, match", [
    (torch.zeros(0, 0), torch.zeros(0, 0, dtype=torch.bool), "mask has no decisions"),
    (torch.ones(2, 2), torch.ones(3, dtype=torch.bool), r"mask must be the shape of the costs \(2, 2\)"),
    (torch.ones(2, 2), None, "mask must be a .* got NoneType"),
    (torch.ones(2, 2), torch.tensor([[True, True], [False, False]]), r"rows \[1\] all False"),
    (torch.tensor([[0.0, math.nan]]), torch.ones(1, 2, dtype=torch.bool), "costs contain NaN or inf"),
    (torch.ones(3), torch.ones(3, dtype=torch.bool), "costs must be a .D, Kmax. table"),
])
def test_cost_extremes_names_what_is_wrong(costs, mask, match):
    """An IndexError, a RuntimeError or a TypeError from inside torch before; a mask that rules out every choice of
    a decision gave (inf, -inf)."""
    with pytest.raises(ValueError, match=match):
        cost_extremes(costs, mask)


def test_cost_extremes_of_a_valid_table_are_unchanged():
    table = torch.tensor([[0.0, 2.0, 1.0], [3.0, -1.0, 9.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    assert cost_extremes(table, mask) == (-1.0, 5.0)
    assert cost_extremes(table.tolist(), mask.tolist()) == (-1.0, 5.0)


@pytest.mark.parametrize("args, match", [
    ((torch.zeros(0, 0), torch.zeros(0, 0), 1.0), "D >= 1 decisions"),
    ((torch.zeros(D, K), COSTS, 1.0, None, math.nan), "slack_of must be a number"),
    ((torch.zeros(D, K), COSTS, 1.0, None, "x"), "slack_of must be a number"),
])
def test_best_within_budget_names_what_is_wrong(args, match):
    """(0, 0) tables: an IndexError from torch's min(); slack_of 'x': float()'s "could not convert string"; slack_of
    NaN answered None (nothing fits) for a budget everything fits."""
    with pytest.raises(ValueError, match=match):
        best_within_budget(*args)


MASK = torch.ones(3, 2, dtype=torch.bool)


@pytest.mark.parametrize("mask, match", [
    (torch.tensor([[False, False], [True, True], [True, True]]), r"rows \[0\] all False"),
    (torch.tensor([[True, True], [False, False], [True, True]]), r"rows \[1\] all False"),
    ("x", "mask must be a .D, Kmax. table of True/False"),
    ([[True, True], [True]], "mask must be a .D, Kmax. table of True/False"),
])
def test_context_costs_refuse_a_mask_without_a_choice(mask, match):
    """A context decision without a choice made A = 0 combinations, taken; a str mask was torch's TypeError."""
    with pytest.raises(ValueError, match=match):
        ContextCosts([0], torch.zeros(2, 3, 2), torch.zeros(2), mask)


def test_context_costs_best_within_names_its_arguments():
    cc = ContextCosts([0], torch.rand(2, 3, 2, generator=torch.Generator().manual_seed(0)), torch.zeros(2), MASK)
    with pytest.raises(ValueError, match=r"values must be a \(D, Kmax\) table of shape \(3, 2\), got \(2, 2\)"):
        cc.best_within(torch.zeros(2, 2), 1.0)
    with pytest.raises(ValueError, match="budget must be a number, got 'x'"):
        cc.best_within(torch.zeros(3, 2), "x")
    assert cc.best_within(torch.zeros(3, 2), math.inf) is not None


@pytest.mark.parametrize("args, match", [
    (([0], torch.zeros(0, 3, 2), torch.zeros(0), MASK), "A >= 1 combinations"),
    (([0], torch.zeros(3, 2), torch.zeros(2), MASK), r"tables must be \(A, D, Kmax\)"),
    (([0], "x", torch.zeros(2), MASK), "tables must be a table of numbers"),
])
def test_normalize_context_names_what_is_wrong(args, match):
    """Empty tables: torch's "min(): Expected reduction dim"; a str: torch's TypeError."""
    with pytest.raises(ValueError, match=match):
        normalize_context(*args)


def test_normalize_context_of_valid_tables_is_unchanged():
    tables = torch.tensor([[[0.0, 0.0], [1.0, 4.0], [2.0, 3.0]], [[0.0, 0.0], [2.0, 8.0], [1.0, 1.0]]])
    model, scale, offset = normalize_context([0], tables, torch.tensor([5.0, 3.0]), MASK)
    assert (scale, offset) == (8.0, 3.0)
    assert torch.equal(model.tables, tables.double() / 8.0) and model.fixed.tolist() == [0.25, 0.0]


# ------------------------------------------------------------------------------------------ the registry's factories

def _problem(**kw):
    base = dict(num_choices=[K] * D, costs=COSTS, members=[0, 1], epsilons=[0.0, 0.5], budgets=None, lam=4, seed=0)
    return SearchProblem(**{**base, **kw})


@pytest.mark.parametrize("kw, match", [
    (dict(members=[]), "members must be a non-empty list"),
    (dict(members=[0], epsilons=None, budgets=[]), r"budgets must be None or one per member \(1: \[0\]\)"),
    (dict(epsilons=[0.0]), r"epsilons must be None or one per member \(2: \[0, 1\]\)"),
])
def test_a_search_problem_has_one_target_per_member(kw, match):
    """members=[] and budgets=[] were IndexErrors in the random factory (problem.members[0])."""
    with pytest.raises(ValueError, match=match):
        _problem(**kw)


@pytest.mark.parametrize("options, match", [
    ({"theta_lr": "abc"}, r"options\['theta_lr'\] \(search.theta_lr\) must be a number or 'auto', got 'abc'"),
    ({"theta_min": None}, r"options\['theta_min'\] .* got None"),
    ({"theta_lr": [0.1]}, r"options\['theta_lr'\] .* got \[0.1\]"),
])
def test_the_engine_factory_names_a_bad_option(options, match):
    """float()'s "could not convert string to float: 'abc'" or a TypeError before."""
    with pytest.raises(ValueError, match=match):
        get_searcher("importance_sampling").create(_problem(options=options))


def test_the_engine_factory_without_epsilons_or_budgets_says_so():
    """Neither: list(None), a TypeError ('NoneType' object is not iterable)."""
    with pytest.raises(ValueError, match="give exactly one of epsilons"):
        get_searcher("separate").create(_problem(epsilons=None))


def test_the_engine_factory_builds_what_the_engine_builds():
    """Options read as before: a number as the engine's lr and theta_min; 'auto' as None."""
    made = get_searcher("importance_sampling").create(_problem(options={"theta_lr": 0.05, "theta_min": 0.01}))
    assert made.lr == 0.05 and made.theta_min == [0.01] * D
    auto = get_searcher("importance_sampling").create(_problem(options={"theta_lr": "auto", "theta_min": "auto"}))
    assert torch.equal(_run(auto, 20).theta, _run(_engine(utility="weighted_quantile"), 20).theta)
