"""Compile the IR of a ``.space`` file into a :class:`CompiledSpace`: decisions, a plan of the network
(layer shapes, cell instances), and the cost table.

Every semantic mistake (unknown op or name, duplicate name, ``skip`` where the layer changes shape,
a bad number, ...) is a :class:`SpaceError` at the position of the construct that caused it.
Costs are measured by building each distinct ``(op, in, out, stride)`` once on the meta device (no
memory, no init), so compiling the ImageNet-size ProxylessNAS space takes well under a second.
"""

from __future__ import annotations

import difflib
import itertools
import math
import os
from dataclasses import dataclass, field
from functools import reduce

import torch
from timm.layers import get_act_layer
from timm.models._efficientnet_builder import round_channels
from torch import nn

from automl.compile._ops import BLOCK_ACTIVATIONS, FAMILIES, family_hint
from automl.compile._registry import OpInfo, create_op, get_op, is_op, list_ops
from automl.compile.costs import BUILTIN_METRICS, CostTable, count_params
from automl.compile.macs import measure_macs
from automl.dsl import ir, load_space
from automl.errors import SpaceError, UserError

__all__ = ["Decision", "ChainLayer", "ChainPlan", "CellNode", "CellTemplatePlan", "CellInstance", "CellPlan",
           "CompiledSpace", "compile_space", "load_compiled", "ACTIVATIONS"]

ACTIVATIONS = ("relu", "relu6", "silu", "swish", "hard_swish", "gelu", "mish", "elu", "leaky_relu")
_MAX_CH = 1 << 16  # channels, widths
_MAX_SIZE = 1 << 14  # input height / width
_MAX_REPEAT = 256
_MAX_CELLS = 256
_CHAIN_MAX_STRIDE = 32  # timm EfficientNet's output_stride: beyond it timm dilates instead of striding


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

    def active(self, a) -> bool:
        """Whether this layer is part of architecture ``a`` (a list of ints)."""
        return self.gate is None or self.gate[1][a[self.gate[0]]]


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


def _fmt(v) -> str:
    """A number for an error message (huge ints do not fit a float format)."""
    if isinstance(v, int):
        text = str(v)
        return text if len(text) <= 20 else text[:8] + "...(" + str(len(text)) + " digits)"
    return f"{v:g}"


# ---- name resolution and expression evaluation --------------------------------------------------

