"""Review OG: ``automl export`` holds the lock of its ``--out`` folder while it writes there: a second export into the
same folder is refused, naming the first; the lock file is no model file and leaves the export loadable."""
from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import textwrap

import pytest

import automl.commands.export as export_cmd
from automl._lock import LOCK_NAME, RunLock
from automl._signals import Interrupted
from automl.errors import UserError
from automl.export import load_model
from helpers import DIGITS_SPACE, ROOT, cli_err, cli_out_err, digits_export

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _export_argv(monkeypatch, out) -> None:
    """This process's command line, as the lock file records it, that of an export into ``out``."""
    monkeypatch.setattr(sys, "argv", ["automl", "export", DIGITS_SPACE, "--arch", "a.json", "--out", str(out)])


def test_a_second_export_into_a_folder_an_export_holds_is_refused_naming_it(tmp_path, capsys, monkeypatch):
    """An export holds ``--out`` (its lock, as the export does while it writes): a second export into it is one
    message naming the folder and the holder, exit 2; the folder's files are left as they were."""
    arch, out = digits_export(tmp_path)
    before = _files(out)
    _export_argv(monkeypatch, out)
    holder = RunLock(out)
    assert holder.acquire(look=True)
    try:
        code, err = cli_err(capsys, "export", DIGITS_SPACE, "--arch", arch, "--out", out)
    finally:
        holder.release()
    assert code == 2, err
    assert f"{out} is in use" in err and "(automl export " in err and "run this export again" in err, err
    assert "--resume" not in err and err.count("\n") == 1, err
    assert _files(out) == before  # nothing of the second export there (the lock file: removed, as it was made)
    # the holder gone, the same export goes through
    code, err = cli_err(capsys, "export", DIGITS_SPACE, "--arch", arch, "--out", out)
    assert code == 0, err


