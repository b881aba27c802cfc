"""Compile the IR of a ``.space`` file into a :class:`CompiledSpace`: decisions, a plan of the network
(layer shapes, cell instances), and the cost table.

Every semantic mistake (unknown op or name, duplicate name, ``skip`` where the layer changes shape,
a bad number, ...) is a :class:`SpaceError` at the position of the construct that caused it
(:mod:`automl.compile.resolve`, :mod:`automl.compile.chain`, :mod:`automl.compile.cells`).
Costs are measured by :mod:`automl.nn.measure`, building each distinct ``(op, in, out, stride)`` once on
the meta device (no memory, no init), so compiling the ImageNet-size ProxylessNAS space takes well under a
second. The plan is plain data (:mod:`automl.plan`); :mod:`automl.nn` builds the networks.
"""

from __future__ import annotations

import difflib
import math
import os
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from automl import nn as models
from automl.compile.cells import check_reductions, compile_cells, estimate_reasons
from automl.compile.chain import MAX_WIDTH_COMBOS, compile_chain
from automl.compile.contexts import context_costs
from automl.compile.costs import BUILTIN_METRICS, CostTable
from automl.compile.resolve import Resolver, fmt_number
from automl.dsl import ir, load_space
from automl.errors import SpaceError
from automl.nn.measure import count_params, measure_macs, measure_params
from automl.nn.ops import ACTIVATIONS
from automl.nn.parts import FixedBlock, cell_head, cell_stem
from automl.nn.supernet import SuperCell
from automl.plan import (CellInstance, CellNode, CellPlan, CellTemplatePlan, ChainLayer, ChainPlan, Decision,
                         SpacePlan)
from automl.train.threads import gib, memory_available

__all__ = ["Decision", "ChainLayer", "ChainPlan", "CellNode", "CellTemplatePlan", "CellInstance", "CellPlan",
           "CompiledSpace", "compile_space", "load_compiled", "ACTIVATIONS"]


MAX_SIZE = 1 << 14  # input height / width
# the costs compiling measures without elastic widths or resolutions: every choice of every layer (or cell node);
# real spaces measure at most a few thousand
MAX_COSTS = 1 << 20
# the entries of the cost tables of a space with elastic widths or resolutions, one table per combination (each
# (D, Kmax), per metric, float64 tensors: 80 MiB per metric at the limit): real spaces hold at most a few million
# (ofa_mbv3: 35,712; with OFA's 25 resolutions and an elastic final conv, 1.3 million, compiled in seconds)
MAX_TABLE_ENTRIES = 1 << 24


@dataclass
class CompiledSpace(SpacePlan):
    """A search space ready to search: the plan (:class:`automl.plan.SpacePlan`: decisions, the network
    plan and the cost table) with the file it came from and the ``--set`` values it was compiled with.

    See docs/internals.md for the contract. The model methods are shorthands for :mod:`automl.nn`.
    """

    filename: str = "<space>"
    space: ir.Space | None = field(default=None, repr=False)
    overrides: dict = field(default_factory=dict)  # the --set values this space was compiled with

    def build_supernet(self) -> models.Supernet:
        """The weight-sharing supernet (:func:`automl.nn.build_supernet`), after :meth:`check_supernet_fits`
        (skipped when it is built on the meta device, ``with torch.device("meta")``, which allocates nothing)."""
        if torch.get_default_device().type != "meta":
            self.check_supernet_fits()
        return models.build_supernet(self)

    def supernet_params(self) -> int:
        """The number of parameters of :meth:`build_supernet`'s network (every op of every decision, at the
        largest widths), counted on the meta device without memory; counted once per space."""
        if "_supernet_params" not in self.__dict__:
            self.__dict__["_supernet_params"] = _count_supernet(self)
        return self.__dict__["_supernet_params"]

    def check_supernet_fits(self, members: int = 1) -> None:
        """Refuse (:class:`SpaceError`, naming the space file) ``members`` supernets whose float32 parameters
        alone are more than the memory available now (:func:`_available_memory`), before anything is
        allocated: building them would end in an out-of-memory kill. No check where /proc/meminfo has no
        ``MemAvailable`` (not Linux)."""
        available = _available_memory()
        if available is None:
            return
        if self.kind == "chain" and 4 * members * _table_params(self) <= available:  # no build needed
            return
        n = self.supernet_params() * members
        if 4 * n <= available:
            return
        what = f"{members} supernets of space {self.name} would hold" if members > 1 else \
            f"the supernet of space {self.name} would hold"
        knobs = (f"; `param` values such as {', '.join(list(self.params)[:4])} change with --set or a recipe's "
                 f"space_args" if self.params else "")
        raise SpaceError(f"{what} {n:,} parameters, {gib(4 * n)} GiB as float32, more than the "
                         f"{gib(available)} GiB of memory available (MemAvailable in /proc/meminfo, or what a cgroup "
                         f"memory limit leaves: a Slurm job's --mem, docker --memory); make the space "
                         f"smaller: narrower widths, fewer layers, cells or choices (`automl space show` gives each "
                         f"choice's parameters){knobs}", self.filename)

    def build_standalone(self, arch, se: float = 0.0) -> nn.Module:
        """Only the chosen ops: a timm EfficientNet for chains, a :class:`~automl.nn.CellNet` for cells."""
        return models.build_standalone(self, arch, se=se)

    def arch_def(self, arch, se: float = 0.0) -> list[list[str]] | None:
        """timm arch_def (stages of block strings, ``skip`` layers removed) for chains; None for cells."""
        return models.arch_def(self, arch, se=se)


