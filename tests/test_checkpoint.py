import json

import pytest
import torch

from automl._io import atomic_write_bytes
from automl.train.checkpoint import CheckpointStore


def test_save_load_round_trip_keeps_two(tmp_path):
    store = CheckpointStore(tmp_path)
    assert not store.exists() and store.load() is None
    for i in range(4):
        store.save({"step": i, "w": torch.full((3,), float(i))})
    files = sorted(p.name for p in tmp_path.glob("ckpt-*.pt"))
    assert files == ["ckpt-000003.pt", "ckpt-000004.pt"]
    st = store.load()
    assert st["step"] == 3 and torch.equal(st["w"], torch.full((3,), 3.0))


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_corrupted_newest_falls_back_to_previous(tmp_path, damage, caplog):
    store = CheckpointStore(tmp_path)
    store.save({"step": 1})
    newest = store.save({"step": 2})
    data = newest.read_bytes()
    if damage == "truncate":
        newest.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        newest.write_bytes(data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:])
    else:
        newest.unlink()
    assert store.load()["step"] == 1
    assert "checkpoint" in caplog.text


def test_failed_write_keeps_previous(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path)
    store.save({"step": 1})

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("automl.train.checkpoint.atomic_write_bytes", disk_full)
    with pytest.raises(OSError):
        store.save({"step": 2})
    monkeypatch.undo()
    assert store.load()["step"] == 1
    assert len(json.loads(store.index_path.read_text())["checkpoints"]) == 1


def test_atomic_write_leaves_no_temp_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "x.bin"
    atomic_write_bytes(target, b"old")

    def boom(*a, **k):
        raise OSError("fail")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


class _Killed(BaseException):
    """Stands for a SIGKILL: nothing after it in save() runs."""


def _kill_at_unlink(monkeypatch):
    def killed(self, missing_ok=False):
        raise _Killed

    monkeypatch.setattr("pathlib.Path.unlink", killed)


def test_kill_before_unlink_leaves_no_orphan_after_resume(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path)
    store.save({"step": 1})
    store.save({"step": 2})
    _kill_at_unlink(monkeypatch)
    with pytest.raises(_Killed):
        store.save({"step": 3})  # index rewritten, ckpt-000001.pt not yet unlinked
    monkeypatch.undo()
    (tmp_path / "ckpt-best.pt").write_bytes(b"a user's own copy")  # not a numbered checkpoint: kept
    resumed = CheckpointStore(tmp_path)
    assert resumed.load()["step"] == 3
    resumed.remove_temporaries()
    for i in range(4, 7):
        resumed.save({"step": i})
    files = sorted(p.name for p in tmp_path.glob("ckpt-*.pt"))
    assert files == ["ckpt-000005.pt", "ckpt-000006.pt", "ckpt-best.pt"]


def test_kill_before_index_rewrite_file_is_removed_on_resume(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save({"step": 1})
    atomic_write_bytes(tmp_path / "ckpt-000002.pt", b"written, never indexed")
    (tmp_path / ".ckpt-000003.pt.0123abcd.tmp").write_bytes(b"half")
    assert store.remove_temporaries() == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints.json", "ckpt-000001.pt"]
    assert store.load()["step"] == 1


@pytest.mark.parametrize("index", ["missing", "damaged", "empty"])
def test_remove_temporaries_keeps_checkpoints_without_a_usable_index(tmp_path, index):
    store = CheckpointStore(tmp_path)
    store.save({"step": 1})
    store.save({"step": 2})
    if index == "missing":
        store.index_path.unlink()
    elif index == "damaged":
        store.index_path.write_text("{broken")
    else:
        store.index_path.write_text('{"checkpoints": []}')
    (tmp_path / ".ckpt-000003.pt.0123abcd.tmp").write_bytes(b"half")
    assert store.remove_temporaries() == 1
    assert sorted(p.name for p in tmp_path.glob("ckpt-*.pt")) == ["ckpt-000001.pt", "ckpt-000002.pt"]
    assert store.load() is None and not store.missing()  # the run's user error still names the index
    if index == "damaged":
        assert "damaged" in store.why_none()
