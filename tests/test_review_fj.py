"""Review fj: the public search API's inputs. ContextCosts.combination checks its rows as totals does (an
out-of-range choice silently named another combination), ContextCosts.to takes a device or a dtype by position
and a dtype by name (was torch's TypeError; an integer dtype cut the costs silently), RandomSearch's budget
messages show the number given (-10**400, not -inf), and normalize_costs / normalize_context refuse an empty
table and ignore the entries the model ignores (docs/search-engine.md, "API")."""

import math

import numpy as np
import pytest
import torch

from automl.search import (ContextCosts, MultiEpsilonSearch, RandomSearch, cost_scale, normalize_context,
                           normalize_costs)

KS = [3, 3, 2, 4]          # decisions 0 and 1 are the context: combination a = 3 k_0 + k_1
MASK = torch.arange(4) < torch.tensor(KS).unsqueeze(1)
TABLE = torch.tensor([[0.0, 1.0, 2.0]] * 2, dtype=torch.float64)
BIG = 10 ** 400


def _model():
    g = torch.Generator().manual_seed(0)
    tables = torch.rand(9, 4, 4, generator=g, dtype=torch.float64)
    fixed = torch.rand(9, generator=g, dtype=torch.float64)
    return ContextCosts([0, 1], tables, fixed, MASK), tables, fixed


# ------------------------------------------------------------------------------------ ContextCosts.combination

def test_combination_is_row_major_over_the_context():
    model, _, _ = _model()
    rows = [[k0, k1, 0, 0] for k0 in range(3) for k1 in range(3)]
    assert model.combination(torch.tensor(rows)).tolist() == [3 * k0 + k1 for k0, k1, _, _ in rows]
    assert model.combination(np.array(rows)).tolist() == list(range(9))   # any integer table, as totals takes


@pytest.mark.parametrize("row, decision, allowed", [
    ([0, 3, 0, 0], 1, "0..2"),    # was combination 3: the one of [1, 0, ...]
    ([-1, 2, 0, 0], 0, "0..2"),   # was combination -1: read from the end
    ([0, 0, 0, 4], 3, "0..3"),    # not a context decision, but no choice of the space either
])
def test_combination_names_a_choice_outside_its_decision(row, decision, allowed):
    model, _, _ = _model()
    with pytest.raises(ValueError, match=rf"arch row 1 has choice {row[decision]} for decision {decision}, which has "
                                         rf"choices {allowed}"):
        model.combination(torch.tensor([[0, 0, 0, 0], row]))


@pytest.mark.parametrize("arch, match", [
    (torch.tensor([0, 1, 1, 1]), r"got shape \(4,\); for one architecture pass arch.view\(1, -1\)"),  # IndexError
    (torch.tensor([[0, 1]]), r"\(S, D\) = \(S, 4\).*got shape \(1, 2\)"),                  # was a RuntimeError
    (torch.tensor([[0.5, 1.0, 0.0, 0.0]]), r"integer choice indices .* got dtype torch.float32"),  # was a float a
    ("01", r"arch must be an \(S, D\) tensor of choice indices, got str"),
])
def test_combination_names_an_arch_that_is_not_a_table_of_choices(arch, match):
    model, _, _ = _model()
    with pytest.raises(ValueError, match=match):
        model.combination(arch)


