"""M supernets of one space trained independently, scored together (``search.supernets: M``).

A weight-sharing supernet's loss for a path carries the noise of its own training (initialisation, path
sequence, data order): on digits two supernets trained alike but for the seed order the same 20
architectures at Kendall τ 0.48–0.66 with each other (docs/search-engine.md, "Several supernets"). An
ensemble averages that noise: the θ phase and the ranking score a path by the mean of its members' losses
on it (:func:`path_outputs` gives each member's logits, which :func:`automl.train.loops.path_losses` and
:func:`automl.train.loops.evaluate` score one by one and average), an estimate of the architecture's loss
with one supernet's training noise averaged out. The module's forward is the ensemble's prediction, the
log of the members' mean probability ``log (1/M Σ_m softmax(f_m(x, a)))``, which is not what a search
ranks by: its loss also rewards the members' disagreement on a path, which says nothing about the
architecture (on digits it ranked worse: docs/search-engine.md, "Several supernets"). Each member is trained
on its own loss (the weight stage steps them one after the other; nothing is shared), so the members stay
independent.

The state_dict is ``members.{m}.…`` with each member's own supernet state_dict below it;
:func:`member_weights` gives one member's (weight inheritance and export take member 0: an ensemble is not
one network). A single supernet (M = 1) is the plain :class:`~automl.nn.supernet.Supernet`, not wrapped.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SupernetEnsemble", "ensemble_size", "member_weights", "path_outputs"]

PREFIX = "members."


class SupernetEnsemble(nn.Module):
    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble has at least two supernets; use the supernet itself for one")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor, arch: torch.Tensor) -> torch.Tensor:
        """Log of the members' mean probability for each class on path ``arch``: (B, classes), float32 (float64
        for an ensemble in float64)."""
        logp = torch.stack([F.log_softmax(_at_least_float32(m(x, arch)), 1) for m in self.members])
        return torch.logsumexp(logp, 0) - math.log(len(self.members))

    def path_params(self, arch) -> int:
        """The parameters of one member's path (the network an architecture is)."""
        return self.members[0].path_params(arch)

    def path_modules(self, arch) -> list[nn.Module]:
        return self.members[0].path_modules(arch)


def _at_least_float32(logits: torch.Tensor) -> torch.Tensor:
    """``logits`` in float32 (from bf16/fp16 under autocast), or as they are in float64."""
    return logits if logits.dtype == torch.float64 else logits.float()


def path_outputs(net: nn.Module, x: torch.Tensor, arch: torch.Tensor) -> list[torch.Tensor]:
    """The logits of path ``arch`` in each supernet ``net`` holds: one per member of an ensemble,
    ``[net(x, arch)]`` for a single supernet. Scores average over them (the members' mean loss)."""
    if isinstance(net, SupernetEnsemble):
        return [m(x, arch) for m in net.members]
    return [net(x, arch)]


def ensemble_size(weights: dict) -> int:
    """M of a supernet state_dict: the number of members of an ensemble's, 1 for a single supernet's."""
    if not weights or not all(k.startswith(PREFIX) for k in weights):
        return 1
    return len({k[len(PREFIX):].split(".", 1)[0] for k in weights})


def member_weights(weights: dict, m: int = 0) -> dict:
    """Member ``m``'s supernet state_dict out of an ensemble's; a single supernet's is returned as it is
    (for m = 0)."""
    if ensemble_size(weights) == 1:
        if m:
            raise IndexError(f"a single supernet has no member {m}")
        return weights
    p = f"{PREFIX}{m}."
    out = {k[len(p):]: v for k, v in weights.items() if k.startswith(p)}
    if not out:
        raise IndexError(f"the ensemble has no member {m}")
    return out
