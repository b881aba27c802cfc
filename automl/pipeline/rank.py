"""``automl rank``: the ranking stages on a finished run's last checkpoint (:func:`rank_finished_run`).

No checkpoint is written; results.json keeps every finished retraining (``ranking_partial``) so that a
stopped or failed ``automl rank`` reruns only the others, and gets the ranking section at the end. A retraining
is reused only with what determines it the same: its architecture (with the whole list of the ranking's),
epochs and seed, and the device and number of processes it computed on (:func:`_computed_on`); a run killed
in its own ranking stage has its finished retrainings (its checkpoint's) reused alike."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from automl._io import atomic_write_json
from automl.dsl import space_digest
from automl.errors import Stopped, UserError
from automl.pipeline.context import written_on_main
from automl.pipeline.final_stages import RankingStage
from automl.pipeline.plan import build_plan
from automl.pipeline.reuse import SPACE_DIGEST, check_fits
from automl.pipeline.results import (PARTIAL, ReportStage, build_results, device_record, partial_ranking,
                                     ranking_epochs, ranking_results, read_results, recorded_retrainings)
from automl.pipeline.setup import recipe_costs
from automl.pipeline.state import RunState
from automl.report import write_report
from automl.train.preempt import Preemption
from automl.train.progress import Reporter

if TYPE_CHECKING:
    from automl.pipeline.run import Run

__all__ = ["rank_finished_run"]


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
    """The ``automl rank`` command that goes on with the same settings (retrainings recorded are reused); with
    ``--device`` when this one computes on another device than the run's (``automl rank --device``)."""
    rk = recipe.ranking
    device = "" if recipe.device == _run_device(out) else f" --device {recipe.device}"
    return (f"automl rank {out} --archs {rk.archs} --retrain-epochs {ranking_epochs(recipe)} --seeds {rk.seeds} "
            f"--truth {rk.truth}{device}")


def stop_ranking_if_signalled(preempt: Preemption, reporter: Reporter, recipe, out: Path, done: str) -> None:
    """``automl rank`` after a retraining (``done``: "k of K"): stop (:class:`Stopped`) if SIGTERM, SIGINT or SIGHUP
    came meanwhile, saying what results.json keeps and the command that goes on."""
    signum = preempt.signalled()
    if not signum:
        return
    reporter.info(f"stopped by {signal.Signals(signum).name}; {done} retrainings are recorded in "
                  f"{out / 'results.json'} and are not run again. Continue with: {rank_command(recipe, out)}")
    raise Stopped(signum)


def _checked_checkpoint(run: Run) -> dict:
    """The run's last checkpoint, which must hold a trained supernet; else the user error that says why."""
    out, method = run.out, run.method
    ckpt = run.store.load()
    if ckpt is None:
        raise UserError(f"{out}: no usable checkpoint: {run.store.why_none()}; automl rank scores the "
                        f"supernet of the run's last checkpoint: restore the folder (from a copy), or run the "
                        f"search again (automl run {out / 'recipe.resolved.yaml'} --out NEW_DIR)")
    if ckpt.get("supernet") is None:
        if not method.needs_supernet:
            raise UserError(f"{out}: search.method {method.name} trains no shared supernet to rank "
                            f"with; automl rank needs a run of search.method importance_sampling or separate")
        raise UserError(f"{out}: the run has no trained supernet yet: its weight phase has not finished; "
                        f"finish it first (automl run RECIPE --out {out} --resume, with its recipe and "
                        f"overrides)")
    return ckpt


def _check_finished(run: Run, state: RunState, plan) -> None:
    """The run must have exported its family (the stages before the ranking's and the report's are done);
    its own ranking may be unfinished: automl rank measures it anew."""
    first = next(i for i, s in enumerate(plan.stages) if isinstance(s, (RankingStage, ReportStage)))
    if state.stage < first:
        raise UserError(f"{run.out}: the run has not finished (next: its stage {plan.stages[state.stage].key}); "
                        f"automl rank ranks a finished run: finish it first (automl run RECIPE --out {run.out} "
                        f"--resume, with its recipe and overrides)")


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


def _computed_on(ctx, info) -> dict:
    """What a retraining's result depends on besides its architecture, epochs and seed, as results.json records
    it: the device (float rounding differs between a CPU and a GPU, and between GPU models) and the number of
    processes (data.batch_size is per process)."""
    return {"device": device_record(ctx.device), "world_size": info.world_size}


def _same_computation(record, here: dict, results: dict) -> bool:
    """Whether ``record`` (a ranking section or :data:`PARTIAL` of ``results``) was computed as ``here`` says; one
    that does not say (the run's own ranking section) was computed as the run (``results``' own fields)."""
    return isinstance(record, dict) and all(record.get(k, results.get(k)) == v for k, v in here.items())


