"""``export_architecture``: one architecture of a space -> a folder with ONNX, weights and a manifest."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import timm
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from automl._io import atomic_path, atomic_write_bytes, writable_dir
from automl.compile import load_compiled
from automl.dsl import ParamError
from automl.errors import Stopped, UserError, shortened, value_text
from automl.export._arch import as_arch
from automl.export._copy import cpu_copy
from automl.export.inherit import inherit_weights, state_differences
from automl.export.manifest import (FORMAT_VERSION, MANIFEST_NAME, error_entry, export_again, finite_number, json_cost,
                                    json_costs, manifest_error, read_manifest, whole_metric, write_manifest)
from automl.export.onnx import check_opset, export_onnx
from automl.export.quantize import INT8_NAME
from automl.export.timm_spec import build_timm_model, timm_spec
from automl.nn import count_params, plain_convs
from automl.nn.measure import count_macs
from automl.nn.standalone import se_too_small, se_too_small_message
from automl.nn.ensemble import member_weights
from automl.train.data import DATASETS, eval_crop
from automl.train.loops import nonfinite_tensors, recalibrate_bn

__all__ = ["export_architecture", "load_model", "run_of", "check_se", "save_weights", "load_weights",
           "inherit_from_state"]

_logger = logging.getLogger(__name__)

ONNX_NAME = "model.onnx"
SAFETENSORS_NAME = "model.safetensors"
PT_NAME = "model.pt"
# export_architecture's budget when none is given: the manifest records no "budget" (an architecture file's export)
_UNSET: Any = object()


def save_weights(model: nn.Module, out_dir: Path) -> dict[str, str]:
    """Write the state_dict as ``model.safetensors`` (or ``model.pt`` when tensors share storage)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    try:
        # the bytes through our atomic writer: safetensors' save_file replaces the file it is given with its
        # own, of mode 0600, where an export's files get the mode a plain open() gives (docs/reliability.md)
        atomic_write_bytes(out_dir / SAFETENSORS_NAME, save_safetensors(state, metadata={"format": "pt"}))
        stale, entry = out_dir / PT_NAME, {"file": SAFETENSORS_NAME, "format": "safetensors"}
    except (RuntimeError, ValueError) as e:  # shared storage: safetensors refuses it
        _logger.debug("safetensors refused the state_dict (%s); writing %s", e, PT_NAME)
        with atomic_path(out_dir / PT_NAME, suffix=".pt") as tmp:
            torch.save(state, str(tmp))
        stale, entry = out_dir / SAFETENSORS_NAME, {"file": PT_NAME, "format": "torch"}
    if stale.exists():  # a previous export into the same folder must not leave a second set of weights
        stale.unlink()
    return entry


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise UserError(f"{path}: the export's weights file is missing")
    try:
        if path.suffix == ".safetensors":  # its bytes: safetensors' load_file takes only a name that is valid UTF-8
            return load_safetensors(path.read_bytes())
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file
        raise UserError(f"{path}: cannot read the weights ({e})") from None


def _cost_entry(compiled, arch, cost, cost_metric) -> dict[str, float]:
    table = compiled.cost_table
    out = {m: float(table.total(arch, m)) for m in table.metrics}
    if isinstance(cost, dict):
        out.update({k: float(v) for k, v in cost.items()})
    elif cost is not None:
        out[cost_metric] = float(cost)
    return out


def _costs(compiled, arch, model, se, cost, cost_metric, search_cost) -> tuple[dict, dict | None]:
    """The manifest's ``cost`` and ``search_cost``, as floats. With squeeze-and-excitation (``se`` > 0), which the
    cost table does not price, ``cost``'s params and MACs are counted on the exported ``model`` (as its ``params``
    is) and ``search_cost`` keeps the table's figures (what a search priced), unless one is given."""
    entry = _cost_entry(compiled, arch, cost, cost_metric)
    if not se:
        return entry, search_cost
    counted = {"params": float(count_params(model)),
               "macs": float(count_macs(model, compiled.arch_input_shape(arch))[0])}
    return {**entry, **counted}, (search_cost if search_cost is not None else entry)


