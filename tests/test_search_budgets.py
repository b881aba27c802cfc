"""The weighted-quantile utility, cost budgets (adapted epsilons) and the exact within-budget derivation."""

from __future__ import annotations

import io
import itertools
import math

import pytest
import torch

from automl.search import MultiEpsilonSearch, best_within_budget, normalize_costs
from automl.search._utilities import weighted_quantile_utilities


def _W(q, lam):
    """eq. 5's w read on the 1/lam grid: w(ceil(lam q) / lam)."""
    j = math.ceil(lam * q - 1e-12)
    return -2.0 if j / lam <= 0.25 else (0.0 if j / lam <= 0.75 else 2.0)


def _loop_wq(losses, weights, lam):
    """The weighted-quantile utility from its formula: the average of W_lam over (q-, q+], by a fine
    midpoint rule on each 1/lam cell (W_lam is constant on cells, so the cell integrals are exact)."""
    S = len(losses)
    out = []
    for i in range(S):
        qp = sum(weights[k] for k in range(S) if losses[k] <= losses[i])
        qm = sum(weights[k] for k in range(S) if losses[k] < losses[i])
        if qp - qm <= 0:
            out.append(_W(qp, lam))
            continue
        total = 0.0
        for j in range(1, lam + 1):  # cell ((j-1)/lam, j/lam], where W_lam = w(j/lam)
            lo, hi = max(qm, (j - 1) / lam), min(qp, j / lam)
            if hi > lo:
                total += (hi - lo) * _W(j / lam, lam)
        out.append(total / (qp - qm))
    return out


@pytest.mark.parametrize("lam", [2, 5, 8, 12])
def test_weighted_quantile_matches_formula_loop(lam):
    gen = torch.Generator().manual_seed(lam)
    for trial in range(20):
        N = 3
        losses = torch.randint(0, 4 if trial % 2 else 1000, (1, lam), generator=gen).double()  # ties or not
        r = torch.rand(N, lam, generator=gen, dtype=torch.float64) ** 3 + 1e-3
        w = r / r.sum(-1, keepdim=True)
        got = weighted_quantile_utilities(losses, w, lam)
        for n in range(N):
            want = _loop_wq(losses[0].tolist(), w[n].tolist(), lam)
            assert torch.allclose(got[n], torch.tensor(want, dtype=torch.float64), atol=1e-9), (trial, n)


def test_weighted_quantile_is_centred_and_ties_share_a_value():
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        losses = torch.randint(0, 5, (1, 8), generator=gen).double()
        r = torch.rand(4, 8, generator=gen, dtype=torch.float64) + 0.01
        w = r / r.sum(-1, keepdim=True)
        u = weighted_quantile_utilities(losses, w, 8)
        # sum_i w_i u_i = int_0^1 W = 0 for lam a multiple of 4: the update is centred (cause (i) of #14)
        assert torch.allclose((u * w).sum(-1), torch.zeros(4, dtype=torch.float64), atol=1e-12)
        for i, k in itertools.combinations(range(8), 2):
            if losses[0, i] == losses[0, k]:
                assert torch.allclose(u[:, i], u[:, k])


def _one_step(utility, N, lam, arch, losses, theta, costs, importance_sampling=True):
    s = MultiEpsilonSearch([4, 3, 4], costs, [0.0, 0.3, 0.7][:N], lam=lam, utility=utility, init_theta=theta,
                           theta_min=0.0, importance_sampling=importance_sampling)
    s.tell(arch, losses)
    return s.theta


@pytest.mark.parametrize("lam", [2, 3, 6, 8])
def test_weighted_quantile_is_eq7_when_n_is_1(lam):
    """N = 1 (r = 1, w = 1/lam): the update equals eq. 7's (the paper's utility), ties included."""
    gen = torch.Generator().manual_seed(lam)
    costs = torch.rand(3, 4, generator=gen, dtype=torch.float64) * torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0],
                                                                                  [1, 1, 1, 1.0]])
    theta = torch.tensor([[[.1, .2, .3, .4], [.5, .25, .25, 0], [.25] * 4]], dtype=torch.float64)
    for trial in range(10):
        arch = torch.stack([torch.randint(0, k, (lam,), generator=gen) for k in (4, 3, 4)], 1)
        losses = torch.randint(0, 3 if trial % 2 else 100, (lam,), generator=gen).double()
        a = _one_step("paper", 1, lam, arch, losses, theta, costs)
        b = _one_step("weighted_quantile", 1, lam, arch, losses, theta, costs)
        assert torch.allclose(a, b, atol=1e-14, rtol=0)
        # Method 2 (each distribution its own rows, r = 1) is eq. 7 per distribution with either utility
        arch2 = arch.repeat(2, 1)
        a = _one_step("paper", 2, lam, arch2, losses.repeat(2), theta.expand(2, 3, 4), costs, False)
        b = _one_step("weighted_quantile", 2, lam, arch2, losses.repeat(2), theta.expand(2, 3, 4), costs, False)
        assert torch.allclose(a, b, atol=1e-14, rtol=0)


