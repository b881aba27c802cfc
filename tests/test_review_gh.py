"""Path arguments that name no usable file or folder (review GH): a loop of symbolic links, a link to nothing, a
named pipe (FIFO), a socket or a device given as ``--supernet``, ``automl rank RUN_DIR``, ``--arch``,
``--arch-def``, ``--cost-table``, a recipe or a space file, or the ``--out`` of ``space profile``/``space encode``
is one user error (exit 2) that says what the path is (a file to read may be a pipe: ``<(...)``), and an
``--out`` link that leads to nothing is not replaced by the written file."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from helpers import cli_said as cli

ROOT = Path(__file__).resolve().parent.parent
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
DIGITS = str(ROOT / "spaces" / "digits.space")

pytestmark = pytest.mark.usefixtures("one_thread")


WORDS = {"loop": "a loop of symbolic links", "dangling": "is a symbolic link to nowhere.json, which does not exist",
         "fifo": "is a named pipe (FIFO)", "socket": "is a socket", "devnull": "is a device"}


@pytest.mark.parametrize("kind", ["loop", "dangling", "fifo", "devnull"])
def test_supernet_that_is_no_folder_says_what_it_is(odd_path, tmp_path, capsys, kind):
    path = odd_path(kind)
    code, err = cli(capsys, "run", QUICK, "--supernet", path, "--out", tmp_path / "run")
    assert code == 2
    assert WORDS[kind] in err and "is a file" not in err and f"{path} does not exist" not in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", ["loop", "dangling", "fifo", "socket"])
def test_rank_run_dir_that_is_no_folder_says_what_it_is(odd_path, capsys, kind):
    code, err = cli(capsys, "rank", odd_path(kind))
    assert code == 2
    assert WORDS[kind] in err and "RUN_DIR must be the --out folder" in err, err


def _arch(tmp_path) -> Path:
    arch = tmp_path / "arch.json"
    arch.write_text('{"choices": {}}\n')
    return arch


@pytest.mark.parametrize("flag", ["--arch", "--arch-def", "--cost-table"])
@pytest.mark.parametrize("kind", ["loop", "dangling", "socket"])
def test_a_file_to_read_that_is_no_file_says_what_it_is(odd_path, tmp_path, capsys, flag, kind):
    path = odd_path(kind)
    command = {"--arch": ["space", "cost", DIGITS, "--arch", path],
               "--arch-def": ["space", "encode", DIGITS, "--arch-def", path],
               "--cost-table": ["space", "cost", DIGITS, "--arch", _arch(tmp_path), "--cost-table", path]}[flag]
    code, err = cli(capsys, *command)
    assert code == 2
    assert WORDS[kind] in err and path.name in err and "not valid JSON" not in err, err


@pytest.mark.parametrize("kind", ["loop", "dangling"])
def test_profile_out_link_to_nothing_is_refused_and_kept(odd_path, tmp_path, capsys, kind):
    out = odd_path(kind)
    target = os.readlink(out)
    code, err = cli(capsys, "space", "profile", DIGITS, "--out", out, "--calibrate", "0", "--repeat", "1")
    assert code == 2
    assert f"--out {out} " in err and WORDS[kind] in err and "would replace the link" in err, err
    assert out.is_symlink() and os.readlink(out) == target  # not replaced by a table
    assert not (tmp_path / "odd" / "nowhere.json").exists()


def test_encode_out_loop_is_refused_before_the_network_is_read(odd_path, capsys):
    out = odd_path("loop")
    code, err = cli(capsys, "space", "encode", DIGITS, "--timm", "resnet18", "--out", out)
    assert code == 2
    assert WORDS["loop"] in err and "ResNet" not in err, err
    assert out.is_symlink()



@pytest.mark.parametrize("what", ["recipe", "space"])
@pytest.mark.parametrize("kind", ["loop", "dangling", "socket"])
def test_a_recipe_or_space_that_is_no_file_says_what_it_is(odd_path, capsys, what, kind):
    path = odd_path(kind)
    argv = ["run", path] if what == "recipe" else ["space", "check", path]
    code, err = cli(capsys, *argv)
    assert code == 2
    assert WORDS[kind] in err and path.name in err and "no such file" not in err.lower(), err


def test_a_file_to_read_may_be_a_pipe(tmp_path, capsys):
    """A process substitution (``--arch <(jq ... arch.json)``) is a pipe: read as the file it carries."""
    choices = {"choices": ["ir_k3_e1", "skip", "skip", "ir_k3_e1", "skip", "skip", "ir_k3_e1", "skip", "skip"]}
    pipe = tmp_path / "arch-pipe"
    os.mkfifo(pipe)

    def write():
        with open(pipe, "w", encoding="utf-8") as f:
            f.write(json.dumps(choices))

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    code, out = cli(capsys, "space", "cost", DIGITS, "--arch", pipe)
    writer.join(timeout=30)
    assert code == 0, out
    assert "params" in out, out
