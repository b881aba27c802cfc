"""Recipe and command-line mistakes that got past start-up (or out of the CLI as an internal error): each is
now one message naming the key or the override, exit code 2, before anything is trained or written."""

from __future__ import annotations

from pathlib import Path

import pytest

from automl.cli import main
from automl.errors import RecipeError
from automl.recipe import load_recipe, parse_recipe

ROOT = Path(__file__).resolve().parent.parent
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
HEAD = f"name: x\nspace: {ROOT / 'spaces' / 'digits.space'}\n"
# on the code before the checks, these runs trained: one short epoch of each phase on a few digits
TINY = ["threads=1", "data.limit_train=96", "search.lam=2", "search.supernets=1", "search.weight_epochs=1",
        "search.theta_epochs=1", "search.budgets=[null,40k]", "retrain.epochs=0", "export.onnx=false"]
HUGE = "9" * 5000  # more digits than Python converts to an int by default (4300)


def refused(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    return err


# ------------------------------------------------------------------ a number YAML cannot turn into an int


def test_a_huge_integer_in_the_file_is_a_message_with_its_line(tmp_path, capsys):
    p = tmp_path / "r.yaml"
    p.write_text(HEAD + f"seed: {HUGE}\n", encoding="utf-8")
    err = refused(capsys, ["run", str(p), "--out", str(tmp_path / "out")])
    assert err.startswith(f"{p}:3: ") and "digits" in err, err
    assert not (tmp_path / "out").exists()


def test_a_huge_integer_in_an_override_is_a_message_naming_it(tmp_path, capsys):
    err = refused(capsys, ["run", QUICK, f"search.lam={HUGE}", "--out", str(tmp_path / "out")])
    assert "search.lam" in err and "override" in err and "digits" in err, err


# ------------------------------------------------------------------ export.dir on the run's own files


@pytest.mark.parametrize("name", ["results.json", "metrics.jsonl", "checkpoints", "checkpoints/sub",
                                  "./report.md", "recipe.resolved.yaml", "threads.json", ".lock", "pareto.png"])
def test_export_dir_may_not_be_one_of_the_run_folders_own_files(name):
    with pytest.raises(RecipeError) as e:
        load_recipe(QUICK, [f"export.dir={name}"])
    assert e.value.key == "export.dir" and "override export.dir=" in e.value.message, e.value.message
    assert "run" in e.value.message and "export" in e.value.message


def test_export_dir_on_a_run_file_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "out"
    err = refused(capsys, ["run", QUICK, *TINY, "export.dir=results.json", "--out", str(out)])
    assert "export.dir" in err, err
    assert not out.exists()


@pytest.mark.parametrize("name", ["export", "exports", "results", "family/results.json", "checkpoints2",
                                  "my.lock"])
def test_export_dir_inside_the_run_folder_is_still_accepted(name):
    assert load_recipe(QUICK, [f"export.dir={name}"]).export.dir == name


def test_export_dir_on_a_run_file_in_the_file_names_its_line(tmp_path):
    with pytest.raises(RecipeError) as e:
        parse_recipe(HEAD + "export:\n  dir: metrics.jsonl\n", filename="r.yaml")
    assert e.value.key == "export.dir" and e.value.line == 4


# ------------------------------------------------------------------ empty data.root


@pytest.mark.parametrize("override", ["data.root=", "data.root=''"])
def test_an_empty_data_root_is_refused(override):
    with pytest.raises(RecipeError) as e:
        load_recipe(str(ROOT / "recipes" / "cifar10.yaml"), [override])
    assert e.value.key == "data.root" and "empty" in e.value.message


def test_an_empty_data_root_in_the_file_names_its_line():
    with pytest.raises(RecipeError) as e:
        parse_recipe(HEAD + "data:\n  dataset: cifar10\n  root: ''\n", filename="r.yaml")
    assert e.value.key == "data.root" and e.value.line == 5


# ------------------------------------------------------------------ a name too long for a folder


def test_a_name_too_long_for_a_folder_is_a_recipe_error():
    with pytest.raises(RecipeError) as e:
        load_recipe(QUICK, ["name=" + "a" * 240])
    assert e.value.key == "name" and "characters" in e.value.message


def test_a_long_name_that_fits_a_folder_loads():
    assert load_recipe(QUICK, ["name=" + "a" * 200]).name == "a" * 200


def test_rank_names_a_huge_integer_in_the_runs_recipe(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.resolved.yaml").write_text(HEAD + f"seed: {HUGE}\n", encoding="utf-8")
    err = refused(capsys, ["rank", str(run)])
    assert "recipe.resolved.yaml:3: seed" in err and "digits" in err, err


# ------------------------------------------------------------------ an empty --out


@pytest.mark.parametrize("out", ["", " "])
def test_run_refuses_an_empty_out_instead_of_choosing_the_default_folder(tmp_path, monkeypatch, capsys, out):
    monkeypatch.chdir(tmp_path)
    err = refused(capsys, ["run", QUICK, *TINY, "--out", out])
    assert "--out" in err and "empty" in err, err
    assert list(tmp_path.iterdir()) == []  # no runs/ folder, nothing trained


@pytest.mark.parametrize("out", ["", " "])
def test_export_refuses_an_empty_out_instead_of_writing_into_the_current_folder(tmp_path, monkeypatch, capsys,
                                                                                 out):
    monkeypatch.chdir(tmp_path)
    arch = tmp_path / "arch.json"
    arch.write_text('{"choices": ["ir_k3_e1", "skip", "skip", "ir_k3_e1", "skip", "skip", "ir_k3_e1", "skip", '
                    '"skip"]}', encoding="utf-8")
    err = refused(capsys, ["export", str(ROOT / "spaces" / "digits.space"), "--arch", str(arch), "--out", out])
    assert "--out" in err and "empty" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arch.json"]


def test_a_date_yaml_cannot_build_is_a_message_with_its_line(tmp_path):
    with pytest.raises(RecipeError) as e:
        parse_recipe(HEAD + "seed: 2020-13-01\n", filename="r.yaml")
    assert e.value.key == "seed" and e.value.line == 3 and "date" in e.value.message
    with pytest.raises(RecipeError) as e:
        load_recipe(QUICK, ["seed=2020-13-01"])
    assert e.value.key == "seed" and "override seed=2020-13-01" in e.value.message


def test_a_hexadecimal_integer_too_long_to_print_is_named_without_printing_it():
    with pytest.raises(RecipeError) as e:
        parse_recipe(HEAD + "seed: 0x" + "f" * 6000 + "\n", filename="r.yaml")
    assert e.value.key == "seed" and e.value.line == 3 and "too large to show" in e.value.message
