"""Independent brute-force cross-checks of the search engine's parts around the core update.

Every reference here is plain Python over all architectures of small spaces (D <= 6, K_d <= 4): the
within-budget knapsack (tables, context costs, ties, nothing fits), the context model's expected cost and
the natural gradient of its regulariser, cost normalisation, and the random baseline (uniform draws,
budgets with and without elastic depth's gates, an exact state round trip). None of the references uses
automl code; automl is only the thing checked.
"""

from __future__ import annotations

import io
import itertools
import math
import random

import pytest
import torch

from automl.search import (ContextCosts, MultiEpsilonSearch, RandomSearch, best_within_budget, cost_scale,
                           normalize_context, normalize_costs)

RTOL = 1e-9  # the documented rounding slack of a budget (relative, at least 1e-9 absolute)


# ---------------------------------------------------------------------------------------------- references

def archs(ks):
    """Every architecture of a space with ``ks[d]`` choices per decision."""
    return list(itertools.product(*[range(k) for k in ks]))


def fits(cost, budget, slack_of=None):
    ref = budget if slack_of is None else slack_of
    return cost <= budget + RTOL * max(abs(ref), 1.0)


def ref_best(ks, value_of, cost_of, budget):
    """(value, cost) of the brute-force optimum within budget (cheapest among equal values), or None."""
    best = None
    for m in archs(ks):
        v, c = value_of(m), cost_of(m)
        if v == -math.inf or not fits(c, budget):
            continue
        if best is None or v > best[0] or (v == best[0] and c < best[1]):
            best = (v, c)
    return best


def table_cost(costs):
    return lambda m: sum(costs[d][k] for d, k in enumerate(m))


def context_cost(ctx, ks, tables, fixed):
    """R(M) = F[a] + sum over non-context d of T[a][d][k_d], a row-major over ``ctx`` (the first slowest)."""
    def cost(m):
        a = 0
        for c in ctx:
            a = a * ks[c] + m[c]
        return fixed[a] + sum(tables[a][d][k] for d, k in enumerate(m) if d not in ctx)
    return cost


def gated_cost(costs, gates):
    """Elastic depth: decision d's cost counts only when gates[d] = (g, there) has there[m[g]] True."""
    def cost(m):
        return sum(costs[d][k] for d, k in enumerate(m) if d not in gates or gates[d][1][m[gates[d][0]]])
    return cost


def prob(theta, m):
    return math.prod(theta[d][k] for d, k in enumerate(m))


def padded(rows, kmax, fill=0.0):
    return [list(r) + [fill] * (kmax - len(r)) for r in rows]


def space(rng, dmax=6, kmax=4):
    D = rng.randint(1, dmax)
    return [rng.randint(1, kmax) for _ in range(D)]


def mask_of(ks):
    K = max(ks)
    return torch.tensor([[k < kd for k in range(K)] for kd in ks])


def chi2_ok(counts, expected):
    """A loose chi-square test: the statistic within 6 standard deviations of its mean (df)."""
    df = len(counts) - 1
    stat = sum((c - e) ** 2 / e for c, e in zip(counts, expected))
    return stat <= df + 6 * math.sqrt(2 * max(df, 1))


# ------------------------------------------------------------------------------------- (1) the knapsack

