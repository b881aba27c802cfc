"""Does the supernet rank? Kendall's τ per weight-phase option, θ-phase loss signal vs noise, and the stability
of the most accurate member over threads and seeds (issue #20).

    python benchmarks/ranking.py [--out DIR] [--archs 20] [--options a,b,...] [--no-tau] [--no-stability]
                                 [--truth RUN_DIR] [--supernet-seeds 0,1,2] [--threads N] [RECIPE] [key=value ...]

Every run is ``automl run`` in a subprocess (the stability runs set the recipe's ``threads`` and OMP_NUM_THREADS),
kept in --out (default runs/bench-ranking), and reused when its results.json is already there: the script can be
re-run after a change to re-measure only what was deleted (a results.json that cannot be read, or lacks what the
script reads, is one line naming it, exit 2). The recipe, its overrides, the option and method names and the
folders given are checked before any run (a truth to retrain needs retrain.epochs >= 1, a --truth run a ranking
that retrained, a --replay or --one-se run one shared supernet and its θ phase: not the random baseline's, nor
simultaneous's; a flag of a part the run skips is refused: --truth, --archs, --options, --supernet-seeds, --threads
or --no-signal with --no-tau, --methods, --jobs or --stability-seeds with --no-stability, --se without --one-se;
and with a study, which runs neither part, each of those flags but --archs with --truth-seeds alone, a RECIPE with
--one-se or --replay, overrides with --one-se); a run that fails stops the script with one line naming its command
and its log (exit 2 when the run's was 2; with ``--jobs`` N, the stability runs still going are first stopped as by
Ctrl-C, and a Ctrl-C during that wait kills them, exit 130). Ctrl-C is passed on to the runs going on, which save a
checkpoint and exit (the script waits up to 30 s, then exits 130; no run is started after it); a re-run starts such
a run's folder afresh, but not while an automl run still writes there (one the script started before it was killed:
one line naming the folder and the process, exit 2).

* **truth**: the K ranking architectures (spread over the cost range; the same in every run of the space)
  retrained stand-alone once, as the recipe retrains (``ranking.retrain_epochs`` = ``retrain.epochs``), on
  seed 0 and on seed 1 (τ between the two is the ceiling the retraining noise allows).
  With ``--truth RUN_DIR`` the truth is instead the mean test loss a finished ranking recorded there (e.g.
  ``automl rank RUN --seeds 12``: a truth reliable enough to compare options by); nothing is retrained.
* **τ per option**: the weight phase alone (θ phase, retraining and export off) with each option's overrides
  (one supernet unless the option sets ``search.supernets``; ``supernets4`` is the shipped quickstart),
  once per ``--supernet-seeds`` seed, then the ranking section with ``retrain_epochs=0`` scores the same K
  architectures on the supernet (loss on D_θ, BatchNorm recalibrated, and with each batch's statistics as the
  θ phase does); τ against the truth, and its mean and spread over the supernet seeds.
* **signal / noise**: on each option's supernet, the D_θ losses of the K architectures on every D_θ batch
  in train mode (what the θ phase compares). Per pair of architectures, |mean difference| / standard
  deviation over batches of the difference, and the share of single batches that order the pair as the
  mean does.
* **stability**: the recipe as given (the quickstart: four supernets; add ``search.supernets=1`` for one) with
  ``retrain.epochs=0``, for search.method separate and importance_sampling, over threads {1, 2} x seeds
  {0, 1, 2} (``--stability-seeds``): the parameters of the ε = 0 member (the recipe's first ε / budget) and
  max / min.
* **one standard error** (``--one-se RUN,...``, ``--se K``): a tie-breaker that is not the paper's. From each
  finished run's most accurate member (its supernet, BatchNorm recalibrated per path as the ranking does),
  greedily the cheapest single-decision change whose D_θ loss is within K standard errors (per image, paired)
  of the member's, until none is: the "simplest model within one standard error" rule (CART, glmnet's
  lambda.1se). Reports the parameters reached and max / min over the runs. ``--costlier``: the other way, the
  costliest change within K standard errors (ties to the larger network), until none is.
* **truth study** (``--truth-seeds 0,1,2``): the K architectures retrained stand-alone once per seed in this
  process, test accuracy and test loss: τ between single retrainings and between means over seeds, i.e. how
  reliable a truth is before any supernet is compared with it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

sys.path.insert(0, str(Path(__file__).parent))
from _common import (RESULTS, Fields, atomic_write_text, cached_json, check_child, check_not_running,  # noqa: E402
                     damaged, emit, fields_problem, int_at_least, measured, names, out_folder, parser, positive_float,
                     positive_int, progress, run_child, run_main, run_results, seed_list, stop_children, thread_count,
                     warn_threads)

from automl.errors import UserError  # noqa: E402
from automl.nn.ensemble import path_outputs  # noqa: E402
from automl.pipeline import open_workspace  # noqa: E402
from automl.ranking import kendall_tau_b, seed_mean, spearman  # noqa: E402
from automl.recipe import load_recipe  # noqa: E402
from automl.search import UnknownSearcher, get_searcher, supernet_methods  # noqa: E402
from automl.train.checkpoint import CheckpointStore  # noqa: E402
from automl.train.loops import (create_optimizer, create_scheduler, evaluate, for_training, path_losses,  # noqa: E402
                                recalibrate_bn, train_step)

ROOT = Path(__file__).resolve().parents[1]
OFF = ["retrain.epochs=0", "export.onnx=false"]

# the weight-phase options of issue #20 (overrides on top of the recipe and of ONE: each option is one supernet
# unless it says otherwise; "supernets4" is the quickstart as shipped)
ONE = ["search.supernets=1"]
OPTIONS = {
    "uniform": [],
    "fair": ["search.weight_sampling=fair"],
    "sandwich": ["search.weight_sampling=sandwich"],
    "sandwich+distill": ["search.weight_sampling=sandwich", "search.inplace_distill=true"],
    "lr0.1": ["optim.lr=0.1"],
    "lr0.6": ["optim.lr=0.6"],
    "epochs30": ["search.weight_epochs=30"],
    "fair+epochs30": ["search.weight_sampling=fair", "search.weight_epochs=30"],
    "lam16": ["search.lam=16"],
    "supernets2": ["search.supernets=2"],
    "supernets3": ["search.supernets=3"],
    "supernets4": ["search.supernets=4"],
    "supernets3-e5": ["search.supernets=3", "search.weight_epochs=5"],
    "epochs8": ["search.weight_epochs=8"],
    "wd0": ["optim.weight_decay=0"],
    "wd1e-3": ["optim.weight_decay=1e-3"],
    "wd3e-3": ["optim.weight_decay=3e-3"],
    "lr0.2": ["optim.lr=0.2"],
    "lr0.5": ["optim.lr=0.5"],
    "batch32": ["data.batch_size=32"],
    "lam4": ["search.lam=4"],
}
METHODS = ("separate", "importance_sampling", "simultaneous", "random")  # search.method's values


# ---- what the script reads of a run's results.json (a measurement: a number, or null for a non-finite one)

A = TypeVar("A", bound=Fields)


class Ranking(Fields, Generic[A]):
    """results.json's ``ranking``: its K architectures."""

    archs: list[A] = Field(min_length=1)


