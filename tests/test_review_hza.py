"""Review HZA: the thread count (automl/train/threads.py) and the run folder's lock (automl/_lock.py) on odd inputs:
an environment count written with non-ASCII digits, a /proc/stat line that does not parse, a lock holder this PID
namespace cannot see whose recorded pid belongs to another process here (pid reuse, a container's pid 1), an old
kernel's pid 0 in /proc/locks, and a lock file that is a folder, a FIFO or not writable."""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import automl._lock as lock_module
from automl._lock import LOCK_NAME, RunLock, held_by
from automl.errors import UserError
from automl.train import threads as th

BIG = 50 * th.WORK_PER_THREAD  # a step that would keep 50 threads busy


# ------------------------------------------------------------------------------------------ threads


@pytest.mark.parametrize("value", ["²", "٣", "4²"])
def test_an_environment_count_in_other_digits_is_one_clear_message(value):
    """``"²".isdigit()`` is True but ``int("²")`` raises: OMP_NUM_THREADS=² ended in a traceback (exit 1); libgomp
    reads ASCII digits only, so "٣" is refused too rather than taken as 3."""
    with pytest.raises(UserError, match="OMP_NUM_THREADS=.* must be a whole number from 1 to 1024"):
        th.env_counts({"OMP_NUM_THREADS": value})


def test_ascii_counts_still_work():
    assert th.env_counts({"OMP_NUM_THREADS": " 4,2 ", "MKL_NUM_THREADS": "3"}) == {"OMP_NUM_THREADS": 4,
                                                                                 "MKL_NUM_THREADS": 3}


def _stat(lines: list[str]) -> str:
    return "\n".join(["cpu  0 0 0 0 0 0 0 0"] + lines + ["intr 1 0", ""])


def test_a_proc_stat_line_that_does_not_parse_is_left_out(monkeypatch):
    """An emulated /proc/stat (a sandbox) with a short or non-numeric CPU line: ``auto`` counted it with
    ``v[3] + v[4]`` and stopped the run with an IndexError (exit 1); now that CPU is left out of the sample."""
    before = _stat(["cpu0 0 0 0 0 0 0 0 0", "cpu1 1 2 3", "cpu2 a b c d e f g h", "cpu3 0 0 0 0 0 0 0 0"])
    after = _stat(["cpu0 100 0 0 0 0 0 0 0", "cpu1 1 2 3", "cpu2 a b c d e f g h", "cpu3 0 0 0 100 0 0 0 0"])
    files = {"/proc/stat": before}
    monkeypatch.setattr(th, "_read", files.get)
    monkeypatch.setattr(th, "_cpus", lambda: [0, 1, 2, 3])
    monkeypatch.setattr(th, "TICKS_PER_SECOND", 100, raising=False)
    monkeypatch.setattr(th, "time", SimpleNamespace(sleep=lambda s: files.update({"/proc/stat": after})))
    c = th.resolve_threads("auto", work=BIG, environ={})
    assert c.busy_cores == 1.0  # cpu0 busy, cpu3 idle; cpu1 and cpu2 not counted
    assert c.threads == 3 and c.cores == 4


def test_a_proc_stat_without_any_parsable_cpu_line_measures_nothing(monkeypatch):
    files = {"/proc/stat": _stat(["cpu0 1 2", "cpu1 x"])}
    monkeypatch.setattr(th, "_read", files.get)
    monkeypatch.setattr(th, "_cpus", lambda: [0, 1])
    monkeypatch.setattr(th, "time", SimpleNamespace(sleep=lambda s: None))
    c = th.resolve_threads("auto", work=BIG, environ={})
    assert c.busy_cores is None and c.threads == 2


# ------------------------------------------------------------------------------------------ the lock's holder


def _held_elsewhere(folder: Path, pid: int) -> int:
    """The lock on ``folder`` held through another open file, its record naming ``pid`` on this host."""
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.pwrite(fd, json.dumps({"pid": pid, "host": socket.gethostname(), "started": "2026-01-01 00:00:00 UTC",
                              "command": "automl run r.yaml"}).encode(), 0)
    return fd


def _refusal(folder: Path, proc_locks, monkeypatch) -> str:
    """The refusal of a second writer, /proc/locks reading as ``proc_locks(key)`` (key: the lock file's
    MAJOR:MINOR:INODE)."""
    st = os.stat(folder / LOCK_NAME)
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    real_open = open
    monkeypatch.setattr(lock_module, "open", lambda path, *a, **k: io.StringIO(proc_locks(key))
                        if str(path) == "/proc/locks" else real_open(path, *a, **k), raising=False)
    with pytest.raises(UserError) as e:
        RunLock(folder).acquire()
    return str(e.value)


