"""File I/O shared by the modules.

Atomic writes: a temporary file in the same folder, fsync, then ``os.replace`` and (POSIX) an fsync of the
folder; a reader (or a resumed run) sees either the old file or the new one, never half of one. The file
gets the mode a plain ``open()`` gives it: a new one 0o666 less the umask (e.g. ``-rw-r--r--``), one that it
replaces keeps its permission bits. Reading a user's UTF-8 text file, with the reason it failed, for the caller
to word as its own user error.

A run folder a run holds (:func:`guard_run_folder`, from its lock) is never created again by a write: a write
below it first checks that the folder is still the run's, and stops with one user error when it was removed
or moved meanwhile; its sub-folders (``checkpoints/``, ``export/...``) are created as needed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import secrets
import select
import shlex
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from automl.errors import UserError

__all__ = ["TEMPORARY", "temporary_pattern", "atomic_path", "guard_run_folder", "unguard_run_folder",
           "check_run_folder", "make_folder", "write_fix", "atomic_write_bytes", "atomic_write_text",
           "atomic_write_json", "strict_json", "remove_temporaries", "read_utf8_text", "UnreadableText",
           "writable_dir", "writable_file", "absolute_path", "reader_gone", "DuplicateKey", "unique_keys",
           "duplicate_key_line", "path_problem", "shell_path", "pasted_path",
           "pasted_space", "holds_checkpoints", "unwritable_run_fix"]


# the RANDOM part of a temporary's name (_create_temporary): this many random bytes, as hex digits
_TOKEN_BYTES = 4
# RANDOM in the temporaries an earlier automl left (tempfile's names: 8 of [a-z0-9_], hex digits among them)
_EARLIER_TOKEN = "[a-z0-9_]{8}"


def temporary_pattern(name_regex: str, suffix_regex: str = "", *, earlier: bool = False) -> re.Pattern:
    """The regular expression (for ``fullmatch``) of the names of the temporaries :func:`atomic_path` makes for the
    files whose names ``name_regex`` matches, with a ``suffix`` that ``suffix_regex`` matches (none by default):
    ``.NAME.RANDOM{suffix}.tmp``, RANDOM :data:`_TOKEN_BYTES` random bytes as lowercase hex digits, or with
    ``earlier`` also 8 of tempfile's ``[a-z0-9_]`` (the temporaries an earlier automl left)."""
    token = _EARLIER_TOKEN if earlier else f"[0-9a-f]{{{2 * _TOKEN_BYTES}}}"
    return re.compile(rf"\.(?:{name_regex})\.{token}(?:{suffix_regex})\.tmp")


# the temporaries of any file, with suffix "" or one extension (".onnx", ".pt", ...), an earlier automl's too
TEMPORARY = temporary_pattern(".+", r"(\.[A-Za-z0-9]+)?", earlier=True)

# the run folders this process's runs hold: real path (symlinks and '..' resolved as the OS does) -> (the folder
# as given, its gone() check)
_RUN_FOLDERS: dict[str, tuple[Path, Callable[[], str | None]]] = {}


def write_fix(e: OSError) -> str:
    """What to do about a failed write, by its errno: "free space", "make the folder writable", "raise the file size
    limit ..." (a file past the process's limit, ``ulimit -f``, or its file system's: FAT32's 4 GiB), a symbolic
    link that loops, a file where the path needs a folder, a path too long for the file system (the run folder
    moved to a shorter one: a run continues there with ``--resume --out NEW``), "fix the cause"."""
    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return "free space"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "make the folder writable"
    if e.errno == errno.EFBIG:
        return "raise the file size limit (ulimit -f) or write to another file system (FAT32 takes at most 4 GiB)"
    if e.errno == errno.ELOOP:
        return "a symbolic link on the path points back to itself: fix or remove the link"
    if e.errno == errno.ENOTDIR:
        return "a file stands on the path where a folder must be: move it away"
    if e.errno == errno.ENAMETOOLONG:
        return ("the path is too long for the file system: move the run folder to a shorter path and name the new "
                "path where the command names the old one (a run continues there with --resume)")
    return "fix the cause"


