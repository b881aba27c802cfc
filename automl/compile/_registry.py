"""A timm-style registry of candidate ops: ``@register_op`` maps a name to a constructor.

Every constructor has the signature ``fn(in_ch, out_ch, stride, **kw) -> nn.Module``; keyword
arguments a constructor does not use are ignored (``act_layer``, ``se``, ``device``).
Op names follow timm's block-string style: ``ir_k3_e6`` is an InvertedResidual (MBConv) with a 3x3
depthwise conv and expansion 6, ``ds_k3`` a DepthwiseSeparableConv, ``sep_k5`` a separable conv.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Callable

from torch import nn

__all__ = ["OpInfo", "register_op", "list_ops", "create_op", "get_op", "is_op"]


@dataclass(frozen=True)
class OpInfo:
    """What the compiler needs to know about an op besides its constructor.

    kind: ``"block"`` (a timm EfficientNet block: usable in chain layers, exported as a timm arch_def)
        or ``"cell"`` (an op inside a cell template).
    same_channels: the op cannot change the channel count (identity, pooling, skip).
    stride1_only: the op cannot downsample (``skip``).
    block_str: for block ops, the timm block string with ``{stride}`` and ``{out}`` (and ``{se}``) holes.
    """

    name: str
    fn: Callable[..., nn.Module]
    kind: str
    same_channels: bool = False
    stride1_only: bool = False
    block_str: str | None = None
    doc: str = ""


_OPS: dict[str, OpInfo] = {}


def register_op(name: str, kind: str, *, same_channels: bool = False, stride1_only: bool = False,
                block_str: str | None = None, doc: str = ""):
    """Decorator: register ``fn(in_ch, out_ch, stride, **kw)`` under ``name``."""
    if kind not in ("block", "cell"):
        raise ValueError(f"op kind must be 'block' or 'cell', got {kind!r}")

    def deco(fn):
        if name in _OPS:
            raise ValueError(f"op {name!r} is already registered")
        _OPS[name] = OpInfo(name, fn, kind, same_channels, stride1_only, block_str, doc or (fn.__doc__ or ""))
        return fn

    return deco


def _ensure_loaded() -> None:
    from automl.compile import _ops  # noqa: F401 - registers the built-in ops on import


def list_ops(pattern: str = "*", kind: str | None = None) -> list[str]:
    """Registered op names matching a wildcard ``pattern`` (e.g. ``"ir_k5_*"``), sorted."""
    _ensure_loaded()
    return sorted(n for n, info in _OPS.items()
                  if fnmatch.fnmatchcase(n, pattern) and (kind is None or info.kind == kind))


def is_op(name: str) -> bool:
    _ensure_loaded()
    return name in _OPS


def get_op(name: str) -> OpInfo:
    """The :class:`OpInfo` of ``name``; ``KeyError`` naming the close matches if unknown."""
    _ensure_loaded()
    try:
        return _OPS[name]
    except KeyError:
        import difflib
        close = difflib.get_close_matches(name, _OPS, n=3)
        raise KeyError(f"unknown op {name!r}" + (f"; did you mean {', '.join(close)}?" if close else "")) from None


def create_op(name: str, in_ch: int, out_ch: int, stride: int = 1, **kw) -> nn.Module:
    """Build op ``name`` mapping ``in_ch`` to ``out_ch`` channels with the given stride."""
    return get_op(name).fn(in_ch, out_ch, stride, **kw)
