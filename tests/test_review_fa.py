"""Review fa: the search API's input checks. ContextCosts.totals refuses rows that are not choices of the space
(before: a bare IndexError, or a silently wrong total), RandomSearch's gates refuse decisions that are not integers
(0.5 was read as decision 0), and malformed numbers, masks and cost tables are one ValueError naming the argument
(docs/search-engine.md, "API")."""

import itertools
import math

import numpy as np
import pytest
import torch

from automl.search import (ContextCosts, MultiEpsilonSearch, RandomSearch, cost_extremes, cost_scale,
                           normalize_context, normalize_costs)

KS = [3, 3, 2, 4]          # decisions 0 and 1 are the context; decision 2 has 2 of the 4 columns
MASK = torch.arange(4) < torch.tensor(KS).unsqueeze(1)
TABLE = torch.tensor([[0.0, 1.0, 2.0]] * 2, dtype=torch.float64)


def _model():
    g = torch.Generator().manual_seed(0)
    tables = torch.rand(9, 4, 4, generator=g, dtype=torch.float64)
    fixed = torch.rand(9, generator=g, dtype=torch.float64)
    return ContextCosts([0, 1], tables, fixed, MASK), tables, fixed


# ---------------------------------------------------------------------------------------- ContextCosts.totals

def test_totals_of_every_architecture_are_the_exact_sums():
    """R(M) = F[a] + sum over the other decisions of T[a, d, k_d], a = 3 k_0 + k_1 (row-major)."""
    model, tables, fixed = _model()
    archs = list(itertools.product(*map(range, KS)))
    got = model.totals(torch.tensor(archs))
    for (k0, k1, k2, k3), total in zip(archs, got.tolist()):
        a = 3 * k0 + k1
        assert total == pytest.approx(float(fixed[a] + tables[a, 2, k2] + tables[a, 3, k3]), abs=1e-12)


@pytest.mark.parametrize("row, decision, allowed", [
    ([0, 3, 0, 0], 1, "0..2"),    # a context choice past K: was read as the combination of [1, 0, ...]
    ([0, 0, 2, 0], 2, "0..1"),    # a choice that does not exist (the mask's padding): was a cost of 0
    ([0, 0, 0, 4], 3, "0..3"),    # past Kmax: was a RuntimeError from gather
    ([-1, 0, 0, 0], 0, "0..2"),   # negative: was an IndexError from index_select
    ([0, 0, 0, -1], 3, "0..3"),
])
def test_totals_name_a_choice_outside_its_decision(row, decision, allowed):
    model, _, _ = _model()
    arch = torch.tensor([[0, 0, 0, 0], row])
    with pytest.raises(ValueError, match=rf"arch row 1 has choice {row[decision]} for decision {decision}, which has "
                                         rf"choices {allowed}"):
        model.totals(arch)


@pytest.mark.parametrize("arch, match", [
    (torch.tensor([[0, 0, 1]]), r"\(S, D\) = \(S, 4\).*got shape \(1, 3\)"),          # was a silent 3-decision sum
    (torch.tensor([0, 0, 1, 1]), r"got shape \(4,\); for one architecture pass arch.view\(1, -1\)"),
    (torch.zeros(2, 4), r"integer choice indices .* got dtype torch.float32"),
    (torch.zeros(2, 4, dtype=torch.bool), r"integer choice indices .* got dtype torch.bool"),
    ("0011", r"arch must be an \(S, D\) tensor of choice indices, got str"),
])
def test_totals_name_an_arch_that_is_not_a_table_of_choices(arch, match):
    model, _, _ = _model()
    with pytest.raises(ValueError, match=match):
        model.totals(arch)


def test_totals_take_any_integer_rows_as_the_long_ones():
    model, _, _ = _model()
    rows = [[2, 1, 1, 3], [0, 0, 0, 0]]
    want = model.totals(torch.tensor(rows))
    assert torch.equal(model.totals(torch.tensor(rows, dtype=torch.int32)), want)
    assert torch.equal(model.totals(np.array(rows)), want)
    assert torch.equal(model.totals(rows), want)


# --------------------------------------------------------------------------------------------- RandomSearch gates

