"""MultiEpsilonSearch against the paper's equations (eq. 5, 7, 8, 9, 10) and its robustness promises."""

from __future__ import annotations

import io
import itertools
import math
import warnings

import pytest
import torch

from automl.search import MultiEpsilonSearch, normalize_costs
from automl.search._utilities import quantile_utilities


def _random_theta(gen, N, num_choices):
    Kmax = max(num_choices)
    theta = torch.zeros(N, len(num_choices), Kmax, dtype=torch.float64)
    for n in range(N):
        for d, k in enumerate(num_choices):
            x = torch.rand(k, generator=gen, dtype=torch.float64) + 0.1
            theta[n, d, :k] = x / x.sum()
    return theta


def _w(q):
    """The paper's utility function (after eq. 4)."""
    return -2.0 if q <= 0.25 else (0.0 if q <= 0.75 else 2.0)


def _loop_update(theta, costs, epsilons, lr, arch, losses, num_choices):
    """Eq. 9-10 written out with Python loops, straight from the paper."""
    N, D, _ = theta.shape
    lam = len(losses)

    def prob(n, i):
        p = 1.0
        for d in range(D):
            p *= float(theta[n, d, arch[i][d]])
        return p

    new = theta.clone()
    for n in range(N):
        r = [prob(n, i) / (sum(prob(m, i) for m in range(N)) / N) for i in range(lam)]
        q = [sum(r[k] * (losses[k] <= losses[i]) for k in range(lam)) / lam for i in range(lam)]
        s = [_w(qi) for qi in q]
        for d in range(D):
            K = num_choices[d]
            th = theta[n, d, :K]
            Q = float((costs[d, :K] * th).sum())
            grad = torch.zeros(K, dtype=torch.float64)
            for i in range(lam):
                m = torch.zeros(K, dtype=torch.float64)
                m[arch[i][d]] = 1.0
                grad += s[i] * r[i] * (m - th)
            new[n, d, :K] = th - lr * (grad / lam + epsilons[n] * (costs[d, :K] - Q) * th)
    return new


# ----------------------------------------------------------------------------- the equations
def test_one_tell_equals_loop_implementation_of_eq_9_10():
    gen = torch.Generator().manual_seed(1)
    K = [3, 2, 4, 3]
    N, lam = 3, 6
    theta0 = _random_theta(gen, N, K)
    costs = normalize_costs(torch.rand(4, 4, generator=gen, dtype=torch.float64),
                            torch.arange(4) < torch.tensor(K).unsqueeze(1))
    eps = [0.0, 0.3, 1.0]
    s = MultiEpsilonSearch(K, costs, eps, lam=lam, lr=0.05, theta_min=0, init_theta=theta0, seed=3)
    arch = s.ask()
    losses = torch.rand(lam, generator=gen, dtype=torch.float64)            # distinct
    expected = _loop_update(theta0, costs, eps, 0.05, arch.tolist(), losses.tolist(), K)
    assert (expected >= 0).all()                                             # no clipping happened
    s.tell(arch, losses)
    torch.testing.assert_close(s.theta, expected, rtol=0, atol=1e-13)


def test_n1_equals_eq_7_and_ratio_is_exactly_one():
    gen = torch.Generator().manual_seed(2)
    K = [3, 3, 2]
    theta0 = _random_theta(gen, 1, K)
    costs = torch.rand(3, 3, generator=gen, dtype=torch.float64)
    s = MultiEpsilonSearch(K, costs, [0.4], lam=4, lr=0.1, theta_min=0, init_theta=theta0)
    arch = s.ask()
    losses = torch.tensor([0.3, 0.1, 0.9, 0.5], dtype=torch.float64)
    # eq. 7 with w(rank / lam): ranks 2, 1, 4, 3 -> utilities 0, -2, 2, 0
    util = [0.0, -2.0, 2.0, 0.0]
    expected = theta0.clone()
    for d, k in enumerate(K):
        th = theta0[0, d, :k]
        m = torch.nn.functional.one_hot(arch[:, d], k).double()
        Q = (costs[d, :k] * th).sum()
        nat = sum(util[i] * (m[i] - th) for i in range(4)) / 4
        expected[0, d, :k] = th - 0.1 * (nat + 0.4 * (costs[d, :k] - Q) * th)
    s.tell(arch, losses)
    torch.testing.assert_close(s.theta, expected, rtol=0, atol=1e-14)


