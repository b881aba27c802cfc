"""Elastic width in the language and the cost table: `width A, B, ...` is one decision per stage, the
cost table holds an exact table per combination of widths, and each mistake is one located message.
The supernet and export side of elastic width is tested in tests/test_elastic_width.py."""

from __future__ import annotations

import itertools

import pytest
import torch

from automl.cli import main
from automl.compile.compiler import compile_space
from automl.dsl import parse_space
from automl.errors import SpaceError
from automl.export import count_params

SPACE = """space wtest
input 3 x 32 x 32
classes 10
choices mb = ir_k3_e3, ir_k5_e6, skip
network
  stem width 16
  stage s1 width 16, 24 stride 2 depth 1, 2 choose [ir_k3_e3, ir_k5_e6] then mb
  stage s2 width 24, 32, 40 stride 2 repeat 2 se 0.25 choose [ir_k3_e3, ir_k5_e6] then mb
  stage s3 width 48 repeat 2 choose [ir_k3_e3, ir_k5_e6] then mb
  stage fin width 64, 96 fixed cn_k1
  head width 128
end
"""


def assert_space_error(src, where, message):
    """Compiling ``src`` is one SpaceError at ``where`` (line, column) whose message holds ``message``."""
    with pytest.raises(SpaceError) as info:
        compile_space(parse_space(src, "t.space"))
    assert (info.value.line, info.value.column) == where, str(info.value)
    assert message in info.value.message, info.value.message


def every_arch(cs):
    return itertools.product(*(range(k) for k in cs.num_choices))


def test_width_is_one_decision_per_stage():
    cs = compile_space(parse_space(SPACE))
    names = [d.name for d in cs.decisions]
    assert names[0] == "s1_width" and cs.decisions[0].choices == ("w16", "w24")
    assert cs.decisions[names.index("s2_width")].choices == ("w24", "w32", "w40")
    assert cs.decisions[names.index("fin_width")].choices == ("w64", "w96")
    assert cs.cost_table.context_decisions == tuple(names.index(n) for n in ("s1_width", "s2_width", "fin_width"))
    # the chosen widths reach the timm arch_def: s2 at 32 channels, the fixed final conv at 64
    a = dict(zip(names, [1, 1, 0, 0, 1, 0, 0, 0, 0, 0]))
    arch = cs.encode({n: cs.decisions[i].choices[k] for i, (n, k) in enumerate(a.items())})
    blocks = cs.arch_def(arch)
    assert blocks[0] == ["ir_r1_k3_s2_e3_c24", "ir_r1_k3_s1_e3_c24"]
    assert blocks[1][0] == "ir_r1_k3_s2_e3_c32_se0.25" and blocks[-1] == ["cn_r1_k1_s1_c64"]


def test_totals_are_exact_for_every_architecture_of_a_small_space():
    src = SPACE.replace("depth 1, 2 choose [ir_k3_e3, ir_k5_e6] then mb", "choose [ir_k3_e3, ir_k5_e6]")
    src = src.replace("repeat 2 se 0.25 choose [ir_k3_e3, ir_k5_e6] then mb", "se 0.25 choose [ir_k3_e3, ir_k5_e6]")
    src = src.replace("stage s3 width 48 repeat 2 choose [ir_k3_e3, ir_k5_e6] then mb\n", "")
    cs = compile_space(parse_space(src))
    ct = cs.cost_table
    totals = {}
    for a in every_arch(cs):  # 2 x 2 x 3 x 2 x 2 = 48
        n = count_params(cs.build_standalone(list(a)))
        assert ct.total(list(a)) == n
        totals[a] = n
    assert len(totals) == 48 and len(set(totals.values())) > 24  # the widths change the other choices' costs
    low, high = min(totals, key=totals.get), max(totals, key=totals.get)
    assert ct.min_total() == totals[low] and ct.max_total() == totals[high]
    assert ct.total(ct.cheapest()) == totals[low] and ct.total(ct.most_expensive()) == totals[high]
    # macs are exact per combination too: a wider s2 costs more MACs at the same ops
    narrow, wide = [0, 0, 0, 0, 0], [0, 0, 2, 0, 0]
    assert ct.total(wide, "macs") > ct.total(narrow, "macs")


