"""Property-based review of the public engine API ``automl.search`` (helper HH).

Each test states a property of docs/search-engine.md ("API", "What tell computes", "Budgets", "Ties",
"NaN and inf losses", "theta_min") and checks it on small random problems against a brute-force or
from-the-paper reference. Hypothesis runs derandomized (the same examples every run), with few examples
per property so that the file stays fast.
"""

from __future__ import annotations

import io
import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automl.search import (ContextCosts, MultiEpsilonSearch, RandomSearch, UnknownSearcher, best_within_budget,
                           cost_scale, get_searcher, normalize_context, normalize_costs, searcher_names)

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
FEW = settings(max_examples=15, deadline=None, derandomize=True, database=None,
               suppress_health_check=list(HealthCheck))
SLACK = 1e-9


# ---------------------------------------------------------------------------------------------- helpers

def _mask(ks: list[int]) -> torch.Tensor:
    return torch.arange(max(ks)) < torch.tensor(ks).unsqueeze(1)


def _archs(ks: list[int]):
    return list(itertools.product(*[range(k) for k in ks]))


def _table_cost(costs: torch.Tensor, arch) -> float:
    return float(sum(float(costs[d, k]) for d, k in enumerate(arch)))


def _context_total(tables, fixed, ctx, ks, arch) -> float:
    sizes = [ks[c] for c in ctx]
    a = 0
    for c, size in zip(ctx, sizes):
        a = a * size + arch[c]
    return float(fixed[a]) + sum(float(tables[a, d, k]) for d, k in enumerate(arch) if d not in ctx)


def _brute_best(values, cost_of, ks, budget):
    """(best value, cheapest cost among the best) over the architectures of finite value within budget."""
    limit = budget + SLACK * max(abs(budget), 1.0)
    best = None
    for arch in _archs(ks):
        v = sum(float(values[d, k]) for d, k in enumerate(arch))
        c = cost_of(arch)
        if c > limit or v == -math.inf:
            continue
        if best is None or v > best[0] or (v == best[0] and c < best[1]):
            best = (v, c)
    return best


@st.composite
def small_space(draw, max_d=4, max_k=4):
    D = draw(st.integers(1, max_d))
    ks = [draw(st.integers(1, max_k)) for _ in range(D)]
    if max(ks) == 1:
        ks[0] = 2
    return ks


def _int_table(draw, ks, low, high):
    """A (D, Kmax) float64 table of small integers (exact sums: no rounding in the comparisons), garbage beyond K_d."""
    Kmax = max(ks)
    rows = [[float(draw(st.integers(low, high))) for _ in range(Kmax)] for _ in ks]
    return torch.tensor(rows, dtype=torch.float64)


def _theta_ok(s: MultiEpsilonSearch, atol: float = 1e-12) -> None:
    theta = s.theta
    mask = s.mask
    assert torch.isfinite(theta).all()
    assert (theta[:, ~mask] == 0).all(), "a choice beyond K_d has mass"
    assert ((theta.sum(-1) - 1).abs() <= atol).all(), "a row does not sum to 1"
    tmin = torch.tensor(s.theta_min, dtype=theta.dtype).view(1, -1, 1)
    assert (theta[:, mask] >= 0).all()
    assert ((theta - tmin)[mask.expand_as(theta)] >= -atol).all(), "theta below theta_min"


# ------------------------------------------------------------------------------- best_within_budget

@SETTINGS
@given(st.data())
def test_best_within_budget_matches_brute_force(data):
    ks = data.draw(small_space())
    mask = _mask(ks)
    values = _int_table(data.draw, ks, -4, 3)
    if data.draw(st.booleans()):  # a choice never to take
        d = data.draw(st.integers(0, len(ks) - 1))
        values[d, data.draw(st.integers(0, ks[d] - 1))] = -math.inf
    costs = _int_table(data.draw, ks, 0, 5)
    archs = _archs(ks)
    totals = sorted({_table_cost(costs, a) for a in archs})
    pick = data.draw(st.sampled_from(["exact", "between", "below", "inf", "huge"]))
    budget = {"exact": data.draw(st.sampled_from(totals)), "below": totals[0] - 0.5, "inf": math.inf,
              "between": data.draw(st.sampled_from(totals)) + 0.5, "huge": 1e300}[pick]
    use_mask = data.draw(st.booleans()) or any(k < max(ks) for k in ks)
    got = best_within_budget(values, costs, budget, mask if use_mask else None)
    ref = _brute_best(values, lambda a: _table_cost(costs, a), ks if use_mask else [max(ks)] * len(ks), budget)
    if ref is None:
        assert got is None
        return
    assert got is not None and got.dtype == torch.long and got.shape == (len(ks),)
    assert all(0 <= int(got[d]) < ks[d] for d in range(len(ks)))
    v = sum(float(values[d, int(got[d])]) for d in range(len(ks)))
    c = _table_cost(costs, got.tolist())
    assert v == ref[0], "not the most valuable architecture within the budget"
    assert c == ref[1], "among equal values the cheapest must win"


