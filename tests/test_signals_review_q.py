"""Signals and DataLoader workers, SIGHUP, and data folders this user may not enter (review Q, findings 3, 4, 11).

* SIGTERM, SIGINT or SIGHUP sent to a whole process group (Slurm's ``scancel``, systemd, ``kill -- -PGID``, a
  terminal's Ctrl-C or hang-up) reaches an image folder's DataLoader workers too: they leave stopping to the
  run's main process, which finishes its step, checkpoints and exits 128 + the signal, printing one
  "finishing" line; the workers keep serving batches meanwhile and still end when the loader shuts them down.
* SIGHUP stops a run as SIGTERM does: a checkpoint after the current step, exit 129.
* A data folder (or a folder above it) that this user may not enter is a DataError (exit 2) naming it.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

import automl.train.data
import automl.train.loops
from automl.cli import main
from automl.errors import DataError
from automl.pipeline import Run
from automl.recipe import DataConfig, load_recipe
from automl.train.checkpoint import CheckpointStore
from automl.train.data import build_data
import helpers

pytestmark = pytest.mark.skipif(os.name != "posix", reason="process groups, SIGHUP, permissions")

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))


def _metrics(out: Path) -> list[dict]:
    """metrics.jsonl without its clock (the only field that may differ between two runs)."""
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (out / "metrics.jsonl").read_text().splitlines()]


def _lines(out: Path) -> list[dict]:
    try:
        text = (out / "metrics.jsonl").read_text()
    except FileNotFoundError:
        return []
    return [json.loads(x) for x in text.splitlines() if x.endswith("}")]  # the last may be half-written


write_images = partial(helpers.write_images, ext="png")  # PNGs


# ------------------------------------------------------------------------------------ workers and signals


def _hup_default() -> None:
    """In a child: SIGHUP's default disposition, as a run on a terminal has it (pytest itself may run under
    ``nohup``, whose ignored SIGHUP every child inherits and the run then rightly leaves ignored)."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _kill_from_another_process(pids, signum) -> None:
    """``signum`` to ``pids``, sent by another process (as a scheduler, a terminal or ``kill`` would: not by
    the workers' parent, whose SIGTERM torch uses to end a worker)."""
    subprocess.run(["kill", f"-{signal.Signals(signum).name[3:]}", *map(str, pids)], check=True, timeout=60)


def test_folder_loader_workers_keep_serving_after_stop_signals_and_still_shut_down(tmp_path):
    """Before, a worker died of SIGTERM or SIGHUP (the main process then raised torch's "DataLoader worker is
    killed by signal"), and SIGINT ended it (KeyboardInterrupt) or, in a run, printed the run's "finishing" line."""
    write_images(tmp_path, per_class=6)
    cfg = DataConfig(dataset="imagefolder", root=str(tmp_path), image_size=8, batch_size=2, theta_split=2)
    with_workers = build_data(cfg.model_copy(update={"workers": 2}), ".", seed=0, device="cpu").full
    expected = [[y.tolist() for _, y in build_data(cfg, ".", seed=0, device="cpu").full.epoch(e)] for e in (0, 1)]
    batches = with_workers.epoch(0)
    got = [next(batches)[1].tolist(), next(batches)[1].tolist()]  # one from each worker: both have started
    workers = list(with_workers._loader._iterator._workers)
    pids = [w.pid for w in workers]
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        _kill_from_another_process(pids, signum)
    time.sleep(0.5)  # let a worker that would die of them do so before the next batches are asked for
    got += [y.tolist() for _, y in batches]
    assert [[y.tolist() for _, y in with_workers.epoch(1)]] == expected[1:]  # the same workers, next epoch
    assert got == expected[0]
    assert all(w.is_alive() for w in workers)
    # torch ends them as usual: the last worker by the parent's SIGTERM (what multiprocessing does to daemon
    # children at exit), the others through the loader's shutdown (None on their index queues)
    workers[-1].terminate()
    workers[-1].join(timeout=60)
    assert workers[-1].exitcode == 0
    with_workers._loader._iterator._shutdown_workers()
    for w in workers:
        w.join(timeout=60)
        assert not w.is_alive()