def test_weighted_quantile_differs_from_eq9_with_importance_sampling():
    gen = torch.Generator().manual_seed(3)
    costs = torch.zeros(3, 4, dtype=torch.float64)
    theta = torch.stack([torch.tensor([[.7, .1, .1, .1], [.8, .1, .1, 0], [.7, .1, .1, .1]]),
                         torch.tensor([[.1, .1, .1, .7], [.1, .1, .8, 0], [.1, .1, .1, .7]])]).double()
    arch = torch.stack([torch.randint(0, k, (8,), generator=gen) for k in (4, 3, 4)], 1)
    losses = torch.randn(8, generator=gen, dtype=torch.float64)
    a = _one_step("paper", 2, 8, arch, losses, theta, costs)
    b = _one_step("weighted_quantile", 2, 8, arch, losses, theta, costs)
    assert not torch.allclose(a, b)


# ------------------------------------------------------------------------------------------ knapsack
def _brute(values, costs, budget, num_choices):
    best, best_v = None, -math.inf
    for combo in itertools.product(*(range(k) for k in num_choices)):
        c = sum(float(costs[d, k]) for d, k in enumerate(combo))
        v = sum(float(values[d, k]) for d, k in enumerate(combo))
        if c <= budget * (1 + 1e-9) and v > best_v + 1e-12:
            best, best_v = combo, v
    return best, best_v


@pytest.mark.parametrize("seed", range(8))
def test_best_within_budget_matches_brute_force(seed):
    gen = torch.Generator().manual_seed(seed)
    D = 3 + seed % 4
    num_choices = [int(k) for k in torch.randint(1, 5, (D,), generator=gen)]
    Kmax = max(num_choices)
    mask = torch.arange(Kmax) < torch.tensor(num_choices).unsqueeze(1)
    costs = torch.where(mask, torch.randint(0, 10, (D, Kmax), generator=gen).double(), torch.tensor(1e9))
    values = torch.where(mask, torch.randn(D, Kmax, generator=gen, dtype=torch.float64), torch.tensor(1e9))
    cheapest = float(torch.where(mask, costs, torch.tensor(math.inf)).min(-1).values.sum())
    for budget in [cheapest, cheapest + 0.5, cheapest + 3, cheapest + 7, cheapest + 100]:
        got = best_within_budget(values, costs, budget, mask)
        want, want_v = _brute(values, costs, budget, num_choices)
        got_c = float(costs.gather(1, got.view(-1, 1)).sum())
        got_v = float(values.gather(1, got.view(-1, 1)).sum())
        assert got_c <= budget and all(0 <= int(k) < K for k, K in zip(got, num_choices))
        assert got_v == pytest.approx(want_v, abs=1e-12), (budget, got.tolist(), want)
    assert best_within_budget(values, costs, cheapest - 1, mask) is None


def test_best_is_argmax_within_budget_and_brute_force_otherwise():
    gen = torch.Generator().manual_seed(5)
    num_choices = [3, 4, 2, 4]
    costs = normalize_costs(torch.rand(4, 4, generator=gen, dtype=torch.float64))
    theta = torch.zeros(2, 4, 4, dtype=torch.float64)
    for n in range(2):
        for d, k in enumerate(num_choices):
            x = torch.rand(k, generator=gen, dtype=torch.float64) + 0.05
            theta[n, d, :k] = x / x.sum()
    mask = torch.arange(4) < torch.tensor(num_choices).unsqueeze(1)
    c = torch.where(mask, costs, 0)
    argmax_cost = [float(c.gather(1, theta[n].argmax(-1).view(-1, 1)).sum()) for n in range(2)]
    cheapest = float(torch.where(mask, costs, math.inf).min(-1).values.sum())
    tight = cheapest + 0.5 * (argmax_cost[1] - cheapest)
    s = MultiEpsilonSearch(num_choices, costs, budgets=[None, tight], init_theta=theta, theta_min=0.0)
    b = s.budgets[1]
    got = s.best()
    assert torch.equal(got[0], theta[0].argmax(-1))                 # unconstrained: the argmax
    assert torch.equal(s.best(within_budget=False), theta.argmax(-1))
    want, _ = _brute(theta[1].clamp_min(1e-300).log(), c, b, num_choices)
    assert got[1].tolist() == list(want)
    assert float(c.gather(1, got[1].view(-1, 1)).sum()) <= b < argmax_cost[1]
    # a budget the argmax meets: best() is the argmax
    s2 = MultiEpsilonSearch(num_choices, costs, budgets=[argmax_cost[0] + 1e-6, argmax_cost[1]],
                            init_theta=theta, theta_min=0.0)
    assert torch.equal(s2.best(), theta.argmax(-1))