def test_the_additive_summary_is_the_first_order_expansion():
    # (elastic depth left out: the summary, like the per-choice table, counts a gated layer as present)
    cs = compile_space(parse_space(SPACE.replace("depth 1, 2 ", "repeat 2 ")))
    ct = cs.cost_table
    T, F = ct.context("params")
    c = ct.costs("params")
    assert (c >= 0).all() and (c[list(ct.context_decisions)] >= 0).all()
    # for a decision that is not a width, the summary is its mean cost over the combinations, shifted
    d = [i for i, dec in enumerate(cs.decisions) if dec.name == "s3_1"][0]
    mean = T[:, d, :2].mean(0)
    torch.testing.assert_close(c[d, :2], mean - mean.min())
    # its mean over uniformly random architectures equals the exact mean total (first order is unbiased)
    g = torch.Generator().manual_seed(0)
    archs = [[int(torch.randint(k, (1,), generator=g)) for k in cs.num_choices] for _ in range(3000)]
    exact = sum(ct.total(a) for a in archs) / len(archs)
    summary = sum(ct.fixed["params"] + sum(float(c[d, k]) for d, k in enumerate(a)) for a in archs) / len(archs)
    assert abs(summary - exact) / exact < 0.02
    # a space without widths has no context and its table is exactly additive
    plain = compile_space(parse_space(SPACE.replace("16, 24", "24").replace("24, 32, 40", "40")
                                      .replace("64, 96", "96")))
    assert plain.cost_table.context("params") is None and plain.cost_table.context_decisions == ()


HEAD = "space t\ninput 3 x 8 x 8\nclasses 10\nnetwork\n stem width 16\n"


@pytest.mark.parametrize("stages,where,message", [
    (" stage a width 16, 0 choose [ir_k3_e3]\n", (6, 20), "between 1 and"),
    (" stage a width 16, -8 choose [ir_k3_e3]\n", (6, 20), "between 1 and"),
    (" stage a width 24, 24 * 0.75 choose [ir_k3_e3]\n", (6, 20), "rounds to 24 channels"),
    (" stage a width 24, 20 choose [ir_k3_e3]\n", (6, 20), "already a choice"),
    (" stage a width 16, 24 choose [ir_k3_e3, skip]\n", (6, 41), "cannot be 'skip'"),
    (" stage a width 16, 24, 32, 40, 48, 56, 64, 72 stride 2 choose [ir_k3_e3]\n"
     " stage b width 16, 24, 32, 40, 48, 56, 64, 72 stride 2 choose [ir_k3_e3]\n"
     " stage c width 16, 24, 32, 40, 48, 56, 64, 72 stride 2 choose [ir_k3_e3]\n"
     " stage d width 16, 24, 32, 40, 48, 56, 64, 72, 80 stride 2 choose [ir_k3_e3]\n", (9, 10), "at most 4,096"),
    (" stage a width 16, 24 choose [ir_k3_e3]\n layer a_width width 8 choose [ir_k3_e3]\n", (7, 8),
     "duplicate decision name 'a_width'"),
])
def test_width_errors_name_the_place(stages, where, message):
    assert_space_error(HEAD + stages + "end\n", where, message)


