"""Preemption safety: one writer per run folder, checkpoints inside an epoch, SIGTERM / SIGINT.

The in-process tests make a training step send the signal to the test's own process (the handler only
records it; the loop finishes the step, checkpoints and stops), then resume and compare with an uninterrupted
run: architectures, parameter counts, accuracies, and every line of metrics.jsonl but its clock. They count
the training steps each run executes, so "the resumed run redid nothing" is measured, not assumed. The
subprocess tests do the same to a real ``python -m automl run`` (and to torchrun with two processes).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_kill_resume import _cmd, _env, _lines  # a real `python -m automl run` and its metrics

import automl.train.loops
from automl.cli import main
from automl.errors import Stopped
from automl.pipeline import Run
from automl.recipe import load_recipe
from automl.train.checkpoint import CheckpointStore

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals and flock")

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
# D_W: 96 items = 3 weight steps per epoch, D_θ 3 steps, D 6 retraining steps; every step logged.
TINY = ["data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.weight_epochs=2", "search.theta_epochs=2", "search.epsilons=[0,0.5]", "search.lam=2",
        "retrain.epochs=2", "export.onnx=false", "search.log_every=1", "device=cpu"]
STEPS = ("weight_step", "path_losses", "train_step")  # the training steps of the pipeline


def _metrics(out: Path) -> list[dict]:
    """metrics.jsonl without its clock (the only field that may differ between two runs)."""
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (out / "metrics.jsonl").read_text().splitlines()]


def _strip(res: dict) -> list:
    return [(a["choices"], a["params"], a["test_accuracy"]) for a in res["architectures"]]


def _run(out: Path, overrides, resume=False) -> dict:
    return Run(load_recipe(QUICK, TINY + overrides), out, resume=resume, tty=False).execute()


def _count_steps(monkeypatch, signal_at: tuple[str, int, int] | None = None) -> dict:
    """Count the calls of each training step in the pipeline; with ``signal_at`` = (step, k, signum), the
    k-th call of that step sends ``signum`` to this process (as a cluster or Ctrl-C would)."""
    counts = {name: 0 for name in STEPS}
    for name in STEPS:
        real = getattr(automl.train.loops, name)

        def counted(*a, _name=name, _real=real, **k):
            counts[_name] += 1
            if signal_at and signal_at[0] == _name and counts[_name] == signal_at[1]:
                os.kill(os.getpid(), signal_at[2])
            return _real(*a, **k)

        monkeypatch.setattr(automl.train.loops, name, counted)
    return counts


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted TINY runs, their metrics and their step counts, per search method."""
    cache = {}

    def get(method):
        if method not in cache:
            out = tmp_path_factory.mktemp("ref") / method
            mp = pytest.MonkeyPatch()
            try:
                counts = _count_steps(mp)
                res = _run(out, [f"search.method={method}"])
            finally:
                mp.undo()
            cache[method] = (res, _metrics(out), dict(counts))
        return cache[method]
    return get


def _no_repeats(lines: list[dict]) -> None:
    keys = [(x["phase"], x["epoch"], x["step"], x.get("split")) for x in lines if "step" in x]
    assert len(keys) == len(set(keys)), "metrics.jsonl repeats a step"


# ------------------------------------------------------------------------------------ signals, in-process

SIGNAL_POINTS = {
    # name: (method, step function, its k-th call, its calls when the run stops, where the run resumes).
    # A weight step of the quickstart's four supernets is four weight_step calls, one per supernet: a signal
    # at a step's second call stops after its fourth (the 18th call is step 5's second: epoch 1, step 2).
    "weight epoch": ("importance_sampling", "weight_step", 18, 20, "weights epoch 2/2, after step 2"),
    "theta epoch": ("importance_sampling", "path_losses", 2, 2, "theta epoch 1/2, after step 2"),
    "retraining": ("importance_sampling", "train_step", 16, 16, "retrain eps=0.5 epoch 1/2, after step 4"),
    # member 0's search is 6 steps (24 calls); the 30th call is member 1's step 2, its second supernet
    "simultaneous": ("simultaneous", "weight_step", 30, 32, "simultaneous eps=0.5 epoch 1/2, after step 2"),
}


