"""Latency tables measured on this machine, and cost tables read from JSON files.

``automl space profile SPACE --out TABLE.json`` builds, for every choice of every decision, the op in
its real context (input shape and channels in the chain, or in the cell), exports it alone as a small
ONNX graph and times it with onnxruntime's CPU provider (medians over repeats after warm-up). The
parts that are not searched (stem, fixed layers, head; for cells the preprocessing and output convs)
are timed the same way and make the fixed cost. Predicted latency = fixed + sum of chosen costs.

onnxruntime spends a roughly constant time per ``session.run`` call (feeding the input, allocating the
output). A whole network pays it once, while the table would add it once per piece; the table
therefore times a trivial graph, subtracts that overhead from every piece and adds it once to the
fixed cost.

Table file (JSON)::

    {"format": "automl-cost-table", "version": 1, "metric": "latency", "unit": "ms",
     "space": {"name", "file", "cwd", "args", "kind", "input_shape", "num_classes", "params_fingerprint",
               "pieces_fingerprint"},
     "machine": {"cpu", "cores", "machine_cores", "cpu_quota", "threads", "system"},
     "runtime": {"name": "onnxruntime", "version"},
     "batch", "input_size": [C, H, W], "repeat", "warmup", "clock": "wall" | "cpu", "overhead", "calibration",
     "fixed": 1.23, "fixed_parts": {"stem": ..., ...},
     "decisions": [{"name": "s1_1", "choices": {"ir_k3_e3": 0.41, ...}}, ...]}

``space.file`` is the space file as ``space profile`` was given it, ``space.cwd`` the working folder it ran in
(a relative ``file`` is that folder's; tables written before it was recorded have none).

A recipe searches on it with ``search.cost: latency`` and ``search.cost_table: TABLE.json``.

What a profile has measured is kept in a partial file as it goes (``automl space profile --out TABLE.json``:
``TABLE.json.partial``, written atomically); a profile stopped by Ctrl-C, a signal or an error resumes from it
when run again with the same settings, and the file is removed once the table is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
import platform
import re
import shlex
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, NoReturn

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from automl._io import (DuplicateKey, UnreadableText, atomic_write_json, duplicate_key_line, pasted_path, pasted_space,
                        read_utf8_text, unique_keys)
from automl.compile.costs import BUILTIN_METRICS
from automl.errors import UserError, json_text
from automl.limits import MAX_BATCH
from automl.nn import create_op, parts
from automl.nn.measure import count_macs
from automl.train.threads import MAX_THREADS, cpu_quota, usable_cores

__all__ = ["RUNTIMES", "CLOCKS", "TABLE_FORMAT", "EXPORT_PROTOCOL", "CostTableRefusal", "CostTableMismatch",
           "machine_info", "ort_session", "time_session",
           "profile_space", "read_cost_table", "apply_cost_table", "params_fingerprint", "write_cost_table",
           "table_protocol", "table_clock", "timing_of", "table_timing", "partial_path", "partial_summary",
           "remove_partial", "clock_step", "check_clock", "usable_cores", "threads_warning", "profile_command"]

RUNTIMES = ("onnxruntime",)
TABLE_FORMAT = "automl-cost-table"
TABLE_VERSION = 1
TABLE_UNIT = "ms"  # what `space profile` writes; recipe budgets in time units are turned into ms
# how an export's latency is measured (automl.export.quantize.measure_export) by default, and what
# `automl space profile` measures by default; a run with search.cost_table times its exports at the table's own
# batch and threads instead (:func:`table_protocol`), so that the table's costs and the exports' latencies compare
EXPORT_PROTOCOL = {"batch": 1, "threads": 1}
PARTIAL_FORMAT = "automl-profile-partial"  # what an interrupted profile measured (partial_path)

_logger = logging.getLogger(__name__)


class CostTableRefusal(UserError):
    """A cost table file that :func:`read_cost_table` (or :func:`table_timing`) read but refuses: a field it cannot
    use, or a space no table of one cost per choice describes. ``str()``: the whole message (the table, what is
    wrong, how to fix it); ``reason``: what is wrong alone (no file named ahead of it, no fix after it), for a
    caller that says it in its own words, as ``automl export --recipe`` notes a table that prices nothing."""

    def __init__(self, message: str = "", reason: str | None = None):
        super().__init__(message)
        self.reason = message if reason is None else reason

    @classmethod
    def of(cls, head: str, why: str, fix: str = "", sep: str = "; "):
        """The refusal ``HEAD WHY[SEP FIX]`` whose ``reason`` is ``why`` alone: ``head`` names the table (and the
        recipe key that gave it) and ends with its own separator (``"TABLE: "``), ``fix`` says what to do."""
        return cls(f"{head}{why}{sep + fix if fix else ''}", why)


class CostTableMismatch(CostTableRefusal):
    """A cost table that does not fit the space it is read for: other decisions or choices, another input size,
    other widths or layers (another space's table, or this space's before its file or ``--set`` values changed)."""


# ---- the machine and the runtime ---------------------------------------------------------------

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info(threads: int) -> dict:
    """What the measurements depend on: CPU model, ``cores`` (the CPUs this process could keep busy,
    :func:`usable_cores`: those it may run on, ``taskset`` or a container's cpuset narrow them, and no more than a
    cgroup CPU quota, ``docker --cpus`` or a Kubernetes CPU limit, rounded up: what the measurement could use),
    ``machine_cores`` (all the machine's CPUs, ``os.cpu_count()``), ``cpu_quota`` (that quota in CPUs, 1.5 for
    ``docker --cpus=1.5``; null without one), intra-op threads."""
    quota = cpu_quota()  # read once: "cores" and "cpu_quota" describe the same quota
    return {"cpu": _cpu_model(), "cores": usable_cores(quota), "machine_cores": os.cpu_count(),
            "cpu_quota": None if quota is None else round(quota, 3), "threads": int(threads),
            "system": platform.system()}


def threads_warning(threads: int, cores: int, effect: str, what: str | None = None) -> str | None:
    """The warning for ``threads`` above ``cores``, the CPUs this process can keep busy (:func:`usable_cores`: its
    CPU affinity, a cgroup CPU quota), or None within them; ``effect``: what threads taking turns on them do to the
    figures, ``what``: the count's name (``--threads N``). ``automl space profile`` and the benchmarks still run:
    the count is the user's to choose."""
    if threads <= cores:
        return None
    return (f"warning: {what or f'--threads {threads}'} is more than the {cores} CPU{'s' if cores != 1 else ''} "
            f"this process can use (its CPU affinity and any cgroup CPU quota): the threads take turns on them, "
            f"{effect}; use --threads {cores} or fewer here")


