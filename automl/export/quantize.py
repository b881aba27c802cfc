"""Edge measurements of an export: int8 quantisation, onnxruntime latency, file sizes, ONNX test accuracy.

``quantize_int8`` is onnxruntime's static quantisation (``quantize_static``): QDQ format, per-channel
int8 weights in the 7-bit range (``reduce_range``; and BatchNorm scales), uint8 activations, calibrated (min-max)
on batches of the run's own training data.
``measure_export`` adds to an export folder's manifest:

- ``latency``: the median onnxruntime latency of ``model.onnx`` (and ``model.int8.onnx``) on this
  machine, batch 1, ``threads`` intra-op threads, with the machine it was measured on;
- ``onnx.test_accuracy`` (when given test batches): the test accuracy of ``model.onnx`` through onnxruntime
  (null when the test batches hold no image), kept when the model could not be quantised;
- ``int8`` (when asked): the file, its size, its SHA-256 (``sha256``) and the fp32 size, the test accuracy of both
  models through onnxruntime (``fp32_test_accuracy``: ``onnx.test_accuracy`` again, measured on the same batches;
  measuring again with test batches but without quantising measures both again, so the two always agree), what of
  it onnxruntime runs in int8 (``coverage``: :func:`int8_coverage`; a note on the console where some of it runs in
  float), or ``{"file": None, "error": why}`` when the model could not be quantised (the fp32 file stays).

Quantising again replaces ``model.int8.onnx`` only after it is measured and the manifest written: an interrupt
before leaves the earlier model and its entry; the one moment between the two replacements leaves an entry whose
``sha256`` the earlier model does not match, which measuring again refuses (:func:`_quantise_and_record`).
"""

from __future__ import annotations

import hashlib
import logging
import operator
import os
import re
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from automl._io import atomic_path
from automl.export.manifest import (INT8_NAME, MANIFEST_NAME, error_entry, export_again, finite_number,
                                    manifest_error, read_manifest, write_manifest)
from automl.export.onnx import DEFAULT_OPSET, ort_model
from automl.errors import UserError
from automl.limits import MAX_BATCH
from automl.profile import CLOCKS, EXPORT_PROTOCOL, check_clock, machine_info, ort_session, time_session
from automl.report import WEIGHT_OPS, int8_float_words
from automl.train.threads import MAX_THREADS

__all__ = ["QUANTIZE_MODES", "INT8_NAME", "int8_summary", "quantize_int8", "int8_coverage", "onnx_accuracy",
           "onnx_latency", "measure_export", "calibration_batches", "check_inputs", "EXPORT_TIMED",
           "MeasurementsUnwritten"]

_logger = logging.getLogger(__name__)


class MeasurementsUnwritten(UserError):
    """The export folder refused the measurements' write (the measured manifest, or the check that the folder takes
    new files, :func:`measure_export`): the :class:`UserError` that says so, with the refused write's ``OSError``
    as ``os_error``, so that a caller writing the export itself (``automl export``) can say it as its own refused
    write, and only it: a user error with another ``OSError`` behind it (a file that could not be read) is not one."""

    def __init__(self, message: str, os_error: OSError):
        super().__init__(message)
        self.os_error = os_error

QUANTIZE_MODES = ("int8",)
CALIBRATION_SAMPLES = 256  # training images the activation ranges are calibrated on
LATENCY_REPEAT = 50
# a BatchNormalization left in the graph (a cell space's head: no conv to fold it into) has its 1-D scale
# quantised per channel along axis 0; onnxruntime's default axis 1 is out of range there, and it falls back to
# one scale for the tensor (with a warning). A chain space's ONNX holds no BatchNormalization: unaffected.
_EXTRA_OPTIONS = {"QDQOpTypePerChannelSupportToAxis": {"BatchNormalization": 0}}


class _Reader:
    """onnxruntime's CalibrationDataReader over a list of float32 arrays."""

    def __init__(self, input_name: str, batches: list[np.ndarray]):
        self.input_name, self._it = input_name, iter(batches)

    def get_next(self):
        x = next(self._it, None)
        return None if x is None else {self.input_name: x}

    def rewind(self):  # pragma: no cover - only some calibrators rewind
        raise NotImplementedError


def calibration_batches(batches: Iterable, samples: int = CALIBRATION_SAMPLES) -> list[np.ndarray]:
    """The first ``samples`` inputs of ``(x, y)`` batches (torch or numpy), as float32 arrays: whole batches,
    the last one cut to the images still needed; all of them when there are fewer. A batch without an image is
    left out (it calibrates nothing): batches that hold none give an empty list."""
    out, n = [], 0
    for x, *_ in _pairs(batches if samples > 0 else (), "calibration", labels=False):
        a = x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float32)
        a = a[:samples - n]
        if a.ndim >= 1 and not len(a):
            continue
        out.append(np.ascontiguousarray(a, dtype=np.float32))
        n += len(a)
        if n >= samples:
            break
    return out


