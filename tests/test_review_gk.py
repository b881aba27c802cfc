"""Paths that name no usable file or folder (review GK): an ``--out FILE`` that is a symbolic link leading to nothing
(a loop of links, a link to a file that does not exist) is refused by :func:`automl._io.writable_file` itself, not
replaced by the written file; ``automl export``'s ``--weights``, SPACE and ``--out`` say what the path is (a loop of
links, a link to nothing, a pipe, socket or device) instead of "no such file" or "is a file"."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from automl._io import writable_dir, writable_file
from automl.errors import UserError
from helpers import cli_said as cli

ROOT = Path(__file__).resolve().parent.parent
DIGITS = str(ROOT / "spaces" / "digits.space")
ARCH = {"choices": ["ir_k3_e1", "skip", "skip", "ir_k3_e1", "skip", "skip", "ir_k3_e1", "skip", "skip"]}

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = {"loop": "leads through a loop of symbolic links", "dangling": "is a symbolic link to nowhere.json, which does "
         "not exist", "fifo": "is a named pipe (FIFO)", "socket": "is a socket", "devnull": "is a device"}


@pytest.fixture
def arch(tmp_path) -> Path:
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(ARCH), encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["loop", "dangling"])
def test_writable_file_refuses_a_link_to_nothing(odd_path, kind):
    """Every ``--out FILE`` (writable_file) refuses a link that leads to nothing, as writable_dir does for a
    folder: the atomic write would replace the link itself with the new file."""
    out = odd_path(kind)
    target = os.readlink(out)
    with pytest.raises(UserError) as info:
        writable_file(out, "--out", "table.json")
    message = str(info.value)
    assert message.startswith(f"--out {out} {WORDS[kind]}") and "would replace the link" in message, message
    assert "e.g. --out table.json" in message, message
    assert out.is_symlink() and os.readlink(out) == target


def test_writable_file_takes_a_link_to_a_file_and_a_new_file(tmp_path):
    (tmp_path / "real.json").write_text("{}")
    (tmp_path / "link.json").symlink_to("real.json")
    assert writable_file(tmp_path / "link.json", "--out") == Path(os.path.realpath(tmp_path / "real.json"))
    assert writable_file(tmp_path / "new.json", "--out") == tmp_path / "new.json"


@pytest.mark.parametrize("kind", ["loop", "fifo", "socket", "devnull"])
def test_writable_dir_says_what_the_path_is(odd_path, kind):
    """A loop of links was "a link to L, which does not exist; create that folder", a pipe or socket "a file"."""
    with pytest.raises(UserError) as info:
        writable_dir(odd_path(kind), "--out")
    message = str(info.value)
    assert WORDS[kind] in message and "choose a folder" in message, message
    assert "is a file" not in message and "does not exist" not in message, message


@pytest.mark.parametrize("kind", ["loop", "dangling", "fifo", "socket", "devnull"])
def test_export_weights_that_is_no_file_says_what_it_is(odd_path, arch, tmp_path, capsys, kind):
    weights = odd_path(kind)
    code, err = cli(capsys, "export", DIGITS, "--arch", arch, "--out", tmp_path / "out", "--weights", weights)
    assert code == 2
    assert f"--weights {weights} {WORDS[kind]}" in err and "no such file" not in err, err
    assert "ckpt-" in err, err  # what to give instead
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["loop", "dangling", "fifo", "socket", "devnull"])
def test_export_space_that_is_no_file_says_what_it_is(odd_path, arch, tmp_path, capsys, kind):
    space = odd_path(kind)
    code, err = cli(capsys, "export", space, "--arch", arch, "--out", tmp_path / "out")
    assert code == 2
    assert f"{space} {WORDS[kind]}" in err and "no such" not in err and ".space file" in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["loop", "fifo", "socket"])
def test_export_out_that_is_no_folder_says_what_it_is(odd_path, arch, capsys, kind):
    out = odd_path(kind)
    code, err = cli(capsys, "export", DIGITS, "--arch", arch, "--out", out)
    assert code == 2
    assert f"--out {out} {WORDS[kind]}" in err and "is a file" not in err and "does not exist" not in err, err
    assert os.path.lexists(out) and not out.is_dir()
