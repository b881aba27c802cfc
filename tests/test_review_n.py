"""Review N of the multi-epsilon engine: the within-budget derivation at the edge of the budget check,
budgets of a float32 engine judged on the exact (float64) costs, the elastic-width derivation at tied
values, and arguments and states that used to fail with a TypeError, KeyError or AttributeError (each
test failed before its fix)."""

import itertools
import math

import pytest
import torch

from automl.search import ContextCosts, MultiEpsilonSearch
from automl.search import _context


def _mode_on(choice, K):
    """A (D, K) init_theta whose most probable choice of every decision is ``choice[d]``."""
    theta = torch.full((len(choice), K), 0.2 / (K - 1), dtype=torch.float64)
    theta[torch.arange(len(choice)), torch.tensor(choice)] = 0.8
    return theta


def test_budget_the_constructor_accepts_always_derives():
    # The budget sits 1e-9 (relative) below the cheapest architecture: inside the constructor's rounding
    # slack, so it is accepted. best() then gave the knapsack a limit a hair below the cheapest cost, the
    # knapsack found nothing, and best() raised TypeError (None assigned into the answer).
    costs = torch.tensor([[1.33, 2.33]], dtype=torch.float64)
    budget = 1.33 - 1.33e-9
    s = MultiEpsilonSearch([2], costs, budgets=[budget], lam=2, init_theta=_mode_on([1], 2))
    assert s.best(within_budget=False).tolist() == [[1]]
    assert s.best().tolist() == [[0]]          # the only architecture within the budget (up to rounding)


def test_float32_engine_accepts_a_budget_equal_to_the_cheapest_cost():
    # float32(0.1) = 0.10000000149 > 0.1 + 1e-9: the float32 engine judged the budget on its rounded table
    # and refused a budget equal to the cheapest architecture's cost.
    costs = torch.tensor([[0.1, 1.0], [0.25, 0.5]], dtype=torch.float64)
    s = MultiEpsilonSearch([2, 2], costs, budgets=[None, 0.35], lam=4, dtype=torch.float32,
                           init_theta=_mode_on([1, 1], 2))
    assert s.best().tolist() == [[1, 1], [0, 0]]
    assert s.cost_range == (0.35, 1.5)


def test_float32_engine_derives_within_the_exact_budget():
    # float32(0.7) = 0.69999998808 <= 0.7 - 1e-8: on the float32 table the mode [1] looked within the budget
    # and was returned, although it costs 0.7, over the budget by 1.4e-8 relative (the slack is 1e-9).
    costs = torch.tensor([[0.0, 0.7]], dtype=torch.float64)
    budget = 0.7 - 1e-8
    s = MultiEpsilonSearch([2], costs, budgets=[budget], lam=2, dtype=torch.float32, init_theta=_mode_on([1], 2))
    arch = s.best()
    assert float(costs[0, arch[0, 0]]) <= budget
    assert arch.tolist() == [[0]]


def _uniform_context(C, D_free, K):
    """An elastic-width model: C two-way context decisions in front of D_free decisions of K choices."""
    num = [2] * C + [K] * D_free
    D = len(num)
    mask = torch.arange(K) < torch.tensor(num).unsqueeze(1)
    g = torch.Generator().manual_seed(0)
    A = 2 ** C
    tables = torch.rand(A, D, K, generator=g, dtype=torch.float64) * mask
    fixed = torch.rand(A, generator=g, dtype=torch.float64)
    return num, ContextCosts(list(range(C)), tables, fixed, mask)


def test_context_derivation_at_uniform_theta_does_not_try_every_width(monkeypatch):
    # At a uniform theta (search.theta_epochs: 0) every architecture is equally probable, every combination of
    # widths has the same value bound, and best_within ran the knapsack for all A of them looking for a cheaper
    # tie (A = 4,096 at the compiler's cap: about a minute per budgeted member). The answer is the cheapest
    # architecture within the budget; combinations that cannot hold a cheaper one are skipped now.
    num, model = _uniform_context(C=6, D_free=3, K=3)
    calls = []
    real = _context.best_within_budget
    monkeypatch.setattr(_context, "best_within_budget", lambda *a, **k: calls.append(1) or real(*a, **k))
    low, high = model.extremes()
    budget = low + 0.5 * (high - low)
    s = MultiEpsilonSearch(num, model, budgets=[budget], lam=4)
    arch = s.best()[0]
    everything = torch.tensor(list(itertools.product(*(range(k) for k in num))))
    totals = model.totals(everything)
    assert float(model.totals(arch.view(1, -1))[0]) == pytest.approx(float(totals.min()), abs=1e-12)
    assert len(calls) < model.num_combinations // 4, len(calls)