@SETTINGS
@given(st.data())
def test_best_within_budget_rounding_slack_at_the_boundary(data):
    """A budget a rounding (< 1e-9 relative) below an architecture's cost still admits it; a clear step below does
    not."""
    ks = data.draw(small_space(3, 3))
    costs = torch.rand(len(ks), max(ks), generator=torch.Generator().manual_seed(data.draw(st.integers(0, 99)))
                       ).double() * 10
    values = torch.zeros_like(costs)
    top = [k - 1 for k in ks]
    values[torch.arange(len(ks)), top] = 1.0  # the last choice of each decision is the most valuable
    mask = _mask(ks)
    cost = _table_cost(costs, top)
    assert best_within_budget(values, costs, cost * (1 - 1e-12), mask).tolist() == top
    got = best_within_budget(values, costs, cost * (1 - 1e-6), mask)
    assert got is None or got.tolist() != top


# --------------------------------------------------------------------------------- normalize / scale

@SETTINGS
@given(st.data())
def test_normalize_costs_round_trip(data):
    ks = data.draw(small_space())
    mask = _mask(ks)
    raw = _int_table(data.draw, ks, -50, 1000) * data.draw(st.sampled_from([1.0, 1e-3, 7.5, 1e6]))
    norm, scale = normalize_costs(raw, mask, return_scale=True)
    assert scale == cost_scale(raw, mask)
    assert (norm[~mask] == 0).all()
    valid = raw[mask]
    if bool((valid == 0).all()):
        assert scale == 1.0 and (norm[mask] == 0).all()
        return
    assert math.isclose(float(norm[mask].abs().max()), 1.0, rel_tol=0, abs_tol=1e-15)
    assert torch.allclose(norm[mask] * scale, valid, rtol=1e-14, atol=0)
    assert torch.equal(torch.sign(norm[mask]), torch.sign(valid))


# ------------------------------------------------------------------------------- theta invariants

def _losses(draw, n, gen):
    kind = draw(st.sampled_from(["distinct", "ties", "nonfinite", "constant"]))
    if kind == "distinct":
        return torch.randn(n, generator=gen, dtype=torch.float64)
    if kind == "ties":
        return torch.randint(0, 3, (n,), generator=gen).double()
    if kind == "constant":
        return torch.full((n,), 0.5, dtype=torch.float64)
    out = torch.randn(n, generator=gen, dtype=torch.float64)
    out[torch.rand(n, generator=gen) < 0.4] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    return out


@st.composite
def engine_kwargs(draw, max_d=4, max_k=4):
    ks = draw(small_space(max_d, max_k))
    mask = _mask(ks)
    costs = normalize_costs(_int_table(draw, ks, 0, 9), mask)
    N = draw(st.integers(1, 4))
    kw = dict(num_choices=ks, costs=costs, lam=draw(st.sampled_from([2, 3, 4, 8])),
              seed=draw(st.integers(0, 2 ** 31)), utility=draw(st.sampled_from(["paper", "weighted_quantile"])),
              importance_sampling=draw(st.booleans()),
              theta_min=draw(st.sampled_from([None, 0.0, 0.01])))
    if draw(st.booleans()):
        kw["epsilons"] = sorted({0.0, *[draw(st.sampled_from([0.1, 0.5, 1.0, 3.0])) for _ in range(N - 1)]})
    else:
        cheap = float(torch.where(mask, costs, math.inf).min(-1).values.sum())
        dear = float(torch.where(mask, costs, -math.inf).max(-1).values.sum())
        fracs = sorted({draw(st.sampled_from([0.0, 0.25, 0.5, 0.9])) for _ in range(N - 1)})
        kw["budgets"] = [None] + sorted({cheap + f * (dear - cheap) for f in fracs})
    if "epsilons" in kw and len(kw["epsilons"]) == 1 and draw(st.booleans()):
        kw["epsilons"] = [0.7]
    return kw


@SETTINGS
@given(engine_kwargs(), st.data())
def test_theta_stays_a_distribution_and_ask_respects_the_masks(kw, data):
    s = MultiEpsilonSearch(**kw)
    gen = torch.Generator().manual_seed(kw["seed"] % 1000)
    ks = kw["num_choices"]
    for _ in range(25):
        arch = s.ask()
        assert arch.shape == (s.rows_per_ask, len(ks)) and arch.dtype == torch.long
        assert ((arch >= 0) & (arch < torch.tensor(ks))).all(), "ask() drew a choice beyond K_d"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            s.tell(arch, _losses(data.draw, arch.shape[0], gen))
        _theta_ok(s)
    best = s.best()
    assert best.shape == (s.num_distributions, len(ks))
    assert ((best >= 0) & (best < torch.tensor(ks))).all()


