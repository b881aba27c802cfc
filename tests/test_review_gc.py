"""Review GC: ``automl run`` start-up signals and the CLI's user-error mapping.

1. A stop signal between the ``mkdir`` of the default run folder ``runs/<name>-<time>`` and the command recording
   that folder as its own (inside :func:`automl.commands.run.default_out_dir`, or as ``on_main`` returns it) left
   the empty folder, and a ``runs/`` the command had made, behind: the cleanup did not know the folder.
2. Errors of the user's machine, not of automl, that ended in a traceback and exit 1: a file past a size limit
   (``EFBIG``, ``ulimit -f``), no writable folder for temporary files (torch needs one as it is imported), and a
   standard output closed at start (``>&-``); a closed standard error (``2>&-``) sent messages to standard output.
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import automl.commands.run as cmd_run
from automl.cli import main

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals")

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
FAST = ["threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
        "search.supernets=1", "data.limit_train=64", "data.batch_size=32", "data.theta_batch_size=32",
        "search.lam=2", "search.budgets=null", "search.epsilons=[0]", "export.onnx=false"]


def _signal_after(monkeypatch, where: str) -> None:
    """One real SIGTERM right after the run folder's ``mkdir`` (``where="mkdir"``: inside ``Path.mkdir``, as the
    folder is made) or right after ``on_main`` hands the folder back (``where="on_main"``)."""
    sent = []

    def kill_once():
        if not sent:
            sent.append(os.kill(os.getpid(), signal.SIGTERM))

    if where == "mkdir":
        real_mkdir = Path.mkdir

        def mkdir(self, *a, **k):
            real_mkdir(self, *a, **k)
            if self.parent == Path("runs") and self.name.startswith("quickstart-"):
                kill_once()

        monkeypatch.setattr(Path, "mkdir", mkdir)
    else:
        real_on_main = cmd_run.on_main

        def on_main(*a, **k):
            answer = real_on_main(*a, **k)
            kill_once()
            return answer

        monkeypatch.setattr(cmd_run, "on_main", on_main)


@pytest.mark.parametrize("where", ["mkdir", "on_main"])
@pytest.mark.parametrize("runs_there", [False, True])
def test_a_signal_right_after_the_run_folder_is_made_leaves_nothing(tmp_path, monkeypatch, capfd, where, runs_there):
    monkeypatch.chdir(tmp_path)
    if runs_there:
        (tmp_path / "runs").mkdir()
    _signal_after(monkeypatch, where)
    assert main(["run", QUICK, *FAST]) == 128 + signal.SIGTERM
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
    if runs_there:  # the user's runs/ stays, empty
        assert os.listdir(tmp_path) == ["runs"] and os.listdir(tmp_path / "runs") == []
    else:  # the runs/ this command made is gone too
        assert os.listdir(tmp_path) == []
    last = err.splitlines()[-1]
    assert "nothing to resume (runs/quickstart-" in last and " removed); start the run again" in last, last


# ------------------------------------------------------------------ 2: what the machine refuses, and closed streams

DIGITS = str(ROOT / "spaces" / "digits.space")
ARCH = {"choices": ["ir_k3_e1", "skip", "skip", "ir_k3_e1", "skip", "skip", "ir_k3_e1", "skip", "skip"]}


def _automl(*args: str, cwd: Path, file_size: int | None = None, close: tuple[int, ...] = (),
            stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    """``python -m automl ARGS`` in a child process whose files may be at most ``file_size`` bytes (``ulimit -f``;
    Python ignores SIGXFSZ, so a write past it fails with EFBIG) and that starts with the file descriptors
    ``close`` closed (``>&-``)."""
    def start():
        if file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        for fd in close:
            os.close(fd)

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "automl", *args], cwd=cwd, env=env, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=300, preexec_fn=start)


def test_a_file_past_the_size_limit_is_the_users_to_fix(tmp_path):
    """Seen: ``OSError: [Errno 27] File too large`` and "internal error (a bug, not your input)", exit 1, for an
    export under ``ulimit -f``: a limit of the user's machine, as a full disk is."""
    (tmp_path / "arch.json").write_text(json.dumps(ARCH), encoding="utf-8")
    p = _automl("export", DIGITS, "--arch", "arch.json", "--out", "out", cwd=tmp_path, file_size=4096)
    assert p.returncode == 2, p.stderr[-3000:]
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr[-3000:]
    assert "cannot write a file (File too large); raise the file size limit (ulimit -f)" in p.stderr, p.stderr
    # the export's own message: the new --out it created is removed, not left half written
    assert "out, which it had created, is removed" in p.stderr and not (tmp_path / "out").exists()


