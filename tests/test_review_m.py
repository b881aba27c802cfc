"""Review M of the random baseline (RandomSearch) and its registry entry: budgets compared with the engine's
rounding slack, exact cheapest/dearest costs with elastic depth's gates, states of differently configured
searchers refused, an infinite budget with a band, and a budget the draws cannot meet as a user error (each
test failed before its fix)."""

import itertools
import math

import pytest
import torch

from automl.errors import UserError
from automl.search import ContextCosts, MultiEpsilonSearch, RandomSearch, get_searcher
from automl.search._registry import SearchProblem


def _all(num_choices):
    return torch.tensor(list(itertools.product(*(range(k) for k in num_choices))))


# ---- 1. the budget's rounding slack -----------------------------------------------------------------------

def test_a_budget_equal_to_the_cheapest_cost_up_to_rounding_is_met_as_in_the_engine():
    """0.1 + 0.2 = 0.30000000000000004 > 0.3: the engine takes budget 0.3 (a relative slack of 1e-9); the
    random baseline refused it as below the cheapest architecture, and its draws compared exactly too."""
    costs = torch.tensor([[0.1, 0.7, 0.9], [0.2, 0.8, 0.6]], dtype=torch.float64)
    MultiEpsilonSearch([3, 3], costs=costs, budgets=[0.3], lam=2)          # the engine accepts it
    arch = RandomSearch([3, 3], costs=costs, budget=0.3, lam=5, seed=0).ask()
    assert arch.tolist() == [[0, 0]] * 5                                   # the one architecture within it
    with pytest.raises(ValueError, match="below the cheapest"):           # the slack is rounding only
        RandomSearch([3, 3], costs=costs, budget=0.3 - 1e-6)


def test_the_slack_is_relative_to_the_whole_network_with_a_fixed_part():
    """With ``fixed`` the table's budget is a part of the network's (total less fixed): it keeps the total's
    slack, as the engine's knapsack does (``slack_of``): fixed + R = 1e6 + 0.30000000000000004 fits 1e6 + 0.3."""
    costs = torch.tensor([[0.1, 0.7], [0.2, 0.8]], dtype=torch.float64)
    fixed = 1e6
    budget = (fixed + 0.3) - fixed                                        # what the pipeline passes
    arch = RandomSearch([2, 2], costs=costs, budget=budget, fixed=fixed, lam=3, seed=0).ask()
    assert arch.tolist() == [[0, 0]] * 3
    arch = RandomSearch([2, 2], costs=costs, budget=0.3 - 1e-5, fixed=fixed, lam=3, seed=0).ask()
    assert arch.tolist() == [[0, 0]] * 3                                  # within 1e-9 x 1e6 of the total


# ---- 2. elastic depth's gates in the reachability checks ---------------------------------------------------

GATED_COSTS = torch.tensor([[5.0, 0.0, 0.5], [1.0, 2.0, 0.0], [0.5, 1.5, 0.0]], dtype=torch.float64)
GATED_CHOICES = [3, 2, 2]
GATES = {1: (0, [False, True, True]), 2: (0, [False, False, True])}     # decision 0: depth 1, 2 or 3 layers


def _gated_totals(arch):
    total = GATED_COSTS[0, arch[:, 0]].clone()
    for d, (g, on) in GATES.items():
        total += GATED_COSTS[d, arch[:, d]] * torch.tensor(on)[arch[:, g]]
    return total


def test_a_budget_only_the_shallow_networks_meet_is_accepted_with_gates():
    """Depth 1 costs 5 (both gated layers left out), depth 2 at least 0 + 1 = 1, depth 3 at least 0.5 + 1 + 0.5;
    the check used the table as if every layer were there (0 + 1 + 0.5 = 1.5), so a budget of 1.2, which
    depth 2 meets, was refused as below the cheapest architecture."""
    every = _all(GATED_CHOICES)
    exact_low = float(_gated_totals(every).min())
    additive_low = sum(float(GATED_COSTS[d, :k].min()) for d, k in enumerate(GATED_CHOICES))  # 1.5
    assert exact_low < 1.2 < additive_low                                 # the test can fail
    arch = RandomSearch(GATED_CHOICES, GATED_COSTS, budget=1.2, gates=GATES, lam=20, seed=0).ask()
    assert (_gated_totals(arch) <= 1.2).all()
    with pytest.raises(ValueError, match="below the cheapest"):
        RandomSearch(GATED_CHOICES, GATED_COSTS, budget=exact_low - 0.01, gates=GATES)


