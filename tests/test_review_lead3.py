"""Review lead3:

1. A recipe whose ``space`` names a missing file suggests the ``.space`` file it likely means, as ``automl space``
   does (``dsl.SpaceFileError.suggestion``), written as the recipe or the override gave the path.
2. A refused budget names the override that set it, as typed (``recipe.override_of``), and only then: a file that
   is no recipe on its own (an override mends another key) gave its budgets itself.
3. ``automl run --KEY``'s hint is one that works: a dash in a dotted key is its underscore, and a flag written
   with underscores (``--supernet_force``) is named as the flag.
4. The random baseline's band messages give latency's unit (ms), as the budget messages do.
5. A loop of symbolic links that ``Path.resolve()`` meets (a ``RuntimeError`` before Python 3.13) is the user's
   path, exit 2 naming it, as Python 3.13's ``OSError`` ELOOP is; another ``RuntimeError`` stays an internal error.
6. An interrupted profile's ``.partial`` given as a cost table says to finish that profile; a table of another
   space gives the whole command to profile this one, to a new file.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

import automl.commands.space as space_cmd
from automl import profile
from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.pipeline.plan import _sampled_problem
from automl.profile import read_cost_table
from automl.recipe import load_recipe
from helpers import cli_out_err
from test_profile import _fake_time

ROOT = Path(__file__).resolve().parents[1]


def _recipe(tmp_path: Path, space: str) -> Path:
    (tmp_path / "spaces").mkdir(exist_ok=True)
    shutil.copy(ROOT / "spaces" / "digits.space", tmp_path / "spaces" / "digits.space")
    (tmp_path / "r").mkdir(exist_ok=True)
    path = tmp_path / "r" / "a.yaml"
    path.write_text(f"name: x\nthreads: 1\nspace: {space}\ndata:\n  dataset: digits\n")
    return path


def test_a_relative_space_path_missing_its_ending_suggests_it_as_the_recipe_writes_it(tmp_path, capsys):
    code, _, err = cli_out_err(capsys, "run", _recipe(tmp_path, "../spaces/digit"), "--out", tmp_path / "o")
    assert code == 2 and f"{tmp_path / 'r' / 'a.yaml'}:3: space: ../spaces/digit" in err, err
    assert "did you mean space: ../spaces/digits.space?" in err, err
    assert not (tmp_path / "o").exists()


def test_an_absolute_space_path_suggests_the_file_meant(tmp_path, capsys):
    code, _, err = cli_out_err(capsys, "run", _recipe(tmp_path, str(tmp_path / "spaces" / "digits.spac")),
                               "--out", tmp_path / "o")
    assert code == 2 and f"did you mean {tmp_path / 'spaces' / 'digits.space'}?" in err, err


def test_an_override_suggests_the_override_to_give(tmp_path, capsys):
    recipe = _recipe(tmp_path, "../spaces/digits.space")
    code, _, err = cli_out_err(capsys, "run", recipe, f"space={tmp_path / 'spaces' / 'digits'}", "--out",
                               tmp_path / "o")
    assert code == 2 and "override space=" in err, err
    assert f"did you mean space={tmp_path / 'spaces' / 'digits.space'}?" in err, err


def test_no_close_name_keeps_the_advice_on_the_path(tmp_path, capsys):
    code, _, err = cli_out_err(capsys, "run", _recipe(tmp_path, "../spaces/zzzzzz"), "--out", tmp_path / "o")
    assert code == 2 and "did you mean" not in err, err
    assert "give an absolute path, or one relative to the recipe's folder" in err, err


# ---- a budget the file gives is never blamed on an override that was not typed ------------------------------
def test_a_refused_budget_of_a_file_invalid_alone_names_no_override(tmp_path, capsys):
    """The file holds ``lam: 0`` (invalid on its own) and the override ``search.lam=8`` mends it: the budget the
    file gives is the file's (file_line cannot match it, the file alone not being a recipe), not an override's."""
    text = (ROOT / "recipes" / "quickstart.yaml").read_text()
    text = text.replace("budgets: [null, 80k, 40k, 20k]", "budgets: [null, 80k, 5k]").replace("lam: 8 ", "lam: 0 ")
    text = text.replace("../spaces/digits.space", str(ROOT / "spaces" / "digits.space"))
    path = tmp_path / "q.yaml"
    path.write_text(text)
    code, _, err = cli_out_err(capsys, "run", path, "threads=1", "search.lam=8", "--out", tmp_path / "o")
    assert code == 2 and "search.budgets[2]: 5k is below the smallest architecture of digits" in err, err
    assert "override" not in err, err


def test_a_refused_budget_names_the_override_as_typed(tmp_path, capsys):
    code, _, err = cli_out_err(capsys, "run", ROOT / "recipes" / "quickstart.yaml", "threads=1",
                               "search.budgets=[null, 80000, 5000]", "--out", tmp_path / "o")
    assert code == 2 and "search.budgets[2]: override search.budgets=[null, 80000, 5000]: 5k is below" in err, err


# ---- automl run --KEY: the hint is one that works ---------------------------------------------------------------
@pytest.mark.parametrize("argv, hint", [
    (["--space-args.width", "2"], "did you mean the override space_args.width=2?"),
    (["--data.batch-size=3"], "did you mean the override data.batch_size=3?"),
    (["--supernet_force"], "did you mean --supernet-force?"),
    (["--threads", "1"], "did you mean the override threads=1?"),
])
def test_a_recipe_key_or_flag_mistyped_as_an_option_gets_a_hint_that_works(tmp_path, capsys, argv, hint):
    code, _, err = cli_out_err(capsys, "run", ROOT / "recipes" / "quickstart.yaml", *argv, "--out", tmp_path / "o",
                               usage_exit=True)
    assert code == 2 and hint in err, err


# ---- the random baseline's band messages give latency's unit, as the budget messages do ----------------------
def test_a_random_band_above_the_largest_latency_names_ms():
    cs = load_compiled(ROOT / "spaces" / "digits.space")
    ct = cs.cost_table
    rows = [[float(x) * 3e-7 for x in row[:k]] for row, k in zip(ct.costs("params").tolist(), cs.num_choices)]
    ct.add_metric("latency", rows, 0.005)  # 0.0067 to 0.056 ms
    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml",
                         ["search.method=random", "search.cost=latency", "search.budgets=[0.065ms]",
                          "search.random_band=0.9", "search.cost_table=null"])
    with pytest.raises(Exception) as e:
        _sampled_problem(recipe, SimpleNamespace(search=cs, retrain=cs), [0])
    assert "to 0.065 ms latency" in str(e.value), str(e.value)
    assert re.search(r"\(0\.0560912 ms\)", str(e.value)), str(e.value)


# ---- a loop of symbolic links that Path.resolve() meets is the user's path, not an internal error -------------
def test_an_arch_file_naming_a_symlink_loop_is_a_user_error(tmp_path, capsys):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"choices": ["x"], "space": str(tmp_path / "a")}))
    code, _, err = cli_out_err(capsys, "space", "cost", ROOT / "spaces" / "digits.space", "--arch", arch)
    assert code == 2 and str(tmp_path / "a") in err and "symbolic links" in err, err


def test_another_runtime_error_is_still_an_internal_error(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("something else")

    monkeypatch.setattr(space_cmd, "main", broken)
    code = main(["space", "show", str(ROOT / "spaces" / "digits.space")])
    err = capsys.readouterr().err
    assert code == 1 and "internal error" in err and "RuntimeError: something else" in err, err


# ---- cost tables: the advice to profile leads where it should ----------------------------------------------------
def test_an_interrupted_profiles_partial_file_given_as_a_table_says_to_finish_it(tmp_path):
    partial = tmp_path / "lat.json.partial"
    partial.write_text(json.dumps({"format": "automl-profile-partial", "measured": {}}))
    with pytest.raises(UserError) as e:
        read_cost_table(partial, load_compiled(ROOT / "spaces" / "digits.space"))
    assert "interrupted `automl space profile`" in str(e.value) and f"--out {tmp_path / 'lat.json'}" in str(e.value)


def test_a_table_of_other_decisions_gives_the_whole_profile_command(tmp_path, monkeypatch):
    monkeypatch.setattr(profile, "time_module", _fake_time)
    table = tmp_path / "lat.json"
    assert main(["space", "profile", str(ROOT / "spaces" / "digits.space"), "--repeat", "2", "--calibrate", "3",
                 "--out", str(table)]) == 0
    t = json.loads(table.read_text())
    t["decisions"][0]["name"] = "renamed"
    table.write_text(json.dumps(t))
    cs = load_compiled(ROOT / "spaces" / "digits.space")
    with pytest.raises(UserError) as e:
        read_cost_table(table, cs)
    # the table of this same space file: profiled again into the same path (another space's gets a file of its own)
    assert f"`automl space profile {cs.filename} --out {table}`" in str(e.value), str(e.value)
    assert "changed since it was profiled" in str(e.value), str(e.value)
