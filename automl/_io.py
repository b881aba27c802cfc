"""File I/O shared by the modules.

Atomic writes: a temporary file in the same folder, fsync, then ``os.replace`` and (POSIX) an fsync of the
folder; a reader (or a resumed run) sees either the old file or the new one, never half of one. The file
gets the mode a plain ``open()`` gives it (0o666 less the umask, e.g. ``-rw-r--r--``). Reading a user's
UTF-8 text file, with the reason it failed, for the caller to word as its own user error.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Iterator

from automl.errors import UserError

__all__ = ["TEMPORARY", "atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "strict_json", "remove_temporaries", "read_utf8_text", "UnreadableText", "writable_dir", "writable_file"]


# the name of a temporary _create_temporary makes: ".NAME.RANDOM{suffix}.tmp", RANDOM 8 hex digits (8 of
# tempfile's [a-z0-9_] in files an earlier automl left), suffix "" or one extension (".onnx", ".pt", ...)
TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}(\.[A-Za-z0-9]+)?\.tmp")


def _create_temporary(path: Path, suffix: str) -> Path:
    """A new empty file ``.NAME.RANDOM{suffix}.tmp`` next to ``path``, created with mode 0o666 so that the
    umask (and a default ACL) applies as for a plain ``open()``; ``tempfile.mkstemp`` would make it 0o600."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}.tmp"
        try:
            os.close(os.open(tmp, flags, 0o666))
            return tmp
        except FileExistsError:
            continue


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _create_temporary(path, suffix)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
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


def writable_dir(path: str | os.PathLike, what: str) -> Path:
    """Create the folder ``path`` (and its parents) and check that a file can be written in it, before any
    work that would write there; else a user error that names it as ``what`` (a flag or a recipe key)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a folder; choose a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UserError(f"{what} {path}: cannot write there ({e.strerror or e}); choose a writable folder") from None
    return path


def writable_file(path: str | os.PathLike, what: str) -> Path:
    """Check that the file ``path`` can be written (atomically, so its folder must take a new file), before
    any work whose result goes there; else a user error that names it as ``what``."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder; give a file name, e.g. {path / 'out.json'}")
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


def read_utf8_text(path: str | os.PathLike) -> str:
    """The text of a user's UTF-8 file (a leading byte order mark removed), or :class:`UnreadableText`."""
    p = Path(path)
    if not p.exists():
        raise UnreadableText("missing")
    if p.is_dir():
        raise UnreadableText("directory")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise UnreadableText("unreadable", str(e.strerror or e)) from None
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