def _count_supernet(cs: CompiledSpace) -> int:
    """The parameters of ``cs``'s supernet, built on the meta device (a cell network's distinct cells once
    each: a large cell space's supernet holds millions of modules). The random state is left as it was."""
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch cannot initialise empty tensors on meta
        if cs.kind == "chain":
            return count_params(models.build_supernet(cs, device="meta"))
        plan = cs.plan
        n = count_params(cell_stem(plan, "meta")) + sum(count_params(m) for m in cell_head(plan, "meta"))
        cells: dict = {}
        for inst in plan.instances:
            if inst not in cells:
                cells[inst] = count_params(FixedBlock(inst, "meta") if inst.op is not None else
                                           SuperCell(plan.templates[inst.template], inst, "meta"))
            n += cells[inst]
        return n


def _table_params(cs: CompiledSpace) -> float:
    """A chain supernet's parameters from the cost table: every choice of every decision (at the widest
    widths), plus the fixed parts; as many as the supernet holds, or more where elastic widths share weights.
    (A cell supernet holds an op on every edge a node may choose, which the table does not price.)"""
    t = cs.cost_table
    ctx = t.context("params")
    if ctx is None:
        return t.fixed["params"] + float(t.costs("params")[t.mask].sum())
    tables, fixed = ctx
    return float((fixed + (tables * t.mask).sum((1, 2))).max())


def _available_memory() -> int | None:
    """The memory a new allocation may take, in bytes (:func:`automl.train.threads.memory_available`: MemAvailable,
    or less under a cgroup memory limit); None where /proc/meminfo does not say (not Linux)."""
    return memory_available()


def _check_repeats(r: Resolver, metric: ir.Metric) -> None:
    """Each choice, choice in a decision, ``default`` and ``fixed`` has one entry in a metric block."""
    for pos in metric.fixed_again:
        raise r.err(f"duplicate 'fixed' in metric {metric.name} (first at line {metric.fixed_pos.line}); "
                    f"remove one of them", pos)
    first: dict[tuple[str | None, str | None], ir.Pos] = {}
    for e in metric.entries:
        key = (e.choice.name if e.choice else None, e.decision.name if e.decision else None)
        if key in first:
            what = "'default'" if e.choice is None else f"cost for {e.choice.name!r}"
            what += f" in {e.decision.name}" if e.decision else ""
            raise r.err(f"duplicate {what} in metric {metric.name} (first at line {first[key].line}); remove "
                        f"one of them", e.pos)
        first[key] = e.pos


