"""One writer per run folder: an exclusive ``flock`` on ``DIR/.lock`` held for the whole run.

The lock belongs to the open file, not to the file's existence: the kernel drops it when the process ends,
however it ends (``kill -9`` included), so a dead run never leaves a stale lock. The file itself stays and
says who held it last (pid, host, start time, command; under torchrun also rank 0's place in the run and the pid of
its torchrun, through which the whole run stops: found among its parents, above a wrapper script, or null where it
cannot be told); a second writer that fails to take the lock reads
it to name the holder. A command that takes the lock only to look first (a ``--resume`` until its checks pass:
:meth:`RunLock.keep`) and is refused leaves the file as it found it (its bytes and times), or absent; while it
looks, the file names it, as any holder's (a command refused meanwhile gets the advice that fits the look's command).
On Linux the kernel's list of locks (``/proc/locks``) checks that pid: where the kernel
names another holder on this machine (the run wrote its pid inside a container, whose pids are not the host's,
or a new holder has not written its record yet, and the file still names the last one), the message names that
process, and its advice is that of the command the process runs (its command line, where this user can read it:
:func:`_running`), not that of the record's; where the holder is
in a PID namespace this command cannot see, it says so instead of giving a pid to ``kill`` here. A file
system that refuses locks (some NFS mounts) gets one warning per command, and the run goes on unprotected.
Readers (``results.json``, the report, an exported model, ``--supernet RUN``) take no lock; where a folder's
run may still be writing, :func:`held_by` looks (a shared lock tried and dropped at once, the file opened for
reading only), so a run that reuses a supernet names the run still training it instead of advising ``--resume``.
A lock file that cannot be written (a full disk) is one message, and the lock is not taken; so is one that cannot be
opened (its folder or itself not writable) or is no file (a folder, a FIFO: to move away).

While the lock is held, the run's writes check that the folder is still the run's (:meth:`RunLock.gone`,
through :func:`automl._io.guard_run_folder`): a folder removed or moved mid-run stops the run with one
message, and no write creates it again.

Worker processes forked while the lock is held (DataLoader workers) close their inherited copy at once, so
the lock ends with the run's own process, not with its slowest child.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import stat
import sys
import time
from pathlib import Path

from automl._io import guard_run_folder, holds_checkpoints, unguard_run_folder, unwritable_run_fix, write_fix
from automl.errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None

__all__ = ["LOCK_NAME", "RunLock", "held_by", "lock_holder"]

_logger = logging.getLogger(__name__)
LOCK_NAME = ".lock"
_held: set[int] = set()  # file descriptors of the locks this process holds
_RETRIES = 5  # opens of a lock file removed or replaced at each try before it could be locked (RunLock._take)


def _close_in_child() -> None:
    for fd in _held:
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


def _identity(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of ``folder``, or None where it cannot be looked at (gone)."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _read_all(fd: int) -> bytes:
    """The whole of the file open as ``fd`` (a lock file: one short line)."""
    parts, at = [], 0
    while chunk := os.pread(fd, 65536, at):
        parts.append(chunk)
        at += len(chunk)
    return b"".join(parts)


def _in_place(fd: int, path: Path) -> bool:
    """Whether the file open as ``fd`` is the one at ``path`` (not removed, nor replaced by another); True where
    ``path`` cannot be looked at for another reason (permissions): the run's writes say why."""
    try:
        held = os.fstat(fd)
        now = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return held.st_nlink > 0 and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


def _remove_in_place(fd: int, path: Path) -> None:
    """Remove ``path`` if it is the file open as ``fd`` (a lock file a refused look made), while its lock is held: a
    process that opened it meanwhile and locks it once it is closed opens the new one instead
    (:meth:`RunLock._take`)."""
    try:
        if _in_place(fd, path):
            os.unlink(path)
    except OSError:
        pass


