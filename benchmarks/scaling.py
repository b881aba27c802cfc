"""Throughput of a short run with 1 and 2 processes (torchrun, gloo on the CPU), and with --gpus 1..k GPUs (nccl;
refused, exit 2, where torch sees no GPU).

    python benchmarks/scaling.py [--gpus]

Each configuration runs the quickstart recipe's weight phase for two epochs and its θ phase for one, on the
digits data, with one supernet (``search.supernets=1``: the quickstart now trains four, and the published
figure is of one), ε 0 and 0.5, λ = 2, retraining and export off, under `torchrun --nproc_per_node=K`, and
reports images/s of the weight phase (from results.json's phase_seconds and the number of D_W images).

Every process runs one intra-op thread (``threads=1``, and ``OMP_NUM_THREADS=1``), in every row: the rows
then differ only in the number of processes. Torch's default (one thread per core) would give the single
process every core and two processes one each, and on a machine with other work its spinning threads
collapse (a 2-core machine measured the 1-process row 20x slower that way, reported as a "speed-up" of the
2-process row). With 2 processes on fewer than 2 free cores the 2-process row shares a core: the script
says so. Each row and the JSON line record the thread count the run used (results.json's ``threads``).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import check_child, emit, parser, run_child_captured, run_main  # noqa: E402

from automl.recipe import load_recipe  # noqa: E402
from automl.train.data import build_data  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
THREADS = 1  # intra-op threads per process, in every row
WEIGHT_EPOCHS = 2
OVERRIDES = ["search.supernets=1", f"search.weight_epochs={WEIGHT_EPOCHS}", "search.theta_epochs=1", "retrain.epochs=0",
             "export.onnx=false", "search.epsilons=[0,0.5]", "search.lam=2", f"threads={THREADS}"]


def command(nproc: int, device: str, out: Path) -> tuple[list[str], dict]:
    """The torchrun command of one row and its environment (``--standalone``: a local rendezvous on a free port,
    so two benchmarks on one machine do not collide)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "automl", "run", str(ROOT / "recipes" / "quickstart.yaml"), f"device={device}", *OVERRIDES,
           "--out", str(out)]
    return cmd, env


def weight_images(nproc: int) -> int:
    """Images one epoch of the weight phase trains on over all ``nproc`` processes (D_W as the run splits it:
    each process sees an equal share, the remainder left out)."""
    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml", OVERRIDES)
    data = build_data(recipe.data, recipe.base_dir, recipe.seed, "cpu", rank=0, world_size=nproc)
    return data.w.num_samples * nproc


def run(nproc: int, device: str) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "run"
        cmd, env = command(nproc, device, out)
        rc, _, err = run_child_captured(cmd, env)  # Ctrl-C: passed on to torchrun, which passes it to the ranks
        check_child(cmd, rc, err)
        res = json.loads((out / "results.json").read_text())
    images = WEIGHT_EPOCHS * weight_images(nproc)
    return {"processes": nproc, "device": device, "threads": (res.get("threads") or {}).get("threads"),
            "weights_s": res["phase_seconds"]["weights"], "images_per_s": images / res["phase_seconds"]["weights"],
            "theta_s": res["phase_seconds"]["theta"]}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--gpus", action="store_true", help="also 1..k GPUs (nccl)")
    a = p.parse_args()
    if a.gpus and not torch.cuda.is_available():  # no GPU rows to measure: refused before the CPU rows' minute
        p.error("argument --gpus: torch sees no CUDA GPU on this machine; leave --gpus out for the CPU rows")
    from automl.train.threads import busy_cores, physical_cores

    cores, busy = physical_cores(), busy_cores() or 0.0
    if cores - busy < 2 * THREADS:
        print(f"note: {cores} cores, {busy:.1f} busy: the 2-process row ({2 * THREADS} threads) shares a core",
              file=sys.stderr)
    configs = [(1, "cpu"), (2, "cpu")]
    if a.gpus:
        configs += [(k, "cuda") for k in range(1, torch.cuda.device_count() + 1)]
    rows = []
    for nproc, device in configs:
        rows.append(run(nproc, device))
        r = rows[-1]  # each row as it is measured: a later row that fails or is stopped does not lose it
        print(f"scaling: {nproc} process{'es' if nproc > 1 else ''} on {device}: {r['images_per_s']:.0f} img/s "
              f"(weight phase {r['weights_s']:.2f} s, θ phase {r['theta_s']:.2f} s, {r['threads']} thread(s) each)",
              flush=True)
    emit("scaling", rows, threads_per_process=THREADS, supernets=1, physical_cores=cores, busy_cores=round(busy, 1),
         speedup_2_cpu=rows[1]["images_per_s"] / rows[0]["images_per_s"])


if __name__ == "__main__":
    run_main(main)
