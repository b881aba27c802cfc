"""``automl export SPACE --arch ARCH.json --out DIR [--quantize int8 --recipe R]``: one architecture -> ONNX
(and int8 ONNX) + weights + manifest with the onnxruntime latency measured on this machine. While it writes there,
``--out`` is locked (:func:`_out_locked`): a second export into the same folder is refused, naming this one."""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import torch
import yaml

from automl._io import path_problem, writable_dir, write_fix
from automl._lock import LOCK_NAME, RunLock, held_by, lock_holder
from automl._signals import Interrupted, ignored_at_exit, ignoring, raising_on
from automl.commands._arch_args import arch_choices, arch_space_args, export_note, params_warning, read_arch
from automl.commands.run import one_process
from automl.compile import load_compiled
from automl.dsl import ir, load_space, space_digest
from automl.errors import RecipeError, SpaceError, Stopped, UserError, say
from automl.export import check_se, export_architecture, is_manifest, load_checkpoint, run_of, split_checkpoint
from automl.export.inherit import SUPERNET_KEYS
from automl.export.manifest import (MANIFEST_NAME, check_arch_space, check_channels, check_classes, class_names,
                                    finite_number, plain_name)
from automl.export.onnx import check_opset
from automl.export.quantize import EXPORT_TIMED, QUANTIZE_MODES, MeasurementsUnwritten, measure_export
from automl.pipeline.reuse import ROOT_ONLY_LOCATES
from automl.pipeline.run import RESOLVED
from automl.pipeline.setup import recipe_data
from automl.profile import (EXPORT_PROTOCOL, CostTableRefusal, apply_cost_table, check_clock, profile_command,
                            read_cost_table, table_timing)
from automl.recipe import export_folder, file_line, load_recipe
from automl.report import format_accuracy, int8_float_words
from automl.train.data import DATASETS, normalization

__all__ = ["main", "STOP_SIGNALS"]

# the signals that stop an export: Python's SIGINT (Ctrl-C) and the default SIGTERM and SIGHUP (:func:`main`)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# what to do once the command writing to --out (another automl export) has ended (:func:`_out_locked`)
_AGAIN = "then run this export again, or choose another --out"
# what the machine refuses to write (a full disk or quota, a file past a size limit, a folder that cannot be written):
# an export that meets one of these while it writes says so in one message (:func:`_write_failed`)
_REFUSED_WRITES = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS)


class _Progress:
    """How far an export got (:func:`main`): ``stage`` ``"checking"`` (nothing written), ``"writing"``
    (:func:`~automl.export.export_architecture` replaces the files of ``--out``, ``manifest.json`` last),
    ``"measuring"`` (its files written, ``manifest.json`` without ``latency``), ``"finished"``; ``created``:
    the folders the export creates (``--out`` and those above it that did not exist, deepest first), once known;
    ``before``: what ``--out`` held before the export wrote there (:func:`_snapshot`)."""

    def __init__(self):
        self.stage, self.created, self.before = "checking", None, {}


def main(args) -> int:
    """Export as ``args`` say; SIGTERM, SIGINT (Ctrl-C) or SIGHUP before the export has finished removes a new
    ``--out`` with what it had written, says what it left (:func:`_stopped`) and exits 128 + the signal; one
    after it has finished (every file written and measured) says so and exits 0, as a finished ``automl run``
    does."""
    # before anything is read or written: under torchrun, every process would export into the same --out, timing
    # the network on the same cores at once
    one_process("automl export", "it times the network on this machine's cores",
                "automl export SPACE --arch ARCH.json --out DIR")
    progress = _Progress()
    try:
        with raising_on(STOP_SIGNALS, Interrupted):
            code = _export(args, progress)
    except (KeyboardInterrupt, Interrupted) as e:
        signum = getattr(e, "signum", signal.SIGINT)
        name = signal.Signals(signum).name
        if progress.stage == "finished":
            say(f"{name} after the export had finished: nothing was stopped; {args.out} holds the complete "
                  f"export")
            ignored_at_exit(STOP_SIGNALS)
            return 0
        with ignoring(STOP_SIGNALS):  # a second Ctrl-C does not cut the removal short
            said = _stopped(args, progress, name)
        say(said)
        raise Stopped(signum) from None
    ignored_at_exit(STOP_SIGNALS)
    return code


def _export(args, progress: _Progress) -> int:
    _check_args(args)
    arch_json = read_arch(args.arch)
    recorded = arch_json if is_manifest(arch_json) else None  # an export's manifest.json: that network again
    # a manifest's network, or the parameters an ARCH.json of `automl space encode` was encoded with
    overrides = arch_space_args(args.space, args.arch, arch_json, args.set)
    compiled = load_compiled(args.space, overrides or None)
    check_arch_space(arch_json, compiled, args.arch)  # a file of another space: said before what does not fit
    if recorded is not None:
        check_channels(recorded, f"--arch {args.arch}", int(compiled.input_shape[0]))
        check_classes(recorded, f"--arch {args.arch}", int(compiled.num_classes))
    arch = compiled.encode(arch_choices(arch_json, compiled, args.arch))
    se = check_se(_se(args, recorded), compiled, arch)
    warning = params_warning(arch_json, compiled, arch, "--arch", args.arch, overrides, se=se)
    if warning is None and not args.weights:  # --weights decides the network exported (and its se)
        warning = export_note(arch_json, compiled, arch, args.arch, se)
    if warning:
        print(warning, file=sys.stderr)
    check_opset(args.opset)
    owner = _check_out(args)
    weights, supernet_state, trained_on, fingerprint = _weights(args, compiled, arch, se, recorded)
    # the recipe's data and the output folder before anything is written or measured: a bad recipe or --out
    # leaves no half-measured export
    recipe, data = _recipe_data(args, compiled, fingerprint) if getattr(args, "recipe", None) else (None, None)
    timing, timed_as = _timing(recipe, compiled)  # with a table that fits, compiled is priced by it too
    _said(_protocol_note(args, recorded, timing, recipe))
    normalize, note, dataset = _normalize(args, recorded, data), None, _dataset(args, recorded, data)
    classes = _classes(args, recorded, data)
    if normalize is None and supernet_state is not None and data is None:
        normalize, note = _checkpoint_normalize(args.weights, trained_on, int(compiled.input_shape[0]))
        dataset = dataset or (trained_on if note is None else None)
    created = _missing_folders(args.out)  # --out and the folders above it writable_dir creates
    # --out locked while written: a second export there is refused; a refused one leaves no empty folder behind
    with _out_locked(args, created, progress):
        owner = _check_out(args)  # again, now that no other export writes there: one may have ended meanwhile
        size = compiled.resolution(arch)  # elastic resolution: the recipe's images resized to the chosen one
        calibration = None
        if supernet_state is not None and data is not None:
            # as a run with retrain.epochs 0 does: the recipe's retrain.bn_batches first D_W batches
            calibration = data.bn_batches(recipe.retrain.bn_batches, size)
        progress.before, progress.stage = _snapshot(args.out), "writing"
        export_architecture(compiled, arch, args.out, weights=weights, supernet_state=supernet_state,
                            se=se, opset=args.opset, space_path=args.space, space_args=overrides,
                            bn_calibration=calibration, normalize=normalize, dataset=dataset, onnx_failure="record",
                            run=owner, weights_source=args.weights and f"--weights {args.weights}", classes=classes,
                            **_kept(args, recorded, compiled, weights is not None, recipe))
        progress.stage = "measuring"
        if _onnx_failed(args):
            return 1
        int8_batches = data.full.without_cutout().with_resolution(size).epoch(0) if data else None
        manifest = measure_export(args.out, quantize=getattr(args, "quantize", None), calibration=int8_batches,
                                  test=(lambda: data.test.with_resolution(size).epoch(0)) if data else None,
                                  note_float=False, **timing)  # said once, in the summary's int8 line
        progress.stage = "finished"
    _report(args, manifest, supernet_state, calibration, timed_as)
    if note:
        print(note, file=sys.stderr)
    _said(_run_folder_note(args, owner))
    return 0


