"""Review CO: .space mistakes that were reported at the wrong place or without a fix (session 33)."""

from __future__ import annotations

import pytest

from automl.compile import compile_space
from automl.compile.costs import CostTable
from automl.dsl import parse_space
from automl.errors import SpaceError, UserError

HEAD = "space t\ninput 3 x 32 x 32\nclasses 10\nchoices mb = ir_k3_e3, ds_k3\n"
NET = "network\n  stem width 16\n  stage s1 width 24 choose mb\nend\n"


def _error(text: str) -> SpaceError:
    with pytest.raises(SpaceError) as info:
        parse_space(text, "t.space")
    return info.value


def test_resolution_with_one_size_is_an_error_at_the_statement():
    # was: `5:1: unexpected 'network'; expected ','`, at the statement after it, without a fix
    e = _error(HEAD + "resolution 32\n" + NET)
    assert (e.line, e.column) == (5, 1), str(e)
    assert "at least two input sizes" in e.message and "remove `resolution`" in e.message


def test_resolution_with_two_sizes_still_parses():
    space = parse_space(HEAD + "resolution 16, 32\n" + NET, "t.space")
    assert len(space.resolutions) == 2


@pytest.mark.parametrize("old, new, keyword, after", [
    ("stem width 16", "stem width", "stage", "width"),            # the value left out at the end of a line
    ("width 24 choose", "width 24 stride choose", "choose", "stride"),   # ... or in the middle of one
    ("classes 10", "classes", "choices", "classes"),
    ("input 3 x 32 x 32", "input 3 x 32 x", "classes", "x"),
])
def test_a_value_left_out_names_the_keyword_read_as_a_parameter(old, new, keyword, after):
    e = _error((HEAD + NET).replace(old, new, 1))
    assert f"the `{keyword}` on line" in e.message and "was read as a parameter" in e.message, str(e)
    assert f"write the value after that `{after}`" in e.message, str(e)


@pytest.mark.parametrize("old, new, keyword, what", [
    ("choices mb = ir_k3_e3, ds_k3", "choices mb =", "network", "a name of the list"),
    ("space t", "space", "input", "the space's name"),
    ("network\n", "network\n  activation\n", "stem", "the activation"),
])
def test_a_name_left_out_names_the_keyword_read_as_the_name(old, new, keyword, what):
    e = _error((HEAD + NET).replace(old, new, 1))
    assert f"the `{keyword}` on line" in e.message and f"was read as {what}" in e.message, str(e)


def test_a_parameter_named_like_a_keyword_is_not_taken_for_a_missing_value():
    text = "param width = 2\n" + (HEAD + NET).replace("stem width 16", "stem width width kernel 3 3")
    e = _error(text)
    assert "was read as a parameter" not in e.message, str(e)


def test_a_list_of_values_ending_in_a_comma_is_not_taken_for_a_list_of_names():
    # was: "separate the names of a list with `,`: `choose, mb`", a fix that makes another error
    e = _error((HEAD + NET).replace("width 24 choose", "width 24, choose", 1))
    assert "separate the names" not in e.message, str(e)
    assert "the `choose` on line 7 was read as a parameter" in e.message and "remove the `,`" in e.message, str(e)


@pytest.mark.parametrize("name, fixed", [("ir-k3-e6", "ir_k3_e6"), ("ir_k3_e6-se0.25", "ir_k3_e6_se0.25")])
def test_a_dash_in_an_op_name_says_to_write_underscores(name, fixed):
    e = _error((HEAD + NET).replace("choose mb", f"choose [mb, {name}]"))
    assert f"names are written with `_`, not `-`: `{fixed}`" in e.message, str(e)


def test_a_dash_in_a_choice_set_name_says_to_write_underscores():
    e = _error((HEAD + NET).replace("choices mb", "choices mb-or-skip"))
    assert (e.line, e.column) == (4, 11) and "`mb_or_skip`" in e.message, str(e)


def _compile_error(text: str) -> SpaceError:
    with pytest.raises(SpaceError) as info:
        compile_space(parse_space(text, "t.space"))
    return info.value


def test_an_op_name_in_capitals_suggests_the_lower_case_op():
    # was: "unknown op or choice set 'IR_K3_E3'; the choice sets are: mb"
    e = _compile_error((HEAD + NET).replace("choose mb", "choose [mb, IR_K3_E3]"))
    assert "did you mean 'ir_k3_e3'?" in e.message, str(e)


def test_an_unknown_op_lists_the_ops_also_when_the_space_has_choice_sets():
    # was: "unknown op or choice set 'mbconv3'; the choice sets are: mb" (no op named)
    e = _compile_error((HEAD + NET).replace("choose mb", "choose [mb, mbconv3]"))
    assert "the ops are: " in e.message and "ir_k3_e6" in e.message and "the choice sets are: mb" in e.message, str(e)


