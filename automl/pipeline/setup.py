"""A run's start-up, done once: the device, the compiled spaces (search and retraining) with their cost
table, the engine's normalised costs, and the checks of the recipe against the space and the data."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from automl.compile import load_compiled
from automl.compile.resolve import GIVEN
from automl.dsl import PUBLISHED_SPACES, ParamError, SpaceFileError, ir
from automl.errors import (DataError, RecipeError, SpaceError, UserError, format_source_error, json_text,
                           shortened)
from automl.export import run_of
from automl.export.onnx import opset_problem
from automl.export.quantize import EXPORT_TIMED
from automl.nn.standalone import se_too_small, se_too_small_message
from automl.pipeline.members import Members
from automl.pipeline.state import RunState
from automl.profile import (EXPORT_PROTOCOL, apply_cost_table, check_clock, profile_command, read_cost_table,
                            table_clock, timing_of)
from automl.ranking import exact_costs, space_size
from automl.recipe import RUN_FILES, TIME_METRICS, file_line, file_value, override_of
from automl.report import round_sig, short_number
from automl.search import ContextCosts, cost_extremes, normalize_context, normalize_costs, supernet_methods
from automl.train.data import build_data
from automl.train.distributed import DistInfo

__all__ = ["resolve_device", "recipe_device", "recipe_data", "Spaces", "load_spaces", "check_settings",
           "check_theta_min", "check_retrain_se", "check_export", "check_out_and_export", "check_export_dir",
           "check_member_folder", "resolved", "check_shapes", "check_ranking", "ranked_pool", "check_same_decisions",
           "TooManyArchs", "check_budgets", "EngineCosts", "engine_costs", "recipe_costs", "check_latency_clock",
           "RESOLVED"]


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """The recipe's ``device`` (auto, cpu, cuda) as a torch device; cuda: this rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("device: cuda was asked for but no CUDA GPU is visible; set device=cpu or device=auto")
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def recipe_device(recipe, info: DistInfo) -> torch.device:
    """The recipe's ``device`` as a torch device (:func:`resolve_device`); one it cannot have (cuda without a GPU)
    is a :class:`RecipeError` at ``device``'s line, or naming the override."""
    try:
        return resolve_device(recipe.device, info)
    except UserError as e:
        raise _at_key(recipe, ("device",), e) from None


def recipe_data(recipe, device, info: DistInfo | None = None):
    """The recipe's data on ``device`` (:func:`~automl.train.data.build_data`), for this rank of ``info``; data
    that is not found where the recipe says, or does not fit its counts, is a :class:`DataError` located at the
    recipe key it names as its fix (:attr:`DataError.recipe_key`), its message kept; one that names no key (what
    is wrong inside the data) as it is raised."""
    info = info or DistInfo()
    try:
        return build_data(recipe.data, base_dir=recipe.base_dir, seed=recipe.seed, device=device, rank=info.rank,
                          world_size=info.world_size)
    except DataError as e:
        if e.recipe_key is None:
            raise
        root = recipe.data_root
        recorded = _recorded(recipe, e.recipe_key, "data folder") if e.recipe_key == ("data", "root") and (
            root is not None and not os.path.lexists(root)) else None
        if recorded is not None and not e.located:  # a run's own recipe: the folder it ran with has moved
            raise _at_key(recipe, e.recipe_key, DataError(f"{e}; {recorded}", e.recipe_key)) from None
        raise _at_key(recipe, e.recipe_key, e) from None


# the file a run writes its own recipe to, in --out (automl.pipeline.run writes it; a run's recipe read back: rank)
RESOLVED = "recipe.resolved.yaml"


class _DataRecipeError(RecipeError, DataError):
    """A refusal of the run's data (:class:`DataError`) located at the recipe key it is about."""


def _at_key(recipe, keys: tuple[str, ...], e: UserError) -> UserError:
    """``e`` (already located: as it is) as a :class:`RecipeError` naming the recipe's file, the line of ``keys``
    when the file gives its value, and the key unless the message starts with it (:func:`_located`, else
    :func:`_recipe_error`); a :class:`DataError` stays one."""
    if e.located:
        return e
    message, kind = str(e), _DataRecipeError if isinstance(e, DataError) else RecipeError
    if re.match(re.escape(".".join(keys)) + r"\b", message):
        return _located(recipe, keys, message, kind=kind)
    return _recipe_error(recipe, keys, message, kind=kind)


@dataclass(frozen=True)
class Spaces:
    """The compiled search space and the retraining space (the same object when retrain.space_args is
    empty), with the --set style arguments each was compiled with."""

    search: object
    retrain: object
    search_args: dict[str, str]
    retrain_args: dict[str, str]
    path: Path
    # how the run's exports time latency: search.cost_table's own batch, threads and clock, so that the table's
    # costs (results.json's cost) and the exports' latency_ms compare; else automl.profile.EXPORT_PROTOCOL
    latency: dict[str, int | str] = field(default_factory=lambda: dict(EXPORT_PROTOCOL))


