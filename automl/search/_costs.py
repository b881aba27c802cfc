"""Cost-table normalisation, so that an epsilon means the same in every search space."""

from __future__ import annotations

import torch

from ._checks import check_mask, cost_table, is_bool_table, is_complex, shown
from ._context import ContextCosts

__all__ = ["normalize_costs", "cost_scale", "normalize_context"]


def cost_scale(costs: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """The scale :func:`normalize_costs` divides by: the largest ``|c_{d,k}|`` over the valid entries.

    Returns 1.0 when every valid cost is zero (nothing to normalise).
    """
    costs, mask = _check(costs, mask)
    valid = costs[mask]
    if valid.numel() == 0:
        return 1.0
    scale = float(valid.abs().max())
    return scale if scale > 0 else 1.0


def normalize_costs(costs: torch.Tensor, mask: torch.Tensor | None = None,
                    return_scale: bool = False) -> torch.Tensor | tuple[torch.Tensor, float]:
    """Divide a ``(D, Kmax)`` cost table by its largest absolute per-choice cost ``max |c_{d,k}|`` over the valid
    entries (:func:`cost_scale`), so that ``c in [0, 1]`` for non-negative costs (the largest is 1) and
    ``c in [-1, 1]`` when some are negative (the one of largest magnitude is 1 or -1); the signs are kept. A table
    of zeros is returned as it is (scale 1).

    Why: the regulariser of eq. 5 is ``epsilon * E[R(M)]`` with ``R(M) = sum_d c_{d,k(d)}``; in eq. 7
    the epsilon term ``epsilon (c_d - Q_d 1) * theta_d`` is compared with the utility term whose size
    is fixed (``|w| <= 2``). Raw costs (parameter counts, FLOPs) differ by orders of magnitude between
    spaces, so the same epsilon would mean "ignore size" in one space and "only size matters" in
    another. Dividing by the largest single-choice |cost| makes ``epsilon in {0, 0.1, 0.3, 0.5}`` (the
    paper's values) comparable across spaces. Only the per-choice scale is used, so the number of
    decisions still counts: a space with more decisions has a larger total ``R``.

    Args:
        costs: ``(D, Kmax)`` float tensor, ``c_{d,k}``.
        mask: ``(D, Kmax)`` bool tensor, True where choice ``k`` exists for decision ``d``
            (default: all True). Masked entries are set to 0 in the result.
        return_scale: also return the scale used (record it, e.g. in results.json; multiply a
            normalised cost by it to get back the raw cost).

    Returns:
        The normalised float64 table, or ``(table, scale)`` when ``return_scale`` is True.
    """
    costs, mask = _check(costs, mask)
    if isinstance(return_scale, (str, bytes)) or return_scale not in (True, False):  # "no" would return a tuple
        raise ValueError(f"return_scale must be True or False, got {shown(return_scale)}")
    scale = cost_scale(costs, mask)
    out = torch.where(mask, costs / scale, torch.zeros((), dtype=costs.dtype, device=costs.device))
    return (out, scale) if return_scale else out


def _check(costs, mask):
    if is_complex(costs):
        raise ValueError("costs must be real numbers, got complex ones")
    if is_bool_table(costs):
        cost_table(costs, "costs")  # its ValueError: a mask in the costs' place
    try:
        costs = torch.as_tensor(costs, dtype=torch.float64)    # on the device it is on
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:  # OverflowError: an int beyond float64
        raise ValueError(f"costs must be a (D, Kmax) table of numbers, got {type(costs).__name__}: {e}") from None
    if costs.dim() != 2 or 0 in costs.shape:  # no decision, or a decision without a choice: no architecture
        raise ValueError(f"costs must be a (D, Kmax) table with at least one decision and one choice, got shape "
                         f"{tuple(costs.shape)}")
    if mask is None:
        mask = torch.ones(costs.shape, dtype=torch.bool, device=costs.device)
    else:  # True/False (or 0/1) of the costs' shape, a choice per decision; checked on the CPU, used where costs are
        mask = check_mask(mask, tuple(costs.shape)).to(costs.device)
    if not bool(torch.isfinite(costs[mask]).all()):
        raise ValueError("costs contain NaN or inf in valid entries; give finite costs")
    return costs, mask


def normalize_context(context_decisions, tables: torch.Tensor, fixed: torch.Tensor, mask: torch.Tensor,
                      normalize: bool = True):
    """The engine's :class:`~automl.search.ContextCosts` from a cost table's exact per-combination tables.

    ``tables`` ``(A, D, Kmax)`` and ``fixed`` ``(A,)`` as :meth:`automl.compile.costs.CostTable.context` gives
    them. The tables are divided by the scale :func:`normalize_costs` would use over all of them (the
    largest per-choice cost of any combination; 1 when ``normalize`` is off), and the fixed costs become
    ``(F[a] - offset) / scale`` with ``offset = min_a F[a]``, so that an engine cost ``R`` is the total
    ``offset + scale * R`` and a total budget ``B`` is ``(B - offset) / scale`` in the engine's units. The
    context decisions' own rows and the entries beyond ``K_d`` are ignored, by the scale too (as by the model).

    Returns:
        ``(model, scale, offset)``.
    """
    tables, fixed, mask = cost_table(tables, "tables"), cost_table(fixed, "fixed").reshape(-1), check_mask(mask)
    if isinstance(normalize, (str, bytes)) or normalize not in (True, False):  # "no" would normalise
        raise ValueError(f"normalize must be True or False, got {shown(normalize)}")
    if tables.dim() != 3 or tuple(tables.shape[1:]) != tuple(mask.shape) or not tables.shape[0] \
            or fixed.shape != tables.shape[:1]:
        raise ValueError(f"tables must be (A, D, Kmax) = (A, {', '.join(map(str, mask.shape))}) with A >= 1 "
                         f"combinations and fixed (A,), got shapes {tuple(tables.shape)} and {tuple(fixed.shape)}")
    A = tables.shape[0]
    # the scale of the entries the model reads: its tables, the context decisions' own rows zeroed (ignored)
    tables = ContextCosts(context_decisions, tables, fixed, mask).tables
    scale = cost_scale(tables.reshape(-1, tables.shape[-1]), mask.repeat(A, 1)) if normalize else 1.0
    offset = float(fixed.min())
    return ContextCosts(context_decisions, tables / scale, (fixed - offset) / scale, mask), scale, offset
