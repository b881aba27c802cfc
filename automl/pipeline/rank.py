"""``automl rank``: the ranking stages on a finished run's last checkpoint (:func:`rank_finished_run`).

No checkpoint is written; results.json keeps every finished retraining (``ranking_partial``) so that a
stopped or failed ``automl rank`` reruns only the others, and gets the ranking section at the end; one stopped
after another stopped ``automl rank`` keeps that one's retrainings it reuses in its record (more seeds of the same
architectures and epochs: :func:`_with_earlier`), the others are dropped with that record (said before its first
retraining: :func:`_say_partial_replaced`). A retraining
is reused only with what determines it the same: its architecture (with the whole list of the ranking's),
epochs and seed, and the device and number of processes it computed on
(:func:`~automl.pipeline.results.computed_on`, each retraining's own in the checkpoint); a run killed in its own
ranking stage has its finished retrainings (its checkpoint's) reused alike, and a run resumed after a stopped
``automl rank`` reuses that one's (:class:`~automl.pipeline.final_stages.RecordedRankings`)."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from automl._io import atomic_write_json, pasted_path
from automl.dsl import space_digest
from automl.errors import Stopped, UserError
from automl.pipeline.context import on_main, written_on_main
from automl.pipeline.final_stages import RankingStage
from automl.pipeline.plan import build_plan
from automl.pipeline.reuse import SPACE_DIGEST, check_fits, run_command
from automl.pipeline.results import (COMPUTED_ON, PARTIAL, ReportStage, build_results, computed_on, metrics_length,
                                     partial_ranking, ranking_epochs, ranking_results, ranking_seeds, read_results,
                                     recorded_retrainings, reusable_retrainings)
from automl.pipeline.setup import recipe_costs
from automl.pipeline.state import RunState, check_same_data
from automl.report import ranking_problem, results_problem, write_report
from automl.search import supernet_methods
from automl.train.preempt import Preemption
from automl.train.progress import Reporter

if TYPE_CHECKING:
    from automl.pipeline.run import Run

__all__ = ["rank_finished_run", "check_results", "check_trains_a_supernet", "rank_command"]


def _run_recipe(out: Path) -> dict | None:
    """The run's recipe.resolved.yaml as a dict (None when it cannot be read as one)."""
    try:
        recorded = yaml.safe_load((out / "recipe.resolved.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def _run_device(out: Path) -> str | None:
    """The device of the run's recipe.resolved.yaml (None when it cannot be read)."""
    recorded = _run_recipe(out)
    return None if recorded is None else recorded.get("device") or "auto"


def rank_command(recipe, out: Path) -> str:
    """The ``automl rank`` command that goes on with the same settings (retrainings recorded are reused), naming the
    run's folder by its absolute path (:func:`~automl._io.pasted_path`); with ``--device`` when this one computes on
    another device than the run's (``automl rank --device``)."""
    return _rank_command(recipe, out, "" if recipe.device == _run_device(out) else recipe.device)


def _rank_command(recipe, out: Path, device: str) -> str:
    """:func:`rank_command` with ``--device device`` (none for "")."""
    rk = recipe.ranking
    return (f"automl rank {pasted_path(out)} --archs {rk.archs} "
            f"--retrain-epochs {ranking_epochs(recipe)} --seeds {rk.seeds} --truth {rk.truth}"
            + (f" --device {device}" if device else ""))


def stop_ranking_if_signalled(preempt: Preemption, reporter: Reporter, recipe, out: Path, done: str) -> None:
    """``automl rank`` after a retraining: stop (:class:`Stopped`) if a stop signal
    (:data:`~automl.train.preempt.SIGNALS`) came meanwhile, saying what results.json keeps (``done``: "k of K"
    retrainings recorded, which a rerun does not run again: :func:`_kept`) and the command that goes on."""
    signum = preempt.signalled()
    if not signum:
        return
    reporter.info(f"stopped by {signal.Signals(signum).name}; {done} retrainings are recorded in "
                  f"{out / 'results.json'} and are not run again. Continue with: {rank_command(recipe, out)}")
    raise Stopped(signum)


def check_trains_a_supernet(out: Path, method) -> None:
    """A run of ``method`` (a :class:`~automl.search.SearchMethod`) in ``out`` has a supernet to rank with: else the
    user error that says which methods train one (random draws its networks, and trains none)."""
    if not method.needs_supernet:
        raise UserError(f"{out}: search.method {method.name} trains no shared supernet to rank "
                        f"with; automl rank needs a run of search.method {supernet_methods()}")


def _checked_checkpoint(run: Run) -> dict:
    """The run's last checkpoint, which must hold a trained supernet; else the user error that says why: a run
    that stopped before its first checkpoint (none, and no results of a finished run) is one to finish first."""
    out, method = run.out, run.method
    ckpt = run.store.load()
    if ckpt is None and run.store.missing() and not any((out / f).exists() for f in ("results.json", "report.md")):
        raise UserError(f"{out}: no usable checkpoint: the run stopped before its first one ({run.store.why_none()}), "
                        f"so it has not finished; automl rank ranks a finished run: finish it first "
                        f"({run_command(out, resume=True)}: it starts afresh in its place)")
    if ckpt is None:
        raise UserError(f"{out}: no usable checkpoint: {run.store.why_none()}; automl rank scores the "
                        f"supernet of the run's last checkpoint: restore the folder (from a copy), or run the "
                        f"search again (automl run {pasted_path(out / 'recipe.resolved.yaml')} --out NEW_DIR)")
    if ckpt.get("supernet") is None:
        check_trains_a_supernet(out, method)
        raise UserError(f"{out}: the run has no trained supernet yet: its weight phase has not finished; "
                        f"finish it first ({run_command(out, resume=True)})")
    return ckpt


def _check_finished(run: Run, state: RunState, plan) -> None:
    """The run must have exported its family (the stages before the ranking's and the report's are done);
    its own ranking may be unfinished: automl rank measures it anew. A run whose results.json or report.md is
    there had finished: when its last checkpoint is of before that, its newest one was damaged (load fell back
    to the previous one), and the message says so and how to redo the stages since."""
    first = next(i for i, s in enumerate(plan.stages) if isinstance(s, (RankingStage, ReportStage)))
    if state.stage >= first:
        return
    out, key = run.out, plan.stages[state.stage].key
    written = [f for f in ("results.json", "report.md") if (out / f).exists()]
    if run.store.problems and written:
        are = "are" if len(written) > 1 else "is"
        raise UserError(f"{out}: the run had finished (its {' and '.join(written)} {are} there), but its newest "
                        f"checkpoint is damaged: {'; '.join(run.store.problems)}; the one before it, "
                        f"{run.store.loaded}, is of before its stage {key}, and automl rank scores the run's last "
                        f"checkpoint: redo the stages from {key} on (automl run "
                        f"{pasted_path(out / 'recipe.resolved.yaml')} --out {pasted_path(out)} --resume: it writes a "
                        f"new checkpoint, results.json and report.md), then automl rank {pasted_path(out)} again; or "
                        f"restore the folder from a copy")
    raise UserError(f"{out}: the run has not finished (next: its stage {key}); automl rank ranks a finished run: "
                    f"finish it first ({run_command(out, resume=True)})")


def _check_fits_the_space(run: Run, state: RunState, spaces) -> None:
    """The checkpoint's supernet must be one the run's space file builds now (with the run's space_args): a file
    edited since the run (another width, another choice) is named, not a traceback from loading the weights;
    so is one whose weights still fit but that says something else (another stride, op or cost), by the
    digest the run recorded of what its file said (not its comments: :func:`automl.dsl.space_digest`)."""
    r = run.recipe
    changed = (f"{run.out}: the space file {r.space_path} changed since the run: {{}}; automl rank ranks the run's "
               f"own space: restore the file as it was when the run trained, or rank a run of the file as it is")
    try:
        check_fits(run.out, state.supernet, spaces.search, spaces.search_args, r.search.supernets)
    except UserError:
        raise UserError(changed.format("the run's supernet has another shape than the one it builds now")) from None
    recorded = (state.weights_fingerprint or {}).get(SPACE_DIGEST)
    if recorded is None or (state.supernet_origin or {}).get("forced"):  # forced: trained on another file
        return
    data = spaces.path.read_bytes()
    if recorded not in (space_digest(data), hashlib.sha256(data).hexdigest()):  # the second: older runs' record
        raise UserError(changed.format("it says something else than when the run trained its supernet"))


def _runs_own(run: Run, state: RunState, choices: list[list[str]], keep) -> dict | None:
    """The ranking the run itself measured (its checkpoint's ``ranking/j`` entries: finished, or stopped
    part-way), as a record :func:`recorded_retrainings` reads (the run's own epochs), holding the retrainings
    ``keep`` takes (called with the entry and the seed); None unless this command ranks the same architectures as
    the run did."""
    own = (_run_recipe(run.out) or {}).get("ranking")
    if not isinstance(own, dict) or own.get("archs") != len(choices):
        return None
    entries = [state.results.get(f"ranking/{j}") for j in range(len(choices))]
    if any(e is not None and e.get("choices") != c for e, c in zip(entries, choices)):
        return None
    archs = []
    for e, c in zip(entries, choices):
        kept = [t for t in (e or {}).get("retrainings", []) if keep(e, t["seed"])]
        archs.append({"choices": c, "params": e["params"], "retrainings": kept} if kept else {"choices": c})
    epochs = own.get("retrain_epochs")
    return {"retrain_epochs": run.recipe.retrain.epochs if epochs is None else epochs, "archs": archs}


def _same_run_computation(run: Run, state: RunState, here: dict) -> bool:
    """Whether the run as its checkpoint records it computed as ``here``, for a retraining with no record of its
    own (an older automl's: :func:`_computed_as_here`): on the same device (an older automl's records none: then the
    device setting of the run's recipe; a run resumed on another device records both, and matches neither), with
    the one number of processes it records (a run resumed with another count records each part's: which computed
    the retraining is not known)."""
    same_device = (run.recipe.device == _run_device(run.out) if state.device is None
                   else state.device == here["device"])
    return same_device and (state.world_size is None
                            or not state.world_sizes and state.world_size == here["world_size"])


def _computed_as_here(run: Run, state: RunState, entry: dict | None, seed: int, here: dict) -> bool:
    """Whether the run's own retraining ``seed`` (of the checkpoint's ranking ``entry``) was computed as ``here``
    (:func:`~automl.pipeline.results.computed_on`): by its own record (:data:`COMPUTED_ON`), which a run resumed on
    another device or with another number of processes keeps for each retraining (those before the resume and
    after it are each as they were computed); the run's record (:func:`_same_run_computation`) only for one with
    none (an older automl's)."""
    own = ((entry or {}).get(COMPUTED_ON) or {}).get(seed)
    if own is not None:  # a record of its own, whole or not (one that is no record at all: not as here)
        return isinstance(own, dict) and _own_how(state, entry, seed) == here
    return _same_run_computation(run, state, here)


def _stopped_runs_own(run: Run, state: RunState, choices: list[list[str]], here: dict) -> dict | None:
    """The run's own ranking (:func:`_runs_own`) holding the retrainings computed as this command computes
    (``here``: :func:`_computed_as_here`, each by its own record)."""
    return _runs_own(run, state, choices, lambda e, seed: _computed_as_here(run, state, e, seed, here))


def _recorded(run: Run, state: RunState, before: dict, choices: list[list[str]],
              here: dict) -> tuple[dict, set[tuple[int, int]]]:
    """The retrainings recorded earlier that this command would repeat (:func:`recorded_retrainings`): the run's
    own ranking (its checkpoint's), and in results.json an ``automl rank`` stopped part-way (:data:`PARTIAL`) and
    the last finished one, each only when computed as this command computes (``here``); and the keys of the run's
    own (in its checkpoint, which automl rank leaves as it is: a rerun finds them again)."""
    r = run.recipe
    own = recorded_retrainings(r, _stopped_runs_own(run, state, choices, here), choices)
    return {**own, **reusable_retrainings(before, ranking_epochs(r), choices, here)}, set(own)


def _kept(recipe, stages: list, own: set[tuple[int, int]], results: dict, choices: list[list[str]],
          here: dict) -> str:
    """``"k of K"``: how many of the ranking's K retrainings (``stages``) a rerun of the same ``automl rank`` finds
    recorded and does not run again (the count its own message gives): those of results.json as last written
    (``results``: :func:`reusable_retrainings`), and the run's own (``own``, its checkpoint's). Not the stages
    passed so far: a retraining an earlier ranking recorded, further on, is kept too."""
    keys = own | set(reusable_retrainings(results, ranking_epochs(recipe), choices, here))
    return f"{sum((s.j, recipe.seed + s.s) in keys for _, s in stages)} of {len(stages)}"


def _earlier_partial(before: dict, recipe, stages: list, choices: list[list[str]],
                     here: dict) -> dict[tuple[int, int], dict]:
    """The retrainings the :data:`PARTIAL` record of an earlier ``automl rank`` stopped part-way (in ``before``,
    results.json as read) holds that this ranking (``stages``) reuses: the same architectures and epochs, computed
    as ``here``, a seed it asks for (:func:`reusable_retrainings`). Its record is replaced by this ranking's
    (:func:`_with_earlier` keeps them in it: a rerun finds them again); the others (other seeds, architectures,
    epochs, device) are not this ranking's, and are dropped with it."""
    wanted = {(s.j, recipe.seed + s.s) for _, s in stages}
    found = reusable_retrainings({PARTIAL: before.get(PARTIAL)}, ranking_epochs(recipe), choices, here)
    return {key: found[key] for key in sorted(found) if key in wanted}


def _with_earlier(partial: dict, earlier: dict[tuple[int, int], dict]) -> dict:
    """``partial`` (:func:`partial_ranking`: this ranking's retrainings so far) with those of ``earlier``
    (:func:`_earlier_partial`) it does not hold yet: an architecture this ranking has not reached keeps the
    retrainings the earlier stopped one recorded, and one it has reached those of its seeds not run yet."""
    archs = []
    for j, arch in enumerate(partial["archs"]):
        have = {t["seed"] for t in arch.get("retrainings", [])}
        more = [(seed, e) for (i, seed), e in earlier.items() if i == j and seed not in have]
        if more:
            arch = {"choices": arch["choices"], "params": arch.get("params", more[0][1]["params"]),
                    "retrainings": [*arch.get("retrainings", []),
                                    *({"seed": seed, "test_loss": e["test_loss"], "test_accuracy": e["test_accuracy"]}
                                      for seed, e in more)]}
        archs.append(arch)
    return {**partial, "archs": archs}


def _cut_length(path: Path, state: RunState) -> int | None:
    """The length metrics.jsonl is cut back to before ``automl rank`` logs (rank 0; None: not cut): the lines
    after it are of a retraining a kill cut short. That of the :data:`PARTIAL` record of an ``automl rank``
    stopped part-way (results.json's ``path``); the length at the run's last checkpoint when nothing logged since
    it: no results.json (the run stopped in its ranking, and no ``automl rank`` recorded a retraining since), or
    a :data:`PARTIAL` record whose length a resumed run dropped (it cut the log back to its checkpoint's, and
    logged on from there: :func:`~automl.pipeline.results.carry_over`)."""
    partial = read_results(path).get(PARTIAL)
    if isinstance(partial, dict) and "metrics_bytes" in partial:
        return metrics_length(partial)  # None when it is not a length (edited or damaged): not cut
    return state.metrics_bytes if isinstance(partial, dict) or not path.exists() else None


def check_results(path: Path, results: dict) -> None:
    """``results`` (read from ``path``, a run's results.json) must be one a ranking can be added to and report.md
    written from: else the user error that names its first key missing or not of the type automl writes (edited
    or damaged). An empty one (none, or not JSON) is written anew from the run's last checkpoint."""
    problem = results_problem(results) if results else None
    if problem:
        raise UserError(f"{path}: {problem} (the file is not as the run wrote it: edited or damaged); automl rank "
                        f"adds its ranking to it and writes report.md from it: correct that key or restore the file "
                        f"from a copy, or move it away (automl rank then writes a new one from the run's last "
                        f"checkpoint)")


def _settings(archs: int, epochs: int | None, seeds: int, truth: str) -> str:
    """A ranking's settings in words: ``3 architectures, 2 retrainings of 25 epochs each, truth loss``."""
    each = "" if epochs is None else (", not retrained" if epochs == 0 else
                                      f", {seeds} retraining{'s' * (seeds != 1)} of {epochs} epoch"
                                      f"{'s' * (epochs != 1)} each")
    return f"{archs} architectures{each}, truth {truth}"


def _say_replaced(results: dict, recipe, path: Path, otherwise: str = "", copy_said: bool = False) -> None:
    """Once every check that can refuse the ranking has passed, before its first retraining (a Ctrl-C then keeps
    ``path`` as it is): that this ranking replaces the ranking section ``results`` (``path``) holds, when that one
    was measured with other settings (its own τ is then gone from the file; the retrainings of the same
    architectures, epochs and seeds are reused, the others dropped), so that a user who wants both keeps a copy;
    that a ``path`` that holds no results (``{}``, no JSON object, or one too deep) is written anew; and
    ``otherwise``: the retrainings recorded with the same settings but computed otherwise
    (:func:`_not_reused`), which with ``copy_said`` gives the advice to copy ``path`` (said once: not with the
    ranking of other settings too)."""
    if not results and path.exists():
        print(f"{path} holds no results automl can read (empty, cut short, edited, not UTF-8, or nested too deeply): "
              f"automl rank writes it anew from the run's last checkpoint", flush=True)
    old = results.get("ranking")
    if isinstance(old, dict) and ranking_problem(old) is None:
        _say_other_settings(old, recipe, path, reused=not otherwise, advise=not copy_said)
    if otherwise:
        print(otherwise, flush=True)


def _say_other_settings(old: dict, recipe, path: Path, reused: bool, advise: bool = True) -> None:
    """:func:`_say_replaced`'s notice on a ranking section ``old`` of other settings; ``reused``: the retrainings
    both share are reused (else :func:`_not_reused` says why not); ``advise``: with the advice to copy the file
    (else :func:`_not_reused`'s notice, which follows, gives it)."""
    rk = recipe.ranking
    then = (len(old["archs"]), old.get("retrain_epochs"), old.get("seeds", 1), old.get("truth", "accuracy"))
    now = (rk.archs, ranking_epochs(recipe), ranking_seeds(recipe), rk.truth)
    if then == now:
        return
    tau = "undefined" if old["kendall_tau"] is None else f"{old['kendall_tau']:.4f}"
    shared = "; the retrainings both share are not run again" if reused and now[1] and then[1] == now[1] else ""
    copy = "; to keep that one, stop now (Ctrl-C) and copy the file" if advise else ""
    print(f"this ranking ({_settings(*now)}) replaces the one in {path} ({_settings(*then)}: kendall_tau {tau})"
          f"{copy}{shared}", flush=True)


def _own_how(state: RunState, entry: dict, seed: int) -> dict:
    """How the run computed its own retraining ``seed`` (of the checkpoint's ranking ``entry``) as far as it is
    recorded: its own record (:data:`COMPUTED_ON`, the one :func:`_computed_as_here` compares, as it is: a key it
    lacks is not recorded), the run's where it has none (an older automl's; None: not recorded either, as with a
    run resumed with another number of processes)."""
    own = ((entry or {}).get(COMPUTED_ON) or {}).get(seed)
    if isinstance(own, dict):
        return {"device": own.get("device"), "world_size": own.get("world_size")}
    return {"device": state.device, "world_size": None if state.world_sizes else state.world_size}


def _not_reused(run: Run, state: RunState, before: dict, stages: list, choices: list[list[str]], here: dict,
                recorded: dict) -> tuple[str, bool]:
    """The notice (else "") on the retrainings this ranking (``stages`` of ``choices``) repeats that an earlier
    ranking recorded with the same architecture, epochs and seed, but computed otherwise than ``here``: another
    number of processes (a run under torchrun: automl rank computes in one), or another device. Those of the
    ranking section of results.json (``before``) and of the run's own ranking (its checkpoint's); ``recorded``:
    those it reuses (:func:`_recorded`). A :data:`PARTIAL` record's are :func:`_say_partial_replaced`'s. And
    whether the notice advises to copy results.json (its ranking section is replaced: :func:`_say_replaced`)."""
    r = run.recipe
    section = before.get("ranking") if isinstance(before.get("ranking"), dict) else None
    in_file = set(recorded_retrainings(r, section, choices))
    device, count = (section or {}).get("device"), (section or {}).get("world_size")  # as written; edited: None
    hows = {key: {"device": device if isinstance(device, str) else None,
                  "world_size": count if type(count) is int else None} for key in in_file}
    own = recorded_retrainings(r, _runs_own(run, state, choices, lambda e, seed: True), choices)
    hows.update({(j, seed): _own_how(state, state.results.get(f"ranking/{j}"), seed) for j, seed in own})
    wanted = [(s.j, r.seed + s.s) for _, s in stages]
    lost = {key: hows[key] for key in wanted if key in hows and key not in recorded and hows[key] != here}
    if not lost:
        return "", False
    mine = set(lost) & set(own)
    whose = ("the run's own ranking" if mine == set(lost) else "an earlier automl rank" if not mine else
             "the run's own ranking and an earlier automl rank")
    then, now, advice = _computed_then(r, list(lost.values()), here, run.out)
    computes, path = sum(key not in recorded for key in wanted), run.out / "results.json"
    replaced = bool(set(lost) & in_file)  # the write replaces the section, whole or not
    where = (f", and replaces the ranking in {path}" if replaced else
             " (the run's checkpoint keeps its own: automl rank leaves it as it is)")
    keep = (f"; to keep that ranking, stop now (Ctrl-C) and copy {path} first" if replaced else
            "; to use them instead, finish the run's own ranking (its automl run command with --resume, with as many "
            "processes as it ran with)" if section is None else "")  # a run stopped in its ranking: none in the file
    them = f"the {len(lost)} retrainings" if len(lost) > 1 else "the retraining"
    return (f"this ranking does not reuse {them} of the same architectures, epochs and seeds that {whose} "
            f"recorded: {then}; automl rank computes {now}, which gives other results; so it runs "
            f"{f'all {computes}' if computes == len(wanted) else f'{computes} of its {len(wanted)}'} retraining"
            f"{'s' * (computes != 1)}{where}{keep}{advice}"), replaced


def _computed_then(recipe, hows: list[dict], here: dict, out: Path) -> tuple[str, str, str]:
    """How the retrainings recorded as ``hows`` were computed, where not as ``here``: ``they were computed with
    2 processes under torchrun (data-parallel: data.batch_size 32 per process, a total batch of 64)``; how this
    command computes (``in one process (a total batch of 32) on cpu``); and the advice beside a copy: where only
    the device differs, the ``--device`` that computes on theirs (or the GPU they need)."""
    key = "retrain.batch_size" if recipe.retrain.batch_size else "data.batch_size"
    batch = recipe.retrain.batch_size or recipe.data.batch_size
    counts = sorted({h.get("world_size") for h in hows} - {here["world_size"]}, key=str)
    devices = sorted({h.get("device") for h in hows} - {here["device"]}, key=str)
    parts = [f"with {n} processes under torchrun (data-parallel: {key} {batch} per process, a total batch of "
             f"{n * batch})" if isinstance(n, int) and n > 1 else "with a number of processes not recorded"
             for n in counts]
    parts += [(f"on {d}" + (" (a run resumed on another device, and these retrainings record no device of their "
                            "own: which one computed each is not known, so automl rank reuses none of them)"
                            if ", then " in d else "")) if d else "on a device not recorded" for d in devices]
    n = here["world_size"]
    now = (f"{'in one process' if n == 1 else f'with {n} processes'} (a total batch of {n * batch}"
           f"{'; it refuses torchrun' if counts and n == 1 else ''}) on {here['device']}")
    advice = ""
    if not counts and len(devices) == 1 and devices[0] and ", then " not in devices[0]:
        flag, mine = devices[0].split(" ")[0], here["device"].split(" ")[0]
        if flag in ("cpu", "cuda") and flag != mine:
            advice = f"; or, to reuse them, rank where that device is: {_rank_command(recipe, out, flag)}"
        elif flag == mine == "cuda":
            advice = f"; or, to reuse them, run automl rank on a machine with that GPU ({devices[0]})"
    return "they were computed " + ", ".join(parts), now, advice


def _partial_differs(partial: dict, recipe, choices: list[list[str]], here: dict, lost: set[tuple[int, int]]) -> str:
    """The settings of the :data:`PARTIAL` record ``partial`` (an earlier ``automl rank`` stopped part-way) that are not
    this ranking's (``choices`` computed as ``here``), in words: ``retrain_epochs 2, 5 architectures``; with all
    of them the same, the seeds of its retrainings ``lost`` (not kept: :func:`_say_partial_replaced`)."""
    epochs = partial["retrain_epochs"]
    differ = [] if epochs == ranking_epochs(recipe) else [f"retrain_epochs {epochs}"]
    theirs = [a.get("choices") for a in partial["archs"]]
    if theirs != choices:
        differ.append(f"{len(theirs)} architectures" if len(theirs) != len(choices) else "other architectures")
    if partial.get("device") != here["device"]:
        differ.append(f"device {partial.get('device') or 'not recorded (an older automl)'}")
    if partial.get("world_size") != here["world_size"]:
        n = partial.get("world_size")
        differ.append("number of processes not recorded" if n is None else f"{n} process{'es' * (n != 1)}")
    seeds = sorted({seed for _, seed in lost})
    return ", ".join(differ) or (f"seed{'s' * (len(seeds) != 1)} {', '.join(map(str, seeds))}, which this one does "
                                 f"not ask for")


def _partial_flags(recipe) -> dict:
    """What a :data:`PARTIAL` record keeps of the ``automl rank`` flags beside its epochs and architectures, for the
    command that finishes it (:func:`_partial_command`): ``seeds`` (retrainings per architecture, as the ranking
    section's) and ``truth``."""
    return {"seeds": ranking_seeds(recipe), "truth": recipe.ranking.truth}


def _partial_command(partial: dict, out: Path, here: dict) -> str:
    """The command of the ``automl rank`` stopped part-way whose :data:`PARTIAL` record is ``partial`` (in the run
    folder ``out``, named absolute: :func:`~automl._io.pasted_path`), for a ranking computing as ``here``: with
    ``--device`` where it computed on another. A record with no ``seeds`` and ``truth`` (an older automl's, or
    edited) gives what it holds, and says its stop message gives the rest."""
    device = str(partial.get("device")).split(" ")[0]  # cpu, or cuda (GPU NAME)
    flag = f" --device {device}" if device in ("cpu", "cuda") and partial.get("device") != here["device"] else ""
    seeds, truth = partial.get("seeds"), partial.get("truth")
    head = (f"automl rank {pasted_path(out)} --archs {len(partial['archs'])} "
            f"--retrain-epochs {partial['retrain_epochs']}")
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1 and truth in ("loss", "accuracy"):
        return f"{head} --seeds {seeds} --truth {truth}{flag}"
    return f"{head}{flag} with the --seeds it had: its stop message gives the whole command"


def _say_partial_replaced(results: dict, recipe, path: Path, choices: list[list[str]], here: dict,
                          earlier: dict[tuple[int, int], dict]) -> None:
    """Before the ranking's first retraining (its first write to ``path``, before the first one it computes, or at
    its end, replaces the :data:`PARTIAL` record ``results`` holds): how many retrainings of an earlier ``automl
    rank`` stopped part-way this ranking (``choices`` computed as ``here``) drops, those it does not keep
    (``earlier``: :func:`_earlier_partial`), with the settings of that ranking that differ, and how to keep them
    another time (finish that ranking first: its command run again). Nothing for a record not as automl writes
    it (nothing is reused from it), nor for retrainings of 0 epochs (the supernet's weights, evaluated again
    cheaply)."""
    partial = results.get(PARTIAL)
    archs = partial.get("archs") if isinstance(partial, dict) else None
    if not isinstance(archs, list) or not all(isinstance(a, dict) for a in archs):
        return
    epochs = partial.get("retrain_epochs")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs <= 0:
        return
    held = reusable_retrainings({PARTIAL: partial}, epochs, [a.get("choices") for a in archs],
                                {k: partial[k] for k in here if k in partial})  # all it holds, as it computed
    lost = set(held) - set(earlier)
    if not lost:
        return
    rk = recipe.ranking
    now = (rk.archs, ranking_epochs(recipe), ranking_seeds(recipe), rk.truth)
    print(f"this ranking ({_settings(*now)}) replaces the {len(lost)} retraining{'s' * (len(lost) != 1)} a stopped "
          f"automl rank recorded in {path} ({PARTIAL}: {_partial_differs(partial, recipe, choices, here, lost)}), "
          f"which it does not reuse: they are dropped at its first write; to keep a stopped ranking's "
          f"retrainings, finish it first by running its command again ({_partial_command(partial, path.parent, here)}"
          f") and copy results.json before ranking with other settings", flush=True)


def _ranking_stages(plan, spaces) -> tuple[list, list[list[str]]]:
    """The plan's ranking stages (with their index in it), and the choices of the architectures they rank."""
    stages = [(idx, s) for idx, s in enumerate(plan.stages) if isinstance(s, RankingStage)]
    return stages, [spaces.search.decode(a) for a in stages[0][1].archs()] if stages else []


def _say_reused(reporter: Reporter, reused: int, total: int) -> None:
    """Once the ranking is measured: how many of its ``total`` retrainings an earlier ranking had recorded (none:
    nothing said)."""
    if reused:
        reporter.info(f"{reused} of {total} retrainings were recorded by an earlier ranking of this run folder (the "
                      f"run's own, or an earlier automl rank; the same architectures, epochs, seeds, device and "
                      f"number of processes) and not run again")


def rank_finished_run(run: Run) -> dict:
    """The ranking section of ``run``'s finished folder (its last checkpoint's supernet), also written to its
    results.json and report.md; the checkpoints are left as they are. The caller holds the folder's lock (a look,
    :meth:`~automl._lock.RunLock.acquire`, kept here before the first write: :meth:`~automl._lock.RunLock.keep`). Once
    every check has passed (the checkpoint, the run finished, the space, the data, results.json), before the first
    retraining, it says what it replaces in results.json (:func:`_say_replaced`, :func:`_say_partial_replaced`)."""
    ckpt = _checked_checkpoint(run)
    r, out, info = run.recipe, run.out, run.info
    spaces, data, threads = run.start_up(ranking=True, say=False)  # said once the checks below have passed
    state = RunState.from_checkpoint(ckpt, str(run.store.loaded or run.store.folder))
    costs = recipe_costs(r, spaces.search)
    plan = build_plan(r, out, run.method, spaces, costs, run.device)
    _check_finished(run, state, plan)
    _check_fits_the_space(run, state, spaces)
    on_main(info, lambda: check_same_data(state, data, r, out, "automl rank"))  # it scores on D_theta: the same split
    state.stage, state.epoch, state.step = 0, 0, 0
    state.phase_seconds["ranking"] = 0.0  # the ranking section's seconds: this command's
    path, written = out / "results.json", [{}]  # written[0]: results.json as last written (or read)

    def stopping() -> str:  # a second signal: what is kept, and how to go on
        return (f"{kept_now()} retrainings are recorded in {path} and are not run again (the one cut short is). "
                f"Continue with: {rank_command(r, out)}")

    preempt = Preemption(info, finishing="the current retraining, then stopping; results.json keeps those finished",
                         stopping_now=stopping)
    ctx = run.context(state, spaces, data, plan, preempt, checkpointing=False)

    def again(fix: str) -> str:  # after a failed write: the errno's fix, then the same command
        return (f"{fix} and continue with: {rank_command(r, out)} (the retrainings recorded in {path} are not "
                f"run again)")

    # rank 0 reads the file, every rank gets it (a folder under torchrun need not be shared): all skip the same
    before, length = on_main(info, lambda: (read_results(path), _cut_length(path, state)))
    check_results(path, before)  # before any retraining (automl rank checks it before start-up too)
    stages, choices = _ranking_stages(plan, spaces)
    here = computed_on(ctx)
    earlier, written[0] = _earlier_partial(before, r, stages, choices, here), before  # earlier: kept by keep()
    recorded, own = _recorded(run, state, before, choices, here)
    if info.is_main:  # a refusal above is the only message
        _say_replaced(before, r, path, *_not_reused(run, state, before, stages, choices, here, recorded))
        _say_partial_replaced(before, r, path, choices, here, earlier)
    run.say_threads(threads, ranking=True)

    def kept_now() -> str:  # "k of K": the retrainings recorded (results.json, the checkpoint), which a rerun reuses
        return _kept(r, stages, own, written[0], choices, here)
    # every check has passed: the first write to the folder is next, and the lock file keeps naming this command
    # after it ends (it has named it since the look began; a refusal until now put the last holder's record back)
    run.lock.keep()
    if length is not None:  # the lines of a retraining a kill cut short
        run.reporter.cut(length)
    results = None  # rank 0 writes results.json
    if info.is_main:  # with none yet (a run killed in its ranking), no ranking section from the run's own entries:
        # they are of its ranking settings, which recorded_retrainings would take for this command's
        results = before or {k: v for k, v in build_results(r, state, plan.members, ctx, run.method.name, costs,
                                                             threads).items() if k != "ranking"}

    def keep(n: int) -> None:  # results.json records the first n stages' retrainings (+ earlier), the log's length
        partial = partial_ranking(r, state, choices, {s.j for _, s in stages[:n]}, run.reporter.synced_size())
        new = {**(results or {}), PARTIAL: {**_with_earlier(partial, earlier), **here, **_partial_flags(r)}}
        written_on_main(info, f"{path}", lambda: atomic_write_json(path, new), again)
        written[0] = new  # once in place: a second signal's count (kept_now) is of the file as it is

    reused, kept = 0, False
    with preempt.armed():  # a stop signal (preempt.SIGNALS): stop after the current retraining, keeping those done
        for n, (idx, stage) in enumerate(stages, 1):
            stage.recorded = recorded.get((stage.j, r.seed + stage.s))
            reused += stage.recorded is not None
            if stage.recorded is None and not kept:  # the log's length before the first retraining it computes:
                keep(n - 1)  # a kill inside that one leaves lines the next automl rank cuts
            stage.run(ctx, state, idx)
            if stage.recorded is None:
                keep(n)
                kept = True
            if n < len(stages):
                stop_ranking_if_signalled(preempt, run.reporter, r, out, kept_now())
    _say_reused(run.reporter, reused, len(stages))
    ranking = {**ranking_results(r, state), **here, "reused_retrainings": reused}  # report.md says so with its time
    final = {**{k: v for k, v in (results or {}).items() if k != PARTIAL}, "ranking": ranking}
    written_on_main(info, f"the results in {out}", lambda: write_report(out, final, run.reporter), again)
    return ranking
