"""Review JH: the search engine used as a library (docs/search-engine.md), arguments a user may pass."""

import numpy as np
import pytest
import torch

from automl.search import MultiEpsilonSearch, normalize_costs

D, K = 4, 3


def _engine(**kw):
    args = dict(num_choices=[K] * D, costs=normalize_costs(torch.arange(K, dtype=torch.float64).expand(D, K)),
                epsilons=[0.0, 0.5], lam=4, seed=0)
    args.update(kw)
    return MultiEpsilonSearch(**args)


@pytest.mark.parametrize("column_major", [lambda x: x.T.contiguous().T, lambda x: np.asfortranarray(x.numpy())],
                         ids=["transposed tensor", "Fortran array"])
@pytest.mark.parametrize("importance_sampling", [True, False])
def test_tell_takes_column_major_rows(column_major, importance_sampling):
    """The same rows stored column-major (a transposed tensor, a Fortran-ordered array) give the same update as
    ask()'s own rows; flattening them was torch's 'view size is not compatible' RuntimeError."""
    a, b = _engine(importance_sampling=importance_sampling), _engine(importance_sampling=importance_sampling)
    losses = torch.linspace(0.0, 1.0, a.rows_per_ask, dtype=torch.float64)
    x = a.ask()
    assert torch.equal(b.ask(), x)
    other = column_major(x.clone())
    assert not torch.as_tensor(other).is_contiguous()
    a.tell(x, losses)
    b.tell(other, losses)
    assert torch.equal(a.theta, b.theta)


@pytest.mark.parametrize("key,value", [("lr", 0.05), ("theta_min", 0.01), ("budget_lr", 0.3)])
def test_real_0d_tensor_taken_as_its_number(key, value):
    """lr, theta_min and budget_lr take a 0-d tensor as epsilons and budgets do (it was refused with 'must be a
    positive finite number, got tensor(0.05)', a message that the value itself meets)."""
    kw = dict(epsilons=None, budgets=[None, 1.5]) if key == "budget_lr" else {}
    plain, tensor = _engine(**kw, **{key: value}), _engine(**kw, **{key: torch.tensor(value, dtype=torch.float64)})
    assert plain.state_dict()[key] == tensor.state_dict()[key]
    for s in (plain, tensor):
        x = s.ask()
        s.tell(x, torch.arange(4, dtype=torch.float64))
    assert torch.equal(plain.theta, tensor.theta)


@pytest.mark.parametrize("key,value", [("lr", torch.tensor([0.05])), ("lr", torch.tensor(True)),
                                       ("lr", torch.tensor(-0.1)), ("theta_min", torch.tensor(0.5)),
                                       ("theta_min", torch.tensor([0.01])), ("budget_lr", torch.tensor(0.0))])
def test_bad_tensor_values_still_refused_naming_the_argument(key, value):
    kw = dict(epsilons=None, budgets=[None, 1.5]) if key == "budget_lr" else {}
    with pytest.raises(ValueError, match=key):
        _engine(**kw, **{key: value})
