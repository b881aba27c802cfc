"""The architecture files of ``automl export --arch``, ``automl space cost --arch`` and ``automl space encode
--arch-def``: reading them, the ``--set`` values they bring, their choices, and the warning about the ``"params"``
they record, and the ``--set`` values a recorded network was built with. A module of its own, since it reads
manifests, builds networks (automl.export, which loads torch) and loads spaces (the ``.space`` parser), and
``automl.commands`` is imported by every CLI call."""

from __future__ import annotations

import json
import math
import os

import torch

from automl._io import pasted_path, pasted_space
from automl.commands import parse_set_args
from automl.dsl import ParamError, load_space
from automl.errors import UserError, json_text, shortened
from automl.export import choices_from_json, count_params, is_manifest, read_arch_json
from automl.export.manifest import check_arch_space, check_recorded, is_sizes, recorded_space

__all__ = ["arch_space_args", "read_arch", "arch_choices", "same_network", "params_warning", "export_note",
           "nested_too_deeply", "recorded_space_args", "space_args_for", "other_space_warning"]


def arch_space_args(space: str, path: str, arch_json, items: list[str] | None, flag: str = "--arch") -> dict[str, str]:
    """The ``--set`` values ``items`` on top of those the file ``path`` (given as ``flag``, its JSON ``arch_json``)
    records: an export's manifest (checked first: :func:`~automl.export.manifest.check_recorded`), or with
    ``--arch`` an ARCH.json of ``automl space encode`` (:func:`recorded_space_args`); a ``--set``
    that changes a recorded value is refused (:func:`space_args_for`)."""
    if is_manifest(arch_json):  # an export's manifest: its network's space; a --set may not change it
        check_recorded(arch_json, f"{flag} {path}")
        return space_args_for(space, path, arch_json, items, flag)
    encoded = recorded_space_args(arch_json) if flag == "--arch" else None  # encode's ARCH.json: its parameters
    return space_args_for(space, path, encoded, items, flag, encoded=True)


def nested_too_deeply(flag: str, path, what: str) -> UserError:
    """The user error for a JSON file whose arrays or objects nest deeper than Python's parser recurses."""
    return UserError(f"{flag} {path}: its JSON nests too deeply (thousands of levels) to be {what}; give the file "
                     f"automl wrote")


def read_arch(path: str, flag: str = "--arch"):
    """The JSON of the architecture file ``path`` given as ``flag`` (:func:`~automl.export.read_arch_json`: a key
    given twice in one object is refused, as every command reads a user's file); one nested too deeply for the
    JSON parser is a user error too."""
    try:
        return read_arch_json(path, flag)
    except RecursionError:
        raise nested_too_deeply(flag, path, "an architecture file") from None


def arch_choices(obj, compiled, path: str, flag: str = "--arch") -> list[str]:
    """The choice names of the architecture file ``path`` (its JSON ``obj``) in ``compiled``
    (:func:`~automl.export.choices_from_json`). A whole results.json (or its list of architectures) asks for
    one of them; a file that records another space, and does not fit ``compiled``, says first which space it
    was made for (:func:`~automl.export.manifest.check_arch_space`); an export's manifest records the network
    ``compiled`` builds of its choices (:func:`same_network`)."""
    runs = obj.get("architectures") if isinstance(obj, dict) and "choices" not in obj else obj
    if isinstance(runs, list) and runs and all(isinstance(a, dict) and "choices" in a for a in runs):
        whole = "a run's results.json of" if runs is not obj else "a list of"
        pasted = pasted_path(path)  # a command pasted from any folder names the same file
        jq = f"jq '.architectures[0]' {pasted}" if runs is not obj else f"jq '.[0]' {pasted}"
        raise UserError(f"{flag} {path} is {whole} {len(runs)} architectures (a results.json's \"architectures\"); "
                        f"give one of them: save one in a file of its own ({jq} > arch.json), or give the "
                        f"manifest.json of its export")
    arch_def = obj.get("arch_def") if isinstance(obj, dict) and "choices" not in obj else obj
    if isinstance(arch_def, list) and arch_def and all(isinstance(st, list) and st and all(
            isinstance(b, str) for b in st) for st in arch_def):
        raise UserError(f"{flag} {path} is a timm arch_def (stages of block strings), not the choices of an "
                        f"architecture: encode it first, `automl space encode "
                        f"{pasted_space(compiled.filename)} --arch-def {pasted_path(path)} "
                        f"--out arch.json`, and give {flag} arch.json")
    check_arch_space(obj, compiled, path, flag)  # a file of another space: said before what does not fit
    names = choices_from_json(obj, compiled, source=f"{flag} {path}")
    if is_manifest(obj):
        same_network(obj, compiled, names, f"{flag} {path}")
    return names


