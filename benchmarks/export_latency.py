"""onnxruntime vs PyTorch eager on the CPU for exported architectures.

    python benchmarks/export_latency.py [EXPORT_DIR ...] [--threads N] [--runs 30] [-n 3] [--space S] [--set k=v]

Measures per model: latency at batch 1 and throughput at batch 32, median and p95 over timed runs after
a warm-up, for PyTorch eager (``automl.export.load_model``, ``torch.inference_mode``) and onnxruntime
(``CPUExecutionProvider``), both on the same number of threads. Without EXPORT_DIRs it exports a few
random architectures of the ProxylessNAS space at 224x224 into a temporary folder (fresh weights: the
latency does not depend on them; deleted at the end, so their rows' ``dir`` reads
``(temporary)/random-I``); ``-n``, ``--seed``, ``--space`` and ``--set`` choose them, and are refused with
EXPORT_DIRs. An EXPORT_DIR without a manifest whose folders hold exports (a run's family folder, ``RUN/export``
with its ``budget-*`` members) stands for those folders, each timed as if given. Every folder is checked (its
manifest, its model.onnx) before any is timed. Prints a table (times in milliseconds to 3 significant figures),
then one JSON line with every figure.
"""

from __future__ import annotations

import math
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import json_line, parser, positive_int, run_main, seed_int, thread_count, warn_threads  # noqa: E402

