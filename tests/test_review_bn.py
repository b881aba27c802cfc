"""Review BN: the rank correlations of automl/ranking.py against their textbook definitions (scipy's
``kendalltau`` default, τ-b, and ``spearmanr``: Pearson of the mid-ranks; scipy is not a dependency, so the
references are brute force here), and the weight phase's path sampling (automl/train/sampling.py) by its
documented properties, with fixed seeds."""

import itertools
import math
import tracemalloc

import numpy as np
import pytest
import torch

from automl.compile import load_compiled
from automl.ranking import kendall_tau_b, pair_counts, spearman
from automl.train.sampling import fair_archs, sandwich_archs, sandwich_ends, uniform_archs

NAN = float("nan")
OFA_SMALL = {"classes": "4", "size": "16", "width": "0.25", "wide": "2", "head": "32"}


# ---- references --------------------------------------------------------------------------------------------

def _cmp(a: float, b: float) -> int:
    return int(a > b) - int(a < b)


def _ref_pairs(x, y) -> dict:
    """Every pair i < j classified one by one: undefined (a non-finite value in x or y), tied (equal in x, in y
    or in both), concordant, discordant."""
    out = {"total": 0, "concordant": 0, "discordant": 0, "tied": 0, "undefined": 0}
    for i, j in itertools.combinations(range(len(x)), 2):
        out["total"] += 1
        if not all(math.isfinite(v) for v in (x[i], x[j], y[i], y[j])):
            out["undefined"] += 1
        elif _cmp(x[i], x[j]) == 0 or _cmp(y[i], y[j]) == 0:
            out["tied"] += 1
        elif _cmp(x[i], x[j]) == _cmp(y[i], y[j]):
            out["concordant"] += 1
        else:
            out["discordant"] += 1
    return out


def _ref_tau_b(x, y) -> float:
    """scipy.stats.kendalltau(x, y) (variant 'b', nan_policy 'propagate'): (C − D) / sqrt((n0 − n1)(n0 − n2)),
    n1 / n2 the pairs tied in x / in y; NaN when a denominator factor is 0 or a value is NaN."""
    if not all(math.isfinite(v) for v in list(x) + list(y)):
        return NAN
    c = d = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        sx, sy = _cmp(x[i], x[j]), _cmp(y[i], y[j])
        c, d = c + (sx * sy > 0), d + (sx * sy < 0)
        tx, ty = tx + (sx == 0), ty + (sy == 0)
    n0 = len(x) * (len(x) - 1) // 2
    return (c - d) / math.sqrt((n0 - tx) * (n0 - ty)) if (n0 - tx) * (n0 - ty) else NAN


def _ref_spearman(x, y) -> float:
    """scipy.stats.spearmanr: the Pearson correlation of the average ranks (rankdata 'average')."""
    if not all(math.isfinite(v) for v in list(x) + list(y)):
        return NAN

    def ranks(v):
        return [1 + sum(w < a for w in v) + (sum(w == a for w in v) - 1) / 2 for a in v]
    rx, ry = np.array(ranks(list(x))), np.array(ranks(list(y)))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / den) if den else NAN


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-12


def _random_pair(rng, n: int, kind: int):
    """x, y of length n: 0 many ties on both sides, 1 ties in x only, 2 continuous, 3 x constant."""
    if kind == 0:
        return rng.integers(0, 3, n).astype(float), rng.integers(0, 3, n).astype(float)
    if kind == 1:
        return rng.integers(0, 2, n).astype(float), rng.normal(size=n)
    if kind == 2:
        x = rng.normal(size=n)
        return x, x + rng.normal(size=n)
    return np.full(n, 0.25), rng.normal(size=n)


# ---- ranking.py --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 4, 7, 20])
def test_tau_b_spearman_and_pairs_equal_the_definitions_with_ties(n):
    rng = np.random.default_rng(n)
    for t in range(120):
        x, y = _random_pair(rng, n, t % 4)
        if t % 8 >= 4:
            x, y = y, x  # the constant / tied side on y as well
        assert _same(kendall_tau_b(x, y), _ref_tau_b(x, y)), (x, y)
        assert _same(spearman(x, y), _ref_spearman(x, y)), (x, y)
        assert pair_counts(x, y) == _ref_pairs(x, y), (x, y)
        assert _same(kendall_tau_b(x, y), kendall_tau_b(y, x)) and _same(spearman(x, y), spearman(y, x))


