"""ONNX export with a checker pass and an onnxruntime parity check.

We use torch's TorchScript-based exporter (``dynamo=False``). Measured with torch 2.14 on a small
EfficientNet: 0.16 s against 4.6 s for the dynamo exporter, which also cannot emit opset 17 (it
writes opset 18 and its down-conversion fails on ``ReduceMean``). The legacy exporter is deprecated
but honours ``opset_version`` exactly and handles every op our spaces use.
"""

from __future__ import annotations

import functools
import importlib
import io
import logging
import os
import warnings
from typing import Sequence

import numpy as np
import torch
from torch import nn

from automl.errors import UserError
from automl._io import atomic_path
from automl.export._copy import cpu_copy

__all__ = ["MIN_OPSET", "DEFAULT_OPSET", "newest_opset", "opset_problem", "check_opset", "PARITY_TOLERANCE",
           "OnnxParityError", "export_onnx", "onnx_parity", "rounding_explains", "ort_model"]

_logger = logging.getLogger(__name__)

MIN_OPSET = 17
DEFAULT_OPSET = 17
PARITY_TOLERANCE = 1e-3  # on max|onnx - torch| / max|torch| (the largest logit of the inputs checked)
INPUT_NAME, OUTPUT_NAME = "input", "logits"


class OnnxParityError(RuntimeError):
    """onnxruntime and torch disagree on the exported model: a bug, never the user's fault."""


def _opset_limits() -> list[tuple[int, str, str]]:
    """``(newest opset, package, what it does up to that opset)`` for each part of this installation that limits
    the opset of an export: the installed onnx (its checker), torch's ONNX exporter (which refuses a newer one with
    ``Unsupported onnx_opset_version``) and onnxruntime (which runs the parity check and the latency measurement,
    and refuses to load a model of a newer opset); a part that does not say is left out."""
    limits = []
    try:
        import onnx
        limits.append((int(onnx.defs.onnx_opset_version()), "onnx", f"onnx {onnx.__version__} checks"))
    except Exception:  # noqa: BLE001 - only used to check and explain the opset
        pass
    for newest, package, what in ((_torch_newest_opset(), "torch", f"torch {torch.__version__}'s ONNX exporter "
                                   f"writes"), _onnxruntime_newest_opset()):
        if newest is not None:
            limits.append((newest, package, what))
    return limits


def newest_opset() -> tuple[int | None, str]:
    """The newest opset this installation can export, check and run, and what sets it: the lowest of the limits of
    :func:`_opset_limits` (onnx, torch's exporter, onnxruntime). ``(None, "")`` when none is known."""
    limits = _opset_limits()
    if not limits:
        return None, ""
    return min(n for n, _, _ in limits), ", ".join(f"{what} opsets up to {n}" for n, _, what in limits)


@functools.lru_cache(maxsize=1)
def _torch_newest_opset() -> int | None:
    """The newest opset torch's exporter accepts (``torch.onnx._constants.ONNX_MAX_OPSET``), None when this torch
    does not say; read lazily: ``torch.onnx`` is imported only where an export needs it."""
    try:
        return int(importlib.import_module("torch.onnx._constants").ONNX_MAX_OPSET)
    except (ImportError, AttributeError, TypeError, ValueError):
        return None


@functools.lru_cache(maxsize=1)
def _onnxruntime_newest_opset() -> tuple[int | None, str, str]:
    """(the newest opset of ONNX's main domain the installed onnxruntime runs, "onnxruntime", in words): the
    newest version among the operator schemas it was built with (``get_all_operator_schema``), the opsets it
    loads models of (a model of a newer one it refuses: "ONNX Runtime only *guarantees* support for models stamped
    with official released onnx opset versions"); ``(None, ...)`` when this onnxruntime does not say (or is not
    installed: the export then fails where it needs it)."""
    try:
        import onnxruntime
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_c
    except ImportError:
        return None, "onnxruntime", ""
    what = f"onnxruntime {onnxruntime.__version__} runs"
    try:
        versions = [int(s.since_version) for s in ort_c.get_all_operator_schema() if s.domain in ("", "ai.onnx")]
    except Exception:  # noqa: BLE001 - a build without schemas, another API: the limit is not known
        return None, "onnxruntime", what
    return (max(versions) if versions else None), "onnxruntime", what


