"""Review IJ: a recipe's space file that cannot be read, named at the recipe's `space:` line (or as the override);
a space that does not fit the data, saying what differs (channels, sizes, classes) and what fixes it; a recipe
file that cannot be read, named with the flag that gave it, and a close name suggested for a missing one."""

import shutil
from pathlib import Path

import pytest

from automl.cli import main
from automl.errors import RecipeError, SpaceError, UserError
from automl.pipeline.setup import load_spaces
from automl.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "recipes" / "quickstart.yaml"
PUBLISHED = "the published spaces are in the automl repository's spaces/ folder"

# docs/space-language.md's tutorial space: 3 input channels fixed in its `input` line, the size a parameter
CIFAR_CHAIN = """space cifar_chain
param classes = 10
param size = 32
param width = 1.0
input 3 x size x size
classes classes
choices block = ir_k3_e3, ir_k3_e6, ir_k5_e3, ir_k5_e6
choices block_or_skip = block, skip
network
  stem width 24 * width
  stage s1 width 32 * width repeat 3 choose block then block_or_skip
  stage s2 width 64 * width stride 2 repeat 3 choose block then block_or_skip
  head width 64
end
"""
TINY = ["threads=1", "device=cpu", "search.budgets=null", "search.epsilons=[0]"]


def _copied_quickstart(tmp_path: Path) -> Path:
    """recipes/quickstart.yaml copied to a folder with spaces in its name, where ../spaces/digits.space is not."""
    folder = tmp_path / "my recipes"
    folder.mkdir()
    path = folder / "q s.yaml"
    shutil.copy(QUICK, path)
    return path


def test_a_copied_recipe_whose_space_is_missing_names_its_space_line(tmp_path):
    """The copied quickstart's `space: ../spaces/digits.space` (line 10) leads to no file: the message names the
    recipe file, the line and key, the path as written and where it leads (HEAD: only the .space path)."""
    path = _copied_quickstart(tmp_path)
    with pytest.raises(RecipeError) as e:
        load_spaces(load_recipe(path, ["threads=1", "device=cpu"]))
    message = str(e.value)
    assert message.startswith(f"{path}:10: space: ../spaces/digits.space (relative to the recipe's folder) → "
                              f"{tmp_path / 'spaces' / 'digits.space'}: no such file; give an absolute path, or "
                              f"one relative to the recipe's folder {path.parent}"), message
    assert PUBLISHED in message