def test_tau_b_is_not_tau_a_or_gamma_with_one_sided_ties():
    """x ties one pair, y none: τ-a = 2/3, γ = 1, τ-b = 2 / sqrt(2 · 3)."""
    x, y = [1.0, 1.0, 2.0], [1.0, 2.0, 3.0]
    assert kendall_tau_b(x, y) == pytest.approx(2 / math.sqrt(6), abs=1e-15)
    assert pair_counts(x, y) == {"total": 3, "concordant": 2, "discordant": 0, "tied": 1, "undefined": 0}
    assert spearman(x, y) == pytest.approx(math.sqrt(3) / 2, abs=1e-15)  # ranks 1.5, 1.5, 3 against 1, 2, 3


@pytest.mark.parametrize("bad", [NAN, math.inf, -math.inf])
def test_a_nonfinite_value_makes_both_correlations_undefined_and_its_pairs_undefined(bad):
    x, y = [0.1, 0.5, 0.3, 0.9], [1.0, 2.0, 0.5, 4.0]
    for xs, ys in ((x[:2] + [bad] + x[3:], y), (x, [bad] + y[1:])):
        assert math.isnan(kendall_tau_b(xs, ys)) and math.isnan(spearman(xs, ys))
        p = pair_counts(xs, ys)
        assert p == _ref_pairs(xs, ys) and p["undefined"] == 3 and p["total"] == 6
        assert p["concordant"] + p["discordant"] + p["tied"] == 3


def test_constant_inputs_and_two_points():
    assert math.isnan(kendall_tau_b([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]))
    assert math.isnan(spearman([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))
    assert pair_counts([2.0] * 3, [1.0, 2.0, 3.0])["tied"] == 3
    assert kendall_tau_b([1.0, 2.0], [3.0, 4.0]) == 1.0 and spearman([1.0, 2.0], [4.0, 3.0]) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau_b([1.0, 2.0], [3.0, 3.0])) and math.isnan(spearman([1.0, 2.0], [3.0, 3.0]))


def test_kendall_and_pairs_of_many_architectures_take_memory_linear_in_their_number():
    """ranking.archs goes up to 10,000 (cheap with retrain_epochs 0): pair matrices of n² floats would take
    about 3 GiB at the end of such a ranking; a row of pairs at a time takes O(n)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=3000)
    y = x + rng.normal(size=3000)
    tracemalloc.start()
    try:
        tau, pairs = kendall_tau_b(x, y), pair_counts(x, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, peak  # 3000² float64 = 69 MiB per matrix
    assert pairs["concordant"] + pairs["discordant"] + pairs["tied"] == 3000 * 2999 // 2
    assert tau == pytest.approx((pairs["concordant"] - pairs["discordant"]) / pairs["total"], abs=1e-15)


# ---- fair sampling -----------------------------------------------------------------------------------------

def _chi2_bound(df: int, z: float = 3.719) -> float:
    """The chi-square quantile of df degrees of freedom at upper tail 1e-4 (z of the normal), Wilson–Hilferty."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def _chi2(counts: torch.Tensor) -> float:
    counts = counts.double().flatten()
    expected = counts.sum() / counts.numel()
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.mark.parametrize("lam, nc", [(6, [2, 3, 6, 1]), (12, [4, 3, 2]), (7, [3, 4, 2, 9]), (2, [5, 3]),
                                     (9, [9, 2, 3, 4, 5, 6, 7, 8])])
