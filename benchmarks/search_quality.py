"""Search quality: importance sampling (one search, N distributions) vs N separate searches.

    python benchmarks/search_quality.py [--seeds 5] [--iters 1200] [--N 2,4,8] [--modes eps,budget]

Synthetic separable objective with noisy losses: L(M) = sum_d a[d, k(d)] + sigma * noise, costs c in
[0, 1] (``--problem target``: a random target choice per decision, the costliest; ``--problem index``:
cost proportional to the choice index, the costliest choice best everywhere). Two ways to ask for N architectures:

* ``eps``     fixed coefficients (N = 4: the paper's 0, 0.1, 0.3, 0.5). The optimum of E[L] + eps R is
              exact per decision: k*(d) = argmin_k a[d, k] + eps c[d, k].
* ``budget``  cost budgets: the top member unconstrained, the others at R_min + f (R_0 - R_min) for
              f = 1 - j/N, j = 1..N-1 (R_0: the cost of the unconstrained optimum). The optimum under a
              budget is an exact multiple-choice knapsack (``best_within_budget`` on -a).

Methods: ``IS paper`` and ``IS wq``: MultiEpsilonSearch with importance sampling, lam samples per
iteration shared by all N, utility eq. 9 ("paper") or weighted-quantile ("wq"). ``sep =iters``: N
separate searches (importance_sampling=False, each distribution samples its own lam) with the same
iterations, i.e. N times the loss evaluations; ``sep =evals``: iters / N iterations, the same evaluations.

Per member: ``cost`` = R(best) / R(optimum) (1 is right; below 1 means too cheap; inf when the optimum costs 0
and best does not), ``regret`` = objective(best) - objective(optimum) (eps: a + eps c summed; budget: sum a)
and, with budgets, whether best() is within its budget. Means over seeds (and the minimum cost ratio of the
unconstrained member). Prints a table and one JSON line.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import (int_at_least, json_line, names, nonneg_float, parser, positive_float, positive_int,  # noqa: E402
                     run_main)

from automl.search import MultiEpsilonSearch, best_within_budget, normalize_costs  # noqa: E402

EPSILONS = {2: [0.0, 0.3], 4: [0.0, 0.1, 0.3, 0.5], 8: [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7]}
METHODS = {"IS paper": (True, "paper", 1), "IS wq": (True, "weighted_quantile", 1),
           "sep =iters": (False, "paper", 1), "sep =evals": (False, "paper", None)}
MODES = ("eps", "budget")


def make_problem(D, K, seed):
    """a: 0 at a target choice, growing with distance, decision weights spread over 0.03..1 so the
    epsilons move different decisions; the target is the costliest choice of its decision."""
    g = torch.Generator().manual_seed(1000 + seed)
    target = torch.randint(0, K, (D,), generator=g)
    dist = (torch.arange(K).view(1, K) - target.view(D, 1)).abs().double()
    weight = torch.logspace(-1.5, 0, D, dtype=torch.float64)[torch.randperm(D, generator=g)]
    a = dist * weight.view(D, 1)
    costs = normalize_costs((K - dist) + 0.05 * torch.rand(D, K, generator=g, dtype=torch.float64))
    return a, costs


def make_index_problem(D, K, seed):
    """The objective of issue #14's study: cost proportional to the choice index, the costliest choice
    best in every decision (a = weight * (K - 1 - k), decision weights spread over 0.03..1)."""
    g = torch.Generator().manual_seed(1000 + seed)
    weight = torch.logspace(-1.5, 0, D, dtype=torch.float64)[torch.randperm(D, generator=g)]
    k = torch.arange(K, dtype=torch.float64)
    return (K - 1 - k).view(1, K) * weight.view(D, 1), (k / (K - 1)).expand(D, K).clone()


PROBLEMS = {"target": make_problem, "index": make_index_problem}


def family_budgets(a, costs, N):
    """Top member unconstrained, the others evenly below the unconstrained optimum's cost."""
    r0 = float(costs.gather(1, a.argmin(-1, keepdim=True)).sum())
    rmin = float(costs.min(-1).values.sum())
    return [None] + [rmin + (1 - j / N) * (r0 - rmin) for j in range(1, N)]


def optimum(a, costs, eps=None, budget=None):
    if budget is not None:
        return best_within_budget(-a, costs, budget)
    return (a + (eps or 0.0) * costs).argmin(-1)


def member_score(a, costs, best, eps=None, budget=None):
    opt = optimum(a, costs, eps, budget)
    obj = a + (eps or 0.0) * costs
    regret = float(obj.gather(1, best.view(-1, 1)).sum() - obj.gather(1, opt.view(-1, 1)).sum())
    cost = float(costs.gather(1, best.view(-1, 1)).sum())
    ok = budget is None or cost <= budget * (1 + 1e-9)
    opt_cost = float(costs.gather(1, opt.view(-1, 1)).sum())
    if opt_cost <= 0:  # the optimum costs nothing (every decision at a free choice): 1 when best does too
        return (1.0 if cost <= 0 else math.inf), regret, ok
    return cost / opt_cost, regret, ok


