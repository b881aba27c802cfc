"""Review jm: a choice set reached twice in one list is an error at the reference in the list that reaches it
again (where "include it once" applies), naming where the first reference is and the sets it came through."""

from __future__ import annotations

import pytest

from automl.compile import compile_space
from automl.dsl import parse_space
from automl.errors import SpaceError
from helpers import cli_err

HEADER = "space t\ninput 1 x 8 x 8\nclasses 10\nchoices a = ir_k3_e3, skip\n"


def _chain(stage: str, sets: str = "") -> str:
    return HEADER + sets + f"network\n  stem width 8\n  {stage}\nend\n"


def _error(text: str) -> SpaceError:
    with pytest.raises(SpaceError) as info:
        compile_space(parse_space(text, "t.space"))
    return info.value


def test_set_named_twice_in_a_stage_list_points_at_the_second_name(tmp_path, capsys):
    path = tmp_path / "twice.space"
    path.write_text(_chain("stage s1 width 8 choose [a, a]"))
    code, err = cli_err(capsys, "space", "check", path)
    assert code == 2
    assert (f"{path}:7:31: 'ir_k3_e3' is offered twice in stage s1 (through choice set 'a'): choice set 'a' is "
            "reached twice, first at line 7, column 28; include it once") in err, err
    assert err.strip().splitlines()[-1].index("^") == err.strip().splitlines()[-2].index("[a, a]") + 4


def test_set_also_reached_through_another_set_points_at_the_direct_name():
    e = _error(_chain("stage s1 width 16 choose [m2, mbconv]",
                      "choices m2 = mbconv, ir_k5_e6\nchoices mbconv = ir_k3_e1, ir_k3_e6\n"))
    assert (e.line, e.column) == (9, 33), str(e)  # `mbconv` in the stage's list, not inside its declaration
    assert e.message == ("'ir_k3_e1' is offered twice in stage s1 (through choice set 'mbconv'): choice set "
                         "'mbconv' is reached twice, first at line 5, column 14, through choice set 'm2'; "
                         "include it once")


def test_set_reached_through_two_sets_names_both_paths():
    sets = "choices mb = ir_k3_e1\nchoices m2 = mb, ir_k5_e6\nchoices m3 = ir_k5_e3, mb\nchoices m4 = m2\n"
    e = _error(_chain("stage s1 width 16 choose [m4, m3]", sets))
    assert (e.line, e.column) == (11, 33), str(e)  # `m3` in the stage's list
    assert e.message.endswith("choice set 'mb' is reached twice, first at line 6, column 14, through choice sets "
                              "'m4' -> 'm2'; again at line 7, column 24, through choice set 'm3'; include it once")


def test_set_reached_twice_in_a_set_declaration_points_there():
    e = _error(_chain("stage s1 width 16 choose c", "choices c = b, b\nchoices b = a, ir_k5_e6\n"))
    assert (e.line, e.column) == (5, 16), str(e)
    assert "in choice set c" in e.message and "choice set 'b' is reached twice, first at line 5, column 13;" in (
        e.message)


def test_op_offered_twice_as_itself_still_points_at_the_second_copy():
    e = _error(_chain("stage s1 width 16 choose [a, ir_k3_e3]"))
    assert (e.line, e.column) == (7, 32), str(e)
    assert e.message == ("'ir_k3_e3' is offered twice in stage s1: first at line 4, column 13, through choice set "
                         "'a'; keep one")
