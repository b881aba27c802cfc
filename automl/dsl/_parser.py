"""Parse ``.space`` text into the IR, turning every Lark error into a positioned :class:`SpaceError`.

The grammar lives in ``space.lark`` beside this file (LALR, strict). Syntax errors name the expected
tokens in words (``'stage'``, ``a name``, ``a number``), never Lark's internal ``__ANON_3``.
"""

from __future__ import annotations

import bisect
import difflib
import functools
import hashlib
import json
import logging
import math
import os
import re
import sys
import time
import unicodedata
from pathlib import Path

import lark
from lark import Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lark import PostLex
from lark.utils import FS

from automl._io import UnreadableText, atomic_path, read_utf8_text, temporary_pattern
from automl.dsl import ir
from automl.errors import SpaceError, listed

__all__ = ["parse_space", "load_space", "grammar_text", "space_parser", "ParamError", "SpaceFileError",
           "PUBLISHED_SPACES"]

_logger = logging.getLogger(__name__)
_GRAMMAR = Path(__file__).with_name("space.lark")
_TERMINAL_WORDS = {"NAME": "a name", "NUMBER": "a number", "$END": "end of file"}
MAX_INT = 1 << 62  # the largest whole number a space may write (the compiler's bound on values)
MAX_EXPR_DEPTH = 100  # operators inside one another in one expression (a chain `a + b + ...` nests too)
_OPERATORS = frozenset({"add", "sub", "mul", "div", "floordiv", "neg"})  # the expression rules with operands


def grammar_text() -> str:
    return _GRAMMAR.read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def space_parser() -> lark.Lark:
    """The LALR parser, built once per process. Strict mode (conflict and collision checks) needs ``interegular``.

    Building it takes a few tenths of a second, so the built parser (Lark's ``save``) is kept in the user's cache
    folder (:func:`parser_cache_file`) for the next process, which loads it (Lark's ``load``). The file is keyed
    (:func:`_cache_key`) by the grammar, the options, Lark's version and Python's; where the key differs or the
    file cannot be read (corrupt, cut short, unreadable) the parser is built again and a new file replaces the
    old one whole (written beside it, then renamed over it: another process never reads half a file); a folder
    that cannot be written only means no cache. The temporary a write killed midway left is deleted once it is
    stale (:func:`_remove_stale_temporaries`)."""
    try:
        import interegular  # noqa: F401
        strict = True
    except ImportError:  # pragma: no cover - the grammar is checked in CI where it is installed
        _logger.debug("interegular not installed: building the .space parser without strict checks")
        strict = False
    text = grammar_text()
    options = dict(parser="lalr", lexer="contextual", strict=strict, propagate_positions=True,
                   maybe_placeholders=True, postlex=_WholeWords())
    path = parser_cache_file(text)
    if path is None:
        return lark.Lark(text, **options)
    key = _cache_key(text, options)
    _remove_stale_temporaries(os.path.dirname(path))
    return _load_parser(path, key) or _store_parser(lark.Lark(text, **options), path, key)


def _cache_key(text: str, options: dict) -> bytes:
    """What a cached parser was built from: the grammar ``text``, the words the post-lexer always accepts, the
    Lark ``options`` (but the post-lexer object), Lark's version and Python's (the pickle's)."""
    opts = sorted((k, repr(v)) for k, v in options.items() if k != "postlex")
    data = json.dumps([text, list(_WholeWords.always_accept), opts, lark.__version__, list(sys.version_info[:2])])
    return hashlib.sha256(data.encode("utf-8")).hexdigest().encode("ascii")


def _load_parser(path: str, key: bytes) -> lark.Lark | None:
    """The parser cached in ``path`` under ``key`` (its first line), or None: no such file, another key, or a file
    that cannot be read or loaded. Files go through ``lark.utils.FS``, Lark's own file-system hook."""
    try:
        with FS.open(path, "rb") as f:
            if f.readline().rstrip(b"\n") != key:
                return None
            return lark.Lark.load(f)
    except FileNotFoundError:
        return None
    except Exception as e:  # noqa: BLE001 - unreadable, a folder, cut short, not a pickled parser: built again
        _logger.debug("cannot load the cached .space parser %s (%s: %s); building it", path, type(e).__name__, e)
        return None


def _store_parser(parser: lark.Lark, path: str, key: bytes) -> lark.Lark:
    """Keep ``parser`` in ``path`` under ``key``, atomically (:func:`~automl._io.atomic_path`: a temporary file
    beside it, renamed over it); a file or folder that cannot be written only means no cache. Returns ``parser``."""
    try:
        with atomic_path(path) as tmp, FS.open(str(tmp), "wb") as f:
            f.write(key + b"\n")
            parser.save(f)
    except OSError as e:  # a read-only folder, a full disk, a folder in the file's place
        _logger.debug("cannot cache the .space parser in %s (%s)", path, e)
    return parser


# the temporary of a cache file's write (automl._io.atomic_path: ".NAME.RANDOM.tmp"), and the age (by its mtime)
# past which its writer is gone (killed during the write, which takes well under a second)
_CACHE_TEMPORARY = temporary_pattern(r"space-[0-9a-f]{16}\.lark-cache")
STALE_SECONDS = 600


def _remove_stale_temporaries(folder: str) -> None:
    """Delete the temporaries in the cache ``folder`` that writes killed midway left (``kill -9``, a power loss):
    those older than :data:`STALE_SECONDS`. A younger one may be another process's write in progress (its name is
    its own: a new write never takes the name of a file that exists). What cannot be listed or deleted stays."""
    try:
        with os.scandir(folder) as entries:
            found = [e for e in entries if _CACHE_TEMPORARY.fullmatch(e.name)]
    except OSError as e:  # the folder unreadable
        _logger.debug("cannot look for stale temporaries of the .space parser's cache in %s (%s)", folder, e)
        return
    for entry in found:
        try:
            if entry.is_file(follow_symlinks=False) and (
                    time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS):
                os.unlink(entry.path)
        except FileNotFoundError:  # removed meanwhile (by another process's look)
            pass
        except OSError as e:
            _logger.debug("cannot remove the stale temporary %s of the .space parser's cache (%s)", entry.path, e)


def parser_cache_file(text: str) -> str | None:
    """Where :func:`space_parser` caches the parser of the grammar ``text``: ``automl/space-<digest>.lark-cache``
    in ``$XDG_CACHE_HOME`` (else ``~/.cache``), a folder of the user's own, not the shared temporary folder
    where Lark's ``cache=True`` puts it (a file another user left there would be unpickled). None (no cache)
    where there is no such absolute folder or it cannot be made. The digest also covers the words the post-lexer
    always accepts (as the file's key line does, :func:`_cache_key`), so that two versions of automl keep a file
    each."""
    root = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(root):  # unset, empty or relative: the XDG spec's default
        root = os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(root):  # no home folder (`~` is left as it is)
        return None
    folder = Path(root, "automl")
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (OSError, ValueError):  # not a folder, not allowed, a read-only disk; a NUL in the variable
        return None
    digest = hashlib.sha256("\0".join([text, *_WholeWords.always_accept]).encode("utf-8")).hexdigest()[:16]
    return str(folder / f"space-{digest}.lark-cache")


_SHAPE = re.compile(r"x(?:[0-9]+x)*[0-9]*")  # what follows the channels of `input 3x32x32`


class _WholeWords(PostLex):
    """Words are read whole: the contextual lexer also tries a name where the parser takes none, so a keyword
    glued to what follows (``choosemb``, ``repeat2``, ``stagex``) is one name, an error at that name with a
    suggestion, not ``choose mb`` or ``stage x``. A shape glued to its channels, ``3x32x32`` (the number 3,
    then the name ``x32x32``), still reads as ``3 x 32 x 32``."""

    always_accept = ("NAME",)

    def process(self, stream):
        prev = None
        for tok in stream:
            if (tok.type == "NAME" and prev is not None and prev.type == "NUMBER" and prev.end_pos == tok.start_pos
                    and _SHAPE.fullmatch(tok)):
                for m in re.finditer(r"x|[0-9]+", str(tok)):  # X: the terminal Lark names for "x"
                    prev = Token("X" if m.group() == "x" else "NUMBER", m.group(), tok.start_pos + m.start(),
                                 tok.line, tok.column + m.start(), tok.line, tok.column + m.end(),
                                 tok.start_pos + m.end())
                    yield prev
                continue
            prev = tok
            yield tok


