"""Syntax-error hints of the .space parser (automl/dsl/_parser.py) for six first-time mistakes: each is one
message `FILE:LINE:COL: ...` from `automl space check` (exit 2) that says how to fix the mistake at hand."""

from __future__ import annotations

import pytest

from automl.cli import main
from automl.dsl import parse_space
from automl.errors import SpaceError

HEAD = ("space my\nparam width = 1.0\ninput 1 x 8 x 8\nclasses 10\n"
        "choices mb = ir_k3_e1, ir_k3_e3\n")
NETWORK = "network\n  stem width 16\n  stage s1 width 24 repeat 2 choose mb then mb\n  head width 128\nend\n"
CELLS = """space c
input 3 x 32 x 32
classes 10
choices ops = skip, sep_k3
network
  stem width 16
  cells normal x 2
  head width 64
end
cell normal
  inputs c0, c1
  node n1 sums 2 distinct of earlier through ops
  output n1
end
metric latency
  default = 1
end
"""


def _error(text: str) -> SpaceError:
    with pytest.raises(SpaceError) as info:
        parse_space(text, "my.space")
    return info.value


def test_the_bases_parse():
    parse_space(HEAD + NETWORK)
    parse_space(CELLS)


def test_unclosed_bracket_before_then_says_add_the_bracket(tmp_path, capsys):
    line = "  stage s1 width 24 repeat 2 choose [mb, ir_k5_e3 then mb"
    path = tmp_path / "my.space"
    path.write_text(HEAD + NETWORK.replace("  stage s1 width 24 repeat 2 choose mb then mb", line), encoding="utf-8")
    assert main(["space", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    column = line.index("[") + 1
    assert f"the `[` at column {column} is not closed: add `]` before `then`" in err
    assert "separate the names" not in err and "`ir_k5_e3, then`" not in err
    # a genuine missing `,` is still told as before
    e = _error(HEAD + NETWORK.replace("choose mb then mb", "choose [mb ir_k5_e3]"))
    assert "separate the names of a list with `,`: `mb, ir_k5_e3`" in e.message


def test_stage_name_left_out_on_the_same_line():
    e = _error(HEAD + NETWORK.replace("stage s1 width", "stage width"))
    assert e.line == 8 and "`width` was read as the stage's name: write `stage NAME width ...`" in e.message
    e = _error(CELLS.replace("node n1 sums", "node sums"))
    assert "`sums` was read as the node's name: write `node NAME sums ...`" in e.message


def test_input_with_four_sizes_says_three_numbers():
    e = _error(HEAD.replace("input 1 x 8 x 8", "input 1 x 8 x 8 x 2") + NETWORK)
    assert e.line == 3 and "an `input` is C x H x W, three numbers" in e.message


@pytest.mark.parametrize("stray", ["stage s2 width 32 choose mb", "head width 64", "cells normal x 2"])
def test_network_statement_after_the_end_says_move_it_above_the_end(stray):
    e = _error(HEAD + NETWORK + f"  {stray}\n")
    end = (HEAD + NETWORK).count("\n")  # the network's `end` is the last line
    assert e.line == end + 1
    assert f"`{stray.split()[0]}` goes inside `network ... end`: move it above the `end` of line {end}" in e.message
    # with a cell block in between, the network's own `end` is named
    e = _error(CELLS + f"{stray}\n")
    assert "move it above the `end` of line 9" in e.message


def test_a_number_with_two_dots_is_malformed():
    e = _error(HEAD.replace("param width = 1.0", "param width = 1.0.0") + NETWORK)
    assert e.line == 2 and e.column == len("param width = ") + 1
    assert "`1.0.0` is a malformed number" in e.message and "`1.0`" in e.message
    assert "expression" not in e.message


def test_pricing_a_distinct_input_set_says_only_default_prices_it():
    e = _error(CELLS.replace("  default = 1\n", "  default = 1\n  c0+c1 = 2\n"))
    assert e.line == 17
    assert "input sets (`c0+c1`) are not names: only `default` prices them" in e.message


def test_a_set_named_as_a_keyword_in_a_list_without_its_comma_is_told_the_comma():
    """A choice set named `stem` (keywords are soft) after a name without `,`, the list closed on its line: the `,`
    left out, not an unclosed `[`."""
    text = HEAD + "choices stem = ir_k3_e1\n" + NETWORK.replace("choose mb then mb", "choose [mb stem] then mb")
    e = _error(text)
    assert "separate the names of a list with `,`: `mb, stem`" in e.message, e.message
    assert "is not closed" not in e.message, e.message


def test_a_stage_named_as_an_option_with_a_misspelt_option_after_it_is_told_the_option():
    """`stage se widht 24`: a stage named `se` is valid; the misspelt `widht` after it gets its did-you-mean, not
    "`se` was read as the stage's name"."""
    e = _error(HEAD + NETWORK.replace("stage s1 width 24", "stage se widht 24"))
    assert "did you mean 'width'?" in e.message, e.message
    assert "was read as the stage's name" not in e.message, e.message
