"""The ranking section's K architectures on spaces with elastic depth (gates) and elastic width (context costs):
chosen and ordered by their exact totals (automl/ranking.py ``exact_costs``, automl/pipeline/plan.py
``ranking_archs``), not by the additive per-choice table."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from automl.compile import compile_space, load_compiled
from automl.dsl import parse_space
from automl.pipeline.plan import ranking_archs
from automl.ranking import exact_costs, select_archs

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

DEPTH = """space rdepth
input 3 x 16 x 16
classes 10
choices mb = ir_k3_e3, ir_k5_e3, ir_k3_e6
network
  stem width 8
  stage s1 width 16 stride 2 depth 1, 2, 3 choose mb
  stage s2 width 24 stride 2 depth 1, 2 choose mb
  head width 32
end
"""

WIDTH = """space rwidth
input 3 x 16 x 16
classes 10
choices mb = ir_k3_e3, ir_k5_e6
network
  stem width 8
  stage s1 width 8, 16 stride 2 repeat 2 choose mb
  stage s2 width 16, 24, 32 stride 2 choose mb
  head width 32
end
"""

BOTH = WIDTH.replace("repeat 2", "depth 1, 2").replace("space rwidth", "space rboth")


def _space(src: str):
    return compile_space(parse_space(src, "t.space"))


def _network(ct, arch) -> tuple:
    """The network an architecture builds: the choices of the layers that are there."""
    return tuple(k for d, k in enumerate(arch) if d not in ct.gates or ct.gates[d][1][arch[ct.gates[d][0]]])


def _networks(space, metric):
    """Every distinct network's exact total (CostTable.total, one architecture at a time)."""
    ct, found = space.cost_table, {}
    for arch in itertools.product(*[range(k) for k in space.num_choices]):
        found.setdefault(_network(ct, list(arch)), ct.total(list(arch), metric))
    return found


@pytest.mark.parametrize("src", [DEPTH, WIDTH, BOTH], ids=["depth", "width", "depth+width"])
@pytest.mark.parametrize("metric", ["params", "macs"])
def test_ranked_archs_increase_in_exact_cost_from_cheapest_to_costliest(src, metric):
    space = _space(src)
    ct, k = space.cost_table, 8
    archs = ranking_archs(space, metric, k)().tolist()
    totals = [ct.total(a, metric) for a in archs]
    assert totals == sorted(totals)
    assert totals[0] == ct.min_total(metric) and totals[-1] == ct.max_total(metric)
    assert len({_network(ct, a) for a in archs}) == k  # k different networks, none trained twice
    # each target in between gets the closest network not taken by an earlier target (the space is small:
    # every network is in the pool)
    every = _networks(space, metric)
    targets = torch.linspace(totals[0], totals[-1], k, dtype=torch.float64).tolist()
    taken = {_network(ct, archs[0]), _network(ct, archs[-1])}
    for j in range(1, k - 1):
        best = min(abs(c - targets[j]) for n, c in every.items() if n not in taken)
        assert abs(totals[j] - targets[j]) == pytest.approx(best, abs=1e-6), (j, totals, targets)
        taken.add(_network(ct, archs[j]))


@pytest.mark.parametrize("src", [DEPTH, BOTH], ids=["depth", "depth+width"])
def test_a_sampled_pool_also_orders_by_exact_cost(src):
    space = _space(src)
    ct = space.cost_table
    exact = exact_costs(ct, "params")
    archs = select_archs(space.num_choices, ct.costs("params"), 6, seed=0, pool=16, exact=exact).tolist()
    totals = [ct.total(a, "params") for a in archs]
    assert totals == sorted(totals)
    assert totals[0] == ct.min_total("params") and totals[-1] == ct.max_total("params")
    assert len({_network(ct, a) for a in archs}) == 6


def test_exact_totals_of_a_batch_equal_the_cost_tables():
    space = load_compiled(ROOT / "spaces" / "ofa_mbv3.space", {"size": "32", "width": "0.25", "wide": "2",
                                                               "head": "64"})
    ct = space.cost_table
    g = torch.Generator().manual_seed(0)
    archs = torch.stack([torch.randint(0, k, (64,), generator=g) for k in space.num_choices], 1)
    for metric in ("params", "macs"):
        exact = exact_costs(ct, metric)
        want = torch.tensor([ct.total(a, metric) for a in archs.tolist()], dtype=torch.float64)
        assert torch.allclose(exact.totals(archs), want, rtol=1e-12, atol=0)
        # one architecture per network: the layers left out at choice 0, the same network and total
        canon = exact.canonical(archs)
        assert [_network(ct, a) for a in canon.tolist()] == [_network(ct, a) for a in archs.tolist()]
        assert torch.equal(exact.totals(canon), exact.totals(archs))


def test_ofa_ranking_spans_the_exact_range_in_increasing_cost():
    space = load_compiled(ROOT / "spaces" / "ofa_mbv3.space", {"size": "32", "width": "0.25", "wide": "2",
                                                               "head": "64"})
    ct, k = space.cost_table, 10
    totals = [ct.total(a, "params") for a in ranking_archs(space, "params", k)().tolist()]
    lo, hi = ct.min_total("params"), ct.max_total("params")
    assert totals == sorted(totals) and totals[0] == lo and totals[-1] == hi
    targets = torch.linspace(lo, hi, k, dtype=torch.float64)
    assert float((torch.tensor(totals) - targets).abs().max()) < 0.02 * (hi - lo)  # the pool covers the range


def test_more_archs_than_networks_still_gives_distinct_architectures():
    # s1: depth 1 or 2 of 2 ops: 2 + 4 = 6 networks, 8 architectures (the second layer's op at depth 1 is moot)
    space = _space(DEPTH.replace("depth 1, 2, 3 choose mb", "depth 1, 2 choose [ir_k3_e3, ir_k5_e6]")
                   .replace("  stage s2 width 24 stride 2 depth 1, 2 choose mb\n", ""))
    assert space.num_choices == [2, 2, 2]
    archs = ranking_archs(space, "params", 7)().tolist()
    assert len({tuple(a) for a in archs}) == 7
    totals = [space.cost_table.total(a) for a in archs]
    assert totals == sorted(totals) and totals[-1] == space.cost_table.max_total()


def test_spaces_without_gates_or_context_keep_the_additive_selection():
    space = load_compiled(ROOT / "spaces" / "digits.space")
    assert exact_costs(space.cost_table, "params") is None  # select_archs then reads the additive table alone
    for src in (DEPTH, WIDTH):
        assert exact_costs(_space(src).cost_table, "params") is not None