def test_context_derivation_matches_brute_force_with_ties():
    # Tied values over many combinations (theta uniform on some decisions, peaked on others): the derivation
    # is still the most probable architecture within the budget, the cheapest among equals.
    num, model = _uniform_context(C=3, D_free=3, K=3)
    everything = torch.tensor(list(itertools.product(*(range(k) for k in num))))
    totals = model.totals(everything)
    low, high = model.extremes()
    for seed in range(6):
        g = torch.Generator().manual_seed(seed)
        theta = torch.full((len(num), 3), 1.0, dtype=torch.float64) * model.mask
        peaked = torch.rand(len(num), generator=g) < 0.5
        theta[peaked, 0] = 4.0
        theta = theta / theta.sum(-1, keepdim=True)
        values = theta.clamp_min(1e-300).log()
        budget = low + (0.2 + 0.1 * seed) * (high - low)
        fits = totals <= budget + 1e-9 * max(budget, 1.0)
        value = values[torch.arange(len(num)), everything].sum(-1)
        best_value = value[fits].max()
        ties = fits & (value >= best_value - 1e-12)
        arch = model.best_within(values, budget)
        i = int((everything == arch).all(-1).nonzero()[0, 0])
        assert bool(ties[i])
        assert float(totals[i]) == pytest.approx(float(totals[ties].min()), abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.int64, torch.float16, torch.bfloat16, "float32"])
def test_dtype_other_than_float32_or_float64_is_a_value_error(dtype):
    # int64: TypeError from torch.finfo; float16 with budgets: RuntimeError (EPS_CAP overflows half);
    # a string: TypeError from Tensor.to.
    with pytest.raises(ValueError, match="dtype"):
        MultiEpsilonSearch([3, 3], torch.zeros(2, 3), budgets=[None, 0.0], lam=4, dtype=dtype)


@pytest.mark.parametrize("state", [None, [1, 2], "state"])
def test_load_state_dict_of_a_non_dict_is_a_value_error(state):
    s = MultiEpsilonSearch([3, 3], torch.zeros(2, 3), epsilons=[0.0], lam=4)
    with pytest.raises(ValueError, match="state"):
        s.load_state_dict(state)


def test_load_state_dict_of_a_truncated_state_names_what_is_missing():
    s = MultiEpsilonSearch([3, 3], torch.zeros(2, 3), epsilons=[0.0], lam=4)
    state = s.state_dict()
    for key in ("theta", "lam", "generator"):
        broken = {k: v for k, v in state.items() if k != key}
        with pytest.raises(ValueError, match=key):
            s.load_state_dict(broken)
    s.load_state_dict(state)  # the whole state still loads


def test_seed_that_is_not_an_integer_is_a_value_error():
    for seed in (None, "abc", 1.5):
        with pytest.raises(ValueError, match="seed"):
            MultiEpsilonSearch([3, 3], torch.zeros(2, 3), epsilons=[0.0], lam=4, seed=seed)


def test_losses_that_are_not_numbers_are_a_value_error():
    s = MultiEpsilonSearch([3, 3], torch.zeros(2, 3), epsilons=[0.0], lam=4)
    for losses in (None, "abc", [object()] * 4):
        with pytest.raises(ValueError, match="losses"):
            s.tell(s.ask(), losses)
    assert s.step == 0
    arch = s.ask()
    with pytest.warns(RuntimeWarning, match="NaN or inf"):
        s.tell(arch, [1.0, 2.0, math.inf, 0.5])   # numbers still go through, inf ranked worst
    assert s.step == 1 and s.nonfinite_losses == 1


@pytest.mark.parametrize("case, match", [
    (dict(budget=math.nan), "budget"),
    (dict(budget=None), "budget"),
    (dict(costs=torch.tensor([[0.0, math.nan], [0.0, 1.0]])), "costs"),
    (dict(values=torch.tensor([[0.0, math.nan], [0.0, 1.0]])), "values"),
    (dict(values=torch.zeros(3, 2)), "shape"),
    (dict(costs=torch.zeros(4)), "shape"),
])
def test_best_within_budget_refuses_malformed_input(case, match):
    # NaN budget, NaN values or costs gave None ("nothing fits") in silence; None and mismatched shapes
    # raised TypeError / RuntimeError / an unpacking ValueError.
    from automl.search import best_within_budget
    args = dict(values=torch.zeros(2, 2), costs=torch.tensor([[0.0, 1.0], [0.0, 1.0]]), budget=1.0)
    args.update(case)
    with pytest.raises(ValueError, match=match):
        best_within_budget(args["values"], args["costs"], args["budget"])