def test_best_quarter_pulls_theta_toward_it():
    """Sign convention: w = -2 for the best quarter and the update subtracts."""
    s = MultiEpsilonSearch([2], None, [0.0], lam=4, theta_min=0)
    arch = torch.tensor([[0], [1], [1], [1]])
    s.tell(arch, torch.tensor([0.0, 1.0, 2.0, 3.0]))     # choice 0 is the best sample
    assert s.theta[0, 0, 0] > 0.5
    s2 = MultiEpsilonSearch([2], None, [0.0], lam=4, theta_min=0)
    s2.tell(arch, torch.tensor([9.0, 1.0, 2.0, 3.0]))    # choice 0 is now the worst
    assert s2.theta[0, 0, 0] < 0.5


def _enumerate(num_choices):
    return list(itertools.product(*[range(k) for k in num_choices]))


def _natural_gradient_numeric(theta_bar_fn, f, num_choices):
    """F(theta)^-1 grad E[f] on the free parameters (K_d - 1 per decision), Fisher by enumeration."""
    x0 = theta_bar_fn()
    archs = _enumerate(num_choices)

    def log_p(x, M):
        out, off = 0.0, 0
        for d, k in enumerate(num_choices):
            free = x[off:off + k - 1]
            full = torch.cat([free, (1 - free.sum()).unsqueeze(0)])
            out = out + torch.log(full[M[d]])
            off += k - 1
        return out

    def expected(x):
        return sum(torch.exp(log_p(x, M)) * f(M) for M in archs)

    x = x0.clone().requires_grad_(True)
    grad = torch.autograd.grad(expected(x), x)[0]
    F = torch.zeros(len(x0), len(x0), dtype=torch.float64)
    for M in archs:
        x = x0.clone().requires_grad_(True)
        lp = log_p(x, M)
        g = torch.autograd.grad(lp, x)[0]
        F += torch.exp(lp.detach()) * torch.outer(g, g)
    return torch.linalg.solve(F, grad)


def test_cost_term_is_natural_gradient_of_expected_cost():
    """eps (c - Q 1) * theta equals F^-1 grad E[R] (numerically, Fisher by enumeration)."""
    gen = torch.Generator().manual_seed(4)
    K = [3, 4]
    theta0 = _random_theta(gen, 1, K)
    costs = torch.rand(2, 4, generator=gen, dtype=torch.float64)
    costs[0, 3] = 0
    eps, lr = 0.7, 1e-3
    # All losses tied with lam = 4: every sample gets the mean of w(1/4..4/4) = 0, so only the cost
    # term moves theta: theta_new - theta = -lr eps natgrad E[R].
    s = MultiEpsilonSearch(K, costs, [eps], lam=4, lr=lr, theta_min=0, init_theta=theta0)
    s.tell(s.ask(), torch.zeros(4))
    step = (theta0 - s.theta)[0] / (lr * eps)

    free = torch.cat([theta0[0, d, :k - 1] for d, k in enumerate(K)])
    nat = _natural_gradient_numeric(lambda: free, lambda M: sum(float(costs[d, M[d]]) for d in range(2)), K)
    got = torch.cat([step[d, :k - 1] for d, k in enumerate(K)])
    torch.testing.assert_close(got, nat, rtol=1e-9, atol=1e-12)
    # eq. 8: the last category's step is minus the sum of the others (the simplex is kept).
    for d, k in enumerate(K):
        torch.testing.assert_close(step[d, k - 1], -step[d, :k - 1].sum(), rtol=1e-9, atol=1e-12)


