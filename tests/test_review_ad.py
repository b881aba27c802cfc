"""Review AD: mistakes in a .space file (or a --set value) that ended in an internal error, a hang, a wrong
message or advice that does not work; each is now one located message, exit 2, no traceback."""

from __future__ import annotations

import json

import pytest

import automl.compile.resolve as resolve
from automl.cli import main
from automl.compile import compile_space
from automl.dsl import ParamError, parse_space
from automl.errors import SpaceError

HEADER = "space t\nparam classes = 10\ninput 3 x 32 x 32\nclasses classes\nchoices mb = ir_k3_e3, ir_k5_e6\n"
CHAIN = HEADER + "network\n  stem width 16\n  stage s1 width 24 stride 2 repeat 2 choose mb then [mb, skip]\nend\n"
CELLS = """space c
input 3 x 32 x 32
classes 10
choices ops = OPS
cell n inputs x
  node a sums edges from x through ops
  output a
end
network
  stem width 16
  cells n x 2 width 16
end
"""


def compile_text(text: str, overrides=None):
    return compile_space(parse_space(text, "t.space", overrides))


def space_error(text: str, overrides=None) -> SpaceError:
    with pytest.raises(SpaceError) as info:
        compile_text(text, overrides)
    return info.value


# ---- squeeze-excitation that timm would build with 0 channels --------------------------------------

def test_stage_se_that_rounds_to_no_channel_is_an_error_at_se():
    e = space_error(CHAIN.replace("repeat 2 choose", "repeat 2 se 0.01 choose"))
    assert (e.line, e.column) == (8, 42), str(e)
    assert "layer s1_1" in str(e) and "`se 0.01`" in str(e) and "0 channels" in str(e), str(e)
    assert "at least 0.0625 (1/16)" in str(e), str(e)


@pytest.mark.parametrize("op, shown", [("ds_k3_se0.02", "0.02"), ("ir_k3_e3_se0.0000000000000000001", "1e-19")])
def test_op_se_suffix_that_rounds_to_no_channel_is_an_error_at_the_op(op, shown):
    e = space_error(CHAIN.replace("ir_k5_e6", op))
    assert (e.line, e.column) == (8, 46), str(e)  # where the layer offers it, through set mb
    assert f"'{op}'" in str(e) and f"x {shown} down to 0" in str(e), str(e)


def test_se_on_the_smallest_elastic_width_is_checked():
    text = HEADER + ("network\n  stem width 16\n  stage s1 width 8, 16 stride 2 choose mb\n"
                     "  stage s2 width 24 se 0.05 choose mb\nend\n")
    e = space_error(text)  # 16 x 0.05 rounds to 1 channel, 8 x 0.05 to 0
    assert e.line == 9 and "layer s2_1" in str(e) and "at 8 input channels" in str(e), str(e)


def test_se_that_keeps_one_channel_compiles():
    compile_text(CHAIN.replace("repeat 2 choose", "repeat 2 se 0.0625 choose"))  # 16 x 0.0625 = 1 channel
    mbv3 = CHAIN.replace("  stem", "  family mobilenetv3\n  stem").replace("end\n", "  head width 64\nend\n")
    compile_text(mbv3.replace("repeat 2 choose", "repeat 2 se 0.001 choose"))  # MobileNetV3 rounds SE up to 8


