"""results.json from the run's state, and the report stage that writes it with report.md and the plots."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import torch

from automl._io import UnreadableText, atomic_write_json, pasted_path, path_problem, read_utf8_text, write_fix
from automl.errors import UserError
from automl.export.manifest import json_cost, whole_metric
from automl.nn.measure import count_macs
from automl.pipeline.context import RunContext, written_on_main
from automl.pipeline.members import Members
from automl.pipeline.setup import EngineCosts
from automl.pipeline.state import RunState
from automl.ranking import summarize
from automl.report import ranking_problem, write_report
from automl.search import get_searcher

__all__ = ["SEARCH_PHASES", "PARTIAL", "COMPUTED_ON", "build_results", "ranking_epochs", "ranking_seeds",
           "ranking_results", "recorded_retrainings", "reusable_retrainings", "computed_on", "same_computation",
           "partial_ranking", "superseded", "metrics_length", "read_results", "carry_over", "exported_macs",
           "device_record", "json_ranking_costs", "ReportStage"]

SEARCH_PHASES = ("weights", "theta", "simultaneous", "random")  # the phases search_seconds adds up
# results.json's record of an `automl rank` stopped part-way: its retrainings so far (the ranking's shape) and
# the length of metrics.jsonl after the last of them
PARTIAL = "ranking_partial"
# a ranking entry's record (in the checkpoint only, never in results.json) of how each of its retrainings was
# computed: {seed: computed_on(ctx)}; a run resumed with another device or process count mixes them
COMPUTED_ON = "computed_on"


def ranking_epochs(recipe) -> int:
    """The ranking's stand-alone epochs: ``ranking.retrain_epochs``, or ``retrain.epochs`` when null."""
    rk = recipe.ranking
    return recipe.retrain.epochs if rk.retrain_epochs is None else rk.retrain_epochs


def ranking_seeds(recipe) -> int:
    """Retrainings per ranked architecture: ``ranking.seeds``, or 1 when the ranking retrains for 0 epochs
    (the supernet's own weights, which do not depend on a seed)."""
    return recipe.ranking.seeds if ranking_epochs(recipe) > 0 else 1


def recorded_retrainings(recipe, ranking: dict | None, choices: list[list[str]]) -> dict[tuple[int, int], dict]:
    """The stand-alone retrainings an earlier ranking of the same run recorded in results.json (``ranking``),
    usable again: ``{(j, seed): {test_loss, test_accuracy, params}}`` for architecture j of ``choices`` (the
    ranking's architectures now), when that ranking retrained the same architectures for the same number of
    epochs (the retrain section is the run's own, and retraining ``seed`` is a pure function of it). Empty
    when there is none, or it retrained for 0 epochs (the supernet's weights: evaluated again, cheaply), or it
    is not as this automl writes it (results.json edited or damaged: its retrainings are run again)."""
    return _retrainings_of(ranking_epochs(recipe), ranking, choices)


def _retrainings_of(epochs: int, ranking, choices: list[list[str]]) -> dict[tuple[int, int], dict]:
    """:func:`recorded_retrainings` of a ranking of ``epochs``-epoch retrainings."""
    if not isinstance(ranking, dict) or epochs == 0 or ranking.get("retrain_epochs") != epochs:
        return {}
    archs = ranking.get("archs")
    if not isinstance(archs, list) or [a.get("choices") if isinstance(a, dict) else None for a in archs] != choices:
        return {}
    found = {}
    for j, a in enumerate(archs):
        retrainings = a.get("retrainings", [])
        if not isinstance(retrainings, list) or not all(_a_retraining(r) for r in retrainings):
            return {}
        if retrainings and not _whole(a.get("params")):
            return {}
        found.update({(j, r["seed"]): {"test_loss": _number(r["test_loss"]),
                                       "test_accuracy": _number(r["test_accuracy"]), "params": a["params"]}
                      for r in retrainings})
    return found


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _a_retraining(r) -> bool:
    """Whether ``r`` is one retraining as results.json records it: a whole seed, a test loss and accuracy (a
    number, or null for a non-finite one)."""
    return (isinstance(r, dict) and _whole(r.get("seed"))
            and all(k in r and (r[k] is None or isinstance(r[k], (int, float)) and not isinstance(r[k], bool))
                    for k in ("test_loss", "test_accuracy")))


def computed_on(ctx: RunContext) -> dict:
    """What a retraining's result depends on besides its architecture, epochs and seed, as results.json records
    it: the device (float rounding differs between a CPU and a GPU, and between GPU models) and the number of
    processes (data.batch_size is per process)."""
    return {"device": device_record(ctx.device), "world_size": ctx.info.world_size}


