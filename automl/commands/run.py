"""``automl run RECIPE [key.path=value ...] [--out DIR] [--resume] [--supernet RUN_DIR [--supernet-force]]``."""

from __future__ import annotations

import os
import re
import shlex
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

from automl._io import absolute_path, pasted_path, reader_gone
from automl._signals import Interrupted, ignored_at_exit, raising_on
from automl.errors import Stopped, UserError, interrupted_before_the_run, say
from automl.pipeline import Run
from automl.pipeline.context import how_to_go_on, on_main
from automl.pipeline.run import held_files, leftovers
from automl.pipeline.setup import recipe_device
from automl.recipe import PATH_KEYS, load_recipe
from automl.train.checkpoint import CheckpointStore
from automl.train.distributed import (DistInfo, as_launched, continued_by, elastic_restart, init_distributed,
                                     launch_info, reported, said_by_this_rank, shutdown_distributed)
from automl.train.preempt import SIGNALS

__all__ = ["main", "default_out_dir", "supernet_overrides", "yaml_string", "rank_0_first", "START_GRACE",
           "one_process", "absolute_override", "resume_command", "interrupted_before_the_run"]


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


def _new_run_folder(name: str, made: list[Path]) -> Path:
    """:func:`default_out_dir`, the folder also appended to ``made`` before a stop signal can act
    (:func:`_signals_held`): the start-up's cleanup (:func:`_drop_unused`) knows every folder it created."""
    with _signals_held():
        out = default_out_dir(name)
        made.append(out)
    return out


@contextmanager
def _signals_held():
    """Inside the block, each stop signal (SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2) whose handler is Python's (a
    start-up's, raising :class:`StoppedStarting`, or SIGINT's ``KeyboardInterrupt``) is noted, not acted on; as
    the block ends its handler is restored, and the first signal noted is acted on (that handler called). A second
    signal in the block acts on the first at once (the block may wait long on a slow file system). One that comes
    before its handler is replaced acts at once, before the block. Outside the main thread (where no handler
    runs), nothing changes."""
    noted: list[int] = []
    held = {}

    def give_back():
        for sig, handler in held.items():
            if signal.getsignal(sig) is note:  # (a handler acting on a signal may have reset it: left so)
                signal.signal(sig, handler)

    def note(signum, frame):
        noted.append(signum)
        if len(noted) == 2:  # pressed again: no more waiting
            give_back()
            held[noted[0]](noted[0], frame)

    try:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                if callable(signal.getsignal(sig)):
                    held[sig] = signal.signal(sig, note)
        yield
    finally:
        give_back()
        if len(noted) == 1:
            held[noted[0]](noted[0], None)


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


def _say_output_closed(out: Path, again: str) -> None:
    """On standard error, when the run stopped because standard output's reader went away (``| head``): how to
    go on. Said only where standard error can still be written and is not that same closed pipe."""
    if not reader_gone(sys.stdout) or reader_gone(sys.stderr):
        return
    keep = "give it an output that stays open (`> run.log`, or `| tee run.log` to watch it too)"
    go_on = (how_to_go_on(True, out, again, keep) if CheckpointStore(out / "checkpoints").exists()
             else f"no checkpoint was written yet: {keep} and run the command again")
    try:
        print(f"the run stopped: its standard output was closed (the command reading it has ended); {go_on}",
              file=sys.stderr, flush=True)
    except OSError:
        pass


def _latest_run(name: str) -> Path:
    """The run ``runs/<name>-YYYYmmdd-HHMMSS[-n]`` with the latest time in its name (and of that second, the
    highest n): not the folder modified last (``automl rank`` and a resumed report write into old runs), nor
    another recipe's whose name starts with this one's (quickstart-big-20260101-000000 is not a run of
    quickstart), nor a file of such a name. Later folders that hold nothing to continue (:func:`_started_only`)
    are passed over, each named in a line, for the latest run that holds more; when none does, the latest folder
    (``--resume`` then says that it holds no checkpoint)."""
    ours = re.compile(re.escape(name) + r"-(\d{8}-\d{6})(?:-(\d+))?")
    names = [p.name for p in RUNS.iterdir() if p.is_dir()] if RUNS.is_dir() else []
    found = [((m[1], int(m[2] or 1)), m[0]) for m in map(ours.fullmatch, names) if m]
    if not found:
        raise UserError(f"--resume without --out: no earlier run of {name!r} under {absolute_path(RUNS)} (runs/ "
                        f"of the current folder); pass --out DIR, or run it from the folder the run started in")
    runs = [RUNS / n for _, n in sorted(found, reverse=True)]
    chosen = next((d for d in runs if not _started_only(d)), runs[0])
    for d in runs[:runs.index(chosen)]:
        print(f"--resume: passed over {d}: no checkpoint and nothing but what a run writes before its first one (a "
              f"run stopped before it, or one starting now); delete it when no run is writing there", flush=True)
    return chosen


