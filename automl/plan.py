"""The plan of a compiled space as plain data: its decisions, the network (chain layers or cells) and
its cost table, and the one check of an architecture against it.

Nothing here builds a torch module: :mod:`automl.nn` builds supernets and standalone networks from a
:class:`SpacePlan`, :mod:`automl.compile` makes one from a ``.space`` file, :mod:`automl.export` writes
one architecture out. An architecture is a LongTensor (D,) (or a sequence of D ints) of choice indices in
declaration order; :func:`check_arch` is the only place that validates one.
"""

from __future__ import annotations

import difflib
import operator
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import reduce
from typing import TYPE_CHECKING, Sequence

import numpy
import torch

from automl.errors import UserError

if TYPE_CHECKING:  # the cost table imports check_arch from here
    from automl.compile.costs import CostTable

__all__ = ["Decision", "ChainLayer", "ChainPlan", "CellNode", "CellTemplatePlan", "CellInstance", "CellPlan",
           "SpacePlan", "check_arch", "count_networks"]


def check_arch(arch, num_choices: Sequence[int], names: Sequence[str] | None = None,
               space: str | None = None) -> list[int]:
    """``arch`` (LongTensor (D,), or a sequence of ints) as a list of ints; :class:`UserError` if it is not
    one choice index per decision (``num_choices[d]`` choices; ``names``/``space`` name them in messages): a bool,
    or a float such as 1.0, is no choice index."""
    num_dec = len(num_choices)
    what = f"an architecture of {f'space {space}' if space else 'the space'} is {num_dec} choice indices"
    if isinstance(arch, torch.Tensor):
        if arch.dim() != 1 or arch.dtype.is_floating_point or arch.dtype.is_complex or arch.dtype == torch.bool:
            raise UserError(f"{what}: a 1-D integer tensor (torch.long), got shape {tuple(arch.shape)} {arch.dtype}")
        a = arch.tolist()
    else:
        try:
            if isinstance(arch, (str, bytes, dict)):
                raise TypeError
            a = list(arch)
        except TypeError:  # not iterable: a number, None, a 0-d numpy array
            raise UserError(f"{what}, one per decision (a list of ints or a LongTensor), got {_shown(arch)}"
                            + ("; choice names go through encode()" if isinstance(arch, (str, dict)) else "")) from None
    if len(a) != num_dec:
        raise UserError(f"{f'space {space}' if space else 'the space'} has {num_dec} decisions; "
                        f"the architecture has {len(a)}")
    out = []
    for d, k in enumerate(a):
        label = f"decision {names[d] if names else d}"
        try:  # an int, a numpy integer, a 0-d integer tensor; not a bool, not a float (1.0)
            if isinstance(k, (bool, numpy.bool_)) or (isinstance(k, torch.Tensor) and k.dtype == torch.bool):
                raise TypeError
            k = operator.index(k)
        except TypeError:
            raise UserError(f"{label}: choice index {_shown(k)} is not an integer; a choice index is a whole "
                            f"number in 0..{num_choices[d] - 1}") from None
        if not 0 <= k < num_choices[d]:
            raise UserError(f"{label}: choice index {k} is not in 0..{num_choices[d] - 1}")
        out.append(k)
    return out


def count_networks(num_choices: Sequence[int], gates: dict[int, tuple[int, Sequence[bool]]]) -> int:
    """The distinct networks among the ``prod(num_choices)`` architectures, exactly: elastic depth's ``gates``
    (gated decision -> (its depth decision, per choice of that decision whether the gated layer is there), as
    :attr:`automl.compile.CostTable.gates`) leave layers out, and a left-out layer's choice does not matter.
    One sum per depth decision (a stage): over its choices, the product of the choice counts of the layers it
    keeps; the other decisions multiply. No enumeration: 31 decisions of OFA's space take microseconds."""
    kept_by: dict[int, list[tuple[int, Sequence[bool]]]] = {}
    for d, (g, on) in gates.items():
        kept_by.setdefault(g, []).append((d, on))
    n = 1
    for d, kd in enumerate(num_choices):
        if d in gates:  # counted with its depth decision
            continue
        layers = kept_by.get(d, ())
        n *= sum(reduce(operator.mul, (num_choices[e] for e, on in layers if on[j]), 1) for j in range(kd))
    return n


def _shown(value) -> str:
    """``repr(value)``, cut to 40 characters, with its type."""
    text = repr(value)
    return f"{text if len(text) <= 40 else text[:37] + '...'} ({type(value).__name__})"


@dataclass(frozen=True)
class Decision:
    """One categorical variable h_d: its name and its K_d choice names."""

    name: str
    choices: tuple[str, ...]


