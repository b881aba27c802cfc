"""``automl rank RUN_DIR [--archs K] [--retrain-epochs E] [--seeds S] [--truth loss|accuracy]``: the ranking section on a finished run."""

from __future__ import annotations

from pathlib import Path

from automl.errors import UserError
from automl.pipeline import Run
from automl.recipe import load_recipe

__all__ = ["main"]


def main(args) -> int:
    out = Path(args.run_dir)
    resolved = out / "recipe.resolved.yaml"
    if not resolved.is_file():
        raise UserError(f"{out}: no recipe.resolved.yaml; RUN_DIR must be the --out folder of an automl run")
    # the run's own ranking section, or the defaults when it had none; then the flags
    overrides = [] if load_recipe(resolved).ranking is not None else ["ranking={}"]
    for key in ("archs", "retrain_epochs", "seeds", "truth"):
        if getattr(args, key) is not None:
            overrides.append(f"ranking.{key}={getattr(args, key)}")
    recipe = load_recipe(resolved, overrides)

    ranking = Run(recipe, out).rank()
    print(f"kendall_tau {ranking['kendall_tau']:.4f}  spearman {ranking['spearman']:.4f}  "
          f"({len(ranking['archs'])} architectures, {ranking['seeds']} retraining(s) each, truth: mean test "
          f"{ranking['truth']})")
    return 0
