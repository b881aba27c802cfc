"""Property-based review of the random baseline ``automl.search.RandomSearch`` (helper HX).

Each property is checked against brute force on small spaces (every architecture of D <= 4 decisions with
K <= 3 choices enumerated): the rows ``ask`` draws are exactly the architectures within the budget (and band),
uniformly (a chi-square bound over many seeded draws), on the exact totals of a plain table or a
``ContextCosts`` with elastic depth's gates; a budget or band that no architecture meets is refused with a
``ValueError``; draws are a function of the seed, and ``state_dict`` / ``load_state_dict`` continues them
bit-identically. Hypothesis runs derandomized (the same examples every run), with few examples per property.
"""

from __future__ import annotations

import io
import math
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_review_hh import _archs, _int_table, _mask, context_model, small_space  # the engine review's spaces

from automl.search import ContextCosts, RandomSearch

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
FEW = settings(max_examples=15, deadline=None, derandomize=True, database=None,
               suppress_health_check=list(HealthCheck))
PER_CELL = 40  # expected draws of each feasible architecture in the uniformity checks


# ---------------------------------------------------------------------------------------------- helpers

def _total(costs, gates: dict, arch) -> float:
    """R(M) of ``arch`` by brute force: a table's or a ContextCosts' sum, less the layers a gate leaves out."""
    if isinstance(costs, ContextCosts):
        a = 0
        for c in costs.context_decisions:
            a = a * int(costs.mask[c].sum()) + arch[c]
        table, total = costs.tables[a], float(costs.fixed[a])
        free = [d for d in range(len(arch)) if d not in costs.context_decisions]
    else:
        table, total, free = costs, 0.0, range(len(arch))
    for d in free:
        g = gates.get(d)
        if g is None or g[1][arch[g[0]]]:
            total += float(table[d, arch[d]])
    return total


def _feasible(ks, costs, gates, budget, band, fixed) -> list[tuple]:
    """Every architecture with R <= budget and (with a band) band * (fixed + budget) <= fixed + R (exact here:
    integer costs, and bands and fixed parts that multiply exactly)."""
    out = []
    for arch in _archs(ks):
        t = _total(costs, gates, arch)
        if t <= budget and (band is None or fixed + t >= band * (fixed + budget)):
            out.append(arch)
    return out


def _chi2_ok(rows: list[tuple], cells: list[tuple]) -> tuple[bool, float]:
    """Whether ``rows`` look uniform over ``cells`` (every row one of them): chi-square within mean + 6 sd."""
    counts = {c: 0 for c in cells}
    for r in rows:
        counts[r] += 1
    expected = len(rows) / len(cells)
    chi2 = sum((n - expected) ** 2 / expected for n in counts.values())
    df = max(len(cells) - 1, 1)
    return chi2 <= df + 6 * math.sqrt(2 * df) + 1, chi2


@st.composite
def gated_space(draw, context: bool):
    """``(ks, costs, gates)``: a (D, Kmax) table of small integers (negative ones too) or a ContextCosts, and
    elastic depth's gates (decision -> (depth decision, flag per choice)), not nested, on any decisions."""
    if context:
        ks, _, costs = draw(context_model())
        ks = list(ks)
    else:
        ks = draw(small_space(4, 3))
        if len(ks) < 2:
            ks = ks + [2]
        costs = torch.where(_mask(ks), _int_table(draw, ks, -2, 6), torch.zeros((), dtype=torch.float64))
    D, gates = len(ks), {}
    depth = [g for g in range(D) if ks[g] >= 2]
    if depth and draw(st.sampled_from([True, True, False])):
        g = draw(st.sampled_from(depth))
        for d in range(D):
            if d != g and draw(st.booleans()):
                gates[d] = (g, [draw(st.booleans()) for _ in range(ks[g])])
    return ks, costs, gates


# ------------------------------------------------------------------------------------- against brute force