@pytest.mark.parametrize("point", list(SIGNAL_POINTS))
def test_sigterm_mid_epoch_checkpoints_after_the_step_and_resume_redoes_nothing(tmp_path, monkeypatch,
                                                                                 reference, point, capfd):
    method, fn, k, done, where = SIGNAL_POINTS[point]
    ref, ref_lines, ref_counts = reference(method)
    out = tmp_path / "run"
    handler = signal.getsignal(signal.SIGTERM)
    counts = _count_steps(monkeypatch, (fn, k, signal.SIGTERM))
    with pytest.raises(Stopped) as stop:
        _run(out, [f"search.method={method}"])
    assert stop.value.exit_code == 143
    log = capfd.readouterr()  # fd level: the handler writes to fd 2 directly
    assert f"resumes at {where}" in log.out and "--resume" in log.out
    assert "SIGTERM: finishing the current step" in log.err
    assert counts[fn] == done  # stopped right after the step that received the signal
    assert CheckpointStore(out / "checkpoints").load()["step"] > 0  # a checkpoint inside the epoch
    assert signal.getsignal(signal.SIGTERM) is handler  # the run's handler is gone

    before = dict(counts)
    resumed = _run(out, [f"search.method={method}"], resume=True)
    assert f"at {where}" in capfd.readouterr().out
    assert _strip(resumed) == _strip(ref)
    # every step ran exactly once over the two processes: nothing redone, nothing skipped
    assert {n: counts[n] for n in STEPS} == ref_counts, (before, counts)
    assert _metrics(out) == ref_lines
    _no_repeats(_metrics(out))


def test_sigint_through_the_cli_exits_130_and_resumes(tmp_path, monkeypatch, reference, capsys):
    ref, ref_lines, _ = reference("importance_sampling")
    out = tmp_path / "run"
    _count_steps(monkeypatch, ("weight_step", 2, signal.SIGINT))
    assert main(["run", QUICK, *TINY, "--out", str(out)]) == 130
    text = capsys.readouterr().out
    assert "stopped by SIGINT" in text
    command = text.split("Continue with: ")[1].strip()
    assert command.startswith("automl run ") and command.endswith(f"--out {out} --resume")
    assert "search.log_every=1" in command  # the overrides, so the resumed recipe is the same
    monkeypatch.undo()
    assert main(shlex.split(command)[1:]) == 0
    assert _strip(json.loads((out / "results.json").read_text())) == _strip(ref)
    assert _metrics(out) == ref_lines


def test_second_signal_exits_at_once_and_the_previous_checkpoint_stays(tmp_path):
    """The first signal asked for a checkpoint; a second one arrives while it is being written: the process
    exits at once (143), the half-written checkpoint is never named by the index, the previous one loads."""
    script = f"""
import os, pathlib, signal, sys
sys.path.insert(0, {str(ROOT)!r})
from automl.train.checkpoint import CheckpointStore
from automl.train.distributed import DistInfo
from automl.train.preempt import Preemption
store = CheckpointStore({str(tmp_path)!r})
store.save({{"n": 1}})
p = Preemption(DistInfo())
with p.armed():
    os.kill(os.getpid(), signal.SIGTERM)          # the first: only recorded
    assert p.pending == signal.SIGTERM
    def interrupted_write(path, data):            # the checkpoint file, written in two halves
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            os.kill(os.getpid(), signal.SIGTERM)  # the second, in the middle of the write
            f.write(data[len(data) // 2:])
    pathlib.Path.write_bytes = interrupted_write
    store.save({{"n": 2}})
print("not reached")
"""
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_env(), timeout=120)
    assert p.returncode == 143, p.stderr
    assert "not reached" not in p.stdout and "SIGTERM again: stopping now" in p.stderr
    store = CheckpointStore(tmp_path)
    assert store.load() == {"n": 1}
    assert store.remove_temporaries() == 1  # the abandoned write, which a resumed run deletes
    assert store.load() == {"n": 1} and not list(tmp_path.glob(".*"))


# ------------------------------------------------------------------------------------ checkpoints inside an epoch

