"""Is a timm network a member of a chain space, and which choices make it?

:func:`encode_timm_model` matches the blocks of a timm ``EfficientNet`` / ``MobileNetV3`` to the space's
layers, in order: a layer takes the network's next block when one of its choices builds a block of the
same structure (module types, activations, squeeze-excitation, every weight shape), or takes none
(``skip``, or left out by an elastic depth). The search backtracks, so a layer that may be skipped does not
keep a block that a later layer needs. Anything the space does not hold (a block no layer offers, a stem or
head of another shape, another timm class) is a :class:`UserError` naming the layer and the block.
"""

from __future__ import annotations

import difflib
import itertools
import os
from collections import Counter
from typing import Any

import timm
import torch
from timm.models._efficientnet_builder import decode_arch_def
from torch import nn

from automl.errors import UserError
from automl.export import read_arch_json
from automl.nn.parts import chain_op
from automl.nn.standalone import build_standalone, timm_network

__all__ = ["encode_timm_model", "timm_model", "arch_def_model", "describe_block"]


# what a module computes with besides its type and weight shapes: a convolution's stride, padding, dilation and
# groups, a block's residual (timm's ``has_skip``), an activation's slope, a pool's type; and, compared over the
# whole network (a network-wide setting, timm's ``norm_kwargs``, named once rather than as a block's mismatch), a
# BatchNorm's eps
_SETTINGS = ("stride", "padding", "dilation", "groups", "padding_mode", "has_skip", "negative_slope", "pool_type")
_NETWORK_SETTINGS = _SETTINGS + ("eps",)


def _settings(m: nn.Module, names: tuple[str, ...] = _SETTINGS) -> tuple[tuple[str, Any], ...]:
    """``(name, value)`` of the settings ``names`` that ``m`` has as plain values."""
    out = []
    for name in names:
        v = getattr(m, name, None)
        if isinstance(v, (bool, int, float, str, tuple)):
            out.append((name, v))
    return tuple(out)


def _signature(m: nn.Module, settings: tuple[str, ...] = _SETTINGS) -> list[tuple]:
    """Module types (activations and SE gates included) with their ``settings`` (strides, residuals, ...) and
    weight shapes, in order, without names."""
    sig = [("module", type(x).__name__, _settings(x, settings)) for _, x in m.named_modules()]
    sig += [("tensor", tuple(v.shape)) for v in m.state_dict().values()]
    return sig


def _setting_difference(name: str, theirs: nn.Module, ours: nn.Module, settings: tuple[str, ...]) -> str | None:
    """``its conv_dw's stride is (1, 1) where the space's is (2, 2)``: the first of ``settings`` of module ``name``
    that differs between the two networks, or None."""
    mine = dict(_settings(ours, settings))
    for key, value in _settings(theirs, settings):
        if key in mine and mine[key] != value:
            if key == "has_skip":
                return (f"{f'its {name}' if name else 'it'} has {'a' if value else 'no'} residual connection where "
                        f"the space's has {'one' if mine[key] else 'none'}")
            whose = f"its {name}'s" if name else "its"
            return f"{whose} {key} is {value!r} where the space's is {mine[key]!r}"
    return None


def _module_difference(theirs: nn.Module, ours: nn.Module, settings: tuple[str, ...] = _SETTINGS) -> str | None:
    """What differs between ``theirs`` and ``ours`` (same module order): the first module of another type, else the
    first with other ``settings``; None when neither."""
    pairs = list(zip(theirs.named_modules(), ours.named_modules()))
    for (n1, m1), (_, m2) in pairs:
        t1, t2 = type(m1).__name__, type(m2).__name__
        if t1 != t2:
            return f"{f'its {n1}' if n1 else 'it'} is a {t1}{_MODULE_NOTES.get(t1, '')} where the space's is a {t2}"
    return next((d for (n1, m1), (_, m2) in pairs if (d := _setting_difference(n1, m1, m2, settings))), None)


