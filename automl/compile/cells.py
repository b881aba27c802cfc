"""Compile a cell network (``cell`` templates, a ``cells`` layout) into a :class:`CellPlan` and its
decisions. Every mistake is a :class:`SpaceError` at the construct that caused it."""

from __future__ import annotations

import itertools
import math

from automl.compile.chain import head_features
from automl.compile.resolve import MAX_CH, Resolver, is_op_name
from automl.dsl import ir
from automl.errors import SpaceError
from automl.nn.measure import cell_op_module, count_params
from automl.nn.registry import get_op, list_ops
from automl.plan import CellInstance, CellNode, CellPlan, CellTemplatePlan, Decision

__all__ = ["compile_cells", "check_reductions", "estimate_reasons"]

MAX_CELLS = 256
MAX_INPUT_SETS = 4096  # choices of a `sums K distinct of` decision (DARTS: at most C(5, 2) = 10)
# nodes of one cell (DARTS: 4, ENAS: 5): the supernet holds an op per node, source and op, about N^2/2 x ops
MAX_NODES = 64


def compile_cells(r: Resolver, net: ir.Network, in_chans: int, num_classes: int):
    """``(CellPlan, decisions)`` of a cell network."""
    templates: dict[str, ir.CellTemplate] = {}
    for t in r.space.cells:
        if t.name in templates:
            raise r.err(f"duplicate cell {t.name!r} (first at line {templates[t.name].pos.line}); rename or remove "
                        f"one of them", t.pos)
        if is_op_name(t.name) and get_op(t.name).reduction:
            raise r.err(f"cell {t.name!r} has the name of a fixed reduction block, which a `cells` layout can "
                        f"also name; pick another name", t.pos)
        templates[t.name] = t
    if net.stages:
        st = net.stages[0]
        raise r.err("a network is either a chain of stages or a stack of cells, not both; "
                    f"remove {'layer' if st.single else 'stage'} {st.name} or `cells`", st.pos)
    if net.activation is not None:
        raise r.err("`activation` applies to chain networks; cells use ReLU", net.activation.pos)
    stem, stem_width, stem_kernel = r.stem(net, 48, chain=False)
    stem_stride = r.whole(stem["stride"].value, "stem stride", 1, 2) if "stride" in stem else 1

    layout = net.cells
    opts = r.options(layout.options, {"width": "", "stride": "a cell's stride is declared in its template",
                                      "repeat": "write NAME x COUNT", "kernel": "cells have no kernel"},
                     "cells")
    if "width" not in opts:
        raise r.err("`cells` needs the width of the first cell, e.g. `cells normal x 6 ... width 16`", layout.pos)
    width = r.whole(opts["width"].value, "cell width", 1, MAX_CH)
    seq, _ = _sequence(r, layout, templates)

    # templates in file order: their decisions come in that order
    decisions: list[Decision] = []
    dec_names: dict[str, tuple[str, str, ir.Pos]] = {}  # decision name -> the cell and node that generate it
    plans = [_compile_template(r, t, decisions, dec_names) for t in r.space.cells]
    _check_split(r, layout, plans)
    instances = _instances(r, layout, seq, plans, width, stem_width)
    num_features, head_bn = head_features(r, net, cells=True)
    plan = CellPlan(in_chans, stem_width, stem_kernel, stem_stride, tuple(plans), tuple(instances),
                    num_features, num_classes, head_bn)
    return plan, decisions