@pytest.mark.parametrize("seed", range(12))
def test_best_within_budget_is_the_brute_force_optimum_with_ties_and_infeasible_budgets(seed):
    rng = random.Random(seed)
    ks = space(rng)
    K = max(ks)
    # small integer costs and quarter-step values: many exact ties in both
    costs = [[float(rng.randint(0, 4)) for _ in range(kd)] for kd in ks]
    values = [[rng.choice([-math.inf] if rng.random() < 0.1 else [-q / 4 for q in range(6)]) for _ in range(kd)]
              for kd in ks]
    for row in values:                      # a decision with only -inf choices has no answer at all
        if all(v == -math.inf for v in row):
            row[0] = 0.0
    value_of, cost_of = table_cost(values), table_cost(costs)
    cheapest = sum(min(r) for r in costs)
    dearest = sum(max(r) for r in costs)
    v_t = torch.tensor(padded(values, K, 0.0), dtype=torch.float64)
    c_t = torch.tensor(padded(costs, K, 99.0), dtype=torch.float64)
    for budget in [cheapest - 1.0, cheapest - 1e-6, cheapest, cheapest + 0.5, *range(int(cheapest) + 1,
                                                                                        int(dearest) + 2)]:
        got = best_within_budget(v_t, c_t, float(budget), mask_of(ks))
        want = ref_best(ks, value_of, cost_of, float(budget))
        if want is None:
            assert got is None, (budget, got)
            continue
        assert got is not None, budget
        m = tuple(int(k) for k in got)
        assert all(0 <= k < kd for k, kd in zip(m, ks))
        assert (value_of(m), cost_of(m)) == want, (ks, budget, m)


def test_best_within_budget_keeps_the_documented_rounding_slack():
    costs = torch.tensor([[0.1, 0.7], [0.2, 0.9]], dtype=torch.float64)
    values = torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    exact = 0.1 + 0.9                         # the best within 1.0: choose (0, 1) or (1, 0) (0.7 + 0.2)
    assert best_within_budget(values, costs, exact * (1 - 5e-10)).tolist() in ([0, 1], [1, 0])
    # below the cheapest by more than the slack: nothing fits
    assert best_within_budget(values, costs, 0.3 - 1e-8) is None
    assert best_within_budget(values, costs, 0.3 - 1e-10).tolist() == [0, 0]


def test_best_within_budget_never_takes_a_choice_of_value_minus_inf():
    costs = torch.tensor([[0.0, 3.0], [0.0, 1.0]], dtype=torch.float64)
    values = torch.tensor([[-math.inf, 0.0], [0.0, -1.0]], dtype=torch.float64)
    assert best_within_budget(values, costs, 3.0).tolist() == [1, 0]
    assert best_within_budget(values, costs, 2.0) is None      # the only architectures within it take -inf
    assert ref_best([2, 2], table_cost(values.tolist()), table_cost(costs.tolist()), 2.0) is None


def test_elastic_depths_gates_are_an_upper_bound_in_the_knapsack():
    """The engine's knapsack costs a gated layer as present (docs: "an upper bound"): its answer is optimal
    for those costs, and therefore within the budget on the exact, gated totals too."""
    rng = random.Random(3)
    for _ in range(20):
        ks = [rng.randint(1, 3) for _ in range(rng.randint(2, 5))]
        costs = [[float(rng.randint(0, 5)) for _ in range(kd)] for kd in ks]
        values = [[-rng.randint(0, 8) / 4 for _ in range(kd)] for kd in ks]
        g = rng.randrange(len(ks))
        gates = {d: (g, [rng.random() < 0.5 for _ in range(ks[g])]) for d in range(len(ks)) if d != g}
        budget = float(rng.randint(int(sum(min(r) for r in costs)), int(sum(max(r) for r in costs))))
        got = best_within_budget(torch.tensor(padded(values, max(ks))), torch.tensor(padded(costs, max(ks))),
                                 budget, mask_of(ks))
        m = tuple(int(k) for k in got)
        assert (table_cost(values)(m), table_cost(costs)(m)) == ref_best(ks, table_cost(values),
                                                                           table_cost(costs), budget)
        assert gated_cost(costs, gates)(m) <= budget


def random_context(rng, ks, C):
    D, K = len(ks), max(ks)
    ctx = sorted(rng.sample(range(D), C))
    A = math.prod(ks[c] for c in ctx)
    tables = [[[0.0] * K if d in ctx else [float(rng.randint(0, 4)) for _ in range(ks[d])] + [0.0] * (K - ks[d])
                for d in range(D)] for _ in range(A)]
    fixed = [float(rng.randint(0, 3)) for _ in range(A)]
    return ctx, tables, fixed


