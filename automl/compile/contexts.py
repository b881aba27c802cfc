"""The measured cost tables (``params``, ``macs``) of a space with elastic widths or resolutions: one exact
``(D, Kmax)`` table and one fixed cost per combination of the context decisions' choices (the width decisions,
row-major, the first slowest, then the resolution, fastest), as :class:`automl.compile.costs.CostTable` takes them.

A chain layer's costs depend on the widths it reads (its input and output width decisions, and the previous
layer's output width, which is its input's) and on the resolution, not on the other widths; the fixed cost (stem,
fixed layers, head) and a depth decision's row (its fixed layers') on the widths its fixed layers and the head
read. So each *group* of decisions that read the same width decisions is measured (:mod:`automl.nn.measure`, on
whole plans) only at every combination of the widths it reads, the other widths at their first choice, and each
combination's table is gathered from those measurements: a few dozen plans measured where there are thousands of
combinations, and the tables made as tensors, not as Python lists of numbers.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import torch

from automl.nn.measure import measure_macs, measure_params

__all__ = ["context_costs"]


def context_costs(kind: str, plan, decisions, input_shape, resolutions,
                  modules: dict | None = None) -> tuple[tuple[int, ...], dict]:
    """``(context, {metric: (tables, fixed)})``: the context decisions (the width decisions, then the resolution
    decision, the last of ``decisions``) and, for ``params`` and ``macs``, the ``(A, D, Kmax)`` float64 tables and
    ``(A,)`` fixed costs of the ``A`` combinations of their choices. ``input_shape`` is ``(C, H, W)``;
    ``resolutions`` the input sizes of the resolution decision (empty: none); the meta-device ops built to measure
    them are kept in ``modules`` where given (a dict; building them again is most of the time)."""
    widths = plan.width_decisions if kind == "chain" else ()
    context = widths + ((len(decisions) - 1,) if resolutions else ())
    sizes = [tuple(input_shape[1:])] if not resolutions else [(v, v) for v in resolutions]
    counts = [len(decisions[d].choices) for d in widths]
    groups = _groups(plan, widths, decisions) if widths else {(): list(range(len(decisions)))}
    measured = _measure(kind, plan, decisions, widths, counts, input_shape[0], sizes, groups,
                        {} if modules is None else modules)
    num, kmax = len(decisions), max(len(d.choices) for d in decisions)
    combos = math.prod(counts)
    grid = _grid(counts)  # (combos, widths): each combination's choices
    fixed_group = next(iter(groups))
    out = {}
    for metric in ("params", "macs"):
        tables = torch.zeros(combos, len(sizes), num, kmax, dtype=torch.float64)
        for reads, ds in groups.items():
            rows, fixeds = _group_values(measured, metric, reads, counts, ds, kmax)
            at = _flat_index(grid, reads, counts)  # (combos,): each combination's index among the group's
            tables[:, :, torch.tensor(ds, dtype=torch.long)] = rows[at]
            if reads == fixed_group:
                fixed = fixeds[at]
        out[metric] = (tables.reshape(-1, num, kmax), fixed.reshape(-1))
    return context, out


def _groups(plan, widths: tuple[int, ...], decisions) -> dict[tuple[int, ...], list[int]]:
    """The decisions by the width decisions their costs read (positions in ``widths``, ascending): a layer's
    decision reads its layer's input and output widths and the previous layer's output width; every other
    decision (width, depth and resolution decisions), and the fixed cost, the widths of the fixed layers and of
    the last layer (the head's input). The group of the fixed cost is listed first and always."""
    pos = {d: j for j, d in enumerate(widths)}

    def reads(i: int) -> set[int]:
        layer = plan.layers[i]
        found = {layer.in_width_dec, layer.width_dec, plan.layers[i - 1].width_dec if i else None}
        return {pos[d] for d in found if d is not None}

    fixed_reads: set[int] = set()
    by_layer: dict[int, tuple[int, ...]] = {}
    for i, layer in enumerate(plan.layers):
        if layer.decision is None:
            fixed_reads |= reads(i)
        else:
            by_layer[layer.decision] = tuple(sorted(reads(i)))
    if plan.layers and plan.layers[-1].width_dec is not None:
        fixed_reads.add(pos[plan.layers[-1].width_dec])
    fixed_key = tuple(sorted(fixed_reads))
    groups: dict[tuple[int, ...], list[int]] = {fixed_key: []}
    for d in range(len(decisions)):
        key = by_layer.get(d, fixed_key)
        groups.setdefault(key, []).append(d)
    return groups


def _measure(kind: str, plan, decisions, widths, counts, chans: int, sizes, groups, modules: dict) -> dict:
    """``{combination: (params (costs, fixed), [macs (costs, fixed) per size])}`` for every combination of the
    width decisions that some group reads (its widths at every choice, the others at 0), measured once each; the
    ops are built and counted once per shape (caches shared by every combination; the built meta-device ops kept
    in ``modules``)."""
    caches: dict[str, dict] = {"params": {}, "macs": {}, "modules": modules}
    layers: dict = {}  # each layer's fixed-width copy, made once per the widths it reads
    measured: dict = {}
    for reads in groups:
        for choice in itertools.product(*(range(counts[j]) for j in reads)):
            combo = [0] * len(widths)
            for j, k in zip(reads, choice):
                combo[j] = k
            combo = tuple(combo)
            if combo in measured:
                continue
            at = _plan_at(plan, widths, combo, layers)
            params = measure_params(kind, at, decisions, caches["params"], caches["modules"])
            macs = [measure_macs(kind, at, decisions, (chans, *size), caches["macs"], caches["modules"])
                    for size in sizes]
            measured[combo] = (params, macs)
    return measured


def _plan_at(plan, widths, combo: tuple[int, ...], layers: dict):
    """``plan.at(combination)`` (``plan`` itself without width decisions), each layer's fixed-width copy made once
    per the widths it reads (``ChainLayer.at`` reads its input and output width decisions)."""
    if not widths:
        return plan
    chosen = dict(zip(widths, combo))
    at = []
    for i, layer in enumerate(plan.layers):
        key = (i, chosen.get(layer.in_width_dec), chosen.get(layer.width_dec))
        if key not in layers:
            layers[key] = layer.at(chosen)
        at.append(layers[key])
    return replace(plan, layers=tuple(at))


def _group_values(measured: dict, metric: str, reads, counts, ds: list[int], kmax: int):
    """``(rows, fixed)`` of one group: ``rows`` ``(G, sizes, len(ds), Kmax)`` float64, the decisions ``ds``' rows
    at each of the ``G`` combinations of the widths the group reads (row-major), 0 past each row's end; ``fixed``
    ``(G, sizes)``, the fixed cost at each (the fixed cost's group's is the table's)."""
    rows, fixeds = [], []
    for choice in itertools.product(*(range(counts[j]) for j in reads)):
        combo = [0] * len(counts)
        for j, k in zip(reads, choice):
            combo[j] = k
        params, macs = measured[tuple(combo)]
        per_size = [params] * len(macs) if metric == "params" else macs
        rows.append([[_padded(costs[d], kmax) for d in ds] for costs, _ in per_size])
        fixeds.append([float(f) for _, f in per_size])
    n_sizes = len(fixeds[0])
    tensor = torch.tensor(rows, dtype=torch.float64).reshape(len(rows), n_sizes, len(ds), kmax)
    return tensor, torch.tensor(fixeds, dtype=torch.float64)


def _padded(row, kmax: int) -> list[float]:
    return [float(v) for v in row] + [0.0] * (kmax - len(row))


def _grid(counts: list[int]) -> torch.Tensor:
    """``(prod(counts), len(counts))`` long: the choices of every combination, row-major (the first slowest)."""
    total = math.prod(counts)
    a = torch.arange(total)
    cols, stride = [], total
    for n in counts:
        stride //= n
        cols.append(a // stride % n)
    return torch.stack(cols, 1) if cols else torch.zeros(total, 0, dtype=torch.long)


def _flat_index(grid: torch.Tensor, reads: tuple[int, ...], counts: list[int]) -> torch.Tensor:
    """Each combination's index among the combinations of the widths ``reads`` (row-major, the first slowest)."""
    index = torch.zeros(len(grid), dtype=torch.long)
    for j in reads:
        index = index * counts[j] + grid[:, j]
    return index