@FEW
@given(st.data())
def test_ask_never_draws_a_choice_of_zero_probability(data):
    ks = data.draw(small_space(4, 5))
    mask = _mask(ks)
    theta = torch.rand(len(ks), max(ks), generator=torch.Generator().manual_seed(data.draw(st.integers(0, 99))))
    theta = theta.double() * mask
    for d, k in enumerate(ks):  # zero out some existing choices, keep one
        zero = [j for j in range(k) if data.draw(st.booleans())][: k - 1]
        theta[d, zero] = 0.0
    theta = theta / theta.sum(-1, keepdim=True)
    s = MultiEpsilonSearch(ks, None, epsilons=[0.0], lam=64, theta_min=0.0, init_theta=theta,
                           seed=data.draw(st.integers(0, 2 ** 31)))
    for _ in range(10):
        arch = s.ask()
        assert (s.theta[0].gather(1, arch.t()) > 0).all(), "a choice of probability 0 was drawn"


@FEW
@given(engine_kwargs(3, 3))
def test_nonfinite_losses_rank_as_plus_inf(kw):
    """NaN, +inf and -inf rank worst, tied with each other: the update equals that of +inf, bit for bit, with a
    RuntimeWarning and a count."""
    a, b = MultiEpsilonSearch(**kw), MultiEpsilonSearch(**kw)
    gen = torch.Generator().manual_seed(3)
    told = 0
    for step in range(6):
        arch = a.ask()
        assert torch.equal(arch, b.ask())
        losses = torch.randn(arch.shape[0], generator=gen, dtype=torch.float64)
        bad = torch.rand(arch.shape[0], generator=gen) < 0.5
        weird = losses.clone()
        weird[bad] = torch.tensor([math.nan, -math.inf, math.inf], dtype=torch.float64)[
            torch.arange(int(bad.sum())) % 3]
        plain = losses.clone()
        plain[bad] = math.inf
        told += int(bad.sum())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            a.tell(arch, weird)
        assert any(issubclass(w.category, RuntimeWarning) for w in caught) == bool(bad.any())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            b.tell(arch, plain)
        assert torch.equal(a.theta, b.theta)
    assert a.nonfinite_losses == told


# ----------------------------------------------------------------------------------- state round trip

@FEW
@given(engine_kwargs(), st.integers(0, 6), st.booleans())
def test_state_dict_round_trip_continues_bit_identically(kw, before, through_file):
    s = MultiEpsilonSearch(**kw)
    gen = torch.Generator().manual_seed(11)

    def losses(n):
        return torch.randint(0, 4, (n,), generator=gen).double() + 0.1 * torch.randn(n, generator=gen).double()

    for _ in range(before):
        arch = s.ask()
        s.tell(arch, losses(arch.shape[0]))
    sd = s.state_dict()
    if through_file:
        buf = io.BytesIO()
        torch.save(sd, buf)
        buf.seek(0)
        sd = torch.load(buf, weights_only=True)
    other = MultiEpsilonSearch(**dict(kw, seed=kw["seed"] + 1))  # another seed: the state's generator wins
    other.load_state_dict(sd)
    assert other.step == s.step and torch.equal(other.theta, s.theta)
    for _ in range(5):
        a1, a2 = s.ask(), other.ask()
        assert torch.equal(a1, a2)
        loss = losses(a1.shape[0])
        s.tell(a1, loss)
        other.tell(a2, loss.clone())
        assert torch.equal(s.theta, other.theta)
        assert s.epsilons == other.epsilons
    assert torch.equal(s.best(), other.best())
    assert torch.equal(s.sample_uniform(5), other.sample_uniform(5))


# ------------------------------------------------------------------- eq. 9-10 from the paper's formulas

def _w(q):
    return -2.0 if q <= 0.25 else (0.0 if q <= 0.75 else 2.0)


def _paper_utilities(L, r, lam):
    """Eq. 9 with the documented tie rule: (N, S) utilities."""
    N, S = r.shape
    out = np.zeros((N, S))
    for n in range(N):
        for i in range(S):
            block = [k for k in range(S) if L[k] == L[i]]
            qp = sum(r[n, k] for k in range(S) if L[k] <= L[i]) / lam
            width = sum(r[n, k] for k in block) / lam
            t = len(block)
            out[n, i] = np.mean([_w(qp - o * width / t) for o in range(t)])
    return out