def ort_session(model, threads: int = 1):
    """An onnxruntime CPU session for a model file or serialized bytes, with ``threads`` intra-op threads
    (sequential execution, all graph optimisations: what a deployed model gets)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), sess_options=opts,
                                providers=["CPUExecutionProvider"])


# upper bounds of the profile arguments: far above any real measurement, low enough that a typo (an extra digit
# or ten) is a message instead of an allocation the machine cannot make, 10^5 threads, or a run of days
# (MAX_THREADS: a recipe's bound on its threads, automl.train.threads; MAX_BATCH: a recipe's on its batches)
MAX_REPEAT = 10**5  # timed runs per piece

MIN_SECONDS = 0.1  # a piece of a few microseconds is timed over at least this long, not just `repeat` runs


CLOCKS = ("wall", "cpu")
_CLOCK_NAMES = {"wall": "wall clock (time.perf_counter)", "cpu": "thread CPU clock (time.thread_time)"}
# a clock that only advances in steps of this many seconds or more cannot time pieces of microseconds (Windows
# counts a thread's CPU time in scheduler ticks of 15.6 ms); Linux's clocks step in nanoseconds, though reading one
# takes a few microseconds on a VM (a cost the overhead taken off every piece removes)
MAX_CLOCK_STEP = 1e-4


def _clock(clock: str) -> Callable[[], float]:
    """The function that reads ``clock`` (:data:`CLOCKS`), looked up when called (a test may replace it); any
    other name is a :class:`UserError` (one of another spelling must not time by a clock it does not name)."""
    if clock not in CLOCKS:
        raise UserError(f"clock {clock!r}: use 'wall' (elapsed time) or 'cpu' (the calling thread's CPU time)")
    return time.perf_counter if clock == "wall" else time.thread_time


def check_clock(clock: str, flag: str = "--clock", timed: str = "pieces of a few microseconds",
                fix: str = "--clock wall") -> None:
    """A :class:`UserError` when ``clock`` (:data:`CLOCKS`) advances in steps too coarse to time ``timed`` on this
    system (:func:`clock_step` over :data:`MAX_CLOCK_STEP`: their medians would read 0 ms or whole steps), naming
    ``flag`` (the setting that chose the clock) and, for the CPU clock, ``fix`` (how to choose the wall clock)."""
    step = clock_step(clock)
    if step > MAX_CLOCK_STEP:
        steps = f"in steps of {1e3 * step:.3g} ms" if math.isfinite(step) else "too rarely to be read"
        raise UserError(f"{flag}: this system's {_CLOCK_NAMES[clock]} advances {steps}, too coarse to time {timed}"
                        f": the medians would read 0 ms or whole steps" + (f"; use {fix}" if clock == "cpu" else ""))


def clock_step(clock: str, limit_s: float = 0.25) -> float:
    """The smallest step (seconds) that ``clock`` (:data:`CLOCKS`) advances by, read until it has changed three
    times or for ``limit_s`` of wall time (``inf`` when it never changed)."""
    now = _clock(clock)
    steps, end, last = [], time.perf_counter() + limit_s, now()
    while len(steps) < 3 and time.perf_counter() < end:
        t = now()
        if t != last:
            steps.append(t - last)
            last = t
    return min(steps, default=math.inf)


def time_session(session, inputs: dict, repeat: int, warmup: int, min_seconds: float = MIN_SECONDS,
                 clock: str = "wall") -> float:
    """Median time of ``session.run`` in milliseconds, after ``warmup`` untimed runs; at least ``repeat``
    timed runs, more for fast graphs (about ``min_seconds`` in all).

    ``clock="wall"``: elapsed time (the latency). ``clock="cpu"``: the CPU time of the calling thread,
    which with one intra-op thread is where onnxruntime runs every op: on a machine shared with other
    work it stays what the latency would be on an idle machine, where wall time grows with the load.
    """
    now = _clock(clock)
    t0 = time.perf_counter()
    for _ in range(max(1, warmup)):
        session.run(None, inputs)
    per_run = (time.perf_counter() - t0) / max(1, warmup)
    times = []
    for _ in range(max(repeat, min(100 * repeat, int(min_seconds / max(per_run, 1e-7))))):
        t0 = now()
        session.run(None, inputs)
        times.append(now() - t0)
    return 1e3 * statistics.median(times)


def _onnx_bytes(module: nn.Module, shapes: list[tuple[int, ...]], opset: int = 17) -> bytes:
    buf = io.BytesIO()
    args = tuple(torch.randn(*s) for s in shapes)
    names = [f"x{i}" for i in range(len(shapes))]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, buf, dynamo=False, opset_version=opset, do_constant_folding=True,
                          input_names=names, output_names=["y"])
    return buf.getvalue()


def time_module(module: nn.Module, shapes: list[tuple[int, ...]], threads: int, repeat: int, warmup: int,
                clock: str = "wall") -> float:
    """Median onnxruntime latency (ms) of ``module`` exported alone with inputs of ``shapes`` (batch included)."""
    session = ort_session(_onnx_bytes(module, shapes), threads)
    rng = np.random.default_rng(0)
    inputs = {f"x{i}": rng.standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}
    return time_session(session, inputs, repeat, warmup, clock=clock)


class _Tiny(nn.Module):
    """The trivial graph whose latency is onnxruntime's per-call overhead."""

    def forward(self, x):
        return torch.relu(x)


class _Sum2(nn.Module):
    """The two preprocessing convs of a cell, each on its own input."""

    def __init__(self, a: nn.Module, b: nn.Module):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x0, x1):
        return self.a(x0), self.b(x1)


# ---- the pieces of a space ---------------------------------------------------------------------

class _Pieces:
    """The distinct pieces of a space, ``key -> (factory, input shapes without batch, where)``, and how the
    table is assembled from them: ``fixed`` (list of keys) and ``choices[d][k]`` (list of keys, summed)."""

    def __init__(self, cs):
        self.pieces: dict[tuple, tuple[Callable[[], nn.Module], list[tuple[int, ...]], str]] = {}
        self.fixed: list[tuple] = []
        self.choices: list[list[list[tuple]]] = [[[] for _ in d.choices] for d in cs.decisions]

    def add(self, key, factory, shapes, where):
        if key not in self.pieces:
            self.pieces[key] = (factory, [tuple(s) for s in shapes], where)
        return key

    @staticmethod
    def out_shape(factory, shapes):
        mod = factory().to("meta")
        if len(shapes) == 1:
            return count_macs(mod, shapes[0])[1]
        with torch.no_grad():
            ys = mod(*(torch.empty((1, *s), device="meta") for s in shapes))
        return tuple(y.shape[1:] for y in ys)


def _pieces(cs):
    """``(pieces, fixed, choices)``: see :class:`_Pieces`."""
    p = _Pieces(cs)
    shape = tuple(int(v) for v in cs.input_shape)
    (_chain_pieces if cs.kind == "chain" else _cell_pieces)(p, cs.plan, shape)
    return p.pieces, p.fixed, p.choices


def _chain_pieces(p: _Pieces, plan, shape) -> None:
    act = plan.activation

    def stem():
        return nn.Sequential(*parts.chain_stem(plan))
    p.fixed.append(p.add(("stem",), stem, [shape], "stem"))
    shape = p.out_shape(stem, [shape])
    for layer in plan.layers:
        keys = []
        for op in layer.choices:
            if op == "skip":
                keys.append(None)
                continue
            key = ("op", op, layer.in_ch, layer.out_ch, layer.stride, shape, act, layer.se, layer.act)
            keys.append(p.add(key, lambda op=op, layer=layer: parts.chain_op(plan, layer, op), [shape], layer.name))
        first = next(k for k in keys if k is not None)
        nxt = p.out_shape(p.pieces[first][0], [shape])
        if layer.decision is None and layer.gate is not None:  # a fixed layer of an elastic depth
            for k, active in enumerate(layer.gate[1]):
                if active:
                    p.choices[layer.gate[0]][k].append(first)
        elif layer.decision is None:
            p.fixed.append(first)
        else:
            for k, key in enumerate(keys):
                if key is not None:
                    p.choices[layer.decision][k].append(key)
        shape = nxt
    head_in = parts.chain_head_in(plan)
    p.fixed.append(p.add(("head",), lambda: nn.Sequential(*parts.chain_head_sequence(plan, head_in)), [shape],
                         "head"))