def _put_back(fd: int, text: bytes, times: tuple[int, int] | None) -> None:
    """The file open as ``fd`` (a held lock file) saying ``text`` again, with its access and modification times
    ``times`` (ns) where the platform sets them through a file descriptor."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text, 0)
        if times is not None and os.utime in os.supports_fd:
            os.utime(fd, ns=times)
    except OSError:
        pass


def _holders(held: os.stat_result) -> list[int] | None:
    """The pids holding a ``flock`` on the file ``held``, as the kernel lists them (``/proc/locks``) for this
    process's PID namespace: [] where it lists none (a holder in another container's PID namespace, or on another
    machine over NFS), None where the list is unreadable (not Linux)."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    key = f"{os.major(held.st_dev):02x}:{os.minor(held.st_dev):02x}:{held.st_ino}"
    pids = []
    for line in text.splitlines():
        fields = line.split()  # "1: FLOCK  ADVISORY  WRITE PID MAJOR:MINOR:INODE 0 EOF"; "1: -> ..." waits
        # pid 0: a holder this PID namespace cannot see, as kernels before 4.14 list it (newer ones leave it out)
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == key and fields[4].isdigit() and int(fields[4]):
            pids.append(int(fields[4]))
    return pids


# the file systems (st_dev) whose refusal of flock this process has warned about: one warning per file system
_WARNED_UNLOCKABLE: set[int] = set()

# the interpreter's options followed by a value of their own (python -X dev -W ignore -m automl ...)
_PYTHON_VALUED = frozenset({"-X", "-W", "-Q", "--check-hash-based-pycs"})


def _cmdline(pid: int) -> list[str] | None:
    """The words of process ``pid``'s command line (``/proc/PID/cmdline``); None where it cannot be read (not Linux,
    the process gone or hidden)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [w for w in f.read().decode(errors="replace").split("\0") if w]
    except OSError:
        return None


def _parent(pid: int) -> int | None:
    """The pid of process ``pid``'s parent (``/proc/PID/stat``; 0: none), None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
        return int(text.rsplit(")", 1)[1].split()[1])  # "PID (COMMAND) STATE PPID ...": the command may hold ") "
    except (OSError, IndexError, ValueError):
        return None


# torchrun's module, run as python -m MODULE (torch.distributed.launch, deprecated, runs it in the same process)
_TORCHRUN_MODULES = frozenset({"torch.distributed.run", "torch.distributed.launch"})
_TORCHRUN_FILE = "torch/distributed/run.py"  # python .../site-packages/torch/distributed/run.py
_TORCHRUN_LEVELS = 5  # the parents looked at for a rank's torchrun: wrappers between them (a script, conda run)


def _programs(words: list[str]) -> list[tuple[int, str]]:
    """The words of the command line ``words`` that may name the program it runs, with their indices: the first
    (a console script run as itself), and the first after the interpreter and its options (their values too:
    ``-X dev``): a script's or console script's path, or ``-m``'s module as ``-mNAME`` (at the module's word for
    ``-m NAME``). After ``-c`` (``python -c CODE``) or ``-`` (a program read from standard input) only the first."""
    found, skip = [(0, words[0])] if words else [], False
    for i, word in enumerate(words[1:], 1):
        if word in ("-c", "-") or word == "-m" and i + 1 == len(words):
            break
        if word == "-m" or word.startswith("-m"):
            return found + [(i + 1, "-m" + words[i + 1]) if word == "-m" else (i, word)]
        if not skip and not word.startswith("-"):
            return found + [(i, word)]
        skip = word in _PYTHON_VALUED
    return found


def _is_torchrun(words: list[str]) -> bool:
    """Whether the command line ``words`` runs torchrun (:func:`_programs`): its console script, ``python -m
    torch.distributed.run`` (or ``.launch``) or the module's file."""
    return any(word[2:] in _TORCHRUN_MODULES if word.startswith("-m") else
               Path(word).name in ("torchrun", "torchrun.exe") or word.replace("\\", "/").endswith(_TORCHRUN_FILE)
               for _, word in _programs(words))


