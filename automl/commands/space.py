"""``automl space show|check|cost|profile|encode FILE [--set k=v ...]``: inspect or validate a ``.space``
file, predict one architecture's costs, measure a latency table on this machine, or encode a timm network
it contains."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import sys
import warnings
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from timm.models import get_deprecated_models

from automl._io import atomic_write_text, pasted_path, writable_file
from automl._signals import Interrupted, raising_on
from automl.commands import parse_set_args
from automl.commands._arch_args import arch_choices, arch_space_args, params_warning, read_arch, same_network
from automl.commands.run import one_process
from automl.compile import load_compiled
from automl.errors import Stopped, UserError, json_text, say, value_text
from automl.export import is_manifest
from automl.export.manifest import json_cost, json_costs, recorded_space, whole_metric
from automl.nn.measure import count_params
from automl.nn.membership import arch_def_model, encode_timm_model, timm_model
from automl.profile import (TABLE_FORMAT, apply_cost_table, check_profile_args, partial_path, partial_summary,
                            profile_space, read_cost_table, remove_partial, threads_warning, usable_cores,
                            write_cost_table)
from automl.recipe import TIME_METRICS

__all__ = ["main", "space_summary", "format_cost"]

MAX_CALIBRATE = 10_000  # `space profile --calibrate`: whole networks timed


def format_cost(value: float, metric: str = "params") -> str:
    """4421616 -> '4.42M', 13554 -> '13.6K' (params, macs); other metrics as plain numbers."""
    if metric in ("params", "macs"):
        v = abs(value)
        if v >= 1e9:
            return f"{value / 1e9:.3g}G"
        if v >= 1e6:
            return f"{value / 1e6:.3g}M"
        if v >= 1e4:
            return f"{value / 1e3:.3g}K"
        return f"{value:,.0f}"
    return f"{value:g}"


def space_summary(cs, metric: str = "params") -> dict:
    """The JSON object ``automl space show --json`` prints."""
    ct = cs.cost_table
    costs = {m: ct.costs(m) for m in ct.metrics}
    context = ct.context(metric)  # elastic widths: a fixed cost per combination of widths
    whole = {m: whole_metric(ct, m) for m in ct.metrics}
    # elastic widths: a choice's cost is a first-order average over the other widths, a real number
    each = {m: whole[m] and ct.context(m) is None for m in ct.metrics}
    decisions = []
    for d, dec in enumerate(cs.decisions):
        decisions.append({
            "name": dec.name,
            "choices": [{"name": c, "cost": json_cost(costs[metric][d, k], each[metric]),
                         "costs": {m: json_cost(costs[m][d, k], each[m]) for m in ct.metrics}}
                        for k, c in enumerate(dec.choices)],
        })
    return {
        "name": cs.name,
        "kind": cs.kind,
        "file": cs.filename,
        "input_shape": list(cs.input_shape),
        "num_classes": cs.num_classes,
        "params": dict(cs.params),
        "metric": metric,
        "metrics": list(ct.metrics),
        "num_decisions": cs.num_decisions,
        "sum_k": cs.sum_k,
        "size": _json_count(cs.size),  # architectures: the product of the choice counts
        "networks": _json_count(cs.networks),  # distinct networks (elastic depth: fewer than size)
        "decisions": decisions,
        # elastic widths: no one fixed cost (stem and head widths are searched), its range over the combinations
        **({"fixed_cost": json_cost(ct.fixed[metric], whole[metric])} if context is None else
           {"fixed_cost": None, "fixed_cost_range": [json_cost(context[1].min(), whole[metric]),
                                                     json_cost(context[1].max(), whole[metric])]}),
        "min_cost": json_cost(ct.min_total(metric), whole[metric]),
        "max_cost": json_cost(ct.max_total(metric), whole[metric]),
        # elastic widths: the per-choice costs above are the first-order summary; totals are exact
        "context_decisions": [cs.decisions[d].name for d in ct.context_decisions],
        # metric -> why its table only approximates the built networks' (a cell space's params and macs); {}: exact
        "estimate": dict(ct.estimate),
    }


def _load(args):
    """(the compiled space, the JSON of the architecture file of ``cost --arch`` or ``encode --arch-def``: None
    without one, the ``--set`` values it was compiled with). An export's manifest brings the parameters its network
    was exported with, and an ARCH.json of ``encode`` those its choices were encoded with (its ``space_args``),
    under the ``--set`` values, which may not change them (:func:`~automl.commands._arch_args.arch_space_args`)."""
    flag, path = {"cost": ("--arch", getattr(args, "arch", None)),
                  "encode": ("--arch-def", getattr(args, "arch_def", None))}.get(args.space_command, ("", None))
    overrides, arch_json = parse_set_args(args.set), None
    if path:
        arch_json = read_arch(path, flag)
        overrides = arch_space_args(args.file, path, arch_json, args.set, flag)
    return load_compiled(args.file, overrides), arch_json, overrides


# architecture counts up to this many digits are whole numbers in --json (Python's int/str conversion, and
# its json module's reading, stop at 4,300 digits by default)
JSON_DIGITS = 4000


# architecture counts below this print in full, with thousands separators (15,625); from it on, to 3
# significant digits in exponent form (9.12e+18)
EXACT_COUNT = 10**15


def _count(n: int) -> str:
    """``n`` whole below :data:`EXACT_COUNT`, else to 3 significant digits (rounded half up, in integers: a
    float's rounding of ``n`` is not always the nearest); beyond 300 digits, its power of ten (worked out
    without writing ``n`` in decimal, which Python refuses past 4,300 digits)."""
    if n < EXACT_COUNT:
        return f"{n:,}"
    if n >= 10**300:
        return f"~10^{math.floor(math.log10(n))}"
    exponent = len(str(n)) - 1
    unit = 10 ** (exponent - 2)
    head = (2 * n + unit) // (2 * unit)  # the first 3 digits, rounded half up
    if head == 1000:
        head, exponent = 100, exponent + 1
    return f"{head // 100}.{head % 100:02d}e+{exponent:02d}"


def _json_count(n: int) -> int | str:
    """``n`` for --json: the whole number, or past :data:`JSON_DIGITS` digits its power of ten as a string."""
    return n if n < 10**JSON_DIGITS else _count(n)


def _networks_note(cs) -> str:
    """`` (the product of the choice counts), N distinct networks (...)`` where elastic depth makes architectures
    that differ only in a layer their depth leaves out one network; empty where every architecture is a network."""
    networks = cs.networks
    if networks == cs.size:
        return ""
    return (f" (the product of the choice counts), {_count(networks)} distinct networks (elastic depth: the "
            f"choices of a layer the chosen depth leaves out do not matter)")


def _console() -> Console:
    """Where ``space show`` prints its table: a terminal at its own width (the table's cells fold to fit it, where
    the terminal would break its lines), a file or pipe at least 100 columns wide (no cell folded at 80)."""
    console = Console()
    return console if console.is_terminal else Console(width=max(100, console.width))


def _estimate_note(ct, metric: str = "params") -> str:
    """`` (table estimate: WHY; built networks can differ)`` where the cost table ``ct`` says its ``metric`` only
    approximates the built networks' (:attr:`~automl.compile.CostTable.estimate`); empty where it is exact."""
    why = ct.estimate.get(metric)
    return f" (table estimate: {why}; built networks can differ)" if why else ""