def _stopped_runs_own(run: Run, state: RunState, choices: list[list[str]], here: dict) -> dict | None:
    """The ranking the run itself measured before it stopped (its checkpoint's ``ranking/j`` entries), as a
    record :func:`recorded_retrainings` reads (the run's own epochs); None unless this command ranks the same
    architectures as the run did, on the device its checkpoint records (``here``: this command's
    :func:`_computed_on`; an older automl's checkpoint records none: then with the device setting of the run's
    recipe), with as many processes."""
    own = (_run_recipe(run.out) or {}).get("ranking")
    r, out = run.recipe, run.out
    same_device = r.device == _run_device(out) if state.device is None else state.device == here["device"]
    if (not isinstance(own, dict) or own.get("archs") != len(choices) or not same_device
            or state.world_size not in (None, run.info.world_size)):
        return None
    entries = [state.results.get(f"ranking/{j}") for j in range(len(choices))]
    if any(e is not None and e.get("choices") != c for e, c in zip(entries, choices)):
        return None
    epochs = own.get("retrain_epochs")
    return {"retrain_epochs": r.retrain.epochs if epochs is None else epochs,
            "archs": [{"choices": c} if e is None or "retrainings" not in e else
                      {"choices": c, "params": e["params"], "retrainings": e["retrainings"]}
                      for e, c in zip(entries, choices)]}


def _recorded(run: Run, state: RunState, before: dict, choices: list[list[str]], here: dict) -> dict:
    """The retrainings recorded earlier that this command would repeat (:func:`recorded_retrainings`): the run's
    own ranking stopped part-way (its checkpoint's), an ``automl rank`` stopped part-way (:data:`PARTIAL`) and
    the last finished ranking, each only when computed as this command computes (``here``)."""
    r = run.recipe
    found = recorded_retrainings(r, _stopped_runs_own(run, state, choices, here), choices)
    for key in (PARTIAL, "ranking"):
        if _same_computation(before.get(key), here, before):
            found.update(recorded_retrainings(r, before[key], choices))
    return found


def rank_finished_run(run: Run) -> dict:
    """The ranking section of ``run``'s finished folder (its last checkpoint's supernet), also written to its
    results.json and report.md; the checkpoints are left as they are. The caller holds the folder's lock."""
    ckpt = _checked_checkpoint(run)
    r, out, info = run.recipe, run.out, run.info
    spaces, data, threads = run.start_up(ranking=True)
    state = RunState.from_checkpoint(ckpt, str(run.store.folder))
    costs = recipe_costs(r, spaces.search)
    plan = build_plan(r, out, run.method, spaces, costs, run.device)
    _check_finished(run, state, plan)
    _check_fits_the_space(run, state, spaces)
    state.stage, state.epoch, state.step = 0, 0, 0
    state.phase_seconds["ranking"] = 0.0  # the ranking section's seconds: this command's
    preempt = Preemption(info, finishing="the current retraining, then keeping those done")
    ctx = run.context(state, spaces, data, plan, preempt, checkpointing=False)
    path = out / "results.json"

    def again(fix: str) -> str:  # after a failed write: the errno's fix, then the same command
        return (f"{fix} and continue with: {rank_command(r, out)} (the retrainings recorded in {path} are not "
                f"run again)")

    # every rank reads the file (a shared folder under torchrun), so all skip the same retrainings
    before = read_results(path)
    stages = [(idx, s) for idx, s in enumerate(plan.stages) if isinstance(s, RankingStage)]
    choices = [spaces.search.decode(a) for a in stages[0][1].archs()] if stages else []
    partial = before.get(PARTIAL) if isinstance(before.get(PARTIAL), dict) else {}
    here = _computed_on(ctx, info)
    recorded = _recorded(run, state, before, choices, here)
    if partial.get("metrics_bytes") is not None:  # the lines of a retraining a kill cut short
        run.reporter.cut(partial["metrics_bytes"])
    results = None  # rank 0 writes results.json
    if info.is_main:  # with none yet (a run killed in its ranking), no ranking section from the run's own entries:
        # they are of its ranking settings, which recorded_retrainings would take for this command's
        results = before or {k: v for k, v in build_results(r, state, plan.members, ctx, run.method.name, costs,
                                                             threads).items() if k != "ranking"}
    reused = 0
    with preempt.armed():  # SIGTERM / SIGINT / SIGHUP: stop after the current retraining, keeping those done
        for n, (idx, stage) in enumerate(stages, 1):
            stage.recorded = recorded.get((stage.j, r.seed + stage.s))
            reused += stage.recorded is not None
            stage.run(ctx, state, idx)
            if stage.recorded is None:
                done = {s.j for _, s in stages[:n]}
                written_on_main(info, f"{path}", lambda: atomic_write_json(path, {
                    **results, PARTIAL: {**partial_ranking(r, state, choices, done, run.reporter.size()), **here}}),
                    again)
            if n < len(stages):
                stop_ranking_if_signalled(preempt, run.reporter, r, out, f"{n} of {len(stages)}")
    if reused:
        run.reporter.info(f"{reused} of {len(stages)} retrainings were recorded by the run's earlier ranking "
                          f"(same architectures, epochs, seeds and device) and not run again")
    ranking = {**ranking_results(r, state), **here}
    final = {**{k: v for k, v in (results or {}).items() if k != PARTIAL}, "ranking": ranking}
    written_on_main(info, f"the results in {out}", lambda: write_report(out, final, run.reporter), again)
    return ranking