def _space_args(compiled, space_args) -> dict[str, str]:
    if space_args is None:
        space_args = getattr(compiled, "overrides", None) or {}
    return {str(k): str(v) for k, v in dict(space_args).items()}


def _space_file(compiled) -> str | None:
    name = getattr(compiled, "filename", None)
    return str(name) if name and os.path.isfile(name) else None


def _versions() -> dict[str, str]:
    out = {"torch": torch.__version__, "timm": timm.__version__}
    try:  # optional heavy imports: only where an export records its versions
        import onnx
        import onnxruntime

        out.update(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__)
    except ImportError:
        pass
    return out


def check_se(se: float, compiled, arch=None) -> float:
    """The squeeze-and-excitation ratio, validated: in [0, 1), only for chain spaces and, with ``arch`` (an
    encoded architecture), large enough that timm gives each SE layer of that network at least one channel
    (:func:`~automl.nn.standalone.se_too_small`)."""
    try:
        se = float(se)
    except (TypeError, ValueError):
        raise UserError(f"--se {se!r}: the squeeze-and-excitation ratio is a number in [0, 1), e.g. 0.25") from None
    if not 0 <= se < 1:
        raise UserError(f"--se {se:g}: the squeeze-and-excitation ratio must be in [0, 1), e.g. 0.25")
    if se and compiled.kind != "chain":
        raise UserError(f"--se {se:g}: squeeze-and-excitation applies to MBConv blocks of chain spaces; "
                        f"{compiled.name} is a {compiled.kind} space")
    smallest = se_too_small(compiled, se, arch) if arch is not None else None
    if smallest is not None:
        raise UserError(f"--se {se:g}: " + se_too_small_message(se, smallest, "this network", "here",
                                                                 f"give --se {smallest:g} or more"))
    return se


