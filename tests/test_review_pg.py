"""Review PG: what a torchrun run says to go on. The "Continue with" command of a stopped torchrun run was the
one-process command (pasted as printed, the run went on with one process); a lost rank's message named no command,
and said "continue with --resume" when torchrun was about to restart the workers itself (``--max-restarts``); the
SIGTERM notice said "send it again to stop at once" where a second one within 5 s is taken as the same request."""

from __future__ import annotations

import shlex
import signal
from pathlib import Path

import pytest

import automl.train.preempt as preempt
from automl.cli import build_parser
from automl.cli import main
from automl.commands.run import resume_command
from automl.train import distributed
from automl.train.distributed import DistInfo, RanksLost, collective
from automl.train.preempt import REPEAT_S, Preemption
from helpers import QUICK

TORCHRUN = ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_WORLD_SIZE", "TORCHELASTIC_RESTART_COUNT",
            "TORCHELASTIC_MAX_RESTARTS")


@pytest.fixture
def env(monkeypatch):
    """Set torchrun's variables (the others unset): ``env(WORLD_SIZE=2, ...)``."""
    for k in TORCHRUN:
        monkeypatch.delenv(k, raising=False)

    def set_(**values):
        for k, v in values.items():
            monkeypatch.setenv(k, str(v))
    return set_


def _command(tmp_path) -> str:
    args = build_parser().parse_args(["run", QUICK, "threads=1", "--out", str(tmp_path / "my run")])
    return resume_command(args, tmp_path / "my run")


def _as_run(argv: list[str], tmp_path) -> None:
    """``argv`` (``automl run ...``, parsed) continues the run in tmp_path/my run with the same recipe."""
    assert argv[:2] == ["automl", "run"], argv
    args = build_parser().parse_args(argv[1:])
    assert (Path(args.recipe).resolve(), args.overrides, Path(args.out), args.resume) == \
        (Path(QUICK).resolve(), ["threads=1"], tmp_path / "my run", True)


def test_one_process_resumes_with_automl_run(tmp_path, env):
    _as_run(shlex.split(_command(tmp_path)), tmp_path)


def test_a_torchrun_run_on_one_machine_resumes_with_the_torchrun_command(tmp_path, env):
    """Seen: ``Continue with: automl run ... --resume (under torchrun: the same torchrun command, with --resume)``:
    pasted, one process resumed a run of two (a warning, other results)."""
    env(WORLD_SIZE=3, LOCAL_WORLD_SIZE=3, GROUP_WORLD_SIZE=1)
    argv = shlex.split(_command(tmp_path))
    assert argv[:4] == ["torchrun", "--nproc_per_node=3", "-m", "automl"], argv
    _as_run(argv[3:], tmp_path)


def test_a_torchrun_run_on_several_machines_names_their_count_and_the_rendezvous(tmp_path, env):
    env(WORLD_SIZE=8, LOCAL_WORLD_SIZE=4, GROUP_WORLD_SIZE=2)
    command = _command(tmp_path)
    assert command.startswith("torchrun --nnodes=2 --nproc_per_node=4 -m automl run "), command
    head, _, note = command.partition(" (")
    _as_run(shlex.split(head)[4:], tmp_path)
    assert "on each of the 2 machines" in note and "rendezvous" in note, note


def test_several_processes_without_torchrun_are_said_to_be_launched_as_before(tmp_path, env):
    env(WORLD_SIZE=2)
    command = _command(tmp_path)
    head, _, note = command.partition(", in each of the run's 2 processes")
    _as_run(shlex.split(head), tmp_path)
    assert "RANK" in note and "MASTER_PORT" in note, command


def _lost() -> str:
    with pytest.raises(RanksLost) as info:
        with collective(DistInfo(rank=0, world_size=2), "waiting for every rank"):
            raise RuntimeError("Connection closed by peer [127.0.0.1]:1234")
    return str(info.value)


def test_a_lost_rank_names_the_command_that_continues_the_run(env):
    command = "torchrun --nproc_per_node=2 -m automl run r.yaml --out /o --resume"
    with distributed.continued_by(command, out_given=True):
        text = _lost()
    assert text.endswith("the checkpoints written so far are intact: continue the run with --resume: torchrun "
                         "--nproc_per_node=2 -m automl run r.yaml --out /o --resume"), text
    assert _lost().endswith("continue the run with --resume")  # outside automl run: no command known


def test_a_lost_rank_with_torchrun_restarts_left_says_the_workers_resume_by_themselves(env):
    """Seen: "rank 1 ... ended ...: continue the run with --resume", then "torchrun restarted the workers (restart
    1): resuming the run": torchrun (--max-restarts) went on with the run itself."""
    env(TORCHELASTIC_RESTART_COUNT=1, TORCHELASTIC_MAX_RESTARTS=3)
    with distributed.continued_by("CMD --resume", out_given=True):
        text = _lost()
    assert "torchrun restarts the workers (restart 2 of its --max-restarts=3)" in text, text
    assert "resume the run in its folder by themselves" in text and "--resume" not in text, text
    with distributed.continued_by("CMD --resume", out_given=False):  # without --out: a new run in a new folder
        text = _lost()
    assert "start the run anew in a new folder" in text and text.endswith("with --resume: CMD --resume"), text
    env(TORCHELASTIC_RESTART_COUNT=3)  # none left: torchrun gives up, the run is continued by hand
    with distributed.continued_by("CMD --resume", out_given=True):
        text = _lost()
    assert "restarts" not in text and text.endswith("continue the run with --resume: CMD --resume"), text


def test_automl_run_gives_a_lost_rank_its_command(tmp_path, env, monkeypatch, capsys):
    """The message of a rank lost during the run, as ``automl run`` prints it, names the run's resume command."""
    seen = {}

    class LosingRun:
        def __init__(self, recipe, out, **kwargs):
            seen["command"] = kwargs["resume_command"]

        def execute(self):
            with collective(DistInfo(rank=0, world_size=2), "averaging over the ranks"):
                raise RuntimeError("Connection reset by peer")

    monkeypatch.setattr("automl.commands.run.Run", LosingRun)
    assert main(["run", QUICK, "threads=1", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert f"continue the run with --resume: {seen['command']}" in err, err


@pytest.fixture
def notices(monkeypatch, capfd):
    """The notice rank 0 prints for its first signal, with ``world_size`` ranks: ``notices(world_size)``."""
    monkeypatch.setattr(preempt.dist, "get_backend", lambda *a: "gloo")

    def notice(world: int, signum=signal.SIGTERM) -> str:
        Preemption(DistInfo(rank=0, world_size=world))._handle(signum, None)
        return capfd.readouterr().err.strip()
    return notice


def test_the_torchrun_notice_says_how_long_to_wait_before_the_signal_that_stops_at_once(notices):
    """A second SIGTERM within REPEAT_S of the first is the same request under torchrun: "send it again to stop at
    once" was not true for 5 s."""
    assert notices(2) == (f"SIGTERM: finishing the current step, then writing a checkpoint (send it again to stop at "
                          f"once, {REPEAT_S:g} s or more after the first)")
    assert notices(1) == ("SIGTERM: finishing the current step, then writing a checkpoint (send it again to stop at "
                          "once)")
    assert notices(2, signal.SIGHUP).endswith("(send SIGTERM to stop at once)")
