"""Review hm: a mistake in a .space file ends in one short, located message, also where the mistake is a very
long op name (the message names it shortened, as :func:`automl.errors.shortened` writes it)."""

from __future__ import annotations

import pytest

from automl.compile import compile_space
from automl.dsl import parse_space
from automl.errors import SpaceError

HEADER = "space p\ninput 3 x 32 x 32\nclasses 10\n"


def _error(choices: str) -> SpaceError:
    text = HEADER + f"network\n  stem width 16\n  stage a width 16 choose [{choices}]\nend\n"
    with pytest.raises(SpaceError) as info:
        compile_space(parse_space(text, "p.space"))
    return info.value


def test_same_op_written_with_a_long_number_is_named_shortened():
    long_op = "ir_k3_e1." + "0" * 500 + "1"  # the same expansion as ir_k3_e1 once read as a number
    e = _error(f"ir_k3_e1, {long_op}")
    assert e.line == 6 and "is the same op as 'ir_k3_e1'" in e.message
    assert long_op not in e.message and "(510 characters)" in e.message
    assert len(e.message) < 400


def test_op_offered_twice_with_a_long_name_is_named_shortened():
    long_op = "ir_k3_e1_se0." + "1" * 300  # a valid op: squeeze-excitation ratio 0.111...
    e = _error(f"{long_op}, {long_op}")
    assert e.line == 6 and "is offered twice in stage a" in e.message
    assert long_op not in e.message and len(e.message) < 300


def test_unknown_long_op_is_named_shortened():
    long_name = "zz" * 300
    e = _error(f"{long_name}, ir_k3_e3")
    assert e.line == 6 and e.message.startswith("unknown op or choice set 'zzzz")
    assert long_name not in e.message and "(600 characters)" in e.message


def test_malformed_long_op_is_named_shortened():
    long_op = "ir_k3_e1_" + "x" * 300  # a known family with a suffix it does not know
    e = _error(f"{long_op}, ir_k3_e3")
    assert e.line == 6 and e.message.startswith("op 'ir_k3_e1_xxx")
    assert e.message.startswith(f"op 'ir_k3_e1_{'x' * 31}'...") and "(309 characters)" in e.message


SHORT = ["ir_k3_e3, ir_k3_e3", "ir_k3_e3, ir_k3_e3.0", "zz, ir_k3_e3", "ir_k4_e3, ir_k3_e3"]


@pytest.mark.parametrize("choices", SHORT)
def test_short_op_names_are_named_in_full(choices):
    first, second = (c.strip() for c in choices.split(","))
    e = _error(choices)
    assert e.line == 6 and (f"'{first}'" in e.message or f"'{second}'" in e.message)
    assert "characters)" not in e.message