@pytest.mark.skipif(not hasattr(signal, "sigwaitinfo"), reason="workers take the signals with sigwaitinfo")
def test_folder_loader_workers_start_with_the_stop_signals_held_back(tmp_path, monkeypatch):
    """A worker is forked with SIGTERM, SIGINT and SIGHUP blocked, so one sent to the group while it starts (before
    its worker_init_fn) waits for the worker's own handling instead of killing it with torch's SIGTERM handler or
    Python's defaults."""
    real = automl.train.data.leave_signals_to_the_main_process

    def recording(worker_id):  # the workers are forked: they run this patched function
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        (tmp_path / f"mask-{worker_id}").write_text(" ".join(sorted(signal.Signals(s).name for s in blocked)))
        real(worker_id)

    monkeypatch.setattr(automl.train.data, "leave_signals_to_the_main_process", recording)
    write_images(tmp_path / "imgs", per_class=4)
    cfg = DataConfig(dataset="imagefolder", root=str(tmp_path / "imgs"), image_size=8, batch_size=2, theta_split=2,
                     workers=2)
    loader = build_data(cfg, ".", seed=0, device="cpu").full
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert len(list(loader.epoch(0))) == len(loader)
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before  # this process's mask is as it was
    for worker_id in (0, 1):
        assert {"SIGTERM", "SIGINT", "SIGHUP"} <= set((tmp_path / f"mask-{worker_id}").read_text().split())
    loader._loader._iterator._shutdown_workers()


# ------------------------------------------------------------------------------------ SIGHUP


class NotCaught(Exception):
    """SIGHUP reached the test's own handler: the run did not catch it."""


def _not_caught(signum, frame):
    raise NotCaught(signal.Signals(signum).name)


def test_sighup_through_the_cli_exits_129_with_a_checkpoint_inside_the_epoch_and_resumes(tmp_path, monkeypatch,
                                                                                      capfd):
    tiny = ["data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
            "search.weight_epochs=2", "search.theta_epochs=1", "search.epsilons=[0,0.5]", "search.lam=2",
            "search.supernets=1", "retrain.epochs=0", "export.onnx=false", "search.log_every=1", "device=cpu",
            "threads=1"]
    ref = tmp_path / "ref"
    Run(load_recipe(QUICK, tiny), ref, tty=False).execute()
    capfd.readouterr()
    real, calls = automl.train.loops.weight_step, []

    def weight_step(*a, **k):  # D_W: 3 steps per epoch; the 5th is epoch 1's second
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGHUP)  # the terminal closed
        return real(*a, **k)

    monkeypatch.setattr(automl.train.loops, "weight_step", weight_step)
    out = tmp_path / "run"
    before = signal.signal(signal.SIGHUP, _not_caught)  # a SIGHUP the run does not catch fails the test only
    try:
        assert main(["run", QUICK, *tiny, "--out", str(out)]) == 129
        assert signal.getsignal(signal.SIGHUP) is _not_caught  # the run's handler is gone
    finally:
        signal.signal(signal.SIGHUP, before)
    log = capfd.readouterr()
    assert log.err.count("SIGHUP: finishing the current step") == 1, log.err
    assert "stopped by SIGHUP" in log.out and "resumes at weights epoch 2/2, after step 2" in log.out, log.out
    assert len(calls) == 5  # stopped after the step that received it
    assert CheckpointStore(out / "checkpoints").load()["step"] == 2
    command = log.out.split("Continue with: ")[1].splitlines()[0]
    monkeypatch.undo()
    assert main(shlex.split(command)[1:]) == 0
    assert _metrics(out) == _metrics(ref)