@pytest.mark.parametrize("seed", range(10))
def test_context_knapsack_is_the_brute_force_optimum(seed):
    rng = random.Random(100 + seed)
    ks = [rng.randint(1, 3) for _ in range(rng.randint(2, 5))]
    ks[0] = max(ks[0], 2)
    ctx, tables, fixed = random_context(rng, ks, rng.randint(1, min(2, len(ks))))
    model = ContextCosts(ctx, tables, fixed, mask_of(ks))
    cost_of = context_cost(ctx, ks, tables, fixed)
    all_m = archs(ks)
    # the exact totals and extremes
    got = model.totals(torch.tensor(all_m)).tolist()
    assert got == [cost_of(m) for m in all_m]
    assert model.extremes() == (min(map(cost_of, all_m)), max(map(cost_of, all_m)))
    # values with exact ties (uniform theta included: every combination's bound ties)
    for uniform in (False, True):
        values = [[0.0 if uniform else -rng.randint(0, 4) / 2 for _ in range(kd)] for kd in ks]
        v_t = torch.tensor(padded(values, max(ks), 0.0), dtype=torch.float64)
        lo, hi = model.extremes()
        for budget in [lo - 1.0, lo, *[lo + i for i in range(1, int(hi - lo) + 2)]]:
            want = ref_best(ks, table_cost(values), cost_of, budget)
            arch = model.best_within(v_t, budget)
            if want is None:
                assert arch is None
                continue
            m = tuple(int(k) for k in arch)
            assert (table_cost(values)(m), cost_of(m)) == want, (ks, ctx, budget, m)


# ------------------------------------------------------------------------- (2) the context cost model

def ref_moments(ks, theta, cost_of):
    """E[R], E[R | h_d = k] and the natural gradient E[R (m_d - theta_d)] by enumeration."""
    total = 0.0
    joint = [[0.0] * kd for kd in ks]                       # sum over M with M_d = k of P(M) R(M)
    for m in archs(ks):
        p, r = prob(theta, m), cost_of(m)
        total += p * r
        for d, k in enumerate(m):
            joint[d][k] += p * r
    cond = [[joint[d][k] / theta[d][k] for k in range(kd)] for d, kd in enumerate(ks)]
    grad = [[joint[d][k] - theta[d][k] * total for k in range(kd)] for d, kd in enumerate(ks)]
    return total, cond, grad


def random_theta(rng, ks):
    out = []
    for kd in ks:
        w = [rng.random() + 0.05 for _ in range(kd)]
        out.append([x / sum(w) for x in w])
    return out


@pytest.mark.parametrize("seed", range(6))
def test_context_expected_cost_and_its_natural_gradient_match_enumeration(seed):
    rng = random.Random(200 + seed)
    ks = [rng.randint(2, 4) for _ in range(rng.randint(2, 5))]
    ctx, tables, fixed = random_context(rng, ks, rng.randint(1, 2))
    model = ContextCosts(ctx, tables, fixed, mask_of(ks))
    cost_of = context_cost(ctx, ks, tables, fixed)
    thetas = [random_theta(rng, ks) for _ in range(3)]
    th = torch.tensor([padded(t, max(ks)) for t in thetas], dtype=torch.float64)
    expected, cond = model.expected(th), model.conditional(th)
    for n, theta in enumerate(thetas):
        total, ref_cond, grad = ref_moments(ks, theta, cost_of)
        assert float(expected[n]) == pytest.approx(total, rel=1e-12, abs=1e-12)
        for d, kd in enumerate(ks):
            assert cond[n, d, :kd].tolist() == pytest.approx(ref_cond[d], rel=1e-12, abs=1e-12)
            assert (cond[n, d, kd:] == 0).all()
            # eq. 7 with c~: (c~ - sum_k theta_k c~_k) theta is the natural gradient of E[R]
            c = cond[n, d, :kd]
            t = th[n, d, :kd]
            assert ((c - (c * t).sum()) * t).tolist() == pytest.approx(grad[d], rel=1e-11, abs=1e-12)


