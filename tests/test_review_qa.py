"""Review QA: ``automl rank`` reuses a run's own ranking retraining when the retraining's own record says it was
computed as the command computes (device and process count), even where the run as a whole was resumed on another
device (``cuda (...), then cpu``); the run's device only stands in for a retraining with no record of its own (an
older automl's). And a ranking of other settings whose retrainings were computed otherwise gives the advice to copy
results.json once, not twice."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from automl.cli import main
from automl.pipeline import Run
from automl.pipeline import rank as rank_mod
from automl.pipeline.results import COMPUTED_ON
from automl.recipe import load_recipe
from automl.train.checkpoint import CheckpointStore

from test_ranking import QUICK, TINY
from test_review_ph import ranked_run  # noqa: F401 (a fixture: a finished run with its own ranking)
from test_review_s import _retrainings

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

GPU = "cuda (NVIDIA H100 80GB HBM3)"
RESUMED = f"{GPU}, then cpu"


def _resumed_on_the_cpu(out: Path, devices: list[str | None]) -> None:
    """The run's last checkpoint (and results.json) as if the run had started on a GPU and been resumed on the CPU:
    the run's device ``cuda (...), then cpu``, and ranking retraining j's own record of the device ``devices[j]``
    (None: no record of its own, as an older automl wrote it)."""
    store = CheckpointStore(out / "checkpoints")
    ckpt = store.load()
    for j, device in enumerate(devices):
        entry = ckpt["results"][f"ranking/{j}"]
        if device is None:
            entry.pop("computed_on")
        else:
            entry["computed_on"] = {seed: {**how, "device": device} for seed, how in entry["computed_on"].items()}
    store.save({**ckpt, "device": RESUMED})
    results = json.loads((out / "results.json").read_text())
    (out / "results.json").write_text(json.dumps({**results, "device": RESUMED}))


def _ranked_again(out: Path, monkeypatch, capsys, *flags: str) -> tuple[list, str]:
    calls = _retrainings(monkeypatch)
    assert main(["rank", str(out), *flags]) == 0
    return calls, capsys.readouterr().out


def _recorded_earlier(said: str) -> list[bool]:
    """For each architecture's retraining line (``ranking j/3: N params, ...``), whether it says its retraining was
    recorded earlier."""
    return [line.endswith("(recorded earlier)") for line in said.splitlines()
            if re.match(r"ranking \d/3: [\d,]+ params, ", line)]


def test_a_resumed_runs_retrainings_recorded_as_computed_on_the_cpu_are_reused_on_the_cpu(ranked_run, monkeypatch,
                                                                                           capsys):
    """The run says ``cuda (...), then cpu``: its first retraining records the GPU (not reused: retrained, and said),
    the two others the CPU (reused, as automl rank computes on the CPU). automl rank reused none of them."""
    out = ranked_run
    _resumed_on_the_cpu(out, [GPU, "cpu", "cpu"])
    calls, said = _ranked_again(out, monkeypatch, capsys)
    assert len(calls) == 1, said
    assert _recorded_earlier(said) == [False, True, True], said
    assert "2 of 3 retrainings were recorded by an earlier ranking" in said, said
    notice = [line for line in said.splitlines() if line.startswith("this ranking does not reuse")]
    assert len(notice) == 1, said
    assert "does not reuse the retraining of the same" in notice[0] and f"computed on {GPU};" in notice[0], notice
    assert "then cpu" not in notice[0] and "reuses none" not in notice[0], notice
    assert json.loads((out / "results.json").read_text())["ranking"]["reused_retrainings"] == 2


def test_a_resumed_runs_retrainings_without_a_record_of_their_own_are_not_reused(ranked_run, monkeypatch, capsys):
    """Retrainings with no record of their own (an older automl's) of a run resumed on another device: the run's
    device stands in for theirs, which is neither device, so they are retrained; the one that records the CPU is
    reused. The notice says why those are not: not that automl rank reuses none of the run's retrainings."""
    out = ranked_run
    _resumed_on_the_cpu(out, [None, "cpu", None])
    calls, said = _ranked_again(out, monkeypatch, capsys)
    assert len(calls) == 2, said
    assert _recorded_earlier(said) == [False, True, False], said
    notice = [line for line in said.splitlines() if line.startswith("this ranking does not reuse")]
    assert len(notice) == 1 and "the 2 retrainings" in notice[0], said
    assert f"computed on {RESUMED} (" in notice[0] and "reuses none of its retrainings" not in notice[0], notice
    assert "record no device of their own" in notice[0], notice
    assert "--device" not in notice[0], notice


def test_a_run_all_computed_on_the_cpu_still_reuses_all(ranked_run, monkeypatch, capsys):
    """Unchanged: every retraining recorded as computed on the CPU, the run's device the CPU."""
    calls, said = _ranked_again(ranked_run, monkeypatch, capsys)
    assert calls == [] and "3 of 3 retrainings were recorded by an earlier ranking" in said, said


def test_other_settings_and_computed_otherwise_advise_the_copy_once(tmp_path, monkeypatch, capsys):
    """An earlier automl rank's section (1 seed) recorded on another device, ranked again with 2 seeds: the notice
    that this ranking replaces one of other settings and the notice that it does not reuse its retrainings both
    said to stop now and copy the file; the advice is given once, naming the file."""
    out = tmp_path / "run"
    Run(load_recipe(QUICK, TINY), out, tty=False).execute()
    assert main(["rank", str(out), "--archs", "3", "--retrain-epochs", "1"]) == 0
    results = json.loads((out / "results.json").read_text())
    results["ranking"]["device"] = GPU
    (out / "results.json").write_text(json.dumps(results))
    capsys.readouterr()
    calls, said = _ranked_again(out, monkeypatch, capsys, "--archs", "3", "--retrain-epochs", "1", "--seeds", "2")
    assert len(calls) == 6
    assert "replaces the one in" in said and "this ranking does not reuse the 3 retrainings" in said, said
    assert said.count("stop now (Ctrl-C)") == 1, said
    assert f"stop now (Ctrl-C) and copy {out / 'results.json'} first" in said, said


def test_other_settings_alone_still_advise_the_copy(tmp_path, monkeypatch, capsys):
    """A section of other settings computed as automl rank computes: its one notice keeps the advice."""
    out = tmp_path / "run"
    Run(load_recipe(QUICK, TINY), out, tty=False).execute()
    assert main(["rank", str(out), "--archs", "3", "--retrain-epochs", "1"]) == 0
    capsys.readouterr()
    calls, said = _ranked_again(out, monkeypatch, capsys, "--archs", "3", "--retrain-epochs", "1", "--seeds", "2")
    assert len(calls) == 3 and "does not reuse" not in said, said
    assert said.count("stop now (Ctrl-C)") == 1 and "replaces the one in" in said, said


def test_retrainings_without_a_record_of_a_run_resumed_with_another_count_are_not_reused(ranked_run, monkeypatch,
                                                                                          capsys):
    """Retrainings with no record of their own (an older automl's) of a run resumed from 2 processes to 1: which
    count computed them is not known, so none is reused (they were, as if computed with the count automl rank has)."""
    out = ranked_run
    store = CheckpointStore(out / "checkpoints")
    ckpt = store.load()
    for j in range(3):
        ckpt["results"][f"ranking/{j}"].pop("computed_on")
    store.save({**ckpt, "world_size": 1, "world_sizes": [2, 1]})
    calls, said = _ranked_again(out, monkeypatch, capsys)
    assert len(calls) == 3 and _recorded_earlier(said) == [False, False, False], said
    notice = [line for line in said.splitlines() if line.startswith("this ranking does not reuse the 3 retrainings")]
    assert len(notice) == 1 and "computed with a number of processes not recorded" in notice[0], said


def test_a_retraining_record_lacking_its_process_count_is_retrained_and_said():
    """A retraining's own record with its device but no number of processes (an edited checkpoint): retrained, and
    the notice names it (the reuse rule and the notice read the record alike: the run's count does not fill it)."""
    here = {"device": "cpu", "world_size": 1}
    state = SimpleNamespace(device="cpu", world_size=1, world_sizes=None)
    entry = {COMPUTED_ON: {0: {"device": "cpu"}, 1: dict(here)}}
    assert rank_mod._own_how(state, entry, 0) != here and rank_mod._own_how(state, entry, 1) == here
    assert not rank_mod._computed_as_here(None, state, entry, 0, here)
    assert rank_mod._computed_as_here(None, state, entry, 1, here)


def test_a_retraining_record_that_is_no_record_is_not_as_here():
    """A retraining's own record that is not a mapping (an edited checkpoint) is not taken for the run's record."""
    here = {"device": "cpu", "world_size": 1}
    state = SimpleNamespace(device="cpu", world_size=1, world_sizes=None)
    assert not rank_mod._computed_as_here(None, state, {COMPUTED_ON: {0: "cpu"}}, 0, here)
