"""Lead's fixes of session 49: ``automl space profile`` computes in one process and is refused under torchrun, as
``automl export`` is (every process would time each piece on the same cores at once, and write one --out)."""

from __future__ import annotations

from pathlib import Path

import pytest

from automl.cli import main

DIGITS = str(Path(__file__).resolve().parents[1] / "spaces" / "digits.space")


@pytest.mark.parametrize("rank", ["0", "1"])
def test_space_profile_is_refused_under_torchrun(monkeypatch, capsys, tmp_path, rank):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    out = tmp_path / "latency.json"
    assert main(["space", "profile", DIGITS, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("automl space profile computes in one process") == (1 if rank == "0" else 0), err
    assert ("WORLD_SIZE=2" in err) if rank == "0" else err == ""
    assert not out.exists()


@pytest.mark.parametrize("command", [["check"], ["show"]])
def test_other_space_commands_run_under_torchrun(monkeypatch, capsys, command):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["space", *command, DIGITS]) == 0
    assert "one process" not in capsys.readouterr().err