class Ranked(Fields, Generic[A]):  # a run's results.json with a ranking
    ranking: Ranking[A]


class Members(Fields, Generic[A]):  # a run's results.json: its members
    architectures: list[A] = Field(min_length=1)


class Recorded(Fields):  # an architecture of a --truth run's ranking
    choices: list
    params: int
    test_loss: float | None


class RecordedRanking(Ranking[Recorded]):
    seeds: int
    retrain_epochs: int


class TruthRun(Fields):  # a --truth run whose ranking checked_truth reads
    ranking: RecordedRanking


class MaybeRanked(Fields):  # a --truth run: a ranking, if any, to check (checked_truth)
    ranking: dict | None = None


class Retrained(Fields):  # an architecture of a truth run (truth)
    test_accuracy: float | None


class Scored(Fields):  # an architecture of an option run (tau_per_option), scored by its supernet
    choices: list
    supernet_loss: float | None
    supernet_loss_batch_stats: float | None
    supernet_accuracy: float | None


class Phases(Fields):  # an option run's phase seconds
    weights: float = 0.0


class OptionRun(Ranked[Scored]):
    phase_seconds: Phases


class Params(Fields):  # a member of a stability run
    params: int


class Choices(Fields):  # the first member of a --one-se run
    choices: list


class StudyRow(Fields):  # an architecture of a truth study's file (truth_study): as _retrain_once measured it
    test_accuracy: float
    test_loss: float


def checked_truth(run_dir: Path, k: int) -> dict:
    """The ranking of a --truth run's results.json, read once and checked (:class:`RecordedRanking`, K
    architectures, retrained): one that is not is one line naming it, exit 2."""
    fix = f"--truth: give the folder of a finished run with a ranking (or run `automl rank {run_dir}` again)"
    rk = run_results(run_dir, MaybeRanked, fix).get("ranking")
    if not rk:
        raise UserError(f"--truth {run_dir}: its results.json has no ranking (run it with ranking.archs=K "
                        f"ranking.seeds=S, or `automl rank {run_dir}`)")
    if rk.get("retrain_epochs") == 0:
        raise UserError(f"--truth {run_dir}: its ranking retrained nothing (retrain_epochs 0): its test losses are "
                        f"the supernet's, not a truth")
    why = fields_problem(TruthRun, {"ranking": rk})
    if why:
        raise damaged(run_dir / RESULTS, why, fix)
    if len(rk["archs"]) != k:
        raise UserError(f"--truth {run_dir}: its ranking has {len(rk['archs'])} architectures, not --archs {k}")
    return rk


def truth_of(rk: dict) -> tuple[list[float], list[list[str]], int]:
    """The truth a finished ranking recorded (``automl run ... ranking.seeds=S`` or ``automl rank``), from the
    ranking :func:`checked_truth` returned: minus the mean test loss of each of its K architectures over its S
    retrainings, their choices, and S."""
    return [-measured(e["test_loss"]) for e in rk["archs"]], [e["choices"] for e in rk["archs"]], int(rk["seeds"])


def tau_per_option(a, out: Path, t: list[float], t1: list[float] | None, choices: list[list[str]] | None,
                   seeds: list[int]) -> list[dict]:
    """Each option's weight phase once per supernet seed, scored on the K architectures: τ against ``t`` (and
    against ``t1`` when given), with the θ-phase loss signal / noise of the seed-0 supernet."""
    rows = []
    for name in a.options:
        for seed in seeds:
            ov = ONE + a.overrides + OFF + OPTIONS[name] + [
                f"seed={seed}", "search.theta_epochs=0", f"ranking.archs={a.archs}", "ranking.retrain_epochs=0"]
            if a.threads is not None:
                ov.append(f"threads={a.threads}")
            d = option_folder(out, name, seed)
            reused = (d / RESULTS).exists()
            res = checked(automl_run(a.recipe, ov, d, threads=a.threads), d, OptionRun)
            rk = ranked(res, d, len(t))
            if choices is not None and [e["choices"] for e in rk] != choices:
                raise not_the_truths(a, d, reused)
            score = [-measured(e["supernet_loss"]) for e in rk]
            score_b = [-measured(e["supernet_loss_batch_stats"]) for e in rk]
            row = {"option": name, "seed": seed, "tau": kendall_tau_b(score, t), "spearman": spearman(score, t),
                   "tau_batch_stats": kendall_tau_b(score_b, t),
                   "supernet_acc_median": float(np.median([measured(e["supernet_accuracy"]) for e in rk])),
                   "weights_s": res["phase_seconds"].get("weights", 0.0)}
            if t1 is not None:
                row["tau_seed1"] = kendall_tau_b(score, t1)
            if seed == seeds[0] and not a.no_signal:
                row.update(signal_noise(d))
            rows.append(row)
            progress(rows[-1])
        taus = [r["tau"] for r in rows if r["option"] == name]
        print(f"{name}: τ {np.mean(taus):.3f} ± {np.std(taus, ddof=1) if len(taus) > 1 else 0:.3f} "
              f"over supernet seeds {seeds}", flush=True)
    return rows


