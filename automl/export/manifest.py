"""The export folder's ``manifest.json``, the space an architecture file (a manifest, an encoded ARCH.json)
was made for (:func:`check_arch_space`), and how a cost is written as JSON (:func:`json_costs`: a count as an int,
a latency as a float), in a manifest and by ``automl space cost`` alike.

Every file of an export is written to a temporary name in the same folder and moved into place with
``os.replace`` (``automl._io``), so a reader (or a crashed run) never sees half a file.
"""

from __future__ import annotations

import filecmp
import json
import math
import os
import re
from pathlib import Path, PureWindowsPath
from typing import Any

from timm.data.transforms import str_to_interp_mode
from timm.models._efficientnet_builder import decode_arch_def

from automl._io import atomic_write_json, pasted_path
from automl.errors import UserError
from automl.export._arch import choices_from_json, is_manifest
from automl.export.timm_spec import timm_kwargs_problem
from automl.recipe import TIME_METRICS
from automl.train.data import DATASETS

__all__ = ["FORMAT_VERSION", "MANIFEST_NAME", "INT8_NAME", "write_manifest", "read_manifest", "check_recorded",
           "check_channels", "is_sizes", "finite_number", "plain_name", "export_again", "manifest_error",
           "error_entry", "check_arch_space", "recorded_space", "COUNT_METRICS", "whole_metric", "json_cost",
           "json_costs", "check_classes", "class_names", "CIFAR10_CLASSES"]

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
INT8_NAME = "model.int8.onnx"  # the int8 model measure_export writes (its manifest entry names it)
COUNT_METRICS = ("params", "macs")  # the metrics the compiler counts for every space: whole numbers
# CIFAR-10's class names in label order (its batches.meta's label_names, torchvision's CIFAR10.classes)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def class_names(data) -> list[str] | None:
    """The names of the classes of ``data`` (a :class:`~automl.train.data.Data`) in output-index order, as a
    manifest's ``classes`` records them: digits' ``"0"``..``"9"``, CIFAR-10's :data:`CIFAR10_CLASSES`, an image
    folder's class folders (sorted as torchvision lists them, from the training set's fingerprint, which holds
    them); None for data whose classes have no names (synthetic), or no class count, or names of another count."""
    dataset, count = getattr(data, "dataset", None), getattr(data, "num_classes", None)
    if not isinstance(count, int) or isinstance(count, bool):
        return None
    if dataset == "digits":
        names = [str(i) for i in range(int(count))]
    elif dataset == "cifar10":
        names = list(CIFAR10_CLASSES)
    elif dataset == "imagefolder":
        names = ((getattr(data, "fingerprint", None) or {}).get("train") or {}).get("classes")
    else:
        return None
    if not isinstance(names, list) or len(names) != count:
        return None
    return [str(v) for v in names]


def whole_metric(table, metric: str) -> bool:
    """Whether ``metric`` of the cost table ``table`` counts things: parameters and MACs (:data:`COUNT_METRICS`),
    or a metric of the table every cost of which (per choice, fixed, and per combination of elastic widths) is a
    whole number (a ``metric`` of the space file counting layers). A time (latency) is a real number, whole or
    not, and so is a metric the table does not hold (a cost recorded from another table)."""
    if metric in COUNT_METRICS:
        return True
    if metric in TIME_METRICS or metric not in table.metrics:
        return False
    context = table.context(metric)
    tables = [table.costs(metric)] if context is None else list(context)
    fixed = [table.fixed[metric]] if context is None else []
    return all(bool((t == t.round()).all()) for t in tables) and all(float(v).is_integer() for v in fixed)


def json_cost(value: float, whole: bool) -> float | int:
    """A cost as JSON writes it (a manifest's ``cost`` and ``search_cost``, ``automl space cost`` and ``show``):
    one of a metric that counts (``whole``: :func:`whole_metric`) that is a whole number as an int (``5483032``,
    not ``5483032.0``), anything else as the float."""
    value = float(value)
    return int(value) if whole and math.isfinite(value) and value.is_integer() else value


def json_costs(table, costs: dict) -> dict[str, float | int]:
    """``costs`` (``{metric: value}``) as JSON writes them (:func:`json_cost`), each metric's rule the cost table
    ``table``'s (:func:`whole_metric`)."""
    return {str(m): json_cost(v, whole_metric(table, str(m))) for m, v in costs.items()}


