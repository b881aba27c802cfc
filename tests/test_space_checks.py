"""Checks of a .space file that the one-file-per-mistake corpus (tests/space_cases/) cannot hold: numbers
and expressions too large for a file one reads, line endings, spellings of one op, and what a space may
still do next to the mistakes it must not make. Each mistake is one located message, exit 2, no traceback."""

from __future__ import annotations

import pytest

from automl.cli import main
from automl.compile import compile_space, load_compiled
from automl.dsl import parse_space, space_digest
from automl.errors import SpaceError

HEADER = "space t\ninput 3 x 32 x 32\nclasses 10\nchoices mb = ir_k3_e3, ir_k5_e6\nnetwork\n  stem width 16\n"
CHAIN = HEADER + "  stage s1 width 24 stride 2 repeat 2 choose mb then [mb, skip]\n  head width 64\nend\n"


def compile_text(text: str, filename: str = "t.space", overrides=None):
    return compile_space(parse_space(text, filename, overrides))


def space_error(text: str, filename: str = "t.space", overrides=None) -> SpaceError:
    with pytest.raises(SpaceError) as info:
        compile_text(text, filename, overrides)
    return info.value


def check_cli(tmp_path, capsys, text: str, *args: str) -> str:
    path = tmp_path / "t.space"
    path.write_text(text, encoding="utf-8", newline="")
    assert main(["space", "check", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    return err.replace(str(path), "t.space")


# ---- numbers and expressions -------------------------------------------------------------------

def test_a_5000_digit_literal_is_too_large_at_its_position(tmp_path, capsys):
    text = CHAIN.replace("classes 10", "classes " + "9" * 5000)
    e = space_error(text)
    assert (e.line, e.column) == (3, 9)
    assert e.message.startswith("number too large (5,000 digits)") and "2**62" in e.message
    assert check_cli(tmp_path, capsys, text).startswith("t.space:3:9: number too large")


@pytest.mark.parametrize("literal, where", [("-" + "9" * 30, (1, 12)), ("1e999", (1, 11))])
def test_a_parameter_default_too_large(literal, where):
    e = space_error(f"param a = {literal}\n" + CHAIN)
    assert (e.line, e.column) == where and e.message.startswith("number too large")


def test_the_largest_whole_number_is_accepted():
    space = parse_space(f"param a = {1 << 62}\nparam b = 0000000000000000000000007\n" + CHAIN, "t.space")
    assert space.param_values == {"a": 1 << 62, "b": 7}


def test_a_long_flat_expression_is_reported_at_its_line(tmp_path, capsys):
    long_sum = "+".join(["0"] * 20000) + "+24"
    text = HEADER + f"  stage s1 width 24\n    repeat {long_sum} choose mb\nend\n"
    e = space_error(text)
    assert (e.line, e.column) == (8, 12)
    assert "expression too long or nested too deeply" in e.message and "write it shorter" in e.message
    assert check_cli(tmp_path, capsys, text).startswith("t.space:8:12: expression too long")


def test_deeply_nested_expression_is_reported_at_its_start():
    e = space_error(HEADER + "  stage s1 width " + "-(" * 3000 + "24" + ")" * 3000 + " choose mb\nend\n")
    assert (e.line, e.column) == (7, 18) and "nested too deeply" in e.message


def test_an_expression_of_100_operators_compiles():
    cs = compile_text(HEADER + "  stage s1 width 24 repeat " + "+".join(["0"] * 100) + "+2 choose mb\nend\n")
    assert [d.name for d in cs.decisions] == ["s1_1", "s1_2"]


def test_set_with_a_5000_digit_number_is_a_param_error(capsys):
    big = "9" * 5000
    with pytest.raises(SpaceError) as info:
        load_compiled("spaces/digits.space", {"classes": big})
    assert info.value.message.startswith(f"--set classes={big}: number too large")
    assert main(["space", "check", "spaces/digits.space", "--set", f"classes={big}"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "number too large" in err


# ---- line endings ------------------------------------------------------------------------------

def test_lone_cr_line_endings_are_line_breaks(tmp_path, capsys):
    lf = "# a comment\n" + CHAIN
    cr = lf.replace("\n", "\r")
    assert [d.name for d in compile_text(cr).decisions] == [d.name for d in compile_text(lf).decisions]
    bad = cr.replace("stride 2", "stride 3")
    e = space_error(bad)
    assert (e.line, e.column) == (8, 28) and e.source_line.startswith("  stage s1")
    assert check_cli(tmp_path, capsys, bad).startswith("t.space:8:28: stride must be between 1 and 2")


def test_crlf_keeps_its_line_numbers_and_shows_the_line_without_cr():
    e = space_error(CHAIN.replace("stride 2", "stride 3").replace("\n", "\r\n"))
    assert (e.line, e.column) == (7, 28)
    assert "\r" not in str(e)


def test_digest_of_a_cr_file_sees_past_a_comment():
    cr = ("# header\n" + CHAIN).replace("\n", "\r").encode()
    assert space_digest(cr) == space_digest(("# header\n" + CHAIN).encode())
    assert space_digest(cr) != space_digest(cr.replace(b"classes 10", b"classes 11"))


# ---- choices -----------------------------------------------------------------------------------

@pytest.mark.parametrize("first, second", [
    ("ir_k3_e3", "ir_k3_e3.0"), ("ir_k3_e3_nre_se0.25", "ir_k3_e3_se0.25_nre"),
    ("ir_k3_e3_se0.25", "ir_k3_e3_se0.250"), ("ir_k3_e1_g2", "ir_k3_e1.0_g2"),
])
def test_two_spellings_of_one_op_are_offered_twice(first, second):
    e = space_error(HEADER + f"  stage s1 width 24 choose [{first}, {second}]\nend\n")
    assert (e.line, e.column) == (7, 29 + len(first) + 2)
    assert e.message.startswith(f"{second!r} is the same op as {first!r} (line 7, column 29)")


@pytest.mark.parametrize("ops", ["ir_k3_e3, ir_k3_e3_nre", "ir_k3_e3, ir_k3_e3_se0.25", "ir_k3_e1, ir_k3_e1_g2",
                                 "ds_k3, ir_k3_e1", "ir_k3_e3_se0.25, ir_k3_e3_se0.5"])
def test_different_ops_are_two_choices(ops):
    assert compile_text(HEADER + f"  stage s1 width 24 choose [{ops}]\nend\n").num_choices == [2]


def test_a_fixed_set_of_one_op_is_that_op():
    text = HEADER.replace("choices mb", "choices one = ds_k3\nchoices mb") + (
        "  stage s0 width 24 fixed one\n  stage s1 width 24 choose mb\nend\n")
    cs = compile_text(text)
    assert [d.name for d in cs.decisions] == ["s1_1"]
    assert cs.plan.layers[0].choices == ("ds_k3",) and cs.plan.layers[0].decision is None


# ---- one choice, one architecture --------------------------------------------------------------

def test_a_decision_with_one_choice_next_to_others_is_counted(capsys):
    cs = compile_text(HEADER + "  stage s1 width 24 choose ir_k3_e3\n  stage s2 width 32 choose mb\nend\n")
    assert cs.num_choices == [1, 2] and cs.num_decisions == 2 and sum(cs.num_choices) == 3


def test_one_architecture_with_resolution_has_something_to_search():
    text = HEADER.replace("classes 10", "classes 10\nresolution 16, 32") + "  stage s1 width 24 choose ir_k3_e3\nend\n"
    cs = compile_text(text)
    assert cs.num_choices == [1, 2]


def test_one_architecture_of_a_cell_space():
    e = space_error("input 3 x 8 x 8\nclasses 10\ncell a inputs x\n node n1 sums edges from x through sep_k3\n"
                    "end\nnetwork\n stem width 8\n cells a x 1 width 8\nend\n")
    assert (e.line, e.column) == (6, 1)
    assert "a_n1_x (sep_k3)" in e.message and "`through [sep_k3, ...]`" in e.message


# ---- names -------------------------------------------------------------------------------------

def test_resolution_statement_after_a_layer_named_resolution():
    text = HEADER.replace("network", "resolution 16, 32\nnetwork", 1) + " layer resolution width 24 choose mb\nend\n"
    text = text.replace("resolution 16, 32\nnetwork\n  stem width 16\n layer resolution width 24 choose mb\nend\n",
                        "network\n  stem width 16\n layer resolution width 24 choose mb\nend\nresolution 16, 32\n")
    e = space_error(text)
    assert (e.line, e.column) == (9, 1)
    assert "duplicate decision name 'resolution' (first at line 7: layer resolution)" in e.message


def test_cell_nodes_read_through_other_nodes_are_read():
    text = ("input 3 x 8 x 8\nclasses 10\nchoices ops = identity, sep_k3\ncell a inputs x\n"
            " node n1 sums edges from x through ops\n node n2 sums edges from n1 through ops\n"
            " node n3 sums 1 of earlier through ops\n output n3\nend\nnetwork\n stem width 8\n"
            " cells a x 1 width 8\nend\n")
    assert compile_text(text).num_decisions == 4
    e = space_error(text.replace("sums 1 of earlier", "sums 1 of x"))
    assert (e.line, e.column) == (5, 7) and e.message.startswith("node n1 of cell a is never read: `output n3`")


def test_an_unread_node_with_output_concat():
    e = space_error("input 3 x 8 x 8\nclasses 10\ncell a\n node n1 sums 1 of earlier through [identity, sep_k3]\n"
                    " node n2 sums 1 of c0, c1 through [identity, sep_k3]\n output concat n2\nend\n"
                    "network\n stem width 8\n cells a x 1 width 8\nend\n")
    assert (e.line, e.column) == (4, 7)
    assert "`output concat n2` does not use it" in e.message and "`output concat n2, n1`" in e.message


def test_a_bad_value_given_from_outside_says_so():
    text = "param size = 32\n" + CHAIN.replace("input 3 x 32 x 32", "input 3 x size x size")
    e = space_error(text, overrides={"size": "0"})
    assert (e.line, e.column) == (3, 11)
    assert e.message == ("input height must be between 1 and 16384, got 0 (from size=0, given with --set or a "
                         "recipe's space_args)")