def test_sighup_of_a_hung_up_terminal_sends_its_output_to_dev_null_and_a_live_one_keeps_it(tmp_path):
    """When the terminal goes away, every write to it fails (EIO): the run, stopping on the SIGHUP, would then
    fail on its next line of output (exit 1) instead of ending with its checkpoint (exit 129). A SIGHUP sent by
    hand while the terminal is still there leaves output on it. A second SIGHUP does not stop the process at
    once (a second SIGTERM or SIGINT does)."""
    script = f"""
import os, pty, signal, sys
sys.path.insert(0, {str(ROOT)!r})
from automl.train.distributed import DistInfo
from automl.train.preempt import Preemption
report = os.dup(1)                       # the pipe to the test
signal.signal(signal.SIGHUP, signal.SIG_DFL)  # as on a terminal (pytest itself may run under nohup)
for hang_up in (False, True):
    master, slave = pty.openpty()
    os.dup2(slave, 1)
    os.dup2(slave, 2)
    p = Preemption(DistInfo())
    with p.armed():
        if hang_up:
            os.close(master)             # the terminal goes away: writes to it fail from now on
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGHUP)  # a closing terminal sends it twice: not "stop at once"
        print("a line after the signal", flush=True)
        print("and one on stderr", file=sys.stderr, flush=True)
    os.write(report, f"hang_up={{hang_up}} pending={{p.pending}} tty={{os.isatty(1)}},{{os.isatty(2)}}\\n".encode())
"""
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_env(), timeout=300)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert p.stdout.splitlines() == ["hang_up=False pending=1 tty=True,True", "hang_up=True pending=1 tty=False,False"]


@pytest.mark.heavy
@pytest.mark.skipif(shutil.which("bash") is None, reason="an interactive bash on the terminal")
def test_terminal_closed_under_a_foreground_run_exits_129_with_a_checkpoint(tmp_path):
    """``automl run`` started from an interactive bash on a terminal (a pty: progress bars), the terminal closed
    in its second weight epoch, as when an ssh connection drops: bash passes SIGHUP on to the run, the kernel
    sends it again as bash exits, and every write to the terminal fails. A wrapper that ignores SIGHUP (and
    gives the run the default) records the run's exit code, since bash is gone by then."""
    out, rc_file = tmp_path / "run", tmp_path / "rc"
    tiny = ["data.limit_train=640", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
            "search.weight_epochs=3", "search.theta_epochs=1", "search.epsilons=[0,0.5]", "search.lam=2",
            "search.supernets=1", "retrain.epochs=0", "export.onnx=false", "search.log_every=1", "device=cpu",
            "threads=1"]
    run = [sys.executable, "-m", "automl", "run", QUICK, *tiny, "--out", str(out)]
    wrapper = (f"import signal, subprocess; signal.signal(signal.SIGHUP, signal.SIG_IGN); "
               f"rc = subprocess.call({run!r}, preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL)); "
               f"open({str(rc_file)!r}, 'w').write(str(rc))")
    pid, master = pty.fork()
    if pid == 0:  # the child: bash on the terminal
        try:
            os.execvpe("bash", ["bash", "--norc", "--noprofile", "-i"], _env())
        finally:
            os._exit(127)
    try:
        os.write(master, (shlex.join([sys.executable, "-c", wrapper]) + "\n").encode())
        t0 = time.monotonic()
        while not any(x["phase"] == "weights" and x["epoch"] >= 2 for x in _lines(out)):
            assert time.monotonic() - t0 < 300, "the run never reached its second weight epoch"
            while select.select([master], [], [], 0.01)[0]:  # what the terminal shows: read, so it never fills
                os.read(master, 1 << 16)
    finally:
        os.close(master)  # the terminal goes away
        os.waitpid(pid, 0)
    t0 = time.monotonic()
    while not rc_file.exists() or not rc_file.read_text():
        assert time.monotonic() - t0 < 300, "the run did not end"
        time.sleep(0.1)
    assert rc_file.read_text() == "129"
    done = CheckpointStore(out / "checkpoints").load()
    assert (done["stage"], done["epoch"]) == (0, 1) and done["step"] > 0


