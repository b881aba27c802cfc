"""The weight-sharing supernet: every candidate op of every decision, run single-path.

``Supernet.forward(x, arch)`` runs only the chosen path; ``arch`` is a LongTensor (D,) of choice
indices in declaration order, turned into a Python list once per forward (the training loops pass it on the
CPU, so no device synchronisation). An architecture that is not one choice index per decision is refused with
the :class:`~automl.errors.UserError` of :func:`automl.plan.check_arch`: ``path_modules``, ``path_params``,
``slices`` and ``path_network`` call it; ``forward`` checks the length and each index's range of an integer
tensor itself (a few comparisons in Python) and calls it only to refuse one.

Module tree (stable: weight inheritance and checkpoints rely on it):

chain spaces (:class:`ChainSupernet`), mirroring timm's EfficientNet names::

    conv_stem, bn1                  stem conv and BatchNormAct (as timm)
    layers[i].ops[k]                layer i (in declaration order, fixed layers included), choice k;
                                    layers[i].decision: its index in arch, or None for a fixed layer
    conv_head, bn2                  1x1 head conv and BatchNormAct (Identity when the head width is 0)
    global_pool, classifier         timm's create_classifier

    ``family mobilenetv3`` (timm's MobileNetV3): global_pool (no flatten), then conv_head (1x1, with a
    bias) and its activation (``bn2``: no BN), flatten, classifier, as ``MobileNetV3.forward_head``.

    The blocks are built by timm's EfficientNetBuilder from the same block strings the exported
    arch_def uses, so ``layers[i].ops[k]`` has exactly the state_dict of the standalone block.

    Elastic width (``stage s width 24, 32, 40``): still ONE module per (layer, op), built at the largest
    widths (the state_dict is the one of the space at its largest widths). An architecture that chooses
    smaller widths runs the op on its first channels, as slimmable networks and Once-for-All share
    weights (without OFA's channel sorting): :class:`automl.nn.elastic.SlicedOp` calls the op built at
    the chosen widths on the meta device (the standalone timm block: residual only when its widths
    agree at stride 1, SE reduce width, group convs) with the prefix ``W[:c_out, :c_in, ...]`` of every
    parameter and buffer. Gradients and BN running statistics (``num_batches_tracked`` too) reach only
    those first channels of the master. A stage of fixed width whose first layer reads an elastic stage
    is sliced on its input only; the head conv (the classifier when there is none; MobileNetV3's conv
    after pooling) slices its input channels. Spaces without elastic width run the plain loop below.
    ``path_params`` counts a sliced module as its template (the standalone network's count);
    ``path_network(arch)`` is the path as a network with copies of the sliced weights, which weight
    inheritance (:func:`automl.export.inherit_weights`) reads.

cell spaces (:class:`CellSupernet`)::

    stem                            Sequential(conv, BN)
    cells[c].pre0, cells[c].pre1    preprocessing of the two cell inputs
    cells[c].ops[j][i][k]           node j reading its i-th candidate input through op k (the node's two
                                    input slots share these modules, as ASNG-NAS's ENAS cell does, the
                                    paper's code; ENAS's own gives each slot its weights)
    cells[c].out_convs[j], out_bn   output: BN(sum over unused nodes j of out_convs[j](relu(h_j))),
                                    the same as a 1x1 conv over their concatenation (no such modules
                                    when the template says `output NODE` or `output concat ...`)
    cells[c].block                  a fixed reduction block in the layout (``resnet_block``)
    conv_head, bn2, global_pool, classifier
"""

from __future__ import annotations

import torch
from timm.models._efficientnet_builder import efficientnet_init_weights
from torch import nn

from automl.nn.elastic import SlicedOp
from automl.nn.parts import (FixedBlock, cell_head, cell_output, cell_preprocess, cell_stem, chain_head,
                             chain_head_in, chain_head_sequence, chain_op, chain_stem, out_conv)
from automl.nn.registry import create_op
from automl.nn.resize import resize_input
from automl.plan import SpacePlan, check_arch

__all__ = ["Supernet", "ChainSupernet", "CellSupernet", "SuperCell", "build_supernet"]

# arch dtypes forward checks itself (check_arch takes the others: it refuses floats and bools)
_INDEX_DTYPES = frozenset({torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8})


