"""The engine on costs that depend on each other (elastic width): ``ContextCosts``, the exact conditional
expected costs, budgets and the knapsack per combination of widths, state, and the pipeline's piece
(``engine_costs``, budgets, the searchers built from ``automl.pipeline.plan``)."""

from __future__ import annotations

import contextlib
import io
import itertools
from pathlib import Path

import pytest
import torch

from automl.compile import load_compiled
from automl.pipeline.members import Members
from automl.pipeline.plan import search_problem
from automl.pipeline.setup import engine_costs, load_spaces
from automl.recipe import load_recipe
from automl.search import ContextCosts, MultiEpsilonSearch, RandomSearch, get_searcher, normalize_costs

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")

WIDTH_SPACE = """\
space wctx
input 3 x 32 x 32
classes 4
choices mb = ir_k3_e3, ir_k5_e6, skip
network
  stem width 8
  stage s1 width 16, 20 stride 2 depth 1, 2 choose [ir_k3_e3, ir_k5_e6]  then mb
  stage s2 width 24, 32, 40 stride 2 repeat 2 se 0.25 choose [ir_k3_e3, ir_k5_e6] then mb
  stage s3 width 48, 56 repeat 2 se 0.25 choose [ir_k3_e3, ir_k5_e6] then mb
  stage fin width 64, 96 fixed cn_k1
  head width 128
end
"""


@pytest.fixture(scope="module")
def width_space(tmp_path_factory):
    path = tmp_path_factory.mktemp("space") / "w.space"
    path.write_text(WIDTH_SPACE)
    return path


def _mask(num_choices):
    return torch.arange(max(num_choices)) < torch.tensor(num_choices).unsqueeze(1)


def _tiny(seed=0, num_choices=(2, 3, 3, 2, 3), context=(0, 3)):
    """A random context model: decisions 0 and 3 select one of 4 tables (non-additive on purpose)."""
    g = torch.Generator().manual_seed(seed)
    mask = _mask(num_choices)
    A = 1
    for c in context:
        A *= num_choices[c]
    tables = torch.rand(A, len(num_choices), max(num_choices), generator=g, dtype=torch.float64)
    fixed = torch.rand(A, generator=g, dtype=torch.float64)
    return ContextCosts(context, tables, fixed, mask), list(num_choices)


def _all_archs(num_choices):
    return torch.tensor(list(itertools.product(*(range(k) for k in num_choices))), dtype=torch.long)


def _random_theta(num_choices, n, seed):
    g = torch.Generator().manual_seed(seed)
    mask = _mask(num_choices)
    theta = torch.rand(n, *mask.shape, generator=g, dtype=torch.float64).masked_fill(~mask, 0.0)
    return theta / theta.sum(-1, keepdim=True)


def _probs(theta, archs):
    """(N, S): P_theta^(n)(M) of every architecture, by enumeration."""
    D = archs.shape[1]
    return torch.stack([theta[:, d].index_select(1, archs[:, d]) for d in range(D)]).prod(0)


def _brute_totals(model, archs):
    """R(M) straight from the definition: F[a] + sum_d T[a, d, k_d], a found by looking the choices up."""
    combos = list(itertools.product(*(range(int(model.mask[c].sum())) for c in model.context_decisions)))
    out = []
    for arch in archs.tolist():
        a = combos.index(tuple(arch[c] for c in model.context_decisions))
        out.append(float(model.fixed[a]) + sum(float(model.tables[a, d, k]) for d, k in enumerate(arch)))
    return torch.tensor(out, dtype=torch.float64)