def write_manifest(out_dir: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    path = Path(out_dir) / MANIFEST_NAME
    atomic_write_json(path, manifest)  # strict JSON: a non-finite number is null
    return path


def read_manifest(out_dir: str | os.PathLike, require: tuple[str, ...] = ()) -> dict[str, Any]:
    """The manifest of an export folder; a missing or unreadable one is a :class:`UserError`, and so is a field
    that :func:`~automl.export.load_model` or :func:`~automl.export.quantize.measure_export` reads when it is
    not what an export writes there (a hand-edited manifest), and a field of ``require`` that is absent or null
    (fields an older automl did not write may be absent)."""
    path = Path(out_dir) / MANIFEST_NAME
    if not os.path.isfile(path):
        raise UserError(f"{path}: no manifest here; is {out_dir} a folder written by `automl export`?")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError: bad JSON, bad UTF-8, an integer of over 4,300 digits
        raise UserError(f"{path}: not a readable manifest ({e})") from None
    except RecursionError:
        raise UserError(f"{path}: not a readable manifest (its JSON nests too deeply)") from None
    if not isinstance(manifest, dict) or "choices" not in manifest:
        raise UserError(f"{path}: not an automl export manifest (no 'choices')")
    wrong = _version_problem(manifest.get("format_version"))
    if wrong:
        newer, problem = wrong
        raise UserError(f"{path}: \"format_version\" {problem}; " + ("upgrade automl" if newer else
                                                                   "put back the value the export wrote"))
    for field, (ok, what) in _READ.items():
        v = manifest.get(field)
        if v is None and (field in require or (field in manifest and field in _NOT_NULL)):
            raise manifest_error(Path(out_dir), manifest, field, f"is {'null' if field in manifest else 'missing'}"
                                 f"; it must be {what}")
        if v is not None and not ok(v):
            raise manifest_error(Path(out_dir), manifest, field, f"must be {what}, got {_shown(v)}")
    wrong = _classes_problem(manifest, manifest.get("num_classes"))
    if wrong:
        raise manifest_error(Path(out_dir), manifest, "classes", wrong)
    problem = timm_kwargs_problem(manifest["timm_kwargs"]) if manifest.get("timm_kwargs") is not None else None
    if problem:
        raise manifest_error(Path(out_dir), manifest, "timm_kwargs", problem)
    for field, check in (("onnx", _onnx_problem), ("int8", _int8_problem), ("weights", _weights_problem)):
        wrong = check(manifest[field]) if isinstance(manifest.get(field), dict) else None
        if wrong:
            raise manifest_error(Path(out_dir), manifest, f"{field}.{wrong[0]}", wrong[1])
    return manifest


def manifest_error(out_dir: Path, manifest: dict[str, Any], field: str, problem: str) -> UserError:
    """The one message for a field of ``out_dir``'s manifest that is wrong (``problem``): it names the file and
    the field, and says how to mend it: a field that ``automl export --arch`` reads from the manifest (or compares
    with the network, as an ``input_shape`` of whole numbers) by fixing it, any other by exporting the network again
    from the manifest (:func:`export_again`)."""
    path = out_dir / MANIFEST_NAME
    top = field.split(".")[0]
    if top in _RECORDED or top == "choices":
        fix = f"put back in \"{field}\" the value the export wrote"
    elif top == "input_shape" and is_sizes(manifest.get(top)):  # another network's: `automl export --arch` refuses it
        fix = (f"put back in \"{field}\" the value the export wrote (with it, `{export_again(out_dir, manifest)}` "
               f"exports the network again where needed)")
    else:
        fix = f"export the network again into {out_dir}: {export_again(out_dir, manifest)}; or fix \"{field}\""
    return UserError(f"{path}: \"{field}\" {problem}; {fix}")


def export_again(out_dir: Path, manifest: dict[str, Any]) -> str:
    """The ``automl export`` command that writes an export's files again from its own manifest and weights (the
    space file as :func:`~automl.export.load_model` finds it)."""
    spaces = [out_dir / v for v in [manifest.get("space_file")] if isinstance(v, str) and v]
    spaces += [Path(v) for v in [manifest.get("space")] if isinstance(v, str) and v]
    # os.path.isfile: False, not an OSError, for a hand-edited path (a name too long, one not to be entered)
    space = next((pasted_path(p) for p in spaces if os.path.isfile(p)), "SPACE")
    file = (manifest.get("weights") if isinstance(manifest.get("weights"), dict) else {}).get("file")
    weights = out_dir / (file if plain_name(file) else "model.safetensors")
    how = f"automl export {space} --arch {pasted_path(out_dir / MANIFEST_NAME)}"
    weights_flag = f" --weights {pasted_path(weights)}" if os.path.isfile(weights) else ""
    return f"{how}{weights_flag} --out {pasted_path(out_dir)}"


def _shown(value) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


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
    "budget": (finite_number, "a number (the member's search.budgets or search.random_budgets bound; null: none)"),
    "cost_metric": (lambda v: isinstance(v, str), "a metric name"),
    "space_args": (lambda v: isinstance(v, dict) and all(isinstance(x, (str, int, float)) for x in v.values()),
                   "an object of the space's --set values ({\"width\": \"0.5\"})"),
    "search_cost": (lambda v: isinstance(v, dict) and all(finite_number(x) for x in v.values()),
                    "an object of costs ({\"params\": 12345})"),
    "weights": (lambda v: isinstance(v, dict) and isinstance(v.get("source"), (str, type(None)))
                and (v.get("file") is None or plain_name(v["file"])),
                "an object ({\"file\": \"model.safetensors\", \"format\", \"source\"}; its file a name in the "
                "export folder)"),
    "normalize": (lambda v: isinstance(v, dict) and _numbers(v.get("mean")) and _numbers(v.get("std"), True)
                  and len(v["mean"]) == len(v["std"]),
                  "{\"mean\": [...], \"std\": [...]}: one number per input channel, every std > 0"),
    "dataset": (lambda v: v in DATASETS, f"the data set the network was trained on: {', '.join(DATASETS)}"),
    "classes": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                "the list of class names in output-index order ([\"cat\", \"dog\", ...])"),
}


