"""Data-parallel runs under torchrun (gloo on the CPU): two processes, one result, θ identical on both, and
BatchNorm's running statistics the same on both after every step (the mean over the ranks), so every rank
evaluates the network rank 0 checkpoints and exports."""

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import torch.distributed as dist
import torch.multiprocessing as mp
from timm.utils import ModelEmaV3
from torch import nn

from automl.train.distributed import DistInfo, all_reduce_grads, shutdown_distributed
from automl.train.loops import path_losses, recalibrate_bn, train_step, weight_step

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")


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


class _Toy(nn.Module):
    """A two-path "supernet": ``arch[0]`` picks the BatchNorm after the convolution."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bns = nn.ModuleList([nn.BatchNorm2d(4), nn.BatchNorm2d(4)])
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 3), nn.BatchNorm1d(3))

    def forward(self, x, arch=None):
        return self.head(torch.relu(self.bns[0 if arch is None else int(arch[0])](self.conv(x))))


def _batch(rank: int, step: int):
    g = torch.Generator().manual_seed(1000 * rank + step)
    return torch.randn(8, 3, 6, 6, generator=g) * (1 + rank) + rank, torch.randint(0, 3, (8,), generator=g)


def _stats(net: nn.Module) -> dict:
    return {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k}


def _steps(info: DistInfo) -> tuple[dict, dict, dict]:
    """Three retraining steps (with an EMA of the weights) and three weight and θ steps on this rank's
    batches: the running statistics of the network, of its EMA and of the supernet."""
    torch.manual_seed(0)
    net, sup = _Toy(), _Toy()
    ema = ModelEmaV3(net, decay=0.5)
    opt, sup_opt = torch.optim.SGD(net.parameters(), lr=0.1), torch.optim.SGD(sup.parameters(), lr=0.1)
    for step in range(3):
        x, y = _batch(info.rank, step)
        train_step(net, x, y, opt, nn.CrossEntropyLoss(), info, None, torch.device("cpu"))
        ema.update(net, step=step + 1)
        archs = torch.tensor([[step % 2], [1]])
        weight_step(sup, x, y, archs, sup_opt, nn.CrossEntropyLoss(), info, None, torch.device("cpu"),
                    skip_nonfinite=step == 1)
        path_losses(sup, x, y, archs, torch.device("cpu"), None, info)  # a θ step: batch statistics
    return _stats(net), _stats(ema.module), _stats(sup)


def _on_rank(rank, init, out):
    """Rank ``rank`` of two: recalibrated statistics, and those after training steps (:func:`_steps`)."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        info = DistInfo(rank=rank, world_size=2)
        net = _bn_net()
        recalibrate_bn(net, net, _batches(rank), info)
        recalibrated = {k: v for k, v in net.state_dict().items() if "running" in k}
        torch.save({"recalibrated": recalibrated, "steps": _steps(info)}, f"{out}/{rank}.pt")
    finally:
        shutdown_distributed()
    assert not dist.is_initialized()
    shutdown_distributed()  # nothing left to destroy: no error


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """What both ranks of one gloo process group of two (spawned once for the module's tests) hold."""
    tmp = tmp_path_factory.mktemp("ranks")
    mp.spawn(_on_rank, args=(f"file://{tmp / 'rendezvous'}", str(tmp)), nprocs=2)
    return [torch.load(tmp / f"{r}.pt") for r in (0, 1)]


def test_recalibrated_batchnorm_is_the_same_on_every_rank(two_ranks):
    """Under torchrun each rank recalibrates on its own shard's batches; the statistics are then averaged, so
    every rank evaluates (and rank 0 exports) one network: the one recalibrated on both ranks' batches."""
    got = [r["recalibrated"] for r in two_ranks]
    net = _bn_net()
    recalibrate_bn(net, net, _batches(0) + _batches(1))  # one process, all six batches
    own = _bn_net()
    recalibrate_bn(own, own, _batches(0))
    for k, v in got[0].items():
        assert torch.equal(v, got[1][k])
        assert torch.allclose(v, net.state_dict()[k], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got[0]["1.running_mean"], own.state_dict()["1.running_mean"], atol=1e-3)