def run(a, costs, lam, iters, sigma, seed, importance_sampling, utility, epsilons=None, budgets=None,
        budget_lr=0.5):
    D, K = a.shape
    s = MultiEpsilonSearch([K] * D, costs, epsilons, lam=lam, seed=seed, utility=utility,
                           importance_sampling=importance_sampling, budgets=budgets, budget_lr=budget_lr)
    noise = torch.Generator().manual_seed(seed + 77)
    evals = 0
    for _ in range(iters):
        arch = s.ask()
        loss = a.gather(1, arch.t()).sum(0)
        loss = loss + sigma * torch.randn(loss.shape, generator=noise, dtype=torch.float64)
        s.tell(arch, loss)
        evals += arch.shape[0]
    return s.best(), evals, s.epsilons


def main():
    ap = parser(__doc__)
    ap.add_argument("--seeds", type=positive_int, default=5, help="number of seeds (0 .. SEEDS-1), each a run")
    ap.add_argument("--iters", type=positive_int, default=1200, help="ask+tell iterations per search")
    ap.add_argument("--lam", type=int_at_least(2), default=8, help="architectures per iteration (λ)")
    ap.add_argument("--D", type=positive_int, default=16, help="decisions per architecture")
    ap.add_argument("--K", type=int_at_least(2), default=5, help="choices per decision")
    ap.add_argument("--N", type=names(EPSILONS), default="2,4,8",
                    help=f"numbers of members, comma-separated, of {', '.join(map(str, EPSILONS))}")
    ap.add_argument("--modes", type=names(MODES), default=",".join(MODES), help="comma-separated, of eps, budget")
    ap.add_argument("--methods", type=names(METHODS), default=",".join(METHODS),
                    help=f"comma-separated, of {', '.join(METHODS)}")
    ap.add_argument("--sigma", type=nonneg_float, default=0.5, help="loss noise (std, >= 0)")
    ap.add_argument("--budget-lr", type=positive_float, default=0.5, help="the engine's dual step size")
    ap.add_argument("--problem", default="target", choices=list(PROBLEMS),
                    help="target: a random costliest-best target per decision; index: cost = choice index")
    args = ap.parse_args()
    few = max(int(n) for n in args.N)
    if "sep =evals" in args.methods and args.iters < few:
        ap.error(f"--iters {args.iters} with --N {few}: 'sep =evals' gives each member --iters / N iterations, "
                 f"0 of them; give --iters >= {few} or leave 'sep =evals' out of --methods")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    rows = []
    print(f"search quality ({args.problem}), D={args.D} K={args.K} lam={args.lam} sigma={args.sigma}, "
          f"{args.seeds} seed{'s' * (args.seeds != 1)}, "
          f"{args.iters} iterations; per member: cost ratio R(best)/R(opt) / regret [/ budget held]")
    for N in (int(x) for x in args.N):
        for mode in args.modes:
            for m in args.methods:
                is_, utility, div = METHODS[m]
                iters = args.iters if div else args.iters // N
                cost = [[] for _ in range(N)]
                regret = [[] for _ in range(N)]
                held = [0] * N
                eps_end = [[] for _ in range(N)]
                evals = 0
                for seed in range(args.seeds):
                    a, costs = PROBLEMS[args.problem](args.D, args.K, seed)
                    kw = ({"epsilons": EPSILONS[N]} if mode == "eps"
                          else {"budgets": family_budgets(a, costs, N)})
                    best, evals, eps = run(a, costs, args.lam, iters, args.sigma, seed, is_, utility,
                                           budget_lr=args.budget_lr, **kw)
                    for n in range(N):
                        c, r, ok = member_score(a, costs, best[n], eps=kw.get("epsilons", [None] * N)[n],
                                                budget=kw.get("budgets", [None] * N)[n])
                        cost[n].append(c)
                        regret[n].append(r)
                        held[n] += ok
                        eps_end[n].append(eps[n])
                row = {"N": N, "mode": mode, "method": m, "evals": evals,
                       "cost_ratio": [round(sum(x) / len(x), 3) for x in cost],
                       "cost_ratio_min0": round(min(cost[0]), 3),
                       "regret": [round(sum(x) / len(x), 3) for x in regret],
                       "budget_held": held if mode == "budget" else None,
                       "final_eps": [round(sum(x) / len(x), 3) for x in eps_end] if mode == "budget" else None}
                rows.append(row)
                cells = " | ".join(f"{row['cost_ratio'][n]:.2f} {row['regret'][n]:.3f}"
                                   + (f" {held[n]}/{args.seeds}" if mode == "budget" else "") for n in range(N))
                print(f"N={N} {mode:<6} {m:<10} {evals:>6} | {cells}", flush=True)
    json_line("search_quality", problem=args.problem, budget_lr=args.budget_lr, D=args.D, K=args.K, lam=args.lam,
              sigma=args.sigma, seeds=args.seeds, iters=args.iters, epsilons=EPSILONS,
              seconds=round(time.perf_counter() - t0, 1), rows=rows)


if __name__ == "__main__":
    run_main(main)