@pytest.mark.parametrize("context", [False, True])
def test_engine_regulariser_step_is_minus_lr_eps_natural_gradient(context):
    """With every loss tied (weighted-quantile utility, lam = 4) the utility term vanishes, so one tell moves
    theta by exactly -lr eps E[R (m - theta)] (eq. 7's cost term): the engine's own step against enumeration."""
    rng = random.Random(7 + context)
    ks = [3, 2, 4, 3]
    if context:
        ctx, tables, fixed = random_context(rng, ks, 2)
        costs = ContextCosts(ctx, tables, fixed, mask_of(ks))
        cost_of = context_cost(ctx, ks, tables, fixed)
    else:
        table = [[rng.random() for _ in range(kd)] for kd in ks]
        costs = torch.tensor(padded(table, 4), dtype=torch.float64)
        cost_of = table_cost(table)
    theta = random_theta(rng, ks)
    eps, lr = [0.0, 0.3, 0.7], 0.05
    s = MultiEpsilonSearch(ks, costs, epsilons=eps, lam=4, lr=lr, theta_min=0.0, seed=0,
                           init_theta=torch.tensor(padded(theta, 4), dtype=torch.float64),
                           utility="weighted_quantile")
    total, _, grad = ref_moments(ks, theta, cost_of)
    assert s.expected_cost().tolist() == pytest.approx([total] * 3, rel=1e-12)
    s.tell(s.ask(), torch.zeros(4))
    for n, e in enumerate(eps):
        for d, kd in enumerate(ks):
            want = [theta[d][k] - lr * e * grad[d][k] for k in range(kd)]
            assert s.theta[n, d, :kd].tolist() == pytest.approx(want, rel=1e-10, abs=1e-13)


def test_engine_budgeted_best_is_the_brute_force_most_probable_architecture_within_budget():
    rng = random.Random(11)
    ks = [3, 2, 4, 3, 2]
    ctx, tables, fixed = random_context(rng, ks, 2)
    model = ContextCosts(ctx, tables, fixed, mask_of(ks))
    cost_of = context_cost(ctx, ks, tables, fixed)
    lo, hi = model.extremes()
    budgets = [None, lo + 0.25 * (hi - lo), lo + 0.5 * (hi - lo), lo]
    thetas = [random_theta(rng, ks) for _ in budgets]
    s = MultiEpsilonSearch(ks, model, budgets=budgets, lam=4, seed=0, theta_min=0.0,
                           init_theta=torch.tensor([padded(t, 4) for t in thetas], dtype=torch.float64))
    best, modes = s.best(), s.budget_cost()
    for n, (b, theta) in enumerate(zip(budgets, thetas)):
        mode = tuple(max(range(kd), key=lambda k: theta[d][k]) for d, kd in enumerate(ks))
        assert float(modes[n]) == pytest.approx(cost_of(mode), abs=1e-12)
        m = tuple(int(k) for k in best[n])
        if b is None or fits(cost_of(mode), b):
            assert m == mode
            continue
        logp = lambda x, th=theta: sum(math.log(th[d][k]) for d, k in enumerate(x))  # noqa: E731
        want = max(logp(x) for x in archs(ks) if fits(cost_of(x), b))
        assert fits(cost_of(m), b) and logp(m) == pytest.approx(want, abs=1e-12)


# ------------------------------------------------------------------------------ (3) cost normalisation

