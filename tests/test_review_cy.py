"""Review CY: the public Python API of automl.search, as a user of it meets it (budgets given by an iterator, a
state saved in another dtype, an unknown searcher name, malformed gates, a factory registered twice)."""

from __future__ import annotations

import pytest
import torch

import automl.search._registry as registry
from automl.search import ContextCosts, MultiEpsilonSearch, RandomSearch, get_searcher, register_searcher

COSTS = torch.tensor([[0.0, 1 / 3, 2 / 3, 1.0]] * 3, dtype=torch.float64)   # 1/3 is not a float32 number


def _told(engine: MultiEpsilonSearch, steps: int = 5) -> MultiEpsilonSearch:
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        arch = engine.ask()
        engine.tell(arch, torch.rand(len(arch), generator=g, dtype=torch.float64))
    return engine


# ---------------------------------------------------------------------------------------------- budgets

def test_budgets_given_by_a_generator_are_all_kept():
    """budgets=(b for b in ...) was read twice, the second time empty: "budgets is empty: give at least one
    budget" for a generator of two budgets."""
    from_gen = MultiEpsilonSearch([4] * 3, COSTS, budgets=(b for b in [None, 1.0]), lam=4, seed=0)
    from_list = MultiEpsilonSearch([4] * 3, COSTS, budgets=[None, 1.0], lam=4, seed=0)
    assert from_gen.budgets == [None, 1.0] and from_gen.num_distributions == 2
    assert torch.equal(_told(from_gen).theta, _told(from_list).theta)
    assert from_gen.epsilons == from_list.epsilons


# ---------------------------------------------------------------------------------------------- state dicts

@pytest.mark.parametrize("costs", [COSTS, torch.tensor([[0.0, 0.25, 0.5, 1.0]] * 3, dtype=torch.float64)],
                         ids=["rounded_in_float32", "exact_in_float32"])
@pytest.mark.parametrize("saved, loaded", [(torch.float64, torch.float32), (torch.float32, torch.float64)])
def test_a_state_of_another_dtype_is_refused_naming_the_dtype(costs, saved, loaded):
    """A float64 engine's state loaded into a float32 engine (same costs) said "state was saved with a different
    cost table" when a cost is not a float32 number, and loaded silently when every cost is one."""
    state = _told(MultiEpsilonSearch([4] * 3, costs, epsilons=[0.0, 0.5], lam=4, dtype=saved)).state_dict()
    other = MultiEpsilonSearch([4] * 3, costs, epsilons=[0.0, 0.5], lam=4, dtype=loaded)
    before = other.theta.clone()
    with pytest.raises(ValueError, match=rf"dtype={saved}.*this engine has dtype={loaded}.*dtype={saved}"):
        other.load_state_dict(state)
    assert torch.equal(other.theta, before) and other.step == 0


def test_a_state_with_other_costs_in_another_dtype_still_names_the_cost_table():
    state = MultiEpsilonSearch([4] * 3, COSTS, epsilons=[0.0], lam=4).state_dict()
    other = MultiEpsilonSearch([4] * 3, COSTS * 2, epsilons=[0.0], lam=4, dtype=torch.float32)
    with pytest.raises(ValueError, match="different cost table"):
        other.load_state_dict(state)


def test_a_context_cost_state_of_another_dtype_is_refused_naming_the_dtype():
    num_choices = [2, 4, 4]
    mask = torch.arange(4) < torch.tensor(num_choices).unsqueeze(1)
    tables = torch.stack([COSTS, COSTS * 0.5])                                         # (2, D, Kmax)
    model = ContextCosts([0], tables * mask, torch.tensor([0.1, 0.2], dtype=torch.float64), mask)
    state = _told(MultiEpsilonSearch(num_choices, model, epsilons=[0.0, 0.5], lam=4)).state_dict()
    other = MultiEpsilonSearch(num_choices, model, epsilons=[0.0, 0.5], lam=4, dtype=torch.float32)
    with pytest.raises(ValueError, match="dtype=torch.float64"):
        other.load_state_dict(state)


def test_a_state_of_the_same_dtype_still_continues_bit_identically():
    a = _told(MultiEpsilonSearch([4] * 3, COSTS, epsilons=[0.0, 0.5], lam=4, dtype=torch.float32))
    b = MultiEpsilonSearch([4] * 3, COSTS, epsilons=[0.0, 0.5], lam=4, dtype=torch.float32, seed=9)
    b.load_state_dict(a.state_dict())
    assert torch.equal(_told(a).theta, _told(b).theta)


# ---------------------------------------------------------------------------------------------- registry

@pytest.fixture
def clean_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


@pytest.mark.parametrize("name, near", [("importance-sampling", "importance_sampling"), ("Random", "random"),
                                        ("simultanous", "simultaneous")])
def test_an_unknown_searcher_name_suggests_the_nearest(name, near):
    """get_searcher('importance-sampling') was a KeyError printed in quotes, listing the names but not the one
    meant; it is a KeyError and a ValueError now, its message as written, ending in the nearest name."""
    with pytest.raises(ValueError) as info:
        get_searcher(name)
    assert isinstance(info.value, KeyError)
    assert str(info.value).startswith(f"no searcher registered as {name!r}")
    assert str(info.value).endswith(f"did you mean {near!r}?")


