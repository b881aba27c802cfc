"""Compiling builds each fixed part once: the stem, the head and a cell's preprocessing and output convs serve
``params`` and ``macs`` and every combination of elastic widths and resolutions; the cost tables stay the ones
measured before (pinned numbers), and the cost table's dense tensors and additive summary are the ones a
tensor-per-row construction and a sequential sum give."""

from __future__ import annotations

import collections
import itertools
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import automl.nn.parts as parts
from automl.compile import CostTable, compile_space, load_compiled
from automl.dsl import parse_space

pytestmark = pytest.mark.usefixtures("one_thread")

NB201_RES = Path("spaces/nasbench201.space").read_text().replace(
    "classes classes\n", "classes classes\nresolution size, size // 2\n")
CELLS_MIX = """space cells_mix
input 3 x 32 x 32
classes 10
resolution 32, 16
choices ops = conv_k1, conv_k3, sep_k3, avgpool_k3, identity
cell one inputs x
  node n1 sums 1 of earlier through ops
  node n2 sums 2 of earlier through ops
end
cell two
  node a sums 2 distinct of earlier through ops
  node b sums 2 of earlier through ops
end
cell red stride 2
  node a sums 2 of earlier through ops
  node b sums 1 of c0, a through ops
end
network
  stem width 16
  cells one, two, red, one, two, two, red, one width 8
  head width 64
end
"""

SPACES = {  # chain with elastic widths and 4 resolutions; cells with reduction blocks, loose outputs, one input
    "ofa": lambda: load_compiled("spaces/ofa_mbv3.space", {"size": "64", "width": "0.5", "wide": "2", "head": "64"}),
    "nb201": lambda: compile_space(parse_space(NB201_RES, "nb.space", {"size": "16", "channels": "4", "cells": "2"})),
    "mix": lambda: compile_space(parse_space(CELLS_MIX, "cells_mix.space")),
    "darts": lambda: load_compiled("spaces/darts.space", {"size": "8", "channels": "4", "normal_cells": "1"}),
}

# what the original measurement gave: per metric, without a context (fixed, sum of costs, index-weighted sum),
# with one (sum of the fixed costs, index-weighted sum, sum of the tables, index-weighted sum); exact integers
PINNED = {
    "ofa": {"params": (19874816, 1266966016, 2256370688, 41923138462208),
            "macs": (110997504, 7098619904, 17731651200, 341358450383616)},
    "nb201": {"params": (9788, 4894, 83328, 2740416), "macs": (178240, 35744, 1843200, 41287680)},
    "mix": {"params": (25940, 12970, 268768, 26664480), "macs": (3421440, 684672, 29399040, 1931965440)},
    "darts": {"params": (2198.0, 41664, 7190240), "macs": (54144.0, 513024, 64115200)},
}


def weighted(t: torch.Tensor) -> int:
    return int((t * torch.arange(t.numel(), dtype=torch.float64).reshape(t.shape)).sum())


def digest(table: CostTable, metric: str) -> tuple:
    ctx = table.context(metric)
    if ctx is None:
        costs = table.costs(metric)
        return table.fixed[metric], int(costs.sum()), weighted(costs)
    tables, fixed = ctx
    return int(fixed.sum()), weighted(fixed), int(tables.sum()), weighted(tables)


@pytest.fixture
def part_builds(monkeypatch):
    """Counts the fixed parts built, by what each is built from."""
    counts: collections.Counter = collections.Counter()
    keys = {
        "chain_stem": lambda plan, *a, **k: replace(plan, layers=()),
        "chain_head": lambda plan, head_in, *a, **k: (replace(plan, layers=()), head_in),
        "cell_stem": lambda plan, *a, **k: (plan.in_chans, plan.stem_width, plan.stem_kernel, plan.stem_stride),
        "cell_head": lambda plan, *a, **k: plan.instances[-1].out_channels,
        "cell_preprocess": lambda inst, *a, **k: (inst.one_input, inst.reduce_prev, inst.c_prev_prev, inst.c_prev,
                                                  inst.channels),
        "out_conv": lambda c, *a, **k: c,
    }

    def counting(name, build):
        def part(*args, **kw):
            counts[name, keys[name](*args, **kw)] += 1
            return build(*args, **kw)
        return part

    for name in keys:
        monkeypatch.setattr(parts, name, counting(name, getattr(parts, name)))
    return counts


