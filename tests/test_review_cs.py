"""Review CS: checkpoints and signals ("nothing is lost")."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import automl.train.checkpoint as checkpoint
from automl._io import atomic_write_json
from automl.train.checkpoint import CheckpointStore


def _disk_full(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_on_the_index_write_removes_the_new_checkpoint_and_keeps_the_previous(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path)
    store.save({"step": 1})
    store.save({"step": 2})
    monkeypatch.setattr(checkpoint, "atomic_write_json", _disk_full)
    with pytest.raises(OSError):
        store.save({"step": 3})
    monkeypatch.undo()
    # the new file the index never named is gone (it only took space on a full disk); the index is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints.json", "ckpt-000001.pt", "ckpt-000002.pt"]
    assert [e["file"] for e in json.loads(store.index_path.read_text())["checkpoints"]] == [
        "ckpt-000002.pt", "ckpt-000001.pt"]
    assert CheckpointStore(tmp_path).load()["step"] == 2
    assert store.save({"step": 3}).name == "ckpt-000003.pt"  # space freed: the next save goes on


def test_a_full_disk_on_the_first_index_write_leaves_no_checkpoint_file(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path)
    monkeypatch.setattr(checkpoint, "atomic_write_json", _disk_full)
    with pytest.raises(OSError):
        store.save({"step": 1})
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == [] and store.missing()  # "no checkpoint was written yet" holds


# ------------------------------------------------------------------------------------ a second signal

ROOT = Path(__file__).resolve().parents[1]


def _twice(saved: bool) -> subprocess.CompletedProcess:
    """A process whose stages are armed gets SIGTERM twice; ``saved``: it wrote a checkpoint before."""
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(ROOT)!r})
from automl.train.distributed import DistInfo
from automl.train.preempt import Preemption
p = Preemption(DistInfo())
if {saved!r}:
    p.saved()
with p.armed():
    os.kill(os.getpid(), signal.SIGTERM)  # the first: only recorded
    os.kill(os.getpid(), signal.SIGTERM)  # the second: at once
print("not reached")
"""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_a_second_signal_before_any_checkpoint_does_not_claim_one_is_intact():
    p = _twice(saved=False)
    assert p.returncode == 143 and "not reached" not in p.stdout, p.stderr
    assert "SIGTERM again: stopping now" in p.stderr
    assert "intact" not in p.stderr and "no checkpoint was written since this command started" in p.stderr


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_a_second_signal_after_a_checkpoint_says_it_is_intact():
    p = _twice(saved=True)
    assert p.returncode == 143 and "the last checkpoint written is intact" in p.stderr, p.stderr


# ------------------------------------------------------------------------------------ the mode of a rewritten file

@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664, 0o444])
def test_an_atomic_rewrite_keeps_the_permission_bits_of_the_file_it_replaces(tmp_path, mode):
    saved = os.umask(0o022)
    try:
        table = tmp_path / "latency.json"
        table.write_text("{}")
        table.chmod(mode)  # a shared table made group-writable, results made private, a read-only report
        atomic_write_json(table, {"a": 1})
        fresh = tmp_path / "new.json"
        atomic_write_json(fresh, {"b": 2})
    finally:
        os.umask(saved)
    assert json.loads(table.read_text()) == {"a": 1}
    assert stat.S_IMODE(table.stat().st_mode) == mode
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644  # a new file: 0o666 less the umask, as before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latency.json", "new.json"]


# ------------------------------------------------------------------------------------ a damaged index

@pytest.mark.parametrize("index", ["damaged", "empty"])
def test_a_damaged_index_names_the_checkpoint_files_the_folder_still_holds(tmp_path, index):
    store = CheckpointStore(tmp_path)
    store.save({"step": 1})
    store.save({"step": 2})
    store.index_path.write_text("{broken" if index == "damaged" else '{"checkpoints": []}')
    assert store.load() is None
    why = CheckpointStore(tmp_path).why_none()  # the run's "cannot be resumed: …; delete the folder" message
    assert str(store.index_path) in why and "(the folder holds ckpt-000001.pt, ckpt-000002.pt)" in why, why
