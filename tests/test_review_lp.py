"""Review LP: an expression with no value names the parameter values that fed it and says how to fix it; a `×`
gets the hint of where it stands (`*` in an expression, the letter x in `input`); network lines out of the order
the network is built in (stem, stages or cells, head) are one error at the misplaced line."""

from __future__ import annotations

import pytest

from automl.cli import main
from automl.compile import compile_space
from automl.dsl import parse_space
from automl.errors import SpaceError

GIVEN = "given with --set or a recipe's space_args"
HEAD = ("space tiny\nparam classes = 10\nparam width = 1.0\ninput 1 x 8 x 8\nclasses classes\n"
        "choices mb = ir_k3_e1, ir_k3_e3\nnetwork\n")
STEM = "  stem width 16 * width\n"
S1 = "  stage s1 width 24 * width repeat 2 choose mb then [mb, skip]\n"
S2 = "  stage s2 width 32 stride 2 choose mb\n"
HEADL = "  head width 128\n"


def _space(*lines: str) -> str:
    return HEAD + "".join(lines) + "end\n"


def _error(text: str, overrides=None) -> SpaceError:
    with pytest.raises(SpaceError) as info:
        compile_space(parse_space(text, "t.space", overrides))
    return info.value


def _cli(tmp_path, capsys, text: str, *args: str) -> str:
    path = tmp_path / "t.space"
    path.write_text(text, encoding="utf-8")
    assert main(["space", "check", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.replace(str(path), "t.space")


# ---- 1. expressions with no value: which values fed them, from where, and the fix -----------------------------

def test_overflow_from_set_names_the_value_and_the_fix(tmp_path, capsys):
    err = _cli(tmp_path, capsys, _space(STEM, S1, HEADL), "--set", "width=1e308")
    first = err.splitlines()[0]
    assert first.startswith("t.space:8:17: number too large"), err  # at the `*` that overflows
    assert f"(from width=1e308, {GIVEN})" in first and "choose a value of width that keeps it finite" in first, err


def test_division_by_zero_from_set_names_the_value_and_the_fix(tmp_path, capsys):
    err = _cli(tmp_path, capsys, _space("  stem width 16 / width\n", S1, HEADL), "--set", "width=0")
    first = err.splitlines()[0]
    assert first.startswith("t.space:8:19: division by zero"), err
    assert f"(from width=0, {GIVEN})" in first and "non-zero" in first, err


def test_the_error_carries_the_parameters_given_from_outside():
    """A recipe's space_args are reworded as its keys from ``SpaceError.given`` (automl.pipeline.setup)."""
    e = _error(_space("  stem width 16 / width\n", S1, HEADL), {"width": "0"})
    assert e.given == ("width",) and f"width=0, {GIVEN}" in e.message


def test_division_by_a_file_parameter_names_its_line():
    text = _space("  stem width 16 / width\n", S1, HEADL).replace("param width = 1.0", "param width = 0")
    e = _error(text)
    assert (e.line, e.column) == (8, 19) and e.given == ()
    assert "(from `param width = 0` at line 3)" in e.message and "choose a value of width" in e.message, e.message


def test_division_by_a_literal_zero_says_how_to_fix_it():
    e = _error(_space("  stem width 16 // 0\n", S1, HEADL))
    assert (e.line, e.column) == (8, 20)
    assert e.message.startswith("division by zero") and "divide by a number other than 0" in e.message, e.message
    assert "(from" not in e.message


def test_whole_number_overflow_names_both_parameters_and_the_limit():
    params = "param width = 1.0\nparam a = 9\nparam b = 3000000000"
    text = _space("  stem width a * b * b\n", S1, HEADL).replace("param width = 1.0", params)
    e = _error(text)
    assert e.message.startswith("number too large") and "2**62" in e.message, e.message
    assert "`param a = 9` at line 4" in e.message and "`param b = 3000000000` at line 5" in e.message, e.message
    assert "choose values of a, b that keep it within 2**62" in e.message, e.message


# ---- 2. `×`: the fix depends on where it stands ---------------------------------------------------------------

def test_times_sign_in_an_expression_says_write_a_star(tmp_path, capsys):
    err = _cli(tmp_path, capsys, _space(STEM, S1.replace("24 * width", "24 \u00d7 width"), HEADL))
    first = err.splitlines()[0]
    assert first.startswith("t.space:9:21: unexpected character '\u00d7'"), err
    assert "write `*` in its place: `24 * width`" in first, err


def test_times_sign_in_input_says_write_the_letter_x(tmp_path, capsys):
    err = _cli(tmp_path, capsys, _space(STEM, S1, HEADL).replace("input 1 x 8 x 8", "input 1 \u00d7 8 x 8"))
    first = err.splitlines()[0]
    assert first.startswith("t.space:4:9: unexpected character '\u00d7'"), err
    assert "write the letter `x`: `input 3 x 32 x 32`" in first and "`*`" not in first, err


# ---- 3. network lines out of the order it is built in ----------------------------------------------------------

ORDER = "the stem, then its stages and layers (or its cells) in the order written, then the head"


def test_stage_after_head_is_an_error_at_the_stage(tmp_path, capsys):
    err = _cli(tmp_path, capsys, _space(STEM, S1, HEADL, S2))
    first = err.splitlines()[0]
    assert first.startswith("t.space:11:3: `stage s2` comes after the `head` (line 10)"), err
    assert ORDER in first and "move it above the `head` line" in first, err


def test_stage_before_stem_is_an_error_at_the_stage():
    e = _error(_space(S2.replace("s2", "s0"), STEM, S1, HEADL))
    assert (e.line, e.column) == (8, 3), str(e)
    assert e.message.startswith("`stage s0` comes before the `stem` (line 9)") and ORDER in e.message, e.message


def test_layer_after_head_and_head_before_stem():
    e = _error(_space(STEM, S1, HEADL, "  layer l9 width 32 choose mb\n"))
    assert (e.line, e.column) == (11, 3) and e.message.startswith("`layer l9` comes after the `head`"), e.message
    e = _error(_space(HEADL, STEM, S1))
    assert (e.line, e.column) == (8, 3) and e.message.startswith("the `head` comes before the `stem` (line 9)")


def test_cells_after_head_is_an_error_at_the_layout():
    text = ("space c\ninput 3 x 8 x 8\nclasses 10\ncell a inputs x\n  node n1 sums edges from x through "
            "[identity, conv_k3]\n  output n1\nend\nnetwork\n  stem width 8\n  head bn\n  cells a x 2 width 8\nend\n")
    e = _error(text)
    assert (e.line, e.column) == (11, 3), str(e)
    assert e.message.startswith("the `cells` layout comes after the `head` (line 10)"), e.message
    compile_space(parse_space(text.replace("  head bn\n  cells a x 2 width 8\n", "  cells a x 2 width 8\n  head bn\n"),
                              "c.space"))


def test_lines_in_order_compile():
    cs = compile_space(parse_space(_space(STEM, S1, S2, HEADL), "t.space"))
    assert [d.name for d in cs.decisions] == ["s1_1", "s1_2", "s2_1"]