def same_computation(record, here: dict) -> bool:
    """Whether ``record`` (a ranking section of results.json, or its :data:`PARTIAL`) says it was computed as
    ``here`` (:func:`computed_on`) says. The run's own ranking section says nothing (its retrainings are its
    checkpoint's, each with its own record: automl/pipeline/rank.py), nor does an older automl's: never."""
    return isinstance(record, dict) and all(k in record and record[k] == v for k, v in here.items())


def reusable_retrainings(results: dict, epochs: int, choices: list[list[str]],
                         here: dict) -> dict[tuple[int, int], dict]:
    """The retrainings results.json (``results``) records that a ranking of ``choices`` for ``epochs`` epochs
    computing as ``here`` would repeat (:func:`recorded_retrainings`): those of an ``automl rank`` stopped
    part-way (:data:`PARTIAL`) and of its finished ranking section, each only when computed as ``here``."""
    found: dict[tuple[int, int], dict] = {}
    for key in (PARTIAL, "ranking"):
        if same_computation(results.get(key), here):
            found.update(_retrainings_of(epochs, results[key], choices))
    return found


def _number(v: float | None) -> float:
    """A measurement as results.json holds it: null was a non-finite one (strict JSON has no NaN), read as NaN."""
    return float("nan") if v is None else v


def partial_ranking(recipe, state: RunState, choices: list[list[str]], done: set[int], metrics_bytes: int) -> dict:
    """What ``automl rank`` has measured so far (results.json's :data:`PARTIAL`): every architecture's choices,
    with ``params`` and ``retrainings`` for those in ``done`` (read again by :func:`recorded_retrainings`)."""
    archs = []
    for j, c in enumerate(choices):
        e = state.results.get(f"ranking/{j}") if j in done else None
        archs.append({"choices": c} if e is None else
                     {"choices": c, "params": e["params"], "retrainings": e["retrainings"]})
    return {"retrain_epochs": ranking_epochs(recipe), "archs": archs, "metrics_bytes": metrics_bytes}


def metrics_length(partial: dict) -> int | None:
    """The length of metrics.jsonl a :data:`PARTIAL` record holds (after its last retraining); None when it holds
    none, or not a length (results.json edited or damaged: the log is then not cut)."""
    length = partial.get("metrics_bytes")
    return length if _whole(length) and length >= 0 else None


# the most lists and objects a value in a results.json read sits in: automl writes 6 (ranking.archs[j].retrainings[s]
# .seed); a deeper one is damaged, and writing it back would recurse as deep (strict_json, json.dumps) and stop on
# Python's limit
MAX_RESULTS_DEPTH = 64


def read_results(path: Path) -> dict:
    """results.json (UTF-8, as automl writes it, whatever the locale) as a dict; {} when there is none or it is no
    such JSON object (damaged, or edited into something else: not UTF-8, not JSON, lists or objects nested deeper
    than :data:`MAX_RESULTS_DEPTH`, larger than any results.json), which its callers write anew from the run's last
    checkpoint. One that is there but cannot be read is no damaged file, and is not written anew: a user error
    (:func:`_unreadable`) that names it and says how to fix it (a folder, a link to nothing or a loop of links, a
    pipe, socket or device, a file the user may not read)."""
    again = "and run the same command again"
    problem = path_problem(path)  # a loop of links, a link to nothing, a pipe, socket or device: before any read
    if problem:
        raise UserError(f"{path} {problem}; the run's results.json must be a regular file: move {path} away "
                        f"(automl then writes a new one from the run's last checkpoint) {again}")
    try:
        results = json.loads(read_utf8_text(path, "results.json"))
    except (UnreadableText, OSError, ValueError, RecursionError):  # RecursionError: nested too deep to parse
        problem = _unreadable(path, again)
        if problem:
            raise UserError(problem) from None
        return {}
    return results if isinstance(results, dict) and not _deeper(results, MAX_RESULTS_DEPTH) else {}


def _unreadable(path: Path, again: str) -> str | None:
    """Why the run's results.json ``path``, which could not be read, is there but cannot be opened, as a user
    error's message (one line: the file, why, and the fix, then ``again``); None when it is not there, or opens
    (damaged, then)."""
    if path.is_dir():
        return (f"{path} is a folder, not the run's results.json file: move it away (automl then writes a new "
                f"results.json from the run's last checkpoint) {again}")
    try:
        with open(path, "rb"):
            return None
    except FileNotFoundError:
        return None
    except OSError as e:
        fix = (f"make it readable and writable (chmod u+rw {pasted_path(path)})"
               if e.errno in (errno.EACCES, errno.EPERM) else "fix the cause")
        return (f"{path}: cannot read it ({e.strerror or e}); automl adds to the run's results.json and writes "
                f"it again: {fix} {again}")


