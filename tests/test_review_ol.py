"""Review OL: the commands a stopped run or ranking prints to go on ("Continue with: ...") name every path absolute,
so that pasted from another folder (a job's log read later) they continue the same run; a folder named ``-x`` is
no option there; ``--resume`` without ``--out`` names the runs/ folder it looked in; a Ctrl-C before the run began
says that nothing was written."""

from __future__ import annotations

import importlib
import os
import shlex
import shutil
from pathlib import Path

import pytest

from automl.cli import build_parser
from automl.commands.run import supernet_overrides
from automl.pipeline import Run
from automl.pipeline.rank import rank_command
from automl.recipe import load_recipe
from helpers import QUICK, ROOT, cli_err as cli

FAST = ["threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
        "search.supernets=1", "export.onnx=false"]

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture
def project(tmp_path) -> Path:
    """``tmp_path/my proj é``: recipes/q.yaml (quickstart's, its space relative to it) and spaces/d.space; a space
    at ``tmp_path/other space é/o.space``; the current folder ``tmp_path/cwd two`` (restored after the test)."""
    proj = tmp_path / "my proj é"
    (proj / "recipes").mkdir(parents=True)
    (proj / "spaces").mkdir()
    shutil.copy(ROOT / "spaces" / "digits.space", proj / "spaces" / "d.space")
    text = Path(QUICK).read_text()
    (proj / "recipes" / "q.yaml").write_text(text.replace("../spaces/digits.space", "../spaces/d.space"))
    (tmp_path / "other space é").mkdir()
    shutil.copy(ROOT / "spaces" / "digits.space", tmp_path / "other space é" / "o.space")
    (tmp_path / "cwd two").mkdir()
    here = os.getcwd()
    os.chdir(tmp_path / "cwd two")
    yield proj
    os.chdir(here)


def _fake_run(monkeypatch) -> dict:
    """``automl run`` with its Run replaced: records the recipe and the resume command it was given."""
    seen = {}

    class FakeRun:
        def __init__(self, recipe, out, **kwargs):
            seen.update(recipe=recipe, command=kwargs["resume_command"], out=Path(out))
            self.finished, self.late_signal = True, 0

        def execute(self):
            return None

    monkeypatch.setattr("automl.commands.run.Run", FakeRun)
    return seen


def _loaded_elsewhere(command: str, folder: Path):
    """The recipe and --out that ``command`` (an ``automl run``) gives, run from ``folder``."""
    argv = shlex.split(command)
    assert argv[:2] == ["automl", "run"] and argv[-1] == "--resume", argv
    args = build_parser().parse_args(argv[1:])
    here = os.getcwd()
    os.chdir(folder)
    try:
        recipe = load_recipe(args.recipe, args.overrides + supernet_overrides(args.supernet, args.supernet_force))
        return recipe, Path(os.path.abspath(args.out))
    finally:
        os.chdir(here)


def test_the_continue_command_of_automl_run_names_its_paths_absolute(project, tmp_path, monkeypatch, capsys):
    """Seen: ``Continue with: automl run ../proj/recipes/q.yaml ... --out runs/quickstart-... --resume`` from the
    folder the run started in: pasted anywhere else, no such recipe (and a new run folder)."""
    seen = _fake_run(monkeypatch)
    sn = tmp_path / "sn"
    sn.mkdir()
    code, err = cli(capsys, "run", "../my proj é/recipes/q.yaml", *FAST, "space=../other space é/o.space",
                    "--supernet", "../sn", "--out", "../runs é/it's")
    assert code == 0, err
    command = seen["command"]
    assert "../" not in command, command
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    recipe, out = _loaded_elsewhere(command, elsewhere)
    assert recipe == seen["recipe"], command
    assert recipe.space == str(tmp_path / "other space é" / "o.space") and recipe.supernet == str(sn)
    assert out == tmp_path / "runs é" / "it's" == Path(os.path.abspath(seen["out"]))


def test_the_continue_command_of_a_new_run_folder_names_it_absolute(project, tmp_path, monkeypatch, capsys):
    """Without --out: runs/<name>-<time> of the current folder, named from the root."""
    seen = _fake_run(monkeypatch)
    code, err = cli(capsys, "run", "../my proj é/recipes/q.yaml", *FAST)
    assert code == 0, err
    argv = shlex.split(seen["command"])
    out = Path(argv[argv.index("--out") + 1])
    assert out.is_absolute() and out.parent == tmp_path / "cwd two" / "runs" and out.is_dir(), argv


def test_a_folder_named_with_a_leading_dash_reads_as_a_folder_in_the_continue_command(project, tmp_path,
                                                                                    monkeypatch, capsys):
    """Seen: ``--out=-dashrun`` printed ``--out -dashrun``, which argparse refuses (expected one argument)."""
    seen = _fake_run(monkeypatch)
    code, err = cli(capsys, "run", "../my proj é/recipes/q.yaml", *FAST, "--out=-dashrun", "--supernet=-sn")
    assert code == 0, err
    args = build_parser().parse_args(shlex.split(seen["command"])[1:])
    assert Path(args.out) == tmp_path / "cwd two" / "-dashrun" and Path(args.supernet) == tmp_path / "cwd two" / "-sn"