def test_normalize_costs_divides_by_the_largest_valid_absolute_cost():
    rng = random.Random(5)
    for _ in range(20):
        ks = space(rng)
        K = max(ks)
        raw = [[rng.uniform(-1000, 600) for _ in range(kd)] for kd in ks]
        t = torch.tensor(padded(raw, K, 1e9), dtype=torch.float64)   # padding must not count
        norm, scale = normalize_costs(t, mask_of(ks), return_scale=True)
        want = max(abs(x) for row in raw for x in row)
        assert scale == want == cost_scale(t, mask_of(ks))
        for d, kd in enumerate(ks):
            assert norm[d, :kd].tolist() == pytest.approx([x / want for x in raw[d]], rel=1e-15)
            assert (norm[d, kd:] == 0).all()
        assert float(norm.abs().max()) == 1.0
    zero, s0 = normalize_costs(torch.zeros(2, 3), return_scale=True)
    assert s0 == 1.0 and (zero == 0).all()


def test_normalize_context_totals_and_budgets_convert_exactly():
    rng = random.Random(9)
    ks = [3, 2, 4, 2]
    ctx = [1, 3]
    A = 4
    tables = [[[0.0] * 4 if d in ctx else [float(rng.randint(0, 10 ** 6)) for _ in range(ks[d])] + [0.0] * (4 - ks[d])
                for d in range(4)] for _ in range(A)]
    fixed = [float(rng.randint(10 ** 6, 2 * 10 ** 6)) for _ in range(A)]
    model, scale, offset = normalize_context(ctx, tables, fixed, mask_of(ks))
    assert scale == max(tables[a][d][k] for a in range(A) for d in range(4) for k in range(ks[d]))
    assert offset == min(fixed)
    raw_total = context_cost(ctx, ks, tables, fixed)
    all_m = archs(ks)
    engine = model.totals(torch.tensor(all_m)).tolist()
    for m, r in zip(all_m, engine):
        assert offset + scale * r == pytest.approx(raw_total(m), rel=1e-14)
    # a total budget B is (B - offset) / scale in engine units: the same architectures fit
    for B in sorted({raw_total(m) for m in all_m})[::3]:
        b = (B - offset) / scale
        assert [fits(r, b) for r in engine] == [raw_total(m) <= B for m in all_m]


# -------------------------------------------------------------------------------- (4) the random baseline

def draw_counts(searcher, n_asks):
    counts = {}
    for _ in range(n_asks):
        for row in searcher.ask().tolist():
            counts[tuple(row)] = counts.get(tuple(row), 0) + 1
    return counts


def assert_uniform_over(counts, support, n):
    assert set(counts) <= set(support), set(counts) - set(support)
    e = n / len(support)
    assert chi2_ok([counts.get(m, 0) for m in support], [e] * len(support)), counts


def test_random_search_draws_every_architecture_uniformly():
    ks = [3, 2, 4, 1, 2]
    s = RandomSearch(ks, seed=1, lam=48)
    n = 48 * 100
    assert_uniform_over(draw_counts(s, 100), archs(ks), n)


@pytest.mark.parametrize("gated", [False, True])
def test_random_search_is_uniform_within_a_budget_and_its_band(gated):
    rng = random.Random(21)
    ks = [3, 2, 3, 2, 3]
    costs = [[float(rng.randint(0, 5)) for _ in range(kd)] for kd in ks]
    gates = {2: (1, [True, False]), 4: (1, [True, False])} if gated else None
    cost_of = gated_cost(costs, gates) if gated else table_cost(costs)
    all_m = archs(ks)
    lo, hi = min(map(cost_of, all_m)), max(map(cost_of, all_m))
    budgets = [lo, (lo + hi) / 2, hi]
    t = torch.tensor(padded(costs, 3), dtype=torch.float64)
    s = RandomSearch(ks, costs=t, budget=budgets, seed=3, lam=64, gates=gates)
    groups = [dict() for _ in budgets]
    for _ in range(60):
        arch = s.ask().view(len(budgets), 64, -1)
        for g in range(len(budgets)):
            for row in arch[g].tolist():
                groups[g][tuple(row)] = groups[g].get(tuple(row), 0) + 1
    for g, b in enumerate(budgets):
        assert_uniform_over(groups[g], [m for m in all_m if cost_of(m) <= b], 64 * 60)
    # a band: uniform among band * budget <= R <= budget
    band, b = 0.8, hi * 0.9
    s = RandomSearch(ks, costs=t, budget=b, band=band, seed=4, lam=64, gates=gates)
    assert_uniform_over(draw_counts(s, 60), [m for m in all_m if band * b <= cost_of(m) <= b], 64 * 60)
    # the cheapest architecture is exact with the gates: a budget at it is taken, a budget below is refused
    assert RandomSearch(ks, costs=t, budget=lo, gates=gates, seed=0).ask().shape == (1, len(ks))
    with pytest.raises(ValueError, match="below the cheapest"):
        RandomSearch(ks, costs=t, budget=lo - 1e-6, gates=gates)


