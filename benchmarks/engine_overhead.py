"""ask+tell time of the engine vs one θ-phase evaluation of λ architectures (goal < 1 %).

    python benchmarks/engine_overhead.py [SPACE] [--set k=v ...] [--batch 64] [--lam 2] [--eps 4]

The θ-phase evaluation is what the pipeline does per step: λ forward passes of the supernet on one D_θ
mini-batch (train-mode BN, no autograd).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, int_at_least, median, positive_int, run_main, space_parser, timeit  # noqa: E402

from automl.commands import parse_set_args  # noqa: E402
from automl.compile import load_compiled  # noqa: E402
from automl.search import MultiEpsilonSearch, normalize_costs  # noqa: E402
from automl.train.loops import for_training, path_losses  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = space_parser(str(ROOT / "spaces" / "digits.space"), __doc__)
    p.add_argument("--lam", type=int_at_least(2), default=2, help="architectures per θ step (λ)")
    p.add_argument("--eps", type=positive_int, default=4, help="number of ε values (N)")
    a = p.parse_args()
    dev = a.device
    cs = load_compiled(a.space, parse_set_args(a.set))
    net = for_training(cs.build_supernet(), dev).train()  # as the pipeline builds it
    costs = normalize_costs(cs.cost_table.costs("params"), cs.cost_table.mask)
    engine = MultiEpsilonSearch(cs.num_choices, costs, [0.1 * i for i in range(a.eps)], lam=a.lam, device=dev)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.batch, *cs.input_shape, generator=g).to(dev)
    y = torch.randint(0, cs.num_classes, (a.batch,), generator=g).to(dev)
    archs = engine.ask().cpu()  # as in the pipeline: the supernet reads the indices on the host
    losses = path_losses(net, x, y, archs, dev)

    def ask_tell():
        engine.tell(engine.ask(), losses)

    t_engine = median(timeit(ask_tell, repeat=200, warmup=20, sync=dev))
    t_eval = median(timeit(lambda: path_losses(net, x, y, archs, dev), repeat=20, sync=dev))
    share = t_engine / t_eval
    rows = [{"space": Path(a.space).name, "N": a.eps, "lam": a.lam, "ask_tell_ms": 1e3 * t_engine,
             "theta_eval_ms": 1e3 * t_eval, "path_evals_per_s": a.lam / t_eval, "overhead_pct": 100 * share}]
    print(f"engine overhead: {100 * share:.2f} % of a θ-phase step (goal < 1 %)")
    emit("engine_overhead", rows, device=str(dev))


if __name__ == "__main__":
    run_main(main)
