"""Costs that depend on each other (elastic width): the engine's exact cost model with a *context*.

When a decision chooses a stage's width, the cost of the layers after it depends on that choice, so the
total is not ``sum_d c[d, k_d]``. The compiler's cost table then holds, for every combination ``a`` of the
*context decisions'* choices (row-major, the first decision slowest), an exact table ``T[a]`` (D, Kmax)
(the context decisions' own rows 0) and a fixed cost ``F[a]``, and ``R(M) = F[a(M)] + sum_d T[a(M), d, k_d]``.

:class:`ContextCosts` is that model in the engine's units. The engine accepts it wherever it accepts a
``(D, Kmax)`` tensor; the functions below (``step_costs``, ``expected_total``, ``arch_totals``, ...) do
the one thing each use needs for either kind, the tensor path exactly as before. See
docs/search-engine.md, "Costs that depend on each other".
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ._checks import (cheapest_cost, check_costs, check_device, check_mask, check_number, check_theta_values,
                      cost_table, dearest_cost, integer, is_bool_table, is_complex, real_table, shown, value_table)
from ._knapsack import best_within_budget

__all__ = ["ContextCosts", "check_cost_model", "step_costs", "expected_total", "arch_totals", "chosen_costs",
           "cost_bound", "costs_finite", "cost_state", "cost_extremes", "best_within"]


def _decision_indices(decisions) -> tuple[int, ...]:
    """``decisions`` as a tuple of ints (each an :func:`~._checks.integer`: NumPy's and 0-d integer tensors too);
    anything else (a number alone, a string, a bool, 0.5) is a ``ValueError`` that names ``context_decisions``."""
    if isinstance(decisions, (str, bytes)) or not hasattr(decisions, "__iter__"):
        raise ValueError(f"context_decisions must be a list of decision indices, got {shown(decisions)}")
    out = [integer(c) for c in decisions]
    if any(c is None for c in out):
        raise ValueError(f"context_decisions must be a list of decision indices (integers), got "
                         f"{shown(list(decisions))}")
    return tuple(out)


_TO_FORM = ("ContextCosts.to takes a floating dtype (torch.float32, torch.float64, or by name: 'float32', "
            "'float64') and/or a device (torch.device, 'cpu', 'cuda:0')")


def _dtype_of(value) -> torch.dtype | None:
    """``value`` as a torch dtype (a ``torch.dtype``, or its name: ``"float32"``, ``"torch.float32"``), else None."""
    if isinstance(value, str):
        value = getattr(torch, value.removeprefix("torch."), None)
    return value if isinstance(value, torch.dtype) else None


def _to_arguments(args: tuple, dtype, device) -> tuple[torch.dtype | None, torch.device | None]:
    """``(dtype, device)`` of :meth:`ContextCosts.to`'s arguments: each positional one a dtype or a device (as
    ``Tensor.to`` takes them), a dtype also by name; anything else is a ``ValueError`` saying what to give."""
    given = {"dtype": dtype, "device": device}
    if len(args) > 2:
        raise ValueError(f"{_TO_FORM}, got {len(args)} arguments {shown(args)}")
    for value in args:
        kind = "dtype" if _dtype_of(value) is not None else "device"
        if given[kind] is not None:
            raise ValueError(f"{_TO_FORM}: {kind} given twice, {shown(given[kind])} and {shown(value)}")
        given[kind] = value
    dtype = None if given["dtype"] is None else _dtype_of(given["dtype"])
    if given["dtype"] is not None and (dtype is None or not dtype.is_floating_point):
        raise ValueError(f"{_TO_FORM}; dtype {shown(given['dtype'])} is not a floating dtype")
    if given["device"] is None:
        return dtype, None
    try:
        return dtype, check_device(given["device"])
    except ValueError as e:
        raise ValueError(f"{_TO_FORM}; {e}") from None


class ContextCosts:
    """``R(M) = F[a(M)] + sum_d T[a(M), d, k_d]``: per-choice costs that depend on the context decisions.

    Args:
        context_decisions: the decisions whose choices select the table (``a`` is row-major over them).
        tables: ``(A, D, Kmax)`` per-choice costs of every combination ``a`` (``A = prod_c K_c``); the
            context decisions' own rows and the entries beyond ``K_d`` are ignored (set to 0).
        fixed: ``(A,)`` the cost of the parts not searched, per combination.
        mask: ``(D, Kmax)`` True where a choice exists.

    Raises:
        ValueError: shapes that do not fit each other, a context decision out of range, non-finite costs.
    """

    def __init__(self, context_decisions: Sequence[int], tables, fixed, mask):
        mask = check_mask(mask, prefix=True)  # K_d is read as mask.sum(-1): a gap would price another choice
        D, Kmax = mask.shape
        self.context_decisions = _decision_indices(context_decisions)
        if not self.context_decisions or any(not 0 <= c < D for c in self.context_decisions) \
                or len(set(self.context_decisions)) != len(self.context_decisions):
            raise ValueError(f"context_decisions must be distinct decisions in [0, {D}), got "
                             f"{shown(context_decisions)}")
        sizes = [int(mask[c].sum()) for c in self.context_decisions]
        A = math.prod(sizes)
        tables = cost_table(tables, "tables")
        fixed = cost_table(fixed, "fixed").reshape(-1)
        if tuple(tables.shape) != (A, D, Kmax) or tuple(fixed.shape) != (A,):
            raise ValueError(f"a context of {len(sizes)} decisions with {sizes} choices needs tables of shape "
                             f"{(A, D, Kmax)} and fixed of shape ({A},), got {tuple(tables.shape)} and "
                             f"{tuple(fixed.shape)}")
        own = torch.zeros(D, 1, dtype=torch.bool)
        own[list(self.context_decisions)] = True
        keep = mask & ~own
        if not bool(torch.isfinite(tables[:, keep]).all()) or not bool(torch.isfinite(fixed).all()):
            raise ValueError("context costs contain NaN or inf for existing choices; give finite costs")
        self.tables = torch.where(keep, tables, torch.zeros((), dtype=torch.float64))
        self.fixed = fixed
        self.mask = mask
        strides = [math.prod(sizes[i + 1:]) for i in range(len(sizes))]
        self._strides = torch.tensor(strides, dtype=torch.long)
        self._ctx = torch.tensor(self.context_decisions, dtype=torch.long)       # index tensors: no host sync
        a = torch.arange(A)
        self._choice_of = torch.stack([(a // s) % k for s, k in zip(strides, sizes)])  # (C, A): a_c
        self._last_cpu = mask.sum(-1) - 1                                        # (D,) K_d - 1, for totals' check
        self._first_cpu = torch.zeros_like(self._last_cpu)

    @property
    def num_combinations(self) -> int:
        """A, the number of combinations of the context decisions' choices."""
        return self.fixed.shape[0]

    @property
    def device(self) -> torch.device:
        return self.tables.device

    @property
    def dtype(self) -> torch.dtype:
        return self.tables.dtype

    def to(self, *args, dtype: torch.dtype | str | None = None,
           device: str | torch.device | None = None) -> ContextCosts:
        """A copy with the tables in ``dtype`` on ``device`` (the index tables follow the device); as
        ``Tensor.to``, a dtype or a device (or both) may be given by position: ``to(torch.float32)``, ``to("cpu")``,
        ``to("cuda:0", torch.float32)``; a dtype also by name (``"float32"``, ``"torch.float64"``).

        Raises:
            ValueError: anything else, or a dtype that is not floating point (the costs would be cut to integers).
        """
        dtype, device = _to_arguments(args, dtype, device)
        out = object.__new__(ContextCosts)
        out.__dict__.update(self.__dict__)
        out.tables = self.tables.to(dtype=dtype or self.dtype, device=device or self.device)
        out.fixed = self.fixed.to(dtype=dtype or self.dtype, device=device or self.device)
        out.mask = self.mask.to(out.tables.device)
        out._strides, out._choice_of = self._strides.to(out.tables.device), self._choice_of.to(out.tables.device)
        out._ctx = self._ctx.to(out.tables.device)
        return out

    def _context_probs(self, theta: torch.Tensor) -> torch.Tensor:
        """``(N, C, A)``: ``theta_n[c, a_c]`` for every context decision c and combination a."""
        N, C, A = theta.shape[0], len(self.context_decisions), self.num_combinations
        rows = theta.index_select(1, self._ctx)                                   # (N, C, Kmax)
        return rows.gather(2, self._choice_of.unsqueeze(0).expand(N, C, A))

    def _values(self, theta: torch.Tensor) -> torch.Tensor:
        """``(N, A)``: ``E_theta_n[R | a] = F[a] + sum_{d,j} theta_n[d, j] T[a, d, j]``."""
        return torch.einsum("ndk,adk->na", theta, self.tables) + self.fixed

    def expected(self, theta: torch.Tensor) -> torch.Tensor:
        """``(N,)``: ``E_theta_n[R] = sum_a P_n(a) E[R | a]``, exact, in the model's dtype on its device.

        Raises:
            ValueError: ``theta`` that is not an ``(N, D, Kmax)`` floating table of distributions over the model's
                choices (rows finite, >= 0, 0 beyond ``K_d``, summing to 1: the check of ``init_theta``), named with
                its first row that is not; a list or array is read as float64, another dtype or device computed in
                the model's. On a device the check waits for it once (the searchers' own theta is not checked).
        """
        return self._expected(self._checked_theta(theta))

    def _expected(self, theta: torch.Tensor) -> torch.Tensor:
        """:meth:`expected` of the searchers' own theta (the model's dtype and device, rows on the simplex),
        unchecked."""
        return (self._context_probs(theta).prod(1) * self._values(theta)).sum(-1)

    def conditional(self, theta: torch.Tensor) -> torch.Tensor:
        """``(N, D, Kmax)``: ``c~[n, d, k] = E_theta_n[R | h_d = k]`` (0 beyond ``K_d``), in the model's dtype on
        its device.

        ``c~ - sum_k theta_k c~_k`` times theta is the exact natural gradient of ``E_theta[R]`` (the Fisher
        metric is block-diagonal over decisions), so eq. 7 with ``c`` replaced by ``c~`` is exact; for an
        additive table ``c~[d] - Q~_d = c[d] - Q_d``.

        Raises:
            ValueError: what :meth:`expected` refuses.
        """
        return self._conditional(self._checked_theta(theta))

    def _checked_theta(self, theta) -> torch.Tensor:
        """``theta`` as the ``(N, D, Kmax)`` distributions :meth:`expected` and :meth:`conditional` read, in the
        model's dtype on its device (as :meth:`totals` moves its rows; not detached: the moments stay
        differentiable). A ``ValueError`` for a tensor that is not floating point, a list or array that is not
        numbers (True/False, complex), another shape, or rows that are not distributions over the model's choices
        (NaN, negative, not 0 beyond ``K_d``, not summing to 1: the engine's ``init_theta`` check, one wait for a
        device): the formulas hold only for distributions and would return a number for anything else."""
        if isinstance(theta, torch.Tensor):
            if not theta.is_floating_point():
                raise ValueError(f"theta must be a floating tensor of probabilities, got dtype {theta.dtype}")
        elif is_bool_table(theta) or is_complex(theta):
            raise ValueError("theta must be real probabilities, got a table of True/False or complex numbers")
        else:
            theta = real_table(theta, "theta")
        D, Kmax = self.mask.shape
        if theta.dim() != 3 or tuple(theta.shape[1:]) != (D, Kmax):
            hint = "; for one distribution pass theta.unsqueeze(0)" if tuple(theta.shape) == (D, Kmax) else ""
            raise ValueError(f"theta must be an (N, D, Kmax) = (N, {D}, {Kmax}) table of distributions, one per "
                             f"member, got shape {tuple(theta.shape)}{hint}")
        theta = theta.to(self.device, self.dtype)
        check_theta_values(theta, self.mask, "theta")
        return theta

    def _conditional(self, theta: torch.Tensor) -> torch.Tensor:
        """:meth:`conditional` of the searchers' own theta (the model's dtype and device, rows on the simplex),
        unchecked."""
        probs = self._context_probs(theta)                                        # (N, C, A)
        p = probs.prod(1)                                                         # (N, A): P_n(a)
        values = self._values(theta)                                              # (N, A)
        total = (p * values).sum(-1)                                              # (N,): E[R]
        # a non-context d: E[R | h_d = k] = E[R] - Q_d + sum_a P(a) T[a, d, k], Q_d its theta-average
        out = torch.einsum("na,adk->ndk", p, self.tables)
        out = out - (out * theta).sum(-1, keepdim=True) + total.view(-1, 1, 1)
        for i, c in enumerate(self.context_decisions):
            others = torch.ones_like(p)                                           # P(a) without theta[c, a_c]
            for j in range(probs.shape[1]):
                if j != i:
                    others = others * probs[:, j]
            row = torch.zeros(theta.shape[0], theta.shape[2], dtype=theta.dtype, device=theta.device)
            out[:, c] = row.index_add_(1, self._choice_of[i], others * values)
        return out.masked_fill(~self.mask, 0.0)

    def combination(self, arch: torch.Tensor) -> torch.Tensor:
        """``(S,)``: the combination index ``a`` of each architecture of ``arch`` (S, D), on the model's device.

        Raises:
            ValueError: what :meth:`totals` refuses (a choice out of range would name another combination).
        """
        return self._combination(self._checked_arch(arch))

    def _combination(self, arch: torch.Tensor) -> torch.Tensor:
        """:meth:`combination` of rows known to be choices of the space (the searchers' own draws), unchecked."""
        return (arch.index_select(1, self._ctx) * self._strides).sum(-1)

    def totals(self, arch: torch.Tensor) -> torch.Tensor:
        """``(S,)``: ``R(M)`` of each architecture of ``arch`` (S, D), exact.

        Raises:
            ValueError: ``arch`` that is not an ``(S, D)`` table of integer choice indices, or a choice outside
                ``0..K_d-1``, named with its row and decision: it would index another combination's table, or a choice
                that does not exist, and give a wrong total silently (on a device the check waits for it once).
        """
        return self._totals(self._checked_arch(arch))

    def _checked_arch(self, arch) -> torch.Tensor:
        """``arch`` as the ``(S, D)`` LongTensor :meth:`totals` reads (see there for what it refuses)."""
        if not isinstance(arch, torch.Tensor):
            try:
                arch = torch.as_tensor(arch)
            except (TypeError, ValueError, RuntimeError, OverflowError):
                raise ValueError(f"arch must be an (S, D) tensor of choice indices, got {type(arch).__name__}") \
                    from None
        if arch.dtype == torch.bool or arch.is_floating_point() or arch.is_complex():
            raise ValueError(f"arch must hold integer choice indices (a LongTensor), got dtype {arch.dtype}")
        D = self.mask.shape[0]
        if arch.dim() != 2 or arch.shape[1] != D:
            hint = "; for one architecture pass arch.view(1, -1)" if arch.dim() == 1 and arch.shape[0] == D else ""
            raise ValueError(f"arch must be an (S, D) = (S, {D}) table of choice indices, one row per architecture, "
                             f"got shape {tuple(arch.shape)}{hint}")
        arch = arch if arch.dtype == torch.long else arch.long()
        # checked where arch is, by the same clamp-and-compare everywhere (two ops, a few microseconds for a tell's
        # rows): on a device torch.equal's bool waits for it once, paid only by these public methods (the searchers
        # call the unchecked _totals and _combination), whose caller reads the result anyway
        first, last = self._first_cpu.to(arch.device), self._last_cpu.to(arch.device)
        if not torch.equal(torch.clamp(arch, first, last), arch):
            row, d = ((arch < 0) | (arch > last)).nonzero()[0].tolist()
            raise ValueError(f"arch row {row} has choice {int(arch[row, d])} for decision {d}, which has choices "
                             f"0..{int(self._last_cpu[d])} (K = {(self._last_cpu + 1).tolist()})")
        return arch.to(self.device)  # rows on another device than the model: computed where the model is

    def _totals(self, arch: torch.Tensor) -> torch.Tensor:
        """:meth:`totals` of rows known to be choices of the space (the searchers' own draws), unchecked."""
        a = self._combination(arch)
        chosen = self.tables.index_select(0, a).gather(2, arch.unsqueeze(-1)).squeeze(-1)  # (S, D)
        return chosen.sum(-1) + self.fixed[a]

    def extremes(self) -> tuple[float, float]:
        """``(min_M R(M), max_M R(M))``: the best over combinations of the additive extremes of each."""
        tables, mask = self.tables.cpu(), self.mask.cpu()
        inf = torch.tensor(math.inf, dtype=tables.dtype)
        low = torch.where(mask, tables, inf).min(-1).values.sum(-1) + self.fixed.cpu()
        high = torch.where(mask, tables, -inf).max(-1).values.sum(-1) + self.fixed.cpu()
        return float(low.min()), float(high.max())

    def best_within(self, values: torch.Tensor, budget: float) -> torch.Tensor | None:
        """``argmax_M sum_d values[d, k_d]`` subject to ``R(M) <= budget``, exactly: the knapsack of
        :func:`best_within_budget` per combination ``a`` (context decisions held at ``a``, budget less
        ``F[a]``, with the slack of the whole ``budget``), best over ``a``. Combinations are tried by their best
        unconstrained value (``bound``), the cheapest first among equal bounds; one whose bound cannot beat the
        best found, or can only tie it while its cheapest architecture is no cheaper, is skipped (at a uniform
        theta every combination ties). Among equal values the cheaper architecture wins. ``None`` when nothing
        fits."""
        values, budget = value_table(values), check_number("budget", budget)
        if tuple(values.shape) != tuple(self.mask.shape):
            raise ValueError(f"values must be a (D, Kmax) table of shape {tuple(self.mask.shape)}, got "
                             f"{tuple(values.shape)}")
        tables, fixed, mask = self.tables.cpu().to(torch.float64), self.fixed.cpu().to(torch.float64), self.mask.cpu()
        ctx, choice_of = list(self.context_decisions), self.choice_of_cpu()
        free = torch.ones(mask.shape[0], dtype=torch.bool)
        free[ctx] = False
        best_free = values.masked_fill(~mask, -math.inf).max(-1).values[free].sum()
        held_value = values[ctx].gather(1, choice_of).sum(0)                         # (A,) the context's part
        bound = held_value + best_free                                               # (A,) value bounds
        low = torch.where(mask, tables, math.inf).min(-1).values.sum(-1) + fixed     # (A,) cheapest completion
        order = torch.argsort(low, stable=True)
        found: tuple[float, float, torch.Tensor] | None = None
        for a in order[torch.argsort(-bound[order], stable=True)].tolist():
            if found is not None and float(bound[a]) < found[0]:
                break
            if found is not None and float(bound[a]) == found[0] and float(low[a]) >= found[1]:
                continue                                                         # a tie, and none cheaper
            held = mask.clone()
            held[ctx] = False
            held[ctx, choice_of[:, a]] = True
            arch = best_within_budget(values, tables[a], budget - float(fixed[a]), held, slack_of=budget)
            if arch is None:
                continue
            # summed as the bound is, so an architecture that reaches its bound equals it exactly
            value = float(held_value[a] + values[free].gather(1, arch[free].view(-1, 1)).sum())
            cost = float(self._totals(arch.view(1, -1).to(self.device))[0])
            if found is None or value > found[0] or (value == found[0] and cost < found[1]):
                found = (value, cost, arch)
        return None if found is None else found[2]

    def choice_of_cpu(self) -> torch.Tensor:
        """``(C, A)`` on the CPU: the choice ``a_c`` of each context decision in each combination."""
        return self._choice_of.cpu()

    def state(self) -> dict:
        """Plain tensors and Python values (for a state dict)."""
        return {"context_decisions": list(self.context_decisions), "tables": self.tables.detach().cpu().clone(),
                "fixed": self.fixed.detach().cpu().clone()}

    def matches(self, saved) -> bool:
        """Whether a saved :meth:`state` is this model (a plain ``(D, Kmax)`` tensor never is, nor is a partial or
        corrupt one: a missing key, or an entry that is not what :meth:`state` writes)."""
        if not isinstance(saved, dict) or not all(isinstance(saved.get(k), torch.Tensor) for k in ("tables", "fixed")):
            return False
        decisions = saved.get("context_decisions")
        return (isinstance(decisions, (list, tuple)) and list(decisions) == list(self.context_decisions)
                and torch.equal(saved["tables"].to(torch.float64), self.tables.cpu().to(torch.float64))
                and torch.equal(saved["fixed"].to(torch.float64), self.fixed.cpu().to(torch.float64)))

    def __repr__(self) -> str:
        return (f"ContextCosts(context_decisions={list(self.context_decisions)}, A={self.num_combinations}, "
                f"D={self.mask.shape[0]}, Kmax={self.mask.shape[1]})")


