"""A run checkpointed inside a weight epoch on one process and resumed on two (torchrun halves an epoch's
steps): the steps done already end the epoch on two processes, and its metrics line is still logged, with the
rate of the epoch's last update as an uninterrupted two-process run logs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from automl.pipeline import Run
from automl.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
# 256 images, half of them D_W, in batches of 16: 8 steps an epoch on one process, 4 on two
RUN = ["data.limit_train=256", "data.batch_size=16", "data.theta_batch_size=32", "retrain.batch_size=32",
       "search.weight_epochs=3", "search.theta_epochs=1", "search.budgets=[null]", "search.lam=2",
       "search.supernets=1", "retrain.epochs=0", "export.onnx=false", "device=cpu", "threads=1",
       "checkpoint.every_steps=6"]


def _weight_lines(out: Path) -> dict[int, dict]:
    """The last metrics.jsonl line of each weight epoch."""
    lines = {}
    for line in (out / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("phase") == "weights" and "lr" in rec:
            lines[rec["epoch"]] = rec
    return lines


@pytest.mark.heavy
def test_an_epoch_the_steps_done_end_is_logged_after_a_resume_on_more_processes(tmp_path, free_port,
                                                                                  die_after_save):
    from test_kill_resume import _env

    out, ref = tmp_path / "run", tmp_path / "ref"
    # killed after the checkpoint at step 6 of weight epoch 1 (of 8 steps on one process)
    die_after_save(lambda state, n: state["stage"] == 0 and state["epoch"] == 0 and state["step"] == 6)
    with pytest.raises(KeyboardInterrupt):
        Run(load_recipe(QUICK, RUN), out, tty=False).execute()
    for folder, resume in ((out, True), (ref, False)):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
               "-m", "automl", "run", QUICK, *RUN, "--out", str(folder)] + (["--resume"] if resume else [])
        p = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
    resumed, reference = _weight_lines(out), _weight_lines(ref)
    assert sorted(resumed) == [1, 2, 3], resumed
    assert resumed[1]["step"] == 6  # the steps done, over which its figures are
    assert resumed[1]["lr"] == pytest.approx(reference[1]["lr"]), (resumed[1], reference[1])
    assert resumed[2]["lr"] == pytest.approx(reference[2]["lr"])
