"""Review PB (CUDA readiness): what a CPU can guard of the findings."""

from __future__ import annotations

import contextlib
import gc
import weakref
from pathlib import Path

import pytest
import torch

from automl.pipeline import Run, search_stages
from automl.recipe import load_recipe
from automl.train import loops

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
TINY = ["data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.epsilons=[0,0.5,1]", "search.lam=2", "device=cpu", "threads=1", "search.supernets=1",
        "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0", "export.onnx=false"]


def test_simultaneous_frees_a_members_supernet_before_the_next_is_built(tmp_path, monkeypatch):
    """Method 1 builds a fresh supernet per member: the previous member's (with its optimiser state, on a GPU
    their memory) must be gone by then by reference counting alone, not kept in a reference cycle until Python's
    cyclic collector runs (the GPU memory check would see less free memory, or the build would run out of it)."""
    refs, alive = [], []
    build = search_stages.build_supernet

    def spy(*args, **kwargs):
        alive.append(sum(r() is not None for r in refs))
        net = build(*args, **kwargs)
        refs.append(weakref.ref(net))
        return net

    monkeypatch.setattr(search_stages, "build_supernet", spy)
    gc.collect()
    gc.disable()
    try:
        Run(load_recipe(QUICK, TINY + ["search.method=simultaneous"]), tmp_path / "run", tty=False).execute()
    finally:
        gc.enable()
    assert alive == [0, 0, 0]


def test_bf16_autocast_only_where_cudnn_runs_bf16_convolutions(monkeypatch):
    """Before Ampere (compute capability 8.0) torch accepts bf16 autocast (emulated) but cuDNN has no bf16
    convolution: every conv would run in torch's slow native kernels. Full precision there instead."""
    dev = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert isinstance(loops.autocast_for(dev), contextlib.nullcontext)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    with warnings_ignored():
        ctx = loops.autocast_for(dev)
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16
    assert isinstance(loops.autocast_for(torch.device("cpu")), contextlib.nullcontext)


@contextlib.contextmanager
def warnings_ignored():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.autocast("cuda") where CUDA is not available says so
        yield


@pytest.mark.parametrize("importance_sampling", [True, False])
def test_the_gpu_path_of_thetas_update_sums_as_index_add_does(importance_sampling):
    """On a GPU eq. 10's sum over samples is a product with one-hot rows (index_add_'s atomics add in no fixed
    order, so torchrun's ranks would hold different thetas); it must be the same sum as the CPU's index_add."""
    from automl.search._update import choice_sums, onehot_sums

    g = torch.Generator().manual_seed(0)
    N, D, Kmax, lam = 3, 5, 4, 6
    theta = torch.rand(N, D, Kmax, generator=g, dtype=torch.float64)
    S = lam if importance_sampling else N * lam
    arch = torch.randint(0, Kmax, (S, D), generator=g)
    flat = (arch + torch.arange(D) * Kmax).view(-1)
    u = torch.randn(N, lam, generator=g, dtype=torch.float64)
    offsets = None if importance_sampling else torch.arange(N).repeat_interleave(lam * D) * (D * Kmax)
    torch.testing.assert_close(onehot_sums(theta, u, flat, offsets), choice_sums(theta, u, flat, offsets),
                               rtol=1e-12, atol=1e-12)


def test_nccl_binds_the_process_group_to_the_local_gpu(monkeypatch):
    """barrier() on an nccl group without a bound device guesses one and warns on rank 0 ("using the device under
    current context"); init_process_group(device_id=...) binds the group to this rank's GPU."""
    import torch.distributed as dist

    from automl.train.distributed import init_distributed

    for k, v in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                 "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: None)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    seen = {}
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: seen.update(kw))
    init_distributed("cuda")
    assert seen["backend"] == "nccl" and seen.get("device_id") == torch.device("cuda", 1)
    seen.clear()
    init_distributed("cpu")
    assert seen["backend"] == "gloo" and "device_id" not in seen


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("target", [dict(epsilons=[0.0, 0.5, 2.0]), dict(budgets=[None, 30.0, 20.0])])
def test_cuda_theta_is_the_same_bits_from_run_to_run(target):
    """torchrun's ranks each apply the same tell() and must hold the same theta bit for bit (their paths, and so the
    gradients they all-reduce, come from it): two engines of one seed on the GPU, 200 steps, equal thetas."""
    from automl.search import MultiEpsilonSearch

    costs = torch.rand(40, 4, generator=torch.Generator().manual_seed(1))
    engines = [MultiEpsilonSearch(num_choices=[4] * 40, costs=costs, lam=8, seed=0, device="cuda", **target)
               for _ in range(2)]
    for _ in range(200):
        archs = [e.ask() for e in engines]
        assert torch.equal(archs[0], archs[1])
        for e, a in zip(engines, archs):
            e.tell(a, a.sum(1).double() + torch.sin(a.double()).sum(1))
    assert torch.equal(engines[0].theta, engines[1].theta)


@pytest.mark.parametrize("importance_sampling", [True, False])
def test_off_the_cpu_thetas_update_never_index_adds(monkeypatch, importance_sampling):
    """On a GPU index_add_ sums with atomics in no fixed order: off the CPU (here the meta device, which runs no
    kernel) the update must take the one-hot sums, of the right shape; on the CPU index_add_ as before."""
    from automl.search._update import choice_sums

    N, D, Kmax, lam = 3, 5, 4, 6
    S = lam if importance_sampling else N * lam
    calls = []
    real = torch.Tensor.index_add_
    monkeypatch.setattr(torch.Tensor, "index_add_", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    for device in ("meta", "cpu"):
        theta = torch.zeros(N, D, Kmax, device=device)
        flat = torch.zeros(S * D, dtype=torch.long, device=device)
        offsets = None if importance_sampling else torch.zeros(S * D, dtype=torch.long, device=device)
        out = choice_sums(theta, torch.zeros(N, lam, device=device), flat, offsets)
        assert out.shape == (N, D * Kmax) and out.device.type == device
        assert len(calls) == (device == "cpu"), (device, calls)
