"""Review lead4: a run resumed with another number of processes (torchrun: data.batch_size is per process, so an
epoch has other steps) continues its learning-rate schedule at the epoch it resumes, not at the update count the
checkpoint recorded in the old epoch's steps (which, from one process to two, put the last epochs at lr 0)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from automl.pipeline import Run
from automl.pipeline.loop import updates_done
from automl.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
RUN = ["data.limit_train=256", "data.batch_size=16", "data.theta_batch_size=32", "retrain.batch_size=32",
       "search.weight_epochs=4", "search.theta_epochs=1", "search.budgets=[null]", "search.lam=2",
       "search.supernets=1", "retrain.epochs=0", "export.onnx=false", "device=cpu", "threads=1"]


def test_the_update_count_is_the_epochs_position_in_steps_of_this_length():
    assert updates_done(0, 0, 8) == 0 and updates_done(2, 0, 8) == 16 and updates_done(2, 3, 8) == 19
    assert updates_done(2, 5, 4) == 12  # more steps done than an epoch now has: the epoch is over


def _weight_lrs(out: Path) -> dict[int, float]:
    """The lr of each weight epoch's last logged step (metrics.jsonl)."""
    lrs = {}
    for line in (out / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("phase") == "weights" and "lr" in rec:
            lrs[rec["epoch"]] = rec["lr"]
    return lrs


def _torchrun(out: Path, port: int, resume: bool) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
            "-m", "automl", "run", QUICK, *RUN, "--out", str(out)] + (["--resume"] if resume else [])


@pytest.mark.heavy
def test_one_process_resumed_on_two_keeps_the_schedule_of_two(tmp_path, free_port, die_after_save):
    from test_kill_resume import _env

    out, ref = tmp_path / "run", tmp_path / "ref"
    die_after_save(lambda state, n: state["stage"] == 0 and state["epoch"] == 2 and state["step"] == 0)
    with pytest.raises(KeyboardInterrupt):  # killed after weight epoch 2's checkpoint, one process
        Run(load_recipe(QUICK, RUN), out, tty=False).execute()
    for folder, resume in ((out, True), (ref, False)):
        p = subprocess.run(_torchrun(folder, free_port(), resume), capture_output=True, text=True, env=_env(),
                           timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
    resumed, reference = _weight_lrs(out), _weight_lrs(ref)
    assert resumed[3] == pytest.approx(reference[3]) and resumed[4] == pytest.approx(reference[4]), (resumed,
                                                                                                     reference)
    assert resumed[3] > 0.01  # before: the schedule ran ahead, to 0.0007 at epoch 3 and 0 at epoch 4
