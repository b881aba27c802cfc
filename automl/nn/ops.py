"""The built-in candidate ops, registered by name (see :mod:`automl.nn.registry`).

Chain ("block") ops are timm EfficientNet blocks built by timm's own ``EfficientNetBuilder`` from a
block string, so a supernet layer is exactly the block timm builds for the exported arch_def.
Cell ops follow ENAS/DARTS, built from timm layers (``SeparableConvNormAct``, ``create_pool2d``).
"""

from __future__ import annotations

import numbers
import re
from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import SeparableConvNormAct, create_conv2d, create_pool2d
from timm.models._efficientnet_blocks import InvertedResidual, SqueezeExcite
from timm.models._efficientnet_builder import EfficientNetBuilder, decode_arch_def, round_channels
from torch import nn

from automl.nn.registry import OpInfo, register_op, register_resolver

__all__ = ["build_timm_block", "block_string", "FactorizedReduce", "ReLUConvBN", "ACTIVATIONS", "BLOCK_ACTIVATIONS",
           "FAMILIES", "family_se_layer", "family_hint"]

# a chain network's activation (`activation NAME`), as ``timm.layers.get_act_layer`` names it
ACTIVATIONS = ("relu", "relu6", "silu", "swish", "hard_swish", "gelu", "mish", "elu", "leaky_relu")
# a stage's (or an op's) activation as timm block strings write it: ``_nre``, ``_nhs``, ...
BLOCK_ACTIVATIONS = {"relu": "re", "relu6": "r6", "hard_swish": "hs", "swish": "sw", "silu": "sw", "mish": "mi"}
_ACT_CODES = {"re", "r6", "hs", "sw", "mi"}
# the timm network class a chain exports as: EfficientNet (SE sized from the block input, sigmoid gate)
# or MobileNetV3 (SE sized from the expanded width, rounded to 8, hard-sigmoid gate, ReLU inside; the
# head conv after pooling, with a bias and no BN)
FAMILIES = ("efficientnet", "mobilenetv3")
_NUM = r"(\d+(?:\.\d+)?)"


def family_se_layer(family: str):
    """(se_layer, se_from_exp) exactly as timm's EfficientNet / MobileNetV3 pass them to the builder."""
    if family not in FAMILIES:
        raise ValueError(f"family {family!r}: a chain network's family is one of {', '.join(FAMILIES)}")
    if family == "mobilenetv3":
        return partial(SqueezeExcite, gate_layer="hard_sigmoid", force_act_layer=nn.ReLU,
                       rd_round_fn=round_channels), True
    return SqueezeExcite, False


def block_string(template: str, out_ch: int, stride: int, se: float = 0.0, act: str | None = None) -> str:
    """Fill a block-string template: ``ir_r1_k3_s{stride}_e3_c{out}`` -> ``ir_r1_k3_s2_e3_c24``.

    ``se`` (a stage's ratio) is appended to ``ir``/``ds`` blocks that have none (``_se0.25``), ``act``
    (a stage's activation) to blocks that have none (``_nre``): the op's own suffixes win. ``ValueError`` for a
    ratio outside [0, 1) and an activation not in :data:`BLOCK_ACTIVATIONS`.
    """
    if se is not None and (not isinstance(se, numbers.Real) or isinstance(se, bool) or not 0 <= se < 1):
        raise ValueError(f"se {se!r}: the squeeze-excitation ratio is a number in [0, 1) (0: none), e.g. 0.25")
    if act is not None and act not in BLOCK_ACTIVATIONS:
        raise ValueError(f"activation {act!r}: a block's activation is one of {', '.join(BLOCK_ACTIVATIONS)} (those "
                         f"timm block strings write: _nre, _nr6, _nhs, _nsw, _nmi), or None for the network's")
    s = template.format(stride=stride, out=out_ch)
    if se and s.startswith(("ir_", "ds_")) and "_se" not in s:
        s += f"_se{se:g}"
    if act and not re.search(r"_n(re|r6|hs|sw|mi)(_|$)", s):
        s += "_n" + BLOCK_ACTIVATIONS[act]
    return s