def _deeper(obj, limit: int) -> bool:
    """Whether a value in ``obj`` sits in more than ``limit`` lists and dicts (counted level by level, without
    recursion)."""
    level = [obj]
    for _ in range(limit + 1):
        level = [v for o in level if isinstance(o, (dict, list)) for v in (o.values() if isinstance(o, dict) else o)]
        if not level:
            return False
    return True


# results.json's record of how the run computed: a finished run resumed (its report written again, elsewhere or
# with another thread count) keeps what it recorded
HOW_COMPUTED = ("world_size", "world_sizes", "device", "threads")


def carry_over(path: Path, metrics_bytes: int | None, finished: bool,
               measures_ranking: bool) -> tuple[dict, int | None]:
    """``--resume`` (rank 0): what the resumed run keeps of the results.json in its folder, and the length
    metrics.jsonl is cut back to (None: not cut); ``metrics_bytes``: the checkpoint's length.

    The ranking ``automl rank`` recorded is kept unless the run measures its own ranking again
    (``measures_ranking``: its recipe's ranking stages are still to run; they reuse the retrainings results.json
    records, :func:`reusable_retrainings`) or report.md cannot show it (:func:`automl.report.ranking_problem`:
    edited or damaged), and so is an ``automl rank`` stopped part-way (:data:`PARTIAL`), till
    a ranking that holds all its retrainings is complete (:func:`superseded`). A ``finished`` run (only its
    report left) keeps :data:`HOW_COMPUTED` and logs nothing more: metrics.jsonl keeps the lines ``automl rank``
    logged after its last checkpoint (less a retraining a kill cut short).
    A run with stages left cuts it back to the checkpoint's length, so the partial ranking's length no
    longer holds: it is dropped from results.json at once (the retrainings it records stay usable); a write that
    fails (a full disk), and a results.json that cannot be read (:func:`read_results`), is a :class:`UserError`
    naming the file."""
    earlier = read_results(path)
    # one report.md cannot be written from (results.json edited or damaged): left out, the ranking measured again
    ranking = earlier.get("ranking")
    kept = {} if measures_ranking or not ranking or ranking_problem(ranking) else {"ranking": ranking}
    if finished:  # nothing is computed again: the record of how it was computed stays
        kept.update({k: earlier[k] for k in HOW_COMPUTED if k in earlier})
    partial = earlier.get(PARTIAL)
    if not isinstance(partial, dict):
        return kept, None if finished else metrics_bytes
    if finished:
        return {**kept, PARTIAL: partial}, metrics_length(partial)
    partial = {k: v for k, v in partial.items() if k != "metrics_bytes"}
    if "metrics_bytes" in earlier[PARTIAL]:
        try:
            atomic_write_json(path, {**earlier, PARTIAL: partial})
        except OSError as e:  # a full disk: the file is as it was, and so are the checkpoints
            raise UserError(f"--resume: cannot write {path} ({e.strerror or e}); {write_fix(e)} and run the same "
                            f"command again (the run's checkpoints and its {path.name} are intact)") from None
    return {**kept, PARTIAL: partial}, metrics_bytes


def superseded(partial, ranking) -> bool:
    """Whether a complete ranking section (``ranking``) holds every retraining the :data:`PARTIAL` record
    ``partial`` holds (the same architectures, epochs and seeds): it was part of that ranking, which is done.
    One of another ranking (another K, other epochs, more seeds) is kept for the ``automl rank`` that continues
    it."""
    if not isinstance(partial, dict) or not isinstance(ranking, dict):
        return False
    archs, done = partial.get("archs"), ranking.get("archs")
    if (partial.get("retrain_epochs") != ranking.get("retrain_epochs") or not isinstance(archs, list)
            or not isinstance(done, list) or len(archs) != len(done)):
        return False
    return all(isinstance(a, dict) and isinstance(d, dict) and a.get("choices") == d.get("choices")
               and _seeds(a) <= _seeds(d) for a, d in zip(archs, done))


def _seeds(arch: dict) -> set:
    """The seeds of a ranked architecture's retrainings (``None`` for one that is not as written)."""
    retrainings = arch.get("retrainings")
    if not isinstance(retrainings, list):
        return set()
    return {r["seed"] if isinstance(r, dict) and _whole(r.get("seed")) else None for r in retrainings}


