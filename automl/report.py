"""The run's results: ``results.json`` (fixed schema), ``report.md`` (one table and the plot) and
``pareto.png`` (the search's cost metric vs test accuracy, one point per network, labelled with ε, or with its
budget, each budget drawn as a dotted line; members that are one network share a point and its label).
Members that derived the same architecture (the same choices) are named under report.md's table: one network
when they have the same weights (retrained once, or one supernet's weights), else the same architecture.
Per architecture: params, MACs, the cost, test accuracy, and the onnxruntime latency of its export measured
on this machine (fp32, and int8 when exported). :func:`results_problem` and :func:`ranking_problem` name what
makes a results.json read back (``automl rank``, ``--resume``) one the report cannot be written from."""

from __future__ import annotations

import io
import json
import logging
import math
import os
import re
import sys
import textwrap
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console
from rich.table import Table
from rich.markup import escape

from automl._io import atomic_write_bytes, atomic_write_json

__all__ = ["write_report", "render_markdown", "plot_pareto", "plot_ranking", "summary_table", "print_summary",
           "short_number", "budget_text", "UNCONSTRAINED", "results_problem", "ranking_problem", "format_accuracy",
           "int8_float_words"]


# ---- what report.md and the plots read of results.json (one written by this automl, an older one, or edited)

class _Read(BaseModel):
    """A part of results.json as the report reads it: each value of the type automl writes (``true`` is not a
    number, ``"3"`` not a count), null where automl writes null for a missing or non-finite measurement; keys
    an older automl did not write are optional, keys the report does not read are not looked at."""

    model_config = ConfigDict(strict=True, extra="ignore")


class _Coverage(_Read):
    """An int8 model's ``coverage`` (the manifest's ``int8.coverage``): its weight-bearing ops onnxruntime runs in
    int8 and in float, and the op types it runs in float."""
    quantized: int = Field(ge=0)
    float_: int = Field(alias="float", ge=0)
    float_ops: list[str]


class _Int8(_Read):
    error: str | None = None
    test_accuracy: float | None = None
    latency_ms: float | None = None
    size_bytes: int | None = None
    fp32_size_bytes: int | None = None
    coverage: _Coverage | None = None  # null or absent: measured by an earlier automl


class _Member(_Read):
    choices: list[str]
    cost: float
    epsilon: float | None = None
    budget: float | None = None
    retrained_budget: float | None = None
    params: int | None = None
    test_accuracy: float | None = None
    macs: float | None = None
    latency_ms: float | None = None
    weights: str | None = None
    onnx: str | None = None
    onnx_error: str | None = None
    int8: _Int8 | None = None


class _Protocol(_Read):
    batch: int
    threads: int
    clock: Literal["wall", "cpu"] = "wall"


class _Origin(_Read):
    from_: str | None = Field(None, alias="from")
    forced: bool = False
    differs: list[str] | None = None


class _Results(_Read):
    recipe: str
    method: str
    # how the run used its searcher (automl/search/_registry.py's modes), which words the report (_mode): "sample",
    # drawn without a supernet (the random baseline); absent from an earlier automl's results.json, which its
    # method name tells
    searcher_mode: str | None = None
    search_seconds: float
    phase_seconds: dict[str, float]
    cost_metric: str = "params"
    latency_protocol: _Protocol | None = None
    supernet: _Origin | None = None
    world_sizes: list[int] | None = None  # each part's processes, for a run resumed with another count
    architectures: list[_Member]


class _Pairs(_Read):
    total: int
    concordant: int
    discordant: int
    tied: int
    undefined: int = 0


class _Ranked(_Read):
    params: int | None = None
    supernet_loss: float | None = None
    supernet_accuracy: float | None = None
    supernet_loss_batch_stats: float | None = None
    supernet_accuracy_batch_stats: float | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None


class _Ranking(_Read):
    kendall_tau: float | None
    spearman: float | None
    kendall_tau_batch_stats: float | None
    pairs: _Pairs
    archs: list[_Ranked]
    truth: Literal["loss", "accuracy"] = "accuracy"
    seeds: int = Field(1, ge=1)
    retrain_epochs: int | None = None
    reused_retrainings: int = Field(0, ge=0)  # automl rank's: those an earlier ranking of the run recorded


_SHOULD_BE = {"float_type": "a number", "int_type": "a whole number", "string_type": "text", "bool_type": "true or "
              "false", "list_type": "a list", "dict_type": "an object", "model_type": "an object"}


def _problem(model: type[_Read], data, prefix: str) -> str | None:
    """The first key of ``data`` the report cannot read as ``model`` says, and why: ``architectures[0].cost:
    missing``, ``search_seconds: null is not a number``; None when there is none."""
    try:
        model.model_validate(data)
        return None
    except ValidationError as e:
        error = e.errors()[0]
    key = prefix
    for part in error["loc"]:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    if error["type"] == "missing":
        return f"{key}: missing"
    got = json.dumps(error["input"], default=str)
    got = got if len(got) <= 40 else got[:37] + "..."
    return f"{key}: {got} is not {_SHOULD_BE.get(error['type'], error['msg'].removeprefix('Input should be '))}"


def results_problem(results: dict) -> str | None:
    """What makes ``results`` (results.json) one report.md and pareto.png cannot be written from (edited or
    damaged): its first key that is missing or not of the type automl writes (its ranking aside:
    :func:`ranking_problem`); None when there is none."""
    return _problem(_Results, results, "")


def ranking_problem(ranking) -> str | None:
    """:func:`results_problem` for results.json's ``ranking`` section (report.md's paragraph and ranking.png)."""
    return _problem(_Ranking, ranking, "ranking")


def _budgeted(results: dict) -> bool:
    return any(_bound(a) is not None for a in results["architectures"])


def _bound(a: dict) -> float | None:
    """The budget architecture ``a`` was searched or drawn under: ``budget`` (search.budgets, of the search
    space's network, as ``cost``), else ``retrained_budget`` (search.random_budgets, of the retrained network)."""
    return a.get("budget") if a.get("budget") is not None else a.get("retrained_budget")


def _retrained_budgets(results: dict) -> bool:
    """Whether the budgets are search.random_budgets: they bound the retrained network, not the ``cost`` column."""
    return any(a.get("retrained_budget") is not None for a in results["architectures"])


def short_number(x: float) -> str:
    """150000 -> '150k', 2500000 -> '2.5M', 12.5 -> '12.5'; a value that rounds to 1000 of a unit is 1 of the
    next (999,960 -> '1M', not '1000k'; G is the largest: 999,960,000,000 -> '1000G')."""
    bigger = None  # the next unit up
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            text = f"{x / div:.4g}"
            if bigger is not None and abs(float(text)) >= 1000:
                return f"{'-' if x < 0 else ''}1{bigger}"
            return text + suffix
        bigger = suffix
    return f"{x:.6g}"


def round_sig(x: float, up: bool) -> float:
    """``x`` rounded up or down at its fourth significant digit: a limit a message suggests, in the precision
    :func:`short_number` shows, that must itself pass (13,554 up -> 13,560, where short_number gives 13.55k)."""
    if x <= 0:
        return x
    unit = 10.0 ** (math.floor(math.log10(x)) - 3)
    return (math.ceil(x / unit - 1e-9) if up else math.floor(x / unit)) * unit


