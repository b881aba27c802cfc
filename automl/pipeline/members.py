"""The N members of a run's family: one per ε, one per budget, or (random search) one per sample."""

from __future__ import annotations

from dataclasses import dataclass

from automl.pipeline.state import RunState
from automl.report import UNCONSTRAINED, budget_text, short_number

__all__ = ["Members"]


@dataclass(frozen=True)
class Members:
    epsilons: list[float] | None       # search.epsilons (None with budgets)
    budgets: list[float | None] | None  # search.budgets, total costs in the metric's units
    sampled: bool                       # random search: no ε
    n: int
    # random search: search.random_budgets, totals of the retrained network (None without)
    random_budgets: list[float] | None = None
    metric: str = "params"              # search.cost: a latency budget is in milliseconds

    @classmethod
    def of(cls, search, sampled: bool) -> "Members":
        if search.budgets is not None:
            n = len(search.budgets)
        elif sampled and search.random_budgets:
            n = len(search.random_budgets)
        else:
            n = len(search.epsilons)
        eps = None if search.epsilons is None else [float(e) for e in search.epsilons]
        drawn = search.random_budgets if sampled and search.budgets is None else None
        return cls(eps, search.budgets, sampled, n, drawn, search.cost)

    def epsilon(self, i: int, state: RunState) -> float | None:
        """ε of member ``i``: the recipe's, or with budgets the final adapted value (None for random)."""
        if self.sampled:
            return None
        if self.budgets is not None:
            final = (state.final_epsilons or [None] * self.n)[i]
            return None if final is None else float(final)
        return self.epsilons[i]

    def budget(self, i: int) -> float | None:
        """search.budgets[i]: the bound of member ``i``'s total cost in the search space's table (results.json's
        ``cost``), None without search.budgets or for an unconstrained member."""
        return None if self.budgets is None else self.budgets[i]

    def retrained_budget(self, i: int) -> float | None:
        """search.random_budgets[i]: the bound the random baseline drew member ``i`` under, of the retrained
        network's total cost (the retraining space's table, with retrain.space_args); None without."""
        return None if self.random_budgets is None else float(self.random_budgets[i])

    def bound(self, i: int) -> float | None:
        """The bound member ``i`` was searched or drawn under, as its export's manifest records it (``budget``):
        search.budgets[i] (:meth:`budget`), else the random baseline's search.random_budgets[i]
        (:meth:`retrained_budget`, of the exported network: the manifest's ``cost``); None without either, or
        for an unconstrained member."""
        return self.budget(i) if self.random_budgets is None else self.retrained_budget(i)

    def tag(self, i: int, state: RunState) -> str:
        """How logs (and metrics.jsonl's phases) name member ``i``, in report.md's words and numbers: ``eps=0.3``
        (``eps=0``, as the report's ``ε=0`` and the folder ``eps-0``), ``budget=150k`` (``budget=0.05 ms`` for a
        latency), ``unconstrained`` for a member of search.budgets without one (null), ``random 2``. A budget
        whose short form another member's shares (1,234,567 and 1,235,000 are both ``1.235M``) is given in full
        (``budget=1,234,567``); one the random baseline repeats is told apart by the member's index (``budget=50k
        #1``, as its folder ``budget-1-50k``)."""
        if self.budgets is not None:
            b = self.budget(i)
            if b is None:
                return UNCONSTRAINED
            again = f" #{i}" if self.budgets.count(b) > 1 else ""
            return f"budget={budget_text(b, self.budgets, self.metric)}{again}"
        eps = self.epsilon(i, state)  # the recipe's (two alike in 6 digits, one folder, are refused there)
        return f"eps={eps:g}" if eps is not None else f"random {i}"

    def member(self, i: int, state: RunState) -> str:
        """Member ``i`` in a sentence: ``the unconstrained member``, ``member budget=150k``, ``member eps=0``."""
        tag = self.tag(i, state)
        return f"the {tag} member" if tag == UNCONSTRAINED else f"member {tag}"

    def folder(self, i: int, state: RunState) -> str:
        """The export folder of member ``i``: ``eps-0.3``, ``budget-1-150k``, ``random-2``."""
        if self.budgets is not None:
            b = self.budget(i)
            return f"budget-{i}-" + ("none" if b is None else short_number(b))
        eps = self.epsilon(i, state)
        return f"eps-{eps:g}" if eps is not None else f"random-{i}"