def load_spaces(recipe, timed: bool = True) -> Spaces:
    """Compile the recipe's space (and its retraining variant) once, and apply search.cost_table. ``timed``: the
    caller times exports with the table's clock (a run), which :func:`check_latency_clock` checks; ``automl rank``
    and a workspace time none."""
    search_args = {k: str(v) for k, v in recipe.space_args.items()}
    retrain_args = {**search_args, **{k: str(v) for k, v in recipe.retrain.space_args.items()}}
    space = _compile(recipe, search_args, retrain=False)
    retrain = space if retrain_args == search_args else _compile(recipe, retrain_args, retrain=True)
    check_same_decisions(recipe, space, retrain)
    if recipe.cost_table_path is not None:
        # measured for the network that is deployed: checked against the retrained space's sizes
        against = None if retrain is space else (f"the retrained space ({recipe.space_path} with the recipe's "
                                                 f"space_args and retrain.space_args: the network that is deployed)")
        table = _read_table(recipe, retrain, against)
        for sp in {id(space): space, id(retrain): retrain}.values():
            apply_cost_table(sp, table)
    cost = recipe.search.cost
    if cost not in space.cost_table.metrics:
        raise _located(recipe, ("search", "cost"),
                       f"search.cost {shortened(cost, repr)} is not a metric of {recipe.space_path.name} (it has "
                       f"{', '.join(space.cost_table.metrics)}); a latency table comes from `automl space profile "
                       f"SPACE --out TABLE.json` and `search.cost_table: TABLE.json`")
    check_settings(recipe, space, retrain)
    latency = dict(EXPORT_PROTOCOL)
    if recipe.cost_table_path is not None:
        latency = timing_of(table)
        if timed:
            check_latency_clock(recipe, table_clock(table))
    return Spaces(space, retrain, search_args, retrain_args, recipe.space_path, latency)


def _read_table(recipe, retrain, against: str | None) -> dict:
    """search.cost_table read and checked against ``retrain`` (:func:`automl.profile.read_cost_table`); a mistake
    in it is a :class:`RecipeError` naming the recipe's file, the line of search.cost_table (when the value is the
    file's) and the key."""
    source = f"{recipe.source} search.cost_table"
    try:
        return read_cost_table(recipe.cost_table_path, retrain, source=source, against=against)
    except UserError as e:
        message = str(e).removeprefix(f"{source}: ")
        raise _recipe_error(recipe, ("search", "cost_table"), message) from None


def check_latency_clock(recipe, clock: str) -> None:
    """The clock the run's exports are timed with (search.cost_table's, ``clock``) is one this system reads finely
    enough to time a network (:func:`automl.profile.check_clock`; Windows' thread CPU clock steps in 15.6 ms), when
    the run times its exports (export.onnx): else the first export would refuse it, after the search and the
    retraining. A :class:`RecipeError` naming search.cost_table's file and line."""
    if not recipe.export.onnx:
        return
    # the table is measured for the retrained space (load_spaces): the --set values it is compiled with
    args = {**recipe.space_args, **recipe.retrain.space_args}
    profile = profile_command(recipe.space_path, args, "--clock wall --out TABLE.json")
    try:
        check_clock(clock, f"{recipe.search.cost_table} was profiled with \"clock\": \"{clock}\", the clock the run "
                           f"times its exports' latency with too",
                    EXPORT_TIMED,
                    f"a table profiled with the wall clock (`{profile}`), or export.onnx: false to export without "
                    f"timing")
    except UserError as e:
        raise _recipe_error(recipe, ("search", "cost_table"), str(e)) from None


def check_same_decisions(recipe, space, retrain) -> None:
    """The retraining space (``retrain``, compiled with retrain.space_args) has the search space's decisions, each
    with as many choices, and the same choices except where a choice names a size (an elastic width's ``w24``, a
    resolution's ``r160``, which scale with the space's arguments): an architecture found in the search means the
    same network retrained. Elastic depth's ``d2, d3`` are structure: a retrained ``d1`` that became ``d2`` would
    retrain and export another network than the one searched, under the searched one's choices."""
    if retrain is space:
        return
    names, theirs = [d.name for d in space.decisions], [d.name for d in retrain.decisions]
    sizes = set(space.context_decisions)
    if names == theirs:
        changed = next(((i, a, b) for i, (a, b) in enumerate(zip(space.decisions, retrain.decisions))
                        if len(a.choices) != len(b.choices) or (i not in sizes and a.choices != b.choices)), None)
        if changed is None:
            return
        _, a, b = changed
        what = (f"the choices of {recipe.space_path.name}'s decision {a.name} ({', '.join(a.choices)} searched, "
                f"{', '.join(b.choices)} retrained)")
    else:
        gone, added = [n for n in names if n not in theirs], [n for n in theirs if n not in names]
        how = "; ".join(f"{w} {_few(part)}" for w, part in (("without", gone), ("with", added)) if part)
        what = f"the decisions of {recipe.space_path.name} ({how or 'another order'})"
    raise _recipe_error(recipe, ("retrain", "space_args"),
                        f"{_shown_args(recipe.retrain.space_args)} changes {what}; retraining must keep the search "
                        f"space's decisions and choices (change sizes such as widths, channels or cells, not depths "
                        f"or structure); leave the arguments that change them out of retrain.space_args")


