"""The shipped spaces and the `automl space show|check` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automl.cli import main
from automl.compile import load_compiled

SPACES = sorted(Path("spaces").glob("*.space"))
SMALL = {
    "proxylessnas": ["size=32", "width=0.25", "head=64"],
    "enas_micro": ["size=8", "channels=4", "normal_cells=2"],
    "digits": [],
    "fbnet": ["size=32", "width=0.25", "head=64"],
    "mobilenetv3": ["size=32", "width=0.25", "head=64"],
    "darts": ["size=8", "channels=4", "normal_cells=2"],
    "nasbench201": ["size=8", "channels=4", "cells=1"],
    "ofa_mbv3": ["size=32", "width=0.25", "wide=2", "head=64"],
}


def test_spaces_shipped():
    assert {p.stem for p in SPACES} >= {"proxylessnas", "enas_micro", "digits", "fbnet", "mobilenetv3", "darts",
                                        "nasbench201"}
    assert all(p.stem in SMALL for p in SPACES)


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_every_space_compiles_small(path):
    overrides = dict(item.split("=") for item in SMALL.get(path.stem, []))
    cs = load_compiled(path, overrides)
    assert cs.num_decisions >= 6 and all(k >= 2 for k in cs.num_choices if k != 1) and cs.sum_k > cs.num_decisions
    assert cs.cost_table.min_total() < cs.cost_table.max_total()
    assert cs.overrides == overrides


def test_paper_space_sizes():
    prox = load_compiled("spaces/proxylessnas.space")
    assert (prox.num_decisions, prox.sum_k) == (21, 141)
    assert prox.input_shape == (3, 224, 224) and prox.num_classes == 1000
    assert prox.num_choices == [6, 7, 7, 7] * 5 + [6]
    enas = load_compiled("spaces/enas_micro.space")
    assert (enas.num_decisions, enas.sum_k) == (40, 180)
    assert enas.num_choices[:8] == [2, 2, 5, 5, 3, 3, 5, 5]
    assert enas.input_shape == (3, 32, 32)
    kinds = "".join(enas.plan.templates[i.template].name[0] for i in enas.plan.instances)
    assert kinds == "nnrnnrnn" and enas.plan.instances[0].channels == 16


def test_digits_space_budget():
    cs = load_compiled("spaces/digits.space")
    ct = cs.cost_table
    assert cs.input_shape == (1, 8, 8) and cs.num_classes == 10
    assert cs.num_decisions >= 8 and min(cs.num_choices) >= 3
    assert ct.max_total() >= 10 * ct.min_total() / 2
    per_layer = ct.costs().masked_fill(~ct.mask, float("nan"))
    nonzero = per_layer[per_layer > 0]
    assert nonzero.max() >= 10 * nonzero.min()
    assert cs.stem_size >= 16 and cs.arch_def(ct.cheapest()) is not None


def test_show_json(capsys):
    assert main(["space", "show", "spaces/proxylessnas.space", "--json"]) == 0
    out = capsys.readouterr().out
    obj = json.loads(out)  # exactly one JSON object
    assert obj["name"] == "proxylessnas" and obj["sum_k"] == 141 and obj["num_decisions"] == 21
    assert len(obj["decisions"]) == 21 and obj["decisions"][0]["name"] == "s1_1"
    assert {c["name"] for c in obj["decisions"][1]["choices"]} >= {"skip", "ir_k7_e6"}
    assert obj["decisions"][1]["choices"][-1] == {"name": "skip", "cost": 0.0, "costs": {"params": 0.0, "macs": 0.0}}
    assert obj["min_cost"] < obj["max_cost"] and obj["fixed_cost"] > 0 and "fixed_cost_range" not in obj
    assert obj["size"] == 6 ** 6 * 7 ** 15


@pytest.mark.heavy  # 7 s: compiles the OFA space twice; test_review_dc shows --json of a small elastic space
def test_show_json_of_an_elastic_space_gives_the_fixed_cost_per_combination_of_widths(capsys):
    assert main(["space", "show", "spaces/ofa_mbv3.space", "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    ct = load_compiled("spaces/ofa_mbv3.space").cost_table
    fixed = ct.context("params")[1]
    assert obj["fixed_cost"] is None  # no one number: the stem and head widths are searched
    assert obj["fixed_cost_range"] == [float(fixed.min()), float(fixed.max())]
    assert 0 < obj["fixed_cost_range"][0] <= obj["fixed_cost_range"][1] < obj["min_cost"]


def test_show_table(capsys):
    assert main(["space", "show", "spaces/enas_micro.space", "--set", "channels=8"]) == 0
    out = capsys.readouterr().out
    assert "normal_n1_input1" in out and "D = 40" in out and "sum of K = 180" in out
    assert "channels=8" in out


def test_show_metric(capsys):
    assert main(["space", "show", "spaces/digits.space", "--json", "--metric", "layers"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["metric"] == "layers" and obj["max_cost"] == 9
    assert main(["space", "show", "spaces/digits.space", "--metric", "flops"]) == 2
    assert "has the metrics params, macs, layers" in capsys.readouterr().err


def test_check(capsys):
    assert main(["space", "check", "spaces/digits.space"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("spaces/digits.space: ok:") and "9 decisions" in out[0]


def _doc_blocks():
    import re
    import textwrap
    text = Path("docs/space-language.md").read_text(encoding="utf-8")
    return [textwrap.dedent(m.group(2)) for m in re.finditer(r"^( *)```\n(.*?)^\1```", text, re.S | re.M)]


def test_docs_examples_compile():
    from automl.compile import compile_space
    from automl.dsl import parse_space
    blocks = _doc_blocks()
    tiny = compile_space(parse_space(blocks[0], "tiny.space"))
    assert [d.name for d in tiny.decisions] == ["s1_1", "s1_2", "s2_1", "s2_2"]
    assert tiny.num_choices == [3, 4, 3, 4]

    def block(start):
        return next(b for b in blocks if b.lstrip().startswith(start))
    tutorial = "\n".join(block(s) for s in ("space cifar_chain", "choices block =", "network\n  stem width 24"))
    for metric in (block("metric latency_ms\n  default"), block("metric latency_ms\n  fixed")):
        cs = compile_space(parse_space(tutorial + metric, "cifar_chain.space"))
        assert (cs.num_decisions, cs.sum_k) == (9, 42)
        assert cs.cost_table.metrics == ("params", "macs", "latency_ms")
    lat = cs.cost_table.costs("latency_ms")
    assert lat[0, cs.decisions[0].choices.index("ir_k3_e3")] == 1.2  # `ir_k3_e3 in s1_1` wins
    assert cs.cost_table.fixed["latency_ms"] == 3.1


def test_docs_published_space_examples_compile():
    from automl.compile import compile_space
    from automl.dsl import parse_space

    blocks = {b.split("\n", 1)[0]: b for b in _doc_blocks() if b.startswith("space ")}
    se = compile_space(parse_space(blocks["space se_stages"], "se.space"))
    assert [layer.se for layer in se.plan.layers] == [0.0, 0.0, 0.25, 0.25, 0.0]
    assert se.arch_def(se.cost_table.cheapest())[0][0].endswith("_nre")
    elastic = compile_space(parse_space(blocks["space elastic"], "elastic.space"))
    assert [d.name for d in elastic.decisions] == ["s1_depth", "s1_1", "s1_2", "s1_3", "s2_depth", "s2_1", "s2_2",
                                                   "s2_3"]
    nb = compile_space(parse_space(blocks["space nb201_like"], "nb.space"))
    assert nb.size == 15_625
