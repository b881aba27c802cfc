"""``--resume`` of a run that reuses a supernet, given another run's folder as ``--supernet``: the run goes on
with the supernet it took at its start (a resume keeps it), and says so in one note instead of silently."""

import json
import shutil
from pathlib import Path

import pytest

from automl.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
FAST = ["data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.weight_epochs=1", "search.theta_epochs=1", "search.lam=2", "retrain.epochs=0", "export.onnx=false",
        "device=cpu", "threads=1", "search.epsilons=[0]", "search.supernets=1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A run that trained a supernet, a copy of its folder, and a run that reused the first's supernet."""
    base = tmp_path_factory.mktemp("lead7")
    assert main(["run", QUICK, *FAST, "--out", str(base / "a")]) == 0
    shutil.copytree(base / "a", base / "copy")
    assert main(["run", QUICK, *FAST, "--out", str(base / "k"), "--supernet", str(base / "a")]) == 0
    return base


def _resume(capsys, runs, supernet) -> str:
    assert main(["run", QUICK, *FAST, "--out", str(runs / "k"), "--resume", "--supernet", str(supernet)]) == 0
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_another_folder_is_named_with_the_one_the_run_goes_on_with(runs, capsys):
    text = _resume(capsys, runs, runs / "copy")
    notes = [line for line in text.splitlines() if "is not the run's supernet" in line]
    assert len(notes) == 1, text
    assert f"--supernet {runs / 'copy'}" in notes[0] and f"that of {runs / 'a'}" in notes[0]
    assert "start a new run" in notes[0]
    # what it goes on with: results.json still names the supernet the run took
    assert json.loads((runs / "k" / "results.json").read_text())["supernet"]["from"] == str(runs / "a")


def test_the_same_folder_written_another_way_is_no_note(runs, capsys):
    text = _resume(capsys, runs, runs / "copy" / ".." / "a")
    assert "is not the run's supernet" not in text, text


def test_the_folder_moved_since_is_no_note(runs, capsys):
    """A run moved with the run whose supernet it took resumes with --supernet at the new path (docs/reliability)."""
    (runs / "a").rename(runs / "a_moved")
    try:
        text = _resume(capsys, runs, runs / "a_moved")
    finally:
        (runs / "a_moved").rename(runs / "a")
    assert "is not the run's supernet" not in text, text