def same_network(manifest: dict, compiled, names: list[str], source: str,
                 other: str = "a plain ARCH.json ({\"choices\": [...]}) for other choices") -> None:
    """An export's manifest (given as ``source``) describes one network: what it records of it besides its
    ``"choices"`` (``"arch"``, their indices; ``"input_shape"``; ``"num_classes"``), where present, is what
    ``compiled`` (with the manifest's space_args) builds of those choices. A manifest edited by hand (other
    choices, another input size) or a space file changed since the export is refused by field: the export
    would write another network than the one the manifest says it is. ``other``: the file to give instead for
    another network."""
    arch = compiled.encode(names)
    built = {"arch": [int(k) for k in arch.tolist()],
             "input_shape": [int(v) for v in compiled.arch_input_shape(arch)],
             "num_classes": int(compiled.num_classes)}
    what = {"arch": "the indices of its \"choices\" in the space's decisions",
            "input_shape": "the input size of its network", "num_classes": "the classes of its network"}
    for field, want in built.items():
        if field == "input_shape" and not is_sizes(manifest.get(field)):
            continue  # damaged, not another network's: the export writes it again (measure_export says to)
        if field in manifest and manifest[field] is not None and manifest[field] != want:
            given = repr(manifest[field]) if len(repr(manifest[field])) <= 60 else repr(manifest[field])[:57] + "..."
            raise UserError(f"{source}: \"{field}\" is {given}, but its \"choices\" in space {compiled.name} "
                            f"(with its space_args) give {want} ({what[field]}): was the manifest edited, or the "
                            f"space file changed since the export? give the manifest.json the export wrote with its "
                            f"space file (the export folder's space.space), or {other}")


def _number(v) -> float | None:
    """A JSON number as a float; None for anything else, and for one beyond a float's range or not finite."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return None
    try:
        v = float(v)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return v if math.isfinite(v) else None


def _recorded_se(obj: dict, compiled, flag: str, path: str) -> float | None:
    """The squeeze-and-excitation ratio an architecture file records (``"se"``: the ``retrain.se`` the run
    retrained its network with, which its ``params`` count), None when it records none (or null). Not a ratio
    in [0, 1), or one above 0 for a cell space (no MBConv blocks), is the file's mistake."""
    if obj.get("se") is None:
        return None
    se = _number(obj["se"])
    shown = json_text(obj["se"])
    if se is None or not 0 <= se < 1:
        raise UserError(f"{flag} {path}: \"se\" must be the squeeze-and-excitation ratio its network was "
                        f"retrained with (the run's retrain.se), a number in [0, 1) such as 0.25, got {shown}; "
                        f"fix it, or drop \"se\"")
    if se and compiled.kind != "chain":
        raise UserError(f"{flag} {path}: \"se\" {se:g}: squeeze-and-excitation applies to the MBConv blocks of "
                        f"chain spaces, and {compiled.name} is a {compiled.kind} space; drop \"se\" (or set it "
                        f"to 0), or give the space the architecture was searched in")
    return se


def _check_recorded_numbers(obj: dict, flag: str, path: str) -> None:
    """An architecture file's ``"params"`` (its network's weights: the cost table's total ``automl space encode``
    writes, or a results.json entry's count) and an entry's ``"cost"`` (the table's figure its search used), where
    recorded (not null), are numbers of at least 0; one too large for a float is one all the same."""
    what = {"params": "the number of weights of its network (as `automl space encode` writes it), such as 4421616",
            "cost": "the cost its search gave it (a results.json entry's), such as 4421616"}
    for field in ("params", "cost") if "test_accuracy" in obj else ("params",):
        value = obj.get(field)
        if value is None:
            continue
        whole = isinstance(value, int) and not isinstance(value, bool)  # math.isnan would overflow on 10**400
        number = whole or (isinstance(value, float) and not math.isnan(value))
        if not number or value < 0:
            raise UserError(f"{flag} {path}: \"{field}\" must be {what[field]}, a number of at least 0, got "
                            f"{json_text(value)}; fix it, or drop \"{field}\"")