def test_best_within_budget_still_takes_minus_inf_values_and_masked_nan():
    from automl.search import best_within_budget
    values = torch.tensor([[-math.inf, 0.0, math.nan], [0.0, -1.0, 0.0]], dtype=torch.float64)
    costs = torch.tensor([[0.0, 1.0, math.nan], [0.0, 0.5, 9.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    assert best_within_budget(values, costs, 1.0, mask).tolist() == [1, 0]   # -inf: a choice never taken
    assert best_within_budget(values, costs, 0.5, mask) is None              # only -inf fits: nothing


@pytest.mark.parametrize("kw, match", [
    (dict(budget_lr=None), "budget_lr"),          # TypeError from float(None) (unused with epsilons, still checked)
    (dict(budget_lr="x"), "budget_lr"),           # "could not convert string to float"
    (dict(importance_sampling="no"), "importance_sampling"),   # bool("no") is True: Method 2 asked, IS run
    (dict(sync_free="yes"), "sync_free"),
])
def test_flags_and_budget_lr_are_checked_with_epsilons(kw, match):
    with pytest.raises(ValueError, match=match):
        MultiEpsilonSearch([3, 3], torch.zeros(2, 3), epsilons=[0.0], lam=4, **kw)


def test_numpy_flags_and_seed_still_go_through():
    np = pytest.importorskip("numpy")
    s = MultiEpsilonSearch([3, 3], torch.zeros(2, 3), epsilons=[0.0, 0.5], lam=4, seed=np.int64(3),
                           importance_sampling=np.bool_(False), sync_free=False)
    assert s.seed == 3 and s.rows_per_ask == 8 and not s.sync_free


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_budgets_with_a_context_on_cuda_follow_the_cpu(dtype):
    # Elastic-width costs with budgets on the GPU: theta and the adapted epsilons follow the CPU engine told
    # the same samples, best() derives the same members within their budgets, a GPU state loads on the CPU,
    # and ask + tell read nothing back.
    num, model = _uniform_context(C=2, D_free=4, K=3)
    low, high = model.extremes()
    budgets = [None, low + 0.4 * (high - low), low + 0.1 * (high - low)]
    kw = dict(budgets=budgets, lam=8, dtype=dtype, utility="weighted_quantile", seed=3)
    cpu, gpu = MultiEpsilonSearch(num, model, **kw), MultiEpsilonSearch(num, model, **kw, device="cuda")
    assert gpu.sync_free
    g = torch.Generator().manual_seed(0)
    gpu.tell(gpu.ask(), torch.zeros(8, device="cuda"))      # warm-up: lazy CUDA initialisation may sync
    cpu.tell(gpu._last_ask.cpu(), torch.zeros(8))
    torch.cuda.synchronize()
    for _ in range(40):
        arch = cpu.ask()
        gpu.ask()                                           # keeps the two RNGs in step
        losses = 0.1 * torch.randn(8, generator=g, dtype=torch.float64) - (arch[:, 2:] == 2).sum(1)
        cpu.tell(arch, losses)
        gpu.tell(arch.cuda(), losses.cuda())                # not ask()'s rows: range-checked on the device
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(gpu.theta.cpu(), cpu.theta, atol=tol, rtol=0)
    assert gpu.epsilons == pytest.approx(cpu.epsilons, abs=1e3 * tol)
    best = gpu.best()
    assert best.device.type == "cuda" and torch.equal(best.cpu(), cpu.best())
    totals = model.totals(best.cpu())
    for b, total in zip(budgets[1:], totals[1:].tolist()):
        assert total <= b + 1e-9 * max(b, 1.0)
    again = MultiEpsilonSearch(num, model, **kw)
    again.load_state_dict(gpu.state_dict())
    assert torch.equal(again.theta, gpu.theta.cpu()) and torch.equal(again.best(), best.cpu())
    losses = torch.rand(8, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(5):                                  # its own rows: nothing read back
            arch = gpu.ask()
            gpu.tell(arch, losses + arch.sum(1))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert bool(torch.isfinite(gpu.theta).all())