def _wq_utilities(L, weights, lam):
    """The weighted-quantile utility: the mean of W_lam over (q-, q+]; W_lam(q+) where the interval is empty."""
    b1, b2 = (lam // 4) / lam, (3 * lam // 4) / lam

    def F(q):
        return -2 * min(q, b1) + 2 * max(q - b2, 0.0)

    N, S = weights.shape
    out = np.zeros((N, S))
    for n in range(N):
        for i in range(S):
            qp = sum(weights[n, k] for k in range(S) if L[k] <= L[i])
            qm = sum(weights[n, k] for k in range(S) if L[k] < L[i])
            if qp - qm > 0:
                out[n, i] = (F(qp) - F(qm)) / (qp - qm)
            else:
                out[n, i] = -2.0 if qp <= b1 else (0.0 if qp <= b2 else 2.0)
    return out


@SETTINGS
@given(st.data())
def test_one_tell_matches_eqs_9_and_10_written_from_the_paper(data):
    ks = data.draw(small_space(3, 3))
    D, Kmax = len(ks), max(ks)
    mask = _mask(ks).numpy()
    N = data.draw(st.integers(1, 3))
    lam = data.draw(st.sampled_from([2, 4, 5, 8]))
    utility = data.draw(st.sampled_from(["paper", "weighted_quantile"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 10 ** 6)))
    theta0 = rng.uniform(0.2, 1.0, size=(N, D, Kmax)) * mask
    theta0 /= theta0.sum(-1, keepdims=True)
    costs = rng.uniform(0, 1, size=(D, Kmax)) * mask
    eps = [0.0, 0.4, 1.3][:N]
    lr = 0.01
    tmin = data.draw(st.sampled_from([0.0, 0.05, 0.2]))
    s = MultiEpsilonSearch(ks, torch.tensor(costs), epsilons=eps, lam=lam, lr=lr, theta_min=tmin,
                           init_theta=torch.tensor(theta0), utility=utility, seed=1)
    theta0 = s.theta.numpy().copy()  # after the start's renormalisation
    arch = s.ask().numpy()
    L = rng.integers(0, 3, size=lam).astype(float) if data.draw(st.booleans()) else rng.normal(size=lam)
    s.tell(torch.tensor(arch), torch.tensor(L))

    P = np.array([[np.prod([theta0[n, d, arch[i, d]] for d in range(D)]) for i in range(lam)] for n in range(N)])
    r = P / P.mean(0, keepdims=True)                                       # r_k^(n)
    if utility == "paper":
        coef = _paper_utilities(L, r, lam) * r / lam                      # (1/lam) s_i r_i
    else:
        weights = r / r.sum(-1, keepdims=True)
        coef = _wq_utilities(L, weights, lam) * weights
    expect = theta0.copy()
    for n in range(N):
        for d in range(D):
            m = np.zeros((lam, Kmax))
            m[np.arange(lam), arch[:, d]] = 1.0
            sample_term = lr * (coef[n][:, None] * (m - theta0[n, d])).sum(0)
            Q = (costs[d] * theta0[n, d]).sum()
            expect[n, d] = theta0[n, d] - sample_term - lr * eps[n] * (costs[d] - Q) * theta0[n, d]
    # the range restriction: lift to theta_min, take the excess from the part above it in proportion
    tm = np.array([[tmin if k > 1 else 0.0] for k in ks]) * mask                 # (D, Kmax)
    expect = np.maximum(expect, tm)
    K_tmin = tm.sum(-1, keepdims=True)
    expect = tm + (expect - tm) * (1 - K_tmin) / (expect.sum(-1, keepdims=True) - K_tmin)
    assert np.allclose(s.theta.numpy(), expect, rtol=0, atol=1e-13)


# -------------------------------------------------------------------------------------- budgets

@FEW
@given(st.data())
def test_budgeted_best_is_the_most_probable_architecture_within_budget(data):
    ks = data.draw(small_space(4, 3))
    mask = _mask(ks)
    costs = normalize_costs(_int_table(data.draw, ks, 0, 6), mask)
    archs = _archs(ks)
    totals = sorted({_table_cost(costs, a) for a in archs})
    budgets = [None] + sorted({data.draw(st.sampled_from(totals)) for _ in range(2)})
    s = MultiEpsilonSearch(ks, costs, budgets=budgets, lam=4, seed=data.draw(st.integers(0, 999)),
                           utility="weighted_quantile", budget_lr=data.draw(st.sampled_from([0.5, 5.0])))
    gen = torch.Generator().manual_seed(5)
    for _ in range(data.draw(st.integers(1, 40))):
        arch = s.ask()
        # the dearest architectures are the best: pressure against the budgets
        s.tell(arch, -costs.gather(1, arch.t()).sum(0) + 0.1 * torch.randn(4, generator=gen).double())
    best, mode = s.best(), s.best(within_budget=False)
    assert torch.equal(mode, s.theta.argmax(-1))
    assert torch.allclose(s.budget_cost(), torch.tensor([_table_cost(costs, m.tolist()) for m in mode],
                                                        dtype=torch.float64), rtol=0, atol=1e-12)
    assert s.epsilons[0] == 0.0 and all(0 <= e <= 1e6 for e in s.epsilons)
    for n, b in enumerate(budgets):
        if b is None:
            assert torch.equal(best[n], mode[n])
            continue
        c = _table_cost(costs, best[n].tolist())
        assert c <= b + SLACK * max(abs(b), 1.0), "a budgeted member is over its budget"
        if _table_cost(costs, mode[n].tolist()) <= b + SLACK * max(abs(b), 1.0):
            assert torch.equal(best[n], mode[n])
        else:
            logt = s.theta[n].clamp_min(torch.finfo(torch.float64).tiny).log()
            v = float(logt.gather(1, best[n].view(-1, 1)).sum())
            ref = max(float(logt.gather(1, torch.tensor(a).view(-1, 1)).sum()) for a in archs
                      if _table_cost(costs, a) <= b + SLACK * max(abs(b), 1.0))
            assert v >= ref - 1e-12, "not the most probable architecture within the budget"


def test_budget_below_the_cheapest_is_refused_and_at_the_cheapest_is_taken():
    costs = torch.tensor([[0.2, 0.5, 1.0], [0.1, 0.3, 0.0]], dtype=torch.float64)
    cheapest = 0.2 + 0.0
    with pytest.raises(ValueError, match="below the cheapest"):
        MultiEpsilonSearch([3, 3], costs, budgets=[None, cheapest - 1e-3])
    s = MultiEpsilonSearch([3, 3], costs, budgets=[None, cheapest], lam=4)
    for _ in range(10):
        arch = s.ask()
        s.tell(arch, -costs.gather(1, arch.t()).sum(0))
    assert s.best()[1].tolist() == [0, 2]


# ------------------------------------------------------------------------------------ ContextCosts

@st.composite
def context_model(draw):
    ks = draw(small_space(4, 3))
    if len(ks) < 2:
        ks = ks + [2]
    D, Kmax = len(ks), max(ks)
    ctx = sorted(draw(st.sets(st.integers(0, D - 1), min_size=1, max_size=min(2, D - 1))))
    A = math.prod(ks[c] for c in ctx)
    tables = torch.tensor([[[float(draw(st.integers(0, 5))) for _ in range(Kmax)] for _ in range(D)]
                           for _ in range(A)], dtype=torch.float64)
    fixed = torch.tensor([float(draw(st.integers(-2, 4))) for _ in range(A)], dtype=torch.float64)
    model = ContextCosts(ctx, tables, fixed, _mask(ks))
    return ks, ctx, model


@SETTINGS
@given(context_model(), st.data())
def test_context_costs_match_enumeration(spec, data):
    ks, ctx, model = spec
    D, Kmax = len(ks), max(ks)
    archs = _archs(ks)
    totals = model.totals(torch.tensor(archs))
    ref = [_context_total(model.tables, model.fixed, ctx, ks, a) for a in archs]
    assert totals.tolist() == ref
    low, high = model.extremes()
    assert (low, high) == (min(ref), max(ref))
    # E[R], E[R | h_d = k] under random distributions
    rng = np.random.default_rng(data.draw(st.integers(0, 999)))
    theta = rng.uniform(0.05, 1, size=(2, D, Kmax)) * _mask(ks).numpy()
    theta = torch.tensor(theta / theta.sum(-1, keepdims=True))
    p = torch.tensor([[math.prod(float(theta[n, d, k]) for d, k in enumerate(a)) for a in archs]
                      for n in range(2)], dtype=torch.float64)                # (2, |archs|)
    R = torch.tensor(ref, dtype=torch.float64)
    assert torch.allclose(model.expected(theta), (p * R).sum(-1), rtol=1e-12, atol=1e-12)
    cond = model.conditional(theta)
    for n in range(2):
        for d in range(D):
            for k in range(ks[d]):
                sel = torch.tensor([a[d] == k for a in archs])
                want = float((p[n, sel] * R[sel]).sum() / p[n, sel].sum())
                assert math.isclose(float(cond[n, d, k]), want, rel_tol=1e-10, abs_tol=1e-10)
    # the exact knapsack over combinations
    values = torch.tensor(rng.integers(-3, 1, size=(D, Kmax)), dtype=torch.float64)
    budget = data.draw(st.sampled_from(sorted(set(ref)) + [min(ref) - 1.0, max(ref) + 1.0]))
    got = model.best_within(values, budget)
    want = _brute_best(values, lambda a: _context_total(model.tables, model.fixed, ctx, ks, a), ks, budget)
    if want is None:
        assert got is None
    else:
        arch = got.tolist()
        assert sum(float(values[d, k]) for d, k in enumerate(arch)) == want[0]
        assert _context_total(model.tables, model.fixed, ctx, ks, arch) == want[1]


@FEW
@given(context_model(), st.data())
def test_context_budgets_keep_members_within_the_exact_totals(spec, data):
    ks, ctx, model = spec
    # fixed costs shifted so that every total (and so every budget drawn from them) is >= 0
    model = ContextCosts(ctx, model.tables, model.fixed - min(0.0, float(model.fixed.min())), _mask(ks))
    archs = _archs(ks)
    ref = sorted({_context_total(model.tables, model.fixed, ctx, ks, a) for a in archs})
    budgets = [None, data.draw(st.sampled_from(ref)), ref[0]]
    if budgets[1] == budgets[2]:
        budgets = budgets[:2]
    s = MultiEpsilonSearch(ks, model, budgets=budgets, lam=4, seed=data.draw(st.integers(0, 99)))
    gen = torch.Generator().manual_seed(1)
    for _ in range(data.draw(st.integers(1, 20))):
        arch = s.ask()
        s.tell(arch, -model.totals(arch) + 0.1 * torch.randn(4, generator=gen).double())
        _theta_ok(s)
    best = s.best()
    for n, b in enumerate(budgets):
        if b is not None:
            assert _context_total(model.tables, model.fixed, ctx, ks, best[n].tolist()) <= b + SLACK * max(abs(b), 1)
    # expected_cost is the exact E[R]
    p = torch.tensor([[math.prod(float(s.theta[n, d, k]) for d, k in enumerate(a)) for a in archs]
                      for n in range(len(budgets))], dtype=torch.float64)
    R = torch.tensor([_context_total(model.tables, model.fixed, ctx, ks, a) for a in archs], dtype=torch.float64)
    assert torch.allclose(s.expected_cost(), (p * R).sum(-1), rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------------- RandomSearch

def _gated_total(costs, gates, arch) -> float:
    total = 0.0
    for d, k in enumerate(arch):
        if d in gates:
            g, there = gates[d]
            if not there[arch[g]]:
                continue
        total += float(costs[d, k])
    return total


@SETTINGS
@given(st.data())
def test_random_search_budget_and_band_hold_on_the_exact_gated_totals(data):
    ks = data.draw(small_space(4, 3))
    if len(ks) < 2:
        ks = ks + [2]
    D = len(ks)
    mask = _mask(ks)
    costs = torch.where(mask, _int_table(data.draw, ks, 0, 6), torch.zeros(()).double())
    gates = {}
    if data.draw(st.booleans()):
        g = data.draw(st.integers(0, D - 1))
        ks[g] = max(ks[g], 2)
        mask = _mask(ks)
        costs = torch.cat([costs, torch.zeros(D, max(ks) - costs.shape[1]).double()], 1) * mask
        for d in range(D):
            if d != g and data.draw(st.booleans()):
                gates[d] = (g, [data.draw(st.booleans()) for _ in range(ks[g])])
    totals = sorted({_gated_total(costs, gates, a) for a in _archs(ks)})
    budget = data.draw(st.sampled_from(totals))
    band = data.draw(st.sampled_from([None, 0.5, 1.0])) if budget > 0 else None
    fixed = data.draw(st.sampled_from([0.0, 2.0]))
    kw = dict(costs=costs, budget=[budget, math.inf] if band is None else budget, seed=data.draw(st.integers(0, 99)),
              lam=5, gates=gates or None, band=band, fixed=fixed, batch=256)
    if band is not None and not any(band * (fixed + budget) - fixed <= t + 1e-9 <= budget + 1e-9 for t in totals):
        with pytest.raises(ValueError):
            RandomSearch(ks, **kw).ask()
        return
    s = RandomSearch(ks, **kw)
    arch = s.ask()
    assert ((arch >= 0) & (arch < torch.tensor(ks))).all()
    for row in arch[:5].tolist():
        t = _gated_total(costs, gates, row)
        assert t <= budget + SLACK * max(abs(fixed + budget), 1.0)
        if band is not None:
            assert fixed + t >= band * (fixed + budget) - SLACK * max(abs(band * (fixed + budget)), 1.0)
    if band is None:
        with pytest.raises(ValueError, match="below the cheapest"):
            RandomSearch(ks, **dict(kw, budget=totals[0] - 0.5))


@FEW
@given(st.data())
def test_random_search_best_is_the_lowest_loss_per_group_nonfinite_worst(data):
    ks = data.draw(small_space(3, 3))
    s = RandomSearch(ks, lam=4, seed=data.draw(st.integers(0, 99)))
    gen = torch.Generator().manual_seed(2)
    best_loss, best_arch = math.inf, None
    for _ in range(5):
        arch = s.ask()
        losses = torch.randn(4, generator=gen).double()
        losses[torch.rand(4, generator=gen) < 0.3] = math.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            s.tell(arch, losses)
        for row, loss in zip(arch.tolist(), losses.tolist()):
            if not math.isnan(loss) and (best_arch is None or loss < best_loss):
                best_loss, best_arch = loss, row
    if best_arch is not None:
        assert s.best()[0].tolist() == best_arch
    sd = s.state_dict()
    other = RandomSearch(ks, lam=4, seed=1234)
    other.load_state_dict(sd)
    assert torch.equal(other.ask(), s.ask()) and torch.equal(other.best(), s.best())


# --------------------------------------------------------------------------------------- registry

def test_get_searcher_unknown_name_is_key_and_value_error_naming_the_nearest():
    names = searcher_names()
    assert names
    name = names[0]
    with pytest.raises(UnknownSearcher) as info:
        get_searcher(name + "x")
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert name in str(info.value)
    assert get_searcher(name) is not None


# ------------------------------------------------------------------------------ more engine properties

@FEW
@given(engine_kwargs(3, 3), st.data())
def test_dual_step_is_the_documented_projected_ascent(kw, data):
    """budgets: eps_n <- clip(eps_n + budget_lr (R(mode_n) - B_n) / (R_max - R_min), 0, 1e6), None: eps_n = 0,
    with the mode after the update."""
    costs, mask = kw["costs"], _mask(kw["num_choices"])
    low = float(torch.where(mask, costs, math.inf).min(-1).values.sum())
    high = float(torch.where(mask, costs, -math.inf).max(-1).values.sum())
    if "budgets" not in kw:
        kw = dict(kw, budgets=[None, low], importance_sampling=True)
        kw.pop("epsilons")
    kw["budget_lr"] = data.draw(st.sampled_from([0.5, 3.0]))
    s = MultiEpsilonSearch(**kw)
    span = max(high - low, 1e-12)
    gen = torch.Generator().manual_seed(4)
    for _ in range(8):
        before = s.epsilons
        arch = s.ask()
        s.tell(arch, torch.randn(arch.shape[0], generator=gen).double())
        mode_cost = s.budget_cost().tolist()
        for n, b in enumerate(s.budgets):
            want = 0.0 if b is None else min(max(before[n] + kw["budget_lr"] * (mode_cost[n] - b) / span, 0.0), 1e6)
            assert math.isclose(s.epsilons[n], want, rel_tol=1e-12, abs_tol=1e-15)


@FEW
@given(st.data())
def test_method_2_members_learn_only_from_their_own_rows(data):
    ks = data.draw(small_space(3, 4))
    N, lam = data.draw(st.integers(2, 3)), 4
    kw = dict(num_choices=ks, costs=None, epsilons=[0.0, 0.2, 0.6][:N], lam=lam, importance_sampling=False,
              seed=data.draw(st.integers(0, 999)), utility=data.draw(st.sampled_from(["paper", "weighted_quantile"])))
    a, b = MultiEpsilonSearch(**kw), MultiEpsilonSearch(**kw)
    arch = a.ask()
    assert torch.equal(arch, b.ask()) and arch.shape == (N * lam, len(ks))
    gen = torch.Generator().manual_seed(0)
    la = torch.randn(N * lam, generator=gen).double()
    lb = la.clone()
    m = data.draw(st.integers(0, N - 1))
    lb[m * lam:(m + 1) * lam] = torch.randn(lam, generator=gen).double()
    a.tell(arch, la)
    b.tell(arch, lb)
    for n in range(N):
        if n != m:
            assert torch.equal(a.theta[n], b.theta[n]), "a member moved with another member's losses"


def test_method_2_rows_are_drawn_from_their_own_member():
    theta = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]], dtype=torch.float64)
    s = MultiEpsilonSearch([3, 3], None, epsilons=[0.0, 1.0], lam=5, importance_sampling=False, theta_min=0.0,
                           init_theta=theta)
    arch = s.ask()
    assert (arch[:5] == torch.tensor([0, 1])).all() and (arch[5:] == torch.tensor([2, 0])).all()


