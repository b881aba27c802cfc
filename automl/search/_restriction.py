"""The range restriction of ASNG-NAS: every ``theta_{d,k} >= theta_min_d``, rows on the simplex."""

from __future__ import annotations

import torch

from ._checks import theta_min_table

__all__ = ["RangeRestriction"]


class RangeRestriction:
    """``theta >= theta_min`` with rows summing to 1, applied after every update.

    Args:
        num_choices: ``[K_1, ..., K_D]``.
        theta_min: the engine's ``theta_min`` argument (``None``: ASNG-NAS's bound, see
            :func:`automl.search._checks.theta_min_table`).
        mask: ``(D, Kmax)`` True where a choice exists (CPU).
        dtype, device: those of theta.
        guard_overflow: keep the previous distribution of a decision whose step is not finite (only
            astronomical costs can overflow, so the check is paid only when asked for).
    """

    def __init__(self, num_choices: list[int], theta_min, mask: torch.Tensor,
                 dtype: torch.dtype, device: torch.device, guard_overflow: bool):
        self.num_choices = num_choices
        self.theta_min = theta_min_table(num_choices, theta_min)               # list[float], per decision
        tmin = torch.tensor(self.theta_min, dtype=torch.float64).unsqueeze(1) * mask
        self._tmin = tmin.to(dtype=dtype, device=device)                       # (D, Kmax), 0 if masked
        self._tmin_sum = self._tmin.sum(-1, keepdim=True)                      # K_d theta_min_d
        self._free_mass = 1.0 - self._tmin_sum
        self.guard_overflow = guard_overflow

    def __call__(self, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        """Entries are lifted to theta_min, then the excess mass ``sum - 1`` is taken from the part
        above theta_min in proportion to it, which keeps every entry >= theta_min (a plain
        renormalisation could push lifted entries back below it).
        With theta_min = 0 this is clamp-at-0-and-renormalise. A decision whose step overflowed to a
        non-finite value keeps its previous distribution ``old`` (with ``guard_overflow``).
        """
        if self.guard_overflow:
            new = torch.where(torch.isfinite(new).all(-1, keepdim=True), new, old)
        new = torch.maximum(new, self._tmin)
        # theta_min + (theta - theta_min) (1 - sum theta_min) / (sum theta - sum theta_min): sums to 1.
        factor = self._free_mass / (new.sum(-1, keepdim=True) - self._tmin_sum)
        return torch.addcmul(self._tmin, new - self._tmin, factor)

    def converged(self, max_prob: torch.Tensor) -> bool:
        """True when every ``max_k theta_{d,k}`` in ``max_prob (..., D)`` is within 0.01 of the most
        concentrated state allowed, ``1 - (K_d - 1) theta_min_d``."""
        limit = 1.0 - (torch.tensor(self.num_choices, dtype=max_prob.dtype) - 1) * torch.tensor(
            self.theta_min, dtype=max_prob.dtype) - 0.01
        return bool((max_prob.cpu() >= limit).all())
