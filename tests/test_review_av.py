"""Review AV: `automl space profile` and int8 export, user errors and results."""

from __future__ import annotations

import json

import pytest
from test_edge_fixes import _fake_time  # a latency of exactly 1 ms + 1 µs per parameter
from test_profile import DIGITS, _recipe  # the quickstart recipe searching on a given latency table

import automl.profile as profile
from automl.cli import main


def _no_memory(module, shapes, *a, **k):
    raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you "
                       "tried to allocate 274877906944 bytes")


def test_out_of_memory_at_batch_one_names_the_input_size_not_the_batch(tmp_path, capsys, monkeypatch):
    """At --batch 1 a smaller --batch is no way out: the message names the input size and the --set values."""
    monkeypatch.setattr(profile, "time_module", _no_memory)
    out = tmp_path / "t.json"
    assert main(["space", "profile", DIGITS, "--set", "size=16", "--calibrate", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "smaller --batch" not in err and "memory" in err, err
    assert "1 x 16 x 16" in err and "--set" in err and "size=16" in err and DIGITS in err, err
    assert not out.exists()


def _table(tmp_path, edit):
    path = tmp_path / "t.json"
    with pytest.MonkeyPatch.context() as mp:  # the fake clock: no real timing
        mp.setattr(profile, "time_module", _fake_time)
        assert main(["space", "profile", DIGITS, "--repeat", "2", "--calibrate", "0", "--out", str(path)]) == 0
    t = json.loads(path.read_text())
    edit(t)
    path.write_text(json.dumps(t))
    return path


@pytest.mark.parametrize("edit,field", [
    (lambda t: t.update(batch=10**9), '"batch" is 1000000000'),
    (lambda t: t["machine"].update(threads=5000), '"machine.threads" is 5000'),
])
def test_a_table_with_a_huge_batch_or_threads_stops_a_run_before_it_trains(tmp_path, capsys, edit, field):
    """A run times its exports at the table's batch and threads: a typo there (a table written or edited by hand)
    is one message when the run starts, above the bounds of `space profile`'s --batch and --threads, not an
    allocation of 477 GiB (or thousands of onnxruntime threads) at the export, after the whole search."""
    table = _table(tmp_path, edit)
    recipe = _recipe(tmp_path, str(table))
    tiny = ["data.limit_train=96", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
            "search.weight_epochs=1", "search.theta_epochs=1", "search.epsilons=[0.5]", "search.lam=2",
            "retrain.epochs=0", "device=cpu", "threads=1"]
    assert main(["run", str(recipe), "--out", str(tmp_path / "run"), *tiny]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err and "at most" in err and str(table) in err, err
    assert not (tmp_path / "run" / "results.json").exists()