def test_random_search_with_context_costs_and_gates_uses_the_exact_totals():
    rng = random.Random(31)
    ks = [2, 3, 2, 3, 2]
    ctx = [0]
    tables = [[[0.0] * 3 if d in ctx else [float(rng.randint(0, 5)) for _ in range(ks[d])] + [0.0] * (3 - ks[d])
                for d in range(5)] for _ in range(2)]
    fixed = [0.0, 2.0]
    gates = {3: (2, [True, False]), 4: (2, [True, False])}
    model = ContextCosts(ctx, tables, fixed, mask_of(ks))
    base = context_cost(ctx, ks, tables, fixed)

    def cost_of(m):
        off = sum(tables[m[0]][d][m[d]] for d, (g, there) in gates.items() if not there[m[g]])
        return base(m) - off
    all_m = archs(ks)
    lo, hi = min(map(cost_of, all_m)), max(map(cost_of, all_m))
    b = (lo + hi) / 2
    s = RandomSearch(ks, costs=model, budget=b, seed=5, lam=64, gates=gates)
    assert_uniform_over(draw_counts(s, 60), [m for m in all_m if cost_of(m) <= b], 64 * 60)
    RandomSearch(ks, costs=model, budget=lo, gates=gates).ask()
    with pytest.raises(ValueError, match="below the cheapest"):
        RandomSearch(ks, costs=model, budget=lo - 1e-6, gates=gates)
    with pytest.raises(ValueError, match="above the most expensive"):
        RandomSearch(ks, costs=model, budget=hi * 1.5, band=0.9, gates=gates)