@pytest.mark.parametrize("gates, shown", [
    ({0.5: (0, [False, True, True])}, "decision 0.5"),      # int(0.5) was decision 0: the depth decision gated itself
    ({1.0: (0, [False, True, True])}, "decision 1.0"),
    ({True: (0, [False, True, True])}, "decision True"),
    ({"1": (0, [False, True, True])}, "decision '1'"),
    ({1: (0.5, [False, True, True])}, "decision 0.5"),      # the depth decision too
    ({1: (np.bool_(False), [False, True, True])}, "decision np.False_|decision False"),
])
def test_gates_refuse_a_decision_that_is_not_an_integer(gates, shown):
    with pytest.raises(ValueError, match=rf"gates must be a dict .*\(CostTable.gates\): {shown} is not a decision "
                                         rf"index \(an integer\), in "):
        RandomSearch([3, 3, 3], costs=torch.ones(3, 3), budget=3.0, gates=gates)


@pytest.mark.parametrize("flags, shown", [([0.5, True, True], "0.5"), (["no", True, True], "'no'"),
                                          ([2, 1, 1], "2")])
def test_gates_refuse_a_flag_that_is_not_true_or_false(flags, shown):
    """bool() read 0.5, 2 and "no" as True (the layer there)."""
    with pytest.raises(ValueError, match=rf"gates must be a dict .*: flag {shown} is not True/False"):
        RandomSearch([3, 3, 3], costs=torch.ones(3, 3), budget=3.0, gates={1: (0, flags)})


@pytest.mark.parametrize("gates", [5, [1, 2], {1: 5}, {1: (0, "abc")}])
def test_gates_of_another_shape_are_refused_naming_gates(gates):
    with pytest.raises(ValueError, match=r"gates must be a dict \{decision: \(depth decision"):
        RandomSearch([3, 3, 3], costs=torch.ones(3, 3), budget=3.0, gates=gates)


def test_gates_of_numpy_and_tensor_integers_draw_as_plain_ones():
    costs = torch.tensor([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [0.5, 1.0, 3.0]], dtype=torch.float64)
    plain = RandomSearch([3, 3, 3], costs=costs, budget=3.0, lam=16, seed=1, gates={1: (0, [False, True, True])})
    other = RandomSearch([3, 3, 3], costs=costs, budget=3.0, lam=16, seed=1,
                         gates={np.int64(1): (torch.tensor(0), [np.bool_(False), 1, True])})
    arch = plain.ask()
    assert torch.equal(arch, other.ask())
    # the gated totals hold the budget: decision 1's cost counts only where decision 0's choice has its layer
    layer = torch.tensor([False, True, True])[arch[:, 0]]
    totals = costs[0, arch[:, 0]] + costs[2, arch[:, 2]] + torch.where(layer, costs[1, arch[:, 1]], 0.0)
    assert bool((totals <= 3.0 + 1e-9).all())


# -------------------------------------------------------------------------------------- numbers beyond float64

BIG = 10 ** 400  # a Python int float() cannot hold: was an OverflowError (an ArithmeticError, not a ValueError)


@pytest.mark.parametrize("make, match", [
    (lambda: MultiEpsilonSearch([3, 3], TABLE, epsilons=[0.0, BIG], lam=4), r"epsilons must be finite and >= 0"),
    (lambda: MultiEpsilonSearch([3, 3], TABLE, budgets=[None, BIG], lam=4), r"every budget must be None"),
    (lambda: MultiEpsilonSearch([3, 3], TABLE, epsilons=[0.0], lam=4, lr=BIG), r"lr must be a positive finite"),
    (lambda: MultiEpsilonSearch([3, 3], TABLE, epsilons=[0.0], lam=4, budget_lr=BIG), r"budget_lr must be a posit"),
    (lambda: MultiEpsilonSearch([3, 3], TABLE, epsilons=[0.0], lam=4, theta_min=BIG), r"theta_min must be None or"),
    (lambda: MultiEpsilonSearch([3, 3], [[0, BIG, 1], [0, 1, 2]], epsilons=[0.0], lam=4), r"costs must be a table"),
    (lambda: MultiEpsilonSearch([3, BIG], None, epsilons=[0.0], lam=4), r"num_choices=.* is too large"),
    (lambda: MultiEpsilonSearch([3, 2 ** 40], None, epsilons=[0.0], lam=4), r"num_choices=.* is too large"),
    (lambda: MultiEpsilonSearch([3, 3], TABLE, epsilons=[0.0], lam=BIG), r"lam=.* is too large"),
    (lambda: RandomSearch([3, 3], TABLE, lam=BIG), r"lam=.* is too large"),
    (lambda: RandomSearch([3, 3], TABLE, budget=1.0, fixed=BIG), r"fixed must be a finite number"),
    (lambda: RandomSearch([3, 3], TABLE, budget=1.0, band=BIG), r"band must be a number in \(0, 1\]"),
    (lambda: RandomSearch([3, 3], TABLE, budget=-BIG), r"budget \[-10+\.\.\.0+\] \(404 char.*below the cheapest"),
    (lambda: normalize_costs([[0, BIG]]), r"costs must be a \(D, Kmax\) table of numbers"),
])
def test_a_number_beyond_float64_is_a_value_error_naming_its_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_loss_beyond_float64_is_a_value_error_naming_losses():
    s = MultiEpsilonSearch([3, 3], TABLE, epsilons=[0.0], lam=4)
    with pytest.raises(ValueError, match=r"losses must be numbers"):
        s.tell(s.ask(), [BIG, 0, 0, 0])


