"""Compile a chain network (``stem``, ``stage``/``layer`` lines, ``head``) into a :class:`ChainPlan` and its
decisions. Every mistake is a :class:`SpaceError` at the construct that caused it."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

from torch import nn

from automl.compile.resolve import MAX_CH, Resolver, fmt_number
from automl.dsl import ir
from automl.nn.ops import ACTIVATIONS, BLOCK_ACTIVATIONS, FAMILIES
from automl.nn.registry import create_op, get_op
from automl.plan import ChainLayer, ChainPlan, Decision

__all__ = ["compile_chain", "head_features"]

MAX_REPEAT = 256
MAX_WIDTH_COMBOS = 4096  # combinations of elastic widths: the cost table holds one table per combination
CHAIN_MAX_STRIDE = 32  # timm EfficientNet's output_stride: beyond it timm dilates instead of striding


def head_features(r: Resolver, net: ir.Network, cells: bool = False) -> tuple[int, bool]:
    """Width of the 1x1 head conv (timm's ``num_features``, 0 when the network has no head conv), and
    whether the head is ``bn`` (a cell network's BN + ReLU before pooling, as NAS-Bench-201's)."""
    if net.head is None:
        return 0, False
    bn_why = ("" if cells else "a chain's head is timm's (1x1 conv, BN, activation); `bn` is a cell "
              "network's BN + ReLU before pooling")
    head = r.options(net.head, {"width": "", "stride": "the head has no stride", "repeat": "the head is one conv",
                                "kernel": "the head conv is 1x1", "bn": bn_why}, "head")
    if not head:
        raise r.err("`head` needs a width, e.g. `head width 1280`" + (", or `bn`" if cells else "") +
                    "; for a network without a head conv, remove the `head` line", net.head_pos or net.pos)
    if "width" in head and r.eval(head["width"].value) == 0:
        how = "remove the `head` line" + (" or write `head bn`" if cells else "")
        raise r.err(f"head width must be between 1 and {MAX_CH}, got 0{r.origin(head['width'].value)}; for a "
                    f"network without a head conv, {how}", head["width"].value.pos)
    width = r.whole(head["width"].value, "head width", 1, MAX_CH) if "width" in head else 0
    if "bn" in head and width:
        raise r.err("`bn` is the head without a conv (BN + ReLU before pooling); a head conv (`width`) has "
                    "its own BN: remove one", head["bn"].pos)
    return width, "bn" in head


def compile_chain(r: Resolver, net: ir.Network, in_chans: int, num_classes: int):
    """``(ChainPlan, decisions)`` of a chain network."""
    stem_size, stem_kernel, stem = _stem(r, net)
    act, family = _style(r, net, stem, stem_kernel)
    state = _ChainState(cur=stem_size, family=family)
    for si, st in enumerate(net.stages):
        _compile_stage(r, state, si, st)
    # a layer beyond the least depth of an elastic stage (gated) may be left out, as `skip` leaves a layer out
    if state.layers and all("skip" in layer.choices or layer.gate is not None for layer in state.layers):
        gated = any(layer.gate is not None for layer in state.layers)
        raise r.err("every layer of this network may be `skip`" + (" or left out by an elastic depth" if gated else "")
                    + ", so one of its networks has no block at all, which timm's builder cannot make; give at "
                    "least one layer no `skip` (e.g. a stage's first layer: `choose [ir_k3_e3] then [ir_k3_e3, "
                    "skip]`)" + (", within its stage's least depth (such a layer is in every network)" if gated
                                 else ""), net.stages[0].pos)
    num_features, _ = head_features(r, net)
    if family == "mobilenetv3" and num_features == 0:
        raise r.err("timm's MobileNetV3 has a head conv after pooling; add e.g. `head width 1280`",
                    net.head_pos or net.pos)
    plan = ChainPlan(in_chans, stem_size, stem_kernel, act, tuple(state.layers), num_features, num_classes,
                     len(net.stages), family)
    return plan, state.decisions


@dataclass
class _ChainState:
    """What the stages compiled so far have made: decisions, layers, names, width and total stride."""

    cur: int
    family: str = "efficientnet"
    total_stride: int = 2
    cur_widths: tuple[int, ...] = ()  # the previous stage's widths when elastic
    cur_dec: int | None = None  # and its width decision
    width_combos: int = 1  # product of the width decisions' choice counts so far
    decisions: list[Decision] = field(default_factory=list)
    layers: list[ChainLayer] = field(default_factory=list)
    # every name the stages generate (layers, decisions) -> (where, what made it, whether it is a decision)
    names: dict[str, tuple[ir.Pos, str, bool]] = field(default_factory=dict)
    stage_names: dict[str, ir.Pos] = field(default_factory=dict)


def _stem(r: Resolver, net: ir.Network):
    stem, stem_size, stem_kernel = r.stem(net, 32, chain=True)
    if "stride" in stem and r.whole(stem["stride"].value, "stem stride", 1, 2) != 2:
        raise r.err("a chain's stem has stride 2 (as timm's EfficientNet); remove `stride`",
                    stem["stride"].value.pos)
    return stem_size, stem_kernel, stem


def _style(r: Resolver, net: ir.Network, stem: dict, stem_kernel: int) -> tuple[str, str]:
    """The network's activation and timm family."""
    act = "relu"
    if net.late_activation is not None:
        raise r.err("a network-wide `activation` comes before the stem and stages (it applies to the whole "
                    "network); for one stage write it before `choose`: `stage NAME width W activation "
                    f"{net.activation.name} choose ...`", net.late_activation)
    if net.activation is not None:
        act = net.activation.name
        if act not in ACTIVATIONS:
            raise r.err(f"unknown activation {act!r}; use one of {', '.join(ACTIVATIONS)}", net.activation.pos)
    family = "efficientnet"
    if net.family is not None:
        family = net.family.name
        if family not in FAMILIES:
            raise r.err(f"unknown family {family!r}; a chain exports as timm's {' or '.join(FAMILIES)}",
                        net.family.pos)
        if family == "mobilenetv3" and stem_kernel != 3:
            raise r.err("timm's MobileNetV3 has a 3x3 stem; remove `kernel`", stem["kernel"].value.pos)
    return act, family


def _stage_style(r: Resolver, opts: dict) -> tuple[float, str | None]:
    """A stage's squeeze-excitation ratio (0: none) and activation (None: the network's)."""
    se = 0.0
    if "se" in opts:
        se = r.eval(opts["se"].value)
        if not 0 < se < 1:
            raise r.err(f"the squeeze-excitation ratio must be between 0 and 1 (exclusive), e.g. `se 0.25`; "
                        f"got {fmt_number(se)}{r.origin(opts['se'].value)}", opts["se"].value.pos)
        se = float(se)
    stage_act = None
    if "activation" in opts:
        stage_act = opts["activation"].value.name
        if stage_act not in BLOCK_ACTIVATIONS:
            raise r.err(f"a stage's activation is one of {', '.join(BLOCK_ACTIVATIONS)} (timm block strings "
                        f"write them _nre, _nr6, _nhs, _nsw, _nmi); got {stage_act!r}",
                        opts["activation"].value.pos)
    return se, stage_act


def _elastic_depth(r: Resolver, state: _ChainState, st, kw: str, opts: dict, repeat: int):
    """``(repeat, depths, depth decision)``: with ``depth D1, D2, ...`` the stage has max(D) layers and a
    decision of its depth; without, ``(repeat, None, None)``."""
    if "depth" not in opts:
        return repeat, None, None
    if "repeat" in opts:
        raise r.err(f"`depth` sets the number of layers of {kw} {st.name} (the largest depth); "
                    f"remove `repeat`", opts["repeat"].pos)
    depths = []
    for e in opts["depth"].value:
        v = r.whole(e, "a stage's depth", 1, MAX_REPEAT)
        if v in depths:
            raise r.err(f"depth {v} is listed twice{r.origin(e)}", e.pos)
        depths.append(v)
    if len(depths) < 2:
        raise r.err("elastic depth needs at least two depths, e.g. `depth 2, 3, 4`; for one depth "
                    "write `repeat N`", opts["depth"].pos)
    dec = _new_decision(r, state, f"{st.name}_depth", (st.pos, f"the depth decision of {kw} {st.name}", kw, st.name),
                        (f"d{v}" for v in depths))
    return max(depths), depths, dec


def _claim(r: Resolver, state: _ChainState, name: str, made: tuple, decision: bool) -> None:
    """Reserve a name the stages generate (a layer's, a decision's): two layers or decisions of one name would
    make messages, cost tables and profiles ambiguous. ``made``: (position, what makes the name, the statement's
    keyword and name)."""
    pos, what, kw, stmt = made
    if name in state.names:
        first, first_what, first_decision = state.names[name]
        kind = "decision name" if decision and first_decision else "name"
        raise r.err(f"duplicate {kind} {name!r} (first at line {first.line}: {first_what}): {what} has it too; "
                    f"rename {kw} {stmt} (a stage NAME names its layers NAME_1, NAME_2, ... and its elastic width "
                    f"and depth decisions NAME_width and NAME_depth)", pos)
    state.names[name] = (pos, what, decision)


def _new_decision(r: Resolver, state: _ChainState, name: str, made: tuple, choices) -> int:
    _claim(r, state, name, made, True)
    state.decisions.append(Decision(name, tuple(choices)))
    return len(state.decisions) - 1


def _elastic_width(r: Resolver, state: _ChainState, st, kw: str, opts: dict) -> tuple[int, tuple[int, ...], int | None]:
    """``(width, widths, width decision)``: with ``width A, B, ...`` the stage's width is chosen (one
    decision; ``width`` is the largest, which the supernet holds); otherwise ``(width, (), None)``."""
    if "width" not in opts:
        raise r.err(f"{kw} {st.name} needs a width, e.g. `width 24`", st.pos)
    value = opts["width"].value
    if not isinstance(value, tuple):
        return r.chain_width(value, f"{kw} width"), (), None
    widths: list[int] = []
    for e in value:
        w = r.chain_width(e, f"each width of {kw} {st.name}")
        if w in widths:
            raise r.err(f"this width rounds to {w} channels (a multiple of 8, as timm rounds), which is "
                        f"already a choice{r.origin(e)}; give distinct widths", e.pos)
        widths.append(w)
    state.width_combos *= len(widths)
    if state.width_combos > MAX_WIDTH_COMBOS:
        raise r.err(f"the elastic widths so far combine in {state.width_combos:,} ways; the cost table holds "
                    f"one table per combination, at most {MAX_WIDTH_COMBOS:,}: offer fewer widths",
                    opts["width"].pos)
    dec = _new_decision(r, state, f"{st.name}_width", (st.pos, f"the width decision of {kw} {st.name}", kw, st.name),
                        (f"w{w}" for w in widths))
    return max(widths), tuple(widths), dec


def _compile_stage(r: Resolver, state: _ChainState, si: int, st) -> None:
    kw = "layer" if st.single else "stage"
    if st.name in state.stage_names:
        raise r.err(f"duplicate {kw} name {st.name!r} (first at line {state.stage_names[st.name].line}); "
                    f"rename one of them", st.pos)
    state.stage_names[st.name] = st.pos
    opts = r.options(st.options, {"width": "", "stride": "",
                                  "repeat": "a layer is one layer; use `stage` to repeat" if st.single else "",
                                  "kernel": "the kernel is part of the op name, e.g. ir_k5_e6",
                                  "se": "", "activation": "",
                                  "depth": "a layer is one layer; use `stage` for elastic depth" if st.single
                                  else ""}, f"{kw} {st.name}")
    se, stage_act = _stage_style(r, opts)
    width, widths, width_dec = _elastic_width(r, state, st, kw, opts)
    stride = r.whole(opts["stride"].value, "stride", 1, 2) if "stride" in opts else 1
    repeat = r.whole(opts["repeat"].value, "repeat", 1, MAX_REPEAT) if "repeat" in opts else 1
    repeat, depths, gate_of = _elastic_depth(r, state, st, kw, opts, repeat)
    if stride == 2:
        state.total_stride *= 2
        if state.total_stride > CHAIN_MAX_STRIDE:
            raise r.err(f"this stride brings the total stride to {state.total_stride}; a chain network "
                        f"downsamples at most {CHAIN_MAX_STRIDE}x (timm's EfficientNet output stride)",
                        opts["stride"].pos)
    for i in range(repeat):
        in_ch, s = (state.cur, stride) if i == 0 else (width, 1)
        in_widths, in_dec = (state.cur_widths, state.cur_dec) if i == 0 else (widths, width_dec)
        lname = st.name if st.single else f"{st.name}_{i + 1}"
        same_shape = in_ch == width and not (i == 0 and (in_dec is not None or width_dec is not None))
        se_at = (state.family, min(in_widths or (in_ch,)), opts["se"].value.pos if "se" in opts else None)
        choices = _layer_choices(r, st, kw, i, repeat, lname, in_ch, width, s, se, same_shape, se_at)
        fixed = isinstance(st.body, ir.FixedBody)
        made = (st.pos, ("fixed " if fixed else "") + (f"layer {lname}" if st.single else f"layer {i + 1} of stage "
                                                       f"{st.name}"), kw, st.name)
        dec = None
        if fixed:
            _claim(r, state, lname, made, False)
        else:
            dec = _new_decision(r, state, lname, made, (c[0] for c in choices))
        gate = None
        if gate_of is not None and i + 1 > min(depths):
            gate = (gate_of, tuple(i + 1 <= v for v in depths))
        state.layers.append(ChainLayer(lname, si, in_ch, width, s, tuple(c[0] for c in choices), dec, se,
                                       stage_act, gate, width_dec, widths, in_dec, in_widths))
    state.cur, state.cur_widths, state.cur_dec = width, widths, width_dec


def _layer_choices(r: Resolver, st, kw: str, i: int, repeat: int, lname: str, in_ch: int, width: int, s: int,
                   se: float, same_shape: bool, se_at: tuple):
    """The ops layer ``i`` of a stage offers, each checked against the layer's shape and the stage's SE
    (``same_shape``: whether its input and output widths always agree, elastic widths included; ``se_at``:
    the family, the least input width and the position of the stage's ``se``, for :func:`_check_se_size`)."""
    body = st.body
    if isinstance(body, ir.FixedBody):
        choices = r.expand(ir.ChoiceRef(body.op.name, body.op.pos), "block", f"{kw} {st.name}")
        if len(choices) > 1:
            raise r.err(f"`fixed` takes one op, but choice set {body.op.name!r} offers {len(choices)} "
                        f"({', '.join(c[0] for c in choices)}); write one op (`fixed {choices[0][0]}`) or "
                        f"search them: `choose {body.op.name}`", body.op.pos)
        if choices[0][0] == "skip":
            raise r.err("a fixed layer cannot be 'skip'; leave the layer out", body.op.pos)
        src = ir.ChoiceRef(body.op.name, body.op.pos)
    else:
        if body.rest is not None and repeat == 1:
            raise r.err(f"`then` gives the choices of layers 2 and on, but {kw} {st.name} has one "
                        f"layer; add `repeat N` or remove `then ...`", body.rest.pos)
        src = body.first if i == 0 or body.rest is None else body.rest
        choices = r.expand(src, "block", f"{kw} {st.name}")
    for op, pos, via in choices:
        info = get_op(op)
        if se and op != "skip" and not info.se:
            raise r.err(f"{kw} {st.name} has `se {se:g}` but {op!r} takes no squeeze-excitation; "
                        f"give it its own stage", pos if via is None else src.pos)
        _check_se_size(r, lname, op, info, (se_at[1], width, s), se, se_at[0],
                       (pos if via is None else src.pos, se_at[2]))
        if (info.same_channels and not same_shape) or (info.stride1_only and s != 1):
            where = pos if via is None else src.pos
            change = [] if same_shape else [f"{in_ch} -> {width} channels" if in_ch != width else "an elastic width"]
            change += [f"stride {s}"] if s != 1 else []
            msg = f"layer {lname} changes shape ({', '.join(change)}), so it cannot be {op!r}"
            if via is not None:
                msg += f" (choice set {via!r} offers it)"
            if not st.single and i == 0 and repeat > 1:
                mine = [c[0] for c in choices if c[0] != op]  # written in place: the same ops without this one
                own = "SET" if via is not None else f"[{', '.join(mine) or 'OP, ...'}]"
                rest = via or f"[{', '.join(c[0] for c in choices) if mine else 'OP, ..., ' + op}]"
                msg += f"; give the first layer its own choices: `choose {own} then {rest}`"
            raise r.err(msg, where)
    if [c[0] for c in choices] == ["skip"]:
        _only_skip(r, st, kw, i, lname, src)
    return choices


def _only_skip(r: Resolver, st, kw: str, i: int, lname: str, src) -> None:
    """A layer whose only choice is ``skip`` is never there and its decision changes nothing (it only weighs in
    the sum of K), as a cell node that offers only ``none``: an error at the choices that make it."""
    body = st.body
    where = "choose" if i == 0 else "then"
    others = [body.first] + ([body.rest] if body.rest is not None else [])
    if all([c[0] for c in r.expand(o, "block", f"{kw} {st.name}")] == ["skip"] for o in others):
        fix = f"remove {kw} {st.name}"
    elif i == 0:
        fix = "leave the first layer out (one layer fewer, each choosing what `then` offers)"
    else:
        fix = "leave the layers after the first out (remove `then` and `repeat` or `depth`)"
    who = f"layer {lname}" + ("" if st.single else f" of stage {st.name}")
    raise r.err(f"{who} offers only 'skip', so it is never there and its decision "
                f"changes nothing; offer other ops too (`{where} [ir_k3_e3, skip]`), or {fix}", src.pos)


def _check_se_size(r: Resolver, lname: str, op: str, info, shape: tuple[int, int, int], se: float, family: str,
                   where: tuple) -> None:
    """An op's squeeze-excitation (its ``_seR`` suffix, else the stage's ``se``) has at least one channel at the
    layer's least input width ``shape[0]``: timm sizes it ``round(channels x ratio)``, and a ratio that rounds
    to 0 would build a block of empty convs. ``where``: the op's position and the stage's ``se``."""
    own = re.search(r"_se([^_]+)", info.block_str or "")
    ratio = float(own.group(1)) if own else (se if info.se else 0.0)
    if not ratio or ratio * shape[0] >= 2:  # round(0.9 x C x ratio) >= 1 whatever the expansion
        return
    with warnings.catch_warnings():  # torch warns that it cannot initialise the empty weights
        warnings.simplefilter("ignore", UserWarning)
        block = create_op(op, *shape, se=se, family=family, device="meta")
    if not any(isinstance(m, nn.Conv2d) and 0 in (m.in_channels, m.out_channels) for m in block.modules()):
        return
    whose = f"{op!r}" if own else f"`se {ratio:g}` on {op!r}"
    raise r.err(f"layer {lname}: the squeeze-excitation of {whose} would have 0 channels at {shape[0]} input "
                f"channels (timm rounds channels x {ratio:g} down to 0); use a ratio of at least "
                f"{1 / shape[0]:.3g} (1/{shape[0]}), e.g. 0.25", where[0] if own else where[1])