def _show_table(cs, metric: str) -> None:
    ct = cs.cost_table
    costs = ct.costs(metric)
    console = _console()
    dims = " x ".join(str(v) for v in cs.input_shape)
    title = f"space {cs.name} ({cs.kind}, input {dims}, {cs.num_classes} classes)"
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("decision", style="bold")
    table.add_column("K", justify="right")
    table.add_column(f"choices ({metric})")
    for d, dec in enumerate(cs.decisions):
        choices = ", ".join(f"{c} [cyan]{format_cost(float(costs[d, k]), metric)}[/]"
                            for k, c in enumerate(dec.choices))
        table.add_row(str(d), dec.name, str(len(dec.choices)), choices)
    console.print(table)
    if cs.params:
        console.print("parameters: " + ", ".join(f"{k}={v}" for k, v in cs.params.items()), highlight=False)
    console.print(f"decisions D = {cs.num_decisions}, sum of K = {cs.sum_k}, size = {_count(cs.size)} architectures"
                  + _networks_note(cs), highlight=False)
    context = ct.context(metric)
    fixed = (format_cost(ct.fixed[metric], metric) if context is None else  # per combination of widths
             f"{format_cost(float(context[1].min()), metric)}..{format_cost(float(context[1].max()), metric)}")
    console.print(f"{metric}: fixed {fixed}, "
                  f"smallest {format_cost(ct.min_total(metric), metric)}, "
                  f"largest {format_cost(ct.max_total(metric), metric)}"
                  + (f"  (metrics: {', '.join(ct.metrics)})" if len(ct.metrics) > 1 else "")
                  + _estimate_note(ct, metric), highlight=False)
    if context is not None:
        names = ", ".join(cs.decisions[d].name for d in ct.context_decisions)
        console.print(f"elastic width or resolution ({names}): a choice's cost depends on these choices; the "
                      f"table shows each choice's average over them (first-order), totals are exact", highlight=False)