def _same(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=0.5)


def _network_params(compiled, arch, se: float) -> int:
    """The weights of the network ``compiled.build_standalone(arch, se)``, counted on the meta device."""
    with torch.device("meta"):  # the count only: no memory for the weights
        return count_params(compiled.build_standalone(arch, se=se))


def export_note(obj, compiled, arch, path: str, se: float) -> str | None:
    """A one-line note when ``automl export --arch`` ``path`` (its JSON ``obj``) is a run's results.json entry
    whose ``"params"`` count another network than the one exported (``arch`` in ``compiled`` with ``--se``
    ``se``): the run's retrain.se or retrain.space_args retrained another one. None otherwise (and for a file
    :func:`params_warning` warns about)."""
    if not isinstance(obj, dict) or is_manifest(obj) or "test_accuracy" not in obj:
        return None
    want = _number(obj.get("params"))
    counted = _network_params(compiled, arch, se) if want is not None else None
    if counted is None or _same(want, counted):
        return None
    recorded = _number(obj.get("se"))
    fix = (f"give --se {recorded:g} (its \"se\")" if recorded is not None and recorded != se else
           "give the run's retrain.se as --se and its retrain.space_args as --set KEY=VALUE (the run folder's "
           "recipe.resolved.yaml has them)")
    return (f"note: --arch {path} records \"params\" {want:,.0f}, the run's retrained network; this export of its "
            f"choices has {counted:,.0f}: the run's retrain.se (squeeze-and-excitation, --se) or "
            f"retrain.space_args (--set) retrained another network; for that one, {fix}")


def params_warning(obj, compiled, arch, flag: str, path: str, overrides: dict[str, str],
                   se: float = 0.0) -> str | None:
    """A one-line warning when the architecture file ``obj`` (given as ``flag`` ``path``; not an export's
    manifest, which ``--set`` cannot contradict) records ``"params"`` that no network of its choices in
    ``compiled`` (built with ``overrides``) has: the space was compiled with other parameters than the choices
    were encoded or searched with. None when they agree, or the file records none.

    They agree when ``"params"`` is the cost table's total (what ``automl space encode`` writes), or the count
    of the network ``compiled.build_standalone(arch, se)`` (a run's results.json entry: the retrained network,
    whose squeeze-and-excitation layers, ``retrain.se``, the table does not price, and which a cell space's
    table approximates), ``se`` being the file's ``"se"`` when it records one, else the caller's (export's
    ``--se``); or, for a results.json entry, when its ``"cost"`` (the table's figure the search used) is the
    table's total of a metric (the entry's ``params`` then count what the run's retrain.se or
    retrain.space_args added). A warning, not a refusal: the choices are valid."""
    if not isinstance(obj, dict) or is_manifest(obj):
        return None
    recorded = _recorded_se(obj, compiled, flag, path)  # a malformed "se" or "params" is refused, used or not
    _check_recorded_numbers(obj, flag, path)
    other = other_space_warning(obj, compiled, flag, path)
    if other:  # its "params" are another space's network's: that is the warning
        return other
    if obj.get("params") is None:
        return None
    se = se if recorded is None else recorded
    want, table = _number(obj["params"]), compiled.cost_table.total(arch, "params")
    if want is None or _same(want, table):
        return None
    counted = _network_params(compiled, arch, se)
    if _same(want, counted):
        return None
    entry = "test_accuracy" in obj  # a run's results.json entry (its params count the retrained network)
    cost = _number(obj.get("cost"))
    if entry and any(_same(cost, compiled.cost_table.total(arch, m)) for m in compiled.cost_table.metrics):
        return None
    sets = " ".join(f"--set {k}={v}" for k, v in overrides.items()) or "no --set values"
    have = f"{counted:,.0f} (with squeeze-and-excitation, se {se:g})" if se else f"{table:,.0f}"
    if entry:
        why = ("a results.json entry counts the run's network: was the run's space compiled with other --set "
               "values? give its space_args (the run folder's recipe.resolved.yaml) as --set KEY=VALUE"
               + ("; for a run with retrain.se, add its \"se\" to the file" if recorded is None and not se
                  and compiled.kind == "chain" else ""))
    elif "space_args" in obj:
        why = "was the space file changed since it was encoded? encode it again"
    else:
        why = "was it encoded with other --set values? give them (--set KEY=VALUE), or encode it again with these"
    return (f"warning: {flag} {path} records \"params\" {want:,.0f}, space {compiled.name} with {sets} gives its "
            f"choices {have}: {why}")


