"""An independent cross-check of the search engine's math against the paper (§2-3, eq. 5-10).

The reference below is written from the paper's text and docs/search-engine.md in plain NumPy (float64),
on ragged per-decision arrays, with Python loops over n, d and i, and shares no code with ``automl``. The
engine is compared with it on random small problems: D decisions of different K_d (fixed ones included), N
distributions with different starting points, lam samples, epsilons including 0, losses with and without
ties, one and several steps, with and without the range restriction.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from automl.search import MultiEpsilonSearch
from automl.search._update import importance_ratios
from automl.search._utilities import quantile_utilities

ATOL = 1e-10


# ----------------------------------------------------------------------------- the reference (paper's text)
def ref_w(x) -> float:
    """§2, after eq. 4: w(x) = -2 (x <= 1/4), 0 (1/4 < x <= 3/4), 2 (3/4 < x)."""
    if x <= Fraction(1, 4):
        return -2.0
    if x <= Fraction(3, 4):
        return 0.0
    return 2.0


def ref_prob(theta_n: list[np.ndarray], arch_i) -> float:
    """§3.1: P_theta(M) = prod_d prod_k theta_{d,k}^{m_{d,k}}."""
    p = 1.0
    for d, k in enumerate(arch_i):
        p *= theta_n[d][k]
    return p


def ref_ratios(theta: list[list[np.ndarray]], arch) -> np.ndarray:
    """§3.2: r_k^(n) = P_theta^(n)(M_k) / P_theta(M_k), P_theta = N^-1 sum_n P_theta^(n) (the mixture)."""
    N = len(theta)
    r = np.zeros((N, len(arch)))
    for i, a in enumerate(arch):
        probs = [ref_prob(theta[n], a) for n in range(N)]
        mixture = sum(probs) / N
        for n in range(N):
            r[n, i] = probs[n] / mixture
    return r


def ref_eq9_utilities(losses, r_n: np.ndarray, lam: int) -> np.ndarray:
    """Eq. 9 as written: q_i = (1/lam) sum_k r_k I{L_k <= L_i}, s_i = w(q_i), in exact rational arithmetic on
    the ratios' float values (a q of exactly 1/4 or 3/4 stays on its side)."""
    S = len(losses)
    r = [Fraction(float(x)) for x in r_n]
    out = np.zeros(S)
    for i in range(S):
        q = sum(r[k] for k in range(S) if losses[k] <= losses[i]) / lam
        out[i] = ref_w(q)
    return out


def ref_tie_utilities(losses, r_n: np.ndarray, lam: int) -> np.ndarray:
    """docs/search-engine.md "Ties": the t samples of a tie block share mean_{o=0..t-1} w(q+ - o delta), where
    q+ is eq. 9's q of the block and delta = (1/lam) (sum of the block's r) / t. Without ties this is eq. 9."""
    S = len(losses)
    r = [Fraction(float(x)) for x in r_n]                                    # exact, as in ref_eq9_utilities
    out = np.zeros(S)
    for i in range(S):
        q_plus = sum(r[k] for k in range(S) if losses[k] <= losses[i]) / lam
        block = [k for k in range(S) if losses[k] == losses[i]]
        delta = sum(r[k] for k in block) / lam / len(block)
        out[i] = np.mean([ref_w(q_plus - o * delta) for o in range(len(block))])
    return out


def ref_eq10(theta, arch, s, r, eps, costs, lr, lam):
    """Eq. 10 for every n and d: theta_d <- theta_d - eta((1/lam) sum_i s_i r_i (m_d^(i) - theta_d)
    + eps_n (c_d - Q_d 1) * theta_d), Q_d = sum_k c_{d,k} theta_{d,k}; every n from the same (old) theta."""
    new = []
    for n, theta_n in enumerate(theta):
        rows = []
        for d, th in enumerate(theta_n):
            K = len(th)
            sample_term = np.zeros(K)
            for i, a in enumerate(arch):
                m = np.zeros(K)
                m[a[d]] = 1.0
                sample_term += s[n, i] * r[n, i] * (m - th)
            Q = float(np.dot(costs[d], th))
            rows.append(th - lr * (sample_term / lam + eps[n] * (costs[d] - Q) * th))
        new.append(rows)
    return new