@pytest.mark.parametrize("context", [False, True])
@SETTINGS
@given(data=st.data())
def test_draws_are_uniform_over_exactly_the_feasible_architectures(context, data):
    """Every row is within its budget (and band), every feasible architecture is drawn, uniformly; where none
    is feasible, construction or ask raises ValueError (no endless loop)."""
    ks, costs, gates = data.draw(gated_space(context))
    totals = sorted({_total(costs, gates, a) for a in _archs(ks)})
    budget = data.draw(st.sampled_from(totals)) + data.draw(st.sampled_from([0.0, 0.5, -0.5]))
    band = data.draw(st.sampled_from([None, 0.5, 0.75, 1.0]))
    fixed = data.draw(st.sampled_from([0.0, 2.0, -1.0, 8.0]))
    cells = _feasible(ks, costs, gates, budget, band, fixed)
    kw = dict(costs=costs, budget=budget, band=band, fixed=fixed, gates=gates or None, max_tries=40, batch=256,
              seed=data.draw(st.integers(0, 2 ** 32)))
    if not cells:
        with pytest.raises(ValueError, match="below the cheapest|above the most expensive|too narrow|too tight|"
                                             "an empty range"):
            RandomSearch(ks, **kw).ask()
        return
    s = RandomSearch(ks, lam=PER_CELL * len(cells), **kw)
    arch = s.ask()
    assert arch.shape == (PER_CELL * len(cells), len(ks)) and arch.dtype == torch.long
    rows = [tuple(r) for r in arch.tolist()]
    outside = set(rows) - set(cells)
    assert not outside, f"drawn outside the budget/band: {sorted(outside)[:3]}"
    assert set(rows) == set(cells), f"never drawn: {sorted(set(cells) - set(rows))[:3]}"
    ok, chi2 = _chi2_ok(rows, cells)
    assert ok, f"not uniform: chi2 {chi2:.1f} over {len(cells)} architectures"
    s.tell(arch, torch.arange(arch.shape[0], dtype=torch.float64))  # ask's own rows are taken
    assert s.best()[0].tolist() == arch[0].tolist()


@SETTINGS
@given(st.data())
def test_budgets_in_any_order_each_group_keeps_its_own(data):
    """N budgets in any order (repeats too): group n (rows n*lam .. (n+1)*lam-1) is uniform within budgets[n]."""
    ks, costs, gates = data.draw(gated_space(False))
    totals = sorted({_total(costs, gates, a) for a in _archs(ks)})
    budgets = data.draw(st.lists(st.sampled_from(totals + [math.inf]), min_size=1, max_size=4))
    most = max(len(_feasible(ks, costs, gates, b, None, 0.0)) for b in budgets)
    lam = PER_CELL * most
    s = RandomSearch(ks, costs=costs, budget=budgets, lam=lam, gates=gates or None, batch=512,
                     seed=data.draw(st.integers(0, 999)))
    assert s.num_distributions == len(budgets)
    arch = s.ask()
    assert arch.shape == (len(budgets) * lam, len(ks))
    for n, b in enumerate(budgets):
        cells = _feasible(ks, costs, gates, b, None, 0.0)
        rows = [tuple(r) for r in arch[n * lam:(n + 1) * lam].tolist()]
        assert set(rows) == set(cells), (n, b)
        assert _chi2_ok(rows, cells)[0], (n, b)
    # a row of one group moved to a group whose budget it breaks is refused by tell
    cheap = min(range(len(budgets)), key=lambda n: budgets[n])
    dear = [n for n in range(len(budgets)) if _total(costs, gates, arch[n * lam].tolist()) > budgets[cheap]]
    if dear:
        bad = arch.clone()
        bad[cheap * lam] = arch[dear[0] * lam]
        with pytest.raises(ValueError, match="over its budget"):
            s.tell(bad, torch.zeros(bad.shape[0]))


# ---------------------------------------------------------------------------------- seeds and state dicts