def _fmt_cost(v) -> str:
    """A cost in full: ``2,393,962`` for a whole number (parameters, MACs), else 6 significant digits; ``—`` (as
    every missing measurement in the report) for a value that is not a finite number (results built in Python:
    a results.json with a null cost is refused before it is rendered)."""
    if not _finite(v):
        return "—"
    v = float(v)
    return f"{int(v):,}" if v.is_integer() and abs(v) < 1e15 else f"{v:,.6g}"


def alike_in_short(b: float, budgets) -> bool:
    """Whether another of ``budgets`` has ``b``'s :func:`short_number` (1,234,567 and 1,235,000 are both
    ``1.235M``): then the logs and the report name ``b`` in full."""
    short = short_number(b)
    return any(c is not None and c != b and short_number(c) == short for c in budgets)


# a member of search.budgets without a budget (null), as the recipe's comments and the docs name it
UNCONSTRAINED = "unconstrained"


def _unit(metric: str) -> str:
    """What follows a cost of ``metric`` (a budget) where no header names the unit: `` ms`` for a latency table's
    milliseconds; a count (parameters, MACs) has none."""
    return " ms" if metric == "latency" else ""


def budget_text(b: float, budgets, metric: str = "params") -> str:
    """``b`` in short (``150k``), or in full when it is :func:`alike_in_short` another of ``budgets``; with its
    unit (``0.05 ms``: a latency budget read without the sentence that says so was a bare number)."""
    if not alike_in_short(b, budgets):
        return short_number(b) + _unit(metric)
    return (_fmt_cost(b) if float(b).is_integer() else repr(float(b))) + _unit(metric)


def _budgets(results: dict) -> list:
    return [_bound(a) for a in results["architectures"]]


def _budget(a: dict, results: dict) -> str:
    """``≤ 150k``; ``≤ 150k (retrained)`` for a budget of the retrained network (search.random_budgets); ``≤ 0.05
    ms`` for a latency; ``unconstrained`` for a member without one (null in ``search.budgets``)."""
    if _bound(a) is None:
        return UNCONSTRAINED
    return (f"≤ {budget_text(_bound(a), _budgets(results), results.get('cost_metric', 'params'))}"
            + (" (retrained)" if a.get("budget") is None else ""))


def _label(a: dict, i: int, results: dict) -> str:
    """A member as report.md's lines and pareto.png name it: its budget (:func:`_budget`), else ``ε=0.5``, or
    ``random 1`` for the random baseline's draw."""
    if _budgeted(results):
        return _budget(a, results)
    return f"ε={a['epsilon']:g}" if a.get("epsilon") is not None else f"random {i}"


def _latency_note(results: dict) -> list[str]:
    """How the latencies in the table were timed (none: no line): the protocol results.json records (batch 1, one
    thread unless search.cost_table's table was measured otherwise)."""
    if not any(_finite(a.get("latency_ms")) for a in results["architectures"]):
        return []
    p = results.get("latency_protocol") or {"batch": 1, "threads": 1}
    threads = "one thread" if p["threads"] == 1 else f"{p['threads']} threads"
    clock = ", the thread's CPU time" if p.get("clock") == "cpu" else ""
    return ["", f"Latency: onnxruntime on this machine (CPU, batch {p['batch']}, {threads}{clock}), median after "
                f"warm-up." + _over_budget(results)]


def _over_budget(results: dict) -> str:
    """`` Measured above its budget: ...`` for the members of a latency search whose measured latency exceeds their
    budget, with why that can be; "" where none does."""
    if results.get("cost_metric") != "latency":
        return ""
    over = [f"{_label(a, i, results)} ({_fmt_ms(a['latency_ms'])})" for i, a in enumerate(results["architectures"])
            if _finite(_bound(a)) and _finite(a.get("latency_ms")) and a["latency_ms"] > _bound(a)]
    if not over:
        return ""
    return (f" Measured above its budget: {', '.join(over)}. A budget bounds the cost table's prediction (the cost "
            f"column), which the search sees; a measurement is one median on this machine, which varies from run to "
            f"run with the machine's load (`automl space profile` says how much where it is large).")


# the mode of each built-in method (automl/search/_registry.py): an earlier automl's results.json records no
# searcher_mode, and these were the methods it had
_METHOD_MODES = {"importance_sampling": "joint", "separate": "per_member", "simultaneous": "interleaved",
                 "random": "sample"}


def _mode(results: dict) -> str | None:
    """How the run used its searcher (``joint``, ``per_member``, ``interleaved``, ``sample``: the modes of
    automl/search/_registry.py), which decides report.md's wording, so that a plugin searcher is worded as the
    built-in of its mode: results.json's ``searcher_mode``; an earlier automl's results.json, without it, by its
    method's name (None for a name that is no built-in one)."""
    mode = results.get("searcher_mode")
    return mode if mode is not None else _METHOD_MODES.get(results["method"])


def _drawn(results: dict) -> bool:
    """Whether the run's members were drawn without a supernet and have no ε: a searcher of mode ``sample`` (the
    random baseline, or a plugin registered so: :func:`_mode`), which also nulls its ``utility``
    (automl/pipeline/results.py)."""
    return _mode(results) == "sample"


def _eps_header(results: dict) -> str:
    """The header of the table's ε column: ``draw`` for the random baseline (:func:`_drawn`), which has no ε and
    numbers its draws there (``random 0``), else ``ε``."""
    return "draw" if _drawn(results) else "ε"


def _fmt_eps(a: dict, i: int) -> str:
    return f"{a['epsilon']:.3g}" if a.get("epsilon") is not None else f"random {i}"


def _eps_cell(a: dict, i: int) -> str:
    """The ε column without budgets: ε as the recipe gives it (``0.5``, under the header ``ε``: the summary table
    said ``ε=0.5``), or the random baseline's draw."""
    return f"{a['epsilon']:g}" if a.get("epsilon") is not None else f"random {i}"


# A measurement that is missing (null in results.json) or not finite (NaN in memory: results.json writes it
# as null too) is "—" in the table, never "nan %".
def format_accuracy(acc) -> str:
    """An accuracy in percent (``98.39 %``); ``—`` where it is missing or not finite."""
    return f"{100 * acc:.2f} %" if _finite(acc) else "—"


def _fmt_macs(v) -> str:
    """Multiply-adds in short, as the budgets are written (``400k``, ``1.235M``; 999,960 rounds to ``1M``, not
    ``1000k``)."""
    return short_number(float(f"{v:.4g}")) if _finite(v) else "—"


def _fmt_ms(v) -> str:
    return f"{v:.3g} ms" if _finite(v) else "—"


def _metric_words(metric: str) -> str:
    """The cost metric as the report names it: a latency table's costs are milliseconds."""
    return "latency, ms" if metric == "latency" else metric


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _fmt_int8(q) -> str:
    if not q:
        return "—"
    if q.get("error"):
        return "not quantised"
    size = q["size_bytes"] / q["fp32_size_bytes"] if q.get("fp32_size_bytes") and _finite(q.get("size_bytes")) else None
    return (f"{_fmt_ms(q.get('latency_ms'))}, {format_accuracy(q.get('test_accuracy'))}, "
            + (f"{size:.2f}x" if size is not None else "—") + (", partly in float" if _float_ops(q) else ""))


# the weight-bearing op types of an int8 model's coverage (its "quantized" and "float" count them;
# automl.export.quantize counts them by these): an op of these in its "float_ops" has an int8 kernel in
# onnxruntime, which did not use it there; the others have none
WEIGHT_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm", "Einsum"})


