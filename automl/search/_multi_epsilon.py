"""The search engine: N categorical distributions, one per epsilon, updated together (eq. 9-10).

Notation follows the paper (§2-3): D decisions, decision d has K_d choices, theta^(n) (D, Kmax) is the
n-th categorical distribution (padded with zeros beyond K_d), c (D, Kmax) the cost table, lam the
number of architectures per iteration, eta the learning rate.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import torch

from ._base import Searcher

__all__ = ["MultiEpsilonSearch", "quantile_utilities", "weighted_quantile_utilities", "UTILITIES"]


_STATE_VERSION = 2
#: The ranking utilities ``tell`` can use: eq. 9 as written, or the IGO weighted-quantile form.
UTILITIES = ("paper", "weighted_quantile")
#: Upper end of an adapted epsilon (budgets): far beyond any useful value with normalised costs.
EPS_CAP = 1e6


def quantile_utilities(losses: torch.Tensor, ratios: torch.Tensor, lam: int,
                       check_ties: bool = True) -> torch.Tensor:
    """Ranking-based utilities ``s_i^(n) = w(q^(n)(M_i))`` of eq. 9 (eq. 5's ``w`` for N = 1).

    ``q^(n)(M_i) = (1/lam) sum_k r_k^(n) I{L_k <= L_i}`` is the importance-weighted estimate of the
    probability, under ``P_theta^(n)``, of a loss no larger than ``L_i``; ``w(q) = -2`` for
    ``q <= 1/4``, ``0`` for ``q <= 3/4`` and ``2`` above (the best quarter gets -2: the update
    subtracts, so good samples pull theta toward them).

    Ties (the paper's footnote 3 ignores them): as in the rigorous IGO definition (Ollivier et al.
    2017), the ``t`` samples of a tie block share the mean of the utilities they would get if the tie
    were broken. Unweighted, a block whose last member has ``q+ = (j + t - 1)/lam`` covers the
    quantiles ``q+ - o/lam, o = 0..t-1``, i.e. ranks ``j..j+t-1``, and every member gets the mean of
    ``w`` there. With importance weights the ranks a block would occupy depend on how its members'
    weights are ordered, so the order-free generalisation used here splits the block's quantile
    interval ``(q-, q+]`` (width ``(1/lam) * sum of the block's r``) into ``t`` equal steps ``delta``,
    as if each member carried the block's mean weight, and averages ``w(q+ - o*delta)``,
    ``o = 0..t-1``. It reduces to the IGO rank average when r = 1, and to eq. 9 exactly when the
    losses are distinct (t = 1: ``w(q+)``, the formula of the paper).

    Args:
        losses: ``(G, S)`` finite or +inf losses; ``G = 1`` (all distributions see the same samples,
            importance sampling) or ``G = N`` (distribution n sees row n only).
        ratios: ``(N, S)`` likelihood ratios ``r_k^(n)``.
        lam: the normaliser ``lam`` of eq. 9.
        check_ties: look for ties first and take the short formula when there are none. The check
            reads one number back from the device; ``False`` always takes the tie-aware formula, which
            gives bit-identical utilities when the losses are distinct and never waits for the device
            (the engine passes ``False`` on GPUs).

    Returns:
        ``(N, S)`` utilities.
    """
    values, bounds = _w_tables(ratios.dtype, ratios.device)
    G, S = losses.shape
    # le[g, i, k] = I{L_k <= L_i}
    le = losses.unsqueeze(-1) >= losses.unsqueeze(-2)
    lef = le.to(ratios.dtype)
    # q[n, i] = (1/lam) sum_k r[n, k] le[i, k], by broadcasting (not a matmul: see tell()).
    q = (ratios.unsqueeze(1) * lef).sum(-1).div_(lam)
    # Distinct losses: le holds exactly S(S+1)/2 ones per group; anything more means ties.
    if check_ties and int(le.sum()) == G * S * (S + 1) // 2:
        # bucketize(right=False) gives 0 for q <= 1/4, 1 for q <= 3/4, 2 above: exactly w.
        return values[torch.bucketize(q, bounds)]
    eqf = (le & le.transpose(-1, -2)).to(ratios.dtype)      # tie blocks (G, S, S), symmetric
    t = eqf.sum(-1)                                          # block sizes (G, S)
    width = (ratios.unsqueeze(1) * eqf).sum(-1).div_(lam)    # q+ - q-  (N, S)
    delta = width / t
    offs = torch.arange(S, dtype=ratios.dtype, device=ratios.device)
    pts = q.unsqueeze(-1) - offs * delta.unsqueeze(-1)       # (N, S, S): q+ - o delta
    valid = offs < t.unsqueeze(-1)                           # only o = 0..t-1
    w = values[torch.bucketize(pts, bounds)] * valid
    return w.sum(-1) / t


def weighted_quantile_utilities(losses: torch.Tensor, weights: torch.Tensor, lam: int) -> torch.Tensor:
    """The IGO weighted-quantile utilities with self-normalised weights (``utility="weighted_quantile"``).

    Distribution n weighs sample k by ``w_k^(n) = r_k^(n) / sum_j r_j^(n)`` (the weights of a row sum
    to 1). Sample i occupies the interval ``(q-_i, q+_i]`` of the weighted distribution of losses,
    ``q+_i = sum_k w_k I{L_k <= L_i}`` and ``q-_i = sum_k w_k I{L_k < L_i}``, and its utility is the
    average of the weight function over that interval, ``(1/(q+ - q-)) int_{q-}^{q+} W_lam(q) dq``.
    Tied samples share one interval and so one value (the IGO tie rule). ``W_lam(q) = w(ceil(lam q)/lam)``
    is eq. 5's ``w`` read on the grid of ``1/lam`` steps: ``-2`` up to ``floor(lam/4)/lam``, ``0`` up to
    ``floor(3 lam/4)/lam``, ``2`` above; for lam a multiple of 4 it is ``w`` itself. With equal weights
    ``1/lam`` (N = 1, or Method 2) the i-th ranked sample's interval is ``((i-1)/lam, i/lam]``, where
    ``W_lam`` is constant ``w(i/lam)``: eq. 7's ranking utility, ties included (the same rank average
    as :func:`quantile_utilities`). A sample of zero weight gets ``W_lam(q+)``.

    Args:
        losses: ``(G, S)`` losses (+inf for non-finite ones); ``G = 1`` or ``G = N``, as in
            :func:`quantile_utilities`.
        weights: ``(N, S)`` non-negative weights, each row summing to 1.
        lam: the grid of ``W_lam``.

    Returns:
        ``(N, S)`` utilities.
    """
    b1, b2 = (lam // 4) / lam, (3 * lam // 4) / lam
    le = (losses.unsqueeze(-1) >= losses.unsqueeze(-2)).to(weights.dtype)   # le[g, i, k] = I{L_k <= L_i}
    lt = (losses.unsqueeze(-1) > losses.unsqueeze(-2)).to(weights.dtype)
    w = weights.unsqueeze(1)
    qp = (w * le).sum(-1)
    qm = (w * lt).sum(-1)

    def integral(q):  # int_0^q W_lam
        return q.clamp(max=b1).mul(-2.0) + (q - b2).clamp(min=0.0).mul(2.0)

    width = qp - qm
    point = torch.where(qp <= b1, -2.0, torch.where(qp <= b2, 0.0, 2.0)).to(weights.dtype)
    avg = (integral(qp) - integral(qm)) / width.clamp(min=torch.finfo(weights.dtype).tiny)
    return torch.where(width > 0, avg, point)


_W_TABLES: dict = {}


def _w_tables(dtype, device):
    """The levels (-2, 0, 2) and boundaries (1/4, 3/4) of w, built once per dtype and device."""
    key = (dtype, device)
    if key not in _W_TABLES:
        _W_TABLES[key] = (torch.tensor([-2.0, 0.0, 2.0], dtype=dtype, device=device),
                          torch.tensor([0.25, 0.75], dtype=dtype, device=device))
    return _W_TABLES[key]


class MultiEpsilonSearch(Searcher):
    """Importance-sampled multi-epsilon ASNG: N architectures of different complexity from one search.

    Keeps one categorical distribution ``P_theta^(n)`` per regularisation coefficient ``epsilon_n``.
    :meth:`ask` samples ``lam`` architectures from the mixture ``(1/N) sum_n P_theta^(n)``;
    :meth:`tell` updates every distribution from all of them with importance weights (eq. 9-10). With
    N = 1 this is eq. 7 (the likelihood ratio is identically 1). The engine sees only choice counts,
    costs and losses, so it can drive any black-box objective.

    Args:
        num_choices: ``[K_1, ..., K_D]``; ``K_d == 1`` marks a fixed decision (theta = 1).
        costs: ``(D, Kmax)`` cost table ``c_{d,k}``, used exactly as given (normalise it first with
            :func:`automl.search.normalize_costs`); entries beyond ``K_d`` are ignored. ``None``
            means all zero (no regularisation).
        epsilons: ``[epsilon_1, ..., epsilon_N]``, non-negative.
        lam: ``lam >= 2`` architectures per iteration (per distribution when
            ``importance_sampling=False``).
        lr: eta; ``None`` gives the paper's ``1 / sum_d K_d``.
        theta_min: lower bound on every ``theta_{d,k}`` after each update. ``None`` gives ASNG-NAS's
            range restriction ``1 / (D_valid (K_d - 1))`` (``D_valid`` = decisions with
            ``K_d > 1``; if that bound is infeasible, ``K_d * bound >= 1``, as in spaces of one or
            two decisions, ``1 / (2 K_d)`` is used). ``0`` disables it (theta is still clamped at 0
            and renormalised, so it stays on the simplex).
        init_theta: optional ``(N, D, Kmax)`` or ``(D, Kmax)`` start (default uniform); it is
            renormalised and range-restricted like any update.
        seed: seed of the engine's own ``torch.Generator`` (CPU; samples are moved to ``device``).
        device: where theta lives and the update runs.
        importance_sampling: ``False`` gives the paper's Method 2 update: distribution n samples its
            own ``lam`` architectures and learns only from them (:meth:`ask` returns ``N * lam``
            rows grouped by distribution, :meth:`tell` takes ``N * lam`` losses).
        dtype: dtype of theta (float64 by default: theta_min can be ~1e-3 and the ratios span many
            orders of magnitude).
        sync_free: make :meth:`tell` read nothing back from ``device``: no tie check (the tie-aware
            utilities are exact without it), non-finite losses are counted on the device
            (:attr:`nonfinite_losses`) instead of warned about, and ``ask()``'s own samples are not
            range-checked. Results are bit-identical either way. ``None`` (default): on for any
            device but the CPU, where reading back is free.
        utility: ``"paper"`` (default): eq. 9 as written (:func:`quantile_utilities`, update scaled by
            ``r_i / lam``); ``"weighted_quantile"``: the IGO weighted-quantile utility with
            self-normalised weights ``w_i = r_i / sum_k r_k`` (:func:`weighted_quantile_utilities`,
            update scaled by ``w_i``). Both are eq. 7 when N = 1 or without importance sampling.
        budgets: instead of ``epsilons``: one cost budget per distribution, in the units of ``costs``
            (``None``: unconstrained, epsilon stays 0). Each epsilon starts at 0 and is adapted after
            every :meth:`tell` by a projected dual step so that the distribution's cost meets its
            budget: ``eps <- clip(eps + budget_lr (R(mode) - B) / (R_max - R_min), 0, 1e6)``, where
            ``R(mode)`` is the cost of the distribution's most probable architecture
            (:meth:`budget_cost`). :attr:`epsilons` shows the current values, and :meth:`best` derives
            the most probable architecture within each budget. A budget below the cheapest
            architecture raises ``ValueError``.
        budget_lr: the dual step size (default 0.5: epsilon can move by at most 0.5 per step).

    Example:
        >>> import torch
        >>> from automl.search import MultiEpsilonSearch
        >>> costs = torch.tensor([[0.0, 0.5, 1.0]] * 4)          # 4 decisions, 3 choices each
        >>> s = MultiEpsilonSearch([3] * 4, costs, epsilons=[0.0, 0.5], lam=8, seed=0)
        >>> for _ in range(300):
        ...     arch = s.ask()                                     # (8, 4)
        ...     s.tell(arch, (arch != 2).sum(1).double())          # choice 2 is best but costly
        >>> s.best()[0].tolist()
        [2, 2, 2, 2]
    """

    def __init__(self, num_choices: Sequence[int], costs: torch.Tensor | None,
                 epsilons: Sequence[float] | None = None, lam: int = 2, lr: float | None = None,
                 theta_min: float | None = None, init_theta: torch.Tensor | None = None,
                 seed: int = 0, device: str | torch.device = "cpu",
                 importance_sampling: bool = True, dtype: torch.dtype = torch.float64,
                 sync_free: bool | None = None, utility: str = "paper",
                 budgets: Sequence[float | None] | None = None, budget_lr: float = 0.5):
        self.num_choices = _check_num_choices(num_choices)
        D, Kmax = len(self.num_choices), max(self.num_choices)
        self.device = torch.device(device)
        self.dtype = dtype
        dev = dict(dtype=dtype, device=self.device)
        K = torch.tensor(self.num_choices)
        self._mask_cpu = torch.arange(Kmax) < K.unsqueeze(1)                 # (D, Kmax)
        self.mask = self._mask_cpu.to(self.device)

        if utility not in UTILITIES:
            raise ValueError(f"utility must be one of {', '.join(UTILITIES)}, got {utility!r}")
        self.utility = utility
        if (epsilons is None) == (budgets is None):
            raise ValueError("give exactly one of epsilons (fixed coefficients) and budgets (cost targets)")
        if budgets is not None:
            self.budgets: list[float | None] | None = _check_budgets(budgets)
            eps_list = [0.0] * len(self.budgets)
            if not (isinstance(budget_lr, (int, float)) and not isinstance(budget_lr, bool)
                    and math.isfinite(budget_lr) and budget_lr > 0):
                raise ValueError(f"budget_lr must be a positive finite number, got {budget_lr!r}")
        else:
            self.budgets = None
            eps_list = _check_epsilons(epsilons)
        self.budget_lr = float(budget_lr)
        self._epsilons = eps_list
        N = len(eps_list)
        if isinstance(lam, bool) or not isinstance(lam, int) or lam < 2:
            raise ValueError(f"lam must be an integer >= 2 (samples per iteration), got {lam!r}")
        self.lam = lam
        self.importance_sampling = bool(importance_sampling)

        if lr is None:
            lr = 1.0 / float(K.sum())                                         # the paper's eta
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a positive finite number or None, got {lr!r}")
        self.lr = float(lr)

        self.costs = _check_costs(costs, D, Kmax, self._mask_cpu).to(**dev)
        tmin = _theta_min_table(self.num_choices, theta_min)                  # (D,) per decision
        self.theta_min = tmin                                                  # list[float]
        tmin_t = torch.tensor(tmin, dtype=torch.float64).unsqueeze(1) * self._mask_cpu
        self._tmin = tmin_t.to(**dev)                                          # (D, Kmax), 0 if masked
        self._tmin_sum = self._tmin.sum(-1, keepdim=True)                      # K_d theta_min_d
        self._free_mass = 1.0 - self._tmin_sum
        # |step| <= eta (2 N + 2 eps max|c|): only astronomical costs can overflow, so only then pay
        # for the finiteness check in _restrict.
        eps_max = EPS_CAP if self.budgets is not None else max(eps_list)
        self._guard_overflow = eps_max * float(self.costs.abs().max()) * self.lr > 1e300
        if self.budgets is not None:
            if budgets is not None and costs is None:
                raise ValueError("budgets need a cost table: pass costs=(D, Kmax) tensor")
            inf = torch.tensor(math.inf, dtype=torch.float64)
            cheapest = float(torch.where(self._mask_cpu, self.costs, inf).min(-1).values.sum())
            dearest = float(torch.where(self._mask_cpu, self.costs, -inf).max(-1).values.sum())
            low = [b for b in self.budgets if b is not None and b < cheapest - 1e-9 * max(abs(cheapest), 1.0)]
            if low:
                raise ValueError(f"budgets {low} are below the cheapest architecture's cost {cheapest:.6g}; "
                                 f"raise them")
            self.cost_range = (cheapest, dearest)
            self._cost_span = max(dearest - cheapest, 1e-12)
            self._has_budget = torch.tensor([b is not None for b in self.budgets], device=self.device)
            self._budget_t = torch.tensor([b if b is not None else 0.0 for b in self.budgets], **dev)
            self._costs_n = self.costs.expand(len(self.budgets), D, Kmax)

        # Constants of ask/tell, built once so a call allocates only what it must.
        self._eps = torch.tensor(eps_list, **dev)                                # (N,), adapted with budgets
        self._neg_lr_eps = -self.lr * self._eps.view(N, 1, 1)
        self._d_offsets = (torch.arange(D) * Kmax).to(self.device)              # row starts of d
        # Method 2: sample s belongs to distribution s // lam; offsets into a flat (N * D * Kmax)
        self._group_offsets = (torch.arange(N).repeat_interleave(lam * D) * (D * Kmax)).to(self.device)
        self._kminus1_cpu = K - 1
        self._kminus1 = self._kminus1_cpu.to(self.device)
        self._tiny = torch.finfo(dtype).tiny
        self._group_cpu = torch.arange(N).repeat_interleave(lam)               # Method 2 rows
        self._ones = torch.ones(N, lam, **dev)
        # On an accelerator, tell() never reads a value back (no host sync): the tie check is skipped
        # (the tie-aware formula is exact either way), losses are checked on the device and ask()'s own
        # samples are trusted, as they are valid by construction. On the CPU a read-back costs nothing.
        self._host_checks = (self.device.type == "cpu") if sync_free is None else not sync_free
        self._last_ask: torch.Tensor | None = None
        self._nonfinite = torch.zeros((), dtype=torch.long, device=self.device)
        self._generator = torch.Generator(device="cpu")
        self._generator.manual_seed(int(seed))
        self.seed = int(seed)
        self.step = 0                                                          # number of tell()s

        uniform = self._mask_cpu.to(torch.float64) / K.unsqueeze(1)
        if init_theta is None:
            theta = uniform.expand(N, D, Kmax).clone()
        else:
            theta = _check_init_theta(init_theta, N, D, Kmax, self._mask_cpu)
        self._theta = self._restrict(theta.to(**dev), theta.to(**dev))

    # ---------------------------------------------------------------- properties
    @property
    def num_distributions(self) -> int:
        """N, the number of epsilons or budgets (and of architectures :meth:`best` returns)."""
        return len(self._epsilons)

    @property
    def epsilons(self) -> list[float]:
        """The regularisation coefficient of each distribution: fixed, or (with budgets) the current
        adapted value (reading it syncs with the device)."""
        if self.budgets is None:
            return list(self._epsilons)
        return self._eps.tolist()

    def budget_cost(self) -> torch.Tensor:
        """``(N,)``: ``R(argmax_M P_theta^(n)(M))``, the cost of each member's most probable architecture,
        the quantity budgets steer (the derived architecture is that one, or the most probable one
        within the budget when it is over)."""
        return self._costs_n.gather(2, self._theta.argmax(-1, keepdim=True)).sum((-1, -2))

    @property
    def theta(self) -> torch.Tensor:
        """``(N, D, Kmax)``: row (n, d) is the categorical distribution of decision d under epsilon_n."""
        return self._theta

    @property
    def rows_per_ask(self) -> int:
        """Rows :meth:`ask` returns: ``lam``, or ``N * lam`` without importance sampling."""
        return self.lam if self.importance_sampling else self.lam * self.num_distributions

    def max_prob(self) -> torch.Tensor:
        """``(N, D)``: the largest probability of each decision, ``max_k theta_{d,k}^(n)``."""
        return self._theta.max(-1).values

    @property
    def converged(self) -> bool:
        """True when every decision of every distribution is within 0.01 of the most concentrated
        state the range restriction allows (``max_k theta_{d,k} >= 1 - (K_d - 1) theta_min_d - 0.01``)."""
        limit = 1.0 - (torch.tensor(self.num_choices, dtype=self.dtype) - 1) * torch.tensor(
            self.theta_min, dtype=self.dtype) - 0.01
        return bool((self.max_prob().cpu() >= limit).all())

    def expected_cost(self) -> torch.Tensor:
        """``(N,)``: ``E_{P_theta^(n)}[R(M)] = sum_d Q_d`` (eq. 6) for each distribution."""
        return (self._theta * self.costs).sum((-1, -2))

    def best(self, within_budget: bool = True) -> torch.Tensor:
        """``(N, D)``: ``argmax_M P_theta^(n)(M)`` for each n, i.e. the most likely choice per decision.

        With budgets (and ``within_budget``, the default), a member whose most probable architecture
        costs more than its budget gets the most probable architecture within it instead: an exact
        multiple-choice knapsack on ``log theta`` (:func:`automl.search.best_within_budget`)."""
        arg = self._theta.argmax(-1)
        if not within_budget or self.budgets is None:
            return arg
        from ._knapsack import BUDGET_RTOL, best_within_budget

        out = arg.cpu().clone()
        costs = self.costs.cpu()
        theta = self._theta.cpu()
        for n, b in enumerate(self.budgets):
            if b is None:
                continue
            cost = float(costs.gather(1, out[n].view(-1, 1)).sum())
            if cost > b + BUDGET_RTOL * max(abs(b), 1.0):
                logp = theta[n].clamp_min(self._tiny).log()
                out[n] = best_within_budget(logp, costs, b, self._mask_cpu)
        return out.to(arg.device)

    # ---------------------------------------------------------------- ask / tell
    def sample_uniform(self, n: int) -> torch.Tensor:
        """``(n, D)`` architectures drawn uniformly (the weight-training phase), from the engine's RNG."""
        u = torch.rand(n, len(self.num_choices), generator=self._generator, dtype=torch.float64)
        k = torch.tensor(self.num_choices, dtype=torch.float64)
        return (u * k).long().minimum(torch.tensor(self.num_choices) - 1).to(self.device)

    def ask(self) -> torch.Tensor:
        """Sample architectures: ``(lam, D)`` from the mixture ``(1/N) sum_n P_theta^(n)``, or without
        importance sampling ``(N * lam, D)``, rows ``n*lam .. (n+1)*lam - 1`` from ``P_theta^(n)``."""
        D = len(self.num_choices)
        if self.importance_sampling:
            # A mixture sample: pick a component uniformly, then sample it.
            comp = torch.randint(self.num_distributions, (self.lam,), generator=self._generator)
        else:
            comp = self._group_cpu
        u = torch.rand(comp.shape[0], D, 1, generator=self._generator, dtype=self.dtype)
        if self.device.type != "cpu":  # non_blocking: a blocking host-to-device copy waits for the stream
            comp, u = comp.to(self.device, non_blocking=True), u.to(self.device, non_blocking=True)
        # Inverse-CDF sampling of every decision at once: k = #{j : cumsum_j <= u} (searchsorted with
        # right=True); the clamp keeps k < K_d when rounding leaves the cumulative sum a hair below u.
        cum = self._theta.cumsum(-1)[comp]
        out = torch.searchsorted(cum, u, right=True).squeeze(-1).minimum(self._kminus1)
        self._last_ask = out
        return out

    def tell(self, arch: torch.Tensor, losses: Any) -> None:
        """Apply one update of every distribution (eq. 10) from the losses of ``arch``.

        ``theta_d^(n) <- theta_d^(n) - eta [ (1/lam) sum_i s_i^(n) r_i^(n) (m_d^(i) - theta_d^(n))
        + epsilon_n (c_d - Q_d 1) * theta_d^(n) ]``, ``Q_d = sum_k c_{d,k} theta_{d,k}``, with
        ``r_i^(n) = P_theta^(n)(M_i) / ((1/N) sum_m P_theta^(m)(M_i))`` (computed in log space, so
        D = 40 or more never underflows) and ``s_i^(n)`` from :func:`quantile_utilities` (eq. 9).
        Then the range restriction (see ``theta_min``). Without importance sampling r = 1 and
        distribution n sees only its own ``lam`` rows (eq. 7 per distribution).

        NaN and +-inf losses rank worst (tied with each other) and are counted in
        :attr:`nonfinite_losses`; on the CPU a warning is issued at once. On a GPU nothing in here waits
        for the device (read :attr:`nonfinite_losses` when you log).
        """
        N, lam = self.num_distributions, self.lam
        D, Kmax = self._theta.shape[1:]
        arch = self._check_arch(arch)
        S = arch.shape[0]
        losses = self._check_losses(losses, S)
        theta = self._theta

        # Position of theta_{d, k_i(d)} in a flattened (D * Kmax) row, for every sample i and d. The
        # sums over samples below are gathers and index_adds rather than matmuls with one-hot
        # vectors: these products are tiny, and BLAS may hand them to threads, which costs
        # milliseconds on a busy machine.
        flat = (arch + self._d_offsets).view(-1)                              # (S * D,)
        if self.importance_sampling:
            # log P_theta^(n)(M_i) = sum_d log theta_{d, k_i(d)}; the clamp keeps the log finite
            # where theta_min = 0 let theta reach 0.
            log_theta = theta.clamp_min(self._tiny).log().view(N, D * Kmax)
            logp = log_theta.index_select(1, flat).view(N, S, D).sum(-1)      # (N, S)
            # r = P_n / ((1/N) sum_m P_m), shifted by each sample's largest log-probability so
            # nothing underflows (a hand-rolled logsumexp: logp is finite, so torch's inf checks,
            # which triple the cost here, are not needed).
            ratios = torch.exp(logp - logp.amax(0))
            ratios = ratios.div_(ratios.mean(0))
            grouped_losses = losses.view(1, S)
        else:
            ratios = self._ones
            grouped_losses = losses.view(N, lam)

        if self.utility == "paper":
            # s_i r_i, with eta / lam folded in so the update below is a handful of fused ops.
            u = quantile_utilities(grouped_losses, ratios, lam, check_ties=self._host_checks)
            u = u.mul_(ratios).mul_(self.lr / lam)
        else:
            # s_i w_i with self-normalised w_i = r_i / sum_k r_k (w_i = 1/lam when N = 1: eq. 7)
            weights = ratios / ratios.sum(-1, keepdim=True)
            u = weighted_quantile_utilities(grouped_losses, weights, lam)
            u = u.mul_(weights).mul_(self.lr)
        # eta/lam sum_i u_i (m^(i) - theta) = eta/lam (sum_i u_i m^(i)) - eta/lam (sum_i u_i) theta;
        # sum_i u_i m^(i) adds u_i at position (d, k_i(d)) of every decision.
        u_rep = u.unsqueeze(-1).expand(N, u.shape[1], D)
        if self.importance_sampling:
            sum_um = theta.new_zeros(N, D * Kmax).index_add_(1, flat, u_rep.reshape(N, S * D))
        else:
            # distribution n adds only its own rows: offset the positions by n * D * Kmax
            sum_um = theta.new_zeros(N * D * Kmax).index_add_(0, flat + self._group_offsets,
                                                              u_rep.reshape(-1))
        sum_um = sum_um.view(N, D, Kmax)
        Q = (self.costs * theta).sum(-1, keepdim=True)                      # Q_d = sum_k c_dk theta_dk
        # theta - eta eps (c - Q) theta + eta/lam (sum u) theta - eta/lam sum u m, factored on theta;
        # (c - Q) * theta is the natural gradient of E[R] (eq. 7).
        coef = (self.costs - Q).mul_(self._neg_lr_eps).add_(u.sum(-1).view(N, 1, 1) + 1.0)
        new = theta.mul(coef).sub_(sum_um)
        self._theta = self._restrict(new, theta)
        if self.budgets is not None:
            self._dual_step()
        self.step += 1

    def _dual_step(self) -> None:
        """Projected dual ascent on ``R(mode) - B`` (normalised by the cost range) for budgeted members."""
        gap = (self.budget_cost() - self._budget_t) / self._cost_span
        eps = (self._eps + self.budget_lr * gap).clamp_(0.0, EPS_CAP)
        self._eps = torch.where(self._has_budget, eps, torch.zeros_like(eps))
        self._neg_lr_eps = -self.lr * self._eps.view(-1, 1, 1)

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and Python values (``torch.load(weights_only=True)`` can read it back)."""
        return {
            "version": _STATE_VERSION,
            "kind": "MultiEpsilonSearch",
            "num_choices": list(self.num_choices),
            "epsilons": list(self._epsilons),
            "eps": self._eps.detach().cpu().clone(),
            "utility": self.utility,
            "budgets": None if self.budgets is None else list(self.budgets),
            "budget_lr": self.budget_lr,
            "lam": self.lam,
            "lr": self.lr,
            "theta_min": list(self.theta_min),
            "importance_sampling": self.importance_sampling,
            "costs": self.costs.detach().cpu().clone(),
            "theta": self._theta.detach().cpu().clone(),
            "generator": self._generator.get_state(),
            "step": self.step,
            "seed": self.seed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore theta, the RNG and the step count; the configuration must match this engine's."""
        if state.get("kind") != "MultiEpsilonSearch" or state.get("version") not in (1, _STATE_VERSION):
            raise ValueError(f"not a MultiEpsilonSearch state (version {_STATE_VERSION}): "
                             f"kind={state.get('kind')!r}, version={state.get('version')!r}")
        if state["version"] == 1:  # before utilities and budgets: eq. 9 with fixed epsilons
            state = dict(state, utility="paper", budgets=None, budget_lr=self.budget_lr,
                         eps=torch.tensor(state["epsilons"], dtype=torch.float64))
        keys = ("num_choices", "lam", "lr", "theta_min", "importance_sampling", "utility", "budgets")
        keys += ("epsilons",) if self.budgets is None else ("budget_lr",)
        for key in keys:
            mine = self._epsilons if key == "epsilons" else getattr(self, key)
            theirs = state[key]
            if (list(mine) if isinstance(mine, (list, tuple)) else mine) != theirs:
                raise ValueError(f"state was saved with {key}={theirs!r} but this engine has "
                                 f"{key}={mine!r}; build the engine with the same settings")
        if not torch.equal(state["costs"].to(torch.float64), self.costs.cpu().to(torch.float64)):
            raise ValueError("state was saved with a different cost table; build the engine with the same costs")
        theta = state["theta"]
        if tuple(theta.shape) != tuple(self._theta.shape):
            raise ValueError(f"state theta has shape {tuple(theta.shape)}, expected {tuple(self._theta.shape)}")
        self._theta = theta.to(dtype=self.dtype, device=self.device).clone()
        self._eps = state["eps"].to(dtype=self.dtype, device=self.device).clone()
        self._neg_lr_eps = -self.lr * self._eps.view(-1, 1, 1)
        self._generator.set_state(state["generator"])
        self.step = int(state["step"])
        self.seed = int(state.get("seed", self.seed))

    # ---------------------------------------------------------------- internals
    def _restrict(self, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        """Range restriction of ASNG-NAS: ``theta >= theta_min``, rows summing to 1.

        Entries are lifted to theta_min, then the excess mass ``sum - 1`` is taken from the part
        above theta_min in proportion to it, which keeps every entry >= theta_min (a plain
        renormalisation could push lifted entries back below it).
        With theta_min = 0 this is clamp-at-0-and-renormalise. A decision whose step overflowed to a
        non-finite value (astronomical costs) keeps its previous distribution.
        """
        if self._guard_overflow:
            new = torch.where(torch.isfinite(new).all(-1, keepdim=True), new, old)
        new = torch.maximum(new, self._tmin)
        # theta_min + (theta - theta_min) (1 - sum theta_min) / (sum theta - sum theta_min): sums to 1.
        factor = self._free_mass / (new.sum(-1, keepdim=True) - self._tmin_sum)
        return torch.addcmul(self._tmin, new - self._tmin, factor)

    @property
    def sync_free(self) -> bool:
        """Whether :meth:`tell` avoids every read-back from the device (see the constructor)."""
        return not self._host_checks

    @property
    def nonfinite_losses(self) -> int:
        """How many losses told so far were NaN or inf (they ranked worst). Reading it syncs."""
        return int(self._nonfinite)

    def _check_arch(self, arch) -> torch.Tensor:
        trusted = arch is self._last_ask  # ask()'s own output: in range by construction
        arch = torch.as_tensor(arch)
        rows = self.rows_per_ask
        if arch.dim() != 2 or arch.shape != (rows, len(self.num_choices)):
            raise ValueError(f"arch must have shape ({rows}, {len(self.num_choices)}) "
                             f"(rows returned by ask()), got {tuple(arch.shape)}")
        if arch.dtype != torch.long:
            arch = arch.long()
        # Checked where it is: on the host for free; on the device only if it did not come from ask().
        on_host = arch.device.type == "cpu"
        if on_host or self._host_checks or not trusted:
            kmax = self._kminus1_cpu if on_host else self._kminus1.to(arch.device)
            if bool(((arch < 0) | (arch > kmax)).any()):
                raise ValueError(f"arch has a choice index outside 0..K_d-1 (K = {self.num_choices})")
        return arch.to(self.device, non_blocking=True)

    def _check_losses(self, losses, rows: int) -> torch.Tensor:
        losses = torch.as_tensor(losses, dtype=self.dtype, device=self.device).detach().reshape(-1)
        if losses.shape[0] != rows:
            raise ValueError(f"expected {rows} losses (one per row of arch), got {losses.shape[0]}")
        # On the host, one reduction on the common path: a finite sum means every loss is finite (an
        # overflowing sum of finite losses only sends us to the exact check below).
        if self._host_checks and math.isfinite(float(losses.sum())):
            return losses
        finite = torch.isfinite(losses)
        if self._host_checks:
            bad = int((~finite).sum())
            if not bad:
                return losses
            warnings.warn(f"{bad} of {rows} losses are NaN or inf; they rank worst in this update",
                          RuntimeWarning, stacklevel=3)
        # counted and replaced on the device: sync_free never reads this back
        self._nonfinite += rows - finite.sum()
        return torch.where(finite, losses, torch.full_like(losses, math.inf))


# -------------------------------------------------------------------- validation helpers
def _check_num_choices(num_choices) -> list[int]:
    try:
        out = [int(k) for k in num_choices]
    except (TypeError, ValueError):
        raise ValueError(f"num_choices must be a list of positive integers, got {num_choices!r}") from None
    if not out:
        raise ValueError("num_choices is empty: the space needs at least one decision")
    if any(k < 1 or k != kk for k, kk in zip(out, num_choices)):
        raise ValueError(f"every K_d in num_choices must be an integer >= 1, got {list(num_choices)!r}")
    return out


def _check_epsilons(epsilons) -> list[float]:
    try:
        out = [float(e) for e in epsilons]
    except (TypeError, ValueError):
        raise ValueError(f"epsilons must be a list of numbers, got {epsilons!r}") from None
    if not out:
        raise ValueError("epsilons is empty: give at least one regularisation coefficient")
    bad = [e for e in out if not math.isfinite(e) or e < 0]
    if bad:
        raise ValueError(f"epsilons must be finite and >= 0, got {bad}")
    return out


def _check_budgets(budgets) -> list[float | None]:
    if isinstance(budgets, (str, bytes)) or not hasattr(budgets, "__iter__"):
        raise ValueError(f"budgets must be a list of numbers or None, got {budgets!r}")
    out: list[float | None] = []
    for b in budgets:
        if b is None:
            out.append(None)
            continue
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b) or b < 0:
            raise ValueError(f"every budget must be None (unconstrained) or a finite number >= 0, got {b!r}")
        out.append(float(b))
    if not out:
        raise ValueError("budgets is empty: give at least one budget (None for unconstrained)")
    return out


def _check_costs(costs, D: int, Kmax: int, mask: torch.Tensor) -> torch.Tensor:
    if costs is None:
        return torch.zeros(D, Kmax, dtype=torch.float64)
    costs = torch.as_tensor(costs).detach().to("cpu", torch.float64)
    if tuple(costs.shape) != (D, Kmax):
        raise ValueError(f"costs must have shape (D, Kmax) = ({D}, {Kmax}) to match num_choices, "
                         f"got {tuple(costs.shape)}")
    if not bool(torch.isfinite(costs[mask]).all()):
        raise ValueError("costs contain NaN or inf for existing choices; give finite costs")
    # Entries beyond K_d never matter (theta is 0 there); zero them so NaN padding cannot leak in.
    return torch.where(mask, costs, torch.zeros(()))


def _theta_min_table(num_choices: list[int], theta_min) -> list[float]:
    valid_d = sum(k > 1 for k in num_choices)
    out = []
    for k in num_choices:
        if k == 1:
            out.append(0.0)                                   # a fixed decision: theta = 1
        elif theta_min is None:
            t = 1.0 / (valid_d * (k - 1))                     # ASNG-NAS
            out.append(t if k * t < 1 else 1.0 / (2 * k))
        else:
            out.append(float(theta_min))
    if theta_min is not None:
        t = float(theta_min) if isinstance(theta_min, (int, float)) else math.nan
        kmax = max(num_choices)
        if not (math.isfinite(t) and 0 <= t and (kmax == 1 or t * kmax < 1)):
            raise ValueError(f"theta_min must be None or a number in [0, 1/Kmax) = [0, {1 / kmax:.4g}), "
                             f"got {theta_min!r}")
    return out


def _check_init_theta(init_theta, N: int, D: int, Kmax: int, mask: torch.Tensor) -> torch.Tensor:
    theta = torch.as_tensor(init_theta).detach().to("cpu", torch.float64)
    if tuple(theta.shape) == (D, Kmax):
        theta = theta.expand(N, D, Kmax)
    if tuple(theta.shape) != (N, D, Kmax):
        raise ValueError(f"init_theta must have shape (N, D, Kmax) = ({N}, {D}, {Kmax}) or (D, Kmax), "
                         f"got {tuple(theta.shape)}")
    if not bool(torch.isfinite(theta).all()) or bool((theta < 0).any()):
        raise ValueError("init_theta must be finite and non-negative")
    if bool((theta.masked_select(~mask.expand(N, D, Kmax)) != 0).any()):
        raise ValueError("init_theta must be 0 beyond K_d (for choices that do not exist)")
    sums = theta.sum(-1)
    if not bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-6)):
        raise ValueError("every row of init_theta must sum to 1 over the first K_d entries")
    return theta.clone()
