"""Elastic resolution: a batch resized to the input size an architecture chose (``resolution A, B, ...``).

The data comes at the space's input size (the largest resolution); the supernet resizes it on a path that
chose a smaller one, and the pipeline resizes the batches of a retrained member, as Once-for-All resizes
its images in the data loader. Bilinear with antialiasing (as PIL's bilinear resize of an image)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["resize_input"]


def resize_input(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """``x`` (N, C, H, W) at ``size`` x ``size``; unchanged when ``size`` is None or already its size."""
    if size is None or (x.shape[-2] == size and x.shape[-1] == size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