class ParamError(SpaceError):
    """A value for a space parameter given from outside the file that the space rejects: an unknown name
    (``value`` is None; ``known`` lists the space's parameters) or a value that is not a number of the
    parameter's kind. ``problem`` says what is wrong without saying how the value was given; the message
    words it as the ``--set`` flag (``--set NAME=VALUE: problem``), and a caller that took the values from
    elsewhere (a recipe's ``space_args``) names its own key from ``name``, ``value`` and ``problem``."""

    def __init__(self, problem: str, filename: str, name: str, value: str | None = None,
                 known: tuple[str, ...] = ()):
        self.problem, self.name, self.value, self.known = problem, name, value, known
        flag = f"--set {name}" if value is None else f"--set {name}={value}"
        super().__init__(f"{flag}: {problem}", filename)

    def __reduce__(self):
        return type(self), (self.problem, self.filename, self.name, self.value, self.known)


# ---- Lark tree -> IR ---------------------------------------------------------------------------

def _pos(x) -> ir.Pos:
    if isinstance(x, Token):
        return ir.Pos(x.line or 1, x.column or 1)
    return ir.Pos(getattr(x, "line", 1) or 1, getattr(x, "column", 1) or 1)


def _name(tok: Token) -> ir.Name:
    return ir.Name(str(tok), _pos(tok))


def _number(tok: Token) -> int | float:
    text = str(tok)
    if re.fullmatch(r"\d+", text):
        return int(text)
    return float(text)


def _number_problem(text: str) -> str | None:
    """Why a NUMBER token cannot be a value (too large), or None. Checked before :func:`_number`, which
    could not even convert a whole number of more than 4,300 digits."""
    if re.fullmatch(r"\d+", text):
        digits = len(text.lstrip("0"))
        if digits > 19 or int(text) > MAX_INT:
            return (f"number too large ({digits:,} digits); a whole number in a space is at most 2**62 "
                    f"({MAX_INT:,})")
        return None
    if not math.isfinite(float(text)):
        shown = text if len(text) <= 20 else text[:20] + "..."
        return f"number too large: {shown} is beyond the largest real number (about 1.8e308)"
    return None


@v_args(meta=True)
class _ToIR(Transformer):
    # expressions
    def number(self, meta, c):
        return ir.Num(_number(c[0]), _pos(c[0]))

    def ref(self, meta, c):
        return ir.Ref(str(c[0]), _pos(c[0]))

    def _bin(op):  # noqa: N805 - a method factory used at class creation
        def f(self, meta, c):
            return ir.BinOp(op, c[0], c[1], c[0].pos, getattr(meta, "op_pos", None))
        return f

    add, sub, mul, div, floordiv = _bin("+"), _bin("-"), _bin("*"), _bin("/"), _bin("//")

    def neg(self, meta, c):
        return ir.Neg(c[0], _pos(meta))

    def signed_number(self, meta, c):
        return _number(c[0])

    def negative_number(self, meta, c):
        return -_number(c[0])

    # header
    def space_stmt(self, meta, c):
        return ("space", _name(c[0]), _pos(meta))

    def param_stmt(self, meta, c):
        return ("param", ir.Param(str(c[0]), c[1], c[1], _pos(c[0])), _pos(meta))

    def input_stmt(self, meta, c):
        return ("input", tuple(c), _pos(meta))

    def classes_stmt(self, meta, c):
        return ("classes", c[0], _pos(meta))

    def resolution_stmt(self, meta, c):
        return ("resolution", tuple(c), _pos(meta))

    # choices
    def name_list(self, meta, c):
        return tuple(_name(t) for t in c)

    def choices_stmt(self, meta, c):
        return ("choices", ir.ChoiceSet(str(c[0]), c[1], _pos(c[0])), _pos(meta))

    def choice_ref(self, meta, c):
        return ir.ChoiceRef(str(c[0]), _pos(c[0]))

    def choice_inline(self, meta, c):
        return ir.ChoiceInline(c[0], _pos(meta))

    # network
    def option(self, meta, c):
        return ir.Option(str(c[0]), c[1], _pos(c[0]))

    def activation_stmt(self, meta, c):
        return ("activation", _name(c[1]), _pos(meta))

    def family_stmt(self, meta, c):
        return ("family", _name(c[0]), _pos(meta))

    def stage_attr(self, meta, c):
        if str(c[0]) in ("depth", "width"):  # `width A, B, ...` (elastic width); `width A` is an option
            return ir.Option(str(c[0]), tuple(c[1:]), _pos(c[0]))
        value = ir.Ref(str(c[1]), _pos(c[1])) if isinstance(c[1], Token) else c[1]
        return ir.Option(str(c[0]), value, _pos(c[0]))

    def stem_stmt(self, meta, c):
        return ("stem", tuple(c), _pos(meta))

    def head_stmt(self, meta, c):
        opts = tuple(ir.Option("bn", None, _pos(x)) if isinstance(x, Token) else x for x in c)
        return ("head", opts, _pos(meta))

    def fixed_body(self, meta, c):
        return ir.FixedBody(_name(c[0]), _pos(meta))

    def choose_body(self, meta, c):
        return ir.ChooseBody(c[0], c[1], _pos(meta))

    def stage_stmt(self, meta, c, single=False):
        return ("stage", ir.Stage(str(c[0]), tuple(c[1:-1]), c[-1], single, _pos(c[0])), _pos(meta))

    def layer_stmt(self, meta, c):
        return self.stage_stmt(meta, c, single=True)

    def cell_item(self, meta, c):
        return ir.CellItem(str(c[0]), c[1], _pos(c[0]))

    def split(self, meta, c):
        return c[0]

    def cells_stmt(self, meta, c):
        # with maybe_placeholders the children are: items..., split-or-None, options...
        opts = tuple(x for x in c if isinstance(x, ir.Option))
        n_items = len(c) - len(opts) - 1
        items, split = tuple(c[:n_items]), c[n_items]
        return ("cells", ir.CellsLayout(items, split, opts, _pos(meta)), _pos(meta))

    def network_block(self, meta, c):
        fields = {"activation": None, "stem": None, "head": None, "cells": None, "family": None}
        where = {}
        stages, dups = [], []
        late = None
        order = []
        for kind, value, pos in c:
            if kind in ("stem", "head"):
                order.append((kind, f"the `{kind}`", pos))
            elif kind in ("stage", "cells"):
                keyword = "layer" if kind == "stage" and value.single else "stage"
                what = "the `cells` layout" if kind == "cells" else f"`{keyword} {value.name}`"
                order.append(("body", what, pos))
            if kind == "stage":
                stages.append(value)
            elif fields[kind] is not None:
                dups.append((kind, pos))
            else:
                fields[kind], where[kind] = value, pos
                if kind == "activation" and stages:
                    late = value.pos
        return ("network", ir.Network(
            activation=fields["activation"], stem=fields["stem"], stem_pos=where.get("stem"),
            stages=tuple(stages), head=fields["head"], head_pos=where.get("head"), cells=fields["cells"],
            pos=_pos(meta), duplicates=tuple(dups), family=fields["family"], late_activation=late,
            order=tuple(order)), _pos(meta))

    # cells
    def cell_inputs(self, meta, c):
        return ("inputs", c[0], _pos(meta))

    def cell_stride(self, meta, c):
        return ("stride", c[0], _pos(meta))

    def earlier(self, meta, c):
        return None

    def node_choose(self, meta, c):
        return ("choose", c[0], c[1])

    def node_distinct(self, meta, c):
        return ("distinct", c[0], c[1])

    def node_edges(self, meta, c):
        return ("edges", None, c[0])

    def node_stmt(self, meta, c):
        mode, count, inputs = c[1]
        return ir.Node(str(c[0]), count, inputs, c[2], _pos(c[0]), mode)

    def output_node(self, meta, c):
        return ("output", ("node", (_name(c[0]),), _pos(meta)))

    def output_concat(self, meta, c):
        return ("output", ("concat", c[0], _pos(meta)))

    def cell_block(self, meta, c):
        inputs = stride = output = None
        nodes, dups = [], []
        for x in c[1:]:
            if x is None:  # no output statement
                continue
            if isinstance(x, ir.Node):
                nodes.append(x)
            elif x[0] == "output":
                output = x[1]
            elif (inputs if x[0] == "inputs" else stride) is not None:
                dups.append((x[0], x[2]))
            elif x[0] == "inputs":
                inputs = x[1]
            else:
                stride = x[1]
        return ("cell", ir.CellTemplate(str(c[0]), inputs, stride, tuple(nodes), _pos(c[0]), output,
                                        tuple(dups)), _pos(meta))

    # metrics
    def cost_entry(self, meta, c):
        return ir.CostEntry(_name(c[0]), _name(c[1]) if c[1] is not None else None, float(c[2]), _pos(meta))

    def default_entry(self, meta, c):
        return ir.CostEntry(None, None, float(c[0]), _pos(meta))

    def fixed_entry(self, meta, c):
        return ("fixed", float(c[0]), _pos(meta))

    def metric_block(self, meta, c):
        entries = tuple(x for x in c[1:] if isinstance(x, ir.CostEntry))
        fixed = [x for x in c[1:] if isinstance(x, tuple)]
        return ("metric", ir.Metric(str(c[0]), entries, fixed[0][1] if fixed else 0.0,
                                    fixed[0][2] if fixed else None, _pos(c[0]),
                                    fixed_again=tuple(pos for _, _, pos in fixed[1:])), _pos(meta))

    def start(self, meta, c):
        return list(c)


