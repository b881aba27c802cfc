"""Name resolution and expression evaluation for the compiler: parameters, choice sets, options and op
names of a parsed space, each mistake a :class:`SpaceError` at its position."""

from __future__ import annotations

import difflib
import math
import re

from timm.models._efficientnet_builder import round_channels

from automl.dsl import MAX_INT, ir
from automl.errors import SpaceError, listed, shortened
from automl.nn.ops import family_hint
from automl.nn.registry import OpInfo, get_op, is_op, list_ops

__all__ = ["Resolver", "fmt_number", "is_op_name", "op_key", "MAX_CH", "MAX_OPS", "GIVEN"]

MAX_CH = 1 << 16  # channels, widths
MAX_SET_DEPTH = 100  # choice sets inside one another (as expressions nest at most 100 operators)
# ops offered in one place (a layer's or a node's choices, a choice set): each is built and counted for every shape
# it is offered at when the space compiles (milliseconds each); real spaces offer at most a few dozen
MAX_OPS = 256
# how a message names a parameter's value given from outside the file: `` (from NAME=VALUE{GIVEN})``; a caller that
# took the values from a recipe (automl.pipeline.setup) rewords it as the recipe's key
GIVEN = ", given with --set or a recipe's space_args"
# the most characters of a number a message shows; a longer one is its first 8 and its count of digits
MAX_DIGITS = 20


def fmt_number(v) -> str:
    """A number for an error message (huge ints do not fit a float format; a real number that ``:g`` would
    show as a whole one, ``2.0000001`` as ``2``, is shown in full)."""
    if isinstance(v, int):
        return _cut_number(str(v))
    text = f"{v:g}"
    if math.isfinite(v) and float(text) != v and float(text).is_integer():
        return repr(v)
    return text


def _cut_number(text: str) -> str:
    """The text of a number, or its first 8 characters and its count of digits when longer than MAX_DIGITS."""
    return text if len(text) <= MAX_DIGITS else f"{text[:8]}...({sum(c.isdigit() for c in text)} digits)"


# a `param NAME = NUMBER` statement from its name on: the default as written (the grammar's NUMBER, maybe negative)
_PARAM_DEFAULT = re.compile(r"\w+\s*=\s*(-?)\s*((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")


def _written_default(space: ir.Space, p: ir.Param) -> str:
    """``p``'s default as its ``param`` line writes it (``1.0``, not the ``1`` of :func:`fmt_number`), cut as
    :func:`_cut_number` cuts; :func:`fmt_number` of the value where the line does not hold it."""
    line = space.source_line(p.pos.line) or ""
    m = _PARAM_DEFAULT.match(line, max(p.pos.column - 1, 0))
    return _cut_number(m.group(1) + m.group(2)) if m else fmt_number(p.default)


def _cut_numbers(message: str) -> str:
    """``message`` with each number longer than MAX_DIGITS characters cut (:func:`_cut_number`): the op
    registry's reason for refusing a name repeats the name's number (``expansion 1111...``) after the name."""
    return re.sub(r"\d+(?:\.\d+)?", lambda m: _cut_number(m.group(0)), message)


