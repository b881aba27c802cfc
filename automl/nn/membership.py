"""Is a timm network a member of a chain space, and which choices make it?

:func:`encode_timm_model` walks the blocks of a timm ``EfficientNet`` / ``MobileNetV3`` next to the
space's layers: each layer takes the choice whose block has the same structure (module types,
activations, squeeze-excitation, every weight shape) as the network's next block, or ``skip`` when no
choice matches and the layer may be skipped. Anything left over (a block no layer offers, a stem or head
of another shape, another timm class) is a :class:`UserError` naming the layer and the block.
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import timm
import torch
from timm.models._efficientnet_builder import decode_arch_def
from torch import nn

from automl.errors import UserError
from automl.nn.parts import chain_op
from automl.nn.standalone import build_standalone, timm_network

__all__ = ["encode_timm_model", "timm_model", "arch_def_model", "describe_block"]


def _signature(m: nn.Module) -> list[tuple]:
    """Module types (activations and SE gates included) and weight shapes, in order, without names."""
    sig = [("module", type(x).__name__) for _, x in m.named_modules()]
    sig += [("tensor", tuple(v.shape)) for v in m.state_dict().values()]
    return sig


def describe_block(m: nn.Module) -> str:
    """``InvertedResidual 16->64->24, 3x3 depthwise stride 2, SE, ReLU`` (for messages)."""
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    parts = [type(m).__name__]
    if convs:
        chans = [convs[0].in_channels] + [c.out_channels for c in convs if not _in_se(m, c)]
        parts.append("->".join(str(c) for c in dict.fromkeys(chans)) if len(set(chans)) > 1 else str(chans[0]))
        k = max(c.kernel_size[0] for c in convs)
        stride = max(c.stride[0] for c in convs)
        parts.append(f"{k}x{k}" + (f" stride {stride}" if stride > 1 else ""))
    if any(type(x).__name__ == "SqueezeExcite" for x in m.modules()):
        parts.append("squeeze-excitation")
    acts = [type(x).__name__ for x in m.modules()
            if type(x).__name__ in ("ReLU", "ReLU6", "Hardswish", "SiLU", "Mish", "GELU", "HardSwish")]
    if acts:
        parts.append(acts[0])
    return " ".join(parts[:1]) + (" " + ", ".join(parts[1:]) if len(parts) > 1 else "")


def _in_se(block: nn.Module, conv: nn.Module) -> bool:
    se = getattr(block, "se", None)
    return se is not None and any(conv is x for x in se.modules())


def _flat_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    out = []
    for i, stage in enumerate(model.blocks):
        for j, block in enumerate(stage):
            out.append((f"blocks.{i}.{j}", block))
    return out


def encode_timm_model(cs, model: nn.Module, label: str = "the network") -> dict[str, str]:
    """``{decision: choice}`` of the architecture of ``cs`` that builds ``model`` (a timm EfficientNet or
    MobileNetV3); :class:`UserError` naming the first layer or part that the space does not contain.

    A stage of elastic width takes the width of its blocks (a stage whose blocks have 32 channels:
    ``w32``); a block whose width the stage does not offer is named with the widths it offers. With
    elastic resolution the architecture takes the space's input size (a timm network takes any)."""
    if cs.kind != "chain":
        raise UserError(f"space {cs.name} is a cell space; only chain spaces hold timm EfficientNet / "
                        f"MobileNetV3 networks")
    if not hasattr(model, "blocks"):
        raise UserError(f"{label} is a {type(model).__name__}, not a timm EfficientNet or MobileNetV3")
    plan = cs.plan
    blocks = _flat_blocks(model)
    pos, names, present, left_out = 0, {}, {}, []
    for layer in plan.layers:
        target = blocks[pos] if pos < len(blocks) else None
        match = _match_layer(cs, layer, target, names) if target is not None else None
        if match is not None:
            pos += 1
        elif layer.gate is not None:  # beyond the depth: not there (its op decision is free: the first)
            present[layer.name], match = False, layer.choices[0]
        elif "skip" in layer.choices:
            match = "skip"
            if target is not None:
                left_out.append(layer.name)
        else:
            raise UserError(_no_match_message(cs, layer, target, label, left_out, names))
        if layer.decision is not None:
            names[cs.decisions[layer.decision].name] = match
        if layer.gate is not None:
            present.setdefault(layer.name, True)
    _depth_choices(cs, present, names, label)
    if pos < len(blocks):
        name, block = blocks[pos]
        raise UserError(f"{label}'s {name} ({describe_block(block)}) has no layer left in space {cs.name} "
                        f"(the space ends with layer {plan.layers[-1].name})")
    _free_widths(cs, model, names)
    if cs.resolution_dec is not None:  # a timm network takes any input size: the data's (the largest)
        names[cs.decisions[cs.resolution_dec].name] = f"r{cs.input_shape[1]}"
    ours = build_standalone(cs, cs.encode(names))
    if type(ours) is not type(model):
        hint = " (add `family mobilenetv3` to the network)" if type(model).__name__ == "MobileNetV3" else ""
        raise UserError(f"{label} is a timm {type(model).__name__}; space {cs.name} builds a "
                        f"{type(ours).__name__}{hint}")
    theirs_sd, ours_sd = model.state_dict(), ours.state_dict()
    for (k1, v1), (k2, v2) in zip(theirs_sd.items(), ours_sd.items()):
        if v1.shape != v2.shape:
            raise UserError(f"{label}'s {k1} has shape {tuple(v1.shape)}, space {cs.name} has {k2} of shape "
                            f"{tuple(v2.shape)} (the stem, head or classifier differ)")
    if len(theirs_sd) != len(ours_sd) or _signature(model) != _signature(ours):
        raise UserError(f"{label} and the network of space {cs.name} differ outside the searched blocks "
                        f"(stem, head or activations)")
    return names