def _out_file(path: str | None, example: str, inputs: dict[str, str | None]) -> str | None:
    """The file to write for ``--out FILE`` (None without one): FILE, or the file a link FILE leads to
    (:func:`~automl._io.writable_file`: it can be written), which is none of the command's ``inputs`` (what -> path:
    the space file, the --arch-def file), which writing it would overwrite."""
    if path is None:
        return None
    target = str(writable_file(path, "--out", example))
    for what, source in inputs.items():
        if source and os.path.isfile(path) and os.path.isfile(source) and os.path.samefile(path, source):
            raise UserError(f"--out {path} is {what} {source}, which writing would overwrite; give another "
                            f"file name, e.g. --out {example}")
    return target


def _encode(args, cs, arch_json, overrides: dict[str, str]) -> int:
    out = _out_file(args.out, "arch.json", {"the space file": args.file, "the --arch-def file": args.arch_def})
    if out:
        _only_an_arch_replaced(args.out)  # the user's name in its message, not the file a link leads to
    if args.timm:
        with warnings.catch_warnings():  # timm's own "Mapping deprecated model name ...": _timm_note says it
            warnings.filterwarnings("ignore", category=UserWarning, module=r"timm\.")
            model = timm_model(args.timm, cs)
        label, source = f"timm's {args.timm}", {"timm_model": args.timm}
    else:
        _no_arch_def_choices(args.arch_def, arch_json, args.file)
        with _made_for_another(args.arch_def, arch_json, cs):
            model = arch_def_model(args.arch_def, cs, arch_json)
        # by its resolved path, as "space" below: the same file whichever folder the ARCH.json is read from
        label, source = f"the arch_def of {args.arch_def}", {"arch_def_file": str(Path(args.arch_def).resolve())}
    note = _timm_note(args.timm)
    with _made_for_another(args.arch_def, arch_json, cs):
        try:
            names = encode_timm_model(cs, model, label)
        except UserError as e:
            raise (UserError(f"{e} ({note})") if note else _exported_with_se(e, arch_json)) from None
        if args.arch_def and cs.resolution_dec is not None:
            names[cs.decisions[cs.resolution_dec].name] = _arch_def_resolution(args.arch_def, arch_json, cs, names)
        arch = cs.encode(names)
        if args.arch_def and is_manifest(arch_json):  # what it records of its network is what its arch_def gives
            arch, names = _recorded_placement(cs, arch_json, arch, names)
            same_network(arch_json, cs, list(cs.decode(arch)), f"--arch-def {args.arch_def}",
                         "a bare arch_def (the manifest's \"arch_def\" list) for another network")
    # the space file by its resolved path: the same file whichever folder the ARCH.json is read from
    text = json.dumps({"space": str(Path(args.file).resolve()), **source, "choices": names, "space_args": overrides,
                       "params": json_cost(cs.cost_table.total(arch), whole=True)}, indent=1) + "\n"
    if out:
        atomic_write_text(out, text)
        print(f"{args.out}: {label} in space {cs.name}, {format_cost(cs.cost_table.total(arch))} params"
              + (f" ({note})" if note else ""))
    else:
        sys.stdout.write(text)
    return 0