def test_a_budget_beyond_float64_fits_every_architecture():
    """RandomSearch's budget=inf is documented to fit every architecture; 10**400 is read as it."""
    s = RandomSearch([3, 3], TABLE, budget=BIG, lam=8, seed=0)
    assert s.budgets == [math.inf]
    assert torch.equal(s.ask(), RandomSearch([3, 3], TABLE, budget=math.inf, lam=8, seed=0).ask())


# -------------------------------------------------------------------------------------- masks and cost tables

BOOLS = torch.ones(2, 3, dtype=torch.bool)


@pytest.mark.parametrize("make", [
    lambda: MultiEpsilonSearch([3, 3], BOOLS, epsilons=[0.0], lam=4),          # the mask in the costs' place
    lambda: RandomSearch([3, 3], BOOLS.numpy(), budget=2.0),
    lambda: normalize_costs(BOOLS),
    lambda: cost_extremes(BOOLS, BOOLS),
    lambda: ContextCosts([0], torch.ones(3, 2, 3, dtype=torch.bool), torch.zeros(3), BOOLS),
    lambda: normalize_context([0], torch.ones(3, 2, 3, dtype=torch.bool), torch.zeros(3), BOOLS),
])
def test_a_table_of_bools_given_as_costs_is_refused(make):
    with pytest.raises(ValueError, match=r"must be numbers \(costs per choice\), got a table of True/False"):
        make()


@pytest.mark.parametrize("make", [
    lambda m: ContextCosts([0], torch.zeros(3, 2, 3), torch.zeros(3), m),
    lambda m: normalize_costs(torch.ones(2, 3), mask=m),
    lambda m: cost_scale(torch.ones(2, 3), mask=m),
    lambda m: cost_extremes(torch.ones(2, 3), m),
])
def test_a_mask_of_numbers_other_than_0_and_1_is_refused(make):
    """bool() read 0.5 as True (a choice that exists)."""
    with pytest.raises(ValueError, match=r"mask must be True/False \(or 0/1\).*got values \[0.5\]"):
        make(torch.tensor([[1.0, 0.5, 1.0], [1.0, 1.0, 1.0]]))
    make(torch.tensor([[1, 1, 1], [1, 1, 0]]))  # 0 and 1 are taken


def test_normalize_costs_reads_an_integer_mask_as_the_bool_one():
    raw = torch.tensor([[1.0, 8.0, 2.0], [4.0, 1.0, 3.0]], dtype=torch.float64)
    flags = torch.tensor([[True, False, True], [True, True, True]])
    assert torch.equal(normalize_costs(raw, flags.long()), normalize_costs(raw, flags))
    assert normalize_costs(raw, flags, return_scale=True)[1] == 4.0      # the 8 is masked out


@pytest.mark.parametrize("mask, match", [
    ("abc", r"mask must be a \(D, Kmax\) table of True/False"),                       # was torch's TypeError
    ([[False] * 3, [True] * 3], r"mask has a decision with no choice \(rows \[0\] all False\)"),
    ([[True, True]], r"mask must be the shape of the costs \(2, 3\)"),
])
def test_normalize_costs_names_a_bad_mask(mask, match):
    with pytest.raises(ValueError, match=match):
        normalize_costs(torch.ones(2, 3), mask=mask)


def test_flags_of_the_normalisers_are_true_or_false():
    """"no" is truthy: return_scale="no" returned a tuple, normalize="no" normalised."""
    with pytest.raises(ValueError, match=r"return_scale must be True or False, got 'no'"):
        normalize_costs(torch.ones(2, 3), return_scale="no")
    with pytest.raises(ValueError, match=r"normalize must be True or False, got 'no'"):
        normalize_context([0], torch.ones(3, 2, 3), torch.zeros(3), BOOLS, normalize="no")
    assert isinstance(normalize_costs(torch.ones(2, 3), return_scale=np.True_), tuple)