def _float_ops(q) -> list[str]:
    """The op types the int8 model of the int8 entry ``q`` (results.json's or a manifest's) runs in float, as its
    ``coverage`` records them; [] for a failed quantisation, or an entry without a coverage (an earlier automl's)."""
    cover = q.get("coverage") if isinstance(q, dict) and not q.get("error") else None
    ops = cover.get("float_ops") if isinstance(cover, dict) else None
    return [str(op) for op in ops] if isinstance(ops, list) else []


def _float_text(ops: list[str], verb: str, counts: str | None) -> str:
    """``runs HardSigmoid, ReduceMean in float (onnxruntime has no int8 kernel for them: each costs a dequantise and
    a quantise)`` (``verb``: ``runs``), with ``counts`` (how many weight-bearing ops run in float) after the why."""
    plain = [op for op in ops if op not in WEIGHT_OPS]
    clauses = []
    if plain:
        them = ("it" if len(plain) == 1 else "them") if len(plain) == len(ops) else ", ".join(plain)
        clauses.append(f"onnxruntime has no int8 kernel for {them}: {'it' if len(plain) == 1 else 'each'} costs a "
                       f"dequantise and a quantise")
    if counts:
        clauses.append(counts)
    return f"{verb} {', '.join(ops)} in float" + (f" ({'; '.join(clauses)})" if clauses else "")


_WEIGHT_WORDS = "weight-bearing ops (Conv, MatMul, Gemm)"


def _weight_count(cover: dict) -> tuple[int, int] | None:
    """(how many weight-bearing ops run in float, how many there are) of an int8 model's ``coverage``; None where
    none runs in float."""
    n, m = cover.get("quantized"), cover.get("float")
    ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (n, m))
    return (m, n + m) if ok and m > 0 else None


def int8_float_words(q) -> str | None:
    """What of the int8 model of the int8 entry ``q`` (a manifest's or results.json's) onnxruntime runs in float, in
    words after "it" (``runs HardSigmoid in float (onnxruntime has no int8 kernel for it: ...)``); None where it
    runs nothing in float, or the entry records no ``coverage`` (an earlier automl's) or a failed quantisation."""
    ops = _float_ops(q)
    if not ops:
        return None
    count = _weight_count(q["coverage"])
    return _float_text(ops, "runs", count and f"{count[0]} of its {count[1]} {_WEIGHT_WORDS} run in float")


# report.md's free texts (an error, a recipe's name, a difference of settings) are shown as they are: on one line
# (a line break in an error of an older results.json, or an edited one, started a list, a heading or a table), and
# with what Markdown would read as markup escaped: "__init__" was a bold "init", "/data/_x_/" an italic "x",
# "<lambda>" an HTML tag that vanished; an underscore inside a word ("weight_epochs") is no markup and stays
_MARKUP = re.compile(r"[\\`*<>\[\]~|]|(?<![^\W_])_|_(?![^\W_])")


def _md_text(text) -> str:
    """``text`` as plain text in report.md: on one line, Markdown's markup characters escaped."""
    return _MARKUP.sub(lambda m: "\\" + m.group(), " ".join(str(text).split()))


def _md_code(text) -> str:
    """``text`` as a Markdown code span on one line: fenced by more backticks than any run of them in it (a path
    with a backtick ended the span early)."""
    text = " ".join(str(text).split())
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _onnx_failures(results: dict) -> list[str]:
    """A paragraph per member whose ONNX export failed (its latency "—"), or whose int8 quantisation failed (its
    int8 cell "not quantised"): why; its PyTorch export (its fp32 model) is kept. One paragraph each: lines of
    one paragraph ran together into one when rendered."""
    lines = []
    for i, a in enumerate(results["architectures"]):
        int8 = a.get("int8") if isinstance(a.get("int8"), dict) else {}
        if a.get("onnx_error"):
            lines += ["", f"ONNX export failed for {_label(a, i, results)} (its weights and manifest.json "
                          f"are exported, no model.onnx, no latency): {_md_text(a['onnx_error'])}"]
        elif int8.get("error"):
            lines += ["", f"int8 quantisation failed for {_label(a, i, results)} (its fp32 model.onnx is "
                          f"exported and timed): {_md_text(int8['error'])}"]
    return lines