# ---- syntax errors in words --------------------------------------------------------------------

def _describe_expected(names) -> list[str]:
    words = set()
    p = space_parser()
    for n in names:
        if n in _TERMINAL_WORDS:
            words.add(_TERMINAL_WORDS[n])
            continue
        try:
            term = p.get_terminal(n)
        except KeyError:
            words.add(n.lower())
            continue
        if term.pattern.type == "str":
            words.add(repr(term.pattern.value))
        else:
            words.add(n.lower())
    # keywords first, then punctuation and operators, then "a name", "a number"
    return sorted(words, key=lambda w: (not w[1:2].isalpha(), not w.startswith("'"), w))


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if tok.type == "NAME":
        return f"name {str(tok)!r}"
    if tok.type == "NUMBER":
        return f"number {str(tok)}"
    return repr(str(tok))


def _bracket_hint(e: UnexpectedToken, text: str) -> str:
    """``choose a, b`` (also after ``then`` and ``through``): a list of choices is written in brackets."""
    stack = getattr(getattr(e, "state", None), "value_stack", None) or []
    if str(e.token) != "," or len(stack) < 2:
        return ""
    keyword, first = stack[-2], stack[-1]
    if not (isinstance(keyword, Token) and keyword.type in ("CHOOSE", "THEN", "THROUGH")
            and isinstance(first, Token) and first.type == "NAME" and first.start_pos is not None):
        return ""
    name = space_parser().get_terminal("NAME").pattern.to_regexp()
    names = re.match(rf"(?:{name})(?:\s*,\s*(?:{name}))*", text[first.start_pos:])
    items = re.split(r"\s*,\s*", names.group(0)) if names else [str(first)]
    cut = next((i for i, w in enumerate(items) if i and w in _keywords()), len(items))  # `choose mb,` `end`
    if cut == 1:
        return (f"; remove the `,` after `{first}`, or write a list of choices in brackets: "
                f"`{keyword} [{first}, OTHER]`")
    return f"; a list of choices goes in brackets: `{keyword} [{', '.join(items[:cut])}]`"


@functools.lru_cache(maxsize=1)
def _keywords() -> frozenset[str]:
    """The grammar's words (``end``, ``node``, ``output``, ...): soft, a name wherever a name is expected."""
    return frozenset(t.pattern.value for t in space_parser().terminals
                     if t.pattern.type == "str" and t.pattern.value.isalpha())


_READS_A_NAME = {"INPUTS": "a name of the list", "CONCAT": "a name of the list", "COMMA": "a name of the list",
                 "EQUAL": "a name of the list", "CHOOSE": "the choices", "THEN": "the choices",
                 "THROUGH": "the choices", "FIXED": "the op", "ACTIVATION": "the activation", "FAMILY": "the family",
                 "SPACE": "the space's name", "PARAM": "the parameter's name", "STAGE": "the stage's name",
                 "LAYER": "the layer's name", "CELL": "the cell's name", "NODE": "the node's name",
                 "METRIC": "the metric's name", "CELLS": "a cell's name", "BY": "a cell's name"}
# the tokens an expression follows: a keyword after one of them is read as a parameter, the expression's value
_READS_A_VALUE = frozenset({"WIDTH", "STRIDE", "REPEAT", "KERNEL", "SE", "DEPTH", "CLASSES", "INPUT", "X",
                            "RESOLUTION", "SUMS", "MINUS", "PLUS", "STAR", "SLASH", "__ANON_0", "LPAR"})
# the statements of a file, outside any block: one of these words starting a line inside a block means that the
# block above it has no `end`
_TOP_LEVEL = frozenset({"space", "param", "input", "resolution", "classes", "choices", "network", "cell", "metric"})
_BLOCKS = {"NETWORK": "network", "CELL": "cell", "METRIC": "metric"}
# the keywords that may follow a closed `[...]` list (`choose [a, b] then c`, or the next statement): met inside a
# list, they mean its `]` is missing
_AFTER_A_LIST = frozenset({"then", "end", "stage", "layer", "head", "stem", "cells", "node", "output", "activation",
                           "family"}) | _TOP_LEVEL
# the statements that start with a name, with the keywords that may follow it there: such a keyword right after
# the statement's keyword, with an error after it on its line, was read as the name (`stage width 24 ...`)
_NAMED_OPTIONS = {"STAGE": frozenset({"width", "stride", "repeat", "kernel", "se", "depth", "activation", "choose",
                                      "fixed"}),
                  "CELL": frozenset({"inputs", "stride", "node", "output"}), "NODE": frozenset({"sums"})}
_NAMED_OPTIONS["LAYER"] = _NAMED_OPTIONS["STAGE"]
# the statements a `network` block holds (met after its `end`, they belong above it)
_NETWORK_ONLY = frozenset({"activation", "family", "stem", "stage", "layer", "head", "cells"})


def _list_hint(e: UnexpectedToken, text: str) -> str:
    """A list written as in another language: in brackets after ``choices NAME =``, nested, ending in ``,``, or
    with a name and no ``,`` before the next name of the line."""
    stack = getattr(getattr(e, "state", None), "value_stack", None) or []
    last, tok = (stack[-1] if stack else None), e.token
    kind = getattr(last, "type", None)
    if str(tok) == "[" and kind == "EQUAL":
        return "; a choice set lists its names without brackets: `choices mb = ir_k3_e3, ds_k3`"
    if str(tok) == "[" and kind in ("LSQB", "COMMA"):
        return "; a list of choices holds names (op names or choice sets), not another list"
    if str(tok) == "]" and kind == "COMMA":
        return "; remove the `,` before the `]`"
    if str(tok) == "]" and kind == "LSQB":
        keyword = str(stack[-2]) if len(stack) > 1 and isinstance(stack[-2], Token) else "choose"
        example = "identity, sep_k3" if keyword == "through" else "ir_k3_e3, skip"
        return f"; a list of choices needs at least one op (a name): `{keyword} [{example}]`"
    bracket = next((x for x in reversed(stack) if getattr(x, "type", None) in ("LSQB", "RSQB")), None)
    if (tok.type == "NAME" and str(tok) in _AFTER_A_LIST and getattr(bracket, "type", None) == "LSQB"
            and kind == "NAME" and last.line == tok.line  # on a later line: `_open_hint`
            and "]" not in text.splitlines()[tok.line - 1][tok.column - 1:]):  # closed after: a `,` left out
        where = f"at column {bracket.column}" if bracket.line == tok.line else f"on line {bracket.line}"
        return f"; the `[` {where} is not closed: add `]` before `{tok}`"
    if (tok.type == "NAME" and kind == "NAME" and last.line == tok.line and "COMMA" in (e.accepts or e.expected)
            and len(stack) > 1 and getattr(stack[-2], "type", None) in ("COMMA", "EQUAL", "LSQB", "INPUTS", "CONCAT")):
        return f"; separate the names of a list with `,`: `{last}, {tok}`"
    return ""