def estimate_reasons(plan: CellPlan, modules: dict | None = None) -> tuple[str, ...]:
    """Why the measured ``params`` and ``macs`` of a cell plan's cost table are an estimate of its built networks'
    (docs/space-language.md, "Cell spaces: an approximation"), in a few words each, each once; empty where the
    table is exact, as for NAS-Bench-201 (a fixed output, one input per slot, stride-1 cells). The meta-device ops
    it weighs are found in, or kept in, ``modules`` (those the costs were measured with: each built once)."""
    modules = {} if modules is None else modules
    reasons: list[str] = []

    def weighs(op: str, c: int, stride: int) -> int:
        return count_params(cell_op_module(op, c, c, stride, modules))

    for inst in plan.instances:
        if inst.op is not None:  # a fixed reduction block: no decisions
            continue
        t, c = plan.templates[inst.template], inst.channels
        if t.output == "loose" and any(k >= 2 for n in t.nodes for k in n.candidates):  # a node may read another
            reasons.append("an output conv counted for every node")
        if any(n.mode == "choose" and len(n.input_decisions) > 1 and any(weighs(op, c, 1) for op in n.ops)
               for n in t.nodes):
            reasons.append("an op two slots share counted twice")
        if t.stride != 1 and any(weighs(op, c, 1) != weighs(op, c, t.stride) for n in t.nodes
                                 if any(k < 2 for k in n.candidates) for op in n.ops):
            reasons.append(f"ops of stride {t.stride} counted at stride 1")
    return tuple(dict.fromkeys(reasons))


