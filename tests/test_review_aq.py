"""The ``automl`` command under ordinary shell plumbing: output piped into a reader that stops early (``| head``)
ends it quietly with exit 1, standard output on a full disk is one message (exit 2), and standard output in an
encoding without θ, ε or — (``PYTHONIOENCODING=ascii``, ``LC_ALL=C`` outside UTF-8 mode) still prints."""

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import automl.commands.space as space_command
from automl.cli import main

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
QUICK = str(ROOT / "recipes" / "quickstart.yaml")


def _env(**extra) -> dict:
    """The environment of a child ``automl``: block-buffered output (as in a shell), this checkout imported."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONUNBUFFERED", "PYTHONIOENCODING", "PYTHONUTF8")}
    return dict(env, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **extra)


def _closed_pipe() -> int:
    """The writing end of a pipe whose reading end is closed (a ``| head`` that has exited)."""
    r, w = os.pipe()
    os.close(r)
    return w


def _quiet(text: str) -> None:
    assert "Traceback" not in text and "Exception ignored" not in text and "internal error" not in text, text


# ---- a closed pipe ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("unbuffered", [False, True])
def test_help_into_a_closed_pipe_ends_quietly(unbuffered):
    w = _closed_pipe()
    try:
        p = subprocess.run([sys.executable, "-m", "automl", "--help"], stdout=w, stderr=subprocess.PIPE, text=True,
                           env=_env(**({"PYTHONUNBUFFERED": "1"} if unbuffered else {})), timeout=120)
    finally:
        os.close(w)
    _quiet(p.stderr)
    assert p.stderr == ""
    # buffered, the help is still unwritten when argparse exits: it fails at the last flush, a closed pipe (1);
    # unbuffered, argparse's own write fails, and argparse ignores an OSError of its help (0)
    assert p.returncode == (0 if unbuffered else 1)


@pytest.mark.parametrize("argv", [["space", "check", DIGITS], ["space", "show", "--json", DIGITS]],
                         ids=["check", "show-json"])
@pytest.mark.parametrize("buffering", [-1, 1], ids=["block", "line"])
def test_a_command_into_a_closed_pipe_returns_1_quietly(monkeypatch, capsys, argv, buffering):
    out = open(_closed_pipe(), "w", buffering=buffering, encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", out)
    try:
        assert main(argv) == 1
        out.flush()  # what was left unwritten goes to os.devnull now: nothing for Python to fail on at exit
    finally:
        monkeypatch.undo()
        out.close()
    _quiet(capsys.readouterr().err)


def test_a_rich_table_into_a_closed_pipe_exits_1_quietly(monkeypatch, capsys):
    out = open(_closed_pipe(), "w", encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", out)
    try:
        with pytest.raises(SystemExit) as stop:  # rich's own handling of a closed pipe: SystemExit(1)
            main(["space", "show", DIGITS])
        out.flush()
    finally:
        monkeypatch.undo()
        out.close()
    assert stop.value.code == 1
    _quiet(capsys.readouterr().err)


def test_a_broken_pipe_that_is_not_the_output_is_an_internal_error(monkeypatch, capsys):
    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")  # a worker's pipe, a socket: not standard output

    monkeypatch.setattr(space_command, "main", broken)
    assert main(["space", "check", DIGITS]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "BrokenPipeError" in err and "internal error" in err


def test_help_into_a_full_disk_is_one_message():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "automl", "--help"], stdout=full, stderr=subprocess.PIPE,
                           text=True, env=_env(), timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip() == ("automl: cannot write standard output (No space left on device); free space and "
                                "run the command again")


# ---- an encoding without θ, ε, — ---------------------------------------------------------------------------------

@pytest.fixture
def greek_space(tmp_path) -> Path:
    path = tmp_path / "θ×ε.space"
    shutil.copy(DIGITS, path)
    return path


@pytest.mark.parametrize("errors", ["strict", "surrogateescape"])
def test_a_non_ascii_name_on_an_ascii_stdout_prints_question_marks(monkeypatch, capsys, greek_space, errors):
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii", errors=errors)
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["space", "check", str(greek_space)]) == 0
    out.flush()
    monkeypatch.undo()
    assert f"{greek_space.parent}/???.space: ok: space digits".encode() in raw.getvalue()
    _quiet(capsys.readouterr().err)


def test_undecoded_bytes_of_a_name_are_written_back_as_they_were(monkeypatch, tmp_path):
    if sys.getfilesystemencoding() != "utf-8" or sys.platform == "win32":
        pytest.skip("needs a file name that is not UTF-8, on a UTF-8 file system encoding")
    name = os.fsdecode(bytes(tmp_path) + b"/\xff\xce\xb8.space")  # \xff: undecodable, \xce\xb8: θ
    shutil.copy(DIGITS, name)
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii", errors="surrogateescape")  # LC_ALL=C outside UTF-8 mode
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["space", "check", name]) == 0
    out.flush()
    monkeypatch.undo()
    assert bytes(tmp_path) + b"/\xff?.space: ok" in raw.getvalue()


@pytest.mark.parametrize("env,shown", [
    ({"PYTHONIOENCODING": "ascii"}, b"???"),  # the name was decoded as UTF-8: its characters cannot be written
    ({"LC_ALL": "C", "PYTHONUTF8": "0"}, "θ×ε".encode()),  # decoded as ASCII: its bytes are written back
], ids=["PYTHONIOENCODING", "LC_ALL"])
def test_space_check_of_a_non_ascii_name_prints_in_any_locale(greek_space, env, shown):
    p = subprocess.run([sys.executable, "-m", "automl", "space", "check", str(greek_space)], capture_output=True,
                       env=_env(**env), timeout=300)
    _quiet(p.stderr.decode(errors="replace"))
    assert p.returncode == 0
    assert b"/" + shown + b".space: ok: space digits (chain), 9 decisions" in p.stdout


# ---- a run --------------------------------------------------------------------------------------------------

FAST = ["threads=1", "device=cpu", "search.weight_epochs=2", "search.theta_epochs=1", "retrain.epochs=0",
        "search.supernets=1", "data.limit_train=64", "data.batch_size=32", "data.theta_batch_size=32",
        "search.lam=2", "search.budgets=null", "search.epsilons=[0]", "export.onnx=false"]


@pytest.mark.heavy
def test_a_run_piped_into_head_stops_quietly_and_resumes_on_an_ascii_terminal(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "automl", "run", QUICK, *FAST, "--out", str(out)]
    env = _env(PYTHONIOENCODING="ascii")
    # `| head -2`: the threads line and the first weight epoch's, then the reader is gone
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as p:
        first = [p.stdout.readline(), p.stdout.readline()]
        p.stdout.close()
        err = p.stderr.read().decode(errors="replace")
        code = p.wait(timeout=600)
    assert first[1].startswith(b"weights epoch 1/2"), first
    _quiet(err)
    assert code == 1
    assert json.loads((out / "checkpoints" / "checkpoints.json").read_text())  # written whole
    assert "standard output was closed" in err and err.rstrip().endswith(f"--out {out} --resume"), err
    again = subprocess.run(cmd + ["--resume"], capture_output=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr.decode(errors="replace")[-3000:]
    assert b"theta epoch 1/1: loss" in again.stdout and b"max ? " in again.stdout  # max θ
    assert b"| ? | params |" in again.stdout and b"| 0 | " in again.stdout  # the table's ε column, its columns kept
    assert (out / "results.json").is_file()