# ---- one function per use: the (D, Kmax) tensor path exactly as before, or the context model's ----------

def check_cost_model(costs, D: int, Kmax: int, mask: torch.Tensor):
    """A :class:`ContextCosts` checked against the decisions, or :func:`check_costs`' ``(D, Kmax)`` tensor."""
    if not isinstance(costs, ContextCosts):
        return check_costs(costs, D, Kmax, mask)
    theirs, ours = costs.mask.cpu(), mask.cpu()
    if tuple(theirs.shape) != (D, Kmax):
        raise ValueError(f"the context cost model's mask has shape (D, Kmax) = {tuple(theirs.shape)} (choices "
                         f"{theirs.sum(-1).tolist()}), but num_choices {ours.sum(-1).tolist()} makes it ({D}, {Kmax}); "
                         f"build the model with mask = torch.arange(max(num_choices)) < "
                         f"torch.tensor(num_choices)[:, None]")
    if not torch.equal(theirs, ours):  # both prefix masks (ContextCosts refuses gaps): a K_d differs
        d = int((theirs != ours).any(-1).nonzero()[0])
        raise ValueError(f"the context cost model's decision {d} has {int(theirs[d].sum())} choices (its mask row "
                         f"{d}), but num_choices[{d}] = {int(ours[d].sum())}; give the model the space's choices")
    return costs.to(torch.float64, "cpu")