def _shown_args(args: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in args.items())


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def check_settings(recipe, space, retrain=None) -> None:
    """The settings that the search engine and the exporter would otherwise refuse only after the supernet was
    trained: search.theta_min against ``space`` (the search space), retrain.se against the retraining space
    (``retrain``, default ``space``), export.opset against what the installed onnx and torch export."""
    check_theta_min(recipe, space)
    check_retrain_se(recipe, space if retrain is None else retrain)
    check_export(recipe)


def check_retrain_se(recipe, space) -> None:
    """retrain.se adds squeeze-and-excitation to MBConv blocks: a chain space's only, at a ratio that gives each
    SE layer of any architecture of ``space`` (the retraining space) at least one channel (the exporter's
    ``check_se`` and timm, which would refuse it at the retraining or the first export, after the search)."""
    se = recipe.retrain.se
    if se and space.kind != "chain":
        raise _recipe_error(recipe, ("retrain", "se"),
                            f"{se:g}: squeeze-and-excitation applies to the MBConv blocks of chain spaces, and "
                            f"{space.name} is a {space.kind} space; remove retrain.se (or set it to 0)")
    smallest = se_too_small(space, se)
    if smallest is not None:
        raise _recipe_error(recipe, ("retrain", "se"), f"{se:g}: " + se_too_small_message(
            se, smallest, space.name, "for every architecture of the space", f"set retrain.se to {smallest:g} or more"))


def _recipe_error(recipe, keys: tuple[str, ...], message: str, kind: type[RecipeError] = RecipeError) -> RecipeError:
    """A mistake in the recipe's value at ``keys``, named with the file and, when the value is the file's, the
    line; a ``kind`` of :class:`RecipeError`."""
    return kind(message, recipe.source and str(recipe.source), ".".join(keys), file_line(recipe, keys))


def _located(recipe, keys: tuple[str, ...], message: str, *more: tuple[str, ...],
             kind: type[RecipeError] = RecipeError) -> RecipeError:
    """:func:`_recipe_error` for a ``message`` that names its keys itself: the file and the line of the first of
    ``keys``, ``*more`` whose value is the file's (none for a recipe built in Python, which has no file)."""
    line = next(filter(None, (file_line(recipe, k) for k in (keys, *more))), None)
    return kind(message, recipe.source and str(recipe.source), None, line)


def check_theta_min(recipe, space) -> None:
    """search.theta_min below 1/Kmax of ``space``: θ_min bounds every choice's probability from below, so a
    decision of Kmax choices needs Kmax θ_min < 1 (the engine's check, ``automl.search._checks``). The random
    baseline (search.method random) has no θ: its recipe's theta_min is warned of as ignored, not refused."""
    t = recipe.search.theta_min
    kmax = max(space.num_choices)
    if recipe.search.method == "random" or t == "auto" or kmax == 1 or float(t) * kmax < 1:
        return
    widest = next(d.name for d, k in zip(space.decisions, space.num_choices) if k == kmax)
    raise _recipe_error(recipe, ("search", "theta_min"),
                        f"{float(t):g} is too large for the space {space.name}: θ_min is the least probability of "
                        f"every choice, and its decision {widest} has Kmax = {kmax} choices, so θ_min must be below "
                        f"1/Kmax = {1 / kmax:.4g} (else the {kmax} probabilities sum to more than 1); lower it, "
                        f"e.g. to {1 / (2 * kmax):.4g}, or use auto (ASNG-NAS's bound)")


def check_export(recipe) -> None:
    """export.opset (with export.onnx) is one the installed onnx and torch's exporter write."""
    ex = recipe.export
    if not ex.onnx:
        return
    problem = opset_problem(ex.opset)
    if problem is not None:
        raise _recipe_error(recipe, ("export", "opset"), f"{ex.opset!r}: {problem}")


def resolved(path, what: str) -> Path:
    """``path`` made absolute with its symbolic links followed (:meth:`pathlib.Path.resolve`); a loop of links on
    the way is a user error naming ``path`` as ``what`` (a flag or a recipe key)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):  # Python < 3.13 says RuntimeError("Symlink loop from ...")
        raise UserError(f"{what} {path}: a loop of symbolic links on the way (one links back to itself); fix the "
                        f"links, or name the folder by a path without them") from None


def check_out_and_export(recipe, out) -> None:
    """A new run's folder ``out`` apart from an absolute ``export.dir``, as a relative export.dir is by the
    recipe's own check: the run's folder may not be the export folder or inside it (its files would sit among the
    exported networks, a member's folder such as ``budget-0-none`` would be the run's own), and the export folder
    may not be inside one of the run's own files and folders (``DIR/checkpoints/...``)."""
    root = recipe.export_dir
    if root is None:
        return
    here, there = resolved(out, "--out"), resolved(root, "export.dir")
    line = file_line(recipe, ("export", "dir"))
    where = f"{recipe.source}:{line}" if line else "set on the command line"
    if here == there or there in here.parents:
        what = "is export.dir itself" if here == there else f"is inside export.dir {root}"
        raise UserError(f"--out {out} {what} ({where}), where the run exports its networks; choose a --out "
                        f"outside it, or another export.dir")
    if here in there.parents:
        first = there.relative_to(here).parts[0]
        if first in RUN_FILES:
            what = "is" if there == here / first else "is inside"
            raise UserError(f"export.dir {root} ({where}) {what} {here / first}, the {RUN_FILES[first]} of "
                            f"the run in --out {out}; choose another export.dir (such as {here / 'export'}), or "
                            f"another --out")