def _float_lines(results: dict) -> list[str]:
    """A paragraph per set of op types that members' int8 models run in float (their ``coverage``'s ``float_ops``;
    :func:`int8_float_words`): the members that share one are named in one sentence. None for members without a
    coverage (an older results.json, or null) or whose int8 model runs nothing in float."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, a in enumerate(results["architectures"]):
        ops = _float_ops(a.get("int8"))
        if ops:
            groups.setdefault(tuple(ops), []).append(i)
    lines = []
    for ops, members in groups.items():
        one = len(members) == 1
        text = _float_text(list(ops), "runs" if one else "run", _group_counts(results, members))
        lines += ["", _md_text(f"The int8 model{'' if one else 's'} of the {_member_names(results, members)} "
                               f"{text}.")]
    return lines


def _group_counts(results: dict, members: list[int]) -> str | None:
    """How many of their weight-bearing ops the int8 models of ``members`` (which run the same op types in float)
    run in float, in words (:func:`_weight_count`); None where none does."""
    archs = results["architectures"]
    counts = [(_weight_count(archs[i]["int8"]["coverage"]), i) for i in members]
    counts = [(c, i) for c, i in counts if c is not None]
    if not counts:
        return None
    (m, total), _ = counts[0]
    if len(members) == 1:
        return f"{m} of its {total} {_WEIGHT_WORDS} run in float"
    if len(counts) == len(members) and all(c == (m, total) for c, _ in counts):
        return f"{m} of the {total} {_WEIGHT_WORDS} of each run in float"
    each = ", ".join(f"{m} of {total} in {_label(archs[i], i, results)}" for (m, total), i in counts)
    return f"of their {_WEIGHT_WORDS}, {each} run in float"


def render_markdown(results: dict) -> str:
    budgeted = _budgeted(results)
    raw = results.get("cost_metric", "params")
    metric, n = _metric_words(raw), len(results["architectures"])
    what, cell = _search_time(results)
    lines = [
        f"# {_md_text(results['recipe'])}: {_plural(n, 'architecture')} by {_md_code(results['method'])}",
        "",
        f"Search time ({what}; retraining not included): **{_seconds(results['search_seconds'])}**.",
        "",
        *_processes_lines(results),
        *_supernet_lines(results.get("supernet")),
        *_members_lines(results),
    ]
    # the random baseline's draws are numbered under "draw"; its search time, one for all, is the sentence's alone
    sampled = _drawn(results)
    timed = "" if sampled else " search time |"
    lines += [
        ("| budget | " if budgeted else "| ") + f"{_eps_header(results)} | params | MACs | cost ({metric}) | "
        f"test accuracy | latency fp32 | int8: latency, accuracy, size vs fp32 |{timed}",
        ("|---:" if budgeted else "") + "|---:" * (7 if sampled else 8) + "|",
    ]
    for i, a in enumerate(results["architectures"]):
        eps = _fmt_eps(a, i) if budgeted else _eps_cell(a, i)
        params = f"{a['params']:,}" if a.get("params") is not None else "—"
        head = f"| {_budget(a, results)} | {eps} " if budgeted else f"| {eps} "
        lines.append(f"{head}| {params} | {_fmt_macs(a.get('macs'))} | {_fmt_cost(a['cost'])} | "
                     f"{format_accuracy(a.get('test_accuracy'))} | {_fmt_ms(a.get('latency_ms'))} | "
                     f"{_fmt_int8(a.get('int8'))} |" + ("" if sampled else f" {cell} |"))
    lines += _same_architecture_lines(results)
    lines += _onnx_failures(results)
    lines += _float_lines(results)
    weights = {a.get("weights") for a in results["architectures"]}
    if "supernet" in weights:
        lines += ["", f"Not retrained (`retrain.epochs: 0`): each network has {_inherited(results)} on its path, "
                      "BatchNorm recalibrated on `retrain.bn_batches` training batches; its test accuracy is theirs."]
    if "untrained" in weights:
        lines += ["", "Exported with **untrained** weights: `retrain.epochs: 0` and no supernet weights that fit "
                      "them (the random baseline trains none; `retrain.space_args` changes their shape). Set "
                      "`retrain.epochs` to train them."]
    lines += _latency_note(results)
    lines += [*_phase_times(results), "", f"![{results.get('cost_metric', 'params')} vs test accuracy](pareto.png)", "",
              *_pareto_note(results["architectures"]), "Chosen operations:", ""]
    for i, a in enumerate(results["architectures"]):
        lines.append(f"- {_label(a, i, results)}: {_md_code(' '.join(a['choices']))}")
    if results.get("ranking"):
        lines += ["", "## How well the supernet ranks", "", *_ranking_lines(results["ranking"])]
    return "\n".join(lines) + "\n"


def _phase_times(results: dict) -> list[str]:
    """The paragraph on each phase's time (``phase_seconds``), with that of the ``automl rank`` that measured the
    ranking (:func:`_ranking_time`); a ``phase_seconds`` without any (edited, or an earlier automl's) has no
    sentence of its own: the ranking's time alone, or none at all (it was ``Phase times: .``)."""
    phases = ", ".join(f"{k} {_seconds(v)}" for k, v in results["phase_seconds"].items())
    ranking = _ranking_time(results.get("ranking"))
    if phases:
        return ["", f"Phase times: {phases}{ranking}."]
    if ranking:  # "; the ranking below was measured ..." as a sentence
        return ["", ranking[2].upper() + ranking[3:] + "."]
    return []


def _processes_lines(results: dict) -> list[str]:
    """The paragraph on a run whose parts computed with different numbers of processes (``world_sizes``: each
    part's count in order, as :func:`automl.pipeline.results.build_results` writes it); for a run that kept one
    count, or a ``world_sizes`` that is no such list (edited), :func:`_one_count_lines`."""
    parts = results.get("world_sizes")
    if not isinstance(parts, list) or len(parts) < 2 or not all(type(n) is int and n > 0 for n in parts):
        return _one_count_lines(results)
    counts = ", then ".join(str(n) for n in parts)
    return [f"The run computed with {counts} {'process' if parts[-1] == 1 else 'processes'}: it was resumed with "
            f"another number of processes, and `data.batch_size` is per process, so what it trained after that "
            f"used another total batch than an uninterrupted run would.", ""]


def _one_count_lines(results: dict) -> list[str]:
    """The paragraph on a run that computed with one number of processes (results.json's ``world_size``) above one:
    under torchrun, data-parallel, each step's total batch that many times the recipe's batch sizes (results.json
    records no batch size: recipe.resolved.yaml does); and the count of the ``automl rank`` that measured the ranking
    below, where another (its section's ``world_size``). No lines for one process, a result of an older automl (no
    ``world_size``), or a count that is not a whole number (edited)."""
    count, ranking = results.get("world_size"), results.get("ranking")
    if type(count) is not int or count < 2:
        return []
    rank = ranking.get("world_size") if isinstance(ranking, dict) else None
    by = (f" The ranking below was measured by `automl rank` in {'one process' if rank == 1 else f'{rank} processes'}."
          if type(rank) is int and 0 < rank != count else "")
    return [f"Run with {count} processes (torchrun, data-parallel): the batch sizes of recipe.resolved.yaml "
            f"(`data.batch_size`, `retrain.batch_size`, ...) are per process, so each training step's total batch "
            f"was {count} × theirs.{by}", ""]


def _members_lines(results: dict) -> list[str]:
    """The paragraph above the table on what its budget and ε columns hold (none: ε as the recipe gives them)."""
    raw, method = results.get("cost_metric", "params"), _md_code(results["method"])
    if _drawn(results):  # a plugin searcher of mode sample draws as it will: the random baseline's are uniform
        how = "uniformly " if results["method"] == "random" else ""
        whose = (" of the retrained network (`search.random_budgets`: the retraining space's table, with "
                 "`retrain.space_args`; the cost column prices the searched network)"
                 if _retrained_budgets(results) else "")
        if not _budgeted(results):
            return [f"{method} has no ε: each member is drawn {how}among all the architectures, and the draw "
                    "column numbers them.", ""]
        # the unconstrained member is named only where there is one (search.random_budgets has none)
        anything = (f"any architecture for the {UNCONSTRAINED} member; "
                    if any(_bound(a) is None for a in results["architectures"]) else "")
        return [f"Budgets are total {_budget_metric(raw)}{whose}; {method} has no ε: each member is drawn {how}"
                f"among the architectures within its budget ({anything}with `search.random_band`, only those "
                f"costing at least that fraction of the budget), and the draw column numbers them.", ""]
    if _budgeted(results):
        which = "budgeted " if any(_bound(a) is None for a in results["architectures"]) else ""
        return [f"Budgets are total {_budget_metric(raw)}; each {which}member's ε was adapted to meet its budget "
                f"(final value shown).", ""]
    return []


def _seconds(v: float) -> str:
    """A time in seconds, to 0.1 s; under 0.1 s to two significant digits (the random baseline's draws took
    0.011 s: "0.0 s" read as no time at all)."""
    return f"{v:.1f} s" if v == 0 or abs(v) >= 0.1 else f"{v:.2g} s"


def _search_time(results: dict) -> tuple[str, str]:
    """What ``search_seconds`` covers for the run's method, as report.md's sentence says it, and the table's
    search-time cell: the time of a search every member shares (importance sampling's one θ phase for all), or
    the whole of the run's searches, whose parts per member results.json does not record (Method 2's θ phase
    per member after one shared weight phase, Method 1's search per member, the random baseline's draws): by the
    searcher's mode (:func:`_mode`), a plugin's as the built-in one's of that mode."""
    t, method, mode = _seconds(results["search_seconds"]), results["method"], _mode(results)
    origin = results.get("supernet")
    reused = isinstance(origin, dict) and bool(origin.get("from"))  # --supernet: no weight phase
    if mode == "joint":
        return (("" if reused else "one weight phase, then ") + "one θ phase that searches every member at once"
                + ("; the weight phase was skipped" if reused else "")), f"{t} (shared)"
    if mode == "per_member":
        if reused:
            return ("a θ phase per member, one after another; the weight phase was skipped",
                    f"{t} in all (a θ phase each)")
        return ("one weight phase, shared, then a θ phase per member, one after another",
                f"{t} in all (weights shared, a θ phase each)")
    if mode == "interleaved":
        return ("a search per member, one after another, each training its own supernet with weight and θ steps "
                "interleaved", f"{t} in all (a search each)")
    if _drawn(results):
        who = "the random baseline" if method == "random" else _md_code(method)
        return f"drawing the architectures: {who} trains no supernet", f"{t} in all (drawing only)"
    return "every member's search", f"{t} in all"


def _search_title(results: dict) -> str:
    """The summary table's search time, as report.md's search-time column says it: ``11.3 s in all (weights shared,
    a θ phase each)`` for the searches of every member together; importance sampling's one shared search (mode
    ``joint``), the same for every row, is its time alone (``5.8 s``)."""
    _, cell = _search_time(results)
    return _seconds(results["search_seconds"]) if _mode(results) == "joint" else cell


def _inherited(results: dict) -> str:
    """Whose weights a network not retrained has: the supernet's; with `search.supernets` M > 1 (results.json's
    ``supernets``) the first one's (the others only score paths); with `simultaneous` (mode ``interleaved``, a
    plugin's too) its member's own."""
    m = results.get("supernets")
    several = type(m) is int and m > 1
    if _mode(results) == "interleaved":
        method = _md_code(results["method"])
        if several:
            return f"the weights of the first of its member's own {m} supernets ({method} trains each member's)"
        return f"its member's own supernet's weights ({method} trains a supernet per member)"
    if several:
        return f"the weights of the first of the {m} supernets (`search.supernets`)"
    return "the supernet's weights"


def _root(archs: list[dict], i: int) -> int:
    """The member whose network member ``i`` is (results.json's ``same_network_as``: an earlier member, retrained
    once for both), else ``i``."""
    same = archs[i].get("same_network_as")
    return same if type(same) is int and 0 <= same < i else i


def _network(a: dict, i: int, mode: str | None, archs: list[dict] | None = None) -> tuple:
    """What makes member ``a`` (``i``-th) one network with another: the network of the member it names as
    ``same_network_as`` (in ``archs``); else its choices, and weights that are the same for the same choices
    (retrained once: automl/pipeline/final_stages.py RetrainStage; the one supernet's on that path, recalibrated
    on the same batches), seen in the same measurements; ``("member", i)`` for weights of its own (untrained,
    `simultaneous`'s supernet per member: ``mode`` interleaved (:func:`_mode`), or unrecorded)."""
    if archs is not None and _root(archs, i) != i:
        return _network(archs[_root(archs, i)], _root(archs, i), mode)
    weights = a.get("weights")
    if weights == "retrained" or weights == "supernet" and mode != "interleaved":
        acc = a.get("test_accuracy")
        return tuple(a["choices"]), weights, acc if _finite(acc) else None, a.get("params"), a["cost"]
    return "member", i


def _networks(results: dict, indices) -> list[list[int]]:
    """``indices`` (members) grouped by :func:`_network`, in order."""
    groups: dict[tuple, list[int]] = {}
    for i in indices:
        archs = results["architectures"]
        groups.setdefault(_network(archs[i], i, _mode(results), archs), []).append(i)
    return list(groups.values())


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _member_names(results: dict, indices: list[int]) -> str:
    """``members ε=0 and ε=0.5`` (``random 1``; ``members of budgets ≤ 80k and ≤ 40k``, ``unconstrained member and
    the member of budget ≤ 40k``): as the table names them, with its row where two have one name; after "The"."""
    archs = results["architectures"]
    names = [_label(a, i, results) for i, a in enumerate(archs)]
    named = {i: names[i] + (f" (row {i + 1})" if names.count(names[i]) > 1 else "") for i in indices}
    if not _budgeted(results):
        return ("member " if len(indices) == 1 else "members ") + _and([named[i] for i in indices])
    free = [i for i in indices if _bound(archs[i]) is None]
    bounded = [named[i] for i in indices if i not in free]
    parts = [f"{UNCONSTRAINED} member" + (f"s ({_and([f'row {i + 1}' for i in free])})" if len(free) > 1 else "")
             ] if free else []
    if bounded:
        parts.append(("the " if free else "") + (f"member of budget {bounded[0]}" if len(bounded) == 1
                                                 else f"members of budgets {_and(bounded)}"))
    return " and ".join(parts)


_ONE_NETWORK = {"retrained": "one retraining, one test accuracy; each exports its weights",
                "supernet": "not retrained, the supernet's weights on that path, BatchNorm recalibrated on the same "
                            "batches; each is evaluated and exported on its own"}


def _apart(weights, results: dict) -> str:
    """Why members of one architecture have different weights."""
    if weights == "untrained":
        return "each is initialised on its own (untrained)"
    if weights == "supernet" and _mode(results) == "interleaved":
        return (f"each has its own supernet's weights on that path ({_md_code(results['method'])} trains one "
                f"supernet per member)")
    if weights == "retrained":
        return "each was retrained on its own"
    return "each was evaluated on its own"


def _same_architecture_lines(results: dict) -> list[str]:
    """The lines under the table that name the members which derived the same architecture (the same choices, or
    choices that differ only in layers their elastic depth leaves out: ``same_network_as``): one network (the same
    weights: their rows are its measurements), or the same architecture with different weights (``retrain.epochs:
    0`` with `simultaneous`'s supernet per member, or untrained)."""
    archs, lines = results["architectures"], []
    by_choices: dict[tuple, list[int]] = {}
    for i in range(len(archs)):
        by_choices.setdefault(tuple(archs[_root(archs, i)]["choices"]), []).append(i)
    for members in (m for m in by_choices.values() if len(m) > 1):
        nets = _networks(results, members)
        weights = archs[members[0]].get("weights")
        if len(nets) == 1:
            same = ("the same choices" if len({tuple(archs[m]["choices"]) for m in members}) == 1 else
                    "their choices differ only in layers their elastic depth leaves out")
            # weights automl writes with same_network_as ("retrained"), or others in an edited results.json
            how = _ONE_NETWORK.get(weights, "their rows are its measurements; each exports its weights")
            lines += ["", f"The {_member_names(results, members)} are one network ({same}): {how}."]
            continue
        text = (f"The {_member_names(results, members)} are the same architecture (the same choices) with "
                f"different weights: {_apart(weights, results)}")
        text += "".join(f"; the {_member_names(results, n)} are one network" for n in nets if len(n) > 1)
        lines += ["", text + "."]
    return lines


def _budget_metric(metric: str) -> str:
    """The cost metric after "Budgets are total": ``latency (ms)``."""
    return "latency (ms)" if metric == "latency" else metric


def _supernet_lines(origin: dict | None) -> list[str]:
    """Where a reused supernet came from (``--supernet``, or the recipe key ``supernet``), and whether it was
    forced: by the flag or by the recipe's ``supernet_force: true`` (an override's too), which the record does not
    tell apart, so both are named; nothing for a run that trained its own (or the random baseline, which has none).
    A chained reuse (``trained_by``: the run given had itself reused another's) names the run that trained it, and
    the run it was taken through; a record without ``trained_by`` (an older automl's) names the run given."""
    if not origin or not origin.get("from"):
        return []
    trained = origin.get("trained_by")
    whose = (f"{_md_code(trained)}, taken through {_md_code(origin['from'])} (a run that reused it; "
             if isinstance(trained, str) and trained and trained != origin["from"] else f"{_md_code(origin['from'])} (")
    said = f"Supernet: the trained supernet of {whose}weight phase skipped"
    if origin.get("forced"):
        return [f"{said}), **forced** (`--supernet-force` / `supernet_force: true`): it was trained with other "
                f"settings: {'; '.join(_md_text(d) for d in origin.get('differs') or [])}.", ""]
    return [f"{said}; trained with the settings this recipe asks for).", ""]


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _plotted(a: dict) -> bool:
    """Whether pareto.png draws the architecture ``a``: it has a test accuracy and a cost (finite numbers)."""
    return _finite(a.get("test_accuracy")) and _finite(a.get("cost"))


def _pareto_note(archs: list[dict]) -> list[str]:
    """The lines that say which architectures pareto.png leaves out: those without a test accuracy, and those
    without a cost (a finite number; results built in Python: results.json with a null cost is refused)."""
    missing = sum(not _finite(a.get("test_accuracy")) for a in archs)
    costless = sum(_finite(a.get("test_accuracy")) and not _plotted(a) for a in archs)
    lines = []
    if missing == len(archs) == 1:
        lines = ["pareto.png shows no point: the architecture has no test accuracy (not evaluated).", ""]
    elif missing and missing == len(archs):
        lines = [f"pareto.png shows none of the {missing} architectures: none has a test accuracy (not "
                 f"evaluated).", ""]
    elif missing:
        lines = [f"pareto.png leaves out the {missing} architecture{'s' if missing > 1 else ''} without a test "
                 f"accuracy (not evaluated).", ""]
    if costless:
        lines += [f"pareto.png leaves out the {costless} architecture{'s' if costless > 1 else ''} without a cost "
                  f"(not a finite number).", ""]
    return lines


def _corr(r) -> str:
    return f"{r:.3f}" if _finite(r) else "undefined"


def _measured(v: float, measure: str) -> str:
    return format_accuracy(v) if measure == "accuracy" else f"{v:.4g}"


def _why_undefined(archs: list[dict], score_key: str, measure: str) -> str:
    """Why the rank correlation of the ranked architectures' (``archs``) ``score_key`` against their test
    ``measure`` is undefined (NaN, written as null): a value missing, null (results.json's NaN or inf), NaN or inf,
    or one that does not vary."""
    keys = (score_key, f"test_{measure}")
    if len(archs) < 2:
        return "fewer than two architectures"
    absent = next(((j, k) for j, a in enumerate(archs) for k in keys if k not in a), None)
    if absent is not None:  # an older automl's results.json, or one edited
        return f"results.json records no ranking.archs[{absent[0]}].{absent[1]} (written by an older automl, or edited)"
    null = next(((j, k) for j, a in enumerate(archs) for k in keys if a[k] is None), None)
    if null is not None:  # results.json writes a NaN or inf as null
        return (f"a value is NaN or inf, which results.json writes as null (ranking.archs[{null[0]}].{null[1]}: a "
                f"network diverged, or the file was edited), and has no place in an order")
    score, truth = ([a[k] for a in archs] for k in keys)
    if not all(_finite(v) for v in score + truth):
        return "a value is NaN or inf (a network diverged) and has no place in an order"
    if len(set(truth)) <= 1:
        return f"every architecture got the same test {measure} ({_measured(truth[0], measure)})"
    if len(set(score)) <= 1:
        return f"the supernet gave every architecture the same score ({_measured(score[0], measure)})"
    return "results.json records none"


def _retrained(rk: dict) -> bool:
    """False for a ranking with ``retrain_epochs: 0``: its truth is the supernet's own weights on the test set."""
    return rk.get("retrain_epochs") != 0


def _ranking_lines(rk: dict) -> list[str]:
    """report.md's paragraph on the ranking section (automl/pipeline/final_stages.py RankingStage)."""
    p, archs = rk["pairs"], rk["archs"]
    measure, seeds = rk.get("truth", "accuracy"), rk.get("seeds", 1)
    if _retrained(rk):
        how = f"retrained stand-alone ({_times(seeds)}; the truth is the mean test {measure})"
    else:
        how = (f"not retrained (`retrain_epochs: 0`; the truth is the test {measure} of the supernet's own weights "
               f"on each path, BatchNorm recalibrated as for its score, with several supernets the mean of each "
               f"one's)")
    text = (f"{_plural(len(archs), 'architecture')} spread over the cost range, each scored on the supernet "
            f"({measure} on D_θ, BatchNorm recalibrated) and {how}: Kendall's τ **{_corr(rk['kendall_tau'])}**, "
            f"Spearman's ρ {_corr(rk['spearman'])} ({p['concordant']} of {p['total']} pairs in the same order, "
            f"{p['discordant']} reversed, {p['tied']} tied"
            + (f", {u} with a value that is NaN or inf" if (u := p.get("undefined", 0)) else "") + ").")
    if not (_finite(rk["kendall_tau"]) and _finite(rk["spearman"])):
        why = _why_undefined(archs, f"supernet_{measure}", measure)
        text += f" A rank correlation is undefined when a measure does not vary or is not a number: {why}."
    batch = rk["kendall_tau_batch_stats"]
    text += f" With each batch's own BatchNorm statistics (the θ phase's default): τ {_corr(batch)}"
    if not _finite(batch):
        text += f", because {_why_undefined(archs, f'supernet_{measure}_batch_stats', measure)}"
    alt = "supernet vs stand-alone" if _retrained(rk) else "supernet vs its own weights on the test set"
    return [text + ".", "", f"![{alt}](ranking.png)"]


def _ranking_time(rk) -> str:
    """After the phase times: the time of the ``automl rank`` that measured the ranking report.md shows (it records
    ``world_size``), whose time is no phase of the run's (their ``ranking`` is the run's own ranking stages); with
    the retrainings it reused (``reused_retrainings``: an earlier ranking of the run recorded them), whose time is
    not in it."""
    if not isinstance(rk, dict) or "world_size" not in rk or not _finite(rk.get("seconds")):
        return ""
    text = f"; the ranking below was measured by `automl rank` in {_seconds(rk['seconds'])}"
    reused, total = rk.get("reused_retrainings"), len(rk.get("archs") or ()) * rk.get("seeds", 1)
    if not isinstance(reused, int) or isinstance(reused, bool) or reused <= 0:
        return text
    if reused >= total:
        which = f"all {total} retrainings" if total > 1 else "its one retraining"
        return (text + f", which reused {which} from an earlier ranking of this run (the time is that of the supernet "
                f"scores alone)")
    return (text + f", which reused {reused} of its {total} retrainings from an earlier ranking of this run (their "
            f"time is not in it)")


def plot_pareto(results: dict) -> bytes:
    """PNG bytes of the search's cost vs test accuracy, one point per network: members that are one network
    (the same choices and weights) are one point, labelled with each. Architectures without a test accuracy (not
    evaluated) or a cost are left out (report.md says how many: :func:`_pareto_note`); with none left the plot says
    so."""
    fig, ax = _figure()
    archs = results["architectures"]
    metric = results.get("cost_metric", "params")
    # one point per network: members that are one network (_network) share it, labelled with each
    shown = _networks(results, [i for i, a in enumerate(archs) if _plotted(a)])
    xs = [archs[net[0]]["cost"] for net in shown]  # the search's own cost metric
    ys = [100 * archs[net[0]]["test_accuracy"] for net in shown]
    budgeted = _budgeted(results)
    if shown:
        ax.plot(xs, ys, "o", color="tab:blue")
    else:
        none = ("no architecture has a test accuracy" if not any(_finite(a.get("test_accuracy")) for a in archs)
                else "no architecture has a test accuracy and a cost")
        ax.text(0.5, 0.5, none, transform=ax.transAxes, ha="center", va="center", color="tab:gray")
    labels = [ax.annotate(", ".join(_label(archs[i], i, results) for i in net), (x, y),
                          textcoords="offset points", xytext=_LABEL_OFFSET, fontsize=9, in_layout=False)
              for net, x, y in zip(shown, xs, ys)]
    # budgets are in the units of the x axis, the search's cost; one line for members that share one
    for b in sorted({a["budget"] for a in archs if a.get("budget") is not None} if budgeted else ()):
        ax.axvline(b, color="tab:gray", linestyle=":", linewidth=1)
        ax.annotate(f"budget {budget_text(b, _budgets(results), metric)}", (b, 0),
                    xycoords=("data", "axes fraction"), textcoords="offset points", xytext=(2, 3), fontsize=7,
                    color="tab:gray", rotation=90)
    ax.set_xlabel(_pareto_xlabel(metric, [archs[net[0]] for net in shown]))
    if metric != "latency":  # a count: its ticks in short (140k), as the budgets are
        ax.xaxis.set_major_formatter(_count_ticks(ax.xaxis))
    ax.set_ylabel("test accuracy [%]")
    _title(fig, ax, results["recipe"], f" ({results['method']})")
    return _png(fig, ax, labels)


def _pareto_xlabel(metric: str, plotted: list[dict]) -> str:
    """pareto.png's x axis: the search's cost metric, and where a plotted network's exported count differs from the
    search's (retrained at another size, ``retrain.space_args`` or ``retrain.se``; a cell space's table, which
    approximates its networks) that the axis is the search's count."""
    name = {"params": "parameters", "macs": "multiply-adds (MACs)", "latency": "latency [ms] (table)"}.get(metric,
                                                                                                       metric)
    other = any(metric in ("params", "macs") and _finite(a.get(metric)) and _finite(a.get("cost"))
                and a[metric] != a["cost"] for a in plotted)
    return f"{name} (as the search counts them; the exported networks' own: report.md)" if other else name


def _count_tick(v: float, digits: int = 6) -> str:
    """A tick of pareto.png's count axis (parameters, MACs) as the report names a budget, to ``digits``
    significant digits: ``140k``, ``1.2M``, ``62.285k``. Written in full, 100000 to 160000 run into one another
    on an axis like the quickstart's (13,554 to 178,170 parameters), and MACs get a ``1e6`` in the corner."""
    if v == 0:
        return "0"  # not "-0"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.{digits}g}{suffix}"
    return f"{v:.{digits}g}"


def _count_ticks(axis):
    """The tick formatter of the count ``axis``: :func:`_count_tick` with the fewest digits (6 at least) that
    tell its ticks apart (costs close together: 1,000,000 and 1,000,010)."""
    def tick(v: float, _pos=None) -> str:
        locs = axis.get_majorticklocs()
        digits = next((d for d in (6, 9, 12, 15) if len({_count_tick(x, d) for x in locs}) == len(locs)), 17)
        return _count_tick(v, digits)
    return tick


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times, seeds averaged"


def _value(v, scale: float = 1.0) -> float:
    """A plotted measurement: NaN (not drawn) for a non-finite one, which results.json holds as null."""
    return scale * v if _finite(v) else math.nan


def plot_ranking(results: dict) -> bytes:
    """PNG bytes of the ranking: the supernet's score vs the truth (the ranking's ``truth`` measure: loss or
    accuracy; mean over the stand-alone retrainings, or with ``retrain_epochs: 0`` the supernet's own weights on
    the test set), one point per architecture."""
    rk = results["ranking"]
    archs, seeds = rk["archs"], rk.get("seeds", 1)
    loss = rk.get("truth", "accuracy") == "loss"
    measure, scale = ("loss", 1.0) if loss else ("accuracy", 100.0)
    fig, ax = _figure()
    xs = [_value(a.get(f"supernet_{measure}"), scale) for a in archs]
    ys = [_value(a.get(f"test_{measure}"), scale) for a in archs]
    unit = "" if loss else " [%]"
    ylabel = (f"stand-alone test {measure}{unit}" if _retrained(rk)
              else f"test {measure}{unit}, supernet's own weights (BatchNorm recalibrated)")
    # an architecture whose params results.json does not hold (null; an older automl's) is drawn grey, not left out
    from matplotlib import colormaps  # imported by _figure

    cmap = colormaps["viridis"].with_extremes(bad="tab:gray")
    pts = ax.scatter(xs, ys, c=[_value(a.get("params")) for a in archs], cmap=cmap, plotnonfinite=True)
    bar = fig.colorbar(pts, ax=ax, label="parameters")
    bar.ax.yaxis.set_major_formatter(_count_ticks(bar.ax.yaxis))  # in short (160k), as pareto.png's axis
    ax.set_xlabel(f"supernet {measure} on D_θ{unit} (BatchNorm recalibrated)")
    ax.set_ylabel(ylabel + ("" if seeds == 1 else f", mean of {seeds} seeds"))
    _fit_ylabel(fig, ax)
    _title(fig, ax, results["recipe"], f": Kendall τ {_corr(rk['kendall_tau'])}, Spearman {_corr(rk['spearman'])}")
    return _png(fig, ax)


def _import_matplotlib() -> None:
    """matplotlib imported. Its first import sets the backend MPLBACKEND names and raises ValueError for one it
    does not know (``MPLBACKEND=inline`` outside a notebook); the plots are drawn by Agg whatever the backend, so
    matplotlib is imported without it, and the backend then set as that import would (pyplot imported later gets
    it), unless matplotlib does not know it. matplotlib's own logger logs warnings only, unless a level was set
    for it: under the run's INFO logging it would print "generated new fontManager" among the run's lines on a
    machine's first plot, and under ``-v`` some 300 lines of font scores."""
    quiet = logging.getLogger("matplotlib")
    if quiet.level == logging.NOTSET:
        quiet.setLevel(logging.WARNING)
    if "matplotlib" in sys.modules:
        return
    backend = os.environ.pop("MPLBACKEND", None)
    try:
        import matplotlib
    finally:
        if backend is not None:
            os.environ["MPLBACKEND"] = backend
    if backend:
        try:
            matplotlib.rcParams["backend"] = backend
        except ValueError:
            pass  # not a backend: no plot of automl's uses it


def _figure():
    """A figure of its own, drawn by Agg whatever the process's backend (no display needed): pyplot (its backend,
    its figures: a caller's notebook or script) is left as it was."""
    _import_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4), dpi=120)
    FigureCanvasAgg(fig)  # its renderer measures text (_title, _unstack)
    return fig, fig.subplots()


