"""Review IT: budgets far above a space's costs (written for another metric) are one warning with the units and a
fix; budget messages give latency's unit; a budget refused from an override names the override; ``automl rank``
on a folder another automl holds says that alone, not first that it replaces the folder's ranking."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

import automl.commands.rank as rank_mod
from automl._lock import RunLock
from automl.compile import load_compiled
from automl.errors import RecipeError
from automl.pipeline.setup import check_budgets
from automl.recipe import load_recipe
from helpers import DIGITS_SPACE, QUICK, cli_out_err

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

LATENCY = ["search.cost=latency"]


@pytest.fixture
def digits():
    """digits.space with a latency metric (ms) proportional to its parameters: 0.0067 to 0.056 ms."""
    cs = load_compiled(DIGITS_SPACE)
    ct = cs.cost_table
    rows = [[float(x) * 3e-7 for x in row[:k]] for row, k in zip(ct.costs("params").tolist(), cs.num_choices)]
    ct.add_metric("latency", rows, 0.005)
    return cs


def _warnings(recipe, space) -> list[str]:
    said: list[str] = []
    check_budgets(recipe, space, said.append)
    return said


# ---- 1. budgets far above the space's costs; units ---------------------------------------------------------

def test_params_budgets_on_a_latency_cost_are_one_warning_with_the_units_and_a_fix(digits):
    """quickstart's budgets [null, 80k, 40k, 20k] (parameters) with search.cost=latency: one warning that says
    the budgets are in ms and look written for params, and a fix that itself passes with no warning."""
    said = _warnings(load_recipe(QUICK, LATENCY), digits)
    assert len(said) == 1, said
    msg = said[0]
    assert msg.startswith("warning: search.budgets[1], [2] and [3] (80k, 40k, 20k) are over 100x the largest "), msg
    assert "(latency 0.0560912 ms)" in msg and "ms for latency" in msg and "written for params" in msg, msg
    fix = re.search(r"search\.budgets=\[[^\]]*\]$", msg).group(0)
    assert fix.startswith("search.budgets=[null,") and fix.count("ms") == 3, fix
    fixed = load_recipe(QUICK, LATENCY + [fix])
    assert _warnings(fixed, digits) == []
    assert fixed.search.budgets[1] > fixed.search.budgets[2] > fixed.search.budgets[3]  # the family's order kept


def test_a_budget_just_above_the_largest_warns_with_its_unit(digits):
    said = _warnings(load_recipe(QUICK, LATENCY + ["search.budgets=[null,0.1ms,0.03ms]"]), digits)
    assert said == ["warning: search.budgets[1] = 0.1 ms is at or above the largest architecture (latency "
                    "0.0560912 ms): it does not constrain that member"], said


def test_a_latency_budget_below_the_smallest_gives_its_unit_and_a_minimum_that_passes(digits):
    with pytest.raises(RecipeError) as e:
        check_budgets(load_recipe(QUICK, LATENCY + ["search.budgets=[null,0.001ms]"]), digits, print)
    msg = str(e.value)
    assert "0.001 ms is below the smallest architecture of digits (latency 0.0067064 ms, fixed part " in msg, msg
    least = re.search(r"at least ([0-9.]+) ms", msg).group(1)
    assert _warnings(load_recipe(QUICK, LATENCY + [f"search.budgets=[null,{least}ms]"]), digits) == []


# ---- 2. a refused budget names the override that gave it, or the file's line -------------------------------

def test_a_budget_refused_from_an_override_names_the_override(digits):
    with pytest.raises(RecipeError) as e:
        check_budgets(load_recipe(QUICK, ["search.budgets=[null,80k,40k,20]"]), digits, print)
    assert e.value.line is None and e.value.key == "search.budgets[3]"
    assert str(e.value).startswith(f"{QUICK}: search.budgets[3]: override search.budgets=[null,80k,40k,20]: 20 is "
                                   f"below the smallest architecture of digits (params 13,554,"), str(e.value)


def test_a_budget_refused_from_the_file_names_its_line_and_no_override(tmp_path, digits):
    text = Path(QUICK).read_text().replace("budgets: [null, 80k, 40k, 20k]", "budgets: [null, 80k, 40k, 20]")
    path = tmp_path / "r.yaml"
    path.write_text(text.replace("../spaces/digits.space", DIGITS_SPACE))
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.strip().startswith("budgets:"))
    with pytest.raises(RecipeError) as e:
        check_budgets(load_recipe(path, ["seed=1"]), digits, print)
    assert str(e.value).startswith(f"{path}:{line}: search.budgets[3]: 20 is below the smallest"), str(e.value)


def test_the_cli_names_the_override_of_a_refused_budget(tmp_path, capsys):
    code, _, err = cli_out_err(capsys, "run", QUICK, "threads=1", "search.budgets=[null,80k,40k,20]",
                               "--out", tmp_path / "out")
    assert code == 2, err
    assert err.startswith(f"{QUICK}: search.budgets[3]: override search.budgets=[null,80k,40k,20]: 20 is below"), err


# ---- 3. automl rank: the folder's lock before the notice that it replaces a ranking ------------------------

@pytest.fixture
def ranked_folder(tmp_path, monkeypatch) -> Path:
    """A run folder whose results.json (as rank reads it) holds a ranking of 3 architectures, not retrained."""
    out = tmp_path / "run"
    out.mkdir()
    recipe = yaml.safe_load(Path(QUICK).read_text())
    recipe["space"], recipe["device"] = DIGITS_SPACE, "cpu"
    (out / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe))
    old = {"archs": [{}, {}, {}], "retrain_epochs": 0, "seeds": 1, "truth": "loss", "kendall_tau": 0.5}
    (out / "results.json").write_text(json.dumps({"ranking": old}))
    monkeypatch.setattr(rank_mod, "read_results", lambda path: {"ranking": old})
    monkeypatch.setattr(rank_mod, "check_results", lambda path, results: None)
    return out


def test_rank_on_a_locked_folder_says_only_that_it_is_in_use(ranked_folder, capsys):
    held = RunLock(ranked_folder)
    assert held.acquire()
    try:
        code, out, err = cli_out_err(capsys, "rank", ranked_folder, "--archs", "4", "--retrain-epochs", "0")
    finally:
        held.release()
    assert code == 2 and "is in use: another automl run is writing there" in err, err
    assert "replaces the one in" not in out + err, out
