"""The CLI's integer flags read a whole number as a recipe's integer setting does: ``10``, ``10.0``, ``1e1`` (blank
spaces around too) are 10; ``2.5``, ``nan``, ``inf``, ``ten``, ``1e400`` are one message naming the flag, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from automl.cli import build_parser
from automl.compile import load_compiled
from helpers import cli_err

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")

# every integer flag, with the arguments its verb needs besides it (nothing is read before the flags are parsed)
FLAGS = {
    "--archs": ["rank", "r"], "--retrain-epochs": ["rank", "r"], "--seeds": ["rank", "r"],
    "--threads": ["space", "profile", DIGITS, "--out", "t.json"],
    "--batch": ["space", "profile", DIGITS, "--out", "t.json"],
    "--repeat": ["space", "profile", DIGITS, "--out", "t.json"],
    "--calibrate": ["space", "profile", DIGITS, "--out", "t.json"],
    "--opset": ["export", DIGITS, "--arch", "a.json", "--out", "o"],
}
BAD = {"2.5": "give 2 or 3", "nan": "not a finite number", "inf": "not a finite number", "ten": "not a number",
       "1e400": "at most 31 digits"}


@pytest.fixture(autouse=True)
def _rank_zero(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)  # rank 0 prints argparse's errors


_cli = partial(cli_err, usage_exit=True)  # (code, stderr); argparse's exits too


def test_every_integer_flag_is_read_by_one_function():
    """No flag is left to argparse's ``int`` (a new one joins FLAGS, so the tests below read it too)."""
    types = {}
    for parser in build_parser().verbs.values():
        for action in parser._actions:
            if action.type is not None and action.option_strings:
                types[action.option_strings[-1]] = action.type
    assert int not in types.values(), types
    assert {flag for flag, t in types.items() if t is not float} == set(FLAGS), types
    assert len({types[flag] for flag in FLAGS}) == 1, types


@pytest.mark.parametrize("flag", sorted(FLAGS))
@pytest.mark.parametrize("text", ["10", "10.0", "1e1", " 1e1 ", "1.0E+1", "100e-1"])
def test_an_integer_flag_reads_a_whole_number_in_any_form(flag, text):
    args = build_parser().parse_args([*FLAGS[flag], flag, text])
    value = getattr(args, flag.lstrip("-").replace("-", "_"))
    assert value == 10 and type(value) is int


@pytest.mark.parametrize("flag", sorted(FLAGS))
@pytest.mark.parametrize("text", sorted(BAD))
def test_an_integer_flag_refuses_what_is_no_whole_number_in_one_message(capsys, flag, text):
    code, err = _cli(capsys, *FLAGS[flag], flag, text)
    line = err.strip().splitlines()[-1]
    assert code == 2 and f"error: argument {flag}: must be a whole number" in line, err
    assert repr(text) in line and BAD[text] in line, err
    assert err.count("error:") == 1, err


def test_what_a_user_sees(tmp_path):
    """``python -m automl``: usage, then one line naming the flag and what to give; exit 2."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RANK", None)
    r = subprocess.run([sys.executable, "-m", "automl", "space", "profile", DIGITS, "--threads", "2.5",
                        "--out", str(tmp_path / "t.json")], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and not r.stdout and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1] == ("automl space profile: error: argument --threads: must be a whole "
                                                 "number (got '2.5'); give 2 or 3"), r.stderr
    assert not list(tmp_path.iterdir())


def test_a_long_value_is_shortened_in_the_message(capsys):
    code, err = _cli(capsys, "rank", "r", "--archs", "9" * 5000)
    assert code == 2 and "at most 31 digits" in err and "(5000 characters)" in err and len(err) < 1000, err


# ---- the ranges are the commands' own checks, as before, whatever form the number was written in --------------

@pytest.mark.parametrize("flags, message", [
    (["--threads", "1e5"], "--threads 100000: at most 1,024 (a typo?)"),
    (["--batch", "0.0"], "--batch 0: must be a whole number >= 1"),
    (["--calibrate", "-1e1"], "--calibrate -10: the number of whole networks must be >= 0"),  # was: expected one
    (["--calibrate", "-1.0"], "--calibrate -1: the number of whole networks must be >= 0"),  # argument
    (["--calibrate", "1.0001e4"], "--calibrate 10001: at most 10,000 whole networks (a typo?)"),
])
def test_profile_ranges_keep_their_messages(tmp_path, capsys, flags, message):
    out = tmp_path / "t.json"
    code, err = _cli(capsys, "space", "profile", DIGITS, *flags, "--out", out)
    assert code == 2 and message in err, err
    assert not out.exists()


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A folder with a run's recipe.resolved.yaml (quickstart's), and nothing else."""
    text = (ROOT / "recipes" / "quickstart.yaml").read_text(encoding="utf-8")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "recipe.resolved.yaml").write_text(text.replace("../spaces/digits.space", DIGITS),
                                                           encoding="utf-8")
    return tmp_path / "run"


@pytest.mark.parametrize("flags, message", [
    (["--archs", "-1e1"], "--archs -10: must be >= 3 (got -10)"),
    (["--archs", "2.0"], "--archs 2: must be >= 3 (got 2)"),
    (["--seeds", "0.0"], "--seeds 0: must be >= 1 (got 0)"),
    (["--retrain-epochs", "-1.0"], "--retrain-epochs -1: must be >= 0 (got -1)"),
])
def test_rank_ranges_keep_their_messages(run_dir, capsys, flags, message):
    code, err = _cli(capsys, "rank", run_dir, *flags)
    assert code == 2 and message in err, err


def test_rank_takes_an_exponent_as_its_number(run_dir, capsys):
    """``--archs 2e1 --seeds 1.0 --retrain-epochs ' 0 '`` passes the recipe's checks: the run's missing checkpoint
    is what stops it."""
    code, err = _cli(capsys, "rank", run_dir, "--archs", "2e1", "--seeds", "1.0", "--retrain-epochs", " 0 ")
    assert code == 2 and "no usable checkpoint" in err and "argument" not in err, err


def test_export_opset_written_with_an_exponent_is_checked_as_its_number(tmp_path, capsys):
    digits = load_compiled(DIGITS)
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in digits.decisions]}))
    code, err = _cli(capsys, "export", DIGITS, "--arch", arch, "--out", tmp_path / "out", "--opset", "1.3e1")
    assert code == 2 and "--opset 13" in err and "opset 17 or newer" in err, err
    assert not (tmp_path / "out").exists()