@dataclass(frozen=True)
class ChainLayer:
    """One layer of a chain network. ``decision`` indexes ``CompiledSpace.decisions`` (None: fixed layer,
    ``choices`` has the one op)."""

    name: str
    stage: int
    in_ch: int
    out_ch: int
    stride: int
    choices: tuple[str, ...]
    decision: int | None
    se: float = 0.0  # the stage's squeeze-excitation ratio (`se 0.25`), for ops without their own `_se`
    act: str | None = None  # the stage's activation (`activation relu`), None: the network's
    # elastic depth: (depth decision, for each of its choices whether this layer is there); None: always
    gate: tuple[int, tuple[bool, ...]] | None = None
    # elastic width: the stage's width decision and its widths (out_ch is the largest), and the previous
    # stage's for the first layer of a stage (in_ch is then the largest); None / (): a fixed width
    width_dec: int | None = None
    widths: tuple[int, ...] = ()
    in_width_dec: int | None = None
    in_widths: tuple[int, ...] = ()

    def active(self, a) -> bool:
        """Whether this layer is part of architecture ``a`` (a list of ints)."""
        return self.gate is None or self.gate[1][a[self.gate[0]]]

    @property
    def elastic(self) -> bool:
        """Whether the layer's input or output width is a decision."""
        return self.width_dec is not None or self.in_width_dec is not None

    def channels(self, a) -> tuple[int, int]:
        """``(in_ch, out_ch)`` of this layer in architecture ``a`` (a list of ints)."""
        cin = self.in_ch if self.in_width_dec is None else self.in_widths[a[self.in_width_dec]]
        cout = self.out_ch if self.width_dec is None else self.widths[a[self.width_dec]]
        return cin, cout

    def at(self, a) -> "ChainLayer":
        """This layer with the widths architecture ``a`` chose (a fixed-width layer)."""
        if not self.elastic:
            return self
        cin, cout = self.channels(a)
        return replace(self, in_ch=cin, out_ch=cout, width_dec=None, widths=(), in_width_dec=None, in_widths=())


@dataclass(frozen=True)
class ChainPlan:
    in_chans: int
    stem_size: int
    stem_kernel: int
    activation: str
    layers: tuple[ChainLayer, ...]
    num_features: int  # head width; 0: no head conv
    num_classes: int
    num_stages: int
    family: str = "efficientnet"  # the timm class: "efficientnet" or "mobilenetv3" (head conv after pooling)

    @property
    def width_decisions(self) -> tuple[int, ...]:
        """The decisions that choose a stage's width (elastic width), in declaration order."""
        return tuple(sorted({layer.width_dec for layer in self.layers if layer.width_dec is not None}))

    def at(self, a) -> "ChainPlan":
        """The plan with the widths ``a`` chooses: a list of ints indexed by decision, or a dict
        {width decision: choice}; every layer then has a fixed width."""
        return replace(self, layers=tuple(layer.at(a) for layer in self.layers))


@dataclass(frozen=True)
class CellNode:
    """A node of a cell template: ``len(op_decisions)`` (input, op) pairs summed. ``candidates`` index the
    cell's states (0, 1: the two cell inputs, 1 alone for a one-input cell; 2 + j: node j).

    ``mode``: "choose" (one input decision per slot, among the candidates), "distinct" (one decision
    whose choices are the sets of distinct candidates in ``combos``), "edges" (slot i reads candidate i;
    no input decision)."""

    name: str
    candidates: tuple[int, ...]
    ops: tuple[str, ...]
    input_decisions: tuple[int, ...]
    op_decisions: tuple[int, ...]
    mode: str = "choose"
    combos: tuple[tuple[int, ...], ...] = ()

    def slot_inputs(self, a) -> list[int]:
        """For architecture ``a`` (a list of ints), the candidate index (into ``candidates``) of each slot."""
        if self.mode == "edges":
            return list(range(len(self.candidates)))
        if self.mode == "distinct":
            return list(self.combos[a[self.input_decisions[0]]])
        return [a[d] for d in self.input_decisions]


@dataclass(frozen=True)
class CellTemplatePlan:
    name: str
    stride: int
    inputs: tuple[str, ...]
    nodes: tuple[CellNode, ...]
    # "loose": the nodes no other node reads, each through ReLU and a 1x1 conv, summed, BN (the default);
    # "node": the state output_nodes[0] itself; "concat": the states output_nodes concatenated
    output: str = "loose"
    output_nodes: tuple[int, ...] = ()  # state indices (2 + j for node j)

    @property
    def multiplier(self) -> int:
        """Output width / cell width (the number of concatenated nodes)."""
        return len(self.output_nodes) if self.output == "concat" else 1


@dataclass(frozen=True)
class CellInstance:
    """One cell of the network: which template, its input widths and width, and whether its first input
    (two cells back) has twice its input resolution (the previous cell reduced). ``op``: a fixed
    reduction block (``resnet_block``) instead of a cell (``template`` is then -1)."""

    template: int
    c_prev_prev: int
    c_prev: int
    channels: int
    reduce_prev: bool
    out_ch: int = 0  # the output width (channels x the template's multiplier); 0: channels
    one_input: bool = False  # the template reads only the previous cell
    op: str | None = None

    @property
    def out_channels(self) -> int:
        return self.out_ch or self.channels


@dataclass(frozen=True)
class CellPlan:
    in_chans: int
    stem_width: int
    stem_kernel: int
    stem_stride: int
    templates: tuple[CellTemplatePlan, ...]
    instances: tuple[CellInstance, ...]
    num_features: int
    num_classes: int
    head_bn: bool = False  # `head bn`: BN + ReLU on the last cell's output before pooling (no head conv)


