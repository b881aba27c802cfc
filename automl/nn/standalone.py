"""Standalone models: only the ops one architecture chose.

Chain spaces export as timm: :func:`arch_def` gives a timm arch_def (stages of block strings such as
``'ir_r1_k3_s2_e3_c24'``, ``skip`` layers left out) and :func:`build_standalone` the matching
``timm.models.efficientnet.EfficientNet``. :func:`block_map` says which supernet op became which
timm block (weight inheritance, :func:`automl.export.inherit_weights`, pairs modules by the order they run in
instead). Cell spaces build a :class:`CellNet` with the chosen ops only.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import replace

import torch
from timm.layers import get_act_layer, make_divisible
from timm.models._efficientnet_builder import decode_arch_def, efficientnet_init_weights, round_channels
from timm.models.efficientnet import EfficientNet
from timm.models.mobilenetv3 import MobileNetV3
from torch import nn

from automl.nn.ops import block_string, family_se_layer
from automl.nn.parts import FixedBlock, cell_head, cell_output, cell_preprocess, cell_stem, chain_op, out_conv
from automl.nn.registry import create_op, get_op
from automl.plan import SpacePlan

__all__ = ["arch_def", "block_map", "build_standalone", "timm_network", "se_too_small", "se_too_small_message",
           "CellNet", "StandaloneCell"]


def block_map(cs: SpacePlan, arch) -> list[tuple[int, int, int, int]]:
    """``(layer, choice, stage, block)``: supernet ``layers[layer].ops[choice]`` is the standalone
    EfficientNet's ``blocks[stage][block]`` (skip layers, layers beyond an elastic depth and empty stages left
    out; at a smaller width than the supernet holds, the block has the first channels of the op's tensors)."""
    if cs.kind != "chain":
        raise ValueError("block_map applies to chain spaces")
    out, stage_of, counts = [], {}, {}
    for i, k, layer, op in cs.chosen_layers(arch):
        if op == "skip":
            continue
        if layer.stage not in stage_of:
            stage_of[layer.stage] = len(stage_of)
        s = stage_of[layer.stage]
        out.append((i, k, s, counts.get(s, 0)))
        counts[s] = counts.get(s, 0) + 1
    return out


def arch_def(cs: SpacePlan, arch, se: float = 0.0) -> list[list[str]] | None:
    """The timm arch_def of ``arch`` for a chain space (None for a cell space, or when ``arch`` chooses a
    block timm cannot build: FBNet's group-conv MBConv, ``ir_k3_e1_g2``).

    ``EfficientNet(block_args=decode_arch_def(arch_def), stem_size=cs.stem_size,
    num_features=cs.plan.num_features, num_classes=cs.num_classes, in_chans=C, act_layer=...)`` is the
    chosen network; ``se > 0`` appends ``_se{se}`` to the InvertedResidual blocks (``ValueError`` outside [0, 1)).
    """
    if cs.kind != "chain":
        cs.check_arch(arch)
        return None
    blocks, custom = _block_strings(cs, arch, se)
    return None if custom else blocks


def _block_strings(cs: SpacePlan, arch, se: float = 0.0):
    """(arch_def, custom): the arch_def with, for a non-timm block, the timm block of the same shape, and
    ``custom`` the ``(stage, block, layer, op)`` of those blocks."""
    # NaN and negative ratios too: timm reads _se-0.5 as no squeeze-excitation, not what the arch_def says
    if not (isinstance(se, numbers.Real) and not isinstance(se, bool) and 0 <= se < 1):
        raise ValueError(f"se must be in [0, 1) (the squeeze-and-excitation ratio of the MBConv blocks; 0: the "
                         f"space's own), got {se!r}")
    stages: dict[int, list[str]] = {}
    custom = []
    for _, _, layer, op in cs.chosen_layers(arch):
        if op == "skip":
            continue
        info = get_op(op)
        if info.groups > 1:
            custom.append((layer.stage, len(stages.get(layer.stage, [])), layer, op))
        stages.setdefault(layer.stage, []).append(
            block_string(info.block_str, layer.out_ch, layer.stride, layer.se or se, layer.act))
    order = {s: i for i, s in enumerate(sorted(stages))}
    return [stages[s] for s in sorted(stages)], [(order[s], b, layer, op) for s, b, layer, op in custom]


