"""Describe a standalone chain model as plain timm arguments, and rebuild it from them.

A chain space's standalone model is a timm ``EfficientNet``. The manifest records what rebuilds it with
timm alone, no automl needed::

    from functools import partial
    from timm.layers import get_act_layer
    from timm.models._efficientnet_builder import decode_arch_def
    from timm.models.efficientnet import EfficientNet
    kw = manifest["timm_kwargs"]            # stem_size, num_features, num_classes, in_chans, act_layer, ...
    model = EfficientNet(decode_arch_def(manifest["arch_def"]), **resolve_timm_kwargs(kw))

For ``family mobilenetv3`` spaces ``timm_kwargs`` has ``"timm_class": "MobileNetV3"`` and
``"se_layer": "mobilenetv3"``: timm's ``MobileNetV3`` with the SE layer timm's own MobileNetV3 models use,
``partial(SqueezeExcite, gate_layer="hard_sigmoid", force_act_layer=nn.ReLU, rd_round_fn=round_channels)``.

:func:`timm_spec` reads those arguments off a built model and proves they rebuild it exactly (same
state_dict keys and shapes, same output), so the manifest can never describe a different network.
"""

from __future__ import annotations

import copy
import inspect
import math
from functools import partial
from typing import Any

import torch
from timm.layers import get_act_layer
from timm.models._efficientnet_builder import decode_arch_def
from timm.models.efficientnet import EfficientNet
from timm.models.mobilenetv3 import MobileNetV3
from torch import nn

from automl.export._copy import cpu_copy
from automl.nn.depthwise import plain_convs
from automl.nn.ops import ACTIVATIONS, family_se_layer

__all__ = ["timm_spec", "resolve_timm_kwargs", "build_timm_model", "timm_kwargs_problem", "StandaloneSpecError"]

_CLASSES = {"EfficientNet": EfficientNet, "MobileNetV3": MobileNetV3}
# the timm_kwargs that resolve_timm_kwargs turns into arguments; the class's own arguments that are not JSON
_OWN_KEYS = ("timm_class", "norm_kwargs", "round_chs")
_NOT_JSON = ("self", "block_args", "norm_layer", "aa_layer", "round_chs_fn", "device", "dtype")


class StandaloneSpecError(RuntimeError):
    """The standalone model cannot be described by timm arguments: a bug in the compiler or here."""


def _act_name(act: nn.Module | None) -> str:
    """The name ``timm.layers.get_act_layer`` maps to ``act``'s class (a chain's activations)."""
    if act is None:
        return "identity"
    for name in ACTIVATIONS:
        if type(act) is get_act_layer(name):
            return name
    raise StandaloneSpecError(f"activation {type(act).__name__} has no timm name")


def resolve_timm_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Turn the manifest's JSON ``timm_kwargs`` into ``EfficientNet`` keyword arguments."""
    kw = dict(kwargs)
    kw.pop("timm_class", None)
    if kw.get("se_layer") == "mobilenetv3":
        kw["se_layer"] = family_se_layer("mobilenetv3")[0]
    if "act_layer" in kw:
        kw["act_layer"] = get_act_layer(kw["act_layer"])
    if "norm_kwargs" in kw:
        kw["norm_layer"] = partial(nn.BatchNorm2d, **kw.pop("norm_kwargs"))
    if kw.pop("round_chs", True) is False:
        kw["round_chs_fn"] = _identity
    return kw


def _identity(c):
    return c


def timm_kwargs_problem(kwargs) -> str | None:
    """What keeps a manifest's (hand-edited) ``timm_kwargs`` from being arguments :func:`build_timm_model` takes
    (an argument timm's class does not have, a value of the wrong type, an activation timm does not know), in
    words; None when they are."""
    if not isinstance(kwargs, dict):
        return f"must be an object of timm EfficientNet arguments, got {type(kwargs).__name__}"
    name = kwargs.get("timm_class", "EfficientNet")
    cls = _CLASSES.get(name) if isinstance(name, str) else None  # a list or object: no class, not a TypeError
    if cls is None:
        return f"\"timm_class\" must be EfficientNet or MobileNetV3, got {name!r}"
    params = {n: p.annotation for n, p in inspect.signature(cls.__init__).parameters.items() if n not in _NOT_JSON}
    for key, value in kwargs.items():
        if key in _OWN_KEYS:
            continue
        if key not in params:
            return f"has {key!r}, which is not an argument of timm's {cls.__name__}"
        if key == "act_layer":
            if not isinstance(value, str) or not _known_act(value):
                return f"\"act_layer\" must be an activation name timm knows (e.g. relu, hard_swish), got {value!r}"
        elif key == "se_layer":
            if value not in (None, "mobilenetv3"):
                return f"\"se_layer\" must be \"mobilenetv3\" or null, got {value!r}"
        elif not _of_type(value, params[key]):
            return f"\"{key}\" must be a {getattr(params[key], '__name__', params[key])}, got {value!r}"
    return None