@FEW
@given(st.data())
def test_equal_members_get_ratio_one_and_the_single_member_update(data):
    """Members that share theta give r = 1 exactly, so the eps = 0 member moves as an N = 1 engine does."""
    ks = data.draw(small_space(3, 4))
    costs = normalize_costs(_int_table(data.draw, ks, 0, 5), _mask(ks))
    utility = data.draw(st.sampled_from(["paper", "weighted_quantile"]))
    lam = data.draw(st.sampled_from([2, 4, 6]))
    many = MultiEpsilonSearch(ks, costs, epsilons=[0.0, 0.3, 2.0], lam=lam, utility=utility)
    one = MultiEpsilonSearch(ks, costs, epsilons=[0.0], lam=lam, utility=utility)
    arch = one.ask()
    losses = torch.randint(0, 3, (lam,), generator=torch.Generator().manual_seed(1)).double()
    many.tell(arch, losses)
    one.tell(arch, losses)
    assert torch.equal(many.theta[0], one.theta[0])


@FEW
@given(st.data())
def test_weighted_quantile_equals_eq_9_for_one_member_any_lam(data):
    ks = data.draw(small_space(3, 4))
    lam = data.draw(st.integers(2, 12))
    seed = data.draw(st.integers(0, 999))
    a = MultiEpsilonSearch(ks, None, epsilons=[0.0], lam=lam, utility="paper", seed=seed)
    b = MultiEpsilonSearch(ks, None, epsilons=[0.0], lam=lam, utility="weighted_quantile", seed=seed)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(4):
        arch = a.ask()
        b.ask()
        losses = torch.randint(0, 3, (lam,), generator=gen).double()
        a.tell(arch, losses)
        b.tell(arch, losses)
    assert torch.allclose(a.theta, b.theta, rtol=0, atol=1e-14)


