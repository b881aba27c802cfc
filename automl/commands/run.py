"""``automl run RECIPE [key.path=value ...] [--out DIR] [--resume] [--supernet RUN_DIR [--supernet-force]]``."""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path

import torch

from automl.errors import UserError
from automl.pipeline import Run, resolve_device
from automl.recipe import load_recipe
from automl.train.distributed import DistInfo, barrier, broadcast_object, init_distributed, shutdown_distributed

__all__ = ["main", "default_out_dir", "supernet_overrides"]


STAMP = "%Y%m%d-%H%M%S"  # a run folder's name: <recipe name>-<STAMP>


def default_out_dir(name: str) -> Path:
    return Path("runs") / f"{name}-{time.strftime(STAMP)}"


def _latest_run(name: str) -> Path:
    """The newest ``runs/<name>-YYYYmmdd-HHMMSS``: not another recipe's whose name starts with this one's
    (quickstart-big-20260101-000000 is not a run of quickstart)."""
    ours = re.compile(re.escape(name) + r"-\d{8}-\d{6}")
    found = [p for p in Path("runs").iterdir() if ours.fullmatch(p.name)] if Path("runs").is_dir() else []
    runs = sorted(found, key=lambda p: p.stat().st_mtime)
    if not runs:
        raise UserError(f"--resume without --out: no earlier run of {name!r} under runs/; pass --out DIR")
    return runs[-1]


def supernet_overrides(supernet: str | None, force: bool) -> list[str]:
    """``--supernet DIR`` and ``--supernet-force`` as the recipe overrides they stand for."""
    if force and supernet is None:
        raise UserError("--supernet-force needs --supernet RUN_DIR (or the recipe key supernet)")
    return ([f"supernet={supernet}"] if supernet is not None else []) + (["supernet_force=true"] if force else [])


def main(args) -> int:
    extra = supernet_overrides(args.supernet, args.supernet_force)
    recipe = load_recipe(args.recipe, args.overrides + extra)
    # the backend (nccl or gloo) follows the device the recipe asks for; resolved once, for this rank
    info = init_distributed(resolve_device(recipe.device, DistInfo()).type)
    try:
        device = resolve_device(recipe.device, info)
        if args.out:
            out = Path(args.out)
        elif args.resume:
            out = _latest_run(recipe.name)
        else:
            out = default_out_dir(recipe.name)
        out = Path(broadcast_object(str(out), info))  # every rank uses rank 0's timestamped folder
        if torch.cuda.is_available():
            torch.backends.cudnn.benchmark = True
        again = shlex.join(["automl", "run", args.recipe, *args.overrides, *extra, "--out", str(out), "--resume"])
        Run(recipe, out, resume=args.resume, info=info, resume_command=again, device=device).execute()
        barrier(info)  # rank 0 writes the results and the report last: the other ranks wait for it
    finally:
        shutdown_distributed()
    return 0
