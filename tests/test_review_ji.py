"""Review ji: a number with a thousands separator in a list of numbers, an op offered twice, an empty choice set
or list of choices each end in one located message that says how to fix it; the metric docs say what `default`
prices in a cell space."""

from __future__ import annotations

from pathlib import Path

import pytest

from automl.compile import compile_space
from automl.dsl import parse_space
from automl.errors import SpaceError
from helpers import cli_err

ROOT = Path(__file__).resolve().parents[1]
HEADER = "space x\ninput 1 x 8 x 8\nclasses 10\nchoices a = ir_k3_e3, ir_k5_e3\n"


def _chain(stage: str, header: str = HEADER) -> str:
    return header + f"network\n  stem width 8\n  {stage}\nend\n"


def _error(text: str) -> SpaceError:
    with pytest.raises(SpaceError) as info:
        compile_space(parse_space(text, "x.space"))
    return info.value


# ---- a thousands separator in a list of numbers ---------------------------------------------------

@pytest.mark.parametrize("stage, column", [("stage s1 width 1,024 repeat 2 choose a", 18),
                                           ("stage s1 width 16 depth 1,024 choose a", 27)])
def test_thousands_separator_in_a_width_or_depth_list_is_an_error(stage, column):
    e = _error(_chain(stage))
    assert (e.line, e.column) == (7, column), str(e)
    assert e.message == ("`1,024`: write numbers without a thousands separator: `1024` (for a list, write its "
                         "numbers without leading zeros: `1, 24`)")


def test_thousands_separator_in_a_resolution_list_is_an_error():
    e = _error(_chain("stage s1 width 16 choose a", HEADER.replace("classes 10", "classes 10\nresolution 12,000, 8")))
    assert (e.line, e.column) == (4, 12), str(e)
    assert "`12,000`" in e.message and "`12000`" in e.message and "`12, 0`" in e.message


def test_leading_zero_in_a_list_is_an_error_at_the_number():
    e = _error(_chain("stage s1 width 16, 024 choose a"))
    assert (e.line, e.column) == (7, 22), str(e)
    assert e.message == "`024`: write the numbers of a list without leading zeros: `24`"


def test_a_list_without_leading_zeros_is_still_a_list():
    cs = compile_space(parse_space(_chain("stage s1 width 16,128 choose a"), "x.space"))
    assert cs.decisions[0].name == "s1_width" and cs.decisions[0].choices == ("w16", "w128")


def test_thousands_separator_in_a_list_exits_2_from_the_cli(tmp_path, capsys):
    path = tmp_path / "x.space"
    path.write_text(_chain("stage s1 width 1,024 repeat 2 choose a"))
    code, err = cli_err(capsys, "space", "check", path)
    assert code == 2
    assert f"{path}:7:18: `1,024`: write numbers without a thousands separator: `1024`" in err
    assert len(err.strip().splitlines()) == 3  # the message, the line, the caret


# ---- an op offered twice -------------------------------------------------------------------------

def test_op_twice_in_one_set_gives_the_first_copy_and_no_repeated_set_name():
    e = _error(_chain("stage s1 width 16 choose a", HEADER.replace("ir_k5_e3", "ir_k5_e3, ir_k3_e3")))
    assert (e.line, e.column) == (4, 33), str(e)
    assert e.message == "'ir_k3_e3' is offered twice in choice set a: first at line 4, column 13; keep one"


def test_op_twice_through_another_set_names_that_set():
    e = _error(_chain("stage s1 width 16 choose [a, ir_k5_e3]"))
    assert (e.line, e.column) == (7, 32), str(e)
    assert e.message == ("'ir_k5_e3' is offered twice in stage s1: first at line 4, column 23, through choice set "
                         "'a'; keep one")


def test_a_set_reached_twice_says_to_include_it_once():
    header = HEADER + "choices b = a, skip\n"
    e = _error(_chain("stage s1 width 16 repeat 2 choose a then [b, a]", header))
    assert "'ir_k3_e3' is offered twice in stage s1 (through choice set 'a')" in e.message, str(e)
    assert "choice set 'a' is reached twice" in e.message and "include it once" in e.message


# ---- an empty choice set or list of choices --------------------------------------------------------

@pytest.mark.parametrize("after, read", [("network\n  stem width 8\n  stage s1 width 16 choose b\nend\n", "network"),
                                         ("choices c = ir_k3_e3\n", "choices"), ("", None)])
def test_empty_choice_set_is_an_error_at_its_line(after, read):
    e = _error(HEADER + "choices b =\n" + after)
    assert (e.line, e.column) == (5, 1), str(e)
    assert e.message.startswith("choice set 'b' has no choices: list at least one op")
    assert (f"the `{read}` on line 6 was read as a name of the list" in e.message) == (read is not None)


@pytest.mark.parametrize("body", ["stage s1 width 16 choose []", "stage s1 width 16 repeat 2 choose a then []"])
def test_empty_list_of_choices_says_it_needs_an_op(body):
    e = _error(_chain(body))
    assert e.line == 7 and "a list of choices needs at least one op (a name)" in e.message, str(e)


def test_empty_through_list_says_it_needs_an_op():
    text = ("space c\ninput 1 x 8 x 8\nclasses 10\ncell n inputs a, b\n  node n1 sums 1 of a, b through []\nend\n"
            "network\n  stem width 8\n  cells n x 1 width 8\nend\n")
    e = _error(text)
    assert e.line == 5 and "a list of choices needs at least one op (a name): `through [" in e.message, str(e)


# ---- what a metric's default prices in a cell space ------------------------------------------------

def test_metric_default_prices_input_decisions_as_the_docs_say():
    text = ("space c\ninput 1 x 8 x 8\nclasses 10\ncell n inputs a, b\n  node n1 sums 1 of a, b through "
            "[identity, conv_k3]\nend\nnetwork\n  stem width 8\n  cells n x 1 width 8\nend\n"
            "metric lat\n  default = 1\n  a = 0\nend\n")
    cs = compile_space(parse_space(text, "c.space"))
    names = [d.name for d in cs.decisions]
    row = cs.cost_table.costs("lat")[names.index("n_n1_input1")].tolist()
    assert cs.decisions[names.index("n_n1_input1")].choices == ("a", "b") and row[:2] == [0.0, 1.0]
    doc = (ROOT / "docs" / "space-language.md").read_text(encoding="utf-8")
    metrics = doc[doc.index("### Metrics"):doc.index("## Published spaces")]
    assert "input decisions" in metrics and "`a = 0`" in metrics