@dataclass
class SpacePlan:
    """A search space as data: decisions, the network plan (:class:`ChainPlan` or :class:`CellPlan`) and
    the cost table. See docs/internals.md for the contract."""

    name: str
    kind: str
    input_shape: tuple[int, int, int]
    num_classes: int
    params: dict
    decisions: tuple[Decision, ...]
    cost_table: CostTable
    plan: ChainPlan | CellPlan
    # elastic resolution (`resolution A, B, ...`): the decision (the last) and its input sizes; the data
    # comes at input_shape and a path with a smaller resolution resizes it first
    resolutions: tuple[int, ...] = ()
    resolution_dec: int | None = None

    @property
    def num_choices(self) -> list[int]:
        return [len(d.choices) for d in self.decisions]

    @property
    def num_decisions(self) -> int:
        return len(self.decisions)

    @property
    def sum_k(self) -> int:
        return sum(self.num_choices)

    @property
    def size(self) -> int:
        """Number of architectures in the space (the product of the K_d)."""
        return reduce(lambda a, b: a * b, self.num_choices, 1)

    @property
    def networks(self) -> int:
        """Number of distinct networks: :attr:`size` less the architectures that differ only in the choices of
        layers their elastic depth leaves out (:func:`count_networks`); :attr:`size` without elastic depth."""
        return count_networks(self.num_choices, self.cost_table.gates)

    @property
    def context_decisions(self) -> tuple[int, ...]:
        """Decisions that change the cost of other choices (a stage's width, the input resolution): the cost
        table holds a table per combination of their choices (:class:`automl.compile.costs.CostTable`)."""
        widths = self.plan.width_decisions if self.kind == "chain" else ()
        return widths + (() if self.resolution_dec is None else (self.resolution_dec,))

    def resolution(self, arch) -> int | None:
        """The input size (height = width) architecture ``arch`` chose, or None without elastic resolution."""
        if self.resolution_dec is None:
            return None
        return self.resolutions[self.check_arch(arch)[self.resolution_dec]]

    def arch_input_shape(self, arch) -> tuple[int, int, int]:
        """The input shape of architecture ``arch``'s standalone network: ``input_shape``, or the chosen
        resolution."""
        r = self.resolution(arch)
        return self.input_shape if r is None else (self.input_shape[0], r, r)

    @property
    def stem_size(self) -> int:
        return self.plan.stem_size if self.kind == "chain" else self.plan.stem_width

    @property
    def num_features(self) -> int:
        """Head width (the 1x1 head conv), 0 when the space has no head conv: exactly timm
        EfficientNet's ``num_features`` argument."""
        return self.plan.num_features

    def check_arch(self, arch) -> list[int]:
        """``arch`` (LongTensor (D,), or a sequence of ints) as a list of ints; UserError if malformed."""
        return check_arch(arch, self.num_choices, [d.name for d in self.decisions], self.name)

    def encode(self, names) -> torch.Tensor:
        """Choice names (a list in declaration order, or {decision: choice}) -> LongTensor (D,)."""
        if isinstance(names, dict):
            known = {d.name for d in self.decisions}
            extra = [k for k in names if k not in known]
            if extra:
                close = difflib.get_close_matches(extra[0], known, n=1)
                raise UserError(f"unknown decision {extra[0]!r} in space {self.name}"
                                + (f"; did you mean {close[0]!r}?" if close else ""))
            missing = [d.name for d in self.decisions if d.name not in names]
            if missing:
                raise UserError(f"no choice given for decision {missing[0]!r} "
                                f"({len(missing)} of {self.num_decisions} missing)")
            names = [names[d.name] for d in self.decisions]
        elif isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
            raise UserError(f"the choices of an architecture of space {self.name} are a list of {self.num_decisions} "
                            f"choice names (in declaration order) or {{decision: choice}}, got {_shown(names)}")
        names = list(names)
        if len(names) != self.num_decisions:
            raise UserError(f"space {self.name} has {self.num_decisions} decisions; got {len(names)} choice names")
        out = []
        for d, n in zip(self.decisions, names):
            if n not in d.choices:
                raise UserError(f"decision {d.name}: {n!r} is not a choice; the choices are {', '.join(d.choices)}")
            out.append(d.choices.index(n))
        return torch.tensor(out, dtype=torch.long)

    def decode(self, arch) -> list[str]:
        return [d.choices[k] for d, k in zip(self.decisions, self.check_arch(arch))]

    def chosen_layers(self, arch):
        """For a chain space, ``(index, choice, layer, op)`` of every layer, ``layer`` with the widths the
        architecture chose; a layer beyond the chosen depth of an elastic stage is ``skip``."""
        a = self.check_arch(arch)
        for i, layer in enumerate(self.plan.layers):
            k = 0 if layer.decision is None else a[layer.decision]
            yield i, k, layer.at(a), layer.choices[k] if layer.active(a) else "skip"
