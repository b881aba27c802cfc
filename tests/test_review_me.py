"""Review ME: where a .space expression's operator is, values given from outside a file shown as JSON writes them,
and ``family`` only where it means something (the cases ``family_*.space`` of tests/space_cases/)."""

from __future__ import annotations

import json

import pytest

from automl.cli import main
from automl.commands import space as space_cmd
from automl.compile import compile_space
from automl.dsl import ParamError, parse_space
from automl.errors import UserError

HEADER = "space t\ninput 3 x 32 x 32\nclasses 10\nchoices mb = ir_k3_e3, ir_k5_e6\nnetwork\n  stem width 16\n"


def _position(text: str, needle: str, start: int = 0) -> tuple[int, int]:
    """The 1-based line and column of the first ``needle`` in ``text`` from offset ``start``."""
    i = text.index(needle, start)
    return text.count("\n", 0, i) + 1, i - (text.rfind("\n", 0, i) + 1) + 1


def _binops(e) -> list:
    found, stack = [], [e]
    while stack:
        e = stack.pop()
        if type(e).__name__ == "BinOp":
            found.append(e)
            stack += [e.left, e.right]
    return found


@pytest.mark.parametrize("expr, op", [
    ("24 + big * big", "*"),
    ("(big) * (big)", "*"),
    ("(big  # a comment, with a * in it\n  ) //\n  2 - 1", "//"),
    ("24 + (big * big) / 2", " / "),
])
def test_binop_records_its_operator_position(expr, op):
    prefix = "param big = 4\n" + HEADER + "  stage s1 width "
    text = prefix + expr + " choose mb\nend\n"
    value = parse_space(text, "t.space").network.stages[0].options[0].value
    binop = next(b for b in _binops(value) if b.op == op.strip())
    offset = len(prefix) + (expr.index(op) + (op != op.strip()) if "#" not in expr else expr.index(op, expr.index("\n")))
    assert (binop.op_pos.line, binop.op_pos.column) == _position(text, op.strip(), offset)
    assert (value.pos.line, value.pos.column) == _position(text, expr.lstrip("(")[:2], len(prefix))  # unchanged


def test_overflow_caret_at_the_operator(tmp_path, capsys):
    path = tmp_path / "ov.space"
    text = "param big = 4000000000\n" + HEADER + "  stage s1 width 24 + big * big choose mb\nend\n"
    path.write_text(text, encoding="utf-8")
    assert main(["space", "check", str(path)]) == 2
    err = capsys.readouterr().err
    line, col = _position(text, "*")
    assert err.startswith(f"{path}:{line}:{col}: number too large: this `*`"), err
    assert "Traceback" not in err


@pytest.mark.parametrize("value, shown", [(True, "w=true"), (False, "w=false"), (None, "w=null"),
                                          ([1, 2], "w=[1, 2]"), ({"a": 1}, 'w={"a": 1}')])
def test_override_value_shown_as_json(value, shown):
    with pytest.raises(ParamError) as info:
        parse_space("param w = 16\nspace t\n", "t.space", {"w": value})
    assert shown in str(info.value) and info.value.value == shown[2:]
    for word in ("True", "False", "None"):
        assert word not in str(info.value)


def test_override_integer_too_long_to_write_is_a_user_error():
    with pytest.raises(ParamError, match="number too large") as info:
        parse_space("param w = 16\nspace t\n", "t.space", {"w": 10 ** 5000})
    assert "5,001 digits" in str(info.value)


RESOLUTION_SPACE = ("space r\ninput 3 x 64 x 64\nresolution 32, 64\nclasses 10\nnetwork\n  stem width 16\n"
                    "  stage s1 width 24 choose [ir_k3_e3, ir_k5_e6]\nend\n")


def _resolution_space():
    cs = compile_space(parse_space(RESOLUTION_SPACE, "r.space"))
    dec = cs.decisions[cs.resolution_dec]
    return cs, {dec.name: dec.choices[0]}


@pytest.mark.parametrize("shape", [[3, True, 32], [3, None, 32], [3, "32", "32"]])
def test_arch_def_input_shape_shown_as_json(shape):
    cs, names = _resolution_space()
    with pytest.raises(UserError) as info:
        space_cmd._arch_def_resolution("m.json", {"input_shape": shape}, cs, names)
    assert f"got {json.dumps(shape)}" in str(info.value), str(info.value)


def test_arch_def_space_args_shown_as_json():
    cs, names = _resolution_space()
    obj = {"input_shape": [3, 40, 40], "space_args": {"wide": True, "deep": None, "w": "1.5"}}
    with pytest.raises(UserError) as info:
        space_cmd._arch_def_resolution("m.json", obj, cs, names)
    assert "--set wide=true --set deep=null --set w=1.5" in str(info.value), str(info.value)


@pytest.mark.parametrize("lines", [
    ["  family mobilenetv3", "  activation hard_swish", "  stem width 16"],
    ["  activation hard_swish", "  family mobilenetv3", "  stem width 16"],
])
def test_family_first_in_the_network_is_kept(lines):
    text = "\n".join(["space t", "input 3 x 32 x 32", "classes 10", "network", *lines,
                      "  stage s1 width 24 choose [ir_k3_e3, ir_k5_e6]", "  head width 64", "end", ""])
    cs = compile_space(parse_space(text, "t.space"))
    assert type(cs.build_standalone([0] * cs.num_decisions)).__name__ == "MobileNetV3"
