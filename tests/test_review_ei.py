"""Review EI: compiling an elastic space (ofa_mbv3: 32 width combinations x 4 resolutions) was slow: every
op was built again for every input resolution and again for its parameter count, activations and
squeeze-excitation ran on the meta device (hard-sigmoid alone took milliseconds a call), and the cheapest /
dearest architecture took one tensor reduction per width combination. These tests pin that the faster
compile counts exactly what a fresh, uncached count and torch's own FLOP counter count."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
import torch
from timm.layers import get_act_layer
from timm.models._efficientnet_blocks import SqueezeExcite
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from automl.compile.compiler import compile_space
from automl.dsl import parse_space
from automl.nn import parts
from automl.nn.measure import count_macs, count_params, measure_macs, measure_params
from automl.nn.ops import build_timm_block

# elastic width (two stages and the final conv), elastic depth, squeeze-excitation with MobileNetV3's
# hard-sigmoid gate, three resolutions: a small ofa_mbv3
SPACE = """space eitest
input 3 x 32 x 32
resolution 16, 24, 32
classes 10
network
  family mobilenetv3
  activation hard_swish
  stem width 16
  stage s1 width 16, 24 stride 2 depth 1, 2 activation relu choose [ir_k3_e3, ir_k5_e6]
  stage s2 width 24, 32 stride 2 depth 1, 2 se 0.25 choose [ir_k3_e3, ir_k5_e4]
  stage fin width 48, 64 fixed cn_k1
  head width 96
end
"""


def _flop_macs(model: nn.Module, shape) -> int:
    """Half the FLOPs torch's own counter counts over one forward at batch 1, on real tensors."""
    model = model.eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(torch.zeros(1, *shape))
    return fc.get_total_flops() // 2


def _mbv3_block(in_ch: int = 16) -> nn.Module:
    """An IR block as ofa_mbv3 has it: ReLU, squeeze-excitation with a hard-sigmoid gate, a residual."""
    torch.manual_seed(0)
    return build_timm_block("ir_r1_k5_s1_e4_c16_se0.25_nre", in_ch, get_act_layer("hard_swish"),
                            family="mobilenetv3")


def test_counting_does_not_run_activations_or_the_squeeze_excitation(monkeypatch):
    block = _mbv3_block()
    assert any(type(m) is SqueezeExcite for m in block.modules())
    assert any(type(m) is nn.Hardsigmoid for m in block.modules())
    expected = {shape: _flop_macs(block, shape) for shape in [(16, 8, 8), (16, 7, 5), (16, 1, 1)]}

    def refuse(*_):
        raise AssertionError("counting ran a forward that only keeps the shape")

    for cls in (nn.ReLU, nn.Hardsigmoid, nn.Hardswish, SqueezeExcite):
        monkeypatch.setattr(cls, "forward", refuse)
    meta = block.to("meta")
    for shape, macs in expected.items():
        assert count_macs(block, shape) == (macs, shape) and macs > 0
        assert count_macs(meta, shape) == (macs, shape)
    monkeypatch.undo()
    # the forwards are the modules' own again: the real block still runs
    assert not any("forward" in m.__dict__ for m in block.modules())
    assert _mbv3_block()(torch.zeros(2, 16, 6, 6)).shape == (2, 16, 6, 6)


def test_a_squeeze_excitation_with_a_forward_of_its_own_is_run_as_it_is():
    block = _mbv3_block()
    se = next(m for m in block.modules() if type(m) is SqueezeExcite)
    calls = []
    se.forward = lambda x: calls.append(x.shape) or x  # an instance forward (a user's hook-like patch)
    count_macs(block.to("meta"), (16, 8, 8))
    assert calls == [torch.Size((1, 64, 8, 8))] and "forward" in se.__dict__


def _fresh_tables(cs):
    """Every width combination and resolution's (params, macs) tables, each counted with new caches (the
    compiler's order: widths, then the resolution)."""
    widths = cs.plan.width_decisions
    out = []
    for combo in itertools.product(*(range(cs.num_choices[d]) for d in widths)):
        at = cs.plan.at(dict(zip(widths, combo)))
        params = measure_params("chain", at, cs.decisions)
        for size in cs.resolutions:
            out.append((params, measure_macs("chain", at, cs.decisions, (3, size, size))))
    return out


