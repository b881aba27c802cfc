"""Review DA: the shipped spaces against the papers they reproduce, fact by fact.

FBNet (Wu et al. 2019, Table 1: the macro architecture; Table 2: the 9 candidate blocks), MobileNetV3-Large
(Howard et al. 2019, Table 1), Once-for-All's OFAMobileNetV3 (Cai et al. 2020: five elastic stages of depth
{2, 3, 4}, kernel {3, 5, 7}, expansion {3, 4, 6}; MobileNetV3-Large's widths, strides, SE and activations),
NAS-Bench-201's network (Dong & Yang 2020), the cell layouts of DARTS and ASNG-NAS, and every shipped space's
decision count, choice counts and number of architectures as `automl space show --json` reports them.
ProxylessNAS, ENAS micro and DARTS's cells are pinned in tests/test_review_ch.py, DARTS_V2's parameter count in
tests/test_review_ak.py, NAS-Bench-201's cell and parameter range in tests/test_space_constructs.py and
tests/test_width_costs.py. Each chain check is a function of the compiled space, and a copy of the space with
one published fact changed fails it (the tests after the counts)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from automl.cli import main
from automl.compile import load_compiled
from automl.compile.compiler import compile_space
from automl.dsl import parse_space

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "spaces"

# FBNet Table 2: k3/k5 x e1/e3/e6, the two group-conv e1 blocks, and skip
FBNET_TBS = ("ir_k3_e1", "ir_k3_e1_g2", "ir_k3_e3", "ir_k3_e6", "ir_k5_e1", "ir_k5_e1_g2", "ir_k5_e3", "ir_k5_e6")
MBV3_OPS = tuple(f"ir_k{k}_e{e}" for k in (3, 5, 7) for e in (3, 4, 6))


def _stages(plan) -> list[list]:
    """The chain's layers grouped by stage, in order."""
    out: dict[int, list] = {}
    for layer in plan.layers:
        out.setdefault(layer.stage, []).append(layer)
    return list(out.values())


def _act(plan, layer) -> str:
    return layer.act or plan.activation


# ------------------------------------------------------------------------------------------------ FBNet
def check_fbnet(cs) -> None:
    p = cs.plan
    assert cs.input_shape == (3, 224, 224) and cs.num_classes == 1000
    # Table 1: 3x3 conv 16 (stride 2), then TBS stages (f, n, s), then a 1x1 conv to 1984
    assert (p.stem_size, p.stem_kernel, p.num_features, p.activation) == (16, 3, 1984, "relu")
    stages = _stages(p)
    assert [(ls[0].out_ch, len(ls), ls[0].stride) for ls in stages] == \
        [(16, 1, 1), (24, 4, 2), (32, 4, 2), (64, 4, 2), (112, 4, 1), (184, 4, 2), (352, 1, 1)]
    assert all(layer.stride == 1 for ls in stages for layer in ls[1:])
    assert all(layer.act is None and layer.se == 0 for layer in p.layers)  # ReLU, no SE
    # 22 searched layers ("TBS"), each of the 9 candidates; FBNet's skip is the input itself where the layer keeps
    # its shape and a 1x1 conv (cn_k1) where it does not
    assert [layer.decision for layer in p.layers] == list(range(22)) and cs.num_choices == [9] * 22
    for layer in p.layers:
        keeps = layer.in_ch == layer.out_ch and layer.stride == 1
        assert layer.choices == FBNET_TBS + (("skip",) if keeps else ("cn_k1",)), layer.name
    assert [layer.name for layer in p.layers if "cn_k1" in layer.choices] == \
        ["s1_1", "s2_1", "s3_1", "s4_1", "s5_1", "s6_1"]
    # 224 -> 7: the stem's stride 2 and four stride-2 stages
    assert math.prod(layer.stride for layer in p.layers) * 2 == 32


def test_fbnet_is_tables_1_and_2_of_the_paper():
    check_fbnet(load_compiled(SPACES / "fbnet.space"))


# ------------------------------------------------------------------------------------------ MobileNetV3
# MobileNetV3-Large, Table 1: (layer, kernel, expansion, out, SE, NL, stride) of each bneck after the first
MBV3_LARGE = [("s1_1", 3, "4", 24, False, "relu", 2), ("s1_2", 3, "3", 24, False, "relu", 1),
              ("s2_1", 5, "3", 40, True, "relu", 2), ("s2_2", 5, "3", 40, True, "relu", 1),
              ("s2_3", 5, "3", 40, True, "relu", 1),
              ("s3_1", 3, "6", 80, False, "hard_swish", 2), ("s3_2", 3, "2.5", 80, False, "hard_swish", 1),
              ("s3_3", 3, "2.3", 80, False, "hard_swish", 1), ("s3_4", 3, "2.3", 80, False, "hard_swish", 1),
              ("s4_1", 3, "6", 112, True, "hard_swish", 1), ("s4_2", 3, "6", 112, True, "hard_swish", 1),
              ("s5_1", 5, "6", 160, True, "hard_swish", 2), ("s5_2", 5, "6", 160, True, "hard_swish", 1),
              ("s5_3", 5, "6", 160, True, "hard_swish", 1)]


