"""The CUDA fast path: skipped without a GPU (CI has none); `benchmarks/gpu_check.sh` runs them when one is lent.

torch's sync debug mode turns every host synchronisation into an error ("error") or a warning ("warn"),
which is how these tests show that the step loops never wait for the GPU.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from automl.compile import load_compiled
from automl.train.distributed import DistInfo
from automl.train.loops import create_optimizer, create_scheduler, path_losses, weight_step

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
DEV = torch.device("cuda")


class _SyncCount:
    """Counts host synchronisations (torch's sync debug mode "warn") inside the block."""

    def __enter__(self):
        torch.cuda.synchronize()
        self._w = warnings.catch_warnings(record=True)
        self.records = self._w.__enter__()
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc):
        torch.cuda.set_sync_debug_mode("default")
        self._w.__exit__(*exc)

    @property
    def count(self) -> int:
        # the notice torch gives when the mode is switched on ("... is a prototype feature ...") is no sync
        return sum("synchroniz" in str(r.message) and "prototype feature" not in str(r.message) for r in self.records)


def _digits(batch=64):
    from automl.recipe import load_recipe
    from automl.train.data import build_data

    r = load_recipe(QUICK, [f"data.batch_size={batch}", "device=cuda"])
    return build_data(r.data, base_dir=r.base_dir, seed=0, device=DEV)


def _supernet():
    cs = load_compiled(ROOT / "spaces" / "digits.space", {})
    net = cs.build_supernet().to(DEV).to(memory_format=torch.channels_last).train()
    return cs, net


def test_weight_phase_loop_never_synchronizes():
    """Data on the GPU, architectures sampled on the CPU, eq. 3 step, scheduler: no read-back at all."""
    data = _digits()
    cs, net = _supernet()
    opt = create_optimizer(net, "sgd", 0.1, 3e-4, 0.9)
    sched = create_scheduler(opt, "cosine", 1, len(data.w))
    k = torch.tensor(cs.num_choices)
    g = torch.Generator().manual_seed(0)
    crit = torch.nn.CrossEntropyLoss()
    loss_sum = torch.zeros((), device=DEV)
    x, y = next(iter(data.w.epoch(0)))
    weight_step(net, x, y, (torch.rand(4, len(k), generator=g) * k).long(), opt, crit, DistInfo(), None, DEV)
    with _SyncCount() as s:
        for step, (x, y) in enumerate(data.w.epoch(1)):
            archs = (torch.rand(4, len(k), generator=g) * k).long()
            loss, _ = weight_step(net, x, y, archs, opt, crit, DistInfo(), None, DEV)
            sched.step_update(step + 1)
            loss_sum += loss
    assert s.count == 0, [str(r.message) for r in s.records]
    assert torch.isfinite(loss_sum).item()


def test_theta_step_synchronizes_once():
    """ask -> the indices to the host (the single-path supernet picks modules in Python) -> forward -> tell."""
    from automl.search import MultiEpsilonSearch, normalize_costs

    data = _digits()
    cs, net = _supernet()
    costs = normalize_costs(cs.cost_table.costs("params"), cs.cost_table.mask)
    engine = MultiEpsilonSearch(cs.num_choices, costs, [0.0, 1.0, 3.0], lam=8, device=DEV, sync_free=True)
    batches = list(data.theta.epoch(0))
    a = engine.ask()
    engine.tell(a, path_losses(net, *batches[0], a.cpu(), DEV))
    with _SyncCount() as s:
        for x, y in batches[1:4]:
            archs = engine.ask()
            engine.tell(archs, path_losses(net, x, y, archs.cpu(), DEV))
    assert s.count == 3, [str(r.message) for r in s.records]


def test_cifar_augmentation_never_synchronizes():
    from automl.train.data import _cifar_transform

    t = _cifar_transform(True, 32)
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, device=DEV)
    g = torch.Generator().manual_seed(0)
    t(x, g)
    with _SyncCount() as s:
        out = t(x, g)
    assert s.count == 0, [str(r.message) for r in s.records]
    assert out.shape == (64, 3, 32, 32) and out.dtype == torch.float32


def test_cuda_run_end_to_end_matches_the_cpu_shape_of_results(tmp_path):
    """A short run on the GPU (bf16 autocast, channels_last, data on the GPU) through retraining and ONNX."""
    from automl.pipeline import Run
    from automl.recipe import load_recipe

    over = ["device=cuda", "search.weight_epochs=3", "search.theta_epochs=3", "retrain.epochs=3",
            "search.epsilons=[0,3]", "export.onnx=true"]
    res = Run(load_recipe(QUICK, over), tmp_path / "run", tty=False).execute()
    assert len(res["architectures"]) == 2
    for a in res["architectures"]:
        assert a["test_accuracy"] > 0.5           # 3 epochs on digits: far above chance (0.1)
        assert (tmp_path / "run" / a["onnx"]).is_file()
    assert res["phase_seconds"]["weights"] > 0 and res["phase_seconds"]["theta"] > 0