def test_the_searchers_draw_without_the_public_check(monkeypatch):
    """The engine and the random baseline cost their own rows unchecked (the check is for the caller's rows)."""
    model, _, _ = _model()

    def refuse(self, arch):
        raise AssertionError("a searcher called the checked path")

    monkeypatch.setattr(ContextCosts, "_checked_arch", refuse)
    s = MultiEpsilonSearch(KS, model, budgets=[None, 1.0], lam=4, seed=0)
    for _ in range(3):
        arch = s.ask()
        s.tell(arch, torch.rand(arch.shape[0], dtype=torch.float64))
    s.best(), s.budget_cost()
    r = RandomSearch(KS, model, budget=1.2, lam=8, seed=0, gates={3: (2, [True, False])})
    r.tell(r.ask(), torch.rand(8, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------- ContextCosts.to

@pytest.mark.parametrize("args, kwargs", [
    (("float32",), {}), (("torch.float32",), {}), ((torch.float32,), {}), (("cpu", "float32"), {}),
    (("cpu", torch.float32), {}), ((torch.float32, torch.device("cpu")), {}), ((), {"dtype": "float32"}),
    ((), {"dtype": torch.float32, "device": "cpu"}), (("float",), {}),
])
def test_to_takes_a_dtype_by_name_and_a_device_or_dtype_by_position(args, kwargs):
    model, _, _ = _model()
    out = model.to(*args, **kwargs)
    assert out.dtype == torch.float32 and out.device == torch.device("cpu")
    arch = torch.tensor([[2, 1, 1, 3], [0, 0, 0, 0]])
    assert torch.equal(out.totals(arch), model.to(dtype=torch.float32).totals(arch))


@pytest.mark.parametrize("args", [("cpu",), (torch.device("cpu"),), ()])
def test_to_a_device_alone_keeps_the_dtype(args):
    model, _, _ = _model()
    out = model.to(*args)
    assert out.dtype == torch.float64 and out.device == torch.device("cpu")
    assert torch.equal(out.tables, model.tables) and torch.equal(out.fixed, model.fixed)


@pytest.mark.parametrize("args, kwargs, match", [
    ((torch.long,), {}, r"dtype torch.int64 is not a floating dtype"),       # was tables cut to integers, silently
    (("int32",), {}, r"dtype 'int32' is not a floating dtype"),
    ((), {"dtype": "cpu"}, r"dtype 'cpu' is not a floating dtype"),
    (("float33",), {}, r"device must be a torch.device .* got 'float33'"),    # a typo: named with both forms
    (("gpu",), {}, r"got 'gpu'"),
    ((torch.float32, torch.float64), {}, r"dtype given twice, torch.float32 and torch.float64"),
    (("cpu", "float32", "cpu"), {}, r"got 3 arguments"),
    ((np.float32,), {}, r"device must be a torch.device"),
])
def test_to_refuses_what_is_neither_a_floating_dtype_nor_a_device(args, kwargs, match):
    model, _, _ = _model()
    with pytest.raises(ValueError, match=r"ContextCosts.to takes a floating dtype .* and/or a device") as e:
        model.to(*args, **kwargs)
    assert e.match(match)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where there is no CUDA")
def test_to_cuda_without_cuda_says_so():
    model, _, _ = _model()
    with pytest.raises(ValueError, match=r"device cuda:0: CUDA is not available on this machine"):
        model.to("cuda:0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_totals_and_combination_check_rows_on_a_device_too():
    """On a device the range check was skipped: a choice past K silently read another combination."""
    model, _, _ = _model()
    gpu = model.to("cuda:0")
    arch = torch.tensor([[0, 0, 0, 0], [0, 3, 0, 0]], device="cuda:0")
    for method in (gpu.totals, gpu.combination, model.totals):            # a CPU model takes device rows too
        with pytest.raises(ValueError, match=r"arch row 1 has choice 3 for decision 1, which has choices 0..2"):
            method(arch)
    good = torch.tensor([[2, 1, 1, 3], [0, 0, 0, 0]])
    assert torch.allclose(gpu.totals(good.cuda()).cpu(), model.totals(good))
    assert torch.equal(model.totals(good.cuda()), model.totals(good))


# --------------------------------------------------------------------------------------------- RandomSearch budget

@pytest.mark.parametrize("budget, shown", [
    (-BIG, r"budget \[-10+\.\.\.0+\] \(404 characters\) is below"),         # was [-inf]
    ([-BIG, 3.0], r"budget \[-10+\.\.\.0+\] \(404 characters\) is below"),  # only the budget below
    (np.int64(-3), r"budget \[-3\] is below"),                                  # not np.int64(-3), nor -3.0
    (torch.tensor(-2.5), r"budget \[-2.5\] is below"),
], ids=["-10**400", "a list", "np.int64", "a 0-d tensor"])
def test_a_budget_below_the_cheapest_is_shown_as_given(budget, shown):
    with pytest.raises(ValueError, match=shown) as e:
        RandomSearch([3, 3], TABLE, budget=budget)
    assert "inf" not in str(e.value)


def test_a_band_of_an_unbounded_budget_shows_the_budget_given():
    with pytest.raises(ValueError, match=r"a band needs a finite budget .* got budget \[10+\.\.\.0+, 1.0\] "
                                         r"\(408 characters\)"):
        RandomSearch([3, 3], TABLE, budget=[BIG, 1.0], band=0.5)


@pytest.mark.parametrize("make, match", [
    (lambda: RandomSearch([3, 3], TABLE, budget=1.0, fixed=BIG), r"fixed must be a finite number .* got 10+\.\.\."),
    (lambda: RandomSearch([3, 3], TABLE, budget=[1.0] * 500 + [None]), r"budget must be a number .* got \[1.0, "),
])
def test_long_values_are_shortened_in_randomsearchs_messages(make, match):
    with pytest.raises(ValueError, match=match) as e:
        make()
    assert len(str(e.value)) < 400 and "characters)" in str(e.value)


# --------------------------------------------------------------------------------------- cost tables, normalised

@pytest.mark.parametrize("costs", [[[]], torch.zeros(2, 0), torch.zeros(0, 3)])
def test_an_empty_cost_table_is_refused_naming_costs(costs):
    """cost_scale([[]]) was 1.0 and normalize_costs(zeros(2, 0)) an empty table: a decision without a choice (and
    zeros(0, 3) was refused as 'mask has no decisions', a mask nobody gave)."""
    for f in (cost_scale, normalize_costs):
        with pytest.raises(ValueError, match=r"costs must be a \(D, Kmax\) table with at least one decision and one "
                                             r"choice, got shape"):
            f(costs)


def test_normalize_context_scales_by_the_entries_the_model_reads():
    """The context decisions' own rows are ignored by the model (set to 0); a large number there set the scale."""
    g = torch.Generator().manual_seed(1)
    tables = torch.rand(9, 4, 4, generator=g, dtype=torch.float64) * MASK
    tables[:, :2] = 0.0
    fixed = torch.rand(9, generator=g, dtype=torch.float64)
    want, scale, offset = normalize_context([0, 1], tables, fixed, MASK)
    junk = tables.clone()
    junk[:, :2] = 1000.0 * MASK[:2]                       # the context rows: what the model ignores
    got, junk_scale, junk_offset = normalize_context([0, 1], junk, fixed, MASK)
    assert (junk_scale, junk_offset) == (scale, offset) == (float(tables.max()), float(fixed.min()))
    assert torch.equal(got.tables, want.tables) and torch.equal(got.fixed, want.fixed)
    assert math.isclose(float(want.tables.abs().max()), 1.0)