def test_a_latency_table_for_a_space_with_its_own_latency_metric_says_what_to_rename():
    # was: "the cost table already has a metric 'latency'" (which table? what to do?)
    table = CostTable([["a", "b"]], {"params": [[1, 2]], "latency": [[0.1, 0.2]]}, {"params": 0, "latency": 0})
    with pytest.raises(UserError, match=r"`metric latency` block: rename that block"):
        table.add_metric("latency", [[0.3, 0.4]])
    with pytest.raises(UserError, match=r"the compiler measures it"):
        table.add_metric("params", [[0.3, 0.4]])


def test_an_empty_space_arg_says_what_to_give():
    # was: "--set classes=: expected a number" (e.g. `--set classes=$N` with N unset)
    e = _error_with(HEAD.replace("classes 10", "param n = 10\nclasses n") + NET, {"n": ""})
    assert "--set n=: expected a number, such as its default 10" in str(e), str(e)


@pytest.mark.parametrize("value", ["1e999", "-1e400"])
def test_a_space_arg_beyond_the_largest_real_number_is_too_large(value):
    # was: "expected a finite number" for a number that is finite as written; the docs promise "number too large"
    e = _error_with("param w = 1.0\n" + HEAD + NET.replace("width 16", "width 16 * w"), {"w": value})
    assert f"--set w={value}: number too large" in str(e), str(e)


def _error_with(text: str, overrides: dict) -> SpaceError:
    with pytest.raises(SpaceError) as info:
        parse_space(text, "t.space", overrides)
    return info.value


@pytest.mark.parametrize("shape, fixed", [("3xsize x size", "3 x size"), ("3x32xsize", "3 x 32 x size")])
def test_a_shape_x_glued_to_a_parameter_says_to_put_spaces_around_it(shape, fixed):
    # was: "`3xsize`: a number takes no unit: write `3`" (a fix that drops the height), or no hint at all
    e = _error("param size = 32\n" + (HEAD + NET).replace("input 3 x 32 x 32", f"input {shape}"))
    assert (e.line, e.column) == (3, 7), str(e)
    assert f"put spaces around `x`: `{fixed}`" in e.message and "unit" not in e.message, str(e)


@pytest.mark.parametrize("line", ["param p = 2 * 8", "param p = x", "param p = (2)"])
def test_a_parameter_default_written_as_an_expression_says_where_expressions_go(line):
    # was: "unexpected '*'; expected one of 'cell', 'choices', ..." with no fix
    e = _error(HEAD.replace("classes 10", "classes 10\n" + line) + NET)
    assert e.line == 4 and "a parameter's default is one number" in e.message, str(e)
    assert "`width 2 * p`" in e.message, str(e)


def test_a_parameter_without_its_value_names_the_line_of_its_equals_sign():
    # was: "5:1: unexpected name 'choices'; expected one of '-', a number", a line below the mistake
    e = _error(HEAD.replace("classes 10", "classes 10\nparam p =") + NET)
    assert "`param p` has no value: write a number after its `=` on line 4" in e.message, str(e)


def test_a_cost_written_as_an_expression_says_it_is_one_number():
    e = _error(HEAD + NET + "metric m\n  default = 1 + 2\nend\n")
    assert "a cost is one number" in e.message, str(e)
    e = _error(HEAD.replace("ir_k3_e3", "3") + NET)  # a choice set's `=` takes names: no cost hint there
    assert "cost" not in e.message and "default" not in e.message, str(e)


CELLS = ("space c\ninput 3 x 16 x 16\nclasses 10\nchoices op = identity, sep_k3\ncell normal\n"
         "  node n1 sums 1 of earlier through op\n  node n2 sums 1 of earlier through op\nend\n"
         "network\n  stem width 8\n  cells normal x 2 width 8\nend\n")


@pytest.mark.parametrize("output", ["output n1", "output concat n1"])
def test_a_node_after_the_cell_output_says_where_the_output_goes(output):
    # was: "unexpected 'node'; expected 'end'" with no fix
    e = _error(CELLS.replace("  node n2", f"  {output}\n  node n2"))
    assert (e.line, e.column) == (8, 3) and "move it to just before the cell's `end`" in e.message, str(e)


def test_a_second_cell_output_says_a_cell_has_one():
    e = _error(CELLS.replace("end\nnetwork", "  output n1\n  output n2\nend\nnetwork"))
    assert e.line == 9 and "a cell has one `output`" in e.message and "output concat" in e.message, str(e)


@pytest.mark.parametrize("name, fixed", [("my.space", "my_space"), ("cifar-chain", "cifar_chain")])
def test_a_space_name_with_a_dot_or_dash_says_how_to_write_it(name, fixed):
    # was: "unexpected character '.'" and "unexpected '-'; expected one of 'cell', ...", without a fix
    e = _error((HEAD + NET).replace("space t", f"space {name}"))
    assert e.line == 1 and f"`{fixed}`" in e.message, str(e)


def test_a_source_list_ending_in_a_comma_names_the_keyword_read_as_a_source():
    # a list after `of` ends in `,`: the `end` below is read as a source (the hint for `choose` and `then` must not
    # take `of` for one of theirs)
    e = _error(CELLS.replace("sums 1 of earlier through op\nend", "sums 1 of c0, n1,\nend"))
    assert "the `end` on line 8 was read as a name of the list" in e.message, str(e)