def guard_run_folder(folder: str | os.PathLike, gone: Callable[[], str | None]) -> str:
    """While a run holds ``folder``: a write below it calls ``gone()`` first (``"removed"``, ``"moved"``,
    ``"unlocked"`` or None: the folder is still the run's) and stops on an answer (:func:`check_run_folder`), and
    no write creates the folder itself again (:func:`make_folder`). Returns the key :func:`unguard_run_folder`
    takes (the folder's real path now: a later ``os.chdir`` does not change it)."""
    key = os.path.realpath(folder)
    _RUN_FOLDERS[key] = (Path(folder), gone)
    return key


def unguard_run_folder(key: str) -> None:
    _RUN_FOLDERS.pop(key, None)


def _run_folder_of(path: str | os.PathLike) -> str | None:
    """The guarded run folder ``path`` is in (or is), as its real path; None when none."""
    if not _RUN_FOLDERS:
        return None
    p = os.path.realpath(path)
    for root in _RUN_FOLDERS:
        if p == root or p.startswith(root.rstrip(os.sep) + os.sep):
            return root
    return None


def _gone(root: str, why: str) -> UserError:
    folder = _RUN_FOLDERS[root][0]
    if why == "moved":
        return UserError(f"the run folder {folder} was moved while the run was writing to it; nothing more is "
                         f"written; continue it where it is now (--resume with --out set to that folder)")
    if why == "unlocked":
        return UserError(f"the lock file {folder / '.lock'} was deleted while the run was writing to {folder} "
                         f"(a second run could have entered); nothing more is written; the folder and its "
                         f"checkpoints are intact: continue with --resume (--out {folder})")
    return UserError(f"the run folder {folder} was removed while the run was writing to it; nothing more is "
                     f"written; start again")


def check_run_folder(path: str | os.PathLike) -> None:
    """The user error "the run folder DIR was removed (or moved) while the run was writing to it" when ``path``
    is in a run folder a run of this process holds and that folder is no longer the run's."""
    root = _run_folder_of(path)
    if root is not None:
        _check_root(root)


def _check_root(root: str) -> None:
    """:func:`check_run_folder` for the guarded run folder ``root`` (its key)."""
    why = _RUN_FOLDERS[root][1]()
    if why:
        raise _gone(root, why)


def make_folder(folder: str | os.PathLike) -> None:
    """``folder`` and the folders above it, as ``mkdir -p``; in a run folder a run holds, only the folders below
    it: the run folder itself is never created again (:func:`check_run_folder` first)."""
    folder = Path(folder)
    root = _run_folder_of(folder)
    if root is None:
        folder.mkdir(parents=True, exist_ok=True)
        return
    _check_root(root)
    part = Path(root)
    for name in Path(os.path.realpath(folder)).relative_to(root).parts:
        part = part / name
        try:
            part.mkdir(exist_ok=True)
        except FileNotFoundError:  # the run folder went since the check
            raise _gone(root, "removed") from None


def _create_temporary(path: Path, suffix: str) -> Path:
    """A new empty file ``.NAME.RANDOM{suffix}.tmp`` next to ``path``, created with mode 0o666 so that the
    umask (and a default ACL) applies as for a plain ``open()``; ``tempfile.mkstemp`` would make it 0o600. Its
    name is what :func:`temporary_pattern` matches."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(_TOKEN_BYTES)}{suffix}.tmp"
        try:
            os.close(os.open(tmp, flags, 0o666))
            return tmp
        except FileExistsError:
            continue


def _keep_mode(path: Path, tmp: Path) -> None:
    """Give ``tmp`` the permission bits of the regular file ``path`` it replaces, as writing over ``path`` in place
    keeps them (a ``chmod g+w`` or ``chmod 600`` of a shared table or a run's results survives a rewrite); best
    effort: a file system that refuses chmod keeps the new file's mode."""
    try:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode):
            os.chmod(tmp, stat.S_IMODE(st.st_mode) & 0o777)
    except OSError:
        pass


