"""The search engine: N categorical distributions, one per epsilon, updated together (eq. 9-10).

Notation follows the paper (§2-3): D decisions, decision d has K_d choices, theta^(n) (D, Kmax) is the
n-th categorical distribution (padded with zeros beyond K_d), c (D, Kmax) the cost table, lam the
number of architectures per iteration, eta the learning rate.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import torch

from ._base import Searcher
from ._budgets import EPS_CAP, BudgetTargets
from ._checks import (MOST_NUMBERS, check_budgets, check_count, check_device, check_epsilons, check_fits,
                      check_lam, check_num_choices, check_positive, check_seed, check_state, checked_generator,
                      start_theta)
from ._context import check_cost_model, cost_bound, cost_state, costs_finite, expected_total, step_costs
from ._inputs import TellInputs
from ._restriction import RangeRestriction
from ._update import importance_ratios, natural_gradient_step, update_coefficients
from ._utilities import UTILITIES, quantile_utilities, weighted_quantile_utilities

__all__ = ["MultiEpsilonSearch", "quantile_utilities", "weighted_quantile_utilities", "UTILITIES", "EPS_CAP"]

_STATE_VERSION = 2


def _check_dtype(dtype) -> torch.dtype:
    """theta's dtype: float32 or float64 (half precision overflows the budgets' epsilon cap and its tiny
    clamps log theta near theta_min)."""
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


def _whole_state(state, config: dict, budget_lr: float, costs, dtype: torch.dtype) -> dict:
    """``state`` as a dict of the current format: a version-1 state (eq. 9, fixed epsilons) gets the keys it
    predates; a state that is not a dict, lacks a key, or was saved in another dtype than ``dtype`` (with the
    ``costs``: :func:`_check_state_dtype`) is refused naming what is wrong."""
    if not isinstance(state, dict):
        raise ValueError(f"state must be the dict that state_dict() returns, got {type(state).__name__}")
    if state.get("kind") != "MultiEpsilonSearch" or state.get("version") not in (1, _STATE_VERSION):
        return state  # check_state says what it is
    if state.get("version") == 1:
        state = dict(state, utility="paper", budgets=None, budget_lr=budget_lr,
                     eps=torch.tensor(state.get("epsilons", []), dtype=torch.float64))
    missing = [k for k in (*config, "costs", "theta", "eps", "generator", "step") if k not in state]
    if missing:
        raise ValueError(f"the MultiEpsilonSearch state lacks {', '.join(missing)}: it is not a whole state_dict()")
    _check_state_dtype(state, costs, dtype)
    return state


def _check_state_dtype(state: dict, costs, dtype: torch.dtype) -> None:
    """Refuse, naming the dtype, an engine state saved in another dtype than ``dtype`` whose cost table is this
    engine's ``costs`` but for rounding (a state holds the costs in its engine's dtype, and the cost check alone
    would call them a different table). Other states pass: the checks after this one say what is wrong."""
    if state.get("kind") != "MultiEpsilonSearch":
        return
    saved = state.get("costs")
    if isinstance(costs, torch.Tensor):
        pairs = [(saved, costs)]
    else:  # a ContextCosts: its saved tables and fixed part
        saved = saved if isinstance(saved, dict) else {}
        pairs = [(saved.get("tables"), costs.tables), (saved.get("fixed"), costs.fixed)]
    if not all(isinstance(s, torch.Tensor) and s.shape == c.shape for s, c in pairs):
        return
    other = pairs[0][0].dtype
    if other == dtype or other not in (torch.float32, torch.float64):
        return
    if all(torch.equal(s.cpu().to(torch.float32), c.cpu().to(torch.float32)) for s, c in pairs):
        raise ValueError(f"state was saved by an engine of dtype={other} but this engine has dtype={dtype}; "
                         f"build the engine with dtype={other}")


def _check_flag(name: str, value, none_ok: bool = False) -> bool | None:
    """A True/False argument (NumPy's bools, 0 and 1 too; ``None`` where ``none_ok``), as a bool."""
    if value is None and none_ok:
        return None
    if isinstance(value, (str, bytes)) or value not in (True, False):
        raise ValueError(f"{name} must be True or False{' or None' if none_ok else ''}, got {value!r}")
    return bool(value)


def _within_dtype(dtype: torch.dtype, lr: float, epsilons: list[float]) -> float:
    """``lr``, once it and every epsilon are below ``dtype``'s largest number (in float32 1e300 is inf, and a
    member whose step is inf keeps its distribution at every step)."""
    big = torch.finfo(dtype).max
    if lr >= big:
        raise ValueError(f"lr {lr:g} is beyond {dtype}'s largest number {big:.3g}; use dtype=torch.float64")
    if any(e >= big for e in epsilons):
        raise ValueError(f"epsilons {[e for e in epsilons if e >= big]} are beyond {dtype}'s largest number "
                         f"{big:.3g}; use dtype=torch.float64")
    return lr


def _check_lam(lam, N: int) -> int:
    """``lam`` (>= 2) as an int, refused where tell()'s ``(N, lam, lam)`` tables (it ranks every pair of a
    distribution's samples) could not be held."""
    lam = check_lam(lam, 2, " (samples per iteration)")
    check_fits("lam", lam, N * lam ** 2, f"tell()'s (N, lam, lam) tables (N = {N} distributions)",
               math.isqrt(MOST_NUMBERS // N))
    return lam


def _distinct_members(epsilons: list[float], budgets: list | None, theta: torch.Tensor,
                      importance_sampling: bool) -> None:
    """Refuse two members of one epsilon (or budget) that start from one theta: with importance sampling they see
    the same samples with the same ratios, so their distributions stay equal at every step (the same network twice,
    and that member's share of the mixture's samples doubled). As the recipe's search.epsilons does; without
    importance sampling, or from different starts, they are independent searches and are taken."""
    if not importance_sampling:
        return
    key, values = ("epsilons", epsilons) if budgets is None else ("budgets", budgets)
    for i, v in enumerate(values):
        j = next((j for j in range(i) if values[j] == v and torch.equal(theta[i], theta[j])), None)
        if j is not None:
            shown = "None" if v is None else repr(v)
            raise ValueError(f"{key}: item {i + 1} ({shown}) is given twice (item {j + 1}): the two members would "
                             f"search for the same network (with importance sampling, from one start, their "
                             f"distributions stay equal at every step); remove one (independent repeats: "
                             f"importance_sampling=False)")


def _int_entry(state: dict, key: str, default=None) -> int:
    """``state[key]`` (``default`` where it is absent) as an int >= 0."""
    value = state.get(key, default)
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_floating_point():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (value < 0 and key != "seed"):
        raise ValueError(f"state['{key}'] must be an integer{'' if key == 'seed' else ' >= 0'}, got {value!r}")
    return int(value)


def _state_values(state: dict, mask: torch.Tensor, epsilons: list[float], budgets) -> tuple:
    """``(theta, eps, generator, step, seed, nonfinite)`` of a state that :func:`check_state` accepted, each checked
    (theta: finite rows on the simplex of the ``mask``'s choices; eps: ``(N,)`` finite, >= 0; the generator a CPU
    state ``torch.Generator`` takes), so that a corrupt state is refused before anything is loaded. With fixed
    epsilons, eps is the engine's own (a state saved in float32 holds them rounded)."""
    theta, eps, N = state["theta"], state["eps"], len(epsilons)
    shape = (N, *mask.shape)
    if not isinstance(theta, torch.Tensor) or tuple(theta.shape) != shape or not theta.is_floating_point():
        raise ValueError(f"state['theta'] must be a float tensor of shape {shape}, got "
                         f"{tuple(theta.shape) if isinstance(theta, torch.Tensor) else type(theta).__name__}")
    t = theta.detach().to("cpu", torch.float64)
    if not (bool(torch.isfinite(t).all()) and bool((t >= 0).all()) and not bool(t[:, ~mask].any())
            and bool(((t.sum(-1) - 1).abs() <= 1e-6).all())):
        raise ValueError("state['theta'] is not a distribution: every row must be finite, >= 0, 0 beyond K_d and "
                         "sum to 1; the state is corrupt")
    if not isinstance(eps, torch.Tensor) or tuple(eps.shape) != (N,) or not eps.is_floating_point() \
            or not bool((torch.isfinite(eps) & (eps >= 0) & (eps <= EPS_CAP if budgets else True)).all()):
        raise ValueError(f"state['eps'] must be {N} finite epsilons >= 0, got {eps!r}")
    generator = checked_generator(state)
    eps = eps if budgets else torch.tensor(epsilons, dtype=torch.float64)
    return (theta, eps, generator, _int_entry(state, "step"), _int_entry(state, "seed", 0),
            _int_entry(state, "nonfinite", 0))


def _uniform_shape(n, D: int) -> tuple[int, int]:
    """``(n, D)``, the shape of :meth:`MultiEpsilonSearch.sample_uniform`'s draw: ``n`` an integer >= 0 whose draw
    fits (one beyond int64 was torch's 'Overflow when unpacking long long', naming no argument)."""
    n = check_count("n", n)
    check_fits("n", n, n * D, f"sample_uniform's (n, D) draw (D = {D} decisions)", MOST_NUMBERS // D)
    return n, D


def _inverse_cdf(cum: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``k = #{j : cum_j <= u}`` per row (searchsorted with right=True): the choice a uniform draw ``u`` picks from
    cumulative probabilities ``cum``; a choice of θ 0 is never drawn (its cumsum equals the one before it). Where
    rounding leaves a row's sum a hair below ``u``, ``u`` is taken just below the sum: ``k`` is then the last choice
    of θ > 0, never a padded column or a K_d - 1 of θ 0."""
    u = torch.minimum(u, torch.nextafter(cum[..., -1:], cum.new_zeros(())))
    return torch.searchsorted(cum, u, right=True).squeeze(-1)


class MultiEpsilonSearch(Searcher):
    """Importance-sampled multi-epsilon ASNG: N architectures of different complexity from one search.

    Keeps one categorical distribution ``P_theta^(n)`` per regularisation coefficient ``epsilon_n``.
    :meth:`ask` samples ``lam`` architectures from the mixture ``(1/N) sum_n P_theta^(n)``;
    :meth:`tell` updates every distribution from all of them with importance weights (eq. 9-10). With
    N = 1 this is eq. 7 (the likelihood ratio is identically 1). The engine sees only choice counts,
    costs and losses, so it can drive any black-box objective.

    Args:
        num_choices: ``[K_1, ..., K_D]``; ``K_d == 1`` marks a fixed decision (theta = 1).
        costs: ``(D, Kmax)`` cost table ``c_{d,k}`` as given (normalise it with :func:`normalize_costs`;
            entries beyond ``K_d`` ignored; ``None``: all zero), or a :class:`~automl.search.ContextCosts`
            (exact costs that depend on context decisions, elastic width: the ε term uses ``E[R | h_d=k]``).
        epsilons: ``[epsilon_1, ..., epsilon_N]``, non-negative.
        lam: ``lam >= 2`` architectures per iteration (per distribution when
            ``importance_sampling=False``).
        lr: eta; ``None`` gives the paper's ``1 / sum_d K_d``.
        theta_min: lower bound on every ``theta_{d,k}`` after each update. ``None`` gives ASNG-NAS's
            range restriction ``1 / (D_valid (K_d - 1))`` (``D_valid`` = decisions with ``K_d > 1``;
            ``1 / (2 K_d)`` where that is infeasible). ``0`` disables it (theta stays on the simplex).
        init_theta: optional ``(N, D, Kmax)`` or ``(D, Kmax)`` start (default uniform): rows must be distributions
            over the ``K_d`` choices (finite, >= 0, 0 beyond ``K_d``, each summing to 1 within about 1e-5), else it
            is refused (a ``ValueError`` naming the row); then it is range-restricted like any update.
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
            every :meth:`tell` by a projected dual step,
            ``eps <- clip(eps + budget_lr (R(mode) - B) / (R_max - R_min), 0, 1e6)``, ``R(mode)`` =
            :meth:`budget_cost` (see ``automl.search._budgets``); :attr:`epsilons` shows the current
            values, :meth:`best` derives the most probable architecture within each budget.
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
        self.num_choices = check_num_choices(num_choices)
        self.device = check_device(device)
        self.dtype = _check_dtype(dtype)
        K = torch.tensor(self.num_choices)
        self._mask_cpu = torch.arange(max(self.num_choices)) < K.unsqueeze(1)  # (D, Kmax)
        self.mask = self._mask_cpu.to(self.device)
        if utility not in UTILITIES:
            raise ValueError(f"utility must be one of {', '.join(UTILITIES)}, got {utility!r}")
        self.utility = utility
        if (epsilons is None) == (budgets is None):
            raise ValueError("give exactly one of epsilons (fixed coefficients) and budgets (cost targets)")
        # With budgets every epsilon starts at 0 (validated with the cost table below); budgets read once (a generator)
        self._epsilons = check_epsilons(epsilons) if budgets is None else [0.0] * len(budgets := check_budgets(budgets))
        self.budget_lr = check_positive("budget_lr", budget_lr)  # used with budgets only, checked always
        self.lam = _check_lam(lam, len(self._epsilons))
        self.importance_sampling = _check_flag("importance_sampling", importance_sampling)
        # eta: the paper's 1 / sum_d K_d by default
        lr = check_positive("lr", 1.0 / float(K.sum()) if lr is None else lr, " or None")
        self.lr = _within_dtype(self.dtype, lr, self._epsilons)
        exact = check_cost_model(costs, len(K), max(self.num_choices), self._mask_cpu)   # float64, CPU
        self.costs = exact.to(dtype=dtype, device=self.device)
        if not costs_finite(self.costs):  # finite in float64, inf in float32: the epsilon term would be NaN
            raise ValueError(f"costs are beyond {dtype}'s largest number {torch.finfo(dtype).max:.3g}; normalise "
                             f"them (normalize_costs) or use dtype=torch.float64")
        self._targets: BudgetTargets | None = None
        self.budgets: list[float | None] | None = None
        if budgets is not None:
            if costs is None:
                raise ValueError("budgets need a cost table: pass costs=(D, Kmax) tensor")
            self._targets = BudgetTargets(budgets, budget_lr, self.costs, self._mask_cpu, exact)
            self.budgets, self.cost_range = self._targets.budgets, self._targets.cost_range
        self._build_constants(theta_min, _check_flag("sync_free", sync_free, none_ok=True))
        self.seed = check_seed(seed)
        self._generator = torch.Generator(device="cpu").manual_seed(self.seed)
        self.step = 0                                                          # number of tell()s
        theta = start_theta(init_theta, self.num_distributions, self._mask_cpu)
        _distinct_members(self._epsilons, self.budgets, theta, self.importance_sampling)
        theta = theta.to(dtype=dtype, device=self.device)
        self._theta = self._restrict(theta, theta)

    def _build_constants(self, theta_min: float | None, sync_free: bool | None) -> None:
        """The range restriction's tables and the constants of ask/tell, built once so that a call
        allocates only what it must."""
        dev = dict(dtype=self.dtype, device=self.device)
        N, lam = self.num_distributions, self.lam
        D, Kmax = self._mask_cpu.shape
        # |step| <= eta (2 N + 2 eps max|c|): only huge costs or learning rates can overflow or round away a
        # decision's mass, so only then does the range restriction pay for checking its rows.
        eps_max = EPS_CAP if self.budgets is not None else max(self._epsilons)
        self._restrict = RangeRestriction(self.num_choices, theta_min, self._mask_cpu, self.dtype, self.device,
                                          (2 * N + eps_max * cost_bound(self.costs)) * self.lr)
        self.theta_min = self._restrict.theta_min                               # list[float], per decision
        self._eps = torch.tensor(self._epsilons, **dev)                        # (N,), adapted with budgets
        self._neg_lr_eps = -self.lr * self._eps.view(N, 1, 1)
        self._d_offsets = (torch.arange(D) * Kmax).to(self.device)              # row starts of d
        # Method 2: sample s belongs to distribution s // lam; offsets into a flat (N * D * Kmax)
        self._group_offsets = (torch.arange(N).repeat_interleave(lam * D) * (D * Kmax)).to(self.device)
        self._tiny = torch.finfo(self.dtype).tiny
        self._group_cpu = torch.arange(N).repeat_interleave(lam)               # Method 2 rows
        self._ones = torch.ones(N, lam, **dev)
        # sync_free (the default on an accelerator): tell() reads nothing back; on the CPU that costs nothing.
        host_checks = (self.device.type == "cpu") if sync_free is None else not sync_free
        self._inputs = TellInputs(self.num_choices, self.device, self.dtype, host_checks)
        self._last_ask: torch.Tensor | None = None

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

    @property
    def sync_free(self) -> bool:
        """Whether :meth:`tell` avoids every read-back from the device (see the constructor)."""
        return not self._inputs.host_checks

    @property
    def nonfinite_losses(self) -> int:
        """How many losses told so far were NaN or inf (they ranked worst). Reading it syncs."""
        return self._inputs.nonfinite

    def budget_cost(self) -> torch.Tensor:
        """``(N,)``: ``R(argmax_M P_theta^(n)(M))``, the cost of each member's most probable architecture,
        the quantity budgets steer (the derived architecture is that one, or the most probable one
        within the budget when it is over). Only with budgets."""
        if self._targets is None:
            raise RuntimeError("budget_cost() needs an engine built with budgets (this one has epsilons)")
        return self._targets.mode_cost(self._theta)

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
        return self._restrict.converged(self.max_prob())

    def expected_cost(self) -> torch.Tensor:
        """``(N,)``: ``E_{P_theta^(n)}[R(M)]`` for each distribution (``sum_d Q_d``, eq. 6, for a table)."""
        return expected_total(self.costs, self._theta)

    def best(self, within_budget: bool = True) -> torch.Tensor:
        """``(N, D)``: ``argmax_M P_theta^(n)(M)`` for each n, i.e. the most likely choice per decision.

        With budgets (and ``within_budget``, the default), a member whose most probable architecture
        costs more than its budget gets the most probable architecture within it instead: an exact
        multiple-choice knapsack on ``log theta`` (:func:`automl.search.best_within_budget`)."""
        arg = self._theta.argmax(-1)
        if not _check_flag("within_budget", within_budget) or self._targets is None:
            return arg
        return self._targets.derive(self._theta, arg, self._tiny).to(arg.device)

    # ---------------------------------------------------------------- ask / tell
    def sample_uniform(self, n: int) -> torch.Tensor:
        """``(n, D)`` architectures drawn uniformly (the weight-training phase), from the engine's RNG."""
        u = torch.rand(_uniform_shape(n, len(self.num_choices)), generator=self._generator, dtype=torch.float64)
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
        # Inverse-CDF sampling of every decision at once (:func:`_inverse_cdf`)
        cum = self._theta.cumsum(-1)[comp]
        out = _inverse_cdf(cum, u)
        self._last_ask = out
        return out

    def tell(self, arch: torch.Tensor, losses: Any) -> None:
        """Apply one update of every distribution (eq. 10) from the losses of ``arch``.

        ``theta_d^(n) <- theta_d^(n) - eta [ sum_i a_i^(n) s_i^(n) (m_d^(i) - theta_d^(n)) + epsilon_n (c_d - Q_d 1)
        * theta_d^(n) ]``, ``Q_d = sum_k c_{d,k} theta_{d,k}``, ``r_i^(n) = P_theta^(n)(M_i) / ((1/N) sum_m
        P_theta^(m)(M_i))`` (in log space: D = 40 or more never underflows). ``utility="paper"`` (eq. 9, the
        default here): ``a_i = r_i / lam``, ``s_i`` from :func:`quantile_utilities`; ``utility="weighted_quantile"``
        (the pipeline's default): ``a_i = w_i = r_i / sum_k r_k``, ``s_i`` from :func:`weighted_quantile_utilities`.
        Then the range restriction (``theta_min``). Without importance sampling r = 1 and distribution n sees only
        its own ``lam`` rows (eq. 7 per distribution). NaN and +-inf losses rank worst (tied with each other) and
        are counted in :attr:`nonfinite_losses`; on the CPU a warning is issued at once. On a GPU nothing in here
        waits for the device (read :attr:`nonfinite_losses` when you log).
        """
        N, lam = self.num_distributions, self.lam
        arch = self._inputs.arch(arch, self.rows_per_ask, trusted=arch is self._last_ask)
        S = arch.shape[0]
        losses = self._inputs.losses(losses, S)
        theta = self._theta

        # Position of theta_{d, k_i(d)} in a flattened (D * Kmax) row, for every sample i and d. The sums over
        # samples below are gathers and, on the CPU, index_adds (elsewhere sums over one-hot rows, in a fixed
        # order: automl/search/_update.py choice_sums).
        flat = (arch + self._d_offsets).view(-1)                              # (S * D,)
        if self.importance_sampling:
            ratios, log_ratios = importance_ratios(theta, flat, S, self._tiny)
            grouped_losses = losses.view(1, S)
        else:
            ratios, log_ratios = self._ones, None
            grouped_losses = losses.view(N, lam)
        u = update_coefficients(self.utility, grouped_losses, ratios, lam, self.lr, self._inputs.host_checks,
                                log_ratios)
        new = natural_gradient_step(theta, u, flat, step_costs(self.costs, theta), self._neg_lr_eps,
                                    None if self.importance_sampling else self._group_offsets)
        self._theta = self._restrict(new, theta)
        if self._targets is not None:  # budgets: a projected dual step on epsilon
            self._eps = self._targets.dual_step(self._eps, self._theta)
            self._neg_lr_eps = -self.lr * self._eps.view(-1, 1, 1)
        self.step += 1

    # ---------------------------------------------------------------- state
    def _config(self) -> dict[str, Any]:
        """The settings a saved state must match (with budgets the epsilons adapt: budget_lr instead)."""
        config = {"num_choices": list(self.num_choices), "lam": self.lam, "lr": self.lr,
                  "theta_min": list(self.theta_min), "importance_sampling": self.importance_sampling,
                  "utility": self.utility, "budgets": None if self.budgets is None else list(self.budgets)}
        if self.budgets is None:
            return dict(config, epsilons=list(self._epsilons))
        return dict(config, budget_lr=self.budget_lr)

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and Python values (``torch.load(weights_only=True)`` can read it back)."""
        return {
            "version": _STATE_VERSION, "kind": "MultiEpsilonSearch", **self._config(),
            "epsilons": list(self._epsilons), "budget_lr": self.budget_lr,
            "eps": self._eps.detach().cpu().clone(),
            "costs": cost_state(self.costs),
            "theta": self._theta.detach().cpu().clone(),
            "generator": self._generator.get_state(),
            "step": self.step,
            "seed": self.seed,
            "nonfinite": self.nonfinite_losses,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore theta, the epsilons (adapted ones, with budgets), the RNG, the step count, the seed and the count
        of non-finite losses (:attr:`nonfinite_losses`); the configuration must match this engine's."""
        state = _whole_state(state, self._config(), self.budget_lr, self.costs, self.dtype)
        check_state(state, "MultiEpsilonSearch", (1, _STATE_VERSION), self._config(), self.costs, "engine")
        theta, eps, generator, self.step, seed, nonfinite = _state_values(state, self._mask_cpu, self._epsilons,
                                                                          self.budgets)
        self._theta = theta.to(dtype=self.dtype, device=self.device).clone()
        self._eps = eps.to(dtype=self.dtype, device=self.device).clone()
        self._neg_lr_eps = -self.lr * self._eps.view(-1, 1, 1)
        self._generator.set_state(generator)
        self.seed = seed if "seed" in state else self.seed
        self._inputs._nonfinite.fill_(nonfinite)
