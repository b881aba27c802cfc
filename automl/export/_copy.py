"""A CPU copy of a model wherever it is, with no second copy on its device.

``copy.deepcopy(model).cpu()`` first copies every weight on the model's device, then moves the copy: on a GPU that
is a second whole network in GPU memory (out of memory where the first nearly fills it), and time spent for
nothing. :func:`cpu_copy` copies each parameter and buffer straight to the CPU instead.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["cpu_copy"]


def _cpu_tensor(t: torch.Tensor) -> torch.Tensor:
    """A CPU copy of ``t`` (a copy also where ``t`` is on the CPU), of its class, layout and ``requires_grad``, no
    ``.grad``: a :class:`~torch.nn.Parameter` stays one (of its own subclass), as ``copy.deepcopy`` makes it."""
    data = t.detach().to("cpu", copy=True)
    return type(t)(data, t.requires_grad) if isinstance(t, nn.Parameter) else data.requires_grad_(t.requires_grad)


def cpu_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every parameter and buffer (and each tensor a module holds as a plain
    attribute) copied straight to the CPU, not first on ``model``'s device (a tensor held only inside a list or dict
    is copied where it is, and stays there unless its module's own ``_apply`` moves it: the copy's ``.cpu()`` runs
    it).

    ``model`` is left as it is (device, training mode, ``requires_grad``, its tensors); the copy has its training
    mode, ``requires_grad`` flags and each tensor's dtype and memory layout. A tensor two modules hold (tied
    weights) stays one tensor in the copy. Distinct tensors get distinct copies (as ``.cpu()`` makes them from a
    GPU: views of one storage do not share one in the copy); gradients are not copied."""
    memo: dict[int, object] = {}
    for module in model.modules():
        attributes = (v for v in vars(module).values() if isinstance(v, torch.Tensor))
        for t in (*module.parameters(recurse=False), *module.buffers(recurse=False), *attributes):
            if id(t) not in memo:
                memo[id(t)] = _cpu_tensor(t)
    return copy.deepcopy(model, memo).cpu()