class Resolver:
    """Names and expressions of a parsed space: parameters, choice sets, options, op names."""

    def __init__(self, space: ir.Space):
        self.space = space
        self.values = space.param_values
        self.given: dict[str, tuple[str, ...]] = {}  # origin() texts -> the parameters given from outside they name
        self.sets = {}
        for s in space.choice_sets:
            if s.name in self.sets:
                raise self.err(f"duplicate choice set {s.name!r} (first declared at line "
                               f"{self.sets[s.name].pos.line}); rename or remove one of them", s.pos)
            if "." in s.name:
                raise self.err(f"choice set {s.name!r}: a name with '.' is an op name; pick another name", s.pos)
            if is_op_name(s.name):
                raise self.err(f"choice set {s.name!r} has the name of an op; pick another name", s.pos)
            self.sets[s.name] = s
        for s in space.choice_sets:  # every set must make sense even if unused
            self.expand(ir.ChoiceRef(s.name, s.pos), None, f"choice set {s.name}")

    def err(self, message: str, pos: ir.Pos | None) -> SpaceError:
        """A :class:`SpaceError` at ``pos``; a message holding an :meth:`origin` that names parameters given from
        outside the file carries their names (``SpaceError.given``)."""
        e = self.space.error(message, pos)
        e.given = next((names for text, names in self.given.items() if text in message), ())
        return e

    # expressions
    def eval(self, e: ir.Expr) -> int | float:
        if isinstance(e, ir.Num):
            return e.value
        if isinstance(e, ir.Ref):
            if e.name not in self.values:
                close = difflib.get_close_matches(e.name, self.values, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else (
                    f"; the parameters are: {listed(self.values)}" if self.values else
                    f"; declare it with `param {e.name} = VALUE`")
                raise self.err(f"unknown parameter {e.name!r}{hint}", e.pos)
            return self.values[e.name]
        if isinstance(e, ir.Neg):
            return -self.eval(e.operand)
        a, b = self.eval(e.left), self.eval(e.right)
        if e.op in ("/", "//") and b == 0:
            raise self._arithmetic_error(f"division by zero: the divisor of this `{e.op}` is 0", e.right,
                                         "the divisor non-zero", "divide by a number other than 0")
        try:
            v = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b,
                 "//": lambda: a // b}[e.op]()
        except (OverflowError, ZeroDivisionError):
            v = math.inf
        whole = isinstance(v, int)
        if abs(v) > MAX_INT if whole else not math.isfinite(v):  # a huge int has no float to test
            limit = f"2**62 ({MAX_INT:,})" if whole else "about 1.8e308"
            raise self._arithmetic_error(f"number too large: this `{e.op}` gives a value beyond {limit}", e,
                                         "it finite" if not whole else "it within 2**62",
                                         "write smaller numbers", at=e.op_pos)
        return v

    def _arithmetic_error(self, problem: str, e: ir.Expr, kept: str, literal_fix: str,
                          at: ir.Pos | None = None) -> SpaceError:
        """An expression's operation that has no value (``problem``), at ``e`` (the divisor, or the operation):
        which parameters' values ``e`` reads and where they came from (:meth:`origin`), and how to fix it (choose
        values that keep it ``kept``, as "it finite"; ``literal_fix`` where it reads no parameter)."""
        origin = self.origin(e)
        names = [n for n in ir.refs(e) if n in self.values]
        if not names:
            return self.err(f"{problem}; {literal_fix}", at or e.pos)
        which = f"a value of {names[0]} that keeps" if len(names) == 1 else f"values of {', '.join(names)} that keep"
        return self.err(f"{problem}{origin}; choose {which} {kept}", at or e.pos)

    def whole(self, e: ir.Expr, what: str, lo: int, hi: int) -> int:
        v = self.eval(e)
        if isinstance(v, float):
            if not math.isfinite(v) or not v.is_integer():
                raise self.err(f"{what} must be a whole number, got {fmt_number(v)}{self.origin(e)}", e.pos)
            v = int(v)
        if not lo <= v <= hi:
            raise self.err(f"{what} must be between {lo} and {hi}, got {fmt_number(v)}{self.origin(e)}", e.pos)
        return v

    def chain_width(self, e: ir.Expr, what: str) -> int:
        """A chain width: a number between 1 and ``MAX_CH`` (a fraction of a channel is no width), rounded
        as timm rounds channels (multiples of 8)."""
        v = self.eval(e)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and 1 <= v <= MAX_CH):
            raise self.err(f"{what} must be a number between 1 and {MAX_CH}, got {fmt_number(v)}"
                           f"{self.origin(e)}", e.pos)
        return int(round_channels(v))

    def origin(self, e: ir.Expr) -> str:
        """Where the parameters an expression reads got their values, for a message about its value:
        `` (from `param classes = 2.5` at line 2)``, `` (from classes=2.5, given with --set or a recipe's
        space_args)``; "" without parameters."""
        names = ir.refs(e)
        params = {p.name: p for p in self.space.params}
        parts = []
        for name in (n for n in names if n in params):
            p = params[name]
            if name in self.space.overrides:
                parts.append(f"{name}={self.space.overrides[name]}{GIVEN}")
            else:
                parts.append(f"`param {name} = {_written_default(self.space, p)}` at line {p.pos.line}")
        text = f" (from {', '.join(parts)})" if parts else ""
        given = tuple(n for n in names if n in params and n in self.space.overrides)
        if given:
            self.given[text] = given
        return text

    def stem(self, net: ir.Network, example: int, chain: bool) -> tuple[dict[str, ir.Option], int, int]:
        """The stem's options, width and kernel (odd, default 3); a chain's width is rounded as timm rounds."""
        if net.stem is None:
            raise self.err(f"the network has no stem; add e.g. `stem width {example}`", net.pos)
        stem = self.options(net.stem, {"width": "", "kernel": "", "stride": "", "repeat": "a stem is one conv"},
                            "stem")
        if "width" not in stem:
            raise self.err(f"the stem needs a width, e.g. `stem width {example}`", net.stem_pos)
        width = (self.chain_width(stem["width"].value, "stem width") if chain else
                 self.whole(stem["width"].value, "stem width", 1, MAX_CH))
        kernel = self.whole(stem["kernel"].value, "stem kernel", 1, 15) if "kernel" in stem else 3
        if kernel % 2 == 0:
            raise self.err(f"stem kernel must be odd, got {kernel}", stem["kernel"].value.pos)
        return stem, width, kernel

    def options(self, opts: tuple[ir.Option, ...], allowed: dict[str, str], where: str) -> dict[str, ir.Option]:
        """Options by key; an option not in ``allowed`` (key -> why not) or given twice is an error."""
        out: dict[str, ir.Option] = {}
        for o in opts:
            if o.key not in allowed or allowed[o.key]:
                why = allowed.get(o.key) or f"{where} takes {', '.join(k for k, v in allowed.items() if not v)}"
                raise self.err(f"{o.key!r} is not an option here: {why}", o.pos)
            if o.key in out:
                raise self.err(f"duplicate option {o.key!r} in {where}; give it once", o.pos)
            out[o.key] = o
        return out

    # choices
    def expand(self, src, kind: str | None, where: str) -> list[tuple[str, ir.Pos, str | None]]:
        """The ops a choice source offers, as (op, position, set it came through or None), in order.

        ``kind``: "block" (chain layers) or "cell" (cell nodes) restricts the ops; None checks names only.
        An op offered twice is an error at its second offer, found as the sets unfold: sets that include
        one another many times over never unfold in full. More than :data:`MAX_OPS` ops is an error at the
        first op beyond.
        """
        out: list[tuple[str, ir.Pos, str | None]] = []
        seen: dict[tuple, tuple] = {}
        for op, pos, via, refs in self._unfold(src, kind, ()):
            self._check_twice(op, pos, via, refs, seen, where)
            if len(out) == MAX_OPS:
                through = f" (through choice set {via!r})" if via and where != f"choice set {via}" else ""
                raise self.err(f"{where} offers more than {MAX_OPS} ops ({op!r}{through} is op {MAX_OPS + 1}); "
                               f"each is built and counted when the space compiles: offer fewer", pos)
            out.append((op, pos, via))
        return out

    def _unfold(self, src, kind: str | None, stack: tuple[str, ...], refs: tuple = ()):
        """(op, position, set, references) for each op ``src`` names, sets unfolded in place (a generator).

        The set is the innermost one the op came through (None for an op named in ``src`` itself); the
        references (``ir.ChoiceRef``: name and position) are those to the sets whose unfolding reached the op,
        outermost first.
        """
        items = [ir.ChoiceRef(n.name, n.pos) for n in src.items] if isinstance(src, ir.ChoiceInline) else [src]
        for ref in items:
            if ref.name in self.sets:
                if ref.name in stack:
                    raise self.err(f"choice set {ref.name!r} includes itself" + (
                        f" (through {' -> '.join(stack[stack.index(ref.name):] + (ref.name,))})"
                        if stack[-1] != ref.name else "") + f"; remove {ref.name!r} from this list", ref.pos)
                if len(stack) >= MAX_SET_DEPTH:
                    raise self.err(f"more than {MAX_SET_DEPTH} choice sets inside one another (set {stack[0]!r} "
                                   f"includes {stack[1]!r}, which includes ...); list the ops in fewer sets",
                                   ref.pos)
                inner = (stack + (ref.name,), refs + (ref,))
                for name in self.sets[ref.name].items:
                    for op, pos, via, path in self._unfold(ir.ChoiceRef(name.name, name.pos), kind, *inner):
                        yield op, pos, via or ref.name, path
            elif self._known_op(ref):
                self._check_kind(get_op(ref.name), kind, ref.pos)
                yield ref.name, ref.pos, None, refs
            else:
                raise self._unknown(ref, kind)

    def _unknown(self, ref, kind: str | None) -> SpaceError:
        hint = family_hint(ref.name)
        if hint:
            return self.err(f"unknown op {ref.name!r}: {hint}", ref.pos)
        pool = list(self.sets) + list_ops(kind=kind)
        lower = ref.name.lower()  # names are case-sensitive: `IR_K3_E3` is no op
        close = [lower] if lower != ref.name and (lower in self.sets or is_op_name(lower)) else (
            difflib.get_close_matches(ref.name, pool, n=3, cutoff=0.6))
        ops = ", ".join(o for o in list_ops(kind=kind) if not get_op(o).reduction)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else (
            f"; the ops are: {ops}" + (f"; the choice sets are: {listed(self.sets)}" if self.sets else ""))
        return self.err(f"unknown op or choice set {shortened(ref.name, repr)}{hint}", ref.pos)

    def _check_twice(self, op: str, pos: ir.Pos, via: str | None, refs: tuple, seen: dict, where: str) -> None:
        """No op offered twice in one place, however it is spelled (``ir_k3_e3`` and ``ir_k3_e3.0``): an error at
        the second copy that gives the first's position, and the set each copy came through (none where it is the
        set ``where`` names, the place itself). A set reached twice is an error at the reference that reaches it
        again (:meth:`_reached_twice`)."""
        key = op_key(op)
        if key not in seen:
            seen[key] = (op, pos, via, refs)
            return
        first, first_pos, first_via, first_refs = seen[key]
        other = {v: f"choice set {v!r}" for v in (via, first_via) if v and where != f"choice set {v}"}
        through = f" (through {other[via]})" if via in other else ""
        if first == op and first_pos == pos:  # the same set unfolded twice
            raise self._reached_twice(f"{shortened(op, repr)} is offered twice in {where}{through}", first_refs, refs)
        at = f"line {first_pos.line}, column {first_pos.column}"
        if first == op:
            first_through = f", through {other[first_via]}" if first_via in other else ""
            raise self.err(f"{shortened(op, repr)} is offered twice in {where}{through}: first at {at}{first_through}; "
                           f"keep one", pos)
        raise self.err(f"{shortened(op, repr)}{through} is the same op as {shortened(first, repr)} ({at}), "
                       f"written another way: it is offered twice in {where}; keep one", pos)

    def _reached_twice(self, head: str, first: tuple, second: tuple) -> SpaceError:
        """The error for a set unfolded twice in one place, ``first`` and ``second`` the references that reached
        the op each time (outermost first): at the reference in the innermost list the two share that reaches the
        set again, naming the set (the outermost one both copies unfold from alike) and where each reference to
        it is."""
        split = next(i for i, (a, b) in enumerate(zip(first, second)) if a.pos != b.pos)
        same = 0  # the references both end with, the set reached twice named by the one before them
        while same < min(len(first), len(second)) - split - 1 and first[-1 - same].pos == second[-1 - same].pos:
            same += 1
        name = first[-1 - same].name
        reaches = []
        for refs in (first, second):
            at = refs[-1 - same].pos
            sets = [r.name for r in refs[split:len(refs) - 1 - same]]
            via = f", through choice set{'s' * (len(sets) > 1)} {' -> '.join(map(repr, sets))}" if sets else ""
            reaches.append((f"line {at.line}, column {at.column}", via, not sets))
        again = "" if reaches[1][2] else f"; again at {reaches[1][0]}{reaches[1][1]}"
        return self.err(f"{head}: choice set {name!r} is reached twice, first at "
                        f"{reaches[0][0]}{reaches[0][1]}{again}; include it once", second[split].pos)

    def _known_op(self, ref) -> bool:
        """Whether ``ref`` names an op; a malformed name of a known family (``ir_k3_e6_se1.5``) is an error."""
        try:
            return is_op(ref.name)
        except ValueError as e:
            raise self.err(f"op {shortened(ref.name, repr)}: {_cut_numbers(str(e))}", ref.pos) from None

    def _check_kind(self, info: OpInfo, kind: str | None, pos: ir.Pos) -> None:
        if kind == "block" and info.kind != "block":
            raise self.err(f"op {info.name!r} is a cell op; chain layers use timm blocks: "
                           f"ir_kK_eE, ds_kK, cn_kK (with optional _seR, _nre/_nhs/... suffixes) or skip", pos)
        if kind == "cell" and info.kind != "cell":
            if info.name == "skip":
                raise self.err("'skip' is for chain layers; in a cell use 'identity'", pos)
            edge_ops = (n for n in list_ops(kind="cell") if not get_op(n).reduction)  # not resnet_block
            raise self.err(f"op {info.name!r} is a chain block; cells use {', '.join(edge_ops)}", pos)
        if kind == "cell" and info.reduction:
            raise self.err(f"{info.name!r} is a fixed reduction block: it goes in the `cells` layout "
                           f"(e.g. `split by {info.name} x 2`), not on an edge", pos)


def op_key(name: str) -> tuple:
    """What makes two spellings one op: a block op's timm block string (numbers normalised by the
    registry: ``e3.0`` and ``e03`` are ``e3``) with its options in any order (``_nre_se0.25`` is
    ``_se0.25_nre``) and its groups; any other op, its name."""
    info = get_op(name)
    if info.block_str is None:
        return (info.name,)
    block, *options = info.block_str.split("_")
    return (info.kind, block, frozenset(options), info.groups)


def is_op_name(name: str) -> bool:
    try:
        return is_op(name)
    except ValueError:
        return False
