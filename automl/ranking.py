"""How well the supernet ranks architectures: the recipe's ``ranking`` section and ``automl rank``.

K architectures spread over the cost range are scored on the trained supernet (BatchNorm statistics
recalibrated for each one on a few training batches, as Once-for-All does: the running statistics of a
weight-sharing supernet average over random paths and fit no single one) and retrained stand-alone. The
rank correlation between the two orders (Kendall's τ-b and Spearman's ρ) says how far the search, which
ranks paths by their supernet loss, can be trusted.

The correlations are computed here in a few lines of numpy (scipy is not a dependency); the tests check them
against a brute-force count over all pairs.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from automl.plan import count_networks

__all__ = ["kendall_tau_b", "spearman", "pair_counts", "space_size", "ExactCosts", "exact_costs", "select_archs",
           "seed_mean", "mean_over_seeds", "summarize"]


def _pair_tallies(x: np.ndarray, y: np.ndarray) -> dict:
    """Over the pairs i < j: ``concordant``, ``discordant``, ``tied`` (in x, in y or both) and ``undefined`` (a
    value of the pair in x or y not finite), and ``differ_x`` / ``differ_y``, the pairs not tied in x / in y
    (a non-finite value counts as 0 there). One row of pairs at a time: memory O(n), not O(n²)."""
    ok = np.isfinite(x) & np.isfinite(y)
    fx, fy = np.where(np.isfinite(x), x, 0.0), np.where(np.isfinite(y), y, 0.0)
    out = dict.fromkeys(("concordant", "discordant", "tied", "undefined", "differ_x", "differ_y"), 0)
    for i in range(len(x) - 1):
        sx, sy = np.sign(fx[i + 1:] - fx[i]), np.sign(fy[i + 1:] - fy[i])
        prod, defined = sx * sy, ok[i + 1:] & ok[i]
        out["concordant"] += int((defined & (prod > 0)).sum())
        out["discordant"] += int((defined & (prod < 0)).sum())
        out["tied"] += int((defined & (prod == 0)).sum())
        out["undefined"] += int((~defined).sum())
        out["differ_x"] += int(np.count_nonzero(sx))
        out["differ_y"] += int(np.count_nonzero(sy))
    return out


def _all_finite(*vs: np.ndarray) -> bool:
    return all(bool(np.isfinite(v).all()) for v in vs)


def pair_counts(x, y) -> dict:
    """Pairs (i < j) ordered the same way by ``x`` and ``y`` (concordant), the opposite way (discordant),
    tied in either, or undefined: a value of the pair in ``x`` or ``y`` is not finite (NaN, or ±inf, which
    results.json writes as null too, so it has no place in an order). The four add up to ``total``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    t = _pair_tallies(x, y)
    return {"total": len(x) * (len(x) - 1) // 2, **{k: t[k] for k in ("concordant", "discordant", "tied", "undefined")}}


def kendall_tau_b(x, y) -> float:
    """Kendall's τ-b: (concordant − discordant) / sqrt((n0 − n_x) (n0 − n_y)), ties counted per variable
    (n0 pairs, n_x of them tied in x, n_y tied in y). NaN when either variable is constant or holds a value
    that is not finite (NaN or ±inf), as :func:`spearman` gives."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if not _all_finite(x, y):
        return float("nan")
    t = _pair_tallies(x, y)
    denom = math.sqrt(float(t["differ_x"]) * float(t["differ_y"]))
    return float(t["concordant"] - t["discordant"]) / denom if denom > 0 else float("nan")


def _ranks(v: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their mean rank."""
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v), float)
    sv = v[order]
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x, y) -> float:
    """Spearman's ρ: the Pearson correlation of the (mid-)ranks. NaN when either variable is constant or
    holds a value that is not finite (NaN, which has no place in an order, or ±inf, which results.json writes
    as null like NaN), as :func:`kendall_tau_b` gives."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if not _all_finite(x, y):
        return float("nan")
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def space_size(num_choices) -> int:
    return math.prod(int(k) for k in num_choices)


ENUMERABLE = 1 << 24  # architectures x decisions listed at most, when the pool's samples hold fewer than K


def _tilted(ks: list[int], costs: torch.Tensor, pool: int, g: torch.Generator) -> torch.Tensor:
    """``pool`` architectures tilted from cheap to costly (decision d takes choice j with probability
    ∝ exp(β c_dj / max_j c_dj), β from −6 to 6)."""
    beta = torch.linspace(-6, 6, pool, dtype=torch.float64)[:, None]
    cols = []
    for d, kd in enumerate(ks):
        c = costs[d, :kd]
        rel = (c - c.min()) / (c.max() - c.min()) if c.max() > c.min() else torch.zeros_like(c)
        cols.append(torch.multinomial(torch.softmax(beta * rel, 1), 1, generator=g)[:, 0])
    return torch.stack(cols, 1)


def _every(ks: list[int]) -> torch.Tensor:
    """Every architecture of the space, (n, D)."""
    return torch.tensor(list(itertools.product(*[range(kd) for kd in ks])), dtype=torch.long)


@dataclass(frozen=True)
class ExactCosts:
    """A space's exact architecture costs, for :func:`select_archs` where the additive per-choice table is not
    them (elastic depth's gates, elastic width's context tables: :func:`exact_costs`).

    ``totals`` maps architectures (LongTensor (S, D)) to their exact totals (float64 (S,));
    ``cheapest`` / ``most_expensive`` are the architectures of least and greatest exact total; ``tilt`` is the
    (D, Kmax) per-choice table the seeded pool is tilted with; ``canonical`` maps architectures to one
    representative of their network (a decision whose layer elastic depth leaves out at choice 0), and
    ``networks`` counts the distinct networks."""
    totals: Callable[[torch.Tensor], torch.Tensor]
    cheapest: torch.Tensor
    most_expensive: torch.Tensor
    tilt: torch.Tensor
    canonical: Callable[[torch.Tensor], torch.Tensor]
    networks: int


def exact_costs(cost_table, metric: str) -> ExactCosts | None:
    """The exact costs of ``metric`` in ``cost_table`` (an :class:`automl.compile.CostTable`): what
    :meth:`~automl.compile.CostTable.total` computes, for a batch at once; None where the additive table
    (:meth:`~automl.compile.CostTable.costs`) is exact (no gates, no context tables for the metric)."""
    ctx, gates = cost_table.context(metric), cost_table.gates
    if ctx is None and not gates:
        return None
    ks = [len(c) for c in cost_table.choice_names]
    costs = cost_table.costs(metric)
    tables, fixed = ctx if ctx is not None else (costs[None], torch.tensor([cost_table.fixed[metric]],
                                                                           dtype=torch.float64))
    where = list(cost_table.context_decisions)
    strides = torch.tensor([math.prod(ks[e] for e in where[i + 1:]) for i in range(len(where))], dtype=torch.long)
    gated = torch.tensor(sorted(gates), dtype=torch.long)
    by = torch.tensor([gates[d][0] for d in sorted(gates)], dtype=torch.long)
    on = torch.zeros(len(gated), costs.shape[1], dtype=torch.bool)
    tilt = costs.clone()  # a depth choice tilted as heavy as the layers it keeps, on average
    for i, d in enumerate(sorted(gates)):
        g, there = gates[d]
        on[i, :len(there)] = torch.tensor(there)
        tilt[g, :len(there)] += torch.tensor(there, dtype=torch.float64) * costs[d, :ks[d]].mean()

    def left_out(arch: torch.Tensor) -> torch.Tensor:  # (S, G): the gated decisions whose layer is not there
        return ~on[torch.arange(len(gated)), arch[:, by]]

    def totals(arch: torch.Tensor) -> torch.Tensor:
        arch = arch.long()
        a = (arch[:, where] * strides).sum(1) if where else torch.zeros(len(arch), dtype=torch.long)
        chosen = tables[a[:, None], torch.arange(len(ks))[None, :], arch]          # (S, D)
        if len(gated):
            chosen[:, gated] = chosen[:, gated].masked_fill(left_out(arch), 0.0)
        return fixed[a] + chosen.sum(1)

    def canonical(arch: torch.Tensor) -> torch.Tensor:
        arch = arch.long().clone()
        if len(gated):
            arch[:, gated] = arch[:, gated].masked_fill(left_out(arch), 0)
        return arch

    return ExactCosts(totals, cost_table.cheapest(metric), cost_table.most_expensive(metric), tilt, canonical,
                      count_networks(ks, gates))


def _same(arch: torch.Tensor) -> torch.Tensor:
    return arch


def _candidates(ks: list[int], costs: torch.Tensor, ends: torch.Tensor, k: int, seed: int,
                pool: int, canon: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """The architectures :func:`select_archs` picks from (distinct, ``ends`` among them): every one when the
    space has at most ``pool``, else ``pool`` tilted samples (more, or every one when that is few enough to
    list, while they hold fewer than ``k``). ``canon`` (:attr:`ExactCosts.canonical`): one architecture per
    network."""
    n = space_size(ks)
    if n <= pool:
        return _every(ks) if canon is None else torch.unique(canon(_every(ks)), dim=0)
    canon = canon or _same
    g = torch.Generator().manual_seed(seed)
    cand = torch.unique(torch.cat([ends, canon(_tilted(ks, costs, pool, g))]), dim=0)
    if len(cand) >= k:
        return cand
    if n * len(ks) <= ENUMERABLE:
        return torch.unique(canon(_every(ks)), dim=0)
    while len(cand) < k:  # more than ENUMERABLE / D architectures, far more than k (<= 10,000): a few rounds
        cand = torch.unique(torch.cat([cand, canon(_tilted(ks, costs, pool, g))]), dim=0)
    return cand


def select_archs(num_choices, costs: torch.Tensor, k: int, seed: int, pool: int = 4096,
                 exact: ExactCosts | None = None) -> torch.Tensor:
    """``k`` distinct architectures (LongTensor (k, D), in increasing cost) spread evenly over the cost range.

    ``costs`` is the (D, Kmax) per-choice cost table (additive). The targets are k costs evenly spaced from the
    cheapest to the most expensive architecture: the two extremes themselves (one, when every architecture
    costs the same), and for each target in between the unused architecture of a seeded pool whose cost is
    closest. The pool is every architecture when the space has at most ``pool``, else ``pool`` samples tilted
    from cheap to costly (:func:`_tilted`), so its costs cover the range rather than the middle that uniform
    samples crowd (with more samples, or every architecture, when those hold fewer than ``k``).

    ``exact`` (:func:`exact_costs`; a space with elastic depth or width, where the table is not the
    architectures' cost): the costs, extremes and order are the exact totals, the pool is tilted with
    ``exact.tilt`` and holds one architecture per network (when the space has at least ``k`` networks).
    Raises ValueError when the space has fewer than ``k`` architectures."""
    ks = [int(c) for c in num_choices]
    n = space_size(ks)
    if k > n:
        raise ValueError(f"{k} architectures asked for, but the space has only {n}")
    if exact is None:
        costs = costs.double()
        ends = torch.stack([torch.stack([costs[d, :kd].argmin() for d, kd in enumerate(ks)]),
                            torch.stack([costs[d, :kd].argmax() for d, kd in enumerate(ks)])])
        cand = _candidates(ks, costs, ends, k, seed, pool)
        c = costs.gather(1, cand.t()).sum(0)
    else:
        canon = exact.canonical if k <= exact.networks else None
        ends = torch.stack([exact.cheapest, exact.most_expensive]).long()
        ends = canon(ends) if canon is not None else ends
        cand = _candidates(ks, exact.tilt.double(), ends, k, seed, pool, canon)
        c = exact.totals(cand).double()
    chosen = _spread(cand, c, ends, k)
    return cand[chosen[torch.argsort(c[chosen], stable=True)]]


def _spread(cand: torch.Tensor, c: torch.Tensor, ends: torch.Tensor, k: int) -> torch.Tensor:
    """Indices into ``cand`` (costs ``c``) of the ``ends`` (cheapest, costliest; one when they are the same)
    and, for k - 2 costs evenly spaced between theirs, the unused candidate closest to each."""
    free = torch.ones(len(cand), dtype=torch.bool)
    chosen = []
    for extreme in ends:
        i = int((cand == extreme).all(1).nonzero()[0, 0])
        if free[i]:
            free[i] = False
            chosen.append(i)
    lo, hi = float(c[chosen[0]]), float(c[chosen[-1]])
    targets = torch.linspace(lo, hi, k, dtype=torch.float64)[1:-1] if len(chosen) == 2 else torch.full((k - 1,), lo)
    for t in targets:
        i = int((c - t).abs().masked_fill(~free, float("inf")).argmin())
        free[i] = False
        chosen.append(i)
    return torch.tensor(chosen)


MEAN_DIGITS = 12  # significant digits of a mean over several retrainings (float64 holds 15 to 17)


def seed_mean(values: list[float]) -> float:
    """The mean of ``values``, one architecture's retrainings: a single one as it is; of several, their sum
    (``math.fsum``: exact, whatever the order) divided, at :data:`MEAN_DIGITS` significant digits, so that means
    equal in exact arithmetic are one float and a tie in τ-b and ρ. Test accuracies of the same total number
    right (0.8333, 0.8417, 0.875 and 0.875, 0.8333, 0.8417 of 360 images) otherwise differ in their last bit
    (0.85 and 0.8500000000000001 by ``np.mean``) and count as an order. Not finite (a diverged retraining): NaN
    or inf, as ``np.mean`` gives; none: NaN."""
    v = [float(x) for x in values]
    if len(v) == 1:
        return v[0]
    if not v or not all(math.isfinite(x) for x in v):
        return float(np.mean(v)) if v else float("nan")
    return float(f"{math.fsum(v) / len(v):.{MEAN_DIGITS}g}")


def mean_over_seeds(retrainings: list[dict]) -> dict:
    """The mean test loss and test accuracy of an architecture's stand-alone retrainings (one per seed:
    :func:`seed_mean`)."""
    return {k: seed_mean([r[k] for r in retrainings]) for k in ("test_loss", "test_accuracy")}


def _defined(r: float) -> float | None:
    return r if math.isfinite(r) else None


def summarize(entries: list[dict], truth: str = "loss") -> dict:
    """The ``ranking`` section of results.json from per-architecture entries (each with the supernet's scores
    on D_θ, ``supernet_loss`` and ``supernet_accuracy`` with BatchNorm recalibrated, the ``_batch_stats``
    ones without, and ``retrainings``: one ``{seed, test_loss, test_accuracy}`` per stand-alone retraining).

    ``truth`` loss: the supernet's negated loss against the negated mean test loss over the retrainings;
    accuracy: the supernet's accuracy against the mean test accuracy. Each entry gets the means. A correlation
    that is undefined (NaN: a constant score or truth, or a value that is NaN or ±inf) is None, as results.json
    writes it (strict JSON has no NaN); ``pairs`` counts the pairs of score and truth (:func:`pair_counts`:
    those with such a value are ``undefined``)."""
    archs = [{**e, **mean_over_seeds(e["retrainings"])} for e in entries]
    if truth == "loss":
        score = [-e["supernet_loss"] for e in archs]
        score_batch = [-e["supernet_loss_batch_stats"] for e in archs]
        target = [-e["test_loss"] for e in archs]
    else:
        score = [e["supernet_accuracy"] for e in archs]
        score_batch = [e["supernet_accuracy_batch_stats"] for e in archs]
        target = [e["test_accuracy"] for e in archs]
    return {"kendall_tau": _defined(kendall_tau_b(score, target)), "spearman": _defined(spearman(score, target)),
            "kendall_tau_batch_stats": _defined(kendall_tau_b(score_batch, target)),
            "seeds": len(archs[0]["retrainings"]), "truth": truth, "archs": archs,
            "pairs": pair_counts(score, target)}
