"""Data-parallel runs under torchrun (gloo on the CPU): two processes, one result, θ identical on both."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import torch.distributed as dist
import torch.multiprocessing as mp

from automl.train.distributed import DistInfo, all_reduce_grads, shutdown_distributed
from automl.train.loops import recalibrate_bn

ROOT = Path(__file__).resolve().parents[1]


def test_single_process_helpers_are_no_ops():
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    all_reduce_grads([p], DistInfo())
    assert torch.equal(p.grad, torch.full((3,), 2.0))


def _bn_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.Conv2d(4, 2, 1), torch.nn.BatchNorm2d(2))


def _batches(rank):
    g = torch.Generator().manual_seed(100 + rank)
    return [torch.randn(8, 3, 6, 6, generator=g) * (1 + rank) + rank for _ in range(3)]


def _recalibrate_on_rank(rank, init, out):
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        net = _bn_net()
        recalibrate_bn(net, net, _batches(rank), DistInfo(rank=rank, world_size=2))
        torch.save({k: v for k, v in net.state_dict().items() if "running" in k}, f"{out}/{rank}.pt")
    finally:
        shutdown_distributed()
    assert not dist.is_initialized()
    shutdown_distributed()  # nothing left to destroy: no error


def test_recalibrated_batchnorm_is_the_same_on_every_rank(tmp_path):
    """Under torchrun each rank recalibrates on its own shard's batches; the statistics are then averaged, so
    every rank evaluates (and rank 0 exports) one network: the one recalibrated on both ranks' batches."""
    mp.spawn(_recalibrate_on_rank, args=(f"file://{tmp_path / 'rendezvous'}", str(tmp_path)), nprocs=2)
    got = [torch.load(tmp_path / f"{r}.pt") for r in (0, 1)]
    net = _bn_net()
    recalibrate_bn(net, net, _batches(0) + _batches(1))  # one process, all six batches
    own = _bn_net()
    recalibrate_bn(own, own, _batches(0))
    for k, v in got[0].items():
        assert torch.equal(v, got[1][k])
        assert torch.allclose(v, net.state_dict()[k], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got[0]["1.running_mean"], own.state_dict()["1.running_mean"], atol=1e-3)


@pytest.mark.heavy
def test_torchrun_two_processes(tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
           "-m", "automl", "run", str(ROOT / "recipes" / "quickstart.yaml"), "device=cpu",
           "data.limit_train=256", "data.batch_size=32", "data.theta_batch_size=32", "search.weight_epochs=1",
           "search.theta_epochs=1", "search.epsilons=[0,0.5]", "search.lam=2", "retrain.epochs=1", "export.onnx=false",
           "--out", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads((out / "results.json").read_text())
    assert res["world_size"] == 2
    assert len(res["architectures"]) == 2
    # rank 1 wrote nothing of its own: exactly one metrics file, one results file
    assert len(list(out.glob("results*.json"))) == 1