def _interpolation(v) -> bool:
    """An interpolation timm's transforms know by name (bilinear, bicubic, ...)."""
    try:
        return isinstance(v, str) and str_to_interp_mode(v) is not None
    except (KeyError, ValueError):
        return False


def is_sizes(v) -> bool:
    """Whether ``v`` is sizes as a manifest records them (``input_shape``): a list of whole numbers >= 1."""
    return (isinstance(v, list) and len(v) > 0
            and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v))


def _nonblank(v) -> bool:
    return isinstance(v, str) and bool(v.strip())


def plain_name(v) -> bool:
    """A file name inside a folder (``model.onnx``): not blank, no folder part (``/`` or ``\\``, a drive), not
    ``.`` or ``..``, so that ``folder / v`` is a file of that folder; the file names a manifest records are."""
    return (_nonblank(v) and v not in (".", "..") and "\0" not in v and Path(v).name == v
            and PureWindowsPath(v).name == v)


_NOT_PLAIN = "must be the name of a file in the export folder, not a path"


def _decodes(arch_def) -> bool:
    """A timm ``arch_def`` (stages of block strings) that timm's decoder reads."""
    if not (isinstance(arch_def, list) and all(isinstance(st, list) and all(isinstance(b, str) for b in st)
                                               for st in arch_def)):
        return False
    try:
        decode_arch_def(json.loads(json.dumps(arch_def)))  # a copy: the decoder may change its argument
    except Exception:  # noqa: BLE001 - timm raises what its parser meets (KeyError, AssertionError, ValueError)
        return False
    return True


