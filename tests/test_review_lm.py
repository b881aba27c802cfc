"""Review LM: a cost table profiled in another working folder (``space.cwd``) for a relative space file is named by
its full path in the refusal (and the ``automl export --recipe`` note): the relative path alone named the user's own
file, and the message told them to give "its file in place of" that same path. A lock file a refused look made on a
file system without locks (ENOLCK) is removed: no file where there was none. A lock file that is not the one in place
at each try gets a message of its own, not the (maybe long dead) holder recorded in the file."""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_edge_fixes import _fake_time  # a latency of exactly 1 ms + 1 µs per parameter
from test_review_la import WIDE, _cli, _cost, _space

import automl._lock as lock_module
import automl.profile as profile
from automl._lock import LOCK_NAME, RunLock
from automl.commands import export as export_cmd
from automl.compile import load_compiled
from automl.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

RELATIVE = os.path.join("spaces", "digits.space")


@pytest.fixture(autouse=True)
def _fake_timing(monkeypatch):
    monkeypatch.setattr(profile, "time_module", _fake_time)


def _profile_in(capsys, monkeypatch, folder: Path) -> Path:
    """Profile ``folder``'s spaces/digits.space from ``folder`` (the relative path recorded, with ``folder``)."""
    monkeypatch.chdir(folder)
    code, err = _cli(capsys, "space", "profile", RELATIVE, "--repeat", "1", "--calibrate", "0", "--out",
                     "latency.json")
    assert code == 0, err
    return folder / "latency.json"


@pytest.mark.parametrize("edit,said", [(WIDE, "profiled for space digits ({})"),
                                       (("stage s1 ", "stage t1 "), "profiled for space 'digits' ({})")])
def test_a_table_of_another_folder_names_its_space_file_by_its_full_path(tmp_path, capsys, monkeypatch, edit, said):
    """Project a's table of spaces/digits.space, read in project b (a copy, its space edited: widths or decisions):
    the message named spaces/digits.space, b's own file, as the one the table was profiled for."""
    _space(tmp_path / "a" / "spaces")
    _space(tmp_path / "b" / "spaces", edit)
    table = _profile_in(capsys, monkeypatch, tmp_path / "a")
    monkeypatch.chdir(tmp_path / "b")
    code, err = _cost(capsys, RELATIVE, table, tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert said.format(tmp_path / "a" / RELATIVE) in err, err
    assert f"({RELATIVE})" not in err, err


def test_the_export_note_names_the_other_folders_file(tmp_path, capsys, monkeypatch):
    """The note of `automl export --recipe` says the refusal's reason: the full path there too."""
    _space(tmp_path / "a" / "spaces")
    _space(tmp_path / "b" / "spaces", WIDE)
    table = _profile_in(capsys, monkeypatch, tmp_path / "a")
    monkeypatch.chdir(tmp_path / "b")
    cs = load_compiled(RELATIVE)
    with pytest.raises(profile.CostTableMismatch) as info:
        profile.read_cost_table(table, cs)
    assert str(tmp_path / "a" / RELATIVE) in info.value.reason, info.value.reason
    recipe = SimpleNamespace(cost_table_path=table, source=tmp_path / "b" / "r.yaml",
                             search=SimpleNamespace(cost_table=str(table)))
    capsys.readouterr()
    export_cmd._price(recipe, cs, {"batch": 1, "threads": 1, "clock": "wall"})
    notes = [line for line in capsys.readouterr().err.splitlines() if "does not price" in line]
    assert len(notes) == 1 and f"profiled for space digits ({tmp_path / 'a' / RELATIVE})" in notes[0], notes


@pytest.mark.parametrize("cwd", ["none", "here"])
def test_a_table_without_another_folder_keeps_its_recorded_path(tmp_path, capsys, monkeypatch, cwd):
    """A table with no ``space.cwd`` (written before tables recorded it), or profiled in this working folder: the
    recorded relative path names the file from here, and the message says it as recorded."""
    _space(tmp_path / "a")
    _space(tmp_path / "b", WIDE)
    monkeypatch.chdir(tmp_path)
    code, err = _cli(capsys, "space", "profile", "a/digits.space", "--repeat", "1", "--calibrate", "0", "--out",
                     "latency.json")
    assert code == 0, err
    t = json.loads((tmp_path / "latency.json").read_text())
    assert t["space"]["cwd"] == os.getcwd(), t["space"]
    if cwd == "none":
        del t["space"]["cwd"]
        (tmp_path / "latency.json").write_text(json.dumps(t))
    code, err = _cost(capsys, "b/digits.space", "latency.json", tmp_path)
    assert code == 2 and "profiled for space digits (a/digits.space)" in err, err


def _no_locks(monkeypatch):
    def refuse(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_module.fcntl, "flock", refuse)


def test_a_refused_look_without_locks_leaves_no_file_where_there_was_none(tmp_path, monkeypatch):
    _no_locks(monkeypatch)
    lock = RunLock(tmp_path)
    assert lock.acquire(create=True, look=True) is False
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_look_without_locks_leaves_a_file_it_found(tmp_path, monkeypatch):
    """A lock file that was there (a previous run's record) is not this call's to remove: bytes kept."""
    said = b'{"pid": 1, "host": "h", "started": "s", "command": "automl run"}\n'
    (tmp_path / LOCK_NAME).write_bytes(said)
    _no_locks(monkeypatch)
    lock = RunLock(tmp_path)
    assert lock.acquire(create=True, look=True) is False
    lock.release()
    assert (tmp_path / LOCK_NAME).read_bytes() == said


@pytest.mark.parametrize("then", [None, "then run automl rank R again"])
def test_a_lock_file_never_in_place_is_no_holder(tmp_path, monkeypatch, then):
    """stat and fstat that never agree on the file's identity (old overlayfs, some FUSE or CIFS mounts): each try
    finds the file "replaced"; the refusal named the holder in the file's record, a process long gone."""
    record = {"pid": 987654, "host": "gone-host", "started": "2020-01-01 00:00:00 UTC", "command": "automl run"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(record) + "\n")
    monkeypatch.setattr(lock_module, "_in_place", lambda fd, path: False)
    with pytest.raises(UserError) as info:
        RunLock(tmp_path).acquire(create=True, then=then, look=True)
    message = str(info.value)
    assert info.value.exit_code == 2
    assert "987654" not in message and "gone-host" not in message and "in use" not in message, message
    assert "kept being removed or replaced" in message and "file system" in message, message
    assert str(tmp_path) in message and "run the command again" in message, message
    assert ("--out" in message) == (then is None), message