def build_timm_block(block_str: str, in_ch: int, act_layer=nn.ReLU, device=None,
                     family: str = "efficientnet") -> nn.Module:
    """Build one block exactly as timm's ``EfficientNet`` (or ``MobileNetV3``) would for this block string.

    Same builder, same defaults as the class's ``__init__``: BatchNorm2d, its SqueezeExcite, timm's channel
    rounding, output stride 32, no drop path.
    """
    se_layer, se_from_exp = family_se_layer(family)
    builder = EfficientNetBuilder(round_chs_fn=round_channels, act_layer=act_layer, norm_layer=nn.BatchNorm2d,
                                  se_layer=se_layer, se_from_exp=se_from_exp, device=device)
    return builder(in_ch, decode_arch_def([[block_str]]))[0][0]


def _block_fn(template: str, doc: str):
    def fn(in_ch, out_ch, stride, act_layer=nn.ReLU, se=0.0, block_act=None, family="efficientnet", device=None,
           **_):
        return build_timm_block(block_string(template, out_ch, stride, se, block_act), in_ch, act_layer, device,
                                family)
    fn.__doc__ = doc
    return fn


def _register_block(name: str, template: str, doc: str) -> None:
    register_op(name, "block", block_str=template, doc=doc, se=True)(_block_fn(template, doc))


def _register_conv_block(k: int) -> None:
    """``cn_kK``: timm's ConvBnAct (KxK conv, BN, activation; no squeeze-excitation). ``cn_k1`` is FBNet's
    "skip" where the layer changes shape (its builder's ``Identity(C_in, C_out, stride)``)."""
    template, doc = f"cn_r1_k{k}_s{{stride}}_c{{out}}", f"timm ConvBnAct: {k}x{k} conv, BN, activation"
    register_op(f"cn_k{k}", "block", block_str=template, doc=doc)(_block_fn(template, doc))


_ACT_NAMES = {"re": "ReLU", "r6": "ReLU6", "hs": "hard-swish", "sw": "swish", "mi": "mish"}
_SUFFIXES = ("`_seR` (squeeze-excitation, 0 < R < 1) and `_nre`, `_nr6`, `_nhs`, `_nsw` or `_nmi` (its activation), "
             "each at most once")
_FORM = ("block ops are written ir_kK_eE (then optionally _gG), ds_kK or cn_kK (K = 3, 5 or 7; cn also 1; E a "
         "positive number such as 3 or 2.5), optionally followed by _seR and an activation _nre/_nhs/...")
_TIMM_PARTS = ("the stage gives a block's repeat, stride and width: write the op without timm's `_rN`, `_sN` and "
               "`_cN` (ir_r1_k3_s2_e6_c24 is ir_k3_e6)")


def _suffix_error(kind: str, part: str, seen: set[str]) -> str:
    """What is wrong with ``part``, a ``_``-separated part of a ``kind`` block op's name after its kernel, expansion
    and group (``seen``: the suffixes given before it)."""
    if re.fullmatch(r"g\d+", part):
        if kind != "ir":
            return "group convs (`_gG`, G = 2, 4 or 8) are for ir blocks: ir_kK_eE_gG (FBNet's ir_k3_e1_g2)"
        if "g" in seen:
            return f"`_{part}`: the group count is given twice; write one `_gG`, e.g. ir_k3_e1_g2"
        return (f"`_{part}`: the group suffix comes right after the expansion, before `_se` and the activation, "
                f"e.g. ir_k3_e6_g2_se0.25_nre")
    if re.fullmatch(r"e" + _NUM, part):
        if kind != "ir":
            return f"`_{part}`: {kind} blocks take no expansion (an expansion is an ir block's: ir_kK_eE)"
        return f"`_{part}`: the expansion is given twice, or not right after the kernel; write ir_kK_eE, e.g. ir_k3_e6"
    if part.startswith("se"):
        if "se" in seen:
            return "the squeeze-excitation (`_seR`) is given twice; give it once"
        return f"`_{part}`: squeeze-excitation is `_seR` with R a number between 0 and 1, e.g. _se0.25"
    if re.fullmatch(r"n(re|r6|hs|sw|mi)", part):
        return "two activations (`_nXX`) are given; give one of `_nre`, `_nr6`, `_nhs`, `_nsw`, `_nmi`"
    if part.startswith("n") and part[1:].isalnum():
        return (f"unknown activation `_{part}`; an op's activation is `_nre` (ReLU), `_nr6` (ReLU6), `_nhs` "
                f"(hard-swish), `_nsw` (swish) or `_nmi` (mish)")
    if re.fullmatch(r"[rsc]\d+", part):
        return _TIMM_PARTS
    group = "`_gG` right after its expansion (G = 2, 4 or 8; ir only), then " if kind == "ir" else ""
    return f"unknown suffix {part!r}; an op takes {group}{_SUFFIXES}"