@contextlib.contextmanager
def _made_for_another(path: str | None, obj, cs):
    """A :class:`UserError` inside (the ``--arch-def`` file ``path``, its JSON ``obj``, does not encode to a network
    of space ``cs``) says first which space the file was made for, where it records another one (an export's
    manifest its ``space_name``: :func:`~automl.export.manifest.recorded_space`), then what does not fit."""
    try:
        yield
    except UserError as e:
        other = recorded_space(obj, cs.name, getattr(cs, "filename", None), path) if path else None
        if other is None:
            raise
        raise UserError(f"--arch-def {path} {other}; its arch_def is not a network of space {cs.name}: {e}") from None


def _no_arch_def_choices(path: str, obj, space: str) -> None:
    """A :class:`UserError` where the ``--arch-def`` file ``path`` (its JSON ``obj``) holds architectures' choices
    and no timm arch_def: an ARCH.json (what ``encode`` writes), a results.json entry, a results.json or its
    list of architectures. They are encoded already: ``space cost`` and ``export`` read them as ``--arch``."""
    if isinstance(obj, dict) and "arch_def" not in obj and ("choices" in obj or "architectures" in obj):
        what = ("a run's results.json" if "choices" not in obj else
                "an export's manifest.json without an \"arch_def\"" if is_manifest(obj) else
                "a results.json entry" if "test_accuracy" in obj else "an ARCH.json")
    elif isinstance(obj, list) and obj and all(isinstance(a, dict) and "choices" in a for a in obj):
        what = "a list of architectures"
    else:
        return
    space_arg, arch_arg = (pasted_path(p) for p in (space, path))  # pasted from any folder
    raise UserError(f"--arch-def {path} is {what}: the choices of an architecture in the space, encoded already, not "
                    f"a timm arch_def (stages of block strings); give it as --arch instead: `automl space cost "
                    f"{space_arg} --arch {arch_arg}` or `automl export {space_arg} --arch {arch_arg} --out DIR`")


def _recorded_placement(cs, manifest: dict, arch, names: dict[str, str]):
    """``arch`` and ``names`` as the export ``manifest`` records them, where its "choices" are the same network:
    an arch_def leaves out ``skip`` layers, so that encoding it places a stage's skips after its layers, and a
    manifest whose choices skip a layer in the middle of a stage (the same network) keeps its own choices. Else
    ``arch`` and ``names`` as they are (:func:`same_network` then says what differs)."""
    try:
        recorded = cs.encode(manifest.get("choices"))
    except UserError:
        return arch, names
    same = cs.arch_def(recorded) == cs.arch_def(arch) and (
        cs.resolution_dec is None or int(recorded[cs.resolution_dec]) == int(arch[cs.resolution_dec]))
    if not same or recorded.tolist() == arch.tolist():
        return arch, names
    return recorded, dict(zip((d.name for d in cs.decisions), cs.decode(recorded)))


def _timm_note(name: str | None) -> str:
    """For ``--timm NAME`` where NAME is a deprecated alias timm keeps, ``NAME is timm's deprecated name of
    CURRENT`` (timm builds CURRENT, with a warning of its own that ``--timm`` silences); else empty."""
    current = get_deprecated_models().get(name.partition(".")[0]) if name else None
    return f"{name} is timm's deprecated name of {current}" if current else ""


def _exported_with_se(e: UserError, obj) -> UserError:
    """``e`` (the network of ``--arch-def``, its JSON ``obj``, is not in the space), saying why when it is an
    export's manifest of a network exported with squeeze-and-excitation added to its blocks
    (``se``: a run's retrain.se, or export's --se), which the space's choices do not have."""
    se = obj.get("se") if is_manifest(obj) else None
    if not se:
        return e
    return UserError(f"{e}; its manifest records se {se:g}: squeeze-and-excitation added to its MBConv blocks (a "
                     f"run's retrain.se, export's --se), which the space's choices do not have; its \"choices\" are "
                     f"the architecture: give it as --arch to `automl space cost` or `automl export`")