@pytest.mark.skipif(not hasattr(os, "major"), reason="POSIX")
def test_an_invisible_holder_whose_pid_is_reused_here_gets_no_pid_to_kill(tmp_path, monkeypatch):
    """The run in a container with this host's name (its record: its own pid), this command in another PID
    namespace where that pid is some other live process (pid reuse, or pid 1: this container's init). The kernel
    lists no holder this namespace can see, so ``kill PID`` here would signal the wrong process: it was advised."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    fd = _held_elsewhere(tmp_path, other.pid)
    try:
        message = _refusal(tmp_path, lambda key: "", monkeypatch)
    finally:
        os.close(fd)
        other.kill()
        other.wait()
    assert f"process {other.pid} on {socket.gethostname()}" in message and "cannot see" in message, message
    assert "stop it where it runs" in message and "kill" not in message, message


@pytest.mark.skipif(not hasattr(os, "major"), reason="POSIX")
def test_an_old_kernels_pid_0_for_an_invisible_holder_is_no_pid_to_kill(tmp_path, monkeypatch):
    """Kernels before 4.14 list a holder this PID namespace cannot see with pid 0: the message said ``kill 0``,
    which signals the user's own process group."""
    gone = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1 if os.path.exists("/proc/sys/kernel/pid_max") \
        else 4194305
    fd = _held_elsewhere(tmp_path, gone)
    try:
        message = _refusal(tmp_path, lambda key: f"1: FLOCK  ADVISORY  WRITE 0 {key} 0 EOF\n", monkeypatch)
    finally:
        os.close(fd)
    assert "process 0" not in message and "kill" not in message, message
    assert "cannot see" in message, message


@pytest.mark.skipif(not hasattr(os, "major"), reason="POSIX")
def test_a_holder_the_kernel_names_is_still_named(tmp_path, monkeypatch):
    fd = _held_elsewhere(tmp_path, 1)
    try:
        message = _refusal(tmp_path, lambda key: f"1: FLOCK  ADVISORY  WRITE 0 {key} 0 EOF\n"
                                                 f"2: FLOCK  ADVISORY  WRITE 4321 {key} 0 EOF\n", monkeypatch)
    finally:
        os.close(fd)
    assert f"process 4321 on {socket.gethostname()}" in message and "kill 4321:" in message, message


# ------------------------------------------------------------------------------------------ the lock file itself


def test_a_folder_in_place_of_the_lock_file_is_named_as_such(tmp_path):
    """``DIR/.lock`` a folder: the message said "make the folder writable", which does not help."""
    (tmp_path / LOCK_NAME).mkdir()
    for create in (False, True):
        with pytest.raises(UserError) as e:
            RunLock(tmp_path).acquire(create=create)
        text = str(e.value)
        assert f"--out {tmp_path}: cannot open its lock file {tmp_path / LOCK_NAME} (it is a folder" in text, text
        assert "move it away" in text and "or choose another --out" in text and "writable" not in text, text
    assert held_by(tmp_path) is None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX")
def test_a_fifo_in_place_of_the_lock_file_is_one_message(tmp_path):
    """A FIFO named ``.lock``: acquire's read of the file raised OSError (Illegal seek, exit 1) with the FIFO
    locked."""
    os.mkfifo(tmp_path / LOCK_NAME)
    for create in (False, True):
        with pytest.raises(UserError, match=r"\(it is not a regular file\); move it away"):
            RunLock(tmp_path).acquire(create=create)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX")
def test_held_by_does_not_wait_on_a_fifo(tmp_path):
    """held_by opened ``.lock`` for reading only, which waits for a writer on a FIFO: it never returned (the
    timeout only guards the test against that hang)."""
    os.mkfifo(tmp_path / LOCK_NAME)
    code = f"from automl._lock import held_by; print(held_by({str(tmp_path)!r}))"
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             cwd=Path(__file__).resolve().parents[1])
    except subprocess.TimeoutExpired:
        pytest.fail("held_by waited on a FIFO")
    assert out.returncode == 0 and out.stdout.strip() == "None", out.stderr[-2000:]


@pytest.fixture
def lock_refused(tmp_path, monkeypatch):
    """``os.open`` of ``tmp_path``'s ``.lock`` fails with EACCES, as for a file or folder this user may not
    write."""
    real_open = os.open

    def refuse(path, flags, *a, **k):
        if str(path) == str(tmp_path / LOCK_NAME):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(lock_module.os, "open", refuse)


def test_a_lock_file_that_is_not_writable_is_named(tmp_path, lock_refused):
    """An existing ``.lock`` this user may not open for writing (another user's, or mode 000) in a writable
    folder: the advice was "make the folder writable"; the file is what to fix."""
    (tmp_path / LOCK_NAME).write_text("{}")
    with pytest.raises(UserError) as e:
        RunLock(tmp_path).acquire(create=False)
    text = str(e.value)
    assert f"{tmp_path / LOCK_NAME} (Permission denied); make it writable or choose another --out" in text, text


def test_a_folder_that_is_not_writable_still_says_the_folder(tmp_path, lock_refused):
    with pytest.raises(UserError, match=r"\(Permission denied\); make the folder writable or choose another --out"):
        RunLock(tmp_path).acquire()
    with pytest.raises(UserError) as e:
        RunLock(tmp_path).acquire(then="then run automl rank DIR again")
    assert str(e.value).endswith("make the folder writable"), str(e.value)