def _pairs(batches, what: str, labels: bool = True) -> Iterator[tuple]:
    """The ``(x, y)`` batches of ``batches`` (without ``labels``: ``(x, ...)``, the images first); ones that are not
    batches (not iterable, or a batch that is not such a tuple or list) are a :class:`UserError` that starts with
    ``what``, not a Python error from deep inside."""
    how = "give (x, y) batches: x a batch of images, y the class index of each"
    try:
        it = iter(batches)
    except TypeError:
        raise UserError(f"{what}: got {type(batches).__name__}, not batches; {how}") from None
    for batch in it:
        if (not isinstance(batch, Sequence) or isinstance(batch, (str, bytes))
                or not (len(batch) == 2 if labels else len(batch) >= 1)):
            got = f"of {len(batch)} items" if isinstance(batch, Sequence) else f"of type {type(batch).__name__}"
            raise UserError(f"{what}: a batch {got}, not an (x, y) pair; {how}")
        yield tuple(batch)


def quantize_int8(fp32_path: str | os.PathLike, out_path: str | os.PathLike, calibration: list[np.ndarray],
                  input_name: str = "input") -> None:
    """Statically quantise ``fp32_path`` to ``out_path`` (atomically): QDQ, per-channel int8 weights in the 7-bit
    range, uint8 activations, min-max calibration on ``calibration`` (float32 batches); the model imports only the
    opsets its nodes use. Raises on failure."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not sum(len(b) for b in calibration):
        raise ValueError("no calibration data: the calibration batches hold no image")
    with tempfile.TemporaryDirectory(prefix="automl-int8-") as work, \
            atomic_path(out_path, suffix=".onnx") as tmp:
        # onnxruntime opens the files by name in C++, which takes only names that are valid UTF-8: it quantises
        # copies in a temporary folder, and the result is copied to out_path
        fp32, pre, int8 = (os.path.join(work, name) for name in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        shutil.copyfile(fp32_path, fp32)
        try:  # shape inference and graph cleanup, as onnxruntime recommends before quantising
            quant_pre_process(fp32, pre, skip_symbolic_shape=True)
            source = pre
        except Exception as e:  # noqa: BLE001 - an optional step
            _logger.debug("quant_pre_process failed (%s); quantising the model as exported", e)
            source = fp32
        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.WARNING))  # the quantiser logs every bias copy at INFO
        try:  # uint8 activations, int8 weights: onnxruntime's advice for x86-64 CPUs (its quantize_static
            # docstring); int8 activations ran 1.9x slower at equal accuracy on a digits export. Weights in the 7-bit
            # range (reduce_range): on x86-64 CPUs without VNNI (AVX2 only) onnxruntime's uint8 x int8 kernel adds
            # products in int16 and saturates at full range; a digits network lost 3.3 points there (91.4 -> 88.1 %;
            # reduced: 91.1 %), where 7 bits cost nothing measurable on the networks tried
            quantize_static(source, int8, _Reader(input_name, calibration), quant_format=QuantFormat.QDQ,
                            per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                            extra_options=_EXTRA_OPTIONS)
        finally:
            root.setLevel(level)
        _drop_unused_opsets(Path(int8))
        shutil.copyfile(int8, tmp)


def _drop_unused_opsets(path: Path) -> None:
    """Rewrite the ONNX model at ``path`` without the opset imports of domains none of its nodes uses:
    ``quant_pre_process`` (onnxruntime's graph optimiser) declares every domain onnxruntime knows (``ai.onnx.ml``,
    ``com.microsoft``, ...), which a runtime or tool that does not know them may refuse although no node needs
    them. The default domain stays."""
    import onnx

    model = onnx.load(str(path))
    used = {"", "ai.onnx"} | _domains(model.graph.node)
    for f in model.functions:
        used |= {f.domain} | _domains(f.node)
    kept = [o for o in model.opset_import if o.domain in used]
    if len(kept) < len(model.opset_import):
        del model.opset_import[:]
        model.opset_import.extend(kept)
        onnx.save(model, str(path))


def _domains(nodes) -> set[str]:
    """The operator domains of ``nodes`` and of the nodes of their subgraphs (an If's or a Loop's body)."""
    out = set()
    for node in nodes:
        out.add(node.domain)
        for a in node.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                out |= _domains(g.node)
    return out


# the weight-bearing ops as onnxruntime runs a quantised model: its int8 kernels (what its fusions make of a QDQ
# Conv, MatMul or Gemm, and the QOperator format's own ops), and the float ones (its fused float variants named as
# the op they come from)
_INT8_COMPUTE = frozenset({"QLinearConv", "ConvInteger", "QLinearMatMul", "MatMulInteger", "QGemm",
                           "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QLinearConvTranspose", "NhwcQLinearConv"})
_FLOAT_COMPUTE = {**{op: op for op in WEIGHT_OPS}, "FusedConv": "Conv", "NhwcFusedConv": "Conv", "FusedGemm": "Gemm",
                  "FusedMatMul": "MatMul"}
_FLOAT_TYPES = frozenset({1, 10, 11, 16})  # onnx.TensorProto's FLOAT, FLOAT16, DOUBLE, BFLOAT16
_NO_DATA = frozenset({"QuantizeLinear", "DequantizeLinear", "Shape", "Size"})  # they end a float region


def int8_coverage(model: bytes) -> dict:
    """How much of a quantised ONNX model (its bytes) onnxruntime runs in int8: its graph as onnxruntime's CPU
    graph optimiser leaves it (``ORT_ENABLE_EXTENDED``: the fusions that turn a QDQ Conv, MatMul or Gemm into an
    int8 kernel, without the machine's own layout changes). In the QDQ format every op sits between a
    DequantizeLinear and a QuantizeLinear, whether onnxruntime has an int8 kernel for it or not; one it has none for
    (HardSigmoid, Tanh, Mish, ...) runs in float between the two. Returns the manifest's ``int8.coverage``:
    ``{"quantized": n, "float": m, "float_ops": [...]}``, the weight-bearing ops (Conv, MatMul, Gemm, ...) run in
    int8 and in float, and the sorted op types run in float (none: ``[]``). Raises where onnxruntime cannot load
    the model."""
    import onnx
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    with tempfile.TemporaryDirectory(prefix="automl-int8-") as work:
        opts.optimized_model_filepath = os.path.join(work, "optimized.onnx")
        onnxruntime.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
        graph = onnx.load(opts.optimized_model_filepath).graph
    ops = [n.op_type for n in graph.node]
    floats = {_FLOAT_COMPUTE.get(ops[i], ops[i]) for i in _float_nodes(graph)}
    floats |= {_FLOAT_COMPUTE[op] for op in ops if op in _FLOAT_COMPUTE}
    return {"quantized": sum(op in _INT8_COMPUTE for op in ops), "float": sum(op in _FLOAT_COMPUTE for op in ops),
            "float_ops": sorted(floats)}


def _float_nodes(graph) -> set[int]:
    """The indices of the nodes of ``graph`` that compute on float tensors: those that read the model's float input
    or a DequantizeLinear's output, and the nodes that read theirs, up to a QuantizeLinear (an int8 kernel reads
    none; Shape and Size read no data)."""
    consumers = defaultdict(list)
    for i, node in enumerate(graph.node):
        for name in node.input:
            if name:  # "": an optional input left out
                consumers[name].append(i)
    weights = {t.name for t in graph.initializer}
    todo = [t.name for t in graph.input if t.name not in weights and t.type.tensor_type.elem_type in _FLOAT_TYPES]
    todo += [out for node in graph.node if node.op_type == "DequantizeLinear" for out in node.output]
    seen, found = set(), set()
    while todo:
        tensor = todo.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        for i in consumers.get(tensor, ()):
            op = graph.node[i].op_type
            if op not in _NO_DATA and op not in _INT8_COMPUTE and i not in found:
                found.add(i)
                todo.extend(graph.node[i].output)
    return found


def _takes(sizes, want) -> bool:
    """An image of ``sizes`` fits a model input of ``want`` (both without the batch axis; a name in ``want``
    instead of a size: any size)."""
    return len(sizes) == len(want) and all(not isinstance(w, int) or s == w for s, w in zip(sizes, want))


def _shown(want) -> str:
    """A model input's shape in words, its batch axis as N: ``(N, 1, 8, 8)``, a named axis ``any``."""
    return "(N, " + ", ".join(str(w) if isinstance(w, int) else "any" for w in want) + ")"