def timm_network(plan, blocks: list[list[str]]) -> nn.Module:
    """The timm network of a chain plan for the arch_def ``blocks``: ``EfficientNet``, or ``MobileNetV3``
    for ``family mobilenetv3`` (its SE style, head conv after pooling with a bias)."""
    act = get_act_layer(plan.activation)
    if plan.family == "mobilenetv3":
        se_layer, _ = family_se_layer("mobilenetv3")
        return MobileNetV3(block_args=decode_arch_def(blocks), num_classes=plan.num_classes, in_chans=plan.in_chans,
                           stem_size=plan.stem_size, fix_stem=True, num_features=plan.num_features,
                           head_bias=True, act_layer=act, se_layer=se_layer)
    return EfficientNet(block_args=decode_arch_def(blocks), num_classes=plan.num_classes,
                        num_features=plan.num_features, in_chans=plan.in_chans, stem_size=plan.stem_size,
                        stem_kernel_size=plan.stem_kernel, act_layer=act)


def se_too_small(cs: SpacePlan, se: float, arch=None) -> float | None:
    """None when the squeeze-and-excitation ratio ``se`` gives every SE layer it adds at least one channel, in
    the architecture ``arch`` or (``arch`` None) in every architecture of ``cs``; else the smallest ratio, to three
    significant digits, that does.

    ``se`` goes to the ir/ds blocks of a chain space without a ratio of their own (neither the op's ``_se`` nor
    the stage's ``se``). timm's EfficientNet gives such a block's SE layer ``round(C * (se / e))`` channels, C its
    expanded width ``make_divisible(in * e)`` (a ds block: its input width; e = 1) and ``in`` its input width as
    timm rounds it (``round_channels``); 0 channels fail timm's weight initialisation (a ZeroDivisionError).
    ``family mobilenetv3`` rounds SE widths to a multiple of 8, at least 8: never 0. Cell spaces add none."""
    if not se or cs.kind != "chain" or cs.plan.family == "mobilenetv3":
        return None
    se = float(f"{se:g}")  # the ratio as the block strings write it (``_se{se:g}``), which timm builds from
    blocks = _se_blocks(cs, arch)
    if all(round(c * (se / e)) >= 1 for c, e in blocks):
        return None
    # round() of a half is 0 (to even): the ratio must exceed 0.5 e / C for every block
    bound = max(0.5 * e / c for c, e in blocks)
    step = 10.0 ** (math.floor(math.log10(bound)) - 2)
    ratio = (math.floor(bound / step) + 1) * step
    while not all(round(c * (ratio / e)) >= 1 for c, e in blocks):
        ratio += step
    return float(f"{ratio:.3g}")


def se_too_small_message(se: float, smallest: float, what: str, works: str = "", instead: str = "") -> str:
    """The words for a squeeze-and-excitation ratio ``se`` that timm rounds to 0 channels, after the caller's own
    prefix (the flag or key that gave ``se``): too small for ``what`` (this network, the space), the smallest ratio
    that works (``works``: where, such as "here") being ``smallest`` (:func:`se_too_small`'s answer), and
    ``instead`` what to give in its place (such as "give --se 0.0313 or more"), or else 0 for none."""
    where = f" {works}" if works else ""
    fix = f"{instead}, or 0 for none" if instead else "or 0 for none"
    return (f"too small for {what}: timm rounds a block's squeeze-and-excitation width (its channels x {se:g}) to 0 "
            f"channels, which it cannot build; the smallest ratio that works{where} is {smallest:g} ({fix})")


def _se_blocks(cs: SpacePlan, arch) -> list[tuple[int, float]]:
    """``(C, e)`` of each block of ``arch`` (None: of any architecture of ``cs``) that takes the network's SE
    ratio: C the width its SE layer squeezes, e the ratio timm divides ``se`` by (see :func:`se_too_small`)."""
    if arch is None:
        layers = [(layer, op, w) for layer in cs.plan.layers for op in layer.choices if op != "skip"
                  for w in (layer.in_widths if layer.in_width_dec is not None else (layer.in_ch,))]
    else:
        layers = [(layer, op, layer.in_ch) for _, _, layer, op in cs.chosen_layers(arch) if op != "skip"]
    out = []
    for layer, op, width in layers:
        template = get_op(op).block_str or ""
        if layer.se or not template.startswith(("ir_", "ds_")) or "_se" in template:
            continue
        args = decode_arch_def([[template.format(stride=1, out=layer.out_ch)]])[0][0]
        in_ch = round_channels(width)
        e = args.get("exp_ratio", 1.0)
        out.append((make_divisible(in_ch * e) if args["block_type"] == "ir" else in_ch, e))
    return out