def _sync_folder(folder: Path) -> None:
    """Flush a rename in ``folder`` to disk (POSIX; best effort: some file systems refuse it)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for any writer; on success it is flushed to disk and
    replaces ``path`` (the folder is flushed too), on error it is removed and ``path`` is untouched.

    ``suffix`` keeps an extension for writers that look at it (safetensors, humans reading a crashed folder).
    """
    path = Path(path)
    make_folder(path.parent)
    try:
        tmp_path = _create_temporary(path, suffix)
    except OSError:
        check_run_folder(path)  # the run folder went since make_folder's check: say so
        raise
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        _keep_mode(path, tmp_path)  # after the fsync: a read-only mode would refuse its open()
        os.replace(tmp_path, path)
        _sync_folder(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def strict_json(obj):
    """``obj`` with every non-finite float (NaN, ±inf, at any depth of its dicts, lists and tuples) as None:
    strict JSON (RFC 8259) has no NaN or Infinity, so a reader other than Python's could not parse them."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def atomic_write_json(path: str | os.PathLike, obj, indent: int = 2) -> None:
    """``obj`` as strict JSON: a non-finite number is written as ``null`` (:func:`strict_json`)."""
    atomic_write_text(path, json.dumps(strict_json(obj), indent=indent, allow_nan=False) + "\n")


def remove_temporaries(folders: list[Path]) -> None:
    """Delete the temporaries of atomic writes a kill cut short (:data:`TEMPORARY`) in ``folders`` and below;
    only for the folders' one writer (a run holding its lock: another writer's temporaries would be in use)."""
    for folder in folders:
        for p in folder.rglob(".*.tmp") if folder.is_dir() else ():
            if TEMPORARY.fullmatch(p.name) and p.is_file():
                p.unlink(missing_ok=True)


def _dangling(path: Path) -> bool:
    """Whether ``path`` is a symbolic link to a path that does not exist (a loop of links is not)."""
    try:
        os.stat(path)
    except OSError as e:
        return e.errno == errno.ENOENT and os.path.islink(path)
    except ValueError:  # a NUL byte: no path (the caller's own checks say so)
        pass
    return False


def writable_dir(path: str | os.PathLike, what: str) -> Path:
    """Create the folder ``path`` (and its parents: :func:`make_folder`) and check that a file can be written in
    it, before any work that would write there; else a user error that names it as ``what`` (a flag or a recipe
    key) and says what the path is: a file, a link to a folder that does not exist, a loop of links, a pipe,
    socket or device (:func:`path_problem`), or a folder that cannot be written."""
    path = Path(path)
    if _dangling(path):  # mkdir would say "File exists"
        raise UserError(f"{what} {path} is a link to {os.readlink(path)}, which does not exist; create that "
                        f"folder, or choose another")
    problem = path_problem(path, "a folder")  # a loop of links, a pipe, socket or device
    if problem:
        raise UserError(f"{what} {path} {problem}; choose a folder")
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a folder; choose a folder")
    try:
        make_folder(path)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        fix = "choose a writable folder"
        if e.errno in (errno.EACCES, errno.EPERM) and holds_checkpoints(path):  # a run's folder: --resume goes on here
            fix = f"{unwritable_run_fix(path)} and run the command again"
        raise UserError(f"{what} {path}: cannot write there ({e.strerror or e}); {fix}") from None
    return path


def holds_checkpoints(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a run's checkpoints (a ``checkpoints/`` folder with anything in it): a run that
    ``--resume`` continues, or ``automl rank`` scores, there and nowhere else."""
    try:
        return any(Path(folder, "checkpoints").iterdir())
    except (OSError, ValueError):
        return False


def unwritable_run_fix(folder: str | os.PathLike) -> str:
    """The advice for a run's folder (:func:`holds_checkpoints`) this user may not write: make it writable, naming
    the command; the caller says how to go on (the run continues there, not in another folder)."""
    return f"the folder holds a run's checkpoints: make it writable (chmod -R u+w {pasted_path(folder)})"