def check_export_dir(recipe, out, resume: bool, sampled: bool = False) -> None:
    """An absolute export.dir shared with other runs: refuse a folder this run exports a member into
    (``eps-…``, ``budget-i-…``, ``random-i``; ``sampled``: the random baseline's) whose manifest names another
    run (its ``run``: the folder of the run that exported it), which this run's export would replace while that
    run's results still describe it.

    The same run is the same folder, ``out`` and the record resolved. On ``--resume`` a recorded folder that no
    longer exists is taken for this run's before it was moved (a moved run folder resumes); a new run has
    exported nothing yet, so a recorded folder is another run's even when it is gone. A manifest without
    ``run`` (``automl export``, an older automl) or no manifest is not refused. A relative export.dir is inside
    the run folder, shared with no other run: not checked."""
    root = recipe.export_dir
    if root is None:
        return
    here = Path(out).resolve()
    members = Members.of(recipe.search, sampled)
    for i in range(members.n):
        folder = root / members.folder(i, RunState(""))  # the names are the recipe's budgets and ε: no state
        owner = other_run(folder, here)
        there = owner is not None and os.path.exists(owner)  # False also where it cannot be looked at
        if owner is None or (resume and not there):
            continue
        gone = "" if there else ", a folder no longer there"
        fix = ("move or remove that folder (a resumed run keeps its export.dir)" if resume else
               "set export.dir to another folder (without it each run exports into its own DIR/export), or "
               "remove that folder if its model is no longer needed")
        raise _recipe_error(recipe, ("export", "dir"),
                            f"{folder} holds the model another run exported (its manifest.json's run: {owner}"
                            f"{gone}), which this run would replace while that run's results describe it; {fix}")


def other_run(folder: Path, here: Path) -> str | None:
    """The run folder recorded in ``folder``'s manifest (:func:`automl.export.run_of`) when it is not
    ``here`` (resolved), else None."""
    owner = run_of(folder)
    if owner is None:
        return None
    try:
        return None if Path(owner).resolve() == here else owner
    except (OSError, RuntimeError, ValueError):  # a loop of links (RuntimeError before Python 3.13), a NUL byte:
        return owner  # not a folder this run's resolves to


def check_member_folder(folder: Path, out: Path, resume_command: str) -> None:
    """Just before a member's export into an absolute export.dir: refuse ``folder`` when another run that
    still exists exported into it after this run's start-up check (:func:`check_export_dir`; runs started
    together pass it both), so neither replaces the other's model. This run's checkpoints are intact."""
    owner = other_run(folder, Path(out).resolve())
    if owner is not None and os.path.exists(owner):
        raise UserError(f"{folder} holds the model another run exported while this one ran (its manifest.json's "
                        f"run: {owner}); this run stops before replacing it. Its checkpoints are intact: move or "
                        f"remove that folder, then continue with: {resume_command}")


def _compile(recipe, args: dict[str, str], retrain: bool):
    """The recipe's space compiled with ``args``; a parameter the space rejects is a :class:`RecipeError` that
    names the recipe key it came from (``space_args.NAME``, or ``retrain.space_args.NAME`` for the retraining
    space's own values) and, when the value is the file's, its line. So is a value that the space refuses where it
    is used (a cell count out of range: ``SpaceError.given``), with the space file's line and the recipe's key. A
    space file that cannot be read at all (missing, a folder) is one at the line of ``space``
    (:func:`_space_file_error`); a mistake inside the file is the file's own :class:`SpaceError`."""

    def keys(name: str) -> tuple[str, ...]:
        return ("retrain", "space_args", name) if retrain and name in recipe.retrain.space_args else (
            "space_args", name)

    try:
        return load_compiled(recipe.space_path, args)
    except SpaceFileError as e:
        if e.filename != str(recipe.space_path):
            raise
        raise _space_file_error(recipe, e) from None
    except ParamError as e:
        got = "" if e.value is None else f", got {_space_arg_text(recipe, keys(e.name), e.value)}"
        raise _recipe_error(recipe, keys(e.name), f"{e.problem}{got} (space {recipe.space_path})") from None
    except SpaceError as e:
        if not e.given:
            raise
        message = e.message
        for name in e.given:  # `(from normal_cells=1e3, given with --set ...)`: the recipe's key instead
            message = message.replace(f"{name}={args[name]}{GIVEN}", f"{'.'.join(keys(name))}={args[name]}")
        raise _recipe_error(recipe, keys(e.given[0]), "the space refuses this value: " + format_source_error(
            e.filename, e.line, e.column, message, e.source_line)) from None
    except OSError as e:  # a name too long, a folder on the way this user may not enter: named as the recipe's space
        if e.filename is None:
            raise
        raise _recipe_error(recipe, ("space",), f"{shortened(str(e.filename))}: {e.strerror or e}; check the path (and "
                                                f"the permissions of its folders)") from None


