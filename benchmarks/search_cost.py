"""Search cost of the three ways to get N architectures (paper Table 1), on one recipe and one machine.

    python benchmarks/search_cost.py [RECIPE] [key=value ...]

Runs the recipe (default recipes/quickstart.yaml) with search.method = importance_sampling, separate and
simultaneous (retraining and export off: search cost excludes them, as in the paper) and prints the search
seconds and the ratios beside the paper's (proposed / Method 1 = 3.4/16.4 = 0.21, proposed / Method 2 =
3.4/5.2 = 0.65). Then importance_sampling with N = 1, 2, 4, 8 ε values (the goal: flat).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit  # noqa: E402

from automl.pipeline import Run  # noqa: E402
from automl.recipe import load_recipe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OFF = ["retrain.epochs=0", "export.onnx=false"]


def search_seconds(recipe_path, overrides) -> float:
    recipe = load_recipe(recipe_path, OFF + overrides)
    with tempfile.TemporaryDirectory() as d:
        res = Run(recipe, Path(d) / "run", tty=False).execute()
    return res["search_seconds"]


def main(argv: list[str]) -> None:
    recipe = argv[0] if argv and not "=" in argv[0] else str(ROOT / "recipes" / "quickstart.yaml")
    extra = [a for a in argv if "=" in a]
    rows = []
    secs = {}
    for method in ("importance_sampling", "separate", "simultaneous"):
        secs[method] = search_seconds(recipe, extra + [f"search.method={method}"])
        rows.append({"method": method, "N": 4, "search_s": secs[method]})
    ratio_m1 = secs["importance_sampling"] / secs["simultaneous"]
    ratio_m2 = secs["importance_sampling"] / secs["separate"]
    print(f"importance_sampling / Method 1 (simultaneous): {ratio_m1:.3f}   (paper: 0.21)")
    print(f"importance_sampling / Method 2 (separate):     {ratio_m2:.3f}   (paper: 0.65)")
    scaling = []
    for n in (1, 2, 4, 8):
        eps = [round(0.5 * j / max(n - 1, 1), 4) for j in range(n)]
        s = search_seconds(recipe, extra + ["search.method=importance_sampling",
                                            "search.epsilons=[" + ",".join(map(str, eps)) + "]"])
        scaling.append({"method": "importance_sampling", "N": n, "search_s": s})
    emit("search_cost", rows + scaling, ratio_vs_method1=ratio_m1, ratio_vs_method2=ratio_m2,
         paper_ratio_vs_method1=round(3.4 / 16.4, 3), paper_ratio_vs_method2=round(3.4 / 5.2, 3))


if __name__ == "__main__":
    main(sys.argv[1:])
