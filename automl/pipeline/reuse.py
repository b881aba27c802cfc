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
from typing import Any, Callable, NamedTuple

import torch
import yaml

from automl._io import pasted_path, path_problem
from automl._lock import held_by
from automl.dsl import file_sha256, load_space, space_digest
from automl.errors import RecipeError, SpaceError, UserError
from automl.export.inherit import check_state, state_differences
from automl.export.manifest import MANIFEST_NAME
from automl.nn.ensemble import SupernetEnsemble, ensemble_size
from automl.pipeline.context import RunContext
from automl.pipeline.state import CKPT_FORMAT, RunState
from automl.recipe import ADDED_KEYS, DATASETS_READING
from automl.search import supernet_methods
from automl.train.checkpoint import CheckpointStore
from automl.train.data import NATIVE_SIZE, data_changes, split_seed
from automl.train.progress import plural

__all__ = ["WEIGHT_SEARCH_KEYS", "DATA_NOT_IN_WEIGHTS", "DATA_READ_BY", "SYNTHETIC_NOT_IN_WEIGHTS", "ROOT_ONLY_LOCATES",
           "weights_fingerprint", "fingerprint_digest", "ReusedWeightsStage", "Reused", "load_supernet", "differences",
           "check_fits", "check_differences", "check_resumed", "on_data", "Given", "FLAG", "holds_trained_supernet",
           "FORCE_FLAG"]

# search.* settings the weight phase reads (the others only steer θ, the budgets or the random baseline)
# data.* settings the weight phase never reads (D_θ's and the test set's batch sizes, loader workers); split_seed is
# recorded as the split it makes (weights_fingerprint)
DATA_NOT_IN_WEIGHTS = {"theta_batch_size", "test_batch_size", "workers", "download", "split_seed"}
# data.* keys that only some data sets read, with the data sets that read each (the recipe's list, which warns of
# one set for another data set: data.synthetic, cutout, ...): a key that neither of two runs' data sets reads
# trained nothing in either, so the --supernet check leaves it out (:func:`differences`, ``only_read``); the
# fingerprint still records it, as every run before did (its digest stays that of the same settings)
DATA_READ_BY = DATASETS_READING
# data.synthetic keys the weights do not depend on: the test images are drawn after the training images, from the
# same generator (automl/train/data.py, _make_synthetic), so their number leaves D_W and D_theta as they are
SYNTHETIC_NOT_IN_WEIGHTS = {"num_test"}
# data sets that data.root only locates (a copy elsewhere is the same data); an imagefolder's root names its data
ROOT_ONLY_LOCATES = {"digits", "cifar10", "synthetic"}
# the space file's key: what it says, or (runs recorded before space_digest) the sha256 of its bytes
SPACE_DIGEST = "space.sha256"
WEIGHT_SEARCH_KEYS = ("lam", "weight_epochs", "weight_sampling", "inplace_distill", "nan_policy", "max_bad_steps")


def weights_fingerprint(recipe, space_path: Path, space_args: dict[str, str]) -> dict[str, Any]:
    """What a supernet's trained weights depend on, as flat ``key: value`` pairs (JSON values); ``data.root``
    only for a data set it names (an imagefolder), not for one it only locates (:data:`ROOT_ONLY_LOCATES`)."""
    located = {"root"} if recipe.data.dataset in ROOT_ONLY_LOCATES else set()
    data = recipe.data.model_dump(mode="json", exclude=DATA_NOT_IN_WEIGHTS | located)
    fp: dict[str, Any] = {"space": space_path.name,
                          SPACE_DIGEST: space_digest(space_path.read_bytes()),
                          "space_args": dict(sorted(space_args.items())), "seed": recipe.seed}
    fp.update({f"data.{k}": v for k, v in data.items()})
    split = split_seed(recipe.data, recipe.seed)
    if split != recipe.seed:  # absent when the split follows the seed, as in runs recorded before the key
        fp["data.split_seed"] = split
    if recipe.data.dataset == "imagefolder":  # drawn class by class (absent: drawn from all items at once)
        fp["data.split"] = "by class"
    fp.update({f"search.{k}": getattr(recipe.search, k) for k in WEIGHT_SEARCH_KEYS})
    if recipe.search.supernets != 1:  # absent for one supernet: runs recorded before the key still match
        fp["search.supernets"] = recipe.search.supernets
    optim = recipe.optim.model_dump(mode="json", exclude=recipe.added_keys_as_before().get("optim"))
    fp.update({f"optim.{k}": v for k, v in optim.items()})
    return fp