def describe_block(m: nn.Module) -> str:
    """``InvertedResidual 16->64->24, 3x3 depthwise stride 2, SE, ReLU`` (for messages)."""
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    parts = [type(m).__name__]
    if convs:
        chans = [convs[0].in_channels] + [c.out_channels for c in convs if not _in_se(m, c)]
        steps = [c for i, c in enumerate(chans) if i == 0 or c != chans[i - 1]]  # 80->200->200->80: 80->200->80
        parts.append("->".join(map(str, steps)))
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
    MobileNetV3); :class:`UserError` naming the layer or part that the space does not contain.

    A stage of elastic width takes the width of its blocks (a stage whose blocks have 32 channels:
    ``w32``); a block whose width the stage does not offer is named with the widths it offers. With
    elastic resolution the architecture takes the space's input size (a timm network takes any)."""
    if cs.kind != "chain":
        raise UserError(f"space {cs.name} is a cell space; only chain spaces hold timm EfficientNet / "
                        f"MobileNetV3 networks")
    # stages of blocks (a ViT's or an MLP-Mixer's ``blocks`` is a flat list of blocks)
    if not (isinstance(getattr(model, "blocks", None), (nn.Sequential, nn.ModuleList))
            and all(isinstance(stage, (nn.Sequential, nn.ModuleList)) for stage in model.blocks)):
        raise UserError(f"{label} is a {type(model).__name__}, not a timm EfficientNet or MobileNetV3")
    _same_stem(cs, model, label)
    names = _LayerSearch(cs, _flat_blocks(model), label).run()
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
    if len(theirs_sd) != len(ours_sd) or _signature(model, _NETWORK_SETTINGS) != _signature(ours, _NETWORK_SETTINGS):
        diff = _module_difference(model, ours, _NETWORK_SETTINGS)
        where = f": {diff}" if diff else " outside the searched blocks (stem, head or activations)"
        raise UserError(f"{label} and the network of space {cs.name} differ{where}")
    return names


def _same_stem(cs, model: nn.Module, label: str) -> None:
    """:class:`UserError` where ``model``'s stem convolution (timm's ``conv_stem``) has other channels or another
    kernel than the stem of chain space ``cs``: the networks differ from their first layer on, which a message on
    the first block that does not fit (its input channels) would hide."""
    conv = getattr(model, "conv_stem", None)
    if not isinstance(conv, nn.Conv2d):
        return
    theirs, ours = (conv.out_channels, conv.kernel_size[0]), (cs.plan.stem_size, cs.plan.stem_kernel)
    if theirs != ours:
        raise UserError(f"{label}'s stem has {theirs[0]} channels ({theirs[1]}x{theirs[1]} convolution), space "
                        f"{cs.name}'s {ours[0]} ({ours[1]}x{ours[1]}): the networks differ from their stem on (a "
                        f"space whose stem line is `stem width {theirs[0]}"
                        + (f" kernel {theirs[1]}" if theirs[1] != ours[1] else "") + "` may hold it)")


