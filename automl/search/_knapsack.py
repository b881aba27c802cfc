"""The most valuable architecture within a cost budget: an exact multiple-choice knapsack.

Used to derive a budgeted member (``value = log theta``: the most probable architecture whose additive
cost ``R(M) = sum_d c_{d,k(d)}`` fits the budget) and, in the benchmarks, to compute the exact optimum of
a separable objective under a budget (``value = -a``).
"""

from __future__ import annotations

import math

import torch

from ._checks import check_mask, check_number, cost_table, value_table

__all__ = ["best_within_budget", "BUDGET_RTOL"]

#: Relative slack on the budget: a cost sum may differ from the budget by float rounding only (the
#: pipeline converts a total budget into normalised engine units, which rounds).
BUDGET_RTOL = 1e-9


def best_within_budget(values: torch.Tensor, costs: torch.Tensor, budget: float,
                       mask: torch.Tensor | None = None, slack_of: float | None = None) -> torch.Tensor | None:
    """``argmax_k sum_d values[d, k_d]`` subject to ``sum_d costs[d, k_d] <= budget``, exactly.

    Dynamic programming over the decisions on the Pareto frontier of partial ``(cost, value)`` pairs:
    after decision d the frontier holds, for every reachable cost, the best value, and only pairs
    where no cheaper pair has an equal or higher value (any completion of a dominated pair is matched
    by the same completion of the pair that dominates it, so nothing optimal is dropped). Pairs whose
    cost plus the cheapest completion exceeds the budget are dropped too. The answer is the best pair
    at the end, read back through the stored choices. The result is exact; the frontier size is the
    number of Pareto-optimal partial sums (at most ``prod K_d``, in practice far fewer, as values of
    converged distributions are very unequal). Among equal values the cheapest architecture wins.

    Args:
        values: ``(D, Kmax)`` values (``log theta``, or ``-loss``); entries outside ``mask`` ignored.
        costs: ``(D, Kmax)`` additive costs.
        budget: the largest allowed total cost (with a relative slack of :data:`BUDGET_RTOL`).
        mask: ``(D, Kmax)`` True where the choice exists (default: all).
        slack_of: the budget whose relative slack applies (default ``budget``): a part of a total budget (the
            total less a fixed cost) keeps the total's slack, as the check of the total does.

    Returns:
        ``LongTensor (D,)`` of choices, or ``None`` when even the cheapest architecture exceeds the budget, or when
        every architecture within it takes a choice of value ``-inf``.

    Raises:
        ValueError: shapes that differ or an empty table, values or costs of True/False (a mask in their place), a
            budget that is not a number (a bool, a string, a list) or NaN, NaN or ``+inf`` values or non-finite
            costs of existing choices (a value of ``-inf`` is allowed: that choice is never taken), a decision
            without any choice in ``mask``.
    """
    values, costs, mask, budget = _checked(values, costs, budget, mask)
    if slack_of is not None:
        check_number("slack_of", slack_of, " (the budget whose relative slack applies) or None")
    D, Kmax = costs.shape
    inf = torch.tensor(math.inf, dtype=torch.float64)
    c = torch.where(mask, costs, inf)
    v = torch.where(mask, values, -inf)
    limit = float(budget) + BUDGET_RTOL * max(abs(float(budget if slack_of is None else slack_of)), 1.0)
    cheapest = c.min(-1).values                                     # (D,)
    rest = torch.cat([cheapest.flip(0).cumsum(0).flip(0)[1:], torch.zeros(1, dtype=torch.float64)])
    if float(cheapest.sum()) > limit:
        return None
    fc = torch.zeros(1, dtype=torch.float64)                        # frontier costs, ascending
    fv = torch.zeros(1, dtype=torch.float64)                        # frontier values, ascending
    parents, choices = [], []
    for d in range(D):
        cand_c = (fc.unsqueeze(1) + c[d].unsqueeze(0)).reshape(-1)
        cand_v = (fv.unsqueeze(1) + v[d].unsqueeze(0)).reshape(-1)
        keep = (cand_c + rest[d] <= limit) & torch.isfinite(cand_v)
        idx = keep.nonzero().squeeze(1)
        cand_c, cand_v = cand_c[idx], cand_v[idx]
        # sort by cost, then by value descending, and keep the pairs better than every cheaper one
        order = torch.argsort(-cand_v, stable=True)
        order = order[torch.argsort(cand_c[order], stable=True)]
        cand_c, cand_v, idx = cand_c[order], cand_v[order], idx[order]
        prev_max = torch.cat([torch.full((1,), -math.inf, dtype=torch.float64), cand_v.cummax(0).values[:-1]])
        front = cand_v > prev_max
        fc, fv, idx = cand_c[front], cand_v[front], idx[front]
        parents.append(torch.div(idx, Kmax, rounding_mode="floor"))
        choices.append(idx % Kmax)
    if fc.numel() == 0:  # every completion has value -inf (cannot happen with finite values)
        return None
    out = torch.empty(D, dtype=torch.long)
    j = int(fv.argmax())  # values ascend along the frontier; argmax is the last, the cheapest of equals
    for d in range(D - 1, -1, -1):
        out[d] = choices[d][j]
        j = int(parents[d][j])
    return out


def _checked(values, costs, budget, mask) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """``values``, ``costs`` (float64) and ``mask`` (bool) on the CPU and ``budget`` as a float, checked (see
    :func:`best_within_budget`)."""
    values, costs = value_table(values), cost_table(costs, "costs")
    if costs.dim() != 2 or values.shape != costs.shape or 0 in costs.shape:
        raise ValueError(f"values and costs must be (D, Kmax) tables of one shape with D >= 1 decisions and Kmax >= 1 "
                         f"choices, got shape {tuple(values.shape)} and {tuple(costs.shape)}")
    mask = torch.ones(costs.shape, dtype=torch.bool) if mask is None else check_mask(mask, tuple(costs.shape))
    # as ContextCosts.best_within reads its budget: a real number, not NaN (a bool, a string, a list of one are not)
    number = check_number("budget", budget)
    if not bool(torch.isfinite(costs[mask]).all()):
        raise ValueError("costs contain NaN or inf for existing choices; give finite costs")
    if bool(values[mask].isnan().any()) or bool((values[mask] == math.inf).any()):
        raise ValueError("values contain NaN or +inf for existing choices; give finite values (-inf marks a choice "
                         "never to take)")
    return values, costs, mask, number
