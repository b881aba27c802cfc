"""search.random_band: the random baseline samples each member uniformly among the architectures whose cost lies
in [band x budget, budget] (the paper's networks "of 2.5M, 3.0M, 4.0M and 5.0M" parameters), not merely below
the budget."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.errors import RecipeError, UserError
from automl.pipeline.members import Members
from automl.pipeline.plan import search_problem
from automl.pipeline.setup import engine_costs, load_spaces
from automl.recipe import load_recipe
from automl.search import RandomSearch, get_searcher

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
RANDOM = ["search.method=random", "search.epsilons=[0.0]", "device=cpu"]  # one member, no budget
TINY_RUN = ["data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
            "retrain.epochs=0", "export.onnx=false", "threads=1"]

NUM_CHOICES = [3, 1, 4, 2, 4]
COSTS = torch.tensor([[0.1, 0.5, 0.9, 0.0], [0.2, 0.0, 0.0, 0.0], [0.0, 0.3, 0.6, 1.0],
                      [0.4, 0.8, 0.0, 0.0], [0.5, 0.1, 0.7, 0.2]], dtype=torch.float64)


def _cost(arch: torch.Tensor) -> torch.Tensor:
    return COSTS.gather(1, arch.t()).sum(0)


def _all_archs() -> torch.Tensor:
    return torch.tensor(list(itertools.product(*(range(k) for k in NUM_CHOICES))))


def test_a_band_keeps_every_draw_inside_it_and_uniform_within_it():
    budget, band = 2.5, 0.8
    every = _all_archs()
    inside = every[(_cost(every) >= band * budget) & (_cost(every) <= budget)]
    assert 10 <= len(inside) < len(every[_cost(every) <= budget])  # the band excludes some: the test can fail
    n = 200 * len(inside)
    arch = RandomSearch(NUM_CHOICES, COSTS, budget=budget, band=band, seed=0, lam=n, batch=4096).ask()
    cost = _cost(arch)
    assert ((cost >= band * budget - 1e-12) & (cost <= budget + 1e-12)).all()
    counts = torch.stack([(arch == a).all(1).sum() for a in inside]).double()
    assert counts.sum() == n                                  # every draw is one of the band's architectures
    chi2 = float(((counts - 200) ** 2 / 200).sum())           # df = len(inside) - 1
    assert chi2 < len(inside) - 1 + 5 * (2 * (len(inside) - 1)) ** 0.5, chi2


def test_band_applies_to_the_whole_network_with_a_fixed_part():
    """``fixed``: the cost outside the table; band x (fixed + budget) <= fixed + R <= fixed + budget."""
    fixed, budget, band = 10.0, 2.5, 0.95
    arch = RandomSearch(NUM_CHOICES, COSTS, budget=budget, band=band, fixed=fixed, seed=1, lam=300).ask()
    total = fixed + _cost(arch)
    assert (total >= band * (fixed + budget) - 1e-9).all() and (total <= fixed + budget + 1e-9).all()
    assert total.min() < fixed + 0.95 * budget    # 12.0 + : looser than the band on the table alone


def test_band_errors_are_clear():
    with pytest.raises(ValueError, match="band"):
        RandomSearch(NUM_CHOICES, COSTS, budget=2.0, band=0.0)
    with pytest.raises(ValueError, match="band"):
        RandomSearch(NUM_CHOICES, COSTS, budget=2.0, band=1.5)
    with pytest.raises(ValueError, match="band needs a budget"):
        RandomSearch(NUM_CHOICES, band=0.9)
    dearest = float(COSTS.max(1).values.sum())   # 0.9 + 0.2 + 1.0 + 0.8 + 0.7 = 3.6
    with pytest.raises(ValueError, match="most expensive"):
        RandomSearch(NUM_CHOICES, COSTS, budget=[2.0, 5.0], band=0.8)   # 0.8 x 5 = 4 > 3.6
    top = RandomSearch(NUM_CHOICES, COSTS, budget=dearest + 1e-9, band=1.0, lam=3).ask()  # the dearest network
    assert top.tolist() == [[2, 0, 3, 1, 2]] * 3
    with pytest.raises(ValueError, match="band 0.99.*max_tries"):
        RandomSearch(NUM_CHOICES, COSTS, budget=1.0, band=0.99, max_tries=2, batch=16, lam=50).ask()


def test_the_state_round_trip_keeps_the_band():
    make = lambda band=0.7: RandomSearch(NUM_CHOICES, COSTS, budget=[1.5, 2.5], band=band, seed=4, lam=3)
    s = make()
    arch = s.ask()
    s.tell(arch, torch.arange(6, dtype=torch.float64))
    buf = io.BytesIO()
    torch.save(s.state_dict(), buf)
    buf.seek(0)
    again = make()
    again.load_state_dict(torch.load(buf, weights_only=False))
    assert torch.equal(again.best(), s.best()) and torch.equal(again.ask(), s.ask())
    with pytest.raises(ValueError, match="floors"):
        make(0.5).load_state_dict(s.state_dict())
    with pytest.raises(ValueError, match="floors"):
        make(None).load_state_dict(s.state_dict())
    plain = RandomSearch(NUM_CHOICES, COSTS, budget=[1.5, 2.5], seed=4, lam=3)
    state = plain.state_dict()
    del state["floors"]                     # a state saved before the key: no band
    RandomSearch(NUM_CHOICES, COSTS, budget=[1.5, 2.5], seed=4, lam=3).load_state_dict(state)


def test_without_a_band_the_draws_are_unchanged():
    """The band is a filter on the same candidates: a band whose floor lies below the cheapest architecture
    excludes nothing, so it draws exactly what no band draws (it takes no randomness of its own), and an
    unconstrained member (null budget) is the same with a band or without."""
    cheapest = float(_cost(_all_archs()).min())
    for budget in ([1.5, 2.5], [cheapest + 0.05, 3.0]):
        plain = RandomSearch(NUM_CHOICES, COSTS, budget=budget, seed=3, lam=4)
        vacuous = RandomSearch(NUM_CHOICES, COSTS, budget=budget, seed=3, lam=4, band=0.9 * cheapest / max(budget))
        assert all(f is not None and f <= cheapest for f in vacuous.floors)
        for _ in range(3):
            assert torch.equal(plain.ask(), vacuous.ask())
    assert _pipeline_choices(["search.budgets=[null,80k]", "search.random_band=0.9"])[0] == \
        _pipeline_choices(["search.budgets=[null,80k]"])[0]


def _pipeline(overrides):
    recipe = load_recipe(QUICK, ["search.method=random", "device=cpu", *overrides])
    spaces = load_spaces(recipe)
    members = Members.of(recipe.search, sampled=True)
    costs = engine_costs(spaces.search, "params", True)
    problems = [search_problem(recipe, members, [i], spaces, costs, torch.device("cpu")) for i in range(members.n)]
    return recipe, spaces, problems


def _pipeline_choices(overrides):
    _, _, problems = _pipeline(overrides)
    return [get_searcher("random").create(p).best()[0].tolist() for p in problems]


@pytest.mark.parametrize("key", ["random_budgets", "budgets"])
def test_the_run_samples_its_members_in_the_band(key):
    """Both search.random_budgets (the retraining space's table) and search.budgets (the search space's)."""
    totals = [100_000, 60_000, 30_000]
    given = (RANDOM + [f"search.random_budgets=[{','.join(map(str, totals))}]"] if key == "random_budgets"
             else [f"search.budgets=[null,{','.join(map(str, totals))}]"])
    recipe, spaces, problems = _pipeline(given + ["search.random_band=0.9", "search.lam=2"])
    want = totals if key == "random_budgets" else [None, *totals]
    ct = (spaces.retrain if key == "random_budgets" else spaces.search).cost_table
    for b, p in zip(want, problems):
        searcher = get_searcher("random").create(p)
        for _ in range(20):
            total = ct.total(searcher.ask()[0].tolist(), "params")
            assert b is None or 0.9 * b <= total <= b, (b, total)


def test_the_recipe_key_validates():
    assert load_recipe(QUICK).search.random_band is None
    assert load_recipe(QUICK, ["search.method=random", "search.random_band=0.9"]).search.random_band == 0.9
    for bad, msg in (("0", "must be > 0 (got 0)"), ("1.5", "must be <= 1 (got 1.5)"), ("high", "number")):
        with pytest.raises(RecipeError, match=r"search\.random_band: .*" + msg.replace("(", r"\(").replace(")", r"\)")):
            load_recipe(QUICK, ["search.method=random", f"search.random_band={bad}"])


def test_a_band_above_the_largest_network_is_refused_at_start_up():
    """The digits space's largest network has 178,170 parameters; the limits the message suggests pass."""
    with pytest.raises(UserError, match=r"search\.random_band: 0\.9 .*search\.random_budgets\[1\].*"
                                        r"lower search\.random_band to at most 0\.4454, or the budget to at most "
                                        r"197,900$"):
        _pipeline(RANDOM + ["search.random_budgets=[100000,400000]", "search.random_band=0.9"])
    _pipeline(RANDOM + ["search.random_budgets=[100000,400000]", "search.random_band=0.4454"])
    _pipeline(RANDOM + ["search.random_budgets=[100000,197900]", "search.random_band=0.9"])


def test_a_random_budget_below_the_smallest_network_is_a_user_error():
    below = r"search\.random_budgets\[0\]: override search\.random_budgets=\[1000\]: 1k is below the smallest"
    with pytest.raises(UserError, match=below):
        _pipeline(RANDOM + ["search.random_budgets=[1000]"])


def test_an_impossible_band_is_a_user_error_through_the_run(tmp_path, capsys):
    code = main(["run", QUICK, *RANDOM, *TINY_RUN, "search.random_budgets=[400000]", "search.random_band=0.9",
                 "--out", str(tmp_path / "above")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "search.random_band" in err and "search.random_budgets[0]" in err and "400k" in err, err
    # inside the space's range, but its networks jump from 13,554 to 15,066: none in [14,250, 15,000]
    code = main(["run", QUICK, *RANDOM, *TINY_RUN, "search.random_budgets=[15000]", "search.random_band=0.95",
                 "--out", str(tmp_path / "empty")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "search.random_band" in err and "search.random_budgets[0]" in err and "15k" in err, err
    assert "lower search.random_band" in err, err