def test_no_writable_temporary_folder_is_the_users_to_fix(tmp_path):
    """Seen: torch's import failing in ``tempfile.gettempdir()`` (``FileNotFoundError: No usable temporary
    directory found in [...]``), a traceback and exit 1, where no folder for temporary files can be written."""
    p = _automl("space", "check", DIGITS, cwd=tmp_path, file_size=0)
    assert p.returncode == 2, p.stderr[-3000:]
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr[-3000:]
    assert p.stderr.startswith("error: no folder for temporary files can be written (No usable temporary "
                               "directory found in ["), p.stderr
    assert "set TMPDIR to a writable folder" in p.stderr


def test_a_closed_standard_output_is_said_not_a_traceback(tmp_path):
    """Seen: ``AttributeError: 'NoneType' object has no attribute 'write'``, exit 1, for ``automl space show F
    --json >&-``; the table (without --json) was lost with exit 0."""
    for json_flag in (["--json"], []):
        p = _automl("space", "show", DIGITS, *json_flag, cwd=tmp_path, close=(1,), stdout=None)
        assert p.returncode == 2, p.stderr[-3000:]
        assert p.stderr == ("automl: standard output is closed (the command was started with >&-); give it one: "
                            "> FILE, or > /dev/null to discard what it prints\n"), p.stderr


def test_a_closed_standard_error_discards_what_is_said_there(tmp_path):
    """Seen: with ``2>&-`` the error message was printed on standard output (Python's ``print`` to a None
    ``sys.stderr``), mixed into what a reader of the output takes for the command's answer."""
    p = _automl("space", "show", "nothing.space", "--json", cwd=tmp_path, close=(2,))
    assert p.returncode == 2 and p.stdout == "", p.stdout


def test_a_strict_utf8_output_prints_a_file_name_that_is_not_utf8(tmp_path, not_utf8_folder):
    """Seen: ``UnicodeEncodeError: ... surrogates not allowed`` and "internal error", exit 1, for ``automl space
    check`` of a file in a folder named by the byte 0xff, where standard output is UTF-8 with errors "strict"
    (``PYTHONIOENCODING=utf-8:strict``, a UTF-8 locale other than C.UTF-8): the name's byte is written as it is."""
    folder = not_utf8_folder()
    (folder / "digits.space").write_bytes(Path(DIGITS).read_bytes())
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8:strict"}
    p = subprocess.run([sys.executable, "-m", "automl", "space", "check", os.fsencode(folder / "digits.space")],
                       cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-3000:]
    assert p.stdout.startswith(os.fsencode(folder / "digits.space") + b": ok"), p.stdout


def test_a_bash_script_started_with_standard_error_closed_still_exits_2(tmp_path):
    """bash opens a script file on the lowest free descriptor: started with ``2>&-``, the script's commands get
    it, open for reading, as their standard error. A user's mistake there printed to it, failed with EBADF and
    exited 1 (an internal error); it is discarded, exit 2, as for a closed standard error."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash here")
    script = tmp_path / "job.sh"
    script.write_text(f"{shlex.quote(sys.executable)} -m automl space check nonexist.space\n"
                      f"echo \"rc=$?\" > {shlex.quote(str(tmp_path / 'rc'))}\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    subprocess.run(f"{shlex.quote(bash)} {shlex.quote(str(script))} 2>&-", shell=True, cwd=tmp_path, env=env,
                   timeout=300)
    assert (tmp_path / "rc").read_text().strip() == "rc=2"


_HELD = """
import os, subprocess, sys, time
import automl.commands.run as R
from automl._signals import raising_on
from automl.train.preempt import SIGNALS

def hangs(name):  # a mkdir that does not return (runs/ on a stalled network or FUSE mount)
    time.sleep(600)

R.default_out_dir = hangs
subprocess.Popen(["sh", "-c", f"sleep 1; kill -INT {os.getpid()}; sleep 1; kill -INT {os.getpid()}"])
try:
    with raising_on(SIGNALS, R.StoppedStarting):
        R._new_run_folder("x", [])
except R.StoppedStarting as e:
    print("stopped by", e.signum)
"""


def test_a_second_signal_while_the_run_folder_is_made_acts_at_once(tmp_path):
    """The first signal while the run folder is made waits for it to be made (so that the cleanup knows it); a
    second, on a file system where that does not return, acts on the first at once. Was: both noted, nothing
    done until the mkdir returned."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-c", _HELD], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.stdout.strip() == f"stopped by {int(signal.SIGINT)}", (p.stdout, p.stderr[-2000:])