def _arch_def_resolution(path: str, obj, cs, names: dict[str, str]) -> str:
    """With elastic resolution, the choice of the input size an export's manifest given as ``--arch-def`` (``path``,
    its JSON ``obj``) records (its ``input_shape``: the resolution its architecture chose); a user error when the
    space offers no such choice. An arch_def without it (a bare one) keeps ``names``' choice: the space's input
    size."""
    dec = cs.decisions[cs.resolution_dec]
    shape = obj.get("input_shape") if isinstance(obj, dict) else None
    if shape is None:
        return names[dec.name]
    ok = isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and not isinstance(v, bool)
                                                             for v in shape)
    if not ok or shape[1] != shape[2]:
        raise UserError(f"--arch-def {path}: \"input_shape\" must be [channels, size, size] (the input size its "
                        f"network takes), got {json_text(shape)}; give the manifest.json the export wrote")
    if f"r{shape[1]}" not in dec.choices:
        given = obj.get("space_args") if isinstance(obj.get("space_args"), dict) else {}
        sets = " ".join(f"--set {k}={value_text(v)}" for k, v in given.items()) or "none"
        hint = (f"encode it with the space file it was exported from (its manifest's space_args apply: {sets})"
                if is_manifest(obj) else  # its space_args were applied (_load)
                f"encode it with the space and the --set values it was exported with (its space_args: {sets})")
        raise UserError(f"--arch-def {path}: its network takes {shape[1]} x {shape[2]} inputs, space {cs.name}'s "
                        f"{dec.name} offers {', '.join(c[1:] for c in dec.choices)}; {hint}")
    return f"r{shape[1]}"


def _cost(args, cs, arch_json, overrides: dict[str, str]) -> int:
    if args.cost_table:
        apply_cost_table(cs, read_cost_table(args.cost_table, cs))
    arch = cs.encode(arch_choices(arch_json, cs, args.arch))
    warning = params_warning(arch_json, cs, arch, "--arch", args.arch, overrides)
    if warning:
        print(warning, file=sys.stderr)
    ct = cs.cost_table
    sys.stdout.write(json.dumps(json_costs(ct, {m: ct.total(arch, m) for m in ct.metrics})) + "\n")
    why = ct.estimate.get("params")
    if why:  # on standard error: standard output stays the JSON scripts read
        with torch.device("meta"):  # no memory, no initialisation
            built = count_params(cs.build_standalone(arch))
        if built != ct.total(arch, "params"):  # where they agree, nothing to say
            print(f"note: params (and macs) are the cost table's estimate for cell space {cs.name} "
                  f"({why}); the network this architecture builds has {built:,} params (what "
                  f"`automl export` prints)", file=sys.stderr)
    return 0


def _profile(args, cs) -> int:
    check_profile_args(args.runtime, args.threads, args.batch, args.repeat, args.clock)
    if args.calibrate < 0:
        raise UserError(f"--calibrate {args.calibrate}: the number of whole networks must be >= 0")
    if args.calibrate > MAX_CALIBRATE:  # each is built and timed --repeat times: a typo would run for days
        raise UserError(f"--calibrate {args.calibrate}: at most {MAX_CALIBRATE:,} whole networks (a typo?)")
    _check_new_metric(args.metric, cs.cost_table.metrics)
    # before the measuring, which takes minutes on a large space
    out = _out_file(args.out, "latency.json", {"the space file": args.file})
    _only_a_table_replaced(args.out)  # the user's name in its message, not the file a link leads to
    # after the checks: a refused command prints its error alone
    warning = threads_warning(args.threads, usable_cores(), "so the table's latencies will not reflect the device")
    if warning:
        print(f"{warning}, or profile on the device itself", file=sys.stderr)
    partial = partial_path(out)  # what it measured, should it be stopped: the same command resumes from it
    try:
        with _signals_stop():
            table = profile_space(cs, runtime=args.runtime, threads=args.threads, batch=args.batch,
                                  repeat=args.repeat, metric=args.metric, progress=True,
                                  calibrate=args.calibrate, clock=args.clock, partial=partial)
    except (KeyboardInterrupt, _Signal) as e:
        signum = getattr(e, "signum", signal.SIGINT)
        kept = partial_summary(partial)
        print(f"stopped by {signal.Signals(signum).name}: " + (
            f"{kept} measured are kept in {partial}; run the same command again to measure the rest" if kept else
            "nothing was measured yet"), file=sys.stderr)
        raise Stopped(signum) from None
    write_cost_table(table, out)
    remove_partial(partial)
    apply_cost_table(cs, table)  # the extremes exact with elastic depth: a layer left out costs nothing
    lo, hi = cs.cost_table.min_total(args.metric), cs.cost_table.max_total(args.metric)
    print(f"{args.out}: {args.metric} of {cs.name} on {table['machine']['cpu']} ({args.threads} thread(s), "
          f"batch {args.batch}, onnxruntime {table['runtime']['version']}): fixed {table['fixed']:.3g} ms, "
          f"fastest {lo:.3g} ms, slowest {hi:.3g} ms")
    print(_calibration_line(table, args.calibrate))
    return 0