# ------------------------------------------------------------------------------------ a real run's process group

def _folder_run(data: Path, space: Path) -> list[str]:
    """An image-folder run with 2 DataLoader workers: 20 weight steps per epoch."""
    return [QUICK, f"space={space}", "data.dataset=imagefolder", f"data.root={data}", "space_args.classes=2",
            "data.image_size=8", "data.batch_size=4", "data.theta_batch_size=4", "data.test_batch_size=64",
            "data.workers=2", "threads=1", "device=cpu", "search.weight_epochs=2", "search.theta_epochs=1",
            "retrain.epochs=0", "search.supernets=1", "search.lam=2", "search.budgets=[null]",
            "search.log_every=1", "export.onnx=false"]


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """The image folder, the run's overrides, and an uninterrupted run's metrics (without the clock)."""
    base = tmp_path_factory.mktemp("folder")
    data = write_images(base / "imgs", per_class=80)
    space = base / "rgb.space"
    space.write_text((ROOT / "spaces" / "digits.space").read_text().replace("input 1 x", "input 3 x"))
    overrides = _folder_run(data, space)
    ref = base / "ref"
    assert main(["run", *overrides, "--out", str(ref)]) == 0
    return overrides, _metrics(ref)


def _stop_real_run(tmp_path, overrides, signum, group: bool) -> tuple[int, str, Path]:
    """Start ``automl run`` in a session of its own, and once it logged the first step of its second weight epoch
    (metrics.jsonl counts epochs from 1, checkpoints from 0), send ``signum`` to its process group (``group``:
    the run and its DataLoader workers) or to its main process alone. Everything is paused (SIGSTOP) while the
    signal is sent, so the run is early in that epoch (20 steps) when it takes it."""
    out = tmp_path / "run"
    log_path = tmp_path / "stopped.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "automl", "run", *overrides, "--out", str(out)], stdout=log,
                                stderr=subprocess.STDOUT, env=_env(), start_new_session=True, preexec_fn=_hup_default)
        try:
            t0 = time.monotonic()
            while not any(x["phase"] == "weights" and (x["epoch"], x["step"]) >= (2, 1) for x in _lines(out)):
                assert proc.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() - t0 < 300, "never reached the second weight epoch"
                time.sleep(0.01)
            os.killpg(proc.pid, signal.SIGSTOP)
            if group:
                os.killpg(proc.pid, signum)
            else:
                proc.send_signal(signum)
            os.killpg(proc.pid, signal.SIGCONT)
            code = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return code, log_path.read_text(), out


@pytest.mark.heavy
@pytest.mark.parametrize("signum, group", [(signal.SIGTERM, True), (signal.SIGINT, True), (signal.SIGHUP, True),
                                           (signal.SIGHUP, False)])
def test_signal_to_an_image_folder_run_with_workers_checkpoints_and_resumes(tmp_path, folder_run, signum, group):
    """Before: SIGTERM or SIGHUP to the group killed the workers (exit 1, "internal error", the epoch lost),
    SIGINT printed the "finishing" line once per process, SIGHUP to the run alone was not caught (exit 129,
    no checkpoint, no message)."""
    overrides, ref_lines = folder_run
    code, text, out = _stop_real_run(tmp_path, overrides, signum, group)
    name = signal.Signals(signum).name
    assert code == 128 + signum, text[-3000:]
    assert "Traceback" not in text and "internal error" not in text, text[-3000:]
    assert text.count(f"{name}: finishing the current step") == 1, text[-3000:]
    done = CheckpointStore(out / "checkpoints").load()
    assert (done["stage"], done["epoch"]) == (0, 1) and done["step"] > 0  # inside the second weight epoch
    assert (f"stopped by {name}; the checkpoint in {out / 'checkpoints'} resumes at weights epoch 2/2, after step "
            in text)
    command = shlex.split(text.split("Continue with: ")[1].splitlines()[0])
    assert main(command[1:]) == 0
    assert _metrics(out) == ref_lines