@FEW
@given(st.data())
def test_draws_follow_the_seed_and_a_state_dict_continues_them(data):
    """The same seed draws the same rows; a state saved after any number of asks and tells (through torch.save
    with weights_only=True) continues identically in a searcher built with another seed."""
    ks, costs, gates = data.draw(gated_space(data.draw(st.booleans())))
    totals = sorted({_total(costs, gates, a) for a in _archs(ks)})
    budgets = data.draw(st.lists(st.sampled_from(totals), min_size=1, max_size=3))
    band = data.draw(st.sampled_from([None, 1.0])) if all(b > 0 for b in budgets) else None
    seed = data.draw(st.integers(0, 2 ** 40))
    kw = dict(costs=costs, budget=budgets, band=band, lam=3, gates=gates or None, batch=64)
    a, b = RandomSearch(ks, seed=seed, **kw), RandomSearch(ks, seed=seed, **kw)
    gen = torch.Generator().manual_seed(seed % 1000)
    for _ in range(data.draw(st.integers(0, 4))):
        x, y = a.ask(), b.ask()
        assert torch.equal(x, y)
        losses = torch.randn(x.shape[0], generator=gen, dtype=torch.float64)
        losses[torch.rand(x.shape[0], generator=gen) < 0.2] = data.draw(st.sampled_from([math.nan, math.inf]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            a.tell(x, losses)
            b.tell(y, losses)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    other = RandomSearch(ks, seed=seed + 1, **kw)
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(other.best(), a.best())
    for _ in range(3):
        assert torch.equal(other.ask(), a.ask())
    assert other.seed == a.seed


# ------------------------------------------------------------------------------------------- band edges

def test_band_is_inclusive_at_both_ends():
    """band * (fixed + budget) <= fixed + R <= fixed + budget, both ends inclusive: with a band of 1 only the
    architectures of exactly the budget; with 0.5 those from half the budget up (fixed counted)."""
    ks, costs = [3, 3], torch.tensor([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    exact = RandomSearch(ks, costs, budget=2.0, band=1.0, lam=300, seed=3).ask()
    assert {tuple(r) for r in exact.tolist()} == {(0, 2), (1, 1), (2, 0)}
    # fixed 2, budget 2: the whole network's 4, band 0.5: fixed + R >= 2, i.e. R >= 0 (all with R <= 2)
    half = RandomSearch(ks, costs, budget=2.0, band=0.5, fixed=2.0, lam=600, seed=3).ask()
    assert {tuple(r) for r in half.tolist()} == {a for a in _archs(ks) if sum(a) <= 2}
    # fixed 0: R >= 1 and R <= 2
    lower = RandomSearch(ks, costs, budget=2.0, band=0.5, lam=600, seed=3).ask()
    assert {tuple(r) for r in lower.tolist()} == {a for a in _archs(ks) if 1 <= sum(a) <= 2}


def test_band_and_budget_edges_absorb_float_rounding_of_costs():
    """0.1 + 0.2 is 0.30000000000000004: within a budget of 0.3, and at a band's floor of 0.3 (or its float
    product 0.1 * 3); a cost one part in 1e6 over is not."""
    ks = [2, 2]
    costs = torch.tensor([[0.1, 0.0], [0.2, 0.0]], dtype=torch.float64)  # R(0, 0) = 0.1 + 0.2
    for budget in (0.3, 0.1 * 3):
        arch = RandomSearch(ks, costs, budget=budget, band=1.0, lam=20, seed=0).ask()
        assert arch.tolist() == [[0, 0]] * 20
    over = torch.tensor([[0.1, 0.0], [0.2 + 3e-7, 0.0]], dtype=torch.float64)
    rows = RandomSearch(ks, over, budget=0.3, lam=200, seed=0).ask().tolist()
    assert [0, 0] not in rows and {tuple(r) for r in rows} == {(0, 1), (1, 0), (1, 1)}
    with pytest.raises(ValueError, match="above the most expensive"):
        RandomSearch(ks, costs, budget=0.3 + 1e-6, band=1.0)


def test_a_band_of_a_negative_whole_network_budget_is_refused_at_construction():
    """With fixed + budget < 0 the band's range [band x (fixed + budget), fixed + budget] is empty for any band
    below 1: refused when built, saying so (not after max_tries x batch draws, advising a lower band)."""
    ks, costs = [3, 3], torch.tensor([[-5.0, 1.0, 2.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"band 0\.5 of budget \[-4\.0\] .*an empty range"):
        RandomSearch(ks, costs, budget=-4.0, band=0.5)
    with pytest.raises(ValueError, match=r"band 0\.5 of budget \[-2\.0\] .*an empty range"):
        RandomSearch(ks, costs, budget=[3.0, -2.0], band=0.5, fixed=-1.0)
    # a band of 1 is the budget alone, fine even below 0
    assert RandomSearch(ks, costs, budget=-4.0, band=1.0, lam=50).ask().tolist() == [[0, 1]] * 50


# ---------------------------------------------------------------------------------- refusals, NaN and inf

def test_infeasible_budgets_and_bands_are_refused():
    ks, costs = [3, 3], torch.tensor([[0.0, 10.0, 20.0], [0.0, 10.0, 20.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="below the cheapest"):
        RandomSearch(ks, costs, budget=[5.0, -0.5])
    with pytest.raises(ValueError, match="above the most expensive"):
        RandomSearch(ks, costs, budget=50.0, band=0.9)                 # 45 > 40, the dearest
    with pytest.raises(ValueError, match="too narrow"):                # 2.5 .. 5: nothing between 0 and 10
        RandomSearch(ks, costs, budget=5.0, band=0.5, max_tries=3, batch=16).ask()
    with pytest.raises(ValueError, match="too tight"):                 # only (0, 0) of 3^12 fits
        RandomSearch([3] * 12, torch.ones(12, 3, dtype=torch.float64).cumsum(1), budget=12.0, max_tries=2,
                     batch=8).ask()


@pytest.mark.parametrize("kw, match", [
    (dict(budget=math.nan), "budget must be a number"),
    (dict(budget=[1.0, math.nan]), "budget must be a number"),
    (dict(budget=[]), "budget must be a number"),
    (dict(budget=[None, 2.0]), "budget=math.inf"),
    (dict(budget=-math.inf), "below the cheapest"),
    (dict(budget=2.0, band=math.nan), "band must be a number"),
    (dict(budget=2.0, band=math.inf), "band must be a number"),
    (dict(budget=2.0, band=0.0), "band must be a number"),
    (dict(budget=2.0, band=1.5), "band must be a number"),
    (dict(budget=[2.0, math.inf], band=0.5), "a band needs a finite budget"),
    (dict(budget=2.0, fixed=math.nan), "fixed must be a finite number"),
    (dict(budget=2.0, fixed=math.inf), "fixed must be a finite number"),
    (dict(costs=[[0.0, math.nan, 1.0], [0.0, 1.0, 2.0]], budget=2.0), "NaN or inf"),
    (dict(costs=[[0.0, math.inf, 1.0], [0.0, 1.0, 2.0]], budget=2.0), "NaN or inf"),
    (dict(costs=None, budget=2.0), "a budget needs a cost table"),
])
def test_nonfinite_and_malformed_inputs_are_refused(kw, match):
    kw = dict(dict(costs=[[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]), **kw)
    with pytest.raises(ValueError, match=match):
        RandomSearch([3, 3], **kw)


def test_an_infinite_budget_is_every_architecture_uniformly():
    ks, costs = [3, 2, 3], torch.tensor([[0.0, 5.0, 9.0], [1.0, 7.0, 0.0], [2.0, 3.0, 4.0]], dtype=torch.float64)
    cells = _archs(ks)
    for budget in (math.inf, 10 ** 400):
        rows = [tuple(r) for r in RandomSearch(ks, costs, budget=budget, lam=PER_CELL * len(cells), seed=5)
                .ask().tolist()]
        assert set(rows) == set(cells) and _chi2_ok(rows, cells)[0]


def test_gates_with_a_gated_depth_decision_still_draw_only_feasible_rows():
    """Nested gates (a depth decision itself gated, which the compiler never makes): the extremes checked are the
    ungated ones (documented), but every drawn row still fits its budget on the exact totals."""
    ks = [2, 2, 3]
    costs = torch.tensor([[0.0, 4.0, 0.0], [1.0, 2.0, 0.0], [3.0, 5.0, 6.0]], dtype=torch.float64)
    gates = {1: (0, [False, True]), 2: (1, [True, False])}
    cells = _feasible(ks, costs, gates, 6.0, None, 0.0)
    rows = [tuple(r) for r in RandomSearch(ks, costs, budget=6.0, gates=gates, lam=PER_CELL * len(cells), seed=2)
            .ask().tolist()]
    assert set(rows) == set(cells) and _chi2_ok(rows, cells)[0]


def test_tell_of_a_row_below_the_band_floor_is_refused_and_best_stays_within():
    ks, costs = [3, 3], torch.tensor([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    s = RandomSearch(ks, costs, budget=3.0, band=0.9, lam=2, seed=0)
    arch = s.ask()
    assert all(sum(r) == 3 for r in arch.tolist())
    with pytest.raises(ValueError, match="under its band's floor"):
        s.tell(torch.tensor([[0, 0], [1, 2]]), [0.0, 1.0])
    s.tell(torch.tensor([[2, 1], [1, 2]]), [1.0, 0.0])  # rows of one's own within the band are taken
    assert s.best().tolist() == [[1, 2]]


@pytest.mark.parametrize("budget", [math.inf, 4.0, 2.0])
def test_more_rows_than_a_batch_are_drawn_where_most_architectures_fit(budget):
    """lam beyond max_tries x batch: a budget that most (or every) architecture meets is not "too tight" (the
    tries bound the fraction that fits, each of max(batch, lam) draws), and the rows stay uniform within it."""
    ks, costs = [3, 3], torch.tensor([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    cells = [a for a in _archs(ks) if sum(a) <= budget]
    s = RandomSearch(ks, costs, budget=budget, lam=PER_CELL * 9, batch=16, max_tries=3, seed=4)
    rows = [tuple(r) for r in s.ask().tolist()]
    assert len(rows) == PER_CELL * 9 and set(rows) == set(cells) and _chi2_ok(rows, cells)[0]
    with pytest.raises(ValueError, match="too tight: 3 x 360 uniform"):  # 1 of 3^6 fits: 1080 draws are too few
        RandomSearch([3] * 6, torch.ones(6, 3, dtype=torch.float64).cumsum(1), budget=6.0, lam=360, batch=16,
                     max_tries=3, seed=4).ask()