from automl.commands import parse_set_args  # noqa: E402
from automl.errors import UserError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def _time(fn, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def bench_dir(folder: Path, threads: int, runs: int) -> dict:
    import onnxruntime as ort

    from automl.export import load_model, read_manifest

    m = read_manifest(folder)
    model = load_model(folder)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(folder / "model.onnx"), sess_options=opts, providers=["CPUExecutionProvider"])
    row = {"dir": str(folder), "params": m["params"], "input_shape": m["input_shape"], "choices": m["choices"]}
    for batch, key, n in ((1, "b1", runs), (32, "b32", max(3, runs // 5))):
        x = torch.randn(batch, *m["input_shape"])
        xn = x.numpy()

        def run_torch():
            with torch.inference_mode():
                model(x)

        def run_ort():
            session.run(None, {"input": xn})

        for name, fn in (("torch", run_torch), ("onnxruntime", run_ort)):
            ts = _time(fn, n, warmup=max(2, n // 5))
            med, p95 = statistics.median(ts), _percentile(ts, 95)
            if batch == 1:
                row[f"{name}_{key}_ms"] = {"median": med * 1e3, "p95": p95 * 1e3}
            else:  # throughput: the p95 of the time gives the 5th percentile of the throughput
                row[f"{name}_{key}_img_s"] = {"median": batch / med, "p95": batch / p95}
    return row


def export_folders(given: list[Path]) -> list[Path]:
    """The export folders ``given`` stands for, each checked before anything is measured (a mistake is a
    :class:`UserError` naming the folder): a folder with a manifest is itself; one without, whose folders hold
    manifests (a run's ``export`` folder of members), is those folders, in name order."""
    from automl.export import read_manifest
    from automl.export.manifest import MANIFEST_NAME

    folders = []
    for d in given:
        members = [] if (d / MANIFEST_NAME).is_file() or not d.is_dir() else \
            sorted(m for m in d.iterdir() if (m / MANIFEST_NAME).is_file())
        folders += members or [d]
    for d in folders:
        read_manifest(d)
        if not (d / "model.onnx").is_file():
            raise UserError(f"{d}: no model.onnx here (an export without its ONNX model: a run with export.onnx: "
                            f"false, or one whose ONNX export failed); give export folders that hold model.onnx")
    return folders


def significant(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant figures in fixed point (0.0371, 5.76, 123), a whole number from
    10^``digits`` up (12345). The decimals are those of ``x`` rounded to ``digits`` figures, so a value that
    rounds up to the next power of ten keeps ``digits`` figures (0.09996: 0.100; 999.6: 1000)."""
    if not math.isfinite(x) or x == 0:
        return f"{x:g}"
    rounded = round(x, digits - 1 - math.floor(math.log10(abs(x))))
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(rounded or x))))
    return f"{x:.{decimals}f}"


def export_random(out: Path, space: str, n: int, seed: int, overrides: dict) -> list[Path]:
    from automl.compile import load_compiled
    from automl.export import export_architecture

    cs = load_compiled(space, overrides or None)
    g = torch.Generator().manual_seed(seed)
    dirs = []
    for i in range(n):
        arch = torch.tensor([int(torch.randint(len(d.choices), (1,), generator=g)) for d in cs.decisions])
        d = out / f"random-{i}"
        export_architecture(cs, arch, d, space_path=space, space_args=overrides)
        dirs.append(d)
    return dirs


SPACE = str(ROOT / "spaces" / "proxylessnas.space")  # --space


def main(argv=None) -> int:
    p = parser(__doc__)
    p.add_argument("dirs", nargs="*", type=Path, help="export folders (default: export random architectures)")
    # None: not given (export folders refuse them), then their defaults
    p.add_argument("--space", help=f"the .space file of the random architectures, without DIRS (default: {SPACE})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="space overrides")
    p.add_argument("-n", "--num-archs", type=positive_int, help="random architectures, without DIRS (default: 3)")
    p.add_argument("--seed", type=seed_int, help="seed of the random architectures, without DIRS (default: 0)")
    p.add_argument("--runs", type=positive_int, default=30, help="timed runs at batch 1 (batch 32: runs/5, at least 3)")
    p.add_argument("--threads", type=thread_count, default=None,
                   help="intra-op threads of both torch and onnxruntime (default: torch's, here "
                        f"{torch.get_num_threads()}; at most the CPUs this process can use: more only take turns "
                        "on them, and a warning says so)")
    a = p.parse_args(argv)
    # what chooses the random architectures: with export folders given, it would be ignored
    choosing = [flag for flag, given in (("--space", a.space is not None), ("--set", bool(a.set)),
                                         ("--num-archs", a.num_archs is not None), ("--seed", a.seed is not None))
                if given]
    if a.dirs and choosing:
        p.error(f"{', '.join(choosing)}: {'it chooses' if len(choosing) == 1 else 'they choose'} the random "
                f"architectures to export, and export folders were given: leave out one or the other")
    a.space, a.num_archs = a.space or SPACE, 3 if a.num_archs is None else a.num_archs
    a.seed = 0 if a.seed is None else a.seed
    given_dirs = export_folders(a.dirs)  # a wrong folder is found now, not after the others were measured
    overrides = parse_set_args(a.set)
    given = a.threads is not None
    a.threads = a.threads if given else torch.get_num_threads()
    warn_threads(a.threads, given=given)
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        dirs = given_dirs or export_random(Path(tmp), a.space, a.num_archs, a.seed, overrides)
        rows = [bench_dir(Path(d), a.threads, a.runs) for d in dirs]
    if not a.dirs:  # the temporary folder is gone: say so rather than name it
        for r in rows:
            r["dir"] = f"(temporary)/{Path(r['dir']).name}"
    name = max([12] + [len(Path(r["dir"]).name) for r in rows])
    hdr = (f"{'model':<{name}} {'params':>10} {'input':>11} | {'b1 torch ms':>17} {'b1 ort ms':>17} | "
           f"{'b32 torch img/s':>17} {'b32 ort img/s':>17}")
    print(f"CPU: {platform.processor() or platform.machine()}, {a.threads} thread{'s' * (a.threads != 1)}, "
          f"torch {torch.__version__}; median (p95)")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        f = lambda v: f"{significant(v['median']):>7} ({significant(v['p95']):>7})"  # noqa: E731
        g = lambda v: f"{v['median']:8.1f} ({v['p95']:6.1f})"  # noqa: E731
        print(f"{Path(r['dir']).name:<{name}} {r['params']:>10,} {'x'.join(map(str, r['input_shape'])):>11} | "
              f"{f(r['torch_b1_ms']):>17} {f(r['onnxruntime_b1_ms']):>17} | "
              f"{g(r['torch_b32_img_s']):>17} {g(r['onnxruntime_b32_img_s']):>17}")
    json_line("export_latency", threads=a.threads, torch=torch.__version__, results=rows)
    return 0


if __name__ == "__main__":
    run_main(main)