def step_costs(costs, theta: torch.Tensor) -> torch.Tensor:
    """What eq. 7's ε term uses: the ``(D, Kmax)`` table itself, or ``(N, D, Kmax)`` ``E_theta_n[R | h_d = k]``."""
    return costs._conditional(theta) if isinstance(costs, ContextCosts) else costs  # the engine's own theta


def expected_total(costs, theta: torch.Tensor) -> torch.Tensor:
    """``(N,)``: ``E_theta_n[R]`` (eq. 6 for a table)."""
    if isinstance(costs, ContextCosts):
        return costs._expected(theta)  # the engine's own theta, on the simplex by construction: not checked again
    return (theta * costs).sum((-1, -2))


def arch_totals(costs, arch: torch.Tensor) -> torch.Tensor:
    """``(S,)``: ``R(M)`` of each row of ``arch`` (S, D)."""
    if isinstance(costs, ContextCosts):
        return costs._totals(arch)  # the searchers' own rows, checked where they came in (tell) or drawn in range
    return costs.gather(1, arch.t()).sum(0)


def chosen_costs(costs, arch: torch.Tensor, decisions: torch.Tensor) -> torch.Tensor:
    """``(S, G)``: the cost of each row's choice of each of ``decisions`` (G,): ``c[d, k_d]`` of a table, or of the
    row's combination's own table ``T[a, d, k_d]`` (as :meth:`ContextCosts.totals` reads it); unchecked rows (the
    searchers' own)."""
    if isinstance(costs, ContextCosts):
        table = costs.tables.index_select(0, costs._combination(arch))                  # (S, D, Kmax)
        return table[:, decisions].gather(2, arch[:, decisions].unsqueeze(-1)).squeeze(-1)
    return costs[decisions, arch[:, decisions]]


