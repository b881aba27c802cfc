"""The intermediate representation of a ``.space`` file: frozen dataclasses, one per construct.

The parser builds these from the Lark tree; the compiler (:mod:`automl.compile`) resolves names,
evaluates expressions against the parameters and reports semantic errors at each node's ``pos``.
Nothing here knows about torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from automl.errors import SpaceError

__all__ = [
    "Pos", "Name", "Num", "Ref", "BinOp", "Neg", "Expr", "refs", "Param", "ChoiceSet", "ChoiceRef", "ChoiceInline",
    "ChoiceSource", "Option", "FixedBody", "ChooseBody", "Stage", "CellItem", "CellsLayout", "Network",
    "Node", "CellTemplate", "CostEntry", "Metric", "Space",
]


@dataclass(frozen=True)
class Pos:
    """1-based line and column of a construct in its file."""

    line: int
    column: int


@dataclass(frozen=True)
class Name:
    """An identifier together with where it was written."""

    name: str
    pos: Pos


# ---- expressions over parameters ---------------------------------------------------------------

@dataclass(frozen=True)
class Num:
    value: int | float
    pos: Pos


@dataclass(frozen=True)
class Ref:
    name: str
    pos: Pos


@dataclass(frozen=True)
class BinOp:
    op: str  # one of + - * / //
    left: "Expr"
    right: "Expr"
    pos: Pos  # where the expression starts (its left operand's position): for a message about its value
    # the operator's own position (`*` of `a * b`): for a message about the operation (a value too large)
    op_pos: Pos | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Neg:
    operand: "Expr"
    pos: Pos


Expr = Union[Num, Ref, BinOp, Neg]


def refs(e: Expr) -> list[str]:
    """The parameter names an expression reads, each once, in the order they are written."""
    names: list[str] = []
    stack = [e]
    while stack:
        x = stack.pop()
        if isinstance(x, Ref):
            if x.name not in names:
                names.append(x.name)
        elif isinstance(x, Neg):
            stack.append(x.operand)
        elif isinstance(x, BinOp):
            stack += [x.right, x.left]
    return names


# ---- declarations ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """``param NAME = default``; ``value`` is the default or the ``--set`` override."""

    name: str
    default: int | float
    value: int | float
    pos: Pos


@dataclass(frozen=True)
class ChoiceSet:
    """``choices NAME = a, b, c``: items are op names or other choice sets."""

    name: str
    items: tuple[Name, ...]
    pos: Pos


@dataclass(frozen=True)
class ChoiceRef:
    """A choice set or a single op referred to by name where choices are expected."""

    name: str
    pos: Pos


@dataclass(frozen=True)
class ChoiceInline:
    """``[a, b, c]`` written in place."""

    items: tuple[Name, ...]
    pos: Pos


ChoiceSource = Union[ChoiceRef, ChoiceInline]


@dataclass(frozen=True)
class Option:
    """``width EXPR``, ``stride EXPR``, ``repeat EXPR`` or ``kernel EXPR``; in a stage also ``se EXPR``
    and ``activation NAME`` (the value a :class:`Ref` naming the activation) and ``depth A, B, ...``
    (the value a tuple of expressions)."""

    key: str
    value: Expr
    pos: Pos


@dataclass(frozen=True)
class FixedBody:
    """``fixed OP``: every layer of the stage is that op; no decision."""

    op: Name
    pos: Pos


@dataclass(frozen=True)
class ChooseBody:
    """``choose FIRST [then REST]``: the first layer chooses from FIRST, the others from REST."""

    first: ChoiceSource
    rest: ChoiceSource | None
    pos: Pos


@dataclass(frozen=True)
class Stage:
    """``stage NAME options body`` (``single`` for ``layer NAME ...``: one layer, decision named NAME)."""

    name: str
    options: tuple[Option, ...]
    body: FixedBody | ChooseBody
    single: bool
    pos: Pos


@dataclass(frozen=True)
class CellItem:
    """``NAME [x COUNT]`` in a ``cells`` layout."""

    name: str
    count: Expr | None
    pos: Pos


@dataclass(frozen=True)
class CellsLayout:
    """``cells a x N, b, ... [split by r x M] [width W]``."""

    items: tuple[CellItem, ...]
    split: CellItem | None
    options: tuple[Option, ...]
    pos: Pos


@dataclass(frozen=True)
class Network:
    """``network ... end``: a chain (stages/layers) or a stack of cells (``cells``)."""

    activation: Name | None
    stem: tuple[Option, ...] | None
    stem_pos: Pos | None
    stages: tuple[Stage, ...]
    head: tuple[Option, ...] | None
    head_pos: Pos | None
    cells: CellsLayout | None
    pos: Pos
    duplicates: tuple[tuple[str, Pos], ...] = ()  # a second stem/head/activation/cells statement
    family: Name | None = None  # `family mobilenetv3`: the timm class a chain exports as
    late_activation: Pos | None = None  # a network-wide `activation` written after a stage or layer
    # the lines that build the network, in the order written: (kind, what, pos), kind "stem", "body" (a stage, a
    # layer, the `cells` layout) or "head", what as a message names it (`stage s1`)
    order: tuple[tuple[str, str, Pos], ...] = ()


@dataclass(frozen=True)
class Node:
    """``node NAME sums COUNT [distinct] of (earlier | a, b, ...) through CHOICES`` or
    ``node NAME sums edges from (earlier | a, b, ...) through CHOICES``."""

    name: str
    count: Expr | None  # None for edges
    inputs: tuple[Name, ...] | None  # None: every earlier output
    ops: ChoiceSource
    pos: Pos
    mode: str = "choose"  # "choose" (K inputs chosen independently), "distinct" (K different ones), "edges"


@dataclass(frozen=True)
class CellTemplate:
    """``cell NAME [inputs a, b] [stride S] node... end``."""

    name: str
    inputs: tuple[Name, ...] | None
    stride: Expr | None
    nodes: tuple[Node, ...]
    pos: Pos
    output: tuple[str, tuple[Name, ...], Pos] | None = None  # ("node" | "concat", names, where)
    duplicates: tuple[tuple[str, Pos], ...] = ()  # a second `inputs` or `stride` option


@dataclass(frozen=True)
class CostEntry:
    """``CHOICE [in DECISION] = VALUE``; ``choice`` is ``None`` for ``default = VALUE``."""

    choice: Name | None
    decision: Name | None
    value: float
    pos: Pos


@dataclass(frozen=True)
class Metric:
    """``metric NAME ... end``: per-choice costs written in the file."""

    name: str
    entries: tuple[CostEntry, ...]
    fixed: float  # the first `fixed = VALUE` (0 without one)
    fixed_pos: Pos | None
    pos: Pos
    fixed_again: tuple[Pos, ...] = ()  # each further `fixed = VALUE` (an error)


@dataclass(frozen=True)
class Space:
    """A parsed ``.space`` file with its parameters resolved (defaults plus overrides)."""

    filename: str
    source: str = field(repr=False)
    name: str | None
    name_pos: Pos | None
    params: tuple[Param, ...]
    input_shape: tuple[Expr, Expr, Expr] | None
    input_pos: Pos | None
    classes: Expr | None
    classes_pos: Pos | None
    choice_sets: tuple[ChoiceSet, ...]
    network: Network | None
    cells: tuple[CellTemplate, ...]
    metrics: tuple[Metric, ...]
    duplicates: tuple[tuple[str, Pos], ...] = ()  # a second space/input/classes statement
    overrides: dict = field(default_factory=dict)  # the --set values as given (name -> text)
    resolutions: tuple[Expr, ...] | None = None  # `resolution A, B, ...`: the input size as a decision
    resolution_pos: Pos | None = None

    @property
    def param_values(self) -> dict[str, int | float]:
        return {p.name: p.value for p in self.params}

    def source_line(self, line: int | None) -> str | None:
        if line is None:
            return None
        lines = self.source.split("\n")
        return lines[line - 1] if 1 <= line <= len(lines) else None

    def error(self, message: str, pos: Pos | None) -> SpaceError:
        """A :class:`SpaceError` at ``pos`` in this file (raise it)."""
        if pos is None:
            return SpaceError(message, self.filename)
        return SpaceError(message, self.filename, pos.line, pos.column, self.source_line(pos.line))