def _space_arg_text(recipe, keys: tuple[str, ...], value: str) -> str:
    """A space parameter's value at ``keys`` (space_args.NAME or retrain.space_args.NAME) as a message shows it: as
    the recipe's YAML holds it, written as JSON (``true``, ``"abc"``, ``1.5``; the compiler is given its text,
    Python's ``True``), as the manifest's space_args are shown; ``value`` (the compiler's) where the recipe has
    none."""
    section = recipe.retrain if keys[0] == "retrain" else recipe
    raw = section.space_args.get(keys[-1])
    return shortened(value) if raw is None else json_text(raw)


def _space_file_error(recipe, e: SpaceFileError) -> RecipeError:
    """The recipe's space file that cannot be read (``e``), at the line of ``space`` with the path as the file
    writes it and where it leads (relative to the recipe's folder); an override's (a path relative to the current
    folder) named as the override."""
    path, written = recipe.space_path, file_value(recipe, ("space",))
    published = f" ({PUBLISHED_SPACES})" if e.reason == "missing" else ""
    meant = Path(e.suggestion).name if e.suggestion else None  # a missing file's likely .space file, in its folder
    if written is None and recipe.source is not None:  # `space=...` on the command line
        fix = f"did you mean space={path.with_name(meant)}?" if meant else f"check the path{published}"
        return _located(recipe, ("space",), f"override space={path} (a path on the command line is relative to "
                                            f"the current folder): {e.problem}; {fix}")
    if isinstance(written, str) and not Path(os.path.expanduser(written)).is_absolute():
        fix = (f"did you mean space: {Path(written).with_name(meant)}?" if meant else
               f"give an absolute path, or one relative to the recipe's folder {recipe.base_dir}{published}")
        return _recipe_error(recipe, ("space",), f"{shortened(written)} (relative to the recipe's folder) → {path}: "
                                                 f"{e.problem}; {fix}")
    recorded = _recorded(recipe, ("space",), "space file") if e.reason == "missing" else None
    if recorded is not None:  # a run's own recipe (automl rank, --resume): the file it ran with has moved
        fix = recorded + (f" (did you mean {path.with_name(meant)}?)" if meant else "")
    else:
        fix = f"did you mean {path.with_name(meant)}?" if meant else f"check the path{published}"
    return _recipe_error(recipe, ("space",), f"{path}: {e.problem}; {fix}")


def _recorded(recipe, keys: tuple[str, ...], what: str) -> str | None:
    """For a run's own recipe (its recipe.resolved.yaml, which ``automl rank RUN`` and ``--resume`` read) whose file
    gives the value at ``keys``: the advice for ``what`` it names that is no longer there, which the user moved
    (the path is the run's record, not a mistake to look for); None for any other recipe."""
    source = recipe.source
    line = None if source is None or source.name != RESOLVED else file_line(recipe, keys)
    if line is None:
        return None
    return (f"the {what} recorded for this run is gone or moved: put it back, or edit line {line} of {source} to "
            f"its new place")


def check_shapes(recipe, spaces: Spaces, data) -> None:
    """Both spaces take the data's input shape and number of classes. The message says what differs (channels,
    size, classes) and how each can be fixed: the space's parameters in space_args where the space's ``input``
    (``classes``) line reads one for that dimension, else another data set or another space."""
    for sp, keys, given in ((spaces.search, ("space_args",), recipe.space_args),
                            (spaces.retrain, ("retrain", "space_args"), recipe.retrain.space_args)):
        ours, theirs = (*sp.input_shape, sp.num_classes), (*data.input_shape, data.num_classes)
        if ours == theirs:
            continue
        where = ".".join(keys)
        fixes, by_args = _shape_fixes(sp, ours, theirs, where)
        with_args = f" (with {where})" if given else ""
        message = (f"the space {recipe.space_path.name}{with_args} takes input {tuple(sp.input_shape)} with "
                   f"{sp.num_classes} classes, but data.dataset {recipe.data.dataset} gives "
                   f"{tuple(data.input_shape)} with {data.num_classes} classes; {'; '.join(fixes)}")
        only_sizes = (ours[0], ours[3]) == (theirs[0], theirs[3])
        sized = _size_key(recipe, sp, retrain=keys[0] == "retrain") if only_sizes else None
        if sized is not None:  # the key that set the size: its line, or its override
            line, item = file_line(recipe, sized), override_of(recipe, sized)
            if line is None and item is not None:
                message = f"override {item}: {message}"
            raise RecipeError(message, recipe.source and str(recipe.source), None, line)
        raise _located(recipe, keys if by_args else ("space",), message, ("data", "dataset"))


