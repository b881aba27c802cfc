"""User mistakes under torchrun (2 processes, gloo on the CPU): every rank exits 2, the message is printed
once (by rank 0), and no rank reports an internal error, whichever rank finds the mistake."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
FAST = ["threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
        "search.supernets=1", "data.limit_train=64", "data.batch_size=32", "data.theta_batch_size=32",
        "search.lam=2", "search.budgets=null", "search.epsilons=[0]", "export.onnx=false"]


def _torchrun(port: int, *args) -> subprocess.CompletedProcess:
    from test_kill_resume import _env

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "-m", "automl", "run", QUICK, *FAST, *[str(a) for a in args]]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)


def _every_rank_exits_2_with_one_message(p: subprocess.CompletedProcess, message: str) -> None:
    text = p.stdout + p.stderr
    assert p.returncode != 0, text[-3000:]
    assert "internal error" not in text and "gloo" not in text.lower(), text[-3000:]
    assert text.count(message) == 1, text[-3000:]
    # torchrun's summary names the failed ranks with their exit codes (it stops the others when one exits)
    assert "exitcode  : 2" in text and "exitcode  : 1 " not in text, text[-3000:]


@pytest.mark.heavy
@pytest.mark.parametrize("case", ["holds a run", "resume nothing", "a file", "unwritable"])
def test_an_out_folder_only_rank_0_checks_stops_every_rank_with_exit_2(tmp_path, free_port, case):
    out = tmp_path / "out"
    resume = []
    if case == "holds a run":
        out.mkdir()
        (out / "results.json").write_text("{}")
        message = "already holds files"
    elif case == "resume nothing":
        resume, message = ["--resume"], "no checkpoint in"
    elif case == "a file":
        out.write_text("x")
        message = "is a file, not a folder"
    else:
        out = Path("/proc/automl-out")
        message = "cannot write there"
    _every_rank_exits_2_with_one_message(_torchrun(free_port(), "--out", out, *resume), message)


@pytest.mark.heavy
def test_a_bad_override_is_printed_once(tmp_path, free_port):
    _every_rank_exits_2_with_one_message(_torchrun(free_port(), "search.lamm=3", "--out", tmp_path / "out"),
                                         "override search.lamm=3: unknown key")


class _Store:
    """A checkpoint store whose disk is full on the rank that writes (rank 0)."""

    folder = Path("/nowhere/checkpoints")

    def save(self, ckpt):
        raise OSError(28, "No space left on device")


class _State:
    stage = epoch = step = 0

    def to_checkpoint(self) -> dict:
        return {}


def _keeper_on_rank(rank: int, init: str, out: str) -> None:
    """Rank ``rank`` of two writes a checkpoint through :class:`Keeper`; what each rank raised goes to a file."""
    import torch
    import torch.distributed as dist

    from automl.pipeline.context import Keeper
    from automl.train.distributed import DistInfo, shutdown_distributed

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    info = DistInfo(rank=rank, world_size=2)
    reporter = type("Reporter", (), {"size": lambda self: 0, "synced_size": lambda self: 0})()
    preempt = type("Preempt", (), {"saved": lambda self: None, "signalled": lambda self: 0})()
    keeper = Keeper(_State(), _Store(), info, reporter, preempt, str, "automl run R --resume", lambda: {})
    try:
        keeper.save(1, 0)
        raised = "nothing"
    except Exception as e:  # noqa: BLE001 - recorded for the test to read
        raised = f"{type(e).__name__}: {e}"
    finally:
        shutdown_distributed()
    Path(out, f"{rank}.txt").write_text(raised)


@pytest.mark.heavy
def test_a_checkpoint_rank_0_cannot_write_stops_every_rank_with_the_user_error(tmp_path):
    """Rank 0 alone writes checkpoints; when its disk is full every rank raises that UserError (exit 2)
    instead of rank 1 dying in the next collective with an internal error."""
    import torch.multiprocessing as mp

    mp.spawn(_keeper_on_rank, args=(f"file://{tmp_path / 'rendezvous'}", str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        raised = (tmp_path / f"{rank}.txt").read_text()
        assert raised.startswith("UserError: cannot write a checkpoint") and "--resume" in raised, (rank, raised)


@pytest.mark.heavy
def test_a_results_json_rank_0_cannot_read_on_resume_stops_every_rank_with_the_user_error(tmp_path, free_port):
    """Only rank 0 reads results.json on --resume: a folder in its place is the user error on every rank."""
    from test_kill_resume import _env

    out = tmp_path / "out"
    first = subprocess.run([sys.executable, "-m", "automl", "run", QUICK, *FAST, "--out", str(out)],
                           capture_output=True, text=True, env=_env(), timeout=600)
    assert first.returncode == 0, (first.stdout + first.stderr)[-3000:]
    (out / "results.json").unlink()
    (out / "results.json").mkdir()
    _every_rank_exits_2_with_one_message(_torchrun(free_port(), "--out", out, "--resume"),
                                         "is a folder, not the run's results.json file")