def _started_only(folder: Path) -> bool:
    """Whether ``folder`` holds no checkpoint (none usable or not) and nothing but what a run writes before its
    first one (:func:`~automl.pipeline.run.leftovers`): a run stopped (or killed) before it left it, or one is
    starting or in its first epoch there now. A folder that cannot be listed is not one."""
    return leftovers(folder) is not None


def yaml_string(text: str) -> str:
    """``text`` as a YAML double-quoted scalar that reads back as exactly ``text``: an override's value for a
    path, which YAML would otherwise read (``null`` and ``~`` as null, ``2024`` as a number, ``a #b`` cut at its
    comment). Every character outside printable ASCII is escaped, so a name with bytes that are not UTF-8 (a
    lone surrogate to Python) keeps them."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif " " <= c <= "~":
            out.append(c)
        else:
            out.append(f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}")
    return '"' + "".join(out) + '"'


def supernet_overrides(supernet: str | None, force: bool) -> list[str]:
    """``--supernet DIR`` and ``--supernet-force`` as the recipe overrides they stand for (DIR a folder's name
    as given, never read as YAML: :func:`yaml_string`)."""
    if force and supernet is None:
        raise UserError("--supernet-force needs --supernet RUN_DIR; for the recipe key supernet, set "
                        "supernet_force: true in the recipe (or give the override supernet_force=true)")
    if supernet is not None and not supernet.isprintable():  # bytes that are not UTF-8, a control character
        raise UserError(f"--supernet {supernet!r}: the folder's name is not printable UTF-8 text, which the run "
                        f"records in its recipe.resolved.yaml; rename the folder (or link it under a plain name)")
    return (([f"supernet={yaml_string(supernet)}"] if supernet is not None else [])
            + (["supernet_force=true"] if force else []))


def _relative(value) -> bool:
    """Whether ``value``, an override's path, is relative to the current folder (``~`` is not)."""
    return isinstance(value, str) and bool(value) and not Path(os.path.expanduser(value)).is_absolute()


def absolute_override(item: str) -> str:
    """The override ``item`` (``key.path=value``) as a command pasted from any folder gives it: a path relative to
    the current folder (the recipe's path keys, ``space=../x``, also inside a section's mapping,
    ``search={cost_table: t.json}``) made absolute (:func:`~automl._io.absolute_path`), read back as
    the same path (:func:`yaml_string`); any other override, and one the recipe would not read, as typed."""
    key, sep, text = item.partition("=")
    keys = tuple(key.strip().split("."))
    below = [k[len(keys):] for k in PATH_KEYS if k[:len(keys)] == keys]
    if not sep or not below:
        return item
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except (yaml.YAMLError, ValueError, OverflowError):
        return item
    if below == [()]:  # the key is a path
        return f"{key.strip()}={yaml_string(str(absolute_path(value)))}" if _relative(value) else item
    if not isinstance(value, dict):
        return item
    changed = False
    for k in below:  # a section's mapping: each path key in it
        section = value
        for name in k[:-1]:
            section = section.get(name) if isinstance(section, dict) else None
        if isinstance(section, dict) and _relative(section.get(k[-1])):
            section[k[-1]], changed = str(absolute_path(section[k[-1]])), True
    if not changed:
        return item
    try:
        return f"{key.strip()}=" + yaml.safe_dump(value, default_flow_style=True, sort_keys=False,
                                                  width=2 ** 30).strip()
    except (yaml.YAMLError, UnicodeError):
        return item


def resume_command(args, out: Path) -> str:
    """The command that continues the run in ``out`` as ``args`` started it, every path in it absolute (pasted from
    any folder, a job's log read later, it continues the same run): the recipe, ``--out``, ``--supernet`` and the
    overrides' paths (:func:`absolute_override`); under torchrun, the torchrun command that starts as many processes
    (:func:`~automl.train.distributed.as_launched`): pasted as printed, the run goes on with the same count."""
    flags = (["--supernet", pasted_path(args.supernet)] if args.supernet is not None else []) + (
        ["--supernet-force"] if args.supernet_force else [])
    overrides = [shlex.quote(absolute_override(item)) for item in args.overrides]
    return as_launched(" ".join(["automl", "run", pasted_path(args.recipe), *overrides,
                                 "--out", pasted_path(out), *flags, "--resume"]))


