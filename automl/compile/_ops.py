"""The built-in candidate ops, registered by name (see :mod:`automl.compile._registry`).

Chain ("block") ops are timm EfficientNet blocks built by timm's own ``EfficientNetBuilder`` from a
block string, so a supernet layer is exactly the block timm builds for the exported arch_def.
Cell ops follow ENAS/DARTS, built from timm layers (``SeparableConvNormAct``, ``create_pool2d``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import SeparableConvNormAct, create_conv2d, create_pool2d
from timm.models._efficientnet_blocks import SqueezeExcite
from timm.models._efficientnet_builder import EfficientNetBuilder, decode_arch_def, round_channels
from torch import nn

from automl.compile._registry import register_op

__all__ = ["build_timm_block", "block_string", "FactorizedReduce", "ReLUConvBN"]


def block_string(template: str, out_ch: int, stride: int, se: float = 0.0) -> str:
    """Fill a block-string template: ``ir_r1_k3_s{stride}_e3_c{out}`` -> ``ir_r1_k3_s2_e3_c24``."""
    s = template.format(stride=stride, out=out_ch)
    if se and s.startswith("ir_"):
        s += f"_se{se:g}"
    return s


def build_timm_block(block_str: str, in_ch: int, act_layer=nn.ReLU, device=None) -> nn.Module:
    """Build one block exactly as ``timm.models.efficientnet.EfficientNet`` would for this block string.

    Same builder, same defaults as ``EfficientNet.__init__``: BatchNorm2d, SqueezeExcite, timm's channel
    rounding, output stride 32, no drop path.
    """
    builder = EfficientNetBuilder(round_chs_fn=round_channels, act_layer=act_layer, norm_layer=nn.BatchNorm2d,
                                  se_layer=SqueezeExcite, device=device)
    return builder(in_ch, decode_arch_def([[block_str]]))[0][0]


def _register_block(name: str, template: str, doc: str) -> None:
    def fn(in_ch, out_ch, stride, act_layer=nn.ReLU, se=0.0, device=None, **_):
        return build_timm_block(block_string(template, out_ch, stride, se), in_ch, act_layer, device)
    fn.__doc__ = doc
    register_op(name, "block", block_str=template, doc=doc)(fn)


for _k in (3, 5, 7):
    for _e in (1, 3, 4, 6):
        _register_block(f"ir_k{_k}_e{_e}", f"ir_r1_k{_k}_s{{stride}}_e{_e}_c{{out}}",
                        f"timm InvertedResidual (MBConv): {_k}x{_k} depthwise, expansion {_e}")
    _register_block(f"ds_k{_k}", f"ds_r1_k{_k}_s{{stride}}_c{{out}}",
                    f"timm DepthwiseSeparableConv: {_k}x{_k} depthwise, pointwise")


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