class _Resolver:
    def __init__(self, space: ir.Space):
        self.space = space
        self.values = space.param_values
        self.sets = {}
        for s in space.choice_sets:
            if s.name in self.sets:
                raise self.err(f"duplicate choice set {s.name!r} (first declared at line "
                               f"{self.sets[s.name].pos.line})", s.pos)
            if "." in s.name:
                raise self.err(f"choice set {s.name!r}: a name with '.' is an op name; pick another name", s.pos)
            if _is_op(s.name):
                raise self.err(f"choice set {s.name!r} has the name of an op; pick another name", s.pos)
            self.sets[s.name] = s
        for s in space.choice_sets:  # every set must make sense even if unused
            self.expand(ir.ChoiceRef(s.name, s.pos), None, f"choice set {s.name}")

    def err(self, message: str, pos: ir.Pos | None) -> SpaceError:
        return self.space.error(message, pos)

    # expressions
    def eval(self, e: ir.Expr) -> int | float:
        if isinstance(e, ir.Num):
            return e.value
        if isinstance(e, ir.Ref):
            if e.name not in self.values:
                close = difflib.get_close_matches(e.name, self.values, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else (
                    f"; the parameters are: {', '.join(self.values)}" if self.values else
                    f"; declare it with `param {e.name} = VALUE`")
                raise self.err(f"unknown parameter {e.name!r}{hint}", e.pos)
            return self.values[e.name]
        if isinstance(e, ir.Neg):
            return -self.eval(e.operand)
        a, b = self.eval(e.left), self.eval(e.right)
        if e.op in ("/", "//") and b == 0:
            raise self.err("division by zero", e.right.pos)
        try:
            v = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b,
                 "//": lambda: a // b}[e.op]()
        except (OverflowError, ZeroDivisionError):
            raise self.err("number too large", e.pos) from None
        if isinstance(v, float) and not math.isfinite(v):
            raise self.err("number too large", e.pos)
        if isinstance(v, int) and abs(v) > 1 << 62:
            raise self.err("number too large", e.pos)
        return v

    def whole(self, e: ir.Expr, what: str, lo: int, hi: int) -> int:
        v = self.eval(e)
        if isinstance(v, float):
            if not math.isfinite(v) or not v.is_integer():
                raise self.err(f"{what} must be a whole number, got {_fmt(v)}", e.pos)
            v = int(v)
        if not lo <= v <= hi:
            raise self.err(f"{what} must be between {lo} and {hi}, got {v}", e.pos)
        return v

    def chain_width(self, e: ir.Expr, what: str) -> int:
        """A chain width: any positive number, rounded as timm rounds channels (multiples of 8)."""
        v = self.eval(e)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and 0 < v <= _MAX_CH):
            raise self.err(f"{what} must be a number between 1 and {_MAX_CH}, got {_fmt(v)}", e.pos)
        return int(round_channels(v))

    def options(self, opts: tuple[ir.Option, ...], allowed: dict[str, str], where: str) -> dict[str, ir.Option]:
        """Options by key; an option not in ``allowed`` (key -> why not) or given twice is an error."""
        out: dict[str, ir.Option] = {}
        for o in opts:
            if o.key not in allowed or allowed[o.key]:
                why = allowed.get(o.key) or f"{where} takes {', '.join(k for k, v in allowed.items() if not v)}"
                raise self.err(f"{o.key!r} is not an option here: {why}", o.pos)
            if o.key in out:
                raise self.err(f"duplicate option {o.key!r} in {where}", o.pos)
            out[o.key] = o
        return out

    # choices
    def expand(self, src, kind: str | None, where: str, _stack=()) -> list[tuple[str, ir.Pos, str | None]]:
        """The ops a choice source offers, as (op, position, set it came through or None), in order.

        ``kind``: "block" (chain layers) or "cell" (cell nodes) restricts the ops; None checks names only.
        """
        if isinstance(src, ir.ChoiceInline):
            items = [ir.ChoiceRef(n.name, n.pos) for n in src.items]
        else:
            items = [src]
        out: list[tuple[str, ir.Pos, str | None]] = []
        for ref in items:
            if ref.name in self.sets:
                if ref.name in _stack:
                    raise self.err(f"choice set {ref.name!r} includes itself", ref.pos)
                s = self.sets[ref.name]
                for name in s.items:
                    for op, pos, via in self.expand(ir.ChoiceRef(name.name, name.pos), kind, where,
                                                    _stack + (ref.name,)):
                        out.append((op, pos, via or ref.name))
            elif self._known_op(ref):
                self._check_kind(get_op(ref.name), kind, ref.pos)
                out.append((ref.name, ref.pos, None))
            else:
                hint = family_hint(ref.name)
                if hint:
                    raise self.err(f"unknown op {ref.name!r}: {hint}", ref.pos)
                pool = list(self.sets) + list_ops(kind=kind)
                close = difflib.get_close_matches(ref.name, pool, n=3, cutoff=0.6)
                hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else (
                    f"; the ops are: {', '.join(list_ops(kind=kind or 'block'))}" if not self.sets else
                    f"; the choice sets are: {', '.join(self.sets)}")
                raise self.err(f"unknown op or choice set {ref.name!r}{hint}", ref.pos)
        if not _stack:
            seen: dict[str, ir.Pos] = {}
            for op, pos, via in out:
                if op in seen:
                    raise self.err(f"{op!r} is offered twice in {where}"
                                   + (f" (through choice set {via!r})" if via else ""), pos)
                seen[op] = pos
        return out

    def _known_op(self, ref) -> bool:
        """Whether ``ref`` names an op; a malformed name of a known family (``ir_k3_e6_se1.5``) is an error."""
        try:
            return is_op(ref.name)
        except ValueError as e:
            raise self.err(f"op {ref.name!r}: {e}", ref.pos) from None

    def _check_kind(self, info: OpInfo, kind: str | None, pos: ir.Pos) -> None:
        if kind == "block" and info.kind != "block":
            raise self.err(f"op {info.name!r} is a cell op; chain layers use timm blocks: "
                           f"ir_kK_eE, ds_kK, cn_kK (with optional _seR, _nre/_nhs/... suffixes) or skip", pos)
        if kind == "cell" and info.kind != "cell":
            if info.name == "skip":
                raise self.err("'skip' is for chain layers; in a cell use 'identity'", pos)
            raise self.err(f"op {info.name!r} is a chain block; cells use "
                           f"{', '.join(list_ops(kind='cell'))}", pos)
        if kind == "cell" and info.reduction:
            raise self.err(f"{info.name!r} is a fixed reduction block: it goes in the `cells` layout "
                           f"(e.g. `split by {info.name} x 2`), not on an edge", pos)


def _is_op(name: str) -> bool:
    try:
        return is_op(name)
    except ValueError:
        return False


# ---- chain networks -----------------------------------------------------------------------------