def _supernet_typed(args) -> str | None:
    """How the command line set the recipe's supernet, which its messages name (the last one typed wins, and
    ``--supernet``'s override comes after the others: :func:`supernet_overrides`): ``"--supernet"``,
    ``"override"`` (``supernet=DIR``, the key as the recipe reads an override's), or None (the recipe's own)."""
    if args.supernet is not None:
        return "--supernet"
    if any(item.partition("=")[0].strip() == "supernet" for item in args.overrides):
        return "override"
    return None


def _force_typed(args) -> str | None:
    """How the command line set the recipe's ``supernet_force``, which the warning of a forced supernet names
    (:func:`~automl.pipeline.run.force_named`): ``"--supernet-force"`` (its override comes after the others:
    :func:`supernet_overrides`), ``"override"`` (``supernet_force=...``), or None (the recipe's own)."""
    if args.supernet_force:
        return "--supernet-force"
    if any(item.partition("=")[0].strip() == "supernet_force" for item in args.overrides):
        return "override"
    return None


class StoppedStarting(Interrupted):
    """A stop signal (SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2) before the run's stages took over the signals, or
    after they all finished (:func:`_stopping_start_up`); like ``KeyboardInterrupt``, no ``except Exception`` of the
    start-up's code takes it for an error of its own. :func:`main` raises it on as :class:`~automl.errors.Stopped`
    (exit 128 + the signal), or, after a finished run (``Run.finished``), says so and exits 0
    (:func:`_say_finished`)."""


@contextmanager
def _stopping_start_up(info: DistInfo):
    """Inside the block, the stop signals (SIGNALS) raise :class:`StoppedStarting` where they would end the process
    (their handler is the default, not ignored as ``nohup`` ignores SIGHUP), so that the run folder a start-up
    created is removed (:func:`_drop_unused`) rather than left behind; the stages replace this with their own
    handling (:meth:`automl.train.preempt.Preemption.armed`) until they all finish (a signal after it: the run
    finished, nothing to resume), and a second signal ends the process at once. One
    process only: under torchrun a rank stopped in a collective could not act on it (``--resume`` passes over
    what such a start-up leaves: :func:`_latest_run`)."""
    with raising_on(SIGNALS, StoppedStarting, enabled=not info.enabled):
        yield


def _stopped_starting(e: StoppedStarting, out: Path | None, again: str, claimed: Path | None, resume: bool,
                      began: bool) -> None:
    """Say on standard error (a terminal that hung up: nothing) what a signal during start-up left; ``claimed``:
    the run folder this command chose and created (not a ``--out``), which :func:`_drop_unused` removes;
    ``resume``: the command continues the run in ``out`` (``--resume``); ``began``: the start-up had the folder
    (it created ``claimed``, or its ``Run`` was made), so what it left there is said (:func:`_left_in`)."""
    name = signal.Signals(e.signum).name
    store = CheckpointStore(out / "checkpoints") if out is not None else None
    if store is None or store.missing():
        left = f" ({_left_in(out, claimed)})" if out is not None and began else ""
        text = (f"stopped by {name} while the run started, before its first checkpoint: nothing to resume{left}; "
                f"start the run again")
    elif not store.exists():  # a checkpoint file, but no usable index: --resume would refuse it too
        text = (f"stopped by {name} while the run started; {out} is left as it was, with no checkpoint --resume can "
                f"use: {store.why_none()}")
    elif resume:
        text = f"stopped by {name} while the run started; its checkpoints are as they were. Continue with: {again}"
    else:  # a new run, which would have been refused in a folder holding a run's checkpoints
        text = (f"stopped by {name} while the run started, before it wrote anything in {out}, which holds another "
                f"run's checkpoints (left as they were); to continue that run, if it is this recipe's: {again}")
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass


def _left_in(out: Path, claimed: Path | None) -> str:
    """What a start-up stopped before its first checkpoint left of ``out``, its run folder, in words: removed (a
    folder this command chose, ``claimed``), not there (a new ``--out``: never made, or removed with what the
    start-up wrote: :func:`~automl.pipeline.run._left_as_found`), empty, only a start-up's files (which a new run
    takes over: :func:`~automl.pipeline.run.leftovers`), or what else it holds, left as it is."""
    try:
        if not out.is_dir():
            return (f"{out} removed" if claimed is not None else
                    f"{out} does not exist: nothing was left behind" if not out.exists() and not out.is_symlink()
                    else f"{out} is not a folder")
        names = sorted(p.name for p in out.iterdir())
    except OSError:
        return f"{out} cannot be listed"
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    if not names:
        return f"{out} is empty: nothing was left in it"
    if leftovers(out) is not None:
        return f"{out} holds only what a start-up writes ({shown}), which a new run there takes over"
    return f"{out} left as it is, holding {shown}"


def _say_finished(signum: int, out: Path, info: DistInfo, during_report: bool) -> None:
    """Say on standard error (rank 0; a terminal that hung up: nothing) that the signal ``signum`` came as the run
    finished: ``during_report`` (its stages caught it and let the report, their last step, end) or after its
    stages had all finished. The results are complete, and there is nothing to resume."""
    if not info.is_main:
        return
    name, where = signal.Signals(signum).name, f"its results are in {out / 'results.json'} and {out / 'report.md'}"
    text = (f"{name} came as the run wrote its report, its last step: the run finished it and is complete, with "
            f"nothing to resume; {where}" if during_report else
            f"{name} after the run had finished: nothing was stopped; {where}")
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass


# seconds a process that leaves a start-up mistake to rank 0 to print waits before it exits (rank_0_first)
START_GRACE = 5.0


def rank_0_first(e: UserError, launch: DistInfo) -> UserError:
    """``e``, once rank 0 has had time to print it: torchrun stops every worker as soon as one exits, so a rank that
    found the mistake first and exited at once would have rank 0 (the same mistake found a moment later: a busier
    node, a slower start) stopped before it printed anything. A process that does not print ``e`` itself waits
    up to :data:`START_GRACE` seconds; rank 0 exits meanwhile (2, the mistake printed) and torchrun stops it.

    The wait has nothing to say: a stop signal then (torchrun's SIGTERM once rank 0 has exited, a Ctrl-C that
    reaches every rank) ends it, and the process exits 2 without a word, as after the wait; the command's outcome
    was decided before the signal came, which stopped nothing (as a signal after a finished run: _say_finished)."""
    if launch.enabled and not launch.is_main and not e.printed:
        try:
            with raising_on(SIGNALS, Interrupted):
                time.sleep(START_GRACE)
        except Interrupted:
            ignored_at_exit(SIGNALS)  # torchrun's own stop signal, or a second Ctrl-C, as the process exits: 2 still
    return e


def _whole(name: str) -> int | None:
    """The environment's ``name`` as a whole number; None where unset, empty or no whole number."""
    try:
        return int(os.environ.get(name, "").strip())
    except ValueError:
        return None


def one_process(command: str, why: str, instead: str) -> None:
    """Refuse ``command``, one that computes in one process (``automl export``; ``why``: what a second process
    would spoil), under torchrun (``WORLD_SIZE`` above 1), where every process would do all of it alone, into the
    same files. Every process stops on it (exit 2); rank 0 alone prints it, which the others wait for
    (:func:`rank_0_first`); ``instead``: the command to run, in one process. An environment torchrun did not set
    whole (a stale ``WORLD_SIZE``/``RANK``, no ``MASTER_ADDR``) has no rank 0 to leave it to: every process prints
    its refusal, which says to unset them."""
    world, rank = _whole("WORLD_SIZE"), _whole("RANK")
    if world is None or world <= 1:  # unset, empty, no whole number or 1: no launch of several processes
        return
    if rank is None or not 0 <= rank < world or not all(os.environ.get(k, "").strip()
                                                         for k in ("MASTER_ADDR", "MASTER_PORT")):
        raise said_by_this_rank(UserError(
            f"{command} computes in one process ({why}), but the environment sets WORLD_SIZE={world}: unset "
            f"WORLD_SIZE (and RANK, MASTER_ADDR, MASTER_PORT where set), then `{instead}`"))
    e = UserError(f"{command} computes in one process ({why}), but the environment sets WORLD_SIZE={world} "
                  f"(torchrun sets it): run it without torchrun, `{instead}`, or unset WORLD_SIZE")
    raise rank_0_first(e, DistInfo(rank=rank, world_size=world))


