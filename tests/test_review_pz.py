"""A number typed with a doubled `.` in a .space file (`1..0`): the parser's hint suggests the number the typo
most likely meant (`1.0`), not a prefix of it that is itself odd (`1.`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from automl.dsl import parse_space
from automl.errors import SpaceError

ROOT = Path(__file__).resolve().parents[1]

HEAD = "space my\nparam width = {}\ninput 1 x 8 x 8\nclasses 10\nchoices mb = ir_k3_e1, ir_k3_e3\n"
NETWORK = "network\n  stem width 16\n  stage s1 width 24 repeat 2 choose mb then mb\n  head width 128\nend\n"


def _message(number: str) -> str:
    with pytest.raises(SpaceError) as info:
        parse_space(HEAD.format(number) + NETWORK, "my.space")
    assert info.value.line == 2
    return info.value.message


@pytest.mark.parametrize("typed, meant", [("1..0", "1.0"), ("0...5", "0.5"), ("1..", "1"), ("1.0..5", "1.0"),
                                           ("12..50", "12.50")])
def test_a_doubled_dot_suggests_the_number_meant(typed, meant):
    msg = _message(typed)
    assert f"`{typed}` is a malformed number" in msg
    assert f"e.g. `{meant}`" in msg


def test_a_version_number_still_suggests_its_first_two_parts():
    assert "e.g. `1.0`" in _message("1.0.0")
    assert "e.g. `2.5`" in _message("2.5.1")


@pytest.mark.parametrize("name", ["my.space", "mb.a"])
def test_a_dot_in_a_name_keeps_its_own_hint(name):
    with pytest.raises(SpaceError) as info:
        parse_space(f"space {name}\n" + HEAD.format("1.0").split("\n", 1)[1] + NETWORK, "my.space")
    assert "a name holds `.` only before a digit" in info.value.message


def test_an_op_name_with_two_dots_is_not_read_as_a_number():
    with pytest.raises(SpaceError) as info:
        parse_space(HEAD.format("1.0").replace("ir_k3_e3", "ir_k3_e2..5") + NETWORK, "my.space")
    assert "malformed number" not in info.value.message
    assert "a name holds `.` only before a digit" in info.value.message


def test_the_latency_clock_refusal_quotes_the_profile_command_for_the_shell(tmp_path, monkeypatch):
    """The `automl space profile ...` command the refusal of a coarse CPU clock suggests is pasted into a shell: a
    space file in a folder with a space in its name, and a --set value with one, are quoted (else the shell splits
    them: `automl space profile /x/my spaces/d.space` names two files)."""
    import json
    import shlex
    import shutil
    import time

    from test_review_dn import ROOT, _recipe

    from automl.errors import RecipeError
    from automl.pipeline.setup import check_latency_clock
    from automl.recipe import load_recipe

    folder = tmp_path / "my spaces"
    folder.mkdir()
    space = folder / "digits.space"
    shutil.copy(ROOT / "spaces" / "digits.space", space)
    table = tmp_path / "cpu.latency.json"
    table.write_text(json.dumps({"clock": "cpu"}))
    recipe_path = _recipe(tmp_path, table)
    recipe_path.write_text(recipe_path.read_text().replace(str(ROOT / "spaces" / "digits.space"), str(space)))
    monkeypatch.setattr(time, "thread_time", lambda: 1.0)  # a clock that never advances
    recipe = load_recipe(recipe_path, ["device=cpu", "space_args={head: 64}"])
    with pytest.raises(RecipeError) as info:
        check_latency_clock(recipe, "cpu")
    command = info.value.message.split("`automl space profile ", 1)[1].split("`", 1)[0]
    words = shlex.split(command)
    assert words[0] == str(space) and words[1:3] == ["--set", "head=64"], words


@pytest.fixture
def torchrun_env(monkeypatch):
    """Set torchrun's variables (the others unset): ``torchrun_env(WORLD_SIZE=2, ...)``."""
    for k in ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_WORLD_SIZE", "TORCHELASTIC_RESTART_COUNT",
              "TORCHELASTIC_MAX_RESTARTS"):
        monkeypatch.delenv(k, raising=False)

    def set_(**values):
        for k, v in values.items():
            monkeypatch.setenv(k, str(v))
    return set_


def _lost_rank_message() -> str:
    from automl.train.distributed import DistInfo, RanksLost, collective

    with pytest.raises(RanksLost) as info:
        with collective(DistInfo(rank=0, world_size=2), "waiting for every rank"):
            raise RuntimeError("Connection closed by peer [127.0.0.1]:1234")
    return str(info.value)


def test_a_garbage_max_restarts_leaves_the_lost_rank_its_own_message(torchrun_env):
    """The lost rank's message is built while the run is failing: a TORCHELASTIC_MAX_RESTARTS that is no number
    replaced it with a complaint about the variable (exit 2), hiding which rank was lost."""
    from automl.train import distributed

    torchrun_env(TORCHELASTIC_MAX_RESTARTS="three")
    with distributed.continued_by("CMD --resume", out_given=True):
        text = _lost_rank_message()
    assert "rank 0 of 2" in text and text.endswith("continue the run with --resume: CMD --resume"), text


