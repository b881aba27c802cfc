"""What a ``.space`` file says, as a digest: comments and the amount of white space do not count.

A run's resume check and a supernet's reuse check count the space by :func:`space_digest`, so a comment
edited (or a file saved with CRLF line endings) between an interruption and ``--resume`` is the same space;
any other edit is another space. The grammar has no string literals, so every ``#`` starts a comment."""

from __future__ import annotations

import hashlib
import os
import re

__all__ = ["space_digest", "file_sha256"]

_COMMENT = re.compile(r"#[^\r\n]*")  # the grammar's COMMENT terminal; a lone \r ends a line too


def space_digest(data: bytes) -> str:
    """SHA-256 (hex) of the space text without comments, its white space runs made one space."""
    text = data.decode("utf-8-sig", errors="surrogateescape")
    words = _COMMENT.sub(" ", text).split()
    return hashlib.sha256(" ".join(words).encode("utf-8", errors="surrogateescape")).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes: how runs recorded before :func:`space_digest` counted a space."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
