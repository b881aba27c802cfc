"""``Run``: one run of a recipe into a folder — start-up, the plan's stages over one state, resume, rank."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import stat
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path

import torch
import yaml

from automl._io import (atomic_write_text, pasted_path, remove_temporaries, temporary_pattern, writable_dir,
                        write_fix)
from automl._lock import LOCK_NAME, RunLock
from automl.errors import RecipeError, UserError, say
from automl.pipeline.context import Keeper, RunContext, how_to_go_on, on_main, rng_of, shell_path
from automl.pipeline.plan import Plan, build_plan
from automl.pipeline.final_stages import RankingStage, RetrainStage
from automl.pipeline.rank import rank_finished_run
from automl.pipeline.results import carry_over, device_record, read_results
from automl.pipeline.search_stages import SampleStage, SimultaneousStage, ThetaStage, WeightsStage
from automl.pipeline.reuse import (FLAG, FORCE_FLAG, Given, check_fits, check_resumed, differences, fingerprint_digest,
                                   holds_trained_supernet, load_supernet, on_data, weights_fingerprint)
from automl.pipeline.setup import (RESOLVED, check_budgets, check_export_dir, check_out_and_export, check_ranking,
                                   check_shapes, load_spaces, recipe_costs, recipe_data, recipe_device, resolved)
from automl.pipeline.state import CKPT_FORMAT, RunState, check_same_data, restore_rng
from automl.recipe import ADDED_KEYS, RESULT_NEUTRAL, RESUME_MAY_SET, file_line, load_recipe, overridden
from automl.search import get_searcher, supernet_methods
from automl.train.checkpoint import CheckpointStore
from automl.train.distributed import (DistInfo, RanksLost, as_launched, barrier, broadcast_object, continued_by,
                                      local_world_size, losses_unsaid, restarts_left)
from automl.train.preempt import Preemption
from automl.train.progress import Reporter, plural
from automl.train.threads import (THREADS_FILE, ThreadChoice, a_thread_count, apply_threads, lost_record, note_part,
                                  report_only_choice, resolve_threads, save_choice, spaces_work)

__all__ = ["Run", "held_files", "leftovers", "supernet_given"]

# what a start-up that was killed leaves in --out, or one that failed on a user mistake in a folder that held a
# previous start-up's files (a new run saves its thread choice before the data and the space are checked, its
# resolved recipe before the first stage; in a new or empty folder a failed start-up removes them: _left_as_found):
# a new run takes such a folder over (with what a run killed before its first checkpoint leaves besides: leftovers)
STARTUP_FILES = (LOCK_NAME, "threads.json", RESOLVED)
# what every run writes in --out (its start-up's files, its log, its checkpoints' index): a folder holding none of
# them but the lock file is not a run's (the user's own files, given as --out by mistake), and no message advises
# deleting it (_written_by_a_run)
RUN_FILES = (*STARTUP_FILES, "metrics.jsonl", "checkpoints/checkpoints.json")
# keys inside a section that may differ on --resume: they change how fast a run goes, never what it computes
# (data.workers: every image is read and augmented alike in the main process and in any number of DataLoader
# workers; docs/reliability.md). The fingerprint keeps them, so runs checkpointed before still match; a resume
# is accepted when the recipe matches with these keys at the values the run recorded in its recipe.resolved.yaml
RESUME_MAY_CHANGE = ("data.workers",)
# what a refused --resume does not list: keys that may differ, and paths that count by what they hold
NOT_LISTED = {"data.root", "space", "search.cost_table", *RESUME_MAY_CHANGE}


def held_files(out: Path) -> list[str]:
    """The names in ``out`` other than a failed start-up's files (:data:`STARTUP_FILES`) and empty folders
    (sorted; none when ``out`` is not a folder): what a new run would not take over. ``OSError`` when ``out``
    cannot be listed."""
    def empty_dir(p: Path) -> bool:
        try:
            return p.is_dir() and not any(p.iterdir())
        except OSError:
            return False

    if not out.is_dir():
        return []
    return sorted(p.name for p in out.iterdir() if p.name not in STARTUP_FILES and not empty_dir(p))


def _written_by_a_run(out: Path) -> bool:
    """Whether ``out`` holds one of :data:`RUN_FILES` other than the lock file (an automl run wrote there). A
    ``.lock`` alone is no run's: ``rm -r DIR/*`` leaves it (not a dot file), so may an older automl's refused
    command; with the user's own files beside it, no message advises deleting the folder."""
    return any((out / name).exists() for name in RUN_FILES if name != LOCK_NAME)


# what a run that stopped before its first checkpoint (killed with -9, a power loss, a failed start-up) may leave
# in --out besides STARTUP_FILES: its log of the steps since (computed again by a new run), and the temporaries
# (automl._io's ".NAME.RANDOM.tmp") of the atomic writes a kill cut short: of its start-up's files, of its first
# checkpoint (in checkpoints/)
METRICS = "metrics.jsonl"
_STARTUP_TEMPORARY = temporary_pattern(f"{re.escape(THREADS_FILE)}|{re.escape(RESOLVED)}", earlier=True)
_CHECKPOINT_TEMPORARY = temporary_pattern(r"ckpt-[0-9]+\.pt", earlier=True)


def _regular(p: Path) -> bool:
    """Whether ``p`` is a regular file (not a link: what it links to is not the run's to replace)."""
    try:
        return stat.S_ISREG(p.lstat().st_mode)
    except OSError:
        return False


def _logged_lines(path: Path) -> int | None:
    """How many lines ``path`` holds when it is a run's metrics.jsonl: a regular file whose every line is a JSON
    object with the ``phase`` and ``seconds`` a run logs (the last may be one a kill cut short); None when it is
    not (a file of the user's) or cannot be read."""
    if not _regular(path):
        return None
    n = 0
    try:
        with open(path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):  # the last line, cut short by a kill
                    return n if line.startswith(b'{"phase": ') else None
                entry = json.loads(line)
                if not (isinstance(entry, dict) and "phase" in entry and "seconds" in entry):
                    return None
                n += 1
    except (OSError, ValueError, RecursionError):  # ValueError: not JSON, or not UTF-8
        return None
    return n


def _left_file(p: Path) -> bool:
    """Whether ``p``, at the top of a run folder, is a file a run writes before its first checkpoint."""
    if p.name in STARTUP_FILES or _STARTUP_TEMPORARY.fullmatch(p.name):
        return _regular(p)
    return p.name == METRICS and _logged_lines(p) is not None


def leftovers(out: Path) -> list[Path] | None:
    """The files a run that stopped before its first checkpoint left in ``out`` (:data:`STARTUP_FILES` less the lock
    file, its metrics.jsonl, the temporaries of its start-up's writes and of its first checkpoint's): nothing to
    continue, so a new run replaces them (its lock file stays: it names the last holder). None when ``out`` holds
    anything more (a checkpoint, usable or not; any other file or non-empty folder; a metrics.jsonl that is not a
    run's log) or is not a folder that can be listed. Only looks: whether a run holds the folder is the caller's to
    check (its lock)."""
    if not out.is_dir() or not CheckpointStore(out / "checkpoints").missing():
        return None
    found: list[Path] = []
    try:
        for p in out.iterdir():
            if p.name == LOCK_NAME and _regular(p):
                continue
            if _left_file(p):
                found.append(p)
            elif p.is_dir() and not p.is_symlink():  # empty, or checkpoints/ with its first one cut short
                inside = list(p.iterdir())
                if inside and (p.name != "checkpoints" or not all(
                        _CHECKPOINT_TEMPORARY.fullmatch(q.name) and _regular(q) for q in inside)):
                    return None
                found += inside
            else:
                return None
    except OSError:
        return None
    return sorted(found)