def export_architecture(compiled, arch, out_dir, *, weights: dict | None = None, supernet_state: dict | None = None,
                        se: float = 0.0, opset: int = 17, onnx: bool = True, epsilon: float | None = None,
                        cost: float | dict | None = None, cost_metric: str = "params",
                        space_path: str | os.PathLike | None = None, space_args: dict | None = None,
                        model: nn.Module | None = None, normalize: dict | None = None,
                        bn_calibration: list | None = None, provenance: dict | None = None,
                        search_cost: dict | None = None, run: str | os.PathLike | None = None,
                        onnx_failure: str = "raise", dataset: str | None = None,
                        weights_source: str | None = None, classes: list[str] | None = None,
                        budget: float | None = _UNSET) -> dict[str, Any]:
    """Export one architecture of ``compiled`` into ``out_dir``; returns the manifest (also written there).

    ``arch``: an encoded architecture (LongTensor (D,) or list of ints), choice names in declaration
    order, or ``{decision: choice}``. The standalone model is ``model`` when given (an already trained
    one, exported as is, in float32; not modified), else ``compiled.build_standalone(arch, se)`` with, in that order
    of precedence, ``weights`` (its own state_dict), the chosen path of ``supernet_state`` (weight
    inheritance) or fresh initialisation. ``space_path`` / ``space_args`` (the ``--set`` overrides)
    are recorded so that :func:`load_model` can rebuild cell models; the space file is copied into
    the folder. ``epsilon`` and ``budget`` (a run's member: its search.budgets or search.random_budgets bound in
    ``cost_metric``'s units; None: none, recorded as null; not given: not recorded) go into the manifest.
    ``cost`` overrides the cost table's total for ``cost_metric``; ``search_cost``
    (``{metric: value}``) is recorded as the manifest's ``search_cost``: the cost table of the space the
    architecture was searched in, when that differs from ``compiled`` (a run's ``retrain.space_args``). ``normalize``
    (``{"mean": [...], "std": [...]}``, per channel, on inputs scaled to [0, 1]) records the input
    normalisation the model was trained with, for deployment code; ``dataset`` the data set it was trained and
    tested on, with its test crop (:func:`~automl.train.data.eval_crop`); ``classes`` the names of its outputs in
    index order (:func:`~automl.export.manifest.class_names`), one per class. ``bn_calibration`` (with
    ``supernet_state``): input batches, at the architecture's resolution, on which the inherited network's
    BatchNorm statistics are recalibrated (Once-for-All; the supernet's own average over random paths).
    ``provenance`` (with ``model`` or ``weights``): where the model's weights came from, recorded in the
    manifest's ``weights`` instead of ``source: model`` / ``standalone`` (``automl run`` records ``retrained``,
    ``supernet`` with ``bn_recalibrated_batches``, or ``untrained``; ``automl export`` keeps an export's own
    record when it exports that network again from its manifest). ``run`` (``automl run``: the run folder)
    is recorded, as an absolute path, as the manifest's ``run``: the run that owns the folder (:func:`run_of`).
    ``onnx_failure="record"`` (``automl run``; default ``"raise"``): a failed ONNX export is the manifest's ``onnx``
    ``{"file": null, "error": why}`` (:func:`_onnx_entry`), without ``model.onnx``; weights and manifest are written.
    ``weights_source`` (``automl export``: ``--weights PATH``): where ``weights`` or ``supernet_state`` came from,
    named when they do not fit the network.

    Files written (each atomically): ``model.onnx`` (unless ``onnx=False``), ``model.safetensors``
    (``model.pt`` if safetensors refuses the state_dict), ``manifest.json``, the space file; an earlier
    export's ``model.int8.onnx`` there is removed (:func:`~automl.export.quantize.measure_export` writes one).
    Raises :class:`~automl.errors.UserError` for bad input (before any file of an earlier export in ``out_dir``
    is replaced or removed; a folder there under one of those names, too), ``OnnxParityError`` (unless
    recorded) / ``StandaloneSpecError`` / ``InheritError`` (internal errors) when the export would be wrong.
    """
    _check_onnx(onnx, opset, onnx_failure)  # before anything is written
    _check_budget(budget)
    arch = as_arch(arch, compiled)
    se = check_se(se, compiled, arch)
    input_shape = tuple(int(v) for v in compiled.arch_input_shape(arch))
    out_dir = writable_dir(out_dir, "export folder")
    _check_names(out_dir, space_path if space_path is not None else _space_file(compiled))
    model, source = _standalone_model(compiled, arch, se, model, weights, supernet_state, weights_source)
    recalibrated = None
    if source == "supernet" and bn_calibration:
        batches = list(bn_calibration)
        recalibrate_bn(model, model, batches)
        recalibrated = len(batches)
    model.eval()
    _check_finite(model, source, input_shape)
    manifest = _manifest(compiled, arch, model, se, (epsilon, budget), (cost, cost_metric, search_cost), space_path,
                         space_args, normalize, (dataset, classes))
    # the network is checked: from here on the folder's files are replaced. The manifest is written last: a
    # folder with a manifest holds a complete export, even when an export into it is interrupted halfway; an
    # export refused above leaves an earlier export in the folder as it was
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    (out_dir / INT8_NAME).unlink(missing_ok=True)  # an earlier export's int8 model does not fit this one
    _copy_space(manifest, out_dir)
    if source == "supernet":
        provenance = {"source": source, "bn_recalibrated_batches": recalibrated}
    elif source not in ("model", "standalone") or not provenance:
        provenance = {"source": source}
    manifest["weights"] = {**save_weights(model, out_dir), **provenance}
    manifest["onnx"] = _onnx_entry(model, out_dir, input_shape, opset if onnx else None, onnx_failure)
    if run is not None:
        manifest["run"] = str(Path(run).resolve())
    manifest["versions"] = _versions()
    write_manifest(out_dir, manifest)
    return manifest


def _check_names(out_dir: Path, space) -> None:
    """A :class:`~automl.errors.UserError` when ``out_dir`` holds a folder (not a link) under the name of a file
    the export writes or removes there: weights, ONNX, int8 ONNX, manifest, the copy of ``space`` (its path)."""
    names = [ONNX_NAME, SAFETENSORS_NAME, PT_NAME, MANIFEST_NAME, INT8_NAME]
    if space and Path(space).is_file():  # _copy_space copies it
        names.append("space" + (Path(space).suffix or ".space"))
    for name in names:
        path = out_dir / name
        if path.is_dir() and not path.is_symlink():
            raise UserError(f"{path} is a folder, where the export writes its file {name}: remove that folder, or "
                            f"export into another folder (--out)")