def _torchrun_above(pid: int, parent: int | None = None) -> int | None:
    """The pid of the torchrun among the first :data:`_TORCHRUN_LEVELS` ancestors of process ``pid`` (``parent``:
    its parent, where known), the nearest, by their command lines (:func:`_is_torchrun`): its parent, or above a
    wrapper (``torchrun --no-python ./job.sh``, a script that runs python without exec). None where none is, or
    where ``/proc`` cannot be read (not Linux, the processes hidden)."""
    at = _parent(pid) if parent is None else parent
    for _ in range(_TORCHRUN_LEVELS):
        words = None if at is None or at < 1 else _cmdline(at)
        if words is None:
            return None
        if _is_torchrun(words):
            return at
        at = _parent(at)
    return None


def _running(pid: int) -> str | None:
    """The automl command process ``pid`` runs, as :func:`_command` writes it (``automl rank RUN``), from its
    command line (``/proc/PID/cmdline``): the program ``automl`` (a console script, ``python -m automl``, or its
    ``__main__.py``), after the interpreter and its options only. None where that cannot be read (not Linux, the
    process gone or hidden) or runs no automl program (then the lock file's record says what it does)."""
    words = _cmdline(pid)
    for i, word in _programs(words or []):
        path = Path(word)
        if path.name == "automl" or path.name == "__main__.py" and path.parent.name == "automl" or word == "-mautoml":
            return " ".join(["automl", *words[i + 1:]])
    return None


class _Holding:
    """What the holder of a lock is doing and what stopping it does, by its command (the lock file's record):
    ``automl rank`` writes no checkpoint (on a signal it finishes the retraining it is in and records it in
    results.json: rerun then, its recorded retrainings are not run again); ``automl export`` neither (stopped, it
    removes a ``--out`` it created, with what it wrote there: run again); ``automl run`` writes one, continued
    with ``--resume``. A record without a command (an older automl's) is taken for a run's."""

    def __init__(self, command: object = None):
        words = command.split() if isinstance(command, str) else []
        # "automl rank RUN ...", "automl -v rank ...": _command() writes the program as automl; the verb is the first
        # word after it that is no option
        verb = next((w for w in words[1:] if not w.startswith("-")), None)
        self.verb = verb or "run"  # the automl command: run, rank, export (a record without one: a run's)
        self.rank, export = verb == "rank", verb == "export"
        self.what = "an automl rank is" if self.rank else "an automl export is" if export else "another automl run is"
        self.exits = ("it finishes the current retraining, records it in results.json and exits" if self.rank else
                      "it stops and removes a --out it created" if export else "it writes a checkpoint and exits")
        self.after = "then run this command again" if self.rank or export else "then continue it with --resume"


def _launch() -> dict:
    """This process's place in a run of several processes, for its lock record: ``rank`` and ``world_size`` (the
    variables torchrun sets), and under torchrun (it sets ``GROUP_WORLD_SIZE``, a launch by hand does not)
    ``torchrun``, the pid of the torchrun that started it (:func:`_torchrun`), which passes a signal on to every
    rank, or null where it cannot be told; nothing for one process."""
    try:
        world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    except ValueError:
        return {}
    if world <= 1:
        return {}
    torchrun = {"torchrun": _torchrun()} if os.environ.get("GROUP_WORLD_SIZE", "").strip() else {}
    return {"rank": rank, "world_size": world, **torchrun}


def _torchrun() -> int | None:
    """The pid of the torchrun that started this process (under torchrun): the nearest of its ancestors whose
    command is torchrun's (:func:`_torchrun_above`: its parent, or the parent of a wrapper script). Where none is
    (``/proc`` cannot be read: macOS; or an agent of torch's elastic API, whose command is not torchrun), its parent
    if this process leads a session of its own: torch starts each worker in one (``start_new_session``), so the
    parent of a session leader is the agent that started it, and the parent of any other process (a wrapper's
    python) may be the wrapper; None then."""
    parent = os.getppid()
    found = _torchrun_above(os.getpid(), parent)
    if found is not None:
        return found
    getsid = getattr(os, "getsid", None)  # Windows has none
    try:
        leads = getsid is not None and getsid(0) == os.getpid()
    except OSError:
        leads = False
    return parent if leads and parent > 1 else None


