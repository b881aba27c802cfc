"""Compile a cell network (``cell`` templates, a ``cells`` layout) into a :class:`CellPlan` and its
decisions. Every mistake is a :class:`SpaceError` at the construct that caused it."""

from __future__ import annotations

import itertools

from automl.compile.chain import head_features
from automl.compile.resolve import MAX_CH, Resolver, is_op_name
from automl.dsl import ir
from automl.nn.registry import get_op, list_ops
from automl.plan import CellInstance, CellNode, CellPlan, CellTemplatePlan, Decision

__all__ = ["compile_cells"]

MAX_CELLS = 256


def compile_cells(r: Resolver, net: ir.Network, in_chans: int, num_classes: int):
    """``(CellPlan, decisions)`` of a cell network."""
    templates: dict[str, ir.CellTemplate] = {}
    for t in r.space.cells:
        if t.name in templates:
            raise r.err(f"duplicate cell {t.name!r} (first at line {templates[t.name].pos.line})", t.pos)
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
    seq = _sequence(r, layout, templates)

    # templates in file order: their decisions come in that order
    decisions: list[Decision] = []
    dec_names: set[str] = set()
    plans = [_compile_template(r, t, decisions, dec_names) for t in r.space.cells]
    instances = _instances(r, layout, seq, plans, width, stem_width)
    num_features, head_bn = head_features(r, net, cells=True)
    plan = CellPlan(in_chans, stem_width, stem_kernel, stem_stride, tuple(plans), tuple(instances),
                    num_features, num_classes, head_bn)
    return plan, decisions


def _sequence(r: Resolver, layout: ir.CellsLayout, templates: dict[str, ir.CellTemplate]) -> list[str]:
    """The names of the layout's cells and fixed blocks, in order."""

    def count(item: ir.CellItem, lo: int) -> int:
        if item.name not in templates and not (is_op_name(item.name) and get_op(item.name).reduction):
            known = ", ".join(templates) if templates else "none (declare one with `cell NAME ... end`)"
            blocks = ", ".join(n for n in list_ops(kind="cell") if get_op(n).reduction)
            raise r.err(f"unknown cell {item.name!r}; the cells are: {known} (and the fixed reduction blocks "
                        f"{blocks})", item.pos)
        return r.whole(item.count, "cell count", lo, MAX_CELLS) if item.count is not None else 1

    seq: list[str] = []
    if layout.split is not None:
        if len(layout.items) != 1:
            raise r.err("`split by` follows a single `NAME x COUNT`, e.g. `cells normal x 6 split by reduction x 2`",
                        layout.split.pos)
        n, k = count(layout.items[0], 0), count(layout.split, 1)
        groups = k + 1
        sizes = [n // groups + (1 if g < n % groups else 0) for g in range(groups)]
        for g, size in enumerate(sizes):
            seq += [layout.items[0].name] * size
            if g < k:
                seq.append(layout.split.name)
    else:
        for item in layout.items:
            seq += [item.name] * count(item, 0)
    if not seq:
        raise r.err("the network has no cells", layout.pos)
    if len(seq) > MAX_CELLS:
        raise r.err(f"too many cells ({len(seq)}; at most {MAX_CELLS})", layout.pos)
    for t in templates.values():
        if t.name not in seq:
            raise r.err(f"cell {t.name!r} is declared but the network does not use it", t.pos)
    if not any(name in templates for name in seq):
        raise r.err("the network has no cells, only fixed blocks", layout.pos)
    return seq


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
                raise r.err(f"too many reduction blocks: the width would reach {c}", layout.pos)
            instances.append(CellInstance(-1, c_pp, c_p, c, reduce_prev, op=name))
            c_pp = c_p = c
            reduce_prev = False
            continue
        p = plans[index[name]]
        if p.stride == 2:
            c *= 2
            if c > MAX_CH:
                raise r.err(f"too many reduction cells: the width would reach {c}", layout.pos)
        out = c * p.multiplier
        instances.append(CellInstance(index[name], c_pp, c_p, c, reduce_prev, out, len(p.inputs) == 1))
        reduce_prev = p.stride == 2
        c_pp, c_p = c_p, out
    return instances


def _compile_template(r: Resolver, t: ir.CellTemplate, decisions: list[Decision], dec_names: set[str]):
    inputs = t.inputs or (ir.Name("c0", t.pos), ir.Name("c1", t.pos))
    if len(inputs) not in (1, 2):
        raise r.err(f"a cell has 1 or 2 inputs (the outputs of the previous one or two cells), got {len(inputs)}",
                    inputs[min(2, len(inputs) - 1)].pos)
    if len(inputs) == 2 and inputs[0].name == inputs[1].name:
        raise r.err(f"duplicate input name {inputs[1].name!r}", inputs[1].pos)
    stride = r.whole(t.stride, "cell stride", 1, 2) if t.stride is not None else 1
    if not t.nodes:
        raise r.err(f"cell {t.name} has no nodes; add e.g. `node n1 sums 2 of earlier through OPS`", t.pos)
    # states: index 0 and 1 are the two inputs; a one-input cell reads index 1 (index 0 is unused)
    states = [inputs[0].name, inputs[1].name] if len(inputs) == 2 else ["", inputs[0].name]
    nodes = []
    for node in t.nodes:
        if node.name in states:
            raise r.err(f"duplicate name {node.name!r} in cell {t.name}", node.pos)
        if node.inputs is None:
            cands = tuple(i for i, nm in enumerate(states) if nm)
        else:
            def unreadable(nm, node=node):
                later = any(n.name == nm.name for n in t.nodes)
                why = "a later node" if later else "not an input or an earlier node"
                return (f"node {node.name} cannot read {nm.name!r}: {why} "
                        f"(it can read {', '.join(x for x in states if x)})")
            cands = _state_indices(r, node.inputs, states, [x for x in states if x], unreadable)
        ops = r.expand(node.ops, "cell", f"node {node.name}")
        op_names = tuple(o[0] for o in ops)
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
                                f"({', '.join(states[c] for c in cands)})", node.count.pos)
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
                raise r.err(f"decision name {d.name!r} is generated twice; rename the cell or node", node.pos)
            dec_names.add(d.name)
        nodes.append(CellNode(node.name, cands, op_names, tuple(ins), tuple(outs), node.mode, combos))
        states.append(node.name)
    output, output_nodes = "loose", ()
    if t.output is not None:
        output, names, _ = t.output
        output_nodes = _state_indices(r, names, states, states[2:], lambda nm: (
            f"the output of cell {t.name} is made of its nodes ({', '.join(states[2:])}); {nm.name!r} is not one"))
        _check_read(r, t, nodes, output_nodes)
    return CellTemplatePlan(t.name, stride, tuple(n.name for n in inputs), tuple(nodes), output, output_nodes)


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
