"""Golden tests of the .space grammar and the IR the parser builds."""

from __future__ import annotations

import dataclasses

import lark
import pytest

from automl.dsl import grammar_text, ir, load_space, parse_space, space_parser

SMALL = """
# a comment line
space tiny          # trailing comment
param width = 1.0
param classes = 10
input 1 x 8 x 8
classes classes
choices mb = ir_k3_e1, ir_k3_e3
choices mb_or_skip = mb, skip
network
  activation relu
  stem width 16 * width kernel 3
  stage s1 width 24 stride 2 repeat 3 choose mb then mb_or_skip
  layer last width (32 + 8) * width choose [ds_k3, ir_k5_e6]
  head width 64
end
metric latency
  default = 1
  fixed = 0.5
  skip = 0
  ir_k3_e3 in s1_2 = 2.5
end
"""


def test_grammar_is_lalr_strict():
    pytest.importorskip("interegular", reason="Lark's strict mode needs interegular (lark[interegular])")
    p = space_parser()
    assert p.options.parser == "lalr"
    assert p.options.strict
    # the grammar lives in its own file
    assert "network_block" in grammar_text()


def test_golden_small_space():
    s = parse_space(SMALL, "tiny.space")
    assert s.name == "tiny" and s.name_pos == ir.Pos(3, 7)
    assert [(p.name, p.default, p.value) for p in s.params] == [("width", 1.0, 1.0), ("classes", 10, 10)]
    assert isinstance(s.params[0].value, float) and isinstance(s.params[1].value, int)
    assert [type(e).__name__ for e in s.input_shape] == ["Num", "Num", "Num"]
    assert s.classes == ir.Ref("classes", ir.Pos(7, 9))
    assert [(c.name, [n.name for n in c.items]) for c in s.choice_sets] == [
        ("mb", ["ir_k3_e1", "ir_k3_e3"]), ("mb_or_skip", ["mb", "skip"])]
    net = s.network
    assert net.activation.name == "relu"
    assert [o.key for o in net.stem] == ["width", "kernel"]
    assert net.stem[0].value == ir.BinOp("*", ir.Num(16, ir.Pos(12, 14)), ir.Ref("width", ir.Pos(12, 19)),
                                         ir.Pos(12, 14))
    s1, last = net.stages
    assert (s1.name, s1.single, [o.key for o in s1.options]) == ("s1", False, ["width", "stride", "repeat"])
    assert s1.body.first == ir.ChoiceRef("mb", ir.Pos(13, 46))
    assert s1.body.rest == ir.ChoiceRef("mb_or_skip", ir.Pos(13, 54))
    assert last.single and isinstance(last.body.first, ir.ChoiceInline)
    assert [n.name for n in last.body.first.items] == ["ds_k3", "ir_k5_e6"]
    assert last.body.rest is None
    assert net.head[0].value == ir.Num(64, ir.Pos(15, 14))
    (m,) = s.metrics
    assert m.name == "latency" and m.fixed == 0.5
    assert [(e.choice and e.choice.name, e.decision and e.decision.name, e.value) for e in m.entries] == [
        (None, None, 1.0), ("skip", None, 0.0), ("ir_k3_e3", "s1_2", 2.5)]


def test_golden_cells():
    s = parse_space("""
cell red inputs a, b stride 2
  node n1 sums 2 of earlier through [identity, sep_k3]
  node n2 sums 1 of a, n1 through ops
end
network
  stem width 3 * c
  cells norm x 6 split by red x 2 width c
end""", "c.space")
    (t,) = s.cells
    assert [n.name for n in t.inputs] == ["a", "b"] and t.stride == ir.Num(2, ir.Pos(2, 29))
    n1, n2 = t.nodes
    assert n1.inputs is None and n2.inputs[1].name == "n1" and n2.ops == ir.ChoiceRef("ops", ir.Pos(4, 35))
    layout = s.network.cells
    assert [(i.name, i.count.value) for i in layout.items] == [("norm", 6)]
    assert layout.split.name == "red" and layout.options[0].key == "width"


@pytest.mark.parametrize("text", [
    "param width = 1\nnetwork stem width width end",          # a keyword as a parameter name
    "param x = 3\ninput 1 x x x x",                            # even 'x'
    "param end = 3\nclasses end",
])
def test_keywords_are_soft(text):
    parse_space(text, "k.space")


def test_arithmetic_precedence():
    s = parse_space("classes 2 + 3 * 4 - -1 // 2", "a.space")
    e = s.classes
    assert e.op == "-" and e.left.op == "+" and e.left.right.op == "*" and e.right.op == "//"
    assert isinstance(e.right.left, ir.Neg)


def test_numbers():
    s = parse_space("param a = 3\nparam b = 2.5e-1\nparam c = -4\nparam d = .5", "n.space")
    assert [p.value for p in s.params] == [3, 0.25, -4, 0.5]


def test_overrides_keep_types():
    s = load_space("spaces/digits.space", {"width": "2", "size": "16.0"})
    vals = s.param_values
    assert vals["width"] == 2.0 and isinstance(vals["width"], float)
    assert vals["size"] == 16 and isinstance(vals["size"], int)
    assert s.overrides == {"width": "2", "size": "16.0"}


def test_ir_is_frozen():
    s = parse_space("space t", "t.space")
    with pytest.raises(dataclasses.FrozenInstanceError, match="name"):
        s.name = "u"


def test_lark_errors_never_escape():
    for text in ["network", "]", "space", "param a =", "input 3 x", "((((", "metric m a in = 1 end"]:
        with pytest.raises(Exception) as info:
            parse_space(text, "e.space")
        assert type(info.value).__name__ == "SpaceError"
        assert not isinstance(info.value, lark.exceptions.LarkError)
