"""The subcommands of ``automl`` (:mod:`automl.cli` imports each one only when it runs), and the argument
helpers they share with the CLI."""

from __future__ import annotations

from automl.dsl import ParamError, load_space
from automl.errors import UserError

__all__ = ["parse_set_args", "recorded_space_args", "space_args_for"]


def parse_set_args(items: list[str] | None, flag: str = "--set") -> dict[str, str]:
    """Turn ``["k=v", ...]`` into a dict; a malformed item is a user error naming it."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} {item!r}: expected KEY=VALUE, for example {flag} channels=32")
        out[key.strip()] = value.strip()
    return out


def recorded_space_args(obj) -> dict | None:
    """``obj`` (an ``--arch`` file's JSON) when it is an ``ARCH.json`` that records the parameters its choices
    were encoded with (its ``"space_args"``, which ``automl space encode`` writes), else None: an ARCH.json
    without them (a hand-written or older one) takes the space's defaults under the ``--set`` values."""
    return obj if isinstance(obj, dict) and "space_args" in obj else None


def space_args_for(space: str, arch: str, recorded: dict | None, items: list[str] | None,
                   flag: str = "--arch", encoded: bool = False) -> dict[str, str]:
    """The ``--set`` overrides of ``items``, on top of the ``space_args`` of ``recorded`` (the JSON of the file
    ``arch`` given as ``flag``, ``--arch`` or ``--arch-def``, when it is an export's manifest.json, or, with
    ``encoded``, an ARCH.json of ``automl space encode`` (:func:`recorded_space_args`): that network's
    parameters). A recorded value the space rejects, and a ``--set`` that changes a parameter the recorded
    network was built with, are user errors naming ``flag``."""
    given = parse_set_args(items)
    if recorded is None:
        return given
    if encoded:
        _check_encoded(recorded.get("space_args"), flag, arch)
        other, use, did = ("an ARCH.json without \"space_args\" (its choices only)", "build them with other "
                           "parameters", "encoded")
        fix, whose = f"give the ARCH.json `automl space encode {space}` wrote", "the ARCH.json's"
    else:
        other, use = (("a plain ARCH.json with the choices", "export another network") if flag == "--arch" else
                      ("a bare arch_def (the manifest's \"arch_def\" list)", "encode it with other parameters"))
        did, fix, whose = "exported", f"give the manifest.json the export of {space} wrote", "the manifest's"
    kept = {str(k): str(v) for k, v in (recorded.get("space_args") or {}).items()}
    merged = {**kept, **given}
    try:  # the recorded values: a mistake in them is the file's, not a --set flag's
        before = load_space(space, kept or None).param_values
    except ParamError as e:
        raise UserError(f"{flag} {arch}: its \"space_args\" {e.name}={kept.get(e.name, e.value)}: {e.problem}; "
                        f"{fix}, or {other}") from None
    if given:
        after = load_space(space, merged).param_values
        for key, value in given.items():
            if before.get(key) != after.get(key):
                was = f"{key}={kept[key]}" if key in kept else f"{key}={before.get(key)} (the space's default)"
                raise UserError(f"--set {key}={value} contradicts {flag} {arch}: its network was {did} "
                                f"with {was}; drop --set {key} ({whose} space_args are used), or give "
                                f"{other} to {use}")
    return merged


def _check_encoded(space_args, flag: str, arch: str) -> None:
    """An ARCH.json's ``"space_args"`` is null or an object of ``--set`` values (a hand-edited one may not be)."""
    if space_args is None or (isinstance(space_args, dict) and all(
            isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in space_args.values())):
        return
    shown = repr(space_args)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise UserError(f"{flag} {arch}: \"space_args\" must be an object of the space's --set values "
                    f"({{\"classes\": \"10\"}}), got {shown}; give the ARCH.json `automl space encode` wrote, or "
                    f"drop \"space_args\" (the space's defaults and the --set values apply)")
