"""A number typed with a doubled `.` in a .space file (`1..0`): the parser's hint suggests the number the typo
most likely meant (`1.0`), not a prefix of it that is itself odd (`1.`)."""

from __future__ import annotations

import pytest

from automl.dsl import parse_space
from automl.errors import SpaceError

HEAD = "space my\nparam width = {}\ninput 1 x 8 x 8\nclasses 10\nchoices mb = ir_k3_e1, ir_k3_e3\n"
NETWORK = "network\n  stem width 16\n  stage s1 width 24 repeat 2 choose mb then mb\n  head width 128\nend\n"


def _message(number: str) -> str:
    with pytest.raises(SpaceError) as info:
        parse_space(HEAD.format(number) + NETWORK, "my.space")
    assert info.value.line == 2
    return info.value.message


@pytest.mark.parametrize("typed, meant", [("1..0", "1.0"), ("0...5", "0.5"), ("1..", "1"), ("1.0..5", "1.0"),
                                           ("12..50", "12.50")])
def test_a_doubled_dot_suggests_the_number_meant(typed, meant):
    msg = _message(typed)
    assert f"`{typed}` is a malformed number" in msg
    assert f"e.g. `{meant}`" in msg


def test_a_version_number_still_suggests_its_first_two_parts():
    assert "e.g. `1.0`" in _message("1.0.0")
    assert "e.g. `2.5`" in _message("2.5.1")


@pytest.mark.parametrize("name", ["my.space", "mb.a"])
def test_a_dot_in_a_name_keeps_its_own_hint(name):
    with pytest.raises(SpaceError) as info:
        parse_space(f"space {name}\n" + HEAD.format("1.0").split("\n", 1)[1] + NETWORK, "my.space")
    assert "a name holds `.` only before a digit" in info.value.message


def test_an_op_name_with_two_dots_is_not_read_as_a_number():
    with pytest.raises(SpaceError) as info:
        parse_space(HEAD.format("1.0").replace("ir_k3_e3", "ir_k3_e2..5") + NETWORK, "my.space")
    assert "malformed number" not in info.value.message
    assert "a name holds `.` only before a digit" in info.value.message


def test_the_latency_clock_refusal_quotes_the_profile_command_for_the_shell(tmp_path, monkeypatch):
    """The `automl space profile ...` command the refusal of a coarse CPU clock suggests is pasted into a shell: a
    space file in a folder with a space in its name, and a --set value with one, are quoted (else the shell splits
    them: `automl space profile /x/my spaces/d.space` names two files)."""
    import json
    import shlex
    import shutil
    import time

    from test_review_dn import ROOT, _recipe

    from automl.errors import RecipeError
    from automl.pipeline.setup import check_latency_clock
    from automl.recipe import load_recipe

    folder = tmp_path / "my spaces"
    folder.mkdir()
    space = folder / "digits.space"
    shutil.copy(ROOT / "spaces" / "digits.space", space)
    table = tmp_path / "cpu.latency.json"
    table.write_text(json.dumps({"clock": "cpu"}))
    recipe_path = _recipe(tmp_path, table)
    recipe_path.write_text(recipe_path.read_text().replace(str(ROOT / "spaces" / "digits.space"), str(space)))
    monkeypatch.setattr(time, "thread_time", lambda: 1.0)  # a clock that never advances
    recipe = load_recipe(recipe_path, ["device=cpu", "space_args={head: 64}"])
    with pytest.raises(RecipeError) as info:
        check_latency_clock(recipe, "cpu")
    command = info.value.message.split("`automl space profile ", 1)[1].split("`", 1)[0]
    words = shlex.split(command)
    assert words[0] == str(space) and words[1:3] == ["--set", "head=64"], words