def _size_key(recipe, sp, retrain: bool) -> tuple[str, ...] | None:
    """The recipe key that set the size the space and the data disagree on (only the sizes differ): the data's
    data.image_size when the recipe gives one, else the space parameter of its ``input`` line's sizes that
    space_args (or, for the retraining space, retrain.space_args) gives; None when neither was given."""
    if recipe.data.image_size is not None and (file_line(recipe, ("data", "image_size")) is not None
                                               or override_of(recipe, ("data", "image_size")) is not None):
        return ("data", "image_size")
    names = [] if sp.space is None else [n for e in sp.space.input_shape[1:3] for n in _params_in(e)]
    for name in dict.fromkeys(names):
        if retrain and name in recipe.retrain.space_args:
            return ("retrain", "space_args", name)
        if name in recipe.space_args:
            return ("space_args", name)
    return None


def _params_in(e) -> list[str]:
    """The space parameters an expression of the space (an ``input`` dimension, ``classes``) reads."""
    if isinstance(e, ir.Ref):
        return [e.name]
    if isinstance(e, ir.Neg):
        return _params_in(e.operand)
    if isinstance(e, ir.BinOp):
        return _params_in(e.left) + _params_in(e.right)
    return []


def _param_fix(exprs, values, where: str) -> str | None:
    """How to give the space's dimensions ``exprs`` the data's ``values`` through its parameters: ``set
    WHERE.NAME=V`` where each is a parameter itself, else the parameters to set; None where none reads one."""
    names = list(dict.fromkeys(n for e in exprs for n in _params_in(e)))
    if not names:
        return None
    plain: dict[str, int] = {}
    for e, v in zip(exprs, values):
        if not isinstance(e, ir.Ref) or plain.setdefault(e.name, v) != v:
            return f"set the space's parameters {', '.join(names)} in {where} so that they give {_shape(values)}"
    return "set " + ", ".join(f"{where}.{n}={v}" for n, v in plain.items())


def _shape(values) -> str:
    return " x ".join(map(str, values))


def _shape_fixes(sp, ours: tuple, theirs: tuple, where: str) -> tuple[list[str], bool]:
    """What differs between the space's (C, H, W, classes) ``ours`` and the data's ``theirs``, each with its fix,
    and whether the space's parameters (``where``) fix all of them. A space compiled without its file's text
    (``sp.space`` None) names space_args as a fix where a parameter sets the dimension."""
    exprs = (*sp.space.input_shape, sp.space.classes) if sp.space is not None else None
    parts = (("the channels", slice(0, 1), "its `input` line"), ("the sizes", slice(1, 3), "its `input` line"),
             ("the classes", slice(3, 4), "its `classes` line"))
    resize = f"data.image_size={ours[1]}" if ours[1] == ours[2] else None  # the data resized to the space's
    fixes, by_args = [], True
    for what, at, line in parts:
        if ours[at] == theirs[at]:
            continue
        fix = None if exprs is None else _param_fix(exprs[at], theirs[at], where)
        differ = f"{what} differ ({_shape(ours[at])} in {line}, {_shape(theirs[at])} in the data)"
        if fix is not None:
            fixes.append(f"{differ}: {fix}" + (f" (or {resize})" if what == "the sizes" and resize else ""))
        elif exprs is None:
            fixes.append(f"{differ}: if a space parameter sets them, set it in {where} (see `automl space show`)")
        else:
            by_args = False
            other = {"the channels": f"a data set with {ours[0]} channel{'s' * (ours[0] != 1)}",
                     "the sizes": resize or "data of that size",
                     "the classes": f"a data set of {ours[3]} classes"}[what]
            fixes.append(f"{differ}, which the space fixes (no parameter sets them): use {other}, or a space "
                         f"whose {line.removeprefix('its ')} takes {_shape(theirs[at])}")
    return fixes, by_args


def check_ranking(recipe, space, has_supernet: bool) -> None:
    """The ranking section fits the run: a weight-sharing supernet to score on, and K <= the space's size."""
    rk = recipe.ranking
    if rk is None:
        return
    if not has_supernet:
        raise _recipe_error(recipe, ("ranking",), f"needs the supernet of the weight phase, which search.method "
                            f"{recipe.search.method} does not train; use {supernet_methods()}, or "
                            f"remove ranking")
    n, networks = ranked_pool(space)
    if rk.archs > n:
        raise TooManyArchs(recipe.source, rk.archs, n, recipe.space_path.name, networks,
                           line=file_line(recipe, ("ranking", "archs")) or file_line(recipe, ("ranking",)))


def ranked_pool(space) -> tuple[int, bool]:
    """How many architectures a ranking may take from ``space``, and whether they are counted as networks:
    with elastic depth, architectures that differ only in a layer their depth leaves out are one network, which
    the ranking retrains once (:func:`automl.ranking.exact_costs`)."""
    exact = exact_costs(space.cost_table, "params")
    if exact is not None and exact.networks < space_size(space.num_choices):
        return exact.networks, True
    return space_size(space.num_choices), False


