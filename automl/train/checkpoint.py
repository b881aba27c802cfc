"""Checkpoints that survive being killed at any moment.

Each save writes a new numbered file atomically, then atomically rewrites ``checkpoints.json``, the index
that lists the last two files with their SHA-256. Loading walks the index newest first and takes the first
file whose checksum matches, so a truncated or corrupted newest checkpoint falls back to the previous one
(with a warning); a file that loads but holds no dict (not a run's state) counts as refused. A file that load
found unusable is not kept as the next save's fallback (a run resumed from the previous checkpoint keeps that one
behind its new one), and the index names only its folder's ``ckpt-N.pt`` files: load skips, and save never
deletes, any other path. A failed write (disk full) leaves the index, and so the previous checkpoint, untouched;
a new checkpoint file whose index could not be written is removed again (it would only take space).
Files are loaded with ``torch.load(weights_only=True)``: a checkpoint never executes code. When there is
no usable checkpoint, :meth:`CheckpointStore.why_none` says why in words (no folder, no index, a damaged
index, or each listed file missing, unreadable, corrupted or refused), for the caller's user error. On
resume, :meth:`CheckpointStore.remove_temporaries` deletes what a kill left behind, never a file the index names.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
import re
from pathlib import Path

import torch

from automl._io import TEMPORARY, atomic_write_bytes, atomic_write_json

__all__ = ["CheckpointStore"]

_logger = logging.getLogger(__name__)
KEEP = 2
_NUMBERED = re.compile(r"ckpt-[0-9]+\.pt")  # the names save() writes


class _DamagedIndex(Exception):
    """``checkpoints.json`` exists but cannot be read or is not an index; the message says why."""


class CheckpointStore:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.index_path = self.folder / "checkpoints.json"
        self.problems: list[str] = []  # why each file the last load() tried was skipped
        self.unusable: set[str] = set()  # the index's files the last load() skipped: save() keeps none of them
        self.loaded: Path | None = None  # the file the last load() returned, for messages about what it holds

    def _read_index(self) -> list[dict]:
        """The index's entries; [] when there is no index; :class:`_DamagedIndex` when it is unusable."""
        try:
            data = self.index_path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as e:
            raise _DamagedIndex(f"cannot be read ({e.strerror or e})") from None
        try:
            entries = json.loads(data)["checkpoints"]
            if not isinstance(entries, list) or not all(
                    isinstance(x, dict) and {"seq", "file", "sha256"} <= set(x) and isinstance(x["file"], str)
                    for x in entries):
                raise TypeError
            return entries
        except ValueError:  # not JSON, or not UTF-8
            raise _DamagedIndex("is damaged (not valid JSON)") from None
        except (KeyError, TypeError):
            raise _DamagedIndex("is damaged (no list of checkpoints in it)") from None

    def _index(self) -> list[dict]:
        try:
            return self._read_index()
        except _DamagedIndex:
            return []

    def _files(self) -> list[str]:
        return sorted(p.name for p in self.folder.glob("ckpt-*.pt")) if self.folder.is_dir() else []

    def exists(self) -> bool:
        return bool(self._index())

    def missing(self) -> bool:
        """True when the folder holds no checkpoint at all: no index and no checkpoint file (a run that stopped
        before its first checkpoint, or no run); False when it holds one, usable or not."""
        return not self.index_path.exists() and not self._files()

    def why_none(self) -> str:
        """Why :meth:`load` finds no usable checkpoint, in words naming the folder, index or files."""
        if not self.folder.exists():
            return f"{self.folder} does not exist"
        if not self.folder.is_dir():
            return f"{self.folder} is a file, not a folder"
        files = self._files()  # named whenever the index cannot: they may be intact (a copy kept before rm -r)
        held = f" (the folder holds {', '.join(files)})" if files else ""
        try:
            entries = self._read_index()
        except _DamagedIndex as e:
            return f"its index {self.index_path} {e}{held}"
        if not self.index_path.exists():
            return f"its index {self.index_path} is missing{held}"
        if not entries:
            return f"its index {self.index_path} lists no checkpoint{held}"
        if not self.problems:
            self.load()
        return "every checkpoint its index lists is unusable: " + "; ".join(self.problems)

    def save(self, state: dict) -> Path:
        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
        entries = self._index()
        seq = (entries[0]["seq"] + 1) if entries else 1
        name = f"ckpt-{seq:06d}.pt"
        atomic_write_bytes(self.folder / name, data)
        usable = [e for e in entries if e["file"] not in self.unusable and _NUMBERED.fullmatch(e["file"])]
        kept = usable[: KEEP - 1]
        new = [{"seq": seq, "file": name, "sha256": hashlib.sha256(data).hexdigest()}] + kept
        try:
            atomic_write_json(self.index_path, {"checkpoints": new})
        except OSError:  # disk full: the index names the previous checkpoints still; the new file only takes space
            if name not in {e["file"] for e in entries}:
                (self.folder / name).unlink(missing_ok=True)
            raise
        for old in entries:  # never a file the index should not name (only this folder's ckpt-N.pt)
            if old not in kept and _NUMBERED.fullmatch(old["file"]):
                (self.folder / old["file"]).unlink(missing_ok=True)
        return self.folder / name

    def remove_temporaries(self) -> int:
        """Delete what a kill cut short: temporary files of atomic writes (named as :data:`automl._io.TEMPORARY`
        matches, nothing else that ends in ``.tmp``), and numbered checkpoints the index does not
        name (one written before its index, or one the index dropped before it was unlinked). Checkpoints
        are deleted only when the index reads and names at least one; without that nothing tells which are
        current. Only safe for the folder's one writer (the run holding its lock). Returns how many."""
        if not self.folder.is_dir():
            return 0
        # only what the atomic writer names so (.NAME.XXXXXXXX[.ext].tmp, automl._io.TEMPORARY), as files: a
        # user's own `.notes.tmp` (or a folder so named) is no temporary of a write
        stray = [p for p in self.folder.glob(".*.tmp") if TEMPORARY.fullmatch(p.name) and p.is_file()]
        try:
            named = {x["file"] for x in self._read_index()}
        except _DamagedIndex:
            named = set()
        if named:
            stray += [self.folder / f for f in self._files() if _NUMBERED.fullmatch(f) and f not in named]
        for p in stray:
            p.unlink(missing_ok=True)
        return len(stray)

    def _skip(self, entry: dict, problem: str, last: bool) -> None:
        path = self.folder / entry["file"]
        self.problems.append(f"{path} {problem}")
        self.unusable.add(entry["file"])
        _logger.warning("checkpoint %s %s; %s", path, problem,
                        "its index lists no earlier one" if last else "trying the previous one")

    def load(self) -> dict | None:
        """The newest intact checkpoint, or None when there is none (:meth:`why_none` says why); :attr:`loaded`
        names its file."""
        self.problems, self.unusable, self.loaded = [], set(), None
        entries = self._index()
        for n, entry in enumerate(entries, start=1):
            path, last = self.folder / entry["file"], n == len(entries)
            if not _NUMBERED.fullmatch(entry["file"]):
                self._skip(entry, "is not a checkpoint of this folder (the index names only its ckpt-N.pt files)",
                           last)
                continue
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                self._skip(entry, "is missing", last)
                continue
            except OSError as e:
                self._skip(entry, f"cannot be read ({e.strerror or e})", last)
                continue
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                self._skip(entry, f"is corrupted ({'empty: 0 bytes' if not data else 'checksum mismatch'})", last)
                continue
            try:
                state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
                # e.g. a file holding arbitrary Python objects: refused, never executed
                self._skip(entry, f"was refused ({str(e).splitlines()[0] if str(e) else type(e).__name__})", last)
                continue
            if not isinstance(state, dict):
                self._skip(entry, f"was refused (it holds a {type(state).__name__}, not a run's state)", last)
                continue
            self.loaded = path
            return state
        return None