def test_sample_term_is_natural_gradient_of_log_likelihood():
    """(1/lam) sum s_i (m_i - theta) equals (1/lam) sum s_i F^-1 grad ln P(M_i)."""
    gen = torch.Generator().manual_seed(5)
    K = [3, 2]
    theta0 = _random_theta(gen, 1, K)
    lr = 1e-3
    s = MultiEpsilonSearch(K, None, [0.0], lam=4, lr=lr, theta_min=0, init_theta=theta0, seed=1)
    arch = s.ask()
    losses = torch.tensor([0.4, 0.1, 0.3, 0.2])
    s.tell(arch, losses)
    step = (theta0 - s.theta)[0] / lr
    util = {0: 2.0, 1: -2.0, 2: 0.0, 3: 0.0}            # ranks 4, 1, 3, 2
    free = torch.cat([theta0[0, d, :k - 1] for d, k in enumerate(K)])
    total = torch.zeros_like(free)
    for i, M in enumerate(arch.tolist()):
        # the natural gradient of ln P(M_i) is F^-1 grad E[f] with f the indicator of M_i, over P(M_i)
        nat = _natural_gradient_numeric(lambda: free, lambda A, M=M: float(list(A) == M), K)
        p = math.prod(float(theta0[0, d, M[d]]) for d in range(2))
        total += util[i] * nat / p
    got = torch.cat([step[d, :k - 1] for d, k in enumerate(K)])
    torch.testing.assert_close(got, total / 4, rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- ties
def test_ties_share_mean_utility_and_distinct_losses_follow_eq_9():
    r = torch.ones(1, 8, dtype=torch.float64)
    distinct = quantile_utilities(torch.arange(8.0, dtype=torch.float64).view(1, 8), r, 8)
    assert distinct.tolist() == [[-2, -2, 0, 0, 0, 0, 2, 2]]
    # ranks 2 and 3 tied: they share mean(w(2/8), w(3/8)) = mean(-2, 0) = -1
    tied = quantile_utilities(torch.tensor([[0.0, 1.0, 1.0, 3, 4, 5, 6, 7]], dtype=torch.float64), r, 8)
    assert tied.tolist() == [[-2, -1, -1, 0, 0, 0, 2, 2]]
    # all tied: mean of w over all ranks
    same = quantile_utilities(torch.zeros(1, 8, dtype=torch.float64), r, 8)
    assert torch.allclose(same, torch.zeros(1, 8, dtype=torch.float64))


def test_weighted_ties_reduce_to_eq_9_without_ties():
    gen = torch.Generator().manual_seed(6)
    losses = torch.rand(1, 6, generator=gen, dtype=torch.float64)
    r = torch.rand(3, 6, generator=gen, dtype=torch.float64) * 2
    got = quantile_utilities(losses, r, 6)
    for n in range(3):
        for i in range(6):
            q = sum(float(r[n, k]) * (losses[0, k] <= losses[0, i]) for k in range(6)) / 6
            assert got[n, i] == _w(q)
    # A tie block gets one shared value, between the values its members would get if broken.
    losses[0, 2] = losses[0, 4]
    got = quantile_utilities(losses, r, 6)
    assert torch.equal(got[:, 2], got[:, 4])


# ----------------------------------------------------------------------------- robustness
@pytest.mark.parametrize("theta_min", [None, 0.0, 0.05])
def test_theta_stays_on_simplex_under_extreme_inputs(theta_min):
    K = [4, 2, 3, 1, 4]
    Kmax = 4
    mask = torch.arange(Kmax) < torch.tensor(K).unsqueeze(1)
    costs = torch.where(mask, torch.tensor([[1e300, 0.0, 5e299, 1.0]], dtype=torch.float64).expand(5, 4),
                        torch.tensor(0.0, dtype=torch.float64))
    s = MultiEpsilonSearch(K, costs, [0.0, 1.0, 1e3], lam=8, lr=0.5, theta_min=theta_min, seed=0)
    cases = [torch.full((8,), math.nan), torch.tensor([math.inf, -math.inf, 1e300, -1e300, 0, 0, 0, 1]),
             torch.zeros(8), torch.tensor([1e300] * 4 + [1.0] * 4)]
    tmin = torch.tensor(s.theta_min, dtype=torch.float64).view(1, -1, 1)
    for it in range(40):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            s.tell(s.ask(), cases[it % len(cases)])
        th = s.theta
        assert torch.isfinite(th).all()
        torch.testing.assert_close(th.sum(-1), torch.ones(3, 5, dtype=torch.float64), rtol=0, atol=1e-12)
        assert (th[:, ~mask] == 0).all()
        assert (th[:, mask] >= (tmin.expand_as(th)[:, mask] * (1 - 1e-12))).all()
        assert (th[:, 3, 0] == 1).all()                  # K_d = 1: fixed


def test_nan_losses_rank_worst_with_warning():
    s = MultiEpsilonSearch([2], None, [0.0], lam=4, theta_min=0)
    arch = torch.tensor([[1], [0], [0], [0]])
    with pytest.warns(RuntimeWarning, match="NaN or inf"):
        s.tell(arch, torch.tensor([math.nan, 1.0, 2.0, 3.0]))
    assert s.theta[0, 0, 1] < 0.5                        # the NaN sample (choice 1) was pushed away


@pytest.mark.parametrize("importance_sampling", [True, False])
def test_sync_free_tell_is_bit_identical_to_the_checked_one(importance_sampling):
    """The GPU path (no read-backs) on the CPU: same θ after distinct, tied and non-finite losses."""
    kw = dict(num_choices=[3, 4, 2, 4], costs=torch.rand(4, 4, generator=torch.Generator().manual_seed(1)),
              epsilons=[0.0, 0.5, 2.0], lam=6, seed=3, importance_sampling=importance_sampling)
    checked, free = MultiEpsilonSearch(**kw), MultiEpsilonSearch(**kw, sync_free=True)
    gen = torch.Generator().manual_seed(5)
    for step in range(30):
        a, b = checked.ask(), free.ask()
        assert torch.equal(a, b)
        losses = torch.rand(a.shape[0], generator=gen, dtype=torch.float64)
        if step % 3 == 1:
            losses = losses.mul(3).floor()               # many ties
        if step % 5 == 2:
            losses[0], losses[-1] = math.nan, math.inf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            checked.tell(a, losses)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # the sync-free path counts, never warns
            free.tell(b, losses)
        assert torch.equal(checked.theta, free.theta), step
    assert checked.nonfinite_losses == free.nonfinite_losses == 12


def test_sync_free_still_checks_archs_it_did_not_sample():
    s = MultiEpsilonSearch([3, 3], None, [0.0], lam=2, sync_free=True)
    a = s.ask()
    bad = a.clone()
    bad[0, 1] = 3
    with pytest.raises(ValueError, match="outside 0..K_d-1"):
        s.tell(bad, torch.tensor([1.0, 2.0]))
    s.tell(a, torch.tensor([1.0, 2.0]))                  # its own sample passes


def test_log_space_ratios_do_not_underflow_at_large_d():
    D = 60
    gen = torch.Generator().manual_seed(7)
    theta = _random_theta(gen, 2, [7] * D)
    theta[1] = theta[1].roll(3, dims=-1)                 # very different distributions
    s = MultiEpsilonSearch([7] * D, None, [0.0, 0.5], lam=8, init_theta=theta, seed=0)
    before = s.theta.clone()
    s.tell(s.ask(), torch.arange(8.0))
    assert torch.isfinite(s.theta).all() and not torch.equal(s.theta, before)


@pytest.mark.parametrize("sync_free", [False, True])
@pytest.mark.parametrize("D, K, theta_min", [(3, 3, 0.0), (150, 7, None)])
def test_weighted_quantile_weights_survive_ratios_that_underflow(D, K, theta_min, sync_free):
    # Member 1 finds every sample (nearly) impossible: its ratios underflow to 0 and r / sum(r) was 0 / 0.
    # The self-normalised weights P_1(M_i) / q(M_i) over i are still defined; here every sample is the same
    # network, so they are 1/lam, and member 1 moves exactly as a distribution alone (eq. 7) would.
    init = torch.zeros(2, D, K, dtype=torch.float64)
    init[0, :, 0] = 1.0
    init[1, :, K - 1] = 1.0
    costs = torch.rand(D, K, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    kw = dict(num_choices=[K] * D, costs=costs, lam=4, theta_min=theta_min, seed=0, utility="weighted_quantile",
              sync_free=sync_free)
    both = MultiEpsilonSearch(epsilons=[0.0, 0.5], init_theta=init, **kw)
    alone = MultiEpsilonSearch(epsilons=[0.5], init_theta=both.theta[1:].clone(), **kw)
    arch, losses = torch.zeros(4, D, dtype=torch.long), torch.arange(4, dtype=torch.float64)
    both.tell(arch, losses)
    alone.tell(arch, losses)
    assert torch.isfinite(both.theta).all()
    torch.testing.assert_close(both.theta[1], alone.theta[0], rtol=0, atol=1e-12)


def test_nonfinite_count_survives_a_state_round_trip():
    kw = dict(num_choices=[3, 4], costs=None, epsilons=[0.0, 0.3], lam=4, seed=2)
    a = MultiEpsilonSearch(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a.tell(a.ask(), torch.tensor([math.nan, 1.0, math.inf, 2.0], dtype=torch.float64))
    b = MultiEpsilonSearch(**kw)
    b.load_state_dict(a.state_dict())
    assert a.nonfinite_losses == b.nonfinite_losses == 2


# ----------------------------------------------------------------------------- state and seeds
def test_state_dict_round_trip_continues_bit_identically(tmp_path):
    kw = dict(num_choices=[3, 5, 2], costs=torch.rand(3, 5, generator=torch.Generator().manual_seed(0)), epsilons=[0.0, 0.3], lam=4, seed=11)
    a = MultiEpsilonSearch(**kw)
    for _ in range(5):
        arch = a.ask()
        a.tell(arch, arch.sum(1).double())
    torch.save(a.state_dict(), tmp_path / "s.pt")
    b = MultiEpsilonSearch(**{**kw, "seed": 99})
    b.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    for _ in range(5):
        xa, xb = a.ask(), b.ask()
        assert torch.equal(xa, xb)
        a.tell(xa, xa.sum(1).double())
        b.tell(xb, xb.sum(1).double())
    assert torch.equal(a.theta, b.theta) and a.step == b.step
    with pytest.raises(ValueError, match="epsilons"):
        MultiEpsilonSearch(**{**kw, "epsilons": [0.0, 0.5]}).load_state_dict(a.state_dict())


def test_seeds_reproduce_and_differ():
    def run(seed):
        s = MultiEpsilonSearch([4] * 5, torch.rand(5, 4, generator=torch.Generator().manual_seed(0)),
                               [0.0, 0.2], lam=4, seed=seed)
        for _ in range(10):
            arch = s.ask()
            s.tell(arch, (arch == 1).sum(1).double())
        return s.theta, s.sample_uniform(6)
    assert all(torch.equal(x, y) for x, y in zip(run(3), run(3)))
    assert not torch.equal(run(3)[0], run(4)[0])


# ----------------------------------------------------------------------------- method 2
def test_without_importance_sampling_each_distribution_learns_from_its_own_rows():
    kw = dict(num_choices=[3, 3, 3], costs=torch.rand(3, 3, generator=torch.Generator().manual_seed(0)), epsilons=[0.0, 0.2, 0.5], lam=4,
              importance_sampling=False, seed=5)
    a, b = MultiEpsilonSearch(**kw), MultiEpsilonSearch(**kw)
    arch = a.ask()
    assert arch.shape == (12, 3) and torch.equal(arch, b.ask())
    losses = torch.arange(12.0)
    other = losses.clone()
    other[4:] = torch.tensor([7.0, 6, 5, 4, 100, 90, 80, 70])   # reorder the losses of groups 1 and 2
    a.tell(arch, losses)
    b.tell(arch, other)
    assert torch.equal(a.theta[0], b.theta[0])
    assert not torch.equal(a.theta[1], b.theta[1])
    with pytest.raises(ValueError, match="shape"):
        a.tell(arch[:4], losses[:4])


def test_one_distribution_without_is_equals_with_is():
    kw = dict(num_choices=[3, 4], costs=torch.rand(2, 4, generator=torch.Generator().manual_seed(0)), epsilons=[0.3], lam=4, seed=2)
    a, b = MultiEpsilonSearch(**kw), MultiEpsilonSearch(**kw, importance_sampling=False)
    arch = torch.tensor([[0, 1], [2, 3], [1, 1], [0, 0]])
    a.tell(arch, torch.tensor([3.0, 1.0, 2.0, 0.5]))
    b.tell(arch, torch.tensor([3.0, 1.0, 2.0, 0.5]))
    torch.testing.assert_close(a.theta, b.theta, rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------- synthetic objectives
def _separable_problem(D=8, K=4, seed=0):
    """L(M) = sum_d a[d, k(d)]: 0 at a target choice, growing with the distance from it, with
    decision weights from 0.1 to 3 (weakly held decisions give way to the regulariser first); the
    target is the costliest choice of its decision, so regularisation has work to do."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, K, (D,), generator=g)
    dist = (torch.arange(K).view(1, K) - target.view(D, 1)).abs().double()
    a = dist * torch.logspace(-1, 0.5, D, dtype=torch.float64).view(D, 1)
    costs = normalize_costs((K - dist) + 0.01 * torch.rand(D, K, generator=g, dtype=torch.float64))
    return a, costs, target


def test_synthetic_eps0_finds_optimum_and_complexity_falls_with_eps():
    a, costs, target = _separable_problem()
    D, K = a.shape
    eps = [0.0, 0.1, 0.3, 0.5, 1.0]
    s = MultiEpsilonSearch([K] * D, costs, eps, lam=16, seed=0)
    for _ in range(300):
        arch = s.ask()
        s.tell(arch, a.gather(1, arch.t()).sum(0))       # L(M) = sum_d a[d, k(d)]
    best = s.best()
    assert torch.equal(best[0], target)
    complexity = costs.gather(1, best.t()).sum(0)        # R of each result
    assert all(complexity[i + 1] <= complexity[i] for i in range(len(eps) - 1)), complexity
    assert complexity[-1] < complexity[0]
    assert (s.expected_cost()[1:] <= s.expected_cost()[:-1] + 1e-9).all()


# ----------------------------------------------------------------------------- validation, device
@pytest.mark.parametrize("kwargs, match", [
    (dict(num_choices=[]), "empty"),
    (dict(num_choices=[3, 0]), "K_d"),
    (dict(costs=torch.zeros(2, 2)), "shape"),
    (dict(epsilons=[0.1, -0.1]), "epsilons"),
    (dict(epsilons=[]), "empty"),
    (dict(lam=1), "lam"),
    (dict(lr=-1.0), "lr"),
    (dict(theta_min=0.5), "theta_min"),
    (dict(init_theta=torch.ones(2, 2, 3)), "init_theta"),
    (dict(init_theta=torch.full((1, 2, 3), 1 / 3)), "init_theta"),
])
def test_bad_arguments_raise_value_error(kwargs, match):
    base = dict(num_choices=[3, 2], costs=torch.zeros(2, 3), epsilons=[0.0, 0.5], lam=2)
    with pytest.raises(ValueError, match=match):
        MultiEpsilonSearch(**{**base, **kwargs})


def test_tell_rejects_out_of_range_choices():
    s = MultiEpsilonSearch([3, 2], None, [0.0], lam=2)
    with pytest.raises(ValueError, match="outside"):
        s.tell(torch.tensor([[0, 2], [0, 0]]), [1.0, 2.0])    # decision 1 has only 2 choices


def test_default_lr_and_theta_min_follow_the_paper_and_asng():
    s = MultiEpsilonSearch([4, 3, 1, 5], None, [0.0], lam=2)
    assert s.lr == pytest.approx(1 / 13)
    assert s.theta_min == pytest.approx([1 / 9, 1 / 6, 0.0, 1 / 12])   # D_valid = 3
    torch.testing.assert_close(s.theta[0, 1, :3], torch.full((3,), 1 / 3, dtype=torch.float64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    kw = dict(num_choices=[4] * 40, costs=torch.rand(40, 4), epsilons=[0.0, 0.5], lam=8, seed=0)
    c, g = MultiEpsilonSearch(**kw), MultiEpsilonSearch(**kw, device="cuda")
    for _ in range(3):
        ac, ag = c.ask(), g.ask()
        assert ag.device.type == "cuda" and torch.equal(ac, ag.cpu())
        c.tell(ac, ac.sum(1).double())
        g.tell(ag, ag.sum(1).double())
    torch.testing.assert_close(c.theta, g.theta.cpu())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("variant", ["paper", "weighted_quantile", "budgets"])
def test_cuda_ask_tell_never_synchronize(variant):
    """On a GPU, ask()+tell() read nothing back (torch's sync debug mode raises on any sync)."""
    costs = torch.rand(21, 7)
    low = float(costs.min(-1).values.sum())
    target = (dict(budgets=[None, low + 3.0, low + 1.0]) if variant == "budgets"
              else dict(epsilons=[0.0, 0.3, 1.0, 3.0]))
    kw = dict(num_choices=[7] * 21, costs=costs, lam=8, seed=0,
              utility="paper" if variant == "paper" else "weighted_quantile", **target)
    g = MultiEpsilonSearch(**kw, device="cuda")
    losses = torch.rand(8, device="cuda")
    g.tell(g.ask(), losses)                              # warm-up: lazy CUDA initialisation may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(5):
            a = g.ask()
            g.tell(a, losses + a.sum(1))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(g.theta).all()


def test_docs_example_runs_and_prints_what_the_docs_say():
    import contextlib
    import pathlib
    import re

    doc = (pathlib.Path(__file__).parents[1] / "docs" / "search-engine.md").read_text()
    code = re.findall(r"```python\n(.*?)```", doc, re.S)[0]
    assert len(code.strip().splitlines()) <= 25
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "search-engine.md", "exec"), {})
    printed = re.findall(r"prints \(torch[^)]*\)\n```\n(.*?)```", doc, re.S)[0]
    assert out.getvalue() == printed