def fingerprint_digest(fp: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()


def _number(text: Any) -> Any:
    """A space argument as the number it gives (``64``, ``64.0`` and ``6.4e1`` compare equal), or as given."""
    for kind in (int, float):
        try:
            return kind(str(text).strip())
        except ValueError:
            continue
    return text


def _space_values(space_path: Path | None, args: dict) -> dict[str, Any] | None:
    """Every parameter of the space at ``space_path`` as ``args`` set it (the others at their defaults), the
    values the compiler builds with; None when the file or the arguments do not parse."""
    if space_path is None:
        return None
    try:
        return dict(load_space(space_path, {k: str(v) for k, v in args.items()}).param_values)
    except (SpaceError, OSError):
        return None


def _unread(theirs: dict[str, Any], ours: dict[str, Any]) -> set[str]:
    """The ``data.*`` keys that neither fingerprint's data set reads (:data:`DATA_READ_BY`)."""
    datasets = {theirs.get("data.dataset"), ours.get("data.dataset")}
    return {f"data.{key}" for key, readers in DATA_READ_BY.items() if datasets.isdisjoint(readers)}


def _synthetic(fp: dict[str, Any], key: str) -> Any:
    """``data.synthetic.KEY`` of ``fp``: in its ``data.synthetic`` mapping (a fingerprint), or flattened (a
    recipe); None when absent."""
    section = fp.get("data.synthetic")
    return section.get(key) if isinstance(section, dict) else fp.get(f"data.synthetic.{key}")


def _as_trained(fp: dict[str, Any], native_size: bool) -> dict[str, Any]:
    """``fp`` as its weight phase read it: ``data.synthetic`` without :data:`SYNTHETIC_NOT_IN_WEIGHTS`, and with
    ``native_size`` ``data.image_size`` null as the size it stands for, the data set's native size
    (:data:`~automl.train.data.NATIVE_SIZE`; synthetic: ``data.synthetic.size``): the images come at it unresized,
    as with that size given (an elastic resolution's sizes are resized from it, as the space says)."""
    fp = dict(fp)
    dataset = fp.get("data.dataset")
    if native_size and "data.image_size" in fp and fp["data.image_size"] is None:
        native = _synthetic(fp, "size") if dataset == "synthetic" else NATIVE_SIZE.get(dataset)
        if native is not None:
            fp["data.image_size"] = native
    if isinstance(fp.get("data.synthetic"), dict):
        fp["data.synthetic"] = {k: v for k, v in fp["data.synthetic"].items() if k not in SYNTHETIC_NOT_IN_WEIGHTS}
    for key in SYNTHETIC_NOT_IN_WEIGHTS:  # a recipe flattened
        fp.pop(f"data.synthetic.{key}", None)
    return fp


def _within(key: str, keys: set[str]) -> bool:
    """Whether ``key`` is one of ``keys`` or in a section of them (``data.synthetic.size``, a recipe flattened)."""
    return key in keys or key.rsplit(".", 1)[0] in keys


def _effective(theirs: dict[str, Any], ours: dict[str, Any], space_path: Path | None, only_read: bool = False):
    """Both fingerprints as the values they stand for: the keys left out at their defaults filled in (one
    supernet; the split drawn by the seed), ``data.root`` left out where it only locates the data set
    (:data:`ROOT_ONLY_LOCATES`: a copy at another path trained the same weights), and ``space_args`` as
    ``space_args.NAME`` per parameter with the value the compiler reads (by this space file, defaults included,
    when both were recorded for what it says and parse against it; else as numbers, the arguments given alone).
    ``only_read``: both as their weight phases read them (:func:`_as_trained`: data.image_size null as the native
    size where the other side gives a size, the synthetic set's test size left out), and the data keys that
    neither side's data set reads (:func:`_unread`) left out of both."""
    unread = _unread(theirs, ours) if only_read else set()
    # two nulls: each data set at its native size, which data.dataset and data.synthetic compare
    native_size = any(fp.get("data.image_size") is not None for fp in (theirs, ours))
    if theirs.get(SPACE_DIGEST) != ours.get(SPACE_DIGEST):  # its defaults may not be this file's
        space_path = None
    out = []
    for fp in (theirs, ours):
        fp = dict(fp)
        fp.setdefault("search.supernets", 1)
        for (section, key), before in ADDED_KEYS.items():
            if section in ("optim", "data"):  # the weight phase's keys added since (data.cutout: its D_W batches)
                fp.setdefault(f"{section}.{key}", before)
        if "seed" in fp:
            fp.setdefault("data.split_seed", fp["seed"])
        if fp.get("data.dataset") in ROOT_ONLY_LOCATES:  # where the data is, as runs recorded it before
            fp.pop("data.root", None)
        if only_read:
            fp = _as_trained(fp, native_size)
        out.append({k: v for k, v in fp.items() if not _within(k, unread)})
    args = [fp.pop("space_args", None) or {} for fp in out]
    same = {k: str(v) for k, v in args[0].items()} == {k: str(v) for k, v in args[1].items()}
    values = [None] if same else [_space_values(space_path, a) for a in args]  # parsing ofa_mbv3 takes 0.5 s
    if None in values:
        values = [{k: _number(v) for k, v in a.items()} for a in args]
    for fp, vals in zip(out, values):
        fp.update({f"space_args.{k}": v for k, v in sorted(vals.items())})
    return out


def differences(theirs: dict[str, Any], ours: dict[str, Any], space_path: Path | None = None,
                only_read: bool = False) -> list[str]:
    """``key: THEIRS there, OURS here`` for every key whose effective value differs (:func:`_effective`; a key
    one side lacks and no default fills counts as differing). ``space_path``: this run's space file, which
    gives both sides' ``space_args`` their values. ``only_read`` (the --supernet check): compare what the weight
    phases read (data.image_size null and 8 on digits are equal; data.synthetic.num_test counts for nothing) and
    leave out the data keys that neither side's data set reads (data.cutout between two digits runs); without it
    every key counts as recorded, as ``--resume`` compares recipes (whose fingerprint counts them so)."""
    theirs, ours = _effective(theirs, ours, space_path, only_read)
    out = []
    for k in [*ours, *(k for k in theirs if k not in ours)]:
        a, b = theirs.get(k, "(absent)"), ours.get(k, "(absent)")
        if a != b:
            out.append(f"{k}: {json.dumps(a)} there, {json.dumps(b)} here")
    return out


# how the warning of a forced supernet names supernet_force given by the flag (ReusedWeightsStage's ``forced``)
FORCE_FLAG = "--supernet-force"


class Given(NamedTuple):
    """How the folder of the supernet to reuse was given, as its messages name it: the flag ``--supernet DIR``
    (:data:`FLAG`), the recipe key ``supernet: DIR`` at ``line`` of the recipe ``file``, whose errors are
    :class:`RecipeError` naming the file and the line, or (``override``) the command-line override
    ``supernet=DIR`` of the recipe ``file``, whose errors name the file and the override, as a mistake in an
    override is named (``FILE: override supernet=DIR: ...``)."""

    file: str | None = None
    line: int | None = None
    override: bool = False

    @property
    def name(self) -> str:
        """``--supernet``, or ``supernet`` (the recipe key, or the override's key)."""
        return "--supernet" if self.file is None and not self.override else "supernet"

    def of(self, folder) -> str:
        """``--supernet DIR``, ``supernet: DIR``, or ``supernet=DIR``."""
        if self.override:
            return f"supernet={folder}"
        return f"{self.name}{' ' if self.file is None else ': '}{folder}"

    @property
    def force(self) -> str:
        """What forces this supernet, given as it was: :data:`FORCE_FLAG` with the flag, the override
        ``supernet_force=true`` with an override, the recipe key ``supernet_force: true`` with the key."""
        if self.override:
            return "supernet_force=true"
        return FORCE_FLAG if self.file is None else "supernet_force: true"

    def force_fix(self) -> str:
        """How to use the supernet anyway (:attr:`force`): ``pass --supernet-force``, ``add the override
        supernet_force=true``, or ``set supernet_force: true in the recipe``."""
        if self.override:
            return f"add the override {self.force}"
        return f"pass {self.force}" if self.file is None else f"set {self.force} in the recipe"

    def error(self, message: str) -> UserError:
        """``message`` (which starts with :meth:`of` or :attr:`name`) as the error to raise: located at the key's
        line, or at the override."""
        if self.override:
            return RecipeError(f"override {message}", self.file)
        return UserError(message) if self.file is None else RecipeError(message, self.file, None, self.line)


FLAG = Given()


class Reused(NamedTuple):
    """Another run's trained supernet, as :func:`load_supernet` read it."""

    weights: dict
    origin: dict[str, Any]        # for results.json: {from, fingerprint, forced, differs[, trained_by]}
    differs: list[str]
    fingerprint: dict[str, Any]   # what trained the weights (the reusing run's checkpoint records it)
    data: dict[str, Any] | None = None  # the training data it started on (its Data.fingerprint; None: not recorded)


def _trained_with(ckpt: dict, run_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """The fingerprint of what trained the supernet in ``ckpt``, and what it leaves out. A run that reused a
    supernet records its source's fingerprint; one recorded by an older automl after a forced reuse holds its own
    recipe's instead (its origin's digest then differs from it): the settings it forced count as differing,
    whatever this run asks for. The line names both ways of forcing (the records do not tell which was used)."""
    theirs, origin = ckpt["weights_fingerprint"], ckpt.get("supernet_origin") or {}
    if origin.get("from") and origin.get("forced") and origin.get("fingerprint") != fingerprint_digest(theirs):
        differs = "; ".join(origin.get("differs") or ["(not recorded)"])
        return theirs, [f"{run_dir} was forced ({FORCE_FLAG} / supernet_force: true) to reuse the supernet of "
                        f"{origin['from']}, trained with other settings: {differs}"]
    return theirs, []


def _checkpoint(store: CheckpointStore, run_dir: Path, given: Given) -> dict:
    """The newest usable checkpoint in ``store`` (of the run in ``run_dir``), written by an automl of this
    checkpoint format; else a :class:`UserError` naming what is wrong."""
    ckpt = store.load()
    if ckpt is None:
        raise given.error(f"{given.of(run_dir)}: its checkpoints cannot be used: {store.why_none()}; give another "
                          f"run's folder, or train the supernet again")
    if ckpt.get("format") != CKPT_FORMAT:  # another layout: its keys may not mean what this automl reads
        raise given.error(f"{given.of(run_dir)}: its checkpoint {store.loaded} has format {ckpt.get('format')!r}, "
                          f"this automl reads format {CKPT_FORMAT}: another version of automl wrote it; reuse it "
                          f"with that version, or train the supernet again with this one (without {given.name})")
    return ckpt


def _run_above(path: Path) -> Path | None:
    """The run folder (one with checkpoints) that ``path`` lies in, a file or folder of it up to three levels
    down (RUN/export/eps-0/manifest.json); None when it lies in none."""
    return next((p for p in list(path.absolute().parents)[:3] if not CheckpointStore(p / "checkpoints").missing()),
                None)


def _store(source: Path, given: Given) -> CheckpointStore:
    """The checkpoints of the run in ``source`` (--supernet); else a :class:`UserError` saying what ``source`` is
    (a file or folder of a run, whose folder to give instead; a run still running or stopped before its first
    checkpoint; a finished run whose checkpoints were removed; an export's folder; a loop of links, a link to
    nothing, a pipe, socket or device: :func:`~automl._io.path_problem`) and what to give."""
    store = CheckpointStore(source / "checkpoints")
    if source.is_dir() and not store.missing():
        return store
    run = _run_above(source) if source.exists() else None
    if run is not None and source.is_file() and not path_problem(source, "a run's folder"):
        what = "a checkpoint file" if source.parent == run / "checkpoints" and source.suffix == ".pt" else "a file"
        raise given.error(f"{given.of(source)} is {what} of the run in {run}; give the run's folder: {given.of(run)}")
    if not source.is_dir():  # a link to nothing too
        what = path_problem(source, "a run's folder") or (
            "is a file, not a run's folder" if source.exists() else "does not exist")
        inside = f": it is a file of the run in {run}; give the run's folder: {given.of(run)}" if run else \
            f"; check {given.name} (the --out folder of an automl run whose weight phase has finished)"
        raise given.error(f"{given.of(source)}: no checkpoint there: {source} {what}{inside}")
    if not CheckpointStore(source).missing():
        raise given.error(f"{given.of(source)} is the checkpoints folder of the run in {source.parent}; give the "
                          f"run's folder: {given.of(source.parent)}")
    running = held_by(source)
    if running:  # started, not checkpointed yet
        raise given.error(f"{given.of(source)}: that run has no checkpoint yet: it is still running ({running});"
                          f" {_WAIT}")
    finished = [f for f in ("results.json", "report.md") if (source / f).exists()]
    if finished:  # its checkpoints removed after it finished (automl rank says the same)
        again = run_command(source, "NEW_DIR")
        raise given.error(f"{given.of(source)}: that run finished (its {finished[0]} is there), but its checkpoints, "
                          f"which held its trained supernet, are gone ({store.why_none()}); restore its checkpoints/ "
                          f"folder (from a copy), or run the search again ({again}) and give that run's folder")
    if (source / "recipe.resolved.yaml").is_file():  # what a run writes at its start, before its first checkpoint
        raise given.error(f"{given.of(source)}: that run has no checkpoint: it stopped before its first one (its "
                          f"recipe.resolved.yaml is there, no checkpoints/); run it again to train its supernet "
                          f"({run_command(source)}: it starts afresh there), or give another run's folder")
    if run is not None:
        raise given.error(f"{given.of(source)} is a folder of the run in {run}; give the run's folder: "
                          f"{given.of(run)}")
    if (source / MANIFEST_NAME).is_file():
        raise given.error(f"{given.of(source)} is an export's folder (its {MANIFEST_NAME}: one network, not a "
                          f"supernet); give the --out folder of the automl run that trained the supernet")
    raise given.error(f"{given.of(source)}: no checkpoint there (looked for {store.index_path}); give the "
                      f"--out folder of an automl run whose weight phase has finished")


def run_command(run_dir: str | Path, out: str | None = None, resume: bool = False) -> str:
    """The command that runs the recipe of the run in ``run_dir`` (its recipe.resolved.yaml: the recipe with its
    overrides) with ``--out`` ``out`` (default: ``run_dir``) and ``resume``, to paste; where the folder holds no
    recipe.resolved.yaml, the template that says to give the run's recipe and overrides."""
    resolved = Path(run_dir) / "recipe.resolved.yaml"
    where = f"--out {pasted_path(run_dir) if out is None else out}{' --resume' if resume else ''}"
    if resolved.is_file():
        return f"automl run {pasted_path(resolved)} {where}"
    return f"automl run RECIPE {where}, with its recipe and overrides"


_WAIT = ("wait for its weight phase to finish (its checkpoint then holds the trained supernet), then run this command "
         "again")


def _method_of(run_dir: Path) -> str:
    """`` NAME``: the search.method of the run in ``run_dir`` as its recipe.resolved.yaml says (simultaneous, whose
    supernet per member is not shared, or a plugin's); "" where it cannot be read."""
    try:
        recorded = yaml.safe_load((Path(run_dir) / "recipe.resolved.yaml").read_text(encoding="utf-8"))
        method = recorded["search"]["method"]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, TypeError, KeyError):
        return ""
    return f" {method}" if isinstance(method, str) else ""


def _untrained(ckpt: dict, store: CheckpointStore, run_dir: Path, given: Given) -> None:
    """Refuse (:class:`UserError`) the checkpoint ``ckpt`` of ``run_dir``, which holds no trained supernet: its
    search.method trains no shared supernet, its weight phase is still running there, or it was stopped before its
    end."""
    if ckpt.get("supernet_origin") is None:  # recorded by every run whose search.method trains a supernet
        raise given.error(f"{given.of(run_dir)}: that run has no trained supernet: its search.method"
                          f"{_method_of(run_dir)} trains no shared supernet to reuse; give the folder of a run of "
                          f"search.method {supernet_methods()}")
    running = held_by(run_dir)
    if running:  # --resume would be refused: the run is writing there now
        raise given.error(f"{given.of(run_dir)}: that run has no trained supernet yet: it is still in its weight "
                          f"phase, running now ({running}); {_WAIT}")
    resume = run_command(run_dir, resume=True)
    if store.problems:  # the newest was damaged: the weight phase may well have finished
        raise given.error(f"{given.of(run_dir)}: its newest checkpoint cannot be used "
                          f"({'; '.join(store.problems)}), and the one before it, {store.loaded}, was written before "
                          f"its weight phase finished; give another run's folder, or train the rest of that weight "
                          f"phase again ({resume})")
    raise given.error(f"{given.of(run_dir)}: that run has no trained supernet yet: its weight phase has not "
                      f"finished; finish it first ({resume})")


def holds_trained_supernet(ckpt: dict | None) -> bool:
    """Whether ``ckpt``, a run's newest usable checkpoint, holds a supernet :func:`load_supernet` takes: one of this
    checkpoint format whose weight phase has finished (or that took another run's supernet), with the fingerprint
    of what trained it. False for a run still in its weight phase, or of a method that trains none."""
    return (isinstance(ckpt, dict) and ckpt.get("format") == CKPT_FORMAT and ckpt.get("supernet") is not None
            and ckpt.get("weights_fingerprint") is not None)


def load_supernet(run_dir: Path, ours: dict[str, Any], force: bool, space_path: Path | None = None,
                  given: Given = FLAG, fits: Callable[[dict, list[str]], None] | None = None) -> Reused:
    """The trained supernet of the run in ``run_dir``, with its origin for results.json and the fingerprint of
    the settings that trained it.

    Refuses (:class:`UserError`, exit 2) a folder without a trained supernet (naming the run still writing there,
    :func:`~automl._lock.held_by`, or the newest checkpoint when it is damaged and the one before it holds none),
    a checkpoint of another format, and a fingerprint that differs from ``ours`` unless ``force``. ``space_path``:
    this run's space file, whose bytes' sha256 a run recorded before :func:`~automl.dsl.space_digest` holds instead
    (and which gives ``space_args`` values). ``given``: how the folder was given, as the messages name it.
    ``fits(weights, differs)``: the shape check (:func:`check_fits`), called before the settings are refused: a
    supernet of another shape, which forcing cannot take, is refused as that, never with advice to force it."""
    source = Path(run_dir)
    store = _store(source, given)
    ckpt = _checkpoint(store, run_dir, given)
    if ckpt.get("supernet") is None:
        _untrained(ckpt, store, run_dir, given)
    try:
        check_state(ckpt["supernet"], f"{given.of(run_dir)}: the supernet in its checkpoint {store.loaded}",
                    f"another run's folder, or train the supernet again (without {given.name})")
    except UserError as e:
        raise given.error(str(e)) from None
    if ckpt.get("weights_fingerprint") is None:
        raise given.error(f"{given.of(run_dir)}: that run records no weights fingerprint (an older automl); "
                          f"train the supernet again with this version")
    theirs, forced_before = _trained_with(ckpt, run_dir)
    if space_path is not None and theirs.get(SPACE_DIGEST) == file_sha256(space_path):
        theirs = {**theirs, SPACE_DIGEST: ours[SPACE_DIGEST]}
    diff = differences(theirs, ours, space_path, only_read=True) + forced_before
    if fits is not None:
        fits(ckpt["supernet"], diff)
    check_differences(diff, run_dir, force, given)
    origin = {"from": str(Path(run_dir).absolute()), "fingerprint": fingerprint_digest(theirs),
              "forced": bool(diff), "differs": diff, **_trained_by(ckpt)}
    return Reused(ckpt["supernet"], origin, diff, theirs, _weights_data(ckpt))


def _trained_by(ckpt: dict) -> dict[str, str]:
    """``{"trained_by": RUN}`` for the checkpoint ``ckpt`` of a run that itself reused another run's supernet
    (a chained reuse: its weight phase was skipped): the run that trained the weights, as that run's origin records
    it (its ``trained_by``, else its ``from``); {} for a run that trained its own supernet (its ``from`` null), so
    results.json's ``supernet.from`` trained it. One recorded before the field names the run it reused alone."""
    origin = ckpt.get("supernet_origin")
    if not isinstance(origin, dict):
        return {}
    trained = origin.get("trained_by") or origin.get("from")
    return {"trained_by": trained} if isinstance(trained, str) and trained else {}


def check_differences(differs: list[str], run_dir: Path, force: bool, given: Given = FLAG) -> None:
    """Refuse (:class:`UserError`) the supernet of ``run_dir`` trained with the settings ``differs`` names
    (:func:`differences`), unless ``force``: the message lists each and says how to force it (what
    :func:`load_supernet` checks once the supernet's shape fits)."""
    if differs and not force:
        raise given.error(f"{given.of(run_dir)}: its supernet was trained with other settings than this recipe "
                          f"asks for:\n  " + "\n  ".join(differs) + "\nset these as that run did (its "
                          f"recipe.resolved.yaml), or {given.force_fix()} to use the supernet anyway")


def _weights_data(ckpt: dict) -> dict[str, Any] | None:
    """The training data a checkpoint's supernet was trained on: the run's own (``data_fingerprint``), or for a run
    that reused another's supernet what that one recorded (``weights_data``); None where it is not recorded."""
    reused = ckpt.get("weights_data")
    return ckpt.get("data_fingerprint") if reused is None else reused or None


def on_data(reused: Reused, ours: dict | None, run_dir: Path, force: bool, given: Given = FLAG) -> Reused:
    """``reused`` for a run on the training data ``ours`` (its ``Data.fingerprint``): the supernet's own (or one
    not recorded) as it is; other data (a run's split is drawn from the list of training samples, so its D_theta
    would hold images the weights trained on) refused, or with ``force`` a line among the settings that differ."""
    changed = data_changes(reused.data, ours) if reused.data is not None and ours is not None else None
    if changed is None:
        return reused
    if not force:
        raise given.error(f"{given.of(run_dir)}: its supernet was trained on other training data than this run's: "
                          f"{changed}; this run's D_theta would hold images those weights trained on. Use the data "
                          f"that run trained on, or {given.force_fix()} to use the supernet anyway")
    differs = [*reused.differs, f"training data: {changed}"]
    return reused._replace(differs=differs, origin={**reused.origin, "forced": True, "differs": differs})


def _shapes(space, members: int) -> dict[str, tuple[int, ...]]:
    """The state_dict shapes of ``space``'s supernet (an ensemble of ``members``), built without weights."""
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        nets = [space.build_supernet() for _ in range(members)]
        net = nets[0] if members == 1 else SupernetEnsemble(nets)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def check_fits(run_dir: Path, weights: dict, space, space_args: dict[str, str], members: int,
               differs: list[str] = (), given: Given = FLAG) -> None:
    """Refuse (:class:`UserError`) a reused supernet that is not ``space``'s with ``space_args`` and ``members``
    supernets (search.supernets): --supernet-force takes other settings, never another shape. ``differs``: the
    settings that differ (:func:`differences`), named in the message; ``given``: how the folder was given."""
    there = ensemble_size(weights)
    if there != members:
        what = (f"a single supernet there, an ensemble of {members} here" if there == 1 else
                f"an ensemble of {there} supernets there, {members} here") + " (search.supernets)"
    else:
        what = _shape_mismatch({k: tuple(v.shape) for k, v in weights.items()}, _shapes(space, members))
        if not what:
            return
    args = ", ".join(f"{k}={v}" for k, v in sorted(space_args.items())) or "none"
    trained = "; it was trained with " + "; ".join(differs) if differs else ""
    raise given.error(f"{given.of(run_dir)}: its supernet has another shape than the one space {space.name} builds "
                      f"here (space_args: {args}): {what}{trained}; {given.force} takes a supernet trained with "
                      f"other settings, not one of another shape: reuse a run of this space, space_args and "
                      f"search.supernets, or train the supernet (without {given.name})")


def _shape_mismatch(have: dict[str, tuple], want: dict[str, tuple], few: int = 3) -> str:
    """The tensors missing, extra and of other sizes in ``have`` against ``want``
    (:func:`~automl.export.inherit.state_differences`), the first ``few`` named each ("" when they match)."""
    def listed(items: list[str], sep: str = ", ") -> str:
        return sep.join(items[:few]) + (f"{sep}..." if len(items) > few else "")

    missing, extra, reshaped = state_differences(have, want)
    sizes = [f"{k} {'x'.join(map(str, there))} there, {'x'.join(map(str, here))} here" for k, there, here in reshaped]
    parts = ([f"{plural(len(missing), 'tensor')} missing ({listed(missing)})"] if missing else []) + \
        ([f"{plural(len(extra), 'tensor')} not in this space ({listed(extra)})"] if extra else []) + \
        ([f"{plural(len(sizes), 'tensor of another size', 'tensors of other sizes')} ({listed(sizes, '; ')})"]
         if sizes else [])
    return ", ".join(parts)


def check_resumed(state: RunState, spaces, members: int, given: Given = FLAG) -> None:
    """:func:`check_fits` for the reused supernet a resumed run holds (an older automl took one of another shape
    when forced, and its θ stage then failed); ``given``: how this command gave the folder."""
    origin = state.supernet_origin or {}
    if state.supernet is not None and origin.get("from"):
        check_fits(Path(origin["from"]), state.supernet, spaces.search, spaces.search_args, members,
                   origin.get("differs") or [], given)


class ReusedWeightsStage:
    """Instead of the weight phase: another run's trained supernet (stage key ``weights``, so the θ stage
    that follows has the index, and so the seeds, of a run that trained it). ``given``: how the folder was given;
    ``forced``: how ``force`` was given, as the warning of a supernet trained with other settings names it
    (:data:`FORCE_FLAG`, the override ``supernet_force=true``, the recipe key at its line)."""

    key = "weights"

    def __init__(self, run_dir: Path, force: bool, members: int = 1, given: Given = FLAG, forced: str = FORCE_FLAG):
        self.run_dir, self.force, self.members = Path(run_dir), force, members
        self.given, self.forced = given, forced

    def run(self, ctx: RunContext, state: RunState, idx: int) -> None:
        # read (and checked) once at start-up by a new run; a resumed run reads it here
        def fits(weights: dict, differs: list[str]) -> None:  # another shape: refused before other settings
            check_fits(self.run_dir, weights, ctx.spaces.search, ctx.spaces.search_args, self.members, differs,
                       self.given)

        reused = ctx.reused or on_data(load_supernet(self.run_dir, state.weights_fingerprint, self.force,
                                                     ctx.spaces.path, self.given, fits), ctx.data.fingerprint,
                                       self.run_dir, self.force, self.given)
        if reused.differs:
            ctx.reporter.info(f"warning: {self.forced}: the supernet of {self.run_dir} was trained with other "
                              f"settings:\n  " + "\n  ".join(reused.differs))
        trained = reused.origin.get("trained_by")  # a chained reuse: the run that trained it
        whose = (f"{trained}, taken through {self.run_dir} (a run that reused it; weight phase skipped)" if trained
                 else f"{self.run_dir} (weight phase skipped)")
        ctx.reporter.info(f"weights: the trained supernet of {whose}")
        # the checkpoint records what trained the weights: a run reusing this one compares against that
        state.supernet, state.supernet_origin = reused.weights, reused.origin
        state.weights_fingerprint = reused.fingerprint
        state.weights_data = reused.data if reused.data is not None else {}  # a run reusing this one compares it
        ctx.keeper.save(idx + 1, 0)