def test_fair_paths_of_a_step_cover_each_choice_exactly_or_within_one(lam, nc):
    """λ a multiple of K_d: every choice exactly λ/K_d times; otherwise ⌊λ/K_d⌋ or ⌈λ/K_d⌉, each decision on
    its own K_d (K_d > λ: λ distinct choices)."""
    g = torch.Generator().manual_seed(lam)
    for _ in range(50):
        a = fair_archs(nc, lam, g)
        assert a.shape == (lam, len(nc)) and a.dtype == torch.long
        for d, k in enumerate(nc):
            counts = torch.bincount(a[:, d], minlength=k)
            assert len(counts) == k, (d, counts)
            if lam % k == 0:
                assert torch.all(counts == lam // k), (d, counts)
            else:
                assert counts.min() == lam // k and counts.max() == lam // k + 1, (d, counts)
                assert int((counts > lam // k).sum()) == lam % k


def test_fair_paths_are_marginally_uniform_per_row_and_independent_over_decisions():
    """Chi-square at upper tail 1e-4 (fixed seed: deterministic): each row position's value of each decision
    is uniform, including the rows of the last, cut permutation, and two decisions of a row are independent."""
    nc, lam, steps = [3, 4, 5], 7, 6000
    g = torch.Generator().manual_seed(11)
    a = torch.stack([fair_archs(nc, lam, g) for _ in range(steps)])  # (steps, lam, D)
    for row in range(lam):
        for d, k in enumerate(nc):
            assert _chi2(torch.bincount(a[:, row, d], minlength=k)) < _chi2_bound(k - 1), (row, d)
        joint = torch.bincount(a[:, row, 0] * 5 + a[:, row, 2], minlength=15)
        assert _chi2(joint) < _chi2_bound(14), row


def _documented_fair(num_choices, lam, g):
    """The construction the docs give: column d is ⌈λ/K_d⌉ random permutations end to end, cut to λ."""
    return torch.stack([torch.cat([torch.randperm(k, generator=g) for _ in range(-(-lam // k))])[:lam]
                        for k in num_choices], 1)


@pytest.mark.parametrize("gates", [None, {}])
def test_fair_paths_without_gates_are_the_documented_construction(gates):
    """What fair sampling draws for a space without elastic depth (every shipped use) is unchanged."""
    nc = [3, 4, 2, 9, 1]
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    given = {} if gates is None else {"gates": gates}  # None: the call the weight stage makes today
    for lam in (2, 3, 8, 13):
        assert torch.equal(fair_archs(nc, lam, g1, **given), _documented_fair(nc, lam, g2))


# decision 0 the depth (2, 3 or 4 layers), 1-2 always there, 3 there at depth >= 3, 4 at depth 4
GATED_NC = [3, 5, 3, 9, 4]
GATES = {3: (0, (False, True, True)), 4: (0, (False, False, True))}


@pytest.mark.parametrize("lam", [9, 18, 20])
def test_fair_paths_with_elastic_depth_train_each_choice_of_a_gated_layer_equally(lam):
    """A gated decision's choice trains only on the paths that keep its layer: among those its choices are as
    equal as possible (without gates a 9-choice layer kept on 6 of 18 paths trains 3 to 6 distinct choices)."""
    g = torch.Generator().manual_seed(lam)
    for _ in range(100):
        a = fair_archs(GATED_NC, lam, g, gates=GATES)
        for d, k in enumerate(GATED_NC):
            counts = torch.bincount(a[:, d], minlength=k)
            assert len(counts) == k and counts.min() >= lam // k and counts.max() <= -(-lam // k), d
        for d, (depth, on) in GATES.items():
            kept = torch.tensor(on)[a[:, depth]]
            n, k = int(kept.sum()), GATED_NC[d]
            counts = torch.bincount(a[kept, d], minlength=k)
            assert counts.min() >= n // k and counts.max() <= -(-n // k), (d, n, counts)


def test_fair_paths_with_elastic_depth_draw_the_same_numbers_in_another_order():
    """The gates only reorder a gated column (its entries first on the rows that keep the layer)."""
    cs = load_compiled("spaces/ofa_mbv3.space", OFA_SMALL)
    gates = cs.cost_table.gates
    a = fair_archs(cs.num_choices, 18, torch.Generator().manual_seed(4), gates=gates)
    b = fair_archs(cs.num_choices, 18, torch.Generator().manual_seed(4))
    for d in range(len(cs.num_choices)):
        if d not in gates:
            assert torch.equal(a[:, d], b[:, d]), d
            continue
        kept = torch.tensor(gates[d][1])[a[:, gates[d][0]]]
        assert torch.equal(torch.cat([a[kept, d], a[~kept, d]]), b[:, d]), d


def test_fair_paths_with_elastic_depth_stay_uniform_per_row_and_independent_of_the_depth():
    lam, steps = 8, 6000
    g = torch.Generator().manual_seed(2)
    a = torch.stack([fair_archs(GATED_NC, lam, g, gates=GATES) for _ in range(steps)])
    for row in range(lam):
        for d, k in enumerate(GATED_NC):
            assert _chi2(torch.bincount(a[:, row, d], minlength=k)) < _chi2_bound(k - 1), (row, d)
        for d in GATES:  # the gated choice and the row's depth: independent (a flat joint table)
            k = GATED_NC[d]
            assert _chi2(torch.bincount(a[:, row, 0] * k + a[:, row, d], minlength=3 * k)) < _chi2_bound(3 * k - 1)


def test_uniform_paths_are_uniform_and_independent():
    nc = [2, 3, 7]
    a = uniform_archs(nc, 30000, torch.Generator().manual_seed(5))
    for d, k in enumerate(nc):
        assert _chi2(torch.bincount(a[:, d], minlength=k)) < _chi2_bound(k - 1), d
    assert _chi2(torch.bincount(a[:, 1] * 7 + a[:, 2], minlength=21)) < _chi2_bound(20)


def test_the_chi_square_bound_rejects_a_biased_sampler():
    """The bound above can fail: a sampler off by 2 % on one choice of 3 is caught at this sample size."""
    g = torch.Generator().manual_seed(0)
    u = torch.rand(30000, generator=g, dtype=torch.float64)
    biased = (u >= 0.3533).long() + (u >= 0.6667).long()
    assert _chi2(torch.bincount(biased, minlength=3)) > _chi2_bound(2)


@pytest.mark.parametrize("threads", [2, 4])
def test_sampling_does_not_depend_on_the_thread_count(threads):
    """Runs are reproducible bit for bit at any ``threads``: the paths are the same at 1 and ``threads``, also
    for sizes past torch's parallel grain (32,768 elements)."""
    nc = [3, 4, 9, 2] * 10
    ends = (torch.tensor([k - 1 for k in nc]), torch.zeros(len(nc), dtype=torch.long))

    def draw():
        g = torch.Generator().manual_seed(3)
        return [uniform_archs(nc, 2000, g), fair_archs(nc, 2000, g), sandwich_archs(nc, ends, 2000, g),
                fair_archs([100_000], 3, g)]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = draw()
        torch.set_num_threads(threads)
        many = draw()
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(one, many))


# ---- the sandwich's ends -----------------------------------------------------------------------------------

def _names(cs, arch):
    return [cs.decisions[d].choices[k] for d, k in enumerate(arch.tolist())]


def test_sandwich_ends_of_an_elastic_space_are_deepest_widest_and_largest_input_and_the_reverse():
    """ofa_mbv3: elastic width (context decisions), elastic depth (gates) and input size. The largest path has
    the most parameters of the space (the table's exact maximum), keeps the most layers, takes every width's
    widest choice and the largest input; the smallest the reverse."""
    cs = load_compiled("spaces/ofa_mbv3.space", OFA_SMALL)
    table = cs.cost_table
    largest, smallest = sandwich_ends(cs)
    assert table.total(largest) == table.max_total() and table.total(smallest) == table.min_total()
    assert table.max_total() > table.min_total()
    depth_decs = sorted({g for g, _ in table.gates.values()})
    for g in depth_decs:
        kept = [sum(on[k] for h, on in table.gates.values() if h == g) for k in range(cs.num_choices[g])]
        assert kept[int(largest[g])] == max(kept) and kept[int(smallest[g])] == min(kept), g
    assert table.context_decisions
    for d in set(table.context_decisions) - {cs.resolution_dec}:  # widths 'w16' etc.: the largest the widest
        widths = [int(c.lstrip("w")) for c in cs.decisions[d].choices]
        assert widths[int(largest[d])] == max(widths) and widths[int(smallest[d])] == min(widths), d
    sizes = list(cs.resolutions)
    assert sizes[int(largest[cs.resolution_dec])] == max(sizes)
    assert sizes[int(smallest[cs.resolution_dec])] == min(sizes)
    a = sandwich_archs(cs.num_choices, (largest, smallest), 5, torch.Generator().manual_seed(0))
    assert torch.equal(a[0], largest) and torch.equal(a[1], smallest)


@pytest.mark.parametrize("name", ["digits", "proxylessnas"])
def test_the_smallest_sandwich_path_of_a_chain_space_skips_every_layer_that_can_be_skipped(name):
    cs = load_compiled(f"spaces/{name}.space")
    largest, smallest = sandwich_ends(cs)
    small, large = _names(cs, smallest), _names(cs, largest)
    for d, choices in enumerate(cs.decisions):
        if "skip" in choices.choices:
            assert small[d] == "skip" and large[d] != "skip", (d, small[d], large[d])
