"""The subcommands of ``automl`` (:mod:`automl.cli` imports each one only when it runs), and the argument
helper they share with the CLI. Every CLI call imports this package, ``automl --help`` too: it imports nothing
heavy (neither torch nor the ``.space`` parser; the helpers that load a space live in
:mod:`automl.commands._arch_args`)."""

from __future__ import annotations

from automl.errors import UserError

__all__ = ["parse_set_args"]


def parse_set_args(items: list[str] | None, flag: str = "--set") -> dict[str, str]:
    """Turn ``["k=v", ...]`` into a dict; a malformed item is a user error naming it."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} {item!r}: expected KEY=VALUE, for example {flag} channels=32")
        out[key.strip()] = value.strip()
    return out