def _launched(h: dict) -> tuple[str, str, int | None]:
    """From the lock record ``h``: how its process was launched, before and after the record's words on it
    (``rank 0 of 2 under torchrun, `` and ``; its torchrun is process N``; both empty for one process), and the
    pid of its torchrun: 0 where it ran under torchrun whose pid the record has not (null: not found as it
    started), None without torchrun (no ``torchrun`` in the record: a launch by hand, or an older automl's record
    of one)."""
    rank, world = h.get("rank"), h.get("world_size")
    if not isinstance(world, int) or world <= 1 or not isinstance(rank, int):
        return "", "", None
    if "torchrun" not in h:
        return f"rank {rank} of {world} (started without torchrun), ", "", None
    torchrun = h["torchrun"]
    if isinstance(torchrun, int) and not isinstance(torchrun, bool) and torchrun > 0:
        return f"rank {rank} of {world} under torchrun, ", f"; its torchrun is process {torchrun}", torchrun
    return f"rank {rank} of {world} under torchrun, ", "", 0


def _stopped_by(pid: object, there: str, torchrun: int | None, doing: _Holding) -> str:
    """How to stop the holder, process ``pid`` (``there``: `` on HOST`` where not this machine): through its
    torchrun where it has one (``kill`` of rank 0 alone would end a worker torchrun may restart, --max-restarts),
    process ``torchrun``, or (0) the one that started ``pid``, whose pid is not known."""
    if torchrun is None:
        return f"stop it (kill {pid}{there}: {doing.exits})"
    whom = f"{torchrun}{there}" if torchrun else f"the torchrun that started process {pid}{there}"
    return (f"stop the whole run through its torchrun (kill {whom}, which passes the signal on to every rank: "
            f"{doing.exits})")


def _holder(path: Path, holders: list[int] | None) -> tuple[str, str, _Holding]:
    """(who holds the lock on ``path``, how to stop it, what it does: :class:`_Holding`) from the lock file's record
    and, on Linux, the kernel's list of holders (:func:`_holders`): a pid is given to ``kill`` only where it names
    the holder on this machine.
    The record's pid is another one where the run wrote it inside a container (its own PID namespace: the
    container's first process is pid 1, which on the host is init) or where a new holder has not written it yet; a
    holder the kernel lists nowhere in this PID namespace (``holders`` []) gets no pid to kill, whatever process
    has that pid here."""
    try:
        h = json.loads(path.read_text())
        pid, host, started = h["pid"], h["host"], h["started"]
        head, tail, torchrun = _launched(h)
        said = (f"{head}process {pid} on {host}, started {started}" + (f" ({h['command']})" if h.get("command")
                                                                      else "") + tail)
        doing = _Holding(h.get("command"))
    except (OSError, ValueError, KeyError, TypeError):  # the holder has not written its name yet
        pid, host, said, doing, torchrun = None, None, None, _Holding(), None
    here = socket.gethostname()
    others = [p for p in holders or [] if p != os.getpid()]  # this process: a second lock of its own (a test)
    if others and pid not in others:  # the record is another process's: the holder's own command says what it does
        running = _running(others[0])
        doing = doing if running is None else _Holding(running)
        # its torchrun here, by the holder's parents (the record's pid of it is another namespace's, or of another
        # run); none found where the record names one: the torchrun that started it, without a pid
        above = _torchrun_above(others[0])
        torchrun = above if above is not None else None if torchrun is None else 0
        who = (f"process {others[0]} on {here}" + (f" ({running})" if running else "")
               + (f", started by torchrun process {above}" if above is not None else "")
               + (f"; its lock file names {said}" if said else ""))
        return who, _stopped_by(others[0], "", torchrun, doing), doing
    if said is None:
        return "another process", "stop it", doing
    # the kernel lists no holder here: the record's pid, on this host, is another process in this PID namespace
    # (a container's pid 1 is this one's init) or none
    if holders == [] and host == here:
        return (f"{said}, a process this command cannot see (one of the two runs in a container)",
                f"stop it where it runs ({doing.exits})", doing)
    # a pid names a process on its own host only: kill it here and another process would get the signal
    there = "" if host == here or pid in others else f" on {host}"
    return said, _stopped_by(pid, there, torchrun, doing), doing


