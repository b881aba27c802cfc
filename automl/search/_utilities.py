"""Ranking-based utilities: eq. 9 of the paper (importance-weighted quantiles) and the IGO
weighted-quantile form with self-normalised weights."""

from __future__ import annotations

import torch

__all__ = ["quantile_utilities", "weighted_quantile_utilities", "UTILITIES"]

#: The ranking utilities ``tell`` can use: eq. 9 as written, or the IGO weighted-quantile form.
UTILITIES = ("paper", "weighted_quantile")


def quantile_utilities(losses: torch.Tensor, ratios: torch.Tensor, lam: int,
                       check_ties: bool = True) -> torch.Tensor:
    """Ranking-based utilities ``s_i^(n) = w(q^(n)(M_i))`` of eq. 9 (eq. 5's ``w`` for N = 1).

    ``q^(n)(M_i) = (1/lam) sum_k r_k^(n) I{L_k <= L_i}`` is the importance-weighted estimate of the
    probability, under ``P_theta^(n)``, of a loss no larger than ``L_i``; ``w(q) = -2`` for
    ``q <= 1/4``, ``0`` for ``q <= 3/4`` and ``2`` above (the best quarter gets -2: the update
    subtracts, so good samples pull theta toward them).

    Ties (the paper's footnote 3 ignores them): as in the rigorous IGO definition (Ollivier et al.
    2017), the ``t`` samples of a tie block share the mean of the utilities they would get if the tie
    were broken. Unweighted, a block whose last member has ``q+ = (j + t - 1)/lam`` covers the
    quantiles ``q+ - o/lam, o = 0..t-1``, i.e. ranks ``j..j+t-1``, and every member gets the mean of
    ``w`` there. With importance weights the ranks a block would occupy depend on how its members'
    weights are ordered, so the order-free generalisation used here splits the block's quantile
    interval ``(q-, q+]`` (width ``(1/lam) * sum of the block's r``) into ``t`` equal steps ``delta``,
    as if each member carried the block's mean weight, and averages ``w(q+ - o*delta)``,
    ``o = 0..t-1``. It reduces to the IGO rank average when r = 1, and to eq. 9 exactly when the
    losses are distinct (t = 1: ``w(q+)``, the formula of the paper).

    Args:
        losses: ``(G, S)`` finite or +inf losses; ``G = 1`` (all distributions see the same samples,
            importance sampling) or ``G = N`` (distribution n sees row n only).
        ratios: ``(N, S)`` likelihood ratios ``r_k^(n)``.
        lam: the normaliser ``lam`` of eq. 9.
        check_ties: look for ties first and take the short formula when there are none. The check
            reads one number back from the device; ``False`` always takes the tie-aware formula, which
            gives bit-identical utilities when the losses are distinct and never waits for the device
            (the engine passes ``False`` on GPUs).

    Returns:
        ``(N, S)`` utilities.
    """
    values, bounds = _w_tables(ratios.dtype, ratios.device, lam)
    G, S = losses.shape
    # le[g, i, k] = I{L_k <= L_i}
    le = losses.unsqueeze(-1) >= losses.unsqueeze(-2)
    lef = le.to(ratios.dtype)
    # q[n, i] = lam q^(n)(M_i) = sum_k r[n, k] le[i, k], by broadcasting (not a matmul: see tell()). Kept in
    # units of 1/lam and compared with lam/4 and 3 lam/4: where r = 1 (N = 1, Method 2, equal thetas) every
    # point below is then an exact integer, so a quantile of exactly 1/4 or 3/4 is not rounded across it.
    q = (ratios.unsqueeze(1) * lef).sum(-1)
    # Distinct losses: le holds exactly S(S+1)/2 ones per group; anything more means ties.
    if check_ties and int(le.sum()) == G * S * (S + 1) // 2:
        # bucketize(right=False) gives 0 for q <= lam/4, 1 for q <= 3 lam/4, 2 above: exactly w.
        return values[torch.bucketize(q, bounds)]
    eqf = (le & le.transpose(-1, -2)).to(ratios.dtype)      # tie blocks (G, S, S), symmetric
    t = eqf.sum(-1)                                          # block sizes (G, S)
    width = (ratios.unsqueeze(1) * eqf).sum(-1)              # lam (q+ - q-)  (N, S)
    delta = width / t
    offs = torch.arange(S, dtype=ratios.dtype, device=ratios.device)
    pts = q.unsqueeze(-1) - offs * delta.unsqueeze(-1)       # (N, S, S): lam (q+ - o delta)
    valid = offs < t.unsqueeze(-1)                           # only o = 0..t-1
    w = values[torch.bucketize(pts, bounds)] * valid
    return w.sum(-1) / t