def _copy_space(manifest: dict, out_dir: Path) -> None:
    """The space file the manifest names, copied into the export folder (its ``space_file``)."""
    src_space = manifest["space"]
    if src_space and Path(src_space).is_file():
        copy_name = "space" + (Path(src_space).suffix or ".space")
        if Path(src_space).resolve() != (out_dir / copy_name).resolve():
            with atomic_path(out_dir / copy_name) as tmp:
                shutil.copyfile(src_space, tmp)
        manifest["space_file"] = copy_name


def _check_onnx(onnx: bool, opset: int, failure: str) -> None:
    """``opset`` (with ``onnx``: a :class:`~automl.errors.UserError` names it) and ``onnx_failure``."""
    if failure not in ("raise", "record"):
        raise ValueError(f"onnx_failure {failure!r}: 'raise' or 'record'")
    if onnx:
        check_opset(opset)


def _onnx_entry(model: nn.Module, out_dir: Path, input_shape: tuple[int, ...], opset: int | None,
                failure: str) -> dict | None:
    """The manifest's ``onnx`` entry: None without ONNX (``opset`` None), :func:`~automl.export.onnx.export_onnx`'s,
    or with ``failure`` ``"record"`` ``{"file": None, "error": why}`` (why: the exception, one line of at most 500
    characters, as ``int8.error``) when torch's exporter raises, the checker refuses its model or onnxruntime and
    torch disagree (``OnnxParityError``); a :class:`~automl.errors.UserError` (an opset this torch does not write)
    or an ``OSError`` (the disk) is raised either way. Without a new ``model.onnx``, an earlier
    export's there is removed: it is not this network's."""
    try:
        if opset is not None:
            return export_onnx(model, out_dir / ONNX_NAME, input_shape, opset=opset)
    except (UserError, Stopped, OSError):
        raise
    except Exception as e:  # noqa: BLE001 - any exporter, checker or parity failure: the PyTorch export stays
        if failure == "raise":
            raise
        (out_dir / ONNX_NAME).unlink(missing_ok=True)
        return {"file": None, "error": error_entry(e)}
    (out_dir / ONNX_NAME).unlink(missing_ok=True)
    return None


