"""Review ID: messages that listed every name or repeated long numbers, and search_cost.py's per-iteration time.

- an unknown parameter or op listed every parameter or choice set of the space: hundreds of names for a
  large space; now the first 10 and how many more;
- an op name with a long number (``ir_k3_e111...1``) was refused with the registry's reason, which repeats
  the number in full after the name; now the reason shows its first digits and its count of digits;
- ``benchmarks/search_cost.py`` reported ``ms_per_iteration`` without the recipe's search.supernets (each step
  trains and scores M supernets); its rows now hold ``supernets`` and ``ms_per_supernet_iteration``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from automl.compile import compile_space
from automl.dsl import ParamError, parse_space
from automl.errors import SpaceError

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

HEAD = "space t\ninput 3 x 32 x 32\nclasses 10\n"
NET = "network\n  stem width 16\n  stage s1 width 24 choose CHOICES\nend\n"
PARAMS = "".join(f"param p{i:03d} = {i}\n" for i in range(300))
SETS = "".join(f"choices s{i:03d} = ir_k3_e3\n" for i in range(300))


def _compile_error(text: str) -> SpaceError:
    with pytest.raises(SpaceError) as info:
        compile_space(parse_space(text, "t.space"))
    return info.value


def _bounded(message: str, prefix: str) -> None:
    """The first 10 of 300 names ``prefix000`` ... and how many more; none beyond the 10th."""
    assert ", ".join(f"{prefix}{i:03d}" for i in range(10)) + " and 290 more" in message, message
    assert f"{prefix}010" not in message and f"{prefix}299" not in message, message


def test_an_unknown_parameter_lists_ten_of_the_spaces_300_parameters():
    # was: "unknown parameter 'zzz'; the parameters are: p000, p001, ..., p299" (1,843 characters)
    e = _compile_error(PARAMS + HEAD + NET.replace("16", "zzz").replace("CHOICES", "ir_k3_e3"))
    assert "unknown parameter 'zzz'; the parameters are: " in e.message, e.message
    _bounded(e.message, "p")


def test_an_unknown_op_lists_ten_of_the_spaces_300_choice_sets():
    e = _compile_error(SETS + HEAD + NET.replace("CHOICES", "qqqqqqqq"))
    assert "unknown op or choice set 'qqqqqqqq'" in e.message and "the choice sets are: " in e.message, e.message
    _bounded(e.message, "s")


def test_a_few_parameters_and_choice_sets_are_all_listed():
    e = _compile_error("param a = 1\nparam b = 2\n" + HEAD + NET.replace("16", "zzz").replace("CHOICES", "ir_k3_e3"))
    assert e.message.endswith("the parameters are: a, b"), e.message
    e = _compile_error(HEAD + "choices m = ir_k3_e3\n" + NET.replace("CHOICES", "qqqqqqqq"))
    assert e.message.endswith("the choice sets are: m"), e.message


def test_an_unknown_set_parameter_lists_ten_of_the_spaces_300_parameters():
    # was: "--set zzz: unknown parameter 'zzz'; this space's parameters are: p000, ..., p299"
    with pytest.raises(ParamError) as info:
        parse_space(PARAMS + HEAD + NET.replace("CHOICES", "ir_k3_e3"), "t.space", {"zzz": "1"})
    assert "--set zzz: unknown parameter 'zzz'; this space's parameters are: " in str(info.value), info.value
    _bounded(str(info.value), "p")
    assert len(info.value.known) == 300  # callers still get every name


def test_an_unknown_set_parameter_of_a_space_without_parameters_says_none():
    with pytest.raises(ParamError) as info:
        parse_space(HEAD + NET.replace("CHOICES", "ir_k3_e3"), "t.space", {"zzz": "1"})
    assert "this space's parameters are: none" in str(info.value), info.value


LONG = "1" * 60


@pytest.mark.parametrize("op, reason", [
    (f"ir_k3_e{LONG}", "expansion 11111111...(60 digits): must be a positive number up to 16"),
    (f"ir_k{LONG}_e3", "kernel 11111111...(60 digits): the kernel of an ir block is odd"),
    (f"ds_k{LONG}", "kernel 11111111...(60 digits): the kernel of a ds block is odd"),
    (f"ir_k3_e3_g{LONG}", "`_g11111111...(60 digits)`: the group count G"),
])
def test_an_op_name_with_a_long_number_shows_the_number_once(op, reason):
    # was: "op 'ir_k3_e111...1': expansion 111...1: must be ..." (the 60 digits twice)
    e = _compile_error(HEAD + NET.replace("CHOICES", f"[ir_k3_e3, {op}]"))
    assert e.message.startswith(f"op {op!r}: {reason}"), e.message
    assert e.message.count(LONG) == 1, e.message


def test_search_cost_reports_ms_per_iteration_per_supernet(monkeypatch, capsys):
    import search_cost

    def search_run(recipe, overrides):
        return {"architectures": [{"params": 10}], "search_seconds": 2.0, "iterations": 4,
                "phase_seconds": {"weights": 1.0, "theta": 1.0}, "threads": {"threads": 1}}

    monkeypatch.setattr(search_cost, "search_run", search_run)
    search_cost.main(["search.supernets=2", "--no-sweep"])
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("{"))
    rows = json.loads(line)["rows"]
    assert len(rows) == 3
    for row in rows:
        assert row["supernets"] == 2 and row["ms_per_iteration"] == 500.0, row
        assert row["ms_per_supernet_iteration"] == 250.0, row
