"""Data-parallel runs under torchrun (gloo on the CPU): two processes, one result, θ identical on both."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from automl.train.distributed import DistInfo, all_reduce_grads

ROOT = Path(__file__).resolve().parents[1]


def test_single_process_helpers_are_no_ops():
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    all_reduce_grads([p], DistInfo())
    assert torch.equal(p.grad, torch.full((3,), 2.0))


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
