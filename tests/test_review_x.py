"""Review X: exports and device costs (latency tables read back, int8, measuring)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import load_model
from automl.profile import profile_space

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")


@pytest.fixture(scope="module")
def digits_table(tmp_path_factory) -> str:
    """A latency table of digits as `automl space profile` writes it (timed for real: a few seconds)."""
    table = profile_space(load_compiled(DIGITS), repeat=1, calibrate=0, progress=False)
    return json.dumps(table)


def _cost(tmp_path, text: str, capsys) -> tuple[int, str]:
    cs = load_compiled(DIGITS)
    arch = tmp_path / "a.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    table = tmp_path / "edited.json"
    table.write_text(text)
    rc = main(["space", "cost", DIGITS, "--arch", str(arch), "--cost-table", str(table)])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("digits", [400, 5000])
def test_a_hand_edited_huge_integer_cost_is_one_clear_message(digits_table, tmp_path, capsys, digits):
    """An integer too large for a float (400 digits), or longer than Python's JSON reader converts (5,000), in
    a hand-edited table: exit 2 naming the file, no traceback."""
    table = json.loads(digits_table)
    table["fixed"] = "HUGE"
    text = json.dumps(table).replace('"HUGE"', "1" + "0" * digits)
    rc, err = _cost(tmp_path, text, capsys)
    assert rc == 2, err
    assert "edited.json" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def _huge(text_with_marker: str) -> str:
    """JSON whose ``"HUGE"`` is an integer of 5,000 digits: more than Python's JSON reader converts."""
    return text_with_marker.replace('"HUGE"', "1" + "0" * 5000)


def test_an_arch_file_with_a_huge_integer_is_one_clear_message(tmp_path, capsys):
    arch = tmp_path / "arch.json"
    arch.write_text(_huge(json.dumps({"choices": ["ir_k3_e1"], "note": "HUGE"})))
    rc = main(["export", DIGITS, "--arch", str(arch), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "arch.json" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_manifest_with_a_huge_integer_is_one_clear_message(tmp_path):
    (tmp_path / "manifest.json").write_text(_huge(json.dumps({"format_version": 1, "choices": [], "params": "HUGE"})))
    with pytest.raises(UserError, match="manifest.json"):
        load_model(tmp_path)
