"""The parts of a network that the supernet, the standalone networks and the measured costs share:
a chain's stem, layer ops and head exactly as timm's EfficientNet / MobileNetV3 build them, and a cell
network's stem, input preprocessing, output and head. Each takes a plan (:mod:`automl.plan`) and a device
(``"meta"`` to count parameters and MACs without memory).
"""

from __future__ import annotations

import torch
from timm.layers import BatchNormAct2d, SelectAdaptivePool2d, create_classifier, create_conv2d, get_act_layer
from torch import nn

from automl.nn.ops import FactorizedReduce, ReLUConvBN
from automl.nn.registry import create_op, get_op

__all__ = ["chain_stem", "chain_op", "chain_head", "chain_head_sequence", "chain_head_in", "cell_stem", "cell_head",
           "cell_preprocess", "cell_block", "out_conv", "cell_output", "FixedBlock"]


def chain_stem(plan, device=None) -> tuple[nn.Module, nn.Module]:
    """(conv_stem, bn1) exactly as timm's EfficientNet builds them."""
    act = get_act_layer(plan.activation)
    conv = create_conv2d(plan.in_chans, plan.stem_size, plan.stem_kernel, stride=2, padding="", device=device)
    bn = BatchNormAct2d(plan.stem_size, act_layer=act, inplace=True, device=device)
    return conv, bn


def chain_op(plan, layer, op: str, device=None) -> nn.Module:
    """Choice ``op`` of chain layer ``layer``, with the stage's SE ratio and activation and the family's
    SE style: the block the standalone timm network has for it."""
    kw = {}
    if get_op(op).kind == "block":
        kw = {"se": layer.se, "block_act": layer.act, "family": plan.family}
    return create_op(op, layer.in_ch, layer.out_ch, layer.stride, act_layer=get_act_layer(plan.activation),
                     device=device, **kw)


def chain_head(plan, head_in: int, device=None) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
    """(conv_head, bn2, global_pool, classifier) exactly as timm's EfficientNet builds them.

    For ``family mobilenetv3`` as timm's MobileNetV3: ``bn2`` is the head's activation and the head runs
    after pooling (``global_pool`` does not flatten; the classifier flattens first)."""
    act = get_act_layer(plan.activation)
    if getattr(plan, "family", "efficientnet") == "mobilenetv3":
        pool = SelectAdaptivePool2d(pool_type="avg")
        conv = create_conv2d(head_in, plan.num_features, 1, padding="", bias=True, device=device)
        classifier = nn.Sequential(nn.Flatten(1), nn.Linear(plan.num_features, plan.num_classes, device=device))
        return conv, act(inplace=True), pool, classifier
    if plan.num_features > 0:
        conv = create_conv2d(head_in, plan.num_features, 1, padding="", device=device)
        bn = BatchNormAct2d(plan.num_features, act_layer=act, inplace=True, device=device)
        feats = plan.num_features
    else:
        conv, bn, feats = nn.Identity(), nn.Identity(), head_in
    pool, classifier = create_classifier(feats, plan.num_classes, pool_type="avg", device=device)
    return conv, bn, pool, classifier


def chain_head_sequence(plan, head_in: int, device=None) -> list[nn.Module]:
    """The head's modules in the order the network runs them (MobileNetV3 pools first)."""
    conv, bn, pool, classifier = chain_head(plan, head_in, device)
    if getattr(plan, "family", "efficientnet") == "mobilenetv3":
        return [pool, conv, bn, classifier]
    return [conv, bn, pool, classifier]


def chain_head_in(plan) -> int:
    return plan.layers[-1].out_ch if plan.layers else plan.stem_size


def cell_stem(plan, device=None) -> nn.Sequential:
    return nn.Sequential(
        create_conv2d(plan.in_chans, plan.stem_width, plan.stem_kernel, stride=plan.stem_stride, device=device),
        nn.BatchNorm2d(plan.stem_width, device=device))


def cell_head(plan, device=None) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
    head_in = plan.instances[-1].out_channels
    if plan.num_features > 0:
        conv = create_conv2d(head_in, plan.num_features, 1, device=device)
        bn = BatchNormAct2d(plan.num_features, act_layer=nn.ReLU, device=device)
        feats = plan.num_features
    else:
        conv, feats = nn.Identity(), head_in
        bn = BatchNormAct2d(head_in, act_layer=nn.ReLU, device=device) if plan.head_bn else nn.Identity()
    pool, classifier = create_classifier(feats, plan.num_classes, pool_type="avg", device=device)
    return conv, bn, pool, classifier


def cell_preprocess(inst, device=None) -> tuple[nn.Module, nn.Module]:
    """(pre0, pre1): map the two cell inputs to the cell's width (and resolution). A one-input cell reads
    only the previous cell: pre0 is unused (Identity), pre1 an Identity when the widths agree."""
    if inst.one_input:
        same = inst.c_prev == inst.channels
        return nn.Identity(), (nn.Identity() if same else ReLUConvBN(inst.c_prev, inst.channels, 1, 1, device=device))
    if inst.reduce_prev:
        pre0 = FactorizedReduce(inst.c_prev_prev, inst.channels, device=device)
    else:
        pre0 = ReLUConvBN(inst.c_prev_prev, inst.channels, 1, 1, device=device)
    return pre0, ReLUConvBN(inst.c_prev, inst.channels, 1, 1, device=device)


def out_conv(c: int, device=None) -> nn.Module:
    return nn.Conv2d(c, c, 1, bias=False, device=device)


def cell_block(inst, device=None) -> nn.Module:
    """The fixed reduction block of a layout item (``inst.op``): stride 2, ``c_prev`` to ``channels``."""
    return create_op(inst.op, inst.c_prev, inst.channels, 2, device=device)


def cell_output(cell, states, used) -> torch.Tensor:
    """A cell's output from its states (``used[i]``: some node read state i): see CellTemplatePlan.output."""
    if cell.output == "node":
        return states[cell.output_nodes[0]]
    if cell.output == "concat":
        return torch.cat([states[i] for i in cell.output_nodes], dim=1)
    out = None
    for j in range(len(states) - 2):
        if not used[2 + j]:
            y = cell.out_convs[_out_key(cell, j)](cell.relu(states[2 + j]))
            out = y if out is None else out + y
    return cell.out_bn(out)


def _out_key(cell, j: int):
    return str(j) if isinstance(cell.out_convs, nn.ModuleDict) else j


class FixedBlock(nn.Module):
    """A fixed reduction block between cells (the layout's ``resnet_block``): no decision."""

    def __init__(self, inst, device=None):
        super().__init__()
        self.block = cell_block(inst, device)

    def forward(self, s0, s1, a=None):
        return self.block(s1)

    def path_modules(self, a) -> list[nn.Module]:
        return [self.block]
