"""Review QE: the random baseline's members draw from seeds that no other (run seed, member) pair shares.

Member j of a ``search.method: random`` run drew from seed ``seed + j``: run seed 0's member 1 drew exactly what
run seed 1's member 0 drew (the same architecture without a budget, the same draw stream with one), so random
baselines averaged over seeds 0, 1, 2 compared overlapping draws. Member j now draws from
``member_seed(seed, j) = seed + j * (2**24 + 1)`` (automl/search/_random.py): torch's generator reads a seed's low
32 bits only, and the stride keeps those apart for run seeds less than 2**24 - 256 apart and members 0 to 255, and
within a run for any number of members. Member 0
still draws from the run's seed (a one-member random run draws as before).

A random run that is stopped and resumed does not draw again: its architectures are in the checkpoint written
after the random stage (tests/test_review_mg.py), so a run started before this change keeps its members.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import automl.search._registry
from automl.errors import Stopped
from automl.pipeline import Run
from automl.pipeline.members import Members
from automl.pipeline.plan import search_problem
from automl.pipeline.setup import engine_costs, load_spaces
from automl.recipe import SEED_LIMIT, load_recipe
from automl.search import RandomSearch, get_searcher
from automl.search._random import MEMBER_STRIDE, member_seed
from test_review_mg import RANDOM, TINY, _archs, _signal_at  # a tiny random run, and a SIGINT in its retraining

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
UNBUDGETED = ["search.epsilons=[0.0,0.5,1.0]"]                                   # N = 3, no budget
BUDGETED = ["search.random_budgets=[100000,60000,100000]", "search.random_band=0.9"]  # N = 3, member 2 = member 0's

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _searchers(seed: int, members: list[str]) -> list[RandomSearch]:
    """The random baseline's searchers of a run of ``seed``, one per member, built as automl.pipeline.plan builds
    them (search_problem per member, then the registry's factory)."""
    recipe = load_recipe(QUICK, ["search.method=random", "device=cpu", "threads=1", f"seed={seed}", *members])
    spaces = load_spaces(recipe)
    group = Members.of(recipe.search, sampled=True)
    costs = engine_costs(spaces.search, recipe.search.cost, True)
    method = get_searcher(recipe.search.method)
    assert method.mode == "sample"
    return [method.create(search_problem(recipe, group, [i], spaces, costs, torch.device("cpu")))
            for i in range(group.n)]


def _draws(searcher: RandomSearch, asks: int = 4) -> tuple:
    """The member's architecture (best()) and its next ``asks`` draws: its draw stream."""
    first = searcher.best()
    return (tuple(first.flatten().tolist()),) + tuple(tuple(searcher.ask().flatten().tolist()) for _ in range(asks))


@pytest.mark.parametrize("members", [UNBUDGETED, BUDGETED], ids=["unbudgeted", "budgeted"])
def test_runs_of_seeds_0_and_1_share_no_members_draws(members):
    streams = {(seed, j): _draws(s) for seed in (0, 1, 2) for j, s in enumerate(_searchers(seed, members))}
    assert len(streams) == 9
    # before: (0, 1), (1, 0) drew alike, and (0, 2), (1, 1), (2, 0)
    shared = [(a, b) for a in streams for b in streams if a < b and streams[a] == streams[b]]
    assert not shared, shared
    if members is UNBUDGETED:  # nor do two members share an architecture (4^12-odd of them: no chance match)
        archs = [d[0] for d in streams.values()]
        assert len(set(archs)) == len(archs)


@pytest.mark.parametrize("members", [UNBUDGETED, BUDGETED], ids=["unbudgeted", "budgeted"])
def test_the_same_seed_draws_the_same_members_again(members):
    for seed in (0, 7):
        first = [_draws(s) for s in _searchers(seed, members)]
        again = [_draws(s) for s in _searchers(seed, members)]
        assert first == again


def test_member_0_draws_from_the_runs_seed_as_before():
    """A one-member random run's architecture is what it was: member 0's seed is the run's."""
    for seed in (0, 3, -5):
        ours = _searchers(seed, ["search.epsilons=[0.0]"])[0]
        assert torch.equal(ours.best(), RandomSearch(ours.num_choices, seed=seed).best())


def _stream(seed: int) -> tuple:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randint(0, 2 ** 31 - 1, (4,), generator=g).tolist())