def test_the_compiled_tables_equal_a_fresh_count_of_every_combination():
    cs = compile_space(parse_space(SPACE))
    assert len(cs.plan.width_decisions) == 3 and cs.resolutions == (16, 24, 32)
    fresh = _fresh_tables(cs)
    for metric, i in (("params", 0), ("macs", 1)):
        tables, fixeds = cs.cost_table.context(metric)
        assert len(fresh) == len(tables) == 2 ** 3 * 3
        for a, counted in enumerate(fresh):
            costs, fixed = counted[i]
            assert float(fixeds[a]) == fixed
            for d, row in enumerate(costs):
                if d not in cs.cost_table.context_decisions:
                    assert tables[a, d, :len(row)].tolist() == row, (metric, a, d)


def test_a_shared_cache_counts_what_a_fresh_count_counts():
    cs = compile_space(parse_space(SPACE))
    cache, modules, pcache = {}, {}, {}
    widths = cs.plan.width_decisions
    for combo in [(1, 0, 1), (0, 0, 0), (1, 1, 1), (0, 1, 0)]:
        at = cs.plan.at(dict(zip(widths, combo)))
        for size in (32, 16, 24, 8):
            shape = (3, size, size)
            assert measure_macs("chain", at, cs.decisions, shape, cache, modules) == \
                measure_macs("chain", at, cs.decisions, shape)
        assert measure_params("chain", at, cs.decisions, pcache, modules) == measure_params("chain", at, cs.decisions)


def test_the_cost_table_is_exact_against_torch_for_standalone_networks():
    cs = compile_space(parse_space(SPACE))
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        arch = [int(torch.randint(k, (1,), generator=g)) for k in cs.num_choices]
        model = cs.build_standalone(arch)
        shape = cs.arch_input_shape(arch)
        assert cs.cost_table.total(arch, "macs") == _flop_macs(model, shape) > 0
        assert cs.cost_table.total(arch) == count_params(model)


def test_each_op_is_built_once_per_distinct_shape(monkeypatch):
    built = Counter()
    chain_op = parts.chain_op

    def counting(plan, layer, op, device=None):
        built[(op, layer.in_ch, layer.out_ch, layer.stride, layer.se, layer.act)] += 1
        return chain_op(plan, layer, op, device=device)

    monkeypatch.setattr(parts, "chain_op", counting)
    cs = compile_space(parse_space(SPACE))
    assert len(cs.cost_table.context("macs")[0]) == 24
    assert built and set(built.values()) == {1}, built


def test_the_extremes_of_an_elastic_table_are_exact_and_take_one_reduction(monkeypatch):
    cs = compile_space(parse_space(SPACE))
    table = cs.cost_table
    for metric in ("params", "macs"):
        totals = {arch: table.total(list(arch), metric) for arch in itertools.product(*map(range, cs.num_choices))}
        low, high = min(totals.values()), max(totals.values())
        assert table.min_total(metric) == low and table.max_total(metric) == high
        assert totals[tuple(table.cheapest(metric).tolist())] == low
        assert totals[tuple(table.most_expensive(metric).tolist())] == high
    calls = Counter()
    for name in ("min", "max"):
        def wrap(self, *a, __f=getattr(torch.Tensor, name), __n=name, **k):
            calls[__n] += 1
            return __f(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, wrap)
    table.min_total("macs")
    table.max_total("macs")
    assert calls == {"min": 1, "max": 1}


@pytest.mark.parametrize("metric", ["params", "macs"])
def test_the_extremes_without_a_context_are_unchanged(metric):
    src = SPACE.replace("resolution 16, 24, 32\n", "").replace("width 16, 24 ", "width 16 ") \
        .replace("width 24, 32 ", "width 32 ").replace("width 48, 64 ", "width 48 ")
    cs = compile_space(parse_space(src))
    table = cs.cost_table
    assert table.context(metric) is None
    totals = [table.total(list(a), metric) for a in itertools.product(*map(range, cs.num_choices))]
    assert table.min_total(metric) == min(totals) and table.max_total(metric) == max(totals)
    assert table.total(table.cheapest(metric), metric) == min(totals)
    assert table.total(table.most_expensive(metric), metric) == max(totals)