def build_standalone(cs: SpacePlan, arch, se: float = 0.0) -> nn.Module:
    """Only the chosen ops of ``arch``: a timm EfficientNet (chain) or a :class:`CellNet` (cell). ``ValueError``
    for an ``se`` that gives an SE layer 0 channels (:func:`se_too_small`)."""
    if cs.kind == "chain":
        blocks, custom = _block_strings(cs, arch, se)
        smallest = se_too_small(cs, se, arch)
        if smallest is not None:
            raise ValueError(f"se {se!r}: {se_too_small_message(se, smallest, 'this network')}")
        model = timm_network(cs.plan, blocks)
        for s, b, layer, op in custom:  # FBNet's group-conv MBConv in place of the timm block, ``se`` as theirs
            block = chain_op(cs.plan, replace(layer, se=layer.se or se), op)
            efficientnet_init_weights(block)
            model.blocks[s][b] = block
        return model
    return CellNet(cs, arch)


class StandaloneCell(nn.Module):
    """A cell with only the chosen ops. ``ops["j_i_k"]`` is the supernet's ``ops[j][i][k]``;
    ``out_convs["j"]`` exists only for the nodes no other node reads (and only for the default output)."""

    def __init__(self, template, inst, a: list[int]):
        super().__init__()
        c = inst.channels
        self.pre0, self.pre1 = cell_preprocess(inst)
        self.ops = nn.ModuleDict()
        self._nodes = []
        used = set()
        for j, node in enumerate(template.nodes):
            slots = []
            for ci, do in zip(node.slot_inputs(a), node.op_decisions):
                oi = a[do]
                key = f"{j}_{ci}_{oi}"
                if key not in self.ops:
                    cand = node.candidates[ci]
                    self.ops[key] = create_op(node.ops[oi], c, c, template.stride if cand < 2 else 1)
                slots.append((node.candidates[ci], key))
                used.add(node.candidates[ci])
            self._nodes.append(slots)
        self.output, self.output_nodes = template.output, template.output_nodes
        self._used = [i in used for i in range(2 + len(template.nodes))]
        if self.output == "loose":
            loose = [j for j in range(len(template.nodes)) if 2 + j not in used]
            self.out_convs = nn.ModuleDict({str(j): out_conv(c) for j in loose})
            self.out_bn = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, s0, s1):
        states = [self.pre0(s0), self.pre1(s1)]
        for slots in self._nodes:
            h = None
            for src, key in slots:
                y = self.ops[key](states[src])
                h = y if h is None else h + y
            states.append(h)
        return cell_output(self, states, self._used)


class CellNet(nn.Module):
    """The standalone network of a cell space for one architecture: the supernet's module names, except a cell's
    chosen ops (:class:`StandaloneCell`: the supernet's ``ops[j][i][k]`` is ``ops["j_i_k"]``)."""

    def __init__(self, cs: SpacePlan, arch):
        super().__init__()
        a = cs.check_arch(arch)
        plan = cs.plan
        self.arch = list(a)
        self.stem = cell_stem(plan)
        self.cells = nn.ModuleList(FixedBlock(inst) if inst.op is not None else
                                   StandaloneCell(plan.templates[inst.template], inst, a)
                                   for inst in plan.instances)
        self.conv_head, self.bn2, self.global_pool, self.classifier = cell_head(plan)

    def __prepare_scriptable__(self):
        """``torch.jit.script`` calls this first: a cell network is not scriptable (its cells pick their ops
        by name at run time, which TorchScript cannot index); say what works instead."""
        raise RuntimeError("a cell network (CellNet) cannot be compiled by torch.jit.script (its cells pick "
                           "their ops by name); use torch.export or torch.compile (TorchScript is deprecated in torch)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            out = cell(s0, s1)
            s0, s1 = (out, out) if isinstance(cell, FixedBlock) else (s1, out)
        x = self.bn2(self.conv_head(s1))
        return self.classifier(self.global_pool(x))
