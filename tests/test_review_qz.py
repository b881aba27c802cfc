"""Commands printed to paste name a run folder by its absolute path even where its name looks like a space compiled
from text (`<run>`); only a space's own name `<space>` is left as it is (no file to point at). A script's run with
overrides is continued by the command it prints. A `...` line in a .space file gets the hint that fits it."""

from __future__ import annotations

import errno
import os
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest

import automl._lock as lock_module
from automl.cli import main
from automl.dsl import parse_space
from automl.errors import SpaceError, UserError
from automl.pipeline import final_stages
from automl.pipeline.rank import rank_command
from automl.pipeline.run import Run
from automl.profile import profile_command
from automl.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]


def test_a_run_folder_named_like_a_compiled_space_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = SimpleNamespace(ranking=SimpleNamespace(archs=5, seeds=1, truth="accuracy", retrain_epochs=2),
                             retrain=SimpleNamespace(epochs=2), device="cpu")
    words = shlex.split(rank_command(recipe, Path("<run>")))
    assert words[2] == os.path.join(str(tmp_path), "<run>")


def test_a_space_compiled_from_text_is_named_as_it_is_and_a_file_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert shlex.split(profile_command("<space>", {}))[3] == "<space>"
    assert shlex.split(profile_command("my space.space", {}))[3] == os.path.join(str(tmp_path), "my space.space")


FAST = ["threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
        "search.supernets=1", "data.limit_train=64", "data.batch_size=16", "data.theta_batch_size=16",
        "search.lam=2", "search.budgets=null", "search.epsilons=[0]", "export.onnx=false"]


def test_a_scripts_run_with_overrides_is_continued_by_the_command_it_prints(tmp_path, capsys):
    """`Run(load_recipe(file, overrides), out)` in a script: the command it prints to continue names the run's own
    resolved recipe (the file alone, without the overrides, is another recipe and would be refused), and pasted, it
    goes on with the run."""
    quick = str(ROOT / "recipes" / "quickstart.yaml")
    out = tmp_path / "run"
    run = Run(load_recipe(quick, FAST), out, tty=False)
    run.execute()
    words = shlex.split(run.resume_command)
    assert words[:3] == ["automl", "run", str(out / "recipe.resolved.yaml")]
    capsys.readouterr()
    assert main(words[1:]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("mark", ["...", "\u2026"])
def test_an_ellipsis_copied_from_the_docs_is_said_to_stand_for_lines_left_out(mark):
    """A line `...` (an excerpt's lines left out) after a line that ends in a name: not a name's `.` (`write ___`)."""
    text = ("space my\ninput 1 x 8 x 8\nclasses 10\nchoices mb = ir_k3_e1, ir_k3_e3\n" + mark + "\nnetwork\n"
            "  stem width 16\n  stage s1 width 24 repeat 2 choose mb then mb\n  head width 128\nend\n")
    with pytest.raises(SpaceError) as info:
        parse_space(text, "my.space")
    assert info.value.line == 5
    assert "left out" in info.value.message and "___" not in info.value.message


def test_an_ellipsis_right_after_a_name_is_an_ellipsis_too():
    with pytest.raises(SpaceError) as info:
        parse_space("space my\ninput 1 x 8 x 8\nclasses 10\nchoices mb = ir_k3_e1, ir_k5_e6...\n", "my.space")
    assert "left out" in info.value.message and "___" not in info.value.message, info.value.message


def test_a_scripts_recipe_changed_with_model_copy_is_continued_from_the_resolved_recipe(tmp_path):
    """A loop over seeds in a script (`recipe.model_copy(update={"seed": s})`): the recipe's file alone says seed 0,
    and a resume from it would be refused as another recipe; the run's own resolved recipe says what it ran."""
    quick = str(ROOT / "recipes" / "quickstart.yaml")
    recipe = load_recipe(quick)
    changed = Run(recipe.model_copy(update={"seed": 3}), tmp_path / "a", tty=False).resume_command
    assert shlex.split(changed)[2] == str(tmp_path / "a" / "recipe.resolved.yaml")
    same = Run(recipe.model_copy(), tmp_path / "b", tty=False).resume_command
    assert shlex.split(same)[2] == quick


def test_a_timm_network_with_another_stem_is_said_to_differ_at_its_stem(tmp_path, capsys):
    """fbnetc_100 (a 16-channel stem) into proxylessnas (32): the message names the stem, where the networks first
    differ, not the first block (whose input channels follow from the stem)."""
    space = str(ROOT / "spaces" / "proxylessnas.space")
    assert main(["space", "encode", space, "--timm", "fbnetc_100", "--out", str(tmp_path / "a.json")]) == 2
    err = capsys.readouterr().err
    assert "fbnetc_100's stem has 16 channels" in err and "proxylessnas's 32" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "a.json").exists()


def test_a_file_system_without_locks_is_warned_about_once_for_all_its_folders(tmp_path, monkeypatch, caplog):
    """A run on a file system that refuses locks (some NFS mounts) locks its folder and each member's export folder:
    one warning for the file system, not one per folder."""
    def refuse(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_module.fcntl, "flock", refuse)
    monkeypatch.setattr(lock_module, "_WARNED_UNLOCKABLE", set())
    with caplog.at_level("WARNING", logger="automl._lock"):
        for name in ("run", "run/export/budget-0", "run/export/budget-1"):
            (tmp_path / name).mkdir(parents=True)
            assert lock_module.RunLock(tmp_path / name).acquire() is False
    assert sum("cannot lock" in r.getMessage() for r in caplog.records) == 1


def test_a_member_folder_the_run_cannot_write_names_the_resume_command(tmp_path, monkeypatch):
    """Mid-run, a member's export folder on a read-only (or full) disk: the message says the checkpoints are intact
    and how to continue, not only to choose another folder."""
    def read_only(folder, what):
        raise UserError(f"{what} {folder}: cannot write there (Read-only file system); choose a writable folder")

    monkeypatch.setattr(final_stages, "writable_dir", read_only)
    ctx = SimpleNamespace(keeper=SimpleNamespace(resume_command="automl run /r.yaml --out /run --resume"))
    with pytest.raises(UserError) as info:
        with final_stages._member_locked(tmp_path / "budget-0", ctx):
            pass
    assert "Read-only file system" in str(info.value)
    assert "continue it with: automl run /r.yaml --out /run --resume" in str(info.value), str(info.value)
