"""Budgeted members of the engine: a cost target per distribution, reached by adapting its epsilon."""

from __future__ import annotations

import torch

from ._checks import check_budgets, check_positive
from ._context import ContextCosts, arch_totals, best_within, cost_extremes
from ._knapsack import BUDGET_RTOL

__all__ = ["BudgetTargets", "EPS_CAP"]

#: Upper end of an adapted epsilon (budgets): far beyond any useful value with normalised costs.
EPS_CAP = 1e6


class BudgetTargets:
    """One cost budget per distribution (``None``: unconstrained) and the dual step that meets them.

    After every update, ``eps <- clip(eps + budget_lr (R(mode) - B) / (R_max - R_min), 0, EPS_CAP)``
    for each budgeted member (projected dual ascent; ``R(mode)`` is the cost of the member's most
    probable architecture, :meth:`mode_cost`); unconstrained members keep epsilon 0. :meth:`derive`
    gives each budgeted member the most probable architecture within its budget.

    Args:
        budgets: one budget per distribution, in the units of ``costs``, or ``None``.
        budget_lr: the dual step size (> 0).
        costs: the engine's ``(D, Kmax)`` cost table or :class:`~automl.search.ContextCosts` (its dtype and
            device: the dual step runs there); with a context, costs and the knapsack are exact per combination
            of widths.
        mask: ``(D, Kmax)`` True where a choice exists (CPU).
        exact: the same costs in float64 on the CPU (default ``costs``): the budget check, the cost range and
            the derivation use them, so a float32 engine judges budgets on the costs as given, not rounded.

    Raises:
        ValueError: a malformed budget or step size, or a budget below the cheapest architecture.
    """

    def __init__(self, budgets, budget_lr, costs: torch.Tensor, mask: torch.Tensor, exact=None):
        self.budgets: list[float | None] = check_budgets(budgets)
        self.budget_lr = check_positive("budget_lr", budget_lr)
        exact = costs if exact is None else exact
        cheapest, dearest = cost_extremes(exact, mask)
        low = [b for b in self.budgets if b is not None and b < cheapest - 1e-9 * max(abs(cheapest), 1.0)]
        if low:
            raise ValueError(f"budgets {low} are below the cheapest architecture's cost {cheapest:.6g}; "
                             f"raise them")
        self.cost_range = (cheapest, dearest)
        self._span = max(dearest - cheapest, 1e-12)
        self._costs = costs
        self._costs_cpu, self._mask_cpu = exact.to(dtype=torch.float64, device="cpu"), mask.cpu()
        if not isinstance(costs, ContextCosts):
            self._costs_n = costs.expand(len(self.budgets), *costs.shape)
        self._has_budget = torch.tensor([b is not None for b in self.budgets], device=costs.device)
        self._budget_t = torch.tensor([b if b is not None else 0.0 for b in self.budgets],
                                      dtype=costs.dtype, device=costs.device)

    def mode_cost(self, theta: torch.Tensor) -> torch.Tensor:
        """``(N,)``: ``R(argmax_M P_theta^(n)(M))``, the cost of each member's most probable architecture."""
        if isinstance(self._costs, ContextCosts):
            return arch_totals(self._costs, theta.argmax(-1))  # its own rows: unchecked
        return self._costs_n.gather(2, theta.argmax(-1, keepdim=True)).sum((-1, -2))

    def dual_step(self, eps: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """The adapted ``(N,)`` epsilons after one projected dual step on ``R(mode) - B``."""
        gap = (self.mode_cost(theta) - self._budget_t) / self._span
        eps = (eps + self.budget_lr * gap).clamp_(0.0, EPS_CAP)
        return torch.where(self._has_budget, eps, torch.zeros_like(eps))

    def derive(self, theta: torch.Tensor, arg: torch.Tensor, tiny: float) -> torch.Tensor:
        """``(N, D)`` on the CPU: ``arg`` (the modes), except that a member whose mode is over its budget
        gets the most probable architecture within it (an exact knapsack on ``log theta``). A budget that the
        constructor let in a rounding below the cheapest architecture is searched at the cheapest cost, so
        the knapsack always finds that architecture."""
        out = arg.cpu().clone()
        theta = theta.cpu()
        cheapest = self.cost_range[0]
        for n, b in enumerate(self.budgets):
            if b is None:
                continue
            cost = float(arch_totals(self._costs_cpu, out[n].view(1, -1))[0])
            if cost > b + BUDGET_RTOL * max(abs(b), 1.0):
                logp = theta[n].clamp_min(tiny).log()
                out[n] = best_within(self._costs_cpu, logp, max(b, cheapest), self._mask_cpu)
        return out
