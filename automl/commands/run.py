"""``automl run RECIPE [key.path=value ...] [--out DIR] [--resume]``."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from automl.errors import UserError

__all__ = ["main", "default_out_dir"]


def default_out_dir(name: str) -> Path:
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _latest_run(name: str) -> Path:
    runs = sorted(Path("runs").glob(f"{name}-*"), key=lambda p: p.stat().st_mtime) if Path("runs").is_dir() else []
    if not runs:
        raise UserError(f"--resume without --out: no earlier run of {name!r} under runs/; pass --out DIR")
    return runs[-1]


def main(args) -> int:
    from automl.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    import torch

    from automl.pipeline import Run, resolve_device
    from automl.train.distributed import DistInfo, broadcast_object, init_distributed

    # the backend (nccl or gloo) follows the device the recipe asks for
    info = init_distributed(resolve_device(recipe.device, DistInfo()).type)
    if args.out:
        out = Path(args.out)
    elif args.resume:
        out = _latest_run(recipe.name)
    else:
        out = default_out_dir(recipe.name)
    out = Path(broadcast_object(str(out), info))  # every rank uses rank 0's timestamped folder
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
    again = shlex.join(["automl", "run", args.recipe, *args.overrides, "--out", str(out), "--resume"])
    Run(recipe, out, resume=args.resume, info=info, resume_command=again).execute()
    return 0