def _width_options(cs, layer, names: dict[str, str]):
    """``({width decision name: choice}, layer at those widths)`` for every width the layer can still have:
    a width decision already taken by an earlier block is kept."""
    decs = list(dict.fromkeys(d for d in (layer.in_width_dec, layer.width_dec) if d is not None))
    options = [[names[cs.decisions[d].name]] if cs.decisions[d].name in names else list(cs.decisions[d].choices)
               for d in decs]
    for combo in itertools.product(*options):
        chosen = {d: cs.decisions[d].choices.index(c) for d, c in zip(decs, combo)}
        yield {cs.decisions[d].name: c for d, c in zip(decs, combo)}, layer.at(chosen)


def _match_layer(cs, layer, target, names: dict[str, str]) -> str | None:
    """The op (not ``skip``) of ``layer`` whose block has the structure of ``target`` at a width the layer
    can have, or None; a width found is written into ``names``."""
    want = _signature(target[1])
    for widths, at in _width_options(cs, layer, names):
        for op in layer.choices:
            if op != "skip" and _signature(chain_op(cs.plan, at, op, device="meta")) == want:
                names.update(widths)
                return op
    return None


def _block_out_channels(block: nn.Module) -> int | None:
    """The output channels of a timm block: its last convolution outside squeeze-excitation."""
    convs = [c for c in block.modules() if isinstance(c, nn.Conv2d) and not _in_se(block, c)]
    return convs[-1].out_channels if convs else None


def _no_match_message(cs, layer, target, label: str, left_out: list[str], names: dict[str, str]) -> str:
    ins = sorted({at.in_ch for _, at in _width_options(cs, layer, names)})
    outs = sorted({at.out_ch for _, at in _width_options(cs, layer, names)})
    shape = (f"{'|'.join(map(str, ins))}->{'|'.join(map(str, outs))} channels"
             + (f", stride {layer.stride}" if layer.stride > 1 else ""))
    what = (f"{label}'s {target[0]} ({describe_block(target[1])})" if target else f"{label} has no block left")
    earlier = (f"; the layers before it that no block matched were skipped: {', '.join(left_out)}"
               if left_out else "")
    if target is not None and layer.width_dec is not None:
        dec = cs.decisions[layer.width_dec]
        c = _block_out_channels(target[1])
        if c is not None and c not in outs:
            return (f"layer {layer.name} of space {cs.name}: {what} has {c} output channels, not a width of its "
                    f"stage: {dec.name} offers {', '.join(map(str, outs))}{earlier}")
    return (f"layer {layer.name} ({shape}) of space {cs.name}: {what} is not one of its choices "
            f"({', '.join(layer.choices)}){earlier}")