# the fields that load_model and measure_export read from an export's manifest, and what each must be when it is
# present and not null: (test, in words)
_READ = {
    "choices": (lambda v: (isinstance(v, list) and all(isinstance(x, str) for x in v))
                or (isinstance(v, dict) and all(isinstance(x, str) for x in v.values())),
                "the list of choice names"),
    "se": _RECORDED["se"],
    "space_args": _RECORDED["space_args"],
    "space": (lambda v: isinstance(v, str), "the path of the space file"),
    "space_file": (lambda v: v == "" or plain_name(v),
                   "the name of the space file copied into the export folder (space.space), not a path"),
    "params": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
               "the network's parameter count (a whole number)"),
    "weights": (lambda v: isinstance(v, dict) and ("file" not in v or _nonblank(v["file"])),
                "an object {\"file\": \"model.safetensors\", \"format\": ..., \"source\": ...}"),
    "arch_def": (_decodes, "timm's arch_def of the network: a list of stages, each a list of block strings such as "
                 "\"ir_r1_k3_s1_e1_c16\""),
    "input_shape": (lambda v: is_sizes(v) and len(v) == 3,
                    "the model's input size without the batch axis, [C, H, W] (three whole numbers, e.g. "
                    "[3, 224, 224])"),
    "onnx": (lambda v: isinstance(v, dict) and isinstance(v.get("input_name", "input"), str)
             and (_nonblank(v.get("file")) or (v.get("file") is None and _nonblank(v.get("error")))),
             "an object {\"file\": \"model.onnx\", \"input_name\": \"input\", ...} ({\"file\": null, \"error\": "
             "...}: the ONNX export failed; null: exported without ONNX)"),
    "int8": (lambda v: isinstance(v, dict),
             f"an object {{\"file\": \"{INT8_NAME}\", ...}} ({{\"file\": null, \"error\": ...}}: the quantisation "
             f"failed), as measuring the export writes it"),
    "latency": (lambda v: isinstance(v, dict),
                "an object {\"fp32_ms\": ..., ...} (as measuring the export writes it)"),
    "normalize": _RECORDED["normalize"],
    "dataset": _RECORDED["dataset"],
    "classes": _RECORDED["classes"],
    "crop_pct": (lambda v: finite_number(v) and 0 < v <= 1,
                 "the share of the resized test image its centre crop keeps, in (0, 1] (0.875)"),
    "interpolation": (_interpolation, "the name of the interpolation the test images are resized with (bilinear)"),
}
_NOT_NULL = ("choices", "se", "params", "input_shape")  # fields a reader cannot take as null


def _accuracy_problem(entry: dict, key: str) -> tuple[str, str] | None:
    """``entry[key]``, a test accuracy, is absent, null (measured on no image) or a share in [0, 1]."""
    v = entry.get(key)
    if v is None or (finite_number(v) and 0 <= v <= 1):
        return None
    return key, f"must be a test accuracy, a share in [0, 1] (null: measured on no image), got {_shown(v)}"


def _onnx_problem(entry: dict) -> tuple[str, str] | None:
    """(key, what is wrong) of an ``onnx`` entry (an object, its file or error checked by ``_READ``) whose
    other fields are not what an export writes: a failed export's entry that names a file, a test accuracy that
    is not one; None when it is well formed."""
    if entry.get("file") is not None and not plain_name(entry["file"]):
        return "file", f"{_NOT_PLAIN} (model.onnx), got {_shown(entry['file'])}"
    if entry.get("file") is not None and entry.get("error") is not None:
        return "error", (f"is {_shown(entry['error'])}, a failed export's reason, but \"onnx.file\" names the model "
                         f"exported: an entry is either {{\"file\": \"model.onnx\", ...}} or {{\"file\": null, "
                         f"\"error\": ...}}")
    return _accuracy_problem(entry, "test_accuracy")


def _int8_problem(entry: dict) -> tuple[str, str] | None:
    """(key, what is wrong) of an ``int8`` entry that is neither shape measuring an export writes: a quantised
    model's ``{"file": "model.int8.onnx", "size_bytes", "sha256", "fp32_size_bytes", "test_accuracy",
    "fp32_test_accuracy", "coverage", ...}`` (no ``error``; sizes whole numbers of bytes, ``sha256`` 64 lowercase
    hex digits and ``coverage`` ``{"quantized": n, "float": m, "float_ops": [...]}`` (both absent in an earlier
    automl's entry), accuracies in [0, 1] or null) or a
    failed quantisation's ``{"file": null, "error": why}``; None when it is one of them."""
    file, error = entry.get("file"), entry.get("error")
    if file is None:
        if _nonblank(error):
            return None
        return "error", (f"is {'missing' if error is None else _shown(error)}: a null \"int8.file\" is a failed "
                         f"quantisation's entry, which says why in \"int8.error\" (a non-empty text)")
    if file != INT8_NAME:
        return "file", f"must be \"{INT8_NAME}\" (the int8 model measuring writes) or null, got {_shown(file)}"
    if error is not None:
        return "error", (f"is {_shown(error)}, a failed quantisation's reason, but \"int8.file\" names the int8 "
                         f"model: an entry is either {{\"file\": \"{INT8_NAME}\", ...}} or {{\"file\": null, "
                         f"\"error\": ...}}")
    for key in ("size_bytes", "fp32_size_bytes"):
        v = entry.get(key)
        if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            return key, f"must be the model file's size, a whole number of bytes, got {_shown(v)}"
    digest = entry.get("sha256")
    if digest is not None and not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
        return "sha256", f"must be the int8 model's SHA-256, 64 lowercase hex digits, got {_shown(digest)}"
    cover = entry.get("coverage")
    if cover is not None and not _is_coverage(cover):
        return "coverage", ("must be what of the int8 model onnxruntime runs in int8, {\"quantized\": n, \"float\": "
                            f"m, \"float_ops\": [op types]}} (whole numbers of ops, names), got {_shown(cover)}")
    return _accuracy_problem(entry, "test_accuracy") or _accuracy_problem(entry, "fp32_test_accuracy")