def opset_problem(opset) -> str | None:
    """What is wrong with ``opset`` as the ONNX opset to export (an integer from :data:`MIN_OPSET` to
    :func:`newest_opset`), or None when it is fine; the caller names its flag or key before it."""
    limits = _opset_limits()
    newest = min((n for n, _, _ in limits), default=None)
    span = f"{MIN_OPSET} to {newest}" if newest is not None else f"{MIN_OPSET} or newer"
    if not isinstance(opset, int) or isinstance(opset, bool) or opset < MIN_OPSET:
        return f"ONNX export needs opset {MIN_OPSET} or newer (here: {span}); the default, {DEFAULT_OPSET}, works"
    if newest is not None and opset > newest:
        over = [(n, package, what) for n, package, what in limits if opset > n]
        why = ", ".join(f"{what} opsets up to {n}" for n, _, what in over)
        return (f"opset {opset} is newer than this installation can export and run ({why}); choose an opset from "
                f"{span} (the default is {DEFAULT_OPSET}), or upgrade {' and '.join(p for _, p, _ in over)}")
    return None


def check_opset(opset: int, name: str = "--opset") -> int:
    """``opset``, or a :class:`UserError` that names it as ``name`` (the flag or key it came from)."""
    problem = opset_problem(opset)
    if problem is not None:
        raise UserError(f"{name} {opset!r}: {problem}")
    return opset