def test_a_band_above_the_dearest_gated_network_is_refused_at_once():
    """The table's dearest (5 + 2 + 1.5 = 8.5) counts layers depth 1 leaves out; the dearest network costs 5
    (depth 1; depth 3 at most 0.5 + 2 + 1.5 = 4): a band of [7.2, 8] was accepted and failed only after
    max_tries batches of draws."""
    every = _all(GATED_CHOICES)
    exact_high = float(_gated_totals(every).max())
    additive_high = sum(float(GATED_COSTS[d, :k].max()) for d, k in enumerate(GATED_CHOICES))  # 8.5
    assert exact_high < 0.9 * 8.0 < additive_high
    with pytest.raises(ValueError, match="most expensive"):
        RandomSearch(GATED_CHOICES, GATED_COSTS, budget=8.0, band=0.9, gates=GATES)
    arch = RandomSearch(GATED_CHOICES, GATED_COSTS, budget=5.0, band=0.95, gates=GATES, lam=4, seed=0).ask()
    assert (_gated_totals(arch) >= 0.95 * 5.0 - 1e-12).all()             # the band that is there is drawn


def test_gated_extremes_with_a_context_cost_model_are_exact():
    """Elastic width (a context) and depth together: the cheapest network over every combination, gated."""
    mask = torch.ones(3, 3, dtype=torch.bool)
    mask[1, 2] = mask[2, 2] = False
    tables = torch.zeros(3, 3, 3, dtype=torch.float64)
    for a in range(3):   # combination a: decision 0 (depth) chooses a; decisions 1, 2 cost more when deeper
        tables[a, 1, :2] = torch.tensor([1.0, 2.0]) * (a + 1)
        tables[a, 2, :2] = torch.tensor([0.5, 1.5]) * (a + 1)
    ctx = ContextCosts([0], tables, torch.tensor([9.0, 0.0, 0.5], dtype=torch.float64), mask)
    gates = {1: (0, [False, True, True]), 2: (0, [False, False, True])}
    every = _all([3, 2, 2])
    on = torch.tensor([[False, True, True], [False, False, True]])
    chosen = tables[every[:, 0]].gather(2, every.unsqueeze(-1)).squeeze(-1)  # (S, D)
    exact = ctx.fixed[every[:, 0]] + chosen[:, 1] * on[0][every[:, 0]] + chosen[:, 2] * on[1][every[:, 0]]
    low, high = float(exact.min()), float(exact.max())                   # 2.0 (depth 2), 11.0 (depth 3)
    assert low < ctx.extremes()[0] and high < ctx.extremes()[1]          # the additive ones are looser
    arch = RandomSearch([3, 2, 2], ctx, budget=low, gates=gates, lam=3, seed=0).ask()
    assert arch[:, :2].tolist() == [[1, 0]] * 3                          # decision 2's layer is not there
    with pytest.raises(ValueError, match="below the cheapest"):
        RandomSearch([3, 2, 2], ctx, budget=low - 0.1, gates=gates)
    with pytest.raises(ValueError, match="most expensive"):
        RandomSearch([3, 2, 2], ctx, budget=high + 1.0, band=high / (high + 1.0) + 0.01, gates=gates)


# ---- 3. states of a differently configured searcher ---------------------------------------------------------

def _searcher(**kw):
    return RandomSearch([3, 3], costs=[[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]], budget=3.0, seed=0, lam=2, **kw)