@pytest.mark.parametrize("trigger,kill_after", [
    ("checkpoint.every_steps=2", 1),    # weights, epoch 0 after 2 steps
    ("checkpoint.every_steps=2", 7),    # θ, epoch 1 after 2 steps
    ("checkpoint.every_steps=4", 10),   # retraining retrain/1, epoch 0 after 4 steps
    ("checkpoint.every_minutes=1e-9", 4),  # the clock, due after every step: weights, epoch 1 after 1 step
])
def test_checkpoints_inside_an_epoch_then_hard_stop_resume_identical(tmp_path, monkeypatch, die_after_save,
                                                                     reference, trigger, kill_after):
    ref, ref_lines, ref_counts = reference("importance_sampling")
    saved = die_after_save(lambda state, n: n == kill_after)  # the process ends right after that checkpoint
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _run(out, [trigger])
    assert saved[-1][2] > 0, saved  # the last checkpoint is inside an epoch
    with open(out / "metrics.jsonl", "a") as f:  # as if the killed run had logged more after its checkpoint
        f.write('{"phase": "weights", "epoch": 9, "step": 9, "loss": 0.0}\n{"phase": "weig')
    counts = _count_steps(monkeypatch)
    # the checkpoint settings are not part of the recipe's fingerprint: resuming without them is allowed
    resumed = _run(out, [], resume=True)
    assert _strip(resumed) == _strip(ref)
    assert _metrics(out) == ref_lines  # cut back to the checkpoint: no repeated step, no stray line
    assert sum(counts.values()) < sum(ref_counts.values())  # resumed inside the phase, not at its start


def test_default_checkpoint_interval_writes_nothing_extra_on_the_quickstart(tmp_path, monkeypatch):
    saved = []
    real_save = CheckpointStore.save
    monkeypatch.setattr(CheckpointStore, "save", lambda self, st: (saved.append(st["step"]), real_save(self, st))[1])
    _run(tmp_path / "run", [])
    assert saved and set(saved) == {0}  # every checkpoint at an epoch or stage boundary


# ------------------------------------------------------------------------------------ one writer per folder

def _hold_lock(folder: Path) -> subprocess.Popen:
    """Another process holding the run folder's lock, as a running ``automl run`` does."""
    code = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); from automl._lock import RunLock; "
            f"RunLock({str(folder)!r}).acquire(); print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=_env())
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_is_refused_while_the_folder_is_locked_and_accepted_after_kill_9(tmp_path, capsys):
    out = tmp_path / "run"
    # a run stopped after its first weight epoch leaves a checkpoint to resume
    assert main(["run", QUICK, *TINY, "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
                 "--out", str(out)]) == 0
    (out / "results.json").unlink()
    index = (out / "checkpoints" / "checkpoints.json").read_text()
    holder = _hold_lock(out)
    try:
        for extra in (["--resume"], []):
            code = main(["run", QUICK, *TINY, "search.weight_epochs=1", "search.theta_epochs=1",
                         "retrain.epochs=0", "--out", str(out), *extra])
            err = capsys.readouterr().err
            assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
            assert f"--out {out} is in use" in err and f"process {holder.pid}" in err, err
        assert (out / "checkpoints" / "checkpoints.json").read_text() == index  # nothing written
        assert not (out / "results.json").exists()
        # reading is not writing: exporting a finished member from the run's files works meanwhile
        manifest = out / "export" / "eps-0" / "manifest.json"
        ckpt = sorted((out / "checkpoints").glob("ckpt-*.pt"))[-1]
        assert main(["export", str(ROOT / "spaces" / "digits.space"), "--arch", str(manifest), "--out",
                     str(tmp_path / "exported"), "--weights", str(ckpt)]) == 0
    finally:
        holder.kill()  # SIGKILL: the kernel drops the lock with the process
        holder.wait()
    code = main(["run", QUICK, *TINY, "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
                 "--out", str(out), "--resume"])
    assert code == 0 and (out / "results.json").is_file()


# ------------------------------------------------------------------------------------ real processes