def _suffixes(rest: str, kind: str, group: bool) -> tuple[str, str]:
    """timm suffixes ``_se0.25`` / ``_nre`` of an op name -> (block-string suffix, description)."""
    out, what, seen = "", [], {"g"} if group else set()
    for part in rest.split("_")[1:]:
        m = re.fullmatch(r"se" + _NUM, part)
        if m and "se" not in seen:
            if kind == "cn":
                raise ValueError("cn blocks take no squeeze-excitation (`_se`)")
            r = float(m.group(1))
            if not 0 < r < 1:
                raise ValueError(f"the squeeze-excitation ratio must be between 0 and 1 (exclusive), got {r:g}")
            out, seen = out + f"_se{r:g}", seen | {"se"}
            what.append(f"squeeze-excitation {r:g}")
        elif re.fullmatch(r"n(re|r6|hs|sw|mi)", part) and "n" not in seen:
            out, seen = out + "_" + part, seen | {"n"}
            what.append(_ACT_NAMES[part[1:]])
        else:
            raise ValueError(_suffix_error(kind, part, seen))
    return out, (", " + ", ".join(what)) if what else ""


def _malformed(name: str) -> str:
    """Why ``name`` (``ir_``, ``ds_`` or ``cn_`` ...) is not a block op, for one that does not take the form at all."""
    parts = name.split("_")
    if "" in parts:
        return f"an empty part ('__' or a '_' at the end); {_FORM}"
    if name != name.lower():
        return f"op names are lower case ({name.lower()}); {_FORM}"
    if not re.fullmatch(r"k\d+", parts[1]):
        if any(re.fullmatch(r"[rsc]\d+", p) for p in parts[1:]):
            return _TIMM_PARTS
        return f"the kernel (`_kK`) comes right after {parts[0]}; {_FORM}"
    return _FORM


def _expansion(kind: str, e: str | None, rest: str) -> None:
    """ValueError unless an ir block has an expansion (a number) and a ds or cn block none."""
    if kind == "ir" and e is None:
        first = rest.split("_")[1] if rest else ""
        if first.startswith("e"):
            raise ValueError(f"expansion {first[1:]!r} is not a number: an ir block's expansion E (ir_kK_eE) is a "
                             f"positive number such as 6 or 2.5, e.g. ir_k3_e6")
        raise ValueError("ir blocks need an expansion right after the kernel: ir_kK_eE, e.g. ir_k3_e6")
    if kind != "ir" and e is not None:
        raise ValueError(f"{kind} blocks take no expansion (`_e{e}`): write {kind}_kK; an expansion is an ir "
                         f"block's, e.g. ir_k3_e{e}")
    if e is not None and not 0 < float(e) <= 16:
        raise ValueError(f"expansion {e}: must be a positive number up to 16")


def _no_leading_zeros(name: str) -> None:
    """ValueError for a block op whose numbers have leading zeros (``ir_k03_e6``, ``ir_k3_e06``, ``_se00.25``): one
    op has one name (cost tables, encoded architectures and ``space encode`` name ops by it), so the message
    names the spelling without them."""
    canonical = re.sub(r"(?<=[a-z])0+(?=\d)", "", name)
    if canonical != name:
        parts = [p for p, c in zip(name.split("_"), canonical.split("_")) if p != c]
        raise ValueError(f"{', '.join('`_' + p + '`' for p in parts)}: numbers in op names are written without "
                         f"leading zeros; write {canonical}")