def _said(note: str | None) -> None:
    if note:
        say(note)


def _timing(recipe, compiled) -> tuple[dict, str | None]:
    """How the export's latency is timed (:func:`~automl.export.quantize.measure_export`'s ``batch``, ``threads``
    and ``clock``), with what chose it as the printed line says it (None: the default): as a run of ``recipe``
    (--recipe) times its exports, by its search.cost_table's batch, threads and clock (results.json's
    ``latency_protocol``), so that the latency compares with the table's costs and the run's own exports'; without a
    recipe or a table, batch 1 and one thread by the wall clock. A table that fits the exported space also prices
    ``compiled``, as a run's table prices its network (:func:`_price`). A table that is not one, or a clock this
    system reads too coarsely, is a :class:`RecipeError` at search.cost_table, said before anything is written."""
    default = {**EXPORT_PROTOCOL, "clock": "wall"}, None
    if recipe is None or recipe.cost_table_path is None:
        return default
    keys = ("search", "cost_table")
    if not os.path.lexists(recipe.cost_table_path):  # a run folder copied without its table: export all the same
        say(f"note: {recipe.source or 'the recipe'}: search.cost_table {recipe.search.cost_table} is not here, so the "
            f"latency is timed at batch 1 on one thread by the wall clock, perhaps not as the table's costs were: "
            f"copy the table to {recipe.cost_table_path} to time as it was")
        return default
    # the table is measured for the run's retrained space: the --set values it is compiled with
    sets = {**recipe.space_args, **recipe.retrain.space_args}
    profile = profile_command(recipe.space_path, sets, "--clock wall --out TABLE.json")
    try:
        timing = table_timing(recipe.cost_table_path, str(recipe.space_path))
        check_clock(timing["clock"], f"{recipe.search.cost_table} was profiled with \"clock\": "
                                     f"\"{timing['clock']}\", the clock this export is timed by, as the table's "
                                     f"costs were", EXPORT_TIMED,
                    f"a recipe whose table was profiled with the wall clock (`{profile}`), or export without "
                    f"--recipe (the wall clock)")
    except UserError as e:
        raise RecipeError(str(e), recipe.source and str(recipe.source), ".".join(keys),
                          file_line(recipe, keys)) from None
    _price(recipe, compiled, timing)
    return timing, f"as --recipe's search.cost_table {recipe.search.cost_table} was timed"


def _price(recipe, compiled, timing: dict) -> None:
    """Add ``recipe``'s search.cost_table to ``compiled``'s costs when it fits that space (checked and applied as a
    run applies it, :func:`~automl.profile.read_cost_table` and :func:`~automl.profile.apply_cost_table`): the
    manifest's ``cost`` then holds the table's prediction for the exported network, as a run's member's does. A
    table that does not fit (one of another space, or of this space before it was edited) prices nothing: one note
    says so and why; the latency is timed by the table's ``timing`` all the same."""
    path = Path(recipe.cost_table_path)
    try:
        apply_cost_table(compiled, read_cost_table(path, compiled))
        return
    except CostTableRefusal as e:  # read, but no table of this space: what is wrong, without the table's name or a fix
        why = e.reason
    except UserError as e:  # the file changed since it was read for the timing: the whole message
        why = str(e)
    sets = "".join(f" --set {k}={v}" for k, v in compiled.overrides.items())
    profile = profile_command(compiled.filename, compiled.overrides)
    say(f"note: {recipe.source or 'the recipe'}: search.cost_table {recipe.search.cost_table} does not price the "
        f"exported space {compiled.filename}{sets} ({why}): the latency is timed as the table was "
        f"({_protocol_words(timing)}), but {MANIFEST_NAME}'s cost holds no prediction from the table; give the recipe "
        f"of a run of this space, or profile it (`{profile} --out TABLE.json`)")


def _protocol_words(p: dict) -> str:
    """A latency protocol (``batch``, ``threads``, ``clock``) in words."""
    threads = "one thread" if p["threads"] == 1 else f"{p['threads']} threads"
    clock = "the thread's CPU time" if p["clock"] == "cpu" else "the wall clock"
    return f"by {clock} at batch {p['batch']} on {threads}"


def _protocol_note(args, recorded: dict | None, timing: dict, recipe) -> str | None:
    """The note (None: nothing to say) for a manifest given as ``--arch`` whose ``latency`` was timed otherwise
    than this export times (``timing``): its figure and the new one do not compare."""
    old = (recorded or {}).get("latency")
    if not isinstance(old, dict):
        return None
    then = {**EXPORT_PROTOCOL, "clock": "wall", **{k: old[k] for k in ("batch", "threads", "clock") if k in old}}
    if all(then[k] == timing[k] for k in ("batch", "threads", "clock")):
        return None
    figure = f" ({old['fp32_ms']:.3g} ms)" if finite_number(old.get("fp32_ms")) else ""
    table = None if recipe is None else recipe.cost_table_path
    how = ("give --recipe with a search.cost_table timed so to time it as it was" if recipe is None else
           f"as --recipe's search.cost_table {recipe.search.cost_table} was timed" if table is not None and
           os.path.lexists(table) else "--recipe's search.cost_table is not here" if table is not None else
           "--recipe has no search.cost_table")
    return (f"note: --arch {args.arch} records a latency{figure} measured {_protocol_words(then)}; this export "
            f"times it {_protocol_words(timing)} ({how}), so the two figures do not compare")


