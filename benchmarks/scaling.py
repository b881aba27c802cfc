"""Throughput of a short run with 1 and 2 processes (torchrun, gloo on the CPU), and 1..k GPUs when present.

    python benchmarks/scaling.py [--gpus]

Each configuration runs the quickstart recipe's weight and θ phases for one epoch each on the digits data
(retraining and export off) under `torchrun --nproc_per_node=K`, and reports images/s of the weight phase
(from results.json's phase_seconds and the number of D_W images).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = ["search.weight_epochs=2", "search.theta_epochs=1", "retrain.epochs=0", "export.onnx=false",
             "search.epsilons=[0,0.5]", "search.lam=2"]


def run(nproc: int, device: str, port: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "run"
        env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 2) // nproc)))
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--master_port={port}",
               "-m", "automl", "run", str(ROOT / "recipes" / "quickstart.yaml"), f"device={device}", *OVERRIDES,
               "--out", str(out)]
        subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
        res = json.loads((out / "results.json").read_text())
    images = 2 * 1437 // 2  # two epochs over D_W (half of the 1,437 training digits)
    return {"processes": nproc, "device": device, "weights_s": res["phase_seconds"]["weights"],
            "images_per_s": images / res["phase_seconds"]["weights"], "theta_s": res["phase_seconds"]["theta"]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--gpus", action="store_true", help="also 1..k GPUs (nccl)")
    a = p.parse_args()
    rows = [run(1, "cpu", 29611), run(2, "cpu", 29612)]
    if a.gpus and torch.cuda.is_available():
        for k in range(1, torch.cuda.device_count() + 1):
            rows.append(run(k, "cuda", 29620 + k))
    emit("scaling", rows, speedup_2_cpu=rows[1]["images_per_s"] / rows[0]["images_per_s"])


if __name__ == "__main__":
    main()