def ref_theta_min(num_choices, theta_min) -> list[float]:
    """docs "theta_min": None gives 1 / (D_valid (K_d - 1)) (1 / (2 K_d) where K_d times that >= 1), a number
    is used as given; a fixed decision (K_d = 1) is theta = 1."""
    valid = sum(k > 1 for k in num_choices)
    out = []
    for k in num_choices:
        if k == 1:
            out.append(0.0)
        elif theta_min is None:
            t = 1.0 / (valid * (k - 1))
            out.append(t if k * t < 1 else 1.0 / (2 * k))
        else:
            out.append(float(theta_min))
    return out


def ref_restrict(th: np.ndarray, tmin: float) -> np.ndarray:
    """docs "theta_min": theta <- max(theta, tmin), then tmin + (theta - tmin)(1 - K tmin)/(sum theta - K tmin)."""
    K = len(th)
    th = np.maximum(th, tmin)
    return tmin + (th - tmin) * (1 - K * tmin) / (th.sum() - K * tmin)


def ref_step(theta, arch, losses, eps, costs, lr, tmins, utilities=ref_eq9_utilities):
    """One tell() of the importance-sampled engine: eq. 9 utilities, eq. 10, then the range restriction.
    Returns the new theta and the smallest entry before the restriction (> 0: nothing was clipped)."""
    lam = len(arch)
    r = ref_ratios(theta, arch)
    s = np.stack([utilities(losses, r[n], lam) for n in range(len(theta))])
    new = ref_eq10(theta, arch, s, r, eps, costs, lr, lam)
    lowest = min(float(th.min()) for rows in new for th in rows)
    return [[ref_restrict(th, tmins[d]) for d, th in enumerate(rows)] for rows in new], lowest


def ref_eq7_via_fisher(theta_1, arch, losses, eps, costs, lr):
    """N = 1, eq. 5 / 7 / 8 from §2-3.1 with the Fisher matrix made explicit on theta_bar (K_d - 1 free
    parameters): theta_bar <- theta_bar - eta F^-1 ((1/lam) sum_i s_i grad ln P(M_i) + eps grad E[R]),
    F^-1 = diag(theta_bar) - theta_bar theta_bar^T, grad ln P = m_bar / theta_bar - m_K / theta_K 1,
    grad E[R] = c_bar - c_K 1; theta_K = 1 - sum theta_bar. s_i = w(#{k: L_k <= L_i} / lam) (§2)."""
    lam = len(arch)
    s = [ref_w(Fraction(sum(losses[k] <= losses[i] for k in range(lam)), lam)) for i in range(lam)]
    out = []
    for d, th in enumerate(theta_1):
        K = len(th)
        if K == 1:
            out.append(th.copy())
            continue
        tb, tK = th[:-1], th[-1]
        F_inv = np.diag(tb) - np.outer(tb, tb)
        grad = np.zeros(K - 1)
        for i, a in enumerate(arch):
            m = np.zeros(K)
            m[a[d]] = 1.0
            grad += s[i] * (m[:-1] / tb - m[-1] / tK)
        grad = grad / lam + eps * (costs[d][:-1] - costs[d][-1])
        new_bar = tb - lr * F_inv @ grad
        out.append(np.append(new_bar, 1.0 - new_bar.sum()))
    return out


def ref_weighted_quantile(losses, r_n: np.ndarray, lam: int) -> tuple[np.ndarray, np.ndarray]:
    """docs "The weighted-quantile utility": w_k = r_k / sum r, sample i owns (q-_i, q+_i] with
    q+ = sum_k w_k I{L_k <= L_i}, q- = sum_k w_k I{L_k < L_i}, s_i = mean of W_lam over it,
    W_lam(q) = w(ceil(lam q) / lam). Returns (s, w). The average is a numeric integral (midpoint rule on a
    fine grid, exact here because W_lam is piecewise constant with breakpoints on multiples of 1/lam)."""
    S = len(losses)
    w = r_n / r_n.sum()
    s = np.zeros(S)
    for i in range(S):
        qp = sum(w[k] for k in range(S) if losses[k] <= losses[i])
        qm = sum(w[k] for k in range(S) if losses[k] < losses[i])
        if qp - qm <= 0:
            s[i] = ref_w(Fraction(math.ceil(lam * qp - 1e-12), lam))
            continue
        # W_lam is constant on ((j-1)/lam, j/lam]: integrate piece by piece
        total = 0.0
        for j in range(1, lam + 1):
            lo, hi = max(qm, (j - 1) / lam), min(qp, j / lam)
            if hi > lo:
                total += (hi - lo) * ref_w(Fraction(j, lam))
        s[i] = total / (qp - qm)
    return s, w