@pytest.mark.parametrize("other", [dict(batch=64), dict(max_tries=5), dict(gates={1: (0, [False, True, True])})])
def test_a_state_of_a_searcher_with_other_draw_settings_is_refused(other):
    """batch and max_tries decide which draws ``ask`` takes, gates which fit: resuming with others silently
    continued with another stream (or other budgets' meaning)."""
    saved = _searcher()
    saved.ask()
    key = next(iter(other))
    with pytest.raises(ValueError, match=key):
        _searcher(**other).load_state_dict(saved.state_dict())
    with pytest.raises(ValueError, match=key):
        _searcher().load_state_dict(_searcher(**other).state_dict())
    same = _searcher(**other)
    same.load_state_dict(_searcher(**other).state_dict())                # the same settings load


def test_a_state_saved_before_the_draw_settings_were_kept_still_loads():
    saved = _searcher()
    saved.ask()
    state = saved.state_dict()
    for key in ("batch", "max_tries", "gates"):
        state.pop(key, None)
    again = _searcher()
    again.load_state_dict(state)
    assert torch.equal(again.ask(), saved.ask()) and torch.equal(again.best(), saved.best())


# ---- 4. an infinite budget -----------------------------------------------------------------------------------

def test_an_infinite_budget_is_unconstrained_and_a_band_of_it_is_refused_clearly():
    """budget=inf: every architecture fits. With a band its floor was inf - inf = NaN: accepted, it drew
    max_tries batches and failed with "cost nan to inf"."""
    costs = [[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]
    arch = RandomSearch([3, 3], costs=costs, budget=math.inf, lam=400, seed=0).ask()
    assert len({tuple(a) for a in arch.tolist()}) == 9
    with pytest.raises(ValueError, match="finite budget"):
        RandomSearch([3, 3], costs=costs, budget=[2.0, math.inf], band=0.9)
    with pytest.raises(ValueError, match="fixed"):
        RandomSearch([3, 3], costs=costs, budget=2.0, band=0.9, fixed=math.nan)


# ---- the registry: a budget the draws cannot meet -------------------------------------------------------------

def test_a_budget_at_the_smallest_network_of_a_large_space_is_a_user_error_not_a_crash():
    """A budget equal to the smallest network passes the run's start-up checks; without a band the searcher's
    draws (100 x 1024 of 4^12 architectures, one within it) found none and ``automl run`` ended in a traceback
    (exit 1, "raise max_tries", which no recipe key sets). Now it is a UserError (exit 2) naming the budget."""
    costs = torch.tensor([[1.0, 2.0, 3.0, 4.0]] * 12, dtype=torch.float64)
    problem = SearchProblem([4] * 12, costs, [0], None, [12.0], 1, 0, options={"cost_fixed": 100.0})
    with pytest.raises(UserError, match=r"112.*raise the budget"):
        get_searcher("random").create(problem)
    easy = SearchProblem([4] * 12, costs, [0], None, [40.0], 1, 0, options={"cost_fixed": 100.0})
    plain = RandomSearch([4] * 12, costs, budget=40.0, seed=0)
    assert torch.equal(get_searcher("random").create(easy).best(), plain.best())  # the same draw as before


# ---- smaller: the arguments' types ----------------------------------------------------------------------------

def test_numpy_and_tensor_scalars_are_numbers_for_budget_and_band():
    """A 0-d numpy budget was a TypeError ("iteration over a 0-d array"); a numpy or tensor band was refused
    as not in (0, 1] although it was 0.5."""
    np = pytest.importorskip("numpy")
    costs = [[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]
    assert RandomSearch([3, 3], costs=costs, budget=np.array(2.0)).budgets == [2.0]
    for band in (np.float32(0.5), torch.tensor(0.5)):
        assert RandomSearch([3, 3], costs=costs, budget=2.0, band=band).band == 0.5


@pytest.mark.parametrize("bad", [dict(batch="5"), dict(max_tries=2.7), dict(batch=True), dict(max_tries=0)])
def test_max_tries_and_batch_must_be_positive_integers(bad):
    """A string was a TypeError from a comparison, 2.7 tries silently 2, batch=True a batch of 1."""
    with pytest.raises(ValueError, match="max_tries and batch must be integers >= 1"):
        RandomSearch([3, 3], costs=[[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]], budget=2.0, **bad)


def test_tell_keeps_no_autograd_graph_of_the_losses():
    """Losses straight from a forward pass (requiring grad): the engine detaches them; RandomSearch kept each
    tell's graph in its best loss, chained through every later tell, and in its state dict."""
    s = RandomSearch([3, 3], lam=2, seed=0)
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    for step in range(3):
        s.tell(s.ask(), w * (3 - step))
    assert not s.state_dict()["best_loss"].requires_grad
    assert s.state_dict()["best_loss"].tolist() == [1.0]


# ---- the run's start-up check and the cost table's dtype --------------------------------------------------------

def test_a_run_takes_a_random_budget_only_shallow_networks_meet():
    """On ofa_mbv3 (elastic depth) the smallest network has 3,412,072 parameters; the run refused random budgets
    below the additive bound of 4,373,208 (every layer counted) with that wrong number as "the smallest". Now it
    takes 3.9M and draws a network within it, and still refuses 3.4M with the exact smallest size."""
    from test_random_band import _pipeline  # the run's own start-up path on the quickstart recipe
    _, spaces, problems = _pipeline(["space=spaces/ofa_mbv3.space", "search.random_budgets=[3900000]",
                                     "search.epsilons=[0.0]"])
    ct = spaces.retrain.cost_table
    assert ct.min_total("params") < 3_900_000 < engine_costs_min(spaces)
    arch = get_searcher("random").create(problems[0]).best()[0]
    assert ct.total(arch.tolist(), "params") <= 3_900_000
    with pytest.raises(UserError, match=r"below the smallest.*3,412,072|below the smallest.*3\.41"):
        _pipeline(["space=spaces/ofa_mbv3.space", "search.random_budgets=[3400000]", "search.epsilons=[0.0]"])


def engine_costs_min(spaces) -> float:
    """The additive bound the run used: every layer of elastic depth counted."""
    from automl.pipeline.setup import engine_costs
    return engine_costs(spaces.retrain, "params", normalize=False).cheapest()


def test_a_list_of_decimal_costs_is_taken_in_float64():
    """A Python list went through float32 first (0.1 -> 0.10000000149): the engine then refused a budget of
    0.3 as below the cheapest 0.3000000045, though the same float64 tensor is accepted."""
    costs = [[0.1, 0.7, 0.9], [0.2, 0.8, 0.6]]
    assert RandomSearch([3, 3], costs=costs).costs[0, 0].item() == 0.1
    MultiEpsilonSearch([3, 3], costs=costs, budgets=[0.3], lam=2)


def test_a_budget_the_draws_cannot_meet_names_its_recipe_key():
    """The quickstart's smallest network (13,554 parameters) as a random budget: the one network within it is
    not among the draws, and the message names the recipe key and item that asked for it."""
    from test_random_band import _pipeline
    _, spaces, problems = _pipeline(["seed=3", "search.random_budgets=[40k,13554]"])  # seed 3: member 1 misses it
    assert spaces.retrain.cost_table.min_total("params") == 13_554
    get_searcher("random").create(problems[0])                             # 40k: drawn at once
    with pytest.raises(UserError, match=r"search\.random_budgets\[1\]: the random baseline's budget of 13,554"):
        get_searcher("random").create(problems[1])


def test_numpy_numbers_are_numbers_for_the_engines_arguments():
    """lam=np.int64(8) was "lam must be an integer >= 2, got np.int64(8)"; an np.float32 lr or budget was refused
    (np.float64 passed, being a float). NumPy's bools stay refused as bools are."""
    np = pytest.importorskip("numpy")
    costs = torch.tensor([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    s = MultiEpsilonSearch([3, 3], costs=costs, lam=np.int64(4), lr=np.float32(0.1), budgets=[np.float32(2.0)])
    assert s.lam == 4 and type(s.lam) is int and s.budgets == [2.0] and s.lr == pytest.approx(0.1)
    assert RandomSearch([3, 3], lam=np.int32(3)).ask().shape == (3, 2)
    with pytest.raises(ValueError, match="lam must be an integer"):
        RandomSearch([3, 3], lam=np.float64(3.0))
