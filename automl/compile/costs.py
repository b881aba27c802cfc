"""The cost table: what each choice of each decision costs, per metric (the paper's c_{d,k}).

``params`` (the paper's metric: the number of weights of the chosen op) and ``macs`` (multiply-adds
per sample, :mod:`automl.compile.macs`) are measured by the compiler; other metrics are written in the ``.space`` file (``metric NAME ... end``). The table is a dense
``(D, Kmax)`` tensor per metric with a mask for the ragged choice counts, plus the fixed cost of the
parts of the network that are not searched, so that ``total(arch) = fixed + sum_d c[d, arch[d]]``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from automl.errors import UserError

__all__ = ["CostTable", "count_params", "BUILTIN_METRICS"]

BUILTIN_METRICS = ("params", "macs")  # measured by the compiler for every space


def count_params(module: nn.Module) -> int:
    """Number of weights (parameters) of a module; works on the meta device."""
    return sum(p.numel() for p in module.parameters())


class CostTable:
    """Per-choice costs for every metric.

    Args:
        choice_names: the choices of every decision, in declaration order.
        costs: metric name -> list (one per decision) of per-choice costs.
        fixed: metric name -> cost of the non-searched parts.
    """

    def __init__(self, choice_names: Sequence[Sequence[str]], costs: dict[str, Sequence[Sequence[float]]],
                 fixed: dict[str, float]):
        self.choice_names: list[list[str]] = [list(c) for c in choice_names]
        num_dec = len(self.choice_names)
        kmax = max((len(c) for c in self.choice_names), default=0)
        self.mask = torch.zeros(num_dec, kmax, dtype=torch.bool)
        for d, c in enumerate(self.choice_names):
            self.mask[d, :len(c)] = True
        self._costs: dict[str, torch.Tensor] = {}
        for metric, rows in costs.items():
            t = torch.zeros(num_dec, kmax, dtype=torch.float64)
            for d, row in enumerate(rows):
                t[d, :len(row)] = torch.tensor([float(v) for v in row], dtype=torch.float64)
            self._costs[metric] = t
        self.fixed: dict[str, float] = {m: float(fixed.get(m, 0.0)) for m in self._costs}

    def add_metric(self, metric: str, rows: Sequence[Sequence[float]], fixed: float = 0.0) -> None:
        """Add a metric (e.g. a latency table measured by ``automl space profile``); rows as in ``costs``."""
        if metric in self._costs:
            raise UserError(f"the cost table already has a metric {metric!r}")
        if len(rows) != len(self.choice_names) or any(len(r) != len(c) for r, c in zip(rows, self.choice_names)):
            raise UserError(f"metric {metric!r}: the costs do not match the decisions and choices")
        t = torch.zeros(self.mask.shape, dtype=torch.float64)
        for d, row in enumerate(rows):
            t[d, :len(row)] = torch.tensor([float(v) for v in row], dtype=torch.float64)
        self._costs[metric] = t
        self.fixed[metric] = float(fixed)

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self._costs)

    def _check(self, metric: str) -> torch.Tensor:
        if metric not in self._costs:
            raise UserError(f"unknown cost metric {metric!r}; this space has: {', '.join(self.metrics)}")
        return self._costs[metric]

    def costs(self, metric: str = "params") -> torch.Tensor:
        """``(D, Kmax)`` float64 costs, 0 where masked. A copy: changing it changes nothing here."""
        return self._check(metric).clone()

    def _indices(self, arch) -> list[int]:
        a = arch.tolist() if isinstance(arch, torch.Tensor) else list(arch)
        if len(a) != len(self.choice_names):
            raise UserError(f"an architecture has {len(self.choice_names)} choices, got {len(a)}")
        for d, k in enumerate(a):
            if not 0 <= int(k) < len(self.choice_names[d]):
                raise UserError(f"choice index {k} out of range for decision {d} "
                                f"({len(self.choice_names[d])} choices)")
        return [int(k) for k in a]

    def total(self, arch, metric: str = "params") -> float:
        """fixed + the sum of the chosen costs (the paper's R(M) plus the non-searched parts)."""
        t = self._check(metric)
        idx = self._indices(arch)
        return self.fixed[metric] + float(sum(t[d, k].item() for d, k in enumerate(idx)))

    def _row_extreme(self, metric: str, largest: bool) -> float:
        t = self._check(metric)
        fill = float("-inf") if largest else float("inf")
        masked = t.masked_fill(~self.mask, fill)
        rows = masked.max(dim=1).values if largest else masked.min(dim=1).values
        return self.fixed[metric] + float(rows.sum().item()) if len(self.choice_names) else self.fixed[metric]

    def min_total(self, metric: str = "params") -> float:
        """The cost of the cheapest architecture."""
        return self._row_extreme(metric, largest=False)

    def max_total(self, metric: str = "params") -> float:
        """The cost of the most expensive architecture."""
        return self._row_extreme(metric, largest=True)

    def cheapest(self, metric: str = "params") -> torch.Tensor:
        """The architecture (LongTensor (D,)) of least cost."""
        t = self._check(metric).masked_fill(~self.mask, float("inf"))
        return t.argmin(dim=1) if len(self.choice_names) else torch.zeros(0, dtype=torch.long)

    def most_expensive(self, metric: str = "params") -> torch.Tensor:
        t = self._check(metric).masked_fill(~self.mask, float("-inf"))
        return t.argmax(dim=1) if len(self.choice_names) else torch.zeros(0, dtype=torch.long)

    def __repr__(self) -> str:
        return (f"CostTable(D={len(self.choice_names)}, metrics={list(self.metrics)}, "
                f"fixed={self.fixed})")