def _run_folder_note(args, run: str | None) -> str | None:
    """The note (None: nothing to say) for an export into a member folder of ``run`` (the run its manifest named,
    :func:`_check_out`): the run's results.json and report.md still describe the run's own export."""
    if run is None or not (Path(run) / "results.json").is_file():
        return None
    return (f"note: {args.out} is an export folder of run {run}: its {MANIFEST_NAME} now describes this export, "
            f"but the run's results.json and report.md keep the figures of the run's own export (not updated)")


def _check_args(args) -> None:
    """The flags and the space file, before anything is read: each mistake one message."""
    out = getattr(args, "out", None)
    if out is not None and not str(out).strip():
        raise UserError(f"--out {out!r} is empty; give the folder to export into (--out exported)")
    quantize = getattr(args, "quantize", None)
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise UserError(f"--quantize {quantize if quantize.strip() else repr(quantize)}: supported: "
                        f"{', '.join(QUANTIZE_MODES)} (e.g. --quantize {QUANTIZE_MODES[0]})")
    if quantize is not None and not getattr(args, "recipe", None):
        raise UserError(f"--quantize {quantize} calibrates on training data: give --recipe RECIPE.yaml "
                        f"(its data section is used)")
    if os.path.isdir(args.space):
        inside = Path(args.space) / "space.space"  # what an export folder holds
        raise UserError(f"{args.space} is a folder, not a space file; give a .space file"
                        + (f", e.g. {inside}" if inside.is_file() else " (the published spaces are in the automl "
                           "repository's spaces/ folder, e.g. spaces/digits.space in a clone)"))
    problem = path_problem(args.space, "a regular file")  # a loop of links, a link to nothing, a pipe, socket, device
    if problem and os.path.exists(args.space):  # a pipe, socket or device
        raise UserError(f"{args.space} {problem}: the export reads the space file more than once and records its "
                        f"path in {MANIFEST_NAME}; give the .space file")
    if problem:
        raise UserError(f"{args.space} {problem}; give the .space file")
    if not os.path.isfile(args.space):
        raise UserError(f"{args.space}: no such space file")


# where an export's weights came from when they are not trained ones: fresh initialisation (automl export without
# --weights), or a run's member with no weights to take (retrain.epochs 0 without a supernet)
_UNTRAINED = ("fresh", "untrained")


def _missing_folders(folder) -> list[Path]:
    """The folders that do not exist (yet) and that the export creates for ``folder`` (``writable_dir`` makes
    them), deepest first, each as the system resolves the path (``os.path.realpath``): ``a/../c/net`` makes
    ``c/net`` and ``a``; ``new/../mine`` makes ``new`` alone, ``mine`` being a folder that exists."""
    missing: list[Path] = []
    for path in (Path(folder), *Path(folder).parents):
        if os.path.lexists(path):
            break
        real = Path(os.path.realpath(path))
        if path.name != ".." and not os.path.lexists(real) and real not in missing:
            missing.append(real)
    return missing


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first), each when it is empty (this export created it, and wrote nothing in it)."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:  # not empty, or gone
            pass


def _snapshot(out) -> dict[str, tuple]:
    """What ``out`` holds, by name: (inode, mtime, size) of each entry (an export replaces its files with new ones,
    :func:`~automl._io.atomic_path`), but its lock file (:func:`_out_locked` takes and leaves it); {} where it cannot
    be listed."""
    found = {}
    try:
        with os.scandir(out) as entries:
            for entry in entries:
                if entry.name == LOCK_NAME:
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                found[entry.name] = (st.st_ino, st.st_mtime_ns, st.st_size)
    except OSError:
        pass
    return found


def _stopped(args, progress: _Progress, name: str) -> str:
    """What a stop signal (``name``) before the export finished leaves, in words; a new ``--out`` (one the export
    created: ``progress.created``) is removed with what the export wrote there, the folders above it too."""
    out = args.out
    left = _remove_created(out, progress.created or [])
    if left is not None:
        return (f"stopped by {name} before the export finished: nothing was written ({out}, which it had created, "
                f"is removed with what it held){left}; run the export again")
    if progress.stage == "checking" or _snapshot(out) == progress.before:
        there = f"{out} is left as it was" if os.path.lexists(out) else f"{out} was not created"
        return f"stopped by {name} before the export wrote anything: nothing was written ({there})"
    if progress.stage == "measuring" and (Path(out) / MANIFEST_NAME).is_file():
        what = "latency and int8 model" if getattr(args, "quantize", None) else "latency"
        return (f"stopped by {name} while the export measured its model: {out} holds the exported network, its "
                f"measurements ({what}) not complete; run the export again")
    return (f"stopped by {name} while the export replaced the files in {out}: it holds no complete export (no "
            f"{MANIFEST_NAME}, which the export writes last); run the export again")


def _remove_created(out, created: list[Path]) -> str | None:
    """Remove what this export ``created`` (:func:`_missing_folders`): a new ``--out`` with what it holds and the
    folders above it, or, where ``--out`` existed (``a/../mine``), the empty folders it made on the way. For a new
    ``--out``, what could not be removed (``"; OUT could not be removed"``, or ""); None where ``--out`` is not the
    export's (left as it is)."""
    if created and created[0] != Path(os.path.realpath(out)):  # a/../mine: --out existed, a/ is the export's
        _remove_if_empty(created)
    elif created:
        shutil.rmtree(created[0], ignore_errors=True)  # made by this export: what it holds, the export wrote
        _remove_if_empty(created[1:])
        return f"; {out} could not be removed" if os.path.lexists(out) else ""
    return None


