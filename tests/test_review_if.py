"""Review IF: the cost tables of a space with elastic widths or resolutions (automl.compile.contexts) are measured
once per combination of the widths each layer reads, not once per combination of every width, and are exactly
what measuring the whole network at every combination gives: each table, fixed cost, summary and extreme, for
every published space and for width-repeated spaces written here. A slow reference (a plain loop over every
combination, the whole plan measured at each) is computed in the test."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
import torch

import automl.compile.compiler as compiler
import automl.compile.contexts as contexts
from automl.compile import CostTable, load_compiled
from automl.compile.compiler import compile_space
from automl.dsl import parse_space
from automl.nn.measure import count_params, measure_macs, measure_params

ROOT = Path(__file__).resolve().parents[1]
SPACES = sorted((ROOT / "spaces").glob("*.space"))

# every kind of layer an elastic width reaches: a fixed elastic-width stage, elastic depth over searched and
# fixed layers, a fixed-width stage between elastic ones, skip, SE, a stage activation, three resolutions
MIXED = """space mixed
input 3 x 32 x 32
resolution 24, 32, 16
classes 10
choices mb = ir_k3_e3, ir_k5_e6, ds_k3
network
  stem width 16
  stage first width 16 fixed ds_k3
  stage s1 width 16, 24 stride 2 depth 1, 2 choose [ir_k3_e3, ir_k5_e6] then mb
  stage s2 width 24, 32, 40 stride 2 repeat 2 se 0.25 choose [ir_k3_e3, ir_k5_e6] then [ir_k3_e3, skip]
  stage mid width 40, 48 depth 1, 2, 3 fixed ir_k3_e3
  stage s3 width 48 repeat 2 choose mb then [mb, skip]
  stage s4 width 56, 64 stride 2 activation relu choose mb
  stage fin width 64, 96 fixed cn_k1
  head width 128
end
"""


def repeated(stages: int, repeat: int, family: str = "") -> str:
    """A chain of ``stages`` stages of two widths each, ``repeat`` searched layers a stage."""
    lines = ["space repeated", "input 3 x 16 x 16", "classes 10", "choices mb = ir_k3_e3, ir_k5_e6, ds_k3, ir_k3_e1",
             "network", f"  family {family}" if family else "", "  stem width 16"]
    for i in range(stages):
        w = 16 + 8 * i
        lines.append(f"  stage s{i + 1} width {w}, {w + 8}{' stride 2' if i in (1, 3) else ''} repeat {repeat} "
                     f"{'se 0.25 ' if i == 2 else ''}choose mb")
    return "\n".join(lines + ["  head width 64", "end", ""])


def reference(cs) -> dict:
    """``{metric: (tables, fixed)}`` as lists: every combination of the context decisions (row-major, the
    resolution fastest), the whole plan at its widths measured with :mod:`automl.nn.measure`."""
    plan, decisions = cs.plan, list(cs.decisions)
    widths = plan.width_decisions if cs.kind == "chain" else ()
    sizes = [cs.input_shape[1:]] if not cs.resolutions else [(v, v) for v in cs.resolutions]
    caches = {"params": {}, "macs": {}, "modules": {}}
    out = {"params": ([], []), "macs": ([], [])}
    for combo in itertools.product(*(range(len(decisions[d].choices)) for d in widths)):
        at = plan.at(dict(zip(widths, combo))) if widths else plan
        params = measure_params(cs.kind, at, decisions, caches["params"], caches["modules"])
        for size in sizes:
            macs = measure_macs(cs.kind, at, decisions, (cs.input_shape[0], *size), caches["macs"], caches["modules"])
            for metric, (costs, fixed) in (("params", params), ("macs", macs)):
                out[metric][0].append(costs)
                out[metric][1].append(fixed)
    return out


def assert_tables_exact(cs) -> None:
    """``cs``'s params and macs tables are the reference's, bit for bit, and so is everything the table derives
    from them (the summary costs and fixed cost, the least and largest totals and their architectures)."""
    table = cs.cost_table
    ref = reference(cs)
    if not table.context_decisions:
        for metric, (tables, fixeds) in ref.items():
            expect = CostTable(table.choice_names, {metric: tables[0]}, {metric: fixeds[0]})
            assert torch.equal(table.costs(metric), expect.costs(metric)), metric
            assert table.fixed[metric] == expect.fixed[metric], metric
        return
    zeros = {m: [[0.0] * len(c) for c in table.choice_names] for m in ref}
    expect = CostTable(table.choice_names, zeros, {m: 0.0 for m in ref}, gates=table.gates,
                       contexts=(table.context_decisions, ref))
    for metric in ref:
        (t, f), (et, ef) = table.context(metric), expect.context(metric)
        assert t.dtype == et.dtype == torch.float64 and t.shape == et.shape, metric
        assert torch.equal(t, et) and torch.equal(f, ef), metric
        assert torch.equal(table.costs(metric), expect.costs(metric)) and table.fixed[metric] == expect.fixed[metric]
        assert table.min_total(metric) == expect.min_total(metric)
        assert table.max_total(metric) == expect.max_total(metric)
        assert torch.equal(table.cheapest(metric), expect.cheapest(metric))


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_every_published_space_has_the_tables_of_measuring_every_combination(path):
    assert_tables_exact(load_compiled(path))


@pytest.mark.parametrize("src", [MIXED, repeated(4, 3), repeated(5, 2, "mobilenetv3")], ids=["mixed", "rep", "mbv3"])
def test_width_spaces_have_the_tables_of_measuring_every_combination(src):
    assert_tables_exact(compile_space(parse_space(src, "t.space")))


def test_cell_space_with_resolutions_has_the_tables_of_measuring_every_size():
    src = (ROOT / "spaces" / "darts.space").read_text().replace("input 3 x size x size",
                                                                 "input 3 x size x size\nresolution 16, 24, size")
    cs = compile_space(parse_space(src, "darts.space"))
    assert len(cs.cost_table.context("macs")[0]) == 3
    assert_tables_exact(cs)


def test_a_width_space_prices_its_standalone_networks_exactly():
    """Independent of automl.nn.measure: the parameter count of the network built from sampled choices."""
    cs = compile_space(parse_space(MIXED, "t.space"))
    rng = random.Random(0)
    for _ in range(6):
        arch = [rng.randrange(len(d.choices)) for d in cs.decisions]
        assert count_params(cs.build_standalone(arch)) == cs.cost_table.total(arch), arch


def test_width_repeated_space_is_measured_per_width_pair_not_per_combination(monkeypatch):
    """8 stages of two widths: 256 combinations, but each layer reads at most two adjacent stages' widths, so
    the compiler measures the network at no more than 4 width combinations per stage."""
    calls = []

    def counted(*args, **kw):
        calls.append(1)
        return measure_params(*args, **kw)

    for module in (compiler, contexts):
        monkeypatch.setattr(module, "measure_params", counted, raising=False)
    cs = compile_space(parse_space(repeated(8, 2), "t.space"))
    assert len(cs.cost_table.context("params")[0]) == 2 ** 8
    assert 0 < len(calls) <= 4 * 8, len(calls)
