"""One training step of the supernet on a fixed path vs the same architecture as a standalone timm network.

    python benchmarks/supernet_overhead.py [SPACE] [--set k=v ...] [--batch 64] [--device cpu|cuda] [--plain]

Same batch, same device, same optimiser; the ratio is supernet / standalone seconds per step (goal <= 1.10).
Defaults: spaces/digits.space at batch 64 on the CPU; on a GPU, pass spaces/proxylessnas.space --batch 128.
Both networks are prepared as the pipeline trains them (``for_training``: channels_last, and on the CPU the
faster depthwise weight gradient); ``--plain`` times them as built (NCHW, ATen's gradient) to show what that gains.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, median, positive_int, run_main, space_parser, timeit  # noqa: E402

from automl.commands import parse_set_args  # noqa: E402
from automl.compile import load_compiled  # noqa: E402
from automl.train.loops import autocast_for, for_training  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = space_parser(str(ROOT / "spaces" / "digits.space"), __doc__)
    p.add_argument("--archs", type=positive_int, default=3, help="random architectures to average over")
    p.add_argument("--plain", action="store_true", help="NCHW and ATen's depthwise gradient, not for_training")
    a = p.parse_args()
    dev = a.device
    cs = load_compiled(a.space, parse_set_args(a.set))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.batch, *cs.input_shape, generator=g).to(dev)
    y = torch.randint(0, cs.num_classes, (a.batch,), generator=g).to(dev)
    prepare = (lambda m: m.to(dev)) if a.plain else (lambda m: for_training(m, dev))
    if not a.plain:
        x = x.contiguous(memory_format=torch.channels_last)
    supernet = prepare(cs.build_supernet())
    rows = []
    for j in range(a.archs):
        arch = torch.tensor([int(torch.randint(k, (1,), generator=g)) for k in cs.num_choices])
        standalone = prepare(cs.build_standalone(arch))

        def stepper(model, fwd):
            opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

            def step():
                opt.zero_grad(set_to_none=True)
                with autocast_for(dev):
                    loss = torch.nn.functional.cross_entropy(fwd(), y)
                loss.backward()
                opt.step()
            return step

        # arch stays on the CPU, as in the pipeline: the supernet picks its modules from it in Python
        t_super = median(timeit(stepper(supernet, lambda: supernet(x, arch)), sync=dev))
        t_alone = median(timeit(stepper(standalone, lambda: standalone(x)), sync=dev))
        rows.append({"arch": j, "params": sum(p.numel() for p in standalone.parameters()),
                     "supernet_ms": 1e3 * t_super, "standalone_ms": 1e3 * t_alone,
                     "supernet_img_s": a.batch / t_super, "standalone_img_s": a.batch / t_alone,
                     "ratio": t_super / t_alone})
    ratio = median([r["ratio"] for r in rows])
    print(f"supernet / standalone step time: median ratio {ratio:.3f} (goal <= 1.10)")
    emit("supernet_overhead", rows, space=Path(a.space).name, batch=a.batch, device=str(dev), median_ratio=ratio,
         layout="plain" if a.plain else "for_training")


if __name__ == "__main__":
    run_main(main)