def _head_features(r: _Resolver, net: ir.Network) -> int:
    """Width of the 1x1 head conv (timm's ``num_features``), 0 when the network has no head."""
    if net.head is None:
        return 0
    head = r.options(net.head, {"width": "", "stride": "the head has no stride", "repeat": "",
                                "kernel": "the head conv is 1x1"}, "head")
    return r.whole(head["width"].value, "head width", 0, _MAX_CH) if "width" in head else 0


def _compile_chain(r: _Resolver, net: ir.Network, in_chans: int, num_classes: int):
    space = r.space
    if net.stem is None:
        raise r.err("the network has no stem; add e.g. `stem width 32`", net.pos)
    stem = r.options(net.stem, {"width": "", "kernel": "", "stride": "",
                                "repeat": "a stem is one conv"}, "stem")
    if "width" not in stem:
        raise r.err("the stem needs a width, e.g. `stem width 32`", net.stem_pos)
    stem_size = r.chain_width(stem["width"].value, "stem width")
    stem_kernel = r.whole(stem["kernel"].value, "stem kernel", 1, 15) if "kernel" in stem else 3
    if stem_kernel % 2 == 0:
        raise r.err(f"stem kernel must be odd, got {stem_kernel}", stem["kernel"].value.pos)
    if "stride" in stem and r.whole(stem["stride"].value, "stem stride", 1, 2) != 2:
        raise r.err("a chain's stem has stride 2 (as timm's EfficientNet); remove `stride`",
                    stem["stride"].value.pos)
    act = "relu"
    if net.late_activation is not None:
        raise r.err("a network-wide `activation` comes before the stem and stages (it applies to the whole "
                    "network); for one stage write it before `choose`: `stage NAME width W activation "
                    f"{net.activation.name} choose ...`", net.late_activation)
    if net.activation is not None:
        act = net.activation.name
        if act not in ACTIVATIONS:
            raise r.err(f"unknown activation {act!r}; use one of {', '.join(ACTIVATIONS)}", net.activation.pos)
    family = "efficientnet"
    if net.family is not None:
        family = net.family.name
        if family not in FAMILIES:
            raise r.err(f"unknown family {family!r}; a chain exports as timm's {' or '.join(FAMILIES)}",
                        net.family.pos)
        if family == "mobilenetv3" and stem_kernel != 3:
            raise r.err("timm's MobileNetV3 has a 3x3 stem; remove `kernel`", stem["kernel"].value.pos)

    decisions: list[Decision] = []
    names: dict[str, ir.Pos] = {}
    layers: list[ChainLayer] = []
    stage_names: dict[str, ir.Pos] = {}
    cur, total_stride = stem_size, 2
    for si, st in enumerate(net.stages):
        kw = "layer" if st.single else "stage"
        if st.name in stage_names:
            raise r.err(f"duplicate {kw} name {st.name!r} (first at line {stage_names[st.name].line})", st.pos)
        stage_names[st.name] = st.pos
        opts = r.options(st.options, {"width": "", "stride": "",
                                      "repeat": "a layer is one layer; use `stage` to repeat" if st.single else "",
                                      "kernel": "the kernel is part of the op name, e.g. ir_k5_e6",
                                      "se": "", "activation": "",
                                      "depth": "a layer is one layer; use `stage` for elastic depth" if st.single
                                      else ""}, f"{kw} {st.name}")
        se = 0.0
        if "se" in opts:
            se = r.eval(opts["se"].value)
            if not 0 < se < 1:
                raise r.err(f"the squeeze-excitation ratio must be between 0 and 1 (exclusive), e.g. `se 0.25`; "
                            f"got {_fmt(se)}", opts["se"].value.pos)
            se = float(se)
        stage_act = None
        if "activation" in opts:
            stage_act = opts["activation"].value.name
            if stage_act not in BLOCK_ACTIVATIONS:
                raise r.err(f"a stage's activation is one of {', '.join(BLOCK_ACTIVATIONS)} (timm block strings "
                            f"write them _nre, _nr6, _nhs, _nsw, _nmi); got {stage_act!r}",
                            opts["activation"].value.pos)
        if "width" not in opts:
            raise r.err(f"{kw} {st.name} needs a width, e.g. `width 24`", st.pos)
        width = r.chain_width(opts["width"].value, f"{kw} width")
        stride = r.whole(opts["stride"].value, "stride", 1, 2) if "stride" in opts else 1
        repeat = r.whole(opts["repeat"].value, "repeat", 1, _MAX_REPEAT) if "repeat" in opts else 1
        gate_of = None
        if "depth" in opts:
            if "repeat" in opts:
                raise r.err(f"`depth` sets the number of layers of {kw} {st.name} (the largest depth); "
                            f"remove `repeat`", opts["repeat"].pos)
            depths = []
            for e in opts["depth"].value:
                v = r.whole(e, "a stage's depth", 1, _MAX_REPEAT)
                if v in depths:
                    raise r.err(f"depth {v} is listed twice", e.pos)
                depths.append(v)
            if len(depths) < 2:
                raise r.err("elastic depth needs at least two depths, e.g. `depth 2, 3, 4`; for one depth "
                            "write `repeat N`", opts["depth"].pos)
            repeat = max(depths)
            dname = f"{st.name}_depth"
            if dname in names:
                raise r.err(f"duplicate decision name {dname!r} (first at line {names[dname].line})", st.pos)
            names[dname] = st.pos
            gate_of = len(decisions)
            decisions.append(Decision(dname, tuple(f"d{v}" for v in depths)))
        if stride == 2:
            total_stride *= 2
            if total_stride > _CHAIN_MAX_STRIDE:
                raise r.err(f"this stride brings the total stride to {total_stride}; a chain network "
                            f"downsamples at most {_CHAIN_MAX_STRIDE}x (timm's EfficientNet output stride)",
                            opts["stride"].pos)
        body = st.body
        for i in range(repeat):
            in_ch, s = (cur, stride) if i == 0 else (width, 1)
            lname = st.name if st.single else f"{st.name}_{i + 1}"
            if isinstance(body, ir.FixedBody):
                choices = r.expand(ir.ChoiceRef(body.op.name, body.op.pos), "block", f"{kw} {st.name}")
                if choices[0][0] == "skip":
                    raise r.err("a fixed layer cannot be 'skip'; leave the layer out", body.op.pos)
                src = ir.ChoiceRef(body.op.name, body.op.pos)
            else:
                if body.rest is not None and repeat == 1:
                    raise r.err(f"`then` gives the choices of layers 2 and on, but {kw} {st.name} has one "
                                f"layer; add `repeat N` or remove `then ...`", body.rest.pos)
                src = body.first if i == 0 or body.rest is None else body.rest
                choices = r.expand(src, "block", f"{kw} {st.name}")
            for op, pos, via in choices:
                info = get_op(op)
                if se and op != "skip" and not info.se:
                    raise r.err(f"{kw} {st.name} has `se {se:g}` but {op!r} takes no squeeze-excitation; "
                                f"give it its own stage", pos if via is None else src.pos)
                if (info.same_channels and in_ch != width) or (info.stride1_only and s != 1):
                    where = pos if via is None else src.pos
                    change = (f"{in_ch} -> {width} channels" if in_ch != width else "") + \
                             (", " if in_ch != width and s != 1 else "") + (f"stride {s}" if s != 1 else "")
                    msg = f"layer {lname} changes shape ({change}), so it cannot be {op!r}"
                    if via is not None:
                        msg += f" (choice set {via!r} offers it)"
                    if not st.single and i == 0 and repeat > 1:
                        msg += f"; give the first layer its own choices: `choose SET then {via or 'SET'}`"
                    raise r.err(msg, where)
            dec = None
            if not isinstance(body, ir.FixedBody):
                if lname in names:
                    raise r.err(f"duplicate decision name {lname!r} (first at line {names[lname].line})", st.pos)
                names[lname] = st.pos
                dec = len(decisions)
                decisions.append(Decision(lname, tuple(c[0] for c in choices)))
            gate = None
            if gate_of is not None and i + 1 > min(depths):
                gate = (gate_of, tuple(i + 1 <= v for v in depths))
            layers.append(ChainLayer(lname, si, in_ch, width, s, tuple(c[0] for c in choices), dec, se, stage_act,
                                     gate))
        cur = width
    num_features = _head_features(r, net)
    if family == "mobilenetv3" and num_features == 0:
        raise r.err("timm's MobileNetV3 has a head conv after pooling; add e.g. `head width 1280`",
                    net.head_pos or net.pos)
    plan = ChainPlan(in_chans, stem_size, stem_kernel, act, tuple(layers), num_features, num_classes,
                     len(net.stages), family)
    return plan, decisions