def _keyword_as_name_hint(e: UnexpectedToken, text: str) -> str:
    """A keyword on the next line read as a name: keywords are soft, so ``output concat``, ``inputs``, ``choose``,
    ``then``, ``through``, ``fixed`` or ``choices NAME =`` with its names left out (or a list ending in ``,``) takes
    the ``end``, ``node`` or ``stage`` below it for one, and the error comes a statement later. So does an option
    or operator with its value left out (``stem width``, ``stride choose``): the keyword after it is read as a
    parameter."""
    stack = getattr(getattr(e, "state", None), "value_stack", None) or []
    if len(stack) < 2:
        return ""
    before, last = stack[-2], stack[-1]
    in_values = len(stack) > 2 and getattr(stack[-3], "data", None) in _OPERATORS | {"number", "ref"}  # `24, 32`
    if (isinstance(before, Token) and (before.type in _READS_A_VALUE or before.type == "COMMA" and in_values)
            and isinstance(last, Token) and last.type == "NAME" and str(last) in _keywords()
            and not re.search(rf"(?m)^\s*param\s+{last}\b", text)):  # a parameter named `width` is a value
        fix = ", or remove the `,`" if before.type == "COMMA" else ""
        return (f" (the `{last}` on line {last.line} was read as a parameter, the value after the `{before}` on line "
                f"{before.line}: write the value after that `{before}`{fix})")
    if getattr(last, "data", None) == "name_list":
        last = last.children[-1]
    elif not (isinstance(before, Token) and before.type in _READS_A_NAME):
        return ""  # a list's first name, not yet reduced to a name_list, follows its keyword
    if not (isinstance(last, Token) and str(last) in _keywords() and isinstance(before, Token)):
        return ""
    if (last.line == before.line and str(last) in _NAMED_OPTIONS.get(before.type, ())
            and e.token.type != "$END" and e.token.line == last.line  # an option misspelt after it: did you mean
            and not _hint(e.token, _describe_expected(e.accepts or e.expected or ())).startswith("; did you mean")):
        return (f"; `{last}` was read as {_READS_A_NAME[before.type]}: write "
                f"`{before} NAME {last} ...`")
    if last.line <= before.line:
        return ""
    if before.type in _READS_A_NAME and _READS_A_NAME[before.type] != "a name of the list":
        what = _READS_A_NAME[before.type]
        return (f" (the `{last}` on line {last.line} was read as {what} after the `{before}` on line {before.line}: "
                f"write {what} after that `{before}`, on its line)")
    return (f" (the `{last}` on line {last.line} was read as a name of the list before it: write the list's names "
            f"before that `{last}`, and no `,` after the last)")


def _empty_set(e: UnexpectedToken, text: str) -> tuple[str, Token] | None:
    """``choices NAME =`` with no names: at the end of the file, or before a statement whose keyword (soft, so a
    name), starting a later line, is read as the set's first name, which leaves the error a token or a line later.
    A message that names the set, and its ``choices`` keyword to report it at; None for any other error."""
    stack = getattr(getattr(e, "state", None), "value_stack", None) or []
    if len(stack) >= 3 and getattr(stack[-1], "type", None) == "EQUAL" and e.token.type == "$END":
        read = ""
    elif (len(stack) >= 4 and getattr(stack[-2], "type", None) == "EQUAL" and isinstance(stack[-1], Token)
          and str(stack[-1]) in _keywords() and stack[-1].line > stack[-2].line and _starts_line(stack[-1], text)):
        read, stack = f"; the `{stack[-1]}` on line {stack[-1].line} was read as a name of the list", stack[:-1]
    else:
        return None
    keyword, name = stack[-3], stack[-2]
    if getattr(keyword, "type", None) != "CHOICES":
        return None
    return (f"choice set {str(name)!r} has no choices: list at least one op (or choice set) after its `=`, on its "
            f"line: `choices {name} = ir_k3_e3, skip`{read}", keyword)


def _number_hint(e: UnexpectedToken) -> str:
    """``param p = 2 * c``, ``default = 1 + 2``: a parameter's default and a cost are one number each; and
    ``param p =`` with the number left out (the error comes at the next line's first word)."""
    stack = getattr(getattr(e, "state", None), "value_stack", None) or []
    i = len(stack) - 1
    while i >= 0 and getattr(stack[i], "type", None) in ("NUMBER", "MINUS"):
        i -= 1
    if i < 2 or getattr(stack[i], "type", None) != "EQUAL":
        return ""
    equal, tok, statement = stack[i], e.token, getattr(stack[i - 2], "type", None)
    if statement == "CHOICES":  # the third statement with `=`: its list takes names
        return ""
    param = statement == "PARAM"
    what = f"`param {stack[i - 1]}`" if param else "the cost"
    if tok.type == "$END" or tok.line > equal.line:
        return f"; {what} has no value: write a number after its `=` on line {equal.line}"
    if param:
        return (f"; a parameter's default is one number (`param {stack[i - 1]} = 16`), not an expression: write "
                f"expressions where the parameter is used (`width 2 * {stack[i - 1]}`)")
    return "; a cost is one number (`default = 1.5`), not an expression"


def _output_hint(e: UnexpectedToken) -> str:
    """A ``node`` or a second ``output`` after a cell's ``output``: the output is the cell's last statement."""
    stack = getattr(getattr(e, "state", None), "value_stack", None) or []
    if str(e.token) not in ("node", "output") or not any(getattr(x, "type", None) == "OUTPUT" for x in stack[-4:]):
        return ""
    if str(e.token) == "output":
        return "; a cell has one `output` (for several nodes: `output concat n1, n2`)"
    return "; a cell's `output` comes after its nodes: move it to just before the cell's `end`"


def _starts_line(tok: Token, text: str) -> bool:
    return tok.start_pos is not None and not text[text.rfind("\n", 0, tok.start_pos) + 1:tok.start_pos].strip()


def _open_hint(e: UnexpectedToken, text: str) -> str:
    """What is left open where the parser stopped: a ``[`` or ``(`` whose closing bracket a later line does not
    give, or a ``network``, ``cell`` or ``metric`` block with no ``end`` before the end of the file or the next
    top-level statement (read as a name, that statement may be one token back, as in ``metric`` ... ``network``)."""
    stack = getattr(getattr(e, "state", None), "value_stack", None) or []
    tok, closed, ended = e.token, 0, 0
    for item in reversed(stack):  # the stack holds a block's `end` until the token after it reduces the block
        kind = getattr(item, "type", None)
        if kind in ("RSQB", "RPAR", "END"):
            closed, ended = closed + (kind != "END"), ended + (kind == "END")
        elif kind in ("LSQB", "LPAR") and closed:
            closed -= 1
        elif kind in _BLOCKS and ended:
            ended -= 1
        elif kind in ("LSQB", "LPAR") and (tok.type == "$END" or tok.line > item.line):
            fix = "add `]` at the end of its list" if kind == "LSQB" else "add `)` where its expression ends"
            return f"; the `{str(item)}` on line {item.line} is not closed: {fix}"
        elif (kind in ("LSQB", "LPAR") and {"RSQB", "RPAR"} & set(e.accepts or e.expected or ())
              and ("]" if kind == "LSQB" else ")") not in text[tok.start_pos:].split("\n", 1)[0]):
            fix = "add `]` at the end of its list" if kind == "LSQB" else "add `)` where its expression ends"
            return f"; the `{str(item)}` at column {item.column} is not closed: {fix}"
        elif kind in _BLOCKS:
            culprit = tok if tok.type == "$END" or str(tok) in _TOP_LEVEL else stack[-1]
            at_end = getattr(culprit, "type", None) == "$END"
            if not at_end and not (isinstance(culprit, Token) and str(culprit) in _TOP_LEVEL
                                   and culprit.line > item.line and _starts_line(culprit, text)):
                return ""
            where = "at the end of the file" if at_end else f"before line {culprit.line}"
            return f"; the `{_BLOCKS[kind]}` block of line {item.line} has no `end`: add `end` {where}"
    if str(tok) == "end" and tok.type == "NAME":
        return "; no `network`, `cell` or `metric` block is open for this `end` to close: remove it"
    return ""


def _top_level_hint(e: UnexpectedToken, tok: Token, expected: list[str], text: str) -> str:
    """For a top-level statement's keyword (``cell``, ``metric``) met inside a block left open: the block's missing
    ``end`` (:func:`_open_hint`), after a keyword it may be a typo of (``cell`` for ``cells``, which a ``network``
    block takes) when there is one; empty for any other token, or no block left open."""
    if str(tok) not in _TOP_LEVEL:
        return ""
    block = _open_hint(e, text)
    if not block.startswith("; the `") or "has no `end`" not in block:
        return ""
    typo = _hint(tok, expected)
    return f"{typo} If not,{block[1:]}" if typo.startswith("; did you mean") else block


_NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_."


def _run_before(text: str, end: int, chars: str = _NAME_CHARS) -> str:
    """The longest run of ``chars`` (one-character strings) in ``text`` that ends at ``end``, found in time linear
    in the run (a regex ``[...]*$`` searched over ``text[:end]`` retries at every position: quadratic in a long
    name)."""
    start = end
    while start > 0 and text[start - 1] in chars:
        start -= 1
    return text[start:end]


def _malformed_number(tok: Token, text: str) -> tuple[str, int] | None:
    """A number written as in another language, read as a number and then a name or a mark (``0x10``, ``1_000``,
    ``16px``, ``1,024``): a message saying how to write it, and how many characters before ``tok`` it starts."""
    start = tok.start_pos
    if tok.type == "$END" or start is None or start == 0 or not re.match(r"[0-9.]", text[start - 1]):
        return None
    left = _run_before(text, start)
    if not re.match(r"\.?[0-9]", left):
        return None  # the end of a name such as `s1`
    if str(tok) == ",":
        groups = re.match(r",[0-9]{3}(?![0-9])", text[start:])
        if left.isdigit() and groups:
            return (f"`{left}{groups.group()}`: write numbers without a thousands separator: "
                    f"`{left}{groups.group()[1:]}`", len(left))
        return None
    glued = re.match(r"[0-9A-Za-z_.]*", text[start:]).group()
    if not glued:
        return None  # a mark after a plain number, such as `16)`
    word = left + glued
    for convert in (lambda w: int(w, 0), float):  # int(w, 0) reads 0x10, 0o17, 0b101 and 1_000
        try:
            value = convert(word)
        except ValueError:
            continue
        if math.isfinite(value):
            how = "without `_`" if "_" in word else "in decimal digits"
            return f"`{word}`: write the number {how}: `{value}`", len(left)
    if glued.startswith("x") and len(glued) > 1:  # `input 3xsize x size`: the shape's `x` glued to a name
        spaced = re.sub(r"(?<=[0-9])x|x(?=[0-9])", " x ", word)
        return f"`{word}`: put spaces around `x`: `{' '.join(spaced.split())}`", len(left)
    if re.fullmatch(r"[0-9]*\.[0-9]*(\.[0-9]*)+", word):  # `1.0.0`: a version number; `1..0`: a typo
        return _many_dots(word), len(left)
    unit = re.fullmatch(r"((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)[A-Za-z]+", word)
    return (f"`{word}`: a number takes no unit: write `{unit.group(1)}`", len(left)) if unit else None


def _many_dots(word: str) -> str:
    """What to write for a number with more than one `.` (``1.0.0``, ``1..0``): the number it most likely meant."""
    single = re.sub(r"\.{2,}", ".", word)  # `1..0` -> `1.0`, `1.0..5` -> `1.0.5`
    first = single if single.count(".") == 1 else single[:single.index(".", single.index(".") + 1)]
    first = first.rstrip(".") if re.match(r"[0-9]", first) else first  # `1..` -> `1`, not `1.`
    return f"`{word}` is a malformed number (one `.` at most): write one number, e.g. `{first}`"


def _close_keyword(word: str, keywords: list[str]) -> str | None:
    """The keyword ``word`` is likely a typo of: the same in other case (``Network``), two neighbouring letters
    swapped (``edn``, ``netwrok``), or close by :mod:`difflib`'s measure (``stge``, ``chose``)."""
    for k in keywords:
        if word.lower() == k or (len(word) == len(k) and sorted(word) == sorted(k)
                                 and sum(a != b for a, b in zip(word, k)) == 2
                                 and any(word[i:i + 2] == k[i + 1] + k[i] for i in range(len(k) - 1))):
            return k
    close = difflib.get_close_matches(word, keywords, n=1, cutoff=0.75)
    return close[0] if close else None


def _dashed_name(tok: Token, source: str) -> str:
    """``; names are written with `_`...`` for a ``-`` inside a name (``ir-k3-e6``, ``mb-or-skip``) where the
    grammar takes no minus."""
    start = tok.start_pos
    if str(tok) != "-" or start is None:
        return ""
    left = _run_before(source, start)
    if not (re.match(r"[A-Za-z_]", left) and re.match(r"[A-Za-z_]", source[start + 1:start + 2])):
        return ""
    word = _run_before(source, start, _NAME_CHARS + "-") + re.match(r"[A-Za-z0-9_.-]*", source[start:]).group()
    return f"; names are written with `_`, not `-`: `{word.replace('-', '_')}`"


def _hint(tok: Token, expected_words: list[str]) -> str:
    text = str(tok)
    keywords = [w.strip("'") for w in expected_words if w.startswith("'") and w.strip("'").isalpha()]
    if tok.type == "NAME" and re.fullmatch(r"x\d+(x\d+)*", text) and "x" in keywords:  # `x6`, `3 x32x32`
        return f"; put spaces around `x`: `{' x '.join(text.split('x')).strip()}`"
    if tok.type in ("NAME",) or text.isalpha():
        close = _close_keyword(text, keywords)
        if close:
            return f"; did you mean {close!r}?"
        glued = sorted((k for k in keywords if len(k) > 2 and text.startswith(k) and len(text) > len(k)), key=len)
        if glued:  # `throughmetric`: words are read whole
            return f"; put a space after `{glued[-1]}`: `{glued[-1]} {text[len(glued[-1]):]}`"
    if tok.type == "NUMBER" and expected_words == ["a name"]:  # `stage 1s`: the lexer read `1` and then `s`
        return "; a name starts with a letter or `_` (then letters, digits and `_`), e.g. `s1`"
    if text == "//" and "'//'" not in expected_words:
        return "; comments start with `#`"
    if text == "=" and any(w in expected_words for w in ("a number", "a name")):
        return "; an option takes its value without `=`: `width 24`"
    return ""


ELLIPSIS = "\u2026"
_MARKS = {
    '"': "names and numbers are written without quotes", "'": "names and numbers are written without quotes",
    "\u201c": "names and numbers are written without quotes", "\u2018": "names and numbers are written without quotes",
    ";": "a statement ends at the end of its line: remove the `;`",
    "{": "a block has no braces: it starts with its line (`network`, `cell normal`) and ends with `end`",
    "}": "a block has no braces: it starts with its line (`network`, `cell normal`) and ends with `end`",
    "$": "a parameter is written by its name alone: `width 2 * size`",
    "\\": "a statement may span lines without it: remove the `\\`",
    "|": "separate choices with `,`: `choose [ir_k3_e3, skip]`",
    "^": "there is no power operator: write the number (`256`, not `2^8`) or a product (`2 * 2 * 2`)",
    ELLIPSIS: "an ellipsis stands for what was left out, as in the excerpts of the docs: delete it, or write that out",
}
# what a .space file is written with, for a character that has no hint of its own
_ALPHABET = ("a .space file holds names (a-z, A-Z, 0-9, `_`), numbers, `= , [ ] ( ) + - * / //` and `#` "
             "comments: delete it")


def _character_hint(ch: str, text: str, pos: int) -> str:
    """How to write what a character outside the language was meant for: every character gets a hint (what it
    stands for where that is likely, else what a .space file is written with)."""
    category = unicodedata.category(ch) if len(ch) == 1 else "Cn"
    if ch.isdigit():  # `３`, `²`
        return " (write numbers with the digits 0-9)"
    if ch.isalpha() or category.startswith("M"):  # `é`, or a combining accent (`e` + U+0301)
        return " (names are written with the letters a-z and A-Z, the digits 0-9 and `_`)"
    if ch.isnumeric():  # `½`, `Ⅻ`
        return " (write numbers with the digits 0-9)"
    if category == "Cf":
        return " (an invisible formatting character, as pasted from a web page or word processor: delete it)"
    if category == "Pd" or ch == "\u2212":  # an en dash, em dash or minus sign, as a word processor writes `-`
        return " (a dash or minus sign as a word processor writes it: write the plain `-`)"
    if category == "Cc":
        return " (a control character: delete it)"
    before = _run_before(text, pos, "0123456789.")
    number = before + re.match(r"[0-9.]*", text[pos:]).group()
    if ch == "." and re.search(r"[0-9]", number) and not re.search(r"[A-Za-z_]\Z", text[:pos - len(before)]):
        return f" ({_many_dots(number)})"  # `1.0..5`, `0...5`: a number, not a name, with more than one `.`
    if text.startswith("...", pos):  # copied from an excerpt in the docs, where it stands for lines left out
        return f" ({_MARKS[ELLIPSIS]})"
    if ch == "." and re.search(r"[A-Za-z0-9_]\Z", text[:pos]):  # `space my.space`, `choices mb.a = ...`
        word = _run_before(text, pos) + re.match(r"[A-Za-z0-9_.]*", text[pos:]).group()
        return (f" (a name holds `.` only before a digit, as the op names `ir_k3_e2.5` and `_se0.25` do: write "
                f"`{re.sub(r'[.](?![0-9])', '_', word)}`)")
    if ch == "\u00d7":
        return f" ({_times_hint(text, pos)})"
    if ch == ":":
        before = text[text.rfind("\n", 0, pos) + 1:pos]
        if re.fullmatch(r"\s*(param|choices)\s+\S+\s*", before):
            return f" (a {before.split()[0]} statement takes `=`: `{before.strip()} = ...`)"
        return " (remove the `:`: a block starts with its keyword alone, as `network`, and ends with `end`)"
    return f" ({_MARKS.get(ch, _ALPHABET)})"


