"""The interface every searcher implements (ask / tell / best), after Optuna's ``BaseSampler``."""

from __future__ import annotations

import abc
from typing import Any

import torch

__all__ = ["Searcher"]


class Searcher(abc.ABC):
    """A black-box architecture searcher over ``D`` categorical decisions.

    A searcher knows only the number of choices of each decision (and, for some, a cost table); it
    proposes architectures with :meth:`ask`, learns from their losses with :meth:`tell` and reports
    its current answer with :meth:`best`. Architectures are ``LongTensor (rows, D)`` of choice indices.

    Subclasses own their seeded RNG, and their :meth:`state_dict` holds plain tensors and Python
    values only, so it survives ``torch.save`` / ``torch.load(weights_only=True)``; a searcher
    restored from it continues exactly as the original would have.
    """

    #: K_d, the number of choices of each decision.
    num_choices: list[int]

    @property
    def num_decisions(self) -> int:
        """D, the number of decisions."""
        return len(self.num_choices)

    @property
    @abc.abstractmethod
    def num_distributions(self) -> int:
        """N, the number of answers :meth:`best` returns (one per epsilon or budget)."""

    @abc.abstractmethod
    def ask(self) -> torch.Tensor:
        """Architectures to evaluate next: ``LongTensor (rows, D)``."""

    @abc.abstractmethod
    def tell(self, arch: torch.Tensor, losses: Any) -> None:
        """Learn from the losses (lower is better) of the architectures ``arch`` returned by :meth:`ask`."""

    @abc.abstractmethod
    def best(self) -> torch.Tensor:
        """The current answer: ``LongTensor (num_distributions, D)``."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue identically, RNG included."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; raises ``ValueError`` if it belongs to a different configuration."""
