"""A timm-style registry of candidate ops: ``@register_op`` maps a name to a constructor.

Every constructor has the signature ``fn(in_ch, out_ch, stride, **kw) -> nn.Module``; keyword
arguments a constructor does not take are not passed to it (``act_layer``, ``se``, ``device``, ...).
The built-in ops (:mod:`automl.nn.ops`) are registered when :mod:`automl.nn` is imported.
Op names follow timm's block-string style: ``ir_k3_e6`` is an InvertedResidual (MBConv) with a 3x3
depthwise conv and expansion 6, ``ds_k3`` a DepthwiseSeparableConv, ``cn_k1`` a ConvBnAct (1x1 conv, BN,
activation: FBNet's skip where a layer changes shape), ``sep_k5`` a separable conv.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
from dataclasses import dataclass
from typing import Callable

from timm.models._efficientnet_builder import decode_arch_def
from torch import nn

__all__ = ["OpInfo", "register_op", "register_resolver", "list_ops", "create_op", "get_op", "is_op"]


@dataclass(frozen=True)
class OpInfo:
    """What the compiler needs to know about an op besides its constructor.

    kind: ``"block"`` (a timm EfficientNet block: usable in chain layers, exported as a timm arch_def)
        or ``"cell"`` (an op inside a cell template).
    same_channels: the op cannot change the channel count (identity, pooling, skip).
    stride1_only: the op cannot downsample (``skip``).
    se: the op takes a squeeze-excitation ratio (timm's ``_se`` suffix: ``ir`` and ``ds`` blocks).
    reduction: a fixed block between cells that halves the resolution and doubles the width
        (NAS-Bench-201's ResNet block); only in a ``cells`` layout.
    groups: a block op whose 1x1 convs are grouped (FBNet's ``_g2``): not a timm block; ``block_str`` is
        the timm block of the same shape that the standalone network builds and then replaces.
    block_str: for block ops, the timm block string of one block with ``{stride}`` and ``{out}`` holes.
    """

    name: str
    fn: Callable[..., nn.Module]
    kind: str
    same_channels: bool = False
    stride1_only: bool = False
    block_str: str | None = None
    doc: str = ""
    se: bool = False
    reduction: bool = False
    groups: int = 1


_OPS: dict[str, OpInfo] = {}
# name -> OpInfo | None for op names built from a pattern (timm block-string style suffixes such as
# ``ir_k3_e2.5_se0.25_nre``); a resolver returns None for a name that is not its family, and raises
# ValueError with a message for a name of its family that is malformed (an SE ratio >= 1, ...)
_RESOLVERS: list[Callable[[str], "OpInfo | None"]] = []
_RESOLVED: dict[str, OpInfo | None] = {}
# the names a .space file can write (its grammar's NAME): letters, digits, _, and a dot only before a digit
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[0-9][A-Za-z0-9_]*)*")


def register_resolver(fn: Callable[[str], "OpInfo | None"]) -> Callable[[str], "OpInfo | None"]:
    """Register ``fn(name) -> OpInfo | None``: ops whose names follow a pattern (not listed by list_ops)."""
    _RESOLVERS.append(fn)
    for name in [n for n, info in _RESOLVED.items() if info is None]:  # names no earlier resolver built
        del _RESOLVED[name]
    return fn


def _resolve(name: str) -> OpInfo | None:
    """A registered op or one a resolver builds from its name; ValueError for a malformed family name."""
    if name in _OPS:
        return _OPS[name]
    if name not in _RESOLVED:
        info = None
        for fn in _RESOLVERS:
            info = fn(name)
            if info is not None:
                break
        _RESOLVED[name] = info
    return _RESOLVED[name]


def register_op(name: str, kind: str, *, same_channels: bool = False, stride1_only: bool = False,
                block_str: str | None = None, doc: str = "", se: bool = False, reduction: bool = False):
    """Decorator: register ``fn(in_ch, out_ch, stride, **kw)`` under ``name``.

    ``name`` is one a ``.space`` file can write (``my_conv``, ``ir_k3_e2.5``) and not an op already: neither
    registered nor built from its name (``ir_k3_e2``, ``ds_k5_se0.25``); ``ValueError`` otherwise. A ``block``
    op needs ``block_str``, the timm block string of one block with ``{stride}`` and ``{out}`` holes that the
    standalone network and the exported arch_def build it from (the built-in ``skip``, which leaves the layer
    out, is the one without)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"op name {name!r}: a .space file writes op names of letters, digits and '_', starting "
                         f"with a letter or '_' (a '.' only before a digit, as in ir_k3_e2.5), e.g. 'my_conv_k3'")
    if kind not in ("block", "cell"):
        raise ValueError(f"op kind must be 'block' or 'cell', got {kind!r}")
    if kind == "block" and block_str is None and name != "skip":
        raise ValueError(f"block op {name!r} needs block_str: the timm block string it exports as (the "
                         f"standalone network and the arch_def are built from it), with {{stride}} and {{out}} "
                         f"holes, e.g. block_str='ir_r1_k3_s{{stride}}_e3_c{{out}}'")
    _check_new(name)
    if block_str is not None:
        _check_block_str(name, block_str)

    def deco(fn):
        _check_new(name)
        _OPS[name] = OpInfo(name, fn, kind, same_channels, stride1_only, block_str, doc or (fn.__doc__ or ""),
                            se, reduction)
        return fn

    return deco


def _check_new(name: str) -> None:
    """ValueError when ``name`` is an op already: registered, or one a resolver builds from its name."""
    if name in _OPS:
        raise ValueError(f"op {name!r} is already registered; register yours under another name")
    try:
        built = next((info for fn in _RESOLVERS if (info := fn(name)) is not None), None)
    except ValueError:  # a malformed name of a family (ir_custom): no op has it
        built = None
    if built is not None:
        raise ValueError(f"op {name!r} already exists: automl builds it from its name ({built.doc}); register "
                         f"yours under another name, e.g. 'my_{name}'")


def _check_block_str(name: str, block_str) -> None:
    """ValueError unless ``block_str`` is the timm block string of one block whose stride and output channels
    are its ``{stride}`` and ``{out}`` holes."""
    example = "e.g. block_str='ir_r1_k3_s{stride}_e3_c{out}'"
    if not isinstance(block_str, str) or "{stride}" not in block_str or "{out}" not in block_str:
        raise ValueError(f"block op {name!r}: block_str {block_str!r} needs the holes {{stride}} and {{out}} "
                         f"(the layer's stride and output channels), {example}")
    for stride, out in ((1, 16), (2, 24)):
        try:
            blocks = decode_arch_def([[block_str.format(stride=stride, out=out)]])[0]
        except Exception as e:  # noqa: BLE001 - str.format and timm's decoder raise many kinds on bad strings
            raise ValueError(f"block op {name!r}: block_str {block_str!r} is not a timm block string with only the "
                             f"holes {{stride}} and {{out}} ({type(e).__name__}: {e}), {example}") from None
        if len(blocks) != 1 or blocks[0].get("stride") != stride or blocks[0].get("out_chs") != out:
            raise ValueError(f"block op {name!r}: block_str {block_str!r} must build one block (repeat r1) of "
                             f"stride {{stride}} and {{out}} output channels, {example}")


def list_ops(pattern: str = "*", kind: str | None = None) -> list[str]:
    """Registered op names matching a wildcard ``pattern`` (e.g. ``"ir_k5_*"``), sorted."""
    return sorted(n for n, info in _OPS.items()
                  if fnmatch.fnmatchcase(n, pattern) and (kind is None or info.kind == kind))


def is_op(name: str) -> bool:
    """Whether ``name`` is an op (registered, or built from its name such as ``ir_k3_e2.5_se0.25``).

    ValueError (with the reason) for a name of a known family that is malformed."""
    return _resolve(name) is not None


def get_op(name: str) -> OpInfo:
    """The :class:`OpInfo` of ``name``; ``KeyError`` naming the close matches if unknown."""
    try:
        info = _resolve(name)
    except ValueError as e:
        raise KeyError(f"unknown op {name!r}: {e}") from None
    if info is not None:
        return info
    close = difflib.get_close_matches(name, _OPS, n=3)
    raise KeyError(f"unknown op {name!r}" + (f"; did you mean {', '.join(close)}?" if close else ""))


def create_op(name: str, in_ch: int, out_ch: int, stride: int = 1, **kw) -> nn.Module:
    """Build op ``name`` mapping ``in_ch`` to ``out_ch`` channels with the given stride; of ``kw``, the
    constructor gets the keywords it takes (all of them when it takes ``**kw``). ``ValueError`` for a shape the op
    cannot have: another channel count for an op that keeps it (pooling, ``none``, ``skip``), a stride other than
    1 for ``skip``."""
    info = get_op(name)
    if info.same_channels and in_ch != out_ch:
        raise ValueError(f"op {name!r} keeps the channel count: it cannot map {in_ch} to {out_ch} channels "
                         f"(give it in_ch == out_ch, or use an op that changes the width)")
    if info.stride1_only and stride != 1:
        raise ValueError(f"op {name!r} cannot downsample: it takes stride 1, got stride {stride}")
    fn = info.fn
    takes = _keywords(fn)
    return fn(in_ch, out_ch, stride, **(kw if takes is None else {k: v for k, v in kw.items() if k in takes}))


def _keywords(fn: Callable) -> frozenset[str] | None:
    """The keyword arguments ``fn`` takes; None when it takes any (``**kw``) or its signature is unknown."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