def check_inputs(what: str, got: tuple, want) -> None:
    """A batch of images of shape ``got`` fits a model's input of shape ``want`` (without the batch axis; a
    name instead of a size: any size), else a :class:`UserError` that starts with ``what``."""
    if len(got) >= 1 and _takes(got[1:], want):
        return
    raise UserError(f"{what} holds inputs of shape {tuple(got)}; the exported model takes {_shown(want)} (the "
                    f"manifest's input_shape): give (x, y) batches of images of that shape")


def onnx_accuracy(path: str | os.PathLike, batches: Iterable, input_name: str = "input",
                  threads: int = 1) -> float | None:
    """Top-1 accuracy of an ONNX model over ``(x, y)`` batches, run by onnxruntime; None (undefined) when the
    batches hold no image."""
    return _accuracy(ort_session(ort_model(path), threads), batches, input_name, str(path))


def _accuracy(session, batches: Iterable, input_name: str, label: str) -> float | None:
    """:func:`onnx_accuracy` of an onnxruntime session (``label``: its file, named in messages)."""
    want = next((i.shape[1:] for i in session.get_inputs() if i.name == input_name), None)
    correct = seen = 0
    for x, y in _pairs(batches, f"{label}: the test batches"):
        xa = x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float32)
        ya = y.detach().cpu().numpy() if hasattr(y, "detach") else np.asarray(y)
        if want is not None:
            check_inputs(f"{label}: a test batch", xa.shape, want)
        if ya.shape != (len(xa),):
            raise UserError(f"{label}: a test batch holds labels of shape {ya.shape} for {len(xa)} images; give "
                            f"(x, y) batches with y the class index of each image, of shape ({len(xa)},)")
        logits = session.run(None, {input_name: np.ascontiguousarray(xa, dtype=np.float32)})[0]
        correct += int((logits.argmax(1) == ya).sum())
        seen += len(ya)
    return correct / seen if seen else None