def check_mobilenetv3(cs) -> None:
    p = cs.plan
    assert (p.family, p.stem_size, p.stem_kernel, p.activation, p.num_features) == \
        ("mobilenetv3", 16, 3, "hard_swish", 1280)  # conv2d 16 HS s2; ...; pool, 1x1 conv 1280 NBN HS
    first, searched, last = p.layers[0], p.layers[1:-1], p.layers[-1]
    # bneck 3x3, exp 16, out 16, RE, s1: MobileNetV3's depthwise-separable first block, not searched
    assert (first.choices, first.decision, first.out_ch, first.stride, _act(p, first)) == \
        (("ds_k3",), None, 16, 1, "relu")
    assert [(layer.name, layer.out_ch, layer.se > 0, _act(p, layer), layer.stride) for layer in searched] == \
        [(name, out, se, nl, s) for name, _, _, out, se, nl, s in MBV3_LARGE]
    # conv2d 1x1, 960, HS: fixed
    assert (last.choices, last.decision, last.out_ch, last.stride, _act(p, last)) == \
        (("cn_k1",), None, 960, 1, "hard_swish")
    for layer, (name, k, e, *_) in zip(searched, MBV3_LARGE):
        assert f"ir_k{k}_e{e}" in layer.choices, name      # the published block is one of the layer's choices
        assert set(MBV3_OPS) <= set(layer.choices), name   # and every kernel 3/5/7 x expansion 3/4/6
        assert ("skip" in layer.choices) == (layer.in_ch == layer.out_ch and layer.stride == 1), name


def test_mobilenetv3_large_is_table_1_of_the_paper():
    cs = load_compiled(SPACES / "mobilenetv3.space")
    check_mobilenetv3(cs)
    # the Table-1 network, chosen layer by layer, is MobileNetV3-Large: 5.4 M parameters (timm: 5,483,032)
    arch = cs.encode({name: f"ir_k{k}_e{e}" for name, k, e, *_ in MBV3_LARGE})
    assert cs.cost_table.total(arch) == 5_483_032


# ------------------------------------------------------------------------------------------------- OFA
def check_ofa(cs) -> None:
    p = cs.plan
    assert (p.family, p.stem_size, p.activation, p.num_features) == ("mobilenetv3", 16, "hard_swish", 1280)
    stages = _stages(p)
    first, final = stages[0], stages[-1]
    # OFAMobileNetV3: first block a 3x3 MBConv of expansion 1, 16 channels, ReLU; final expand conv 1x1 to 960
    assert [(la.choices, la.decision, la.out_ch, la.stride, _act(p, la)) for la in first] == \
        [(("ds_k3",), None, 16, 1, "relu")]
    assert [(la.choices, la.decision, la.out_ch, _act(p, la)) for la in final] == \
        [(("cn_k1",), None, 960, "hard_swish")]
    searched = stages[1:-1]
    # five stages: base widths, first strides, activations (act_stages) and SE (se_stages) of OFAMobileNetV3;
    # each stage's width is a decision between width multipliers 1.0 and 1.2
    assert [(ls[0].widths, ls[0].stride, _act(p, ls[0]), ls[0].se) for ls in searched] == \
        [((24, 32), 2, "relu", 0.0), ((40, 48), 2, "relu", 0.25), ((80, 96), 2, "hard_swish", 0.0),
         ((112, 136), 1, "hard_swish", 0.25), ((160, 192), 2, "hard_swish", 0.25)]
    for ls in searched:
        assert len(ls) == 4 and all(la.stride == 1 and (la.se, la.act) == (ls[0].se, ls[0].act) for la in ls[1:])
        assert all(la.choices == MBV3_OPS for la in ls)  # kernel {3, 5, 7} x expansion {3, 4, 6}
        depth = {la.gate[0] for la in ls if la.gate is not None}
        assert len(depth) == 1 and cs.decisions[depth.pop()].choices == ("d2", "d3", "d4")
        # depth d keeps the first d layers
        assert [la.gate for la in ls[:2]] == [None, None]
        assert [la.gate[1] for la in ls[2:]] == [(False, True, True), (False, False, True)]
    assert cs.decisions[-1].choices == ("r128", "r160", "r192", "r224") and cs.resolutions == (128, 160, 192, 224)