def _sequence(r: Resolver, layout: ir.CellsLayout,
              templates: dict[str, ir.CellTemplate]) -> tuple[list[str], list[ir.CellItem]]:
    """The names of the layout's cells and fixed blocks, in order, and the layout item each comes from.
    Every count is at least 1, as a chain stage's ``repeat``: a cell written ``x 0`` is an error."""

    def count(item: ir.CellItem) -> int:
        if item.name not in templates and not (is_op_name(item.name) and get_op(item.name).reduction):
            known = ", ".join(templates) if templates else "none (declare one with `cell NAME ... end`)"
            blocks = ", ".join(n for n in list_ops(kind="cell") if get_op(n).reduction)
            raise r.err(f"unknown cell {item.name!r}; the cells are: {known} (and the fixed reduction blocks "
                        f"{blocks})", item.pos)
        return r.whole(item.count, "cell count", 1, MAX_CELLS) if item.count is not None else 1

    seq: list[str] = []
    items: list[ir.CellItem] = []
    if layout.split is not None:
        if len(layout.items) != 1:
            raise r.err("`split by` follows a single `NAME x COUNT`, e.g. `cells normal x 6 split by reduction x 2`",
                        layout.split.pos)
        n, k = count(layout.items[0]), count(layout.split)
        groups = k + 1
        sizes = [n // groups + (1 if g < n % groups else 0) for g in range(groups)]
        for g, size in enumerate(sizes):
            seq += [layout.items[0].name] * size
            items += [layout.items[0]] * size
            if g < k:
                seq.append(layout.split.name)
                items.append(layout.split)
    else:
        for item in layout.items:
            n = count(item)
            seq += [item.name] * n
            items += [item] * n
    if not seq:
        raise r.err("the network has no cells", layout.pos)
    if len(seq) > MAX_CELLS:
        raise r.err(f"too many cells ({len(seq)}; at most {MAX_CELLS})", layout.pos)
    for t in templates.values():
        if t.name not in seq:
            raise r.err(f"cell {t.name!r} is declared but the network does not use it", t.pos)
    if not any(name in templates for name in seq):
        raise r.err("the network has no cells, only fixed blocks", layout.pos)
    return seq, items


def check_reductions(r: Resolver, net: ir.Network, plan: CellPlan, h: int, w: int,
                     resolution: int | None = None) -> None:
    """Every halving of the resolution (a stride-2 stem, a reduction cell, a fixed reduction block) has a
    feature map larger than 1 x 1 to halve: an ``h`` x ``w`` input (``resolution``: the smallest input size
    of ``resolution A, B, ...``) halves, rounding up, to 1 x 1, and a reduction after that would only double
    the width. The error is at the layout item (its count) that brings the reduction in."""
    size = (resolution, resolution) if resolution is not None else (h, w)
    source = (f"at the smallest resolution {resolution} (the `resolution` statement at line "
              f"{r.space.resolution_pos.line}), the input" if resolution is not None else
              f"the {h} x {w} input{r.origin(r.space.input_shape[1])}")
    halved, stem_halved, reductions = 0, False, 0
    if plan.stem_stride == 2:
        if size == (1, 1):
            stride = next(o.value for o in net.stem if o.key == "stride")
            raise r.err(f"the stem's stride 2 would halve a 1 x 1 feature map: {source} is 1 x 1"
                        f"{r.origin(stride)}; give the stem stride 1, or a larger input", stride.pos)
        size, halved, stem_halved = ((size[0] + 1) // 2, (size[1] + 1) // 2), 1, True
    _, items = _sequence(r, net.cells, {t.name: t for t in r.space.cells})
    for inst, item in zip(plan.instances, items):
        if inst.template >= 0 and plan.templates[inst.template].stride != 2:
            continue
        if size == (1, 1):
            what = f"cell {item.name!r}" if inst.template >= 0 else f"fixed block {item.name!r}"
            expr = item.count
            after = (f"is 1 x 1 after {halved} halving{'s' if halved != 1 else ''}"
                     f"{' (the stem stride 2 included)' if stem_halved else ''}" if halved else "is 1 x 1")
            most = f"at most {reductions} reduction{'s' if reductions != 1 else ''}" if reductions else "no reduction"
            raise r.err(f"reduction {reductions + 1} ({what}) would halve a 1 x 1 feature map: {source} {after}, "
                        f"so a reduction after that only doubles the width; use {most}"
                        f"{r.origin(expr) if expr is not None else ''}, or a larger input",
                        expr.pos if expr is not None else item.pos)
        size, halved, reductions = ((size[0] + 1) // 2, (size[1] + 1) // 2), halved + 1, reductions + 1


def _check_split(r: Resolver, layout: ir.CellsLayout, plans: list[CellTemplatePlan]) -> None:
    """``split by NAME``: NAME is a reduction (a cell with ``stride 2`` or a fixed reduction block)."""
    split = layout.split
    p = next((p for p in plans if split is not None and p.name == split.name), None)
    if p is not None and p.stride != 2:
        raise r.err(f"`split by {split.name}` puts a reduction between the groups of {layout.items[0].name} "
                    f"cells, but cell {split.name} has stride 1: it would not reduce; add `stride 2` to "
                    f"`cell {split.name}`, or write the cells in order without `split by` "
                    f"(`cells {layout.items[0].name} x 2, {split.name}, {layout.items[0].name} x 2 ...`)", split.pos)


def _instances(r: Resolver, layout: ir.CellsLayout, seq: list[str], plans: list[CellTemplatePlan], width: int,
               stem_width: int) -> list[CellInstance]:
    """One :class:`CellInstance` per item of ``seq``: widths double at each reduction."""
    index = {p.name: i for i, p in enumerate(plans)}
    instances = []
    c, c_pp, c_p, reduce_prev = width, stem_width, stem_width, False
    for name in seq:
        if name not in index:  # a fixed reduction block: halves the resolution, doubles the width
            c *= 2
            if c > MAX_CH:
                raise _too_wide(r, layout, "blocks", width, c, _widest(seq, index, plans))
            instances.append(CellInstance(-1, c_pp, c_p, c, reduce_prev, op=name))
            c_pp = c_p = c
            reduce_prev = False
            continue
        p = plans[index[name]]
        if p.stride == 2:
            c *= 2
            if c > MAX_CH:
                raise _too_wide(r, layout, "cells", width, c, _widest(seq, index, plans))
        out = c * p.multiplier
        instances.append(CellInstance(index[name], c_pp, c_p, c, reduce_prev, out, len(p.inputs) == 1))
        reduce_prev = p.stride == 2
        c_pp, c_p = c_p, out
    _check_output_widths(r, layout, instances, plans, width)
    return instances


def _widest(seq: list[str], index: dict[str, int], plans: list[CellTemplatePlan]) -> int:
    """The most channels any item of ``seq`` makes per channel of the first cell's width: 2^k after k
    reductions, times K for a cell whose ``output concat`` joins K nodes. ``MAX_CH //`` it is the largest
    width that fits."""
    factor, most = 1, 1
    for name in seq:
        p = plans[index[name]] if name in index else None
        if p is None or p.stride == 2:
            factor *= 2
        most = max(most, factor * max(p.multiplier, 1) if p is not None else factor)
    return most


def _too_wide(r: Resolver, layout: ir.CellsLayout, what: str, width: int, c: int, widest: int) -> SpaceError:
    """The error at the ``cells`` line for a reduction ``what`` (cells or blocks) that doubles the width
    ``width`` past ``MAX_CH`` to ``c``, naming the largest width that fits (``MAX_CH // widest``)."""
    expr = next(o.value for o in layout.options if o.key == "width")
    most = MAX_CH // widest
    fix = (f"lower the cells' `width` (line {expr.pos.line}) to at most {most}{r.origin(expr)}, or use fewer "
           f"reductions" if most else "no width is small enough: use fewer reductions")
    return r.err(f"too many reduction {what}: the width doubles at each, from {width} to {c}, more than "
                 f"{MAX_CH} channels; {fix}", layout.pos)


def _check_output_widths(r: Resolver, layout: ir.CellsLayout, instances: list[CellInstance],
                         plans: list[CellTemplatePlan], width: int) -> None:
    """No cell outputs more than ``MAX_CH`` channels: an ``output concat`` of K nodes is K times the cell's
    width, which doubles at each reduction. The error is at the first such cell's declaration, with the
    largest first-cell width that keeps every cell within the bound."""
    cells = [inst for inst in instances if inst.template >= 0]
    wide = next((inst for inst in cells if inst.out_channels > MAX_CH), None)
    if wide is None:
        return
    t, k = r.space.cells[wide.template], plans[wide.template].multiplier
    expr = next(o.value for o in layout.options if o.key == "width")
    most = MAX_CH // max(inst.out_channels // width for inst in cells)
    reductions = (wide.channels // width).bit_length() - 1
    after = (f" (the cells' width {width} doubled by {reductions} reduction{'s' if reductions != 1 else ''})"
             if reductions else "")
    fix = (f"lower the cells' `width` (line {expr.pos.line}) to at most {most}{r.origin(expr)}, concatenate "
           f"fewer nodes, or use fewer reductions" if most else
           "no width is small enough: concatenate fewer nodes, or use fewer reductions")
    raise r.err(f"cell {t.name}'s output is too wide: `output concat` of {k} nodes of {wide.channels} channels"
                f"{after} makes {wide.out_channels} channels, more than {MAX_CH}; {fix}", t.pos)


def _template_inputs(r: Resolver, t: ir.CellTemplate) -> tuple[ir.Name, ...]:
    """A template's input names (``c0, c1`` unless ``inputs`` names them), after the checks of its options
    and names: ``inputs`` and ``stride`` once, 1 or 2 inputs, no input or node called ``earlier``."""
    for kind, pos in t.duplicates:
        raise r.err(f"a second `{kind}` in cell {t.name}; a cell has one: remove one of them", pos)
    inputs = t.inputs or (ir.Name("c0", t.pos), ir.Name("c1", t.pos))
    if len(inputs) not in (1, 2):
        raise r.err(f"a cell has 1 or 2 inputs (the outputs of the previous one or two cells), got {len(inputs)}",
                    inputs[min(2, len(inputs) - 1)].pos)
    for nm in inputs + tuple(ir.Name(n.name, n.pos) for n in t.nodes):
        if nm.name == "earlier":
            raise r.err("'earlier' cannot name an input or a node: `sums K of earlier` means every earlier "
                        "output; pick another name", nm.pos)
        if is_op_name(nm.name):  # a metric entry `identity = ...` would also price the input choice `identity`
            what = "an input" if any(nm is i for i in inputs) else "a node"
            raise r.err(f"{what} of cell {t.name} is named {nm.name!r}, the name of an op: the nodes' input choices "
                        f"are the names of their sources, so a metric entry `{nm.name} = VALUE` and `space show` "
                        f"could not tell the source {nm.name!r} from the op; pick another name", nm.pos)
    if len(inputs) == 2 and inputs[0].name == inputs[1].name:
        raise r.err(f"duplicate input name {inputs[1].name!r}; give the two inputs two names (`inputs c0, c1`), or "
                    f"declare one (`inputs x`) for a cell that reads only the previous cell", inputs[1].pos)
    return inputs


def _compile_template(r: Resolver, t: ir.CellTemplate, decisions: list[Decision], dec_names: dict):
    inputs = _template_inputs(r, t)
    stride = r.whole(t.stride, "cell stride", 1, 2) if t.stride is not None else 1
    if not t.nodes:
        raise r.err(f"cell {t.name} has no nodes; add e.g. `node n1 sums 2 of earlier through OPS`", t.pos)
    if len(t.nodes) > MAX_NODES:
        raise r.err(f"cell {t.name} has {len(t.nodes)} nodes, more than {MAX_NODES}: its supernet would hold an op "
                    f"for every node, source and op, a number that grows as the square of the nodes; remove "
                    f"nodes from here on (node {MAX_NODES + 1})", t.nodes[MAX_NODES].pos)
    # states: index 0 and 1 are the two inputs; a one-input cell reads index 1 (index 0 is unused)
    states = [inputs[0].name, inputs[1].name] if len(inputs) == 2 else ["", inputs[0].name]
    nodes = []
    for node in t.nodes:
        if node.name in states:
            raise r.err(f"duplicate name {node.name!r} in cell {t.name} (an input or a node): rename it", node.pos)
        if node.inputs is None:
            cands = tuple(i for i, nm in enumerate(states) if nm)
        else:
            def unreadable(nm, node=node):
                if nm.name == node.name:
                    return (f"node {node.name} cannot read itself (it can read "
                            f"{', '.join(x for x in states if x)})")
                later = any(n.name == nm.name for n in t.nodes)
                why = "a later node" if later else "not an input or an earlier node"
                return (f"node {node.name} cannot read {nm.name!r}: {why} "
                        f"(it can read {', '.join(x for x in states if x)})")
            cands = _state_indices(r, node.inputs, states, [x for x in states if x], unreadable)
        ops = r.expand(node.ops, "cell", f"node {node.name}")
        op_names = tuple(o[0] for o in ops)
        if op_names == ("none",):
            raise r.err(f"node {node.name} of cell {t.name} offers only 'none', which outputs zeros: the node "
                        f"would always add nothing and its decisions change nothing; offer other ops too "
                        f"(e.g. `through [none, identity]`) or remove the node", node.ops.pos)
        first = len(decisions)
        ins, outs, combos = [], [], ()
        prefix = f"{t.name}_{node.name}"
        if node.mode == "edges":
            for c in cands:
                outs.append(len(decisions))
                decisions.append(Decision(f"{prefix}_{states[c]}", op_names))
        else:
            k = r.whole(node.count, "number of inputs of a node", 1, 8)
            if node.mode == "distinct":
                if k > len(cands):
                    raise r.err(f"node {node.name} cannot sum {k} distinct inputs of {len(cands)} "
                                f"({', '.join(states[c] for c in cands)}): sum fewer or list more", node.count.pos)
                if math.comb(len(cands), k) > MAX_INPUT_SETS:
                    raise r.err(f"node {node.name}: {k} distinct of {len(cands)} inputs make "
                                f"{math.comb(len(cands), k):,} choices in one decision; at most "
                                f"{MAX_INPUT_SETS:,}: sum fewer inputs, list fewer sources (`of a, b, ...`), or "
                                f"choose each input on its own (`sums {k} of ...`)", node.count.pos)
                combos = tuple(itertools.combinations(range(len(cands)), k))
                ins.append(len(decisions))
                decisions.append(Decision(f"{prefix}_inputs",
                                          tuple("+".join(states[cands[i]] for i in cb) for cb in combos)))
            else:
                for j in range(k):
                    ins.append(len(decisions))
                    decisions.append(Decision(f"{prefix}_input{j + 1}", tuple(states[c] for c in cands)))
            for j in range(k):
                outs.append(len(decisions))
                decisions.append(Decision(f"{prefix}_op{j + 1}", op_names))
        for d in decisions[first:]:
            if d.name in dec_names:
                cell, other, pos = dec_names[d.name]
                raise r.err(f"decision name {d.name!r} is generated twice: node {other} of cell {cell} (line "
                            f"{pos.line}) makes it too (a node's decisions are named CELL_NODE_input1, "
                            f"CELL_NODE_op1, CELL_NODE_inputs or CELL_NODE_SOURCE); rename this node or cell {t.name}",
                            node.pos)
            dec_names[d.name] = (t.name, node.name, node.pos)
        nodes.append(CellNode(node.name, cands, op_names, tuple(ins), tuple(outs), node.mode, combos))
        states.append(node.name)
    _check_inputs_read(r, t, inputs, nodes)
    output, output_nodes = "loose", ()
    if t.output is not None:
        output, names, _ = t.output
        output_nodes = _state_indices(r, names, states, states[2:], lambda nm: (
            f"the output of cell {t.name} is made of its nodes ({', '.join(states[2:])}); {nm.name!r} is not one"))
        _check_read(r, t, nodes, output_nodes)
    return CellTemplatePlan(t.name, stride, tuple(n.name for n in inputs), tuple(nodes), output, output_nodes)


def _check_inputs_read(r: Resolver, t: ir.CellTemplate, inputs: tuple[ir.Name, ...], nodes: list[CellNode]) -> None:
    """Each input of a two-input cell is a source of some node: an input no node reads would keep its
    preprocessing (weights, costs) in every network for nothing."""
    if len(inputs) != 2:
        return
    read = {c for node in nodes for c in node.candidates}
    for i, nm in enumerate(inputs):
        if i not in read:
            which = "the output of the cell two back" if i == 0 else "the previous cell's output"
            raise r.err(f"no node of cell {t.name} reads its input {nm.name!r} ({which}): its preprocessing "
                        f"would be weights that change nothing; add it to a node's sources (`sums K of "
                        f"{nm.name}, ...`), or, for a cell that reads only the previous cell, declare one "
                        f"input: `cell {t.name} inputs x`", nm.pos)


def _check_read(r: Resolver, t: ir.CellTemplate, nodes: list[CellNode], output_nodes: tuple[int, ...]) -> None:
    """With an ``output`` statement, every node must reach it (directly or through nodes that may read
    it): an unread node would keep decisions, modules and costs that change nothing."""
    read = set(output_nodes)
    for i in range(len(nodes) - 1, -1, -1):  # a node reads only earlier states: one backward pass
        if i + 2 in read:
            read.update(nodes[i].candidates)
    for i, node in enumerate(nodes):
        if i + 2 not in read:
            names = [nodes[j - 2].name for j in output_nodes]
            now = f"output {names[0]}" if t.output[0] == "node" else f"output concat {', '.join(names)}"
            raise r.err(f"node {node.name} of cell {t.name} is never read: `{now}` does not use it, directly "
                        f"or through other nodes; read it from a later node, add it to the output "
                        f"(`output concat {', '.join(names + [node.name])}`), or remove it", t.nodes[i].pos)


def _state_indices(r: Resolver, names, states: list[str], allowed: list[str], why) -> tuple[int, ...]:
    """Indices into ``states`` of ``names``, each in ``allowed`` (else ``why(name)``) and given once."""
    idx: list[int] = []
    for nm in names:
        if nm.name not in allowed:
            raise r.err(why(nm), nm.pos)
        if states.index(nm.name) in idx:
            raise r.err(f"{nm.name!r} is listed twice", nm.pos)
        idx.append(states.index(nm.name))
    return tuple(idx)
