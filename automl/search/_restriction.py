"""The range restriction of ASNG-NAS: every ``theta_{d,k} >= theta_min_d``, rows on the simplex."""

from __future__ import annotations

import torch

from ._checks import theta_min_table

__all__ = ["RangeRestriction"]

#: The guard is on where ``step_bound`` exceeds this times the smallest free mass: below, the step's rounding
#: (float64) stays under about 1e-6 of that mass. Normalised costs stay far below it, budgets' largest epsilon
#: included (``EPS_CAP * eta * max|c|`` is about 1e4 to 1e7).
_GUARD_FROM = 1e10


class RangeRestriction:
    """``theta >= theta_min`` with rows summing to 1, applied after every update.

    Args:
        num_choices: ``[K_1, ..., K_D]``.
        theta_min: the engine's ``theta_min`` argument (``None``: ASNG-NAS's bound, see
            :func:`automl.search._checks.theta_min_table`).
        mask: ``(D, Kmax)`` True where a choice exists (CPU).
        dtype, device: those of theta.
        step_bound: a bound on the cost term's size ``eta eps max|c|``. Where its rounding (about 1e-16 of it)
            could come near the mass a decision has above theta_min (``1 - K_d theta_min_d``), or the step
            overflow, every update checks its rows: a decision whose step is not finite or leaves no mass
            above theta_min keeps its previous distribution (``guard_overflow``). Ordinary, normalised
            costs never need the check, so they do not pay for it.
    """

    def __init__(self, num_choices: list[int], theta_min, mask: torch.Tensor,
                 dtype: torch.dtype, device: torch.device, step_bound: float):
        self.num_choices = num_choices
        self.theta_min = theta_min_table(num_choices, theta_min)               # list[float], per decision
        tmin = torch.tensor(self.theta_min, dtype=torch.float64).unsqueeze(1) * mask
        self._tmin = tmin.to(dtype=dtype, device=device)                       # (D, Kmax), 0 if masked
        self._tmin_sum = self._tmin.sum(-1, keepdim=True)                      # K_d theta_min_d
        self._free_mass = 1.0 - self._tmin_sum
        self.guard_overflow = step_bound > _GUARD_FROM * float(self._free_mass.min())

    def __call__(self, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        """Entries are lifted to theta_min, then the excess mass ``sum - 1`` is taken from the part
        above theta_min in proportion to it, which keeps every entry >= theta_min (a plain
        renormalisation could push lifted entries back below it).
        With theta_min = 0 this is clamp-at-0-and-renormalise. A decision whose step overflowed to a
        non-finite value, or whose rounding left no entry above theta_min (``sum - K theta_min <= 0``, which
        would be 0 / 0), keeps its previous distribution ``old`` (with ``guard_overflow``).
        """
        if self.guard_overflow:
            new = torch.where(torch.isfinite(new).all(-1, keepdim=True), new, old)
        new = torch.maximum(new, self._tmin)
        excess = new.sum(-1, keepdim=True) - self._tmin_sum                   # sum theta - sum theta_min
        if self.guard_overflow:
            # a step whose rounding left no mass above theta_min (0 / 0), or whose finite entries sum to inf
            broken = ~(torch.isfinite(excess) & (excess > 0))
            new = torch.where(broken, old, new)
            excess = torch.where(broken, old.sum(-1, keepdim=True) - self._tmin_sum, excess)
        # theta_min + (theta - theta_min) (1 - sum theta_min) / (sum theta - sum theta_min): sums to 1.
        factor = self._free_mass / excess
        return torch.addcmul(self._tmin, new - self._tmin, factor)

    def converged(self, max_prob: torch.Tensor) -> bool:
        """True when every ``max_k theta_{d,k}`` in ``max_prob (..., D)`` is within 0.01 of the most
        concentrated state allowed, ``1 - (K_d - 1) theta_min_d``."""
        limit = 1.0 - (torch.tensor(self.num_choices, dtype=max_prob.dtype) - 1) * torch.tensor(
            self.theta_min, dtype=max_prob.dtype) - 0.01
        return bool((max_prob.cpu() >= limit).all())