class _LayerSearch:
    """Which choice of each layer builds the network's blocks, in order: a depth-first search that backtracks.

    A layer takes the next block when one of its ops (at a width its stage can still have) has the block's
    structure, or takes none: ``skip``, or left out by an elastic depth. Taking is tried first, so the search
    skips a layer only when taking its block leaves no way to match the rest. It succeeds when the layers and
    the blocks are used up together and each elastic depth has a depth for the layers it left out. States that
    failed, (layer, block, depths still possible, widths fixed), are remembered, so each is searched once. When
    nothing matches, the message is about the failure that got furthest into the blocks (the first found)."""

    def __init__(self, cs, blocks: list[tuple[str, nn.Module]], label: str):
        self.cs, self.layers, self.blocks, self.label = cs, cs.plan.layers, blocks, label
        self.stages = [int(name.split(".")[1]) for name, _ in blocks]  # each block's stage in the network
        self.width_names = sorted({cs.decisions[d].name for layer in self.layers
                                   for d in (layer.in_width_dec, layer.width_dec) if d is not None})
        self.gates = sorted({layer.gate[0] for layer in self.layers if layer.gate is not None})
        self.last_gated = {layer.gate[0]: i for i, layer in enumerate(self.layers) if layer.gate is not None}
        self.names: dict[str, str] = {}
        self.present: dict[str, bool] = {}
        self.left_out: list[str] = []
        self.dead: set[tuple] = set()
        self.failure: tuple | None = None  # (blocks used, kind, details) of the furthest failure
        # block -> (the first layer offered it that has no op of its structure, the skipped layers and the widths
        # then), for blocks no layer matched: the layer that should have taken the block names the mismatch
        self.unmatched: dict[int, tuple[int, list[str], dict[str, str]]] = {}
        self.matched: set[int] = set()
        self._block_sigs: dict[int, list[tuple]] = {}
        self._op_sigs: dict[tuple, list[tuple]] = {}

    def run(self) -> dict[str, str]:
        """The choices of every layer and elastic depth, or :class:`UserError`."""
        masks = tuple((1 << len(self.cs.decisions[g].choices)) - 1 for g in self.gates)
        final = self._visit(0, 0, masks, -1)
        if final is None:
            raise UserError(self._message())
        for g, mask in zip(self.gates, final):  # the first depth that fits
            dec = self.cs.decisions[g]
            self.names[dec.name] = dec.choices[(mask & -mask).bit_length() - 1]
        return self.names

    def _visit(self, i: int, j: int, masks: tuple[int, ...], last: int) -> tuple[int, ...] | None:
        """The depths still possible once layers ``i..`` took blocks ``j..`` (recorded in ``names``), or None.
        ``last``: the space stage of the layer that took block ``j - 1`` (-1: none yet); a block continues the
        network's stage of the block before it exactly when its layer continues that layer's space stage (the
        standalone network groups its blocks by the space's stages)."""
        if i == len(self.layers):
            if j == len(self.blocks):
                return masks
            self._fail(j, "left over", i)
            return None
        key = (i, j, masks, last, tuple(self.names.get(n) for n in self.width_names))
        if key in self.dead:
            return None
        layer, moved = self.layers[i], False
        for choice, widths, took, present in self._moves(i, j, last):
            moved = True
            after = self._gate(i, j, masks, present)
            if after is None:
                continue
            names, n_left_out = dict(self.names), len(self.left_out)
            self.names.update(widths)
            if layer.decision is not None:
                self.names[self.cs.decisions[layer.decision].name] = choice
            if layer.gate is not None:
                self.present[layer.name] = present
            if choice == "skip" and not took and j < len(self.blocks):
                self.left_out.append(layer.name)
            final = self._visit(i + 1, j + took, after, layer.stage if took else last)
            if final is not None:
                return final
            self.names = names
            del self.left_out[n_left_out:]
        if not moved:
            self._fail(j, "no match", i)
        self.dead.add(key)
        return None

    def _moves(self, i: int, j: int, last: int):
        """``(choice, widths it fixes, blocks it takes, present)`` for layer ``i`` at block ``j``, best first:
        the ops that match the block (one per width), then left out by its depth, then ``skip``."""
        layer = self.layers[i]
        if j < len(self.blocks) and (j == 0 or (last == layer.stage) == (self.stages[j] == self.stages[j - 1])):
            want = self._block_sig(j)
            for widths, at in list(_width_options(self.cs, layer, self.names)):
                wkey = (i, tuple(widths.items()))
                op = next((op for op in layer.choices if op != "skip" and self._op_sig(wkey, at, op) == want), None)
                if op is not None:
                    self.matched.add(j)
                    yield op, widths, 1, True
            if j not in self.matched:
                self.unmatched.setdefault(j, (i, list(self.left_out), dict(self.names)))
        if layer.gate is not None:  # beyond the depth: not there (its op decision is free: the first)
            yield layer.choices[0], {}, 0, False
        if "skip" in layer.choices:
            yield "skip", {}, 0, True

    def _gate(self, i: int, j: int, masks: tuple[int, ...], present: bool) -> tuple[int, ...] | None:
        """``masks`` with the depths of layer ``i``'s elastic depth that agree with it being ``present``; None
        (a failure) when it is the last layer of that depth and no depth agrees with all of them."""
        layer = self.layers[i]
        if layer.gate is None:
            return masks
        g, fits = layer.gate
        k = self.gates.index(g)
        mask = masks[k] & sum(1 << c for c, f in enumerate(fits) if f == present)
        if mask == 0 and self.last_gated[g] == i:
            gated = [x for x in self.layers[:i] if x.gate is not None and x.gate[0] == g]
            self._fail(j, "depth", (g, [x.name for x in gated] + [layer.name],
                                    sum(self.present[x.name] for x in gated) + present))
            return None
        return masks[:k] + (mask,) + masks[k + 1:]

    def _fail(self, j: int, kind: str, detail) -> None:
        if self.failure is None or j > self.failure[0]:
            self.failure = (j, kind, detail, dict(self.names), list(self.left_out))

    def _message(self) -> str:
        j, kind, detail, names, left_out = self.failure
        cs, label = self.cs, self.label
        if kind != "depth" and j in self.unmatched and j not in self.matched:  # no layer has the block's structure
            i, left_out, names = self.unmatched[j]
            return _no_match_message(cs, self.layers[i], self.blocks[j], label, left_out, names)
        if kind == "left over":
            name, block = self.blocks[j]
            return (f"{label}'s {name} ({describe_block(block)}) has no layer left in space {cs.name} "
                    f"(the space ends with layer {self.layers[-1].name})")
        if kind == "depth":
            g, gated, have = detail
            dec = cs.decisions[g]
            return (f"{label} has {have} of the optional layers of {dec.name} ({', '.join(gated)}): "
                    f"not one of its depths {', '.join(dec.choices)}")
        target = self.blocks[j] if j < len(self.blocks) else None
        return _no_match_message(cs, self.layers[detail], target, label, left_out, names)

    def _block_sig(self, j: int) -> list[tuple]:
        if j not in self._block_sigs:
            self._block_sigs[j] = _signature(self.blocks[j][1])
        return self._block_sigs[j]

    def _op_sig(self, wkey: tuple, at, op: str) -> list[tuple]:
        if (wkey, op) not in self._op_sigs:
            self._op_sigs[(wkey, op)] = _signature(chain_op(self.cs.plan, at, op, device="meta"))
        return self._op_sigs[(wkey, op)]


