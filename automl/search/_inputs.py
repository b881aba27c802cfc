"""What :meth:`MultiEpsilonSearch.tell` is given: architecture indices and losses, checked without
waiting for the device where that is possible."""

from __future__ import annotations

import math
import warnings

import torch

from ._checks import is_bool_table, is_complex

__all__ = ["TellInputs", "as_losses"]


def as_losses(losses, rows: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``losses`` as a ``(rows,)`` ``dtype`` tensor on ``device``: one real number per row of arch (a ``(rows,)``
    tensor or list, or a column or row of them); anything else is a ``ValueError`` naming ``losses``."""
    many = isinstance(losses, (list, tuple))
    if is_complex(losses) or (many and any(is_complex(loss) or isinstance(loss, complex) for loss in losses)):
        raise ValueError("losses must be real numbers (lower is better), got complex ones")
    if is_bool_table(losses):
        # a flag per row (correct? converged?) read as 0 / 1 would rank True as the worse: refused, not guessed
        raise ValueError("losses must be real numbers (lower is better), got bools; pass a loss per row, e.g. "
                         "1.0 - correct.float() for a flag that is True when the row is good")
    if many:  # one loss tensor per row, still in its graph: its value only
        losses = [loss.detach() if isinstance(loss, torch.Tensor) else loss for loss in losses]
    try:
        losses = torch.as_tensor(losses, dtype=dtype, device=device).detach()
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:  # OverflowError: an int beyond float64
        raise ValueError(f"losses must be numbers, one per row of arch (a tensor or a list of floats), got "
                         f"{type(losses).__name__}: {e}") from None
    if losses.numel() != rows:
        raise ValueError(f"expected {rows} losses (one per row of arch), got {losses.numel()}")
    if sum(n != 1 for n in losses.shape) > 1:  # (2, 2) for 4 rows: which loss is which row's?
        raise ValueError(f"losses must be one loss per row of arch, a ({rows},) tensor, got shape "
                         f"{tuple(losses.shape)}")
    return losses.reshape(-1)


class TellInputs:
    """Checks and converts the ``arch`` and ``losses`` of a ``tell``, and counts non-finite losses.

    With ``host_checks`` (the CPU default) everything is checked at once and a warning is issued for
    non-finite losses; without (``sync_free``) nothing is read back from the device: architectures
    that ``ask`` returned are trusted, and non-finite losses are only counted, on the device.
    """

    def __init__(self, num_choices: list[int], device: torch.device, dtype: torch.dtype, host_checks: bool):
        self.num_choices = num_choices
        self.device, self.dtype, self.host_checks = device, dtype, host_checks
        # Losses are only ranked, so they keep float64 with a float32 theta: rounded to float32, distinct losses
        # would tie and finite ones beyond 3.4e38 turn inf (MPS has no float64).
        self.loss_dtype = dtype if device.type == "mps" else torch.float64
        self.kminus1_cpu = torch.tensor(num_choices) - 1
        self.kminus1 = self.kminus1_cpu.to(device)
        self._nonfinite = torch.zeros((), dtype=torch.long, device=device)

    @property
    def nonfinite(self) -> int:
        """How many losses checked so far were NaN or inf. Reading it syncs."""
        return int(self._nonfinite)

    def arch(self, arch, rows: int, trusted: bool) -> torch.Tensor:
        """``arch`` as a contiguous ``(rows, D)`` LongTensor on the device; ``trusted``: it is ``ask``'s own output."""
        try:
            arch = torch.as_tensor(arch)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"arch must be the (rows, D) LongTensor of choice indices that ask() returned, got "
                             f"{type(arch).__name__}") from None
        if arch.dtype == torch.bool or arch.is_complex():
            raise ValueError(f"arch must hold integer choice indices, got dtype {arch.dtype}")
        D = len(self.num_choices)
        if arch.dim() != 2 or arch.shape != (rows, D):
            raise ValueError(f"arch must have shape ({rows}, {D}) (rows returned by ask()), got {tuple(arch.shape)}")
        if arch.dtype != torch.long:
            if arch.is_floating_point() and bool((arch != arch.round()).any()):  # not ask()'s: a host check
                raise ValueError("arch has a choice index that is not an integer; pass the rows ask() returned")
            arch = arch.long()
        # Checked where it is: on the host for free; on the device only if it did not come from ask().
        on_host = arch.device.type == "cpu"
        if on_host or self.host_checks or not trusted:
            kmax = self.kminus1_cpu if on_host else self.kminus1.to(arch.device)
            if bool(((arch < 0) | (arch > kmax)).any()):
                raise ValueError(f"arch has a choice index outside 0..K_d-1 (K = {self.num_choices})")
        # non-blocking only to a device: a copy to the host could still be in flight when tell() reads it.
        # Contiguous: tell() flattens the rows (a transposed or Fortran-ordered table of the right shape is taken).
        return arch.to(self.device, non_blocking=self.device.type != "cpu").contiguous()

    def losses(self, losses, rows: int) -> torch.Tensor:
        """``(rows,)`` float64 losses on the device (:attr:`loss_dtype`), NaN and +-inf replaced by +inf (they rank
        worst)."""
        losses = as_losses(losses, rows, self.loss_dtype, self.device)
        # On the host, one reduction on the common path: a finite sum means every loss is finite (an
        # overflowing sum of finite losses only sends us to the exact check below).
        if self.host_checks and math.isfinite(float(losses.sum())):
            return losses
        finite = torch.isfinite(losses)
        if self.host_checks:
            bad = int((~finite).sum())
            if not bad:
                return losses
            warnings.warn(f"{bad} of {rows} losses are NaN or inf; they rank worst in this update",
                          RuntimeWarning, stacklevel=3)
        # counted and replaced on the device: sync_free never reads this back
        self._nonfinite += rows - finite.sum()
        return torch.where(finite, losses, torch.full_like(losses, math.inf))
