"""Review EN: the benchmark scripts' list flags are bounded, and every script shares one ``_common``.

* ``--busy`` (threads.py) stops at 64 busy processes: a typo's extra digits would start thousands of spinning
  processes; seed lists (family_budgets.py ``--seeds``, ranking.py's ``--*-seeds``) stop at a recipe's bound.
* latency_table.py imports ``_common`` as the other scripts do, not as ``benchmarks._common`` (a second module
  object, whose state and ``isinstance`` checks the others would not share)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _common  # noqa: E402
import family_budgets  # noqa: E402
import latency_table  # noqa: E402
import ranking  # noqa: E402
import threads  # noqa: E402

from automl.recipe import SEED_LIMIT  # noqa: E402


def test_int_list_refuses_a_number_above_its_most():
    parse = _common.int_list(0, 64)
    assert parse("0, 1,64") == [0, 1, 64]
    with pytest.raises(argparse.ArgumentTypeError, match="at most 64"):
        parse("0,1000")


def test_seed_list_is_bounded_as_a_recipe_s_seed():
    assert _common.seed_list(f"0,{SEED_LIMIT}") == [0, SEED_LIMIT]
    with pytest.raises(argparse.ArgumentTypeError, match="at most"):
        _common.seed_list(f"1,{SEED_LIMIT + 1}")


def test_threads_busy_flag_refuses_a_typo_before_starting_anything(capsys, monkeypatch):
    started = []
    monkeypatch.setattr(threads, "Busy", lambda n: started.append(n))
    with pytest.raises(SystemExit) as e:
        threads.main(["--busy", "0,1000"])
    assert e.value.code == 2 and not started
    assert "--busy" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--stability-seeds", "--supernet-seeds", "--truth-seeds"])
def test_ranking_seed_flags_refuse_a_seed_past_a_recipe_s(flag, capsys):
    with pytest.raises(SystemExit) as e:
        ranking.main([flag, f"0,{SEED_LIMIT + 1}"])
    assert e.value.code == 2 and flag in capsys.readouterr().err


def test_family_budgets_seeds_refuse_a_seed_past_a_recipe_s(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["family_budgets.py", "--seeds", f"0,{SEED_LIMIT + 1}"])
    with pytest.raises(SystemExit) as e:
        family_budgets.main()
    assert e.value.code == 2 and "--seeds" in capsys.readouterr().err


def test_latency_table_shares_the_scripts_common_module():
    assert latency_table.parser is _common.parser and latency_table.run_main is _common.run_main
