"""Does a latency table predict the latency of whole exported networks? And what does int8 buy?

    python benchmarks/latency_table.py [--spaces proxylessnas digits] [--archs 30] [--threads 1]
                                       [--batch 1] [--repeat 20] [--measure-repeat 30] [--clock wall|cpu]
                                       [--int8-run RUN_DIR]

Per space: ``automl space profile`` (the latency table of every choice in its context, onnxruntime,
``--threads``, ``--batch``), then ``--archs`` random architectures, each exported as a whole ONNX model
(``automl.export.export_architecture``) and timed in onnxruntime with the same settings, twice
(interleaved passes A, B: their disagreement is the measurement noise). Prints per space the mean absolute
percentage error of the table's prediction (fixed + sum of chosen) against the measured latency, the
signed mean error (a systematic bias of the additive model), Kendall's tau between prediction and
measurement, and the A/B noise. The ProxylessNAS space runs at 224x224 (ImageNet size).

int8: spnasnet_100 (a member of the ProxylessNAS space, fresh weights, calibrated on noise: latency and
size do not depend on the weights' values) fp32 vs int8 latency (interleaved; ``--threads``, ``--batch``) and
file size; with ``--int8-run DIR`` (a run of ``automl run recipes/quickstart.yaml export.quantize=int8``)
also the quickstart family's accuracy drop, speed-up and size ratio from its results.json, one row per
member, named by its budget (a run with budgets) and its final ε; DIR is read before anything is measured.
The run's rows are its own measurements, timed as the run timed its exports (results.json's
``latency_protocol``: batch 1 on one thread, or its search.cost_table's batch, threads and clock; a run that
does not record it: each member's manifest's ``latency``): each row names its batch and threads (and the
JSON line's rows hold ``batch``, ``threads``, ``clock``), and a note says where they are not this script's
``--batch``, ``--threads`` and ``--clock``.
``--no-int8`` skips the int8 comparison (``--int8-run`` with it is refused: one line, exit 2).
Prints a table, then one JSON line.
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

from _common import (Fields, batch_size, emit, fields_problem, int_at_least, parser, positive_int,  # noqa: E402
                     run_main, run_results, seed_int, thread_count, warn_threads)
from automl.errors import UserError  # noqa: E402
from automl.profile import MAX_REPEAT  # noqa: E402  (--repeat's bound in `automl space profile`)
from automl.ranking import kendall_tau_b  # noqa: E402

SPACES = {"proxylessnas": {}, "digits": {}}
ARCHS_MOST = 1000  # random architectures exported and timed: more is a typo's extra digits (hours of exports)
SPNASNET = (["ir_k3_e3"] * 3 + ["skip"] + ["ir_k5_e6"] + ["ir_k3_e3"] * 3 + ["ir_k5_e6"] + ["ir_k3_e3"] * 3
            + ["ir_k5_e6"] + ["ir_k5_e3"] * 3 + ["ir_k5_e6"] * 4 + ["ir_k3_e6"])


def random_archs(cs, n: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.tensor([int(torch.randint(k, (1,), generator=g)) for k in cs.num_choices]) for _ in range(n)]


def bench_space(name: str, args) -> dict:
    from automl.compile import load_compiled
    from automl.export import export_architecture
    from automl.export.quantize import onnx_latency
    from automl.profile import apply_cost_table, profile_space

    cs = load_compiled(str(ROOT / "spaces" / f"{name}.space"), SPACES[name])
    table = profile_space(cs, threads=args.threads, batch=args.batch, repeat=args.repeat, progress=False,
                          clock=args.clock)
    apply_cost_table(cs, table)
    archs = random_archs(cs, args.archs, args.seed)
    predicted, a_pass, b_pass = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        folders = []
        for i, arch in enumerate(archs):
            folder = Path(tmp) / f"a{i}"
            export_architecture(cs, arch, folder)
            folders.append(folder)
            predicted.append(cs.cost_table.total(arch, "latency"))
        for passes in (a_pass, b_pass):  # two passes over all models: A then B
            for folder in folders:
                passes.append(onnx_latency(folder / "model.onnx", cs.input_shape, args.threads, args.batch,
                                           repeat=args.measure_repeat, clock=args.clock))
    measured = [statistics.median(p) for p in zip(a_pass, b_pass)]
    err = [(p - m) / m for p, m in zip(predicted, measured)]
    noise = [abs(a - b) / ((a + b) / 2) for a, b in zip(a_pass, b_pass)]
    worst = max(range(len(err)), key=lambda i: abs(err[i]))
    return {
        "space": name, "input": "x".join(map(str, cs.input_shape)), "archs": len(archs),
        "threads": args.threads, "batch": args.batch, "clock": args.clock,
        "per_piece_ms": (table["calibration"] or {}).get("per_piece_ms"),
        "mape_pct": 100 * statistics.mean(abs(e) for e in err),
        "bias_pct": 100 * statistics.mean(err),
        "kendall_tau": kendall_tau_b(predicted, measured),
        "ab_noise_pct": 100 * statistics.mean(noise),
        "measured_ms_min": min(measured), "measured_ms_max": max(measured),
        "fixed_ms": table["fixed"], "overhead_ms": table["overhead"],
        "worst_err_pct": 100 * err[worst],
        "_detail": {"predicted": predicted, "measured": measured, "a": a_pass, "b": b_pass,
                    "worst_choices": cs.decode(archs[worst])},
    }


def bench_int8_proxyless(args) -> dict:
    from automl.compile import load_compiled
    from automl.export import export_architecture
    from automl.export.quantize import INT8_NAME, onnx_latency, quantize_int8

    cs = load_compiled(str(ROOT / "spaces" / "proxylessnas.space"))
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((8, *cs.input_shape)).astype(np.float32) for _ in range(4)]
    with tempfile.TemporaryDirectory() as tmp:
        export_architecture(cs, SPNASNET, tmp)
        fp32, int8 = Path(tmp) / "model.onnx", Path(tmp) / INT8_NAME
        quantize_int8(fp32, int8, calib)
        f, q = [], []
        for _ in range(3):  # interleaved fp32, int8, fp32, int8, ...
            f.append(onnx_latency(fp32, cs.input_shape, args.threads, args.batch, repeat=args.measure_repeat,
                                  clock=args.clock))
            q.append(onnx_latency(int8, cs.input_shape, args.threads, args.batch, repeat=args.measure_repeat,
                                  clock=args.clock))
        timing = {"batch": args.batch, "threads": args.threads, "clock": args.clock}
        return {"model": f"spnasnet_100 (proxylessnas, 224, {timing_words(timing)})",
                "fp32_ms": statistics.median(f), "int8_ms": statistics.median(q),
                "speedup": statistics.median(f) / statistics.median(q),
                "size_ratio": int8.stat().st_size / fp32.stat().st_size, "accuracy_drop_points": None, **timing}


def timing_words(timing: dict | None) -> str:
    """How a row's latencies were timed, in words ("batch 4, 2 threads"; the CPU clock named), or "timing not
    recorded" (``None``: a run that records it neither in results.json nor in the member's manifest)."""
    if timing is None:
        return "timing not recorded"
    threads = timing["threads"]
    clock = ", cpu clock" if timing.get("clock") == "cpu" else ""
    return f"batch {timing['batch']}, {threads} thread{'s' if threads != 1 else ''}{clock}"