def cost_extremes(costs, mask: torch.Tensor) -> tuple[float, float]:
    """``(min_M R(M), max_M R(M))`` of a ``(D, Kmax)`` table (over the choices ``mask`` marks; every decision needs
    one) or of a :class:`ContextCosts` (its own mask); a table or mask that is not that is a ``ValueError``."""
    if isinstance(costs, ContextCosts):
        return costs.extremes()
    table = cost_table(costs, "costs")
    if table.dim() != 2:
        raise ValueError(f"costs must be a (D, Kmax) table or a ContextCosts, got shape {tuple(table.shape)}")
    mask = check_mask(mask, tuple(table.shape))
    if not bool(torch.isfinite(table[mask]).all()):
        raise ValueError("costs contain NaN or inf for existing choices; give finite costs")
    return cheapest_cost(table, mask), dearest_cost(table, mask)


def cost_bound(costs) -> float:
    """A bound on ``|R|`` over all architectures' costs per choice (the engine's overflow guard)."""
    if isinstance(costs, ContextCosts):
        return float(costs.tables.abs().sum((-1, -2)).max() + costs.fixed.abs().max())
    return float(costs.abs().max())


def costs_finite(costs) -> bool:
    """Whether every cost (a table's entries, or a context model's tables and fixed costs) is finite."""
    if isinstance(costs, ContextCosts):
        return bool(torch.isfinite(costs.tables).all()) and bool(torch.isfinite(costs.fixed).all())
    return bool(torch.isfinite(costs).all())


def cost_state(costs):
    """The cost model as plain tensors for a state dict: the table, or :meth:`ContextCosts.state`."""
    return costs.state() if isinstance(costs, ContextCosts) else costs.detach().cpu().clone()


def best_within(costs, values: torch.Tensor, budget: float, mask: torch.Tensor) -> torch.Tensor | None:
    """The most valuable architecture within ``budget`` (exact): :func:`best_within_budget` on a table, or
    :meth:`ContextCosts.best_within`."""
    if isinstance(costs, ContextCosts):
        return costs.best_within(values, budget)
    return best_within_budget(values, costs, budget, mask)