def test_a_missing_space_through_automl_run_exits_2_at_the_recipe_line(tmp_path, capsys):
    """The same through `automl run`: exit 2, the recipe's line, no traceback."""
    path = _copied_quickstart(tmp_path)
    code = main(["run", str(path), *TINY, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert f"{path}:10: space: ../spaces/digits.space (relative to the recipe's folder)" in err, err


FAST = TINY + ["search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0", "search.supernets=1",
               "data.limit_train=64", "data.batch_size=32", "data.theta_batch_size=32", "search.lam=2",
               "export.onnx=false"]


def test_a_space_moved_away_before_a_resume_names_the_recipe_line(tmp_path, capsys):
    """A run whose space file is gone when it is resumed: the recipe's space: line, exit 2."""
    path = _copied_quickstart(tmp_path)
    (tmp_path / "spaces").mkdir()
    shutil.copy(ROOT / "spaces" / "digits.space", tmp_path / "spaces" / "digits.space")
    out = str(tmp_path / "run")
    assert main(["run", str(path), *FAST, "--out", out]) == 0
    (tmp_path / "spaces" / "digits.space").rename(tmp_path / "spaces" / "moved.space")
    capsys.readouterr()
    code = main(["run", str(path), *FAST, "--out", out, "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert (f"{path}:10: space: ../spaces/digits.space (relative to the recipe's folder) → "
            f"{tmp_path / 'spaces' / 'digits.space'}: no such file") in err, err


def test_a_missing_space_given_as_an_override_is_named_as_the_override(tmp_path, monkeypatch):
    """`space=nope.space` on the command line: named as the override, resolved against the current folder."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RecipeError) as e:
        load_spaces(load_recipe(QUICK, ["threads=1", "device=cpu", "space=nope.space"]))
    message = str(e.value)
    assert message.startswith(f"{QUICK}: override space={tmp_path / 'nope.space'} (a path on the command line is "
                              f"relative to the current folder): no such file; check the path"), message


def test_a_space_that_is_a_folder_names_the_recipe_line(tmp_path):
    """`space:` naming a folder: the recipe's line, the folder, and no hint about the published spaces."""
    (tmp_path / "sp").mkdir()
    path = tmp_path / "r.yaml"
    path.write_text(QUICK.read_text().replace("space: ../spaces/digits.space", "space: sp"))
    with pytest.raises(RecipeError) as e:
        load_spaces(load_recipe(path, ["threads=1", "device=cpu"]))
    message = str(e.value)
    assert message.startswith(f"{path}:10: space: sp (relative to the recipe's folder) → {tmp_path / 'sp'}: is a "
                              f"directory, not a .space file"), message
    assert PUBLISHED not in message


def test_a_mistake_inside_the_space_file_keeps_its_own_position(tmp_path):
    """A syntax error in the space file is the .space file's FILE:LINE:COL, not moved to the recipe's line."""
    space = tmp_path / "bad.space"
    space.write_text("space bad\ninput 1 x 8 x 8 x\n")
    path = tmp_path / "r.yaml"
    path.write_text(QUICK.read_text().replace("space: ../spaces/digits.space", "space: bad.space"))
    with pytest.raises(SpaceError) as e:
        load_spaces(load_recipe(path, ["threads=1", "device=cpu"]))
    assert not isinstance(e.value, RecipeError)
    assert str(e.value).startswith(f"{space}:2:"), str(e.value)


def _cifar_recipe(tmp_path: Path) -> Path:
    (tmp_path / "cifar_chain.space").write_text(CIFAR_CHAIN)
    path = tmp_path / "r.yaml"
    path.write_text(QUICK.read_text().replace("space: ../spaces/digits.space", "space: cifar_chain.space"))
    return path


def _run_error(tmp_path: Path, path: Path, capsys, *overrides: str) -> str:
    code = main(["run", str(path), *TINY, *overrides, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    return err


def test_a_space_with_fixed_channels_says_the_channels_differ(tmp_path, capsys):
    """The tutorial's space (3 channels in its `input` line) on digits (1) with space_args.size=8: the channels
    differ and no space_args fix them (HEAD: "set the space's size parameters in space_args"), at the recipe's
    space: line; "(with space_args)" since the recipe gives them."""
    path = _cifar_recipe(tmp_path)
    err = _run_error(tmp_path, path, capsys, "space_args.size=8")
    assert (f"{path}:10: the space cifar_chain.space (with space_args) takes input (3, 8, 8) with 10 classes, but "
            f"data.dataset digits gives (1, 8, 8) with 10 classes; the channels differ (3 in its `input` line, 1 in "
            f"the data), which the space fixes (no parameter sets them): use a data set with 3 channels, or a space "
            f"whose `input` line takes 1") in err, err
    assert "size parameters" not in err and "sizes differ" not in err


def test_a_space_without_space_args_does_not_say_with_space_args(tmp_path, capsys):
    """No space_args in the recipe: no "(with space_args)"; the sizes, which the space's `size` sets, are fixed
    by space_args.size (or data.image_size), the channels are not."""
    path = _cifar_recipe(tmp_path)
    err = _run_error(tmp_path, path, capsys)
    assert "(with space_args)" not in err, err
    assert "the space cifar_chain.space takes input (3, 32, 32)" in err, err
    assert "the channels differ" in err, err
    assert ("the sizes differ (32 x 32 in its `input` line, 8 x 8 in the data): set space_args.size=8 (or "
            "data.image_size=32)") in err, err


def test_sizes_and_classes_set_by_parameters_name_the_values(tmp_path, capsys):
    """The quickstart's space with size 5 and 5 classes: each parameter with the data's value, located at the
    data.dataset line (13) since the recipe's file gives no space_args."""
    err = _run_error(tmp_path, QUICK, capsys, "space_args.size=5", "space_args.classes=5")
    assert (f"{QUICK}:13: the space digits.space (with space_args) takes input (1, 5, 5) with 5 classes, but "
            f"data.dataset digits gives (1, 8, 8) with 10 classes; the sizes differ (5 x 5 in its `input` line, 8 x 8 "
            f"in the data): set space_args.size=8 (or data.image_size=5); the classes differ (5 in its `classes` "
            f"line, 10 in the data): set space_args.classes=10") in err, err
    assert "channels" not in err


def test_a_recipe_folder_given_with_a_flag_names_the_flag(tmp_path):
    """A folder for `automl export --recipe`: the loader names the flag that gave it (HEAD: the folder only)."""
    with pytest.raises(RecipeError) as e:
        load_recipe(tmp_path, flag="--recipe")
    assert str(e.value) == f"--recipe {tmp_path}: is a directory, expected a recipe YAML file"
    with pytest.raises(RecipeError) as e:
        load_recipe(tmp_path)
    assert str(e.value) == f"{tmp_path}: is a directory, expected a recipe YAML file"


@pytest.mark.parametrize("given, meant", [("quickstart.yml", "quickstart.yaml"), ("quikstart.yaml", "quickstart.yaml"),
                                          ("r.yaml", "r.yml")])
def test_a_missing_recipe_suggests_a_sibling(tmp_path, given, meant):
    """A recipe file that does not exist, beside one of the other YAML extension or a close name: did you mean."""
    shutil.copy(QUICK, tmp_path / "quickstart.yaml")
    shutil.copy(QUICK, tmp_path / "r.yml")
    with pytest.raises(UserError) as e:
        load_recipe(tmp_path / given)
    assert str(e.value).endswith(f"no such recipe file (looked for {tmp_path / given}); did you mean "
                                 f"{tmp_path / meant}?"), str(e.value)


def test_a_missing_recipe_with_nothing_close_suggests_nothing(tmp_path):
    shutil.copy(QUICK, tmp_path / "quickstart.yaml")
    with pytest.raises(UserError) as e:
        load_recipe(tmp_path / "zzz.yaml")
    assert "did you mean" not in str(e.value)
    with pytest.raises(UserError) as e:
        load_recipe(tmp_path / "no-folder" / "quickstart.yml")
    assert "did you mean" not in str(e.value)
