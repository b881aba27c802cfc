"""The built-in ``macs`` metric: counted per choice in its context, checked against independent counts."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from automl.cli import main
from automl.compile import load_compiled
from automl.nn.measure import count_macs
from automl.dsl import parse_space
from automl.errors import SpaceError

SPNASNET = (["ir_k3_e3"] * 3 + ["skip"] + ["ir_k5_e6"] + ["ir_k3_e3"] * 3 + ["ir_k5_e6"] + ["ir_k3_e3"] * 3
            + ["ir_k5_e6"] + ["ir_k5_e3"] * 3 + ["ir_k5_e6"] * 4 + ["ir_k3_e6"])
SMALL_PROXYLESS = {"size": "32", "width": "0.25", "head": "64", "classes": "5"}
SMALL_ENAS = {"size": "8", "channels": "4", "normal_cells": "1", "classes": "3"}


def flop_counter_macs(model, input_shape) -> float:
    """An independent count: torch's FlopCounterMode (2 FLOPs per multiply-add) on a real forward."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.randn(1, *input_shape))
    return fc.get_total_flops() / 2


def random_archs(cs, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.tensor([int(torch.randint(k, (1,), generator=g)) for k in cs.num_choices]) for _ in range(n)]


def test_spnasnet_100_macs_agree_with_timm():
    """spnasnet_100 written in the ProxylessNAS space: the table's MACs agree with FlopCounterMode over
    timm.create_model('spnasnet_100') within 1 % (they are in fact equal: 333.5M)."""
    import timm

    cs = load_compiled("spaces/proxylessnas.space")
    ours = cs.cost_table.total(cs.encode(SPNASNET), "macs")
    reference = flop_counter_macs(timm.create_model("spnasnet_100", pretrained=False), (3, 224, 224))
    assert abs(ours - reference) <= 0.01 * reference
    assert 3.0e8 < reference < 3.6e8  # timm's model card: 0.35 GMACs


@pytest.mark.parametrize("space,args", [("digits", {}), ("proxylessnas", SMALL_PROXYLESS)])
def test_chain_macs_are_exact(space, args):
    """fixed + sum of the chosen costs == an independent count of the standalone timm network."""
    cs = load_compiled(f"spaces/{space}.space", args)
    ct = cs.cost_table
    for arch in random_archs(cs, 4) + [ct.cheapest("macs"), ct.most_expensive("macs")]:
        assert ct.total(arch, "macs") == flop_counter_macs(cs.build_standalone(arch), cs.input_shape)
    assert ct.min_total("macs") < ct.max_total("macs")


def test_skip_costs_nothing_and_bigger_blocks_cost_more():
    cs = load_compiled("spaces/digits.space")
    macs = cs.cost_table.costs("macs")
    d = next(i for i, dec in enumerate(cs.decisions) if "skip" in dec.choices)
    row = {c: float(macs[d, k]) for k, c in enumerate(cs.decisions[d].choices)}
    assert row["skip"] == 0 < row["ir_k3_e1"] < row["ir_k3_e3"] < row["ir_k5_e6"]


def test_cell_macs_follow_the_stated_rule():
    """Cells: an op costs its MACs at stride 1 on the cell's output shape, summed over the template's
    instances; the fixed part counts every node's output conv, so the total is close above the count of
    the standalone network (which keeps output convs only for the unused nodes)."""
    cs = load_compiled("spaces/enas_micro.space", SMALL_ENAS)
    ct = cs.cost_table
    macs = ct.costs("macs")
    op_dec = next(i for i, d in enumerate(cs.decisions) if d.name.startswith("normal_") and "_op" in d.name)
    choices = cs.decisions[op_dec].choices
    c = cs.plan.instances[0].channels
    n_normal = sum(1 for inst in cs.plan.instances if inst.template == 0)
    from automl.compile import create_op
    for k, op in enumerate(choices):
        one, _ = count_macs(create_op(op, c, c, 1, device="meta"), (c, 8, 8))
        assert float(macs[op_dec, k]) == n_normal * one
    for arch in random_archs(cs, 4):
        ratio = ct.total(arch, "macs") / flop_counter_macs(cs.build_standalone(arch), cs.input_shape)
        assert 1.0 <= ratio < 1.35, ratio


def test_a_space_metric_named_macs_is_refused():
    text = open("spaces/digits.space").read() + "\nmetric macs\n  default = 1\nend\n"
    with pytest.raises(SpaceError, match="'macs' is measured by the compiler"):
        from automl.compile import compile_space
        compile_space(parse_space(text, "x.space"))


def test_space_show_metric_macs(capsys):
    assert main(["space", "show", "spaces/digits.space", "--json", "--metric", "macs"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["metric"] == "macs" and "macs" in summary["metrics"]
    assert summary["min_cost"] == load_compiled("spaces/digits.space").cost_table.min_total("macs")
    assert main(["space", "show", "spaces/digits.space", "--metric", "macs"]) == 0
    table = capsys.readouterr().out
    assert "choices (macs)" in table and "macs: fixed" in table


@pytest.mark.parametrize("space,overrides", [
    ("mobilenetv3", {"size": "64", "width": "0.5", "head": "64", "classes": "10"}),
    ("ofa_mbv3", {"size": "64", "width": "0.5", "wide": "2", "head": "64", "classes": "10"}),
    ("nasbench201", {"size": "16", "channels": "4", "cells": "2"}),
])
def test_macs_exact_for_published_constructs(space, overrides):
    """Per-stage SE and activations, MobileNetV3's head after pooling, elastic depth (gated costs),
    elastic width and resolution (a table per combination), edge cells and fixed reduction blocks: the table's MACs equal FlopCounterMode's count / 2."""
    cs = load_compiled(f"spaces/{space}.space", overrides)
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        arch = torch.tensor([int(torch.randint(len(d.choices), (1,), generator=g)) for d in cs.decisions])
        model = cs.build_standalone(arch).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.randn(1, *cs.arch_input_shape(arch)))  # (elastic resolution: the chosen size)
        assert cs.cost_table.total(arch, "macs") == counter.get_total_flops() // 2
