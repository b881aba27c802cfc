"""A run's pieces without a run: for scripts that study one part of it (``benchmarks/ranking.py``).

:func:`open_workspace` does a run's start-up (spaces compiled once, data, cost table) and nothing else: no
output folder, no threads, no checkpoint. Its methods build what the stages build, the same way (the
supernet seeded as stage ``idx`` seeds it, a searcher from the registry), so a script reproduces a run's
phase exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from automl.pipeline.members import Members
from automl.pipeline.plan import ranking_archs, search_problem
from automl.pipeline.search_stages import supernet_from_state
from automl.pipeline.setup import (EngineCosts, Spaces, check_shapes, load_spaces, recipe_costs, recipe_data,
                                   recipe_device)
from automl.search import Searcher, get_searcher
from automl.train.distributed import DistInfo

__all__ = ["Workspace", "open_workspace"]


@dataclass
class Workspace:
    recipe: Any
    info: DistInfo
    device: torch.device
    spaces: Spaces
    data: Any
    costs: EngineCosts

    @property
    def members(self) -> Members:
        return Members.of(self.recipe.search, sampled=get_searcher(self.recipe.search.method).mode == "sample")

    def supernet(self, weights: dict, idx: int = 1) -> nn.Module:
        """The supernet with trained ``weights``, as stage ``idx`` builds it (the θ stage is 1)."""
        return supernet_from_state(self.spaces.search, self.device, weights, self.recipe.seed, idx)

    def searcher(self, group: list[int], method: str | None = None) -> Searcher:
        """The searcher of the members ``group`` (indices into ε or budgets), as the θ stage creates it."""
        m = self.members
        return get_searcher(method or self.recipe.search.method).create(
            search_problem(self.recipe, m, group, self.spaces, self.costs, self.device))

    def ranking_archs(self, k: int | None = None) -> torch.Tensor:
        """The ranking section's K architectures (the same K in every run of the space)."""
        return ranking_archs(self.spaces.search, self.recipe.search.cost, k or self.recipe.ranking.archs)()

    def bn_batches(self, n: int) -> list[torch.Tensor]:
        return self.data.bn_batches(n)


def open_workspace(recipe, device: torch.device | None = None, info: DistInfo | None = None) -> Workspace:
    info = info or DistInfo()
    device = device if device is not None else recipe_device(recipe, info)
    spaces = load_spaces(recipe, timed=False)  # a workspace times no export
    data = recipe_data(recipe, device, info)  # data not found where the recipe says: located at its key
    check_shapes(recipe, spaces, data)
    return Workspace(recipe, info, device, spaces, data,
                     recipe_costs(recipe, spaces.search))
