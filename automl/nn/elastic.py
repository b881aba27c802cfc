"""Elastic width in the supernet: one module at the largest widths, run at a smaller width on its first
channels (weight sharing as in slimmable networks and Once-for-All, without OFA's channel sorting).

A :class:`SlicedOp` pairs a supernet module (the *master*, built at the largest widths) with a *template*:
the same op built at the chosen widths on the meta device, which is exactly the standalone timm block of
those widths (its residual only when its input and output widths agree at stride 1, its SE reduce width,
its group convolutions). Calling it runs the template with every parameter and buffer replaced by the
prefix ``master_tensor[:n0, :n1, ...]`` of the master's tensor of the same name, ``(n0, n1, ...)`` the
template tensor's shape (what ``torch.func.functional_call(template, sliced, x)`` does, without its
per-call checks: the names are paired once). The prefixes are views: gradients reach the master's
weights, and BatchNorm's running statistics (and ``num_batches_tracked``) are updated in place in the
master's first channels in training mode.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from automl.nn.depthwise import TRAINING_CONVS

__all__ = ["SlicedOp", "prefix_index"]


def _enclosing(name: str):
    """``name`` and the names of the modules that enclose it, innermost first (``a.b``, ``a``, ``""``)."""
    while name:
        yield name
        name = name.rpartition(".")[0]
    yield ""


def prefix_index(shape) -> tuple[slice, ...]:
    """The index of the first ``shape[d]`` entries along every dimension d (``()`` for a scalar)."""
    return tuple(slice(0, int(n)) for n in shape)


class SlicedOp:
    """``master`` at the smaller widths of ``template`` (same tensor names, each no larger than the master's).

    Not an ``nn.Module``: it owns no weights (the master does), so the supernet's state_dict is unchanged.
    The template follows the master's training mode, module by module (a BatchNorm frozen in eval mode in the
    master runs frozen), its BatchNorms the master's ``momentum``, ``eps`` and
    ``track_running_stats``, and its convolutions the master's class
    (:func:`automl.nn.use_fast_depthwise_grad` switches the master's)."""

    def __init__(self, master: nn.Module, template: nn.Module):
        self.master, self.template = master, template
        owners, tmods = dict(master.named_modules()), dict(template.named_modules())
        theirs = master.state_dict(keep_vars=True)
        self._tensors = []  # (name, owning master module, attribute, prefix index)
        # and where each sliced tensor goes while the template runs: (its _parameters or _buffers dict,
        # attribute, the template's own meta tensor, owning master module, prefix index)
        self._slots = []
        for name, t in template.state_dict(keep_vars=True).items():
            m = theirs.get(name)
            if m is None or m.dim() != t.dim() or any(a > b for a, b in zip(t.shape, m.shape)):
                raise RuntimeError(f"cannot slice {type(master).__name__}.{name} "
                                   f"{tuple(m.shape) if m is not None else '(missing)'} to the template's {tuple(t.shape)}")
            owner, _, attr = name.rpartition(".")
            idx = prefix_index(t.shape)
            self._tensors.append((name, owners[owner], attr, idx))
            mod = tmods[owner]
            store = mod._parameters if attr in mod._parameters else mod._buffers
            self._slots.append((store, attr, store[attr], owners[owner], idx))
        convs = (nn.Conv2d, *TRAINING_CONVS)
        self._convs = [(tmods[n], m) for n, m in master.named_modules()
                       if type(m) in convs and type(tmods.get(n)) in convs]
        bn = nn.modules.batchnorm._BatchNorm
        self._bns = [(tmods[n], m) for n, m in master.named_modules()
                     if isinstance(m, bn) and isinstance(tmods.get(n), bn)]
        # every template module with the master module whose training mode it takes: the one of the same name,
        # else (a module only the template has) the closest enclosing one
        self._modes = [(tm, owners[next(p for p in _enclosing(n) if p in owners)]) for n, tm in tmods.items()]

    def state(self) -> dict[str, torch.Tensor]:
        """The master's tensors cut to the template's shapes (views: they share the master's memory)."""
        return {name: getattr(owner, attr)[idx] for name, owner, attr, idx in self._tensors}

    def _follow_master(self) -> None:
        """The template takes the master's training mode, depthwise convolution classes and BatchNorm settings
        (e.g. :func:`automl.train.loops.recalibrate_bn`'s per-batch momentum 1/(k+1): a cumulative average)."""
        for tm, mm in self._modes:  # module by module: a BatchNorm frozen (eval) in the master stays frozen
            if tm.training != mm.training:
                tm.training = mm.training
        for tc, mc in self._convs:
            if type(tc) is not type(mc):
                tc.__class__ = type(mc)
        for tb, mb in self._bns:
            tb.momentum, tb.eps, tb.track_running_stats = mb.momentum, mb.eps, mb.track_running_stats

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self._follow_master()
        slots = self._slots
        for store, attr, _, owner, idx in slots:  # what torch.func.functional_call does, without its checks
            store[attr] = getattr(owner, attr)[idx]
        try:
            return self.template(x)
        finally:
            for store, attr, meta, _, _ in slots:
                store[attr] = meta

    def materialize(self) -> nn.Module:
        """A real module of the template's widths holding a copy of the sliced weights (on the master's
        device, in its dtypes): the block a standalone network of these widths has, with the supernet's weights."""
        device = next((v.device for v in self.master.state_dict().values()), torch.device("cpu"))
        self._follow_master()
        m = copy.deepcopy(self.template).to_empty(device=device)
        for tc in m.modules():
            if type(tc) in TRAINING_CONVS:
                tc.__class__ = nn.Conv2d
        with torch.no_grad():  # assign: each tensor keeps the master's dtype (a supernet in float64 gives float64)
            m.load_state_dict({k: v.detach().clone(memory_format=torch.contiguous_format)
                               for k, v in self.state().items()}, assign=True)
        return m  # each module in its master's training mode, as the template