@contextmanager
def _child(cmd, log_path: Path):
    """A child process writing to ``log_path``, killed on the way out if it is still alive."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env())
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _wait_for(proc, out: Path, phase: str, epoch: int, step: int, timeout: float = 300) -> None:
    t0 = time.monotonic()
    while True:
        lines = _lines(out)
        if lines and lines[-1]["phase"].startswith(phase) and (lines[-1]["epoch"], lines[-1]["step"]) >= (epoch, step):
            return
        assert proc.poll() is None, f"the run ended (code {proc.returncode}) before {phase} {epoch}/{step}"
        assert time.monotonic() - t0 < timeout, "never reached"
        time.sleep(0.01)


# 6 weight steps, 6 θ steps and 12 retraining steps per epoch. ε = 2, not TINY's 0.5: on some CPUs (an AVX2-only
# EPYC) ε = 0.5 chose ε = 0's network, which is retrained once (same_network_as), so "retrain eps=0.5" never came;
# ε = 2 chose 21,090 parameters against ε = 0's 95,370 there
REAL = TINY + ["data.limit_train=384", "search.epsilons=[0,2]"]


@pytest.fixture(scope="module")
def real_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    res = Run(load_recipe(QUICK, REAL), out, tty=False).execute()
    return res, _metrics(out)


def _refused_while(proc, out: Path, overrides) -> None:
    """With ``proc`` paused (SIGSTOP: it keeps its lock), a second writer, with or without --resume, is
    refused with one message naming it."""
    for resume in (True, False):
        p = subprocess.run(_cmd(overrides, out, resume=resume), capture_output=True, text=True, env=_env(),
                           timeout=300)
        assert p.returncode == 2 and f"process {proc.pid}" in p.stderr, p.stderr
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def _sigterm_then_resume(tmp_path, overrides, reference, phase, epoch, step, second_writer=True,
                         resume_here=False):
    """SIGTERM a real run once it logged ``phase`` (epoch, step); resume it (in a new process, or with
    ``resume_here`` in this one) and compare with ``reference``. Returns the checkpoint it stopped with."""
    ref, ref_lines = reference[:2]
    out = tmp_path / "run"
    with _child(_cmd(overrides, out), tmp_path / "killed.log") as proc:
        _wait_for(proc, out, phase, epoch, step)
        proc.send_signal(signal.SIGSTOP)  # paused, it keeps its lock
        if second_writer:
            _refused_while(proc, out, overrides)
        proc.send_signal(signal.SIGTERM)  # delivered once it continues
        proc.send_signal(signal.SIGCONT)
        assert proc.wait(timeout=120) == 143
    text = (tmp_path / "killed.log").read_text()
    assert "stopped by SIGTERM" in text and "Traceback" not in text, text[-2000:]
    command = shlex.split(text.split("Continue with: ")[1].splitlines()[0])
    assert command[:2] == ["automl", "run"] and command[-1] == "--resume"
    done = CheckpointStore(out / "checkpoints").load()
    if resume_here:
        assert main(command[1:]) == 0
    else:
        p = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, env=_env(), timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
    assert _strip(json.loads((out / "results.json").read_text())) == _strip(ref)
    assert _metrics(out) == ref_lines
    return done


@pytest.mark.heavy
def test_sigterm_to_a_real_run_exits_143_and_resumes(tmp_path, reference):
    """A real process, SIGTERM in its second weight epoch, resumed here. Heavy (20-50 s): the default run
    keeps the handler and the resume in-process (test_sigterm_mid_epoch...), exit 143 of a real process
    (test_second_signal_exits_at_once...) and the CLI's exit code (test_sigint_through_the_cli...)."""
    done = _sigterm_then_resume(tmp_path, TINY, reference("importance_sampling"), "weights", 2, 1,
                                second_writer=False, resume_here=True)
    assert done["stage"] <= 1  # after step 2 (inside the epoch), or 3 if it was that quick (the stage's end)


@pytest.mark.heavy
@pytest.mark.parametrize("phase", ["weights", "theta", "retrain eps=2"])
def test_sigterm_to_a_real_run_in_every_phase_refusing_a_second_writer(tmp_path, real_reference, phase):
    done = _sigterm_then_resume(tmp_path, REAL, real_reference, phase, 1 + (phase == "weights"), 2)
    assert done["step"] > 0


@pytest.mark.heavy
def test_second_real_writer_refused_while_running_accepted_after_kill_9(tmp_path, real_reference):
    ref, _ = real_reference
    out = tmp_path / "run"
    with _child(_cmd(REAL, out), tmp_path / "killed.log") as proc:
        _wait_for(proc, out, "weights", 2, 1)
        proc.send_signal(signal.SIGSTOP)
        _refused_while(proc, out, REAL)
        proc.kill()  # SIGKILL, while paused: no handler runs, the kernel drops the lock
        proc.wait()
    p = subprocess.run(_cmd(REAL, out, resume=True), capture_output=True, text=True, env=_env(), timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert _strip(json.loads((out / "results.json").read_text())) == _strip(ref)
    _no_repeats(_metrics(out))


# ------------------------------------------------------------------------------------ torchrun

DDP = ["data.limit_train=512", "data.batch_size=16", "data.theta_batch_size=32", "data.test_batch_size=512",
       "search.weight_epochs=2", "search.theta_epochs=1", "search.epsilons=[0,0.5]", "search.lam=2",
       "retrain.epochs=1", "export.onnx=false", "search.log_every=1", "device=cpu"]  # 8 weight steps per rank


def _torchrun(out, port, resume=False):
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
            "-m", "automl", "run", QUICK, *DDP, "--out", str(out)] + (["--resume"] if resume else [])