def test_an_unknown_searcher_name_far_from_any_lists_the_names_only():
    with pytest.raises(KeyError) as info:
        get_searcher("xyz")
    assert "did you mean" not in str(info.value) and "random" in str(info.value)
    with pytest.raises(ValueError, match="no searcher registered as \\['random'\\]"):
        get_searcher(["random"])


def _make(cls):
    def create(problem):
        return cls(problem.num_choices)
    return create


def test_a_factory_of_one_helper_for_another_class_is_a_second_registration(clean_registry):
    """register_searcher('mine')(make(A)) then ('mine')(make(B)) silently replaced A's searcher by B's: the inner
    function has one module, name and line, which was taken for the same definition read again."""
    register_searcher("cy_mine", "sample")(_make(RandomSearch))
    register_searcher("cy_mine", "sample")(_make(RandomSearch))      # the same factory again: fine
    with pytest.raises(ValueError, match="'cy_mine' is already registered"):
        register_searcher("cy_mine", "sample")(_make(MultiEpsilonSearch))
    assert get_searcher("cy_mine").create.__closure__[0].cell_contents is RandomSearch
    register_searcher("cy_mine", "sample", replace=True)(_make(MultiEpsilonSearch))
    assert get_searcher("cy_mine").create.__closure__[0].cell_contents is MultiEpsilonSearch


# ---------------------------------------------------------------------------------------------- random search

@pytest.mark.parametrize("gates", [{0: 1}, [(0, (1, [True] * 4))], {"a": (1, [True] * 4)}, {0: (1, "yyyy")},
                                   {0: (1, 5)}, {0: None}])
def test_malformed_gates_are_one_value_error_naming_gates(gates):
    """gates={0: 1} was "TypeError: cannot unpack non-iterable int object", a list of pairs "AttributeError:
    'list' object has no attribute 'items'", a key 'a' "invalid literal for int() with base 10"."""
    with pytest.raises(ValueError, match=r"gates must be a dict \{decision: \(depth decision"):
        RandomSearch([4] * 3, costs=COSTS, budget=1.5, gates=gates)


def test_well_formed_gates_still_leave_a_dropped_layer_out():
    # decision 2's layer is there only for choice 1 of decision 0 (numpy-free ints and 0/1 flags as given)
    s = RandomSearch([4] * 3, costs=COSTS, budget=1.5, gates={2: (0, [0, 1, 0, 0])}, lam=64, seed=0)
    arch = s.ask()
    cost = COSTS[0, arch[:, 0]] + COSTS[1, arch[:, 1]] + COSTS[2, arch[:, 2]] * (arch[:, 0] == 1)
    assert bool((cost <= 1.5 + 1e-9).all())
    assert bool(((arch[:, 0] != 1) & (COSTS[2, arch[:, 2]] + COSTS[0, arch[:, 0]] + COSTS[1, arch[:, 1]] > 1.5))
                .any())


# ---------------------------------------------------------------------------------------------- losses

def test_a_list_of_loss_tensors_in_their_graph_is_told_without_a_torch_warning(recwarn):
    """tell(arch, [criterion(...) for a in arch]), each loss still in its autograd graph, gave torch's "UserWarning:
    Converting a tensor with requires_grad=True to a scalar may lead to unexpected behavior", raised in
    automl/search/_inputs.py; the update is the one of the same numbers as a plain tensor."""
    w = torch.ones((), dtype=torch.float64, requires_grad=True)
    graphed, plain = (MultiEpsilonSearch([4] * 3, COSTS, epsilons=[0.0, 0.5], lam=4, seed=0) for _ in range(2))
    arch = graphed.ask()
    assert torch.equal(arch, plain.ask())
    graphed.tell(arch, [w * i for i in (3.0, 1.0, 2.0, 0.5)])
    plain.tell(arch, torch.tensor([3.0, 1.0, 2.0, 0.5], dtype=torch.float64))
    assert not [str(m.message) for m in recwarn.list if "requires_grad" in str(m.message)]
    assert torch.equal(graphed.theta, plain.theta)
    rs = RandomSearch([4] * 3, lam=2)
    rs.tell(rs.ask(), [w * 2.0, w * 1.0])
    assert not [str(m.message) for m in recwarn.list if "requires_grad" in str(m.message)]
    assert rs.best().shape == (1, 3)


@pytest.mark.parametrize("losses", [[1j] * 4, [torch.tensor(1j)] * 4])
def test_complex_losses_in_a_list_say_complex(losses):
    """[torch.tensor(1j)] * 4 was "value cannot be converted to type double without overflow"."""
    s = MultiEpsilonSearch([4] * 3, COSTS, epsilons=[0.0], lam=4)
    with pytest.raises(ValueError, match="losses must be real numbers .* got complex ones"):
        s.tell(s.ask(), losses)
