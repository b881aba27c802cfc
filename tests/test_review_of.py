"""Review OF: ``automl rank`` with other settings than an earlier ``automl rank`` stopped part-way (another
``--retrain-epochs``, ``--archs``, device, or seeds it does not ask for) replaces that one's retrainings in results.json
(``ranking_partial``) at its first write; before its first retraining it says how many, which settings differ, and
how to keep them (that ranking's command run again, first). One that reuses them all says nothing of it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import automl.pipeline.rank as rank
from automl.pipeline import Run
from automl.pipeline.results import PARTIAL
from automl.recipe import load_recipe
from helpers import QUICK
from test_ranking import TINY
from test_review_od import _stopped_rank  # what it said (stdout and stderr) and the partial record

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared
REPLACED = (r"this ranking \((.*?)\) replaces the (\d+) retrainings? a stopped automl rank recorded in (\S+) "
            r"\(ranking_partial: (.*?)\), which it does not reuse: they are dropped at its first write; to keep "
            r"a stopped ranking's retrainings, finish it first by running its command again \(automl rank (\S+) "
            r"--archs (\d+) --retrain-epochs (\d+)(?: --seeds \d+ --truth \w+)?( --device \w+)?"
            r"(?: with the --seeds it had: its stop message gives the whole command)?\) and copy results.json before "
            r"ranking with other settings\n")


def _held(partial: dict) -> int:
    return sum(len(a.get("retrainings", [])) for a in partial["archs"])


@pytest.fixture
def run_folder(tmp_path: Path, capsys) -> Path:
    out = tmp_path / "run"
    Run(load_recipe(QUICK, TINY), out, tty=False).execute()
    capsys.readouterr()
    return out


def test_a_ranking_of_other_settings_says_it_replaces_a_stopped_rankings_retrainings(run_folder, monkeypatch,
                                                                                    capsys):
    """A ranking of 4 architectures of 2 epochs stopped after 2 retrainings, then one of 3 architectures of 1 epoch:
    before its first retraining it says it drops those 2 (retrain_epochs 2, 4 architectures), and the command that
    finishes the stopped one; its own record then holds none of them."""
    out = run_folder
    said, first = _stopped_rank(out, monkeypatch, capsys, 2, "--archs", "4", "--retrain-epochs", "2")
    assert re.search(REPLACED, said) is None, said  # nothing earlier to replace
    said, second = _stopped_rank(out, monkeypatch, capsys, 1, "--archs", "3")
    found = re.findall(REPLACED, said)
    assert len(found) == 1, said
    settings, count, path, differ, folder, archs, epochs, device = found[0]
    assert int(count) == _held(first) == 2 and path == str(out / "results.json") and folder == str(out)
    assert settings.startswith("3 architectures, 1 retraining of 1 epoch each")
    assert differ == f"retrain_epochs {first['retrain_epochs']}, {len(first['archs'])} architectures" \
        == "retrain_epochs 2, 4 architectures"
    assert (int(archs), int(epochs), device) == (4, 2, "")  # the stopped one's; the same device
    assert said.index("this ranking (") < said.index("stopped by SIGTERM")  # before it computes (and stops)
    assert _held(second) == 1 and second["retrain_epochs"] == 1  # its own only: those were dropped


def test_seeds_a_ranking_does_not_ask_for_are_named(run_folder, monkeypatch, capsys):
    """The same architectures and epochs, 2 seeds stopped after 2 retrainings (seeds 0 and 1 of the first
    architecture), then 1 seed stopped after 2 (the first reused, the second computed): the one of seed 1 is
    dropped, and that seed is named; the other is kept."""
    out = run_folder
    seed = load_recipe(QUICK, TINY).seed
    _, first = _stopped_rank(out, monkeypatch, capsys, 2, "--archs", "3", "--seeds", "2")
    assert _held(first) == 2
    said, second = _stopped_rank(out, monkeypatch, capsys, 2, "--archs", "3")
    found = re.findall(REPLACED, said)
    assert len(found) == 1 and found[0][1] == "1", said
    assert found[0][3] == f"seed {seed + 1}, which this one does not ask for"
    assert found[0][5:] == ("3", "1", "")
    assert _held(second) == 2 and second["archs"][0] == {**first["archs"][0], "retrainings": [
        t for t in first["archs"][0]["retrainings"] if t["seed"] == seed]}  # the first one's seed 0 kept


def test_a_ranking_that_reuses_every_retraining_of_the_stopped_one_says_nothing_of_it(run_folder, monkeypatch,
                                                                                     capsys):
    """More seeds of the same architectures and epochs: it keeps every retraining of the stopped one."""
    out = run_folder
    _stopped_rank(out, monkeypatch, capsys, 2, "--archs", "3")
    said, second = _stopped_rank(out, monkeypatch, capsys, 2, "--archs", "3", "--seeds", "2")
    assert "replaces the" not in said, said
    assert _held(second) == 3


def test_a_partial_record_of_another_device_is_named_with_its_flag(tmp_path, capsys):
    """The stopped ranking computed on another device (and an older one recording none): the device is named, and
    the command has its --device (not for one not recorded)."""
    recipe = load_recipe(QUICK, TINY + ["ranking.archs=3"])
    choices = [["a"], ["b"], ["c"]]
    here = {"device": "cpu", "world_size": 1}
    arch = {"choices": ["a"], "params": 10, "retrainings": [{"seed": 0, "test_loss": 1.0, "test_accuracy": 0.5}]}
    partial = {"retrain_epochs": recipe.retrain.epochs, "archs": [arch, {"choices": ["b"]}, {"choices": ["c"]}],
               "metrics_bytes": 0, "device": "cuda (NVIDIA H100 80GB HBM3)", "world_size": 1}
    path = tmp_path / "results.json"
    rank._say_partial_replaced({PARTIAL: partial}, recipe, path, choices, here, {})
    found = re.findall(REPLACED, capsys.readouterr().out)
    assert len(found) == 1 and found[0][1] == "1"
    assert found[0][3] == "device cuda (NVIDIA H100 80GB HBM3)" and found[0][7] == " --device cuda"
    del partial["device"]
    rank._say_partial_replaced({PARTIAL: partial}, recipe, path, choices, here, {})
    found = re.findall(REPLACED, capsys.readouterr().out)
    assert len(found) == 1 and found[0][3] == "device not recorded (an older automl)" and found[0][7] == ""
    rank._say_partial_replaced({PARTIAL: partial}, recipe, path, choices, here, {(0, 0): {}})  # kept: nothing said
    assert capsys.readouterr().out == ""