def writable_file(path: str | os.PathLike, what: str, example: str = "out.json") -> Path:
    """Check that the file ``path`` can be written (atomically, so its folder must take a new file, renamed over
    ``path``), before any work whose result goes there, and return the path to write: ``path``, or for a symbolic
    link to a regular file the file it leads to (its real path), so that the write lands in that file and the
    link stays, as ``cp`` and a shell's ``>`` write through a link. Else a user error that names it as ``what``:
    an empty name (``--out "$OUT"`` with OUT unset), a symbolic link that leads to nothing (a loop of links, a
    link to a file that does not exist: the rename would replace the link itself), a device, pipe or socket (the
    rename would replace it), a folder, a folder that cannot take the file. ``example``: a file name the messages
    suggest."""
    if not str(path).strip():
        raise UserError(f"{what} {str(path)!r} is empty; give the file to write, e.g. {what} {example}")
    path = Path(path)
    problem = path_problem(path)
    if problem and not os.path.exists(path):  # a loop of links or a link to nothing: the rename would replace the link
        raise UserError(f"{what} {path} {problem}: writing the file would replace the link; give the path of the "
                        f"file to write, or another file name, e.g. {what} {example}")
    if path.exists() and not (path.is_file() or path.is_dir()):
        raise UserError(f"{what} {path} is not a regular file (a device, pipe or socket), which writing the "
                        f"new file would replace; give a file name, e.g. {what} {example}")
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder; give a file name, e.g. {path / Path(example).name}")
    if path.is_symlink():  # to a regular file (the checks above): the new file replaces that one
        target = Path(os.path.realpath(path))
        writable_dir(target.parent, f"{what} {path} (a link to {target}): the folder")
        return target
    writable_dir(path.parent, f"{what} {path}: the folder")
    return path


class UnreadableText(Exception):
    """Why a user's text file could not be read; the caller words the message for its kind of file.

    ``reason`` is ``"missing"``, ``"directory"``, ``"unreadable"`` (``detail``: the OS's reason) or
    ``"encoding"`` (``detail``: the first bad byte, e.g. ``0xff``, at ``line``/``column``).
    """

    def __init__(self, reason: str, detail: str = "", line: int | None = None, column: int | None = None,
                 source_line: str | None = None):
        super().__init__(reason)
        self.reason, self.detail, self.line, self.column, self.source_line = reason, detail, line, column, source_line


def _one_newline(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


MAX_TEXT_BYTES = 16 << 20  # a user's text file (a recipe, a .space file): far above any real one


def path_problem(path: str | os.PathLike, want: str = "a regular file", *, reading: bool = False) -> str | None:
    """What ``path`` is, in words for a message after it, where it names no file or folder to use: ``leads
    through a loop of symbolic links ...``, ``is a symbolic link to T, which does not exist``, or ``is a named pipe
    (FIFO), not {want}`` (a socket, a device). With ``reading``, a pipe and a device are files to read (``cat``
    reads them: a process substitution ``<(...)`` is a pipe), a socket is not. None for a regular file, a folder
    (the caller's own checks tell which it wants), a path that does not exist or one the system refuses otherwise
    (the caller's own opening says why)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "leads through a loop of symbolic links (a link that leads back to itself), so it names nothing"
        try:
            if e.errno == errno.ENOENT and os.path.islink(path):
                return f"is a symbolic link to {os.readlink(path)}, which does not exist"
        except OSError:  # removed meanwhile
            pass
        return None
    except ValueError:  # a NUL byte: no path (the caller's own checks say so)
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode) or (reading and not stat.S_ISSOCK(mode)):
        return None
    kind = "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return f"is {kind}, not {want}"


def read_utf8_text(path: str | os.PathLike, what: str = "recipe or space file") -> str:
    """The text of a user's UTF-8 file (a leading byte order mark removed), or :class:`UnreadableText`; an empty
    name is ``"missing"`` (pathlib would read it as the current folder). ``what``: the kind of file, for a file
    larger than :data:`MAX_TEXT_BYTES` ("which no recipe or space file is")."""
    p = Path(path)
    problem = path_problem(path, reading=True) if str(path) else None
    if problem:  # a loop of links, a link to nothing, a socket
        raise UnreadableText("unreadable", f"it {problem}")
    if not str(path) or not p.exists():
        raise UnreadableText("missing")
    if p.is_dir():
        raise UnreadableText("directory")
    try:
        with open(p, "rb") as f:  # at most a byte over the limit: /dev/zero or a wrong file ends here
            data = f.read(MAX_TEXT_BYTES + 1)
    except OSError as e:
        raise UnreadableText("unreadable", str(e.strerror or e)) from None
    if len(data) > MAX_TEXT_BYTES:
        raise UnreadableText("unreadable", f"it is larger than {MAX_TEXT_BYTES >> 20} MiB, which no {what} is; "
                                           f"give the right file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        # every line break counts as one, as the parsers read them: \r\n, a lone \r and \n
        before = _one_newline(data[:e.start])
        line = before.count(b"\n") + 1
        col = len(before[before.rfind(b"\n") + 1:].decode("utf-8", errors="replace")) + 1
        src = _one_newline(data).split(b"\n")[line - 1].decode("utf-8", errors="replace")
        raise UnreadableText("encoding", f"0x{data[e.start]:02x}", line, col, src) from None
    return text[1:] if text.startswith("\ufeff") else text


def reader_gone(stream) -> bool:
    """Whether ``stream`` writes to a pipe or socket whose reading end is closed (``poll`` reports an error or a
    hang-up on it). Without ``poll`` (Windows), standard output is taken for it, as Python's recipe does."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # None, closed, or not a file (a test's captured output)
        return False
    if not hasattr(select, "poll"):
        return stream is sys.stdout
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