MIN_RANKED = 3  # the least ranking.archs (automl.recipe's ranking section): fewer give no meaningful τ


class TooManyArchs(RecipeError):
    """``ranking.archs`` above the number of architectures the space has, in the recipe ``src`` (its file, or
    None) at ``line``; ``asked``, ``size`` and ``space`` let a caller that took K from elsewhere (``automl rank
    --archs``) name its own flag."""

    def __init__(self, src, asked: int, size: int, space: str, networks: bool = False, line: int | None = None):
        self.asked, self.size, self.space = asked, size, space
        fix = (f"set ranking.archs to at most {size}" if size >= MIN_RANKED else
               f"a ranking needs at least {MIN_RANKED}: remove the ranking section (ranking: null)")
        self.of = (" distinct networks (elastic depth: architectures that differ only in a layer their depth "
                   "leaves out are one network)") if networks else ""
        super().__init__(f"{asked} architectures asked for, but the space {space} has only {size:,}{self.of}; {fix}",
                         src and str(src), "ranking.archs", line)


# a budget over this many times the largest architecture's cost was written in another metric's units
FAR_ABOVE = 100


def cost_unit(metric: str) -> str:
    """What follows a cost of ``metric`` in a message: `` ms`` for a time (a latency table's milliseconds); a
    count (parameters, MACs) has none."""
    return " ms" if metric in TIME_METRICS else ""


def below_smallest(recipe, key: str, j: int, budget: float, space, low: float, null_ok: bool) -> UserError:
    """The message for ``search.KEY[j]`` below ``low``, the smallest network's cost in ``space``: the least
    budget to give instead (rounded up, so it passes) and, where the key takes it, null."""
    u = cost_unit(recipe.search.cost)
    return _budget_error(recipe, key, j, f"{short_number(budget)}{u} is below the smallest architecture of "
                         f"{space.name} ({recipe.search.cost} {low:,.6g}{u}, fixed part included); raise it to at "
                         f"least {short_number(round_sig(low, up=True))}{u}"
                         + (" or use null for no constraint" * null_ok))


def _written(b: float | None, metric: str) -> str:
    """A budget as a recipe can write it: null, ``80k``, or ``0.03ms`` for a time."""
    return "null" if b is None else short_number(b) + ("ms" if metric in TIME_METRICS else "")


def _budget_error(recipe, key: str, j: int, message: str) -> RecipeError:
    """A mistake in ``search.KEY[j]``: at the line of search.KEY when the file gives its value, else (a
    command-line override) naming the override, as recipe errors name one (``FILE: key: override k=v: ...``)."""
    line, item = file_line(recipe, ("search", key)), override_of(recipe, ("search", key))
    if line is None and item is not None:
        message = f"override {item}: {message}"
    return RecipeError(message, recipe.source and str(recipe.source), f"search.{key}[{j}]", line)


def _likely_metric(space, metric: str, budgets: list[float]) -> str | None:
    """The space's other metric whose range (smallest to largest architecture) holds all of ``budgets``: the one
    they were probably written for; None when none does."""
    ct = space.cost_table
    for m in ct.metrics:
        if m != metric and ct.min_total(m) <= min(budgets) and max(budgets) <= ct.max_total(m):
            return m
    return None


def _far_above(recipe, space, far: list[int], warn) -> None:
    """One warning for the budgets ``far`` (indices) over :data:`FAR_ABOVE` times the largest architecture's
    cost: they are in search.cost's units and look written for another metric; the fix shows the budgets mapped
    into search.cost's range (from the other metric's range, else evenly spaced), null and the others kept."""
    s, ct = recipe.search, space.cost_table
    low, high, u = ct.min_total(s.cost), ct.max_total(s.cost), cost_unit(s.cost)
    given = [s.budgets[j] for j in far]
    other, look = _likely_metric(space, s.cost, given), "it looks" if len(far) == 1 else "these look"
    if other is not None:
        lo, hi = ct.min_total(other), ct.max_total(other)
        fraction = {j: (s.budgets[j] - lo) / (hi - lo) if hi > lo else 1.0 for j in far}
        was = (f"{look} written for {other} ({short_number(lo)} to {short_number(hi)} on {space.name}). Scaled "
               f"from that range to {s.cost}'s")
    else:
        order = sorted(far, key=lambda j: -s.budgets[j])
        fraction = {j: (len(far) - i) / (len(far) + 1) for i, j in enumerate(order)}
        was = f"{look} written for another metric. Spread over {s.cost}'s range"
    fixed = [(round_sig(low + fraction[j] * (high - low), up=True) if j in fraction else b)
             for j, b in enumerate(s.budgets)]
    units = f"ms for {s.cost}" if s.cost in TIME_METRICS else f"{s.cost} as the space counts it"
    named = [f"[{j}]" for j in far]
    named = ", ".join(named[:-1]) + " and " + named[-1] if len(named) > 1 else named[0]
    warn(f"warning: search.budgets{named} ({', '.join(short_number(b) for b in given)}) "
         f"{'is' if len(far) == 1 else 'are'} over {FAR_ABOVE}x the largest architecture of {space.name} "
         f"({s.cost} {high:,.6g}{u}), so {'it constrains' if len(far) == 1 else 'they constrain'} nothing. "
         f"search.budgets are in search.cost's units ({units}): {was} ({low:,.6g} to {high:,.6g}{u}), for example: "
         f"search.budgets=[{','.join(_written(b, s.cost) for b in fixed)}]")