def _member(recipe: str, a: dict, budgets: bool) -> str:
    """A member's label: its budget (``budgets``: a run with budgets; ``none``: unconstrained) and its final ε,
    rounded (a run with budgets adapts ε, and two members may end at the same one)."""
    eps = a.get("epsilon")
    label = recipe
    if budgets:
        b = a.get("budget")
        label += " budget=" + ("none" if b is None else f"{b:g}")
    if isinstance(eps, (int, float)) and math.isfinite(eps):
        label += f" eps={eps:.3g}"
    return label


class Int8(Fields):
    """What the int8 rows read of a member's ``int8`` entry (null where the run has no such figure)."""

    error: str | None = None
    latency_ms: float | None = None
    size_bytes: int | None = None
    fp32_size_bytes: int | None = None
    test_accuracy: float | None = None
    fp32_onnx_test_accuracy: float | None = None


class Protocol(Fields):
    """How a run timed its exports: results.json's ``latency_protocol``, or a manifest's ``latency`` (a clock not
    recorded: the wall clock, the only one before runs recorded it)."""

    batch: int = Field(ge=1)
    threads: int = Field(ge=1)
    clock: Literal["wall", "cpu"] = "wall"


class Member(Fields):
    """What the int8 rows read of a run's member."""

    onnx: str | None = None
    latency_ms: float | None = None
    budget: float | None = None
    epsilon: float | None = None
    int8: Int8 | None = None