def _block_family(name: str) -> OpInfo | None:
    """``ir_kK_eE[_gG][_seR][_nXX]`` (any expansion, e.g. ``e2.5``), ``ds_kK[...]``, ``cn_kK[_nXX]``. A resolver,
    registered after the built-in block ops (``register_op`` refuses a name a resolver builds)."""
    m = re.fullmatch(r"(ir|ds|cn)_k(\d+)(?:_e" + _NUM + r")?(?:_g(\d+))?((?:_[a-z0-9.]+)*)", name)
    if m is None:
        if name.startswith(("ir_", "ds_", "cn_")):
            raise ValueError(_malformed(name))
        return None
    _no_leading_zeros(name)
    kind, k, e, g, rest = m.group(1), int(m.group(2)), m.group(3), m.group(4), m.group(5)
    if g is not None and kind != "ir":
        raise ValueError("group convs (`_gG`, G = 2, 4 or 8) are for ir blocks: ir_kK_eE_gG (FBNet's ir_k3_e1_g2)")
    if g is not None and int(g) not in (2, 4, 8):  # every width is a multiple of 8
        raise ValueError(f"`_g{g}`: the group count G of ir_kK_eE_gG is 2, 4 or 8 (every width is a multiple of 8), "
                         f"e.g. FBNet's ir_k3_e1_g2")
    if k % 2 == 0 or not 1 <= k <= 7 or (kind != "cn" and k == 1):
        raise ValueError(f"kernel {k}: the kernel of {'an' if kind == 'ir' else 'a'} {kind} block is odd, "
                         + ("1 to 7" if kind == "cn" else "3, 5 or 7"))
    _expansion(kind, e, rest)
    suffix, what = _suffixes(rest, kind, g is not None)
    if kind == "ir" and g is not None:
        template = f"ir_r1_k{k}_s{{stride}}_e{float(e):g}_c{{out}}" + suffix
        doc = (f"MBConv with grouped 1x1 convs (FBNet): {k}x{k} depthwise, expansion {float(e):g}, "
               f"{g} groups, channel shuffle{what}")
        return OpInfo(name, _group_block_fn(template, int(g), doc), "block", block_str=template, doc=doc, se=True,
                      groups=int(g))
    if kind == "ir":
        template = f"ir_r1_k{k}_s{{stride}}_e{float(e):g}_c{{out}}" + suffix
        doc = f"timm InvertedResidual (MBConv): {k}x{k} depthwise, expansion {float(e):g}{what}"
    elif kind == "ds":
        template, doc = f"ds_r1_k{k}_s{{stride}}_c{{out}}" + suffix, f"timm DepthwiseSeparableConv {k}x{k}{what}"
    else:
        template, doc = f"cn_r1_k{k}_s{{stride}}_c{{out}}" + suffix, f"timm ConvBnAct: {k}x{k} conv, BN{what}"
    return OpInfo(name, _block_fn(template, doc), "block", block_str=template, doc=doc, se=kind != "cn")


