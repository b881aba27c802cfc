"""Review nf: the search engine used as a library (README "Search engine", docs/search-engine.md): a ContextCosts mask
with gaps, the message of a mask that differs from num_choices, True/False costs given as nested lists, docstrings
that say what the code does, budgets below 0 with negative costs, and SearchProblem.options that no built-in
factory reads."""

import math
import re

import numpy as np
import pytest
import torch

from automl.search import (ContextCosts, MultiEpsilonSearch, RandomSearch, SearchProblem, get_searcher,
                           normalize_context, normalize_costs)

# ------------------------------------------------------------------------------------------ 1. a mask with gaps


def _hole_model(mask):
    T = torch.zeros(2, 3, 3, dtype=torch.float64)
    T[:, 1] = torch.tensor([[1., 2, 3], [10, 20, 30]])
    return ContextCosts([0], T, torch.tensor([0., 100.]), mask)


@pytest.mark.parametrize("mask, row", [
    ([[True, False, True], [True] * 3, [True] * 3], 0),
    ([[True] * 3, [False, True, True], [True] * 3], 1),
    ([[True] * 3, [True] * 3, [True, False, True]], 2),
])
def test_a_context_mask_with_a_gap_is_refused_naming_its_row(mask, row):
    """K_d is read as mask.sum(-1) (the first K_d entries): a gap made totals() price choice 1 of decision 0, which
    the mask says does not exist (110.0), silently."""
    with pytest.raises(ValueError, match=rf"mask row {row} .*first K_d"):
        _hole_model(torch.tensor(mask))
    with pytest.raises(ValueError, match=rf"mask row {row} "):
        normalize_context([0], torch.zeros(2, 3, 3), torch.zeros(2), torch.tensor(mask))


def test_a_context_mask_without_gaps_is_taken_and_totals_read_its_choices():
    """Rows of 2, 3 and 1 choices (a prefix each) are the model's choices, as num_choices builds them."""
    mask = torch.arange(3) < torch.tensor([2, 3, 1])[:, None]
    model = _hole_model(mask)
    arch = torch.tensor([[1, 2, 0]])
    assert model.totals(arch).item() == model.tables[1, 1, 2].item() + model.fixed[1].item()
    assert MultiEpsilonSearch([2, 3, 1], model, epsilons=[0.0]).costs.mask.tolist() == mask.tolist()


# ------------------------------------------------------------------------------------------ 2. what differs


def _model(mask):
    D, Kmax = mask.shape
    A = int(mask[0].sum())
    return ContextCosts([0], torch.rand(A, D, Kmax, dtype=torch.float64), torch.zeros(A), mask)


@pytest.mark.parametrize("build", [
    lambda cc: MultiEpsilonSearch([2, 3, 3], cc, epsilons=[0.0]),
    lambda cc: RandomSearch([2, 3, 3], costs=cc),
])
def test_a_context_model_of_another_shape_says_which_shapes(build):
    """Was "the context cost model's choices [2, 3, 3] do not match num_choices [2, 3, 3]": the counts are equal,
    the mask has a column of padding (Kmax 4 against 3)."""
    cc = _model(torch.arange(4) < torch.tensor([2, 3, 3])[:, None])
    with pytest.raises(ValueError) as e:
        build(cc)
    text = str(e.value)
    assert "(3, 4)" in text and "(3, 3)" in text, text
    assert not re.search(r"\[2, 3, 3\] do not match num_choices \[2, 3, 3\]", text), text


@pytest.mark.parametrize("build", [
    lambda cc: MultiEpsilonSearch([2, 3, 3], cc, epsilons=[0.0]),
    lambda cc: RandomSearch([2, 3, 3], costs=cc),
])
def test_a_context_model_of_other_choices_names_the_first_decision_that_differs(build):
    cc = _model(torch.arange(3) < torch.tensor([2, 2, 3])[:, None])
    with pytest.raises(ValueError, match=r"decision 1 .*2 choices.*num_choices\[1\] = 3"):
        build(cc)


# ------------------------------------------------------------------------------------------ 3. True/False costs


@pytest.mark.parametrize("costs", [
    [[True, False]],
    [[True, 0.5]],
    [np.array([True, False])],
    [[np.True_, np.False_]],
    ([torch.tensor(True), torch.tensor(False)],),
    np.array([[True, False]]),
])
@pytest.mark.parametrize("build", [
    lambda c: MultiEpsilonSearch([2], c, epsilons=[0.0]),
    lambda c: normalize_costs(c),
    lambda c: RandomSearch([2], costs=c, budget=1.0),
])
def test_true_false_costs_are_refused_however_given(costs, build):
    """A nested list of bools was read as costs of 1 and 0; a bool tensor or array was refused (docs: "a table of
    True/False given as costs (the mask in the costs' place)" is a ValueError)."""
    with pytest.raises(ValueError, match=r"got a table of True/False \(a mask\?\)"):
        build(costs)


def test_numbers_given_as_nested_lists_are_still_costs():
    s = MultiEpsilonSearch([2, 3], [[0, 1.5, 0], [np.float64(2.0), torch.tensor(1.0), 3]], epsilons=[0.0])
    assert s.costs.tolist() == [[0.0, 1.5, 0.0], [2.0, 1.0, 3.0]]
    assert normalize_costs([[0, 1], [2, 4]]).tolist() == [[0.0, 0.25], [0.5, 1.0]]


# ------------------------------------------------------------------------------------------ 4. docstrings