# ------------------------------------------------------------------------------------------ budgets
def _problem(D=8, K=4):
    g = torch.Generator().manual_seed(11)
    a = (K - 1 - torch.arange(K)).double().expand(D, K) * torch.logspace(-1, 0, D, dtype=torch.float64).view(D, 1)
    costs = normalize_costs(torch.arange(K).double().expand(D, K) + 0.1 * torch.rand(D, K, generator=g,
                                                                                   dtype=torch.float64))
    return a, costs


def _drive(s, a, steps, noise_seed=1):
    noise = torch.Generator().manual_seed(noise_seed)
    for _ in range(steps):
        arch = s.ask()
        loss = a.gather(1, arch.t()).sum(0) + 0.2 * torch.randn(arch.shape[0], generator=noise, dtype=torch.float64)
        s.tell(arch, loss)


@pytest.mark.parametrize("utility", ["paper", "weighted_quantile"])
def test_budgets_are_met_and_used(utility):
    """The largest architecture is best: every budgeted member ends within its budget and near it."""
    a, costs = _problem()
    D, K = a.shape
    full = float(costs.max(-1).values.sum())
    budgets = [None, 0.7 * full, 0.4 * full]
    s = MultiEpsilonSearch([K] * D, costs, budgets=budgets, lam=8, seed=0, utility=utility)
    assert s.epsilons == [0.0, 0.0, 0.0]
    _drive(s, a, 100)
    assert s.epsilons[0] == 0.0 and min(s.epsilons[1:]) > 0   # over budget at first: epsilon rises
    _drive(s, a, 700, noise_seed=2)
    assert s.epsilons[0] == 0.0                               # unconstrained: stays 0
    best = s.best()
    cost = costs.gather(1, best.t()).sum(0)
    # within budget always; near it: the budget steers the most probable architecture's cost
    use = 0.85 if utility == "weighted_quantile" else 0.6     # eq. 9's members wander more
    for n in (1, 2):
        assert budgets[n] * use <= float(cost[n]) <= budgets[n]
    if utility == "weighted_quantile":  # eq. 9 pulls the unconstrained member toward the others (#14)
        assert float(cost[0]) > 0.95 * full


def test_budget_state_round_trip_and_exact_resume():
    a, costs = _problem()
    D, K = a.shape
    full = float(costs.max(-1).values.sum())
    kw = dict(budgets=[None, 0.5 * full, 0.3 * full], lam=4, seed=3, utility="weighted_quantile")
    s = MultiEpsilonSearch([K] * D, costs, **kw)
    _drive(s, a, 40)
    buf = io.BytesIO()
    torch.save(s.state_dict(), buf)
    buf.seek(0)
    r = MultiEpsilonSearch([K] * D, costs, **kw)
    r.load_state_dict(torch.load(buf, weights_only=True))
    assert r.epsilons == s.epsilons and torch.equal(r.theta, s.theta) and r.step == s.step
    _drive(s, a, 40, noise_seed=9)
    _drive(r, a, 40, noise_seed=9)
    assert torch.equal(r.theta, s.theta) and r.epsilons == s.epsilons
    assert torch.equal(r.best(), s.best())
    # another budget or utility is another configuration
    for other in (dict(kw, budgets=[None, 0.4 * full, 0.3 * full]), dict(kw, utility="paper"),
                  dict(kw, budgets=None, epsilons=[0.0, 0.1, 0.2])):
        with pytest.raises(ValueError):
            MultiEpsilonSearch([K] * D, costs, **other).load_state_dict(s.state_dict())


def test_version_1_state_still_loads():
    costs = normalize_costs(torch.rand(3, 3, dtype=torch.float64))
    s = MultiEpsilonSearch([3] * 3, costs, [0.0, 0.5], lam=4)
    st = s.state_dict()
    for k in ("eps", "utility", "budgets", "budget_lr"):
        del st[k]
    st["version"] = 1
    r = MultiEpsilonSearch([3] * 3, costs, [0.0, 0.5], lam=4)
    r.load_state_dict(st)
    assert r.epsilons == [0.0, 0.5]


@pytest.mark.parametrize("kw, match", [
    (dict(epsilons=[0.0], budgets=[None]), "exactly one"),
    (dict(), "exactly one"),
    (dict(budgets=[-1.0]), "budget"),
    (dict(budgets=[float("nan")]), "budget"),
    (dict(budgets=["150k"]), "budget"),
    (dict(budgets=[]), "empty"),
    (dict(budgets="1.0"), "budgets"),
    (dict(budgets=[0.5]), "cheapest"),
    (dict(budgets=[None, 2.0], budget_lr=0.0), "budget_lr"),
    (dict(epsilons=[0.0], utility="ranking"), "utility"),
])
def test_bad_budget_arguments_raise(kw, match):
    costs = torch.tensor([[1.0, 2.0], [0.5, 1.0]], dtype=torch.float64)   # cheapest architecture: 1.5
    with pytest.raises(ValueError, match=match):
        MultiEpsilonSearch([2, 2], costs, **kw)
    with pytest.raises(ValueError, match="cost table"):
        MultiEpsilonSearch([2, 2], None, budgets=[None])