def _depth_choices(cs, present: dict[str, bool], names: dict[str, str], label: str) -> None:
    """The choice of every elastic depth from which of its optional layers a block matched."""
    plan = cs.plan
    for g in {layer.gate[0] for layer in plan.layers if layer.gate is not None}:
        gated = [layer for layer in plan.layers if layer.gate is not None and layer.gate[0] == g]
        dec = cs.decisions[g]
        fits = [k for k in range(len(dec.choices)) if all(layer.gate[1][k] == present[layer.name] for layer in gated)]
        if not fits:
            have = sum(present[layer.name] for layer in gated)
            raise UserError(f"{label} has {have} of the optional layers of {dec.name} "
                            f"({', '.join(layer.name for layer in gated)}): not one of its depths {', '.join(dec.choices)}")
        names[dec.name] = dec.choices[fits[0]]


def _free_widths(cs, model: nn.Module, names: dict[str, str]) -> None:
    """Width decisions no block fixed (every layer of the stage skipped): the first choices whose network
    has the model's tensor shapes (else the first choices; the shape check then names the difference)."""
    free = [cs.decisions[d] for d in cs.plan.width_decisions if cs.decisions[d].name not in names]
    if not free:
        return
    shapes = [tuple(v.shape) for v in model.state_dict().values()]
    for combo in itertools.product(*(dec.choices for dec in free)):
        trial = {**names, **{dec.name: c for dec, c in zip(free, combo)}}
        with torch.device("meta"):
            net = build_standalone(cs, cs.encode(trial))
        if [tuple(v.shape) for v in net.state_dict().values()] == shapes:
            names.update(trial)
            return
    names.update({dec.name: dec.choices[0] for dec in free})


def timm_model(name: str, cs) -> nn.Module:
    """``timm.create_model(name)`` (no weights) with the space's input channels and classes."""
    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:8]
        raise UserError(f"--timm {name}: not a timm model" + (f"; similar: {', '.join(close)}" if close else ""))
    try:
        return timm.create_model(name, pretrained=False, num_classes=cs.num_classes, in_chans=cs.input_shape[0])
    except Exception as e:  # noqa: BLE001 - a model that does not take these arguments
        raise UserError(f"--timm {name}: timm cannot build it with {cs.input_shape[0]} input channels and "
                        f"{cs.num_classes} classes: {e}") from None


def arch_def_model(path: str | os.PathLike, cs) -> nn.Module:
    """The timm network of an arch_def file (JSON: a list of stages of block strings, or an object with
    ``"arch_def"`` such as an export's manifest.json) with the space's stem, head and family."""
    try:
        obj: Any = json.loads(open(path, encoding="utf-8").read())
    except FileNotFoundError:
        raise UserError(f"--arch-def {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--arch-def {path}: cannot read it ({e})") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None
    if isinstance(obj, dict):
        obj = obj.get("arch_def")
    if not (isinstance(obj, list) and obj and all(isinstance(s, list) and all(isinstance(b, str) for b in s)
                                                  for s in obj)):
        raise UserError(f"--arch-def {path}: expected a timm arch_def, a list of stages of block strings such "
                        f"as [[\"ds_r1_k3_s1_c16\"], [\"ir_r2_k3_s2_e6_c24\"]], or an object with \"arch_def\"")
    if cs.kind != "chain":
        raise UserError(f"space {cs.name} is a cell space; an arch_def describes a chain network")
    for stage in obj:
        for b in stage:
            try:
                decode_arch_def([[b]])
            except Exception as e:  # noqa: BLE001 - timm asserts on malformed strings
                raise UserError(f"--arch-def {path}: {b!r} is not a timm block string "
                                f"({type(e).__name__}: {e})") from None
    with torch.device("meta"):
        return timm_network(cs.plan, obj)
