"""The pieces of one update of eq. 10: importance ratios, per-sample coefficients, the natural-gradient step."""

from __future__ import annotations

import torch

from ._utilities import quantile_utilities, weighted_quantile_utilities

__all__ = ["importance_ratios", "update_coefficients", "natural_gradient_step"]


def importance_ratios(theta: torch.Tensor, flat: torch.Tensor, S: int,
                      tiny: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, S)`` twice: ``r_i^(n) = P_theta^(n)(M_i) / ((1/N) sum_m P_theta^(m)(M_i))`` (eq. 9), computed in
    log space, and ``log r_i^(n)``, which stays finite where ``r`` underflows to 0 (a distribution that finds
    every sample nearly impossible; :func:`update_coefficients` normalises those from the logs).

    Args:
        theta: ``(N, D, Kmax)`` distributions.
        flat: ``(S * D,)`` position of ``theta_{d, k_i(d)}`` in a flattened ``(D * Kmax)`` row, for every
            sample i and decision d.
        S: the number of samples.
        tiny: the clamp that keeps ``log theta`` finite where ``theta_min = 0`` let theta reach 0.
    """
    N, D, Kmax = theta.shape
    # log P_theta^(n)(M_i) = sum_d log theta_{d, k_i(d)}
    log_theta = theta.clamp_min(tiny).log().view(N, D * Kmax)
    logp = log_theta.index_select(1, flat).view(N, S, D).sum(-1)          # (N, S)
    # shifted by each sample's largest log-probability so nothing underflows (a hand-rolled
    # logsumexp: logp is finite, so torch's inf checks, which triple the cost here, are not needed).
    shifted = logp - logp.amax(0)
    ratios = torch.exp(shifted)
    mean = ratios.mean(0)
    return ratios.div_(mean), shifted.sub_(mean.log())


def update_coefficients(utility: str, losses: torch.Tensor, ratios: torch.Tensor, lam: int, lr: float,
                        host_checks: bool, log_ratios: torch.Tensor | None = None) -> torch.Tensor:
    """``(N, S)``: each sample's coefficient in the update, the learning rate folded in.

    ``"paper"``: ``eta / lam * s_i r_i`` with eq. 9's :func:`quantile_utilities`; ``"weighted_quantile"``:
    ``eta * s_i w_i`` with self-normalised ``w_i = r_i / sum_k r_k`` (``w_i = 1/lam`` when N = 1: eq. 7)
    and :func:`weighted_quantile_utilities`. ``losses`` is ``(1, S)`` or ``(N, S)`` as for those.
    ``log_ratios`` (from :func:`importance_ratios`): a distribution whose ratios sum to less than
    ``sqrt(tiny)`` takes its ``w`` as the softmax of its log-ratios, where ``r / sum r`` would lose digits
    to subnormals or be 0 / 0. ``host_checks``: values may be read back from the device (the CPU): eq. 9's
    tie check, and the softmax only where a distribution needs it.
    """
    if utility == "paper":
        u = quantile_utilities(losses, ratios, lam, check_ties=host_checks)
        return u.mul_(ratios).mul_(lr / lam)
    total = ratios.sum(-1, keepdim=True)
    weights = ratios / total
    if log_ratios is not None:
        small = total < torch.finfo(total.dtype).tiny ** 0.5
        if not host_checks or bool(small.any()):  # a read-back only where reading back is free (the CPU)
            weights = torch.where(small, torch.softmax(log_ratios, -1), weights)
    u = weighted_quantile_utilities(losses, weights, lam)
    return u.mul_(weights).mul_(lr)


def natural_gradient_step(theta: torch.Tensor, u: torch.Tensor, flat: torch.Tensor, costs: torch.Tensor,
                          neg_lr_eps: torch.Tensor, group_offsets: torch.Tensor | None) -> torch.Tensor:
    """``theta + sum_i u_i (m^(i) - theta) - eta eps (c - Q) * theta``: eq. 10 before the range restriction.

    Args:
        theta: ``(N, D, Kmax)`` distributions.
        u: ``(N, S)`` coefficients from :func:`update_coefficients` (learning rate folded in).
        flat: ``(S * D,)`` positions of the samples' choices in a flattened ``(D * Kmax)`` row.
        costs: ``(D, Kmax)`` cost table.
        neg_lr_eps: ``(N, 1, 1)``: ``-eta * epsilon_n``.
        group_offsets: ``None`` with importance sampling (every distribution sees every sample);
            without, ``(S * D,)`` offsets ``n * D * Kmax`` of the distribution each sample belongs to.
    """
    N, D, Kmax = theta.shape
    # eta/lam sum_i u_i (m^(i) - theta) = eta/lam (sum_i u_i m^(i)) - eta/lam (sum_i u_i) theta;
    # sum_i u_i m^(i) adds u_i at position (d, k_i(d)) of every decision.
    sum_um = choice_sums(theta, u, flat, group_offsets).view(N, D, Kmax)
    Q = (costs * theta).sum(-1, keepdim=True)                             # Q_d = sum_k c_dk theta_dk
    # theta - eta eps (c - Q) theta + eta/lam (sum u) theta - eta/lam sum u m, factored on theta;
    # (c - Q) * theta is the natural gradient of E[R] (eq. 7).
    coef = (costs - Q).mul_(neg_lr_eps).add_(u.sum(-1).view(N, 1, 1) + 1.0)
    return theta.mul(coef).sub_(sum_um)


def choice_sums(theta: torch.Tensor, u: torch.Tensor, flat: torch.Tensor,
                group_offsets: torch.Tensor | None) -> torch.Tensor:
    """``(N, D * Kmax)``: ``sum_i u_i m^(i)``, the coefficient ``u_i`` added at position ``(d, k_i(d))`` of every
    decision, over distribution n's samples (all of them with importance sampling; without, its own ``lam``).

    On the CPU index_adds (these products are tiny, and BLAS may hand a matmul to threads, which costs
    milliseconds on a busy machine). Elsewhere index_add_ accumulates with atomics in no fixed order: theta would
    differ in its last bits from run to run and between torchrun's ranks, which must apply the identical tell()
    (their paths, and so the gradients they all-reduce, come from it): there :func:`onehot_sums`."""
    if theta.device.type != "cpu":
        return onehot_sums(theta, u, flat, group_offsets)
    N, D, Kmax = theta.shape
    S = flat.shape[0] // D
    u_rep = u.unsqueeze(-1).expand(N, u.shape[1], D)
    if group_offsets is None:
        return theta.new_zeros(N, D * Kmax).index_add_(1, flat, u_rep.reshape(N, S * D))
    # distribution n adds only its own rows: offset the positions by n * D * Kmax
    return theta.new_zeros(N * D * Kmax).index_add_(0, flat + group_offsets, u_rep.reshape(-1)).view(N, D * Kmax)


def onehot_sums(theta: torch.Tensor, u: torch.Tensor, flat: torch.Tensor,
                group_offsets: torch.Tensor | None) -> torch.Tensor:
    """:func:`choice_sums` as a sum of ``u`` times the samples' one-hot rows: a reduction in a fixed order (no
    atomics), the same bits on every run of the same device; elementwise, not a matmul, so that a program's
    ``torch.set_float32_matmul_precision("high")`` (TF32) does not round ``u``."""
    N, D, Kmax = theta.shape
    S = flat.shape[0] // D
    onehot = theta.new_zeros(S, D * Kmax).scatter_(1, flat.view(S, D), 1.0)  # each position written once
    if group_offsets is None:
        return (u.unsqueeze(-1) * onehot).sum(-2)                                 # (N, S, D * Kmax) -> (N, D * Kmax)
    return (u.unsqueeze(-1) * onehot.view(N, S // N, D * Kmax)).sum(-2)