def ranking_results(recipe, state: RunState) -> dict | None:
    """The ``ranking`` section once every architecture has all its retrainings (else None); ``seconds``: the
    time of the ranking stages (the run's ``phase_seconds`` ``ranking``)."""
    rk = recipe.ranking
    entries = [state.results.get(f"ranking/{j}") for j in range(rk.archs)] if rk else []
    if not entries or any(e is None or len(e.get("retrainings", ())) < ranking_seeds(recipe) for e in entries):
        return None
    entries = [{k: v for k, v in e.items() if k != COMPUTED_ON} for e in entries]  # the checkpoint's own record
    return {**summarize(entries, rk.truth), "retrain_epochs": ranking_epochs(recipe),
            "seconds": round(state.phase_seconds.get("ranking", 0.0), 3)}


def json_ranking_costs(ranking, table, metric: str):
    """The ranking section ``ranking`` (results.json's) with each architecture's ``cost`` (of ``metric`` in the
    search space's cost table ``table``) as results.json writes a cost
    (:func:`~automl.export.manifest.json_cost`): a count (params, MACs, a space file's metric of whole numbers)
    as an int, as a fresh run's :class:`~automl.pipeline.final_stages.RankingStage` records it, whatever wrote
    the checkpoint or the results.json it comes from. Anything that is not such a section, and a cost that is
    not a number, is left as it is (report.md does not read it)."""
    archs = ranking.get("archs") if isinstance(ranking, dict) else None
    if not isinstance(archs, list):
        return ranking
    whole = whole_metric(table, metric)
    return {**ranking, "archs": [{**a, "cost": json_cost(a["cost"], whole)} if _a_cost(a) else a for a in archs]}


def _a_cost(arch) -> bool:
    cost = arch.get("cost") if isinstance(arch, dict) else None
    return isinstance(cost, (int, float)) and not isinstance(cost, bool)


def exported_macs(space, arch: torch.Tensor, se: float = 0.0) -> float:
    """The multiply-adds (batch 1) of the network exported for ``arch``, ``space.build_standalone(arch, se)``,
    counted on it (built on the meta device) at the architecture's input shape (its resolution in an elastic
    one). For a chain space at ``se`` 0 this is the cost table's ``macs`` total (the table prices no added
    squeeze-and-excitation); for cell spaces the table approximates it (docs/space-language.md, Costs)."""
    with torch.device("meta"):
        model = space.build_standalone(arch, se=se)
    return float(count_macs(model, space.arch_input_shape(arch))[0])


def _architectures(recipe, state: RunState, members: Members, ctx: RunContext) -> list[dict]:
    search, retrain = ctx.spaces.search, ctx.spaces.retrain
    # counts (params, MACs, a space file's metric of whole numbers) as ints, as the exports' manifests write them;
    # the exported network's MACs are a count, whatever the cost tables hold
    table, metric = search.cost_table, recipe.search.cost
    whole = whole_metric(table, metric)
    archs = []
    for i, arch in enumerate(state.archs or []):
        res = state.results.get(str(i), {})
        a = torch.tensor(arch, dtype=torch.long)
        archs.append({
            "epsilon": members.epsilon(i, state),
            "budget": members.budget(i),
            # the random baseline's search.random_budgets: they bound the retrained network, not `cost`
            **({"retrained_budget": members.retrained_budget(i)} if members.random_budgets is not None else {}),
            "choices": search.decode(a),
            "params": res.get("params"),
            "se": recipe.retrain.se,  # the squeeze-and-excitation the retrained network (params) has
            "cost": json_cost(table.total(a, metric), whole),
            "test_accuracy": res.get("test_accuracy"),
            "weights": res.get("weights"),
            # the earlier member whose network (and retraining) this is: the same choices, or elastic depth's
            "same_network_as": res.get("same_network_as"),
            "onnx": res.get("onnx"),
            "onnx_error": res.get("onnx_error"),
            "macs": json_cost(exported_macs(retrain, a, recipe.retrain.se), True),
            "latency_ms": res.get("latency_ms"),
            "int8": res.get("int8"),
        })
    return archs


