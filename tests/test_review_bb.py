"""Review BB: `automl space profile` keeps what an interrupted profile measured and resumes from it; a table's clock.

The profiles run on the fake clock of test_edge_fixes (1 ms per call plus 1 µs per parameter), so every value is
known in advance; "interrupted" is a Ctrl-C (KeyboardInterrupt) or a SIGTERM sent from inside the clock.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_edge_fixes import _fake_time  # a latency of exactly 1 ms + 1 µs per parameter

import automl.profile as profile
from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
SMALL = ["--repeat", "2", "--calibrate", "3"]


class _Clock:
    """The fake clock, counting its calls; ``stop_at``: the call (1-based) that is interrupted instead, by
    ``stop`` (a function that raises KeyboardInterrupt or sends a signal)."""

    def __init__(self, stop_at: int | None = None, stop=None):
        self.calls, self.stop_at, self.stop = 0, stop_at, stop

    def __call__(self, *a, **k):
        self.calls += 1
        if self.calls == self.stop_at:
            self.stop()
        return _fake_time(*a, **k)


def _ctrl_c():
    raise KeyboardInterrupt


def _profile(tmp_path, monkeypatch, clock, *extra, out="t.json"):
    """``space profile`` with SMALL's options, an option of ``extra`` that SMALL gives too in its place (each
    option is given once)."""
    monkeypatch.setattr(profile, "time_module", clock)
    args = list(SMALL)
    for flag, value in zip(extra[::2], extra[1::2]):
        if flag != "--set" and flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    return main(["space", "profile", DIGITS, *args, "--out", str(tmp_path / out)])


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The table of an uninterrupted profile, and how many times it timed something."""
    path = tmp_path_factory.mktemp("bb") / "t.json"
    clock = _Clock()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(profile, "time_module", clock)
        assert main(["space", "profile", DIGITS, *SMALL, "--out", str(path)]) == 0
    return json.loads(path.read_text()), clock.calls


def _same_table(a: dict, b: dict) -> None:
    assert a["decisions"] == b["decisions"] and a["fixed_parts"] == b["fixed_parts"]
    assert a["calibration"] == b["calibration"] and a["fixed"] == b["fixed"]


@pytest.mark.parametrize("stop_at", [5, -2])  # among the pieces; among the calibration's whole networks
def test_an_interrupted_profile_keeps_its_measurements_and_resumes(tmp_path, monkeypatch, capsys, caplog, whole,
                                                                   stop_at):
    table, calls = whole
    caplog.set_level(logging.INFO, logger="automl.profile")
    stop_at = stop_at if stop_at > 0 else calls + stop_at  # the networks are timed last
    assert _profile(tmp_path, monkeypatch, _Clock(stop_at, _ctrl_c)) == 130
    err = capsys.readouterr().err
    partial = tmp_path / "t.json.partial"
    assert not (tmp_path / "t.json").exists() and partial.is_file()
    assert str(partial) in err and "again" in err
    again = _Clock()
    assert _profile(tmp_path, monkeypatch, again) == 0
    # only what was not measured is timed again: the interrupted call and those after it
    assert again.calls == calls - stop_at + 1
    assert f"{partial}: resuming" in caplog.text  # the command's log: standard error
    _same_table(json.loads((tmp_path / "t.json").read_text()), table)
    assert not partial.exists()  # the table is written: nothing left to resume


_SIGTERM_AT_7 = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from test_review_bb import _Clock
import automl.profile as profile
from automl.cli import main
profile.time_module = _Clock(7, lambda: os.kill(os.getpid(), signal.SIGTERM))
code = main(["space", "profile", {space!r}, "--repeat", "2", "--calibrate", "3", "--out", {out!r}])
print("handler", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
sys.exit(code)
"""


def test_sigterm_stops_a_profile_with_its_measurements_kept(tmp_path, monkeypatch, capsys, whole):
    """In a process of its own: a SIGTERM the command does not handle ends the process (and would end pytest)."""
    table, calls = whole
    script = _SIGTERM_AT_7.format(tests=str(ROOT / "tests"), space=DIGITS, out=str(tmp_path / "t.json"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 143, done.stderr[-2000:]
    assert "SIGTERM" in done.stderr and str(tmp_path / "t.json.partial") in done.stderr
    assert "handler True" in done.stdout  # the command's handler is gone again
    again = _Clock()
    assert _profile(tmp_path, monkeypatch, again) == 0
    assert again.calls == calls - 7 + 1
    _same_table(json.loads((tmp_path / "t.json").read_text()), table)


@pytest.mark.parametrize("extra,message", [
    (["--batch", "2"], "--batch 1"),
    (["--repeat", "3"], "--repeat 2"),
    (["--set", "size=16"], "space digits"),
])
def test_a_partial_profile_of_other_settings_is_not_mixed_in(tmp_path, monkeypatch, capsys, extra, message):
    assert _profile(tmp_path, monkeypatch, _Clock(6, _ctrl_c)) == 130
    capsys.readouterr()
    before = (tmp_path / "t.json.partial").read_bytes()
    assert _profile(tmp_path, monkeypatch, _Clock(), *extra) == 2
    err = capsys.readouterr().err
    assert message in err and str(tmp_path / "t.json.partial") in err and "delete" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "t.json").exists() and (tmp_path / "t.json.partial").read_bytes() == before


def test_a_partial_file_that_is_not_one_names_the_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "t.json.partial").write_text("{not json")
    assert _profile(tmp_path, monkeypatch, _Clock()) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "t.json.partial") in err and "delete" in err and "Traceback" not in err


def test_the_python_api_keeps_no_partial_file_unless_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(profile, "time_module", _Clock(4, _ctrl_c))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        profile.profile_space(load_compiled(DIGITS), repeat=2, calibrate=0, progress=False)
    assert list(tmp_path.iterdir()) == []


# ---- the clock a table was measured with ----------------------------------------------------------------------

def test_a_tables_clock_is_read_and_checked(tmp_path, whole):
    table, _ = whole
    cs = load_compiled(DIGITS)
    assert profile.table_clock(table) == "wall"
    assert profile.table_clock({**table, "clock": "cpu"}) == "cpu"
    old = {k: v for k, v in table.items() if k != "clock"}  # a table written before tables had a clock
    assert profile.table_clock(old) == "wall"
    path = tmp_path / "t.json"
    path.write_text(json.dumps(old))
    profile.read_cost_table(path, cs)
    path.write_text(json.dumps({**table, "clock": "gpu"}))
    with pytest.raises(UserError, match=r"t\.json: \"clock\" must be \"wall\" or \"cpu\""):
        profile.read_cost_table(path, cs)
    path.write_text(json.dumps({**table, "clock": "cpu", "machine": {**table["machine"], "threads": 2}}))
    with pytest.raises(UserError, match=r"t\.json: \"clock\" is \"cpu\" with \"machine.threads\" 2"):
        profile.read_cost_table(path, cs)