def _command() -> str:
    """This process's command line, as typed (``python -m automl`` shows as ``automl``)."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name == "__main__.py":
        argv[0] = "automl"
    elif argv:
        argv[0] = Path(argv[0]).name
    return " ".join(argv)


def _held_here(path: Path) -> bool:
    """Whether this process holds the lock on the file ``path``."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    for fd in _held:
        try:
            held = os.fstat(fd)
        except OSError:
            continue
        if (held.st_dev, held.st_ino) == (st.st_dev, st.st_ino):
            return True
    return False


def held_by(folder: str | os.PathLike) -> str | None:
    """Who holds the lock on ``folder`` (a run writing there, :func:`_holder`'s words), or None when nobody does,
    the folder has no lock file, or the file system refuses locks (:func:`lock_holder`)."""
    found = lock_holder(folder)
    return None if found is None else found[0]


def lock_holder(folder: str | os.PathLike) -> tuple[str, str] | None:
    """``(who, command)`` of the process that holds the lock on ``folder``: :func:`held_by`'s words, and the automl
    command it runs (``run``, ``rank``, ``export``: :class:`_Holding`); None as for :func:`held_by`. Only looks: the
    file is opened for reading (a folder this user cannot write), and a shared lock is tried and dropped at once."""
    path = Path(folder) / LOCK_NAME
    if fcntl is None or _held_here(path):  # this process's own lock (on NFS closing a copy would drop it)
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO there would block an open
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None  # no lock file automl made: acquire says so
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            who, _, doing = _holder(path, _holders(os.fstat(fd)))
            return who, doing.verb
        return None
    finally:
        os.close(fd)  # drops the shared lock, if taken
    return None