def test_totals_expected_cost_and_conditional_costs_match_enumeration():
    model, K = _tiny()
    archs = _all_archs(K)
    R = _brute_totals(model, archs)
    assert torch.allclose(model.totals(archs), R, rtol=0, atol=1e-12)
    theta = _random_theta(K, 3, seed=1)
    P = _probs(theta, archs)                                          # (N, S)
    assert torch.allclose(P.sum(-1), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(model.expected(theta), P @ R, rtol=0, atol=1e-12)
    cond = model.conditional(theta)
    for d, k in itertools.product(range(len(K)), range(max(K))):
        if k >= K[d]:
            assert (cond[:, d, k] == 0).all()
            continue
        sel = archs[:, d] == k                                        # E[R | h_d = k] by enumeration
        want = (P[:, sel] * R[sel]).sum(-1) / P[:, sel].sum(-1)
        assert torch.allclose(cond[:, d, k], want, rtol=0, atol=1e-12), (d, k)
    # the natural gradient of E[R]: E[R (m_d - theta_d)] = (c~ - Q~) theta
    onehot = torch.nn.functional.one_hot(archs, max(K)).to(torch.float64)  # (S, D, Kmax)
    ng = torch.einsum("ns,s,sdk->ndk", P, R, onehot) - (P @ R).view(-1, 1, 1) * theta
    mine = (cond - (cond * theta).sum(-1, keepdim=True)) * theta
    assert torch.allclose(mine, ng, rtol=0, atol=1e-12)


def test_an_additive_context_gives_the_tables_natural_gradient():
    """Identical tables for every combination and a constant fixed cost: c~ - Q~ is the table's c - Q."""
    K = [2, 3, 4, 2]
    g = torch.Generator().manual_seed(3)
    c = torch.rand(4, 4, generator=g, dtype=torch.float64).masked_fill(~_mask(K), 0.0)
    c[0] = 0.0  # a context decision's own row is 0
    model = ContextCosts([0], c.expand(2, 4, 4), torch.full((2,), 0.7, dtype=torch.float64), _mask(K))
    theta = _random_theta(K, 2, seed=4)
    cond = model.conditional(theta)
    got = cond - (cond * theta).sum(-1, keepdim=True)
    want = c - (c * theta).sum(-1, keepdim=True)
    assert torch.allclose(got.masked_fill(~_mask(K), 0), want.masked_fill(~_mask(K), 0), rtol=0, atol=1e-12)


def _loss(arch):
    """A synthetic black box that prefers later (dearer) choices, so budgets bind."""
    return -(arch.double() * torch.linspace(1.0, 0.3, arch.shape[1], dtype=torch.float64)).sum(1)


def _run(engine, steps, model=None):
    """``steps`` asks and tells; with ``model`` the loss is minus the exact cost (the dearest is best)."""
    for _ in range(steps):
        arch = engine.ask()
        engine.tell(arch, _loss(arch) if model is None else -model.totals(arch))


def test_a_disguised_additive_context_steers_the_engine_as_the_table_does():
    """The context path (c~ from the tables) and the tensor path agree to rounding over 30 steps."""
    K = [3, 3, 3, 2, 3]
    g = torch.Generator().manual_seed(5)
    c = normalize_costs(torch.rand(5, 3, generator=g, dtype=torch.float64), _mask(K))
    c[1] = 0.0
    model = ContextCosts([1], c.expand(3, 5, 3), torch.zeros(3, dtype=torch.float64), _mask(K))
    plain = MultiEpsilonSearch(K, c, epsilons=[0.0, 0.5, 2.0], lam=4, seed=0)
    ctx = MultiEpsilonSearch(K, model, epsilons=[0.0, 0.5, 2.0], lam=4, seed=0)
    for _ in range(30):
        arch = plain.ask()
        assert torch.equal(arch, ctx.ask())
        plain.tell(arch, _loss(arch))
        ctx.tell(arch, _loss(arch))
    assert torch.allclose(plain.theta, ctx.theta, rtol=0, atol=1e-12)
    assert torch.equal(plain.best(), ctx.best())
    assert torch.allclose(plain.expected_cost(), ctx.expected_cost(), rtol=0, atol=1e-12)


def test_the_knapsack_per_combination_is_the_brute_force_optimum():
    model, K = _tiny(seed=7, num_choices=(3, 2, 3, 3, 2, 3), context=(1, 4))
    archs = _all_archs(K)
    R = model.totals(archs)
    for trial in range(12):
        values = torch.log(_random_theta(K, 1, seed=100 + trial)[0])
        budget = float(R.min() + (R.max() - R.min()) * (trial + 0.5) / 12)
        got = model.best_within(values, budget)
        ok = R <= budget
        value = values.gather(1, archs.t()).sum(0)
        want = float(value[ok].max())
        assert got is not None and float(model.totals(got.view(1, -1))[0]) <= budget
        assert float(values.gather(1, got.view(-1, 1)).sum()) == pytest.approx(want, abs=1e-12)
    assert model.best_within(values, float(R.min()) - 1e-3) is None


def _width_costs(width_space, normalize=True):
    cs = load_compiled(width_space)
    return cs, engine_costs(cs, "params", normalize)


def test_engine_costs_of_a_width_space_are_the_exact_totals(width_space):
    cs, ec = _width_costs(width_space)
    ct = cs.cost_table
    assert isinstance(ec.costs, ContextCosts) and ec.normalized
    assert ec.costs.context_decisions == ct.context_decisions
    T, F = ct.context("params")
    assert ec.scale == float(T.abs().max()) and ec.fixed == float(F.min())
    archs = _all_archs(cs.num_choices)
    engine_totals = ec.fixed + ec.scale * ec.costs.totals(archs)
    exact = torch.tensor([ct.total(a) for a in archs], dtype=torch.float64)
    # elastic depth: the engine counts a gated layer as if present (an upper bound), exact when it is
    (g, on) = next(iter(ct.gates.values()))
    present = torch.tensor(on)[archs[:, g]]
    assert torch.allclose(engine_totals[present], exact[present], rtol=1e-12, atol=1e-6)
    assert bool((engine_totals >= exact - 1e-6).all()) and bool((engine_totals > exact + 1).any())
    low, high = ec.costs.extremes()
    assert ec.fixed + ec.scale * low == pytest.approx(ct.min_total("params"), rel=1e-12)
    assert ec.fixed + ec.scale * high == pytest.approx(ct.max_total("params"), rel=1e-12)
    # a budget converts exactly: an architecture fits the engine's budget iff it fits the total one
    B = float(exact.median())
    (b,) = ec.budgets([B])
    assert torch.equal(ec.costs.totals(archs) <= b + 1e-12, engine_totals <= B + 1e-6)
    raw = engine_costs(cs, "params", normalize=False)
    assert raw.scale == 1.0 and torch.allclose(raw.fixed + raw.costs.totals(archs), engine_totals, rtol=1e-12)


def test_elastic_resolution_is_a_context_too_and_macs_totals_are_exact(tmp_path):
    path = tmp_path / "wr.space"
    path.write_text(WIDTH_SPACE.replace("input 3 x 32 x 32\n", "input 3 x 32 x 32\nresolution 24, 32\n"))
    cs = load_compiled(path)
    ec = engine_costs(cs, "macs", True)
    assert cs.num_decisions - 1 in ec.costs.context_decisions  # the resolution decision, declared last
    archs = _all_archs(cs.num_choices)
    (g, on) = next(iter(cs.cost_table.gates.values()))
    archs = archs[torch.tensor(on)[archs[:, g]]]                # gated layers present: exact
    exact = torch.tensor([cs.cost_table.total(a, "macs") for a in archs], dtype=torch.float64)
    assert torch.allclose(ec.fixed + ec.scale * ec.costs.totals(archs), exact, rtol=1e-12, atol=1e-6)
    small = archs[:, -1] == 0
    assert float(exact[small].max()) < float(exact[~small].max())  # the resolution changes the MACs


def test_budgeted_members_derive_architectures_within_their_exact_budgets(width_space):
    cs, ec = _width_costs(width_space)
    ct = cs.cost_table
    totals = [None, 30_000.0, 45_000.0, 70_000.0]
    engine = MultiEpsilonSearch(cs.num_choices, ec.costs, budgets=ec.budgets(totals), lam=8, seed=0)
    _run(engine, 60, ec.costs)
    best, modes = engine.best(), engine.best(within_budget=False)
    for n, (B, arch) in enumerate(zip(totals, best)):
        mode_total = ec.fixed + ec.scale * float(engine.budget_cost()[n])
        if ct.gates[3][1][int(modes[n, 1])]:  # the mode's cost is exact when its gated layer is there
            assert mode_total == pytest.approx(ct.total(modes[n]), rel=1e-12)
        if B is not None:
            assert ct.total(arch) <= B
    assert ct.total(best[0]) > 70_000  # the unconstrained member goes for the dear choices
    assert all(e > 0 for e in engine.epsilons[1:])  # and every budget binds
    # the derived member is the most probable architecture within the budget (brute force over the space)
    archs = _all_archs(cs.num_choices)
    within = ec.costs.totals(archs) <= ec.budgets([30_000.0])[0] + 1e-12
    logp = engine.theta[1].log().gather(1, archs.t()).sum(0)
    assert float(engine.theta[1].log().gather(1, best[1].view(-1, 1)).sum()) == pytest.approx(
        float(logp[within].max()), abs=1e-9)


def test_expected_cost_of_a_width_space_matches_monte_carlo(width_space):
    cs, ec = _width_costs(width_space)
    engine = MultiEpsilonSearch(cs.num_choices, ec.costs, epsilons=[0.0, 1.0], lam=4, seed=1)
    _run(engine, 20)
    archs = _all_archs(cs.num_choices)
    exact = _probs(engine.theta, archs) @ ec.costs.totals(archs)
    assert torch.allclose(engine.expected_cost(), exact, rtol=1e-12, atol=0)
    g = torch.Generator().manual_seed(0)
    for n in range(2):  # and a Monte-Carlo estimate agrees within 4 standard errors
        cum = engine.theta[n].cumsum(-1)
        u = torch.rand(20000, len(cs.num_choices), 1, generator=g, dtype=torch.float64)
        sample = torch.searchsorted(cum.expand(20000, -1, -1).contiguous(), u, right=True).squeeze(-1)
        sample = sample.minimum(torch.tensor(cs.num_choices) - 1)
        r = ec.costs.totals(sample)
        assert abs(float(r.mean()) - float(exact[n])) < 4 * float(r.std()) / 20000 ** 0.5


def _save_load(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_state_round_trip_continues_bit_identically_and_refuses_other_costs(width_space):
    cs, ec = _width_costs(width_space)
    make = lambda: MultiEpsilonSearch(cs.num_choices, ec.costs, budgets=ec.budgets([None, 40_000.0]),  # noqa: E731
                                      lam=4, seed=2)
    whole = make()
    _run(whole, 20)
    half = make()
    _run(half, 10)
    resumed = make()
    resumed.load_state_dict(_save_load(half.state_dict()))
    _run(resumed, 10)
    assert torch.equal(resumed.theta, whole.theta) and torch.equal(resumed.best(), whole.best())
    assert resumed.epsilons == whole.epsilons
    params = MultiEpsilonSearch(cs.num_choices, ec.costs, epsilons=[0.0], lam=4, seed=2)
    macs = MultiEpsilonSearch(cs.num_choices, engine_costs(cs, "macs", True).costs, epsilons=[0.0], lam=4, seed=2)
    with pytest.raises(ValueError, match="different cost table"):
        macs.load_state_dict(params.state_dict())
    additive = MultiEpsilonSearch(cs.num_choices, cs.cost_table.costs("params"), epsilons=[0.0], lam=4, seed=2)
    ctx = MultiEpsilonSearch(cs.num_choices, ec.costs, epsilons=[0.0], lam=4, seed=2)
    with pytest.raises(ValueError, match="different cost table"):   # a table's state is not a context's
        ctx.load_state_dict(additive.state_dict())
    with pytest.raises(ValueError, match="different cost table"):
        additive.load_state_dict(ctx.state_dict())


def test_random_search_within_a_budget_uses_exact_totals(width_space):
    cs, _ = _width_costs(width_space)
    raw = engine_costs(cs, "params", normalize=False)
    totals = [28_000.0, 50_000.0]
    s = RandomSearch(cs.num_choices, raw.costs, budget=raw.budgets(totals), lam=16, seed=0)
    arch = s.ask().view(2, 16, -1)
    for B, group in zip(totals, arch):
        assert all(cs.cost_table.total(a) <= B for a in group)
    assert max(cs.cost_table.total(a) for a in arch[1]) > 28_000  # the looser budget is not the tighter
    s.tell(arch.view(32, -1), torch.arange(32, dtype=torch.float64))
    again = RandomSearch(cs.num_choices, raw.costs, budget=raw.budgets(totals), lam=16, seed=0)
    again.load_state_dict(_save_load(s.state_dict()))
    assert torch.equal(again.best(), s.best()) and torch.equal(again.ask(), s.ask())
    with pytest.raises(ValueError, match="below the cheapest"):
        RandomSearch(cs.num_choices, raw.costs, budget=raw.budgets([cs.cost_table.min_total() - 1]))


@pytest.mark.parametrize("method", ["importance_sampling", "separate", "simultaneous", "random"])
def test_the_pipelines_searchers_get_the_exact_model(width_space, method):
    """engine_costs + search_problem + the registered factory, as ``automl run`` builds them (no training)."""
    budgets = [None, 30_000, 50_000]
    recipe = load_recipe(QUICK, [f"space={width_space}", "search.budgets=[null,30k,50k]", "search.lam=4",
                                 f"search.method={method}", "device=cpu"])
    spaces = load_spaces(recipe)
    costs = engine_costs(spaces.search, "params", True)
    spec = get_searcher(method)
    members = Members.of(recipe.search, sampled=spec.mode == "sample")
    groups = [list(range(members.n))] if spec.mode == "joint" else [[i] for i in range(members.n)]
    ct = spaces.search.cost_table
    for group in groups:
        problem = search_problem(recipe, members, group, spaces, costs, torch.device("cpu"))
        assert isinstance(problem.costs, ContextCosts) or budgets[group[0]] is None
        searcher = spec.create(problem)
        _run(searcher, 15, problem.costs)  # the loss prefers dear architectures: the budgets bind
        for i, arch in zip(group, searcher.best()):
            if budgets[i] is not None:
                assert ct.total(arch) <= budgets[i]
        if spec.mode != "sample":
            assert isinstance(searcher.costs, ContextCosts)
            exp = costs.fixed + costs.scale * searcher.expected_cost()
            assert bool((exp >= ct.min_total() - 1e-6).all()) and bool((exp <= ct.max_total() + 1e-6).all())


@contextlib.contextmanager
def _sync_is_an_error():
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_context_engine_matches_cpu_and_never_synchronizes(width_space):
    cs, ec = _width_costs(width_space)
    kw = dict(num_choices=cs.num_choices, costs=ec.costs, budgets=ec.budgets([None, 40_000.0]), lam=8, seed=0)
    c, g = MultiEpsilonSearch(**kw), MultiEpsilonSearch(**kw, device="cuda")
    for _ in range(3):
        ac, ag = c.ask(), g.ask()
        assert torch.equal(ac, ag.cpu())
        c.tell(ac, -ec.costs.totals(ac))
        g.tell(ag, -ec.costs.totals(ac).cuda())
    torch.testing.assert_close(c.theta, g.theta.cpu())
    torch.testing.assert_close(c.expected_cost(), g.expected_cost().cpu())
    losses = torch.rand(8, device="cuda", dtype=torch.float64)
    torch.cuda.synchronize()
    with _sync_is_an_error():  # ask + tell with a context read nothing back from the GPU
        for a in (g.ask() for _ in range(5)):
            g.tell(a, losses + a.sum(1))
    assert torch.isfinite(g.theta).all() and cs.cost_table.total(g.best()[1].cpu()) <= 40_000