def ort_model(path: str | os.PathLike) -> str | bytes:
    """What onnxruntime loads the ONNX file ``path`` from: its name, or the file's bytes where the name is not valid
    UTF-8 (a folder named in another encoding: onnxruntime's C++ core takes only UTF-8 names, and refuses others
    with a ``TypeError``)."""
    name = str(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        with open(name, "rb") as f:
            return f.read()
    return name


def _session(path):
    """onnxruntime's CPU session of the ONNX file ``path``, one intra-op thread."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1  # a few small inputs: threads only add contention
    return ort.InferenceSession(ort_model(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _run(session, x: torch.Tensor) -> np.ndarray:
    return session.run(None, {INPUT_NAME: x.cpu().numpy().astype(np.float32)})[0]


def _max_rel(a: np.ndarray, b: np.ndarray) -> float:
    """``max|a - b| / max|b|`` (0 for empty arrays, or where ``a`` equals ``b``): relative to the largest output,
    also where that is below 1: a fresh network's largest logit is 0.005 to 0.1 on the shipped spaces' MobileNetV3
    and cell networks, where an absolute difference of 1e-3 would pass a graph off by a tenth of every logit."""
    if not b.size:
        return 0.0
    diff = float(np.max(np.abs(a - b)))
    return diff / max(float(np.max(np.abs(b))), float(np.finfo(np.float32).tiny)) if diff else 0.0


def onnx_parity(path: str | os.PathLike, model: nn.Module, inputs: Sequence[torch.Tensor]) -> tuple[float, float]:
    """Run ``model`` (eval mode) and the ONNX file in onnxruntime's CPU provider on each input.

    Returns ``(max_abs_diff, max_rel_diff)`` over all inputs, where the relative difference is
    ``max|a - b| / max|b|`` with ``b`` the torch output.
    """
    session = _session(path)
    max_abs = max_rel = 0.0
    for x in inputs:
        with torch.no_grad():
            expected = model(x).float().cpu().numpy()
        got = _run(session, x)
        if got.shape != expected.shape:
            raise OnnxParityError(f"{path}: onnxruntime output shape {got.shape} != torch {expected.shape}")
        diff = float(np.max(np.abs(got - expected))) if expected.size else 0.0
        max_abs = max(max_abs, diff)
        max_rel = max(max_rel, _max_rel(got, expected))
    return max_abs, max_rel


def rounding_explains(path: str | os.PathLike, model: nn.Module, inputs: Sequence[torch.Tensor],
                      tolerance: float = PARITY_TOLERANCE) -> bool:
    """Whether, on every input, onnxruntime's output is within ``tolerance`` (relative, as in
    :func:`onnx_parity`) of ``model``'s exact result (a float64 copy, on the CPU, contiguous) or no further
    from it than torch's own float32 output is. Then a disagreement between the two is float32 rounding that
    an ill-conditioned network amplifies (untrained squeeze-excitation on inherited weights, BatchNorm
    statistics that do not fit the path: outputs of 1e5 whose last digits depend on the kernels' order of
    summation), not a broken export; a wrong graph stays far from the exact result while torch is close."""
    session = _session(path)
    exact_model = cpu_copy(model).double().to(memory_format=torch.contiguous_format).eval()
    for x in inputs:
        with torch.no_grad():
            got32 = model(x).double().cpu().numpy()
            exact = exact_model(x.detach().cpu().double()).numpy()
        got = _run(session, x).astype(np.float64)
        if got.shape != exact.shape:
            return False
        off = _max_rel(got, exact)
        if not (off < tolerance or off <= _max_rel(got32, exact)):
            return False
    return True


def _torch_export(model: nn.Module, example: torch.Tensor, path, opset: int) -> None:
    """torch's TorchScript exporter with a dynamic batch axis, into the file ``path``: exported into memory, then
    written (torch's C++ part takes only a file name that is valid UTF-8); an opset this torch refuses (where
    :func:`newest_opset` could not read its limit) is the user's choice, not a bug."""
    buffer = io.BytesIO()
    try:
        torch.onnx.export(
            model, (example,), buffer, dynamo=False, opset_version=opset, do_constant_folding=True,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    except RuntimeError as e:
        if "Unsupported onnx_opset_version" not in str(e):
            raise
        raise UserError(f"opset {opset}: torch {torch.__version__}'s ONNX exporter does not write it ({e}); "
                        f"choose an older opset (the default is {DEFAULT_OPSET})") from None
    with open(path, "wb") as f:
        f.write(buffer.getbuffer())


def export_onnx(model: nn.Module, path: str | os.PathLike, input_shape: Sequence[int], *, opset: int = 17,
                seed: int = 0, tolerance: float = PARITY_TOLERANCE) -> dict:
    """Export ``model`` to ``path`` (atomically) with a dynamic batch axis, check it, test parity.

    The model is exported in eval mode (its training flag is restored afterwards). Parity is measured on
    random inputs of batch sizes 1 and 3 (the export traces batch 2, so this also tests the dynamic
    axis). Raises :class:`OnnxParityError` when the relative difference exceeds ``tolerance``, unless
    :func:`rounding_explains` it (onnxruntime is no further from the exact, float64, result than torch is).
    Returns the manifest's ``onnx`` entry.
    """
    import onnx

    opset = check_opset(opset)
    c, h, w = (int(v) for v in input_shape)
    gen = torch.Generator().manual_seed(seed)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        example = torch.randn(2, c, h, w, generator=gen).to(device)
        with atomic_path(path, suffix=".onnx") as tmp, warnings.catch_warnings():
            # the TorchScript exporter warns that it is deprecated and about tracing; both are expected
            warnings.simplefilter("ignore")
            _torch_export(model, example, tmp, opset)
            # the model, not its file's name: onnx's checker takes only a name that is valid UTF-8
            onnx.checker.check_model(onnx.load(str(tmp)), full_check=True)
            inputs = [torch.randn(n, c, h, w, generator=gen).to(device) for n in (1, 3)]
            max_abs, max_rel = onnx_parity(tmp, model, inputs)
            if not max_rel < tolerance and rounding_explains(tmp, model, inputs, tolerance):
                _logger.warning("ONNX export of %s: onnxruntime and torch differ by %.3g (relative) on an "
                                "ill-conditioned network, where torch's float32 output is itself that far from "
                                "the exact (float64) one; onnxruntime is no further from it", type(model).__name__,
                                max_rel)
            elif not max_rel < tolerance:
                raise OnnxParityError(
                    f"ONNX export of {type(model).__name__} disagrees with torch: max |onnx - torch| = {max_abs:.3g} "
                    f"(relative {max_rel:.3g} >= {tolerance:g}); the exporter or a custom op is broken")
    finally:
        model.train(was_training)
    _logger.debug("exported %s (opset %d), parity max abs diff %.3g", path, opset, max_abs)
    return {"file": os.path.basename(str(path)), "opset": opset, "exporter": "torchscript",
            "input_name": INPUT_NAME, "output_name": OUTPUT_NAME, "dynamic_axes": {"batch": 0},
            "parity_max_abs_diff": max_abs, "parity_max_rel_diff": max_rel}
