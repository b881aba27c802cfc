"""The export folder's ``manifest.json``.

Every file of an export is written to a temporary name in the same folder and moved into place with
``os.replace`` (``automl._io``), so a reader (or a crashed run) never sees half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from automl._io import atomic_write_json
from automl.errors import UserError

__all__ = ["FORMAT_VERSION", "MANIFEST_NAME", "write_manifest", "read_manifest"]

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


def write_manifest(out_dir: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    path = Path(out_dir) / MANIFEST_NAME
    atomic_write_json(path, manifest)  # strict JSON: a non-finite number is null
    return path


def read_manifest(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest of an export folder; a missing or unreadable one is a :class:`UserError`."""
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        raise UserError(f"{path}: no manifest here; is {out_dir} a folder written by `automl export`?")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError: bad JSON, bad UTF-8, an integer of over 4,300 digits
        raise UserError(f"{path}: not a readable manifest ({e})") from None
    if not isinstance(manifest, dict) or "choices" not in manifest:
        raise UserError(f"{path}: not an automl export manifest (no 'choices')")
    version = manifest.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(f"{path}: format_version {version!r} is newer than this automl understands "
                        f"({FORMAT_VERSION}); upgrade automl")
    return manifest