def _is_coverage(v) -> bool:
    """An int8 entry's ``coverage``: the weight-bearing ops run in int8 (``quantized``) and in float (``float``),
    whole numbers from 0, and the op types run in float (``float_ops``, a list of names)."""
    counts = [v.get(k) for k in ("quantized", "float")] if isinstance(v, dict) else [None]
    return (all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts)
            and isinstance(v.get("float_ops"), list) and all(_nonblank(op) for op in v["float_ops"]))


def _weights_problem(entry: dict) -> tuple[str, str] | None:
    """(key, what is wrong) of a ``weights`` entry (an object whose ``file``, when present, is a text: ``_READ``)
    whose ``file`` is a path rather than the name of a file in the export folder; None when it is one."""
    if "file" in entry and not plain_name(entry["file"]):
        return "file", f"{_NOT_PLAIN} (model.safetensors), got {_shown(entry['file'])}"
    return None


def _version_problem(version) -> tuple[bool, str] | None:
    """(whether it is newer than this automl, what is wrong in words) of a manifest's ``format_version`` that this
    automl does not read: one newer than :data:`FORMAT_VERSION`, or no whole number from 1 (a bool, 0, a negative
    or fractional number, a text); None for one it reads, and for none (absent or null: an older export's)."""
    whole = isinstance(version, int) and not isinstance(version, bool)
    if version is None or (whole and 1 <= version <= FORMAT_VERSION):
        return None
    if whole and version > FORMAT_VERSION:
        return True, f"{_shown(version)} is newer than this automl understands ({FORMAT_VERSION})"
    return False, f"{_shown(version)} is not one automl writes (a whole number, {FORMAT_VERSION})"


def check_recorded(manifest: dict[str, Any], source: str) -> None:
    """The fields of an export's manifest that exporting its network again reuses are well formed (a hand-edited
    or damaged one is a :class:`UserError` naming ``source`` and the field), and its ``format_version`` one this
    automl reads, where it has one (:func:`read_manifest` refuses the same ones)."""
    wrong = _version_problem(manifest.get("format_version"))
    if wrong:
        newer, problem = wrong
        raise UserError(f"{source}: \"format_version\" {problem}; "
                        + ("upgrade automl" if newer else "put back the value the export wrote")
                        + ", or give a plain ARCH.json with the choices")
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


def check_classes(manifest: dict[str, Any], source: str, num_classes: int) -> None:
    """A (:func:`check_recorded`) manifest's ``classes`` names each of the ``num_classes`` outputs of the network
    it is exported as (and each its own ``num_classes`` records)."""
    wrong = _classes_problem(manifest, num_classes) or _classes_problem(manifest, manifest.get("num_classes"))
    if wrong:
        raise UserError(f"{source}: \"classes\" {wrong}; give the manifest.json the export wrote, or a plain "
                        f"ARCH.json with the choices")


def _classes_problem(manifest: dict[str, Any], num_classes) -> str | None:
    """What is wrong with a manifest's ``classes`` (a list of texts, :data:`_RECORDED`) for a network of
    ``num_classes`` outputs (not a whole number: nothing to compare); None when it names each output once."""
    names = manifest.get("classes")
    if not isinstance(names, list) or not isinstance(num_classes, int) or isinstance(num_classes, bool):
        return None
    if len(names) != num_classes:
        return (f"holds {len(names)} class name(s), but the network has {num_classes} outputs: one name per "
                f"output, in output-index order")
    return None