def _known_act(name: str) -> bool:
    try:
        return get_act_layer(name) is not None
    except Exception:  # noqa: BLE001 - timm raises KeyError (or what its lookup meets) for a name it lacks
        return False


def _of_type(value, annotation) -> bool:
    """A JSON value fits a timm argument annotated ``annotation`` (int, bool, float, str; others: any)."""
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, str) if annotation is str else True


def build_timm_model(arch_def: list[list[str]], timm_kwargs: dict[str, Any]) -> nn.Module:
    """``EfficientNet(decode_arch_def(arch_def), **timm_kwargs)`` (or ``MobileNetV3`` when ``timm_class``
    says so) with the JSON values resolved."""
    cls = MobileNetV3 if timm_kwargs.get("timm_class") == "MobileNetV3" else EfficientNet
    return cls(decode_arch_def(copy.deepcopy(arch_def)), **resolve_timm_kwargs(timm_kwargs))


def _same_structure(a: nn.Module, b: nn.Module) -> bool:
    """The same modules under the same names (``a``'s may subclass ``b``'s: a training-time convolution), and
    the same state_dict keys and shapes."""
    ma, mb = list(a.named_modules()), list(b.named_modules())
    if [n for n, _ in ma] != [n for n, _ in mb] or any(not isinstance(x, type(y)) for (_, x), (_, y) in zip(ma, mb)):
        return False
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(sa[k].shape == sb[k].shape for k in sa)


def _reference_output(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model``'s eval-mode output on ``x`` in float64, contiguous, on the CPU (a copy: ``model`` is left as it
    is). The model under test may be channels_last on a GPU and its rebuild contiguous on the CPU: in float32 such
    layouts differ by rounding that an ill-conditioned (badly trained, large-output) network amplifies far past
    any tolerance that would still tell another network apart."""
    ref = plain_convs(cpu_copy(model)).double().to(memory_format=torch.contiguous_format).eval()
    with torch.no_grad():
        return ref(x.double())


def _same_model(a: nn.Module, b: nn.Module, input_shape) -> bool:
    """Whether ``b`` (timm's rebuild) is the network ``a``: the same modules, state_dict keys and shapes, and,
    with ``a``'s weights, the same output (float64, same layout: rounding cannot tell them apart, while a
    stride, padding or activation that differs changes the output far beyond the tolerance)."""
    if not _same_structure(a, b):
        return False
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
    ya, yb = _reference_output(a, x), _reference_output(b, x)
    scale = float(ya.abs().nan_to_num(0.0, 0.0, 0.0).max()) if ya.numel() else 0.0
    return ya.shape == yb.shape and torch.allclose(ya, yb, rtol=1e-6, atol=1e-7 * max(1.0, scale), equal_nan=True)


def timm_spec(model: nn.Module, arch_def: list[list[str]], input_shape) -> dict[str, Any]:
    """The JSON ``timm_kwargs`` that rebuild ``model`` from ``arch_def`` with timm's ``EfficientNet``.

    Raises :class:`StandaloneSpecError` when no such arguments reproduce the model.
    """
    if not isinstance(model, (EfficientNet, MobileNetV3)):
        raise StandaloneSpecError(f"chain standalone model is a {type(model).__name__}, not a timm EfficientNet "
                                  f"or MobileNetV3")
    stem = model.conv_stem
    kw: dict[str, Any] = {
        "num_classes": int(model.num_classes),
        "in_chans": int(stem.in_channels),
        "stem_size": int(stem.out_channels),
        "stem_kernel_size": int(stem.kernel_size[0]),
        "fix_stem": True,
        "num_features": int(model.conv_head.out_channels) if isinstance(model.conv_head, nn.Conv2d) else 0,
        "act_layer": _act_name(getattr(model.bn1, "act", None)),
        "global_pool": getattr(model.global_pool, "pool_type", "avg") or "avg",
        "drop_rate": float(model.drop_rate),
    }
    if isinstance(model, MobileNetV3):
        del kw["stem_kernel_size"]  # always 3
        kw.update(timm_class="MobileNetV3", se_layer="mobilenetv3",
                  head_bias=model.conv_head.bias is not None)
    bn = model.bn1
    if isinstance(bn, nn.BatchNorm2d) and (bn.eps != 1e-5 or bn.momentum != 0.1):
        kw["norm_kwargs"] = {"eps": float(bn.eps), "momentum": float(bn.momentum)}
    for extra in ({}, {"round_chs": False}):
        candidate = {**kw, **extra}
        try:
            rebuilt = build_timm_model(arch_def, candidate)
        except Exception as e:  # noqa: BLE001 - a bad arch_def is reported below with the model
            raise StandaloneSpecError(f"timm cannot build arch_def {arch_def}: {e}") from e
        if _same_model(model, rebuilt, input_shape):
            return candidate
    raise StandaloneSpecError(f"EfficientNet(decode_arch_def({arch_def}), **{kw}) does not rebuild the "
                              f"standalone model the compiler built")