def not_the_truths(a, d: Path, reused: bool) -> UserError:
    """The option run in ``d`` ranked other K architectures than the --truth run (the K are the same in every run
    of a space), in one line saying what to do: ``reused`` (a run an earlier invocation left in --out), delete it
    or choose another --out; a run made now, give --truth a run of the recipe's space."""
    k = a.archs
    if reused:
        return UserError(f"{d}: its {k} architectures are not those of the --truth run {a.truth} (a run of another "
                         f"recipe or space left in --out, or --truth is of another space): delete {d} to run it "
                         f"again, or choose another --out")
    return UserError(f"--truth {a.truth}: its {k} architectures are not those {a.recipe} ranks (in {d}): --truth is "
                     f"a run of another space; give --truth a finished run of this recipe and overrides with a "
                     f"ranking of {k} (`automl run RECIPE ranking.archs={k} ranking.seeds=S`, or "
                     f"`automl rank RUN --archs {k} --seeds S` on a finished run of it)")


def option_folder(out: Path, name: str, seed: int) -> Path:
    return out / (f"option-{name}" if seed == 0 else f"option-{name}-s{seed}")


def stability_folder(out: Path, method: str, threads: int, seed: int) -> Path:
    return out / f"stab-{method}-t{threads}-s{seed}"


def check_stopped_runs(a, out: Path, combos: list[tuple[str, int, int]]) -> None:
    """Before any run: a run folder the script would start afresh (one without results.json) that an automl run
    still writes in is one line naming it, exit 2 (:func:`_common.check_not_running`), not a refusal after the
    runs before it."""
    folders = [stability_folder(out, *c) for c in combos]
    if not a.no_tau:
        folders += [option_folder(out, name, seed) for name in a.options for seed in a.supernet_seeds]
        folders += [] if a.truth else [out / f"truth-seed{seed}" for seed in (0, 1)]
    for d in folders:
        if d.exists() and not (d / RESULTS).exists():
            check_not_running(d)


def automl_run(recipe: str, overrides: list[str], out: Path, threads: int | None = None) -> dict:
    """results.json of ``automl run recipe overrides --out out`` (reused when it exists): a JSON object (one
    that cannot be read, or is not one, is one line naming it, exit 2; :func:`checked` checks the fields a
    caller reads). A folder without it is a run that was stopped, started afresh: not while an automl run
    still writes there (the child of an earlier run of this script that was killed: one line naming the folder
    and the process, exit 2)."""
    if not (out / RESULTS).exists():
        env = dict(os.environ)
        if threads is not None:
            env["OMP_NUM_THREADS"] = str(threads)
            # idle OpenMP threads sleep rather than spin: on a busy shared machine spinning threads starve each
            # other (the thread count, and so the results, are unchanged)
            env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        if out.exists():  # an interrupted earlier attempt
            check_not_running(out)
            shutil.rmtree(out)
        cmd = [sys.executable, "-m", "automl", "run", recipe, *overrides, "--out", str(out)]
        log = out.with_name(out.name + ".log")  # a file, not a pipe: the run outlives this script if killed
        with open(log, "w") as f:  # Ctrl-C: passed on to the run, which saves a checkpoint and exits (run_child)
            rc = run_child(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
        check_child(cmd, rc, log.read_text(errors="replace") if rc else None, log)
    return run_results(out, Fields, _rerun(out))


def _rerun(out: Path) -> str:
    return f"delete {out} to run it again, or choose another --out"


def checked(res: dict, out: Path, model: type[Fields]) -> dict:
    """``res``, the results.json of the run in ``out`` (:func:`automl_run`), when it has the fields ``model``
    names (:func:`_common.fields_problem`); else one line naming the file and the field, exit 2."""
    why = fields_problem(model, res)
    if why:
        raise damaged(out / RESULTS, why, _rerun(out))
    return res


def ranked(res: dict, out: Path, k: int) -> list[dict]:
    """The K architectures of a run's ranking (``res``: its results.json), as many as the script ranks (a folder
    of a run with another --archs: one line naming it, exit 2)."""
    archs = res["ranking"]["archs"]
    if len(archs) != k:
        raise UserError(f"{out}: its ranking has {len(archs)} architectures, not --archs {k}: {_rerun(out)}")
    return archs


def truth(recipe: str, overrides: list[str], out: Path, k: int, seed: int) -> list[float]:
    epochs = load_recipe(recipe, overrides).retrain.epochs
    d = out / f"truth-seed{seed}"
    res = checked(automl_run(recipe, overrides + OFF + [
        f"seed={seed}", "search.weight_epochs=0", "search.theta_epochs=0", f"ranking.archs={k}",
        f"ranking.retrain_epochs={epochs}"], d), d, Ranked[Retrained])
    return [measured(a["test_accuracy"]) for a in ranked(res, d, k)]


def _retrain_once(ws, arch, seed: int, j: int, epochs: int) -> dict:
    """Architecture ``arch`` trained stand-alone as the pipeline's ranking retrains it (the retrain section's
    settings, ``epochs`` long, initialised from ``seed`` and ``j``): its test accuracy and test loss."""
    rt = ws.recipe.retrain
    torch.manual_seed(seed * 7919 + 100_003 + j)
    model = for_training(ws.spaces.retrain.build_standalone(arch, se=rt.se), ws.device)
    loader = ws.data.full.with_batch_size(rt.batch_size)
    opt = create_optimizer(model, rt.optimizer, rt.lr, rt.weight_decay, rt.momentum,
                           eps=rt.rmsprop_eps, alpha=rt.rmsprop_alpha)
    sched = create_scheduler(opt, rt.schedule, epochs, len(loader), min_lr=rt.min_lr,
                             warmup_epochs=rt.warmup_epochs, warmup_lr=rt.warmup_lr,
                             decay_rate=rt.decay_rate, decay_epochs=rt.decay_epochs)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=rt.label_smoothing)
    updates = 0
    for epoch in range(epochs):
        model.train()
        for x, y in loader.epoch(epoch):
            train_step(model, x, y, opt, criterion, ws.info, rt.grad_clip, ws.device)
            updates += 1
            sched.step_update(updates)
    model.eval()
    loss, acc = evaluate(model, ws.data.test, ws.device, ws.info)
    return {"params": sum(p.numel() for p in model.parameters()), "test_accuracy": acc, "test_loss": loss}