def test_several_machines_without_local_world_size_split_the_processes_evenly(torchrun_env):
    """A launch by hand that sets GROUP_WORLD_SIZE but not LOCAL_WORLD_SIZE: 8 processes on 2 machines are 4 each
    (it printed --nproc_per_node=8)."""
    from automl.train.distributed import as_launched

    torchrun_env(WORLD_SIZE=8, GROUP_WORLD_SIZE=2)
    assert as_launched("automl run r.yaml --resume").startswith("torchrun --nnodes=2 --nproc_per_node=4 -m automl run")


def test_a_restarted_worker_group_of_a_resume_without_out_resumes_the_same_run(tmp_path, torchrun_env, monkeypatch,
                                                                               capsys):
    """`automl run R --resume` without --out: torchrun restarts the same command, which finds the same run again
    (the latest of the recipe); the lost rank's message said the workers would start a new run in a new folder."""
    from automl.cli import main
    from automl.train.distributed import DistInfo, collective

    class LosingRun:
        def __init__(self, recipe, out, **kwargs):
            pass

        def execute(self):
            with collective(DistInfo(rank=0, world_size=2), "averaging over the ranks"):
                raise RuntimeError("Connection reset by peer")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("automl.commands.run.Run", LosingRun)
    monkeypatch.setattr("automl.commands.run._latest_run", lambda name: tmp_path / "runs" / f"{name}-x")
    torchrun_env(TORCHELASTIC_RESTART_COUNT=0, TORCHELASTIC_MAX_RESTARTS=2)
    assert main(["run", str(ROOT / "recipes" / "quickstart.yaml"), "threads=1", "--resume"]) == 1
    err = capsys.readouterr().err
    assert "resume the run in its folder by themselves" in err and "new folder" not in err, err


@pytest.fixture(scope="module")
def ranked_run(tmp_path_factory):
    """A finished tiny run with a ranking section `automl rank --archs 3 --retrain-epochs 1` wrote."""
    import torch
    from test_ranking import QUICK, TINY

    from automl.cli import main
    from automl.pipeline import Run
    from automl.recipe import load_recipe

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("pz") / "run"
    Run(load_recipe(QUICK, TINY + ["threads=1"]), out, tty=False).execute()
    assert main(["rank", str(out), "--archs", "3", "--retrain-epochs", "1"]) == 0
    return out


def _rank_again_with(ranked_run, tmp_path, capsys, **edits) -> tuple[int, str]:
    """``automl rank`` again on a copy of ``ranked_run`` whose results.json ranking section has ``edits``."""
    import json
    import shutil

    from automl.cli import main

    out = tmp_path / "run"
    shutil.copytree(ranked_run, out)
    res = json.loads((out / "results.json").read_text())
    res["ranking"].update({k: v for k, v in edits.items() if v is not None})
    for k in [k for k, v in edits.items() if v is None]:
        res["ranking"].pop(k)
    (out / "results.json").write_text(json.dumps(res))
    capsys.readouterr()
    rc = main(["rank", str(out), "--archs", "3", "--retrain-epochs", "1"])
    return rc, capsys.readouterr().out


@pytest.mark.parametrize("device", [5, ["cpu"], {"a": 1}])
def test_an_edited_device_of_a_ranking_section_is_not_recorded_not_a_crash(ranked_run, tmp_path, capsys, device):
    """results.json's ranking `device` edited into a number or a list: automl rank crashed (AttributeError,
    TypeError: an internal error) where it only means the retrainings were computed on a device not recorded."""
    rc, out = _rank_again_with(ranked_run, tmp_path, capsys, device=device)
    assert rc == 0
    assert "computed on a device not recorded" in out, out


def test_a_malformed_section_computed_elsewhere_is_said_to_be_replaced(ranked_run, tmp_path, capsys):
    """A ranking section without `pairs`, of another device: its retrainings are not reused and the write replaces
    it. The notice said the run's checkpoint keeps them and gave no advice to copy the file."""
    rc, out = _rank_again_with(ranked_run, tmp_path, capsys, device="cuda (NVIDIA H100)", pairs=None)
    assert rc == 0
    assert "and replaces the ranking in" in out and "copy" in out, out
    assert "checkpoint keeps its own" not in out, out


def test_a_device_of_a_resumed_run_gets_no_device_advice(ranked_run, tmp_path, capsys):
    """A section computed on `cuda (X), then cpu` (a run resumed on another device): no `--device cuda` advice,
    which could not reuse them either."""
    rc, out = _rank_again_with(ranked_run, tmp_path, capsys, device="cuda (NVIDIA H100), then cpu")
    assert rc == 0
    assert "a run resumed on another device" in out and "--device" not in out, out


def test_a_lost_rank_on_another_rank_says_nothing_of_a_garbage_max_restarts(torchrun_env, monkeypatch, capfd):
    """Rank 1 printed `the environment variable TORCHELASTIC_MAX_RESTARTS='three' is not a whole number` above the
    lost rank's message (the lenient read still went through a reader that prints on other ranks)."""
    from automl.train import distributed
    from automl.train.distributed import DistInfo, RanksLost, collective

    torchrun_env(TORCHELASTIC_MAX_RESTARTS="three", WORLD_SIZE=2)
    monkeypatch.setenv("RANK", "1")
    with distributed.continued_by("CMD --resume", out_given=True):
        with pytest.raises(RanksLost):
            with collective(DistInfo(rank=1, world_size=2), "waiting"):
                raise RuntimeError("Connection closed by peer [127.0.0.1]:1234")
    assert "TORCHELASTIC_MAX_RESTARTS" not in capfd.readouterr().err
