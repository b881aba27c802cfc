"""The constructs for published spaces: per-stage squeeze-excitation and activation, op-name suffixes,
``family mobilenetv3``, edge cells (NAS-Bench-201), distinct inputs and concatenated outputs (DARTS),
fixed reduction blocks; their costs, supernets and standalone networks."""

from __future__ import annotations

import json
import math

import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.compile.compiler import compile_space
from automl.dsl import parse_space
from automl.export import count_params, inherit_weights
from automl.nn.resize import resize_input

CHAIN = """
space attrs
input 3 x 32 x 32
classes 10
choices mb = ir_k3_e3, ir_k5_e6_se0.5, ir_k3_e2.5_nhs
network
  activation relu
  stem width 16
  stage a width 24 stride 2 repeat 2 se 0.25 activation hard_swish choose mb then [mb, skip]
  stage b width 40 stride 2 choose mb
  stage c width 96 fixed cn_k1
  head width 128
end
"""


def random_arch(cs, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.tensor([int(torch.randint(len(d.choices), (1,), generator=g)) for d in cs.decisions])


def assert_paths_are_standalone(cs, seeds, size):
    """For each seed's architecture: the standalone network with the supernet path's weights computes
    the supernet's output, and has the path's parameters. Returns the standalone models."""
    supernet = cs.build_supernet().eval()
    x = torch.randn(2, cs.input_shape[0], size, size, generator=torch.Generator().manual_seed(0))
    models = []
    for seed in seeds:
        arch = random_arch(cs, seed)
        model = cs.build_standalone(arch).eval()
        inherit_weights(supernet, arch, model, cs.arch_input_shape(arch))
        with torch.no_grad():  # (elastic resolution: the supernet resizes the batch, as the data loader would)
            torch.testing.assert_close(model(resize_input(x, cs.resolution(arch))), supernet(x, arch))
        assert supernet.path_params(arch) == count_params(model)
        models.append((arch, model))
    return models


def test_stage_attributes_reach_the_timm_block_strings():
    cs = compile_space(parse_space(CHAIN))
    arch = cs.encode(["ir_k5_e6_se0.5", "skip", "ir_k3_e2.5_nhs"])
    # the stage's SE and activation on every op without its own; the op's own suffix wins; stage b none
    assert cs.arch_def(arch) == [["ir_r1_k5_s2_e6_c24_se0.5_nhs"], ["ir_r1_k3_s2_e2.5_c40_nhs"],
                                 ["cn_r1_k1_s1_c96"]]
    arch = cs.encode(["ir_k3_e3", "ir_k3_e2.5_nhs", "ir_k3_e3"])
    assert cs.arch_def(arch)[0] == ["ir_r1_k3_s2_e3_c24_se0.25_nhs", "ir_r1_k3_s1_e2.5_c24_nhs_se0.25"]
    model = cs.build_standalone(arch)
    block = model.blocks[0][0]
    assert type(block.se).__name__ == "SqueezeExcite" and type(block.bn1.act).__name__ == "Hardswish"
    assert type(model.blocks[1][0].bn1.act).__name__ == "ReLU" and not hasattr(model.blocks[1][0].se, "gate")


def test_stage_attributes_count_exactly():
    cs = compile_space(parse_space(CHAIN))
    plain = compile_space(parse_space(CHAIN.replace(" se 0.25", "")))
    supernet = cs.build_supernet()
    for seed in range(12):
        arch = random_arch(cs, seed)
        n = count_params(cs.build_standalone(arch))
        assert cs.cost_table.total(arch) == n == supernet.path_params(arch)
    # SE on stage a adds weights to every choice of a_1 but ir_k5_e6_se0.5 (which has its own)
    with_se, without = cs.cost_table.costs()[0], plain.cost_table.costs()[0]
    assert with_se[0] > without[0] and with_se[1] == without[1] and with_se[2] > without[2]


def test_supernet_path_is_the_standalone_network():
    cs = load_compiled("spaces/mobilenetv3.space", {"size": "32", "width": "0.5", "head": "64", "classes": "10"})
    for arch, model in assert_paths_are_standalone(cs, range(3), 32):
        assert type(model).__name__ == "MobileNetV3" and count_params(model) == cs.cost_table.total(arch)


def test_nasbench201_has_15625_architectures(capsys):
    assert main(["space", "show", "spaces/nasbench201.space", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["size"] == 15_625 == 5 ** 6 and shown["num_decisions"] == 6
    assert [len(d["choices"]) for d in shown["decisions"]] == [5] * 6
    assert [d["name"] for d in shown["decisions"]] == ["nb201_n1_x", "nb201_n2_x", "nb201_n2_n1", "nb201_n3_x",
                                                       "nb201_n3_n1", "nb201_n3_n2"]
    assert all([c["name"] for c in d["choices"]] == ["none", "identity", "conv_k1", "conv_k3", "avgpool_k3"]
               for d in shown["decisions"])


def test_nasbench201_network_and_exact_costs():
    cs = load_compiled("spaces/nasbench201.space")
    layout = [i.op or cs.plan.templates[i.template].name for i in cs.plan.instances]
    assert layout == ["nb201"] * 5 + ["resnet_block"] + ["nb201"] * 5 + ["resnet_block"] + ["nb201"] * 5
    assert [i.channels for i in cs.plan.instances] == [16] * 5 + [32] * 6 + [64] * 6
    supernet = cs.build_supernet()
    for seed in range(25):  # no preprocessing, no output convs: the table is exact for this cell
        arch = random_arch(cs, seed)
        assert cs.cost_table.total(arch) == supernet.path_params(arch) == count_params(cs.build_standalone(arch))
    # all edges 3x3 convs: 15 cells x 6 convs; and an all-`none` cell gives zeros of the right shape
    biggest = cs.encode(["conv_k3"] * 6)
    assert cs.cost_table.total(biggest) == cs.cost_table.max_total()
    nothing = cs.build_standalone(cs.encode(["none"] * 6)).eval()
    with torch.no_grad():
        assert nothing(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))).shape == (2, 10)


def test_darts_distinct_inputs_and_concatenated_output():
    cs = load_compiled("spaces/darts.space", {"size": "16", "channels": "4", "normal_cells": "2"})
    # per node: one decision over the pairs of distinct earlier states, then two op decisions
    assert cs.num_choices[:12] == [1, 8, 8, 3, 8, 8, 6, 8, 8, 10, 8, 8]
    assert cs.decisions[3].choices == ("c0+c1", "c0+n1", "c1+n1")
    assert cs.decisions[0].name == "normal_n1_inputs" and cs.decisions[1].name == "normal_n1_op1"
    assert cs.size == (math.comb(2, 2) * math.comb(3, 2) * math.comb(4, 2) * math.comb(5, 2) * 8 ** 8) ** 2
    # concatenation: every cell's output is 4x its width; the next cell's preprocessing reads that
    insts = cs.plan.instances
    assert [i.out_channels for i in insts] == [4 * i.channels for i in insts]
    assert all(b.c_prev == a.out_channels for a, b in zip(insts, insts[1:]))
    assert_paths_are_standalone(cs, range(4), 16)
    # the two ops of a node read two different states
    arch = random_arch(cs, 0)
    for node in cs.plan.templates[0].nodes:
        slots = node.slot_inputs(arch.tolist())
        assert len(set(slots)) == 2


@pytest.mark.parametrize("text,where,message", [
    ("cell c inputs x\n node n1 sums 2 distinct of x, x through conv_k1\nend", (9, 32), "'x' is listed twice"),
    ("cell c inputs x\n node n1 sums 2 distinct of x through conv_k1\nend", (9, 15),
     "cannot sum 2 distinct inputs of 1"),
    ("cell c inputs x\n node n1 sums edges from x, n2 through conv_k1\n node n2 sums edges from x through none\nend",
     (9, 29), "cannot read 'n2': a later node"),
    ("cell c inputs x\n node n1 sums edges from x through conv_k1\n output concat n1, x\nend", (10, 20),
     "the output of cell c is made of its nodes"),
    ("cell c inputs x\n node n1 sums edges from x through [conv_k1, resnet_block]\nend", (9, 46),
     "'resnet_block' is a fixed reduction block"),
])
def test_cell_construct_errors(text, where, message):
    assert_space_error(f"space t\ninput 3 x 8 x 8\nclasses 10\nnetwork\n stem width 4\n cells c x 2 width 4\nend\n"
                       f"{text}\n", where, message)


def assert_space_error(src, where, message):
    """Compiling ``src`` is one SpaceError at ``where`` (line, column) whose message holds ``message``."""
    from automl.errors import SpaceError

    with pytest.raises(SpaceError) as info:
        compile_space(parse_space(src, "t.space"))
    assert (info.value.line, info.value.column) == where, str(info.value)
    assert message in info.value.message


def test_ofa_cost_table_is_exact_with_elastic_depth_width_and_resolution():
    from automl.nn.measure import count_macs

    cs = load_compiled("spaces/ofa_mbv3.space")
    by_kind = {kind: [d for d in cs.decisions if d.name.endswith(kind)] for kind in ("_depth", "_width")}
    assert [d.choices for d in by_kind["_depth"]] == [("d2", "d3", "d4")] * 5
    # OFA's width multipliers 1.0 and 1.2 per stage, rounded to 8 as OFA does
    assert [d.choices for d in by_kind["_width"]] == [("w24", "w32"), ("w40", "w48"), ("w80", "w96"),
                                                      ("w112", "w136"), ("w160", "w192")]
    assert cs.decisions[-1].choices == ("r128", "r160", "r192", "r224") and cs.num_decisions == 31
    ct, supernet = cs.cost_table, cs.build_supernet()
    seen = set()
    for seed in range(40):
        arch = random_arch(cs, seed)
        seen.update(cs.decode(arch)[cs.decisions.index(d)] for ds in by_kind.values() for d in ds)
        model = cs.build_standalone(arch)
        assert ct.total(arch) == count_params(model) == supernet.path_params(arch)
        if seed % 8 == 0:  # MACs at the chosen resolution, exact too
            assert ct.total(arch, "macs") == count_macs(model, cs.arch_input_shape(arch))[0]
    assert {"d2", "d3", "d4", "w24", "w32", "w160", "w192"} <= seen
    # the extremes are exact too (depth 2, narrow, the cheapest ops; depth 4, wide, the largest)
    for arch, total in ((ct.cheapest(), ct.min_total()), (ct.most_expensive(), ct.max_total())):
        assert count_params(cs.build_standalone(arch)) == total
    cheapest = cs.decode(ct.cheapest())
    assert [cheapest[cs.decisions.index(d)] for d in by_kind["_depth"]] == ["d2"] * 5
    assert [cheapest[cs.decisions.index(d)] for d in by_kind["_width"]] == ["w24", "w40", "w80", "w112", "w160"]


def test_elastic_depth_supernet_and_standalone_agree():
    cs = load_compiled("spaces/ofa_mbv3.space", {"size": "32", "width": "0.5", "wide": "2", "head": "64", "classes": "10"})
    for arch, model in assert_paths_are_standalone(cs, range(10, 13), 32):
        names = dict(zip([d.name for d in cs.decisions], cs.decode(arch)))
        assert len(model.blocks[1]) == int(names["s1_depth"][1:])


def test_encode_finds_the_depth(tmp_path, capsys):
    cs = load_compiled("spaces/ofa_mbv3.space")
    arch_def = [["ds_r1_k3_s1_c16_nre"], ["ir_r2_k3_s2_e4_c24_nre"], ["ir_r3_k5_s2_e3_c40_se0.25_nre"],
                ["ir_r4_k3_s2_e6_c80"], ["ir_r2_k3_s1_e6_c112_se0.25"], ["ir_r3_k5_s2_e6_c160_se0.25"],
                ["cn_r1_k1_s1_c960"]]
    (tmp_path / "a.json").write_text(json.dumps(arch_def))
    assert main(["space", "encode", "spaces/ofa_mbv3.space", "--arch-def", str(tmp_path / "a.json")]) == 0
    choices = json.loads(capsys.readouterr().out)["choices"]
    assert [choices[f"s{i}_depth"] for i in range(1, 6)] == ["d2", "d3", "d4", "d2", "d3"]
    assert [choices[f"s{i}_width"] for i in range(1, 6)] == ["w24", "w40", "w80", "w112", "w160"]
    assert choices["resolution"] == "r224"  # a timm network takes any size: the data's
    assert choices["s2_1"] == "ir_k5_e3" and choices["s3_4"] == "ir_k3_e6"
    arch = cs.encode(choices)
    assert [len(stage) for stage in cs.arch_def(arch)] == [1, 2, 3, 4, 2, 3, 1]


@pytest.mark.parametrize("stage,where,message", [
    ("stage s width 24 depth 0, 2 choose ir_k3_e3", (7, 25), "a stage's depth must be between 1 and"),
    ("stage s width 24 depth 2, 2 choose ir_k3_e3", (7, 28), "depth 2 is listed twice"),
    ("stage s width 24 depth 3 choose ir_k3_e3", (7, 19), "elastic depth needs at least two depths"),
    ("stage s width 24 repeat 2 depth 1, 2 choose ir_k3_e3", (7, 19), "`depth` sets the number of layers"),
    ("layer s width 24 depth 1, 2 choose ir_k3_e3", (7, 19), "a layer is one layer"),
])
def test_depth_errors(stage, where, message):
    assert_space_error(f"space t\ninput 3 x 8 x 8\nclasses 10\nnetwork\n stem width 16\n"
                       f" stage a width 16 choose ir_k3_e3\n {stage}\nend\n", where, message)


def test_fbnet_group_conv_candidates():
    cs = load_compiled("spaces/fbnet.space", {"size": "32", "width": "0.5", "head": "64", "classes": "10"})
    assert cs.num_choices == [9] * 22  # FBNet's 9 candidates (its skip: cn_k1 where the shape changes)
    g2 = cs.encode([d.choices[1] for d in cs.decisions])  # ir_k3_e1_g2 on every layer
    assert set(cs.decode(g2)) == {"ir_k3_e1_g2"}
    model = cs.build_standalone(g2)
    convs = [m for name, m in model.named_modules() if name.endswith(("conv_pw", "conv_pwl"))]
    assert convs and all(c.groups == 2 for c in convs)
    assert cs.arch_def(g2) is None  # not a timm block string: exported through the space file
    assert count_params(model) == cs.cost_table.total(g2)
    assert_paths_are_standalone(cs, range(4), 32)