def test_init_theta_is_refused_not_renormalised_and_the_docstring_says_so():
    half = torch.full((1, 3), 0.5, dtype=torch.float64)
    with pytest.raises(ValueError, match="must sum to 1"):
        MultiEpsilonSearch([3], torch.zeros(1, 3), epsilons=[0.0], init_theta=half)
    doc = MultiEpsilonSearch.__doc__
    assert "renormalised" not in doc
    assert re.search(r"init_theta:.*summing to 1.*refused", " ".join(doc.split()))


def test_the_tell_docstring_describes_both_utilities():
    """It described eq. 9 only; the pipeline's (and the quickstart's) utility is weighted_quantile."""
    doc = " ".join(MultiEpsilonSearch.tell.__doc__.split())
    assert "weighted_quantile_utilities" in doc and "quantile_utilities" in doc
    assert 'utility="weighted_quantile"' in doc and 'utility="paper"' in doc


def test_load_state_dict_restores_what_its_docstring_names():
    """It said "theta, the RNG and the step count"; it also restores the adapted ε, the seed and the count of
    non-finite losses."""
    costs = torch.tensor([[0.0, 0.5, 1.0]] * 3)
    a = MultiEpsilonSearch([3] * 3, costs, budgets=[None, 0.8], lam=4, seed=5)
    for i in range(5):
        with pytest.warns(RuntimeWarning, match="1 of 4 losses are NaN"):
            a.tell(a.ask(), [math.nan] + [float(i)] * 3)
    b = MultiEpsilonSearch([3] * 3, costs, budgets=[None, 0.8], lam=4, seed=7)
    b.load_state_dict(a.state_dict())
    assert b.epsilons == a.epsilons and b.seed == a.seed and b.nonfinite_losses == a.nonfinite_losses == 5
    doc = " ".join(MultiEpsilonSearch.load_state_dict.__doc__.split())
    assert all(word in doc for word in ("theta", "epsilon", "seed", "non-finite", "step")), doc


# ------------------------------------------------------------------------------------------ 5. budgets below 0


def test_a_budget_below_0_is_taken_where_the_costs_are_negative():
    """Costs of 0, -1, -2 per decision: the cheapest architecture costs -4; a budget of -1 was "every budget must be
    None ... >= 0". RandomSearch takes it; so does the engine now, and meets it."""
    costs = -torch.arange(3.).expand(2, 3)
    s = MultiEpsilonSearch([3, 3], costs, budgets=[None, -1.0], lam=4, seed=0)
    assert s.budgets == [None, -1.0]
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        arch = s.ask()
        s.tell(arch, torch.rand(4, generator=g, dtype=torch.float64))
    best = s.best()[1]
    assert float(costs.gather(1, best.view(-1, 1)).sum()) <= -1.0
    assert RandomSearch([3, 3], costs=costs, budget=-1.0).budgets == [-1.0]


@pytest.mark.parametrize("budget, match", [
    (-5.0, r"budgets \[-5.0\] are below the cheapest architecture's cost -4"),
    (math.inf, "finite number"),
    (-math.inf, "finite number"),
    (math.nan, "finite number"),
    (True, "finite number"),
])
def test_a_budget_the_cheapest_architecture_cannot_meet_is_still_refused(budget, match):
    with pytest.raises(ValueError, match=match):
        MultiEpsilonSearch([3, 3], -torch.arange(3.).expand(2, 3), budgets=[budget])


def test_a_negative_budget_with_non_negative_costs_is_below_the_cheapest():
    with pytest.raises(ValueError, match=r"budgets \[-0.5\] are below the cheapest architecture's cost 0"):
        MultiEpsilonSearch([3, 3], torch.arange(3.).expand(2, 3), budgets=[-0.5])


# ------------------------------------------------------------------------------------------ 6. options


def _problem(**kw):
    base = dict(num_choices=[3] * 4, costs=torch.tensor([[0.0, 0.5, 1.0]] * 4), members=[0, 1],
                epsilons=[0.0, 0.5], budgets=None, lam=4, seed=0)
    return SearchProblem(**{**base, **kw})


@pytest.mark.parametrize("method", ["importance_sampling", "separate", "simultaneous"])
def test_an_option_the_engine_does_not_read_is_refused_with_the_nearest(method):
    """options={"utilty": "paper"} ran with the default utility, silently."""
    with pytest.raises(ValueError, match=r"options\['utilty'\].*theta_lr, theta_min, utility.*did you mean "
                                         r"'utility'\?"):
        get_searcher(method).create(_problem(options={"utilty": "paper"}))


def test_an_option_the_random_baseline_does_not_read_is_refused():
    problem = _problem(members=[0], epsilons=None, budgets=[1.5], options={"random_bnd": 0.5})
    with pytest.raises(ValueError, match=r"options\['random_bnd'\].*did you mean 'random_band'\?"):
        get_searcher("random").create(problem)


def test_the_options_the_pipeline_passes_are_taken():
    """automl.pipeline.plan.search_problem gives every searcher theta_lr, theta_min and utility, and the random
    baseline its own keys besides."""
    run = {"theta_lr": "auto", "theta_min": "auto", "utility": "paper"}
    engine = get_searcher("importance_sampling").create(_problem(options=run))
    assert engine.utility == "paper"
    sampled = dict(run, random_band=None, cost_fixed=0.0, cost_gates={}, band_context=[], budget_key="k")
    problem = _problem(members=[0], epsilons=None, budgets=[1.5], options=sampled)
    assert isinstance(get_searcher("random").create(problem), RandomSearch)