def weighted_quantile_utilities(losses: torch.Tensor, weights: torch.Tensor, lam: int) -> torch.Tensor:
    """The IGO weighted-quantile utilities with self-normalised weights (``utility="weighted_quantile"``).

    Distribution n weighs sample k by ``w_k^(n) = r_k^(n) / sum_j r_j^(n)`` (the weights of a row sum
    to 1). Sample i occupies the interval ``(q-_i, q+_i]`` of the weighted distribution of losses,
    ``q+_i = sum_k w_k I{L_k <= L_i}`` and ``q-_i = sum_k w_k I{L_k < L_i}``, and its utility is the
    average of the weight function over that interval, ``(1/(q+ - q-)) int_{q-}^{q+} W_lam(q) dq``.
    Tied samples share one interval and so one value (the IGO tie rule). ``W_lam(q) = w(ceil(lam q)/lam)``
    is eq. 5's ``w`` read on the grid of ``1/lam`` steps: ``-2`` up to ``floor(lam/4)/lam``, ``0`` up to
    ``floor(3 lam/4)/lam``, ``2`` above; for lam a multiple of 4 it is ``w`` itself. With equal weights
    ``1/lam`` (N = 1, or Method 2) the i-th ranked sample's interval is ``((i-1)/lam, i/lam]``, where
    ``W_lam`` is constant ``w(i/lam)``: eq. 7's ranking utility, ties included (the same rank average
    as :func:`quantile_utilities`). A sample of zero weight gets ``W_lam(q+)``.

    Args:
        losses: ``(G, S)`` losses (+inf for non-finite ones); ``G = 1`` or ``G = N``, as in
            :func:`quantile_utilities`.
        weights: ``(N, S)`` non-negative weights, each row summing to 1.
        lam: the grid of ``W_lam``.

    Returns:
        ``(N, S)`` utilities.
    """
    b1, b2 = (lam // 4) / lam, (3 * lam // 4) / lam
    le = (losses.unsqueeze(-1) >= losses.unsqueeze(-2)).to(weights.dtype)   # le[g, i, k] = I{L_k <= L_i}
    lt = (losses.unsqueeze(-1) > losses.unsqueeze(-2)).to(weights.dtype)
    w = weights.unsqueeze(1)
    qp = (w * le).sum(-1)
    qm = (w * lt).sum(-1)

    def integral(q):  # int_0^q W_lam
        return q.clamp(max=b1).mul(-2.0) + (q - b2).clamp(min=0.0).mul(2.0)

    width = qp - qm
    point = torch.where(qp <= b1, -2.0, torch.where(qp <= b2, 0.0, 2.0)).to(weights.dtype)
    avg = (integral(qp) - integral(qm)) / width.clamp(min=torch.finfo(weights.dtype).tiny)
    return torch.where(width > 0, avg, point)


_W_TABLES: dict = {}


def _w_tables(dtype, device, lam: int):
    """The levels (-2, 0, 2) of w and its boundaries (1/4, 3/4) in units of 1/lam, ``(lam/4, 3 lam/4)`` (exact:
    lam is an integer), built once per dtype, device and lam."""
    key = (dtype, device, lam)
    if key not in _W_TABLES:
        _W_TABLES[key] = (torch.tensor([-2.0, 0.0, 2.0], dtype=dtype, device=device),
                          torch.tensor([lam / 4, 3 * lam / 4], dtype=dtype, device=device))
    return _W_TABLES[key]