class Results(Fields):
    """What the int8 rows read of a run's results.json."""

    recipe: str
    latency_protocol: Protocol | None = None
    architectures: list[Member] = Field(min_length=1)


def _read_run(run_dir: Path) -> dict:
    """``run_dir``'s results.json, checked (:func:`_common.run_results`): one missing, damaged, or without what the
    int8 rows read is a :class:`UserError` naming it, before anything is measured."""
    if not (run_dir / "results.json").is_file():
        raise UserError(f"--int8-run {run_dir}: no results.json there (a finished `automl run` folder, e.g. of "
                        f"recipes/quickstart.yaml export.quantize=int8)")
    return run_results(run_dir, Results, "give --int8-run a finished run of recipes/quickstart.yaml "
                                         "export.quantize=int8")


def _ratio(num, den) -> float | None:
    """``num / den``, or None where either is missing (null in results.json) or the denominator is not > 0."""
    return None if num is None or den is None or not den > 0 else num / den


def member_timing(run_dir: Path, results: dict, member: dict) -> dict | None:
    """``{"batch", "threads", "clock"}`` the run timed ``member``'s export with: results.json's
    ``latency_protocol``, or (a run that does not record it) the member's manifest's ``latency``; None where
    neither says (the manifest gone, unreadable, or without them)."""
    recorded = results.get("latency_protocol")
    if recorded is None and member.get("onnx"):
        from automl.export import read_manifest

        try:
            recorded = read_manifest((run_dir / member["onnx"]).parent).get("latency")
        except UserError:
            recorded = None
    if not isinstance(recorded, dict) or fields_problem(Protocol, recorded) is not None:
        return None
    return Protocol.model_validate(recorded).model_dump()


def int8_from_run(run_dir: Path) -> list[dict]:
    """The int8 rows of a finished run (a user error when it has none: not an export.quantize=int8 run); a figure
    the run has no measurement for (null in results.json) is None. Each row names how the run timed it
    (:func:`member_timing`) in its ``model`` and holds it as ``batch``, ``threads``, ``clock`` (None: not
    recorded)."""
    res = _read_run(run_dir)
    rows = []
    budgets = any(a.get("budget") is not None for a in res["architectures"])
    for a in res["architectures"]:
        q = a.get("int8") or {}
        if not q or q.get("error"):
            continue
        fp32_acc, int8_acc = q.get("fp32_onnx_test_accuracy"), q.get("test_accuracy")
        timing = member_timing(run_dir, res, a)
        rows.append({"model": f"{_member(res['recipe'], a, budgets)} ({timing_words(timing)})",
                     "fp32_ms": a.get("latency_ms"),
                     "int8_ms": q.get("latency_ms"), "speedup": _ratio(a.get("latency_ms"), q.get("latency_ms")),
                     "size_ratio": _ratio(q.get("size_bytes"), q.get("fp32_size_bytes")),
                     # null where a run had no test image (an accuracy over none is recorded as null)
                     "accuracy_drop_points": None if fp32_acc is None or int8_acc is None else
                     100 * (fp32_acc - int8_acc),
                     **(timing or dict.fromkeys(("batch", "threads", "clock")))})
    if not rows:
        raise UserError(f"--int8-run {run_dir}: no member has an int8 export (run with export.quantize=int8)")
    return rows