# ---- cell networks ------------------------------------------------------------------------------

def _compile_cells(r: _Resolver, net: ir.Network, in_chans: int, num_classes: int):
    templates: dict[str, ir.CellTemplate] = {}
    for t in r.space.cells:
        if t.name in templates:
            raise r.err(f"duplicate cell {t.name!r} (first at line {templates[t.name].pos.line})", t.pos)
        templates[t.name] = t
    if net.stages:
        st = net.stages[0]
        raise r.err("a network is either a chain of stages or a stack of cells, not both; "
                    f"remove {'layer' if st.single else 'stage'} {st.name} or `cells`", st.pos)
    if net.activation is not None:
        raise r.err("`activation` applies to chain networks; cells use ReLU", net.activation.pos)
    if net.stem is None:
        raise r.err("the network has no stem; add e.g. `stem width 48`", net.pos)
    stem = r.options(net.stem, {"width": "", "kernel": "", "stride": "", "repeat": "a stem is one conv"}, "stem")
    if "width" not in stem:
        raise r.err("the stem needs a width, e.g. `stem width 48`", net.stem_pos)
    stem_width = r.whole(stem["width"].value, "stem width", 1, _MAX_CH)
    stem_kernel = r.whole(stem["kernel"].value, "stem kernel", 1, 15) if "kernel" in stem else 3
    if stem_kernel % 2 == 0:
        raise r.err(f"stem kernel must be odd, got {stem_kernel}", stem["kernel"].value.pos)
    stem_stride = r.whole(stem["stride"].value, "stem stride", 1, 2) if "stride" in stem else 1

    layout = net.cells
    opts = r.options(layout.options, {"width": "", "stride": "a cell's stride is declared in its template",
                                      "repeat": "write NAME x COUNT", "kernel": "cells have no kernel"},
                     "cells")
    if "width" not in opts:
        raise r.err("`cells` needs the width of the first cell, e.g. `cells normal x 6 ... width 16`", layout.pos)
    width = r.whole(opts["width"].value, "cell width", 1, _MAX_CH)

    def count(item: ir.CellItem, lo: int) -> int:
        if item.name not in templates and not (_is_op(item.name) and get_op(item.name).reduction):
            known = ", ".join(templates) if templates else "none (declare one with `cell NAME ... end`)"
            blocks = ", ".join(n for n in list_ops(kind="cell") if get_op(n).reduction)
            raise r.err(f"unknown cell {item.name!r}; the cells are: {known} (and the fixed reduction blocks "
                        f"{blocks})", item.pos)
        return r.whole(item.count, "cell count", lo, _MAX_CELLS) if item.count is not None else 1

    seq: list[str] = []
    if layout.split is not None:
        if len(layout.items) != 1:
            raise r.err("`split by` follows a single `NAME x COUNT`, e.g. `cells normal x 6 split by reduction x 2`",
                        layout.split.pos)
        n, k = count(layout.items[0], 0), count(layout.split, 1)
        groups = k + 1
        sizes = [n // groups + (1 if g < n % groups else 0) for g in range(groups)]
        for g, size in enumerate(sizes):
            seq += [layout.items[0].name] * size
            if g < k:
                seq.append(layout.split.name)
    else:
        for item in layout.items:
            seq += [item.name] * count(item, 0)
    if not seq:
        raise r.err("the network has no cells", layout.pos)
    if len(seq) > _MAX_CELLS:
        raise r.err(f"too many cells ({len(seq)}; at most {_MAX_CELLS})", layout.pos)
    for t in templates.values():
        if t.name not in seq:
            raise r.err(f"cell {t.name!r} is declared but the network does not use it", t.pos)
    if not any(name in templates for name in seq):
        raise r.err("the network has no cells, only fixed blocks", layout.pos)

    # templates in file order: their decisions come in that order
    decisions: list[Decision] = []
    dec_names: set[str] = set()
    plans: list[CellTemplatePlan] = []
    for t in r.space.cells:
        plans.append(_compile_template(r, t, decisions, dec_names))

    index = {p.name: i for i, p in enumerate(plans)}
    instances = []
    c, c_pp, c_p, reduce_prev = width, stem_width, stem_width, False
    for name in seq:
        if name not in index:  # a fixed reduction block: halves the resolution, doubles the width
            c *= 2
            if c > _MAX_CH:
                raise r.err(f"too many reduction blocks: the width would reach {c}", layout.pos)
            instances.append(CellInstance(-1, c_pp, c_p, c, reduce_prev, op=name))
            c_pp = c_p = c
            reduce_prev = False
            continue
        p = plans[index[name]]
        if p.stride == 2:
            c *= 2
            if c > _MAX_CH:
                raise r.err(f"too many reduction cells: the width would reach {c}", layout.pos)
        out = c * p.multiplier
        instances.append(CellInstance(index[name], c_pp, c_p, c, reduce_prev, out, len(p.inputs) == 1))
        reduce_prev = p.stride == 2
        c_pp, c_p = c_p, out
    num_features = _head_features(r, net)
    plan = CellPlan(in_chans, stem_width, stem_kernel, stem_stride, tuple(plans), tuple(instances),
                    num_features, num_classes)
    return plan, decisions


def _compile_template(r: _Resolver, t: ir.CellTemplate, decisions: list[Decision], dec_names: set[str]):
    inputs = t.inputs or (ir.Name("c0", t.pos), ir.Name("c1", t.pos))
    if len(inputs) not in (1, 2):
        raise r.err(f"a cell has 1 or 2 inputs (the outputs of the previous one or two cells), got {len(inputs)}",
                    inputs[min(2, len(inputs) - 1)].pos)
    if len(inputs) == 2 and inputs[0].name == inputs[1].name:
        raise r.err(f"duplicate input name {inputs[1].name!r}", inputs[1].pos)
    stride = r.whole(t.stride, "cell stride", 1, 2) if t.stride is not None else 1
    if not t.nodes:
        raise r.err(f"cell {t.name} has no nodes; add e.g. `node n1 sums 2 of earlier through OPS`", t.pos)
    # states: index 0 and 1 are the two inputs; a one-input cell reads index 1 (index 0 is unused)
    states = [inputs[0].name, inputs[1].name] if len(inputs) == 2 else ["", inputs[0].name]
    nodes = []
    for node in t.nodes:
        if node.name in states:
            raise r.err(f"duplicate name {node.name!r} in cell {t.name}", node.pos)
        if node.inputs is None:
            cands = tuple(i for i, nm in enumerate(states) if nm)
        else:
            def unreadable(nm, node=node):
                later = any(n.name == nm.name for n in t.nodes)
                why = "a later node" if later else "not an input or an earlier node"
                return (f"node {node.name} cannot read {nm.name!r}: {why} "
                        f"(it can read {', '.join(x for x in states if x)})")
            cands = _state_indices(r, node.inputs, states, [x for x in states if x], unreadable)
        ops = r.expand(node.ops, "cell", f"node {node.name}")
        op_names = tuple(o[0] for o in ops)
        first = len(decisions)
        ins, outs, combos = [], [], ()
        prefix = f"{t.name}_{node.name}"
        if node.mode == "edges":
            for c in cands:
                outs.append(len(decisions))
                decisions.append(Decision(f"{prefix}_{states[c]}", op_names))
        else:
            k = r.whole(node.count, "number of inputs of a node", 1, 8)
            if node.mode == "distinct":
                if k > len(cands):
                    raise r.err(f"node {node.name} cannot sum {k} distinct inputs of {len(cands)} "
                                f"({', '.join(states[c] for c in cands)})", node.count.pos)
                combos = tuple(itertools.combinations(range(len(cands)), k))
                ins.append(len(decisions))
                decisions.append(Decision(f"{prefix}_inputs",
                                          tuple("+".join(states[cands[i]] for i in cb) for cb in combos)))
            else:
                for j in range(k):
                    ins.append(len(decisions))
                    decisions.append(Decision(f"{prefix}_input{j + 1}", tuple(states[c] for c in cands)))
            for j in range(k):
                outs.append(len(decisions))
                decisions.append(Decision(f"{prefix}_op{j + 1}", op_names))
        for d in decisions[first:]:
            if d.name in dec_names:
                raise r.err(f"decision name {d.name!r} is generated twice; rename the cell or node", node.pos)
            dec_names.add(d.name)
        nodes.append(CellNode(node.name, cands, op_names, tuple(ins), tuple(outs), node.mode, combos))
        states.append(node.name)
    output, output_nodes = "loose", ()
    if t.output is not None:
        output, names, _ = t.output
        output_nodes = _state_indices(r, names, states, states[2:], lambda nm: (
            f"the output of cell {t.name} is made of its nodes ({', '.join(states[2:])}); {nm.name!r} is not one"))
    return CellTemplatePlan(t.name, stride, tuple(n.name for n in inputs), tuple(nodes), output, output_nodes)


def _state_indices(r: _Resolver, names, states: list[str], allowed: list[str], why) -> tuple[int, ...]:
    """Indices into ``states`` of ``names``, each in ``allowed`` (else ``why(name)``) and given once."""
    idx: list[int] = []
    for nm in names:
        if nm.name not in allowed:
            raise r.err(why(nm), nm.pos)
        if states.index(nm.name) in idx:
            raise r.err(f"{nm.name!r} is listed twice", nm.pos)
        idx.append(states.index(nm.name))
    return tuple(idx)


# ---- the compiled space -------------------------------------------------------------------------

@dataclass
class CompiledSpace:
    """A search space ready to search: decisions, the network plan and the cost table.

    See docs/internals.md for the contract. ``plan`` is a :class:`ChainPlan` or a :class:`CellPlan`.
    """

    name: str
    kind: str
    input_shape: tuple[int, int, int]
    num_classes: int
    params: dict
    decisions: tuple[Decision, ...]
    cost_table: CostTable
    plan: ChainPlan | CellPlan
    filename: str = "<space>"
    space: ir.Space | None = field(default=None, repr=False)
    overrides: dict = field(default_factory=dict)  # the --set values this space was compiled with

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
    def stem_size(self) -> int:
        return self.plan.stem_size if self.kind == "chain" else self.plan.stem_width

    @property
    def num_features(self) -> int:
        """Head width (the 1x1 head conv), 0 when the space has no head conv: exactly timm
        EfficientNet's ``num_features`` argument."""
        return self.plan.num_features

    @property
    def act_layer(self):
        return get_act_layer(self.plan.activation) if self.kind == "chain" else nn.ReLU

    # architectures
    def check_arch(self, arch) -> list[int]:
        """``arch`` (LongTensor (D,), or a sequence of ints) as a list of ints; UserError if malformed."""
        if isinstance(arch, torch.Tensor):
            if arch.dim() != 1 or arch.dtype.is_floating_point:
                raise UserError(f"an architecture is a 1-D integer tensor of {self.num_decisions} choice "
                                f"indices, got shape {tuple(arch.shape)} {arch.dtype}")
            a = arch.tolist()
        else:
            a = list(arch)
        if len(a) != self.num_decisions:
            raise UserError(f"space {self.name} has {self.num_decisions} decisions; the architecture has {len(a)}")
        for d, k in enumerate(a):
            if not isinstance(k, int) or not 0 <= k < len(self.decisions[d].choices):
                raise UserError(f"decision {self.decisions[d].name}: choice index {k!r} is not in "
                                f"0..{len(self.decisions[d].choices) - 1}")
        return a

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

    # models
    def build_supernet(self):
        """The weight-sharing supernet (:class:`automl.compile.supernet.Supernet`)."""
        from automl.compile.supernet import build_supernet
        return build_supernet(self)

    def build_standalone(self, arch, se: float = 0.0) -> nn.Module:
        """Only the chosen ops: a timm EfficientNet for chains, a :class:`CellNet` for cells."""
        from automl.compile.standalone import build_standalone
        return build_standalone(self, arch, se=se)

    def arch_def(self, arch, se: float = 0.0) -> list[list[str]] | None:
        """timm arch_def (stages of block strings, ``skip`` layers removed) for chains; None for cells."""
        from automl.compile.standalone import arch_def
        return arch_def(self, arch, se=se)


def _measure_costs(cs_kind: str, plan, decisions: list[Decision]) -> tuple[list[list[float]], float]:
    """Per-choice parameter counts at the real shapes, and the fixed parameter count."""
    from automl.compile import supernet as sn
    cache: dict[tuple, int] = {}

    def params(op: str, cin: int, cout: int, stride: int, act=None, layer=None) -> int:
        key = (op, cin, cout, stride, act, layer and (layer.se, layer.act))
        if key not in cache:
            if layer is not None:
                cache[key] = count_params(sn.chain_op(plan, layer, op, device="meta"))
            else:
                cache[key] = count_params(create_op(op, cin, cout, stride, device="meta"))
        return cache[key]

    costs = [[0.0] * len(d.choices) for d in decisions]
    if cs_kind == "chain":
        fixed = sn.chain_fixed_params(plan)
        for layer in plan.layers:
            per = [params(op, layer.in_ch, layer.out_ch, layer.stride, plan.activation, layer) for op in layer.choices]
            if layer.decision is None and layer.gate is not None:  # a fixed layer of an elastic depth:
                g, on = layer.gate                                   # the depth decision's cost
                costs[g] = [c + (per[0] if active else 0) for c, active in zip(costs[g], on)]
            elif layer.decision is None:
                fixed += per[0]
            else:
                costs[layer.decision] = [float(p) for p in per]
        return costs, float(fixed)
    fixed = sn.cell_fixed_params(plan)
    for inst in plan.instances:
        if inst.op is not None:
            continue
        t = plan.templates[inst.template]
        for node in t.nodes:
            per = [params(op, inst.channels, inst.channels, 1) for op in node.ops]
            for d in node.op_decisions:
                costs[d] = [a + b for a, b in zip(costs[d], per)]
    return costs, float(fixed)


def _metric_costs(r: _Resolver, metric: ir.Metric, decisions: list[Decision]) -> list[list[float]]:
    by_name = {d.name: i for i, d in enumerate(decisions)}
    default = None
    general: dict[str, float] = {}
    specific: dict[tuple[int, str], float] = {}
    for e in metric.entries:
        if not math.isfinite(e.value):
            raise r.err("cost must be a finite number", e.pos)
        if e.choice is None:
            default = e.value
            continue
        if e.decision is not None:
            if e.decision.name not in by_name:
                close = difflib.get_close_matches(e.decision.name, by_name, n=1)
                raise r.err(f"unknown decision {e.decision.name!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
                            e.decision.pos)
            d = by_name[e.decision.name]
            if e.choice.name not in decisions[d].choices:
                raise r.err(f"decision {e.decision.name} has no choice {e.choice.name!r} "
                            f"(its choices: {', '.join(decisions[d].choices)})", e.choice.pos)
            specific[(d, e.choice.name)] = e.value
        else:
            if not any(e.choice.name in d.choices for d in decisions):
                raise r.err(f"no decision offers {e.choice.name!r}", e.choice.pos)
            general[e.choice.name] = e.value
    rows = []
    for d, dec in enumerate(decisions):
        row = []
        for c in dec.choices:
            v = specific.get((d, c), general.get(c, default))
            if v is None:
                raise r.err(f"metric {metric.name} gives no cost for {c!r} in {dec.name}; add `{c} = VALUE` "
                            f"or `default = VALUE`", metric.pos)
            row.append(v)
        rows.append(row)
    return rows


def compile_space(space: ir.Space) -> CompiledSpace:
    """IR -> :class:`CompiledSpace` (decisions, plan, cost table). Raises :class:`SpaceError`."""
    try:
        return _compile(space)
    except RecursionError:
        raise space.error("expression nested too deeply", ir.Pos(1, 1)) from None


def _compile(space: ir.Space) -> CompiledSpace:
    first = ir.Pos(1, 1)
    for kind, pos in space.duplicates:
        raise space.error(f"a second {kind!r} statement; a space has one", pos)
    net = space.network
    if net is None:
        raise space.error("the space has no network; add `network ... end` (see docs/space-language.md)",
                          _last_pos(space))
    for kind, pos in net.duplicates:
        raise space.error(f"a second {kind!r} statement in the network", pos)
    r = _Resolver(space)
    if space.input_shape is None:
        raise space.error("the space has no input shape; add e.g. `input 3 x 32 x 32`", net.pos)
    c = r.whole(space.input_shape[0], "input channels", 1, 4096)
    h = r.whole(space.input_shape[1], "input height", 1, _MAX_SIZE)
    w = r.whole(space.input_shape[2], "input width", 1, _MAX_SIZE)
    if space.classes is None:
        raise space.error("the space has no number of classes; add e.g. `classes 10`", net.pos)
    num_classes = r.whole(space.classes, "classes", 1, 1 << 20)
    if net.cells is not None:
        kind = "cell"
        plan, decisions = _compile_cells(r, net, c, num_classes)
    elif net.stages:
        kind = "chain"
        for t in space.cells:
            raise r.err(f"cell {t.name!r} is declared but the network is a chain of stages (no `cells`)", t.pos)
        plan, decisions = _compile_chain(r, net, c, num_classes)
    else:
        raise space.error("the network has neither stages nor cells; add `stage NAME width W choose OPS` "
                          "or `cells NAME x N width W`", net.pos)
    if not decisions:
        raise space.error("the space has no decisions: nothing to search; use `choose` in a stage", net.pos)

    costs, fixed = _measure_costs(kind, plan, decisions)
    macs, macs_fixed = measure_macs(kind, plan, decisions, (c, h, w))
    all_costs = {"params": costs, "macs": macs}
    all_fixed = {"params": fixed, "macs": macs_fixed}
    seen: dict[str, ir.Pos] = {}
    for m in space.metrics:
        if m.name in BUILTIN_METRICS:
            raise r.err(f"{m.name!r} is measured by the compiler; name your metric differently", m.pos)
        if m.name in seen:
            raise r.err(f"duplicate metric {m.name!r} (first at line {seen[m.name].line})", m.pos)
        seen[m.name] = m.pos
        all_costs[m.name] = _metric_costs(r, m, decisions)
        if not math.isfinite(m.fixed):
            raise r.err("cost must be a finite number", m.fixed_pos)
        all_fixed[m.name] = m.fixed
    gates = {layer.decision: layer.gate for layer in (plan.layers if kind == "chain" else ())
             if layer.gate is not None and layer.decision is not None}
    table = CostTable([d.choices for d in decisions], all_costs, all_fixed, gates=gates)
    name = space.name or os.path.splitext(os.path.basename(space.filename))[0]
    return CompiledSpace(name=name, kind=kind, input_shape=(c, h, w), num_classes=num_classes,
                         params=space.param_values, decisions=tuple(decisions), cost_table=table, plan=plan,
                         filename=space.filename, space=space, overrides=dict(space.overrides))


def _last_pos(space: ir.Space) -> ir.Pos:
    lines = space.source.split("\n")
    for i in range(len(lines) - 1, -1, -1):
        code = lines[i].split("#", 1)[0].rstrip()
        if code:
            return ir.Pos(i + 1, len(code) + 1)
    return ir.Pos(1, 1)


def load_compiled(path, overrides: dict[str, str] | None = None) -> CompiledSpace:
    """``compile_space(load_space(path, overrides))``."""
    return compile_space(load_space(path, overrides))