def run_of(out_dir) -> str | None:
    """The run folder recorded in ``out_dir``'s manifest (``run``, written by ``automl run``), or None: no
    manifest, one that cannot be read, or one without the record (``automl export``, an older automl)."""
    try:
        manifest = json.loads((Path(out_dir) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: JSON nested too deeply
        return None
    run = manifest.get("run") if isinstance(manifest, dict) else None
    return run if isinstance(run, str) and run else None


def _check_finite(model: nn.Module, source: str, input_shape: tuple[int, ...]) -> None:
    """A network whose weights or BatchNorm statistics hold NaN or inf, or are so large that it overflows on an
    input (its training diverged), is not exported: it computes nothing, and neither its timm description nor
    its ONNX model could be checked against it. ``model`` is in eval mode."""
    bad = nonfinite_tensors(model)
    if bad:
        what = f"hold NaN or inf in {len(bad)} tensors (e.g. {bad[0]})"
    else:
        with torch.no_grad():
            x = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
            what = None if bool(torch.isfinite(model(x)).all()) else "make it compute NaN or inf on an input"
    if what is None:
        return
    whose = {"supernet": "the supernet's weights on its path (BatchNorm recalibrated where asked)",
             "standalone": "the given weights", "model": "the trained network's weights"}.get(source, "its weights")
    raise UserError(f"{whose} {what}: the training they come from diverged, and such a network cannot be "
                    f"exported; export weights from before it diverged, or train again with a lower learning rate")


def _standalone_model(compiled, arch, se, model, weights, supernet_state,
                      source: str | None = None) -> tuple[nn.Module, str]:
    """(the model to export, where its weights came from): see :func:`export_architecture`."""
    if model is not None:
        # the caller's model is not modified; the export is float32 (a half, bfloat16 or double model's copy
        # converted); a model still carrying the training-only depthwise backward (automl.nn.depthwise) becomes a
        # plain timm network again
        return plain_convs(cpu_copy(model).float()), "model"
    model = compiled.build_standalone(arch, se=se)
    if weights is not None:
        try:
            model.load_state_dict(weights)
        except RuntimeError:
            differs = _differences(weights, model.state_dict())
            raise UserError(f"{source or 'the given weights'}: a stand-alone network's weights for another network "
                            f"than these choices' in space {compiled.name} ({differs})"
                            f"; give --arch the manifest.json written next to them (it records their choices and "
                            f"--set values)") from None
        return model, "standalone"
    if supernet_state is not None:
        return inherit_from_state(compiled, supernet_state, arch, model, source=source), "supernet"
    return model, "fresh"


def inherit_from_state(compiled, supernet_state: dict, arch: torch.Tensor, standalone: nn.Module,
                       source: str | None = None) -> nn.Module:
    """``standalone`` (returned) with the weights of the supernet checkpoint ``supernet_state`` on the path
    ``arch``; an ensemble's (``search.supernets``): its first member's, since an ensemble is not one network.
    BatchNorm keeps the supernet's statistics, which average over random paths: recalibrate them
    (``bn_calibration``) before the network is used. ``source`` (``--weights PATH``): where the state came from,
    named when it does not fit."""
    supernet = compiled.build_supernet()
    try:
        state = member_weights(supernet_state)
    except IndexError:  # keys of an ensemble's members, but no first member: a foreign file, said below
        state = supernet_state
    try:
        supernet.load_state_dict(state)
    except RuntimeError as e:
        raise _unfit(compiled, state, supernet, standalone, source, e) from None
    inherit_weights(supernet, arch, standalone, tuple(int(v) for v in compiled.arch_input_shape(arch)))
    return standalone


def _unfit(compiled, state: dict, supernet: nn.Module, standalone: nn.Module, source: str | None,
           e: RuntimeError) -> UserError:
    """The user error for a state_dict (from ``source``) that ``supernet`` refused: what did not fit (a few keys,
    bounded) and what to give instead: stand-alone weights (more of their keys the network's of these choices than
    the supernet's) are exported with their own manifest; a supernet's whose keys all fit but not their shapes was
    trained with other --set values; other keys are another space file's (or another model's)."""
    given, own, alone = set(state), set(supernet.state_dict()), standalone.state_dict()
    where = f"{source}: " if source else ""
    if len(given & set(alone)) > len(given & own):
        return UserError(f"{where}a stand-alone network's weights (an export's), not a supernet's, for another "
                         f"network than these choices' ({_differences(state, alone)}); give --arch the manifest.json "
                         f"written next to them, or a run's checkpoint RUN/checkpoints/ckpt-….pt to inherit")
    why = ("its tensors in other shapes: a supernet built with other --set values" if given == own else
           f"none of its {len(given):,} tensors is one of this supernet's: another space file's or model's"
           if not given & own else "other tensors than this supernet holds: another space file's")
    return UserError(f"{where}the supernet checkpoint does not fit space {compiled.name} with these parameters "
                     f"({why}; {_mismatch(e)}); export with the space file and the --set values of the run that "
                     f"wrote it (the run folder's recipe.resolved.yaml has its space and space_args)")


def _differences(given: dict, want: dict, few: int = 3) -> str:
    """How the state_dict ``given`` differs from ``want`` (a network's), in :func:`_mismatch`'s words."""
    missing, unexpected, reshaped = state_differences(given, want)
    sizes = [f"{shortened(k)} is {there}, the network's {here}" for k, there, here in reshaped]
    parts = [f"{len(keys)} {label} key(s) ({', '.join(map(shortened, keys[:few]))}"
             + (f", {len(keys) - few} more)" if len(keys) > few else ")")
             for label, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
    if sizes:
        parts.append(sizes[0] + (f" ({len(sizes) - 1} more of other shapes)" if len(sizes) > 1 else ""))
    return "; ".join(parts) or "the same tensors"


def _check_budget(budget) -> None:
    """export_architecture's ``budget``: not given, None (unconstrained) or a finite number; else a ValueError."""
    if budget is not _UNSET and budget is not None and not finite_number(budget):
        raise ValueError(f"budget must be None (unconstrained) or a finite number (the member's search.budgets "
                         f"bound), got {budget!r}")


def _manifest(compiled, arch, model, se, member: tuple, costs, space_path, space_args, normalize,
              data: tuple) -> dict[str, Any]:
    """The manifest's description of the model (files, weights, ONNX and versions are added after);
    ``member``: ``(epsilon, budget)``, ``costs``: ``(cost, cost_metric, search_cost)``, ``data``: ``(dataset,
    classes)``, of
    :func:`export_architecture`. A cost of a metric that counts
    (params, MACs, a space file's metric of whole numbers) is written as an int, as ``automl space cost`` writes it
    (:func:`~automl.export.manifest.json_costs`); a latency as a float."""
    cost, search_cost = _costs(compiled, arch, model, se, *costs)
    cost_metric, (dataset, classes), (epsilon, budget) = costs[1], data, member
    input_shape = tuple(int(v) for v in compiled.arch_input_shape(arch))
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "space": str(space_path) if space_path is not None else _space_file(compiled),
        "space_name": compiled.name,
        "space_args": _space_args(compiled, space_args),
        "kind": compiled.kind,
        "decisions": [d.name for d in compiled.decisions],
        "choices": list(compiled.decode(arch)),
        "arch": [int(k) for k in arch.tolist()],
        "params": count_params(model),
        "cost": json_costs(compiled.cost_table, cost),
        "cost_metric": cost_metric,
    }
    if search_cost is not None:
        manifest["search_cost"] = json_costs(compiled.cost_table, search_cost)
    if epsilon is not None:
        manifest["epsilon"] = float(epsilon)
    if budget is not _UNSET:  # a count's budget as an int (80000), as the cost is written
        manifest["budget"] = None if budget is None else json_cost(budget, whole_metric(compiled.cost_table,
                                                                                        cost_metric))
    manifest.update({
        "input_shape": list(input_shape),
        "num_classes": int(compiled.num_classes),
        "se": se,
    })
    if normalize is not None:
        manifest["normalize"] = {"mean": [float(v) for v in normalize["mean"]],
                                 "std": [float(v) for v in normalize["std"]]}
    if dataset is not None:
        if dataset not in DATASETS:
            raise ValueError(f"dataset {dataset!r}: one of {', '.join(DATASETS)}")
        manifest.update(dataset=dataset, **eval_crop(dataset))
    if classes is not None:
        if len(classes) != compiled.num_classes:
            raise ValueError(f"classes {list(classes)!r}: one name per class of the network ({compiled.num_classes})")
        manifest["classes"] = [str(v) for v in classes]
    arch_def = compiled.arch_def(arch, se=se) if compiled.kind == "chain" else None
    if arch_def is not None:
        kw = timm_spec(model, arch_def, input_shape)
        manifest.update({"arch_def": arch_def, "stem_size": kw["stem_size"], "num_features": kw["num_features"],
                         "timm_kwargs": kw})
    else:
        manifest.update({"arch_def": None, "stem_size": getattr(compiled, "stem_size", None),
                         "num_features": getattr(compiled, "num_features", None)})
    return manifest


def _mismatch(e: RuntimeError, few: int = 3) -> str:
    """What a failed ``load_state_dict`` found, in one short line: the count of missing and of unexpected
    keys with the first ``few`` names each, and the first size mismatch with the count of the others."""
    parts, sizes = [], []
    for line in (ln.strip() for ln in str(e).splitlines()):
        for label in ("Missing", "Unexpected"):
            if line.startswith(f"{label} key(s)"):
                keys = re.findall(r'"([^"]+)"', line)
                more = f", {len(keys) - few} more" if len(keys) > few else ""
                parts.append(f"{len(keys)} {label.lower()} key(s) ({', '.join(map(shortened, keys[:few]))}{more})")
        if line.startswith("size mismatch"):
            sizes.append(line.rstrip("."))
    if sizes:
        parts.append(sizes[0] + (f" (and {len(sizes) - 1} more size mismatches)" if len(sizes) > 1 else ""))
    if parts:
        return "; ".join(parts)
    first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
    return first if len(first) <= 200 else first[:200] + "…"


def load_model(out_dir) -> nn.Module:
    """Rebuild the exported torch model of ``out_dir`` with its weights, in eval mode.

    Chain spaces are rebuilt with timm alone, from the manifest's ``arch_def`` and ``timm_kwargs``; cell
    spaces through the space file copied into the folder (or the recorded path), its ``space_args``
    and the choices. The model's ``pretrained_cfg`` (and ``default_cfg``) is the export's input size, classes and
    normalisation (:func:`_timm_data_config`), for ``timm.data.resolve_model_data_config`` and ``create_transform``.
    A manifest whose fields do not rebuild a network (hand-edited, or written by a timm that took other arguments)
    is a :class:`UserError` naming the file and the fields.
    """
    out_dir = Path(out_dir)
    m = read_manifest(out_dir)
    if m.get("arch_def") is not None and m.get("timm_kwargs") is not None:
        model = _timm_model(out_dir, m)
        kw_chans = m["timm_kwargs"].get("in_chans", 3)
        _check_input_shape(out_dir, m, (kw_chans,), "its \"timm_kwargs\" (in_chans)")
    else:
        model, shape = _cell_model(out_dir, m)
        _check_input_shape(out_dir, m, shape, "its \"choices\" and \"space_args\"")
    weights = out_dir / (m.get("weights") or {}).get("file", SAFETENSORS_NAME)
    state = load_weights(weights)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"{out_dir}: the weights do not fit the model the manifest describes: "
                        f"{_mismatch(e)}; {weights.name} and {MANIFEST_NAME} are not from one export: put back the "
                        f"files that one export wrote") from None
    if count_params(model) != m.get("params", count_params(model)):
        raise manifest_error(out_dir, m, "params", f"is {m['params']:,}, but the network the manifest describes has "
                             f"{count_params(model):,} parameters")
    model.pretrained_cfg = model.default_cfg = _timm_data_config(out_dir, m)  # default_cfg: timm's older name
    return model.eval()


def _timm_data_config(out_dir: Path, m: dict) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` of the network an export's manifest ``m`` describes, what timm's data tooling
    (``timm.data.resolve_model_data_config``, ``create_transform``) reads from a model: its ``input_size`` and
    ``num_classes``, the ``mean`` and ``std`` of its ``normalize`` when recorded (else timm's ImageNet ones), and
    the test images' centre crop the manifest records (``crop_pct``, ``interpolation``: an imagefolder's test
    images are resized to 1/0.875 of the size and centre-cropped), else images resized whole (``crop_pct`` 1.0,
    ``bilinear``), as automl resizes digits, cifar10 and synthetic images, and as a manifest of an older automl,
    which records neither, is read. A ``normalize`` of another channel count than ``input_shape`` is the
    manifest's mistake (:class:`UserError`)."""
    cfg: dict[str, Any] = {"interpolation": m.get("interpolation") or "bilinear",
                           "crop_pct": float(m.get("crop_pct") or 1.0), "crop_mode": "center"}
    shape, norm = m.get("input_shape"), m.get("normalize")
    if shape is not None:
        cfg["input_size"] = tuple(shape)
    if isinstance(m.get("num_classes"), int):
        cfg["num_classes"] = m["num_classes"]
    if m.get("classes") is not None:
        cfg["label_names"] = tuple(m["classes"])
    if norm is not None:
        if shape is not None and len(norm["mean"]) != shape[0]:
            raise manifest_error(out_dir, m, "normalize", f"has {len(norm['mean'])} mean and std values, the "
                                 f"input_shape {shape} {shape[0]} channels: one of each per input channel")
        cfg.update(mean=tuple(float(v) for v in norm["mean"]), std=tuple(float(v) for v in norm["std"]))
    return cfg


# what timm and torch raise for argument values they cannot build a network from (a stride or kernel of 0, a
# pool type or BatchNorm argument they do not know, no stage, a size past memory); the subclasses of these
# that say nothing of the values (a bug, or a timm that lacks a feature) stay internal errors
_BUILD_ERRORS = (TypeError, ValueError, LookupError, AssertionError, ArithmeticError, RuntimeError)
_NOT_THE_VALUES = (RecursionError, NotImplementedError)


def _timm_model(out_dir: Path, m: dict) -> nn.Module:
    """The chain model the manifest's ``arch_def`` and ``timm_kwargs`` describe, built by timm. The manifest's
    checks (:func:`~automl.export.manifest.read_manifest`) take each field on its own; values timm still cannot
    build a network from are the manifest's (an export checks that the values it writes rebuild its network)."""
    try:
        return build_timm_model(m["arch_def"], m["timm_kwargs"])
    except _NOT_THE_VALUES:
        raise
    except _BUILD_ERRORS as e:
        why = " ".join(str(e).split())
        why = f"{type(e).__name__}: {why[:200]}" if why else type(e).__name__
    written = (m.get("versions") if isinstance(m.get("versions"), dict) else {}).get("timm")
    other = (f" (the export was written with timm {written}, this is timm {timm.__version__}: install that timm, "
             f"or export again)" if isinstance(written, str) and written != timm.__version__ else "")
    raise UserError(f"{out_dir / MANIFEST_NAME}: timm cannot build the network its \"arch_def\" and "
                    f"\"timm_kwargs\" describe ({why}){other}; put back in them the values the export wrote, or "
                    f"export the network again into {out_dir}: {export_again(out_dir, m)}") from None


def _cell_model(out_dir: Path, m: dict) -> tuple[nn.Module, tuple[int, ...]]:
    """(the network of the manifest's ``choices``, built through its space file and ``space_args``, its input
    shape (C, H, W))."""
    candidates = [out_dir / m["space_file"]] if m.get("space_file") else []
    if m.get("space"):
        candidates.append(Path(m["space"]))
    space = next((p for p in candidates if p.is_file()), None)
    if space is None:
        to = candidates[0] if candidates else out_dir / "space.space"
        add = "" if candidates else f" and add \"space_file\": \"{to.name}\" to {out_dir / MANIFEST_NAME}"
        raise UserError(f"{out_dir}: the space file of this export is missing "
                        f"(looked for {', '.join(map(str, candidates)) or 'nothing recorded'}); copy the space file "
                        f"the network was exported from to {to}{add}")
    args = m.get("space_args") or {}
    try:
        compiled = load_compiled(str(space), args or None)
    except ParamError as e:  # the recorded values: a mistake in them is the manifest's, not a --set flag's
        value = args.get(e.name, e.value)
        raise manifest_error(out_dir, m, "space_args", f"has {e.name}={value_text(value)}, which space file {space} "
                             f"refuses: {e.problem}") from None
    try:
        arch = compiled.encode(m["choices"])
    except UserError as e:
        # without the folder's copy of the space file, the file at the recorded path may have changed since
        where = "" if m.get("space_file") and space == out_dir / m["space_file"] else \
            ", the manifest's \"space\", which may have changed since the export"
        raise manifest_error(out_dir, m, "choices", f"do not fit space {compiled.name} (space file {space}{where}): "
                             f"{e}") from None
    shape = tuple(int(v) for v in compiled.arch_input_shape(arch))
    return compiled.build_standalone(arch, se=float(m.get("se", 0.0))), shape


def _check_input_shape(out_dir: Path, m: dict, built: tuple, whose: str) -> None:
    """The manifest's ``input_shape`` (when recorded) begins with ``built``: the network's own input shape (a cell
    network's (C, H, W); a timm network's channels, which takes any size), described by ``whose``; a hand-edited
    one would give timm's data tooling (``pretrained_cfg``) another input than the network takes."""
    shape = m.get("input_shape")
    if shape is None or tuple(shape[:len(built)]) == tuple(built):
        return
    what = f"{built[0]} input channels" if len(built) == 1 else f"inputs of {list(built)}"
    raise manifest_error(out_dir, m, "input_shape", f"is {shape}, but the network {whose} describe takes {what}")