# what an export's latency is, and how to choose the wall clock, in the message that refuses a coarse clock
EXPORT_TIMED = "an exported network's latency (tens of microseconds for a small one)"
_USE_WALL = ("clock='wall' (a run's exports are timed with its search.cost_table's clock: profile that table with "
             "`automl space profile --clock wall`)")


def onnx_latency(path: str | os.PathLike, input_shape, threads: int = 1, batch: int = 1,
                 repeat: int = LATENCY_REPEAT, input_name: str = "input", clock: str = "wall") -> float:
    """Median onnxruntime latency (ms) of an ONNX model on this machine (after warm-up); ``clock`` as in
    :func:`automl.profile.time_session` (one this system cannot time with is a :class:`UserError`:
    :func:`automl.profile.check_clock`), as is a ``threads`` or ``batch`` :func:`measure_export` refuses."""
    _check_timing(clock, threads, batch)
    session = ort_session(ort_model(path), operator.index(threads))
    return _latency(session, input_shape, operator.index(batch), repeat, input_name, clock)


def _latency(session, input_shape, batch: int = 1, repeat: int = LATENCY_REPEAT, input_name: str = "input",
             clock: str = "wall") -> float:
    """:func:`onnx_latency` of an onnxruntime session."""
    x = np.random.default_rng(0).standard_normal((batch, *input_shape)).astype(np.float32)
    return time_session(session, {input_name: x}, repeat, max(3, repeat // 5), clock=clock)


def _size(path: Path) -> int:
    return path.stat().st_size


def _fp32_session(fp32: Path, out_dir: Path, manifest: dict, threads: int):
    """The onnxruntime session of an export's ``model.onnx``; a missing, truncated or damaged file, or one that
    this onnxruntime cannot run (a newer opset or IR version), is a :class:`UserError` that names it, says which
    and how to export it again."""
    again = f"export the network again into {out_dir}: {export_again(out_dir, manifest)}"
    if not fp32.is_file():
        raise UserError(f"{fp32}: the export's ONNX model is missing; {again}")
    try:
        return ort_session(ort_model(fp32), threads)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types for a file it cannot load
        why = _ort_reason(e)
    stamp = _onnx_stamp(fp32)
    if stamp is None:
        raise UserError(f"{fp32}: not a readable ONNX model ({why}): the file is truncated or damaged; "
                        f"{again}") from None
    import onnxruntime

    raise UserError(f"{fp32}: onnxruntime {onnxruntime.__version__} cannot run this ONNX model ({stamp}): {why}; "
                    f"{again} (it writes opset {DEFAULT_OPSET}), or run a newer onnxruntime") from None


def _ort_reason(e: Exception) -> str:
    """onnxruntime's reason for refusing a model, in one short line: without its ``[ONNXRuntimeError] ... failed:``
    prefix and the C++ source location and function signature it puts before the reason."""
    text = str(e).strip()
    if not text:
        return type(e).__name__
    why = text.splitlines()[0].rsplit("failed:", 1)[-1].strip()
    why = re.sub(r"^/\S+:\d+ [^()]*\(.*?\) (?=\S)", "", why).strip().rstrip(".")
    return why if len(why) <= 300 else why[:297] + "..."


def _onnx_stamp(path: Path) -> str | None:
    """The opset and IR version a parsed ONNX file is stamped with, or None when onnx cannot parse the file (it
    is truncated or damaged)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and whatever a damaged file leads to
        return None
    if not model.HasField("graph") or not model.graph.node:
        return None
    opsets = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    return f"opset {opsets[0] if opsets else 'unknown'}, IR version {model.ir_version}"


def _check_model_input(session, out_dir: Path, m: dict, name: str, shape: list[int]) -> None:
    """The manifest's ``onnx.input_name`` and ``input_shape`` are the ONNX model's input; else a
    :class:`UserError` naming the manifest's field (a hand-edited manifest), before anything is timed."""
    inputs = {i.name: i.shape for i in session.get_inputs()}
    if name not in inputs:
        raise manifest_error(out_dir, m, "onnx.input_name", f"is {name!r}, but {m['onnx']['file']}'s input is "
                             f"named {', '.join(map(repr, inputs))}")
    want = inputs[name][1:]
    if not _takes(shape, want):
        raise manifest_error(out_dir, m, "input_shape", f"is {shape}, but {m['onnx']['file']} takes inputs of "
                             f"shape {_shown(want)}")


def _writable(out_dir: Path) -> None:
    """The export folder takes new files (the measured manifest, the int8 model), checked before anything is
    timed; else a :class:`UserError`."""
    try:
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as e:
        raise MeasurementsUnwritten(f"{out_dir}: cannot write into this export folder ({e.strerror or e}), where "
                                    f"the measurements go (its manifest.json, and model.int8.onnx when quantising); "
                                    f"make it writable, or copy the folder somewhere writable and measure the copy",
                                    e) from None


def _check_timing(clock: str, threads, batch) -> None:
    """How a latency is to be timed (:func:`measure_export`'s and :func:`onnx_latency`'s ``clock``, ``threads`` and
    ``batch``), checked before anything is timed: one :class:`UserError` naming the argument, where a figure timed
    otherwise would be recorded as what it was not (another clock, threads or batch) or read 0 ms."""
    if clock not in CLOCKS:
        raise UserError(f"clock {clock!r}: supported: {', '.join(CLOCKS)}")
    for what, v, most in (("threads", threads, MAX_THREADS), ("batch", batch, MAX_BATCH)):
        try:
            n = operator.index(v) if not isinstance(v, bool) else None  # an int, or a numpy integer
        except TypeError:
            n = None
        if n is None or not 1 <= n <= most:
            raise UserError(f"{what} {v!r}: the {'intra-op threads' if what == 'threads' else 'images per run'} "
                            f"the latency is timed with must be a whole number from 1 to {most:,}")
    if clock == "cpu" and threads != 1:
        raise UserError(f"clock 'cpu' times the thread that calls onnxruntime, which runs every op only with one "
                        f"intra-op thread: use threads=1 (got {threads!r}) or clock='wall'")
    check_clock(clock, f"clock {clock!r}", EXPORT_TIMED, _USE_WALL)


def _check_arguments(quantize, calibration, clock: str, threads, batch, test) -> Callable[[], Iterable] | None:
    """:func:`measure_export`'s arguments, checked before anything is read or timed (one :class:`UserError`
    naming the argument); returns ``test`` as a callable (a list or tuple of batches: one that returns it)."""
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise UserError(f"quantize {quantize!r}: supported: {', '.join(QUANTIZE_MODES)}")
    if quantize is not None and calibration is None:
        raise UserError(f"quantize {quantize!r} needs calibration: (x, y) batches of training images its activation "
                        f"ranges are calibrated on (e.g. data.full.epoch(0))")
    _check_timing(clock, threads, batch)
    if test is None or callable(test):
        return test
    if isinstance(test, Sequence) and not isinstance(test, (str, bytes)):
        return lambda: test
    raise UserError(f"test: expected a callable that returns fresh (x, y) test batches (e.g. lambda: "
                    f"data.test.epoch(0)), or a list of them, got {type(test).__name__}: the test batches are "
                    f"read once per model measured")


def measure_export(out_dir: str | os.PathLike, *, quantize: str | None = None, calibration: Iterator | None = None,
                   test: Callable[[], Iterable] | Sequence | None = None, threads: int = EXPORT_PROTOCOL["threads"],
                   batch: int = EXPORT_PROTOCOL["batch"], clock: str = "wall", note_float: bool = True) -> dict:
    """Add latency (and int8) measurements to the export in ``out_dir``; returns the updated manifest.

    ``calibration``: ``(x, y)`` training batches, needed for ``quantize="int8"`` (batches without an image: the
    failed quantisation is recorded in ``int8.error``). ``test``: a callable returning fresh ``(x, y)`` test
    batches (or a list of them), for the ONNX test accuracies: ``model.onnx``'s as ``onnx.test_accuracy``, and
    the int8 model's (``int8.test_accuracy``, with ``int8.fp32_test_accuracy`` the fp32 one again) when one is
    quantised now or an earlier quantisation's is timed again (None: not measured, and an earlier measurement's
    accuracies are kept; batches without an image: recorded as None, undefined). The latency is timed on ``batch``
    images with ``threads`` intra-op threads (whole numbers from 1 to ``MAX_BATCH`` and ``MAX_THREADS``), by
    ``clock`` (:func:`automl.profile.time_session`; ``"cpu"`` with one thread only; a run with a latency table:
    the table's own batch, threads and clock). Before anything is timed, each of these is a :class:`UserError` that
    says how to mend it: an argument that is none of these, a manifest field it reads that is missing or not what
    an export writes (:func:`~automl.export.manifest.read_manifest`), a folder that cannot be written, a missing,
    damaged or (for this onnxruntime) too new ``model.onnx``, one whose input is not the manifest's
    ``input_shape``, calibration or test batches of another shape, calibration batches that hold NaN or inf, a
    ``clock`` this system reads too coarsely to time a network (:func:`automl.profile.check_clock`: Windows' thread
    CPU clock); an earlier quantisation's ``model.int8.onnx`` that onnxruntime cannot load, or that is not the
    model its int8 entry records (another size or SHA-256), is one too (before the manifest is written). Quantising
    replaces ``model.int8.onnx`` only after the manifest that describes it is written (:func:`_quantise_and_record`).
    ``note_float``: log one note where the int8 model runs ops in float (False: the caller says it itself, as
    ``automl export`` does in its summary).
    """
    test = _check_arguments(quantize, calibration, clock, threads, batch, test)
    threads, batch = operator.index(threads), operator.index(batch)
    out_dir = Path(out_dir)
    m = read_manifest(out_dir, require=("input_shape",))
    if not m.get("onnx"):
        raise UserError(f"{out_dir}: no ONNX model to measure or quantise (export with ONNX on)")
    if m["onnx"].get("file") is None:
        raise UserError(f"{out_dir}: no ONNX model to measure or quantise: its ONNX export failed "
                        f"({m['onnx'].get('error')}); export the network again: {export_again(out_dir, m)}")
    fp32 = out_dir / m["onnx"]["file"]
    name = m["onnx"].get("input_name", "input")
    shape = m["input_shape"]
    _writable(out_dir)
    import onnxruntime

    session = _fp32_session(fp32, out_dir, m, threads)
    _check_model_input(session, out_dir, m, name, shape)
    batches = calibration_batches(calibration) if quantize == "int8" else []
    for b in batches:  # the caller's data, not the model, when it does not fit
        check_inputs(f"{out_dir}: a calibration batch", b.shape, shape)
        if not np.isfinite(b).all():  # min-max ranges over NaN or inf: no scale to quantise with
            raise UserError(f"{out_dir}: a calibration batch holds NaN or infinite values; give (x, y) batches of "
                            f"finite training images, which the int8 model's activation ranges are calibrated on")
    if test is not None:  # test batches that do not fit the model stop here, before anything is written
        m["onnx"]["test_accuracy"] = _accuracy(session, test(), name, str(fp32))
    latency = {"fp32_ms": _latency(session, shape, batch, input_name=name, clock=clock), "batch": batch,
               "threads": threads, "clock": clock, "runtime": f"onnxruntime {onnxruntime.__version__}",
               "machine": machine_info(threads)}
    m["latency"] = latency
    if quantize == "int8":
        _quantise_and_record(out_dir, m, batches, test, latency)
    else:
        _earlier_int8(out_dir, m, latency, test)
        _write_measurements(out_dir, m)
    if note_float:
        _note_float(out_dir, m.get("int8"))
    return m


class _NotQuantised(Exception):
    """The int8 entry just written records a failed quantisation: its staged model is not moved into place."""


def _quantise_and_record(out_dir: Path, m: dict, batches: list[np.ndarray], test, latency: dict) -> None:
    """Quantise into a temporary file in ``out_dir`` (:func:`_int8_entry`), measure it there, write the manifest
    with its int8 entry (which records the model's ``sha256``), and only then move it into place as
    ``model.int8.onnx``. The folder holds an earlier model and the entry that describes it until the manifest is
    replaced: an interrupt (Ctrl-C, an error) while quantising or measuring leaves both as they were, and the
    temporary file is removed. A process killed between the manifest's replacement and the model's leaves the new
    entry beside the earlier model (or none): measuring again without quantising refuses that model, whose SHA-256
    is not the entry's (:func:`_earlier_int8_session`), or records it missing; quantising again mends it. A failed
    quantisation's entry is written first, then the earlier model removed (one that no entry describes is not
    timed: :func:`_earlier_int8`)."""
    int8 = out_dir / INT8_NAME
    try:
        with atomic_path(int8, suffix=".onnx") as staged:
            m["int8"] = _int8_entry(out_dir, m, batches, test, latency, staged)
            _write_measurements(out_dir, m)
            if m["int8"].get("file") is None:
                raise _NotQuantised  # atomic_path removes the staged file, and leaves model.int8.onnx
    except _NotQuantised:
        int8.unlink(missing_ok=True)


def _write_measurements(out_dir: Path, m: dict) -> None:
    """Write the measured manifest ``m``; a failed write is a :class:`UserError`."""
    try:
        write_manifest(out_dir, m)
    except OSError as e:  # the folder was writable when the measuring began: it filled up, or was made read-only
        raise MeasurementsUnwritten(f"{out_dir / MANIFEST_NAME}: cannot write the measurements ({e.strerror or e}); "
                                    f"free space there or make the folder writable, and measure again", e) from None


def _earlier_int8(out_dir: Path, m: dict, latency: dict, test) -> None:
    """Measuring without quantising: the ``model.int8.onnx`` of an earlier quantisation, which the manifest's int8
    entry describes, is timed again with the fp32 model (``latency["int8_ms"]``; export_architecture removes it
    with the model it was made from), and with ``test`` batches, on which ``onnx.test_accuracy`` was just measured,
    its test accuracy is measured again too: the entry's two accuracies (int8, and fp32 as ``fp32_test_accuracy``)
    stay those of one set of batches, and its fp32 one the manifest's ``onnx.test_accuracy``. When it is gone
    (removed, or the folder copied without it) the entry becomes a failure entry (``{"file": None, "error"}``) that
    says so and how to get it back: no figure of a missing model is kept. A ``model.int8.onnx`` that no int8 entry
    describes (none, or a failed quantisation's) is not timed or recorded, as nothing says which model it was made
    from: a warning says so."""
    entry, int8 = m.get("int8") or {}, out_dir / INT8_NAME
    if entry.get("file") and int8.is_file():
        session, data = _earlier_int8_session(out_dir, m, latency["threads"])
        _record_coverage(entry, data)
        name = m["onnx"].get("input_name", "input")
        latency["int8_ms"] = _latency(session, m["input_shape"], latency["batch"], input_name=name,
                                      clock=latency["clock"])
        if test is not None:
            entry["test_accuracy"] = _accuracy(session, test(), name, str(int8))
            entry["fp32_test_accuracy"] = m["onnx"]["test_accuracy"]
    elif entry.get("file"):
        m["int8"] = {"file": None, "error": f"{INT8_NAME} is missing: the int8 model an earlier quantisation wrote "
                     f"was removed, or the export folder copied without it (its figures are dropped); quantise "
                     f"again: measure_export with quantize='int8' and calibration batches, or "
                     f"{export_again(out_dir, m)} --quantize int8 --recipe RECIPE.yaml"}
        _logger.warning("%s: %s", out_dir, m["int8"]["error"])
    elif int8.is_file():
        _logger.warning("%s: not timed or recorded: the manifest describes no int8 model (%s), so nothing says "
                        "which model it was made from; quantise again (quantize='int8' with calibration batches) "
                        "to measure this export's, or remove it", int8,
                        "its int8 entry records a failed quantisation" if entry else "it has no int8 entry")


def _earlier_int8_session(out_dir: Path, m: dict, threads: int) -> tuple:
    """The onnxruntime session (``threads`` intra-op threads) of the ``model.int8.onnx`` an earlier quantisation
    wrote, made from the bytes that are checked, and those bytes; one onnxruntime cannot load (truncated, damaged,
    replaced), or a model of another size or SHA-256 than the int8 entry records (another export's, copied in; or a
    quantisation killed between writing the manifest and moving its model into place), is a :class:`UserError`
    naming it. An entry without ``sha256`` (an earlier automl's) is checked by its size alone."""
    int8 = out_dir / INT8_NAME
    again = (f"quantise again (quantize='int8' with calibration batches), or export the network again: "
             f"{export_again(out_dir, m)}")
    try:
        data = int8.read_bytes()
        session = ort_session(data, threads)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types for a file it cannot load
        raise UserError(f"{int8}: onnxruntime cannot load the int8 model an earlier quantisation wrote "
                        f"({_ort_reason(e)}), which the manifest's int8 entry describes; {again}") from None
    recorded, digest = m["int8"].get("size_bytes"), m["int8"].get("sha256")
    if finite_number(recorded) and recorded != len(data):  # a model, but not the one quantised here
        raise UserError(f"{int8}: {len(data):,} bytes, where the manifest's int8 entry records the {recorded:,} "
                        f"bytes of the int8 model an earlier quantisation wrote: another model (another export's?) "
                        f"took its place, and its latency would be recorded as this export's; {again}")
    if digest is not None and digest != _sha256(data):
        raise UserError(f"{int8}: its SHA-256 is not the one the manifest's int8 entry records (\"int8.sha256\"): "
                        f"another model took its place (another export's, copied in), or a quantisation was cut "
                        f"short between writing the manifest and moving its model into place, and its latency "
                        f"would be recorded as this export's; {again}")
    return session, data


def _sha256(data: bytes) -> str:
    """The SHA-256 of a file's bytes, as the int8 entry's ``sha256`` records it (64 lowercase hex digits)."""
    return hashlib.sha256(data).hexdigest()


def _int8_entry(out_dir: Path, m: dict, batches: list[np.ndarray], test, latency: dict, staged: Path) -> dict:
    """Quantise the export's ``model.onnx`` on the (checked) calibration ``batches`` into ``staged`` (the temporary
    file that becomes ``model.int8.onnx``: :func:`_quantise_and_record`), time it into ``latency`` and measure its
    test accuracy; the manifest's ``int8`` entry, with the size and SHA-256 of the bytes measured
    (``{"file": None, "error"}`` when it could not be quantised: the fp32 model stays)."""
    fp32, name, shape = out_dir / m["onnx"]["file"], m["onnx"].get("input_name", "input"), m["input_shape"]
    threads, batch, clock = latency["threads"], latency["batch"], latency["clock"]
    entry: dict = {"file": INT8_NAME, "format": "QDQ", "weights": "int8 per channel, 7-bit range",
                   "activations": "uint8", "fp32_size_bytes": _size(fp32)}
    try:
        quantize_int8(fp32, staged, batches, input_name=name)
    except Exception as e:  # noqa: BLE001 - any failure keeps the fp32 model and says why
        return {"file": None, "error": error_entry(e)}
    data = staged.read_bytes()
    entry.update(size_bytes=len(data), sha256=_sha256(data), calibration_samples=sum(len(b) for b in batches))
    try:  # a quantised model this onnxruntime cannot run (an op without an int8 kernel) is no int8 model either
        session = ort_session(data, threads)  # one session of the bytes recorded, timed and tested
        latency["int8_ms"] = _latency(session, shape, batch, input_name=name, clock=clock)
        if test is not None:  # named in messages as the file it becomes
            entry["test_accuracy"] = _accuracy(session, test(), name, str(out_dir / INT8_NAME))
            entry["fp32_test_accuracy"] = m["onnx"]["test_accuracy"]
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - as above: the fp32 model stays, and the run goes on
        latency.pop("int8_ms", None)
        return {"file": None, "error": error_entry(e, "quantised, but onnxruntime cannot run the int8 model: ")}
    _record_coverage(entry, data)
    return entry


def _record_coverage(entry: dict, data: bytes) -> None:
    """Record in the int8 entry ``entry`` the ``coverage`` of the int8 model's bytes ``data``
    (:func:`int8_coverage`); where it cannot be counted the entry keeps what it holds (an earlier count of these
    bytes, or none)."""
    try:
        entry["coverage"] = int8_coverage(data)
    except Exception as e:  # noqa: BLE001 - a note on a model already timed and tested: it never fails the export
        _logger.warning("warning: %s: how much of it runs in int8 was not counted (%s)", INT8_NAME, e)


def _note_float(out_dir: Path, entry) -> None:
    """One note on the console where the int8 model in ``out_dir`` (its manifest entry ``entry``) runs ops in float
    (its ``coverage``): an int8 model that is not int8 throughout says so once."""
    words = int8_float_words(entry) if isinstance(entry, dict) and entry.get("file") else None
    if words:  # in report.md's and `automl export`'s words
        _logger.warning("%s: note: %s is not int8 throughout: it %s (\"int8.coverage\" in its %s)", out_dir,
                        INT8_NAME, words, MANIFEST_NAME)


def int8_summary(manifest: dict) -> dict | None:
    """The int8 figures of an export for results.json: None when not quantised, ``{"error"}`` when it failed."""
    entry = manifest.get("int8")
    if entry is None:
        return None
    if entry.get("error"):
        return {"error": entry["error"]}
    return {"test_accuracy": entry.get("test_accuracy"), "fp32_onnx_test_accuracy": entry.get("fp32_test_accuracy"),
            "latency_ms": (manifest.get("latency") or {}).get("int8_ms"), "size_bytes": entry.get("size_bytes"),
            "fp32_size_bytes": entry.get("fp32_size_bytes"), "coverage": entry.get("coverage")}