def _check_cost(r: Resolver, metric: ir.Metric, value: float, pos: ir.Pos | None, what: str) -> None:
    """A cost written in a metric block is a finite number >= 0 (a search budgets and normalises costs as
    amounts, as a profiled latency table's)."""
    if not math.isfinite(value):
        raise r.err("cost must be a finite number", pos)
    if value < 0:
        raise r.err(f"metric {metric.name}: {what} = {value:g} is negative; a cost is a number >= 0 (for a "
                    f"quantity to maximise, write a cost that shrinks as it grows, e.g. its deficit from "
                    f"the best value)", pos)


def _check_total(r: Resolver, metric: ir.Metric, rows: list[list[float]]) -> None:
    """Every architecture's total (``fixed`` + a cost per decision, costs >= 0) is a finite number: the largest
    one, summed as :meth:`CostTable.total` sums, is (else totals, budgets and ``space cost``'s JSON hold inf)."""
    largest = metric.fixed + float(sum(max(row) for row in rows))
    if not math.isfinite(largest):
        raise r.err(f"metric {metric.name}: the total of an architecture (`fixed` plus a cost per decision) can "
                    f"be larger than the largest number (about 1.8e308); write the costs in a larger unit",
                    metric.pos)


def _metric_costs(r: Resolver, metric: ir.Metric, decisions: list[Decision]) -> list[list[float]]:
    _check_repeats(r, metric)
    by_name = {d.name: i for i, d in enumerate(decisions)}
    default = None
    general: dict[str, float] = {}
    specific: dict[tuple[int, str], float] = {}
    for e in metric.entries:
        what = "default" if e.choice is None else e.choice.name + (f" in {e.decision.name}" if e.decision else "")
        _check_cost(r, metric, e.value, e.pos, what)
        if e.choice is None:
            default = e.value
            continue
        if e.decision is not None:
            if e.decision.name not in by_name:
                close = difflib.get_close_matches(e.decision.name, by_name, n=1)
                names = ", ".join(list(by_name)[:8]) + (", ..." if len(by_name) > 8 else "")
                raise r.err(f"unknown decision {e.decision.name!r}" + (f"; did you mean {close[0]!r}?" if close else
                                                                       f"; the decisions are: {names}"),
                            e.decision.pos)
            d = by_name[e.decision.name]
            if e.choice.name not in decisions[d].choices:
                raise r.err(f"decision {e.decision.name} has no choice {e.choice.name!r} "
                            f"(its choices: {', '.join(decisions[d].choices)})", e.choice.pos)
            specific[(d, e.choice.name)] = e.value
        else:
            if not any(e.choice.name in d.choices for d in decisions):
                raise r.err(f"no decision offers {e.choice.name!r}{_choice_hint(r, e.choice.name, decisions)}",
                            e.choice.pos)
            general[e.choice.name] = e.value
    rows = []
    for d, dec in enumerate(decisions):
        row = []
        for c in dec.choices:
            v = specific.get((d, c), general.get(c, default))
            if v is None:
                raise r.err(f"metric {metric.name} gives no cost for {c!r} in {dec.name}; add `{c} = VALUE` "
                            f"or `default = VALUE`", metric.pos)
            row.append(v)
        rows.append(row)
    return rows