def test_width_error_exits_2_with_the_location(tmp_path, capsys):
    path = tmp_path / "bad.space"
    path.write_text(HEAD + " stage a width 16, 0 choose [ir_k3_e3]\nend\n")
    assert main(["space", "show", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:6:20" in err and "Traceback" not in err


def test_a_latency_table_cannot_describe_elastic_widths():
    from automl.errors import UserError

    cs = compile_space(parse_space(SPACE))
    with pytest.raises(UserError, match="elastic widths"):
        cs.cost_table.add_metric("latency", [[1.0] * k for k in cs.num_choices])


def test_head_bn_is_nasbench201s_last_act():
    from automl.compile import load_compiled

    cs = load_compiled("spaces/nasbench201.space")
    # NAS-Bench-201 reports 0.0733 M (every edge none or pooling) to 1.5315 M parameters (every edge a 3x3
    # conv) on CIFAR-10; its last BN (2 x 64) is part of both
    for ops, params in ((["none"] * 6, 73_306), (["conv_k3"] * 6, 1_531_546)):
        arch = cs.encode(ops)
        assert count_params(cs.build_standalone(arch)) == cs.cost_table.total(arch) == params
    head = cs.build_standalone(cs.encode(["none"] * 6)).bn2
    assert type(head).__name__ == "BatchNormAct2d" and head.num_features == 64


@pytest.mark.parametrize("network,where,message", [
    (" stage a width 16 choose [ir_k3_e3]\n head bn\n", (7, 7), "a chain's head is timm's"),
    (" cells c x 1 width 4\n head width 32 bn\n", (7, 16), "remove one"),
])
def test_head_bn_errors(network, where, message):
    cell = "cell c inputs x\n node n1 sums edges from x through conv_k1\nend\n" if "cells" in network else ""
    assert_space_error(HEAD + network + "end\n" + cell, where, message)


def test_profile_refuses_a_width_space(tmp_path, capsys):
    path = tmp_path / "w.space"
    path.write_text(SPACE)
    assert main(["space", "profile", str(path), "--out", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert "elastic widths (s1_width, s2_width, fin_width)" in err and not (tmp_path / "t.json").exists()


RES = """space rtest
input 3 x 32 x 32
resolution 24, 32, 16
classes 10
choices mb = ir_k3_e3, ir_k5_e6, skip
network
  stem width 16
  stage s1 width 16, 24 stride 2 repeat 2 choose [ir_k3_e3, ir_k5_e6] then mb
  stage s2 width 40 stride 2 repeat 2 choose [ir_k3_e3, ir_k5_e6] then mb
  head width 128
end
"""


def test_resolution_is_a_decision_and_macs_follow_it_exactly():
    from automl.nn.measure import count_macs

    cs = compile_space(parse_space(RES))
    assert cs.decisions[-1].name == "resolution" and cs.decisions[-1].choices == ("r24", "r32", "r16")
    assert cs.cost_table.context_decisions == (0, cs.num_decisions - 1) == cs.context_decisions
    g = torch.Generator().manual_seed(0)
    for _ in range(8):
        arch = [int(torch.randint(k, (1,), generator=g)) for k in cs.num_choices]
        for r in range(3):
            arch[-1] = r
            model = cs.build_standalone(arch)
            assert cs.arch_input_shape(arch) == (3, cs.resolutions[r], cs.resolutions[r])
            assert count_macs(model, cs.arch_input_shape(arch))[0] == cs.cost_table.total(arch, "macs")
            assert count_params(model) == cs.cost_table.total(arch)  # the resolution changes no weight
    small, full = [0] * cs.num_decisions, [0] * cs.num_decisions
    small[-1], full[-1] = 2, 1
    assert cs.cost_table.total(small, "macs") < cs.cost_table.total(full, "macs")


@pytest.mark.parametrize("header,where,message", [
    ("input 3 x 32 x 24\nresolution 16, 24\n", (3, 1), "needs a square input"),
    ("input 3 x 32 x 32\nresolution 16, 48\n", (3, 16), "resolution 48 is larger than the input size 32"),
    ("input 3 x 32 x 32\nresolution 16, 32, 16\n", (3, 20), "listed twice"),
    ("input 3 x 32 x 32\nresolution 16, 24\n", (3, 1), "must include the input size 32"),
    ("input 3 x 32 x 32\nresolution 16, 32\nresolution 24, 32\n", (4, 1), "a second 'resolution'"),
])
def test_resolution_errors_name_the_place(header, where, message):
    src = f"space t\n{header}classes 10\nnetwork\n stem width 16\n stage a width 16 choose [ir_k3_e3]\nend\n"
    assert_space_error(src, where, message)