def check_budgets(recipe, space, warn, costs: "EngineCosts | None" = None) -> None:
    """search.budgets against the space: a total cost (fixed part included) in the metric's units.

    Below the smallest architecture's cost is an error; above the largest a warning (no constraint), one for
    all the budgets far above it (:data:`FAR_ABOVE` times: written for another metric). With ``costs`` (the
    searchers'), also below the cheapest architecture they can guarantee within a budget: with elastic depth
    they count a layer a depth choice may leave out as present."""
    s = recipe.search
    if s.budgets is None:
        return
    ct = space.cost_table
    low, high = ct.min_total(s.cost), ct.max_total(s.cost)  # exact with elastic depth's gates too
    bound = low if costs is None else max(low, costs.cheapest())
    bound_slack = 1e-9 * max(abs(bound), 1.0)  # the searchers' units round: a budget at the bound is fine
    u, far = cost_unit(s.cost), []
    for j, b in enumerate(s.budgets):
        if b is None:
            continue
        if b < low:
            raise below_smallest(recipe, "budgets", j, b, space, low, null_ok=True)
        if b < bound - bound_slack:
            raise _budget_error(recipe, "budgets", j, f"{short_number(b)}{u} is below {short_number(bound)}{u}, the "
                                f"cheapest architecture the search can guarantee within a budget: its per-choice "
                                f"costs count a layer that elastic depth may leave out as present (the smallest "
                                f"network, {low:,.6g}{u}, needs the depth decisions to drop them); raise the budget "
                                f"to at least {short_number(round_sig(bound, up=True))}{u}")
        if high > 0 and b > FAR_ABOVE * high:
            far.append(j)
        elif b >= high:
            warn(f"warning: search.budgets[{j}] = {short_number(b)}{u} is at or above the largest "
                 f"architecture ({s.cost} {high:,.6g}{u}): it does not constrain that member")
    if far:
        _far_above(recipe, space, far, warn)


@dataclass(frozen=True)
class EngineCosts:
    """The searcher's cost table: the recipe's metric, normalised so the largest per-choice cost is 1
    (``automl.search.normalize_costs``, which makes ε mean the same on every space) unless
    search.normalize_costs is off; ``scale`` and ``fixed`` turn a total budget into its units.

    With elastic width (the metric's costs depend on the widths chosen: ``CostTable.context``) ``costs``
    is the exact :class:`automl.search.ContextCosts` (``automl.search.normalize_context``): its tables
    share one scale and it adds ``(F[a] - fixed) / scale`` per combination of widths, so that
    ``fixed + scale * R`` is the exact total of every architecture and a budget converts as below."""

    costs: torch.Tensor | ContextCosts
    scale: float
    fixed: float
    normalized: bool
    mask: torch.Tensor  # (D, Kmax) True where a choice exists

    def budgets(self, totals) -> list[float | None]:
        """Total budgets (recipe units) -> the engine's units: (B - fixed) / scale."""
        return [None if b is None else (b - self.fixed) / self.scale for b in totals]

    def cheapest(self) -> float:
        """In recipe units, the cost of the cheapest architecture by the searchers' costs (above the exact
        ``CostTable.min_total`` where elastic depth's per-choice costs are upper bounds)."""
        return self.fixed + self.scale * cost_extremes(self.costs, self.mask)[0]


def recipe_costs(recipe, space) -> EngineCosts:
    """The searchers' costs of a run of ``recipe`` on ``space``: search.cost, normalised as search.normalize_costs."""
    return engine_costs(space, recipe.search.cost, recipe.search.normalize_costs)


def engine_costs(space, metric: str, normalize: bool) -> EngineCosts:
    """The searchers' costs of ``metric`` (see :class:`EngineCosts`); ``normalize=False``: the raw units."""
    ct = space.cost_table
    context = ct.context(metric)
    if context is not None:  # elastic width: the exact tables of every combination of widths
        model, scale, offset = normalize_context(ct.context_decisions, *context, ct.mask, normalize)
        return EngineCosts(model, float(scale), offset, normalize, ct.mask)
    raw = ct.costs(metric)
    fixed = ct.fixed.get(metric, 0.0)
    if normalize:
        costs, scale = normalize_costs(raw, ct.mask, return_scale=True)
        return EngineCosts(costs, float(scale), fixed, True, ct.mask)
    return EngineCosts(raw, 1.0, fixed, False, ct.mask)
