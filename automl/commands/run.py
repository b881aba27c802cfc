"""``automl run RECIPE [key.path=value ...] [--out DIR] [--resume] [--supernet RUN_DIR [--supernet-force]]``."""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path


from automl.errors import UserError
from automl.pipeline import Run, resolve_device
from automl.pipeline.context import on_main
from automl.pipeline.run import held_files
from automl.recipe import load_recipe
from automl.train.distributed import DistInfo, barrier, init_distributed, shutdown_distributed

__all__ = ["main", "default_out_dir", "supernet_overrides"]


STAMP = "%Y%m%d-%H%M%S"  # a run folder's name: <recipe name>-<STAMP>, then -2, -3, ... for one started that second
RUNS = Path("runs")


def default_out_dir(name: str) -> Path:
    """Create a new run folder ``runs/<name>-<STAMP>`` and return it; taken (by a run started in the same second,
    or anything of that name), the first free of ``...-2``, ``...-3``, ... Each name is claimed by an atomic
    ``mkdir``, so runs started together never share a folder."""
    stamp, n, lost = time.strftime(STAMP), 1, 0
    while True:
        out = RUNS / (f"{name}-{stamp}" if n == 1 else f"{name}-{stamp}-{n}")
        try:
            out.mkdir(parents=True)
            return out
        except FileExistsError:
            n += 1
        except FileNotFoundError as e:  # runs/ removed between its mkdir and ours (a failed start-up's cleanup)
            lost += 1
            if lost > 3:
                raise _cannot_create(out, e) from None
        except OSError as e:
            raise _cannot_create(out, e) from None


def _cannot_create(out: Path, e: OSError) -> UserError:
    return UserError(f"cannot create the run folder {out} ({e.strerror or e}); run automl from a folder you can "
                     f"write to, or choose the run's folder with --out DIR")


def _drop_unused(out: Path, runs_was_there: bool) -> None:
    """Remove ``out``, a run folder this command created, when a failed start-up left nothing in it but its own
    files and empty folders (:func:`~automl.pipeline.run.held_files` finds none): no run to resume there.
    ``runs/`` too, when this command created it and it is empty now. Anything else stays."""
    try:
        if held_files(out):
            return
        for p in out.iterdir():
            if p.is_dir():
                p.rmdir()
            else:
                p.unlink()
        out.rmdir()
        if not runs_was_there:
            out.parent.rmdir()
    except OSError:  # not empty after all (another writer), or already gone: left as it is
        pass


def _latest_run(name: str) -> Path:
    """The run ``runs/<name>-YYYYmmdd-HHMMSS[-n]`` with the latest time in its name (and of that second, the
    highest n): not the folder modified last (``automl rank`` and a resumed report write into old runs), nor
    another recipe's whose name starts with this one's (quickstart-big-20260101-000000 is not a run of
    quickstart)."""
    ours = re.compile(re.escape(name) + r"-(\d{8}-\d{6})(?:-(\d+))?")
    names = [p.name for p in RUNS.iterdir()] if RUNS.is_dir() else []
    found = [((m[1], int(m[2] or 1)), m[0]) for m in map(ours.fullmatch, names) if m]
    if not found:
        raise UserError(f"--resume without --out: no earlier run of {name!r} under runs/; pass --out DIR")
    return RUNS / max(found)[1]


def supernet_overrides(supernet: str | None, force: bool) -> list[str]:
    """``--supernet DIR`` and ``--supernet-force`` as the recipe overrides they stand for."""
    if force and supernet is None:
        raise UserError("--supernet-force needs --supernet RUN_DIR (or the recipe key supernet)")
    return ([f"supernet={supernet}"] if supernet is not None else []) + (["supernet_force=true"] if force else [])


def main(args) -> int:
    if args.out is not None and not str(args.out).strip():
        raise UserError(f"--out {str(args.out)!r} is empty; give the run's folder (--out runs/mine), or leave --out "
                        f"out for a new runs/<name>-<time>")
    extra = supernet_overrides(args.supernet, args.supernet_force)
    recipe = load_recipe(args.recipe, args.overrides + extra)
    # the backend (nccl or gloo) follows the device the recipe asks for; resolved once, for this rank
    info = init_distributed(resolve_device(recipe.device, DistInfo()).type)
    claimed, runs_was_there = None, RUNS.is_dir()
    try:
        device = resolve_device(recipe.device, info)
        if args.out:
            out = Path(args.out)
        else:  # rank 0 picks (or creates) the folder; every rank uses it
            out = Path(on_main(info, lambda: str(_latest_run(recipe.name) if args.resume
                                                  else default_out_dir(recipe.name))))
            claimed = out if info.is_main and not args.resume else None
        again = shlex.join(["automl", "run", args.recipe, *args.overrides, *extra, "--out", str(out), "--resume"])
        try:
            Run(recipe, out, resume=args.resume, info=info, resume_command=again, device=device).execute()
        except BaseException:
            if claimed is not None:
                _drop_unused(claimed, runs_was_there)
            raise
        barrier(info)  # rank 0 writes the results and the report last: the other ranks wait for it
    finally:
        shutdown_distributed()
    return 0
