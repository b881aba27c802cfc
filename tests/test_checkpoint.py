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