# ---- supernets ----------------------------------------------------------------------------------

class Supernet(nn.Module):
    """Base class: ``forward(x, arch)`` runs the path ``arch`` (LongTensor (D,)) selects."""

    num_decisions: int
    # elastic resolution: (the resolution decision, its input sizes); None: the input as it comes
    _resolution: tuple[int, tuple[int, ...]] | None = None
    # what check_arch needs: K_d per decision, the decisions' names, the space's name
    _num_choices: tuple[int, ...] = ()
    _decision_names: tuple[str, ...] = ()
    _space_name: str | None = None

    def _set_space(self, cs: SpacePlan) -> None:
        """The space's resolutions and what the architecture checks need."""
        self._resolution = None if cs.resolution_dec is None else (cs.resolution_dec, tuple(cs.resolutions))
        self._num_choices = tuple(cs.num_choices)
        self._decision_names = tuple(d.name for d in cs.decisions)
        self._space_name = cs.name

    def _check_arch(self, arch) -> list[int]:
        """``arch`` as a list of ints; the :class:`UserError` of :func:`automl.plan.check_arch` if it is not
        one choice index per decision of the space."""
        return check_arch(arch, self._num_choices, self._decision_names, self._space_name)

    def _forward_arch(self, arch) -> list[int]:
        """``arch`` as a list of ints for forward, which runs every training step: an integer tensor (D,) of
        indices in range is only read (``tolist``); anything else goes through :meth:`_check_arch`."""
        if isinstance(arch, torch.Tensor) and arch.dim() == 1 and arch.dtype in _INDEX_DTYPES:
            a = arch.tolist()
            if len(a) == len(self._num_choices) and all(0 <= k < n for k, n in zip(a, self._num_choices)):
                return a
        return self._check_arch(arch)

    def _resized(self, x: torch.Tensor, a: list[int]) -> torch.Tensor:
        """``x`` at the path's resolution (a path that chose a smaller one sees its batch resized)."""
        if self._resolution is None:
            return x
        d, sizes = self._resolution
        return resize_input(x, sizes[a[d]])

    def forward(self, x: torch.Tensor, arch: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def __prepare_scriptable__(self):
        """``torch.jit.script`` (which calls this first) cannot compile a path chosen at run time: say so, and
        what works, rather than TorchScript's error about the first annotation it cannot read."""
        raise RuntimeError(f"{type(self).__name__} runs the path its arch argument chooses, which TorchScript "
                           f"cannot compile; export the network of one architecture with torch.export "
                           f"(automl.nn.build_standalone), or run the supernet with torch.compile")

    def path_modules(self, arch) -> list[nn.Module]:
        """The modules the path ``arch`` uses (for counting its parameters, or inheriting weights)."""
        raise NotImplementedError  # pragma: no cover

    def path_params(self, arch) -> int:
        """Number of distinct parameters on the path ``arch``."""
        seen, n = set(), 0
        for m in self.path_modules(arch):
            for p in m.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    n += p.numel()
        return n


class ChainLayerOps(nn.Module):
    """The candidate ops of one chain layer (one op for a fixed layer)."""

    def __init__(self, plan, layer, device=None):
        super().__init__()
        self.name = layer.name
        self.choices = layer.choices
        self.decision = layer.decision
        self.ops = nn.ModuleList(chain_op(plan, layer, op, device) for op in layer.choices)

    def extra_repr(self) -> str:
        return f"name={self.name}, decision={self.decision}, choices={list(self.choices)}"


class ChainSupernet(Supernet):
    def __init__(self, cs: SpacePlan, device=None):
        super().__init__()
        plan = cs.plan
        self.num_decisions = cs.num_decisions
        self.conv_stem, self.bn1 = chain_stem(plan, device)
        self.layers = nn.ModuleList(ChainLayerOps(plan, layer, device) for layer in plan.layers)
        self.conv_head, self.bn2, self.global_pool, self.classifier = chain_head(plan, chain_head_in(plan), device)
        self._pool_first = plan.family == "mobilenetv3"
        efficientnet_init_weights(self)
        # (ops, index into arch or -1): the forward loop does nothing but index; layers of an elastic
        # depth are in _gated: layer index -> (depth decision, whether the layer is there per choice)
        self._route = [(layer.ops, -1 if layer.decision is None else layer.decision) for layer in self.layers]
        self._gated = {i: layer.gate for i, layer in enumerate(plan.layers) if layer.gate is not None}
        # elastic width: the plan (to build templates), the layers whose widths are decisions, the head's
        # modules in running order and the one that reads the last layer's channels; SlicedOps are made
        # on first use, per (layer, choice, in width, out width), and hold no weights
        self._plan = plan
        self._elastic = {i: layer for i, layer in enumerate(plan.layers) if layer.elastic}
        self._head_order = (("global_pool", "conv_head", "bn2", "classifier") if self._pool_first
                            else ("conv_head", "bn2", "global_pool", "classifier"))
        self._head_reader = "classifier" if isinstance(self.conv_head, nn.Identity) else "conv_head"
        self._sliced: dict[tuple, SlicedOp] = {}
        self._set_space(cs)

    def forward(self, x: torch.Tensor, arch: torch.Tensor) -> torch.Tensor:
        a = self._forward_arch(arch)
        x = self.bn1(self.conv_stem(self._resized(x, a)))
        if self._elastic or self._gated:  # layers elastic depth may skip, or run at smaller widths
            for _, op in self._path(a):
                x = op(x)
        else:
            for ops, d in self._route:
                x = ops[a[d] if d >= 0 else 0](x)
        if self._elastic:
            for name in self._head_order:
                x = self._head_part(name, a)(x)
            return x
        if self._pool_first:
            return self.classifier(self.bn2(self.conv_head(self.global_pool(x))))
        x = self.bn2(self.conv_head(x))
        return self.classifier(self.global_pool(x))

    def _path(self, a: list[int]):
        """``(layer index, callable)`` of every layer on the path: the op, or its SlicedOp at the chosen widths."""
        for i, (ops, d) in enumerate(self._route):
            gate = self._gated.get(i)
            if gate is not None and not gate[1][a[gate[0]]]:
                continue
            k = a[d] if d >= 0 else 0
            layer = self._elastic.get(i)
            widths = None if layer is None else layer.channels(a)
            if widths is None or widths == (layer.in_ch, layer.out_ch):
                yield i, ops[k]
            else:
                yield i, self._sliced_op(("layer", i, k, *widths), ops[k],
                                         lambda: chain_op(self._plan, layer.at(a), layer.choices[k], device="meta"))

    def _head_part(self, name: str, a: list[int]):
        """Head module ``name``, sliced to the last layer's chosen width when it reads the chain's output."""
        m = getattr(self, name)
        cin = self._plan.layers[-1].channels(a)[1] if self._plan.layers else self._plan.stem_size
        if name != self._head_reader or cin == chain_head_in(self._plan):
            return m
        part = self._head_order.index(name)  # chain_head_sequence has the same order
        return self._sliced_op(("head", name, cin), m,
                               lambda: chain_head_sequence(self._plan, cin, device="meta")[part])

    def _sliced_op(self, key: tuple, master: nn.Module, template) -> SlicedOp:
        op = self._sliced.get(key)
        if op is None:
            # the template's initialisation (on the meta device) would draw from the global RNG, at moments that
            # depend on which widths ran before (a resumed run's cache is empty): its state is left as it was
            with torch.random.fork_rng(devices=[]):
                built = template()
            op = self._sliced[key] = SlicedOp(master, built)
        return op

    def slices(self, arch) -> bool:
        """Whether the path ``arch`` runs some module at smaller widths than the supernet holds."""
        a = self._check_arch(arch)
        return any(isinstance(op, SlicedOp) for _, op in self._path(a)) or any(
            isinstance(self._head_part(n, a), SlicedOp) for n in self._head_order)

    def path_modules(self, arch) -> list[nn.Module]:
        """The modules on the path; a module run at smaller widths is its template (on the meta device),
        so the parameters counted are the standalone network's."""
        a = self._check_arch(arch)
        unwrap = lambda m: m.template if isinstance(m, SlicedOp) else m  # noqa: E731
        mods = [self.conv_stem, self.bn1] + [unwrap(op) for _, op in self._path(a)]
        return mods + [unwrap(self._head_part(n, a)) for n in ("conv_head", "bn2", "classifier")]

    def path_network(self, arch) -> nn.Sequential:
        """The path ``arch`` as a network ``net(x)``: the supernet's own modules, and for a module run at
        smaller widths a copy holding its sliced weights (what weight inheritance reads), in its master's
        training mode. The supernet's modules keep their modes (a frozen BatchNorm stays in eval mode)."""
        a = self._check_arch(arch)
        real = lambda m: m.materialize() if isinstance(m, SlicedOp) else m  # noqa: E731
        mods = [self.conv_stem, self.bn1] + [real(op) for _, op in self._path(a)]
        mods += [real(self._head_part(n, a)) for n in self._head_order]
        net = nn.Sequential(*mods)
        net.training = self.training  # the container only: .train() would set every module's mode
        return net


class SuperCell(nn.Module):
    """One cell instance with every candidate (input, op) of every node."""

    def __init__(self, template, inst, device=None):
        super().__init__()
        c = inst.channels
        self.pre0, self.pre1 = cell_preprocess(inst, device)
        self.ops = nn.ModuleList(
            nn.ModuleList(
                nn.ModuleList(create_op(op, c, c, template.stride if cand < 2 else 1, device=device)
                              for op in node.ops)
                for cand in node.candidates)
            for node in template.nodes)
        self.output, self.output_nodes = template.output, template.output_nodes
        if self.output == "loose":
            self.out_convs = nn.ModuleList(out_conv(c, device) for _ in template.nodes)
            self.out_bn = nn.BatchNorm2d(c, device=device)
        self.relu = nn.ReLU(inplace=False)
        self._nodes = [(j, node, node.op_decisions) for j, node in enumerate(template.nodes)]

    def forward(self, s0, s1, a: list[int]):
        states = [self.pre0(s0), self.pre1(s1)]
        used = [False] * len(states) + [False] * len(self._nodes)
        for j, node, ops in self._nodes:
            node_ops = self.ops[j]
            h = None
            for ci, do in zip(node.slot_inputs(a), ops):
                src = node.candidates[ci]
                used[src] = True
                y = node_ops[ci][a[do]](states[src])
                h = y if h is None else h + y
            states.append(h)
        return cell_output(self, states, used)

    def path_modules(self, a: list[int]) -> list[nn.Module]:
        mods = [self.pre0, self.pre1]
        used = set()
        for j, node, ops in self._nodes:
            for ci, do in zip(node.slot_inputs(a), ops):
                mods.append(self.ops[j][ci][a[do]])
                used.add(node.candidates[ci])
        if self.output == "loose":
            mods.append(self.out_bn)
            mods += [self.out_convs[j] for j in range(len(self._nodes)) if 2 + j not in used]
        return mods


class CellSupernet(Supernet):
    def __init__(self, cs: SpacePlan, device=None):
        super().__init__()
        plan = cs.plan
        self.num_decisions = cs.num_decisions
        self.stem = cell_stem(plan, device)
        self.cells = nn.ModuleList(FixedBlock(inst, device) if inst.op is not None else
                                   SuperCell(plan.templates[inst.template], inst, device)
                                   for inst in plan.instances)
        self.conv_head, self.bn2, self.global_pool, self.classifier = cell_head(plan, device)
        self._set_space(cs)

    def forward(self, x: torch.Tensor, arch: torch.Tensor) -> torch.Tensor:
        a = self._forward_arch(arch)
        s0 = s1 = self.stem(self._resized(x, a))
        for cell in self.cells:
            out = cell(s0, s1, a)
            s0, s1 = (out, out) if isinstance(cell, FixedBlock) else (s1, out)
        x = self.bn2(self.conv_head(s1))
        return self.classifier(self.global_pool(x))

    def path_modules(self, arch) -> list[nn.Module]:
        a = self._check_arch(arch)
        mods = [self.stem, self.conv_head, self.bn2, self.classifier]
        for cell in self.cells:
            mods += cell.path_modules(a)
        return mods


def build_supernet(cs: SpacePlan, device=None) -> Supernet:
    """The supernet of a space's plan (chain or cell)."""
    return ChainSupernet(cs, device) if cs.kind == "chain" else CellSupernet(cs, device)