def _width_options(cs, layer, names: dict[str, str]):
    """``({width decision name: choice}, layer at those widths)`` for every width the layer can still have:
    a width decision already taken by an earlier block is kept."""
    decs = list(dict.fromkeys(d for d in (layer.in_width_dec, layer.width_dec) if d is not None))
    options = [[names[cs.decisions[d].name]] if cs.decisions[d].name in names else list(cs.decisions[d].choices)
               for d in decs]
    for combo in itertools.product(*options):
        chosen = {d: cs.decisions[d].choices.index(c) for d, c in zip(decs, combo)}
        yield {cs.decisions[d].name: c for d, c in zip(decs, combo)}, layer.at(chosen)


def _block_out_channels(block: nn.Module) -> int | None:
    """The output channels of a timm block: its last convolution outside squeeze-excitation."""
    convs = [c for c in block.modules() if isinstance(c, nn.Conv2d) and not _in_se(block, c)]
    return convs[-1].out_channels if convs else None


def _no_match_message(cs, layer, target, label: str, left_out: list[str], names: dict[str, str]) -> str:
    ins = sorted({at.in_ch for _, at in _width_options(cs, layer, names)})
    outs = sorted({at.out_ch for _, at in _width_options(cs, layer, names)})
    shape = (f"{'|'.join(map(str, ins))}->{'|'.join(map(str, outs))} channels"
             + (f", stride {layer.stride}" if layer.stride > 1 else ""))
    earlier = (f"; the layers before it that took no block were skipped: {', '.join(left_out)}"
               if left_out else "")
    if target is None:
        return (f"{label} has no block left for layer {layer.name} ({shape}) of space {cs.name}, which cannot "
                f"be skipped (its choices: {', '.join(layer.choices)}){earlier}")
    what = f"{label}'s {target[0]} ({describe_block(target[1])})"
    if layer.width_dec is not None:
        dec = cs.decisions[layer.width_dec]
        c = _block_out_channels(target[1])
        if c is not None and c not in outs:
            return (f"layer {layer.name} of space {cs.name}: {what} has {c} output channels, not a width of its "
                    f"stage: {dec.name} offers {', '.join(map(str, outs))}{earlier}")
    return (f"layer {layer.name} ({shape}) of space {cs.name}: {what} is not one of its choices "
            f"({', '.join(layer.choices)}){_closest_difference(cs, layer, target[1], names)}{earlier}")


