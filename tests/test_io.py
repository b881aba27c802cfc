import os
import stat

import pytest

from automl._io import UnreadableText, atomic_path, atomic_write_bytes, atomic_write_json, read_utf8_text


@pytest.fixture
def umask():
    """Sets the process umask for one test and restores it after."""
    saved = os.umask(0o022)
    yield os.umask
    os.umask(saved)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_get_the_mode_of_a_plain_open(tmp_path, umask, mask, mode):
    umask(mask)
    atomic_write_json(tmp_path / "results.json", {"a": 1})
    with atomic_path(tmp_path / "model.onnx", suffix=".onnx") as tmp:  # a writer that opens the path itself
        with open(tmp, "wb") as f:
            f.write(b"onnx")
    (tmp_path / "plain.txt").write_text("x")
    for name in ["results.json", "model.onnx", "plain.txt"]:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "x.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["x.bin"]


def test_atomic_write_syncs_the_folder_after_the_rename(tmp_path, monkeypatch):
    if os.name != "posix":
        pytest.skip("folder fsync is POSIX only")
    synced, real_fsync = [], os.fsync

    def fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr("os.fsync", fsync)
    atomic_write_bytes(tmp_path / "x.bin", b"data")
    assert synced == [False, True]  # the file, then its folder


def test_folder_fsync_failure_is_ignored(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(22, "Invalid argument")
        real_fsync(fd)

    monkeypatch.setattr("os.fsync", fsync)
    atomic_write_bytes(tmp_path / "x.bin", b"data")
    assert (tmp_path / "x.bin").read_bytes() == b"data"


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_a_bad_byte_is_placed_by_every_kind_of_line_break(tmp_path, newline):
    p = tmp_path / "t.space"
    p.write_bytes(newline.join([b"space t", b"# one", b"# caf\xe9 au lait", b"end"]) + newline)
    with pytest.raises(UnreadableText) as info:
        read_utf8_text(p)
    e = info.value
    assert (e.reason, e.detail, e.line, e.column) == ("encoding", "0xe9", 3, 6)
    assert e.source_line == "# caf\ufffd au lait"
