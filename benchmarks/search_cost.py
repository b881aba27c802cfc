"""Search cost of the three ways to get N architectures (paper Table 1), on one recipe and one machine.

    python benchmarks/search_cost.py [RECIPE] [key=value ...] [--repeat 1] [--no-sweep]

Runs the recipe (default recipes/quickstart.yaml) with search.method = importance_sampling, separate and
simultaneous (retraining and export off: search cost excludes them, as in the paper) and prints the search
seconds and the ratios beside the paper's (proposed / Method 1 = 3.4/16.4 = 0.21, proposed / Method 2 =
3.4/5.2 = 0.65), with each run's weight-phase and θ-phase seconds. Then importance_sampling with N = 1, 2,
4, 8 ε values spread over the recipe's ε range (the goal: flat). ``--repeat R`` runs each method R times,
interleaved, and uses the median.

Each run is ``automl.pipeline.Run`` in this process, in a temporary folder removed after it: the run prints what
``automl run`` prints, its ``results:`` line naming that folder, and a line after it says the folder is gone
(this script's table and JSON line keep the figures).

Each row also gives ``ms_per_iteration``, the search seconds over the weight steps taken, and, as the recipe's
``search.supernets`` = M supernets each take every weight step and score every θ-phase path,
``ms_per_supernet_iteration`` = ``ms_per_iteration`` / M, the figure to compare with a run of one supernet.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, int_at_least, parser, run_main  # noqa: E402

from automl.errors import UserError  # noqa: E402
from automl.pipeline import Run, open_workspace  # noqa: E402
from automl.recipe import load_recipe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OFF = ["retrain.epochs=0", "export.onnx=false"]
REPEAT_MOST = 100  # runs per method: each is a whole search; more is a typo's extra digits (days of runs)


def search_run(recipe_path, overrides) -> dict:
    """The results of one run; ``iterations`` added: weight steps taken (one per D_W batch and epoch, per ε
    for Method 1), each followed by a θ step in Method 1 and matched by one in the θ phase otherwise."""
    recipe = load_recipe(recipe_path, OFF + overrides)
    with tempfile.TemporaryDirectory() as d:
        res = Run(recipe, Path(d) / "run", tty=False).execute()
    # the run's own last line named its results.json and report.md in that folder, which is gone now
    print(f"== {d} was a temporary folder and is removed: the run's figures are in this script's table and JSON "
          f"line", flush=True)
    runs = len(res["architectures"]) if recipe.search.method == "simultaneous" else 1  # one W per member
    res["iterations"] = runs * recipe.search.weight_epochs * len(open_workspace(recipe).data.w)
    return res


def _row(method: str, run: int, res: dict, supernets: int) -> dict:
    """One table row; ``supernets``: the recipe's search.supernets, the supernets every step trains or scores."""
    ph = res["phase_seconds"]
    return {"method": method, "run": run, "N": len(res["architectures"]), "search_s": res["search_seconds"],
            "weights_s": ph.get("weights", ph.get("simultaneous", 0.0)), "theta_s": ph.get("theta", 0.0),
            # ms per weight step plus its θ step(s): Method 1's steps run on the networks its distributions
            # converge to, the other methods' weight steps on uniform samples; each step trains (and each θ
            # step evaluates) every one of the `supernets` supernets, so the per-supernet figure divides by them
            "supernets": supernets,
            "ms_per_iteration": 1e3 * res["search_seconds"] / res["iterations"],
            "ms_per_supernet_iteration": 1e3 * res["search_seconds"] / res["iterations"] / supernets,
            "params": [x["params"] for x in res["architectures"]],
            # the run's own count (recipe key threads, auto by default), not the process's (machine())
            "threads": res["threads"]["threads"]}


def main(argv: list[str]) -> None:
    p = parser(__doc__)
    p.add_argument("recipe", nargs="?", default=str(ROOT / "recipes" / "quickstart.yaml"), help="the recipe searched")
    p.add_argument("overrides", nargs="*", help="recipe overrides key=value (as on `automl run`)")
    p.add_argument("--no-sweep", action="store_true", help="skip the N = 1, 2, 4, 8 sweep")
    p.add_argument("--repeat", type=int_at_least(1, REPEAT_MOST), default=1,
                   help=f"runs per method, interleaved; the median is used (at most {REPEAT_MOST})")
    a = p.parse_args(argv)
    if "=" in a.recipe:  # only overrides were given
        a.overrides.insert(0, a.recipe)
        a.recipe = str(ROOT / "recipes" / "quickstart.yaml")
    recipe = load_recipe(a.recipe, a.overrides)  # a mistake in the recipe or an override is found now
    if recipe.search.weight_epochs == 0:
        raise UserError(f"{a.recipe}: search.weight_epochs is 0: no weight steps to time (give 1 or more)")
    # Warm-up, untimed: the first run in a process pays for one-time set-up (oneDNN/cuDNN kernel selection
    # for every op shape, allocator growth), which would otherwise be charged to whichever method runs first.
    # Each run prints what a run prints: a header line says which run it is, and whether it counts.
    print("== warm-up run (1 + 1 epochs), untimed: not counted", flush=True)
    search_run(a.recipe, a.overrides + ["search.weight_epochs=1", "search.theta_epochs=1"])
    rows = []
    samples: dict[str, list[float]] = {}
    for rep in range(a.repeat):
        for method in ("importance_sampling", "separate", "simultaneous"):
            print(f"== timed run: {method}, repeat {rep + 1} of {a.repeat}", flush=True)
            res = search_run(a.recipe, a.overrides + [f"search.method={method}"])
            samples.setdefault(method, []).append(res["search_seconds"])
            rows.append(_row(method, rep + 1, res, recipe.search.supernets))
    secs = {m: statistics.median(v) for m, v in samples.items()}
    ratio_m1 = secs["importance_sampling"] / secs["simultaneous"]
    ratio_m2 = secs["importance_sampling"] / secs["separate"]
    print(f"importance_sampling / Method 1 (simultaneous): {ratio_m1:.3f}   (paper: 0.21)")
    print(f"importance_sampling / Method 2 (separate):     {ratio_m2:.3f}   (paper: 0.65)")
    scaling = []
    # the sweep spans the recipe's ε range ([0, 12], the quickstart's former ε, when the recipe gives budgets)
    emax = max(recipe.search.epsilons or [12.0]) or 0.5
    for n in () if a.no_sweep else (1, 2, 4, 8):
        eps = [round(emax * j / max(n - 1, 1), 4) for j in range(n)]
        print(f"== timed run: importance_sampling, N = {n} (sweep)", flush=True)
        res = search_run(a.recipe, a.overrides + ["search.method=importance_sampling",
                                                  "search.epsilons=[" + ",".join(map(str, eps)) + "]"])
        scaling.append(_row("importance_sampling", 1, res, recipe.search.supernets))
    emit("search_cost", rows + scaling, median_search_s=secs, ratio_vs_method1=ratio_m1, ratio_vs_method2=ratio_m2,
         paper_ratio_vs_method1=round(3.4 / 16.4, 3), paper_ratio_vs_method2=round(3.4 / 5.2, 3),
         recipe=Path(a.recipe).name, overrides=a.overrides)


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