def _choice_hint(r: Resolver, name: str, decisions: list[Decision]) -> str:
    """How to fix a metric entry whose choice no decision offers: a close name, or what the name is (a
    decision, a choice set) and how a metric block gives costs for it."""
    by_name = {d.name: d for d in decisions}
    if name in by_name:
        return (f"; {name!r} is a decision: an entry names one of its choices, "
                f"`{by_name[name].choices[0]} in {name} = VALUE`")
    if name in r.sets:
        ops = r.expand(ir.ChoiceRef(name, r.sets[name].pos), None, f"choice set {name}")
        return (f"; {name!r} is a choice set: give each of its ops a cost (`{ops[0][0]} = VALUE`) or write "
                f"`default = VALUE`")
    pool = ["default", "fixed"] + sorted({c for d in decisions for c in d.choices})
    close = difflib.get_close_matches(name, pool, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _resolutions(r: Resolver, space: ir.Space, h: int, w: int) -> tuple[int, ...]:
    """The input sizes of ``resolution A, B, ...`` (none without the statement)."""
    if space.resolutions is None:
        return ()
    if h != w:
        raise r.err(f"elastic resolution needs a square input (`input C x S x S`); the input is {h} x {w}",
                    space.resolution_pos)
    out: list[int] = []
    for e in space.resolutions:
        value = r.eval(e)
        if value > h and float(value).is_integer():
            v = fmt_number(int(value))
            fix = f"make the input {v} x {v} or remove {v}" if value <= MAX_SIZE else f"remove {v}"
            raise r.err(f"resolution {v} is larger than the input size {h}{r.origin(e)}: the data comes at the "
                        f"input size and the smaller resolutions are resized from it; {fix}", e.pos)
        v = r.whole(e, "a resolution", 1, h)
        if v in out:
            raise r.err(f"resolution {v} is listed twice{r.origin(e)}", e.pos)
        out.append(v)
    if h not in out:
        raise r.err(f"the resolutions must include the input size {h} (the data's size; smaller ones are "
                    f"resized from it): add {h}", space.resolution_pos)
    return tuple(out)


def _measured_costs(kind: str, plan, decisions, input_shape, resolutions=()):
    """``(costs, fixed, contexts, estimate)`` of the built-in metrics: per-choice tables measured on meta-device
    modules; with elastic widths or resolution one table per combination of their choices (``contexts``
    for the CostTable: the width decisions, then the resolution decision, the last;
    :func:`automl.compile.contexts.context_costs`); ``estimate`` for the CostTable: why a cell space's tables only
    approximate its built networks' (:func:`automl.compile.cells.estimate_reasons`), empty where they are exact."""
    widths = plan.width_decisions if kind == "chain" else ()
    modules: dict = {}  # the meta-device ops, each built once for both metrics and the estimate's reasons
    if not widths and not resolutions:
        costs, fixed = measure_params(kind, plan, decisions, None, modules)
        macs, macs_fixed = measure_macs(kind, plan, decisions, input_shape, None, modules)
        out = {"params": costs, "macs": macs}, {"params": fixed, "macs": macs_fixed}, None
    else:
        context, per = context_costs(kind, plan, decisions, input_shape, resolutions, modules)
        zeros = [[0.0] * len(d.choices) for d in decisions]  # replaced by the summary of the tables
        out = {m: zeros for m in per}, {m: 0.0 for m in per}, (context, per)
    why = ", ".join(estimate_reasons(plan, modules)) if kind == "cell" else ""  # after the costs: their ops
    return (*out, {m: why for m in BUILTIN_METRICS} if why else {})


def compile_space(space: ir.Space) -> CompiledSpace:
    """IR -> :class:`CompiledSpace` (decisions, plan, cost table). Raises :class:`SpaceError`."""
    try:
        return _compile(space)
    except RecursionError:
        raise space.error("expression nested too deeply", ir.Pos(1, 1)) from None


def _compile(space: ir.Space) -> CompiledSpace:
    for kind, pos in space.duplicates:
        raise space.error(f"a second {kind!r} statement; a space has one: remove one of them", pos)
    net = space.network
    if net is None:
        raise space.error("the space has no network; add `network ... end` (see docs/space-language.md)",
                          _last_pos(space))
    for kind, pos in net.duplicates:
        raise space.error(f"a second {kind!r} statement in the network; a network has one" + (
            ": write the whole layout in one (`cells normal x 4, reduction, normal x 4 width 16`)"
            if kind == "cells" else ": remove one of them"), pos)
    _check_order(space, net)
    r = Resolver(space)
    if space.input_shape is None:
        raise space.error("the space has no input shape; add e.g. `input 3 x 32 x 32`", net.pos)
    c = r.whole(space.input_shape[0], "input channels", 1, 4096)
    h = r.whole(space.input_shape[1], "input height", 1, MAX_SIZE)
    w = r.whole(space.input_shape[2], "input width", 1, MAX_SIZE)
    if space.classes is None:
        raise space.error("the space has no number of classes; add e.g. `classes 10`", net.pos)
    least = r.eval(space.classes)
    if isinstance(least, (int, float)) and least < 2:  # a softmax over one output: its loss is 0 whatever it does
        raise r.err(f"classes must be at least 2 (a classifier of one class learns nothing), got "
                    f"{fmt_number(least)}{r.origin(space.classes)}", space.classes.pos)
    num_classes = r.whole(space.classes, "classes", 2, 1 << 20)
    if net.cells is not None:
        kind = "cell"
        plan, decisions = compile_cells(r, net, c, num_classes)
    elif net.stages:
        kind = "chain"
        for t in space.cells:
            raise r.err(f"cell {t.name!r} is declared but the network is a chain of stages (no `cells`)", t.pos)
        plan, decisions = compile_chain(r, net, c, num_classes)
    else:
        raise space.error("the network has neither stages nor cells; add `stage NAME width W choose OPS` "
                          "or `cells NAME x N width W`", net.pos)
    if not decisions:
        raise space.error("the space has no decisions: nothing to search; use `choose` in a stage", net.pos)

    resolutions = _resolutions(r, space, h, w)
    widths = plan.width_decisions if kind == "chain" else ()
    combos = math.prod(len(decisions[d].choices) for d in widths) * max(len(resolutions), 1)
    if resolutions and combos > MAX_WIDTH_COMBOS:  # each combination is a cost table of its own
        raise r.err(f"{len(resolutions)} resolutions times the elastic widths' {combos // len(resolutions):,} "
                    f"combinations make {combos:,} cost tables, one per combination; at most "
                    f"{MAX_WIDTH_COMBOS:,}: offer fewer resolutions or widths", space.resolution_pos)
    if kind == "cell":
        check_reductions(r, net, plan, h, w, min(resolutions) if resolutions else None)
    res_dec = None
    if resolutions:
        _check_resolution_name(r, space, decisions)
        res_dec = len(decisions)
        decisions.append(Decision("resolution", tuple(f"r{v}" for v in resolutions)))
    _check_something_to_search(space, decisions)
    _check_costs_to_measure(r, space, kind, plan, decisions, combos)
    all_costs, all_fixed, contexts, estimate = _measured_costs(kind, plan, decisions, (c, h, w), resolutions)
    seen: dict[str, ir.Pos] = {}
    for m in space.metrics:
        if m.name in BUILTIN_METRICS:
            raise r.err(f"{m.name!r} is measured by the compiler; name your metric differently", m.pos)
        if m.name in seen:
            raise r.err(f"duplicate metric {m.name!r} (first at line {seen[m.name].line}); merge the two blocks "
                        f"or rename one", m.pos)
        seen[m.name] = m.pos
        all_costs[m.name] = _metric_costs(r, m, decisions)
        _check_cost(r, m, m.fixed, m.fixed_pos, "fixed")
        _check_total(r, m, all_costs[m.name])
        all_fixed[m.name] = m.fixed
    gates = {layer.decision: layer.gate for layer in (plan.layers if kind == "chain" else ())
             if layer.gate is not None and layer.decision is not None}
    table = CostTable([d.choices for d in decisions], all_costs, all_fixed, gates=gates, contexts=contexts,
                      estimate=estimate)
    name = space.name or os.path.splitext(os.path.basename(space.filename))[0]
    return CompiledSpace(name=name, kind=kind, input_shape=(c, h, w), num_classes=num_classes,
                         params=space.param_values, decisions=tuple(decisions), cost_table=table, plan=plan,
                         resolutions=resolutions, resolution_dec=res_dec,
                         filename=space.filename, space=space, overrides=dict(space.overrides))


BUILD_ORDER = ("the network is built in this order: the stem, then its stages and layers (or its cells) in the "
               "order written, then the head")


def _check_order(space: ir.Space, net: ir.Network) -> None:
    """The network's lines in the order it is built (:data:`BUILD_ORDER`): a stage, layer or ``cells`` layout
    after the head or before the stem, or a head before the stem, is an error at that line."""
    stem = next((pos for kind, _, pos in net.order if kind == "stem"), None)
    stem_seen, head = False, None
    for kind, what, pos in net.order:
        if kind == "stem":
            stem_seen = True
        elif stem is not None and not stem_seen:
            move = "the `stem` line above this one" if kind == "body" else "the `head` line after the stages"
            raise space.error(f"{what} comes before the `stem` (line {stem.line}); {BUILD_ORDER}: move {move}", pos)
        elif kind == "head":
            head = head or pos
        elif head is not None:
            raise space.error(f"{what} comes after the `head` (line {head.line}); {BUILD_ORDER}: move it above "
                              f"the `head` line", pos)


def _check_resolution_name(r: Resolver, space: ir.Space, decisions: list[Decision]) -> None:
    """``resolution A, B`` makes a decision named ``resolution``; so does ``layer resolution``: an error at
    the later of the two."""
    if not any(d.name == "resolution" for d in decisions):
        return
    layer = next((st.pos for st in space.network.stages if st.single and st.name == "resolution"),
                 space.network.pos)
    stmt = space.resolution_pos
    first, later = sorted((layer, stmt), key=lambda p: (p.line, p.column))
    what = "layer resolution" if first == layer else "the `resolution` statement"
    raise r.err(f"duplicate decision name 'resolution' (first at line {first.line}: {what}); the `resolution` "
                f"statement names its decision 'resolution': rename the layer", later)


def _check_costs_to_measure(r: Resolver, space: ir.Space, kind: str, plan, decisions: list[Decision],
                            combos: int) -> None:
    """At most :data:`MAX_COSTS` costs to measure (the choices of every layer, or cell node) in a space of one
    combination, and with the ``combos`` combinations of elastic widths and resolutions at most
    :data:`MAX_TABLE_ENTRIES` entries in their cost tables (a choice of every layer, or the table's entries, per
    combination; the ops themselves are measured once per shape): an error at the `resolution` statement, else at
    the last stage of elastic width, else at `network`."""
    if kind == "chain":
        per = sum(len(layer.choices) for layer in plan.layers)
    else:
        per = sum(len(node.ops) * len(node.op_decisions) for inst in plan.instances if inst.op is None
                  for node in plan.templates[inst.template].nodes)
    entries = len(decisions) * max(len(d.choices) for d in decisions) if combos > 1 else 0
    if combos * max(per, entries) <= (MAX_COSTS if combos == 1 else MAX_TABLE_ENTRIES):
        return
    net = space.network
    elastic = [st.pos for st in net.stages if any(o.key == "width" and isinstance(o.value, tuple) for o in st.options)]
    pos = space.resolution_pos or (elastic[-1] if elastic else net.pos)
    if combos == 1:
        where = "layer" if kind == "chain" else "cell node"
        raise r.err(f"the network has {per:,} choices in all (over every {where}), a cost each to measure "
                    f"when the space compiles, more than {MAX_COSTS:,}: offer fewer choices or layers", pos)
    raise r.err(f"{combos:,} combinations of elastic widths and resolutions, a cost table each, times "
                f"{max(per, entries):,} entries per table (a choice of every layer, or the table's entries) make "
                f"{combos * max(per, entries):,} cost table entries, more than {MAX_TABLE_ENTRIES:,}: offer fewer "
                f"widths or resolutions, or fewer choices", pos)


def _check_something_to_search(space: ir.Space, decisions: list[Decision]) -> None:
    """A space whose every decision has one choice has one architecture: nothing to search."""
    if any(len(d.choices) > 1 for d in decisions):
        return
    names = ", ".join(f"{d.name} ({d.choices[0]})" for d in decisions[:6]) + (", ..." if len(decisions) > 6 else "")
    how = (f"e.g. `choose [{decisions[0].choices[0]}, ...]`" if space.network.cells is None else
           f"e.g. `through [{decisions[0].choices[0]}, ...]`, or more inputs")
    raise space.error(f"the space has one architecture: every decision has one choice ({names}); nothing to "
                      f"search: offer two or more choices in at least one of them ({how})", space.network.pos)


def _last_pos(space: ir.Space) -> ir.Pos:
    lines = space.source.split("\n")
    for i in range(len(lines) - 1, -1, -1):
        code = lines[i].split("#", 1)[0].rstrip()
        if code:
            return ir.Pos(i + 1, len(code) + 1)
    return ir.Pos(1, 1)


def load_compiled(path, overrides: dict[str, str] | None = None) -> CompiledSpace:
    """``compile_space(load_space(path, overrides))``."""
    return compile_space(load_space(path, overrides))
