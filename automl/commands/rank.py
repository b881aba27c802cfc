"""``automl rank RUN_DIR [--archs K] [--retrain-epochs E] [--seeds S] [--truth loss|accuracy]
[--device auto|cpu|cuda]``: the ranking section on a finished run."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import yaml

from automl._io import pasted_path, path_problem
from automl.commands.run import one_process, yaml_string
from automl.errors import RecipeError, UserError
from automl.pipeline import Run
from automl.pipeline.context import shell_path
from automl.pipeline.rank import check_results, check_trains_a_supernet
from automl.pipeline.results import read_results
from automl.pipeline.setup import MIN_RANKED, TooManyArchs
from automl.recipe import load_recipe
from automl.search import UnknownSearcher, get_searcher

__all__ = ["main"]

FLAGS = {"archs": "--archs", "retrain_epochs": "--retrain-epochs", "seeds": "--seeds", "truth": "--truth"}


def _load(resolved: Path, base: list[str], flags: dict[str, object]):
    """The run's recipe with the flags as ``ranking.*`` overrides; a flag's bad value is named as the flag."""
    try:
        return load_recipe(resolved, base + [f"ranking.{k}={v}" for k, v in flags.items()])
    except RecipeError as e:
        for key, value in flags.items():
            if e.key == f"ranking.{key}":
                reason = e.message.removeprefix(f"override ranking.{key}={value}: ")
                raise UserError(f"{FLAGS[key]} {value}: {reason}") from None
        raise


def _run_recipe(out: Path, resolved: Path, base: list[str]):
    """The run's recipe as recorded (``base``: :func:`_older_paths`), looked at without its warnings (the load with
    the flags says them, once); a run of a method that trains no supernet is refused here, before any warning on
    keys the user never set (its recipe.resolved.yaml holds every key)."""
    recorded = load_recipe(resolved, base, warn=False)
    try:
        method = get_searcher(recorded.search.method)
    except UnknownSearcher:  # the run says so (automl.pipeline.Run)
        return recorded
    check_trains_a_supernet(out, method)
    return recorded


def _older_paths(resolved: Path) -> list[str]:
    """Overrides for a recipe.resolved.yaml an earlier automl wrote with a relative ``search.cost_table``
    (relative to the recipe it was resolved from, which its first line names): the path made absolute, quoted
    (a folder ``exp #2`` is not YAML's comment)."""
    try:
        text = resolved.read_text(encoding="utf-8")
        table = (yaml.safe_load(text) or {}).get("search", {}).get("cost_table")
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError, ValueError):
        return []  # load_recipe names what is wrong (ValueError: an integer of more digits than YAML builds)
    head = text.split("\n", 1)[0]
    if not isinstance(table, str) or Path(table).is_absolute() or not head.startswith("# resolved from "):
        return []
    return [f"search.cost_table={yaml_string(str(Path(head.removeprefix('# resolved from ')).parent / table))}"]


def _inside_a_run(out: Path) -> str:
    """For a RUN_DIR without recipe.resolved.yaml that is one of a run's own folders (its checkpoints/, its
    export/eps-0/) or files (its results.json, report.md): the run folder to pass instead, the nearest of the
    three above it that holds one; else ""."""
    for parent in list(out.absolute().parents)[:3]:
        if (parent / "recipe.resolved.yaml").is_file():
            named = parent if out.is_absolute() else Path(os.path.relpath(parent))  # as RUN_DIR was given
            return f"; {out} is inside the run folder {named}: automl rank {shell_path(named)}"
    return ""


def _check_device(name: str, flag: str | None, resolved: Path) -> None:
    """device cuda (the run's, or ``--device cuda``) needs a visible CUDA GPU; the message names the flag that
    runs the ranking elsewhere (the device changes the scores only by float rounding)."""
    if name != "cuda" or torch.cuda.is_available():
        return
    asked = "--device cuda" if flag == "cuda" else f"the run's device: cuda ({resolved})"
    raise UserError(f"{asked} needs a CUDA GPU but none is visible; pass --device cpu (or --device auto) to rank "
                    f"on this machine's CPU")


