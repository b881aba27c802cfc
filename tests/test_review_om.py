"""Review OM: a run whose recorded space file or data folder has moved is told to put it back or edit its
recipe.resolved.yaml's line (not to look for the published spaces); a lock file that cannot be opened through a
symbolic-link loop is not told to "make the folder writable"; a write that fails for a path too long for the file
system says to move the run folder to a shorter path."""

import errno
import os
import shutil
from pathlib import Path

import pytest
import torch

from automl._io import write_fix
from automl._lock import RunLock
from automl.cli import main
from automl.errors import DataError, RecipeError, UserError
from automl.pipeline.setup import load_spaces, recipe_data
from automl.recipe import file_line, load_recipe
from automl.train.progress import Reporter

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "recipes" / "quickstart.yaml"
PUBLISHED = "the published spaces are in the automl repository's spaces/ folder"
FAST = ["threads=1", "device=cpu", "search.budgets=null", "search.epsilons=[0]", "search.weight_epochs=1",
        "search.theta_epochs=1", "retrain.epochs=0", "search.supernets=1", "data.limit_train=64",
        "data.batch_size=32", "data.theta_batch_size=32", "search.lam=2", "export.onnx=false"]


def _resolved_with_own_space(tmp_path: Path, overrides: list[str] | None = None) -> tuple[Path, Path]:
    """A run folder's recipe.resolved.yaml (as a run writes it) whose space file is a copy in tmp_path/sp/;
    returns (that recipe file, the space file)."""
    (tmp_path / "sp").mkdir()
    space = tmp_path / "sp" / "digits.space"
    shutil.copy(ROOT / "spaces" / "digits.space", space)
    run = tmp_path / "run"
    run.mkdir()
    recipe = load_recipe(QUICK, ["threads=1", "device=cpu", f"space={space}", *(overrides or [])])
    return recipe.dump_resolved(run / "recipe.resolved.yaml"), space


def test_a_runs_moved_space_file_says_put_it_back_or_edit_the_resolved_recipes_line(tmp_path):
    """The run's own recipe names a space file that was moved: the advice was "check the path (the published spaces
    are in ...)"; the fix is to put it back or edit that line of RUN/recipe.resolved.yaml."""
    resolved, space = _resolved_with_own_space(tmp_path)
    load_spaces(load_recipe(resolved), timed=False)  # there: it compiles
    space.rename(space.with_name("moved.space"))
    recipe = load_recipe(resolved)
    with pytest.raises(RecipeError) as e:
        load_spaces(recipe, timed=False)
    message, line = str(e.value), file_line(recipe, ("space",))
    assert line is not None and message.startswith(f"{resolved}:{line}: space: {space}: no such file"), message
    assert "the space file recorded for this run is gone or moved: put it back" in message, message
    assert f"edit line {line} of {resolved}" in message and PUBLISHED not in message, message


def test_a_moved_space_of_another_recipe_keeps_the_published_spaces_hint(tmp_path):
    """A recipe that is no run's (any other name) keeps its advice: check the path, the published spaces."""
    resolved, space = _resolved_with_own_space(tmp_path)
    mine = resolved.with_name("mine.yaml")
    resolved.rename(mine)
    space.unlink()
    with pytest.raises(RecipeError) as e:
        load_spaces(load_recipe(mine), timed=False)
    assert PUBLISHED in str(e.value) and "recorded for this run" not in str(e.value), str(e.value)


