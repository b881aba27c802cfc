"""A latency table's calibration stays within its model: whole networks slower than their pieces (a loaded
machine, a cold cache) raise the scale, never add the same time to every piece, which would make a latency search
count layers instead of weighing ops."""
import numpy as np
import pytest

import automl.profile as profile
from automl.compile import load_compiled
from automl.profile import profile_space
from test_review_bt import DIGITS, _Clock, _params


def _nonzero_ratios(table: dict) -> list[float]:
    """Each decision's costliest choice over its cheapest non-zero one."""
    out = []
    for d in table["decisions"]:
        costs = [c for c in d["choices"].values() if c > 0]
        if len(costs) >= 2:
            out.append(max(costs) / min(costs))
    return out


def test_whole_networks_far_slower_than_their_pieces_keep_the_ops_ratios(monkeypatch):
    """Whole networks take 2.5 x their pieces (beyond the scale's bound, 2): the fit takes scale 2 and c 0, so every
    choice costs twice its piece and the choices of a layer keep their ratios; before, scale fell back to 1 and c
    came out negative, adding the same milliseconds to every piece (ratios squeezed toward 1)."""
    cs = load_compiled(str(DIGITS))
    monkeypatch.setattr(profile, "time_module", _Clock(cs, lambda net: 1.0 + 2.5e-3 * _params(net)))
    plain = profile_space(cs, repeat=1, calibrate=0, progress=False)
    table = profile_space(cs, repeat=1, calibrate=6, progress=False)
    cal = table["calibration"]
    assert cal["scale"] == pytest.approx(2.0) and cal["per_piece_ms"] == 0.0
    assert _nonzero_ratios(table) == pytest.approx(_nonzero_ratios(plain))
    for d_plain, d in zip(plain["decisions"], table["decisions"]):
        for name, ms in d["choices"].items():
            assert ms == pytest.approx(2.0 * d_plain["choices"][name])


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_the_fit_never_returns_a_negative_c_or_a_scale_out_of_bounds(n):
    rng = np.random.default_rng(n)
    for _ in range(200):
        v = rng.uniform(0.01, 2.0, 12)
        counts = rng.integers(0, 3, (n, 12)).astype(float)
        counts[:, 0] = 1  # every network has its fixed piece
        ys = counts @ v * rng.uniform(0.2, 4.0) + rng.normal(0, 0.5, n) * (counts.sum(1) * 0.1)
        scale, c = profile._fit(counts, ys, v)
        assert 0.5 <= scale <= 2.0 and c >= 0.0


def test_within_bounds_the_fit_is_plain_least_squares():
    rng = np.random.default_rng(0)
    v = rng.uniform(0.1, 1.0, 10)
    counts = rng.integers(0, 3, (8, 10)).astype(float) + np.eye(8, 10)
    ns = counts.sum(1)
    ys = 1.3 * counts @ v - 0.02 * ns  # scale 1.3, c 0.02 exactly
    assert profile._fit(counts, ys, v) == pytest.approx((1.3, 0.02))


def test_a_box_edge_fit_is_the_best_within_the_bounds():
    """The bounded fit is the least squares over scale in [0.5, 2], c >= 0, checked against a fine grid."""
    rng = np.random.default_rng(3)
    v = rng.uniform(0.1, 1.0, 10)
    counts = rng.integers(0, 3, (6, 10)).astype(float) + np.eye(6, 10)
    ns, sums = counts.sum(1), counts @ v
    ys = 2.6 * sums + 0.3 * ns  # slower than any bounded fit explains: both bounds bind
    scale, c = profile._fit(counts, ys, v)

    def loss(a, b):
        return float(np.sum((a * sums - b * ns - ys) ** 2))
    grid = min(loss(a, b) for a in np.linspace(0.5, 2.0, 301) for b in np.linspace(0.0, 2.0, 401))
    assert loss(scale, c) <= grid + 1e-9
    assert (scale, c) == pytest.approx((2.0, 0.0))
