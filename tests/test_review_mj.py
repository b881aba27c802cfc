"""Review MJ (recipes, start-up checks): the random baseline (search.method random) takes a budget given twice, as it
takes one in search.random_budgets (each member draws its own network from its own seed); the checks of keys it
never reads (search.theta_min, search.inplace_distill, sandwich with lam < 3) do not refuse its recipe, which warns
of them instead; a recipe's space_args value the space refuses is shown as YAML holds it (true, "abc"), not as
Python's repr ('True')."""
from __future__ import annotations

import json
import logging

import pytest

from automl.cli import main
from automl.errors import RecipeError
from automl.pipeline.setup import check_theta_min, load_spaces
from automl.recipe import load_recipe
from test_recipe_checks import QUICK, error_of  # the recipe-file helpers

RANDOM = ["search.method=random"]
TINY = ["threads=1", "device=cpu", "search.supernets=1", "retrain.epochs=0", "export.onnx=false"]


def _ignored(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "ignore" in r.getMessage()]


# --------------------------------------------------------- 1: a budget given twice, with the random baseline

@pytest.mark.parametrize("budgets", ["[50k,50k]", "[null,null]", "[null,80k,80000]"])
def test_random_takes_a_budget_given_twice(budgets):
    r = load_recipe(QUICK, [*RANDOM, f"search.budgets={budgets}"])
    assert len(r.search.budgets) == len(budgets.split(",")) and len(set(r.search.budgets)) < len(r.search.budgets)


@pytest.mark.parametrize("method", ["importance_sampling", "separate", "simultaneous"])
def test_the_other_methods_still_refuse_a_budget_given_twice(method):
    e = error_of(QUICK, [f"search.method={method}", "search.budgets=[50k,50k]"])
    assert "item 2 (50000) is given twice (item 1): the two members would search for the same network" in e, e


def test_random_with_a_budget_given_twice_runs_and_exports_two_folders(tmp_path, monkeypatch):
    """End to end: two members of one budget draw two networks (seed + index), each in its own folder."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "run"
    assert main(["run", str(QUICK), "--out", str(out), *RANDOM, "search.budgets=[50k,50k]", *TINY]) == 0
    archs = json.loads((out / "results.json").read_text(encoding="utf-8"))["architectures"]
    assert [a["budget"] for a in archs] == [50000.0, 50000.0] and all(a["cost"] <= 50000 for a in archs)
    assert archs[0]["choices"] != archs[1]["choices"]  # seeds 0 and 1 draw two networks
    folders = sorted(p.name for p in (out / "export").iterdir() if p.is_dir())
    assert folders == ["budget-0-50k", "budget-1-50k"]


# --------------------------------------------------------- 2: keys random never reads are warned of, not refused

@pytest.mark.parametrize("given, named", [
    (["search.inplace_distill=true"], ["search.inplace_distill"]),                      # without sandwich
    (["search.weight_sampling=sandwich", "search.lam=2"], ["search.weight_sampling"]),  # lam 2 is the default
    (["search.weight_sampling=sandwich", "search.lam=2", "search.inplace_distill=true"],
     ["search.weight_sampling", "search.inplace_distill"]),
])
def test_random_warns_of_sandwich_settings_it_never_reads(caplog, given, named):
    caplog.set_level(logging.WARNING, logger="automl")
    load_recipe(QUICK, [*RANDOM, "search.theta_epochs=15", "search.weight_epochs=15", *given])
    warned = _ignored(caplog)
    assert len(warned) == 1 and all(k in warned[0] for k in named), warned
    assert "search.method random trains no supernet" in warned[0]


@pytest.mark.parametrize("given, key", [(["search.inplace_distill=true"], "search.inplace_distill"),
                                        (["search.weight_sampling=sandwich", "search.lam=2"], "search.")])
def test_the_other_methods_still_refuse_those_sandwich_settings(given, key):
    e = error_of(QUICK, given)
    assert key in e and "sandwich" in e, e


def test_random_takes_a_theta_min_too_large_for_the_space(caplog):
    caplog.set_level(logging.WARNING, logger="automl")
    r = load_recipe(QUICK, [*RANDOM, "search.theta_min=0.9"])
    assert any("search.theta_min" in m for m in _ignored(caplog)), _ignored(caplog)
    check_theta_min(r, load_spaces(r).search)  # no error
    other = load_recipe(QUICK, ["search.theta_min=0.9"])
    with pytest.raises(RecipeError, match="is too large for the space"):
        check_theta_min(other, load_spaces(other).search)


# --------------------------------------------------------- 3: a space_args value is shown as the recipe gives it

@pytest.mark.parametrize("given, shown", [("true", "got true ("), ("abc", 'got "abc" ('), ("'1.5x'", 'got "1.5x" ('),
                                          ("1.5", "got 1.5 (")])
@pytest.mark.parametrize("key", ["space_args.head", "retrain.space_args.head"])
def test_a_space_arg_the_space_refuses_is_shown_as_yaml_gives_it(key, given, shown):
    r = load_recipe(QUICK, [f"{key}={given}"])
    with pytest.raises(RecipeError) as info:
        load_spaces(r)
    e = str(info.value)
    assert e.startswith(f"{QUICK}: {key}: ") and shown in e and "'" not in e.split("got", 1)[1], e
