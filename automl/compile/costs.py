"""The cost table: what each choice of each decision costs, per metric (the paper's c_{d,k}).

``params`` (the paper's metric: the number of weights of the chosen op) and ``macs`` (multiply-adds
per sample, :mod:`automl.nn.measure`) are measured by the compiler; other metrics are written in the
``.space`` file (``metric NAME ... end``) or added from a latency table (:meth:`CostTable.add_metric`,
``automl space profile``). The table is a dense ``(D, Kmax)`` tensor per metric with a mask for the ragged
choice counts, plus the fixed cost of the parts of the network that are not searched, so that
``total(arch) = fixed + sum_d c[d, arch[d]]``.

Elastic width makes costs depend on each other: a layer's parameters depend on the widths chosen for its
input and output. The decisions that choose widths are the table's *context*: for every combination ``a``
of their choices it holds the exact per-choice table ``T[a]`` (D, Kmax) and fixed cost ``F[a]`` of that
combination (the context decisions' own rows are 0), so ``total(arch) = F[a] + sum_d T[a, d, arch[d]]``
stays exact. :meth:`CostTable.costs` is then an additive summary (see :meth:`CostTable.context`).
"""

from __future__ import annotations

import itertools
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
        contexts: elastic width: ``(decisions, {metric: (tables, fixed)})``: the context decisions and, for a
            metric whose costs depend on them, one table (rows as in ``costs``) and one fixed cost per
            combination of their choices (row-major, the first decision slowest); or the tables as one
            ``(A, D, Kmax)`` tensor (0 past each row's end) and the fixed costs as an ``(A,)`` tensor. Such a metric's
            ``costs``/``fixed`` arguments are ignored: :meth:`costs` and :attr:`fixed` hold the additive
            summary of the exact tables.
        estimate: metric name -> why its table is an estimate of the built networks' costs rather than exact,
            in a few words (e.g. ``"ops of stride 2 counted at stride 1"``; several reasons joined by ``", "``).
            Kept as the attribute :attr:`estimate`.

    Attributes:
        estimate: ``{metric: reason}`` for each metric whose table only approximates what the networks it prices
            build to (a cell space's ``params`` and ``macs`` where its cells' layout makes the per-choice sum
            inexact, docs/space-language.md "Cell spaces: an approximation"); a metric not in it is exact (its
            totals are what the built network has, or, for a ``.space`` file's own metric or a profiled one, the
            sum of the table by definition). Empty for chain spaces and for cell spaces such as NAS-Bench-201.
    """

    def __init__(self, choice_names: Sequence[Sequence[str]], costs: dict[str, Sequence[Sequence[float]]],
                 fixed: dict[str, float], gates: dict[int, tuple[int, Sequence[bool]]] | None = None,
                 contexts: tuple[Sequence[int], dict[str, tuple]] | None = None,
                 estimate: dict[str, str] | None = None):
        self.choice_names: list[list[str]] = [list(c) for c in choice_names]
        num_dec = len(self.choice_names)
        kmax = max((len(c) for c in self.choice_names), default=0)
        self.mask = torch.zeros(num_dec, kmax, dtype=torch.bool)
        for d, c in enumerate(self.choice_names):
            self.mask[d, :len(c)] = True
        self._costs: dict[str, torch.Tensor] = {metric: _dense(rows, num_dec, kmax) for metric, rows in costs.items()}
        self.fixed: dict[str, float] = {m: float(fixed.get(m, 0.0)) for m in self._costs}
        self.gates: dict[int, tuple[int, tuple[bool, ...]]] = {int(d): (int(g), tuple(bool(v) for v in on))
                                                               for d, (g, on) in (gates or {}).items()}
        self.context_decisions: tuple[int, ...] = tuple(int(d) for d in (contexts[0] if contexts else ()))
        self._ctx: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for metric, (tables, fixeds) in (contexts[1] if contexts else {}).items():
            if isinstance(tables, torch.Tensor):  # (A, D, Kmax), 0 past each row's end, as made from rows
                t = tables.to(torch.float64).reshape(-1, num_dec, kmax)
            else:
                t = torch.stack([_dense(rows, num_dec, kmax) for rows in tables]) if len(tables) else \
                    torch.zeros(0, num_dec, kmax, dtype=torch.float64)
            self._ctx[metric] = (t, torch.as_tensor(fixeds, dtype=torch.float64).reshape(-1) if
                                 isinstance(fixeds, torch.Tensor) else
                                 torch.tensor([float(v) for v in fixeds], dtype=torch.float64))
            self._costs[metric], self.fixed[metric] = self._summary(metric)
        unknown = [m for m in (estimate or {}) if m not in self._costs]
        if unknown:
            raise ValueError(f"estimate names metric(s) {', '.join(map(repr, unknown))} the table does not have")
        self.estimate: dict[str, str] = {m: str(why) for m, why in (estimate or {}).items() if why}

    # ---- elastic width: the context ------------------------------------------------------------

    def context(self, metric: str = "params") -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(T, F)``: the exact ``(A, D, Kmax)`` tables and ``(A,)`` fixed costs of the ``A`` combinations of
        the context decisions' choices (copies), or None when the metric's costs do not depend on them."""
        self._check(metric)
        if metric not in self._ctx:
            return None
        t, f = self._ctx[metric]
        return t.clone(), f.clone()

    def context_index(self, idx: Sequence[int]) -> int:
        """The combination index ``a`` of an architecture (a list of ints): row-major over the context."""
        a = 0
        for d in self.context_decisions:
            a = a * len(self.choice_names[d]) + idx[d]
        return a

    def _combos(self):
        """``(a, {context decision: choice})`` for every combination, in the tables' order."""
        ranges = [range(len(self.choice_names[d])) for d in self.context_decisions]
        for a, combo in enumerate(itertools.product(*ranges)):
            yield a, dict(zip(self.context_decisions, combo))

    def _summary(self, metric: str) -> tuple[torch.Tensor, float]:
        """The additive summary of the exact tables: ``c[d, k] = E[R | h_d = k] - min_j E[R | h_d = j]``, the
        expectations over uniformly random architectures (gated rows as if present), and ``fixed`` such that
        ``fixed + sum_d c[d, k_d] = E[R] + sum_d (E[R | h_d = k_d] - E[R])``: the first-order (ANOVA)
        approximation of R, exact when R is additive. The search's exact costs come from :meth:`context`."""
        t, f = self._ctx[metric]
        counts = self.mask.sum(-1).to(torch.float64)                     # (D,)
        mean_k = t.sum(-1) / counts                                       # (A, D)
        value = f + mean_k.sum(-1)                                        # E[R | context a]
        mean = float(value.mean())
        cond = t.mean(0) - mean_k.mean(0).unsqueeze(-1) + mean            # E[R | h_d = k], d not context
        values = value.tolist()
        for d in self.context_decisions:
            sums = [0.0] * len(self.choice_names[d])
            for a, combo in self._combos():  # in the tables' order, one float64 addition at a time
                sums[combo[d]] += values[a]
            row = torch.tensor(sums, dtype=torch.float64)
            cond[d, :len(row)] = row / (len(value) / len(row))
        cond = cond.masked_fill(~self.mask, float("inf"))
        low = cond.min(-1).values                                         # (D,)
        out = (cond - low.unsqueeze(-1)).masked_fill(~self.mask, 0.0)
        return out, mean + float((low - mean).sum())

    def add_metric(self, metric: str, rows: Sequence[Sequence[float]], fixed: float = 0.0) -> None:
        """Add a metric (e.g. a latency table measured by ``automl space profile``); rows as in ``costs``."""
        if metric in self._costs:
            how = ("the compiler measures it" if metric in BUILTIN_METRICS else
                   f"the space file has a `metric {metric}` block: rename that block")
            raise UserError(f"a table of {metric!r} cannot be added to the space's costs: it has a metric "
                            f"{metric!r} already ({how})")
        if self.context_decisions:
            raise UserError(f"metric {metric!r}: a table of one cost per choice cannot describe a space with "
                            f"elastic widths (a layer's cost depends on the widths chosen); measure params or "
                            f"macs, which the compiler computes for every combination of widths")
        if len(rows) != len(self.choice_names) or any(len(r) != len(c) for r, c in zip(rows, self.choice_names)):
            raise UserError(f"metric {metric!r}: the costs do not match the decisions and choices")
        self._costs[metric] = _dense(rows, *self.mask.shape)
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
        fixed = self.fixed[metric]
        if metric in self._ctx:  # elastic width: the exact table of the architecture's widths
            a = self.context_index(idx)
            t, fixed = self._ctx[metric][0][a], float(self._ctx[metric][1][a])
        return fixed + float(sum(t[d, k].item() for d, k in enumerate(idx)
                                 if d not in self.gates or self.gates[d][1][idx[self.gates[d][0]]]))

    def _extreme(self, metric: str, largest: bool) -> tuple[float, torch.Tensor]:
        """(total, architecture) of the most or least expensive architecture, exact with gates and
        elastic widths (the best of every combination of widths)."""
        t = self._check(metric)
        if metric not in self._ctx:
            return self._extreme_in(t.unsqueeze(0), [self.fixed[metric]], largest, [{}])[0]
        tables, fixeds = self._ctx[metric]
        combos = [combo for _, combo in self._combos()]
        found = self._extreme_in(tables, fixeds.tolist(), largest, combos)
        return (max if largest else min)(found, key=lambda x: x[0])

    def _extreme_in(self, tables: torch.Tensor, fixeds: list[float], largest: bool, forced: list[dict[int, int]]):
        """:meth:`_extreme` for each table ``tables[a]`` (A, D, Kmax) with fixed cost ``fixeds[a]``, the
        ``forced[a]`` decisions held (a combination of widths): a list of ``(total, architecture)``. One
        reduction over all the tables, then plain floats (a reduction per table was most of the time)."""
        if not len(self.choice_names):
            return [(fixed, torch.zeros(0, dtype=torch.long)) for fixed in fixeds]
        fill = float("-inf") if largest else float("inf")
        masked = tables.masked_fill(~self.mask, fill)
        best_t, arg = (masked.max(dim=2) if largest else masked.min(dim=2))
        by_gate: dict[int, list[int]] = {}
        for d, (g, _) in self.gates.items():
            by_gate.setdefault(g, []).append(d)
        gates = list(by_gate)
        gate_rows = tables[:, gates].tolist()  # (A, G, Kmax): the depth decisions' own costs
        found = []
        for a, (best, fixed, held) in enumerate(zip(best_t.tolist(), fixeds, forced)):
            arch = arg[a].clone()
            for d, k in held.items():  # a context decision's own row is 0: its choice is the combination's
                arch[d] = k
            total = fixed + sum(best[d] for d in range(len(self.choice_names)) if d not in self.gates)
            for i, (g, ds) in enumerate(by_gate.items()):
                own = best[g]  # counted above (a depth decision is not gated itself)
                options = []
                for k in range(len(self.choice_names[g])):
                    value = gate_rows[a][i][k] + sum(best[d] for d in ds if self.gates[d][1][k])
                    options.append((value, k))
                value, k = (max if largest else min)(options)
                total += value - own
                arch[g] = k
            found.append((total, arch))
        return found

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
                f"fixed={self.fixed}" + (f", estimate={self.estimate}" if self.estimate else "") + ")")


def _dense(rows: Sequence[Sequence[float]], num_dec: int, kmax: int) -> torch.Tensor:
    """``rows`` (one row of costs per decision, ragged) as a ``(num_dec, kmax)`` float64 tensor, 0 past each
    row's end: one tensor made from Python floats (a tensor per row was most of the time of a large table)."""
    padded = [[float(v) for v in row] + [0.0] * (kmax - len(row)) for row in rows]
    padded += [[0.0] * kmax for _ in range(num_dec - len(padded))]
    return torch.tensor(padded, dtype=torch.float64).reshape(num_dec, kmax)