def main(args) -> int:
    # torchrun's variables first: a mistake there is what every process says, whatever else is wrong (launch_info)
    launch = launch_info()
    try:
        if args.out is not None and not str(args.out).strip():
            raise UserError(f"--out {str(args.out)!r} is empty; give the run's folder (--out runs/mine), or leave "
                            f"--out out for a new runs/<name>-<time>")
        extra = supernet_overrides(args.supernet, args.supernet_force)
        # every process loads it before the ranks meet: rank 0 alone says its warnings (its errors: reported)
        recipe = load_recipe(args.recipe, args.overrides + extra, warn=launch.is_main)
        # the backend (nccl or gloo) follows the device the recipe asks for; resolved once, for this rank
        info = init_distributed(recipe_device(recipe, DistInfo()).type)
    except UserError as e:  # found by each process alone, before the ranks met: who says it (reported)
        raise rank_0_first(reported(e, launch, before_start=True), launch)
    except KeyboardInterrupt:  # Ctrl-C as the recipe loads or the ranks meet: exit 130, as the CLI's
        if launch.is_main:
            say(interrupted_before_the_run(args.out))
        raise Stopped(signal.SIGINT) from None
    try:
        return _run(args, recipe, info)
    except UserError as e:
        raise reported(e, info)


def _restart_resumes(args, out: Path, info: DistInfo) -> bool:
    """Whether a worker group torchrun restarted (``--max-restarts``) continues the run in ``--out``: torchrun
    starts it again with the command as given, without ``--resume``, and the run wrote a checkpoint before the
    failure (without one, the restarted run takes the folder over as a new run's). Rank 0 looks; it says so."""
    restart = elastic_restart()
    if not restart or args.out is None:  # without --out, a new folder: the first start's is not known here
        return False
    if not on_main(info, lambda: CheckpointStore(out / "checkpoints").exists()):
        return False
    if info.is_main:
        print(f"torchrun restarted the workers (restart {restart}): resuming the run in {out} from its last "
              f"checkpoint", file=sys.stderr, flush=True)
    return True


def _run(args, recipe, info: DistInfo) -> int:
    """The run of ``recipe`` in its folder, once the ranks (if several) have met; the process group ends here."""
    # made: the run folder this command created (rank 0, without --out or --resume), recorded as it is made
    made, runs_was_there, out, again, run = [], RUNS.is_dir(), None, "", None
    try:
        with _stopping_start_up(info):
            device = recipe_device(recipe, info)
            if args.out:
                out = Path(args.out)
            else:  # rank 0 picks (or creates) the folder; every rank uses it
                out = Path(on_main(info, lambda: str(_latest_run(recipe.name) if args.resume
                                                      else _new_run_folder(recipe.name, made))))
            try:
                again = resume_command(args, out)
                # a lost rank's message names it; a restarted worker group resumes the run where the command names
                # its folder (--out) or, with --resume, finds it again (the latest run of the recipe)
                with continued_by(again, out_given=args.out is not None or args.resume):
                    resume = args.resume or _restart_resumes(args, out, info)
                    run = Run(recipe, out, resume=resume, info=info, resume_command=again, device=device,
                              supernet_typed=_supernet_typed(args), force_typed=_force_typed(args))
                    run.execute()  # its stages end with every rank waiting for rank 0's report, signals still caught
            except BaseException as e:
                if made:
                    _drop_unused(made[0], runs_was_there)
                if isinstance(e, BrokenPipeError):
                    _say_output_closed(out, again)
                raise
    except StoppedStarting as e:  # before the stages took over the signals, or after they all finished
        if run is not None and run.finished:  # told by the run itself: its report is written
            _say_finished(e.signum, out, info, during_report=False)
            ignored_at_exit(SIGNALS)
            return 0
        claimed = made[0] if made else None
        if claimed is not None:  # stopped before Run took it (else removed already, when it held nothing)
            _drop_unused(claimed, runs_was_there)
            out = claimed  # (the signal may have come before on_main handed it back)
        _stopped_starting(e, out, again, claimed, args.resume, began=run is not None or claimed is not None)
        raise Stopped(e.signum) from None
    finally:
        shutdown_distributed()
    if run.late_signal:  # caught by its stages as they wrote the report: they finished it
        _say_finished(run.late_signal, out, info, during_report=True)
    ignored_at_exit(SIGNALS)
    return 0