def device_record(device: torch.device) -> str:
    """The device a run computed on, for results.json: ``cpu``, or ``cuda (GPU NAME)`` (rank 0's GPU)."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def _processes(state: RunState, here: int) -> dict:
    """results.json's record of the run's processes: ``world_size``, its last part's count as the checkpoint records
    it (``here``, this process's, where it records none: an older automl's), whoever writes it (a finished run's
    report written again, ``automl rank``), and
    for a run resumed with another count ``world_sizes``, each part's count in order
    (:meth:`~automl.pipeline.state.RunState.note_world_size`); a run whose parts all used one count has none."""
    parts = state.world_sizes
    if not parts or len(parts) < 2:  # every part computed with the count it started with, where recorded
        return {"world_size": here if state.world_size is None else state.world_size}
    return {"world_size": parts[-1], "world_sizes": list(parts)}


def _cost_normalization(costs: EngineCosts, whole: bool) -> dict:
    """results.json's ``cost_normalization``: how the searchers' costs (metrics.jsonl's ``expected_cost``, the
    engine's budgets) relate to the cost table's: a total is ``fixed + scale * R`` for an engine cost ``R``.
    ``fixed``: the space's fixed part in the cost table's units (an int for a count, as ``cost``)."""
    return {"normalized": costs.normalized, "scale": costs.scale, "fixed": json_cost(costs.fixed, whole)}


def build_results(recipe, state: RunState, members: Members, ctx: RunContext, method: str, costs: EngineCosts,
                  threads) -> dict:
    s = recipe.search
    # the random baseline reads neither search.utility nor search.normalize_costs (it draws on the raw table:
    # automl/pipeline/plan.py _sampled_problem): null, not the recipe's unused values
    mode = get_searcher(method).mode
    sampled = mode == "sample"
    whole = whole_metric(ctx.spaces.search.cost_table, s.cost)
    return {
        "recipe": recipe.name,
        "method": method,
        # how the run used its searcher (joint, per_member, interleaved, sample): report.md reads the random
        # baseline's ways (no ε, no utility) from it, for a plugin searcher of mode sample too
        "searcher_mode": mode,
        "search_seconds": round(sum(state.phase_seconds.get(k, 0.0) for k in SEARCH_PHASES), 3),
        "phase_seconds": {k: round(v, 3) for k, v in state.phase_seconds.items()},
        "cost_metric": s.cost,
        "utility": None if sampled else s.utility,
        "cost_normalization": None if sampled else _cost_normalization(costs, whole),
        **_processes(state, ctx.info.world_size),
        # what the checkpoints record: the device of every part of the run ("cpu, then cuda (...)" for one resumed
        # on another), not this process's (a finished run's report written again, automl rank --device)
        "device": state.device or device_record(ctx.device),
        "threads": None if threads is None else threads.to_dict(),
        "supernet": state.supernet_origin,
        # the supernets the search trained (search.supernets; simultaneous: per member; random: none); a network
        # not retrained has the first one's weights
        "supernets": 0 if sampled else s.supernets,
        # how each export's latency_ms was timed: batch 1, one thread, or search.cost_table's own
        **({"latency_protocol": dict(ctx.spaces.latency)} if recipe.export.onnx else {}),
        "architectures": _architectures(recipe, state, members, ctx),
        **({"ranking": json_ranking_costs(ranking_results(recipe, state), ctx.spaces.search.cost_table, s.cost)}
           if recipe.ranking else {}),
    }


class ReportStage:
    """The last stage: results.json, report.md and the plots (rank 0); not checkpointed (it only writes).
    ``kept``: what a resumed run keeps of the folder's earlier results.json (:func:`carry_over`); ``written``:
    rank 0's write of them returned (before it tells the other ranks, which may be gone by then)."""

    key = "report"

    def __init__(self, recipe, out: Path, members: Members, method: str, costs: EngineCosts, threads):
        self.recipe, self.out, self.members, self.method, self.costs = recipe, out, members, method, costs
        self.threads = threads
        self.results: dict | None = None
        self.kept: dict = {}
        # rank 0 wrote results.json and report.md whole: the run is complete, even if a rank is lost after
        # (automl/pipeline/run.py's _finish)
        self.written = False

    def run(self, ctx: RunContext, state: RunState, idx: int) -> None:
        results = {**build_results(self.recipe, state, self.members, ctx, self.method, self.costs, self.threads),
                   **self.kept}
        # the ranking the folder's results.json recorded (automl rank's, a finished run's own; an older automl's
        # wrote its costs as floats): its costs as a fresh run writes them
        if "ranking" in self.kept:
            results["ranking"] = json_ranking_costs(results["ranking"], ctx.spaces.search.cost_table,
                                                    self.recipe.search.cost)
        if superseded(results.get(PARTIAL), results.get("ranking")):  # the ranking it was part of is complete
            del results[PARTIAL]
        self.results = results

        def write() -> None:  # rank 0 alone
            write_report(self.out, self.results, ctx.reporter)
            self.written = True

        written_on_main(ctx.info, f"the results in {self.out}", write,
                        lambda fix: f"the run's checkpoints are intact: {fix} and continue with: "
                                    f"{ctx.keeper.resume_command}")