def _cell_pieces(p: _Pieces, plan, shape) -> None:
    def cstem():
        return parts.cell_stem(plan)
    p.fixed.append(p.add(("stem",), cstem, [shape], "stem"))
    prev_prev = prev = p.out_shape(cstem, [shape])
    for ci, inst in enumerate(plan.instances):
        if inst.op is not None:  # a fixed reduction block between cells
            def block(inst=inst):
                return parts.cell_block(inst)
            p.fixed.append(p.add(("block", inst, prev), block, [prev], f"{inst.op} {ci + 1}"))
            prev_prev = prev = p.out_shape(block, [prev])
            continue
        t = plan.templates[inst.template]

        def pre(inst=inst):
            return _Sum2(*parts.cell_preprocess(inst))
        p.fixed.append(p.add(("pre", inst, prev_prev, prev), pre, [prev_prev, prev], f"cell {ci + 1} preprocessing"))
        in_shape = p.out_shape(pre, [prev_prev, prev])[1 if inst.one_input else 0]
        oshape = (inst.channels, *(-(-v // t.stride) for v in in_shape[1:]))
        c = inst.channels
        for _ in (t.nodes if t.output == "loose" else ()):
            p.fixed.append(p.add(("out", c, oshape), lambda c=c: parts.out_conv(c), [oshape], f"cell {ci + 1} output"))
        for node in t.nodes:
            for d in node.op_decisions:
                for k, op in enumerate(node.ops):
                    key = ("cellop", op, c, oshape)
                    p.choices[d][k].append(p.add(key, lambda op=op, c=c: create_op(op, c, c, 1), [oshape],
                                                 f"cell {ci + 1} {op}"))
        prev_prev, prev = prev, (inst.out_channels, *oshape[1:])
    p.fixed.append(p.add(("head",), lambda: nn.Sequential(*parts.cell_head(plan)), [prev], "head"))


def _pieces_fingerprint(pieces: dict, fixed: list, choices: list) -> str:
    """A short hash of what a table's pieces are (op, channels, stride, input shape, activation, squeeze-excitation)
    and how they make the table: a space that kept its decisions and widths but changed a stride, an activation or
    a size gives a different one, where :func:`params_fingerprint` stays the same."""
    data = json.dumps([[[repr(k), [list(s) for s in v[1]]] for k, v in pieces.items()], list(map(repr, fixed)),
                       [[list(map(repr, keys)) for keys in row] for row in choices]]).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def params_fingerprint(cs) -> str:
    """A short hash of the space's ``params`` costs: different widths or ops give a different one."""
    ct = cs.cost_table
    data = json.dumps([ct.fixed["params"], ct.costs("params").tolist()]).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def profile_space(cs, *, runtime: str = "onnxruntime", threads: int = 1, batch: int = 1, repeat: int = 20,
                  warmup: int | None = None, metric: str = "latency", progress: bool = True,
                  calibrate: int = 8, clock: str = "wall", partial: str | os.PathLike | None = None) -> dict:
    """Measure the latency table of a compiled space on this machine; returns the table (a dict).

    ``calibrate`` (chain spaces): that many random whole networks are timed as well, and every piece is
    corrected by what being timed alone changes (a scale and a per-piece cost, fitted by least squares).

    ``partial``: a file that keeps what has been measured, written atomically as the profile goes (at most
    once a second) and when it stops on an error, Ctrl-C or a signal turned into an exception. A profile of
    the same space, machine, runtime and settings resumes from it and times only the rest; one of other settings
    is a :class:`UserError` naming the setting and the file. The caller removes it once the table is written
    (:func:`remove_partial`). None: nothing is kept.
    """
    check_profile_args(runtime, threads, batch, repeat, clock)
    _check_counts(warmup, calibrate)
    if cs.cost_table.context_decisions:
        raise UserError(_elastic_refusal(cs))
    warmup = max(2, repeat // 4) if warmup is None else warmup
    # the same weights every time (the CPU generator: the pieces are built there); the caller's state restored
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(0)
        return _profile_space(cs, runtime, metric, progress, calibrate, partial,
                              (threads, batch, repeat, warmup, clock))


def _check_counts(warmup: int | None, calibrate: int) -> None:
    """:func:`profile_space`'s ``warmup`` (None: its default) and ``calibrate``, which ``space profile``'s flags do
    not set or check: a :class:`UserError` naming the argument where the table would record runs that were not
    made (``time_session`` makes one warm-up run at least) or the calibration would fail on a negative count."""
    for name, v, least, what in (("warmup", warmup, 1, "untimed runs before a piece is timed"),
                                 ("calibrate", calibrate, 0, "whole networks timed to calibrate the pieces")):
        if v is None and name == "warmup":
            continue
        if isinstance(v, bool) or not isinstance(v, int) or not least <= v <= MAX_REPEAT:
            raise UserError(f"profile_space({name}={v!r}): the {what} must be a whole number from {least} to "
                            f"{MAX_REPEAT:,}")


def _profile_space(cs, runtime: str, metric: str, progress: bool, calibrate: int, partial, how: tuple) -> dict:
    """:func:`profile_space` after its checks; ``how``: ``(threads, batch, repeat, warmup, clock)``."""
    import onnxruntime as ort

    threads, batch, repeat, warmup, clock = how
    pieces, fixed_keys, choice_keys = _pieces(cs)
    settings = _settings(cs, pieces, ort.__version__, threads, batch, repeat, warmup, clock)
    kept = _Partial.open(partial, settings, len(pieces), calibrate if cs.kind == "chain" else 0)
    try:
        overhead, values = _measure_pieces(cs, pieces, kept, how, progress)
        calibration = None
        if calibrate and cs.kind == "chain":
            with _memory_guard(batch, cs):
                calibration = _calibrate(cs, values, fixed_keys, choice_keys, overhead, threads, batch, repeat,
                                         warmup, calibrate, progress, clock, kept)
    except BaseException:
        kept.save(force=True)
        raise
    kept.save(force=True)
    if calibration is not None:
        a, c = calibration["scale"], calibration["per_piece_ms"]
        values = {k: max(0.0, a * v - c) for k, v in values.items()}
    fixed_parts: dict[str, float] = {"overhead": overhead}
    for key in fixed_keys:
        where = pieces[key][2]
        fixed_parts[where] = fixed_parts.get(where, 0.0) + values[key]
    decisions = []
    for d, dec in enumerate(cs.decisions):
        decisions.append({"name": dec.name, "choices": {
            c: float(sum(values[k] for k in choice_keys[d][i])) for i, c in enumerate(dec.choices)}})
    return {
        "format": TABLE_FORMAT, "version": TABLE_VERSION, "metric": metric, "unit": TABLE_UNIT,
        "space": {"name": cs.name, "file": str(cs.filename), "cwd": os.getcwd(),
                  "args": {k: str(v) for k, v in cs.overrides.items()},
                  "kind": cs.kind, "input_shape": list(cs.input_shape), "num_classes": cs.num_classes,
                  "params_fingerprint": params_fingerprint(cs),
                  "pieces_fingerprint": _pieces_fingerprint(pieces, fixed_keys, choice_keys)},
        "machine": machine_info(threads),
        "runtime": {"name": runtime, "version": ort.__version__},
        "batch": int(batch), "input_size": list(cs.input_shape), "repeat": int(repeat), "warmup": warmup,
        "clock": clock,
        "overhead": overhead, "calibration": calibration,
        "fixed": float(sum(fixed_parts.values())), "fixed_parts": fixed_parts,
        "decisions": decisions,
    }


def _measure_pieces(cs, pieces: dict, kept: "_Partial", how: tuple, progress: bool) -> tuple[float, dict]:
    """``(overhead, values)``: onnxruntime's per-call overhead and every piece's time less it, each timed unless
    ``kept`` has it (and then kept there). ``how``: ``(threads, batch, repeat, warmup, clock)``."""
    threads, batch, repeat, warmup, clock = how
    values: dict[tuple, float] = {}
    total = len(pieces) + 1
    with _memory_guard(batch, cs), _progress(progress, total, f"profiling {cs.name}") as p:
        task = p.add_task(f"profiling {cs.name}", total=total) if p is not None else None
        if kept.overhead is None:
            kept.overhead = time_module(_Tiny(), [(batch, 1, 1, 1)], threads, repeat, warmup, clock)
            kept.save()
        if p is not None:
            p.advance(task)
        for key, (factory, shapes, where) in pieces.items():
            ms = kept.pieces.get(repr(key))
            if ms is None:
                ms = time_module(factory(), [(batch, *s) for s in shapes], threads, repeat, warmup, clock)
                kept.pieces[repr(key)] = ms
                kept.save()
            values[key] = max(0.0, ms - kept.overhead)
            if p is not None:
                p.update(task, advance=1, description=f"profiling {cs.name}: {where}")
    return kept.overhead, values


def _settings(cs, pieces: dict, version: str, threads: int, batch: int, repeat: int, warmup: int,
              clock: str) -> dict:
    """What a profile's measurements depend on: a partial file of other settings is not resumed."""
    machine = machine_info(threads)
    return {"machine": {"cpu": machine["cpu"], "cores": machine["cores"], "system": machine["system"],
                        "onnxruntime": version},
            "space": {"name": cs.name, "args": {k: str(v) for k, v in cs.overrides.items()}, "kind": cs.kind,
                      "input_shape": list(cs.input_shape), "num_classes": cs.num_classes,
                      "params_fingerprint": params_fingerprint(cs),
                      "decisions": [[d.name, list(d.choices)] for d in cs.decisions],
                      "pieces": list(map(repr, pieces))},
            "threads": int(threads), "batch": int(batch), "repeat": int(repeat), "warmup": int(warmup), "clock": clock}


def partial_path(out: str | os.PathLike) -> Path:
    """The partial file ``automl space profile --out OUT`` keeps its measurements in until OUT is written."""
    return Path(f"{os.fspath(out)}.partial")


def remove_partial(path: str | os.PathLike | None) -> None:
    """Remove a partial file (the table it was for is written)."""
    if path is not None:
        Path(path).unlink(missing_ok=True)


def partial_summary(path: str | os.PathLike) -> str | None:
    """What the partial file ``path`` holds, e.g. ``"12 of 21 pieces, 0 of 3 whole networks"``; None when there is
    no such file or it holds no measurement."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        pieces, networks = len(data["pieces"]), len(data["networks"])
        text = f"{pieces} of {data['total_pieces']} pieces"
        if data["total_networks"]:
            text += f", {networks} of {data['total_networks']} whole networks"
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return text if pieces or networks or data.get("overhead") is not None else None


class _Partial:
    """What a profile has measured (``overhead``; ``pieces``: a piece's key's repr -> ms; ``networks``: the
    calibration's whole network number -> ms), and the ``settings`` it was measured with, kept in ``path``."""

    def __init__(self, path: Path | None, settings: dict, total_pieces: int, total_networks: int):
        self.path, self.settings = path, settings
        self.total_pieces, self.total_networks = total_pieces, total_networks
        self.overhead: float | None = None
        self.pieces: dict[str, float] = {}
        self.networks: dict[int, float] = {}
        self._saved = time.monotonic()

    @classmethod
    def open(cls, path, settings: dict, total_pieces: int, total_networks: int) -> "_Partial":
        """The measurements kept in ``path`` (none when it does not exist) for a profile of ``settings``."""
        kept = cls(None if path is None else Path(path), settings, total_pieces, total_networks)
        if kept.path is None or not kept.path.exists():
            return kept
        data = _read_partial(kept.path)
        _check_partial(kept.path, data["settings"], settings)
        kept.overhead = data["overhead"]
        kept.pieces = dict(data["pieces"])
        kept.networks = {int(i): ms for i, ms in data["networks"].items()}
        _logger.info("%s: resuming an interrupted profile with the same settings (%s already measured; delete "
                     "the file to measure everything again)", kept.path, partial_summary(kept.path) or "nothing")
        return kept

    def save(self, force: bool = False) -> None:
        """Write the measurements atomically: now with ``force``, else when the last write is a second old."""
        if self.path is None or not (force or time.monotonic() - self._saved >= 1.0):
            return
        if self.overhead is None and not self.pieces and not self.networks:
            return
        atomic_write_json(self.path, {
            "format": PARTIAL_FORMAT, "version": TABLE_VERSION, "settings": self.settings,
            "total_pieces": self.total_pieces, "total_networks": self.total_networks, "overhead": self.overhead,
            "pieces": self.pieces, "networks": {str(i): ms for i, ms in sorted(self.networks.items())}})
        self._saved = time.monotonic()


def _read_partial(path: Path) -> dict:
    """The JSON object of a partial file ``path``; anything else is a :class:`UserError` naming it."""
    again = f"delete {path} to profile from the start"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise UserError(f"{path}: not the partial file of an interrupted `automl space profile` "
                        f"({type(e).__name__}: {str(e)[:200]}); {again}") from None
    ok = (isinstance(data, dict) and data.get("format") == PARTIAL_FORMAT and _is_version(data.get("version"))
          and isinstance(data.get("settings"), dict) and isinstance(data.get("pieces"), dict)
          and isinstance(data.get("networks"), dict)
          and all(_is_ms(v) for v in [*data["pieces"].values(), *data["networks"].values()])
          and all(_is_index(i) for i in data["networks"])
          and (data.get("overhead") is None or _is_ms(data["overhead"])))
    if not ok:
        raise UserError(f"{path}: not the partial file of an interrupted `automl space profile` of this automl "
                        f"(no \"format\": \"{PARTIAL_FORMAT}\" with its measurements); {again}")
    return data


def _is_ms(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def _is_version(v) -> bool:
    """``v`` is this automl's table version: the whole number itself (JSON's ``true`` and ``1.0`` are not it)."""
    return type(v) is int and v == TABLE_VERSION


def _is_index(key: str) -> bool:
    """A partial file's whole network number: ASCII digits that ``int`` reads (not ``"²"``, which ``isdigit``
    accepts, nor thousands of digits, over ``int``'s limit)."""
    return key.isascii() and key.isdigit() and len(key) <= 18


def _check_partial(path: Path, old: dict, new: dict) -> None:
    """``old`` (a partial file's settings) are ``new`` (this profile's); else a :class:`UserError` that names
    the first difference and how to go on."""
    start = f"delete {path} to profile from the start"
    there = f"{path} holds the measurements of an interrupted `automl space profile`"
    if old.get("machine") != new["machine"]:
        o, n = old.get("machine") if isinstance(old.get("machine"), dict) else {}, new["machine"]
        raise UserError(f"{there} on {o.get('cpu', '?')} ({o.get('cores', '?')} cores, onnxruntime "
                        f"{o.get('onnxruntime', '?')}); this is {n['cpu']} ({n['cores']} cores, onnxruntime "
                        f"{n['onnxruntime']}), and a table holds one machine's latencies: {start}")
    if old.get("space") != new["space"]:
        o, n = old.get("space") if isinstance(old.get("space"), dict) else {}, new["space"]
        sets = {k: _set_flags(v) if isinstance(v, dict) else "" for k, v in (("o", o.get("args")), ("n", n["args"]))}
        same = o.get("args") == n["args"] and o.get("name") == n["name"]
        raise UserError(f"{there} of space {o.get('name', '?')} ({sets['o'] or 'no --set values'}); space "
                        f"{n['name']} ({sets['n'] or 'no --set values'}) is profiled now"
                        f"{' and its file changed since (other decisions, widths or sizes)' if same else ''}: "
                        f"run the command it was measured with to finish that table, or {start}")
    for key, flag in (("threads", "--threads"), ("batch", "--batch"), ("repeat", "--repeat"), ("clock", "--clock"),
                      ("warmup", "warm-up runs")):
        if old.get(key) != new[key]:
            raise UserError(f"{there} with {flag} {old.get(key)}; this one asks for {flag} {new[key]}: run it with "
                            f"{flag} {old.get(key)} to finish that table, or {start}")


@contextlib.contextmanager
def _memory_guard(batch: int, cs):
    """A measurement that runs out of memory (torch's or onnxruntime's allocator) is a :class:`UserError`
    naming what sizes every input and activation: ``--batch``, or at batch 1 the space's input size and widths."""
    try:
        yield
    except Exception as e:  # MemoryError; torch's RuntimeError and onnxruntime's exceptions name the allocation
        if not isinstance(e, MemoryError) and "allocate" not in str(e).lower():
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        if batch > 1:
            raise UserError(f"--batch {batch}: out of memory while profiling ({first}); use a smaller --batch"
                            ) from None
        dims = " x ".join(str(v) for v in cs.input_shape)
        params = ", ".join(f"{k}={v}" for k, v in cs.params.items())
        raise UserError(f"space {cs.name} ({cs.filename}): out of memory while profiling one {dims} input at "
                        f"--batch 1 ({first}); this machine cannot hold its largest piece: profile a smaller input "
                        f"size or narrower widths with --set (its parameters: {params or 'none'})") from None


def _elastic_refusal(cs) -> str:
    """Why a space with elastic widths or an elastic resolution (the cost table's context decisions) has no
    latency table, and what to edit in its file to profile it: a ``--set`` cannot remove those decisions."""
    why, fix = _elastic_parts(cs)
    return f"{why}; {fix}"


def _elastic_parts(cs) -> tuple[str, str]:
    """:func:`_elastic_refusal`'s ``(why, fix)``."""
    widths = [cs.decisions[d].name for d in cs.cost_table.context_decisions if d != cs.resolution_dec]
    stages = ", ".join(name.removesuffix("_width") for name in widths)
    what, edits = [], []
    if widths:
        what.append(f"elastic widths ({', '.join(widths)})")
        edits.append(f"give stage{'s' if len(widths) > 1 else ''} {stages} one width each (`width A` where it "
                     f"says `width A, B`)")
    if cs.resolution_dec is not None:
        what.append(f"an elastic resolution (its `resolution` statement, decision "
                    f"{cs.decisions[cs.resolution_dec].name}: {', '.join(cs.decisions[cs.resolution_dec].choices)})")
        edits.append("remove the `resolution` statement")
    return (f"space {cs.name} has {' and '.join(what)}: a latency table of one cost per choice cannot describe "
            f"it (a layer's latency depends on the widths and input size chosen)",
            f"search with params or macs, or profile a copy of {cs.filename} in which you {' and '.join(edits)}, one "
            f"copy per width and input size you mean to deploy")


def _calibrate(cs, values, fixed_keys, choice_keys, overhead, threads, batch, repeat, warmup, n, progress,
               clock, kept: "_Partial") -> dict:
    """Fit how pieces timed alone relate to the same pieces inside a whole network:
    ``whole = overhead + sum over its pieces of max(0, scale * t_i - c)``, least squares over ``n`` random whole
    networks (seeded: the same networks every time).

    A piece timed alone runs on an input and weights that the previous run left in the cache, and pays
    for being a graph of its own (reading an input that no earlier op just wrote, allocating its output).
    ``scale`` absorbs the first (the whole network's weights do not stay in the cache: > 1 on large
    networks), ``c`` the second (a few microseconds a piece: it matters on tiny networks). The fit keeps
    ``scale`` in [0.5, 2] and ``c`` >= 0 (:func:`_fit`).
    A network ``kept`` has measured is not timed again (and one measured now is kept there).

    The errors reported are those of the table as written (pieces clipped at 0 included) on these networks:
    ``mape_before_pct`` the plain sum of pieces, ``mape_after_pct`` the fitted table (on the networks it was
    fitted to), ``mape_heldout_pct`` each network predicted by a fit on the others (None with one network):
    what to expect on an architecture the fit has not seen.
    """
    g = torch.Generator().manual_seed(12345)
    index = {key: i for i, key in enumerate(values)}
    v = np.array([values[key] for key in values], dtype=np.float64)
    counts, ys = np.zeros((n, len(v))), np.zeros(n)
    with _progress(progress, n, "") as p:
        task = p.add_task(f"calibrating on {n} whole networks", total=n) if p is not None else None
        for i in range(n):
            arch = [int(torch.randint(k, (1,), generator=g)) for k in cs.num_choices]
            if (measured := kept.networks.get(i)) is None:
                model = cs.build_standalone(torch.tensor(arch))
                measured = kept.networks[i] = time_module(model, [(batch, *cs.input_shape)], threads,
                                                          repeat, warmup, clock)
                kept.save()
            for key in _network_pieces(arch, fixed_keys, choice_keys, cs.cost_table.gates):
                counts[i, index[key]] += 1
            ys[i] = measured - overhead
            if p is not None:
                p.advance(task)
    scale, c = _fit(counts, ys, v)
    measured = ys + overhead

    def mape(predicted):
        return float(100 * np.mean(np.abs(predicted - measured) / measured))
    heldout = [] if n < 2 else [  # network i predicted by the fit on all the others
        overhead + counts[i] @ np.maximum(0.0, a * v - b)
        for i in range(n) for a, b in [_fit(np.delete(counts, i, 0), np.delete(ys, i), v)]]
    return {"archs": n, "scale": scale, "per_piece_ms": c, "mape_before_pct": mape(counts @ v + overhead),
            "mape_after_pct": mape(counts @ np.maximum(0.0, scale * v - c) + overhead),
            "mape_heldout_pct": mape(np.array(heldout)) if heldout else None}


def _network_pieces(arch: list[int], fixed_keys: list, choice_keys: list, gates: dict) -> list:
    """The pieces of the whole network ``arch``, counted as :meth:`~automl.compile.costs.CostTable.total` counts
    a choice's cost: the fixed ones, and each decision's chosen ones, a gated decision's (a layer elastic depth may
    leave out) only when its depth decision keeps the layer."""
    keys = list(fixed_keys)
    for d, k in enumerate(arch):
        if d not in gates or gates[d][1][arch[gates[d][0]]]:
            keys += choice_keys[d][k]
    return keys


_SCALES = (0.5, 2.0)  # the calibration's bounds of scale: beyond them a fit follows the noise of a few networks


def _fit(counts: np.ndarray, ys: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """``(scale, c)`` of ``ys ~ sum over pieces of (scale * v - c)`` (``counts``: each network's pieces, a row per
    network) by least squares within the model's bounds: ``scale`` in [0.5, 2] and ``c`` >= 0. A piece alone pays
    for being a graph of its own (``c``); whole networks slower than their pieces are the scale's to explain, not a
    negative ``c``, which would add the same time to every piece, the cheapest and the costliest alike (a latency
    search would then count layers, not weigh ops: a loaded machine's few networks gave c = -1.2 ms, which took
    two ops' ratio from 2.8 to 1.2). With fewer than 3 networks one of the two is fitted: ``c`` (scale 1) where it
    comes out >= 0, else ``scale`` (c 0)."""
    ns, sums = counts.sum(1), counts @ v
    if not len(ys) or not np.dot(ns, ns):
        return 1.0, 0.0

    def scale_for(c: float) -> float:  # the best scale with c fixed, within its bounds
        return float(np.clip(np.dot(sums, ys + c * ns) / np.dot(sums, sums), *_SCALES)) if np.dot(sums, sums) else 1.0

    def c_for(scale: float) -> float:  # the best c >= 0 with scale fixed
        return max(0.0, float(np.dot(ns, scale * sums - ys) / np.dot(ns, ns)))

    if len(ys) < 3:
        return (1.0, c_for(1.0)) if np.dot(ns, sums - ys) >= 0 else (scale_for(0.0), 0.0)
    (a, b), *_ = np.linalg.lstsq(np.stack([sums, -ns], 1), ys, rcond=None)
    if _SCALES[0] <= a <= _SCALES[1] and b >= 0:
        return float(a), float(b)
    # the least squares within the bounds lie on their edge: c = 0, or scale at either bound
    edges = [(scale_for(0.0), 0.0), *((a, c_for(a)) for a in _SCALES)]
    return min(edges, key=lambda e: float(np.sum((e[0] * sums - e[1] * ns - ys) ** 2)))


class _NoProgress:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return None


class _PlainProgress:
    """Progress where standard error is not a terminal (``nohup``, a log file, a batch job): one log line at
    most every :data:`PLAIN_EVERY` seconds with what is done and the time left at the pace so far, where a bar
    would redraw itself. The calls of rich's ``Progress`` that profiling makes (``add_task``, ``advance``,
    ``update``; the label stays the task's, without the piece each update names)."""

    def __init__(self):
        self.tasks: dict[int, list] = {}  # id -> [label, total, done, start]
        self.last = time.monotonic()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def add_task(self, label: str, total: int) -> int:
        self.tasks[len(self.tasks)] = [label, total, 0, time.monotonic()]
        return len(self.tasks) - 1

    def advance(self, task: int, n: int = 1) -> None:
        self.update(task, advance=n)

    def update(self, task: int, advance: int = 0, description: str | None = None) -> None:
        t = self.tasks[task]
        t[2] += advance
        now = time.monotonic()
        if now - self.last < PLAIN_EVERY or t[2] >= t[1]:
            return
        self.last = now
        left = (now - t[3]) / t[2] * (t[1] - t[2])
        _logger.info(f"{t[0]}: {t[2]}/{t[1]} done, about {left:.0f} s left")


PLAIN_EVERY = 30.0  # seconds between two lines of _PlainProgress


def _progress(enabled: bool, total: int, label: str):
    """rich's bar on a terminal, :class:`_PlainProgress` elsewhere; nothing when not ``enabled``."""
    if not enabled:
        return _NoProgress()
    if not sys.stderr.isatty():
        return _PlainProgress()
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), transient=True)


def check_profile_args(runtime: str, threads: int, batch: int, repeat: int, clock: str = "wall") -> None:
    if clock not in CLOCKS:
        raise UserError(f"--clock {clock}: use wall (elapsed time) or cpu (the calling thread's CPU time)")
    if clock == "cpu" and threads != 1:
        raise UserError(f"--clock cpu measures the thread that calls onnxruntime, which runs every op only "
                        f"with one intra-op thread: use --threads 1 (got {threads}) or --clock wall")
    if runtime not in RUNTIMES:
        raise UserError(f"--runtime {runtime}: unsupported runtime; automl measures with "
                        f"{', '.join(RUNTIMES)} (its CPU execution provider)")
    for flag, v, most in (("--threads", threads, MAX_THREADS), ("--batch", batch, MAX_BATCH),
                          ("--repeat", repeat, MAX_REPEAT)):
        if not isinstance(v, int) or v < 1:
            raise UserError(f"{flag} {v}: must be a whole number >= 1")
        if v > most:
            raise UserError(f"{flag} {v}: at most {most:,} (a typo?)")
    check_clock(clock, f"--clock {clock}")


def write_cost_table(table: dict, path: str | os.PathLike) -> None:
    """Write the table atomically (a reader never sees half a file)."""
    atomic_write_json(path, table)


# ---- reading a table and applying it to a space ------------------------------------------------

def read_cost_table(path: str | os.PathLike, cs, *, source: str | None = None, check_shape: bool = True,
                    against: str | None = None) -> dict:
    """Read ``path`` and check it against the compiled space ``cs``; returns the table.

    Any mismatch (other space, decisions, choices, input size, widths or layers) or a space with elastic widths or
    resolution (no table of one cost per choice describes it) is a :class:`CostTableMismatch`; a missing, negative
    or non-numeric entry, a key of the wrong type, a unit other than ``ms``, or a metric name the space already has
    is a :class:`CostTableRefusal`; each names the table and the space (and ``source``, the recipe that asked for
    it) and holds its bare ``reason``. A file that is no cost table (missing, not JSON, another format or version)
    is a :class:`UserError`. ``check_shape=False`` skips the input-size, width and layer (``pieces_fingerprint``)
    checks (for the search space when retraining uses other sizes). ``against``: what ``cs`` is when the caller
    compiled it otherwise than the user's space and ``--set`` values (a run's retrained space), said in place of
    "space FILE" in a mismatch.
    The table's ``batch`` and ``machine.threads``, when present, are whole numbers from 1 to the bounds of
    ``space profile``'s ``--batch`` and ``--threads`` (:func:`table_protocol`). With ``source``, a table measured
    on another CPU or number of cores than this machine's is logged as a note.
    """
    path = Path(path)
    where = f"{source}: " if source else ""
    table = _load_table(path, where, str(cs.filename))
    _check_header(table, path, where, cs)
    if cs.cost_table.context_decisions:  # what `space profile` refuses to measure, said the same way
        why, fix = _elastic_parts(cs)
        raise CostTableMismatch.of(f"{where}cost table {path}: ", why, fix)
    _protocol_of(table, path, where)
    _check_clock(table, path, where)
    mismatch = f"{where}cost table {path} does not fit {against or f'space {cs.filename}'}: "  # a head
    use = "search.cost_table" if source else "--cost-table"
    t_space = table.get("space") if isinstance(table.get("space"), dict) else {}
    names = [d.get("name") if isinstance(d, dict) else None for d in table["decisions"]]
    ours = [d.name for d in cs.decisions]
    if names != ours:
        diff = next((f"decision #{i + 1} is {a!r} there, {b!r} here" for i, (a, b) in enumerate(zip(names, ours))
                     if a != b), f"{len(names)} decisions there, {len(ours)} here")
        why = f"other decisions ({diff})"
        if _profiled_for(t_space, cs) is not None:  # another space's table: measure into a file of its own
            new = _own_file(path, cs, table["metric"])
            raise CostTableMismatch.of(mismatch, why, f"the table was profiled for space {t_space['name']!r} "
                                       f"({_recorded_file(t_space)}): profile this space with "
                                       f"`{_profile_command(cs, new)}` and give that")
        _refuse_this_space(t_space, cs, mismatch, why, path, use)
    if check_shape:
        _check_shape(table, t_space, cs, mismatch, path, use)
    for entry, dec in zip(table["decisions"], cs.decisions):
        got = entry.get("choices")
        if not isinstance(got, dict) or set(got) != set(dec.choices):
            have = sorted(got) if isinstance(got, dict) else got
            missing = [c for c in dec.choices if not isinstance(got, dict) or c not in got]
            why = f"decision {dec.name}: " + (f"no entry for choice {missing[0]!r}" if missing else
                                              f"other choices ({have} there, {list(dec.choices)} here)")
            raise CostTableMismatch.of(mismatch, why)
        for c in dec.choices:
            _check_value(got[c], _head(where, path), f"decision {dec.name}, choice {c!r}")
    _check_value(table["fixed"], _head(where, path), "\"fixed\"")
    if source:
        _warn_other_machine(table, path, where)
    return table


def _warn_other_machine(table: dict, path: Path, where: str) -> None:
    """A note when the (checked) table records another CPU or number of cores than this machine's: the search
    uses its latencies (what profiling the device one deploys to is for), while a run times its exports here."""
    machine = table.get("machine") or {}
    here = machine_info(1)
    cpu, cores = machine.get("cpu"), machine.get("cores")
    if cpu is None or (cpu == here["cpu"] and cores in (None, here["cores"])):
        return
    _logger.info(f"note: {where}cost table {path} was measured on {cpu} ({cores or '?'} cores), this machine is "
                 f"{here['cpu']} ({here['cores']} cores): the search uses the table's latencies (the device profiled), "
                 f"while the exports' latency_ms are timed on this machine, so the two differ")


def _load_table(path: Path, where: str, space_file: str) -> dict:
    """The JSON object of a cost table file, in the table format (any other file is a :class:`UserError`)."""
    try:
        text = read_utf8_text(path, "cost table")
        table = json.loads(text, object_pairs_hook=unique_keys)
    except UnreadableText as e:
        if e.reason == "missing":
            raise UserError(f"{where}cost table {path}: no such file; make one with "
                            f"`automl space profile {pasted_space(space_file)} --out {pasted_path(path)}`") from None
        if e.reason == "directory":
            raise UserError(f"{where}cost table {path} is a folder; give the table file `automl space profile` "
                            f"wrote, e.g. {path / 'latency.json'}") from None
        why = (f"byte {e.detail} at line {e.line}, column {e.column} is not UTF-8" if e.reason == "encoding" else
               e.detail or e.reason)
        raise UserError(f"{where}cost table {path}: not a readable JSON cost table ({why}); give the table file "
                        f"`automl space profile` wrote") from None
    except DuplicateKey as e:  # JSON would keep the last without a word
        number = duplicate_key_line(text, e.key)
        raise UserError(f"{where}{path}{'' if number is None else f':{number}'}: key {json.dumps(e.key)[:80]} is "
                        f"given twice in one JSON object (a JSON reader keeps the last); a cost table is the JSON "
                        f"file `automl space profile` writes: remove the other, or profile again") from None
    except json.JSONDecodeError as e:  # where, as an editor jumps to it
        raise UserError(f"{where}{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}; a cost table is the JSON "
                        f"file `automl space profile` writes") from None
    except (OSError, ValueError) as e:  # ValueError: bad JSON, bad UTF-8, an integer of over 4,300 digits
        raise UserError(f"{where}cost table {path}: not a readable JSON cost table ({e})") from None
    except RecursionError:  # arrays or objects nested thousands deep
        raise UserError(f"{where}cost table {path}: its JSON nests too deeply to be a cost table; give the file "
                        f"`automl space profile` wrote") from None
    if isinstance(table, dict) and table.get("format") == PARTIAL_FORMAT and path.name.endswith(".partial"):
        table_file = path.with_name(path.name.removesuffix(".partial"))
        raise UserError(f"{where}{path}: the measurements of an interrupted `automl space profile`, not a cost table; "
                        f"finish it: run that profile again with --out {pasted_path(table_file)} (it goes on from "
                        f"these), and give {table_file}")
    if not isinstance(table, dict) or table.get("format") != TABLE_FORMAT:
        # a new file beside it: --out PATH would overwrite what PATH holds (a run's results.json, say), and
        # `space profile` refuses to (so latency-new.json beside a latency.json that is no table)
        new = path.parent / ("latency-new.json" if path.name == "latency.json" else "latency.json")
        raise UserError(f"{where}{path}: not a cost table (no \"format\": \"{TABLE_FORMAT}\"); make one with "
                        f"`automl space profile {pasted_space(space_file)} --out {pasted_path(new)}` and give that")
    if not _is_version(table.get("version")):
        raise UserError(f"{where}{path}: cost table version {json_text(table.get('version'))}; this automl reads "
                        f"version {TABLE_VERSION}")
    return table


def _check_header(table: dict, path: Path, where: str, cs) -> None:
    """The table's metric, unit, ``decisions`` (a list) and ``fixed`` (present): what every table holds."""
    space_file, head = str(cs.filename), _head(where, path)
    metric = table.get("metric")
    if not isinstance(metric, str) or not metric.isidentifier():
        why = f"\"metric\" must be a metric name such as \"latency\", got {metric!r}"
        raise CostTableRefusal.of(head, why)
    if metric in BUILTIN_METRICS or metric in cs.cost_table.metrics:
        why = f"metric {metric!r} is already a metric of {space_file} ({', '.join(cs.cost_table.metrics)})"
        raise CostTableRefusal.of(head, why, "rename the table's metric")
    if table.get("unit") != TABLE_UNIT:
        why = f"\"unit\" is {table.get('unit')!r}"
        raise CostTableRefusal.of(head, why, f"automl reads cost tables in milliseconds (\"unit\": \"{TABLE_UNIT}\", "
                                  f"as `automl space profile` writes them, and budgets such as 8ms or 14us are "
                                  f"turned into ms): convert the costs and \"fixed\" to ms")
    if not isinstance(table.get("decisions"), list):
        why = (f"\"decisions\" must be a list of {{\"name\", \"choices\"}} objects, one per decision of {space_file}, "
               f"got {_short(table.get('decisions'))}")
        raise CostTableRefusal.of(head, why)
    if "fixed" not in table:
        why = "no \"fixed\" entry (the cost of the parts that are not searched: stem, head, per-call overhead)"
        raise CostTableRefusal.of(head, why, f"re-profile with `automl space profile {pasted_space(space_file)}`")


def _protocol_of(table: dict, path: Path, where: str) -> tuple[int | None, int | None]:
    """The table's ``(batch, machine.threads)`` (None where absent: a table written by hand); a value that
    is not a whole number >= 1, or is above the bound of ``space profile``'s flag, is a :class:`CostTableRefusal`
    naming the field."""
    machine = {} if table.get("machine") is None else table["machine"]
    head, again = _head(where, path), "re-profile with `automl space profile`"
    if not isinstance(machine, dict):
        why = f"\"machine\" must be an object {{\"cpu\", \"cores\", \"threads\"}}, got {_short(machine)}"
        raise CostTableRefusal.of(head, why, again)
    out = []
    for field, v, most in (("batch", table.get("batch"), MAX_BATCH),
                           ("machine.threads", machine.get("threads"), MAX_THREADS)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            why = f"\"{field}\" must be a whole number >= 1 (what the table was measured with), got {_short(v)}"
            raise CostTableRefusal.of(head, why, again)
        if v is not None and v > most:  # the run's exports are timed with it, after the whole search
            why = f"\"{field}\" is {_short(v)}, at most {most:,} (a typo?)"
            raise CostTableRefusal.of(head, why, f"the run's exports are timed with the table's batch and threads; "
                                      f"{again}", sep=": ")
        out.append(v)
    return out[0], out[1]


def table_protocol(table: dict) -> dict[str, int]:
    """``{"batch", "threads"}`` a (checked) table was measured with; :data:`EXPORT_PROTOCOL`'s for a field it
    does not record (a table written by hand)."""
    machine = table.get("machine") if isinstance(table.get("machine"), dict) else {}
    batch, threads = table.get("batch"), machine.get("threads")
    return {"batch": EXPORT_PROTOCOL["batch"] if batch is None else int(batch),
            "threads": EXPORT_PROTOCOL["threads"] if threads is None else int(threads)}


def table_clock(table: dict) -> str:
    """The clock a (checked) table was timed with (``"wall"`` or ``"cpu"``, :data:`CLOCKS`); ``"wall"`` for a
    table that does not record it (written by hand, or before tables recorded their clock)."""
    clock = table.get("clock")
    return "wall" if clock is None else str(clock)


def timing_of(table: dict) -> dict[str, int | str]:
    """``{"batch", "threads", "clock"}`` of a (checked) table (:func:`table_protocol`, :func:`table_clock`): how
    a run with it times its exports, results.json's ``latency_protocol``."""
    return {**table_protocol(table), "clock": table_clock(table)}


def table_timing(path: str | os.PathLike, space_file: str = "SPACE") -> dict[str, int | str]:
    """How the exports of a run with the cost table ``path`` (search.cost_table) are timed: the table's
    ``{"batch", "threads", "clock"}`` (:func:`table_protocol`, :func:`table_clock`), what a run records as
    results.json's ``latency_protocol``. The file, its format and version, ``batch``, ``machine.threads`` and
    ``clock`` are checked as :func:`read_cost_table` checks them, its decisions are not (no space is compared); a
    mistake is a :class:`UserError` naming the table (``space_file``: the space a message tells to profile)."""
    path = Path(path)
    table = _load_table(path, "", space_file)
    _protocol_of(table, path, "")
    _check_clock(table, path, "")
    return timing_of(table)


def _check_clock(table: dict, path: Path, where: str) -> None:
    """The table's ``clock``, when present, is one of :data:`CLOCKS`, and ``cpu`` only with one thread (what
    ``space profile --clock cpu`` measures)."""
    clock = table.get("clock")
    if clock is not None and clock not in CLOCKS:
        why = f"\"clock\" must be \"wall\" or \"cpu\" (what the table was timed with), got {_short(clock)}"
        raise CostTableRefusal.of(_head(where, path), why, "re-profile with `automl space profile`")
    threads = (table.get("machine") or {}).get("threads")
    if clock == "cpu" and threads not in (None, 1):
        why = f"\"clock\" is \"cpu\" with \"machine.threads\" {threads}: the CPU clock times one intra-op thread"
        raise CostTableRefusal.of(_head(where, path), why, "re-profile with `automl space profile --clock cpu "
                                  "--threads 1`")


def _check_shape(table: dict, t_space: dict, cs, mismatch: str, path: Path, use: str) -> None:
    """The table was measured at the space's input size, for its widths (``params_fingerprint``) and for its
    layers (``pieces_fingerprint``: strides, kernels, activations, each layer's input size), each when recorded.
    ``use``: what names the table (``search.cost_table``, ``--cost-table``), to point at a new one. A mismatch
    says which space (name, file, ``--set`` values) the table was profiled for when that is not this one, and
    then points at a new file: profiling into ``path`` would overwrite a table that still fits its own."""
    size = table.get("input_size")
    if not isinstance(size, list):
        why = f"\"input_size\" must be a list [C, H, W], got {_short(size)}"
        raise CostTableMismatch.of(mismatch, why, f"profile it with `{_profile_command(cs, path)}`")
    fp, pieces_fp = t_space.get("params_fingerprint"), t_space.get("pieces_fingerprint")
    layers = "a stride, kernel, activation, squeeze-excitation or layer input size"
    if size != list(cs.input_shape):
        what = f"the table was measured at input size {size}, the space takes {list(cs.input_shape)}"
        whose = f" at input size {size}, this space takes {list(cs.input_shape)}"
    elif fp is not None and fp != params_fingerprint(cs):
        what = "the space's widths or ops differ from those profiled"
        whose = ", and this space's widths or ops differ from those profiled"
    elif pieces_fp is not None and pieces_fp != _pieces_fingerprint(*_pieces(cs)):
        what = (f"the space's layers differ from those profiled ({layers}), so the table's latencies are another "
                "network's")
        whose = f", and this space's layers differ from those profiled ({layers})"
    else:
        return
    other = _profiled_for(t_space, cs)
    if other is None:
        _refuse_this_space(t_space, cs, mismatch, what, path, use)
    else:  # another space's table, which still fits that space: measure into a file of its own
        theirs = _set_flags(t_space["args"]) if isinstance(t_space.get("args"), dict) else ""
        new = _own_file(path, cs, table.get("metric"))
        meant = ("give its file as the recipe's `space`" if use == "search.cost_table" else
                 f"give its file in place of {cs.filename}")
        why = f"the table was profiled for {other}{' with ' + theirs if theirs else ''}{whose}"
        raise CostTableMismatch.of(mismatch, why, f"profile this space into a file of its own with "
                                   f"`{_profile_command(cs, new)}` and give {use} {new} (keep {path} for that space), "
                                   f"or, if you meant space {t_space['name']}, {meant}")


def _refuse_this_space(t_space: dict, cs, mismatch: str, what: str, path: Path, use: str) -> NoReturn:
    """The :class:`UserError` for a table profiled for this space (:func:`_profiled_for` is None) that does not fit
    it (``what``): with other ``--set`` values, profile into a file of its own (``path`` still fits those values);
    with the same ones, the space file changed since, so profile it again into ``path``."""
    args = t_space.get("args") if isinstance(t_space.get("args"), dict) else {}
    theirs = _set_flags(args)
    if args != cs.overrides:  # the table still fits its own --set values: measure into a file of its own
        new = _beside(path, cs.overrides)
        why = (f"{what} (the table was profiled with {theirs or 'no --set values'}, the space here is compiled with "
               f"{_set_flags(cs.overrides) or 'no --set values'})")
        raise CostTableMismatch.of(mismatch, why, f"profile it into a file of its own with "
                                   f"`{_profile_command(cs, new)}` and give {use} {new} (keep {path} for "
                                   f"{theirs or 'no --set values'})")
    why = f"{what} (has {cs.filename} changed since it was profiled?)"
    raise CostTableMismatch.of(mismatch, why, f"profile it again with `{_profile_command(cs, path)}`")


def _profiled_for(t_space: dict, cs) -> str | None:
    """``"space NAME (FILE)"`` of the table's recorded space (``space.name``, ``space.file``) when it is another
    space than ``cs``: another name, or a file that cannot be ``cs.filename`` (:func:`_same_file`). None when it is
    this space, or the table does not record them (a table written by hand)."""
    name, file = t_space.get("name"), t_space.get("file")
    if not isinstance(name, str) or not isinstance(file, str):
        return None
    if name == cs.name and _same_file(file, cs.filename, t_space.get("cwd")):
        return None
    return f"space {name} ({_recorded_file(t_space)})"


def _recorded_file(t_space: dict) -> str:
    """The table's recorded space file (``space.file``) as the user can find it from here: a relative path joined
    with the working folder it was profiled in (``space.cwd``) where that is recorded and is not this one (read
    from here, the relative path would name another file, maybe the user's own); else as recorded."""
    file, cwd = t_space.get("file"), t_space.get("cwd")
    there = _in_profiled_folder(file, cwd)
    if there is None:
        return file
    try:
        here = os.getcwd()
    except OSError:  # this working folder was removed: not the one profiled in
        here = None
    if here is not None and os.path.normpath(cwd) == os.path.normpath(here):
        return file
    return os.path.normpath(there)


def _in_profiled_folder(recorded, cwd) -> str | None:
    """A table's relative space file ``recorded`` joined with the working folder ``cwd`` it was profiled in
    (``space.cwd``); None where it cannot be (an absolute path, or no absolute ``cwd`` recorded)."""
    if not isinstance(recorded, str) or os.path.isabs(recorded) or not isinstance(cwd, str) or not os.path.isabs(cwd):
        return None
    return os.path.join(cwd, recorded)


def _same_file(recorded: str, filename, cwd=None) -> bool:
    """Whether a table's recorded space file (the path `space profile` was given, relative to ``cwd``, the working
    folder it ran in: ``space.cwd``, None in a table written before tables recorded it) can be ``filename``. When
    that file is still here (``cwd`` joined with a relative path), whether it is ``filename`` (links followed):
    another folder's file of the same name is another file. Else (a table profiled elsewhere, or an older one): the
    path given itself; the same file (links followed) when absolute or read from this working folder; else, when
    relative, ``filename``'s absolute path ends with it (leading ``..`` dropped), as given (through its links) or
    with links followed."""
    there = _profiled_file(recorded, cwd)
    if there is None and os.path.normpath(recorded) == os.path.normpath(filename):
        return True
    try:
        here = Path(filename).resolve()
        if there is not None:
            return there.resolve() == here
        if Path(recorded).resolve() == here:
            return True
    except (OSError, RuntimeError, ValueError):  # a loop of links, a NUL byte: not a file, so not this one
        return False
    if os.path.isabs(recorded):
        return False
    parts = [part for part in Path(os.path.normpath(recorded)).parts if part not in (".", "..")]
    return bool(parts) and any(list(p.parts[-len(parts):]) == parts for p in (Path(os.path.abspath(filename)), here))


def _profiled_file(recorded: str, cwd) -> Path | None:
    """The space file a table was profiled from, found here: its relative ``recorded`` path in the working folder
    ``cwd`` it was profiled in (``space.cwd``), when that is an absolute path and the file is there; else None
    (an absolute ``recorded`` path, no ``cwd`` recorded, or a table profiled on another machine or folder)."""
    joined = _in_profiled_folder(recorded, cwd)
    if joined is None:
        return None
    try:
        there = Path(joined)
        return there if there.is_file() else None
    except (OSError, ValueError):  # a NUL byte in a table edited by hand: no file
        return None


def _own_file(path: Path, cs, metric) -> Path:
    """A table file next to ``path`` for the space ``cs`` (``digits-latency.json``; with ``--set`` values
    ``digits-latency-width0.5.json``), never ``path`` itself (another space's table)."""
    new = path.parent / f"{cs.name}-{metric if isinstance(metric, str) else 'latency'}{path.suffix or '.json'}"
    new = _beside(new, cs.overrides) if cs.overrides else new
    return _beside(path, cs.overrides) if new == path else new


def _set_flags(args: dict) -> str:
    return " ".join(f"--set {shlex.quote(f'{k}={v}')}" for k, v in args.items())


def _beside(path: Path, args: dict) -> Path:
    """A table file next to ``path`` named for the ``--set`` values ``args`` (``latency.json`` with width 0.5:
    ``latency-width0.5.json``; none: ``latency-default.json``), for a table measured with other values than
    ``path``'s, which stays valid for its own."""
    tag = "-".join(f"{k}{v}" for k, v in args.items()) or "default"
    tag = re.sub(r"[^A-Za-z0-9._-]+", "_", tag)[:60]
    return path.with_name(f"{path.stem}-{tag}{path.suffix}")


def profile_command(space: str | os.PathLike, sets: dict, *rest: str) -> str:
    """The ``automl space profile`` command line, printed to paste, that measures the table of the space file
    ``space`` (absolute and quoted: :func:`~automl._io.pasted_space`) with the ``--set`` values ``sets`` (each
    quoted), then the flags ``rest`` (``--clock wall --out TABLE.json``)."""
    return " ".join(["automl space profile", pasted_space(space), *([_set_flags(sets)] if sets else []), *rest])


def _profile_command(cs, out: str | os.PathLike) -> str:
    """The ``automl space profile`` command line that measures the table of ``cs`` (with its ``--set``
    values) into ``out``."""
    return profile_command(cs.filename, cs.overrides, f"--out {pasted_path(out)}")


def _head(where: str, path: Path) -> str:
    """The head of a refusal about the table file ``path`` (``where``: the recipe key that gave it, or "")."""
    return f"{where}{path}: "


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_value(v, head: str, what: str) -> None:
    """``v`` is a finite cost >= 0 that a float holds (JSON integers beyond it are not costs); else a
    :class:`CostTableRefusal` that says ``head`` (the table) and ``what`` (the entry)."""
    again = "correct it, or re-profile with `automl space profile`"
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > 1e300:
        why = f"{what}: expected a cost in ms, got an integer too large for a number ({v.bit_length()} bits)"
        raise CostTableRefusal.of(head, why, again)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        why = f"{what}: expected a number (a cost in ms, >= 0), got {_short(v)}"
        raise CostTableRefusal.of(head, why, again)
    if v < 0:
        why = f"{what}: negative cost {v:g}"
        raise CostTableRefusal.of(head, why, "a cost table holds costs >= 0 (re-profile it)")


def apply_cost_table(cs, table: dict) -> str:
    """Add the (checked) table's metric to ``cs.cost_table``; returns the metric name."""
    rows = [[float(e["choices"][c]) for c in dec.choices] for e, dec in zip(table["decisions"], cs.decisions)]
    cs.cost_table.add_metric(table["metric"], rows, float(table["fixed"]))
    return table["metric"]
