"""Review RD: the command a script's ``Run(...)`` prints to continue is chosen when it is printed.

1. The command named the recipe's file when, at ``Run(...)``, the file alone said what the recipe says. A user who
   edits the file while the run goes on (the next run's recipe) then got a command that a resume refuses as another
   recipe; it now names the run's recipe.resolved.yaml once the file says something else (and the file again once
   it says the recipe again). The file is parsed again only when its bytes changed.
2. A rank lost under torchrun told a script's user to "continue the run with --resume", naming no command (only
   ``automl run`` gave one); it now names the script's run's command, as chosen when the message is made.
"""

from __future__ import annotations

import shlex
import signal
from pathlib import Path

import pytest
import yaml

import automl.pipeline.run as run_module
from automl.cli import main
from automl.errors import Stopped
from automl.pipeline.context import Keeper
from automl.pipeline.run import Run
from automl.recipe import load_recipe
from automl.train import distributed
from automl.train.distributed import DistInfo, RanksLost, collective

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture
def recipe_file(tmp_path) -> Path:
    """quickstart.yaml made fast (one supernet, an epoch of each search phase, no retraining, on 64 images), its
    space absolute: a file that alone says the whole recipe (no overrides)."""
    data = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text())
    data["space"] = str(ROOT / "spaces" / "digits.space")
    data.update(threads=1, device="cpu")
    data.setdefault("search", {}).update(weight_epochs=1, theta_epochs=1, supernets=1, lam=2, budgets=None,
                                         epsilons=[0])
    data.setdefault("retrain", {}).update(epochs=0)
    data.setdefault("data", {}).update(limit_train=64, batch_size=16, theta_batch_size=16)
    data.setdefault("export", {}).update(onnx=False)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _edit(path: Path, seed: int) -> None:
    """The recipe's file as a user edits it for the next run: another seed."""
    data = yaml.safe_load(path.read_text())
    data["seed"] = seed
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _named(command: str) -> str:
    return shlex.split(command)[2]


# ------------------------------------------------------------------ 1. chosen when printed

def test_a_recipe_file_edited_after_run_began_is_named_no_more(recipe_file, tmp_path):
    out = tmp_path / "run"
    recipe = load_recipe(recipe_file)
    seed = recipe.seed
    run = Run(recipe, out, tty=False)
    assert _named(run.resume_command) == str(recipe_file)
    _edit(recipe_file, seed + 1)
    assert _named(run.resume_command) == str(out / "recipe.resolved.yaml")
    _edit(recipe_file, seed)  # edited back: the file says the recipe again
    assert _named(run.resume_command) == str(recipe_file)
    recipe_file.unlink()
    assert _named(run.resume_command) == str(out / "recipe.resolved.yaml")


def test_the_keeper_asks_for_the_command_when_it_names_it(recipe_file, tmp_path):
    """The checkpoint keeper (``ctx.keeper.resume_command``: the stop message, a failed checkpoint's, an export's)."""
    out = tmp_path / "run"
    run = Run(load_recipe(recipe_file), out, tty=False)
    keeper = Keeper(None, run.store, run.info, run.reporter, None, None, run.resume_given, None)
    assert _named(keeper.resume_command) == str(recipe_file)
    _edit(recipe_file, 7)
    assert _named(keeper.resume_command) == str(out / "recipe.resolved.yaml")
    given = Keeper(None, run.store, run.info, run.reporter, None, None, "automl run x.yaml --resume", None)
    assert given.resume_command == "automl run x.yaml --resume"


def test_the_file_is_parsed_again_only_when_it_changed(recipe_file, tmp_path, monkeypatch):
    loads = []
    real = run_module.load_recipe
    monkeypatch.setattr(run_module, "load_recipe", lambda *a, **k: loads.append(a) or real(*a, **k))
    run = Run(load_recipe(recipe_file), tmp_path / "run", tty=False)
    assert loads == []  # nothing read until a message names the command
    for _ in range(5):
        assert _named(run.resume_command) == str(recipe_file)
    assert len(loads) == 1
    _edit(recipe_file, 9)
    for _ in range(3):
        run.resume_command
    assert len(loads) == 2


def test_a_command_given_by_automl_run_is_kept_as_it_is(recipe_file, tmp_path):
    run = Run(load_recipe(recipe_file), tmp_path / "run", tty=False, resume_command="automl run r.yaml --resume")
    _edit(recipe_file, 5)
    assert run.resume_command == "automl run r.yaml --resume"


