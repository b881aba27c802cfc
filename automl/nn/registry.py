"""A timm-style registry of candidate ops: ``@register_op`` maps a name to a constructor.

Every constructor has the signature ``fn(in_ch, out_ch, stride, **kw) -> nn.Module``; keyword
arguments a constructor does not use are ignored (``act_layer``, ``se``, ``device``).
The built-in ops (:mod:`automl.nn.ops`) are registered when :mod:`automl.nn` is imported.
Op names follow timm's block-string style: ``ir_k3_e6`` is an InvertedResidual (MBConv) with a 3x3
depthwise conv and expansion 6, ``ds_k3`` a DepthwiseSeparableConv, ``cn_k1`` a ConvBnAct (1x1 conv, BN,
activation: FBNet's skip where a layer changes shape), ``sep_k5`` a separable conv.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from typing import Callable

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
    block_str: for block ops, the timm block string with ``{stride}`` and ``{out}`` (and ``{se}``) holes.
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


def register_resolver(fn: Callable[[str], "OpInfo | None"]) -> Callable[[str], "OpInfo | None"]:
    """Register ``fn(name) -> OpInfo | None``: ops whose names follow a pattern (not listed by list_ops)."""
    _RESOLVERS.append(fn)
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

    A ``block`` op needs ``block_str``, the timm block string the standalone network and the exported
    arch_def build it from (the built-in ``skip``, which leaves the layer out, is the one without)."""
    if kind not in ("block", "cell"):
        raise ValueError(f"op kind must be 'block' or 'cell', got {kind!r}")
    if kind == "block" and block_str is None and name != "skip":
        raise ValueError(f"block op {name!r} needs block_str: the timm block string it exports as (the "
                         f"standalone network and the arch_def are built from it), with {{stride}} and {{out}} "
                         f"holes, e.g. block_str='ir_r1_k3_s{{stride}}_e3_c{{out}}'")

    def deco(fn):
        if name in _OPS:
            raise ValueError(f"op {name!r} is already registered")
        _OPS[name] = OpInfo(name, fn, kind, same_channels, stride1_only, block_str, doc or (fn.__doc__ or ""),
                            se, reduction)
        return fn

    return deco


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
    """Build op ``name`` mapping ``in_ch`` to ``out_ch`` channels with the given stride."""
    return get_op(name).fn(in_ch, out_ch, stride, **kw)
