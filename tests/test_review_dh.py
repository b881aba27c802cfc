"""Review DH: report.md's Markdown (automl/report.py) built from results dicts directly (no run): error texts,
names and settings shown as they are (not read as markup, on one line), one paragraph per export failure, the
int8 failure's reason, and a ranking of one architecture."""

import re

import pytest

from automl.report import render_markdown
from test_review_ao import _member, _ranking, _results  # a results dict and a ranking section, as a run writes them


def _paragraphs(md: str) -> list[str]:
    """report.md's blocks as a Markdown viewer sees them: lines without a blank line between are one paragraph."""
    return [" ".join(block.splitlines()) for block in md.split("\n\n")]


def _unescaped(text: str) -> str:
    """``text`` as rendered: a backslash before ASCII punctuation is Markdown's escape, shown as that character."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)


# markup Markdown read in an error text: "__init__" bold, "/data/_x_/" italic, "<lambda>" an HTML tag (gone),
# "*args" with a closing "*" italic, "[x](y)" a link, a line break that starts a heading or a list
ERROR = "RuntimeError: __init__ of <lambda> at /data/_x_/m.py takes *args* | see [docs](u)\n# not a heading\n- no"


def test_an_onnx_error_is_shown_as_it_is_on_one_line():
    md = render_markdown(_results([_member(100, 0.5, onnx_error=ERROR), _member(90, 0.4, eps=0.5)]))
    line = next(line for line in md.splitlines() if line.startswith("ONNX export failed for ε=0 "))
    assert "\n# not a heading" not in md and "\n- no" not in md
    shown = line.split("no latency): ", 1)[1]
    assert _unescaped(shown) == " ".join(ERROR.split())
    # every markup character is escaped (an underscore inside a word is no markup: left as it is)
    assert not re.search(r"(?<!\\)[*<>\[\]|`]", shown) and not re.search(r"(?<![\\\w])_|(?<!\\)_(?!\w)", shown)
    plain = render_markdown(_results([_member(100, 0.5, onnx_error="RuntimeError: exporter bug in aten_op")]))
    assert "no latency): RuntimeError: exporter bug in aten_op\n" in plain  # plain text unchanged


def test_each_export_failure_is_a_paragraph_of_its_own():
    """Two failures were two lines of one paragraph: rendered, they ran together into one."""
    md = render_markdown(_results([_member(100, 0.5, onnx_error="E1"), _member(90, 0.4, eps=0.5, onnx_error="E2")]))
    failures = [p for p in _paragraphs(md) if "ONNX export failed" in p]
    assert len(failures) == 2 and failures[0].endswith("E1") and failures[1].endswith("E2")


def test_the_reason_an_int8_quantisation_failed_is_in_the_report():
    """The table said "not quantised" and nothing in report.md said why (the log's warning did)."""
    why = "quantised, but onnxruntime cannot run the int8 model: Fail: ConvInteger not implemented"
    archs = [_member(100, 0.5, int8={"error": why}),
             _member(90, 0.4, eps=0.5, onnx_error="E", int8={"error": "not quantised: the ONNX export failed"}),
             _member(80, 0.3, eps=1.0, int8={"latency_ms": 1.0, "test_accuracy": 0.3, "size_bytes": 1,
                                              "fp32_size_bytes": 4})]
    md = render_markdown(_results(archs))
    assert f"int8 quantisation failed for ε=0 (its fp32 model.onnx is exported and timed): {why}" in md
    assert md.count("int8 quantisation failed") == 1  # ε=0.5: its ONNX failure says it; ε=1 was quantised


def test_the_recipe_name_in_the_heading_is_not_markup():
    """A recipe named ``_draft_`` was an italic "draft" in the heading; ``my_recipe`` stays as it is."""
    heading = render_markdown(_results([_member(100, 0.5)], recipe="_draft_")).splitlines()[0]
    assert heading == r"# \_draft\_: 1 architecture by `importance_sampling`"
    assert render_markdown(_results([_member(100, 0.5)], recipe="my_recipe.v2")).startswith("# my_recipe.v2: ")


@pytest.mark.parametrize("path, span", [("/runs/first", "`/runs/first`"), ("/runs/a`b", "``/runs/a`b``"),
                                        ("/runs/x`", "`` /runs/x` ``")])
def test_a_supernet_path_with_a_backtick_is_one_code_span(path, span):
    origin = {"from": path, "fingerprint": "f", "forced": True,
              "differs": ["search.weight_epochs: 6 there, 3 here", "data.root: /d/_x_/ there, /d here"]}
    md = render_markdown(_results([_member(100, 0.5)], supernet=origin))
    assert f"Supernet: the trained supernet of {span} (weight phase skipped)" in md
    assert "search.weight_epochs: 6 there, 3 here; data.root: /d/\\_x\\_/ there, /d here." in md


def test_chosen_operations_are_one_code_span_each():
    md = render_markdown(_results([{**_member(100, 0.5), "choices": ["conv`3", "skip"]}]))
    assert "- ε=0: ``conv`3 skip``" in md


def test_a_ranking_of_one_architecture_says_one_architecture():
    rk = _ranking()
    rk.update(archs=rk["archs"][:1], kendall_tau=None, spearman=None, kendall_tau_batch_stats=None,
              pairs={"concordant": 0, "discordant": 0, "tied": 0, "total": 0})
    md = render_markdown(_results([_member(100, 0.5)], ranking=rk))
    assert "1 architecture spread over the cost range" in md and "fewer than two architectures" in md
    assert "3 architectures spread" in render_markdown(_results([_member(100, 0.5)], ranking=_ranking()))