def _write_failed(args, progress: _Progress, e: OSError) -> OSError | UserError:
    """What a write the machine refused (``e``, raised while the export wrote or measured) ends in: a new ``--out``
    is removed with what the export wrote there (:func:`_remove_created`), and one that existed is left as the
    export left it. A full disk or quota, a file past a size limit or a folder that cannot be written
    (:data:`_REFUSED_WRITES`) is one :class:`UserError` naming the file, what ``--out`` holds now and what to do;
    any other ``OSError`` (EIO: the disk failed) is ``e`` itself, for the CLI to say (an internal error)."""
    out = args.out
    removed = _remove_created(out, progress.created or [])
    if e.errno not in _REFUSED_WRITES:
        return e
    file = f"{os.fsdecode(e.filename)} " if isinstance(e.filename, (str, bytes)) and e.filename else "a file "
    if removed is not None:
        left = f"nothing was exported: {out}, which it had created, is removed with what it held{removed}"
    elif progress.stage == "checking" or _snapshot(out) == progress.before:
        left = f"{out} is left as it was"
    elif progress.stage == "measuring" and (Path(out) / MANIFEST_NAME).is_file():
        left = f"{out} holds the exported network, its measurements not complete"
    else:
        left = f"{out} holds no complete export: no {MANIFEST_NAME}, which the export writes last"
    return UserError(f"--out {out}: cannot write {file}({e.strerror or e}); {write_fix(e)}, or choose another "
                     f"--out, and run the export again ({left})")


@contextmanager
def _out_locked(args, created: list[Path], progress: _Progress):
    """``--out`` made (``writable_dir``) and locked while the export checks it again and writes there: the lock of
    :class:`~automl._lock.RunLock` (``--out``'s lock file), so that another ``automl export`` into the same folder
    is refused, naming this one, instead of mixing its files with this one's. The lock is taken to look
    (``look``): released, a lock file this export made is removed and one it found is left as it was (naming its
    last holder), so that the folder holds the export's files alone. A user error in the block (a refused export)
    leaves none of the folders this export ``created``, when they are empty; an ``OSError`` (a full disk) none of
    them, with what the export wrote there, where ``--out`` is one of them (:func:`_write_failed`)."""
    writable_dir(args.out, "--out")
    lock = RunLock(args.out)
    try:
        lock.acquire(then=_AGAIN, look=True, guard=False)
        progress.created = created  # a stop removes them from here on, not before: another export's, then
        yield
    except UserError as e:
        lock.release()  # first: the lock file it made is removed, so that a folder it created is empty again
        # a write refused while measuring: quantize's own UserError carries it (a read that failed is no write)
        failed = e.os_error if isinstance(e, MeasurementsUnwritten) else None
        if progress.stage != "checking" and failed is not None and failed.errno in _REFUSED_WRITES:
            raise _write_failed(args, progress, failed) from None
        _remove_if_empty(created)
        raise
    except OSError as e:  # a full disk, a quota: a new --out goes with what the export wrote there
        lock.release()
        raise _write_failed(args, progress, e) from None
    finally:
        lock.release()


def _check_not_in_use(args) -> None:
    """``--out`` that another process holds (its lock file locked: an ``automl export`` writing there,
    :func:`_out_locked`), refused before anything is read or written, the holder named. A run's folder (its
    resolved recipe there) is left to :func:`_check_run_folder`, which says what it is."""
    out = Path(args.out)
    try:
        if (out / RESOLVED).is_file() or not (out / LOCK_NAME).is_file():
            return
    except OSError:  # a folder that cannot be entered: writing --out says what it is
        return
    holder = held_by(out)
    if holder is not None:
        raise UserError(f"--out {out} is in use: another command is writing there ({holder}); wait for it to end, "
                        f"{_AGAIN}")