_LABEL_OFFSET = (5, 5)  # a point's label, in points up and right of it
_TITLE_WIDTH = 0.85  # of the figure's width


def _middle_cut(name: str, keep: int) -> str:
    """``name`` with its middle replaced by "…", ``keep`` characters of it left."""
    return name if len(name) <= keep else f"{name[:(keep + 1) // 2]}…{name[len(name) - keep // 2:]}"


def _title(fig, ax, name: str, rest: str) -> None:
    """The title ``name + rest``, ``name`` cut in the middle till the title fits the figure (a recipe's name may
    be 200 characters; the plot's title was cut off at both sides)."""
    title, renderer, keep = ax.set_title(name + rest), fig.canvas.get_renderer(), len(name)
    while keep > 8 and title.get_window_extent(renderer).width > _TITLE_WIDTH * fig.bbox.width:
        keep -= max(1, keep // 10)
        title.set_text(_middle_cut(name, keep) + rest)


_YLABEL_HEIGHT = 0.75  # of the figure's height


def _fit_ylabel(fig, ax) -> None:
    """The y axis label broken into as many lines as it takes to fit the figure's height: a ranking's label
    without retraining ("test accuracy [%], supernet's own weights (BatchNorm recalibrated)") ran off the plot
    at both ends."""
    label, renderer = ax.yaxis.label, fig.canvas.get_renderer()
    text = label.get_text()
    width = len(text)
    while width > 12 and label.get_window_extent(renderer).height > _YLABEL_HEIGHT * fig.bbox.height:
        width -= max(1, width // 10)
        label.set_text(textwrap.fill(text, width))


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _side(fig, ax, label) -> None:
    """Put ``label`` right of its point, or left of it where it would cross the axes' right edge and crosses less
    of their left edge there: the rightmost point's label (``ε=0, ε=0.125, ε=0.25`` for members that are one
    network) stays inside the plot, which the labels take no room from (``in_layout=False``)."""
    renderer = fig.canvas.get_renderer()
    label.set_horizontalalignment("left")
    label.set_position(_LABEL_OFFSET)
    over_right = label.get_window_extent(renderer).x1 - ax.bbox.x1
    if over_right <= 0:
        return
    label.set_horizontalalignment("right")
    label.set_position((-_LABEL_OFFSET[0], _LABEL_OFFSET[1]))
    if ax.bbox.x0 - label.get_window_extent(renderer).x0 >= over_right:
        label.set_horizontalalignment("left")
        label.set_position(_LABEL_OFFSET)


def _unstack(fig, labels: list) -> None:
    """Move labels that would cover one another up, each above the last, from the lowest point up: members of one
    architecture with different weights (several ε, or budgets, that found it) sit at one cost, at nearby
    accuracies; their labels were drawn over one another, unreadable. Each is first put on its side of its point
    (:func:`_side`)."""
    renderer, placed = fig.canvas.get_renderer(), []
    for label in labels:  # each at its offset first: _png may lay the figure out again
        _side(fig, label.axes, label)
    for label in sorted(labels, key=lambda t: (t.xy[1], t.xy[0])):
        box, shift = label.get_window_extent(renderer), 0.0
        while any(_overlap(box.translated(0, shift), b) for b in placed):
            shift += box.height + 1
        if shift:
            label.set_position((label.get_position()[0], _LABEL_OFFSET[1] + shift * 72 / fig.dpi))
        placed.append(box.translated(0, shift))


def _headroom(fig, ax, labels: list, most: float) -> bool:
    """Raise the top of the y axis, to ``most`` at the highest, so that labels :func:`_unstack` moved up above the
    title or the figure's top (labels of points high in the plot, stacked: the top ones were cut off) fit under
    the axes' top; whether it was raised (the layout is then made again). A stack too tall for that stays cut:
    the points keep their place in the plot."""
    renderer = fig.canvas.get_renderer()
    tops = [label.get_window_extent(renderer).y1 for label in labels]
    ceiling = ax.title.get_window_extent(renderer).y0 if ax.title.get_text() else fig.bbox.y1
    if not tops or max(tops) <= min(ceiling, fig.bbox.y1):
        return False
    over, height = max(tops) - ax.bbox.y1, ax.bbox.height
    low, high = ax.get_ylim()
    top = min(most, high + (high - low) * over / max(height - over, height / 4))
    if top <= high:
        return False
    ax.set_ylim(low, top)
    return True


def _png(fig, ax, labels: list = ()) -> bytes:
    """The figure as PNG bytes, laid out with its ``labels`` (pareto.png's) placed. Axes ticks are written in full,
    never as an offset in the corner: test accuracies 76.512 % and 76.514 % (a 50,000-image test set) are ticked
    76.512 to 76.514, not 0.000 to 0.002 under "+7.651e1"."""
    for axis in (ax.xaxis, ax.yaxis):
        if hasattr(axis.get_major_formatter(), "set_useOffset"):  # a ScalarFormatter (not the count axis')
            axis.get_major_formatter().set_useOffset(False)
    ax.grid(alpha=0.3)
    low, high = ax.get_ylim()
    for tries in range(5):  # the layout again after the y axis was raised: the tick labels may have changed
        fig.tight_layout()
        _unstack(fig, list(labels))
        if tries == 4 or not _headroom(fig, ax, list(labels), most=high + (high - low)):  # at most twice as tall
            break
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# the widest the summary table may be where the output is no terminal (a log, a pipe)
SUMMARY_WIDTH = 200


def summary_table(results: dict):
    """The table printed at the end of a run, with report.md's note on members of one architecture under it. Every
    cell is plain text (markup escaped), never rich markup: an
    absolute ``export.dir`` such as ``/data/[/tmp]/x`` made rich raise a MarkupError after the whole
    run (and again on each --resume), and ``[red]`` in a path vanished."""
    same = " ".join(line for line in _same_architecture_lines(results) if line)  # members of one architecture
    title = f"{results['recipe']}: {results['method']}, search {_search_title(results)}"
    t = Table(title=escape(title),
              caption=escape(same) or None, caption_justify="left")
    budgeted = _budgeted(results)
    cost = "cost (ms)" if results.get("cost_metric") == "latency" else "cost"
    for col in (("budget",) if budgeted else ()) + (_eps_header(results), "params", cost, "test accuracy", "onnx"):
        # a path too long for the terminal wraps rather than ending in "…": it is what a user copies
        t.add_column(col, justify="right" if col != "onnx" else "left", overflow="fold" if col == "onnx" else None)
    for i, a in enumerate(results["architectures"]):
        head = (_budget(a, results), _fmt_eps(a, i)) if budgeted else (_eps_cell(a, i),)
        cells = (*head, f"{a['params']:,}" if a.get("params") is not None else "—", _fmt_cost(a["cost"]),
                 format_accuracy(a.get("test_accuracy")),
                 a.get("onnx") or ("failed" if a.get("onnx_error") else "—"))
        t.add_row(*(escape(str(c)) for c in cells))
    return t


def print_summary(table, console: Console | None = None) -> None:
    """Print the summary ``table`` on ``console`` (standard output's by default). A terminal gets it as rich lays it
    out; a log or a pipe, which has no width, gets it at its own (rich takes 80 columns there, up to
    :data:`SUMMARY_WIDTH`) and without the spaces rich pads its centred title and its caption with to the table's
    width, which a log keeps at the end of those lines."""
    console = console or Console()
    if console.is_terminal:
        console.print(table)
        return
    wide = Console(file=console.file, width=max(console.width, SUMMARY_WIDTH))
    with wide.capture() as captured:
        wide.print(table)
    wide.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
    wide.file.flush()


def write_report(out: Path, results: dict, reporter=None) -> None:
    """results.json, pareto.png, ranking.png (with a ranking; an earlier one is removed without) and report.md,
    each atomically; everything is drawn first, so that a failure leaves the earlier files as they were."""
    out = Path(out)
    files = {"pareto.png": plot_pareto(results),
             **({"ranking.png": plot_ranking(results)} if results.get("ranking") else {}),
             "report.md": render_markdown(results).encode("utf-8")}
    atomic_write_json(out / "results.json", results)
    for name, data in files.items():
        atomic_write_bytes(out / name, data)
    if "ranking.png" not in files:  # a ranking results.json no longer holds (damaged): report.md shows none
        (out / "ranking.png").unlink(missing_ok=True)
    if reporter is not None and reporter.enabled:
        print_summary(summary_table(results))
        reporter.info(f"results: {out / 'results.json'}  report: {out / 'report.md'}")