def test_an_override_path_relative_to_the_current_folder_is_made_absolute(project, tmp_path):
    """The recipe's path keys given as overrides (relative to the current folder), set alone or in their section's
    mapping; other overrides, and absolute paths, as typed."""
    from automl.commands.run import absolute_override  # new with this fix

    space = tmp_path / "other space é" / "o.space"
    assert load_recipe(QUICK, [absolute_override("space=../other space é/o.space")]).space == str(space)
    table = absolute_override("search={cost_table: ../t.json, lam: 3}")
    assert load_recipe(QUICK, ["search.budgets=null", table]).search.cost_table == str(tmp_path / "t.json")
    assert load_recipe(QUICK, ["search.budgets=null", table]).search.lam == 3
    assert absolute_override("data.root=~/data") == "data.root=~/data"
    for same in ("search.lam=4", f"space={space}", "space=", "export.dir=../x", "supernet=null"):
        assert absolute_override(same) == same


def test_the_default_resume_command_of_a_run_names_its_folder_absolute(project, tmp_path):
    """A Run made in a script (no command line): its recipe and --out from the root; with overrides, the run's own
    resolved recipe (the file alone would be another recipe)."""
    run = Run(load_recipe("../my proj é/recipes/q.yaml"), "../runs/-a", tty=False)
    assert shlex.split(run.resume_command) == ["automl", "run", str(project / "recipes" / "q.yaml"), "--out",
                                               str(tmp_path / "runs" / "-a"), "--resume"]
    run = Run(load_recipe("../my proj é/recipes/q.yaml", FAST), "../runs/-a", tty=False)
    assert shlex.split(run.resume_command) == ["automl", "run", str(tmp_path / "runs" / "-a" / "recipe.resolved.yaml"),
                                               "--out", str(tmp_path / "runs" / "-a"), "--resume"]


def test_the_rank_command_names_the_run_folder_absolute(project, tmp_path):
    """Seen: ``Continue with: automl rank '../moved é run' --archs 6 ...`` from the folder it ran in."""
    recipe = load_recipe(QUICK, ["ranking.archs=3", "ranking.retrain_epochs=1"])
    said = rank_command(recipe, Path("../moved é run"))
    assert shlex.split(said)[:3] == ["automl", "rank", str(tmp_path / "moved é run")], said
    assert shlex.split(rank_command(recipe, Path("-r")))[2] == str(tmp_path / "cwd two" / "-r")


def test_a_link_before_dot_dot_keeps_the_path_as_written(tmp_path, monkeypatch):
    """``link/../x`` names x beside the link's target, not the x of the current folder: kept as written."""
    from automl._io import absolute_path  # new with this fix

    (tmp_path / "far" / "sub").mkdir(parents=True)
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "link").symlink_to(tmp_path / "far" / "sub")
    monkeypatch.chdir(tmp_path / "here")
    assert absolute_path("link/../x") == tmp_path / "here" / "link" / ".." / "x"
    assert absolute_path("../here/./link/y") == tmp_path / "here" / "link" / "y"
    assert absolute_path("..") == tmp_path


def test_resume_without_out_names_the_runs_folder_it_looked_in(project, tmp_path, capsys):
    code, err = cli(capsys, "run", "../my proj é/recipes/q.yaml", *FAST, "--resume")
    assert code == 2, err
    assert f"no earlier run of 'quickstart' under {tmp_path / 'cwd two' / 'runs'} " in err, err


def test_a_ctrl_c_as_the_recipe_loads_says_nothing_was_written(tmp_path, monkeypatch, capsys):
    """Seen: ``interrupted`` alone (exit 130)."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("automl.commands.run.load_recipe", interrupted)
    code, err = cli(capsys, "run", QUICK, "--out", tmp_path / "o")
    assert code == 130, err
    assert err.strip() == f"interrupted before the run began: nothing was written in {tmp_path / 'o'}", err
    assert not (tmp_path / "o").exists()


def test_a_ctrl_c_as_automl_loads_says_nothing_was_written(tmp_path, monkeypatch, capsys):
    real = importlib.import_module

    def loading(name, *args, **kwargs):
        if name == "automl.commands.run":
            raise KeyboardInterrupt
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", loading)
    code, err = cli(capsys, "run", QUICK)
    assert code == 130, err
    assert err.strip() == "interrupted before the run began: nothing was written", err


def test_an_absolute_path_is_named_without_the_current_folder(tmp_path, monkeypatch):
    """An absolute path needs no current folder: one since removed does not fail the command's wording."""
    from automl._io import absolute_path  # new with this fix

    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert absolute_path(tmp_path / "a" / ".." / "b") == tmp_path / "b"
    assert absolute_path("~/x") == Path.home() / "x"