def _check_new_metric(metric: str, taken) -> None:
    """``space profile --metric``: a name a recipe's ``search.cost`` can give (a word: letters, digits, ``_``) that
    is none of the space's metrics (``taken``); else a :class:`UserError` suggesting a free name."""
    free, n = "latency", 1
    while free in taken:
        n += 1
        free = f"latency_{n}"
    example = f"e.g. --metric {free}"
    if free not in TIME_METRICS:  # a recipe's budgets take a time (8ms) for these names alone
        example += (f" (a recipe's search.budgets for {free} are plain milliseconds, such as 8; a time such as "
                    f"8ms is only for {' or '.join(TIME_METRICS)})")
    shown = metric or repr(metric)
    if not metric.isidentifier():
        raise UserError(f"--metric {shown}: pick a new metric name, a word of letters, digits and _ that does not "
                        f"start with a digit (a recipe's search.cost names it), {example}")
    if metric in taken:
        raise UserError(f"--metric {shown}: pick a new metric name (the space has {', '.join(taken)}), {example}")


MAX_TABLE_BYTES = 64 << 20  # a file this large at --out is no cost table (a space's is kilobytes)


def _only_a_table_replaced(path: str) -> None:
    """A :class:`UserError` where ``--out`` names a file that holds something other than a cost table (a recipe,
    a run's results.json, a model), which writing the table would replace; an earlier table (re-profiling) and
    an empty file are replaced."""
    _only_replaced(path, lambda d: d.get("format") == TABLE_FORMAT, "latency.json",
                   f"no cost table (no \"format\": \"{TABLE_FORMAT}\")", "the table")


def _only_an_arch_replaced(path: str) -> None:
    """``space encode --out``: as :func:`_only_a_table_replaced`, for an ARCH.json (an object with ``"choices"``:
    what encode writes, or one architecture of a run's results.json), which encoding again replaces; an export's
    manifest.json is not one (its folder's models would lose their record)."""
    _only_replaced(path, lambda d: "choices" in d and "architectures" not in d and not is_manifest(d), "arch.json",
                   "no architecture's choices (no \"choices\")", "the arch.json")


def _only_replaced(path: str, ours, name: str, holds: str, what: str) -> None:
    """A :class:`UserError` where the file ``path`` (``--out``) is neither empty (no bytes, or ``{}``) nor a JSON
    object that ``ours`` accepts (what the command writes), naming another file name (``name``, or ``name`` with
    ``-new``)."""
    try:
        size = os.path.getsize(path) if os.path.isfile(path) else 0
        if not size:
            return
        data = json.loads(Path(path).read_bytes()) if size <= MAX_TABLE_BYTES else None
    except (OSError, ValueError, RecursionError):
        data = None
    if isinstance(data, dict) and (not data or ours(data)):  # {} holds nothing to lose
        return
    stem, dot, ext = name.rpartition(".")
    other = name if os.path.basename(path) != name else f"{stem}-new{dot}{ext}"
    example = os.path.join(os.path.dirname(path), other)
    raise UserError(f"--out {path} is a file that holds {holds}, which writing {what} would replace; give another "
                    f"file name, e.g. --out {example}, or delete {path} first")


def _calibration_line(table: dict, calibrate: int) -> str:
    """How far the table (the sum of pieces timed alone, fitted) is from whole networks timed on this machine."""
    cal = table["calibration"]
    if cal is None:
        why = (f"--calibrate {calibrate} times whole networks of chain spaces only" if table["space"]["kind"] != "chain"
               else "--calibrate 0")
        return (f"not checked against whole networks ({why}): the table is the sum of pieces timed alone, which "
                f"can be tens of % off a whole network's latency")
    line = (f"checked on {cal['archs']} whole network(s) timed here: the sum of pieces alone was off by "
            f"{cal['mape_before_pct']:.1f} % on average, the table by {cal['mape_after_pct']:.1f} % on the networks "
            f"it was fitted to")
    held = cal["mape_heldout_pct"]
    if held is None:
        return line + "; --calibrate 2 or more also measures the error on networks left out of the fit"
    line += f" and by {held:.1f} % on each network left out of the fit (what to expect on others)"
    if held > 10:
        line += ("; that much error ranks close architectures by noise: profile again on an idle machine, with a "
                 "larger --repeat" + (" or with --clock cpu (one thread)" if table.get("clock") != "cpu" else ""))
    return line