def timing_note(run_rows: list[dict], args) -> str | None:
    """One line saying that the run's rows were not timed as this script times (its ``--batch``, ``--threads``,
    ``--clock``), and how they were; None where they were timed so (or there are none)."""
    ours = {"batch": args.batch, "threads": args.threads, "clock": args.clock}
    theirs = [{k: r[k] for k in ours} for r in run_rows]
    differ = [t for t in theirs if t != ours]
    if not differ:
        return None
    how = list(dict.fromkeys(timing_words(None if t["batch"] is None else t) for t in differ))
    return (f"note: the --int8-run rows were timed as the run timed its exports ({'; '.join(how)}), not as this "
            f"script times ({timing_words(ours)}): their latencies do not compare with this script's own")


def _figure(value, fmt: str, unit: str = "") -> str:
    """``value`` formatted, or "—" where there is none (a run without that measurement)."""
    return "—" if value is None else f"{value:{fmt}}{unit}"


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--spaces", nargs="+", default=list(SPACES), choices=list(SPACES),
                   help="published spaces to measure, space-separated")
    p.add_argument("--archs", type=int_at_least(2, ARCHS_MOST), default=30,
                   help="random architectures to export and time (at least 2: Kendall's tau compares pairs)")
    p.add_argument("--threads", type=thread_count, default=1,
                   help="onnxruntime's intra-op threads for the table and the whole models (at most the CPUs "
                        "this process can use: more only take turns on them, and a warning says so)")
    p.add_argument("--batch", type=batch_size, default=1,
                   help="images per inference, for the table and the whole models")
    p.add_argument("--repeat", type=positive_int, default=20, help="timed runs per piece of the table")
    p.add_argument("--measure-repeat", type=int_at_least(1, MAX_REPEAT), default=30,
                   help=f"timed runs per whole model and pass (at most {MAX_REPEAT:,}, as --repeat)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the random architectures")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="cpu: the calling thread's CPU time (one thread): what an idle machine's latency would "
                        "be, on a machine shared with other work")
    p.add_argument("--int8-run", type=Path, default=None, help="a quickstart run with export.quantize=int8")
    p.add_argument("--no-int8", action="store_true", help="skip the int8 comparison")
    args = p.parse_args()
    if args.no_int8 and args.int8_run is not None:  # its rows are the int8 comparison's: it would be ignored
        p.error("--int8-run: its rows are part of the int8 comparison, which --no-int8 skips: leave out one or "
                "the other")
    from automl.profile import check_profile_args

    check_profile_args("onnxruntime", args.threads, args.batch, args.repeat, args.clock)
    # read now: a wrong folder must not cost the whole measurement
    from_run = int8_from_run(args.int8_run) if args.int8_run else []
    warn_threads(args.threads)
    torch.set_num_threads(args.threads)
    rows = [bench_space(name, args) for name in args.spaces]
    details = {r["space"]: r.pop("_detail") for r in rows}
    int8_rows = [] if args.no_int8 else [bench_int8_proxyless(args)] + from_run
    for r in int8_rows:  # before the table and its JSON line, which ends the output
        drop = r["accuracy_drop_points"]
        print(f"int8 {r['model']}: fp32 {_figure(r['fp32_ms'], '.3g', ' ms')}, "
              f"int8 {_figure(r['int8_ms'], '.3g', ' ms')}, speed-up {_figure(r['speedup'], '.2f', 'x')}, "
              f"size {_figure(r['size_ratio'], '.2f', 'x')}"
              + (f", accuracy drop {drop:+.2f} points" if drop is not None else ""))
    note = timing_note(from_run, args)
    if note:
        print(note)
    emit("latency_table", rows, int8=int8_rows, details=details)


if __name__ == "__main__":
    run_main(main)
