"""Costs measured on PyTorch's meta device: parameter counts and multiply-accumulate counts (MACs), per
module and for every choice of a space's plan (the compiler's ``params`` and ``macs`` metrics).

A MAC is one multiply-add of a convolution or a linear layer, per sample (batch 1): a ``Conv2d``
producing an ``N x C_out x H x W`` output costs ``C_out * H * W * (C_in / groups) * kH * kW`` MACs and
a ``Linear`` ``in * out`` per row. Batch norm, activations, pooling and additions are not counted
(the usual convention, and what ``torch.utils.flop_counter.FlopCounterMode`` counts, at 2 FLOPs a MAC).

The counts come from forward hooks on a run with the real input shape of each choice in its context,
on the meta device (no memory, no arithmetic), so they are exact for that shape.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from functools import partial
from typing import Iterable

import torch
from timm.layers import activations as timm_act
from timm.layers import get_act_layer
from timm.models._efficientnet_blocks import SqueezeExcite
from torch import nn

from automl.nn import parts
from automl.nn.registry import create_op

__all__ = ["count_params", "count_macs", "MacCounter", "measure_params", "measure_macs", "chain_module",
           "cell_op_module"]


def count_params(module: nn.Module) -> int:
    """Number of weights (parameters) of a module; works on the meta device."""
    return int(sum(p.numel() for p in module.parameters()))


class MacCounter:
    """Forward hooks that add up the MACs of every ``Conv2d`` / ``Linear`` call under ``modules``.

    A module called twice counts twice (MACs are work done, not weights stored). Batch norms (timm's
    BatchNormAct2d too) and activation modules (:data:`_ELEMENTWISE`) keep the shape and count nothing, so
    while counting they pass their input on: on the meta device they were most of the time a count took.
    So does timm's EfficientNet ``SqueezeExcite``, after running its two convs on the pooled shape (what its
    forward does, without the meta device's slow mean and gating product).
    """

    def __init__(self, modules: Iterable[nn.Module]):
        self.macs = 0
        self._handles = []
        self._passed: list[nn.Module] = []
        for root in modules:
            for m in root.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    self._handles.append(m.register_forward_hook(self._hook))
                elif "forward" in m.__dict__:  # a forward of its own: run it as it is
                    continue
                elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) or type(m) in _ELEMENTWISE:
                    m.forward = _same_shape
                    self._passed.append(m)
                elif type(m) is SqueezeExcite:
                    m.forward = partial(_squeeze_excite, m)
                    self._passed.append(m)

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
        for m in self._passed:
            del m.forward
        self._passed.clear()

    def __enter__(self) -> "MacCounter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# activation modules whose output has their input's shape (exact types: a subclass may do more); while
# counting MACs they pass their input on (on the meta device an elementwise op costs as much as a conv)
_ELEMENTWISE = frozenset({
    nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.GELU, nn.Mish, nn.ELU,
    nn.LeakyReLU, nn.Identity, timm_act.GELU, timm_act.GELUTanh, timm_act.HardMish, timm_act.HardSigmoid,
    timm_act.HardSwish, timm_act.Mish, timm_act.QuickGELU, timm_act.Sigmoid, timm_act.Swish, timm_act.Tanh})


def _same_shape(x: torch.Tensor) -> torch.Tensor:
    return x


def _squeeze_excite(se: SqueezeExcite, x: torch.Tensor) -> torch.Tensor:
    """``se``'s forward as :class:`MacCounter` counts it: its convs on the pooled shape; the input's shape out."""
    se.conv_expand(se.act1(se.conv_reduce(x.new_empty((*x.shape[:2], 1, 1)))))
    return x


@torch.no_grad()
def count_macs(module: nn.Module, input_shape, *, extra_inputs: int = 0) -> tuple[int, tuple[int, ...]]:
    """``(MACs per sample, output shape)`` of ``module`` on one input of ``input_shape`` (C, H, W).

    Counted in eval mode on the meta device; ``module`` is left as it was (device, weights, training modes):
    one already wholly on the meta device runs as it is, any other as a copy on the meta device that copies
    no weights. ``extra_inputs`` passes that many more tensors of the same shape (cell preprocessing takes
    two).
    """
    tensors = [*module.parameters(), *module.buffers()]
    run = module
    if not all(t.is_meta for t in tensors):
        try:
            module = run = _meta_copy(module, tensors)
        except RuntimeError:  # a module deepcopy refuses (the hook-based nn.utils.weight_norm): run the caller's
            metas = {n: torch.empty_like(t, device="meta") for n, t in
                     [*module.named_parameters(), *module.named_buffers()]}  # with meta tensors in place of its own
            run = lambda *a: torch.func.functional_call(module, metas, a)  # noqa: E731
    modes = [(m, m.training) for m in module.modules()]
    if any(training for _, training in modes):  # a module in eval mode already (the compiler's) is left alone
        module.eval()
    try:
        x = torch.empty((1, *input_shape), device="meta")
        with MacCounter([module]) as counter:
            y = run(x, *([x] * extra_inputs))
    finally:
        for m, training in modes:
            if m.training != training:  # setting a module's attribute is slow: only those .eval() changed
                m.training = training
    return int(counter.macs), tuple(y.shape[1:])


def _meta_copy(module: nn.Module, tensors: list[torch.Tensor]) -> nn.Module:
    """A deep copy of ``module`` whose parameters and buffers (``tensors``) are empty tensors of the same shapes
    on the meta device: the module's structure, without copying its weights."""
    memo: dict = {}
    for t in tensors:
        if id(t) not in memo:
            meta = torch.empty_like(t, device="meta")
            memo[id(t)] = nn.Parameter(meta, t.requires_grad) if isinstance(t, nn.Parameter) else meta
    return copy.deepcopy(module, memo)