class GroupInvertedResidual(InvertedResidual):
    """FBNet's group-conv MBConv: timm's InvertedResidual with its two 1x1 convs grouped and a channel
    shuffle after the expansion (FBNet's ``k3_e1_g2``). Same module names as the timm block."""

    def __init__(self, block: InvertedResidual, groups: int):
        nn.Module.__init__(self)
        self.__dict__.update({k: v for k, v in block.__dict__.items() if k != "_modules"})
        self._modules = dict(block._modules)
        self.groups = groups
        pw, pwl = block.conv_pw, block.conv_pwl
        self.conv_pw = nn.Conv2d(pw.in_channels, pw.out_channels, 1, groups=groups, bias=False,
                                 device=pw.weight.device)
        self.conv_pwl = nn.Conv2d(pwl.in_channels, pwl.out_channels, 1, groups=groups, bias=False,
                                  device=pwl.weight.device)

    def forward(self, x):
        shortcut = x
        x = self.bn1(self.conv_pw(x))
        b, c, h, w = x.shape
        x = x.view(b, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(b, c, h, w)  # shuffle
        x = self.aa(self.bn2(self.conv_dw(x)))
        x = self.bn3(self.conv_pwl(self.se(x)))
        if self.has_skip:
            x = self.drop_path(x) + shortcut
        return x


def _group_block_fn(template: str, groups: int, doc: str):
    timm_fn = _block_fn(template, doc)

    def fn(*args, **kw):
        return GroupInvertedResidual(timm_fn(*args, **kw), groups)
    fn.__doc__ = doc
    return fn


def family_hint(name: str) -> str | None:
    """For a name that is no op but looks like one of a family: what the language supports instead."""
    low = name.lower()
    if re.fullmatch(r"se(\d.*)?", low) or low in ("squeeze_excite", "squeeze_excitation"):
        return ("squeeze-excitation is not an op: write the stage option `se 0.25` (every ir/ds op of the stage) "
                "or the op suffix `_se0.25`, e.g. ir_k3_e6_se0.25")
    if low.startswith(("dil", "dilconv", "dil_conv")):
        return "the dilated separable convs are the cell ops dil_k3 and dil_k5 (DARTS's dil_conv_3x3/5x5)"
    if low.startswith(("sep_conv", "sepconv")):
        return "separable convs are the cell ops sep_k3, sep_k5, sep_k7 (DARTS's sep_conv_3x3, ...)"
    if low in ("zero", "zeros", "null"):
        return "the zero op is called 'none' (cells)"
    if low in ("skip_connect", "skipconnect", "id"):
        return "in a cell the identity is 'identity'; in a chain layer 'skip' leaves the layer out"
    if re.fullmatch(r"(avg|max)_?pool(ing)?(_?\d.*)?", low):
        return "pooling ops are avgpool_k3, avgpool_k5, maxpool_k3, maxpool_k5 (cells)"
    if re.fullmatch(r"(conv|nor_conv)_?\d.*", low):
        return "plain convs are the cell ops conv_k1 and conv_k3 (ReLU, conv, BN)"
    return None


for _k in (3, 5, 7):
    for _e in (1, 3, 4, 6):
        _register_block(f"ir_k{_k}_e{_e}", f"ir_r1_k{_k}_s{{stride}}_e{_e}_c{{out}}",
                        f"timm InvertedResidual (MBConv): {_k}x{_k} depthwise, expansion {_e}")
    _register_block(f"ds_k{_k}", f"ds_r1_k{_k}_s{{stride}}_c{{out}}",
                    f"timm DepthwiseSeparableConv: {_k}x{_k} depthwise, pointwise")
for _k in (1, 3):
    _register_conv_block(_k)
register_resolver(_block_family)


@register_op("skip", "block", same_channels=True, stride1_only=True,
             doc="no layer: the input passes through (only where the layer keeps its shape)")
def _skip(in_ch, out_ch, stride, **_):
    return nn.Identity()


# ---- cell ops (ENAS / DARTS) -------------------------------------------------------------------

class ReLUConvBN(nn.Sequential):
    """ReLU -> KxK conv -> BN: cell input preprocessing and ``conv_kK`` ops."""

    def __init__(self, in_ch, out_ch, kernel_size=1, stride=1, device=None):
        super().__init__(nn.ReLU(inplace=False),
                         create_conv2d(in_ch, out_ch, kernel_size, stride=stride, device=device),
                         nn.BatchNorm2d(out_ch, device=device))


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing half the pixels: two 1x1 stride-2 convs, offset by one pixel,
    concatenated (DARTS/ENAS). The identity op of a reduction cell and the preprocessing of an input whose
    resolution is twice the cell's."""

    def __init__(self, in_ch, out_ch, device=None):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(in_ch, out_ch // 2, 1, stride=2, bias=False, device=device)
        self.conv_2 = nn.Conv2d(in_ch, out_ch - out_ch // 2, 1, stride=2, bias=False, device=device)
        self.bn = nn.BatchNorm2d(out_ch, device=device)

    def forward(self, x):
        x = self.relu(x)
        # the one-pixel shift; padding keeps odd sizes consistent with the unshifted branch
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


@register_op("identity", "cell", doc="the input itself (a factorized reduce where the op has stride 2)")
def _identity(in_ch, out_ch, stride, device=None, **_):
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    if stride == 1:
        return ReLUConvBN(in_ch, out_ch, 1, 1, device=device)
    return FactorizedReduce(in_ch, out_ch, device=device)


def _register_sep(k: int) -> None:
    def fn(in_ch, out_ch, stride, device=None, **_):
        # ENAS/DARTS stack the separable conv twice, ReLU first, BN after each (no trailing activation)
        return nn.Sequential(
            nn.ReLU(inplace=False),
            SeparableConvNormAct(in_ch, in_ch, k, stride=stride, apply_act=False, device=device),
            nn.ReLU(inplace=False),
            SeparableConvNormAct(in_ch, out_ch, k, stride=1, apply_act=False, device=device),
        )
    register_op(f"sep_k{k}", "cell", doc=f"{k}x{k} separable conv (depthwise + pointwise + BN), twice")(fn)


def _register_conv(k: int) -> None:
    def fn(in_ch, out_ch, stride, device=None, **_):
        return ReLUConvBN(in_ch, out_ch, k, stride, device=device)
    register_op(f"conv_k{k}", "cell", doc=f"ReLU, {k}x{k} conv, BN")(fn)


def _register_pool(kind: str, k: int) -> None:
    def fn(in_ch, out_ch, stride, **_):
        if kind == "avg":
            return create_pool2d("avg", k, stride=stride, count_include_pad=False)
        return create_pool2d("max", k, stride=stride)
    register_op(f"{kind}pool_k{k}", "cell", same_channels=True, doc=f"{k}x{k} {kind} pooling")(fn)


for _k in (3, 5, 7):
    _register_sep(_k)
for _k in (1, 3):
    _register_conv(_k)
for _k in (3, 5):
    _register_pool("avg", _k)
    _register_pool("max", _k)


class Zero(nn.Module):
    """The zero op (DARTS's and NAS-Bench-201's ``none``): zeros of the output shape, no weights."""

    def __init__(self, stride: int = 1):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


@register_op("none", "cell", same_channels=True, doc="zero: the edge is absent (DARTS, NAS-Bench-201)")
def _none(in_ch, out_ch, stride, **_):
    return Zero(stride)


def _register_dil(k: int) -> None:
    def fn(in_ch, out_ch, stride, device=None, **_):
        # DARTS's DilConv: ReLU, KxK depthwise conv with dilation 2, 1x1 conv, BN
        return nn.Sequential(
            nn.ReLU(inplace=False),
            SeparableConvNormAct(in_ch, out_ch, k, stride=stride, dilation=2, apply_act=False, device=device))
    register_op(f"dil_k{k}", "cell", doc=f"{k}x{k} dilated (2) separable conv: ReLU, depthwise, pointwise, BN "
                                         f"(DARTS's dil_conv_{k}x{k})")(fn)


for _k in (3, 5):
    _register_dil(_k)


class ResNetBlock(nn.Module):
    """NAS-Bench-201's reduction block (its ``ResNetBasicblock`` at stride 2): ReLU-conv3x3-BN (stride 2),
    ReLU-conv3x3-BN, plus a shortcut of 2x2 average pooling and a 1x1 conv."""

    def __init__(self, in_ch, out_ch, stride=2, device=None):
        super().__init__()
        self.conv_a = ReLUConvBN(in_ch, out_ch, 3, stride, device=device)
        self.conv_b = ReLUConvBN(out_ch, out_ch, 3, 1, device=device)
        if stride == 1 and in_ch == out_ch:
            self.downsample = nn.Identity()
        elif stride == 1:
            self.downsample = nn.Conv2d(in_ch, out_ch, 1, bias=False, device=device)
        else:  # ceil_mode: odd sizes give the conv path's size (NAS-Bench-201's inputs are even)
            self.downsample = nn.Sequential(nn.AvgPool2d(kernel_size=2, stride=2, padding=0, ceil_mode=True),
                                            nn.Conv2d(in_ch, out_ch, 1, bias=False, device=device))

    def forward(self, x):
        return self.conv_b(self.conv_a(x)) + self.downsample(x)


@register_op("resnet_block", "cell", reduction=True,
             doc="a fixed reduction block between cells (NAS-Bench-201): ResNet basic block, stride 2")
def _resnet_block(in_ch, out_ch, stride, device=None, **_):
    return ResNetBlock(in_ch, out_ch, stride, device=device)