def _refuse(source: str, field: str, what: str, value) -> None:
    raise UserError(f"{source}: \"{field}\" must be {what}, got {_shown(value)}; give the manifest.json the export "
                    f"wrote, or a plain ARCH.json with the choices")


def error_entry(e: BaseException, what: str = "") -> str:
    """A manifest's ``error`` (``onnx.error``, ``int8.error``): ``what`` failed and why, the exception's type and
    message on one line of at most 500 characters."""
    return " ".join(f"{what}{type(e).__name__}: {e}".split())[:500]


def check_arch_space(obj: Any, compiled, path, flag: str = "--arch") -> None:
    """An architecture file (its JSON ``obj``, given as ``flag`` ``path``) that records another space than
    ``compiled`` (an export's manifest its ``space_name``, an ARCH.json of ``automl space encode`` its ``space``
    file) and does not fit ``compiled`` (its choices, or a manifest's ``normalize`` of another channel count) is a
    :class:`UserError` that says first which space it was made for, then what does not fit; another file, or one
    that fits, passes (a copy of its space file elsewhere, a space renamed)."""
    other = recorded_space(obj, compiled.name, getattr(compiled, "filename", None), path)
    if other is None:
        return
    source = f"{flag} {path}"
    try:
        choices_from_json(obj, compiled, source=source)
    except UserError as e:
        detail = str(e).removeprefix(f"{source}: ")
        raise UserError(f"{source} {other}; its choices do not fit space {compiled.name}: {detail}") from None
    norm, channels = obj.get("normalize"), int(compiled.input_shape[0])
    if is_manifest(obj) and isinstance(norm, dict) and isinstance(norm.get("mean"), list) \
            and len(norm["mean"]) != channels:
        raise UserError(f"{source} {other}; its network takes inputs of {len(norm['mean'])} channel(s) (its "
                        f"\"normalize\"), space {compiled.name}'s {channels}")


def recorded_space(obj: Any, name: str, filename: str | None, path) -> str | None:
    """What an architecture file with ``"choices"`` (JSON ``obj``, the file ``path``) says of the space it was made
    for, when that is another than the space ``name`` (read from ``filename``), with the file to give instead, as
    the words after the file's name ("is an export of space ..."): an export's manifest its ``space_name`` (its
    folder holds a copy of the space file), an ARCH.json of ``automl space encode`` its ``space`` file. None when
    it says nothing, or names this one (this file by any path, a copy of it: :func:`_same_space_file`)."""
    if not isinstance(obj, dict) or "choices" not in obj:
        return None
    recorded = obj.get("space")
    if is_manifest(obj):
        theirs = obj.get("space_name")
        if not isinstance(theirs, str) or theirs == name:
            return None
        copy = Path(path).parent / "space.space"
        where = f" (its folder holds a copy: {copy})" if os.path.isfile(copy) else ""
        return f"is an export of space {theirs}, not of {name}: give that space file{where}"
    if not isinstance(recorded, str) or not recorded.strip() or not isinstance(filename, str):
        return None
    if _same_space_file(recorded, filename):
        return None
    return f"was encoded for the space file {recorded} (its \"space\"), not {filename}: give that space file"


def _same_space_file(recorded: str, given: str) -> bool:
    """Whether the space file an ARCH.json records (``recorded``: the path ``automl space encode`` read, resolved;
    an earlier automl's file holds the path as typed, relative to the folder it ran in) is the space file
    ``given``: the same file (by any path or link), a byte-for-byte copy of it, or, where ``recorded`` is not
    found here (a relative path from another folder, a path of another machine), a file of the same name."""
    try:
        if Path(recorded).resolve() == Path(given).resolve():
            return True
        if os.path.isfile(recorded) and os.path.isfile(given):
            return os.path.samefile(recorded, given) or filecmp.cmp(recorded, given, shallow=False)
        return not os.path.exists(recorded) and Path(recorded).name == Path(given).name
    except (OSError, ValueError):  # a path too long, with a NUL (a loop of links: the CLI's user error)
        return False
