"""Weight inheritance: copy the chosen ops' weights from a trained supernet into a standalone model.

The supernet and the standalone model are built by the compiler from the same blocks; only the chosen
path differs (the supernet holds every candidate, the standalone model only the chosen one and no
``skip`` layers). Rather than tie this module to the compiler's attribute names, we pair modules by
the order in which they run: one forward pass of the supernet on the architecture and one of the
standalone model, each recording every module that owns parameters or buffers the first time it is
called. The two sequences must match module by module (same type, same tensor names and shapes; a
depthwise convolution with the training-time backward of :mod:`automl.nn.depthwise` counts as a ``Conv2d``);
a supernet path that runs some module at a smaller width than it holds (elastic width) is read from
``supernet.path_network(arch)``, where such a module is a copy holding the first channels of each tensor
(:mod:`automl.nn.elastic`);
extra standalone modules that the supernet does not have (squeeze-and-excitation added at export)
are left freshly initialised. Anything else is a bug and raises :class:`InheritError`.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import torch
from safetensors.torch import load as load_safetensors
from torch import nn

from automl._io import path_problem
from automl.errors import UserError, shortened
from automl.nn.depthwise import TRAINING_CONVS

__all__ = ["InheritError", "SUPERNET_KEYS", "load_checkpoint", "split_checkpoint", "inherit_weights", "execution_order",
           "StateDifferences", "state_differences", "check_state"]

_logger = logging.getLogger(__name__)

# Modules that the standalone model may have and the supernet not; they keep their fresh weights.
_STANDALONE_ONLY = ("SqueezeExcite",)


class InheritError(RuntimeError):
    """The supernet's chosen path and the standalone model do not line up: a bug."""


