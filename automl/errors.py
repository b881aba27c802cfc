"""The project's error types.

Every mistake a user can make is raised as a :class:`UserError` (exit code 2, one clear message, no
traceback). Anything else escaping the CLI is an internal error (exit code 1).
"""

from __future__ import annotations

import json
import sys

__all__ = ["UserError", "SpaceError", "RecipeError", "DataError", "Stopped", "format_source_error", "shortened",
           "listed", "MAX_LISTED", "say", "json_text", "value_text", "interrupted_before_the_run"]


class UserError(Exception):
    """A mistake in the user's input. The message says what is wrong and how to fix it."""

    exit_code = 2
    located = False  # True when the message already starts with FILE:LINE:COL or FILE: KEY
    printed = False  # True once a rank printed it (torchrun: the others stop on it silently)

    def text(self) -> str:
        """The one message the CLI prints: located messages as they are, others after ``error:``."""
        return str(self) if self.located else f"error: {self}"


class Stopped(Exception):
    """The run stopped on SIGTERM, SIGINT, SIGHUP, SIGUSR1 or SIGUSR2 after writing a checkpoint; exit code
    128 + the signal (143, 130, 129, 138, 140)."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum
        self.exit_code = 128 + signum


def interrupted_before_the_run(out: str | None) -> str:
    """What a Ctrl-C before ``automl run``'s run began says, as automl loads (automl/cli.py) or as the recipe loads
    and the processes meet (automl/commands/run.py): nothing was written (in ``--out``, where given)."""
    return "interrupted before the run began: nothing was written" + (f" in {out}" if out else "")


def say(text: str) -> None:
    """``text`` as a line on standard error, now; nothing where it cannot be written (a terminal that hung up)."""
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass


def shortened(text: str, show=str) -> str:
    """A long value or path for a message: as ``show`` writes it when it has at most 100 characters, else its first
    40 and last 20 characters (each as ``show`` writes it) and its length (a name too long is often the mistake;
    a value of 5,000 characters is no name the reader can check)."""
    return show(text) if len(text) <= 100 else f"{show(text[:40])}...{show(text[-20:])} ({len(text):,} characters)"


def json_text(value) -> str:
    """A value read from a JSON (or YAML) file as a message shows it: as JSON writes it (``true``, ``null``,
    ``"224"``, not Python's ``True``, ``None``, ``'224'``), :func:`shortened` when long."""
    try:
        return shortened(json.dumps(value, default=repr, ensure_ascii=False))
    except ValueError:  # an integer beyond the digits str() converts
        return f"a {type(value).__name__} holding a number too long to show"


def value_text(value) -> str:
    """A ``space_args`` value as a message shows it: text as written (export writes them as text: ``size=abc``),
    anything else as JSON writes it (:func:`json_text`: ``true``, not ``True``)."""
    return value if isinstance(value, str) else json_text(value)


# the most names a message lists (a space's parameters, its choice sets): more are counted, not listed
MAX_LISTED = 10


def listed(names) -> str:
    """``a, b, c``; of more than MAX_LISTED names the first MAX_LISTED and ``and N more`` (a space may have
    hundreds of parameters or choice sets), each name as :func:`shortened` writes it."""
    names = list(names)
    shown = ", ".join(shortened(n) for n in names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED:,} more" if len(names) > MAX_LISTED else "")


def format_source_error(
    filename: str, line: int | None, column: int | None, message: str, source_line: str | None = None
) -> str:
    """``FILE:LINE:COL: message`` followed by the offending line and a caret under the column."""
    where = str(filename)
    if line is not None:
        where += f":{line}"
        if column is not None:
            where += f":{column}"
    text = f"{where}: {message}"
    if source_line is not None and line is not None:
        text += _excerpt(source_line, column)
    return text


# the most of a line an error shows: a longer one (a whole space on one line) is cut around the column, with "…"
EXCERPT_WIDTH = 100


def _excerpt(source_line: str, column: int | None) -> str:
    """The offending line on its own line, indented, and a caret under ``column`` (1-based) when given. A tab
    shows as one space, so that the caret stays under the character it points at. A line longer than
    :data:`EXCERPT_WIDTH` shows that many of its characters around the column, "…" where it is cut."""
    line, at = source_line.rstrip("\n").expandtabs(1), max((column or 1) - 1, 0)
    if len(line) > EXCERPT_WIDTH:
        start = min(max(at - EXCERPT_WIDTH // 2, 0), len(line) - EXCERPT_WIDTH)
        head, tail = ("…" if start else ""), ("…" if start + EXCERPT_WIDTH < len(line) else "")
        line, at = head + line[start:start + EXCERPT_WIDTH] + tail, at - start + len(head)
    text = "\n    " + line
    if column is not None:
        text += "\n    " + " " * at + "^"
    return text


class SpaceError(UserError):
    """An error in a ``.space`` file, with its position. ``given``: the parameters given from outside the file
    (``--set``, a recipe's ``space_args``) whose values the message is about, which a caller that took them from a
    recipe names as the recipe's keys; empty when the file's own values are wrong."""

    located = True

    def __init__(self, message: str, filename: str = "<space>", line: int | None = None,
                 column: int | None = None, source_line: str | None = None, given: tuple[str, ...] = ()):
        self.message, self.filename, self.line, self.column = message, filename, line, column
        self.source_line, self.given = source_line, tuple(given)
        super().__init__(format_source_error(filename, line, column, message, source_line))


class RecipeError(UserError):
    """An error in a recipe: names the file, the key path and, where known, the line."""

    located = True

    def __init__(self, message: str, filename: str | None = None, key: str | None = None,
                 line: int | None = None, column: int | None = None, source_line: str | None = None):
        """``source_line`` (with ``line``): the file's line, shown under the message with a caret under
        ``column`` (1-based), as a YAML syntax error shows where it is."""
        self.message, self.filename, self.key, self.line = message, filename, key, line
        self.column, self.source_line = column, source_line
        where = ""
        if filename:
            where = str(filename) + (f":{line}" if line else "") + ": "
        keytxt = f"{key}: " if key else ""
        text = f"{where}{keytxt}{message}"
        if source_line is not None and line:
            text += _excerpt(source_line, column)
        super().__init__(text)


class DataError(UserError):
    """Missing or unreadable data (wrong root, missing files). ``recipe_key``: the recipe key whose value is the
    fix (``("data", "root")`` for data not found there), where the caller names it with the recipe's line; None
    for what is wrong inside the data (an unreadable image, a single class)."""

    def __init__(self, message: str = "", recipe_key: tuple[str, ...] | None = None):
        super().__init__(message)
        self.recipe_key = recipe_key