def test_random_search_best_is_the_lowest_loss_per_budget_group():
    ks = [3, 3, 2]
    t = torch.tensor([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [0.0, 3.0, 0.0]], dtype=torch.float64)
    s = RandomSearch(ks, costs=t, budget=[1.0, 7.0], lam=5, seed=2)
    rng = random.Random(0)
    seen = [[], []]
    for _ in range(6):
        arch = s.ask()
        losses = [rng.choice([0.5, 1.0, 2.0, math.nan]) for _ in range(10)]
        s.tell(arch, losses)
        for i, (row, loss) in enumerate(zip(arch.tolist(), losses)):
            seen[i // 5].append((math.inf if math.isnan(loss) else loss, row))
    for g in range(2):
        low = min(loss for loss, _ in seen[g])
        assert s.best()[g].tolist() in [row for loss, row in seen[g] if loss == low]


@pytest.mark.parametrize("kind", ["plain", "budget_band_gates", "context"])
def test_random_search_state_round_trip_continues_exactly(kind):
    ks = [3, 2, 3, 2]
    t = torch.tensor([[0.0, 1.0, 2.0], [0.0, 2.0, 0.0], [1.0, 2.0, 3.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    kw = {"plain": {}, "budget_band_gates": dict(costs=t, budget=[4.0, 6.0], band=0.5,
                                                  gates={2: (1, [True, False])}),
          "context": dict(costs=ContextCosts([1], torch.stack([t, 2 * t]), [0.0, 1.0], mask_of(ks)),
                          budget=5.0)}[kind]

    def make():
        return RandomSearch(ks, seed=7, lam=3, **kw)
    a = make()
    for i in range(3):
        arch = a.ask()
        a.tell(arch, torch.arange(arch.shape[0], dtype=torch.float64).flip(0) + i)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = make()
    b.ask()                                         # a different position: loading must overwrite it
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(a.best(), b.best())
    for _ in range(4):
        x, y = a.ask(), b.ask()
        assert torch.equal(x, y)
        losses = torch.rand(x.shape[0], dtype=torch.float64)
        a.tell(x, losses)
        b.tell(y, losses)
        assert torch.equal(a.best(), b.best())


def test_random_search_band_is_a_fraction_of_the_whole_networks_cost():
    """With ``fixed`` (the network's cost outside the table): band * (fixed + B) <= fixed + R(M) <= fixed + B."""
    ks = [3, 3, 2]
    costs = [[0.0, 1.0, 4.0], [0.0, 2.0, 3.0], [0.0, 5.0]]
    cost_of = table_cost(costs)
    fixed, b, band = 10.0, 6.0, 0.9                      # whole network 14.4 .. 16: R in [4.4, 6]
    s = RandomSearch(ks, costs=torch.tensor(padded(costs, 3)), budget=b, band=band, fixed=fixed, lam=32, seed=8)
    support = [m for m in archs(ks) if band * (fixed + b) <= fixed + cost_of(m) <= fixed + b]
    assert_uniform_over(draw_counts(s, 40), support, 32 * 40)


def test_engine_budget_below_the_cheapest_is_refused_and_one_a_rounding_below_gets_the_cheapest():
    rng = random.Random(12)
    ks = [3, 2, 4]
    ctx, tables, fixed = random_context(rng, ks, 1)
    model = ContextCosts(ctx, tables, fixed, mask_of(ks))
    cost_of = context_cost(ctx, ks, tables, fixed)
    lo = min(map(cost_of, archs(ks)))
    with pytest.raises(ValueError, match="below the cheapest"):
        MultiEpsilonSearch(ks, model, budgets=[lo - 1e-6], lam=2)
    theta = random_theta(rng, ks)
    s = MultiEpsilonSearch(ks, model, budgets=[lo - 1e-12], lam=2, theta_min=0.0,
                           init_theta=torch.tensor(padded(theta, 4), dtype=torch.float64))
    m = tuple(int(k) for k in s.best()[0])
    cheapest = [x for x in archs(ks) if cost_of(x) == lo]
    assert m == max(cheapest, key=lambda x: prob(theta, x))


@pytest.mark.parametrize("make", ["random", "engine"])
def test_a_corrupt_saved_context_cost_model_is_refused_with_one_value_error(make):
    """load_state_dict refuses a partial or corrupt state with a ValueError (docs, API section); a saved
    context cost model without its tables, or with entries that are not tensors, was a KeyError or an
    AttributeError."""
    ks = [2, 2, 2]
    model = ContextCosts([0], torch.rand(2, 3, 2, dtype=torch.float64), [0.0, 1.0], mask_of(ks))

    def build():
        if make == "random":
            return RandomSearch(ks, costs=model, budget=10.0)
        return MultiEpsilonSearch(ks, model, epsilons=[0.1], lam=2)
    good = build().state_dict()
    for bad in ({"context_decisions": [0]}, {"context_decisions": [0], "tables": None, "fixed": None},
                {"context_decisions": [0], "tables": [[1.0]], "fixed": [1.0]},
                dict(good["costs"], context_decisions=5)):
        with pytest.raises(ValueError, match="different cost table"):
            build().load_state_dict(dict(good, costs=bad))
    build().load_state_dict(good)