@contextlib.contextmanager
def _held_by_another_export(out):
    """Another process holds ``out``'s lock as an export into it does (its record: ``automl export s.space ...``)
    while the block runs; yields that process."""
    script = textwrap.dedent(f"""
        import sys
        sys.argv = ["automl", "export", "s.space", "--arch", "a.json", "--out", {str(out)!r}]
        from automl._lock import RunLock
        lock = RunLock({str(out)!r})
        assert lock.acquire(look=True)
        print("ready", flush=True)
        sys.stdin.read()
        lock.release()
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "ready"
        yield holder
    finally:
        holder.communicate("", timeout=60)


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_an_export_held_by_another_process_is_named_before_anything_is_read(tmp_path, capsys):
    """Another process's export holds ``--out``: refused before the weights are read (a missing --weights is not
    what is said), and not taken for a run starting up in that folder."""
    arch, out = digits_export(tmp_path)
    with _held_by_another_export(out) as holder:
        code, err = cli_err(capsys, "export", DIGITS_SPACE, "--arch", arch, "--out", out,
                            "--weights", tmp_path / "missing.pt")
    assert code == 2, err
    assert f"{out} is in use" in err and f"process {holder.pid} " in err and "(automl export s.space" in err, err
    assert "run this export again" in err and "missing.pt" not in err and "own folder" not in err, err
    assert not (out / LOCK_NAME).exists()  # the holder made it to look, and removed it


def test_no_lock_file_is_left_and_one_left_by_a_killed_export_breaks_nothing(tmp_path, capsys):
    """A finished export leaves no lock file in ``--out``; one a killed export left (naming it) is no model file:
    the export loads, exports again from its manifest, and the file is left as it was."""
    arch, out = digits_export(tmp_path)
    assert not (out / LOCK_NAME).exists()
    left = json.dumps({"pid": 999999, "host": "elsewhere", "started": "2026-01-01 00:00:00 UTC",
                       "command": f"automl export s.space --arch a.json --out {out}"}) + "\n"
    (out / LOCK_NAME).write_text(left)
    code, err = cli_err(capsys, "export", DIGITS_SPACE, "--arch", out / "manifest.json", "--out", out,
                        "--weights", out / "model.safetensors")
    assert code == 0, err
    assert (out / LOCK_NAME).read_text() == left
    model = load_model(out)
    assert sum(p.numel() for p in model.parameters()) == json.loads((out / "manifest.json").read_text())["params"]


def test_a_refused_export_into_a_new_folder_leaves_no_folder(tmp_path, capsys, monkeypatch):
    """The export's user error (weights that diverged) while it holds the lock of the ``--out`` it created: the lock
    file goes, and with it the folders the export created (it would keep them from being removed as empty)."""
    arch, _ = digits_export(tmp_path)
    out = tmp_path / "new" / "net"

    def refused(*args, **kwargs):
        assert (out / LOCK_NAME).is_file()  # held while it writes
        raise UserError("the network's outputs are not finite")

    monkeypatch.setattr(export_cmd, "export_architecture", refused)
    code, err = cli_err(capsys, "export", DIGITS_SPACE, "--arch", arch, "--out", out)
    assert code == 2 and "not finite" in err, err
    assert not (tmp_path / "new").exists()


def test_a_stop_before_the_export_wrote_leaves_an_existing_folder_as_it_was(tmp_path, capsys, monkeypatch):
    """SIGTERM as the export starts writing into a folder that exists: its lock file, made and removed, is not taken
    for a file the export wrote."""
    arch, out = digits_export(tmp_path)
    before = _files(out)

    def stopped(*args, **kwargs):
        assert (out / LOCK_NAME).is_file()  # held while it writes
        raise Interrupted(signal.SIGTERM)

    monkeypatch.setattr(export_cmd, "export_architecture", stopped)
    code, _, err = cli_out_err(capsys, "export", DIGITS_SPACE, "--arch", arch, "--out", out, internal_ok=True)
    assert code == 128 + signal.SIGTERM, err
    assert "before the export wrote anything" in err and "left as it was" in err, err
    assert _files(out) == before


def test_a_run_refused_by_an_export_gets_an_exports_advice(tmp_path, monkeypatch):
    """A run into a folder an export holds: told an export writes there and to run again, not to --resume it."""
    out = tmp_path / "out"
    out.mkdir()
    _export_argv(monkeypatch, out)
    holder = RunLock(out)
    assert holder.acquire(look=True)
    try:
        monkeypatch.setattr(sys, "argv", ["automl", "run", "r.yaml", "--out", str(out)])
        with pytest.raises(UserError) as e:
            RunLock(out).acquire()
    finally:
        holder.release()
    text = str(e.value)
    assert "an automl export is writing there" in text and "then run this command again" in text, text
    assert "--resume" not in text and "checkpoint" not in text, text


def test_an_exports_lock_does_not_guard_out_as_a_run_folder(tmp_path):
    """The export's lock is no run's: a write below --out is not checked as a run folder's (whose messages are a
    run's, with --resume), while a run's lock is."""
    from automl._io import check_run_folder
    out = tmp_path / "out"
    out.mkdir()
    lock = RunLock(out)
    assert lock.acquire(look=True, guard=False)
    try:
        (out / LOCK_NAME).unlink()  # the run's guard would call this "unlocked": continue with --resume
        check_run_folder(out / "manifest.json")
    finally:
        lock.release()
    run = RunLock(out)
    assert run.acquire()
    try:
        (out / LOCK_NAME).unlink()
        with pytest.raises(UserError, match="--resume"):
            check_run_folder(out / "manifest.json")
    finally:
        run.release()


@pytest.mark.parametrize("cmd, want", [
    ("/v/bin/automl rank x", "automl rank x"), ("python -m automl -v export o", "automl -v export o"),
    ("python -X dev /v/bin/automl rank r", "automl rank r"),
    ("python -W ignore -m automl run r.yaml", "automl run r.yaml"),
    ("python -mautoml rank r", "automl rank r"), ("python script.py automl", None), ("python -c automl", None)])
def test_the_holders_command_line_is_read_past_the_interpreters_options(cmd, want, monkeypatch):
    """The advice follows the holding process's command (/proc/PID/cmdline): options of the interpreter with a
    value of their own (-X dev, -W ignore) and -mautoml do not hide automl; another program is not taken for it."""
    import builtins
    import io

    import automl._lock as lock_module
    data = "\0".join(cmd.split()).encode() + b"\0"
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: io.BytesIO(data) if f == "/proc/7/cmdline"
                        else real_open(f, *a, **k))
    assert lock_module._running(7) == want


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_an_export_into_a_folder_inside_one_another_export_writes_is_not_called_a_run(tmp_path, capsys):
    """--out x/sub while another process's export holds x: refused (a stop of that export removes x), but x is
    named as a folder another command writes, not as a run's."""
    arch, out = digits_export(tmp_path)
    with _held_by_another_export(out):
        code, err = cli_err(capsys, "export", DIGITS_SPACE, "--arch", arch, "--out", out / "sub")
    assert code == 2, err
    assert "which another automl command is writing" in err and "(automl export s.space" in err, err
    assert "still running" not in err and "run this export again" in err, err