def truth_study(recipe: str, overrides: list[str], out: Path, k: int, seeds: list[int], epochs: int) -> dict:
    """How reliable a stand-alone truth is: the K ranking architectures retrained ``epochs`` epochs once per
    seed (another initialisation and data order each), in this process; per seed a JSON file in ``out``
    (written atomically; reused when there, computed again when it cannot be read). Returns τ between single
    retrainings, by test accuracy and by test loss, and τ between the means of two disjoint halves of the
    seeds."""
    per_seed = {}
    for seed in seeds:
        path = out / f"truth-study-e{epochs}-s{seed}.json"
        rows = cached_json(path, lambda rows: _study_problem(rows, k))
        if rows is None:
            r = load_recipe(recipe, overrides + [f"seed={seed}", f"ranking.archs={k}"])
            ws = open_workspace(r)
            rows = [_retrain_once(ws, a, seed, j, epochs) for j, a in enumerate(ws.ranking_archs())]
            atomic_write_text(path, json.dumps(rows))
        per_seed[seed] = rows
        print(f"truth study: seed {seed}, {epochs} epochs done", flush=True)
    acc = np.array([[e["test_accuracy"] for e in per_seed[s]] for s in seeds])
    loss = np.array([[e["test_loss"] for e in per_seed[s]] for s in seeds])
    pairs = [(a, b) for a in range(len(seeds)) for b in range(a + 1, len(seeds))]
    half = len(seeds) // 2
    out_ = {"epochs": epochs, "seeds": seeds, "accuracy": acc.tolist(), "loss": loss.tolist(),
            "tau_acc_pairs": [kendall_tau_b(acc[a], acc[b]) for a, b in pairs],
            "tau_loss_pairs": [kendall_tau_b(-loss[a], -loss[b]) for a, b in pairs],
            "tau_acc_vs_loss": [kendall_tau_b(acc[a], -loss[a]) for a in range(len(seeds))]}
    if half:
        out_["tau_mean_acc_halves"] = kendall_tau_b(_means(acc[:half]), _means(acc[half:2 * half]))
        out_["tau_mean_loss_halves"] = kendall_tau_b(-_means(loss[:half]), -_means(loss[half:2 * half]))
    return out_


def _means(rows: np.ndarray) -> np.ndarray:
    """Each architecture's (column's) mean over the retrainings (rows), as automl's ranking averages seeds
    (:func:`automl.ranking.seed_mean`: means equal in exact arithmetic are one float, a tie in τ-b)."""
    return np.array([seed_mean(col) for col in rows.T.tolist()])


def _study_problem(rows, k: int) -> str | None:
    """What makes a truth study's file unusable for ``k`` architectures (None: nothing): not a list, a row that
    is not a :class:`StudyRow` (a test accuracy or loss that is no number: ``[1].test_loss: "x" is not a
    number``), or another count of rows."""
    if not isinstance(rows, list):
        return "not a truth study's rows"
    for j, row in enumerate(rows):
        why = fields_problem(StudyRow, row, f"[{j}]")
        if why:
            return why
    return None if len(rows) == k else f"holds {len(rows)} architectures, not --archs {k}"


def retrain_named(recipe: str, overrides: list[str], spec: dict, seeds: list[int], epochs: int) -> list[dict]:
    """Architectures given by their choice names (``{"name": [choice, ...]}``) retrained stand-alone as the
    ranking section retrains, once per seed: test accuracy and loss of each, and the mean over seeds."""
    rows = {name: [] for name in spec}
    for seed in seeds:
        ws = open_workspace(load_recipe(recipe, overrides + [f"seed={seed}"]))
        archs = {}
        for name, choices in spec.items():  # every one, before any is retrained
            try:
                archs[name] = ws.spaces.search.encode(choices)
            except UserError as e:
                raise UserError(f"--retrain {name!r}: {e}") from None
        for j, (name, arch) in enumerate(archs.items()):
            rows[name].append(_retrain_once(ws, arch, seed, j, epochs))
            print(f"retrain: seed {seed}, {name}: {rows[name][-1]}", flush=True)
    return [{"name": n, "params": v[0]["params"], "test_accuracy": [e["test_accuracy"] for e in v],
             "mean_accuracy": seed_mean([e["test_accuracy"] for e in v]),
             "mean_loss": seed_mean([e["test_loss"] for e in v])} for n, v in rows.items()]


def _pair_stats(L: np.ndarray) -> dict:
    i, j = np.triu_indices(len(L), 1)
    d = L[i] - L[j]  # (pairs, batches)
    mean, sd = d.mean(1), d.std(1, ddof=1)
    agree = (np.sign(d) == np.sign(mean)[:, None]).mean(1)
    return {"snr": float(np.median(np.abs(mean) / sd)), "absdiff": float(np.median(np.abs(mean))),
            "sd": float(np.median(sd)), "batch_agrees": float(np.median(agree))}