# what a module type of timm's means, where its name does not say it
_MODULE_NOTES = {"Conv2dSame": " (TensorFlow 'same' padding)", "MixedConv2d": " (mixed kernel sizes)",
                 "CondConv2d": " (conditionally parameterised)"}


def _closest_difference(cs, layer, block: nn.Module, names: dict[str, str]) -> str:
    """``; it has the shapes of ir_k3_e4, but its conv_dw is a Conv2dSame ...``: the first module that differs
    from the first choice with the block's weight shapes. When no choice has them, the choice closest to the block
    (its type first, then the most weight shapes in common) as built here: ``; the closest choice, ds_k3, is
    DepthwiseSeparableConv 32->16, 3x3, squeeze-excitation, SiLU`` (the stage's SE and activation show)."""
    shapes = [tuple(v.shape) for v in block.state_dict().values()]
    closest = None  # (score, op, module)
    for _, at in _width_options(cs, layer, names):
        for op in layer.choices:
            if op == "skip":
                continue
            ours = chain_op(cs.plan, at, op, device="meta")
            mine = [tuple(v.shape) for v in ours.state_dict().values()]
            if mine != shapes:
                score = (type(ours) is type(block), sum((Counter(mine) & Counter(shapes)).values()))
                if closest is None or score > closest[0]:
                    closest = (score, op, ours)
                continue
            diff = _module_difference(block, ours)
            if diff is not None:
                return f"; it has the shapes of {op}, but {diff}"
            return (f"; it has the shapes of {op}, but {len(list(block.modules()))} modules where {op} has "
                    f"{len(list(ours.modules()))}")
    return "" if closest is None else f"; the closest choice, {closest[1]}, is {describe_block(closest[2])}"


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
    """``timm.create_model(name)`` (no weights) with the space's input channels and classes, on the meta device
    where timm can build it there (membership reads only module types, settings and shapes): a network of
    billions of parameters takes no memory. :class:`UserError` for a name timm does not have (with the close
    ones) and for a cell space, which holds no timm network."""
    if cs.kind != "chain":
        raise UserError(f"space {cs.name} is a cell space; only chain spaces hold timm EfficientNet / "
                        f"MobileNetV3 networks (--timm {name})")
    if not timm.is_model(name):
        raise UserError(f"--timm {name}: not a timm model{_close_models(name)}")
    arch, _, tag = name.partition(".")
    if tag and name not in timm.list_pretrained(f"{arch}.*"):  # timm's message would blame the classes
        tags = [n.partition(".")[2] for n in timm.list_pretrained(f"{arch}.*")]
        raise UserError(f"--timm {name}: timm's {arch} has no pretrained tag '{tag}'"
                        + (f" (its tags: {', '.join(tags)})" if tags else "")
                        + f"; the network is built without weights, so --timm {arch} is the same network")
    kw = {"pretrained": False, "num_classes": cs.num_classes, "in_chans": cs.input_shape[0]}
    try:
        with torch.device("meta"):
            return timm.create_model(name, **kw)
    except Exception:  # noqa: BLE001 - a model that reads tensor values while it builds: built for real below
        pass
    try:
        return timm.create_model(name, **kw)
    except Exception as e:  # noqa: BLE001 - a model that does not take these arguments
        raise UserError(f"--timm {name}: timm cannot build it with {cs.input_shape[0]} input channels and "
                        f"{cs.num_classes} classes: {e}") from None


