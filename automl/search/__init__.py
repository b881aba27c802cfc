"""Architecture searchers: the multi-epsilon engine (eq. 9-10), random search, cost normalisation,
the exact within-budget derivation.

The engine knows only the numbers of choices, the cost table and the losses it is told, so it can
drive any black-box objective. See docs/search-engine.md.
"""

from ._base import Searcher
from ._context import ContextCosts, cost_extremes
from ._costs import cost_scale, normalize_context, normalize_costs
from ._knapsack import best_within_budget
from ._multi_epsilon import MultiEpsilonSearch
from ._random import RandomSearch
from ._registry import (SearchMethod, SearchProblem, UnknownSearcher, get_searcher, register_searcher, searcher_names,
                        supernet_methods)

__all__ = ["MultiEpsilonSearch", "RandomSearch", "Searcher", "normalize_costs", "cost_scale", "best_within_budget",
           "ContextCosts", "cost_extremes", "normalize_context", "register_searcher", "get_searcher", "searcher_names",
           "SearchMethod", "SearchProblem", "UnknownSearcher", "supernet_methods"]
