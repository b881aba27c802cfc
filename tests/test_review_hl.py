"""Review HL: ``MultiEpsilonSearch.ask`` never draws a choice of θ 0, also where float32 rounding leaves a row's
cumulative sum a hair below the uniform draw (the clamp took K_d - 1, whose θ may be 0 with ``theta_min=0``)."""

from __future__ import annotations

import torch

from automl.search import MultiEpsilonSearch


def test_a_draw_above_a_rounded_cumulative_sum_takes_the_last_choice_of_positive_theta(monkeypatch):
    search = MultiEpsilonSearch([3, 3], torch.zeros(2, 3), epsilons=[0.0], lam=4, theta_min=0,
                                dtype=torch.float32, seed=0)
    theta = torch.tensor([[[0.6, 0.39999992, 0.0], [0.5, 0.25, 0.25]]], dtype=torch.float32)
    top = 1 - 2 ** -24  # the largest float32 below 1: what torch.rand may draw, and what the row sums to
    assert float(theta[0, 0].cumsum(0)[-1]) == top
    search._theta = theta
    real = torch.rand
    monkeypatch.setattr(torch, "rand", lambda *a, **k: torch.full_like(real(*a, **k), top))
    arch = search.ask()
    assert arch[:, 0].tolist() == [1] * 4, arch  # was 2: a choice of θ 0
    assert arch[:, 1].tolist() == [2] * 4, arch  # K_d - 1 where its θ is positive


def test_draws_follow_theta_and_skip_choices_of_theta_zero():
    search = MultiEpsilonSearch([4, 2], torch.zeros(2, 4), epsilons=[0.0], lam=4000, theta_min=0, seed=1)
    search._theta = torch.tensor([[[0.0, 0.7, 0.0, 0.3], [1.0, 0.0, 0.0, 0.0]]], dtype=search._theta.dtype)
    arch = search.ask()
    counts = torch.bincount(arch[:, 0], minlength=4)
    assert counts[0] == 0 and counts[2] == 0 and abs(counts[1] / 4000 - 0.7) < 0.03, counts
    assert arch[:, 1].eq(0).all(), arch[:, 1]