# ------------------------------------------------------------------------------------ folders one may not enter


@pytest.fixture
def untraversable(monkeypatch):
    """``untraversable(folder)``: from now on this process may not enter ``folder`` (as after ``chmod 000`` for
    a user other than root): ``os.stat`` of anything inside it fails with EACCES; the folder itself can still be
    stat'ed. (The tests run as root, whom permissions do not stop.)"""
    real = os.stat

    def arm(folder: Path):
        def denied_stat(path, *a, **k):
            p = Path(os.fsdecode(path)) if not isinstance(path, int) else None
            if p is not None and p.is_absolute() and folder in p.parents:
                raise PermissionError(13, "Permission denied", str(p))
            return real(path, *a, **k)
        monkeypatch.setattr(os, "stat", denied_stat)
    return arm


def _run_on(data: Path, dataset: str, out: Path, space: Path) -> list[str]:
    return ["run", QUICK, f"space={space}", f"data.dataset={dataset}", f"data.root={data}", "data.image_size=8",
            "threads=1", "device=cpu", "--out", str(out)]


@pytest.fixture
def rgb_space(tmp_path):
    space = tmp_path / "rgb.space"
    space.write_text((ROOT / "spaces" / "digits.space").read_text().replace("input 1 x", "input 3 x"))
    return space


@pytest.mark.parametrize("dataset, blocked", [
    ("cifar10", "data"),                       # data.root itself
    ("cifar10", "data/cifar-10-batches-py"),   # the batches' folder
    ("cifar10", ""),                           # a folder above data.root
    ("imagefolder", "data"),
    ("imagefolder", ""),
])
def test_data_folder_this_user_may_not_enter_exits_2_naming_it(tmp_path, untraversable, rgb_space, capsys,
                                                                dataset, blocked):
    base = tmp_path / "in"
    data = base / "data"
    if dataset == "cifar10":
        (data / "cifar-10-batches-py").mkdir(parents=True)
    else:
        write_images(data, per_class=2)
    folder = base / blocked if blocked else base
    untraversable(folder)
    code = main(_run_on(data, dataset, tmp_path / "run", rgb_space))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.count("error:") == 1, err
    assert f"may not enter the folder {folder}" in err and "readable" in err, err
    assert "not found" not in err and "does not exist" not in err


def test_probing_the_cifar_files_names_the_untraversable_folder(tmp_path, untraversable):
    (tmp_path / "cifar-10-batches-py").mkdir()
    untraversable(tmp_path / "cifar-10-batches-py")
    with pytest.raises(DataError) as info:
        build_data(DataConfig(dataset="cifar10", root=str(tmp_path)), ".", 0, "cpu")
    assert f"may not enter the folder {tmp_path / 'cifar-10-batches-py'}" in str(info.value)


def _without_dac_override() -> list[str] | None:
    """The command prefix that runs a command without root's permission override (None: not possible here)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    probe = subprocess.run([setpriv, "--bounding-set=-dac_override,-dac_read_search", "true"], capture_output=True)
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"] if probe.returncode == 0 else None


def test_real_chmod_000_data_root_exits_2(tmp_path, rgb_space):
    """The same through the kernel: chmod 000 on data.root, run as a user whom it stops."""
    prefix = _without_dac_override()
    if prefix is None:
        pytest.skip("running as root without setpriv: permissions do not stop this process")
    data = tmp_path / "data"
    write_images(data, per_class=2)
    data.chmod(0)
    try:
        p = subprocess.run([*prefix, sys.executable, "-m", "automl", *_run_on(data, "imagefolder", tmp_path / "run",
                                                                              rgb_space)],
                           capture_output=True, text=True, env=_env(), timeout=300)
    finally:
        data.chmod(stat.S_IRWXU)
    assert p.returncode == 2, p.stderr[-3000:]
    assert "Traceback" not in p.stderr and f"may not enter the folder {data}" in p.stderr, p.stderr
