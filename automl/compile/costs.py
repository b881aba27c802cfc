"""The cost table: what each choice of each decision costs, per metric (the paper's c_{d,k}).

``params`` (the paper's metric: the number of weights of the chosen op) and ``macs`` (multiply-adds
per sample, :mod:`automl.nn.measure`) are measured by the compiler; other metrics are written in the ``.space`` file (``metric NAME ... end``). The table is a dense
``(D, Kmax)`` tensor per metric with a mask for the ragged choice counts, plus the fixed cost of the
parts of the network that are not searched, so that ``total(arch) = fixed + sum_d c[d, arch[d]]``.
"""

from __future__ import annotations

from typing import Sequence

import torch

from automl.errors import UserError
from automl.plan import check_arch

__all__ = ["CostTable", "BUILTIN_METRICS"]

BUILTIN_METRICS = ("params", "macs")  # measured by the compiler for every space


class CostTable:
    """Per-choice costs for every metric.

    Args:
        choice_names: the choices of every decision, in declaration order.
        costs: metric name -> list (one per decision) of per-choice costs.
        fixed: metric name -> cost of the non-searched parts.
        gates: elastic depth: decision d -> (depth decision g, per choice of g whether d's layer is there).
            A gated decision's cost counts in :meth:`total` only when its layer is there, so totals stay
            exact; :meth:`costs` (what a search regularises with) holds every choice's cost as if its layer
            were there: an upper bound of what a gated decision adds.
    """

    def __init__(self, choice_names: Sequence[Sequence[str]], costs: dict[str, Sequence[Sequence[float]]],
                 fixed: dict[str, float], gates: dict[int, tuple[int, Sequence[bool]]] | None = None):
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
        self.gates: dict[int, tuple[int, tuple[bool, ...]]] = {int(d): (int(g), tuple(bool(v) for v in on))
                                                               for d, (g, on) in (gates or {}).items()}

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
        return check_arch(arch, [len(c) for c in self.choice_names])

    def total(self, arch, metric: str = "params") -> float:
        """fixed + the sum of the chosen costs (the paper's R(M) plus the non-searched parts)."""
        t = self._check(metric)
        idx = self._indices(arch)
        return self.fixed[metric] + float(sum(t[d, k].item() for d, k in enumerate(idx)
                                              if d not in self.gates or self.gates[d][1][idx[self.gates[d][0]]]))

    def _extreme(self, metric: str, largest: bool) -> tuple[float, torch.Tensor]:
        """(total, architecture) of the most or least expensive architecture, exact with gates: each
        depth decision takes the choice that, with its gated rows' best choices, is best."""
        t = self._check(metric)
        fill = float("-inf") if largest else float("inf")
        masked = t.masked_fill(~self.mask, fill)
        if not len(self.choice_names):
            return self.fixed[metric], torch.zeros(0, dtype=torch.long)
        best, arg = (masked.max(dim=1) if largest else masked.min(dim=1))
        arch = arg.clone()
        total = self.fixed[metric] + sum(float(best[d]) for d in range(len(self.choice_names))
                                         if d not in self.gates)
        by_gate: dict[int, list[int]] = {}
        for d, (g, _) in self.gates.items():
            by_gate.setdefault(g, []).append(d)
        for g, ds in by_gate.items():
            own = float(best[g])  # counted above (a depth decision is not gated itself)
            options = []
            for k in range(len(self.choice_names[g])):
                value = float(t[g, k]) + sum(float(best[d]) for d in ds if self.gates[d][1][k])
                options.append((value, k))
            value, k = (max if largest else min)(options)
            total += value - own
            arch[g] = k
        return total, arch

    def min_total(self, metric: str = "params") -> float:
        """The cost of the cheapest architecture."""
        return self._extreme(metric, largest=False)[0]

    def max_total(self, metric: str = "params") -> float:
        """The cost of the most expensive architecture."""
        return self._extreme(metric, largest=True)[0]

    def cheapest(self, metric: str = "params") -> torch.Tensor:
        """The architecture (LongTensor (D,)) of least cost."""
        return self._extreme(metric, largest=False)[1]

    def most_expensive(self, metric: str = "params") -> torch.Tensor:
        return self._extreme(metric, largest=True)[1]

    def __repr__(self) -> str:
        return (f"CostTable(D={len(self.choice_names)}, metrics={list(self.metrics)}, "
                f"fixed={self.fixed})")