def measure_macs(kind: str, plan, decisions, input_shape, cache: dict | None = None,
                 modules: dict | None = None) -> tuple[list[list[float]], float]:
    """Per-choice MACs at the real shapes, and the fixed MACs (the cost table's ``macs`` metric).

    Chain spaces: a choice costs its block's MACs on the layer's input shape (``skip``: 0); fixed = stem,
    fixed layers, head and classifier. Every layer's input shape is set by the plan, not by the choices,
    so ``fixed + sum of chosen`` is exactly the standalone network's count.

    ``plan``'s layers have fixed widths (``ChainPlan.at`` for elastic widths).

    Cell spaces (the same rule as ``params``): an op decision costs the op's MACs at stride 1 on the
    cell's output shape, summed over every instance of the template; choosing an input costs nothing;
    fixed = stem, head, and each cell's preprocessing and output convs for every node.

    ``cache`` (counts by op and shape) and ``modules`` (the meta-device ops by op and widths, see
    :func:`chain_module` and :func:`cell_op_module`, and the stem, head and cell preprocessing and output convs)
    may be shared by the calls for each combination of elastic widths and resolutions; ``modules`` by
    :func:`measure_params` too (its ``cache`` holds other counts): an op or part is built once and counted once
    per input shape.
    """
    cache = {} if cache is None else cache
    modules = {} if modules is None else modules
    costs = [[0.0] * len(d.choices) for d in decisions]
    shape = tuple(int(v) for v in input_shape)
    if kind == "chain":
        return _chain_macs(plan, costs, shape, cache, modules)
    return _cell_macs(plan, costs, shape, cache, modules)


def _chain_macs(plan, costs: list[list[float]], shape: tuple[int, ...], cache: dict, modules: dict):
    """:func:`measure_macs` of a chain space: ``(costs, fixed)``."""
    def layer_macs(layer, op, shape) -> tuple[int, tuple[int, ...]]:
        key = ("layer", op, layer.in_ch, layer.out_ch, layer.stride, layer.se, layer.act, tuple(shape))
        if key not in cache:
            cache[key] = count_macs(chain_module(plan, layer, op, modules), shape)
        return cache[key]

    ends = replace(plan, layers=())  # what the stem and head depend on, besides the head's input width
    key = ("stem", ends, shape)
    if key not in cache:
        cache[key] = count_macs(_chain_ends(plan, modules)[0], shape)
    fixed, shape = cache[key]
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
    key = ("head", ends, parts.chain_head_in(plan), shape)
    if key not in cache:
        cache[key] = count_macs(_chain_ends(plan, modules)[1], shape)
    return costs, float(fixed + cache[key][0])