# the keys a run's checkpoint keeps its supernet under ("supernet_train": written during the weight phase)
SUPERNET_KEYS = ("supernet", "supernet_train")
# what `automl run` and `automl export` write, for messages about a --weights that is none of them
WRITTEN_WEIGHTS = "a run's checkpoint RUN/checkpoints/ckpt-….pt or an export's model.safetensors"


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The dict in a ``--weights`` file: a torch checkpoint (read with ``weights_only=True``) or a
    safetensors file; a folder, a missing file, a symbolic link that leads to nothing, a pipe, socket or device
    (:func:`~automl._io.path_problem` words which) or a file automl did not write is a UserError."""
    p = Path(path)
    problem = path_problem(p)  # a loop of links, a link to nothing, a pipe, socket or device
    if problem and os.path.exists(p):  # a pipe, socket or device: torch.load seeks in the file it reads
        raise UserError(f"--weights {path} {problem}: a checkpoint is read from a file (torch seeks in it); give "
                        f"{WRITTEN_WEIGHTS}")
    if problem:
        raise UserError(f"--weights {path} {problem}; give {WRITTEN_WEIGHTS}")
    if p.is_dir():
        ckpts = sorted((p / "checkpoints").glob("ckpt-*.pt"))
        files = ckpts[-1:] or [f for f in (p / "model.safetensors", p / "model.pt") if f.is_file()]
        raise UserError(f"--weights {path} is a folder; give a file: "
                        + (f"e.g. {files[0]}" if files else WRITTEN_WEIGHTS))
    if not p.is_file():
        raise UserError(f"--weights {path}: no such file")
    try:
        with warnings.catch_warnings():  # torch warns of a pickle protocol it may not read: the message below says it
            warnings.simplefilter("ignore")
            if p.suffix == ".safetensors":  # its bytes: load_file takes only a name that is valid UTF-8
                obj = load_safetensors(p.read_bytes())
            else:
                obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - torch and safetensors raise many types for a corrupt or foreign file
        raise UserError(f"--weights {path}: not a readable torch checkpoint, and not a checkpoint automl wrote "
                        f"(truncated or another tool's); give {WRITTEN_WEIGHTS}") from None
    if not isinstance(obj, dict):
        raise UserError(f"--weights {path}: expected a dict (a state_dict or {{'supernet': state_dict}}), "
                        f"got {type(obj).__name__}; give {WRITTEN_WEIGHTS}")
    return obj


def split_checkpoint(obj: dict[str, Any], standalone_keys: set[str], source: str = "checkpoint"
                     ) -> tuple[str, dict[str, torch.Tensor]]:
    """Tell what a loaded checkpoint holds: ``("supernet", sd)`` or ``("standalone", sd)``.

    ``{"supernet": sd}`` is a supernet checkpoint (what ``automl run`` writes); ``{"model": sd}`` or a
    bare state_dict whose keys are exactly the standalone model's is a standalone one; any other bare
    state_dict is taken for a supernet's.
    """
    for key, kind in (*((k, "supernet") for k in SUPERNET_KEYS), ("model", "standalone"), ("state_dict", None)):
        if key in obj and isinstance(obj[key], dict):
            sd = obj[key]
            if kind is None:
                kind = "standalone" if set(sd) == standalone_keys else "supernet"
            break
    else:
        sd = obj
        kind = "standalone" if set(sd) == standalone_keys else "supernet"
    check_state(sd, source)
    return kind, sd


def check_state(sd: Any, source: str, instead: str = WRITTEN_WEIGHTS) -> None:
    """A state_dict: a dict of tensors by name (a foreign checkpoint may hold other values, or keys of no name);
    else a :class:`UserError` naming ``source`` (where it was read) and what is wrong, and saying to give
    ``instead``."""
    if not isinstance(sd, dict):
        raise UserError(f"{source}: not a state_dict (it holds {shortened(repr(sd))}, a {type(sd).__name__}, not a "
                        f"dict of tensors); give {instead}")
    bad = next(((k, v) for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if sd and bad is None:
        return
    what = "null" if bad is None or bad[1] is None else f"{shortened(repr(bad[1]))} ({type(bad[1]).__name__})"
    if bad is None:
        why = "it holds no tensors"
    elif not isinstance(bad[0], str):
        why = f"its key {shortened(repr(bad[0]))} is not a tensor's name"
    elif bad[0] in (*SUPERNET_KEYS, "model", "state_dict"):
        why = f"its {bad[0]!r} is {what}, not a state_dict (a dict of tensors)"
    else:
        why = f"its entry {shortened(bad[0], repr)} is {what}, not a tensor"
    raise UserError(f"{source}: not a state_dict ({why}); give {instead}")


class StateDifferences(NamedTuple):
    """How a state_dict differs from the one a network holds (:func:`state_differences`)."""

    missing: list[str]  # the network's tensors the state_dict lacks, in the network's order
    extra: list[str]  # the state_dict's tensors the network does not hold, in the state_dict's order
    reshaped: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # (name, shape given, the network's), network order


def state_differences(given: Mapping[str, Any], want: Mapping[str, Any]) -> StateDifferences:
    """The tensors missing from ``given``, those extra in it, and those of another shape, against ``want`` (a
    network's); each maps a tensor's name to the tensor or to its shape. What ``automl export --weights`` and
    ``automl run --supernet`` say of weights that do not fit, each in its own words."""
    have = {k: tuple(getattr(v, "shape", v)) for k, v in given.items()}
    need = {k: tuple(getattr(v, "shape", v)) for k, v in want.items()}
    return StateDifferences([k for k in need if k not in have], [k for k in have if k not in need],
                            [(k, have[k], need[k]) for k in need if k in have and have[k] != need[k]])


def _owns_state(m: nn.Module) -> bool:
    return any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False))


def execution_order(model: nn.Module, *args, **kwargs) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every module owning parameters or buffers, in first-call order of one forward
    (in eval mode, without gradients; every module is left in the mode it was in)."""
    order: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()
    handles = []

    def hook(name):
        def pre(mod, _inputs):
            if id(mod) not in seen:
                seen.add(id(mod))
                order.append((name, mod))
        return pre

    for name, mod in model.named_modules():
        if _owns_state(mod):
            handles.append(mod.register_forward_pre_hook(hook(name)))
    modes = [(m, m.training) for m in model.modules()]  # each module's own: a frozen (eval) part stays frozen
    model.eval()
    try:
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        for m, training in modes:
            m.training = training
        for h in handles:
            h.remove()
    return order


def _signature(m: nn.Module) -> tuple:
    """The module's class and own tensors' names and shapes; a convolution with the training-time
    backward (:func:`automl.nn.use_fast_depthwise_grad`) is the ``Conv2d`` it stands for."""
    state = m.state_dict(keep_vars=True)
    own = {k: tuple(v.shape) for k, v in state.items() if "." not in k}
    cls = nn.Conv2d if isinstance(m, TRAINING_CONVS) else type(m)
    return cls.__name__, tuple(sorted(own.items()))


def _dtype(p: torch.Tensor | None) -> torch.dtype:
    """The floating dtype of a network whose first parameter is ``p`` (float32 without one)."""
    return p.dtype if p is not None and p.is_floating_point() else torch.float32


def inherit_weights(supernet: nn.Module, arch, standalone: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Copy into ``standalone`` the weights (and BN statistics) of ``supernet`` on the path ``arch``.

    ``supernet`` must already hold the trained state (``supernet.load_state_dict(...)``); its forward is
    ``supernet(x, arch)``; ``arch``: a LongTensor (D,) or a list of choice indices. Returns the number of
    modules copied. Raises :class:`InheritError` when the paths do not line up. The BatchNorm running
    statistics copied are the supernet's (their first channels where the path runs a smaller width), which
    average over the random paths it trained: recalibrate them for this one network
    (:func:`automl.train.loops.recalibrate_bn`, as ``retrain.epochs: 0`` and ``automl export --recipe`` do).
    Both networks are left in the training mode they were in.
    """
    first = next(supernet.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    # the probe input in the networks' own dtype: a supernet in float64 runs on float64 inputs
    x = torch.zeros(1, *input_shape, device=device, dtype=_dtype(first))
    if getattr(supernet, "slices", None) is not None and supernet.slices(arch):
        # elastic width: the path runs modules on their first channels; read those from a copy of the path
        src = execution_order(supernet.path_network(arch), x)
    else:
        src = execution_order(supernet, x, arch.to(device) if isinstance(arch, torch.Tensor) else arch)
    own = next(standalone.parameters(), None)
    dst = execution_order(standalone, x.to(own.device if own is not None else device, _dtype(own)))
    extra = tuple(name + "." for name, m in standalone.named_modules() if type(m).__name__ in _STANDALONE_ONLY)
    i = copied = 0
    for dname, dmod in dst:
        if i < len(src) and _signature(src[i][1]) == _signature(dmod):
            sname, smod = src[i]
            own = {k: v for k, v in smod.state_dict().items() if "." not in k}
            missing, unexpected = dmod.load_state_dict(own, strict=False)
            missing = [k for k in missing if "." not in k]
            if missing or unexpected:
                raise InheritError(f"inherit {sname} -> {dname}: missing {missing}, unexpected {unexpected}")
            i += 1
            copied += 1
        elif extra and dname.startswith(extra):
            continue  # added at export (squeeze-and-excitation): stays freshly initialised
        else:
            want = _signature(src[i][1]) if i < len(src) else "nothing (supernet path exhausted)"
            raise InheritError(f"cannot inherit weights: standalone module {dname} {_signature(dmod)} has no "
                               f"counterpart; the supernet's next module on the path is "
                               f"{src[i][0] if i < len(src) else '-'} {want}")
    if i != len(src):
        raise InheritError(f"cannot inherit weights: {len(src) - i} supernet modules on the path were not used, "
                           f"first {src[i][0]}")
    _logger.debug("inherited %d modules from the supernet", copied)
    return copied

