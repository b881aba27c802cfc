"""Multiply-accumulate counts (MACs), counted by running modules on PyTorch's meta device.

A MAC is one multiply-add of a convolution or a linear layer, per sample (batch 1): a ``Conv2d``
producing an ``N x C_out x H x W`` output costs ``C_out * H * W * (C_in / groups) * kH * kW`` MACs and
a ``Linear`` ``in * out`` per row. Batch norm, activations, pooling and additions are not counted
(the usual convention, and what ``torch.utils.flop_counter.FlopCounterMode`` counts, at 2 FLOPs a MAC).

The counts come from forward hooks on a run with the real input shape of each choice in its context,
on the meta device (no memory, no arithmetic), so they are exact for that shape.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

__all__ = ["count_macs", "MacCounter"]


class MacCounter:
    """Forward hooks that add up the MACs of every ``Conv2d`` / ``Linear`` call under ``modules``.

    A module called twice counts twice (MACs are work done, not weights stored).
    """

    def __init__(self, modules: Iterable[nn.Module]):
        self.macs = 0
        self._handles = []
        for root in modules:
            for m in root.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    self._handles.append(m.register_forward_hook(self._hook))

    def _hook(self, module, inputs, output) -> None:
        per_sample = output.numel() // max(output.shape[0], 1) if output.dim() > 1 else output.numel()
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            self.macs += per_sample * (module.in_channels // module.groups) * kh * kw
        else:
            self.macs += per_sample * module.in_features

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> "MacCounter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@torch.no_grad()
def count_macs(module: nn.Module, input_shape, *, extra_inputs: int = 0) -> tuple[int, tuple[int, ...]]:
    """``(MACs per sample, output shape)`` of ``module`` on one input of ``input_shape`` (C, H, W).

    The module is moved to the meta device (it may already be there) and run in eval mode;
    ``extra_inputs`` passes that many more tensors of the same shape (cell preprocessing takes two).
    """
    module = module.to("meta").eval()
    x = torch.empty((1, *input_shape), device="meta")
    with MacCounter([module]) as counter:
        y = module(x, *([x] * extra_inputs))
    return int(counter.macs), tuple(y.shape[1:])


def _run(mods, shape) -> tuple[int, tuple[int, ...]]:
    """MACs and output shape of modules applied one after the other."""
    return count_macs(nn.Sequential(*mods), shape)


def measure_macs(kind: str, plan, decisions, input_shape) -> tuple[list[list[float]], float]:
    """Per-choice MACs at the real shapes, and the fixed MACs (the cost table's ``macs`` metric).

    Chain spaces: a choice costs its block's MACs on the layer's input shape (``skip``: 0); fixed = stem,
    fixed layers, head and classifier. Every layer's input shape is set by the plan, not by the choices,
    so ``fixed + sum of chosen`` is exactly the standalone network's count.

    Cell spaces (the same rule as ``params``): an op decision costs the op's MACs at stride 1 on the
    cell's output shape, summed over every instance of the template; choosing an input costs nothing;
    fixed = stem, head, and each cell's preprocessing and output convs for every node.
    """
    from timm.layers import get_act_layer

    from automl.compile import supernet as sn
    from automl.compile._registry import create_op

    cache: dict[tuple, tuple[int, tuple[int, ...]]] = {}

    def op_macs(op, cin, cout, stride, shape, act=None) -> tuple[int, tuple[int, ...]]:
        key = (op, cin, cout, stride, tuple(shape), act)
        if key not in cache:
            kw = {"act_layer": get_act_layer(act)} if act else {}
            cache[key] = count_macs(create_op(op, cin, cout, stride, device="meta", **kw), shape)
        return cache[key]

    def layer_macs(layer, op, shape) -> tuple[int, tuple[int, ...]]:
        key = ("layer", op, layer.in_ch, layer.out_ch, layer.stride, layer.se, layer.act, tuple(shape))
        if key not in cache:
            cache[key] = count_macs(sn.chain_op(plan, layer, op, device="meta"), shape)
        return cache[key]

    costs = [[0.0] * len(d.choices) for d in decisions]
    shape = tuple(int(v) for v in input_shape)
    if kind == "chain":
        fixed, shape = _run(sn.chain_stem(plan, device="meta"), shape)
        for layer in plan.layers:
            # with the stage's SE and activation; a layer of an elastic depth keeps its input shape
            per = [layer_macs(layer, op, shape) for op in layer.choices]
            if layer.decision is None and layer.gate is not None:  # a fixed layer of an elastic depth
                g, on = layer.gate
                costs[g] = [c + (per[0][0] if active else 0) for c, active in zip(costs[g], on)]
            elif layer.decision is None:
                fixed += per[0][0]
            else:
                costs[layer.decision] = [float(m) for m, _ in per]
            shape = per[0][1]  # every choice of a layer has the layer's output shape
        head, _ = _run(sn.chain_head_sequence(plan, sn._chain_head_in(plan), device="meta"), shape)
        return costs, float(fixed + head)
    fixed, stem_out = _run([sn.cell_stem(plan, device="meta")], shape)
    prev_prev = prev = stem_out
    for inst in plan.instances:
        if inst.op is not None:  # a fixed reduction block: reads the previous output, feeds both inputs
            m, out = count_macs(sn.cell_block(inst, device="meta"), prev)
            fixed += m
            prev_prev = prev = out
            continue
        t = plan.templates[inst.template]
        pre0, pre1 = sn.cell_preprocess(inst, device="meta")
        m0, in_shape = count_macs(pre0, prev_prev)
        m1, in_shape1 = count_macs(pre1, prev)
        if inst.one_input:  # pre0 is unused
            m0, in_shape = 0, in_shape1
        out_shape = (inst.channels, *(-(-v // t.stride) for v in in_shape[1:]))  # ceil, as the ops pad
        fixed += m0 + m1
        if t.output == "loose":
            outc, _ = count_macs(sn._out_conv(inst.channels, device="meta"), out_shape)
            fixed += len(t.nodes) * outc
        for node in t.nodes:
            per = [op_macs(op, inst.channels, inst.channels, 1, out_shape)[0] for op in node.ops]
            for d in node.op_decisions:
                costs[d] = [a + b for a, b in zip(costs[d], per)]
        prev_prev, prev = prev, (inst.out_channels, *out_shape[1:])
    head, _ = _run(sn.cell_head(plan, device="meta"), prev)
    return costs, float(fixed + head)