class RunLock:
    """``RunLock(folder).acquire(create=...)`` takes the lock or raises a :class:`UserError` naming the holder."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None
        self._folder_id: tuple[int, int] | None = None  # the folder when the lock was taken
        self._guard = ""  # the key automl._io's run-folder guard has for it
        self._previous: bytes | None = None  # what the file said before a look (acquire with ``look``)
        self._times: tuple[int, int] | None = None  # its access and modification times then (ns)
        self._made = False  # the look made the file: removed on release
        self._unlockable = False  # the file system refused the lock (warned once)

    def acquire(self, create: bool = True, then: str | None = None, look: bool | None = None,
                guard: bool = True) -> bool:
        """Take the lock (``create``: creating the file; else only if it exists). True when held. ``then``:
        what to do once the holder has ended, when the lock is held (default: ``automl run``'s advice).

        The file names this process at once (:meth:`_record`). ``look`` (the default without ``create``): the
        lock is taken to look at the folder first, and released before :meth:`keep`, the file is left as it was
        found (its record and times; one this acquire made is removed): a command refused there does not take
        the run's place in it, nor leave a trace. An acquire without ``look`` when the lock is held keeps it.
        ``guard``: writes below the folder check that it is still the run's (:func:`~automl._io.guard_run_folder`,
        whose messages are a run's); ``automl export``'s ``--out`` is no run folder and takes none."""
        look = not create if look is None else look
        if self.fd is not None:
            if not look:
                self.keep()
            return True
        if fcntl is None or self._unlockable:
            return False
        taken = self._take(create, then)
        if taken is None:
            return False  # no run folder yet, or no run ever locked it, or the file system refuses locks
        fd, made = taken
        self.fd = fd
        _held.add(fd)
        if look:
            found = os.fstat(fd)
            self._made, self._times = made, (found.st_atime_ns, found.st_mtime_ns)
            self._previous = b"" if made else _read_all(fd)
        try:
            self._record()
        except OSError as e:  # a full disk or quota: the file cannot name this process, so the lock is not taken
            self.release()
            raise UserError(f"{'--out ' if then is None else ''}{self.folder}: cannot write its lock file {self.path} "
                            f"({e.strerror or e}); {write_fix(e)} and run the command again") from None
        self._folder_id = _identity(self.folder)
        self._guard = guard_run_folder(self.folder, self.gone) if guard else ""
        return True

    def keep(self) -> None:
        """From now on the lock file keeps naming this process after release (a look becomes the run's hold)."""
        self._previous, self._times, self._made = None, None, False

    def _take(self, create: bool, then: str | None) -> tuple[int, bool] | None:
        """The lock file open and locked, and whether this call made it; None where it does not exist (without
        ``create``) or the file system refuses locks (warned once); a :class:`UserError` naming the holder where
        another process holds it. A file removed or replaced between the open and the lock (a look that made it
        and was refused removes it: :meth:`release`) is opened again: the lock is always on the file in place."""
        for _ in range(_RETRIES):
            opened = self._open(create, then)
            if opened is None:
                return None
            fd, made = opened
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                held = os.fstat(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise UserError(self._held_message(then, _holders(held))) from None
                # a file system without locks (some NFS mounts): go on, unprotected, and say so (once); a file
                # this call made is removed (if still the one in place): no file where there was none
                if made:
                    _remove_in_place(fd, self.path)
                os.close(fd)
                self._unlockable = True
                if held.st_dev not in _WARNED_UNLOCKABLE:  # once per file system (a run's member folders too)
                    _WARNED_UNLOCKABLE.add(held.st_dev)
                    _logger.warning("warning: cannot lock %s (%s); nothing stops a second command from writing to "
                                    "%s (nor to other folders of that file system)", self.path, e.strerror or e,
                                    self.folder)
                return None
            if _in_place(fd, self.path):
                return fd, made
            os.close(fd)
        # removed or replaced at each try: nobody to name (the file's record may be a long dead holder's)
        raise UserError(self._unsteady_message(then))

    def _open(self, create: bool, then: str | None) -> tuple[int, bool] | None:
        """The lock file open for reading and writing (created with ``create``), and whether this call made it; None
        where it does not exist and ``create`` is False; a :class:`UserError` where it cannot be opened or is no
        file (a folder, a FIFO)."""
        flags = os.O_RDWR | os.O_NONBLOCK  # a FIFO there would block an open
        fix = "move it away (a run makes a new one)"
        made = False
        try:
            if create:
                try:
                    fd, made = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o644), True
                except FileExistsError:  # there already (or a link: followed, as before)
                    fd = os.open(self.path, flags | os.O_CREAT, 0o644)
            else:
                fd = os.open(self.path, flags)
        except OSError as e:
            if not create and isinstance(e, (FileNotFoundError, NotADirectoryError)):
                return None
            why = "it is a folder, not a file" if e.errno == errno.EISDIR else (e.strerror or str(e))
            if e.errno in (errno.EACCES, errno.EPERM) and holds_checkpoints(self.folder):
                raise UserError(self._unwritable_run(why, then)) from None
            if e.errno in (errno.EACCES, errno.EPERM):
                fix = f"make {'it' if os.path.lexists(self.path) else 'the folder'} writable"
            elif e.errno == errno.ELOOP:  # the lock file a link that loops, or the folder (a link on its way)
                fix = ("remove that link (a run makes a new lock file)" if os.path.islink(self.path) else
                       f"{self.folder} is a symbolic-link loop (or one is on its way): fix or remove that link")
            elif e.errno == errno.ENAMETOOLONG:
                fix = "the path is too long for the file system: use a shorter one"
            elif e.errno != errno.EISDIR:
                fix = write_fix(e)
            raise UserError(self._unusable(why, fix, then)) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UserError(self._unusable("it is not a regular file", fix, then))
        return fd, made

    def _unusable(self, why: str, fix: str, then: str | None) -> str:
        """The message for a lock file that cannot be used: ``why``, and ``fix`` or (for ``automl run``) another
        ``--out``."""
        return (f"{'--out ' if then is None else ''}{self.folder}: cannot open its lock file {self.path} ({why}); "
                f"{fix}" + (" or choose another --out" if then is None else ""))

    def _unwritable_run(self, why: str, then: str | None) -> str:
        """The message for the lock file of a run's folder (one that holds its checkpoints) this user may not open
        for writing: make the folder writable, where the run goes on (``--resume``, ``automl rank``), then run the
        command again (``then``); only a new run may go to another ``--out``."""
        again = (f", {then}" if then is not None else
                 " and run the command again (a new run may choose another --out instead)")
        return (f"{'--out ' if then is None else ''}{self.folder}: cannot open its lock file {self.path} ({why}); "
                f"{unwritable_run_fix(self.folder)}{again}")

    def _unsteady_message(self, then: str | None) -> str:
        """The refusal where the lock file was removed or replaced at each of :data:`_RETRIES` tries before it
        could be locked: other commands taking and leaving it, or a file system whose ``stat`` and ``fstat`` do not
        agree on a file's identity (some overlay, FUSE or CIFS mounts), where every try would end so."""
        out = "--out " if then is None else ""
        return (f"{out}{self.folder}: its lock file {self.path} kept being removed or replaced while it was being "
                f"locked ({_RETRIES} tries): another command is taking and leaving it, or the file system does not "
                f"keep a file's identity (some overlay, FUSE or CIFS mounts); run the command again once the other "
                f"automl commands on {self.folder} have ended, and if it happens again, "
                + ("choose another --out on a local disk" if then is None else
                   f"move {self.folder} to a local disk and run it there"))

    def _record(self, text: bytes | None = None) -> None:
        """Write this process (pid, host, start time, command), or ``text``, into the held lock file."""
        if text is None:
            text = (json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                                "command": _command(), **_launch()}) + "\n").encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, text, 0)

    def gone(self) -> str | None:
        """``"removed"`` when the lock file this process holds was deleted with the run folder, ``"unlocked"``
        when it was deleted alone (the folder is still the one locked), ``"moved"`` when it still exists but no
        longer at :attr:`path` (the folder moved or renamed); None while it is in place, or when this process
        holds no lock (a forked worker)."""
        if self.fd is None or self.fd not in _held:
            return None
        try:
            held = os.fstat(self.fd)
        except OSError:
            return None
        if held.st_nlink == 0:  # the lock file deleted: with its folder, or alone (a tmp cleaner, a user)
            here = _identity(self.folder)
            return "unlocked" if here is not None and here == self._folder_id else "removed"
        try:
            now = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return "moved"
        except OSError:  # not reachable now (permissions): the write itself says why
            return None
        return None if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino) else "moved"

    def release(self, remove: bool = False) -> None:
        """Drop the lock; ``remove``: remove the lock file too (while still held, if it is still the one in place),
        also one found there (a folder whose files are the holder's alone, as a run's member export folder)."""
        if self.fd is not None:
            unguard_run_folder(self._guard)
            if self._made or remove:  # a look that made the file: removed while held, if it is still the one in place
                _remove_in_place(self.fd, self.path)
            elif self._previous is not None:  # only a look: the file as it was, naming the last holder again
                _put_back(self.fd, self._previous, self._times)
            _held.discard(self.fd)
            os.close(self.fd)  # closing drops the lock; the file stays, naming the last holder
            self.fd = None
            self.keep()

    def _held_message(self, then: str | None = None, holders: list[int] | None = None) -> str:
        """The refusal: who holds the lock and how to stop it (:func:`_holder`), and what to do then: continue a
        run with --resume; after an ``automl rank`` (which writes no checkpoint), run this command again."""
        who, stop, doing = _holder(self.path, holders)
        if then is not None:
            return f"{self.folder} is in use: {doing.what} writing there ({who}); wait for it to end, {then}"
        return (f"--out {self.folder} is in use: {doing.what} writing there ({who}); wait for it to "
                f"end or {stop}, {doing.after}, or choose another --out")
