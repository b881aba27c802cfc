"""Files written as automl writes its own, for scripts built on automl (``benchmarks/``): atomically (through a
temporary file in the same folder, flushed, renamed over the file, the folder flushed: a kill, a full disk or a
power cut leaves the old file or none, never part of one; a new file gets the mode a plain ``open()`` gives it,
a replaced one keeps its permission bits), and JSON as strict JSON (RFC 8259 has no NaN or Infinity: a
non-finite number is written as ``null``)."""

from automl._io import atomic_write_json, atomic_write_text, strict_json

__all__ = ["atomic_write_json", "atomic_write_text", "strict_json"]