class _Signal(Interrupted):
    """SIGTERM or SIGHUP while profiling (:func:`_signals_stop`): as ``KeyboardInterrupt`` for SIGINT, no ``except
    Exception`` takes it for an error, and the profile keeps what it measured."""


@contextlib.contextmanager
def _signals_stop():
    """Inside the block, SIGTERM and SIGHUP raise :class:`_Signal` where they would end the process (their handler
    is the default; not one ignored, as ``nohup`` ignores SIGHUP); a second signal ends it at once. SIGINT raises
    ``KeyboardInterrupt`` as it does anyway."""
    with raising_on([getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)], _Signal):
        yield


def _check_one(file: str, overrides: dict) -> None:
    """``automl space check FILE``: its one line (the space, its size, its params range) on standard output; a
    mistake in it is a :class:`UserError`."""
    if not Path(file).exists() and re.fullmatch(r"[A-Za-z_]\w*=.*", file):
        raise UserError(f"{file}: no such file; did you mean --set {file}?")
    cs = load_compiled(file, overrides)
    ct = cs.cost_table
    decisions = f"{cs.num_decisions} decision{'s' if cs.num_decisions != 1 else ''}"
    print(f"{file}: ok: space {cs.name} ({cs.kind}), {decisions}, sum of K = {cs.sum_k}, "
          f"{_count(cs.size)} architectures{_networks_note(cs)}, params "
          f"{format_cost(ct.min_total())}..{format_cost(ct.max_total())}{_estimate_note(ct)}", flush=True)


def _check(args) -> int:
    """``automl space check FILE [FILE ...]``: each file checked as one is (its line, or its error, which names it,
    on standard error), the ``--set`` values applied to each; exit 2 when any has a mistake, 0 when all pass. The
    files after the first are ``args.more`` (the CLI's second positional, where it takes several)."""
    files = [args.file, *(getattr(args, "more", None) or [])]
    overrides = parse_set_args(args.set)  # a malformed --set: one message, before any file
    if len(files) == 1:
        _check_one(args.file, overrides)  # one file: its error is the CLI's to print, as for every command
        return 0
    failed = 0
    for file in files:
        try:
            _check_one(file, overrides)
        except UserError as e:
            failed += 1
            text = e.text()
            say(text if file in text else f"error: {file}: {e}")  # named by its file, whatever the message
        except OSError as e:  # one the space reader does not word itself: the others are still checked
            failed += 1
            say(f"error: {file}: {e.strerror or e}; check the path (and its permissions)")
    return 2 if failed else 0


def main(args) -> int:
    if args.space_command == "profile":  # before the space is read: every torchrun process would time each piece
        one_process("automl space profile", "it times each piece on this machine's cores",
                    "automl space profile SPACE --out TABLE.json")
    if args.space_command == "check":
        return _check(args)
    cs, arch_json, overrides = _load(args)
    if args.space_command == "encode":
        return _encode(args, cs, arch_json, overrides)
    if args.space_command == "cost":
        return _cost(args, cs, arch_json, overrides)
    if args.space_command == "profile":
        return _profile(args, cs)
    metric = args.metric
    if metric not in cs.cost_table.metrics:
        raise UserError(f"--metric {metric or repr(metric)}: space {cs.name} has the metrics "
                        f"{', '.join(cs.cost_table.metrics)}")
    if getattr(args, "json", False):
        # "file" by its resolved path (as encode's "space"): the same file whichever folder the JSON is read from
        summary = {**space_summary(cs, metric), "file": str(Path(args.file).resolve())}
        sys.stdout.write(json.dumps(summary) + "\n")
        return 0
    _show_table(cs, metric)
    return 0