class DuplicateKey(ValueError):
    """A key given twice in one JSON object of a user's file (:func:`unique_keys`)."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``' ``object_pairs_hook`` for a user's file: the object, or :class:`DuplicateKey` for a key given
    twice, of which JSON would keep the last without a word."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out


def duplicate_key_line(text: str, key: str) -> int | None:
    """The line of the second ``key`` of the JSON ``text`` where the key is written just twice in it (else which of
    its objects holds the two is not told by the text alone): None."""
    found = list(re.finditer(re.escape(json.dumps(key, ensure_ascii=False)) + r"\s*:", text))
    return text.count("\n", 0, found[1].start()) + 1 if len(found) == 2 else None


def shell_path(path: str | os.PathLike) -> str:
    """``path`` as a shell command names it: quoted where it holds spaces or shell characters (``rm -r 'my runs/a'``,
    not ``rm -r my runs/a``, which deletes ``my``), and ``./`` before a leading ``-`` (not read as an option)."""
    text = str(path)
    return shlex.quote(f"./{text}" if text.startswith("-") else text)


def absolute_path(path: str | os.PathLike) -> Path:
    """``path`` (``~`` expanded) made absolute against the current folder, for a command that goes on to name: pasted
    from any folder (a job's log read later), it names the same file. ``.`` and ``..`` are dropped where the folder
    and name are then the same (``/home/me/x/../runs/a``: ``/home/me/runs/a``), else kept (a link before a
    ``..``); links are not followed (a recipe reached by a link reads its relative paths from the link's folder)."""
    exact = Path(os.path.expanduser(os.fspath(path)))
    exact = exact if exact.is_absolute() else Path.cwd() / exact  # (a current folder since removed: not asked)
    plain = Path(os.path.normpath(exact))
    try:
        same = (os.path.realpath(plain) == os.path.realpath(exact) if exact.name == ".." else
                plain.name == exact.name and os.path.realpath(plain.parent) == os.path.realpath(exact.parent))
    except (OSError, ValueError):  # a character no path holds: as written
        same = False
    return plain if same else exact


def pasted_path(path: str | os.PathLike) -> str:
    """``path`` as a command printed for pasting names it: absolute (:func:`absolute_path`: from any folder, a job's
    log read later, it names the same file) and quoted for the shell (:func:`shell_path`)."""
    return shell_path(absolute_path(path))


def pasted_space(filename: str | os.PathLike) -> str:
    """A space's ``filename`` as a command printed for pasting names it: :func:`pasted_path`, except a space compiled
    from text, not from a file (its name ``<space>``), which is named as it is."""
    text = str(filename)
    return shell_path(text) if text.startswith("<") and text.endswith(">") else pasted_path(text)
