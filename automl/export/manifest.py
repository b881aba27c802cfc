"""The export folder's ``manifest.json``.

Every file of an export is written to a temporary name in the same folder and moved into place with
``os.replace`` (``automl._io``), so a reader (or a crashed run) never sees half a file.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from automl._io import atomic_write_json
from automl.errors import UserError

__all__ = ["FORMAT_VERSION", "MANIFEST_NAME", "write_manifest", "read_manifest", "check_recorded", "check_channels",
           "finite_number"]

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


def finite_number(v) -> bool:
    """A finite JSON number that a float holds (an integer of hundreds of digits does not)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _numbers(v, positive: bool = False) -> bool:
    return (isinstance(v, list) and len(v) > 0 and all(finite_number(x) for x in v)
            and (not positive or all(x > 0 for x in v)))


# the fields a manifest given back to ``automl export --arch`` supplies (null or absent: not recorded), and what
# each must be: (test, in words)
_RECORDED = {
    "se": (lambda v: finite_number(v) and 0 <= v < 1, "a squeeze-and-excitation ratio in [0, 1)"),
    "epsilon": (finite_number, "a number"),
    "cost_metric": (lambda v: isinstance(v, str), "a metric name"),
    "space_args": (lambda v: isinstance(v, dict) and all(isinstance(x, (str, int, float)) for x in v.values()),
                   "an object of the space's --set values ({\"width\": \"0.5\"})"),
    "search_cost": (lambda v: isinstance(v, dict) and all(finite_number(x) for x in v.values()),
                    "an object of costs ({\"params\": 12345.0})"),
    "weights": (lambda v: isinstance(v, dict)
                and all(isinstance(v.get(k), (str, type(None))) for k in ("file", "source")),
                "an object ({\"file\": \"model.safetensors\", \"format\", \"source\"})"),
    "normalize": (lambda v: isinstance(v, dict) and _numbers(v.get("mean")) and _numbers(v.get("std"), True)
                  and len(v["mean"]) == len(v["std"]),
                  "{\"mean\": [...], \"std\": [...]}: one number per input channel, every std > 0"),
}


def check_recorded(manifest: dict[str, Any], source: str) -> None:
    """The fields of an export's manifest that exporting its network again reuses are well formed (a hand-edited
    or damaged one is a :class:`UserError` naming ``source`` and the field)."""
    for field, (ok, what) in _RECORDED.items():
        v = manifest.get(field)
        if v is not None and not ok(v):
            _refuse(source, field, what, v)


def check_channels(manifest: dict[str, Any], source: str, channels: int) -> None:
    """A (:func:`check_recorded`) manifest's ``normalize`` has one mean and std per input channel of the space
    it is exported with (``channels``)."""
    norm = manifest.get("normalize")
    if norm is not None and len(norm["mean"]) != channels:
        _refuse(source, "normalize", f"one mean and std per input channel ({channels} here)", norm)


def _refuse(source: str, field: str, what: str, value) -> None:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise UserError(f"{source}: \"{field}\" must be {what}, got {shown}; give the manifest.json the export wrote, "
                    f"or a plain ARCH.json with the choices")
