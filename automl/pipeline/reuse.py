"""Reusing another run's trained supernet (``automl run RECIPE --supernet RUN_DIR``, recipe key ``supernet``).

The supernet's weights are trained under uniform sampling, independent of ε, budgets and the cost metric
(Algorithm 1, lines 2–5), so one trained supernet serves any number of later searches. What the weights
do depend on is the *weights fingerprint* (:func:`weights_fingerprint`): what the space file says (not its
comments: :func:`automl.dsl.space_digest`) and its arguments, the data set and its split, the weight phase's
settings and the optimiser, and the seed. Every run records it (checkpoint and results.json); a run reusing
a supernet compares the two and refuses a mismatch key by key, unless told ``--supernet-force``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from automl.dsl import file_sha256, space_digest
from automl.errors import UserError
from automl.pipeline.context import RunContext
from automl.pipeline.state import RunState
from automl.train.checkpoint import CheckpointStore
from automl.train.data import split_seed

__all__ = ["WEIGHT_SEARCH_KEYS", "DATA_NOT_IN_WEIGHTS", "weights_fingerprint", "fingerprint_digest", "ReusedWeightsStage",
           "load_supernet", "differences"]

# search.* settings the weight phase reads (the others only steer θ, the budgets or the random baseline)
# data.* settings the weight phase never reads (D_θ's and the test set's batch sizes, loader workers); split_seed is
# recorded as the split it makes (weights_fingerprint)
DATA_NOT_IN_WEIGHTS = {"theta_batch_size", "test_batch_size", "workers", "download", "split_seed"}
# the space file's key: what it says, or (runs recorded before space_digest) the sha256 of its bytes
SPACE_DIGEST = "space.sha256"
WEIGHT_SEARCH_KEYS = ("lam", "weight_epochs", "weight_sampling", "inplace_distill", "nan_policy", "max_bad_steps")


def weights_fingerprint(recipe, space_path: Path, space_args: dict[str, str]) -> dict[str, Any]:
    """What a supernet's trained weights depend on, as flat ``key: value`` pairs (JSON values)."""
    data = recipe.data.model_dump(mode="json", exclude=DATA_NOT_IN_WEIGHTS)
    fp: dict[str, Any] = {"space": space_path.name,
                          SPACE_DIGEST: space_digest(space_path.read_bytes()),
                          "space_args": dict(sorted(space_args.items())), "seed": recipe.seed}
    fp.update({f"data.{k}": v for k, v in data.items()})
    split = split_seed(recipe.data, recipe.seed)
    if split != recipe.seed:  # absent when the split follows the seed, as in runs recorded before the key
        fp["data.split_seed"] = split
    fp.update({f"search.{k}": getattr(recipe.search, k) for k in WEIGHT_SEARCH_KEYS})
    if recipe.search.supernets != 1:  # absent for one supernet: runs recorded before the key still match
        fp["search.supernets"] = recipe.search.supernets
    fp.update({f"optim.{k}": v for k, v in recipe.optim.model_dump(mode="json").items()})
    return fp


def fingerprint_digest(fp: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()


def differences(theirs: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """``key: THEIRS there, OURS here`` for every key that differs (missing counts as differing)."""
    out = []
    for k in [*ours, *(k for k in theirs if k not in ours)]:
        a, b = theirs.get(k, "(absent)"), ours.get(k, "(absent)")
        if a != b:
            out.append(f"{k}: {json.dumps(a)} there, {json.dumps(b)} here")
    return out


def load_supernet(run_dir: Path, ours: dict[str, Any], force: bool,
                  space_path: Path | None = None) -> tuple[dict, dict[str, Any], list[str]]:
    """The trained supernet of the run in ``run_dir``: (weights, its origin for results.json, differences).

    Refuses (:class:`UserError`, exit 2) a folder without a trained supernet, and a fingerprint that
    differs from ``ours`` unless ``force``. ``space_path``: this run's space file, whose bytes' sha256 a run
    recorded before :func:`~automl.dsl.space_digest` holds instead."""
    store = CheckpointStore(Path(run_dir) / "checkpoints")
    if store.missing():
        raise UserError(f"--supernet {run_dir}: no checkpoint there (looked for {store.index_path}); give the "
                        f"--out folder of an automl run whose weight phase has finished")
    ckpt = store.load()
    if ckpt is None:
        raise UserError(f"--supernet {run_dir}: its checkpoints cannot be used: {store.why_none()}; give another "
                        f"run's folder, or train the supernet again")
    if ckpt.get("supernet") is None:
        if ckpt.get("supernet_origin") is None:  # recorded by every run whose search.method trains a supernet
            raise UserError(f"--supernet {run_dir}: that run has no trained supernet: its search.method trains "
                            f"none; give the folder of a run of search.method importance_sampling or separate")
        raise UserError(f"--supernet {run_dir}: that run has no trained supernet yet: its weight phase has not "
                        f"finished; finish it first (automl run RECIPE --out {run_dir} --resume, with its "
                        f"recipe and overrides)")
    theirs = ckpt.get("weights_fingerprint")
    if theirs is None:
        raise UserError(f"--supernet {run_dir}: that run records no weights fingerprint (an older automl); "
                        f"train the supernet again with this version")
    if space_path is not None and theirs.get(SPACE_DIGEST) == file_sha256(space_path):
        theirs = {**theirs, SPACE_DIGEST: ours[SPACE_DIGEST]}
    diff = differences(theirs, ours)
    if diff and not force:
        raise UserError(f"--supernet {run_dir}: its supernet was trained with other settings than this recipe "
                        f"asks for:\n  " + "\n  ".join(diff) + "\nset these as that run did (its "
                        f"recipe.resolved.yaml), or pass --supernet-force to use the supernet anyway")
    origin = {"from": str(Path(run_dir).absolute()), "fingerprint": fingerprint_digest(theirs),
              "forced": bool(diff), "differs": diff}
    return ckpt["supernet"], origin, diff


class ReusedWeightsStage:
    """Instead of the weight phase: another run's trained supernet (stage key ``weights``, so the θ stage
    that follows has the index, and so the seeds, of a run that trained it)."""

    key = "weights"

    def __init__(self, run_dir: Path, force: bool):
        self.run_dir, self.force = Path(run_dir), force

    def run(self, ctx: RunContext, state: RunState, idx: int) -> None:
        # read (and checked) once at start-up by a new run; a resumed run reads it here
        weights, origin, diff = ctx.reused or load_supernet(self.run_dir, state.weights_fingerprint, self.force,
                                                            ctx.spaces.path)
        if diff:
            ctx.reporter.info(f"warning: --supernet-force: the supernet of {self.run_dir} was trained with other "
                              f"settings:\n  " + "\n  ".join(diff))
        ctx.reporter.info(f"weights: the trained supernet of {self.run_dir} (weight phase skipped)")
        state.supernet, state.supernet_origin = weights, origin
        ctx.keeper.save(idx + 1, 0)