def ref_step_weighted(theta, arch, losses, eps, costs, lr, tmins):
    """tell() with utility="weighted_quantile": eq. 10 with (1/lam) s_i r_i replaced by s_i w_i (docs)."""
    lam = len(arch)
    r = ref_ratios(theta, arch)
    sw = [ref_weighted_quantile(losses, r[n], lam) for n in range(len(theta))]
    coef = np.stack([s * w for s, w in sw])
    # eq. 10's (1/lam) sum_i s_i r_i (...) with s_i r_i / lam := s_i w_i: pass s = lam s w, r = 1
    new = ref_eq10(theta, arch, lam * coef, np.ones_like(r), eps, costs, lr, lam)
    return [[ref_restrict(th, tmins[d]) for d, th in enumerate(rows)] for rows in new]


# ----------------------------------------------------------------------------- helpers
def random_problem(rng: np.random.Generator, N: int, with_fixed: bool = True):
    """(num_choices, costs as ragged arrays, padded cost tensor with junk beyond K_d, theta ragged (N, D),
    epsilons with a 0)."""
    D = int(rng.integers(1, 6))
    num_choices = [int(k) for k in rng.integers(1 if with_fixed else 2, 6, size=D)]
    if max(num_choices) == 1:
        num_choices[0] = 3
    Kmax = max(num_choices)
    costs = [rng.uniform(0, 1, size=k) for k in num_choices]
    padded = torch.tensor(rng.uniform(5, 9, size=(D, Kmax)))                # junk beyond K_d: must be ignored
    for d, c in enumerate(costs):
        padded[d, :len(c)] = torch.tensor(c)
    theta = []
    for _ in range(N):
        rows = []
        for k in num_choices:
            x = rng.uniform(0.2, 1.0, size=k)
            rows.append(x / x.sum())
        theta.append(rows)
    eps = [0.0] + [float(e) for e in rng.uniform(0, 2, size=N - 1)]
    rng.shuffle(eps)
    return num_choices, costs, padded, theta, eps


def to_tensor(theta, num_choices) -> torch.Tensor:
    N, D, Kmax = len(theta), len(num_choices), max(num_choices)
    out = torch.zeros(N, D, Kmax, dtype=torch.float64)
    for n in range(N):
        for d, k in enumerate(num_choices):
            out[n, d, :k] = torch.from_numpy(theta[n][d])
    return out


def random_arch(rng, num_choices, lam) -> list[list[int]]:
    return [[int(rng.integers(0, k)) for k in num_choices] for _ in range(lam)]


def random_losses(rng, lam: int, ties: bool) -> list[float]:
    if ties:
        return [float(x) for x in rng.integers(0, 3, size=lam)]              # few values: many ties
    return [float(x) for x in rng.permutation(lam) + rng.uniform(0, 0.5, size=lam)]


def assert_theta(engine, ref, num_choices, atol=ATOL):
    expected = to_tensor(ref, num_choices)
    torch.testing.assert_close(engine.theta, expected, rtol=0, atol=atol)


