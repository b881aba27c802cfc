"""Time one ask() + tell() of MultiEpsilonSearch (median over many iterations, after a warm-up).

    python benchmarks/engine_speed.py [--iters 2000] [--warmup 200] [--context]

CPU case: N = 8, D = 21, K = 7, lam = 8 (goal: under 0.5 ms), also with ``sync_free=True`` (the code path
used on GPUs), Method 2's update, the weighted-quantile utility, and with budgets; with ``--context``, N = 4
and costs that depend on width decisions (:class:`automl.search.ContextCosts`, 32 to 4,096 combinations).
CUDA cases, when available: the same size, and N = 8, D = 40, K = 7, lam = 64. Prints a table and one JSON
line.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import json_line, nonneg_int, parser, positive_int, run_main, synchronizer  # noqa: E402

from automl.search import ContextCosts, MultiEpsilonSearch  # noqa: E402


def context_costs(D: int, K: int, c: int) -> ContextCosts:
    """Costs of D searched decisions of K choices that depend on c two-way width decisions after them (2^c
    combinations, each its own random table), as an elastic-width space's cost table gives the engine."""
    mask = torch.zeros(D + c, K, dtype=torch.bool)
    mask[:D], mask[D:, :2] = True, True
    g = torch.Generator().manual_seed(0)
    tables = torch.rand(2 ** c, D + c, K, generator=g, dtype=torch.float64)
    return ContextCosts(list(range(D, D + c)), tables, torch.rand(2 ** c, generator=g, dtype=torch.float64), mask)


def time_engine(N, D, K, lam, device, iters, warmup, importance_sampling=True, sync_free=None, utility="paper",
                budgets=False, context=0):
    torch.manual_seed(0)
    costs = torch.rand(D, K, dtype=torch.float64)
    low = float(costs.min(-1).values.sum())
    target = ({"budgets": [None] + [low + (0.5 + j) for j in range(N - 1)]} if budgets
              else {"epsilons": torch.linspace(0, 1, N).tolist()})
    choices = [K] * D + [2] * context
    if context:
        costs = context_costs(D, K, context)
    s = MultiEpsilonSearch(choices, costs, lam=lam, seed=0, device=device, importance_sampling=importance_sampling,
                           sync_free=sync_free, utility=utility, **target)
    rows = s.rows_per_ask
    # Distinct losses, as a network's losses are; generated up front so only the engine is timed.
    losses = torch.rand(iters + warmup, rows, dtype=torch.float64, device=device)
    sync = synchronizer(device)
    times = []
    for i in range(iters + warmup):
        sync()
        t0 = time.perf_counter()
        arch = s.ask()
        s.tell(arch, losses[i])
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    return {"N": N, "D": D, "K": K, "lam": lam, "device": str(device),
            "importance_sampling": importance_sampling, "sync_free": s.sync_free, "utility": utility,
            "budgets": budgets, "context_combinations": 2 ** context if context else None,
            "median_ms": 1e3 * statistics.median(times), "p90_ms": 1e3 * times[int(0.9 * len(times))]}


def main():
    ap = parser(__doc__)
    ap.add_argument("--iters", type=positive_int, default=2000,
                    help="timed ask+tell calls per row (the median is reported)")
    ap.add_argument("--warmup", type=nonneg_int, default=200, help="untimed ask+tell calls before them")
    ap.add_argument("--context", action="store_true",
                    help="also costs that depend on 5, 8 and 12 two-way width decisions (32, 256, 4,096 combinations)")
    args = ap.parse_args()
    torch.set_num_threads(1)   # small ops: threads only add overhead
    cases = [dict(N=8, D=21, K=7, lam=8, device="cpu"),
             dict(N=8, D=21, K=7, lam=8, device="cpu", sync_free=True),   # the GPU's code path, on the CPU
             dict(N=8, D=21, K=7, lam=8, device="cpu", importance_sampling=False),
             dict(N=8, D=21, K=7, lam=8, device="cpu", utility="weighted_quantile"),
             dict(N=8, D=21, K=7, lam=8, device="cpu", utility="weighted_quantile", budgets=True)]
    if args.context:
        cases += [dict(N=4, D=21, K=7, lam=8, device="cpu", utility="weighted_quantile", context=c) for c in (5, 8, 12)]
    if torch.cuda.is_available():
        cases += [dict(N=8, D=21, K=7, lam=8, device="cuda"), dict(N=8, D=40, K=7, lam=64, device="cuda")]
    results = [time_engine(**c, iters=args.iters, warmup=args.warmup) for c in cases]
    print(f"ask+tell time (median of {args.iters} after {args.warmup} warm-up), torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}")
    print(f"{'device':>6} {'IS':>5} {'sync_free':>9} {'utility':>17} {'budgets':>7} {'N':>3} {'D':>3} {'K':>3} "
          f"{'lam':>4} {'contexts':>8} {'median ms':>10} {'p90 ms':>8}")
    for r in results:
        print(f"{r['device']:>6} {str(r['importance_sampling']):>5} {str(r['sync_free']):>9} {r['utility']:>17} "
              f"{str(r['budgets']):>7} {r['N']:>3} "
              f"{r['D']:>3} {r['K']:>3} {r['lam']:>4} {r['context_combinations'] or '-':>8} {r['median_ms']:>10.3f} "
              f"{r['p90_ms']:>8.3f}")
    json_line("engine_speed", torch=torch.__version__, results=results)


if __name__ == "__main__":
    run_main(main)