@FEW
@given(st.data())
def test_state_round_trip_float32_and_context_engines(data):
    ks = [2, 3, 2]
    tables = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.5, 1.0, 0.0]],
                           [[0.0, 0.0, 0.0], [2.0, 4.0, 6.0], [1.0, 2.0, 0.0]]], dtype=torch.float64) / 6
    model = ContextCosts([0], tables, torch.tensor([0.0, 0.1], dtype=torch.float64), _mask(ks))
    kw = dict(num_choices=ks, costs=model if data.draw(st.booleans()) else tables[1], lam=4,
              dtype=data.draw(st.sampled_from([torch.float32, torch.float64])), seed=data.draw(st.integers(0, 99)),
              utility=data.draw(st.sampled_from(["paper", "weighted_quantile"])))
    kw.update({"budgets": [None, 0.8, 0.6]} if data.draw(st.booleans()) else {"epsilons": [0.0, 1.0]})
    s = MultiEpsilonSearch(**kw)
    for _ in range(data.draw(st.integers(0, 5))):
        arch = s.ask()
        s.tell(arch, torch.arange(4.0).flip(0))
    buf = io.BytesIO()
    torch.save(s.state_dict(), buf)
    buf.seek(0)
    other = MultiEpsilonSearch(**kw)
    other.load_state_dict(torch.load(buf, weights_only=True))
    for _ in range(4):
        a1, a2 = s.ask(), other.ask()
        assert torch.equal(a1, a2)
        s.tell(a1, torch.tensor([0.1, 0.5, 0.5, -1.0]))
        other.tell(a2, torch.tensor([0.1, 0.5, 0.5, -1.0]))
        assert torch.equal(s.theta, other.theta) and s.epsilons == other.epsilons
    assert torch.equal(s.best(), other.best())