# ----------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("seed", range(12))
def test_one_tell_equals_eq_9_and_10_unclipped(seed):
    """Eq. 10 exactly (theta_min = 0 and a learning rate that clips nothing), distinct losses: eq. 9 as written."""
    rng = np.random.default_rng(seed)
    N = int(rng.integers(1, 5))
    lam = int(rng.integers(2, 10))
    num_choices, costs, padded, theta, eps = random_problem(rng, N)
    lr = 0.1 / N
    arch, losses = random_arch(rng, num_choices, lam), random_losses(rng, lam, ties=False)
    expected, lowest = ref_step(theta, arch, losses, eps, costs, lr, [0.0] * len(num_choices))
    assert lowest > 0                                                      # eq. 10 itself, nothing clipped
    s = MultiEpsilonSearch(num_choices, padded, eps, lam=lam, lr=lr, theta_min=0,
                           init_theta=to_tensor(theta, num_choices), utility="paper")
    s.tell(torch.tensor(arch), torch.tensor(losses))
    assert_theta(s, expected, num_choices)


@pytest.mark.parametrize("sync_free", [False, True])
@pytest.mark.parametrize("seed", range(8))
def test_several_tells_from_ask_follow_the_reference(seed, sync_free):
    """20 ask/tell steps with the engine's own samples, the default theta_min (ASNG) and learning rate
    (1 / sum K_d), ties in half of the problems: every step equals the reference step."""
    rng = np.random.default_rng(100 + seed)
    N = int(rng.integers(1, 5))
    lam = int(rng.integers(2, 9))
    num_choices, costs, padded, theta, eps = random_problem(rng, N)
    tmins = ref_theta_min(num_choices, None)
    theta = [[ref_restrict(th, tmins[d]) for d, th in enumerate(rows)] for rows in theta]
    ties = seed % 2 == 0
    s = MultiEpsilonSearch(num_choices, padded, eps, lam=lam, init_theta=to_tensor(theta, num_choices),
                           seed=seed, sync_free=sync_free)
    lr = 1.0 / sum(num_choices)
    assert s.lr == pytest.approx(lr, rel=1e-15)
    assert s.theta_min == pytest.approx(tmins, rel=1e-15)
    utilities = ref_tie_utilities if ties else ref_eq9_utilities
    for _ in range(20):
        arch = s.ask().tolist()
        losses = random_losses(rng, lam, ties)
        theta, _ = ref_step(theta, arch, losses, eps, costs, lr, tmins, utilities)
        s.tell(torch.tensor(arch), torch.tensor(losses))
        assert_theta(s, theta, num_choices)


@pytest.mark.parametrize("seed", range(6))
def test_ties_share_the_documented_mean_and_distinct_losses_are_eq_9(seed):
    """With ties the engine departs from eq. 9's w(q+) on purpose (footnote 3; docs "Ties"): each tie block
    shares mean_o w(q+ - o delta). The two references agree without ties, and the engine follows the
    documented one with them."""
    rng = np.random.default_rng(200 + seed)
    N, lam = int(rng.integers(2, 5)), int(rng.integers(4, 10))
    num_choices, costs, padded, theta, eps = random_problem(rng, N)
    arch, losses = random_arch(rng, num_choices, lam), random_losses(rng, lam, ties=True)
    r = ref_ratios(theta, arch)
    distinct = random_losses(rng, lam, ties=False)
    for n in range(N):
        np.testing.assert_array_equal(ref_tie_utilities(distinct, r[n], lam), ref_eq9_utilities(distinct, r[n], lam))
    expected, _ = ref_step(theta, arch, losses, eps, costs, 0.1 / N, [0.0] * len(num_choices), ref_tie_utilities)
    s = MultiEpsilonSearch(num_choices, padded, eps, lam=lam, lr=0.1 / N, theta_min=0,
                           init_theta=to_tensor(theta, num_choices))
    s.tell(torch.tensor(arch), torch.tensor(losses))
    assert_theta(s, expected, num_choices)


