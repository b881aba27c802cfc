"""kill -9 at chosen moments of a real ``python -m automl run``, then ``--resume``: the architectures, their
parameter counts and test accuracies equal an uninterrupted run's (CPU, one thread).

The child runs with ``search.log_every=1`` so ``DIR/metrics.jsonl`` says where it is; the test polls it,
waits until the run is inside the phase it wants (weights, θ, retraining, export), adds a small random delay
and sends SIGKILL. The in-process interruption test (KeyboardInterrupt after the k-th checkpoint) is in
test_pipeline.py; this one kills the process for real, possibly in the middle of a checkpoint write.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from automl.pipeline import Run
from automl.recipe import load_recipe
from automl.train.checkpoint import CheckpointStore

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL")

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
BASE = ["data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.epsilons=[0,0.5]", "search.lam=2", "search.log_every=1", "device=cpu"]
# Every phase lasts several logged steps; ONNX export makes the export phase long enough to hit.
FULL = BASE + ["search.weight_epochs=3", "search.theta_epochs=3", "retrain.epochs=2", "export.onnx=true"]
# The quick variant: search only (retrain.epochs=0 exports the inherited weights), no ONNX.
QUICKEST = BASE + ["search.weight_epochs=3", "search.theta_epochs=1", "retrain.epochs=0", "export.onnx=false"]


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))


def _cmd(overrides, out, resume=False):
    return [sys.executable, "-m", "automl", "run", QUICK, *overrides, "--out", str(out)] + (
        ["--resume"] if resume else [])


def _lines(out: Path) -> list[dict]:
    try:
        text = (out / "metrics.jsonl").read_text()
    except FileNotFoundError:
        return []
    return [json.loads(x) for x in text.splitlines() if x.endswith("}")]  # the last may be half-written


def kill_when(out: Path, overrides, condition, delay: float, timeout: float = 300) -> list[dict]:
    """Start a run, wait for ``condition(metrics lines)``, sleep ``delay``, SIGKILL it. Returns the lines."""
    log = open(out.parent / f"{out.name}.killed.log", "w")
    proc = subprocess.Popen(_cmd(overrides, out), stdout=log, stderr=subprocess.STDOUT, env=_env())
    try:
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the run ended (code {proc.returncode}) before the kill point; "
                            f"last lines {_lines(out)[-2:]}")
            if condition(_lines(out)):
                break
            assert time.monotonic() - t0 < timeout, "kill point never reached"
            time.sleep(0.01)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    assert not (out / "results.json").exists()
    return _lines(out)


def resume(out: Path, overrides) -> tuple[dict, str]:
    p = subprocess.run(_cmd(overrides, out, resume=True), capture_output=True, text=True, env=_env(),
                       timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    return json.loads((out / "results.json").read_text()), p.stdout + p.stderr


def strip(results: dict) -> list:
    return [(a["choices"], a["params"], a["test_accuracy"], a["onnx"]) for a in results["architectures"]]


def phase_is(name: str, epoch: int | None = None, split: str | None = None):
    def cond(lines):
        if not lines:
            return False
        last = lines[-1]
        return (last["phase"].startswith(name) and (epoch is None or last["epoch"] == epoch)
                and (split is None or last.get("split") == split))
    return cond


@pytest.mark.heavy
def test_kill_9_in_weight_phase_and_corrupt_newest_checkpoint(tmp_path):
    """kill -9 in the 3rd weight epoch, damage the newest checkpoint, resume from the one before (checksum
    fallback, with a warning) and get the uninterrupted run's architectures. Heavy: 30-90 s, and timed by
    polling (a loaded machine can let the run pass its 3rd epoch before the kill). The default run keeps the
    fallback (test_checkpoint.test_corrupted_newest_falls_back_to_previous) and a resume after a hard stop
    (test_preempt.test_checkpoints_inside_an_epoch_then_hard_stop_resume_identical)."""
    reference = Run(load_recipe(QUICK, QUICKEST), tmp_path / "ref", tty=False).execute()
    out = tmp_path / "killed"
    kill_when(out, QUICKEST, phase_is("weights", epoch=3), delay=random.Random(0).uniform(0, 0.05))
    index = json.loads((out / "checkpoints" / "checkpoints.json").read_text())["checkpoints"]
    assert len(index) == 2  # after weight epochs 1 and 2
    newest = out / "checkpoints" / index[0]["file"]
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # truncated, as by a crash of the disk
    assert CheckpointStore(out / "checkpoints").load()["epoch"] == 1
    resumed, log = resume(out, QUICKEST)
    assert "corrupted" in log and "resuming" in log and "epoch 1" in log
    assert strip(resumed) == strip(reference)


@pytest.fixture(scope="module")
def full_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    p = subprocess.run(_cmd(FULL, out), capture_output=True, text=True, env=_env(), timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


KILL_POINTS = {
    # name: (condition on metrics.jsonl, where the run must resume)
    "weights": (phase_is("weights", epoch=2), "weights"),
    "theta": (phase_is("theta", epoch=2), "theta"),
    # the first member retrained (eps=0.5, unless it found eps=0's network: the CPU's rounding decides), where the
    # killed run reached it: the resume is named from its lines
    "retrain": (phase_is("retrain eps=", epoch=2), None),
    "export": (phase_is("retrain eps=0", split="test"), "retrain eps=0 epoch"),  # its epochs done: test, export
}


@pytest.mark.heavy
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("phase", list(KILL_POINTS))
def test_kill_9_in_every_phase_then_resume(tmp_path, full_reference, phase, seed):
    cond, resume_at = KILL_POINTS[phase]
    out = tmp_path / "killed"
    delay = random.Random(f"{phase}{seed}").uniform(0, 0.15 if phase == "export" else 0.05)
    lines = kill_when(out, FULL, cond, delay)
    print(f"{phase}/{seed}: killed {delay:.3f}s after {lines[-1]}")
    resume_at = resume_at or f"{lines[-1]['phase']} epoch"
    resumed, log = resume(out, FULL)
    assert f"at {resume_at}" in log, log[:500]
    assert strip(resumed) == strip(full_reference)
    # the lines the killed run logged after its checkpoint were cut: every step appears once
    steps = [(x["phase"], x["epoch"], x["step"], x.get("split")) for x in _lines(out) if "step" in x]
    assert len(steps) == len(set(steps))
    if phase == "export":
        manifest = json.loads((out / "export" / "eps-0" / "manifest.json").read_text())
        assert manifest["params"] == full_reference["architectures"][0]["params"]


@pytest.mark.heavy
def test_kill_9_in_theta_phase_with_corrupted_checkpoint(tmp_path, full_reference):
    out = tmp_path / "killed"
    kill_when(out, FULL, phase_is("theta", epoch=3), delay=0.0)
    index = json.loads((out / "checkpoints" / "checkpoints.json").read_text())["checkpoints"]
    newest = out / "checkpoints" / index[0]["file"]
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    newest.write_bytes(bytes(data))
    resumed, log = resume(out, FULL)
    assert "corrupted" in log
    assert strip(resumed) == strip(full_reference)


def test_resume_removes_the_temporaries_of_atomic_writes_a_kill_cut_short(tmp_path, die_after_save):
    from automl._io import atomic_path

    overrides = ["data.limit_train=64", "data.batch_size=32", "data.theta_batch_size=32", "search.weight_epochs=1",
                 "search.theta_epochs=1", "search.epsilons=[0]", "search.lam=2", "retrain.epochs=0",
                 "export.onnx=false", "search.supernets=1", "device=cpu", "threads=1",
                 f"export.dir={tmp_path / 'exports'}"]
    recipe = load_recipe(QUICK, overrides)
    out = tmp_path / "run"
    die_after_save(lambda state, n: n == 2)  # after the θ phase
    with pytest.raises(KeyboardInterrupt):
        Run(recipe, out, tty=False).execute()
    stale = []
    for target, suffix in [(out / "results.json", ""), (out / "report.md", ""),
                           (tmp_path / "exports" / "eps-0" / "model.onnx", ".onnx"),
                           (tmp_path / "exports" / "eps-0" / "weights.safetensors", ".safetensors")]:
        with pytest.raises(KeyboardInterrupt), atomic_path(target, suffix) as tmp:
            stale.append(Path(str(tmp) + ".copy"))
            raise KeyboardInterrupt  # atomic_path removes its own temporary: keep a copy, as a kill leaves it
    for p in stale:
        p.with_name(p.name.removesuffix(".copy")).write_text("half")
    stale = [p.with_name(p.name.removesuffix(".copy")) for p in stale]
    # not an atomic writer's: kept (another run's export folder, a user's files)
    others = [tmp_path / "exports" / "eps-9" / ".model.onnx.abcd1234.onnx.tmp", out / ".notes.tmp",
              out / "notes.abcd1234.tmp", out / ".results.json.abc.tmp"]
    for p in others:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("mine")
    Run(recipe, out, resume=True, tty=False).execute()
    assert [p for p in stale if p.exists()] == []
    assert all(p.exists() for p in others)