def _fresh_note(out: Path, resume: bool, found: list[Path]) -> str:
    """The one line a run that takes over ``out`` (:func:`leftovers`) says."""
    lines = next((_logged_lines(p) for p in found if p.name == METRICS), 0)
    replaced = f" (its {lines} line{'s' if lines != 1 else ''} of {METRICS} replaced)" if lines else ""
    if resume:
        return (f"--resume: no checkpoint in {out}: the run there stopped before its first one, so nothing to "
                f"continue; starting it afresh{replaced}")
    return (f"--out {out}: the run there stopped before its first checkpoint, so nothing to continue; starting "
            f"afresh in its place{replaced}")


def _recipe_hashes(recipe) -> tuple[str, ...]:
    """The recipe's fingerprint, then those earlier versions recorded for it (``--resume`` accepts them all);
    with a latency table, each hashed with its bytes (one re-measured before a resume is another recipe)."""
    hashes = (recipe.fingerprint(), *recipe.earlier_fingerprints())
    path = recipe.cost_table_path
    try:
        if path is None or not path.is_file():  # missing: the start-up says so, naming the key
            return hashes
        table = path.read_bytes()
    except OSError as e:  # unreadable (permissions, a path too long, an I/O error)
        source = recipe.source and str(recipe.source)
        raise RecipeError(f"cannot read the cost table {path} ({e.strerror or e}); make it readable, or give "
                          f"another file", source, "search.cost_table", file_line(recipe, ("search", "cost_table"))
                          ) from None
    return tuple(hashlib.sha256(h.encode() + table).hexdigest() for h in hashes)