def _times_hint(text: str, pos: int) -> str:
    """How to write the ``×`` at ``pos``: in an ``input`` statement's shape, the letter ``x``; elsewhere (an
    expression) ``*``, the multiplication, with its operands as the line writes them."""
    before = text[text.rfind("\n", 0, pos) + 1:pos]
    if re.match(r"\s*input\b", before):
        return "in an input shape, write the letter `x`: `input 3 x 32 x 32`"
    left = re.search(r"[A-Za-z0-9_.]*\s*$", before).group().strip()
    right = re.match(r"\s*[A-Za-z0-9_.]*", text[pos + 1:]).group().strip()
    example = f"`{left} * {right}`" if left and right else "`2 * size`"
    return (f"to multiply, write `*` in its place: {example}; an `input` shape is written with the letter `x`: "
            f"`input 3 x 32 x 32`")


def _family_hint(e: UnexpectedToken) -> str:
    """``family`` written among a stage's options (``stage s1 width 24 family mobilenetv3 choose ...``): it is the
    whole network's, a line of its own; in a cell it has no meaning; a stage's second ``then``."""
    accepts = e.accepts or e.expected or ()
    if str(e.token) == "family" and "NODE" in accepts:  # `cell normal family X`
        return "; `family` is a chain network's (the timm class it exports as); a cell has none: remove it"
    if e.token.type == "THEN" and "STAGE" in accepts:  # `choose a then b then c`
        return ("; a stage has one `then` (the choices of its layers 2 and on): remove the second, or put all the "
                "choices of those layers in one list: `then [a, b]`")
    if e.token.type != "FAMILY" or "CHOOSE" not in accepts:
        return ""
    return ("; the family is the whole network's (the timm class it exports as), not a stage's or a layer's: write "
            "`family NAME` on its own line, first in the network, right after `network`")


def _input_hint(e: UnexpectedToken) -> str:
    """An ``input`` statement without its three sizes (``input 3 x 32``, ``input 3, 32, 32``)."""
    stack = getattr(getattr(e, "state", None), "value_stack", None) or []
    kinds = [getattr(t, "type", None) for t in stack]
    after = kinds[len(kinds) - kinds[::-1].index("INPUT"):] if "INPUT" in kinds else []
    if e.token.type == "X" and after.count("X") == 2:  # `input 1 x 8 x 8 x 2`
        return "; an `input` is C x H x W, three numbers (channels, height, width): `input 3 x 32 x 32`"
    if "X" not in (e.accepts or e.expected or ()):  # the parser is past `input`'s sizes (a typo on the next line)
        return ""
    start = next((t for t in reversed(stack) if isinstance(t, Token) and t.type == "INPUT"), None)
    if start is None:
        return ""
    where = f"the `input` of line {start.line}" if e.token.type == "$END" or e.token.line != start.line else "`input`"
    return f"; {where} gives the channels, height and width, with `x` between them: `input 3 x 32 x 32`"


def _network_end(stack: list) -> int | None:
    """The line of the last ``network`` block's ``end`` in a parser stack at the top level: the block's own
    ``END`` token (not yet reduced: the stack's last), or the end line of a reduced ``network_block``."""
    if stack and getattr(stack[-1], "type", None) == "END":
        block = next((x for x in reversed(stack) if getattr(x, "type", None) in _BLOCKS), None)
        if getattr(block, "type", None) == "NETWORK":
            return stack[-1].line
    for item in reversed(stack):
        if isinstance(item, lark.Tree):
            blocks = [c for c in item.iter_subtrees_topdown() if c.data == "network_block" and not c.meta.empty]
            if blocks:
                return blocks[-1].meta.end_line
    return None


def _misplaced_hint(e: UnexpectedToken, text: str) -> str:
    """A network's statement (``stage``, ``head``, ...) after the network's ``end``; a ``distinct`` node's input
    set (``c0+c1``) priced in a metric block, where only ``default`` prices it."""
    stack = getattr(getattr(e, "state", None), "value_stack", None) or []
    tok, accepts = e.token, e.accepts or e.expected or ()
    if str(tok) in _NETWORK_ONLY and tok.type == "NAME" and "NETWORK" in accepts and _starts_line(tok, text):
        end = _network_end(stack)
        where = f"move it above the `end` of line {end}" if end else "write it in a `network` block"
        return f"; `{tok}` goes inside `network ... end`: {where}"
    if str(tok) == "+" and "IN" in accepts and stack and getattr(stack[-1], "type", None) == "NAME":
        word = re.match(r"[A-Za-z0-9_.+]*", text[stack[-1].start_pos:]).group()
        return (f"; a `distinct` node's input sets (`{word}`) are not names: only `default` prices them "
                f"(remove this entry)")
    return ""


def _syntax_error(e: UnexpectedInput, text: str, filename: str) -> SpaceError:
    lines = text.split("\n")

    def err(msg, line, col):
        line = max(1, min(line or 1, len(lines)))
        return SpaceError(msg, filename, line, max(col or 1, 1), lines[line - 1])

    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if 0 <= e.pos_in_stream < len(text) else ""
        shown = len(ch) != 1 or ch.isprintable() and not unicodedata.category(ch).startswith("M")  # a lone accent
        what = f"unexpected character {ch!r}" if shown else f"unexpected character U+{ord(ch):04X}"
        # the lexer's list of allowed terminals is not the parser's expectation here: leave it out
        if ch in "\x85\u2028\u2029":  # read as a line break by some editors, not by the grammar
            what += " (a Unicode line separator; use a plain line break)"
        elif ch == "\t" or ch.isspace():
            what += " (use plain spaces)"
        else:
            what += _character_hint(ch, text, e.pos_in_stream)
        return err(what, e.line, e.column)
    if isinstance(e, UnexpectedToken):
        tok = e.token
        number = _malformed_number(tok, text)
        if number:  # at the number's start, which the grammar read as a number and then something else
            return err(number[0], tok.line, tok.column - number[1])
        empty = _empty_set(e, text)
        if empty:  # at the set's `choices`, lines before the token the parser stopped at
            return err(empty[0], empty[1].line, empty[1].column)
        expected = _describe_expected(e.accepts or e.expected or ())
        msg = f"unexpected {_describe_token(tok)}; expected {_join(expected)}" + (
            _keyword_as_name_hint(e, text) or _top_level_hint(e, tok, expected, text) or _family_hint(e)
            or _input_hint(e) or _misplaced_hint(e, text)
            or _hint(tok, expected) + _bracket_hint(e, text) + _dashed_name(tok, text)
            or _list_hint(e, text) or _number_hint(e) or _output_hint(e) or _open_hint(e, text))
        if tok.type == "$END":
            line, col = _end_position(text)
            return err(msg, line, col)
        return err(msg, tok.line, tok.column)
    if isinstance(e, UnexpectedEOF):  # pragma: no cover - LALR reports UnexpectedToken($END)
        line, col = _end_position(text)
        return err(f"unexpected end of the file; expected {_join(_describe_expected(e.expected))}", line, col)
    line = getattr(e, "line", 1)
    col = getattr(e, "column", 1)
    return err("syntax error", line if isinstance(line, int) and line > 0 else 1,
               col if isinstance(col, int) and col > 0 else 1)