def test_automl_rank_of_a_finished_run_whose_space_moved_says_edit_its_line(tmp_path, capsys):
    """The reported case end to end: `automl rank RUN` after the run's space file moved: exit 2, the advice."""
    (tmp_path / "sp").mkdir()
    space = tmp_path / "sp" / "digits.space"
    shutil.copy(ROOT / "spaces" / "digits.space", space)
    out = tmp_path / "run"
    assert main(["run", str(QUICK), *FAST, f"space={space}", "--out", str(out)]) == 0
    space.rename(space.with_name("moved.space"))
    capsys.readouterr()
    code = main(["rank", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "the space file recorded for this run is gone or moved" in err and PUBLISHED not in err, err
    assert f"of {out / 'recipe.resolved.yaml'}" in err, err


def test_a_runs_moved_data_folder_says_put_it_back_or_edit_the_resolved_recipes_line(tmp_path):
    """An image-folder run's data folder moved: the message keeps what the data reader says and adds the fix for
    a run's own recipe: put it back or edit data.root's line of RUN/recipe.resolved.yaml."""
    data = tmp_path / "imgs"
    data.mkdir()
    resolved, _ = _resolved_with_own_space(tmp_path, ["data.dataset=imagefolder", f"data.root={data}",
                                                      "data.image_size=32"])
    data.rmdir()
    recipe = load_recipe(resolved)
    with pytest.raises(DataError) as e:
        recipe_data(recipe, torch.device("cpu"))
    message, line = str(e.value), file_line(recipe, ("data", "root"))
    assert line is not None and message.startswith(f"{resolved}:{line}: "), message
    assert "the data folder recorded for this run is gone or moved: put it back" in message, message
    assert f"edit line {line} of {resolved}" in message, message


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="POSIX")
def test_an_out_that_is_a_symlink_loop_is_not_told_to_make_the_folder_writable(tmp_path):
    """`ln -s loopA loopA; automl run ... --out loopA`: the lock file cannot be opened (ELOOP); the advice was
    "make the folder writable"."""
    loop = tmp_path / "loopA"
    loop.symlink_to("loopA")
    with pytest.raises(UserError) as e:
        RunLock(loop).acquire(create=True)
    message = str(e.value)
    assert f"--out {loop}: cannot open its lock file" in message, message
    assert "symbolic-link loop" in message and "fix or remove that link" in message, message
    assert "writable" not in message, message


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="POSIX")
def test_a_lock_file_that_is_a_link_to_itself_is_told_to_be_removed(tmp_path):
    """DIR/.lock a link to itself: remove that link (a run makes a new one), not "make the folder writable"."""
    (tmp_path / ".lock").symlink_to(".lock")
    with pytest.raises(UserError) as e:
        RunLock(tmp_path).acquire(create=True)
    message = str(e.value)
    assert "remove that link" in message and "writable" not in message, message


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="POSIX")
def test_automl_run_into_a_symlink_loop_exits_2_with_the_link_advice(tmp_path, capsys, monkeypatch):
    """The reported command: exit 2, one message, the link advice."""
    monkeypatch.chdir(tmp_path)
    Path("loopA").symlink_to("loopA")
    code = main(["run", str(QUICK), *FAST, "--out", "loopA"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "writable" not in err, err
    assert "symbolic-link loop" in err, err


@pytest.mark.parametrize("number, advice", [
    (errno.ENAMETOOLONG, "the path is too long for the file system: move the run folder to a shorter path"),
    (errno.ELOOP, "fix or remove the link"),
    (errno.ENOTDIR, "a file stands on the path where a folder must be"),
])
def test_write_fix_names_what_to_do_for_path_errors(number, advice):
    """These errnos got "fix the cause"."""
    assert advice in write_fix(OSError(number, os.strerror(number), "x"))


def test_a_checkpoint_path_too_long_says_move_the_run_folder(tmp_path):
    """A write whose path is past the file system's limit (ENAMETOOLONG), through the run's writer of
    metrics.jsonl: the message says to move the run folder to a shorter path and continue with --resume."""
    long = tmp_path / ("d" * 255) / ("e" * 300 + ".jsonl")
    (tmp_path / ("d" * 255)).mkdir()
    reporter = Reporter(long, enabled=True)
    with pytest.raises(UserError) as e:
        reporter.log(epoch=1)
    message = str(e.value)
    assert "File name too long" in message and "move the run folder to a shorter path" in message, message
    assert "--resume" in message, message
