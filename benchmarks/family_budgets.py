"""A family by budgets: importance sampling vs Method 2 (separate searches) on one recipe, over seeds.

    python benchmarks/family_budgets.py [--recipe recipes/quickstart.yaml] [--seeds 0,1,2]
        [--methods importance_sampling,separate] [--out runs/family-budgets] [--set retrain.epochs=0 ...]

Runs ``automl run RECIPE search.method=M seed=S`` for every seed and method (one given twice runs once),
interleaved (A, B, A, B: on a shared machine load changes slowly, so neighbouring runs see similar load),
then prints per member the budget, the final ε, params, cost / budget, test accuracy, and each run's search
seconds, plus the median search-time ratio of the first method to the second. An existing
``OUT/<method>-s<seed>`` with a results.json is reused (delete it to rerun; one that cannot be read, or lacks
what the table shows, stops the script with one line naming it, exit 2); one without it, a run that was
stopped, is continued (``automl run ... --resume``: from its last checkpoint, or afresh when it stopped before
its first), but not while an automl run still writes there (one the script started before it was killed: one
line naming the folder and the process, exit 2, before any run). Ctrl-C is passed on to the run, which saves a
checkpoint and exits, and the script waits for it (up to 30 s), then exits 130. The recipe with each method and
the --set overrides is checked before the first run (a mistake: one line naming the file or key, exit 2). A run
that fails stops the script with one line naming its command (exit 2 when the run's was 2, a mistake it printed
above it). Prints a table and one JSON line.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from pydantic import Field

sys.path.insert(0, str(Path(__file__).parent))
from _common import (RESULTS, Fields, check_child, check_not_running, json_line, names, out_folder,  # noqa: E402
                     parser, run_child, run_main, run_results, seed_list)

from automl.recipe import load_recipe  # noqa: E402

METHODS = ("importance_sampling", "separate", "simultaneous", "random")  # search.method's values


class Member(Fields):
    """What the table reads of a run's member (a number, or null where the run has none)."""

    params: int
    cost: float
    budget: float | None
    epsilon: float | None
    test_accuracy: float | None


class Run(Fields):
    """What the table reads of a run's results.json."""

    search_seconds: float
    architectures: list[Member] = Field(min_length=1)


def main():
    ap = parser(__doc__)
    ap.add_argument("--recipe", default=str(Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"),
                    help="the recipe every run uses")
    ap.add_argument("--seeds", type=seed_list, default="0,1,2", help="the runs' seeds, comma-separated")
    ap.add_argument("--methods", type=names(METHODS), default="importance_sampling,separate",
                    help=f"comma-separated, of {', '.join(METHODS)}")
    ap.add_argument("--out", default="runs/family-budgets",
                    help="folder of the runs, OUT/<method>-s<seed> (a relative one is named from the current folder)")
    ap.add_argument("--set", action="append", default=[], help="recipe override key=value (repeatable)")
    args = ap.parse_args()
    methods = list(dict.fromkeys(args.methods))  # a method or seed given twice is one
    for m in methods:  # a mistake in the recipe or a --set is found now, not by the first run
        load_recipe(args.recipe, [f"search.method={m}", *args.set])
    out = out_folder(args.out)
    seeds = list(dict.fromkeys(args.seeds))
    for d in (out / f"{m}-s{seed}" for seed in seeds for m in methods):  # a stopped run still going: before any run
        if d.exists() and not (d / RESULTS).exists():
            check_not_running(d)
    rows, seconds = [], {m: [] for m in methods}
    for seed in seeds:
        for m in methods:
            d = out / f"{m}-s{seed}"
            if not (d / RESULTS).exists():
                cmd = [sys.executable, "-m", "automl", "run", args.recipe, "--out", str(d),
                       f"search.method={m}", f"seed={seed}", *args.set]
                if d.exists():  # a run stopped part-way: continued from its checkpoint (or afresh, before its first)
                    cmd.append("--resume")
                print("$", " ".join(cmd), flush=True)
                check_child(cmd, run_child(cmd, stdout=subprocess.DEVNULL))
            res = run_results(d, Run, f"delete {d} to run it again, or choose another --out")
            seconds[m].append(res["search_seconds"])
            for i, a in enumerate(res["architectures"]):
                b = a.get("budget")
                rows.append({"seed": int(seed), "method": m, "member": i, "budget": b, "epsilon": a.get("epsilon"),
                             "params": a["params"], "cost": a["cost"],
                             "cost/budget": None if not b else round(a["cost"] / b, 3),  # a budget of 0: none
                             "test_accuracy": a.get("test_accuracy"), "search_seconds": res["search_seconds"]})
    print(f"{'seed':>4} {'method':<20} {'member':>6} {'budget':>13} {'eps':>7} {'params':>8} {'cost/B':>7} "
          f"{'test acc %':>10} {'search s':>8}")
    for r in rows:
        acc = "—" if r["test_accuracy"] is None else f"{100 * r['test_accuracy']:.2f}"
        budget = "unconstrained" if r["budget"] is None else r["budget"]  # a budget of 0 is one (a 0-cost metric)
        per_b = "—" if r["cost/budget"] is None else r["cost/budget"]
        eps = "—" if r["epsilon"] is None else f"{r['epsilon']:.3f}"  # none recorded: not an ε of 0
        print(f"{r['seed']:>4} {r['method']:<20} {r['member']:>6} {budget:>13} "
              f"{eps:>7} {r['params']:>8,} {per_b:>7} {acc:>10} "
              f"{r['search_seconds']:>8.1f}")
    ratio = None
    if len(methods) >= 2:
        ratios = [a / b for a, b in zip(seconds[methods[0]], seconds[methods[1]]) if b > 0]
        ratio = round(statistics.median(ratios), 3) if ratios else None
        print(f"search seconds {methods[0]} / {methods[1]}: median {ratio} over {len(ratios)} "
              f"seed{'s' * (len(ratios) != 1)} ({', '.join(f'{x:.2f}' for x in ratios)})")
    json_line("family_budgets", recipe=args.recipe, overrides=args.set, rows=rows, search_seconds=seconds,
              ratio_median=ratio)


if __name__ == "__main__":
    run_main(main)
