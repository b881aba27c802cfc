"""Checkpoints that survive being killed at any moment.

Each save writes a new numbered file atomically, then atomically rewrites ``checkpoints.json``, the index
that lists the last two files with their SHA-256. Loading walks the index newest first and takes the first
file whose checksum matches, so a truncated or corrupted newest checkpoint falls back to the previous one
(with a warning). A failed write (disk full) leaves the index, and so the previous checkpoint, untouched.
Files are loaded with ``torch.load(weights_only=True)``: a checkpoint never executes code.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
from pathlib import Path

import torch

from automl._io import atomic_write_bytes, atomic_write_json

__all__ = ["CheckpointStore"]

_logger = logging.getLogger(__name__)
KEEP = 2


class CheckpointStore:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.index_path = self.folder / "checkpoints.json"

    def _index(self) -> list[dict]:
        try:
            return json.loads(self.index_path.read_text())["checkpoints"]
        except (OSError, ValueError, KeyError, TypeError):  # missing, unreadable, not a folder, garbled
            return []

    def exists(self) -> bool:
        return bool(self._index())

    def save(self, state: dict) -> Path:
        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
        entries = self._index()
        seq = (entries[0]["seq"] + 1) if entries else 1
        name = f"ckpt-{seq:06d}.pt"
        atomic_write_bytes(self.folder / name, data)
        new = [{"seq": seq, "file": name, "sha256": hashlib.sha256(data).hexdigest()}] + entries[: KEEP - 1]
        atomic_write_json(self.index_path, {"checkpoints": new})
        for old in entries[KEEP - 1:]:
            (self.folder / old["file"]).unlink(missing_ok=True)
        return self.folder / name

    def remove_temporaries(self) -> int:
        """Delete the temporary files of writes that a kill cut short (never named by the index); only safe
        for the folder's one writer (the run holding its lock). Returns how many."""
        stray = list(self.folder.glob(".*.tmp")) if self.folder.is_dir() else []
        for p in stray:
            p.unlink(missing_ok=True)
        return len(stray)

    def load(self) -> dict | None:
        """The newest intact checkpoint, or None when there is none."""
        for entry in self._index():
            path = self.folder / entry["file"]
            try:
                data = path.read_bytes()
            except OSError:
                _logger.warning("checkpoint %s is missing; trying the previous one", path)
                continue
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                _logger.warning("checkpoint %s is corrupted (checksum mismatch); using the previous one", path)
                continue
            try:
                return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
                # e.g. a file holding arbitrary Python objects: refused, never executed
                _logger.warning("checkpoint %s was refused (%s); trying the previous one", path,
                                str(e).splitlines()[0] if str(e) else type(e).__name__)
                continue
        return None