def test_se_too_small_exits_2_from_the_cli(tmp_path, capsys):
    path = tmp_path / "t.space"
    path.write_text(CHAIN.replace("repeat 2 choose", "repeat 2 se 0.01 choose"), encoding="utf-8")
    assert main(["space", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{path}:8:42:" in err, err


# ---- choice sets inside one another --------------------------------------------------------------

def _nested_sets(depth: int) -> str:
    sets = "choices m0 = ir_k3_e3, ir_k5_e6\n" + "".join(f"choices m{i + 1} = m{i}\n" for i in range(depth - 1))
    return CHAIN.replace("choices mb = ir_k3_e3, ir_k5_e6\n", sets + f"choices mb = m{depth - 1}\n")


def test_sets_nested_too_deep_are_an_error_at_the_set_not_an_expression():
    e = space_error(_nested_sets(1200))
    assert "more than 100 choice sets inside one another" in str(e), str(e)
    assert "expression" not in str(e) and (e.line, e.column) == (6, 14), str(e)  # m1 = m0, the 101st set


def test_sets_nested_100_deep_compile():
    assert compile_text(_nested_sets(99)).decisions[0].choices == ("ir_k3_e3", "ir_k5_e6")


def test_sets_that_include_one_another_twice_are_not_unfolded_in_full(monkeypatch):
    """a(i+1) = a(i), b(i) with b(i) = a(i) doubles at each level: 2**14 ops for the outermost set, which the
    compiler unfolded in full before it found the first op offered twice (2**30 would never end)."""
    lines = ["choices a0 = ir_k3_e3", "choices b0 = a0"]
    lines += [x for i in range(14) for x in (f"choices a{i + 1} = a{i}, b{i}", f"choices b{i + 1} = a{i + 1}")]
    text = CHAIN.replace("choices mb", "\n".join(reversed(lines)) + "\nchoices mb")  # the largest set first
    calls = []
    real = resolve.is_op
    monkeypatch.setattr(resolve, "is_op", lambda name: calls.append(name) or real(name))
    e = space_error(text)
    assert "'ir_k3_e3' is offered twice in choice set b14 (through choice set 'a0')" in str(e), str(e)
    assert len(calls) < 100, len(calls)


# ---- --set values --------------------------------------------------------------------------------

def test_set_whole_number_with_an_exponent_beyond_2_62_names_the_flag():
    with pytest.raises(ParamError) as info:
        parse_space(CHAIN, "t.space", {"classes": "1e30"})
    assert "--set classes=1e30: number too large" in str(info.value), str(info.value)
    assert parse_space(CHAIN, "t.space", {"classes": "1e1"}).param_values["classes"] == 10


# ---- messages whose advice did not work ----------------------------------------------------------

def test_chain_block_in_a_cell_lists_the_ops_an_edge_takes():
    e = space_error(CELLS.replace("OPS", "ir_k3_e3, sep_k3"))
    assert "cells use" in str(e) and "sep_k3" in str(e) and "resnet_block" not in str(e), str(e)


def test_too_many_reductions_says_how_to_fix_it():
    e = space_error(CELLS.replace("OPS", "sep_k3, identity").replace("cell n inputs x", "cell n inputs x stride 2")
                    .replace("width 16\nend", "width 40000\nend"))
    fix = "lower the cells' `width` (line 11) to at most 16384, or use fewer reductions"  # 65536 >> 2 reductions
    assert "from 40000 to 80000" in str(e) and fix in str(e), str(e)


@pytest.mark.parametrize("sep", ["\u2028", "\x85"])
def test_unicode_line_separator_asks_for_a_line_break(sep):
    e = space_error(CHAIN.replace("\nnetwork", sep + "network"))
    assert "a Unicode line separator; use a plain line break" in str(e) and "plain spaces" not in str(e), str(e)


@pytest.mark.parametrize("entry, message", [
    ("mb = 3", "'mb' is a choice set: give each of its ops a cost (`ir_k3_e3 = VALUE`) or write `default = VALUE`"),
    ("s1_1 = 3", "'s1_1' is a decision: an entry names one of its choices, `ir_k3_e3 in s1_1 = VALUE`"),
    ("ir_k3_e3 in zz = 3", "unknown decision 'zz'; the decisions are: s1_1, s1_2"),
])
def test_metric_entry_naming_no_choice_says_what_the_name_is(entry, message):
    e = space_error(CHAIN + f"metric lat\n  default = 1\n  {entry}\nend\n")
    assert e.line == 12 and message in str(e), str(e)


@pytest.mark.parametrize("text", [
    CHAIN.replace("end\n", "  head width 64 repeat 2\nend\n"),
    CHAIN.replace("end\n", "  head repeat 2\nend\n"),  # read as no head at all
    CELLS.replace("OPS", "sep_k3, identity").replace("width 16\nend", "width 16\n  head width 64 repeat 2\nend"),
])
def test_head_repeat_is_not_an_option(text):
    e = space_error(text)
    assert "'repeat' is not an option here: the head is one conv" in str(e), str(e)


@pytest.mark.parametrize("old, new, shown", [
    ("repeat 2", "repeat 2.0000001", "repeat must be a whole number, got 2.0000001"),
    ("classes classes", "classes 1.9999999", "classes must be at least 2 (a classifier of one class learns nothing), "
                                             "got 1.9999999"),
])
def test_a_number_close_to_a_whole_one_is_shown_in_full(old, new, shown):
    e = space_error(CHAIN.replace(old, new))
    assert shown in str(e), str(e)


def test_cell_named_like_a_fixed_reduction_block_is_an_error():
    """`cells resnet_block x 2` would name the template, not NAS-Bench-201's block, without a word."""
    text = (CELLS.replace("OPS", "sep_k3, identity").replace("cell n inputs x", "cell resnet_block inputs x")
            .replace("cells n x 2", "cells resnet_block x 2"))
    e = space_error(text)
    assert (e.line, e.column) == (5, 6) and "name of a fixed reduction block" in str(e), str(e)


# ---- keywords glued to what follows ----------------------------------------------------------------

@pytest.mark.parametrize("old, new, where, word", [
    ("choose mb then", "choosemb then", (8, 39), "choosemb"),  # was read as `choose mb`
    ("repeat 2", "repeats 2", (8, 30), "repeats"),  # was `repeat s`, an error at the 2
    ("repeat 2", "repeat2", (8, 30), "repeat2"),
    ("then [mb", "thenx [mb", (8, 49), "thenx"),  # was `then x`, an error at the '['
    ("choose mb then [mb, skip]", "fixedir_k3_e3", (8, 39), "fixedir_k3_e3"),
])
def test_a_keyword_glued_to_a_word_is_one_name(old, new, where, word):
    with pytest.raises(SpaceError) as info:
        parse_space(CHAIN.replace(old, new), "t.space")
    e = info.value
    assert (e.line, e.column) == where and f"unexpected name '{word}'" in str(e), str(e)


def test_a_keyword_glued_to_a_parameter_is_not_read_as_both():
    with pytest.raises(SpaceError) as info:  # `repeat n` before: a valid space of 3 layers
        parse_space("param n = 3\n" + CHAIN.replace("repeat 2", "repeatn"), "t.space")
    assert "unexpected name 'repeatn'" in str(info.value) and "did you mean 'repeat'?" in str(info.value)


@pytest.mark.parametrize("shape", ["3x32x32", "3x32 x 32", "3x 32x32", "3 x 32x32"])
def test_the_shape_glued_to_its_numbers_still_reads(shape):
    assert compile_text(CHAIN.replace("3 x 32 x 32", shape)).input_shape == (3, 32, 32)


def test_x_glued_to_a_count_says_where_the_spaces_go():
    with pytest.raises(SpaceError) as info:
        parse_space(CELLS.replace("cells n x 2", "cells n x2"), "t.space")
    assert (info.value.line, info.value.column) == (11, 11) and "put spaces around `x`: `x 2`" in str(info.value)


def test_a_metric_entry_for_a_choice_named_like_a_shape_reads():
    text = (CELLS.replace("OPS", "sep_k3, identity").replace("inputs x", "inputs x1")
            .replace("sums edges from x ", "sums 1 of x1 "))  # an input decision whose choice is x1
    cs = compile_text(text + "metric lat\n  default = 1\n  x1 = 2\nend\n")
    assert cs.decisions[0].choices == ("x1",) and cs.cost_table.costs("lat")[0, 0] == 2


@pytest.mark.parametrize("value, expect", [(0.5, 0.5), (2, 2.0)])
def test_override_given_as_a_number_applies(value, expect):
    """A manifest's or a Python caller's space_args may hold numbers (JSON), not only the text of --set."""
    text = CHAIN.replace("param classes = 10\n", "param classes = 10\nparam w = 1.0\n")
    text = text.replace("width 16", "width 16 * w")
    assert parse_space(text, "t.space", {"w": value}).param_values["w"] == expect


@pytest.mark.parametrize("value", [None, True, [1]])
def test_override_that_is_not_a_number_is_a_param_error(value):
    with pytest.raises(ParamError) as info:
        parse_space(CHAIN, "t.space", {"classes": value})
    assert f"--set classes={json.dumps(value)}: expected a number" in str(info.value), str(info.value)


def test_resolution_above_the_input_size_says_why_and_how_to_fix():
    e = space_error(CHAIN.replace("input 3 x 32 x 32\n", "input 3 x 32 x 32\nresolution 24, 32, 40\n"))
    assert (e.line, e.column) == (4, 20), str(e)
    assert "resolution 40 is larger than the input size 32" in str(e), str(e)
    assert "make the input 40 x 40 or remove 40" in str(e), str(e)


def test_space_show_and_check_of_more_architectures_than_a_float_holds(tmp_path, capsys):
    """`{cs.size:.3g}` of a space with over 10^308 architectures raised OverflowError (exit 1)."""
    from automl.cli import main

    stages = "\n".join(f"  stage x{i} width 24 choose mb" for i in range(520))  # 4^520: about 10^313
    path = tmp_path / "big.space"
    path.write_text("space big\ninput 3 x 32 x 32\nclasses 10\nchoices mb = ir_k3_e3, ir_k5_e6, ir_k3_e6, "
                    "ir_k5_e3\nnetwork\n  stem width 16\n" + stages + "\nend\n")
    for verb in ("check", "show"):
        assert main(["space", verb, str(path)]) == 0
        out = capsys.readouterr().out
        assert "~10^313 architectures" in out, out
