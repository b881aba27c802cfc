"""Review FN: ContextCosts' public moments check theta; counts take 0-d integer tensors; gates messages shortened;
normalize_costs' docstring says where negative costs land."""

import numpy as np
import pytest
import torch

from automl.search import ContextCosts, MultiEpsilonSearch, RandomSearch, normalize_costs

KS = [3, 2, 4]
MASK = torch.arange(4) < torch.tensor(KS).unsqueeze(1)


def _model() -> ContextCosts:
    g = torch.Generator().manual_seed(0)
    tables = torch.rand(3, 3, 4, generator=g, dtype=torch.float64)
    return ContextCosts([0], tables, torch.rand(3, generator=g, dtype=torch.float64), MASK)


def _theta(n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    logits = torch.rand(n, *MASK.shape, generator=g, dtype=torch.float64).masked_fill(~MASK, -float("inf"))
    return torch.softmax(logits, -1)


# ---- 1. ContextCosts.expected / conditional check theta; the engine's path is unchecked -------------------------

@pytest.mark.parametrize("method", ["expected", "conditional"])
def test_moments_refuse_a_theta_of_the_wrong_shape_naming_it(method):
    model, theta = _model(), _theta()
    with pytest.raises(ValueError, match=r"theta must be an \(N, D, Kmax\) = \(N, 3, 4\).*unsqueeze\(0\)"):
        getattr(model, method)(theta[0])                       # one (D, Kmax) distribution: the hint
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 3\)$"):
        getattr(model, method)(theta[..., :3])


@pytest.mark.parametrize("method", ["expected", "conditional"])
def test_moments_refuse_a_theta_that_is_not_floating(method):
    with pytest.raises(ValueError, match="floating tensor of probabilities, got dtype torch.int64"):
        getattr(_model(), method)(_theta().round().long())
    with pytest.raises(ValueError, match="True/False"):
        getattr(_model(), method)(np.ones((1, 3, 4), dtype=bool))


@pytest.mark.parametrize("method", ["expected", "conditional"])
@pytest.mark.parametrize("break_it, says", [
    (lambda t: t[1, 2, 0].fill_(float("nan")), r"theta must be finite and non-negative, got row n=1, d=2"),
    (lambda t: t.mul_(-1), r"theta must be finite and non-negative, got row n=0, d=0"),
    (lambda t: t.mul_(1.5), r"every row of theta must sum to 1 .* row n=0, d=0 summing to 1\.5"),
    (lambda t: t[:, 1, 3].fill_(0.5), r"theta must be 0 beyond K_d .* row n=0, d=1"),
], ids=["nan", "negative", "sum", "beyond"])
def test_moments_refuse_a_theta_that_is_not_a_distribution(method, break_it, says):
    theta = _theta()
    break_it(theta)
    with pytest.raises(ValueError, match=says):
        getattr(_model(), method)(theta)


def test_moments_of_a_distribution_are_the_engines_own_and_follow_the_models_dtype():
    model, theta = _model(), _theta()
    assert torch.equal(model.expected(theta), model._expected(theta))
    assert torch.equal(model.conditional(theta), model._conditional(theta))
    # a list, a float32 theta: computed in the model's dtype, as totals moves rows to the model's device
    assert torch.equal(model.expected(theta.tolist()), model._expected(theta))
    assert model.expected(theta.float()).dtype == torch.float64
    assert torch.allclose(model.conditional(theta.float()), model._conditional(theta), atol=1e-6)
    # still differentiable
    leaf = theta.clone().requires_grad_(True)
    model.expected(leaf).sum().backward()
    assert leaf.grad is not None and leaf.grad.shape == theta.shape


