"""Review HF (docs against behaviour): an export's manifest whose choices skip a layer in the middle of a stage is
taken by ``automl space encode --arch-def`` (its arch_def leaves skips out, which re-encodes them at the stage's
end: the same network), ``automl.search`` names the error ``get_searcher`` raises, and ``space profile`` does not
advise ``--clock cpu`` to a table measured with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automl.cli import main
from automl.commands.space import _calibration_line

ROOT = Path(__file__).resolve().parent.parent
DIGITS = str(ROOT / "spaces" / "digits.space")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mid_skip_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mid")
    choices = ["ir_k3_e1", "skip"] + ["ir_k3_e1"] * 7  # s1_2 skipped, s1_3 kept: the arch_def has s1_3 second
    (folder / "arch.json").write_text(json.dumps({"choices": choices}))
    assert main(["export", DIGITS, "--arch", str(folder / "arch.json"), "--out", str(folder / "ex")]) == 0
    return folder, choices


def test_encode_takes_an_export_manifest_with_a_skip_mid_stage(mid_skip_export, capsys):
    folder, choices = mid_skip_export
    capsys.readouterr()
    assert main(["space", "encode", DIGITS, "--arch-def", str(folder / "ex" / "manifest.json"),
                 "--out", str(folder / "encoded.json")]) == 0, capsys.readouterr().err
    encoded = json.loads((folder / "encoded.json").read_text())
    assert list(encoded["choices"].values()) == choices, encoded
    manifest = json.loads((folder / "ex" / "manifest.json").read_text())
    assert encoded["params"] == manifest["params"], (encoded, manifest.get("params"))


def test_encode_still_refuses_a_manifest_edited_to_another_network(mid_skip_export, capsys, tmp_path):
    folder, choices = mid_skip_export
    manifest = json.loads((folder / "ex" / "manifest.json").read_text())
    manifest["choices"] = ["ir_k3_e1"] * 9  # no skip: another network than its arch_def
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["space", "encode", DIGITS, "--arch-def", str(tmp_path / "manifest.json")]) == 2
    assert "was the manifest edited" in capsys.readouterr().err


def test_unknown_searcher_is_public_and_raised_by_get_searcher():
    from automl.search import UnknownSearcher, get_searcher

    with pytest.raises(UnknownSearcher):
        get_searcher("no_such_method")
    assert issubclass(UnknownSearcher, KeyError) and issubclass(UnknownSearcher, ValueError)


@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_profile_advises_clock_cpu_only_to_a_wall_clock_table(clock):
    cal = {"archs": 4, "mape_before_pct": 30.0, "mape_after_pct": 5.0, "mape_heldout_pct": 25.0}
    line = _calibration_line({"calibration": cal, "clock": clock, "space": {"kind": "chain"}}, 4)
    assert "larger --repeat" in line, line
    assert ("--clock cpu" in line) == (clock == "wall"), line