@pytest.mark.parametrize("name", list(SPACES))
def test_fixed_parts_built_once(part_builds, name):
    cs = SPACES[name]()
    kinds = {kind for kind, _ in part_builds}
    assert kinds >= ({"chain_stem", "chain_head"} if cs.kind == "chain" else {"cell_stem", "cell_head",
                                                                               "cell_preprocess"})
    twice = {key: n for key, n in part_builds.items() if n > 1}
    assert not twice, f"{name}: parts built more than once: {twice}"


@pytest.mark.parametrize("name", list(SPACES))
def test_cost_tables_as_measured_before(name):
    cs = SPACES[name]()
    assert {m: digest(cs.cost_table, m) for m in ("params", "macs")} == PINNED[name]


def reference(choice_names, costs, tables, fixeds, context):
    """The dense tensors and the additive summary as a tensor per row and a sum one element at a time give."""
    kmax = max(len(c) for c in choice_names)
    mask = torch.zeros(len(choice_names), kmax, dtype=torch.bool)
    for d, c in enumerate(choice_names):
        mask[d, :len(c)] = True
    dense = torch.zeros(len(costs), kmax, dtype=torch.float64)
    for d, row in enumerate(costs):
        dense[d, :len(row)] = torch.tensor(row, dtype=torch.float64)
    t = torch.zeros(len(tables), len(choice_names), kmax, dtype=torch.float64)
    for a, rows in enumerate(tables):
        for d, row in enumerate(rows):
            t[a, d, :len(row)] = torch.tensor(row, dtype=torch.float64)
    f = torch.tensor(fixeds, dtype=torch.float64)
    counts = mask.sum(-1).to(torch.float64)
    mean_k = t.sum(-1) / counts
    value = f + mean_k.sum(-1)
    mean = float(value.mean())
    cond = t.mean(0) - mean_k.mean(0).unsqueeze(-1) + mean
    combos = [dict(zip(context, combo)) for combo in
              itertools.product(*(range(len(choice_names[d])) for d in context))]
    for d in context:
        row = torch.zeros(len(choice_names[d]), dtype=torch.float64)
        for a, combo in enumerate(combos):
            row[combo[d]] += float(value[a])
        cond[d, :len(row)] = row / (len(value) / len(row))
    cond = cond.masked_fill(~mask, float("inf"))
    low = cond.min(-1).values
    return dense, t, f, (cond - low.unsqueeze(-1)).masked_fill(~mask, 0.0), mean + float((low - mean).sum())


def test_cost_table_tensors_and_summary_as_row_by_row():
    rng = random.Random(3)
    choice_names = [["w8", "w16", "w24"], ["a", "b"], ["x", "y", "z"], ["p"], ["w32", "w40"]]
    context = (0, 4)
    n = 3 * 2

    def rows():
        return [[0.0] * 3, [rng.random() * 10 for _ in range(2)], [rng.random() / 3 for _ in range(3)],
                [rng.random() * 1e6], [0.0] * 2]
    tables = [rows() for _ in range(n)]
    fixeds = [rng.random() * 100 for _ in range(n)]
    costs = [[1, 2, 3], [0.5, 0.25], [7, 8, 9], [1e9], [4, 5]]
    table = CostTable(choice_names, {"params": costs, "latency": costs}, {"params": 0.0, "latency": 1.5},
                      contexts=(context, {"params": (tables, fixeds)}))
    dense, t, f, summary, fixed = reference(choice_names, costs, tables, fixeds, context)
    assert torch.equal(table.costs("latency"), dense) and table.fixed["latency"] == 1.5
    got_t, got_f = table.context("params")
    assert torch.equal(got_t, t) and torch.equal(got_f, f)
    assert torch.equal(table.costs("params"), summary) and table.fixed["params"] == fixed


def test_add_metric_rows_as_row_by_row():
    choice_names = [["a", "b", "c"], ["d"], ["e", "f"]]
    table = CostTable(choice_names, {"params": [[1, 2, 3], [4], [5, 6]]}, {"params": 2})
    rows = [[0.1, 0.2, 0.3], [1e-3], [7, 2.5]]
    table.add_metric("latency", rows, 0.75)
    dense = reference(choice_names, rows, [], [], ())[0]
    assert torch.equal(table.costs("latency"), dense) and table.fixed["latency"] == 0.75
    assert table.total([2, 0, 1], "latency") == 0.75 + (0.3 + 1e-3 + 2.5)