def test_the_engine_calls_the_unchecked_moments(monkeypatch):
    """The searchers' hot path (step_costs, expected_total) does not pay for the public check."""
    calls = []
    monkeypatch.setattr(ContextCosts, "_checked_theta", lambda self, t: calls.append(1) or t)
    s = MultiEpsilonSearch(KS, _model(), epsilons=[0.0, 0.5], lam=3, seed=0)
    for _ in range(3):
        a = s.ask()
        s.tell(a, torch.rand(a.shape[0], dtype=torch.float64))
    s.expected_cost()
    assert calls == []


# ---- 2. RandomSearch's gates messages shorten long values ---------------------------------------------------------

def test_gates_messages_shorten_a_long_gates_value():
    many = {d: (0, [True] * 3) for d in range(1, 3)}
    many.update({i: (0, [True] * 3) for i in range(100, 3000)})  # a long dict (a generated one gone wrong)
    long_flags = {1: (0, [True, 0.5] + [True] * 5000)}
    for gates, says in ((dict(many, **{"x": (0, [True] * 3)}), "is not a decision index"),
                        (long_flags, "flag 0.5 is not True/False"),
                        ({i: 7 for i in range(3000)}, "gates must be a dict")):
        with pytest.raises(ValueError, match=says) as err:
            RandomSearch(KS, torch.rand(3, 4, dtype=torch.float64), gates=gates)
        assert len(str(err.value)) < 1000, len(str(err.value))


# ---- 3. normalize_costs' docstring says where negative costs land ---------------------------------------------------

def test_normalize_costs_docstring_says_negative_costs_land_in_minus_one_to_one():
    costs = torch.tensor([[-4.0, 1.0], [2.0, 3.0]], dtype=torch.float64)
    out = normalize_costs(costs)
    assert float(out.min()) == -1.0 and float(out.max()) == 0.75   # [-1, 1], not [0, 1]
    doc = " ".join(normalize_costs.__doc__.split())
    assert "[-1, 1]" in doc and "c in [0, 1]`` for non-negative costs" in doc


# ---- 4. counts: 0-d integer tensors and NumPy integers, as seed and gates take them; bools and floats refused -------

def test_multi_epsilon_lam_takes_a_0d_integer_tensor():
    s = MultiEpsilonSearch(KS, None, epsilons=[0.0], lam=torch.tensor(4), seed=torch.tensor(3))
    assert s.lam == 4 and type(s.lam) is int and s.ask().shape == (4, 3)


def test_sample_uniform_takes_a_0d_integer_tensor():
    s = MultiEpsilonSearch(KS, None, epsilons=[0.0], lam=2)
    assert s.sample_uniform(torch.tensor(5)).shape == (5, 3)


def test_random_search_lam_takes_a_0d_integer_tensor():
    r = RandomSearch(KS, lam=torch.tensor(3), seed=np.int64(2))
    assert r.lam == 3 and type(r.lam) is int and r.ask().shape == (3, 3)


def test_random_search_max_tries_and_batch_take_0d_integer_tensors_and_numpy_integers():
    costs = torch.rand(3, 4, dtype=torch.float64)
    r = RandomSearch(KS, costs, budget=10.0, max_tries=torch.tensor(7), batch=np.int32(64))
    assert (r.max_tries, r.batch) == (7, 64) and type(r.max_tries) is int and type(r.batch) is int
    assert r.state_dict()["batch"] == 64


@pytest.mark.parametrize("bad", [torch.tensor(True), np.True_, torch.tensor([8]), torch.tensor(8.0), 8.0])
def test_counts_refuse_bools_lists_and_floats_alike(bad):
    with pytest.raises(ValueError, match="lam must be an integer"):
        MultiEpsilonSearch(KS, None, epsilons=[0.0], lam=bad)
    with pytest.raises(ValueError, match="max_tries and batch must be integers >= 1"):
        RandomSearch(KS, batch=bad)
    if not isinstance(bad, float):  # a seed of 8.0 is read as 8 (an integral float)
        with pytest.raises(ValueError, match="seed must be an integer"):
            RandomSearch(KS, seed=bad)
