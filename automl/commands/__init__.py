"""The subcommands of ``automl`` (:mod:`automl.cli` imports each one only when it runs), and the argument
helpers they share with the CLI."""

from __future__ import annotations

from automl.dsl import ParamError, load_space
from automl.errors import UserError

__all__ = ["parse_set_args", "space_args_for"]


def parse_set_args(items: list[str] | None, flag: str = "--set") -> dict[str, str]:
    """Turn ``["k=v", ...]`` into a dict; a malformed item is a user error naming it."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} {item!r}: expected KEY=VALUE, for example {flag} channels=32")
        out[key.strip()] = value.strip()
    return out


def space_args_for(space: str, arch: str, recorded: dict | None, items: list[str] | None,
                   flag: str = "--arch") -> dict[str, str]:
    """The ``--set`` overrides of ``items``, on top of the ``space_args`` of ``recorded`` (the JSON of the file
    ``arch`` given as ``flag``, ``--arch`` or ``--arch-def``, when it is an export's manifest.json: that network's
    parameters). A manifest value the space rejects, and a ``--set`` that changes a parameter the manifest's
    network was built with, are user errors naming ``flag``."""
    given = parse_set_args(items)
    if recorded is None:
        return given
    other, use = (("a plain ARCH.json with the choices", "export another network") if flag == "--arch" else
                  ("a bare arch_def (the manifest's \"arch_def\" list)", "encode it with other parameters"))
    kept = {str(k): str(v) for k, v in (recorded.get("space_args") or {}).items()}
    merged = {**kept, **given}
    try:  # the manifest's values: a mistake in them is the manifest's, not a --set flag's
        before = load_space(space, kept or None).param_values
    except ParamError as e:
        raise UserError(f"{flag} {arch}: its \"space_args\" {e.name}={kept.get(e.name, e.value)}: {e.problem}; "
                        f"give the manifest.json the export of {space} wrote, or {other}") from None
    if given:
        after = load_space(space, merged).param_values
        for key, value in given.items():
            if before.get(key) != after.get(key):
                was = f"{key}={kept[key]}" if key in kept else f"{key}={before.get(key)} (the space's default)"
                raise UserError(f"--set {key}={value} contradicts {flag} {arch}: its network was exported "
                                f"with {was}; drop --set {key} (the manifest's space_args are used), or give "
                                f"{other} to {use}")
    return merged