@pytest.mark.parametrize("utility", ["paper", "weighted_quantile"])
@pytest.mark.parametrize("seed", range(8))
def test_one_distribution_is_eq_7_with_the_explicit_fisher_matrix(seed, utility):
    """N = 1: the update is eq. 5 on theta_bar with F^-1 = diag(theta_bar) - theta_bar theta_bar^T (eq. 7), and
    the last category follows as 1 - sum theta_bar (eq. 8), with the ranking utility w(rank / lam). Both
    utilities reduce to it (docs: "Reduction to eq. 7")."""
    rng = np.random.default_rng(300 + seed)
    lam = int(rng.integers(2, 10))
    num_choices, costs, padded, theta, _ = random_problem(rng, 1)
    eps = float(rng.choice([0.0, 0.7]))
    arch, losses = random_arch(rng, num_choices, lam), random_losses(rng, lam, ties=False)
    expected = ref_eq7_via_fisher(theta[0], arch, losses, eps, costs, 0.05)
    assert min(float(th.min()) for th in expected) > 0
    s = MultiEpsilonSearch(num_choices, padded, [eps], lam=lam, lr=0.05, theta_min=0,
                           init_theta=to_tensor(theta, num_choices), utility=utility)
    s.tell(torch.tensor(arch), torch.tensor(losses))
    assert_theta(s, [expected], num_choices)


@pytest.mark.parametrize("seed", range(4))
def test_method_2_is_eq_7_per_distribution_on_its_own_rows(seed):
    """importance_sampling=False: distribution n sees rows n lam .. (n+1) lam - 1 only, with r = 1 (eq. 7)."""
    rng = np.random.default_rng(400 + seed)
    N, lam = int(rng.integers(2, 4)), int(rng.integers(2, 7))
    num_choices, costs, padded, theta, eps = random_problem(rng, N)
    arch, losses = random_arch(rng, num_choices, N * lam), random_losses(rng, N * lam, ties=False)
    expected = [ref_eq7_via_fisher(theta[n], arch[n * lam:(n + 1) * lam], losses[n * lam:(n + 1) * lam],
                                   eps[n], costs, 0.05) for n in range(N)]
    s = MultiEpsilonSearch(num_choices, padded, eps, lam=lam, lr=0.05, theta_min=0,
                           init_theta=to_tensor(theta, num_choices), importance_sampling=False)
    s.tell(torch.tensor(arch), torch.tensor(losses))
    assert_theta(s, expected, num_choices)


@pytest.mark.parametrize("seed", range(6))
def test_weighted_quantile_follows_its_documented_formula(seed):
    """utility="weighted_quantile" (docs): s_i the mean of W_lam over (q-_i, q+_i] with self-normalised weights,
    the update term sum_i s_i w_i (m - theta); ties included, several steps, default theta_min."""
    rng = np.random.default_rng(500 + seed)
    N, lam = int(rng.integers(2, 5)), int(rng.integers(2, 10))
    num_choices, costs, padded, theta, eps = random_problem(rng, N)
    tmins = ref_theta_min(num_choices, None)
    theta = [[ref_restrict(th, tmins[d]) for d, th in enumerate(rows)] for rows in theta]
    s = MultiEpsilonSearch(num_choices, padded, eps, lam=lam, init_theta=to_tensor(theta, num_choices),
                           seed=seed, utility="weighted_quantile")
    for step in range(10):
        arch, losses = s.ask().tolist(), random_losses(rng, lam, ties=step % 2 == 0)
        theta = ref_step_weighted(theta, arch, losses, eps, costs, s.lr, tmins)
        s.tell(torch.tensor(arch), torch.tensor(losses))
        assert_theta(s, theta, num_choices)


