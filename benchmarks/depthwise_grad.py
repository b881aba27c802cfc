"""The depthwise-convolution weight gradient on the CPU: ATen (oneDNN) vs automl.nn.depthwise, per shape.

    python benchmarks/depthwise_grad.py [--batch 64] [--channels 144 288]

Both take channels_last input, as training does. The last column says whether training takes our path for
that shape (``fast_path_applies``); where it says yes, ours should be the faster one on your CPU too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _common import batch_size, emit, median, parser, positive_int, run_main, timeit  # noqa: E402

from automl.nn.depthwise import depthwise_weight_grad, fast_path_applies  # noqa: E402


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--batch", type=batch_size, default=64, help="images per timed gradient")
    p.add_argument("--channels", type=positive_int, nargs="+", default=[144, 288],
                   help="channel counts to time, space-separated")
    a = p.parse_args()
    rows = []
    for c in a.channels:
        for hw in (2, 4, 8, 16):
            for k in (3, 5, 7):
                for s in (1, 2):
                    pad = k // 2
                    x = torch.randn(a.batch, c, hw, hw).contiguous(memory_format=torch.channels_last)
                    w = torch.randn(c, 1, k, k)
                    go = torch.randn_like(F.conv2d(x, w, None, s, pad, 1, c))

                    def aten():
                        torch.ops.aten.convolution_backward(go, x, w, None, [s, s], [pad, pad], [1, 1], False, [0, 0],
                                                            c, [False, True, False])

                    def ours():
                        depthwise_weight_grad(x, go, (k, k), (s, s), (pad, pad), (1, 1))

                    t_aten = median(timeit(aten, repeat=10, warmup=2))
                    t_ours = median(timeit(ours, repeat=10, warmup=2))
                    rows.append({"C": c, "in": f"{hw}x{hw}", "k": k, "stride": s, "aten_ms": 1e3 * t_aten,
                                 "ours_ms": 1e3 * t_ours, "speedup": t_aten / t_ours,
                                 "used": fast_path_applies((hw, hw), (k, k))})
    used = [r["speedup"] for r in rows if r["used"]]
    print(f"where training uses it: median speedup {median(used):.2f}x, worst {min(used):.2f}x "
          f"over {len(used)} shapes")
    emit("depthwise_grad", rows, batch=a.batch, median_speedup_used=median(used), worst_speedup_used=min(used))


if __name__ == "__main__":
    run_main(main)