def other_space_warning(obj, compiled, flag: str, path: str) -> str | None:
    """A one-line warning when the ARCH.json ``obj`` (given as ``flag`` ``path``) records as its ``"space"`` another
    space file that exists here and is not ``compiled``'s file (another file, not a copy of it:
    :func:`~automl.export.manifest.recorded_space`), yet its choices fit ``compiled`` (else
    :func:`~automl.export.manifest.check_arch_space` refused it): two spaces may share decision and choice names,
    and ``compiled`` builds its own network of them, not the one encoded. None otherwise: an export's manifest, no
    ``"space"``, this file by any path or a copy of it, or a recorded file not found here (another machine's, a
    space file renamed: the docs count one of the same name as this space)."""
    if not isinstance(obj, dict) or is_manifest(obj) or not isinstance(obj.get("space"), str):
        return None
    filename, recorded = getattr(compiled, "filename", None), obj["space"]
    try:
        found = os.path.isfile(recorded)
    except (OSError, ValueError):  # a path the file system refuses (too long, a NUL)
        found = False
    if not found or recorded_space(obj, compiled.name, filename, path) is None:
        return None
    return (f"warning: {flag} {path} was encoded for the space file {recorded} (its \"space\"), not {filename}, "
            f"which is another space file; its choices happen to fit space {compiled.name} too, which builds its "
            f"own network of them, not the one encoded: give {recorded}, or encode the architecture with {filename}")


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
    network was built with, are user errors naming ``flag`` (for a file of another space, :func:`_made_for`, that
    is said first: its recorded values and defaults are not this space's)."""
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
    # as the file writes them (JSON's true, not Python's True), which load_space reads as a --set value's text
    kept = {str(k): v if isinstance(v, str) else json.dumps(v, default=repr)
            for k, v in (recorded.get("space_args") or {}).items()}
    merged = {**kept, **given}
    try:  # the recorded values: a mistake in them is the file's, not a --set flag's
        before = load_space(space, kept or None).param_values
    except ParamError as e:
        problem = f"its \"space_args\" {e.name}={kept.get(e.name, e.value)}: {e.problem}"
        made_for = _made_for(recorded, space, arch)  # another space's parameters: that is said first
        raise UserError(f"{flag} {arch} {made_for}; {problem}" if made_for else
                        f"{flag} {arch}: {problem}; {fix}, or {other}") from None
    if given:
        after = load_space(space, merged).param_values
        for key, value in given.items():
            if before.get(key) != after.get(key):
                made_for = _made_for(recorded, space, arch)  # another space's network: its defaults are not these
                if made_for:
                    raise UserError(f"{flag} {arch} {made_for}; --set {key}={value} is checked against that space's "
                                    f"parameters")
                was = f"{key}={kept[key]}" if key in kept else f"{key}={before.get(key)} (the space's default)"
                raise UserError(f"--set {key}={value} contradicts {flag} {arch}: its network was {did} "
                                f"with {was}; drop --set {key} ({whose} space_args are used), or give "
                                f"{other} to {use}")
    return merged


def _made_for(recorded: dict, space: str, arch: str) -> str | None:
    """What the architecture file ``arch`` (its JSON ``recorded``) says of the space it was made for when that is
    another than the space file ``space`` (:func:`~automl.export.manifest.recorded_space`), None otherwise (and
    when ``space`` does not load with its defaults: its own error is said where it is loaded)."""
    try:
        name = load_space(space).name
    except UserError:
        return None
    return recorded_space(recorded, name, space, arch)


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