def _check_out(args) -> str | None:
    """The export already in ``--out``, checked before anything is written: the run folder its manifest names as
    its owner (kept in the new manifest: the folder is still that run's), or None. Refused: a folder another
    command writes to (:func:`_check_not_in_use`), a folder of a run that is still running (its own export may be
    writing there), and, without ``--weights``, a folder whose weights are trained ones, which fresh weights would
    replace."""
    _check_not_in_use(args)
    _check_run_folder(args)
    try:
        old = json.loads((Path(args.out) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(old, dict):
        return None
    run = run_of(args.out)
    holder = held_by(run) if run is not None and os.path.isdir(run) else None
    if holder is not None:
        raise UserError(f"--out {args.out} holds a model of run {run}, which is still running ({holder}) and "
                        f"writes its own models there; give another --out, or wait for the run to end")
    w = old.get("weights") if isinstance(old.get("weights"), dict) else {}
    file, source = w.get("file"), w.get("source")
    if (not args.weights and plain_name(file) and isinstance(source, str)
            and source not in _UNTRAINED and (Path(args.out) / file).is_file()):
        kept = Path(args.out) / file
        raise UserError(f"--out {args.out} holds an exported network with trained weights ({kept}, weights: "
                        f"{source}); without --weights this export would write fresh, untrained weights over "
                        f"them: to export that network again (another opset, --quantize), give --arch "
                        f"{Path(args.out) / MANIFEST_NAME} --weights {kept}; else give another --out, or remove "
                        f"{args.out} first")
    return run if run is not None and os.path.isdir(run) else None


def _run_above(out) -> Path | None:
    """The nearest folder at or above ``out`` (resolved) that is a run's output folder: it holds the run's lock file
    and its resolved recipe (what a run writes first, :data:`~automl.pipeline.run.RESOLVED`), or a lock file a
    process holds (a run starting up); None when there is none."""
    path = Path(os.path.realpath(os.path.expanduser(str(out))))
    for folder in (path, *path.parents):
        try:  # a folder that cannot be entered is no run's, to this user: writing --out says what it is
            if (folder / LOCK_NAME).is_file() and ((folder / RESOLVED).is_file() or held_by(folder) is not None):
                return folder
        except OSError:
            continue
    return None


def _export_root(run: Path) -> Path:
    """Where the run in ``run`` writes its member folders: its resolved recipe's ``export.dir`` (relative: inside
    the run folder), ``run/export`` by default and where the recipe cannot be read."""
    try:
        recipe = yaml.safe_load((run / RESOLVED).read_text(encoding="utf-8"))
        folder = recipe["export"]["dir"]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, TypeError, KeyError):
        folder = None
    if not isinstance(folder, str) or not folder.strip():
        return run / "export"
    return Path(os.path.realpath(export_folder(run, folder)))


def _check_run_folder(args) -> None:
    """``--out`` inside a run's output folder (:func:`_run_above`), before anything is written or read: the run
    folder itself or the folder of its member folders is refused (the export's files would lie among the run's,
    where no run or reader looks for them), and so is any folder of a run still running (its lock held): a member
    folder it has not written yet, which its own export would replace without a word."""
    run = _run_above(args.out)
    if run is None:
        return
    if not (run / RESOLVED).is_file():  # held, no recipe yet: a run starting up, or an export writing there
        found = lock_holder(run)
        if found is None:
            return
        if found[1] == "export":
            raise UserError(f"--out {args.out} is inside {run}, which another automl command is writing ({found[0]}); "
                            f"wait for it to end, {_AGAIN}")
    out, root = Path(os.path.realpath(os.path.expanduser(str(args.out)))), _export_root(run)
    if out in (run, root):
        what = (f"run {run}'s own folder (its {RESOLVED}, results.json, checkpoints/)" if out == run else
                f"the folder run {run} writes its member folders in")
        members = sorted(p for p in root.glob("*") if (p / MANIFEST_NAME).is_file()) if root.is_dir() else []
        member = members[0] if members else root / "budget-0-none"
        raise UserError(f"--out {args.out} is {what}: this export would write model.onnx, model.safetensors and "
                        f"{MANIFEST_NAME} among the run's files; give a folder of its own (e.g. --out "
                        f"export/NAME), or, to export one of the run's members again, its folder (e.g. {member})")
    holder = held_by(run)
    if holder is not None:
        raise UserError(f"--out {args.out} is inside the folder of run {run}, which is still running ({holder}) and "
                        f"writes its own models there; give another --out, or wait for the run to end")


def _onnx_failed(args) -> bool:
    """Whether the ONNX export failed (a bug: torch's exporter raised, or onnxruntime disagrees with torch); then
    one message says so: the command exits 1, the export's weights and manifest.json (which records why) written."""
    entry = json.loads((Path(args.out) / MANIFEST_NAME).read_text(encoding="utf-8")).get("onnx") or {}
    if entry.get("error"):
        print(f"error: the ONNX export failed: {entry['error']}; the network's weights and {MANIFEST_NAME} are "
              f"written to {args.out}, without model.onnx. This is a bug of automl or torch's ONNX exporter: please "
              f"report it with this message", file=sys.stderr)
        return True
    return False


def _se(args, recorded: dict | None) -> float:
    """``--se`` (default 0), or the manifest's ``se`` when ``--arch`` is a manifest; a different ``--se`` is a
    user error."""
    given = getattr(args, "se", None)
    if recorded is None:
        return 0.0 if given is None else float(given)
    kept = float(recorded.get("se") or 0.0)
    if given is None or float(given) == kept:
        return kept
    raise UserError(f"--se {float(given):g} contradicts --arch {args.arch}: its network was exported with "
                    f"se {kept:g}; drop --se (the manifest's is used), or give a plain ARCH.json with the "
                    f"choices to export another network")


def _weights(args, compiled, arch, se, recorded: dict | None
             ) -> tuple[dict | None, dict | None, str | None, dict | None]:
    """(a stand-alone network's state_dict, a supernet's, the data set a run's checkpoint records its supernet was
    trained on, the checkpoint's ``weights_fingerprint`` that the export's data must agree with: None where the
    run reused the supernet of other settings with --supernet-force) from ``--weights``; (None, None, None, None)
    without it. ``recorded``: the manifest given as ``--arch``, whose data set is checked against the
    checkpoint's."""
    if not args.weights:
        return None, None, None, None
    obj = load_checkpoint(args.weights)
    _no_supernet(args.weights, obj)
    keys = set(compiled.build_standalone(arch, se=se).state_dict())
    kind, state = split_checkpoint(obj, keys, source=f"--weights {args.weights}")
    if kind == "supernet":
        _not_exported_weights(args.weights, obj, args.arch)
        _same_space(args.weights, obj, args.space)
        origin = obj.get("supernet_origin")
        forced = isinstance(origin, dict) and bool(origin.get("forced"))  # its fingerprint is the source's
        if not forced:
            _same_space_args(args.weights, obj, args.space, compiled)
        if se > 0:
            said = f"--se {se:g}" if args.se is not None else f"the se {se:g} --arch {args.arch} was exported with"
            raise UserError(f"--weights {args.weights} is a supernet checkpoint: it has no weights for the "
                            f"squeeze-and-excitation layers of {said}, which would stay untrained and change what "
                            f"the network computes; drop --se (or give a plain ARCH.json), or give a retrained "
                            f"network's weights (its export's model.safetensors)")
        fp = obj.get("weights_fingerprint")
        trained_on = fp.get("data.dataset") if isinstance(fp, dict) else None
        if not forced:
            _manifest_data_set(args, recorded, trained_on)
        return None, state, trained_on, None if forced or not isinstance(fp, dict) else fp
    return state, None, None, None


def _same_space(path: str, obj: dict, space: str) -> None:
    """A run's checkpoint records the space file its supernet was trained on (its ``weights_fingerprint``: the
    file's name and :func:`~automl.dsl.space_digest`, or the sha256 of its bytes from an older automl): a supernet
    of another space file than ``space`` is refused by name; its weights would not fit, or fit another network."""
    fp = obj.get("weights_fingerprint")
    recorded = fp.get("space.sha256") if isinstance(fp, dict) else None
    if not isinstance(recorded, str):
        return
    data = Path(space).read_bytes()
    if recorded in (space_digest(data), hashlib.sha256(data).hexdigest()):
        return
    name = fp.get("space")
    theirs = f"the space file {name}" if isinstance(name, str) and name else "another space file"
    raise UserError(f"--weights {path}: its supernet was trained on {theirs}, which says something else than "
                    f"{space}; export with the space file of the run that wrote it (its recipe.resolved.yaml's "
                    f"space), and its space_args as --set values")


def _same_space_args(path: str, obj: dict, space: str, compiled) -> None:
    """A run's checkpoint records the space_args its supernet was trained with (its ``weights_fingerprint``'s
    ``space_args``): other values are refused by name, for the weights would not fit, or (another input size) fit
    a network they were not trained in."""
    fp = obj.get("weights_fingerprint")
    recorded = fp.get("space_args") if isinstance(fp, dict) else None
    if not isinstance(recorded, dict):
        return
    try:
        theirs = load_space(space, {str(k): str(v) for k, v in recorded.items()}).param_values
    except SpaceError:  # values this space file does not take: its weights do not fit it (said when they load)
        return
    differ = [k for k in theirs if k in compiled.params and theirs[k] != compiled.params[k]]
    if not differ:
        return
    raise UserError(f"--weights {path}: its supernet was trained with the space's "
                    f"{', '.join(f'{k} {theirs[k]}' for k in differ)}, this export builds it with "
                    f"{', '.join(f'{k} {compiled.params[k]}' for k in differ)}; export with the run's space_args: "
                    f"--set {' '.join(f'{k}={theirs[k]}' for k in differ)}")


def _manifest_data_set(args, recorded: dict | None, trained_on: str | None) -> None:
    """A manifest given as ``--arch`` records the data set (and input normalisation) of the network it describes;
    that of another data set than the one the supernet of ``--weights`` was trained on (``trained_on``) is refused:
    the export would record it for weights trained on other images."""
    kept = (recorded or {}).get("dataset")
    if trained_on is None or kept == trained_on:
        return
    if kept is None:
        _manifest_normalize(args, recorded, trained_on)
        return
    raise UserError(f"--arch {args.arch} records data set {kept} (its \"dataset\"), but --weights {args.weights} "
                    f"holds a supernet trained on {trained_on} (the checkpoint's data.dataset): this export would "
                    f"record {kept}'s input normalisation for it; give --arch a plain ARCH.json of the same choices "
                    f"({{\"choices\": [...]}} as in the manifest), or the weights exported with that manifest")


def _manifest_normalize(args, recorded: dict | None, trained_on: str) -> None:
    """A manifest given as ``--arch`` that records no data set (an export of an automl before manifests recorded
    it) but an input normalisation: one that is not the normalisation of ``trained_on``'s images (the data set
    the supernet of ``--weights`` was trained on) describes a network of another data set, and is refused as
    :func:`_manifest_data_set` refuses one that names it. The data sets' normalisations are far apart (digits:
    one channel; cifar10 and imagefolder: other constants; synthetic: none), so a loose tolerance tells them
    apart whatever float rounding an earlier automl recorded."""
    kept = (recorded or {}).get("normalize")
    if kept is None or trained_on not in DATASETS:
        return
    theirs = normalization(trained_on)
    if theirs is not None and _same_normalize(kept, theirs, rel_tol=0.02):
        return
    said = f"normalises them with {_show(theirs)}" if theirs is not None else "does not normalise them"
    raise UserError(f"--arch {args.arch} records normalize {_show(kept)} and no data set (an export of an earlier "
                    f"automl), but --weights {args.weights} holds a supernet trained on {trained_on} (the "
                    f"checkpoint's data.dataset), which {said}: the manifest describes a network of another data "
                    f"set, whose normalisation this export would record for these weights; give --arch a plain "
                    f"ARCH.json of the same choices ({{\"choices\": [...]}} as in the manifest), or the weights "
                    f"exported with that manifest")


def _no_supernet(path: str, obj: dict) -> None:
    """Refuse a run's checkpoint that holds no supernet (its ``supernet`` is null): one written inside the weight
    phase (the supernet in training, kept as the stage's ``inner`` objects) or by a run that trains none."""
    if not ("format" in obj and "supernet" in obj and obj["supernet"] is None):
        return
    inner = obj.get("inner")
    if isinstance(inner, dict) and any(k in inner for k in SUPERNET_KEYS):
        later = _later_supernet(path)
        give = (f"{later}, which holds the trained supernet" if later is not None else
                "none of the run's checkpoints holds a trained supernet yet: wait until its weight phase ends (a "
                "running run), or let the run finish it (automl run RECIPE --out RUN --resume)")
        raise UserError(f"--weights {path}: a checkpoint written inside the run's weight phase: its supernet was "
                        f"still being trained; give a checkpoint written after the weight phase: {give}")
    raise UserError(f"--weights {path}: a run's checkpoint that holds no supernet: the run trained none "
                    f"(search.method random) or had not finished its weight phase; export without --weights "
                    f"(fresh weights), or export its retrained network again: --arch RUN/export/…/manifest.json "
                    f"--weights its model.safetensors")


def _later_supernet(path: str) -> Path | None:
    """The newest checkpoint of the folder of the checkpoint ``path`` (a run's ``checkpoints/``), written after it,
    that holds a trained supernet (one written after the run's weight phase); None when none does. Read with
    ``mmap``: only the keys of each (at most the two the run keeps) are looked at; an unreadable one is passed
    over."""
    given = Path(path).resolve()
    for ckpt in sorted(Path(path).parent.glob("ckpt-*.pt"), reverse=True):
        if ckpt.resolve() == given:
            return None  # the checkpoints before it were written inside the weight phase too
        try:
            obj = torch.load(str(ckpt), map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # noqa: BLE001 - a file torch cannot read: no checkpoint to suggest
            continue
        if isinstance(obj, dict) and obj.get("supernet") is not None:
            return ckpt
    return None


def _normalize(args, recorded: dict | None, data) -> dict | None:
    """The input normalisation to record: the manifest's, else the recipe's data's; the two disagreeing is a
    user error (the recipe's images would calibrate and test the network wrongly)."""
    kept = recorded.get("normalize") if recorded else None
    theirs = getattr(data, "normalize", None)
    if kept is None or theirs is None:
        return kept if kept is not None else theirs
    if not _same_normalize(kept, theirs):
        raise UserError(f"--recipe {args.recipe}: its data is normalised with {_show(theirs)}, the network of "
                        f"--arch {args.arch} with normalize {_show(kept)}; give the recipe it was trained with")
    return kept


def _same_normalize(a: dict, b: dict, rel_tol: float = 1e-6) -> bool:
    """Whether two input normalisations have as many channels and the same means and stds (within ``rel_tol``)."""
    return all(len(a[k]) == len(b[k]) and all(math.isclose(float(x), float(y), rel_tol=rel_tol)
                                              for x, y in zip(a[k], b[k])) for k in ("mean", "std"))


def _dataset(args, recorded: dict | None, data) -> str | None:
    """The data set to record (the network's test images' crop with it): the manifest's, else the recipe's data's;
    the two disagreeing is a user error, as their normalisations disagreeing is."""
    kept, theirs = (recorded or {}).get("dataset"), getattr(data, "dataset", None)
    if kept is not None and theirs is not None and kept != theirs:
        raise UserError(f"--recipe {args.recipe}: its data set is {theirs}, the network of --arch {args.arch} was "
                        f"trained on {kept} (its \"dataset\"); give the recipe it was trained with")
    return kept or theirs


def _classes(args, recorded: dict | None, data) -> list[str] | None:
    """The class names to record (the network's outputs in index order): the recipe's data's
    (:func:`~automl.export.manifest.class_names`), else the manifest's; the two disagreeing is a user error, as
    their data sets disagreeing is (the recipe's images would test the network against other labels)."""
    kept = (recorded or {}).get("classes")
    theirs = class_names(data) if data is not None else None
    if kept is not None and theirs is not None and list(kept) != theirs:
        raise UserError(f"--recipe {args.recipe}: its data's classes are {_names(theirs)}, the network of --arch "
                        f"{args.arch} was trained on {_names(kept)} (its \"classes\"); give the recipe it was "
                        f"trained with")
    return theirs if theirs is not None else kept


def _names(names: list[str], few: int = 5) -> str:
    """A few class names, for a message."""
    shown = ", ".join(names[:few]) + (f", … ({len(names)} in all)" if len(names) > few else "")
    return f"[{shown}]"


def _checkpoint_normalize(path: str, dataset: str | None, channels: int) -> tuple[dict | None, str | None]:
    """(the input normalisation of ``dataset``, the data set a run's checkpoint (``--weights`` ``path``) records its
    supernet was trained on (its ``weights_fingerprint``'s ``data.dataset``), as the run's data normalise it
    (synthetic data: none); None). A checkpoint that records no data set, or one of another channel count than the
    space's ``channels``: (None, the one-line note for stderr that says that the manifest records none)."""
    if dataset == "synthetic":
        return None, None
    norm = normalization(dataset) if dataset in DATASETS else None
    if norm is not None and len(norm["mean"]) == channels:
        return norm, None
    why = (f"records data set {dataset}, of images of {len(norm['mean'])} channels, not the space's {channels}"
           if norm is not None else "records no data set its supernet was trained on")
    return None, (f"note: --weights {path} {why}: {MANIFEST_NAME} records no input normalisation (\"normalize\"); "
                  f"give --recipe RECIPE.yaml (the run's recipe.resolved.yaml) to record its data's")


def _show(normalize: dict) -> str:
    return " ".join(f"{k} [{', '.join(f'{float(v):.4g}' for v in normalize[k])}]" for k in ("mean", "std"))


def _kept(args, recorded: dict | None, compiled, standalone: bool, recipe=None) -> dict:
    """What a manifest given as ``--arch`` records that the new export keeps: ``epsilon``, ``cost_metric``,
    ``budget`` (where the cost metric stays the manifest's) and ``search_cost`` (the same architecture of the same
    search), the recorded costs of metrics the space
    (with ``--recipe``'s table when it fits, :func:`_price`) does not compute (a latency table's: the same network,
    built with the manifest's ``space_args``), and, when ``--weights`` is that export's own weights file, where they
    came from (the manifest's ``weights`` record). ``cost_metric`` is the manifest's where the new ``cost`` holds
    that metric; else, with ``recipe``, its search.cost where the ``cost`` holds it, as a run of it records."""
    recorded = recorded or {}
    out: dict = {k: recorded[k] for k in ("epsilon", "search_cost") if k in recorded}
    ours = compiled.cost_table.metrics
    cost = recorded.get("cost") if isinstance(recorded.get("cost"), dict) else {}
    table_costs = {m: v for m, v in cost.items() if m not in ours and finite_number(v)}
    # the manifest's own metric, where it is one here (its epsilon and search_cost are of that search); else R's
    for metric in (recipe and recipe.search.cost, recorded.get("cost_metric")):
        if metric and (metric in ours or metric in table_costs):
            out["cost_metric"] = metric
    if table_costs:
        out["cost"] = table_costs
    if "budget" in recorded and out.get("cost_metric") == recorded.get("cost_metric"):  # a bound of that metric
        out["budget"] = recorded["budget"]
    own = dict(recorded.get("weights") or {})
    if standalone and own.get("file") and own.get("source"):
        if Path(args.weights).resolve() == (Path(args.arch).parent / own["file"]).resolve():
            out["provenance"] = {k: v for k, v in own.items() if k not in ("file", "format")}
    return out


def _relative(onnx: dict) -> str:
    """`` (relative 7.8e-07)``: the ONNX parity's largest difference relative to the largest output (the manifest's
    ``parity_max_rel_diff``), which says whether the absolute one is rounding on large logits; empty without it."""
    rel = onnx.get("parity_max_rel_diff")
    return f" (relative {rel:.2g})" if isinstance(rel, (int, float)) and not isinstance(rel, bool) else ""


def _report(args, manifest: dict, supernet_state, calibration, timed_as: str | None = None) -> None:
    """What was exported, in a few lines on stdout; ``timed_as``: what chose how the latency was timed (its batch,
    threads and clock are then said with it)."""
    onnx, w, latency = manifest["onnx"], manifest["weights"], manifest["latency"]
    how = f" {_protocol_words(latency)}, {timed_as}" if timed_as else ""
    print(f"exported {manifest['space_name']} ({manifest['params']:,} params, weights: {w['source']}) to "
          f"{args.out}: {onnx['file']} (opset {onnx['opset']}, parity max |diff| "
          f"{onnx['parity_max_abs_diff']:.2g}{_relative(onnx)}, {latency['fp32_ms']:.3g} ms here{how}"
          + (f", test accuracy {format_accuracy(onnx['test_accuracy'])}" if "test_accuracy" in onnx else "")
          + f"), {w['file']}, manifest.json")
    if supernet_state is not None:
        print(f"BatchNorm statistics recalibrated on {len(calibration)} batches of {args.recipe}'s training data"
              if calibration else "BatchNorm statistics are the supernet's (an average over random paths, which fits "
              "no single one): give --recipe RECIPE.yaml to recalibrate them on its training data")
    q = manifest.get("int8")
    if q is not None and q.get("error"):
        print(f"int8: not quantised, the fp32 model is kept: {q['error']}")
    elif q is not None:
        print(f"int8: {q['file']} ({_int8_figures(q, manifest.get('latency') or {})}){_float_figures(q)}")


def _int8_figures(q: dict, latency: dict) -> str:
    """The figures of a quantised model's manifest entry ``q`` that it records (a quantisation without test
    batches records no accuracies; an earlier automl's entry may lack a size)."""
    size, fp32 = q.get("size_bytes"), q.get("fp32_size_bytes")
    parts = [f"{size / fp32:.2f}x the size"] if finite_number(size) and finite_number(fp32) and fp32 > 0 else []
    if finite_number(latency.get("int8_ms")):
        parts.append(f"{latency['int8_ms']:.3g} ms here")
    if "test_accuracy" in q or "fp32_test_accuracy" in q:
        parts.append(f"test accuracy {format_accuracy(q.get('test_accuracy'))} vs fp32 "
                     f"{format_accuracy(q.get('fp32_test_accuracy'))}")
    else:
        parts.append("not tested: no test batches")
    return ", ".join(parts)


def _float_figures(q: dict) -> str:
    """What of a quantised model (its manifest entry ``q``) onnxruntime runs in float, after its figures (the only
    place the export says it: ``note_float=False``); "" where it runs nothing in float or ``q`` records no
    ``coverage`` (an earlier automl's, whose model could not be counted again)."""
    words = int8_float_words(q)
    return f"; it {words}, \"int8.coverage\" in {MANIFEST_NAME}" if words else ""


def _not_exported_weights(path: str, obj: dict, arch: str) -> None:
    """Refuse a stand-alone network's weights taken for a supernet's (their keys do not fit ``arch``'s
    network): a bare state_dict in a safetensors file or next to an export's manifest.json."""
    if any(k in obj for k in SUPERNET_KEYS):
        return
    manifest = Path(path).parent / MANIFEST_NAME
    if not manifest.is_file() and Path(path).suffix != ".safetensors":
        return
    if manifest.is_file() and manifest.resolve() == Path(arch).resolve():
        raise UserError(f"--weights {path}: a stand-alone network's weights that do not fit the network {arch} "
                        f"describes (was the manifest or the weights file changed?); export them with the "
                        f"manifest written with them")
    again = f"--arch {manifest}" if manifest.is_file() else "--arch the manifest.json written next to it"
    raise UserError(f"--weights {path}: a stand-alone network's weights (an export's), not a supernet checkpoint; "
                    f"they fit only the architecture exported with them, not --arch {arch}: give {again} to "
                    f"export that network again, or a run's checkpoint RUN/checkpoints/ckpt-….pt to inherit")


def _recipe_data(args, compiled, fingerprint: dict | None):
    """``--recipe`` and its data (on the CPU): its data set checked against the one ``--weights``' checkpoint
    records (its ``fingerprint``'s ``data.dataset``) before its data is read, the data against the space's input
    shape and classes; an image folder at another path than the checkpoint's is said in a note."""
    path = args.recipe
    r = load_recipe(path, flag="--recipe")
    _same_data_set(args, r, (fingerprint or {}).get("data.dataset"))
    data = recipe_data(r, "cpu")  # data not found where the recipe says: located at its key
    if tuple(data.input_shape) != tuple(compiled.input_shape) or data.num_classes != compiled.num_classes:
        raise UserError(f"--recipe {path}: its data gives inputs {tuple(data.input_shape)} with "
                        f"{data.num_classes} classes, the space takes {tuple(compiled.input_shape)} with "
                        f"{compiled.num_classes}; {_shape_fix(compiled, data)}")
    note = _moved_data_note(args, r, fingerprint)
    if note:
        print(note, file=sys.stderr)
    return r, data


def _shape_fix(compiled, data) -> str:
    """How to make the space ``compiled`` take ``data`` (its input shape or classes differ): the ``--set`` values
    where the space's ``input`` and ``classes`` lines are a parameter for each dimension that differs; else the
    parameters to set where they read some; else a recipe of data the space takes (no --set value changes a
    dimension the space file fixes)."""
    space = getattr(compiled, "space", None)
    exprs = (*space.input_shape, space.classes) if space is not None else ()
    ours, theirs = (*compiled.input_shape, compiled.num_classes), (*data.input_shape, data.num_classes)
    sets: dict[str, int] = {}
    read, fixed = [], []
    for what, e, want, have in zip(("channels", "height", "width", "classes"), exprs, theirs, ours):
        if want == have:
            continue
        if isinstance(e, ir.Ref) and sets.setdefault(e.name, want) == want:
            continue
        names = ir.refs(e)
        (read if names else fixed).append((what, names))
    takes = f"inputs {tuple(compiled.input_shape)}, {compiled.num_classes} classes"
    if not exprs or fixed:
        which = " and ".join(dict.fromkeys(w for w, _ in fixed)) or "input shape and classes"
        return (f"no --set value of space {compiled.name} changes its {which} (its file fixes them): give a recipe "
                f"of data the space takes ({takes}), such as the one the network was trained with")
    if read:
        names = ", ".join(dict.fromkeys(n for _, ns in read for n in ns))
        return f"set the space's parameters {names} (--set NAME=VALUE) so that it takes the data's"
    return "give the --set values the data needs: " + " ".join(f"--set {k}={v}" for k, v in sets.items())


def _moved_data_note(args, recipe, fingerprint: dict | None) -> str | None:
    """The note (None: nothing to say) for a recipe whose ``data.root`` is another folder than the one the
    checkpoint's supernet was trained on (its ``fingerprint``'s ``data.root``, recorded for the data sets whose
    root names the data: an image folder; an absolute path, as a recipe's are resolved): a moved copy is the same
    data, but a wrong folder would recalibrate BatchNorm on, and test, other images without a word."""
    recorded, ours = (fingerprint or {}).get("data.root"), recipe.data_root
    if (recipe.data.dataset in ROOT_ONLY_LOCATES or (fingerprint or {}).get("data.dataset") != recipe.data.dataset
            or not isinstance(recorded, str) or not recorded or ours is None):
        return None
    theirs = Path(os.path.expanduser(recorded))
    if not theirs.is_absolute() or theirs.resolve() == ours.resolve():
        return None
    uses = "recalibrate BatchNorm, calibrate int8" if getattr(args, "quantize", None) else "recalibrate BatchNorm"
    return (f"note: --recipe {args.recipe} reads its images from {ours} (data.root), but --weights {args.weights} "
            f"holds a supernet trained on those in {theirs} (the checkpoint's data.root): this export uses the "
            f"images in {ours} to {uses} and test the network; if that folder is not a copy of the same images, "
            f"give the recipe with data.root {theirs}")


def _same_data_set(args, recipe, trained_on: str | None) -> None:
    """A recipe of another data set than the one the supernet of ``--weights`` was trained on (``trained_on``, its
    checkpoint's ``data.dataset``) is refused: the export would record the recipe's input normalisation (and test
    images' crop) for that network, and recalibrate its BatchNorm on the recipe's images."""
    ours = recipe.data.dataset
    if trained_on is None or trained_on == ours:
        return
    own = Path(args.weights).parent.parent / RESOLVED  # a run's checkpoints are RUN/checkpoints/ckpt-….pt
    own = f"give the run's own recipe ({own if own.is_file() else 'its ' + RESOLVED})"
    how = (f"{own}: --quantize calibrates on its data" if getattr(args, "quantize", None) else
           f"{own}, or drop --recipe (the checkpoint's data set is recorded, BatchNorm stays the supernet's)")
    norm = "no input normalisation" if normalization(ours) is None else f"the input normalisation of {ours}"
    raise RecipeError(f"{ours}, but --weights {args.weights} holds a supernet trained on {trained_on} (the "
                      f"checkpoint's data.dataset): this export would record {norm} for it and recalibrate its "
                      f"BatchNorm on {ours} images; {how}", recipe.source and str(recipe.source), "data.dataset",
                      file_line(recipe, ("data", "dataset")))