def _close_models(name: str) -> str:
    """``; similar: a, b`` for a name timm does not have: the model names closest to it (a hub name's
    ``hf-hub:timm/`` prefix and a ``.tag`` left out, in lower case), else those containing its first word."""
    base = name.split(":", 1)[-1].rsplit("/", 1)[-1].split(".", 1)[0].lower()  # timm's names are lower case
    names = timm.list_models()
    close = [base] if base != name and base in names else difflib.get_close_matches(base, names, n=8, cutoff=0.75)
    if not close and len(base.split("_")[0]) >= 3:
        close = timm.list_models(f"*{base.split('_')[0]}*")[:8]
    hub = "; give timm's model name, not a hub name (the network is built without weights)" if ":" in name else ""
    return hub + (f"; similar: {', '.join(close)}" if close else "")


def arch_def_model(path: str | os.PathLike, cs, obj: Any = None) -> nn.Module:
    """The timm network of an arch_def file (JSON: a list of stages of block strings, or an object with
    ``"arch_def"`` such as an export's manifest.json) with the space's stem, head and family. ``obj``: the file's
    JSON where the caller has read it already (``automl space encode``), else it is read here as every
    architecture file is (:func:`~automl.export.read_arch_json`)."""
    if not path:  # `automl space encode --timm ""`: an empty model name comes here as no --arch-def
        raise UserError("no network given: --timm is empty; give a timm model name (e.g. --timm "
                        "mobilenetv3_large_100) or --arch-def FILE")
    if obj is None:
        try:
            obj = read_arch_json(path, "--arch-def")
        except RecursionError:
            raise UserError(f"--arch-def {path}: its JSON nests too deeply (thousands of levels) to be an "
                            f"arch_def; give the file automl wrote") from None
    if isinstance(obj, dict):
        if "arch_def" in obj and obj["arch_def"] is None and "choices" in obj:
            raise UserError(f"--arch-def {path}: this export's network has no timm arch_def (a block timm cannot "
                            f"build, such as FBNet's group-conv ir_k3_e1_g2, or a cell network); its manifest "
                            f"holds the architecture's choices: give it as --arch to `automl export` or "
                            f"`automl space cost`")
        obj = obj.get("arch_def")
    if not (isinstance(obj, list) and obj and all(isinstance(s, list) and all(isinstance(b, str) for b in s)
                                                  for s in obj)):
        raise UserError(f"--arch-def {path}: expected a timm arch_def, a list of stages of block strings such "
                        f"as [[\"ds_r1_k3_s1_c16\"], [\"ir_r2_k3_s2_e6_c24\"]], or an object with \"arch_def\"")
    if cs.kind != "chain":
        raise UserError(f"space {cs.name} is a cell space; an arch_def describes a chain network")
    _check_arch_def(path, obj)
    try:
        with torch.device("meta"):
            return timm_network(cs.plan, obj)
    except Exception as e:  # noqa: BLE001 - timm's builder asserts and indexes on what it cannot build
        raise UserError(f"--arch-def {path}: timm cannot build this arch_def ({type(e).__name__}: {e})") from None


def _check_arch_def(path, arch_def: list[list[str]]) -> None:
    """Refuse (:class:`UserError`) an empty stage, a string that is no timm block string and a block whose stride
    timm's builder asserts on (it builds strides 1 and 2)."""
    for i, stage in enumerate(arch_def):
        if not stage:
            raise UserError(f"--arch-def {path}: stage {i + 1} is empty; every stage holds at least one block "
                            f"string (leave the stage out)")
        for b in stage:
            try:
                stride = decode_arch_def([[b]])[0][0]["stride"]
            except Exception as e:  # noqa: BLE001 - timm asserts on malformed strings
                raise UserError(f"--arch-def {path}: {b!r} is not a timm block string "
                                f"({type(e).__name__}: {e})") from None
            if stride not in (1, 2):
                raise UserError(f"--arch-def {path}: {b!r} has stride {stride}; timm's blocks have stride 1 or 2")