def _too_many(e: TooManyArchs, out: Path, flag: bool, default: bool) -> UserError:
    """K above the space's size, worded for ``automl rank``: the flag it came from, or the run's ranking.archs
    (or the default, for a run without a ranking section), with ``--archs`` as the way out (not the recipe key
    of the run's recipe.resolved.yaml, which the command only reads)."""
    fix = (f"pass --archs {e.size} or less" if e.size >= MIN_RANKED else
           f"a ranking needs at least {MIN_RANKED} architectures, so this space cannot be ranked")
    source = "automl rank's default" if default else "the run's ranking.archs"
    asked = (f"--archs {e.asked}: {e.asked} architectures asked for" if flag else
             f"{out}: {e.asked} architectures to rank ({source})")
    return UserError(f"{asked}, but the space {e.space} has only {e.size:,}{e.of}; {fix}")


def _one_process() -> None:
    """``automl rank`` computes in one process: under torchrun (``WORLD_SIZE`` above 1) every process would rank
    alone, all but one stopped by the run folder's lock; refused, rank 0 printing it (:func:`one_process`)."""
    one_process("automl rank", "one ranking per run folder", "automl rank RUN_DIR (--device cuda for a GPU)")


def main(args) -> int:
    _one_process()
    out = Path(args.run_dir)
    resolved = out / "recipe.resolved.yaml"
    problem = path_problem(out, "a folder")  # a loop of links, a link to nothing, a pipe, socket or device
    if problem:
        raise UserError(f"{out} {problem}; RUN_DIR must be the --out folder of an automl run (the folder that "
                        f"holds its recipe.resolved.yaml)")
    if not out.exists():
        raise UserError(f"{out} does not exist; RUN_DIR must be the --out folder of an automl run (the folder "
                        f"that holds its recipe.resolved.yaml)")
    if not out.is_dir():
        raise UserError(f"{out} is not a folder; RUN_DIR must be the --out folder of an automl run"
                        f"{_inside_a_run(out)}")
    if not resolved.is_file():
        raise UserError(f"{out}: no recipe.resolved.yaml; RUN_DIR must be the --out folder of an automl run"
                        f"{_inside_a_run(out)}")
    # the run's own ranking section, or the defaults when it had none; then the flags
    base = _older_paths(resolved)
    base += [] if _run_recipe(out, resolved, base).ranking is not None else ["ranking={}"]
    flags = {key: getattr(args, key) for key in FLAGS if getattr(args, key) is not None}
    device = getattr(args, "device", None)
    recipe = _load(resolved, base + ([] if device is None else [f"device={device}"]), flags)
    _check_device(recipe.device, device, resolved)
    run = Run(recipe, out)
    # the folder's lock first: a run still writing there is its one message, before any notice on its results.
    # Only a look until the ranking's checks have passed (rank_finished_run keeps it before its first write): a
    # refused rank leaves the lock file as it found it (its record and times), or absent
    run.lock.acquire(then=f"then run automl rank {pasted_path(out)} again", look=True)
    try:
        results = read_results(out / "results.json")
        check_results(out / "results.json", results)  # before start-up reads the data
        ranking = run.rank()  # it says what it replaces in results.json once its checks have passed
    except TooManyArchs as e:
        raise _too_many(e, out, "archs" in flags, "ranking={}" in base) from None
    finally:
        run.lock.release()
    tau, rho = (("undefined" if r is None else f"{r:.4f}") for r in (ranking["kendall_tau"], ranking["spearman"]))
    how = (f"{ranking['seeds']} retraining(s) each, truth: mean test {ranking['truth']}" if ranking["retrain_epochs"]
           else f"not retrained, truth: test {ranking['truth']} of the supernet's own weights")
    why = ("; undefined: every architecture has the same score or the same truth, or one is NaN or inf (a "
           f"diverged network); {out / 'report.md'} says which" if "undefined" in (tau, rho) else "")
    print(f"kendall_tau {tau}  spearman {rho}  ({len(ranking['archs'])} architectures, {how}){why}")
    return 0
