"""Search quality: importance sampling (one search, N distributions) vs N separate searches.

    /work/venv/bin/python benchmarks/search_quality.py [--seeds 10] [--iters 1200]

Synthetic separable objective with noisy losses: L(M) = sum_d a[d, k(d)] + sigma * noise, costs c in
[0, 1]. For each epsilon the optimum of E[L] + epsilon R is exact per decision:
k*(d) = argmin_k a[d, k] + epsilon c[d, k]. Three ways to get the N architectures:

* ``IS``          MultiEpsilonSearch, importance sampling: lam samples per iteration shared by all N.
* ``sep, =iters`` N separate searches (importance_sampling=False: each distribution samples its own
                  lam), same number of iterations: N times the loss evaluations.
* ``sep, =evals`` N separate searches, each with iters / N iterations: the same loss evaluations as IS.

For each epsilon: the fraction of decisions where best() equals k*, and the regret
sum_d (a + eps c)[best] - (a + eps c)[k*] (0 is perfect). Means over seeds. Prints a table and one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from automl.search import MultiEpsilonSearch, normalize_costs

EPSILONS = [0.0, 0.1, 0.3, 0.5]


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


def score(a, costs, eps, best):
    """(match fraction, regret) of one architecture for E[L] + eps R."""
    obj = a + eps * costs
    opt = obj.argmin(-1)
    regret = float(obj.gather(1, best.view(-1, 1)).sum() - obj.min(-1).values.sum())
    return float((best == opt).double().mean()), regret


def run(a, costs, epsilons, lam, iters, sigma, seed, importance_sampling):
    D, K = a.shape
    s = MultiEpsilonSearch([K] * D, costs, epsilons, lam=lam, seed=seed,
                           importance_sampling=importance_sampling)
    noise = torch.Generator().manual_seed(seed + 77)
    evals = 0
    for _ in range(iters):
        arch = s.ask()
        loss = a.gather(1, arch.t()).sum(0)
        loss = loss + sigma * torch.randn(loss.shape, generator=noise, dtype=torch.float64)
        s.tell(arch, loss)
        evals += arch.shape[0]
    return s.best(), evals


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--iters", type=int, default=1200)
    ap.add_argument("--lam", type=int, default=8)
    ap.add_argument("--D", type=int, default=16)
    ap.add_argument("--K", type=int, default=5)
    ap.add_argument("--sigma", type=float, default=0.5, help="loss noise (std)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    N = len(EPSILONS)
    t0 = time.perf_counter()
    methods = {"IS": (True, args.iters), "sep, =iters": (False, args.iters),
               "sep, =evals": (False, args.iters // N)}
    res = {m: {"match": [0.0] * N, "regret": [0.0] * N, "evals": 0} for m in methods}
    for seed in range(args.seeds):
        a, costs = make_problem(args.D, args.K, seed)
        for m, (is_, iters) in methods.items():
            best, evals = run(a, costs, EPSILONS, args.lam, iters, args.sigma, seed, is_)
            res[m]["evals"] = evals
            for n, eps in enumerate(EPSILONS):
                match, regret = score(a, costs, eps, best[n])
                res[m]["match"][n] += match / args.seeds
                res[m]["regret"][n] += regret / args.seeds
    seconds = time.perf_counter() - t0

    print(f"search quality, D={args.D} K={args.K} lam={args.lam} sigma={args.sigma}, "
          f"{args.seeds} seeds, iterations {args.iters}")
    print(f"{'method':<12} {'evals':>6} | " + " | ".join(f"eps={e:<4} match regret" for e in EPSILONS))
    for m in methods:
        cells = " | ".join(f"{res[m]['match'][n]:>10.3f} {res[m]['regret'][n]:>6.3f}" for n in range(N))
        print(f"{m:<12} {res[m]['evals']:>6} | {cells}")
    print(json.dumps({"benchmark": "search_quality", "D": args.D, "K": args.K, "lam": args.lam,
                      "sigma": args.sigma, "seeds": args.seeds, "iters": args.iters,
                      "epsilons": EPSILONS, "seconds": round(seconds, 1),
                      "results": {m: {k: ([round(x, 4) for x in v] if isinstance(v, list) else v)
                                      for k, v in r.items()} for m, r in res.items()}}))


if __name__ == "__main__":
    main()