def distinct_chain_networks(cs) -> int:
    """The number of distinct networks of a chain space: a layer beyond its stage's chosen depth does not
    count (its decision changes nothing), so each elastic stage counts sum over depths of its active layers'
    choices; the other decisions (widths, resolution, fixed-depth layers) multiply."""
    k = cs.num_choices
    total, counted = 1, set()
    for ls in _stages(cs.plan):
        gates = {la.gate[0] for la in ls if la.gate is not None}
        if not gates:
            continue
        (dec,) = gates
        searched = [la for la in ls if la.decision is not None]
        counted.update([dec, *(la.decision for la in searched)])
        total *= sum(math.prod(k[la.decision] for la in searched if la.gate is None or la.gate[1][c])
                     for c in range(k[dec]))
    return total * math.prod(k[d] for d in range(len(k)) if d not in counted)


def test_ofa_is_once_for_alls_mobilenetv3_space():
    cs = load_compiled(SPACES / "ofa_mbv3.space")
    check_ofa(cs)
    assert cs.num_decisions == 5 + 5 + 20 + 1
    # the header's counts: 3^5 x 9^20 (about 3.0e21) encodings of depth, kernel and expansion; OFA's
    # ((3 x 3)^2 + (3 x 3)^3 + (3 x 3)^4)^5 (about 2.2e19) distinct networks; 2^5 x 4 times that with widths
    # and resolutions (about 2.8e21)
    ofa = (9 ** 2 + 9 ** 3 + 9 ** 4) ** 5
    assert f"{ofa:.1e}" == "2.2e+19" and f"{3 ** 5 * 9 ** 20:.1e}" == "3.0e+21"
    assert distinct_chain_networks(cs) == ofa * 2 ** 5 * 4
    assert f"{distinct_chain_networks(cs):.1e}" == "2.8e+21"


# ------------------------------------------------------------------------------------------ NAS-Bench-201
def test_nasbench201_network_is_the_benchmarks():
    """The stem (3x3 conv, 16 channels, BN), one-input cells with 4 states (the input and 3 nodes, the last the
    output), no preprocessing or head conv, and lastact (BN + ReLU) before pooling."""
    cs = load_compiled(SPACES / "nasbench201.space")
    p = cs.plan
    assert (p.stem_width, p.stem_kernel, p.stem_stride, p.num_features, p.head_bn) == (16, 3, 1, 0, True)
    (t,) = p.templates
    assert (t.stride, t.inputs, t.output, t.output_nodes) == (1, ("x",), "node", (4,))
    assert [(n.candidates, n.mode) for n in t.nodes] == [((1,), "edges"), ((1, 2), "edges"), ((1, 2, 3), "edges")]
    cells = [i for i in p.instances if i.op is None]
    assert len(cells) == 15 and all(i.one_input for i in cells)


# ------------------------------------------------------------------------- counts, as `space show` reports them
def _darts_size() -> int:
    return (math.prod(math.comb(2 + i, 2) for i in range(4)) * 8 ** 8) ** 2


def _enas_size() -> int:
    return (math.prod((2 + i) ** 2 * 5 ** 2 for i in range(5))) ** 2


SHOWN = {  # space: (D, the K of each decision, number of architectures: the product of the K)
    "proxylessnas": (21, [6, 7, 7, 7] * 5 + [6], 6 ** 6 * 7 ** 15),
    "fbnet": (22, [9] * 22, 9 ** 22),
    "mobilenetv3": (14, [9, 10, 9, 10, 10, 11, 12, 12, 12, 9, 10, 9, 10, 10], 9 ** 4 * 10 ** 6 * 11 * 12 ** 3),
    "ofa_mbv3": (31, ([2, 3] + [9] * 4) * 5 + [4], 2 ** 5 * 3 ** 5 * 9 ** 20 * 4),
    "darts": (24, [c for i in range(4) for c in (math.comb(2 + i, 2), 8, 8)] * 2, _darts_size()),
    "enas_micro": (40, [c for i in range(5) for c in (2 + i, 2 + i, 5, 5)] * 2, _enas_size()),
    "nasbench201": (6, [5] * 6, 15_625),
    "digits": (9, [3, 4, 4] * 3, (3 * 4 * 4) ** 3),
}


def test_every_shipped_space_is_counted():
    assert {p.stem for p in SPACES.glob("*.space")} == set(SHOWN)