def better_half(L: np.ndarray) -> np.ndarray:
    """The rows of ``L`` (architecture x batch losses) of the better half by mean loss, at least two (a pair):
    where ε = 0 has to choose."""
    return np.argsort(L.mean(1))[: max(2, len(L) // 2)]


def signal_noise(run_dir: Path) -> dict:
    """Pairwise |mean loss difference| / its batch-to-batch standard deviation (medians over the pairs of the K
    architectures, and over the pairs of the better half), on the run's supernet, with each batch's BatchNorm
    statistics (``batch``, the θ phase's default) and with recalibrated ones (``recal``)."""
    recipe = load_recipe(run_dir / "recipe.resolved.yaml")
    ws = open_workspace(recipe)
    archs = ws.ranking_archs()
    net = ws.supernet(CheckpointStore(run_dir / "checkpoints").load()["supernet"])
    batches = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in ws.data.theta.epoch(0)]
    calib = [x.contiguous(memory_format=torch.channels_last) for x in ws.bn_batches(recipe.search.theta_bn_batches)]
    out = {}
    with torch.inference_mode():
        for mode in ("batch", "recal"):
            L = []
            for a in archs:
                if mode == "recal":
                    recalibrate_bn(net, lambda x: path_outputs(net, x, a), calib)
                else:
                    net.train()
                # the θ phase's loss of the path on each batch (an ensemble's: its members' mean)
                L.append([float(path_losses(net, x, y, a[None], ws.device)[0]) for x, y in batches])
            L = np.array(L)
            top = better_half(L)
            out.update({f"{mode}_{k}": v for k, v in _pair_stats(L).items()})
            out.update({f"{mode}_top_{k}": v for k, v in _pair_stats(L[top]).items()})
    return out


def theta_replay(run_dir: Path, overrides: list[str], members: str) -> dict:
    """The θ phase again, in this process, on the supernet a finished run trained (its last checkpoint), with
    the run's recipe plus ``overrides`` (θ settings: search.theta_epochs, search.theta_lr, search.lam, ...):
    ``members`` "all" (importance sampling's one search) or "first" (Method 2's search of the first member).
    With no overrides it repeats the run's own θ phase step for step (same data order, same engine seed)."""
    recipe = load_recipe(run_dir / "recipe.resolved.yaml", overrides)
    weights = run_supernet(run_dir, "--replay")  # before the data is loaded
    ws = open_workspace(recipe)
    net = ws.supernet(weights)
    engine = ws.searcher(list(range(ws.members.n)) if members == "all" else [0], method="importance_sampling")
    for epoch in range(recipe.search.theta_epochs):
        for x, y in ws.data.theta.epoch(epoch):
            archs = engine.ask()
            engine.tell(archs, path_losses(net, x, y, archs.cpu(), ws.device))
    best = engine.best()
    return {"params": [int(ws.spaces.search.cost_table.total(a, "params")) for a in best],
            "choices": [ws.spaces.search.decode(a) for a in best],
            "max_theta": engine.theta.amax(-1).mean(-1).tolist(), "epsilons": engine.epsilons}


# what --replay and --one-se read of a run besides its files: its trained supernet, for their messages
NEEDS = {"--replay": "--replay needs a run with a θ phase (it replays it on the run's supernet)",
         "--one-se": "--one-se needs a run with a trained supernet (it scores changes on it)"}


def check_trains_a_supernet(flag: str, run_dir: Path) -> None:
    """A --replay or --one-se run (``flag``) is of a method that trains one shared supernet, then its θ phase, as its
    results.json records (``searcher_mode``; else its ``method``, where this process knows it): a run of the random
    baseline (which draws its networks and trains neither) or of simultaneous (a supernet per member, none kept) is
    one line naming the folder, exit 2, before any run is loaded. A results.json that says neither is left to the
    study (:func:`run_supernet`, :func:`one_se`'s check of the file)."""
    try:
        res = json.loads((run_dir / RESULTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # _check_folders found it; one_se names what is wrong with it
        return
    name = res.get("method") if isinstance(res, dict) else None
    mode = res.get("searcher_mode") if isinstance(res, dict) else None
    if not isinstance(mode, str) and isinstance(name, str):
        try:
            mode = get_searcher(name).mode
        except UnknownSearcher:
            return
    if mode in ("sample", "interleaved"):  # needs_supernet: joint and per_member (automl.search.SearchMethod)
        which = ("trains no supernet and has no θ phase" if mode == "sample" else
                 "trains no shared supernet (a fresh one per member, each θ step between its weight steps)")
        raise UserError(f"{flag} {run_dir}: a run of search.method {name}, which {which}; {NEEDS[flag]}: give "
                        f"{flag} finished runs of search.method {supernet_methods()}")


def run_supernet(run_dir: Path, flag: str) -> dict:
    """The supernet of a finished run's last checkpoint, for ``flag`` (--replay, --one-se); a run whose checkpoints
    are gone or hold none is one line naming the folder, exit 2."""
    store = CheckpointStore(run_dir / "checkpoints")
    ckpt = store.load()
    weights = None if ckpt is None else ckpt.get("supernet")
    if weights is None:
        why = store.why_none() if ckpt is None else "its last checkpoint holds no supernet"
        raise UserError(f"{flag} {run_dir}: no trained supernet: {why}; {NEEDS[flag]}: give {flag} finished runs "
                        f"of search.method {supernet_methods()} with their checkpoints/")
    return weights


def _image_losses(ws, net, arch: torch.Tensor, calib: list) -> torch.Tensor:
    """Each D_θ image's loss on path ``arch`` (an ensemble's: its members' mean), BatchNorm recalibrated."""
    recalibrate_bn(net, lambda x: path_outputs(net, x, arch), calib)
    out = []
    for x, y in ws.data.theta.epoch(0):
        x = x.contiguous(memory_format=torch.channels_last)
        out.append(torch.stack([F.cross_entropy(z.float(), y, reduction="none")
                                for z in path_outputs(net, x, arch)]).mean(0))
    return torch.cat(out).double()


ONE_SE_FIX = "--one-se: give finished run folders"


@torch.inference_mode()
def one_se(run_dir: Path, k: float, costlier: bool = False) -> dict:
    """From the run's first member, greedily the cheapest (``costlier``: the costliest) one-decision change
    to a cheaper (costlier) network whose D_θ loss is within ``k`` paired standard errors of the member's (the
    reference stays the member), until no change is."""
    first = run_results(run_dir, Members[Choices], ONE_SE_FIX)["architectures"][0]["choices"]  # before the loading
    recipe = load_recipe(run_dir / "recipe.resolved.yaml")
    weights = run_supernet(run_dir, "--one-se")  # before the data is loaded
    ws = open_workspace(recipe)
    space = ws.spaces.search
    net = ws.supernet(weights)
    calib = [x.contiguous(memory_format=torch.channels_last) for x in ws.bn_batches(10)]
    arch = space.encode(first)
    sign = -1.0 if costlier else 1.0
    key = lambda a: sign * float(space.cost_table.total(a, recipe.search.cost))  # noqa: E731  (lowest first)
    ref, cur = _image_losses(ws, net, arch, calib), arch
    while True:
        found = None
        for d, n in enumerate(space.num_choices):
            for c in range(n):
                a = cur.clone()
                a[d] = c
                if key(a) >= key(cur) or (found is not None and key(a) >= key(found)):
                    continue
                diff = _image_losses(ws, net, a, calib) - ref
                if diff.mean() <= k * diff.std() / len(diff) ** 0.5:
                    found = a
        if found is None:
            break
        cur = found
    return {"run": run_dir.name, "member_params": int(space.cost_table.total(arch, "params")),
            "params": int(space.cost_table.total(cur, "params")), "choices": space.decode(cur)}


def stability_overrides(recipe: str, overrides: list[str], method: str, seed: int, threads: int) -> list[str]:
    """One stability run. Method 2's search for the first member does not depend on the others (one θ phase
    each, after the same weight phase), so it searches that member alone (its ε, or its budget): the same
    member, a quarter of the θ phases."""
    ov = overrides + OFF + [f"search.method={method}", f"seed={seed}", f"threads={threads}"]
    if method == "separate":
        s = load_recipe(recipe, ov).search
        if s.budgets is not None:
            first = "null" if s.budgets[0] is None else repr(s.budgets[0])
            ov.append(f"search.budgets=[{first}]")
        else:
            ov.append(f"search.epsilons=[{s.epsilons[0]}]")
    return ov


def stability_run(a, out: Path, method: str, threads: int, seed: int) -> dict:
    """results.json of one stability run (:func:`stability_overrides`)."""
    d = stability_folder(out, method, threads, seed)
    ov = stability_overrides(a.recipe, a.overrides, method, seed, threads)
    return checked(automl_run(a.recipe, ov, d, threads=threads), d, Members[Params])


def stability_runs(a, out: Path, combos: list[tuple[str, int, int]]) -> list[dict]:
    """The results.json of each stability run (:func:`stability_run`), ``a.jobs`` at once. The first run that
    fails (or whose results.json is refused) stops the others as Ctrl-C does (:func:`_common.stop_children`, in
    the main thread: passed on once, each saves a checkpoint and exits, waited for up to 30 s, and killed at a
    Ctrl-C meanwhile, which then ends the script as Ctrl-C does; no run is started after it), and its error, not
    theirs, ends the script (:func:`_common.run_main`: its message and exit code). At Ctrl-C the runs going on
    are run_main's to stop and wait for: those it stops are no failure."""
    failures: list[tuple[Path, BaseException]] = []  # (folder, error) in the order they happened: the first ends it
    lock = threading.Lock()

    def one(c):
        if failures:  # a run failed: no other is started (the pool's workers take the next at once)
            return None
        try:
            return stability_run(a, out, *c)
        except BaseException as e:
            with lock:
                failures.append((stability_folder(out, *c), e))
            raise

    pool = ThreadPoolExecutor(a.jobs)  # the runs are subprocesses: threads only wait
    try:
        futures = [pool.submit(one, c) for c in combos]
        wait(futures, return_when=FIRST_EXCEPTION)  # Ctrl-C: KeyboardInterrupt here, in the main thread
        if not failures:
            return [f.result() for f in futures]
        for f in futures:
            f.cancel()
        if a.jobs > 1:  # the runs still going (one job: none)
            print(f"{Path(sys.argv[0]).name}: the stability run {failures[0][0]} failed: the runs still going are "
                  f"stopped", file=sys.stderr, flush=True)
            interrupted = stop_children(by_signal=False)
            if interrupted is not None:  # Ctrl-C during the wait: the runs were killed; the script stops as on it
                raise interrupted
        raise failures[0][1] from None
    finally:  # on Ctrl-C: no run is started, and those running are run_main's to stop and wait for
        pool.shutdown(wait=False, cancel_futures=True)


def _one_study(a, out: Path) -> None:
    """--one-se, --replay, --truth-seeds (with or without --retrain): one study, then stop."""
    if a.one_se:
        rows = [one_se(Path(d), a.se, a.costlier) for d in run_folders(a.one_se)]
        for r in rows:
            progress(r)
        sizes = [r["params"] for r in rows]
        emit("ranking_one_se", rows, k=a.se, costlier=a.costlier, max_over_min=max(sizes) / min(sizes))
        return
    if a.replay:
        rows = []
        for d in map(Path, run_folders(a.replay)):
            first = load_recipe(d / "recipe.resolved.yaml", a.overrides).search.method == "separate"
            r = theta_replay(d, a.overrides, "first" if first else "all")
            rows.append({"run": d.name, **r})
            progress(rows[-1])
        firsts = [r["params"][0] for r in rows]
        emit("ranking_replay", rows, overrides=a.overrides, max_over_min=max(firsts) / min(firsts))
        return
    epochs = a.truth_epochs if a.truth_epochs is not None else load_recipe(a.recipe, a.overrides).retrain.epochs
    seeds = a.truth_seeds
    if a.retrain:
        spec = retrain_spec(a.retrain)
        emit("ranking_retrain", retrain_named(a.recipe, a.overrides, spec, seeds, epochs))
    else:
        emit("ranking_truth", [truth_study(a.recipe, a.overrides, out, a.archs, seeds, epochs)], archs=a.archs)


def retrain_spec(path: str) -> dict:
    """The architectures ``--retrain`` names: a JSON object ``{"name": [choice, ...] or {decision: choice}}``."""
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--retrain {path}: no such file") from None
    except OSError as e:  # a folder, no permission
        raise UserError(f"--retrain {path}: cannot be read ({e.strerror or e})") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise UserError(f"--retrain {path}: not JSON ({e})") from None
    if not (isinstance(spec, dict) and spec and all(isinstance(v, (list, dict)) for v in spec.values())):
        raise UserError(f'--retrain {path}: must be a JSON object {{"name": [choice, ...], ...}} naming at least one '
                        f"architecture by its choices")
    return spec


def _check_flags(a) -> None:
    """Flags that belong to one study (--one-se, --replay, --truth-seeds) and are given without it, or two
    studies at once: each is one run of the script."""
    studies = [f for f, v in (("--one-se", a.one_se), ("--replay", a.replay), ("--truth-seeds", a.truth_seeds))
               if v is not None]
    if len(studies) > 1:
        raise UserError(f"{studies[0]} and {studies[1]} are two studies: give one of them per run")
    for flag, given, study in (("--retrain", a.retrain is not None, "--truth-seeds"),
                               ("--truth-epochs", a.truth_epochs is not None, "--truth-seeds"),
                               ("--costlier", a.costlier, "--one-se"), ("--se", a.se is not None, "--one-se")):
        if given and study not in studies:
            raise UserError(f"{flag} is an option of {study}: give {study} too, or leave {flag} out")


# the defaults of the options whose default is None in the parser, so that one given can be told from one left
# out (_settle): the flags of the τ per option and of the stability table, and --se
DEFAULTS = {"archs": 20, "options": list(OPTIONS), "supernet_seeds": [0],
            "methods": ["separate", "importance_sampling"], "jobs": 1, "stability_seeds": [0, 1, 2], "se": 1.0}
# the flags each part a run can skip reads: one given with the part's --no-X would be ignored (_settle)
PARTS = {"--no-tau": ("--truth", "--archs", "--options", "--supernet-seeds", "--threads", "--no-signal"),
         "--no-stability": ("--methods", "--jobs", "--stability-seeds")}
PART_NAMES = {"--no-tau": "the τ per option", "--no-stability": "the stability table"}
# the flags of :data:`PARTS` each study reads (a study runs neither part: any other one given would be ignored;
# --truth-seeds with --retrain retrains the architectures --retrain names, and reads no --archs)
STUDY_READS = {"--one-se": (), "--replay": (), "--truth-seeds": ("--archs",)}
RECIPE = str(ROOT / "recipes" / "quickstart.yaml")  # the RECIPE left out


def _dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def _default(dest: str) -> str:
    """``(default: 20)`` for the --help of an option whose default is in :data:`DEFAULTS`."""
    value = DEFAULTS[dest]
    return f"(default: {','.join(map(str, value)) if isinstance(value, list) else value})"


def _options(given: list[str]) -> str:
    return "it is an option" if len(given) == 1 else "they are options"


def _check_study(p, a, study: str) -> None:
    """A study (``--one-se``, ``--replay``, ``--truth-seeds``) runs neither part: a flag of a part it does not
    read (:data:`STUDY_READS`; ``--archs`` with ``--retrain``), and a RECIPE or overrides where it reads each
    run's own recipe (``--one-se``: no RECIPE nor overrides; ``--replay``: no RECIPE), would be ignored: one line
    naming it, exit 2 (``p.error``)."""
    given = {skip: [f for f in flags if f not in STUDY_READS[study] and getattr(a, _dest(f)) not in (None, False)]
             for skip, flags in PARTS.items()}
    flags = [f for fs in given.values() for f in fs]
    if flags:
        parts = " and ".join(PART_NAMES[skip] for skip, fs in given.items() if fs)
        p.error(f"{', '.join(flags)}: {_options(flags)} of {parts}, which the study {study} does not run (it runs "
                f"alone, then stops): leave out one or the other")
    if study == "--truth-seeds" and a.retrain is not None and a.archs is not None:
        p.error("--archs: --truth-seeds with --retrain retrains the architectures --retrain names, not K ranking "
                "ones: leave out one or the other")
    first = [] if a.recipe is None else [a.recipe]  # None: no RECIPE given (the parser's default)
    recipe = [r for r in first if "=" not in r]
    overrides = [r for r in first if "=" in r] + a.overrides
    if study == "--one-se" and recipe + overrides:
        p.error(f"{' '.join(recipe + overrides)}: --one-se reads each run's own recipe (its recipe.resolved.yaml), "
                f"with no RECIPE or overrides: leave {'it' if len(recipe + overrides) == 1 else 'them'} out")
    if study == "--replay" and recipe:
        p.error(f"{recipe[0]}: --replay replays each run with its own recipe (its recipe.resolved.yaml) and the "
                f"overrides given, with no RECIPE: leave it out")


def _settle(p, a) -> None:
    """Before any work: :func:`_check_flags`; then a flag that would be ignored is one line naming it, exit 2
    (``p.error``): in a study, one it does not read (:func:`_check_study`); outside one, a flag of a part the run
    skips (:data:`PARTS`: ``--truth`` with ``--no-tau``, ``--jobs`` with ``--no-stability``). Then the options
    left out get their :data:`DEFAULTS`, and the RECIPE left out is :data:`RECIPE` (a first ``key=value`` in
    its place is an override)."""
    _check_flags(a)
    study = next((f for f, v in (("--one-se", a.one_se), ("--replay", a.replay), ("--truth-seeds", a.truth_seeds))
                  if v is not None), None)
    if study is not None:
        _check_study(p, a, study)
    else:
        for skip, flags in PARTS.items():
            given = [f for f in flags if getattr(a, _dest(f)) not in (None, False)]
            if getattr(a, _dest(skip)) and given:
                p.error(f"{', '.join(given)}: {_options(given)} of the part {skip} skips: leave out one or the other")
    for dest, value in DEFAULTS.items():
        if getattr(a, dest) is None:
            setattr(a, dest, list(value) if isinstance(value, list) else value)
    if a.recipe is not None and "=" in a.recipe:
        a.overrides.insert(0, a.recipe)
        a.recipe = None
    if a.recipe is None:
        a.recipe = RECIPE


def _parser():
    p = parser(__doc__)
    p.add_argument("recipe", nargs="?", default=None, help=f"(default: {RECIPE})")
    p.add_argument("overrides", nargs="*", help="recipe overrides key=value (as on `automl run`)")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-ranking"),
                   help="folder of the runs (a finished one is reused; delete it to rerun)")
    p.add_argument("--archs", type=int_at_least(3), default=None,
                   help=f"K architectures (ranking.archs: at least 3) {_default('archs')}")
    p.add_argument("--options", type=names(OPTIONS), default=None,
                   help=f"comma-separated, of {', '.join(OPTIONS)} {_default('options')}")
    p.add_argument("--no-tau", action="store_true", help="skip the τ per option")
    p.add_argument("--no-stability", action="store_true", help="skip the threads x seeds table")
    p.add_argument("--truth", default=None,
                   help="a finished run folder whose ranking retrained the K architectures (ranking.seeds=S): "
                        "its mean test loss is the truth of the τ per option, instead of two single retrainings")
    p.add_argument("--supernet-seeds", type=seed_list, default=None,
                   help="comma-separated: each option's weight phase once per seed (τ's spread over supernets) "
                        + _default("supernet_seeds"))
    p.add_argument("--threads", type=thread_count, default=None,
                   help="threads of each τ run (OMP_NUM_THREADS; default: the recipe's threads)")
    p.add_argument("--no-signal", action="store_true", help="skip the loss signal / noise per option")
    p.add_argument("--methods", type=names(METHODS), default=None,
                   help=f"comma-separated, of {', '.join(METHODS)} {_default('methods')}")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help=f"stability runs at once (each a process) {_default('jobs')}")
    p.add_argument("--stability-seeds", type=seed_list, default=None,
                   help=f"comma-separated: the stability table's seeds {_default('stability_seeds')}")
    p.add_argument("--truth-seeds", type=seed_list, default=None,
                   help="comma-separated seeds: only measure how reliable the stand-alone truth is (each K "
                        "architecture retrained once per seed, accuracy and loss), then stop")
    p.add_argument("--truth-epochs", type=positive_int, default=None,
                   help="with --truth-seeds; default retrain.epochs")
    p.add_argument("--retrain", default=None,
                   help='with --truth-seeds: a JSON file {"name": [choice, ...]}: retrain these architectures '
                        "instead of the K ranking ones (e.g. two methods' unconstrained members), then stop")
    p.add_argument("--replay", default=None,
                   help="comma-separated finished run folders (e.g. the stability runs): only replay their θ phase "
                        "with the overrides given (the first member alone for a search.method=separate run), "
                        "and report the first member's parameters and max / min, then stop")
    p.add_argument("--one-se", default=None,
                   help="comma-separated finished run folders: only apply the one-standard-error tie-breaker to "
                        "their first member (the cheapest within --se standard errors), then stop")
    p.add_argument("--se", type=positive_float, default=None,
                   help=f"with --one-se: standard errors allowed {_default('se')}")
    p.add_argument("--costlier", action="store_true",
                   help="with --one-se: the costliest change within --se standard errors instead of the cheapest")
    return p


# what each folder flag takes, for its messages (_check_folders)
FOLDER_FLAGS = {"--truth": "the folder of a finished `automl run` with a ranking (ranking.archs=K ranking.seeds=S)",
                "--one-se": "comma-separated folders of finished `automl run`s",
                "--replay": "comma-separated folders of finished `automl run`s"}


def run_folders(value: str | None) -> list[str]:
    """The folders a comma-separated --one-se or --replay names (an empty part, or spaces around one, are none)."""
    return [d.strip() for d in (value or "").split(",") if d.strip()]


def _check_folders(a) -> None:
    """Each folder --truth, --one-se and --replay name holds what the script reads (results.json; a run's
    recipe.resolved.yaml for --one-se and --replay): one that does not, or a flag given no folder, is one line
    naming the flag, the folder and what the flag takes."""
    for flag, value, files in (("--truth", a.truth, (RESULTS,)),
                               ("--one-se", a.one_se, (RESULTS, "recipe.resolved.yaml")),
                               ("--replay", a.replay, (RESULTS, "recipe.resolved.yaml"))):
        if value is None:
            continue
        folders = run_folders(value) if flag != "--truth" else [value] if value.strip() else []
        if not folders:
            raise UserError(f"{flag} {value!r} names no folder: give it {FOLDER_FLAGS[flag]}")
        for d in folders:
            for name in files:
                if not (Path(d) / name).is_file():
                    where = (f"no {name} there" + (" (a run that has not finished?)" if name == RESULTS else "")
                             if Path(d).is_dir() else "no such folder")
                    raise UserError(f"{flag} {d}: {where}; give {flag} {FOLDER_FLAGS[flag]}")


def _check(a) -> dict | None:
    """What can be checked before any run or folder is made: the flags, the folders given, and the recipe with its
    overrides (a mistake must not cost the truth's retrainings first, nor leave an empty --out). Returns the
    --truth run's ranking where the τ per option reads it (:func:`checked_truth`), else None."""
    if a.no_tau and a.no_stability and not (a.replay or a.truth_seeds or a.one_se):  # nothing would be measured
        raise UserError("--no-tau and --no-stability together skip both parts: nothing to measure; leave one out, "
                        "or run a study (--truth-seeds, --replay or --one-se)")
    _check_folders(a)
    for d in run_folders(a.one_se):  # each run's members, before the first run's supernet is loaded
        run_results(d, Members[Choices], ONE_SE_FIX)
    for flag, value in (("--one-se", a.one_se), ("--replay", a.replay)):
        for d in run_folders(value):  # each run's method, before the first run is loaded
            check_trains_a_supernet(flag, Path(d))
    if a.retrain:
        retrain_spec(a.retrain)
    truth_rk = None
    if a.truth and not (a.no_tau or a.replay or a.one_se or a.truth_seeds):
        truth_rk = checked_truth(Path(a.truth), a.archs)
    if not (a.replay or a.one_se):
        recipe = load_recipe(a.recipe, a.overrides)
        # the truth (and the truth study) retrains for retrain.epochs: 0 would score untrained networks
        study = a.truth_seeds is not None
        retrains = a.truth_epochs is None if study else not (a.no_tau or a.truth)
        if retrains and recipe.retrain.epochs == 0:
            raise UserError(f"{a.recipe}: retrain.epochs is 0: the truth is the K architectures retrained stand-alone "
                            f"for retrain.epochs; give retrain.epochs >= 1"
                            + (" or --truth-epochs" if study else ", --truth RUN_DIR or --no-tau"))
    return truth_rk


def main(argv: list[str]) -> None:
    p = _parser()
    a = p.parse_args(argv)
    _settle(p, a)  # flags that would be ignored are refused; the others' defaults (and RECIPE's) filled in
    truth_rk = _check(a)  # the --truth run's ranking, read and checked once, where the τ per option reads it
    if a.threads is not None:
        warn_threads(a.threads, "so the runs only take longer")
    out = out_folder(a.out)
    if a.replay or a.truth_seeds or a.one_se:
        return _one_study(a, out)
    combos = [] if a.no_stability else [(m, t, sd) for m in a.methods for t in (1, 2) for sd in a.stability_seeds]
    check_stopped_runs(a, out, combos)
    if not a.no_tau:
        seeds = a.supernet_seeds
        if a.truth:
            t, choices, n = truth_of(truth_rk)
            rows = tau_per_option(a, out, t, None, choices, seeds)
            size = kendall_tau_b([e["params"] for e in truth_rk["archs"]], t)
            emit("ranking_tau", rows, archs=a.archs, truth=a.truth, truth_seeds=n, params_tau=size)
        else:
            t0, t1 = truth(a.recipe, a.overrides, out, a.archs, 0), truth(a.recipe, a.overrides, out, a.archs, 1)
            print(f"retraining noise: τ(seed 0, seed 1) = {kendall_tau_b(t0, t1):.3f}, ρ = {spearman(t0, t1):.3f}")
            rows = tau_per_option(a, out, t0, t1, None, seeds)
            emit("ranking_tau", rows, archs=a.archs, truth_seed0=t0, truth_seed1=t1,
                 retrain_noise_tau=kendall_tau_b(t0, t1))
    if combos:
        results = stability_runs(a, out, combos)
        rows = [{"method": m, "threads": t, "seed": sd, "params": [x["params"] for x in res["architectures"]]}
                for (m, t, sd), res in zip(combos, results)]
        for method in a.methods:  # before the table and its JSON line, which ends the output
            params = [r["params"][0] for r in rows if r["method"] == method]
            print(f"{method}: most accurate member {min(params):,}-{max(params):,} parameters, "
                  f"max/min {max(params) / min(params):.2f}")
        emit("ranking_stability", rows)


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
