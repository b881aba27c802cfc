"""The input-shape check located at the key that set the size the space and the data disagree on:
data.image_size (its override, or its recipe line), else the space's size parameter in space_args or
retrain.space_args, else data.dataset's line."""

from pathlib import Path

from automl.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "recipes" / "quickstart.yaml"
TINY = ["threads=1", "device=cpu", "search.budgets=null", "search.epsilons=[0]"]


def _run_error(tmp_path: Path, path: Path, capsys, *overrides: str) -> str:
    code = main(["run", str(path), *TINY, *overrides, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    return err


def test_an_image_size_override_is_named_as_the_override(tmp_path, capsys):
    """data.image_size=5 on the command line: `FILE: override data.image_size=5: ...`, not the line of
    data.dataset (13), which the user did not change."""
    err = _run_error(tmp_path, QUICK, capsys, "data.image_size=5")
    assert err.startswith(f"{QUICK}: override data.image_size=5: the space digits.space takes input (1, 8, 8) with "
                          f"10 classes, but data.dataset digits gives (1, 5, 5) with 10 classes; the sizes differ"), err


def test_an_image_size_in_the_recipe_file_is_named_at_its_line(tmp_path, capsys):
    """data.image_size written in the recipe's file (line 5): the message is at that line, not data.dataset's."""
    path = tmp_path / "r.yaml"
    path.write_text(f"name: s\nspace: {ROOT / 'spaces' / 'digits.space'}\ndata:\n  dataset: digits\n"
                    f"  image_size: 6\nsearch:\n  epsilons: [0]\n")
    err = _run_error(tmp_path, path, capsys)
    assert err.startswith(f"{path}:5: the space digits.space takes input (1, 8, 8) with 10 classes, but "
                          f"data.dataset digits gives (1, 6, 6) with 10 classes"), err


def test_a_size_parameter_override_is_named_as_the_override(tmp_path, capsys):
    """space_args.size=5 alone on the command line (only the sizes differ): named as that override."""
    err = _run_error(tmp_path, QUICK, capsys, "space_args.size=5")
    assert err.startswith(f"{QUICK}: override space_args.size=5: the space digits.space (with space_args) takes "
                          f"input (1, 5, 5) with 10 classes, but data.dataset digits gives (1, 8, 8)"), err


def test_a_retrain_size_parameter_override_is_named_as_the_override(tmp_path, capsys):
    """retrain.space_args.size=5: the retraining space's check names that override."""
    err = _run_error(tmp_path, QUICK, capsys, "retrain.space_args.size=5")
    assert err.startswith(f"{QUICK}: override retrain.space_args.size=5: the space digits.space (with "
                          f"retrain.space_args) takes input (1, 5, 5)"), err


def test_other_differences_stay_at_the_data_set_line(tmp_path, capsys):
    """Classes that differ too (two causes): the line of data.dataset (13), as before."""
    err = _run_error(tmp_path, QUICK, capsys, "space_args.size=5", "space_args.classes=5")
    assert err.startswith(f"{QUICK}:13: the space digits.space (with space_args) takes input (1, 5, 5) with 5 "
                          f"classes"), err