def sigterm_torchrun_then_resume(tmp_path, torchrun, ports: tuple[int, int, int], phase: str, epoch: int,
                                 step: int, stopped_at) -> None:
    """A reference torchrun run; the same run sent SIGTERM once ``phase`` reached ``epoch``/``step`` (torchrun
    passes it on to both ranks), its checkpoint checked by ``stopped_at(checkpoint, log)``; then resumed, and
    its results and metrics.jsonl equal to the reference's. ``torchrun(out, port, resume=False)``: the command."""
    ref = tmp_path / "ref"
    p = subprocess.run(torchrun(ref, ports[0]), capture_output=True, text=True, env=_env(), timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    out = tmp_path / "run"
    with _child(torchrun(out, ports[1]), tmp_path / "killed.log") as proc:
        _wait_for(proc, out, phase, epoch, step)
        proc.send_signal(signal.SIGTERM)  # torchrun passes it on to both ranks, at whatever step each is
        proc.wait(timeout=120)  # torchrun itself exits 1 after a signal (its own SignalException)
    text = (tmp_path / "killed.log").read_text()
    assert "stopped by SIGTERM" in text, text[-3000:]
    stopped_at(CheckpointStore(out / "checkpoints").load(), text)
    p = subprocess.run(torchrun(out, ports[2], resume=True), capture_output=True, text=True, env=_env(), timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    resumed, reference = (json.loads((d / "results.json").read_text()) for d in (out, ref))
    assert _strip(resumed) == _strip(reference)
    assert _metrics(out) == _metrics(ref)


@pytest.mark.heavy
def test_sigterm_to_torchrun_in_the_weight_phase_then_resume(tmp_path, free_port):
    def in_the_weight_phase(done, text):  # both ranks stopped at one step, inside it
        assert done["stage"] == 0 and done["step"] > 0, text[-3000:]

    sigterm_torchrun_then_resume(tmp_path, _torchrun, (free_port(), free_port(), free_port()), "weights", 2, 3,
                                 in_the_weight_phase)


@pytest.mark.heavy  # CI only (pytest -m heavy): the default suite stays under 15 minutes
def test_sigterm_to_automl_rank_keeps_the_finished_retrainings_and_the_rerun_does_the_rest(tmp_path, monkeypatch,
                                                                                          capsys):
    import shutil

    out, whole = tmp_path / "run", tmp_path / "whole"
    _run(out, ["retrain.epochs=1"])
    shutil.copytree(out, whole)
    rank = ["--archs", "3", "--retrain-epochs", "1"]
    assert main(["rank", str(whole), *rank]) == 0
    capsys.readouterr()
    # SIGTERM in the first step of the second ranked architecture's retraining (6 steps each)
    counts = _count_steps(monkeypatch, ("train_step", 8, signal.SIGTERM))
    assert main(["rank", str(out), *rank]) == 143
    said = capsys.readouterr()
    err = said.out + said.err
    assert counts["train_step"] == 12  # the retraining in progress was finished, the third not started
    assert "stopped by SIGTERM" in err and "2 of 3 retrainings" in err
    assert f"Continue with: automl rank {out} --archs 3 --retrain-epochs 1" in err
    kept = json.loads((out / "results.json").read_text())
    assert "ranking" not in kept
    monkeypatch.undo()
    counts = _count_steps(monkeypatch)
    assert main(["rank", str(out), *rank]) == 0
    assert counts["train_step"] == 6  # only the third architecture's
    done, ref = (json.loads((d / "results.json").read_text()) for d in (out, whole))
    assert done["ranking"].pop("seconds") >= 0 and ref["ranking"].pop("seconds") >= 0  # each command's own clock
    # the rerun took the two retrainings the stopped command recorded; the uninterrupted ranking ran all three
    assert (done["ranking"].pop("reused_retrainings"), ref["ranking"].pop("reused_retrainings")) == (2, 0)
    assert done == ref
    assert _metrics(out) == _metrics(whole)  # every line once, in the same order