def test_batchnorm_statistics_are_the_mean_over_the_ranks_after_every_step(two_ranks):
    """Retraining (and its EMA), weight and θ steps: each rank's forward passes update BatchNorm's statistics
    from its own shard; after the step they are the same on both ranks."""
    got = [r["steps"] for r in two_ranks]
    own = _steps(DistInfo())  # rank 0's batches alone, one process
    for which, stats in enumerate(got[0]):
        assert stats, which
        for k, v in stats.items():
            assert torch.equal(v, got[1][which][k]), (which, k)  # retrained net, its EMA, the supernet
    # the statistics are the ranks' mean, not rank 0's own
    assert not torch.allclose(got[0][0]["bns.0.running_mean"], own[0]["bns.0.running_mean"], atol=1e-3)
    assert got[0][0]["bns.0.num_batches_tracked"].item() == 3


def test_one_process_steps_are_plain_optimiser_steps():
    """Without a process group train_step is forward, backward, step: not one float differs."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    a = _Toy()
    b = _Toy()
    b.load_state_dict(a.state_dict())
    opt_a, opt_b = torch.optim.SGD(a.parameters(), lr=0.1), torch.optim.SGD(b.parameters(), lr=0.1)
    for step in range(3):
        x, y = _batch(0, step)
        train_step(a, x, y, opt_a, nn.CrossEntropyLoss(), DistInfo(), None, torch.device("cpu"))
        opt_b.zero_grad()
        nn.CrossEntropyLoss()(b(x.contiguous(memory_format=torch.channels_last)), y).backward()
        opt_b.step()
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k


# ------------------------------------------------------------------------------------ torchrun

DDP = ["data.limit_train=512", "data.batch_size=16", "data.theta_batch_size=32", "retrain.batch_size=32",
       "search.weight_epochs=1", "search.theta_epochs=1", "search.budgets=[null,20k]", "search.lam=2",
       "search.supernets=1", "retrain.epochs=1", "export.onnx=false", "search.log_every=1", "device=cpu",
       "threads=1"]  # 8 retraining steps per rank and architecture


def _torchrun(out: Path, port: int, resume: bool = False) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
            "-m", "automl", "run", QUICK, *DDP, "--out", str(out)] + (["--resume"] if resume else [])


def _exported_accuracies(out: Path) -> list[float]:
    """Each exported network's test accuracy, evaluated in this one process."""
    from automl.export import load_model
    from automl.recipe import DataConfig
    from automl.train.data import build_data

    data = build_data(DataConfig(dataset="digits"), base_dir=".", seed=0, device="cpu")
    res = json.loads((out / "results.json").read_text())
    accuracies = []
    for i in range(len(res["architectures"])):
        model = load_model(sorted(glob.glob(str(out / "export" / f"budget-{i}-*")))[0]).eval()
        correct = n = 0
        with torch.no_grad():
            for x, y in data.test.epoch(0):
                correct += (model(x).argmax(1) == y).sum().item()
                n += len(y)
        accuracies.append(correct / n)
    return accuracies


@pytest.mark.heavy
def test_torchrun_reports_the_accuracy_of_the_exported_networks(tmp_path, free_port):
    from test_kill_resume import _env

    out = tmp_path / "run"
    p = subprocess.run(_torchrun(out, free_port()), capture_output=True, text=True, env=_env(), timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["world_size"] == 2
    torch.set_num_threads(1)
    assert [a["test_accuracy"] for a in res["architectures"]] == _exported_accuracies(out)


@pytest.mark.heavy
def test_sigterm_to_torchrun_while_retraining_then_resume_logs_the_same_losses(tmp_path, free_port):
    from test_preempt import sigterm_torchrun_then_resume

    def inside_a_retraining(done, text):  # stages 2, 3
        assert done["stage"] >= 2 and done["step"] > 0, text[-3000:]

    sigterm_torchrun_then_resume(tmp_path, _torchrun, (free_port(), free_port(), free_port()), "retrain unconstrained", 1, 3,
                                 inside_a_retraining)


@pytest.mark.heavy
def test_torchrun_two_processes(tmp_path, free_port):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
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
