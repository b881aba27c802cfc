"""How the weight phase samples its λ paths per step (``search.weight_sampling``).

* ``uniform`` — :func:`uniform_archs`, the paper's eq. 3: every decision uniform and independent (the weight
  stage picks the rule in ``automl.pipeline.search_stages.path_sampler``).
* ``fair`` — :func:`fair_archs`, FairNAS's strict fairness: in each step every choice of every decision is
  on as equal a number of the λ paths as possible (exactly λ/K_d each when K_d divides λ); with elastic
  depth, given the cost table's ``gates``, a layer's choices are as equal over the paths that keep the layer.
  With λ below a decision's K_d a step trains only λ of its choices: the run warns once
  (:func:`fair_shortfall`, naming ``search.lam`` and the largest K_d).
* ``sandwich`` — :func:`sandwich_archs`, BigNAS's sandwich rule: the largest and the smallest architecture
  (:func:`sandwich_ends`; on a cell space the smallest with no ``none`` edge) in every step, the other λ − 2
  uniform.
"""

from __future__ import annotations

import copy
import math

import torch

from automl.limits import MAX_LAM

__all__ = ["fair_archs", "fair_shortfall", "sandwich_archs", "sandwich_ends", "uniform_archs"]

ZERO_OP = "none"  # the cell op whose output is zeros (automl.nn.ops.Zero): the edge is absent


def uniform_archs(num_choices, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` architectures, every decision uniform and independent."""
    k = torch.tensor(num_choices, dtype=torch.float64)
    u = torch.rand(n, len(k), generator=generator, dtype=torch.float64)
    # kept on the CPU: the supernet only reads the indices in Python (moving them to the GPU and back
    # would cost a host sync per path)
    return (u * k).long().clamp_max(k.long() - 1)


def fair_archs(num_choices, lam: int, generator: torch.Generator, gates=None) -> torch.Tensor:
    """(λ, D) architectures whose column d is ⌈λ/K_d⌉ random permutations of 0..K_d−1 end to end, cut to λ.

    Every choice of decision d appears ⌊λ/K_d⌋ or ⌈λ/K_d⌉ times; which choices get the extra count is random,
    so each row is still uniform on every decision (a row's value is one entry of a random permutation), and
    the columns are independent, so Algorithm 1 sees the same marginal distribution as with uniform sampling.

    ``gates`` (elastic depth, the cost table's: gated decision -> (its depth decision, whether its layer is
    there per choice of the depth decision)): a gated decision's choice trains only on the paths that keep its
    layer, so its column's entries go, in order, first to those rows and then to the others: the paths that
    keep the layer train its choices as equally as possible too. The numbers drawn are the same as without
    ``gates``; a row's value is still one entry of a random permutation, drawn independently of the depth.

    With λ below the largest K_d, a step trains at most λ of that decision's choices (the others get no update
    in it): :func:`fair_shortfall` says so, and the run warns once.
    """
    cols = [_permutations(int(k), lam, generator) for k in num_choices]
    for d, (g, on) in (gates or {}).items():
        kept = torch.tensor(on, dtype=torch.bool)[cols[g]]
        col = torch.empty_like(cols[d])
        col[kept], col[~kept] = cols[d][:int(kept.sum())], cols[d][int(kept.sum()):]
        cols[d] = col
    return torch.stack(cols, 1) if cols else torch.zeros(lam, 0, dtype=torch.long)


def fair_shortfall(num_choices, lam: int) -> str | None:
    """The warning for fair sampling with ``lam`` (``search.lam``) paths per step below the largest number of
    choices K_d of a decision, whose choices then cannot all train in one step; None when every K_d ≤ λ."""
    ks = sorted({int(k) for k in num_choices})
    if not ks or ks[-1] <= lam:
        return None
    kmax, lcm = ks[-1], math.lcm(*ks)
    exact = (f" ({lcm}, a multiple of every decision's number of choices, trains them all equally)"
             if kmax < lcm <= MAX_LAM else "")
    return (f"warning: search.weight_sampling fair with search.lam {lam}: the space has a decision of {kmax} choices, "
            f"so each weight step trains at most {lam} of them and the others get no update in that step; "
            f"FairNAS's strict fairness (every choice trained equally in every step) needs search.lam of at least "
            f"{kmax}{exact}; raise search.lam, or set search.weight_sampling: uniform")


def _permutations(k: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """⌈n/k⌉ random permutations of 0..k−1 end to end, cut to n."""
    return torch.cat([torch.randperm(k, generator=generator) for _ in range(-(-n // k))])[:n]


def sandwich_ends(space, metric: str = "params") -> tuple[torch.Tensor, torch.Tensor]:
    """BigNAS's largest and smallest architectures of a compiled space: those of the most and the least
    ``metric`` (the cost table's exact extremes, with elastic depth and width), at the largest and the
    smallest input size where the resolution is a decision.

    The smallest is the cheapest architecture in which every node of a cell reads its inputs: an op decision
    of a cell takes no ``none`` (zeros) where it has another choice, since the cheapest of all, every edge
    ``none``, makes every cell output zeros and its path trains the classifier on nothing. A chain space's
    ``skip`` passes its input on, so its smallest is the table's cheapest."""
    table = space.cost_table
    largest, smallest = table.most_expensive(metric), _flowing(table, _zero_choices(space)).cheapest(metric)
    if space.resolution_dec is not None:
        sizes = torch.tensor(space.resolutions)
        largest[space.resolution_dec], smallest[space.resolution_dec] = sizes.argmax(), sizes.argmin()
    return largest, smallest


def _zero_choices(space) -> list[tuple[int, int]]:
    """``(decision, choice)`` of every ``none`` op of a cell space's op decisions that have another choice."""
    if space.kind != "cell":
        return []
    out = []
    for template in space.plan.templates:
        for node in template.nodes:
            for d in node.op_decisions:
                choices = space.decisions[d].choices
                if any(c != ZERO_OP for c in choices):
                    out.extend((d, k) for k, c in enumerate(choices) if c == ZERO_OP)
    return sorted(set(out))


def _flowing(table, excluded: list[tuple[int, int]]):
    """``table``, or a shallow copy whose choice mask leaves out ``excluded`` (its extremes then never pick
    them; the costs are shared, not copied)."""
    if not excluded:
        return table
    narrowed = copy.copy(table)
    narrowed.mask = table.mask.clone()
    for d, k in excluded:
        narrowed.mask[d, k] = False
    return narrowed


def sandwich_archs(num_choices, ends: tuple[torch.Tensor, torch.Tensor], lam: int,
                   generator: torch.Generator) -> torch.Tensor:
    """(λ, D): rows 0 and 1 the pair ``ends`` (the largest and the smallest architecture,
    :func:`sandwich_ends`), rows 2.. uniform."""
    return torch.cat([torch.stack(ends), uniform_archs([int(k) for k in num_choices], lam - 2, generator)])
