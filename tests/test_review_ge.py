"""Review GE: num_choices read by the integer() rule of automl.search._checks (no 3.0, no tensor([3]), no
numpy.float64, no Fraction)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from automl.search import MultiEpsilonSearch, RandomSearch

# ------------------------------------------------------------------------------------ num_choices: integers

BAD = [
    ([3.0, 2], "3.0"),
    ([torch.tensor([3]), 2], r"tensor\(\[3\]\)"),
    ([np.float64(3.0), 2], r"np.float64\(3.0\)"),
    ([Fraction(3), 2], r"Fraction\(3, 1\)"),
    ([torch.tensor(3.0), 2], r"tensor\(3.\)"),
    ([True, 2], "True"),
]


@pytest.mark.parametrize("num_choices, shown", BAD)
def test_multi_epsilon_search_refuses_a_k_that_is_no_integer(num_choices, shown):
    with pytest.raises(ValueError, match=rf"num_choices must be a list of positive integers, got .*: "
                                         rf"num_choices\[0\] = {shown} is not an integer"):
        MultiEpsilonSearch(num_choices, None, epsilons=[0.0], lam=2)


@pytest.mark.parametrize("num_choices, shown", BAD)
def test_random_search_refuses_a_k_that_is_no_integer(num_choices, shown):
    with pytest.raises(ValueError, match=rf"num_choices\[0\] = {shown} is not an integer"):
        RandomSearch(num_choices)


def test_the_second_element_is_named_too():
    with pytest.raises(ValueError, match=r"num_choices\[1\] = 2.5 is not an integer"):
        RandomSearch([3, 2.5])
    with pytest.raises(ValueError, match=r"num_choices\[1\] = tensor\(\[\[2\]\]\) is not an integer"):
        MultiEpsilonSearch([3, torch.tensor([[2]])], None, epsilons=[0.0], lam=2)


@pytest.mark.parametrize("given", [
    lambda: [3, 2, 4], lambda: (3, 2, 4), lambda: torch.tensor([3, 2, 4]), lambda: np.array([3, 2, 4]),
    lambda: [np.int64(3), torch.tensor(2), np.array(4)], lambda: (k for k in [3, 2, 4]),
], ids=["list", "tuple", "tensor", "array", "numpy-and-0d", "generator"])
def test_integers_in_every_form_give_the_same_search(given):
    """A list, a tuple, a 1-d tensor or array, NumPy integers, 0-d tensors, a generator: the same [3, 2, 4], and the
    same draws and theta as the list's."""
    costs = torch.arange(12, dtype=torch.float64).view(3, 4) / 10

    def run(nc):
        s = MultiEpsilonSearch(nc, costs, epsilons=[0.0, 0.5], lam=4, seed=3)
        g = torch.Generator().manual_seed(0)
        for _ in range(4):
            archs = s.ask()
            s.tell(archs, torch.rand(archs.shape[0], generator=g, dtype=torch.float64))
        return s

    s, ref = run(given()), run([3, 2, 4])
    assert s.num_choices == [3, 2, 4] and all(type(k) is int for k in s.num_choices)
    assert torch.equal(s.theta, ref.theta) and torch.equal(torch.as_tensor(s.best()), torch.as_tensor(ref.best()))
    r = RandomSearch(given(), seed=1)
    assert r.num_choices == [3, 2, 4] and torch.equal(r.ask(), RandomSearch([3, 2, 4], seed=1).ask())


@pytest.mark.parametrize("num_choices, match", [
    ("33", "num_choices must be a list of positive integers, got '33'"),
    ({3: 1}, r"num_choices must be a list of positive integers, got \{3: 1\}"),
    (torch.tensor(3), r"num_choices must be a list of positive integers, got tensor\(3\)"),
    ([3, 0], r"every K_d in num_choices must be an integer >= 1, got \[3, 0\]"),
    ([], "num_choices is empty"),
])
def test_num_choices_that_are_no_list_of_positive_integers_are_named(num_choices, match):
    with pytest.raises(ValueError, match=match):
        MultiEpsilonSearch(num_choices, None, epsilons=[0.0], lam=2)