def _recorded(out: Path) -> dict | None:
    """The recipe ``out``'s run recorded at its start (its recipe.resolved.yaml), or None when unreadable."""
    try:
        data = yaml.safe_load((out / RESOLVED).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def _as_recorded(recipe, recorded: dict):
    """``recipe`` with the keys of :data:`RESUME_MAY_CHANGE` at the values ``recorded`` holds for them (of the
    same type); None when it holds none that differ."""
    updates: dict[str, dict] = {}
    for dotted in RESUME_MAY_CHANGE:
        section, key = dotted.split(".")
        part = recorded.get(section)
        value, here = part.get(key) if isinstance(part, dict) else None, getattr(getattr(recipe, section), key)
        if type(value) is type(here) and value != here:
            updates.setdefault(section, {})[key] = value
    if not updates:
        return None
    return recipe.model_copy(update={s: getattr(recipe, s).model_copy(update=u) for s, u in updates.items()})


def _flat(data: dict, prefix: str = "") -> dict:
    """``{"retrain": {"lr": 0.05}}`` as ``{"retrain.lr": 0.05}`` (an empty mapping stays a value)."""
    out = {}
    for k, v in data.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _listed(recipe, recorded: dict) -> list[str]:
    """``key: THERE there, HERE here`` for each key of the fingerprint whose value differs (the --supernet
    check's :func:`~automl.pipeline.reuse.differences`); keys added since, absent there, at their old value;
    ``space_args`` per parameter, one left out at the value the space file gives it (when the run recorded the
    same space file)."""
    skip = RESULT_NEUTRAL | RESUME_MAY_SET
    both = (recorded, yaml.safe_load(recipe.to_yaml()))
    theirs, ours = ({k: v for k, v in _flat(d).items() if k not in NOT_LISTED and k.split(".")[0] not in skip
                     and not k.startswith("space_args")} for d in both)
    for flat, d in zip((theirs, ours), both):
        args = d.get("space_args")
        flat["space_args"] = args if isinstance(args, dict) else {}
    for (section, key), before in ADDED_KEYS.items():
        theirs.setdefault(f"{section}.{key}", before)
    same_space = str(recorded.get("space")) == str(recipe.space_path)
    return differences(theirs, ours, recipe.space_path if same_space else None)


def _recorded_threads(out: Path) -> tuple[int, str] | None:
    """For a resume whose threads.json is lost: the thread count the run's newest checkpoint records (the count
    it started with), else its results.json's (the count its last part computed with), with the record that
    holds it; None when neither does (a checkpoint of an automl that did not record it)."""
    ckpt = CheckpointStore(out / "checkpoints").load()
    n = ckpt.get("threads") if isinstance(ckpt, dict) else None
    if a_thread_count(n):
        return n, f"its checkpoint in {out / 'checkpoints'}"
    record = read_results(out / "results.json").get("threads")
    n = record.get("threads") if isinstance(record, dict) else None
    return (n, str(out / "results.json")) if a_thread_count(n) else None


def _choose_threads(run: "Run", spaces, ranking: bool):
    """Rank 0's thread choice for ``run`` (:func:`~automl.train.threads.resolve_threads`), saved in threads.json
    by a new run (a resume saves it once its checks have passed, where its folder holds none: :func:`_save_threads`).
    A resume (or ``ranking``) without a readable threads.json takes the count its other records hold
    (:func:`_recorded_threads`); ``auto`` without one is warned about (:meth:`Run.say_threads`)."""
    r, out, resume = run.recipe, run.out, run.resume or ranking
    work = None if spaces is None else (lambda: spaces_work(
        spaces.search, spaces.retrain, r.data.batch_size, r.retrain.batch_size, r.retrain.epochs))
    local = local_world_size(run.info)
    choice = resolve_threads(r.threads, out_dir=out, resume=resume, work=work, local_world_size=local,
                             recorded=lambda: _recorded_threads(out))
    if not resume:
        save_choice(out, choice)
    return choice


def _save_threads(run: "Run", choice: ThreadChoice, started: int | None, only_report: bool) -> ThreadChoice:
    """On rank 0, for a resume of ``run``: the thread record its results.json gets, saved in threads.json where its
    folder holds none (one it holds, readable or not, is left as it is), once the resume's checks have passed (a
    refused resume writes nothing: :meth:`Run._resumed_state`). That is this command's choice ``choice``, except for
    a resume that only writes the run's report (``only_report``; ``started``: the count the run started with, its
    checkpoint's, None where it records none): the report computes nothing that depends on the count, so the record
    stays the run's (:func:`~automl.train.threads.report_only_choice`), and this part is no part of threads.json's
    ``history`` (a finished run's resume keeps its results.json's record:
    :func:`~automl.pipeline.results.carry_over`)."""
    if only_report:
        choice = report_only_choice(run.out, started, choice)
    if not (run.out / THREADS_FILE).exists():
        save_choice(run.out, choice)
    return choice


def _note_device(state: RunState, here: str, say) -> None:
    """A resume on another device than the one the run last computed on (``state.device``; not recorded by an older
    automl) is said once, and ``state.device`` becomes "A, then B": the rest computes with other float rounding, so
    neither device's ``automl rank`` reuses the retrainings its ranking recorded."""
    last = None if state.device is None else state.device.rsplit(", then ", 1)[-1]
    if last is None or last == here:
        return
    say(f"warning: the run computed on {state.device}, {here} now: float rounding differs between devices, so the "
        f"rest of it computes other numbers than an uninterrupted run would; to go on as before, resume on {last}")
    state.device = f"{state.device}, then {here}"


def _warn_processes(run: "Run", state: RunState) -> None:
    """A resume of ``run`` with another number of processes than the run's last part computed with (torchrun;
    ``state.world_size``, the count it started with, or the last of ``state.world_sizes``) is said once, and the run
    goes on; its checkpoints keep the count it started with and each part's in order
    (:meth:`~automl.pipeline.state.RunState.note_world_size`)."""
    here, batch, started = run.info.world_size, run.recipe.data.batch_size, state.world_size
    last = (state.world_sizes or [started])[-1]
    if last is None or last == here:
        return
    counted = plural(last, "process", "processes")
    how = "in one process (without torchrun)" if last == 1 else f"with {counted} (torchrun)"
    began = "started" if last == started and not state.world_sizes else "last computed"
    run.reporter.info(f"warning: the run {began} with {counted}, {here} now: data.batch_size is per process, so "
                      f"the rest of it trains on a total batch of {batch * here} (not {batch * last}) with the "
                      f"learning-rate schedule at the same epoch, an epoch resumed inside skips as many batches as "
                      f"were done (with other shards: not the same images), and its results differ from an "
                      f"uninterrupted run's; to continue it as it {began}, resume {how}")


def _check_supernet_folder(source: Path, out: Path, given: Given) -> None:
    """``supernet:`` is not the new run's own ``out`` (the source run's files would make it refuse to start
    there, as a run to ``--resume``); what else is wrong with the folder is
    :func:`~automl.pipeline.reuse.load_supernet`'s to say, on a resume too. ``given``: how the folder was given."""
    try:
        is_dir = source.is_dir()
    except OSError as e:  # not reachable (a folder on the way not searchable, a name too long)
        raise given.error(f"{given.of(source)}: cannot look at it ({e.strerror or e}); give the --out folder of a "
                          f"finished run (one you can read)") from None
    if is_dir and resolved(source, given.name) == resolved(out, "--out"):
        raise given.error(f"{given.of(source)} is the run's own folder (--out {out}): a run that reuses a supernet "
                          f"starts in a folder of its own; choose another --out (to continue the run in {out}: "
                          f"--resume, with the recipe and flags it started with)")


def _reuse_hint(out: Path, ckpt: dict | None) -> str:
    """`` (to search again on its trained supernet: a new --out with --supernet OUT)`` where the run in ``out``
    has a supernet ``--supernet`` takes (its newest checkpoint ``ckpt``: :func:`~automl.pipeline.reuse.
    holds_trained_supernet`); "" where it has none (its weight phase unfinished, a method that trains none)."""
    if not holds_trained_supernet(ckpt):
        return ""
    return f" (to search again on its trained supernet: a new --out with --supernet {pasted_path(out)})"


def _supernet_at_start(out: Path, reused: str) -> str:
    """How the run in ``out`` was given the supernet it reuses (``reused``, as its recipe.resolved.yaml records
    it), and to give it again: by the recipe key where the recipe file that line names (``# resolved from FILE``)
    sets ``supernet``; else on the command line, where ``--supernet DIR`` stands for the override ``supernet=DIR``
    (the records do not tell the two apart); both where that file cannot be read."""
    try:
        head = (out / RESOLVED).read_text(encoding="utf-8").partition("\n")[0]
        source = Path(head.removeprefix("# resolved from ")) if head.startswith("# resolved from ") else None
        data = yaml.safe_load(source.read_text(encoding="utf-8")) if source else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        source = data = None
    again = shell_path(Path(reused))
    if isinstance(data, dict) and data.get("supernet") is not None:
        return f"it was started with supernet: {data['supernet']} in its recipe {source}: set it again"
    if source is not None and isinstance(data, dict):
        return f"it was started with --supernet {again}: pass it again"
    return (f"it was started reusing the supernet of {reused}: give it again (--supernet {again}, or supernet: in "
            f"the recipe)")


def supernet_given(recipe, typed: str | None = None) -> Given:
    """How the recipe's ``supernet`` was given, for its messages. ``typed``: how the command line set it, which
    wins over the file: ``"--supernet"`` (the flag, applied after every override), or ``"override"`` (a
    ``supernet=DIR`` override). Else (None) the recipe key at its line when the value is the recipe file's
    (:func:`~automl.recipe.file_line`), an override when it is not, and the flag for a recipe without a file."""
    file = None if recipe.source is None else str(recipe.source)
    if typed == "--supernet" or recipe.supernet is None:
        return FLAG
    if typed == "override":
        return Given(file, None, True)
    line = file_line(recipe, ("supernet",))
    if line is not None:
        return Given(file, line)
    return FLAG if file is None else Given(file, None, True)


def force_named(recipe, typed: str | None = None) -> str:
    """How the recipe's ``supernet_force`` was given, as the warning of a supernet trained with other settings names
    it. ``typed``: how the command line set it, which wins over the file (as for ``supernet``:
    :func:`supernet_given`): ``"--supernet-force"`` (the flag :data:`~automl.pipeline.reuse.FORCE_FLAG`), or
    ``"override"`` (a ``supernet_force=...`` override), named ``supernet_force=true``. Else (None) ``supernet_force
    (FILE:LINE)`` where the recipe file sets it (:func:`~automl.recipe.file_line`), the override where it does not,
    and the key alone for a recipe without a file."""
    if not recipe.supernet_force or typed == FORCE_FLAG:
        return FORCE_FLAG
    if typed == "override":
        return "supernet_force=true"
    line = file_line(recipe, ("supernet_force",))
    if line is not None:
        return f"supernet_force ({recipe.source}:{line})"
    return "supernet_force" if recipe.source is None else "supernet_force=true"


def _stage_phase(stage, state: RunState) -> tuple[str, int]:
    """How the log names ``stage`` (its epoch lines' phase: ``weights``, ``theta budget=80k``, ``retrain
    unconstrained``, ``ranking 2/20 seed 1``), and its epochs (0: a stage without epochs, named by its key:
    ``random``, ``report``, a reused supernet's ``weights``)."""
    if isinstance(stage, WeightsStage):
        return "weights", stage.search.weight_epochs
    if isinstance(stage, ThetaStage):
        tag = "" if stage.member is None else f" {stage.members.tag(stage.member, state)}"
        return f"theta{tag}", stage.search.theta_epochs
    if isinstance(stage, SimultaneousStage):
        return f"simultaneous {stage.members.tag(stage.member, state)}", stage.search.weight_epochs
    if isinstance(stage, RetrainStage):
        return f"retrain {stage.members.tag(stage.i, state)}", stage.rt.epochs
    if isinstance(stage, RankingStage):
        seed = f" seed {stage.seed + stage.s}" if stage.rk.seeds > 1 else ""
        return f"ranking {stage.j + 1}/{stage.rk.archs}{seed}", stage.rt.epochs
    return stage.key, 0


def resume_position(plan: Plan, state: RunState, stage: int, epoch: int, step: int) -> str:
    """Where a checkpoint of stage ``stage``, ``epoch`` epochs and ``step`` steps into it, resumes, as the log
    says it: ``weights epoch 2/15, after step 3`` (epochs counted from 1, of the stage's), ``theta budget=80k
    epoch 1/45``, ``report``, ``retrain budget=80k epoch 25/25 done, before its evaluation`` (a retraining's last
    epoch is checkpointed before its evaluation and export); the checkpoint itself keeps the stage's index and the
    0-based epoch."""
    name, epochs = _stage_phase(plan.stages[stage], state)
    if epochs <= 0:
        return name
    if epoch >= epochs and not step:  # a retraining's checkpoint after its last epoch: no training is left
        return f"{name} epoch {epochs}/{epochs} done, before its evaluation"
    return f"{name} epoch {min(epoch, epochs - 1) + 1}/{epochs}" + (f", after step {step}" if step else "")


def _said_by_its_file(recipe) -> bool:
    """Whether the recipe's file, read again without overrides, is ``recipe`` (a file since edited, removed or
    unreadable: not)."""
    if not recipe.source or overridden(recipe):
        return False
    try:
        return load_recipe(recipe.source, warn=False) == recipe
    except Exception:  # noqa: BLE001 (which command a message names is never a reason to stop the run)
        return False


def _script_resume_command(recipe, out: Path, info: DistInfo, said: bool | None = None) -> str:
    """The command that continues the run in ``out`` of a script's ``Run(recipe, out)``, its paths absolute (pasted
    from any folder): ``automl run`` of the recipe's file where the file alone says what the recipe says (``said``;
    None: read it now, :func:`_said_by_its_file`), else of the run's own recipe.resolved.yaml (the recipe as the run
    resolved it: overrides, a ``model_copy(update=...)``, no file, or a file edited since; the file alone would be
    refused as another recipe); under torchrun the torchrun command that starts as many processes
    (:func:`as_launched`)."""
    said = _said_by_its_file(recipe) if said is None else said
    source = recipe.source if said else out / "recipe.resolved.yaml"
    again = f"automl run {pasted_path(source)} --out {pasted_path(out)} --resume"
    return as_launched(again) if info.enabled else again


class _ScriptResume:
    """The resume command of a script's ``Run(recipe, out)`` (:func:`_script_resume_command`), chosen each time a
    message names it (its ``str()``), not once when the run started: a recipe file edited while the run goes on
    (for the next run) would be refused by a resume as another recipe, and the run's recipe.resolved.yaml is named
    instead. Cheap: the file's bytes are read each time, and parsed again only when they changed."""

    def __init__(self, recipe, out: Path, info: DistInfo):
        self.recipe, self.out, self.info = recipe, out, info
        self.seen: tuple[bytes, bool] | None = None  # the file's bytes last parsed, and whether they say the recipe

    def _said(self) -> bool:
        if not self.recipe.source or overridden(self.recipe):
            return False
        try:
            text = Path(self.recipe.source).read_bytes()
        except OSError:  # removed or unreadable since
            return False
        if self.seen is None or self.seen[0] != text:
            self.seen = (text, _said_by_its_file(self.recipe))
        return self.seen[1]

    def __str__(self) -> str:
        return _script_resume_command(self.recipe, self.out, self.info, self._said())

    def __bool__(self) -> bool:  # a command, for continued_by's "continue the run with --resume: ..."
        return True


def _lost_rank_says(run: "Run"):
    """Around a script's run (``Run(...)``, whose resume command ``automl run`` did not give): a lost rank's
    :class:`RanksLost` names the command that continues it, as under ``automl run`` (:func:`continued_by`, the
    command chosen as the message is made). With torchrun restarts left, the restarted workers run the script
    again: a script's run with ``resume=True`` resumes by itself; one without is left saying that the workers
    start the command again (not the "new folder" of ``automl run`` without ``--out``)."""
    if isinstance(run.resume_given, str) or (not run.resume and restarts_left()):
        return nullcontext()
    return continued_by(run.resume_given, out_given=run.resume)


def _unkept(preempt: Preemption) -> str:
    """What rank 0 says before :class:`RanksLost`'s message when a rank was lost after the first signal's notice
    ("SIGTERM: finishing the current step, then writing a checkpoint") and before the ranks agreed on it: what the
    notice announced (:attr:`~automl.train.preempt.Preemption.announced`, not what the run finishes now) did not
    happen."""
    name = signal.Signals(preempt.pending).name
    announced = preempt.finishing if preempt.announced is None else preempt.announced
    what = "the report was not finished" if announced == REPORT_FINISHING else "no checkpoint was written"
    why = (" (torchrun sends SIGTERM to the workers left when one of them ends)"
           if preempt.pending == signal.SIGTERM else "")
    return f"{what} on the {name} above{why}"


def _run_stages(run: "Run", plan: Plan, ctx: RunContext, state: RunState, preempt: Preemption) -> None:
    """``plan``'s stages from ``state.stage`` on, SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 caught
    (:meth:`~automl.train.preempt.Preemption.armed`): before the report, the run checkpoints after its current step
    and stops (:class:`~automl.errors.Stopped`). One that comes during the report stage, or while the ranks wait for
    rank 0 to finish it, lets the run finish: the report is its last step and leaves nothing to resume. Then
    ``run.finished`` is set, and ``run.late_signal`` is the signal some rank received (the same on every rank).
    A rank lost after rank 0's notice of a signal and before the ranks agreed on it (under torchrun, the SIGTERM
    torchrun sends the workers left when one ended): rank 0's :class:`RanksLost` says first that what the notice
    announced did not happen (:func:`_unkept`)."""
    last = len(plan.stages) - 1
    try:
        with preempt.armed():
            for idx in range(state.stage, last):
                plan.stages[idx].run(ctx, state, idx)
            preempt.finishing, preempt.stopping_now = REPORT_FINISHING, lambda: _report_cut_short(run)
            _finish(run, plan, ctx, state, preempt)
    except KeyboardInterrupt:
        run.reporter.info(f"\ninterrupted; the last checkpoint is in {run.store.folder}. "
                          f"Continue with: {run.resume_command}")
        raise
    except RanksLost as e:
        if not (run.info.is_main and preempt.pending and not preempt.agreed and not e.printed):
            raise
        raise RanksLost(f"{_unkept(preempt)}: {e}") from None


def _finish(run: "Run", plan: Plan, ctx: RunContext, state: RunState, preempt: Preemption) -> None:
    """The report stage (the last), then every rank waits for rank 0 to finish it and they agree on a signal
    that came meanwhile. A rank lost once rank 0's write of the report returned (``kill -9`` of rank 1 as rank 0
    wrote it, or of rank 0 after it wrote it) leaves the run complete: each rank left says so in one line and the
    run is finished (exit 0), not stopped with :class:`RanksLost`'s "continue the run with --resume" (a resume
    would only write the report again). Rank 0 knows it by ``plan.report.written``; the other ranks once the
    report stage returned (rank 0 tells them only after its write returned), so a loss in the wait after it is
    not printed as it is raised (:func:`~automl.train.distributed.losses_unsaid`). A rank lost before the write
    returned (the report stage's own exchange, on a rank other than 0): :class:`RanksLost`, said as it is raised."""
    last = len(plan.stages) - 1
    try:
        plan.stages[last].run(ctx, state, last)
        run.finished = True  # on every rank, rank 0's write of the report returned
        with losses_unsaid():  # the run is complete: a rank lost now is said below
            barrier(run.info)  # rank 0 writes the report: the other ranks wait for it here, signals still caught
            run.late_signal = preempt.signalled() or preempt.pending
    except RanksLost:
        if not (plan.report.written or run.finished):
            raise
        run.finished, run.late_signal = True, 0  # the line below says what a signal meanwhile would
        say(_lost_after_report(run))


def _lost_after_report(run: "Run") -> str:
    """What a rank says when another rank was lost after rank 0 wrote the report (:func:`_finish`)."""
    two, results = run.info.world_size == 2, f"{run.out / 'results.json'} and {run.out / 'report.md'}"
    if run.info.is_main:
        who = "rank 1, the run's other process," if two else "another rank of the run"
        return (f"warning: {who} ended or stopped answering as rank 0 finished the report, the run's last step: the "
                f"run is complete, with nothing to resume; its results are in {results} (torchrun exits 1 all the "
                f"same, for the process that ended)")
    who = "rank 0, the run's other process, ended or stopped answering after it" if two else \
        "another rank of the run ended or stopped answering after rank 0"
    return (f"warning: rank {run.info.rank} of {run.info.world_size}: {who} wrote the report, the run's last step: "
            f"the run is complete, with nothing to resume; rank 0 wrote its results in {results} (torchrun exits 1 "
            f"all the same, for the process that ended)")


# what the first signal during the report says the run does (Preemption's "SIGTERM: finishing ..."), and a second
REPORT_FINISHING = "the report, the run's last step; the run then ends, complete, with nothing to resume"


def _report_cut_short(run: "Run") -> str:
    return (f"the run's stages are done and its last checkpoint is intact, but its report may be unfinished (each "
            f"file is whole, the new version or the earlier one); {run.resume_command} writes it again")


def _check_out(run: "Run") -> bool:
    """Rank 0's check of ``run.out`` (:meth:`Run._prepare_out`); True when a ``--resume`` starts afresh."""
    out, resume = run.out, run.resume
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; choose a folder for the run's output")
    if not resume:
        check_out_and_export(run.recipe, out)
    # a run writing here now is named first, whatever this command asks (the lock is held till the end)
    run.lock.acquire(create=False)
    held = run._held_files()
    # taken over only with the lock held since the look: no run is starting there meanwhile
    fresh = leftovers(out) if run.lock.fd is not None else None
    if resume and fresh is not None:
        check_out_and_export(run.recipe, out)
    elif resume:
        if not run.store.exists():
            raise _only_a_lock(run, held) or run._cannot_resume(held)
    elif held and fresh is None:
        raise _already_held(run, held)
    new = not resume or fresh is not None
    # a member folder of an absolute export.dir that another run exported: refused before anything is written
    check_export_dir(run.recipe, out, not new, sampled=run.method.mode == "sample")
    writable_dir(out, "--out")
    # a resume's lock stays a look until its checks have passed (Run._resumed_state): refused, it leaves the lock
    # file as it was, or absent; a new run (or a resume that starts afresh) writes in the folder from here
    run.lock.acquire(look=not new)
    if new:  # a failed start-up's thread choice and recipe, a stopped run's log: this run writes its own
        note = _fresh_note(out, resume, fresh) if fresh or resume else None
        for p in fresh if fresh is not None else [out / name for name in STARTUP_FILES[1:]]:
            p.unlink(missing_ok=True)
        if note:
            run.reporter.info(note)
    if run.recipe.export.dir is not None:
        writable_dir(run.recipe.export_root(out), "export.dir")
    return resume and new


def _new_folders(out: Path) -> list[Path] | None:
    """What a new run in ``out`` may leave as it found it (:func:`_left_as_found`): the folders it would create
    (``out`` and those above it that do not exist, deepest first), [] for an empty folder; None when ``out`` holds
    anything (a previous run's files, the user's) or cannot be looked at."""
    try:
        if out.is_dir():
            return None if any(out.iterdir()) else []
        if out.exists() or out.is_symlink():
            return None
        missing = [out]
        while not missing[-1].parent.exists() and missing[-1].parent != missing[-1]:
            missing.append(missing[-1].parent)
    except OSError:
        return None
    return missing


def _new_export_folders(run: "Run", created: list[Path]) -> list[Path]:
    """The folders a new run's start-up would create for its ``export.dir`` (:func:`_check_out`), as real paths,
    deepest first: the export folder and those above it that do not exist now, less ``run.out`` and ``created``
    (:func:`_new_folders`: those are undone with the run's folder). [] without an ``export.dir`` (the default
    ``export/`` is made by the first export, after the start-up)."""
    if run.recipe.export.dir is None:
        return []
    try:
        ours = {os.path.realpath(p) for p in (run.out, *created)}
        folder, missing = os.path.realpath(run.recipe.export_root(run.out)), []
    except ValueError:  # a NUL in the path: none (left to the start-up's own checks)
        return []
    while not os.path.lexists(folder) and os.path.dirname(folder) != folder:
        missing.append(folder)
        folder = os.path.dirname(folder)
    return [Path(p) for p in missing if p not in ours]


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first), each if empty; the first that is not (or is gone) ends it."""
    try:
        for folder in folders:
            folder.rmdir()
    except OSError:
        pass


def _undo_start_up(run: "Run", created: list[Path], exports: list[Path]) -> None:
    """Remove what a new run that failed before its stages began (a refused recipe, data or space, a signal) wrote:
    the folders of ``exports`` it made for its export.dir (:func:`_new_export_folders`), in ``run.out`` or outside,
    each if empty; then its files in ``run.out``, and the folders of ``created`` it made, each if empty. Only while
    this run holds the folder's lock (no other run wrote there since it was empty) and the folder is still the one
    it locked (not removed or moved, another made in its place: :meth:`~automl._lock.RunLock.gone`); the files only
    when the folder holds nothing but :func:`leftovers` of a start-up: its thread choice and recipe, their
    temporaries, empty folders."""
    out = run.out
    if run.lock.fd is None or run.lock.gone() is not None:
        return
    _remove_empty(exports)  # empty, and made by this start-up: a later write makes them again (make_folder)
    found = leftovers(out)
    if found is None or any(p.name == METRICS or p.parent != out for p in found):  # its stages began
        return
    try:
        for p in found:
            p.unlink(missing_ok=True)
        for p in out.iterdir():
            if p.is_dir() and not p.is_symlink():
                p.rmdir()
        (out / LOCK_NAME).unlink(missing_ok=True)  # held by this run till it returns: no other run wrote there
        for folder in created:
            folder.rmdir()
    except OSError:  # not empty after all (a file of someone else's), or gone: left as it is
        pass


@contextmanager
def _left_as_found(run: "Run"):
    """Around a run's start-up (:meth:`Run._execute` up to its stages): a new run in a folder that was empty or did
    not exist, failing there (a refused recipe, data or space, a signal), leaves the folder as it was, and removes
    the export.dir folders it made if they are still empty (:func:`_undo_start_up`): a later run finds nothing of
    it. A folder holding anything is left alone, and so is a failure in the stages (a failed write's message says
    what to do with the folder)."""
    created = _new_folders(run.out) if run.info.is_main else None
    exports = _new_export_folders(run, created) if created is not None else []
    try:
        yield
    except BaseException:
        if created is not None:
            _undo_start_up(run, created, exports)
        raise


def _draw_at_start_up(plan: Plan, resume: bool) -> None:
    """A new run's random baseline (a ``sample`` method's :class:`SampleStage`) draws its members' architectures now,
    in the start-up (:meth:`SampleStage.draw`): a search.random_band (or a budget so close to the smallest network)
    that the draws cannot meet is refused before the stages, its error alone, and a new --out is left as it was
    (:func:`_left_as_found`). The stage uses these draws: nothing is drawn twice. A resume's stage draws as it did:
    its recipe passed this check when the run started."""
    for stage in [] if resume else [s for s in plan.stages if isinstance(s, SampleStage)]:
        stage.draw()


def _only_a_lock(run: "Run", held: list[str]) -> UserError | None:
    """``--resume``'s refusal of ``run.out`` where it holds no checkpoint and, of a run's files, only the lock file
    (``rm -r DIR/*`` left it, or an older automl's refused command), beside ``held``, files of the user's own: no run to
    continue, and no advice to delete the folder (those files are not the run's); else None."""
    out = run.out
    if not held or not run.store.missing() or _written_by_a_run(out) or not (out / LOCK_NAME).exists():
        return None
    shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
    return UserError(f"--resume: no checkpoint in {out} (looked for {run.store.index_path}), and no run there: of a "
                     f"run's files it holds only {out / LOCK_NAME} (a lock file a command left), beside files of "
                     f"your own ({shown}); nothing to continue: check --out, or start a new run without --resume in "
                     f"another --out (a new folder, or an empty one)")


def _already_held(run: "Run", held: list[str]) -> UserError:
    """A new run's refusal of ``run.out``, which holds ``held`` (and more than :func:`leftovers`)."""
    if run.store.exists():
        fix = run._another_runs_fix()
    elif not _written_by_a_run(run.out):
        fix = ("it is not an automl run's folder (nothing there for --resume to continue); choose another "
               "--out (a new folder, or an empty one)")
    else:
        why = ("it holds no checkpoint for --resume to continue" if run.store.missing()
               else f"--resume cannot continue it: {run.store.why_none()}")
        fix = f"{why}; choose another --out, or delete it (rm -r {pasted_path(run.out)}) and start again"
    shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
    return UserError(f"--out {run.out} already holds files ({shown}); {fix}")


def _check_recipe_first(run: "Run") -> None:
    """``--resume`` of ``run`` on rank 0, before the data, the space and the cost table are loaded: a recipe whose
    keys differ from those the run recorded is refused now (:func:`_check_same_recipe`), so that is what a resume
    of another recipe hears first; one of the same keys (what a path names counts by its bytes) is left to
    :meth:`Run._resumed_state`, after the data's and the cost table's own checks, whose messages say more. The
    checkpoint read here is the one :meth:`Run._resumed_state` continues (this run holds the folder's lock)."""
    run._ckpt = ckpt = run.store.load()
    if (isinstance(ckpt, dict) and ckpt.get("format") == CKPT_FORMAT
            and ckpt.get("recipe_sha256") not in run._accepted_hashes):
        _check_same_recipe(run, ckpt, keys_only=True)


def _other_supernet(folder: str | None, state: RunState, given: Given) -> str | None:
    """The note for a resume given (``folder``, as ``given``) another run's supernet than the one the run took
    already: it goes on with the one it holds (of the folder its results.json records as ``supernet.from``);
    None where it holds none yet (its reused weights stage takes ``folder``'s, checked), where the folder is the
    same, or where either is not there (a run moved with the one whose supernet it took resumes with the new path)."""
    taken = (state.supernet_origin or {}).get("from")
    if folder is None or state.supernet is None or not isinstance(taken, str):
        return None
    try:  # a folder moved since (with this run, as the docs advise) is not there to compare: nothing to say
        if not os.path.isdir(taken) or not os.path.isdir(folder) or os.path.samefile(folder, taken):
            return None
    except OSError:
        return None
    return (f"note: {given.of(folder)} is not the run's supernet: the run took that of {taken} at its start and "
            f"goes on with it (a resume keeps it); to search on the supernet of {folder}, start a new run "
            f"(another --out) with {given.of(folder)}")


def _check_same_recipe(run: "Run", ckpt: dict, keys_only: bool = False) -> None:
    """Accept a recipe that differs from the run's only in :data:`RESUME_MAY_CHANGE`; else refuse, listing
    each key that differs with both values (those of the run's recipe.resolved.yaml, and this one's).
    ``ckpt``: the run's newest checkpoint, whose recipe fingerprint this recipe's does not match.
    ``keys_only``: refuse only where keys differ (:func:`_check_recipe_first`)."""
    recorded_hash, recorded = ckpt.get("recipe_sha256"), _recorded(run.out)
    as_recorded = None if recorded is None else _as_recorded(run.recipe, recorded)
    if as_recorded is not None and recorded_hash in _recipe_hashes(as_recorded):
        return
    listed = [] if recorded is None else _listed(run.recipe, recorded)
    if keys_only and not listed:
        return
    if listed:
        what = ":\n  " + "\n  ".join(listed) + "\n"
    elif recorded is not None:  # the same keys: what a path names counts by its bytes
        what = ": its keys are the same, so the space file or the cost table says something else; "
    else:
        what = "; "
    reused = None if recorded is None else recorded.get("supernet")
    if isinstance(reused, str) and run.recipe.supernet is None:  # the supernet left out of the resume
        what += f"({_supernet_at_start(run.out, reused)}) "
    # keys that differ: the run's own recipe.resolved.yaml says its recipe with its overrides, pasted as it is
    same = "with the same recipe and overrides" if not listed else \
        f"with the recipe it was started with ({_script_resume_command(run.recipe, run.out, run.info, said=False)})"
    raise UserError(f"--resume: the recipe differs from the one {run.out} was started with (see {run.out / RESOLVED})"
                    f"{what}resume {same}, or start a new run{_reuse_hint(run.out, ckpt)}")


class Run:
    """One run of a recipe into ``out_dir``. ``execute()`` returns the results dict (results.json).

    ``searcher`` names a registered searcher (:func:`automl.search.register_searcher`) to run instead of
    the recipe's ``search.method``; ``device`` is the recipe's device already resolved (commands/run.py
    resolves it once, for the distributed backend too); ``supernet_typed`` and ``force_typed``: how the command line
    set the recipe's ``supernet`` and ``supernet_force``, which its messages name (:func:`supernet_given`,
    :func:`force_named`)."""

    def __init__(self, recipe, out_dir: str | Path, resume: bool = False, info: DistInfo | None = None,
                 tty: bool | None = None, resume_command: str | None = None, searcher: str | None = None,
                 device: torch.device | None = None, supernet_typed: str | None = None,
                 force_typed: str | None = None):
        self.recipe, self.out, self.resume = recipe, Path(out_dir), resume
        # how the command line set the recipe's supernet and supernet_force, which its messages name
        self.supernet_given = supernet_given(recipe, supernet_typed)
        self.force_given = force_named(recipe, force_typed)
        self.info = info or DistInfo()
        # printed when the run stops early; commands/run.py passes the command line with its overrides
        self.resume_given = resume_command or _ScriptResume(recipe, self.out, self.info)  # resume_command: str()
        self.lock = RunLock(self.out)
        self.device = device if device is not None else recipe_device(recipe, self.info)
        if self.device.type == "cuda":  # every run on a GPU (automl run, automl rank, Run(...) in scripts)
            torch.backends.cudnn.benchmark = recipe.cudnn_benchmark
        self.store = CheckpointStore(self.out / "checkpoints")
        self.reporter = Reporter(self.out / "metrics.jsonl", enabled=self.info.is_main, tty=tty,
                                 then=lambda e: how_to_go_on(self.store.exists(), self.out, self.resume_command,
                                                             write_fix(e)))
        self.method = get_searcher(searcher or recipe.search.method)
        self._reused: tuple | None = None  # --supernet: the source run's supernet, read once (_check_supernet)
        self._spaces = None  # the compiled spaces, when _check_supernet needed them before start_up
        self._ckpt: dict | None = None  # --resume: rank 0's newest checkpoint, read by _check_recipe_first
        # the stages all ran (the report is written), and the signal that came meanwhile (0: none): _run_stages
        self.finished, self.late_signal = False, 0
        hashes = _recipe_hashes(recipe)
        self.recipe_hash, self._accepted_hashes = hashes[0], hashes

    @property
    def resume_command(self) -> str:  # a script's: chosen now (_ScriptResume)
        return str(self.resume_given)

    # ------------------------------------------------------------------ start-up
    def _prepare_out(self) -> bool:
        """Check the output folder before any work: writable, and not silently reusing an old run. A folder
        holding only what a run that stopped before its first checkpoint leaves (:func:`leftovers`: a failed or
        killed start-up's files, the log of its first steps; empty folders), with no run holding its lock, is
        taken over by a new run, and by ``--resume``, which then starts afresh (returns True; the run is a new
        one from then on); each says so in one line. An explicit ``export.dir`` is checked here too: apart from
        a new run's folder (:func:`~automl.pipeline.setup.check_out_and_export`; a run started before resumes
        where it is).

        Rank 0 alone checks: it owns the folder (other ranks could see its first files and take them for
        an old run, and on several machines they may not share the folder at all); a mistake it finds stops
        every rank (:func:`on_main`)."""
        if on_main(self.info, lambda: _check_out(self)):
            self.resume = False
            return True
        return False

    def _another_runs_fix(self) -> str:
        """What to do about ``out`` holding a run's checkpoint, for a new run: --resume it, unless the run's
        recorded recipe differs from this one (--resume would refuse it, listing the same differences)."""
        recorded = _recorded(self.out)
        listed = [] if recorded is None else _listed(self.recipe, recorded)
        if not listed:
            return "pass --resume to continue that run, or choose another --out"
        shown = "; ".join(listed[:3]) + ("; ..." if len(listed) > 3 else "")
        return (f"it is another run's folder, whose recipe differs from this one ({shown}), so --resume would "
                f"refuse it; choose another --out{_reuse_hint(self.out, self.store.load())}, or resume it with the "
                f"recipe it was started with")

    def _held_files(self) -> list[str]:
        """:func:`held_files` of ``out``; a folder that cannot be listed is a user error."""
        try:
            return held_files(self.out)
        except OSError as e:
            raise UserError(f"--out {self.out}: cannot list it ({e.strerror or e}); choose a folder you can read "
                            f"and write") from None

    def _cannot_resume(self, held: list[str]) -> UserError:
        """``--resume`` with no usable checkpoint in ``out``: what is wrong, and how to start again."""
        again = (f"delete it (rm -r {pasted_path(self.out)}) and start again without --resume, or choose "
                 f"another --out")
        if self.store.missing():
            if not self.out.exists():  # a mistyped --out, most likely
                return UserError(f"--resume: no checkpoint in {self.out}: {self.out} does not exist; check --out "
                                 f"(the folder of the run to continue), or start a new run without --resume")
            if not held:  # nothing, or only a failed start-up's files: a new run takes the folder over
                return UserError(f"--resume: no checkpoint in {self.out} (looked for {self.store.index_path}); "
                                 f"start a new run without --resume")
            if not _written_by_a_run(self.out):  # the user's own files: never advise deleting them
                return UserError(f"--resume: {self.out} is not an automl run's folder (no {self.store.index_path}, "
                                 f"no metrics.jsonl), so nothing to continue; check --out, or choose another --out "
                                 f"(a new folder, or an empty one) and start a new run without --resume")
            return UserError(f"--resume: no checkpoint in {self.out} (looked for {self.store.index_path}), so "
                             f"nothing to continue; {again}")
        return UserError(f"--resume: {self.out} cannot be resumed: {self.store.why_none()}; {again}")

    def _setup_threads(self, spaces, ranking: bool = False) -> object:
        """The run's intra-op thread count (``threads``; automl/train/threads.py), chosen by rank 0
        (:func:`_choose_threads`) and set on every rank before any torch compute: the count changes float
        rounding. ``ranking`` (automl rank): the count the run recorded, as ``--resume`` keeps it, and its
        threads.json left as it is. Said by :meth:`say_threads`, once the checks before any stage have passed."""
        threads = on_main(self.info, lambda: _choose_threads(self, spaces, ranking))
        apply_threads(threads.threads)
        return threads

    def say_threads(self, threads, ranking: bool = False) -> None:
        """The line of the thread choice ``threads`` (:meth:`_setup_threads`), said once every check before the
        first stage has passed (a user's mistake is then the only message); before it, for a resume (or
        ``ranking``) that chose ``auto`` anew, the warning that no record holds the count the run started with."""
        if (self.resume or ranking) and threads.source == "auto":
            self.reporter.info(lost_record(self.out, threads))
        self.reporter.info(threads.line())

    def start_up(self, ranking: bool = False, say: bool = True):
        """Compile the spaces once, choose the threads (set before any torch compute), load the data, check the
        recipe against both. Returns (spaces, data, thread choice). ``say``: the thread choice is said once those
        checks have passed (:meth:`say_threads`); False: the caller says it after its own checks (:meth:`_execute`,
        just before the first stage). ``ranking``: for ``automl rank`` (:meth:`_setup_threads`)."""
        r = self.recipe
        try:
            spaces, deferred = self._spaces or load_spaces(r, timed=not ranking), None
        except UserError as e:  # a mistake in the space: reported after the data is checked
            spaces, deferred = None, e
        choice = self._setup_threads(spaces, ranking)
        # before the space's mistakes: a wrong data.root should be named first
        data = recipe_data(r, self.device, self.info)
        if deferred is not None:
            raise deferred
        check_shapes(r, spaces, data)
        check_ranking(r, spaces.search, self.method.needs_supernet)
        if say:
            self.say_threads(choice, ranking)
        return spaces, data, choice

    def context(self, state: RunState, spaces, data, plan: Plan, preempt: Preemption,
                 checkpointing: bool = True) -> RunContext:
        sampler = torch.Generator().manual_seed(self.recipe.seed)
        keeper = Keeper(state, self.store, self.info, self.reporter, preempt, partial(resume_position, plan, state),
                        self.resume_given, rng_of(sampler, self.device), enabled=checkpointing, saved=self.resume)
        return RunContext(self.info, self.device, data, spaces, self.reporter, keeper, sampler,
                          self.recipe.search.log_every, self._reused)

    def _warn_paper_utility(self, n: int) -> None:
        """Once per run: eq. 9 with few samples per member pulls the members together (issue #14)."""
        s = self.recipe.search
        if s.utility != "paper" or self.method.mode != "joint" or n < 2 or s.lam / n >= 8:
            return
        self.reporter.info(
            f"warning: search.utility paper (eq. 9) with lam / N = {s.lam}/{n} < 8 may pull the members "
            f"together (the unconstrained one toward small networks; docs/search-engine.md); set "
            f"search.utility=weighted_quantile, or raise search.lam to about 8 N")

    # ------------------------------------------------------------------ state
    def _new_state(self, spaces, threads: int, data) -> RunState:
        """The state of a run at its start (``threads``: its thread count; ``data``: what it trains on, whose
        fingerprint it records); writes its recipe.resolved.yaml."""
        r = self.recipe
        fp = weights_fingerprint(r, spaces.path, spaces.search_args)
        origin = ({"from": None, "fingerprint": fingerprint_digest(fp), "forced": False, "differs": []}
                  if self.method.needs_supernet else None)
        if self.info.is_main:
            atomic_write_text(self.out / RESOLVED, r.to_yaml())
        return RunState(self.recipe_hash, supernet_origin=origin, weights_fingerprint=fp,
                        world_size=self.info.world_size, threads=threads, device=device_record(self.device),
                        data_fingerprint=data.fingerprint)

    def _resumed_state(self, plan: Plan, data, spaces) -> RunState:
        """The state of the checkpoint ``--resume`` continues, once checked (recipe, data, a reused supernet's
        shape) before anything in ``out`` is changed (results.json and metrics.jsonl cut back, temporaries removed,
        a missing threads.json saved: :func:`_save_threads`) or said (the ``resuming`` line)."""
        ckpt = (self._ckpt or self.store.load()) if self.info.is_main else None
        self._ckpt = None
        ckpt = broadcast_object(ckpt, self.info)
        if ckpt is None:
            raise self._cannot_resume(self._held_files())
        # another automl's format first: its recipe fingerprint may not be this automl's way of taking one
        state = RunState.from_checkpoint(ckpt, str(self.store.loaded or self.store.folder))
        if ckpt.get("recipe_sha256") not in self._accepted_hashes:
            on_main(self.info, lambda: _check_same_recipe(self, ckpt))
        if len(plan.stages) - state.stage > 1 or state.mid_stage:  # a finished run only writes its report again
            on_main(self.info, lambda: check_same_data(state, data, self.recipe, self.out))
        # a folder of an older automl may hold a forced supernet of another shape
        check_resumed(state, spaces, self.recipe.search.supernets, self.supernet_given)
        length = ckpt.get("metrics_bytes")  # the lines logged after the checkpoint are logged again below
        carried = {}

        def carry() -> None:  # on rank 0; its user error (results.json unreadable, a full disk) on every rank
            self.lock.keep()  # the checks passed: the run writes in its folder from here, its lock file names it
            left = plan.stages[state.stage:]
            finished = len(left) == 1 and not state.mid_stage  # only the report: nothing is logged again
            carried["length"] = carry_over(self.out / "results.json", length, finished,
                                           any(isinstance(s, RankingStage) for s in left))
            # of writes a kill cut short; this run holds the lock
            self.store.remove_temporaries()
            exports = self.recipe.export_root(self.out)
            remove_temporaries([self.out] + [exports / plan.members.folder(i, state)
                                                    for i in range(plan.members.n)])
            # before note_part, which adds this part's count to it; only the report left: the run's record stays
            plan.report.threads = _save_threads(self, plan.report.threads, state.threads, finished)

        on_main(self.info, carry)
        if carried:
            plan.report.kept, length = carried["length"]
        if length is not None:
            self.reporter.cut(length)
        self.reporter.info(f"resuming {self.out} at "
                           + resume_position(plan, state, state.stage, state.epoch, state.step))
        if (other := _other_supernet(self.recipe.supernet, state, self.supernet_given)) is not None:
            self.reporter.info(other)
        if len(plan.stages) - state.stage > 1 or state.mid_stage:  # a finished run only writes its report again
            _warn_processes(self, state)
            state.note_world_size(self.info.world_size)  # results.json's world_sizes, where the count changed
            _note_device(state, device_record(self.device), self.reporter.info)
            plan.report.threads = on_main(self.info, lambda: note_part(self.out, state.threads, plan.report.threads))
        return state

    # ------------------------------------------------------------------ main
    def execute(self) -> dict:
        """Run every stage (from the last checkpoint with ``resume``); torch's thread count is restored after."""
        before = torch.get_num_threads()
        try:
            with _lost_rank_says(self):
                return self._execute()
        finally:
            self.lock.release()
            torch.set_num_threads(before)

    def _check_supernet(self) -> None:
        """``supernet:`` (a new run): refuse a method without a weight phase, or a supernet trained with other
        settings, before anything is written; ``ReusedWeightsStage`` takes what was read (``ctx.reused``)."""
        r = self.recipe
        if r.supernet is None or self.resume:
            return
        given = self.supernet_given
        if not self.method.needs_supernet:
            what = given.of(r.supernet) if given.override else given.name  # an override as typed
            raise given.error(f"{what}: search.method {self.method.name} trains no shared supernet to reuse; "
                              f"use {supernet_methods()}, or remove {given.name}")
        _check_supernet_folder(Path(r.supernet), self.out, given)
        args = {k: str(v) for k, v in r.space_args.items()}

        def fits(weights: dict, differs: list[str]) -> None:
            """--supernet-force takes other settings, never a supernet of another shape: checked first."""
            try:
                self._spaces = load_spaces(r)
            except UserError:  # a mistake in the space: start_up reports it, after the data is checked
                return
            check_fits(Path(r.supernet), weights, self._spaces.search, self._spaces.search_args, r.search.supernets,
                       differs, given)

        self._reused = load_supernet(Path(r.supernet), weights_fingerprint(r, r.space_path, args), r.supernet_force,
                                     r.space_path, given, fits)

    def _execute(self) -> dict:
        r = self.recipe
        with _left_as_found(self):  # a start-up that fails in a new folder leaves nothing there
            self._check_supernet()
            if self._prepare_out():  # a --resume that starts afresh: checked as a new run's
                self._check_supernet()
            elif self.resume:  # another recipe is named before its data or cost table is looked for
                on_main(self.info, lambda: _check_recipe_first(self))
            spaces, data, threads = self.start_up(say=False)  # said below, once the checks before the stages passed
            if self._reused is not None:  # a new run's supernet: trained on this data (its split is drawn from it)
                self._reused = on_data(self._reused, data.fingerprint, Path(r.supernet), r.supernet_force,
                                       self.supernet_given)
            costs = recipe_costs(r, spaces.search)
            check_budgets(r, spaces.search, self.reporter.info, costs)
            plan = build_plan(r, self.out, self.method, spaces, costs, self.device, threads, given=self.supernet_given,
                              forced=self.force_given)
            self._warn_paper_utility(plan.members.n)
            _draw_at_start_up(plan, self.resume)  # the random baseline's: a band it cannot meet stops here
            # a --resume continues a checkpoint; a new run (or a --resume that started afresh) has none yet
            preempt = Preemption(self.info, r.checkpoint.every_minutes, r.checkpoint.every_steps,
                                  checkpointed=self.resume, resume=lambda: self.resume_command)
            if self.resume:
                state = self._resumed_state(plan, data, spaces)
            else:
                state = self._new_state(spaces, threads.threads, data)
            ctx = self.context(state, spaces, data, plan, preempt)
            if self.resume and not state.mid_stage:  # at a stage boundary; mid-stage, the stage restores it
                restore_rng(state.rng, ctx.sampler, self.device)
            self.say_threads(threads)  # a refused budget, supernet, recipe or folder above: its error alone
        _run_stages(self, plan, ctx, state, preempt)
        return plan.report.results

    # ------------------------------------------------------------------ automl rank
    def rank(self) -> dict:
        """``automl rank``: the ranking section on the finished run in ``out`` (its last checkpoint's supernet);
        results.json and report.md are updated, the checkpoints are left as they are. Holds the run folder's
        lock (a run still writing there is named, and nothing is done), only to look until its checks have passed:
        refused, it leaves the lock file as it found it."""
        if self.info.is_main:
            self.lock.acquire(then=f"then run automl rank {pasted_path(self.out)} again", look=True)
        try:
            return rank_finished_run(self)
        finally:
            self.lock.release()