def test_member_seeds_are_distinct_where_the_generator_reads_them():
    """torch reads a seed's low 32 bits: the member seeds differ there for nearby run seeds and 256 members, and
    stay in the generator's range at the recipe's extremes and at the generator's own."""
    g0 = torch.Generator().manual_seed(0)
    assert _stream(2 ** 32) == _stream(0) and g0.initial_seed() == 0  # why the low 32 bits are what counts
    seen: dict[int, tuple[int, int]] = {}
    for seed in [*range(-40, 41), 2 ** 24 - 297]:  # within 2**24 - 256 of each other
        for j in range(256):
            low = member_seed(seed, j) % 2 ** 32
            assert low not in seen, (seed, j, seen[low])
            seen[low] = (seed, j)
    gen = torch.Generator().manual_seed(1)
    for _ in range(200):  # two runs' seeds anywhere in the recipe's range, less than 2**24 - 256 apart
        seed = int(torch.randint(-SEED_LIMIT, SEED_LIMIT, (), generator=gen))
        other = seed + int(torch.randint(1, 2 ** 24 - 256, (), generator=gen))
        lows = {member_seed(s, j) % 2 ** 32 for s in (seed, other) for j in range(256)}
        assert len(lows) == 512, (seed, other)
    # the pair that drew alike before draws apart now, in torch's own streams
    assert _stream(member_seed(0, 1)) != _stream(member_seed(1, 0))
    for seed in (SEED_LIMIT, -SEED_LIMIT, 2 ** 64 - 1, -(2 ** 63)):
        for j in (0, 1, 255, 10 ** 6):
            value = member_seed(seed, j)
            assert -(2 ** 63) <= value <= 2 ** 64 - 1
            assert (value - seed - j * MEMBER_STRIDE) % 2 ** 32 == 0  # the same draws as seed + j * stride
            torch.Generator().manual_seed(value)
    assert member_seed(-5, 0) == -5 and member_seed(SEED_LIMIT, 0) == SEED_LIMIT
    for bad in (-1, 1.5, "1", None):
        with pytest.raises(ValueError, match="member must be an integer"):
            member_seed(0, bad)


# ---- resume: a run started with the earlier seeding keeps its members ------------------------------------------

def _old_seeding(monkeypatch) -> None:
    """The registry's member seeds as before this change (seed + j)."""
    monkeypatch.setattr(automl.search._registry, "member_seed", lambda seed, j: seed + j)


def _run(out: Path, resume: bool = False) -> dict:
    recipe = load_recipe(QUICK, [*RANDOM, *TINY, "retrain.epochs=2", "search.epsilons=[0.0,1.0]"])
    return Run(recipe, out, resume=resume, tty=False).execute()


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_a_run_stopped_before_the_change_resumes_with_its_own_members(tmp_path, monkeypatch):
    """The random stage records the members' architectures in its checkpoint and a resume does not draw again,
    so a run that drew with seed + j and is resumed after the change keeps its members (and its results)."""
    with monkeypatch.context() as mp:
        _old_seeding(mp)
        before = _run(tmp_path / "ref")
        _signal_at(mp, 16)  # member 1's retraining (6 steps an epoch, 2 epochs a member)
        with pytest.raises(Stopped):
            _run(tmp_path / "run")
    resumed = _run(tmp_path / "run", resume=True)
    assert _archs(resumed) == _archs(before)
    space = load_spaces(load_recipe(QUICK, ["search.method=random", "device=cpu"])).search
    now = [space.decode(s.best()[0].cpu()) for s in _searchers(0, ["search.epsilons=[0.0,1.0]"])]
    drawn = [a["choices"] for a in resumed["architectures"]]
    assert drawn[0] == now[0] and drawn[1] != now[1]  # member 0's seed is the run's in both; member 1 is drawn anew


def test_no_two_members_of_one_run_share_draws_however_many():
    """Within one run the members' seeds differ in the bits torch reads for any number of members (member 256 of
    a stride of 2**24 would be member 0 again: 256 * 2**24 = 2**32)."""
    for seed in (0, 7, -3, SEED_LIMIT):
        lows = {member_seed(seed, j) % 2 ** 32 for j in range(4096)}
        assert len(lows) == 4096