def _end_position(text: str) -> tuple[int, int]:
    """Just after the last non-blank, non-comment character."""
    lines = text.split("\n")
    for i in range(len(lines) - 1, -1, -1):
        code = lines[i].split("#", 1)[0].rstrip()
        if code:
            return i + 1, len(code) + 1
    return 1, 1


def _join(words: list[str], limit: int = 14) -> str:
    if not words:
        return "nothing"
    if len(words) > limit:
        words = words[:limit] + ["..."]
    if len(words) == 1:
        return words[0]
    return "one of " + ", ".join(words)


# ---- public entry points -----------------------------------------------------------------------

def normalize_newlines(text: str) -> str:
    """``\\r\\n`` (Windows) and a lone ``\\r`` (old Mac OS) as ``\\n``: every line break counts as one,
    so positions are the lines an editor shows, and a comment ends at its line's end."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _check_tree(tree: lark.Tree, text: str, filename: str) -> None:
    """Numbers too large to be values, a leading zero in a list of numbers (:func:`_check_list`), and expressions
    too deep for the compiler (a long chain ``0 + 0 + ... + 24`` nests as deep as its length): a :class:`SpaceError`
    at the number, or at the start of the expression; the first in the file, where there are several. Walks the tree
    without recursion, so any depth can be checked."""
    lines = text.split("\n")
    stack: list[tuple[object, int, lark.Tree | None]] = [(tree, 0, None)]
    while stack:
        node, depth, root = stack.pop()
        if isinstance(node, Token):
            problem = _number_problem(str(node)) if node.type == "NUMBER" else None
            if problem:
                line = node.line or 1
                raise SpaceError(problem, filename, line, node.column or 1, lines[line - 1])
            continue
        if not isinstance(node, lark.Tree):
            continue
        _check_list(node, lines, filename)
        if node.data in _OPERATORS:
            root, depth = root or node, depth + 1
            if depth > MAX_EXPR_DEPTH:
                line = getattr(root.meta, "line", 1) or 1
                raise SpaceError(f"expression too long or nested too deeply: more than {MAX_EXPR_DEPTH} "
                                 f"operators inside one another (each `+` of a chain `a + b + ...` counts); "
                                 f"write it shorter", filename, line, getattr(root.meta, "column", 1) or 1,
                                 lines[line - 1])
        stack.extend((child, depth, root) for child in reversed(node.children))  # the first in the file first


_THOUSANDS = re.compile(r"(?<![A-Za-z0-9_.])[1-9][0-9]{0,2}(?:,[0-9]{3})+(?![A-Za-z0-9_.])")  # `1,024`, `12,000,000`


def _check_list(node: lark.Tree, lines: list[str], filename: str) -> None:
    """A list of numbers (``resolution``, a stage's ``depth`` and ``width``) holds no number with a leading zero:
    ``width 1,024`` would read as the widths 1 and 24, so a leading zero is an error at the number, and one that
    follows a ``,`` as a thousands separator does (``1,024``, ``12,000``) is an error at the whole number that
    says how to write it, and how to write the list if a list was meant. ``16,128`` is a list."""
    if node.data == "stage_attr" and str(node.children[0]) in ("depth", "width"):
        items = node.children[1:]
    elif node.data == "resolution_stmt":
        items = node.children
    else:
        return
    if len(items) < 2:
        return
    stack = list(reversed(items))  # the first in the file first
    while stack:
        x = stack.pop()
        if isinstance(x, lark.Tree):
            stack.extend(reversed(x.children))
        elif isinstance(x, Token) and x.type == "NUMBER":
            line, col = x.line or 1, x.column or 1
            source = lines[line - 1]
            problem = _number_problem(str(x))  # one too large before it is said first, as _check_tree would
            if problem:
                raise SpaceError(problem, filename, line, col, source)
            if not re.match(r"0[0-9]", str(x)):
                continue
            for m in _THOUSANDS.finditer(source):
                if m.start() < col - 1 < m.end():
                    groups = m.group().split(",")
                    as_list = ", ".join(re.sub(r"^0+(?=[0-9])", "", g) for g in groups)
                    raise SpaceError(f"`{m.group()}`: write numbers without a thousands separator: "
                                     f"`{''.join(groups)}` (for a list, write its numbers without leading zeros: "
                                     f"`{as_list}`)", filename, line, m.start() + 1, source)
            raise SpaceError(f"`{x}`: write the numbers of a list without leading zeros: "
                             f"`{re.sub(r'^0+(?=[0-9])', '', str(x))}`", filename, line, col, source)


_BINARY = frozenset({"add", "sub", "mul", "div", "floordiv"})


def _mark_operators(tree: lark.Tree, text: str) -> None:
    """The position of each binary operator (the ``*`` of ``a * b``) as ``op_pos`` on its tree's meta, which
    :class:`_ToIR` gives the :class:`ir.BinOp`: the first character after the left operand that is no space, no
    comment and no closing parenthesis. Lark keeps no anonymous token, so the text says where it is."""
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    for t in tree.iter_subtrees():
        if t.data not in _BINARY or len(t.children) != 2:
            continue
        left = t.children[0]
        i = left.end_pos if isinstance(left, Token) else getattr(left.meta, "end_pos", None)
        if i is None:
            continue
        while i < len(text) and (text[i].isspace() or text[i] in ")#"):
            i = text.find("\n", i) if text[i] == "#" else i + 1
            if i < 0:
                break
        if 0 <= i < len(text):
            line = bisect.bisect_right(starts, i)
            t.meta.op_pos = ir.Pos(line, i - starts[line - 1] + 1)


def parse_space(text: str, filename: str = "<space>", overrides: dict[str, str] | None = None) -> ir.Space:
    """Parse ``.space`` text into an :class:`ir.Space`, applying ``--set`` style overrides (each value the
    text of a number, or a number as JSON gives it; anything else is a :class:`ParamError`).

    Raises :class:`SpaceError` (``FILE:LINE:COL: message``) for every mistake in the text.
    """
    filename = str(filename)
    text = normalize_newlines(text)
    try:
        tree = space_parser().parse(text)
    except UnexpectedInput as e:
        raise _recipe_hint(_syntax_error(e, text, filename), text) from None
    except RecursionError:  # pragma: no cover - the LALR parser does not recurse
        raise SpaceError("expression nested too deeply", filename, 1, 1, text.split("\n", 1)[0]) from None
    _check_tree(tree, text, filename)
    _mark_operators(tree, text)
    statements = _ToIR().transform(tree)
    return _assemble(statements, text, filename, overrides or {})


def _recipe_hint(error: SpaceError, text: str) -> SpaceError:
    """``error`` (a syntax error of the file ``text``), saying the file is a recipe where it fails at its first
    statement (its first line but comments and blank ones) and its name ends ``.yaml``/``.yml``: `automl run` takes
    it, `automl space` a ``.space`` file."""
    name = error.filename
    if Path(name).suffix.lower() not in (".yaml", ".yml") or not error.line:
        return error
    first = next((i for i, line in enumerate(text.split("\n"), 1) if line.strip() and
                  not line.lstrip().startswith("#")), None)
    if error.line != first:
        return error
    return SpaceError(f"{error.message}; {name} looks like a recipe (YAML), not a .space file: use "
                      f"`automl run {name}` (a recipe's `space:` names its .space file)", name, error.line,
                      error.column, error.source_line)


def _space_like(path: Path) -> str:
    """The ``.space`` file the missing file ``path`` likely means: ``path`` with ``.space`` added, or a close
    name among the ``.space`` files of its folder; else ""."""
    try:
        names = sorted(p.name for p in path.parent.iterdir() if p.suffix.lower() == ".space" and p.is_file())
    except OSError:  # no such folder, or not one to list
        return ""
    stem = path.stem if path.suffix.lower() == ".space" else path.name
    stems = {name[: -len(".space")]: name for name in names}  # compared without the ending every one shares
    close = [stem] if path.name + ".space" in names else difflib.get_close_matches(stem, list(stems), n=1)
    return str(path.with_name(stems[close[0]])) if close else ""


PUBLISHED_SPACES = ("the published spaces are in the automl repository's spaces/ folder, e.g. spaces/digits.space in "
                    "a clone")


class SpaceFileError(SpaceError):
    """A ``.space`` file that cannot be read at all: ``reason`` ``missing``, ``directory`` or ``unreadable``
    (:class:`automl._io.UnreadableText`'s), and ``problem`` says it after the path (``no such file``); a caller
    that took the path from elsewhere (a recipe's ``space``) names it there. ``suggestion``: for a missing file,
    the ``.space`` file it likely means (``spaces/digits`` -> ``spaces/digits.space``), or "". A file that is read
    but is not UTF-8 is a plain :class:`SpaceError` at its line and column."""

    def __init__(self, problem: str, filename: str = "<space>", reason: str = "unreadable", suggestion: str = ""):
        self.problem, self.reason, self.suggestion = problem, reason, suggestion
        hint = "" if reason != "missing" else (f"; did you mean {suggestion}?" if suggestion else
                                               f"; check the path ({PUBLISHED_SPACES})")
        super().__init__(problem + hint, filename)


def load_space(path: str | os.PathLike, overrides: dict[str, str] | None = None) -> ir.Space:
    """Read and parse a ``.space`` file. A missing, unreadable or non-UTF-8 file is a :class:`SpaceError` (a
    :class:`SpaceFileError` but where it is not UTF-8)."""
    filename = str(path)
    try:
        text = read_utf8_text(path)
    except UnreadableText as e:
        if e.reason == "encoding":
            raise SpaceError(f"the file is not UTF-8 text (byte {e.detail}); save it as UTF-8", filename, e.line,
                             e.column, e.source_line) from None
        problem = {"missing": "no such file", "directory": "is a directory, not a .space file"}.get(
            e.reason, f"cannot read the file: {e.detail}")
        like = _space_like(Path(path)) if e.reason == "missing" else ""
        raise SpaceFileError(problem, filename, e.reason, like) from None
    return parse_space(text, filename, overrides)


def _override_text(raw) -> str:
    """A parameter's value given from outside the file as its message shows it: text as given, any other value
    (a recipe's or a manifest's, from YAML or JSON) as JSON writes it (``true``, ``null``, ``[1, 2]``, not
    Python's ``True``, ``None``), an integer too long to write by its number of digits."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, int) and not isinstance(raw, bool) and raw.bit_length() > 1000:
        digits = int(raw.bit_length() * math.log10(2)) + 1
        return f"{'-' if raw < 0 else ''}<a whole number of about {digits:,} digits>"
    try:
        return json.dumps(raw, default=repr)
    except (ValueError, TypeError):  # a structure holding a number too long to write
        return f"<{type(raw).__name__}>"


def _parse_override(filename: str, p: ir.Param, raw: str | int | float) -> int | float:
    def bad(problem: str) -> ParamError:
        return ParamError(problem, filename, p.name, _override_text(raw))

    a_number = f"expected a number, such as its default {p.default}"  # `--set size=` with $SIZE unset: no value
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):  # a value from JSON or Python: `0.5`
        raise bad(a_number)
    if isinstance(raw, int) and abs(raw) > MAX_INT:  # before str(), which refuses more than 4,300 digits
        raise bad(f"number too large; a whole number is at most 2**62 ({MAX_INT:,})")
    text = str(raw).strip()
    if not text.isascii() or "_" in text:  # float() would take '３' and '1_0'; a space file takes neither
        raise bad("expected a number written with the digits 0-9")
    if re.fullmatch(r"[+-]?\d+", text):
        if len(text.lstrip("+-").lstrip("0")) > 19 or abs(int(text)) > MAX_INT:
            raise bad(f"number too large; a whole number is at most 2**62 ({MAX_INT:,})")
        value: int | float = int(text)
    else:
        try:
            value = float(text)
        except ValueError:
            raise bad(a_number) from None
        if not math.isfinite(value):
            if re.fullmatch(r"[+-]?[0-9.]+(e[+-]?[0-9]+)?", text.lower()):  # `1e999`: float() made it inf
                raise bad("number too large; a real number is at most about 1.8e308")
            raise bad("expected a finite number") from None
    if isinstance(p.default, int) and not isinstance(value, int):
        if not float(value).is_integer():
            raise bad(f"parameter {p.name} is a whole number (default {p.default})")
        if abs(value) > MAX_INT:  # `1e30`: a whole number as large as the text `1000...0` would be
            raise bad(f"number too large; a whole number is at most 2**62 ({MAX_INT:,})")
        return int(value)
    if isinstance(p.default, float):
        return float(value)
    return value


def _unknown_param(name: str, known: tuple[str, ...], filename: str) -> ParamError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return ParamError(f"unknown parameter {name!r}; this space's parameters are: "
                      f"{listed(known) or 'none'}{hint}", filename, name, known=known)


def _check_family(net: ir.Network, error_at) -> None:
    """``family`` names the timm class a chain network exports as, so it is the whole network's: in a network of
    cells (which has none) it is an error, and so is one written after the stem, a stage, a layer or the head,
    where it would read as applying only to what follows; both at the family's line, as ``error_at`` makes them."""
    family = net.family
    if family is None:
        return
    if net.cells is not None and not net.stages:
        raise error_at(family.pos)(f"`family {family.name}` applies to chain networks (the timm class a chain of "
                                   f"stages exports as); a network of `cells` has no family: remove the `family` "
                                   f"line")
    at = (family.pos.line, family.pos.column)
    before = [(pos, what) for _, what, pos in net.order if (pos.line, pos.column) < at]
    if before:
        pos, what = before[-1]  # the line above it, or its own: `stage s1 ... choose mb family X`
        raise error_at(family.pos)(f"`family {family.name}` comes after {what} (line {pos.line}); the family is the "
                                   f"whole network's (the timm class it exports as): write `family {family.name}` "
                                   f"first in the network, on its own line right after `network`")


def _assemble(statements: list, text: str, filename: str, overrides: dict[str, str]) -> ir.Space:
    singles: dict[str, tuple] = {}
    dups: list[tuple[str, ir.Pos]] = []
    params: list[ir.Param] = []
    sets, cells, metrics = [], [], []
    for kind, value, pos in statements:
        if kind in ("space", "input", "classes", "network", "resolution"):
            if kind in singles:
                dups.append((kind, pos))
            else:
                singles[kind] = (value, pos)
        elif kind == "param":
            params.append(value)
        elif kind == "choices":
            sets.append(value)
        elif kind == "cell":
            cells.append(value)
        elif kind == "metric":
            metrics.append(value)

    lines = text.split("\n")

    def error_at(pos: ir.Pos):
        """A function message -> SpaceError at ``pos``."""
        return lambda msg: SpaceError(msg, filename, pos.line, pos.column, lines[pos.line - 1])

    seen: dict[str, ir.Param] = {}
    for p in params:
        if "." in p.name:
            raise error_at(p.pos)(f"parameter {p.name!r}: a name with '.' is an op name; pick another name "
                                  f"(letters, digits and '_')")
        if p.name in seen:
            first = seen[p.name].pos
            raise error_at(p.pos)(f"duplicate parameter {p.name!r} (first declared at line {first.line}); "
                                  f"a parameter is declared once: rename or remove one of them")
        seen[p.name] = p
    resolved = []
    for p in params:
        if p.name in overrides:
            p = ir.Param(p.name, p.default, _parse_override(filename, p, overrides[p.name]), p.pos)
        resolved.append(p)
    unknown = [k for k in overrides if k not in seen]
    if unknown:
        raise _unknown_param(unknown[0], tuple(sorted(seen)), filename)

    def get(kind):
        v = singles.get(kind)
        return (v[0], v[1]) if v else (None, None)

    name, name_pos = get("space")
    shape, shape_pos = get("input")
    classes, classes_pos = get("classes")
    network, _ = get("network")
    resolutions, resolution_pos = get("resolution")
    if resolutions is not None and len(resolutions) < 2:
        raise error_at(resolution_pos)("elastic resolution needs at least two input sizes, e.g. `resolution 160, 192, "
                                       "224`; for one size, remove `resolution`: the `input` statement gives it")
    if network is not None:
        _check_family(network, error_at)
    return ir.Space(
        filename=filename, source=text, name=name.name if name else None, name_pos=name.pos if name else None,
        params=tuple(resolved), input_shape=shape, input_pos=shape_pos, classes=classes,
        classes_pos=classes_pos, choice_sets=tuple(sets), network=network, cells=tuple(cells),
        metrics=tuple(metrics), duplicates=tuple(dups), overrides={k: str(v) for k, v in overrides.items()},
        resolutions=resolutions, resolution_pos=resolution_pos)