def test_a_run_stopped_after_its_file_was_edited_is_continued_by_the_command_it_prints(recipe_file, tmp_path,
                                                                                        monkeypatch, capsys):
    """The user edits the recipe's file mid-run, then the run is stopped (SIGTERM): the printed command, pasted,
    continues the run (before: it named the edited file, and the resume was refused as another recipe)."""
    out = tmp_path / "run"
    save = Keeper.save

    def edit_then_stop(self, stage, epoch, step=0, inner=None):
        if not self.preempt.signalled():
            _edit(recipe_file, 11)
            signal.raise_signal(signal.SIGTERM)
        return save(self, stage, epoch, step, inner)

    monkeypatch.setattr(Keeper, "save", edit_then_stop)
    with pytest.raises(Stopped):
        Run(load_recipe(recipe_file), out, tty=False).execute()
    said = "".join(capsys.readouterr())
    assert "Continue with: " in said, said
    command = said.split("Continue with: ")[-1].strip().splitlines()[0]
    assert _named(command) == str(out / "recipe.resolved.yaml"), said
    monkeypatch.setattr(Keeper, "save", save)
    assert main(shlex.split(command)[1:]) == 0, capsys.readouterr().err
    assert (out / "results.json").is_file()


# ------------------------------------------------------------------ 2. a lost rank names the command

@pytest.fixture
def env(monkeypatch):
    for name in ("TORCHELASTIC_RESTART_COUNT", "TORCHELASTIC_MAX_RESTARTS", "RANK", "WORLD_SIZE",
                 "LOCAL_WORLD_SIZE", "GROUP_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    return lambda **kw: [monkeypatch.setenv(k, str(v)) for k, v in kw.items()]


def _lost_in(run: Run, monkeypatch, before=lambda: None) -> str:
    """RanksLost's message when rank 1 ends during ``run``'s stages (a collective fails as gloo's would)."""
    def lose(self):
        before()
        with collective(DistInfo(rank=0, world_size=2), "waiting for every rank"):
            raise RuntimeError("Connection closed by peer [127.0.0.1]:1234")

    monkeypatch.setattr(Run, "_execute", lose)
    with pytest.raises(RanksLost) as info:
        run.execute()
    return str(info.value)


def test_a_scripts_lost_rank_names_the_command_that_continues_the_run(recipe_file, tmp_path, monkeypatch, env):
    out = tmp_path / "run"
    run = Run(load_recipe(recipe_file), out, tty=False)
    text = _lost_in(run, monkeypatch)
    assert text.endswith(f"the checkpoints written so far are intact: continue the run with --resume: "
                         f"automl run {recipe_file} --out {out} --resume"), text
    text = _lost_in(run, monkeypatch, before=lambda: _edit(recipe_file, 4))  # chosen as the message is made
    assert text.endswith(f"continue the run with --resume: automl run {out / 'recipe.resolved.yaml'} --out {out} "
                         f"--resume"), text
    assert distributed._continue["command"] == ""  # left as it was after the run


def test_a_scripts_lost_rank_with_torchrun_restarts_left(recipe_file, tmp_path, monkeypatch, env):
    """torchrun restarts the workers, which run the script again: with ``resume=True`` they resume by themselves;
    without, the command is started again (not "a new folder", which is ``automl run`` without ``--out``)."""
    env(TORCHELASTIC_RESTART_COUNT=0, TORCHELASTIC_MAX_RESTARTS=2)
    run = Run(load_recipe(recipe_file), tmp_path / "run", tty=False, resume=True)
    text = _lost_in(run, monkeypatch)
    assert "resume the run in its folder by themselves" in text, text
    run = Run(load_recipe(recipe_file), tmp_path / "run", tty=False)
    text = _lost_in(run, monkeypatch)
    assert text.endswith("which start the command again; the checkpoints written so far are intact"), text


def test_automl_runs_own_command_is_left_to_it(recipe_file, tmp_path, monkeypatch, env):
    """``automl run`` gives its command and says it (:func:`continued_by`); the run does not name another."""
    run = Run(load_recipe(recipe_file), tmp_path / "run", tty=False, resume_command="CMD --resume")
    with distributed.continued_by("CMD --resume", out_given=True):
        text = _lost_in(run, monkeypatch)
    assert text.endswith("continue the run with --resume: CMD --resume"), text