def _cell_macs(plan, costs: list[list[float]], shape: tuple[int, ...], cache: dict, modules: dict):
    """:func:`measure_macs` of a cell space: ``(costs, fixed)``."""
    def op_macs(op, cin, cout, stride, shape, act=None) -> tuple[int, tuple[int, ...]]:
        key = (op, cin, cout, stride, tuple(shape), act)
        if key not in cache:
            cache[key] = count_macs(cell_op_module(op, cin, cout, stride, modules, act), shape)
        return cache[key]

    def part_macs(key, part, shape) -> tuple[int, tuple[int, ...]]:  # a fixed part (``part()`` builds or finds it)
        if (key, shape) not in cache:
            cache[key, shape] = count_macs(part(), shape)
        return cache[key, shape]

    stem_key, head_key = _cell_end_keys(plan)
    fixed, stem_out = part_macs(stem_key, lambda: _cell_ends(plan, modules)[0], shape)
    prev_prev = prev = stem_out
    for inst in plan.instances:
        if inst.op is not None:  # a fixed reduction block: reads the previous output, feeds both inputs
            m, out = count_macs(_cell_block(inst, modules), prev)
            fixed += m
            prev_prev = prev = out
            continue
        t = plan.templates[inst.template]
        key = _preprocess_key(inst)
        m0, in_shape = part_macs(key + (0,), lambda: _cell_preprocess(inst, modules)[0], prev_prev)
        m1, in_shape1 = part_macs(key + (1,), lambda: _cell_preprocess(inst, modules)[1], prev)
        if inst.one_input:  # pre0 is unused
            m0, in_shape = 0, in_shape1
        out_shape = (inst.channels, *(-(-v // t.stride) for v in in_shape[1:]))  # ceil, as the ops pad
        fixed += m0 + m1
        if t.output == "loose":
            outc, _ = part_macs(("out conv", inst.channels), lambda: _out_conv(inst.channels, modules), out_shape)
            fixed += len(t.nodes) * outc
        for node in t.nodes:
            per = [op_macs(op, inst.channels, inst.channels, 1, out_shape)[0] for op in node.ops]
            for d in node.op_decisions:
                costs[d] = [a + b for a, b in zip(costs[d], per)]
        prev_prev, prev = prev, (inst.out_channels, *out_shape[1:])
    head, _ = part_macs(head_key, lambda: _cell_ends(plan, modules)[1], prev)
    return costs, float(fixed + head)


def measure_params(kind: str, plan, decisions, cache: dict | None = None,
                   modules: dict | None = None) -> tuple[list[list[float]], float]:
    """Per-choice parameter counts at the real shapes, and the fixed parameter count (the cost table's
    ``params`` metric). ``plan``'s layers have fixed widths (``ChainPlan.at`` for elastic widths).
    ``cache`` and ``modules`` as in :func:`measure_macs`."""
    cache = {} if cache is None else cache
    modules = {} if modules is None else modules

    def params(op: str, cin: int, cout: int, stride: int, act=None, layer=None) -> int:
        key = (op, cin, cout, stride, act, layer and (layer.se, layer.act))
        if key not in cache:
            if layer is not None:
                cache[key] = count_params(chain_module(plan, layer, op, modules))
            else:
                cache[key] = count_params(cell_op_module(op, cin, cout, stride, modules))
        return cache[key]

    costs = [[0.0] * len(d.choices) for d in decisions]
    if kind == "chain":
        key = ("fixed", replace(plan, layers=()), parts.chain_head_in(plan))  # the stem and head
        if key not in cache:
            cache[key] = chain_fixed_params(plan, modules)
        fixed = cache[key]
        for layer in plan.layers:
            per = [params(op, layer.in_ch, layer.out_ch, layer.stride, plan.activation, layer) for op in layer.choices]
            if layer.decision is None and layer.gate is not None:  # a fixed layer of an elastic depth:
                g, on = layer.gate                                   # the depth decision's cost
                costs[g] = [c + (per[0] if active else 0) for c, active in zip(costs[g], on)]
            elif layer.decision is None:
                fixed += per[0]
            else:
                costs[layer.decision] = [float(p) for p in per]
        return costs, float(fixed)
    fixed = cell_fixed_params(plan, modules)
    for inst in plan.instances:
        if inst.op is not None:
            continue
        t = plan.templates[inst.template]
        for node in t.nodes:
            per = [params(op, inst.channels, inst.channels, 1) for op in node.ops]
            for d in node.op_decisions:
                costs[d] = [a + b for a, b in zip(costs[d], per)]
    return costs, float(fixed)


def chain_module(plan, layer, op: str, modules: dict) -> nn.Module:
    """``parts.chain_op(plan, layer, op)`` on the meta device, built once per distinct op and widths and kept
    in ``modules`` (the same module whatever the layer's name, depth gate or input resolution): building a
    timm block took longer than counting it. Counting leaves it as it was (:func:`count_macs`)."""
    key = (op, layer.in_ch, layer.out_ch, layer.stride, layer.se, layer.act, plan.activation,
           getattr(plan, "family", "efficientnet"))
    if key not in modules:
        modules[key] = parts.chain_op(plan, layer, op, device="meta").eval()  # as counted: no mode to restore
    return modules[key]


def cell_op_module(op: str, cin: int, cout: int, stride: int, modules: dict, act: str | None = None) -> nn.Module:
    """``create_op(op, cin, cout, stride)`` (with activation ``act`` when given) on the meta device, built once
    per distinct op, widths, stride and activation and kept in ``modules``, as :func:`chain_module` keeps the
    ops of a chain space. Counting leaves it as it was (:func:`count_macs`)."""
    key = ("cell", op, cin, cout, stride, act)
    if key not in modules:
        kw = {"act_layer": get_act_layer(act)} if act else {}
        modules[key] = create_op(op, cin, cout, stride, device="meta", **kw).eval()
    return modules[key]


def _cell_block(inst, modules: dict) -> nn.Module:
    """``parts.cell_block(inst)`` on the meta device, kept in ``modules`` by its op and widths."""
    key = ("cell block", inst.op, inst.c_prev, inst.channels)
    if key not in modules:
        modules[key] = parts.cell_block(inst, device="meta").eval()
    return modules[key]


def chain_fixed_params(plan, modules: dict | None = None) -> int:
    """Parameters of the stem and head of a chain network (the fixed layers are counted by the caller).
    ``modules`` keeps the meta-device stem and head, as :func:`measure_macs`'s ``modules`` does."""
    stem, head = _chain_ends(plan, {} if modules is None else modules)
    return sum(count_params(m) for m in (*stem, *head))


def cell_fixed_params(plan, modules: dict | None = None) -> int:
    """Stem, head, and every cell's preprocessing and output convs (counted for every node: the cost
    table's approximation, see docs/space-language.md). ``modules`` keeps the meta-device parts and reduction
    blocks, as :func:`measure_macs`'s ``modules`` does (the same dict may be given to both)."""
    modules = {} if modules is None else modules
    stem, head = _cell_ends(plan, modules)
    total = count_params(stem) + sum(count_params(m) for m in head)
    cache: dict = {}
    for inst in plan.instances:
        if inst.op is not None:
            key = inst
            if key not in cache:
                cache[key] = count_params(_cell_block(inst, modules))
            total += cache[key]
            continue
        t = plan.templates[inst.template]
        key = (inst, len(t.nodes), t.output)
        if key not in cache:
            pre0, pre1 = _cell_preprocess(inst, modules)
            n = count_params(pre0) + count_params(pre1)
            if t.output == "loose":
                n += len(t.nodes) * count_params(_out_conv(inst.channels, modules)) + 2 * inst.channels
            cache[key] = n
        total += cache[key]
    return total


# The fixed parts (stem, head, a cell's preprocessing and output conv) on the meta device, each built once in a
# ``modules`` dict that :func:`measure_params` and :func:`measure_macs` share, in eval mode as counted: the same
# modules serve both metrics and every combination of elastic widths and resolutions.

def _kept(modules: dict, key: tuple, build) -> nn.Module:
    """``modules[key]``, made by ``build()`` the first time."""
    if key not in modules:
        modules[key] = build().eval()
    return modules[key]


def _chain_ends(plan, modules: dict) -> tuple[nn.Sequential, nn.Sequential]:
    """``(stem, head)``: ``parts.chain_stem``'s modules and ``parts.chain_head_sequence``'s (the head in the
    order it runs), kept by what they depend on: the plan without its layers, and the head's input width."""
    ends, head_in = replace(plan, layers=()), parts.chain_head_in(plan)
    stem = _kept(modules, ("chain stem", ends), lambda: nn.Sequential(*parts.chain_stem(plan, device="meta")))
    head = _kept(modules, ("chain head", ends, head_in),
                 lambda: nn.Sequential(*parts.chain_head_sequence(plan, head_in, device="meta")))
    return stem, head


def _cell_end_keys(plan) -> tuple[tuple, tuple]:
    """The keys of a cell network's stem and head: what ``parts.cell_stem`` and ``parts.cell_head`` read."""
    return (("cell stem", plan.in_chans, plan.stem_width, plan.stem_kernel, plan.stem_stride),
            ("cell head", plan.instances[-1].out_channels, plan.num_features, plan.num_classes, plan.head_bn))


def _cell_ends(plan, modules: dict) -> tuple[nn.Module, nn.Sequential]:
    """``(stem, head)``: ``parts.cell_stem`` and ``parts.cell_head``'s modules, kept by :func:`_cell_end_keys`."""
    stem_key, head_key = _cell_end_keys(plan)
    return (_kept(modules, stem_key, lambda: parts.cell_stem(plan, device="meta")),
            _kept(modules, head_key, lambda: nn.Sequential(*parts.cell_head(plan, device="meta"))))


def _preprocess_key(inst) -> tuple:
    """What ``parts.cell_preprocess`` reads of a cell instance."""
    return "cell preprocess", inst.one_input, inst.reduce_prev, inst.c_prev_prev, inst.c_prev, inst.channels


def _cell_preprocess(inst, modules: dict) -> nn.ModuleList:
    """``parts.cell_preprocess(inst)``'s (pre0, pre1), kept by :func:`_preprocess_key`."""
    return _kept(modules, _preprocess_key(inst), lambda: nn.ModuleList(parts.cell_preprocess(inst, device="meta")))


def _out_conv(c: int, modules: dict) -> nn.Module:
    """``parts.out_conv(c)``, kept by its width."""
    return _kept(modules, ("out conv", c), lambda: parts.out_conv(c, device="meta"))