def test_importance_ratios_use_the_mixture_of_all_n_before_the_update():
    """r_i^(n) = P_n(M_i) / ((1/N) sum_m P_m(M_i)) with every m, each n's own included, from the theta the
    samples were drawn with: a tell that updated the members one after another (the later ones' ratios from
    the earlier ones' new theta) would differ from the reference's simultaneous update, checked above."""
    rng = np.random.default_rng(7)
    num_choices, _, _, theta, _ = random_problem(rng, 4, with_fixed=False)
    arch = random_arch(rng, num_choices, 9)
    D, Kmax = len(num_choices), max(num_choices)
    flat = (torch.tensor(arch) + torch.arange(D) * Kmax).view(-1)
    ratios, log_ratios = importance_ratios(to_tensor(theta, num_choices), flat, len(arch), 1e-300)
    expected = ref_ratios(theta, arch)
    np.testing.assert_allclose(ratios.numpy(), expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(log_ratios.numpy(), np.log(expected), rtol=0, atol=1e-12)
    np.testing.assert_allclose(expected.mean(0), 1.0, rtol=1e-12)           # mean over n of r^(n) is 1


def test_ask_samples_the_mixture_of_the_n_distributions():
    """ask(): lam rows from (1/N) sum_n P_theta^(n), the proposal the ratios assume (a Pearson chi-square test
    over the 12 architectures of a 2-decision space, 60,000 rows; the 1e-6 quantile for 11 degrees of freedom
    is about 50, while sampling only member 0 or a product of the mean theta gives thousands)."""
    rng = np.random.default_rng(11)
    num_choices = [3, 4]
    theta = []
    for _ in range(3):
        theta.append([rng.dirichlet(np.full(k, 0.5)) * 0.9 + 0.1 / k for k in num_choices])
    s = MultiEpsilonSearch(num_choices, None, [0.0, 1.0, 2.0], lam=6000, theta_min=0,
                           init_theta=to_tensor(theta, num_choices), seed=5)
    counts = np.zeros(num_choices)
    for _ in range(10):
        for a, b in s.ask().tolist():
            counts[a, b] += 1
    expected = np.zeros(num_choices)
    for a in range(3):
        for b in range(4):
            expected[a, b] = np.mean([ref_prob(theta[n], (a, b)) for n in range(3)]) * counts.sum()
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 50, chi2


@pytest.mark.parametrize("theta_min", [None, 0.0, 0.05])
def test_theta_stays_on_the_simplex_and_above_theta_min(theta_min):
    """Large epsilons, a large learning rate and extreme losses (eq. 10 alone would leave the simplex): after every
    step each row sums to 1, every entry is >= theta_min_d, and entries beyond K_d stay 0."""
    rng = np.random.default_rng(13)
    num_choices = [2, 5, 1, 3, 4]
    costs = torch.tensor(rng.uniform(0, 1, size=(5, 5)))
    s = MultiEpsilonSearch(num_choices, costs, [0.0, 5.0, 50.0], lam=4, lr=0.9, theta_min=theta_min, seed=1)
    tmin = torch.tensor(ref_theta_min(num_choices, theta_min), dtype=torch.float64).view(1, -1, 1)
    mask = torch.arange(5) < torch.tensor(num_choices).unsqueeze(1)
    for step in range(200):
        arch = s.ask()
        s.tell(arch, torch.tensor(rng.normal(size=4) * 10.0 ** rng.integers(-3, 30)))
        th = s.theta
        assert torch.isfinite(th).all()
        torch.testing.assert_close(th.sum(-1), torch.ones(3, 5, dtype=torch.float64), rtol=0, atol=1e-12)
        assert (th[:, mask] >= (tmin.expand(3, 5, 5)[:, mask] - 1e-15)).all(), step
        assert (th[:, ~mask] == 0).all()


@pytest.mark.parametrize("seed", range(4))
def test_budgets_adapt_epsilon_by_the_documented_dual_step(seed):
    """budgets= (docs "Budgets"): every epsilon starts at 0; each tell is the step above with the current
    epsilons, then eps_n <- clip(eps_n + budget_lr (R(mode_n) - B_n) / (R_max - R_min), 0, 1e6), R(mode_n) the
    cost of argmax_M P_theta^(n)(M); an unconstrained member (None) keeps 0."""
    rng = np.random.default_rng(600 + seed)
    N, lam = 3, int(rng.integers(4, 9))
    num_choices, costs, padded, theta, _ = random_problem(rng, N, with_fixed=False)
    tmins = ref_theta_min(num_choices, None)
    theta = [[ref_restrict(th, tmins[d]) for d, th in enumerate(rows)] for rows in theta]
    lo, hi = sum(c.min() for c in costs), sum(c.max() for c in costs)
    budgets = [None, lo + 0.5 * (hi - lo), lo + 0.1 * (hi - lo)]
    s = MultiEpsilonSearch(num_choices, padded, budgets=budgets, lam=lam, budget_lr=0.3,
                           init_theta=to_tensor(theta, num_choices), seed=seed)
    eps = [0.0] * N
    for _ in range(25):
        arch, losses = s.ask().tolist(), random_losses(rng, lam, ties=False)
        theta, _ = ref_step(theta, arch, losses, eps, costs, s.lr, tmins)
        for n, b in enumerate(budgets):
            mode_cost = sum(costs[d][int(np.argmax(th))] for d, th in enumerate(theta[n]))
            eps[n] = 0.0 if b is None else min(max(eps[n] + 0.3 * (mode_cost - b) / (hi - lo), 0.0), 1e6)
        s.tell(torch.tensor(arch), torch.tensor(losses))
        assert_theta(s, theta, num_choices)
        assert s.epsilons == pytest.approx(eps, rel=0, abs=1e-12)
    assert eps[2] > 0                                                       # the tight budget pushed epsilon up


def _rank_average_cases(lams):
    """(lam, losses, i, expected): a tie block of t samples over the ranks j .. j+t-1 among otherwise distinct
    losses, and the IGO rank average mean(w(j/lam), ..., w((j+t-1)/lam)) its members share (docs "Ties")."""
    for lam in lams:
        for j in range(1, lam + 1):
            for t in range(2, lam - j + 2):
                losses = [float(x) for x in range(j - 1)] + [float(j - 1)] * t + \
                    [float(x) for x in range(j, lam - t + 1)]
                yield lam, losses, j - 1, sum(ref_w(Fraction(k, lam)) for k in range(j, j + t)) / t


def test_tie_blocks_on_a_quarter_get_the_exact_rank_average():
    """With r = 1 (N = 1, Method 2, or members with equal theta, as at the start) a tie block whose ranks reach
    exactly lam/4 or 3 lam/4 gets the rank average: w(lam/4 / lam) is -2. The points q+ - o delta were
    computed as (7/12) - 4 (1/12) = 0.25000000000000006 and landed in the 0 bucket (lam = 12, ranks 2..7:
    -1/3 instead of -2/3), in 126 of the blocks of lam = 2..40."""
    wrong = []
    for lam, losses, i, expected in _rank_average_cases(range(2, 41)):
        got = quantile_utilities(torch.tensor([losses], dtype=torch.float64), torch.ones(1, lam, dtype=torch.float64),
                                 lam)
        if abs(float(got[0, i]) - expected) > 1e-12:
            wrong.append((lam, losses, float(got[0, i]), expected))
    assert not wrong, wrong[:3]


@pytest.mark.parametrize("utility", ["paper", "weighted_quantile"])
@pytest.mark.parametrize("N", [1, 3])
def test_engine_update_with_a_tie_block_on_a_quarter(N, utility):
    """The same through tell(): lam = 12, members all uniform (r = 1), the tie block of ranks 2..7; the update
    equals eq. 10 with the rank-average utilities, for both utilities (docs: "both utilities give the same
    update there, ties included")."""
    lam, num_choices = 12, [3, 2, 4]
    losses = [0.0] + [1.0] * 6 + [2.0, 3.0, 4.0, 5.0, 6.0]
    rng = np.random.default_rng(21)
    arch = random_arch(rng, num_choices, lam)
    costs = [rng.uniform(0, 1, size=k) for k in num_choices]
    padded = torch.zeros(3, 4, dtype=torch.float64)
    for d, c in enumerate(costs):
        padded[d, :len(c)] = torch.tensor(c)
    theta = [[np.full(k, 1.0 / k) for k in num_choices] for _ in range(N)]
    eps = [0.0, 0.5, 1.0][:N]
    s = MultiEpsilonSearch(num_choices, padded, eps, lam=lam, lr=0.05, theta_min=0, utility=utility)
    utilities = np.array([-2.0] + [-2 / 3] * 6 + [0.0, 0.0, 2.0, 2.0, 2.0])   # w(1/12); mean w(2/12..7/12); ...
    np.testing.assert_array_equal(ref_tie_utilities(losses, np.ones(lam), lam), utilities)
    expected = ref_eq10(theta, arch, np.tile(utilities, (N, 1)), np.ones((N, lam)), eps, costs, 0.05, lam)
    s.tell(torch.tensor(arch), torch.tensor(losses))
    assert_theta(s, expected, num_choices)
