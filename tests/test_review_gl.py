"""Compiling a space builds each distinct meta-device op once: ``params`` and ``macs`` (and, with elastic widths
or resolutions, every combination) share the built modules, and the cost table is the one separate
measurements give."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
import torch

import automl.nn.measure as measure
import automl.nn.parts as parts
from automl.compile import compile_space, load_compiled
from automl.dsl import parse_space
from automl.nn.measure import measure_macs, measure_params

pytestmark = pytest.mark.usefixtures("one_thread")

NB201 = Path("spaces/nasbench201.space").read_text()
NB201_SMALL = {"size": "16", "channels": "4", "cells": "2"}


def nb201_with_resolutions(overrides=None):
    """NAS-Bench-201 (a cell space with fixed reduction blocks) at two input resolutions."""
    text = NB201.replace("classes classes\n", "classes classes\nresolution size, size // 2\n")
    assert text != NB201
    return compile_space(parse_space(text, "nb201_res.space", overrides))


@pytest.fixture
def builds(monkeypatch):
    """Counts every op built while measuring costs, by op, widths, stride and keywords (the device aside)."""
    counts: collections.Counter = collections.Counter()

    def counting(create):
        def create_op(name, in_ch, out_ch, stride=1, **kw):
            counts[(name, in_ch, out_ch, stride, repr(sorted((k, v) for k, v in kw.items() if k != "device")))] += 1
            return create(name, in_ch, out_ch, stride, **kw)
        return create_op

    monkeypatch.setattr(measure, "create_op", counting(measure.create_op))
    monkeypatch.setattr(parts, "create_op", counting(parts.create_op))
    return counts


@pytest.mark.parametrize("compile_it", [
    lambda: load_compiled("spaces/digits.space"),                      # chain
    lambda: load_compiled("spaces/nasbench201.space", NB201_SMALL),    # cells and reduction blocks
    lambda: load_compiled("spaces/darts.space", {"size": "8", "channels": "4", "normal_cells": "1"}),
    lambda: nb201_with_resolutions(NB201_SMALL),                        # cells at two resolutions
], ids=["digits", "nasbench201", "darts", "nasbench201-resolutions"])
def test_compile_builds_each_distinct_op_once(builds, compile_it):
    cs = compile_it()
    assert builds, "no op was built: the counter does not see the builds"
    twice = {key: n for key, n in builds.items() if n > 1}
    assert not twice, f"{cs.name}: ops built more than once: {twice}"


def test_elastic_width_and_resolution_build_each_op_once(builds):
    cs = load_compiled("spaces/ofa_mbv3.space", {"size": "64", "width": "0.5", "wide": "2", "head": "64"})
    assert cs.cost_table.context_decisions and cs.resolutions
    assert builds and max(builds.values()) == 1


def assert_table(table, metric, costs, fixed, context=None):
    """``table``'s ``metric`` is exactly ``costs``/``fixed`` (per-decision rows), or, for ``context`` (one table per
    resolution), its per-combination tables are."""
    if context is None:
        rows = torch.zeros_like(table.costs(metric))
        for d, row in enumerate(costs):
            rows[d, :len(row)] = torch.tensor(row, dtype=rows.dtype)
        assert torch.equal(table.costs(metric), rows), metric
        assert table.fixed[metric] == fixed, metric
        return
    tables, fixeds = table.context(metric)
    assert len(tables) == len(context)
    for a, (rows_a, fixed_a) in enumerate(context):
        rows = torch.zeros_like(tables[a])
        for d, row in enumerate(rows_a):
            rows[d, :len(row)] = torch.tensor(row, dtype=rows.dtype)
        assert torch.equal(tables[a], rows), (metric, a)
        assert fixeds[a].item() == fixed_a, (metric, a)


@pytest.mark.parametrize("path,overrides", [
    ("spaces/digits.space", None),
    ("spaces/nasbench201.space", NB201_SMALL),
    ("spaces/proxylessnas.space", {"size": "32", "width": "0.25", "head": "64", "classes": "5"}),
])
def test_shared_modules_give_the_costs_of_separate_measurements(path, overrides):
    """The compiled table equals ``params`` and ``macs`` measured each on its own (its own caches and modules)."""
    cs = load_compiled(path, overrides)
    params = measure_params(cs.kind, cs.plan, cs.decisions, {}, {})
    macs = measure_macs(cs.kind, cs.plan, cs.decisions, cs.input_shape, {}, {})
    assert_table(cs.cost_table, "params", *params)
    assert_table(cs.cost_table, "macs", *macs)
    assert cs.cost_table.context("params") is None


def test_resolution_tables_of_a_cell_space_are_those_measured_at_each_size():
    cs = nb201_with_resolutions(NB201_SMALL)
    assert cs.resolutions == (16, 8)
    dec = cs.decisions
    sizes = [(cs.input_shape[0], v, v) for v in cs.resolutions]
    assert_table(cs.cost_table, "macs", None, None, [measure_macs("cell", cs.plan, dec, s, {}, {}) for s in sizes])
    params = measure_params("cell", cs.plan, dec, {}, {})
    assert_table(cs.cost_table, "params", None, None, [params] * len(sizes))
    per_size = cs.cost_table.context("macs")[1]
    assert per_size[0] > per_size[1] > 0  # a smaller input costs fewer MACs