@FEW
@given(st.data())
def test_init_theta_is_range_restricted_and_sample_uniform_respects_the_masks(data):
    ks = data.draw(small_space(4, 4))
    mask = _mask(ks)
    theta = torch.zeros(len(ks), max(ks), dtype=torch.float64)
    for d, k in enumerate(ks):
        theta[d, data.draw(st.integers(0, k - 1))] = 1.0  # one-hot: below any theta_min elsewhere
    s = MultiEpsilonSearch(ks, None, epsilons=[0.0, 1.0], lam=2, init_theta=theta,
                           theta_min=data.draw(st.sampled_from([None, 0.05])))
    _theta_ok(s)
    assert s.converged  # one-hot, range-restricted: the most concentrated state theta_min allows
    u = s.sample_uniform(200)
    assert u.shape == (200, len(ks)) and ((u >= 0) & (u < torch.tensor(ks))).all()
    for d, k in enumerate(ks):
        assert set(u[:, d].tolist()) == set(range(k))  # 200 draws cover every choice of a K <= 4 decision
    assert (s.theta[:, ~mask] == 0).all()


@SETTINGS
@given(context_model(), st.data())
def test_random_search_with_context_and_gates_checks_exact_extremes(spec, data):
    """With a ContextCosts and elastic depth's gates, the cheapest architecture is exact: a budget at it is taken
    (and every row drawn fits), one a step below it is refused; totals are the gated exact ones."""
    ks, ctx, model = spec
    D = len(ks)
    free = [d for d in range(D) if d not in ctx]
    gates = {}
    g = data.draw(st.sampled_from(free))
    if ks[g] >= 2:
        for d in free:
            if d != g and data.draw(st.booleans()):
                gates[d] = (g, [data.draw(st.booleans()) for _ in range(ks[g])])

    def total(arch):
        t = _context_total(model.tables, model.fixed, ctx, ks, arch)
        sizes = [ks[c] for c in ctx]
        a = 0
        for c, size in zip(ctx, sizes):
            a = a * size + arch[c]
        for d, (gd, there) in gates.items():
            if not there[arch[gd]]:
                t -= float(model.tables[a, d, arch[d]])
        return t

    totals = sorted({total(a) for a in _archs(ks)})
    s = RandomSearch(ks, costs=model, budget=totals[0], gates=gates or None, lam=3, batch=512,
                     seed=data.draw(st.integers(0, 99)))
    for row in s.ask().tolist():
        assert total(row) <= totals[0] + SLACK * max(abs(totals[0]), 1.0)
    with pytest.raises(ValueError, match="below the cheapest"):
        RandomSearch(ks, costs=model, budget=totals[0] - 0.5, gates=gates or None)
    if len(totals) > 1:
        top = RandomSearch(ks, costs=model, budget=totals[-1], band=1.0, gates=gates or None, lam=2, batch=512,
                           fixed=-totals[-1] + 1.0 if totals[-1] < 0 else 0.0)
        for row in top.ask().tolist():
            assert math.isclose(total(row), totals[-1], rel_tol=0, abs_tol=1e-9)


@SETTINGS
@given(context_model(), st.sampled_from([1.0, 1e3, 3e6]))
def test_normalize_context_converts_totals_exactly(spec, unit):
    """normalize_context: an engine total R is the raw total offset + scale * R, and scale is the largest
    per-choice cost the model reads."""
    ks, ctx, model = spec
    raw = ContextCosts(ctx, model.tables * unit, model.fixed * unit + 7.0, _mask(ks))
    norm, scale, offset = normalize_context(ctx, raw.tables, raw.fixed, _mask(ks))
    archs = torch.tensor(_archs(ks))
    assert torch.allclose(offset + scale * norm.totals(archs), raw.totals(archs), rtol=1e-12, atol=1e-9)
    assert offset == float(raw.fixed.min())
    biggest = float(raw.tables.abs().max())
    assert scale == (biggest if biggest > 0 else 1.0)