@pytest.mark.parametrize("name", SHOWN)
def test_space_show_counts_match_the_published_spaces(name, capsys):
    decisions, ks, size = SHOWN[name]
    assert main(["space", "show", str(SPACES / f"{name}.space"), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["num_decisions"] == decisions == len(ks)
    assert [len(d["choices"]) for d in shown["decisions"]] == ks
    assert shown["sum_k"] == sum(ks) and shown["size"] == size == math.prod(ks)


def test_the_papers_sums_of_k():
    """The learning rates of the paper's experiments: 1/141 (ProxylessNAS) and 1/180 (ENAS micro)."""
    assert sum(SHOWN["proxylessnas"][1]) == 141 and sum(SHOWN["enas_micro"][1]) == 180


# ------------------------------------------------------------------- the checks fail on a space that is wrong
def _compiled(name: str, old: str, new: str):
    text = (SPACES / f"{name}.space").read_text(encoding="utf-8")
    if text.count(old) != 1:  # not an AssertionError: the tests below expect one from the checks only
        raise ValueError(f"{old!r} is not once in spaces/{name}.space")
    return compile_space(parse_space(text.replace(old, new), f"{name}.space"))


@pytest.mark.parametrize("old,new", [
    ("stage s4 width 112 * width repeat 4", "stage s4 width 112 * width repeat 3"),   # a layer fewer
    ("stage s5 width 184 * width stride 2", "stage s5 width 192 * width stride 2"),   # another width
    ("choices tbs_or_skip = tbs, skip", "choices tbs_or_skip = tbs, cn_k1"),          # a 1x1 conv for skip
])
def test_the_fbnet_check_fails_on_a_changed_space(old, new):
    cs = _compiled("fbnet", old, new)
    with pytest.raises(AssertionError):
        check_fbnet(cs)


@pytest.mark.parametrize("old,new", [
    ("stage s4 width 112 * width repeat 2 se 0.25", "stage s4 width 112 * width repeat 2"),        # SE gone
    ("stage s3 width 80 * width stride 2 repeat 4", "stage s3 width 80 * width stride 2 repeat 4 "
                                                    "activation relu"),                               # NL
    ("stage s1 width 24 * width stride 2", "stage s1 width 24 * width stride 1"),                    # stride
])
def test_the_mobilenetv3_check_fails_on_a_changed_space(old, new):
    cs = _compiled("mobilenetv3", old, new)
    with pytest.raises(AssertionError):
        check_mobilenetv3(cs)


def test_the_ofa_check_fails_on_a_changed_space():
    cs = _compiled("ofa_mbv3", "stride 2 depth 2, 3, 4 choose mb\n  stage s4",
                   "stride 2 depth 2, 3 choose mb\n  stage s4")   # s3 without depth 4
    with pytest.raises(AssertionError):
        check_ofa(cs)
    assert distinct_chain_networks(cs) == (9 ** 2 + 9 ** 3 + 9 ** 4) ** 4 * (9 ** 2 + 9 ** 3) * 2 ** 5 * 4


# ------------------------------------------------------------------------------- DARTS / ASNG-NAS cell layouts
def _published_layout(normal: int) -> str:
    """DARTS's (model.py, model_search.py) and ASNG-NAS's (cnn_model_micro.py) layout of ``normal + 2`` cells:
    reductions at cells ``layers // 3`` and ``2 * layers // 3``."""
    layers = normal + 2
    return "".join("r" if i in (layers // 3, 2 * layers // 3) else "n" for i in range(layers))


@pytest.mark.parametrize("space", ["darts", "enas_micro"])
@pytest.mark.parametrize("normal", [1, 3, 4, 6, 7, 10, 12, 18])  # 6 and 10, 18: search and retraining
def test_cell_layouts_put_the_reductions_where_darts_and_asng_nas_do(space, normal):
    cs = load_compiled(SPACES / f"{space}.space", {"size": "8", "channels": "4", "normal_cells": str(normal)})
    kinds = "".join(cs.plan.templates[i.template].name[0] for i in cs.plan.instances)
    assert kinds == _published_layout(normal)
    assert [i.channels for i in cs.plan.instances] == \
        [4 * 2 ** _published_layout(normal)[:j + 1].count("r") for j in range(normal + 2)]


@pytest.mark.parametrize("space", ["darts", "enas_micro"])
def test_the_headers_explicit_layout_is_the_published_one(space):
    """The header's advice for normal_cells = 3k + 2, where `split by` gives the middle group the extra cell:
    its explicit sequence for 8 normal cells is DARTS's and ASNG-NAS's layout."""
    text = (SPACES / f"{space}.space").read_text(encoding="utf-8")
    header = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    advice = header.split("e.g. 8: `", 1)[1].split("`", 1)[0]
    split = "cells normal x normal_cells split by reduction x 2 width channels"
    assert advice.startswith("cells ") and text.count(split) == 1
    cs = compile_space(parse_space(text.replace(split, advice), f"{space}.space", {"size": "8", "channels": "4"}))
    assert "".join(cs.plan.templates[i.template].name[0] for i in cs.plan.instances) == _published_layout(8)
