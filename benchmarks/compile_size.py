"""Seconds and peak memory of compiling spaces: every published space and a width-repeated chain whose cost tables
hold about 10 million entries (12 stages of two widths each, 4,096 combinations, 20 layers a stage of 10 ops).

    python benchmarks/compile_size.py [--repeat N] [--stages N]

Each space compiles (``automl.compile.load_compiled``) in a child process of one intra-op thread
(``OMP_NUM_THREADS=1``), which reports the seconds the compile took and its peak resident memory (max RSS)
before and after it: the first is what importing torch, timm and automl takes. The width-repeated space has
``--stages`` stages (at most 12: 2^12 combinations of widths is the compiler's most) of ``--repeat`` layers each.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import check_child, emit, int_at_least, parser, run_child_captured, run_main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OPS = "ir_k3_e3, ir_k3_e4, ir_k3_e6, ir_k5_e3, ir_k5_e4, ir_k5_e6, ir_k7_e3, ir_k7_e4, ir_k7_e6, ds_k3"
CHILD = """import json, resource, sys, time
from automl.compile import load_compiled
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
cs = load_compiled(sys.argv[1])
seconds = time.perf_counter() - start
t = cs.cost_table.context("params")
entries = t[0].numel() if t is not None else cs.cost_table.mask.numel()
print(json.dumps({"seconds": seconds, "rss_before_mib": before / 1024,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "entries": entries}))
"""


def width_repeated(stages: int, repeat: int) -> str:
    """The text of a chain of ``stages`` stages of two widths each and ``repeat`` layers of 10 ops each."""
    lines = ["space width_repeated", "input 3 x 32 x 32", "classes 10", f"choices mb = {OPS}", "network",
             "  stem width 16"]
    for i in range(stages):
        w = 16 + 8 * i
        stride = " stride 2" if i in (2, 5, 8) else ""
        lines.append(f"  stage s{i + 1} width {w}, {w + 8}{stride} repeat {repeat} choose mb")
    return "\n".join(lines + ["  head width 256", "end", ""])


def compile_in_child(path: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-c", CHILD, str(path)]
    rc, out, err = run_child_captured(cmd, env)
    check_child(cmd, rc, err)
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--repeat", type=int_at_least(1, 256), default=20, help="layers per stage of the repeated space")
    p.add_argument("--stages", type=int_at_least(1, 12), default=12, help="stages of the repeated space")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "width_repeated.space"
        big.write_text(width_repeated(args.stages, args.repeat), encoding="utf-8")
        for path in [big, *sorted((ROOT / "spaces").glob("*.space"))]:
            r = compile_in_child(path)
            rows.append({"space": path.stem, "entries": r["entries"], "seconds": round(r["seconds"], 3),
                         "rss_mib": round(r["rss_mib"]), "import_rss_mib": round(r["rss_before_mib"])})
    emit("compile_size", rows, stages=args.stages, repeat=args.repeat, threads=1)
    return 0


if __name__ == "__main__":
    run_main(main)
