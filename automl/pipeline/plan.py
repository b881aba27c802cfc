"""The run as data: the list of stage objects a recipe asks for (paper §3.3, §4; Algorithms 1–3).

=====================  ============================================================================
searcher mode          search stages (then ``retrain/i`` for each of the N members, ``ranking/j``
                       (and ``ranking/j/s`` for s = 1 … ranking.seeds − 1) for each of the ranking
                       section's K architectures, and ``report``)
=====================  ============================================================================
joint                  weights (uniform sampling, eq. 3) -> theta (all N at once; importance_sampling)
per_member             weights -> theta/0 … theta/N-1 (one ε each; separate, eq. 7)
interleaved            simultaneous/0 … /N-1 (fresh W per ε, W and θ steps interleaved; Alg. 2)
sample                 random (architectures sampled, optionally within cost budgets)
=====================  ============================================================================

With a reused supernet (``supernet:``) the ``weights`` stage takes the other run's trained weights
instead of training them. Every stage object has a ``key`` and ``run(ctx, state, idx)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import torch

from automl.errors import UserError
from automl.pipeline.context import RunContext
from automl.pipeline.final_stages import Exporter, RankingStage, RecordedRankings, RetrainStage
from automl.pipeline.members import Members
from automl.pipeline.results import ReportStage, ranking_epochs, ranking_seeds
from automl.pipeline.reuse import FLAG, FORCE_FLAG, ReusedWeightsStage
from automl.pipeline.search_stages import SampleStage, SimultaneousStage, ThetaStage, WeightsStage
from automl.pipeline.setup import EngineCosts, Spaces, below_smallest, cost_unit, engine_costs
from automl.pipeline.state import RunState
from automl.ranking import exact_costs, select_archs
from automl.report import round_sig, short_number
from automl.search import SearchMethod, SearchProblem

__all__ = ["Stage", "Plan", "build_plan", "search_problem", "ranking_archs"]


class Stage(Protocol):
    key: str

    def run(self, ctx: RunContext, state: RunState, idx: int) -> None: ...


@dataclass
class Plan:
    stages: list[Stage]
    members: Members
    method: SearchMethod

    @property
    def report(self) -> ReportStage:
        return self.stages[-1]

    @property
    def keys(self) -> list[str]:
        return [s.key for s in self.stages]


def _sampled_problem(recipe, spaces: Spaces, group: list[int]):
    """The random baseline's raw cost table, budgets and options for the members ``group``: search.budgets are
    totals as results.json reports cost (the search space's table); random_budgets are for the network that is
    trained and deployed (the retraining space's). A budget below the smallest network, or a search.random_band
    above the largest, is refused here, at start-up."""
    s = recipe.search
    key, space, totals = (("budgets", spaces.search, s.budgets) if s.budgets is not None
                          else ("random_budgets", spaces.retrain, s.random_budgets))
    if not totals:
        return None, None, {}
    # exact totals with elastic width too; elastic depth's gates leave the layers it drops out (CostTable.total)
    raw = engine_costs(space, s.cost, normalize=False)
    ct, where, band = space.cost_table, f"{recipe.source}: " if recipe.source else "", s.random_band
    low, high = ct.min_total(s.cost), ct.max_total(s.cost)  # exact; so are RandomSearch's own checks (gates)
    context, u = [], cost_unit(s.cost)
    for i in group:
        b = totals[i]
        if b is not None and b < low:
            raise below_smallest(recipe, key, i, b, space, low, null_ok=key == "budgets")
        if b is None or band is None:
            continue
        asks = (f"{where}search.random_band: {band:g} asks search.{key}[{i}] = {short_number(b)} for a network "
                f"of {short_number(band * b)} to {short_number(b)}{u} {s.cost}")
        if band * b > high:
            raise UserError(f"{asks}, above the largest network of {space.name} ({high:,.6g}{u}); lower "
                            f"search.random_band to at most {round_sig(high / b, up=False):g}, or the budget to "
                            f"at most {round_sig(high / band, up=False):,g}{u}")
        context.append(asks)
    options = {"random_band": band, "cost_fixed": raw.fixed, "cost_gates": space.cost_table.gates,
               "band_context": context, "budget_key": f"{where}search.{key}[{group[0]}]"}
    return raw.costs, raw.budgets(totals), options


def search_problem(recipe, members: Members, group: list[int], spaces: Spaces, costs: EngineCosts,
                   device: torch.device) -> SearchProblem:
    """The problem of a searcher serving the members ``group``: their ε or budgets in the engine's units, or
    (``members.sampled``, the random baseline) the raw cost table and budgets of the deployed network, with
    search.random_band."""
    s = recipe.search
    options = {"theta_lr": s.theta_lr, "theta_min": s.theta_min, "utility": s.utility}
    if members.sampled:
        table, budgets, sampled = _sampled_problem(recipe, spaces, group)
        options.update(sampled)
        epsilons = None
    else:
        table, budgets = costs.costs, (costs.budgets(s.budgets) if s.budgets is not None else None)
        epsilons = None if members.epsilons is None else [members.epsilons[i] for i in group]
    return SearchProblem(list(spaces.search.num_choices), table, list(group), epsilons,
                         None if budgets is None else [budgets[i] for i in group], s.lam, recipe.seed, device,
                         options)


def build_plan(recipe, out: Path, method: SearchMethod, spaces: Spaces, costs: EngineCosts,
               device: torch.device, threads=None, *, given=FLAG, forced: str = FORCE_FLAG) -> Plan:
    """The stages of ``recipe`` run by ``method`` into ``out``; the last, ``report``, writes results.json
    (``threads``: the run's thread choice, which results.json records). ``given`` and ``forced``: how the recipe's
    ``supernet`` and ``supernet_force`` were given, which a reused supernet's messages name
    (:class:`~automl.pipeline.reuse.ReusedWeightsStage`)."""
    s, seed = recipe.search, recipe.seed
    members = Members.of(s, sampled=method.mode == "sample")
    groups = [list(range(members.n))] if method.mode == "joint" else [[i] for i in range(members.n)]
    problems = [search_problem(recipe, members, g, spaces, costs, device) for g in groups]
    stages: list[Stage] = []
    if method.needs_supernet:
        stages.append(ReusedWeightsStage(recipe.supernet, recipe.supernet_force, s.supernets, given, forced)
                      if recipe.supernet else WeightsStage(s, recipe.optim, seed))
    if method.mode == "joint":
        stages.append(ThetaStage(method, problems[0], members, s, seed))
    elif method.mode == "per_member":
        stages += [ThetaStage(method, p, members, s, seed, member=p.members[0]) for p in problems]
    elif method.mode == "interleaved":
        stages += [SimultaneousStage(method, p, members, s, recipe.optim, seed, p.members[0],
                                     keep_weights=recipe.retrain.epochs == 0) for p in problems]
    else:
        stages.append(SampleStage(method, problems, members.n))
    exporter = Exporter(recipe, out)
    stages += [RetrainStage(i, members, recipe.retrain, seed, exporter) for i in range(members.n)]
    if recipe.ranking is not None:
        archs = ranking_archs(spaces.search, s.cost, recipe.ranking.archs)
        rt = recipe.retrain.model_copy(update={"epochs": ranking_epochs(recipe)})  # the same settings, its length
        earlier = RecordedRankings(archs, rt.epochs)  # read once, for every ranking stage
        stages += [RankingStage(j, archs, recipe.ranking, rt, s.cost, seed, k, earlier)
                   for j in range(recipe.ranking.archs) for k in range(ranking_seeds(recipe))]
    stages.append(ReportStage(recipe, out, members, method.name, costs, threads))
    return Plan(stages, members, method)


def ranking_archs(space, cost: str, k: int):
    """The ranking section's K architectures, chosen once (on first use)."""

    @lru_cache(maxsize=1)
    def archs() -> torch.Tensor:
        # seed 0, not the recipe's: the same K architectures in every run of the space, so τ compares
        # across seeds and settings
        # exact totals where elastic depth or width makes the additive table an approximation
        ct = space.cost_table
        return select_archs(space.num_choices, ct.costs(cost), k, seed=0, exact=exact_costs(ct, cost))
    return archs
