"""automl.profile: refusals built by one constructor (``CostTableRefusal.of``), a partial file whose whole network
numbers ``int`` cannot read, and the file a "not a cost table" refusal tells ``space profile`` to write."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_edge_fixes import _fake_time  # a latency of exactly 1 ms + 1 µs per parameter

import automl.profile as profile
from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.profile import CostTableMismatch, CostTableRefusal, profile_space, read_cost_table

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")


@pytest.fixture
def fake_clock(monkeypatch):
    monkeypatch.setattr(profile, "time_module", _fake_time)


@pytest.fixture
def table(fake_clock) -> dict:
    return profile_space(load_compiled(DIGITS), repeat=1, calibrate=0, progress=False)


def test_of_keeps_the_bare_reason():
    e = CostTableMismatch.of("t.json: ", "other decisions", "profile it again")
    assert isinstance(e, CostTableMismatch) and isinstance(e, UserError)
    assert str(e) == "t.json: other decisions; profile it again" and e.reason == "other decisions"
    assert str(CostTableRefusal.of("t.json: ", "bad", "fix", sep=": ")) == "t.json: bad: fix"
    assert str(CostTableRefusal.of("t.json: ", "bad")) == "t.json: bad"


@pytest.mark.parametrize("edit,cls", [
    (lambda t: t.update(unit="s"), CostTableRefusal),
    (lambda t: t.update(batch=0), CostTableRefusal),
    (lambda t: t.update(batch=10**9), CostTableRefusal),
    (lambda t: t.update(clock="cpu", machine={**t["machine"], "threads": 2}), CostTableRefusal),
    (lambda t: t["decisions"][0]["choices"].update(ir_k3_e1=-1.0), CostTableRefusal),
    (lambda t: t.update(fixed="x"), CostTableRefusal),
    (lambda t: t["decisions"].pop(), CostTableMismatch),
    (lambda t: t.update(input_size=[1, 16, 16]), CostTableMismatch),
    (lambda t: t["decisions"][1]["choices"].pop("skip"), CostTableMismatch),
])
def test_a_refusal_is_the_table_then_its_reason_then_a_fix(table, tmp_path, edit, cls):
    """Every refusal: the recipe key and table ahead, its ``reason`` (without either) next, what to do after."""
    edit(table)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(table))
    with pytest.raises(cls) as got:
        read_cost_table(path, load_compiled(DIGITS), source="r.yaml:3: search.cost_table")
    text, reason = str(got.value), got.value.reason
    assert text.startswith("r.yaml:3: search.cost_table: ") and str(path) in text.split(reason)[0]
    assert reason in text and str(path) not in reason and "search.cost_table" not in reason


def test_a_partial_file_with_an_unreadable_network_number_is_a_user_error(fake_clock, tmp_path):
    """``"²"`` passes ``str.isdigit`` but ``int`` refuses it: the partial file is refused by name, no traceback."""
    cs = load_compiled(DIGITS)
    part = tmp_path / "t.json.partial"
    profile_space(cs, repeat=1, calibrate=2, progress=False, partial=part)
    data = json.loads(part.read_text())
    assert set(data["networks"]) == {"0", "1"}
    for key in ("\u00b2", "9" * 5000):
        data["networks"] = {key: 5.0}
        part.write_text(json.dumps(data))
        with pytest.raises(UserError, match=re.escape(str(part))):
            profile_space(cs, repeat=1, calibrate=2, progress=False, partial=part)


def test_not_a_table_named_latency_json_points_at_a_file_profile_writes(fake_clock, tmp_path, capsys):
    """The command a "not a cost table" refusal gives for ``latency.json`` must not name the file itself, which
    ``space profile --out`` refuses to replace; the command it gives runs."""
    bad = tmp_path / "latency.json"
    bad.write_text(json.dumps({"best": 0.9}))
    with pytest.raises(UserError, match="not a cost table") as got:
        read_cost_table(bad, load_compiled(DIGITS))
    out = re.search(r"--out (\S+)`", str(got.value)).group(1)
    assert Path(out) != bad and Path(out).parent == tmp_path
    assert main(["space", "profile", DIGITS, "--repeat", "1", "--calibrate", "0", "--out", out]) == 0, \
        capsys.readouterr().err
    assert json.loads(bad.read_text()) == {"best": 0.9}
    assert read_cost_table(out, load_compiled(DIGITS))["metric"] == "latency"
