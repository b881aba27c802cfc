"""Read an architecture given as choice names (``ARCH.json``) and validate it against a space."""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from automl._io import (DuplicateKey, UnreadableText, duplicate_key_line, pasted_path, read_utf8_text,
                        unique_keys)
from automl.errors import UserError, shortened

__all__ = ["read_arch_file", "read_arch_json", "is_manifest", "choices_from_json", "as_arch"]


def _decisions(compiled) -> list[tuple[str, tuple[str, ...]]]:
    return [(d.name, tuple(d.choices)) for d in compiled.decisions]


def _close(name: str, options: Sequence[str]) -> str:
    near = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def choices_from_json(obj: Any, compiled, source: str = "arch") -> list[str]:
    """Choice names in declaration order from ``{"choices": [...]}`` or ``{"choices": {decision: choice}}``.

    Any wrong count, unknown decision or unknown choice is a :class:`UserError` naming it.
    """
    decisions = _decisions(compiled)
    if not isinstance(obj, dict) or "choices" not in obj:
        example = decisions[0][1][0] if decisions else "..."
        raise UserError(f"{source}: expected an object with a \"choices\" key, "
                        f"e.g. {{\"choices\": [\"{example}\", ...]}}")
    obj = obj["choices"]
    if isinstance(obj, dict):
        unknown = [k for k in obj if k not in dict(decisions)]
        if unknown:
            hint = _close(str(unknown[0]), [d for d, _ in decisions])
            raise UserError(f"{source}: unknown decision {unknown[0]!r}{hint}; "
                            f"the space has {len(decisions)} decisions: {', '.join(d for d, _ in decisions[:6])}"
                            + (", ..." if len(decisions) > 6 else ""))
        missing = [d for d, _ in decisions if d not in obj]
        if missing:
            raise UserError(f"{source}: no choice given for decision {missing[0]!r}"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        names = [obj[d] for d, _ in decisions]
        labels = [f"decision {d!r}" for d, _ in decisions]
    elif isinstance(obj, list):
        if len(obj) != len(decisions):
            raise UserError(f"{source}: {len(obj)} choices given, the space has {len(decisions)} decisions"
                            + _foreign(obj, decisions, compiled, source, 1))
        names = list(obj)
        labels = [f"choice #{i + 1} (decision {d!r})" for i, (d, _) in enumerate(decisions)]
    else:
        raise UserError(f"{source}: \"choices\" must be a list of choice names or an object "
                        f"{{decision: choice}}, not {'null' if obj is None else type(obj).__name__}")
    for name, label, (_, options) in zip(names, labels, decisions):
        if not isinstance(name, str):
            raise UserError(f"{source}: {label}: expected a choice name (a string), got "
                            f"{shortened(_json_shown(name))}{_by_index(name, options)}")
        if name not in options:
            raise UserError(f"{source}: {label}: unknown choice {name!r}{_close(name, options)}; "
                            f"choices: {', '.join(options)}" + _foreign(names, decisions, compiled, source, 2))
    return names


def _json_shown(value) -> str:
    """A value read from a JSON file as JSON writes it (null, true, [1, null]), not as Python does (None, True)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):  # not from a JSON file (a caller's Python object)
        return repr(value)


def _by_index(value, options: tuple[str, ...]) -> str:
    """What to write instead of ``value``, not a choice name: the name of the choice a whole number indexes (an
    architecture's encoding, ``arch`` in a manifest, is no ``"choices"``), else the decision's choices."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(options):
        return (f"; choices are given by name, not by index: index {value} is {options[value]!r} (choices: "
                f"{', '.join(options)})")
    return f"; its choices: {', '.join(options)}"


def _foreign(names: list, decisions, compiled, source: str, fewest: int) -> str:
    """A hint, after a message on ``source``'s list of choice ``names``, when they look like the architecture of
    another space: at least ``fewest`` of them, and more than half, are choices of no decision of this space. With
    ``fewest`` 1 (a list of the wrong length) a hint on what fits when they do not."""
    known = {c for _, options in decisions for c in options}
    foreign = list(dict.fromkeys(n for n in names if isinstance(n, str) and n not in known))
    count = sum(isinstance(n, str) and n not in known for n in names)
    name, file = getattr(compiled, "name", None), getattr(compiled, "filename", None)
    space = f"space {name}" if name else "this space"
    pasted = isinstance(file, str) and file and not (file.startswith("<") and file.endswith(">"))  # not <space>
    show = f" (`automl space show {pasted_path(file)}` lists them)" if pasted else ""
    if count >= fewest and 2 * count > len(names):
        shown = ", ".join(map(repr, foreign[:3])) + (", ..." if len(foreign) > 3 else "")
        return (f"; {count} of its {len(names)} names ({shown}) are choices of no decision of {space}: {source} "
                f"looks like an architecture of another space; give the space file it was made for, or one choice "
                f"per decision of {space}{show}")
    if fewest > 1:
        return ""
    return (f"; give one choice per decision of {space}, in the order of its decisions{show}: an architecture of "
            f"another space, or of this one with other --set values, does not fit")


def read_arch_json(path: str | os.PathLike, flag: str = "--arch") -> Any:
    """The parsed JSON of ``ARCH.json`` (or an export's ``manifest.json``, an arch_def); a missing, unreadable
    or malformed file is a :class:`UserError` naming it and ``flag``, the option that gave it; so is a folder (an
    export's or a run's), with the manifest.json in it to give instead, and a key given twice in one object, of
    which JSON would keep the last without a word (every file a user gives). A leading
    byte order mark (a Windows editor's "UTF-8 with BOM") is skipped, as :func:`~automl._io.read_utf8_text` does
    for recipes and space files."""
    if Path(path).is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file: {_arch_in(Path(path), flag)}")
    text = _text(path, flag)
    try:
        return json.loads(text, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as e:
        raise UserError(f"{flag} {path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}; correct the file there, "
                        f"or give {_written(flag)}") from None
    except DuplicateKey as e:
        raise UserError(_duplicate_message(flag, path, text, e.key)) from None
    except ValueError as e:  # an integer of over 4,300 digits (Python's advice after ";" is not the user's to take)
        raise UserError(f"{flag} {path}: not an architecture file ({str(e).split(';')[0]}); give "
                        f"{_written(flag)}") from None


def _text(path: str | os.PathLike, flag: str) -> str:
    """The text of the file ``path`` given as ``flag`` (:func:`~automl._io.read_utf8_text`), or a
    :class:`UserError` saying why it cannot be read."""
    try:
        return read_utf8_text(path, "architecture file or manifest")
    except UnreadableText as e:
        if e.reason == "missing":
            raise UserError(f"{flag} {path}: no such file") from None
        if e.reason == "encoding":
            raise UserError(f"{flag} {path}: cannot read it: byte {e.detail} at line {e.line}, column {e.column} is "
                            f"not UTF-8; save the file as UTF-8") from None
        raise UserError(f"{flag} {path}: cannot read it ({e.detail or e.reason})") from None


def _duplicate_message(flag: str, path, text: str, key: str) -> str:
    """The message for ``key`` given twice in one object of the file ``path``: its line when the key is written
    just twice in the file (else which of its objects it is in is not told by the text alone)."""
    number = duplicate_key_line(text, key)
    line = "" if number is None else f":{number}"
    return (f"{flag} {path}{line}: key {shortened(key, json.dumps)} is given twice in one JSON object, and only "
            f"one of them can be meant (a JSON reader keeps the last); remove the other")


def _arch_in(folder: Path, flag: str) -> str:
    """What to give ``flag`` instead of ``folder``: the manifest.json of the export it is (or of a run's first
    export), else what the file holds."""
    found = [folder / "manifest.json"] if (folder / "manifest.json").is_file() else \
        sorted(folder.glob("export/*/manifest.json"))
    if found:
        return f"e.g. {found[0]} (an export's manifest.json describes its network)"
    return _written(flag)


def _written(flag: str) -> str:
    """What a file given as ``flag`` holds: what to give instead of one that is not it."""
    if flag == "--arch-def":
        return "a JSON timm arch_def ([[\"ir_r1_k3_s1_e1_c16\"], ...]) or an export's manifest.json"
    return "an ARCH.json ({\"choices\": [...]}, as `automl space encode` writes one) or an export's manifest.json"


def is_manifest(obj: Any) -> bool:
    """Whether an ``--arch`` file's JSON is an export's ``manifest.json`` (not a bare ``ARCH.json``)."""
    return isinstance(obj, dict) and "format_version" in obj and "choices" in obj


def read_arch_file(path: str | os.PathLike, compiled) -> torch.Tensor:
    """Read ``ARCH.json`` and encode it for ``compiled``: a LongTensor (D,)."""
    return compiled.encode(choices_from_json(read_arch_json(path), compiled, source=str(path)))


def as_arch(arch: Any, compiled) -> torch.Tensor:
    """Accept an encoded arch (tensor / list of ints), choice names (list) or ``{decision: choice}``."""
    if isinstance(arch, torch.Tensor):
        arch = arch.detach().cpu().long().reshape(-1)
        compiled.check_arch(arch)
        return arch
    if isinstance(arch, (list, tuple)) and arch and all(isinstance(a, int) and not isinstance(a, bool) for a in arch):
        return as_arch(torch.tensor(list(arch), dtype=torch.long), compiled)
    return compiled.encode(choices_from_json(arch if isinstance(arch, dict) and "choices" in arch
                                             else {"choices": arch}, compiled))
