"""Property: any text either compiles or raises SpaceError (FILE:LINE:COL), never anything else.

Two sources of inputs: strings generated from the grammar itself (hypothesis.extra.lark), and random
character and line edits of the shipped spaces.
"""

from __future__ import annotations

from pathlib import Path

import lark
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from automl.compile import compile_space
from automl.dsl import grammar_text, parse_space
from automl.errors import SpaceError

SPACES = Path(__file__).resolve().parents[1] / "spaces"
SHIPPED = {p.stem: p.read_text(encoding="utf-8") for p in sorted(SPACES.glob("*.space"))}
SMALL = {
    "proxylessnas": {"size": "32", "width": "0.25", "head": "64"},
    "enas_micro": {"size": "8", "channels": "4", "normal_cells": "1"},
    "digits": {},
    "fbnet": {"size": "32", "width": "0.25", "head": "64"},
    "mobilenetv3": {"size": "32", "width": "0.25", "head": "64"},
    "ofa_mbv3": {"size": "32", "width": "0.25", "wide": "2", "head": "64"},
    "darts": {"size": "8", "channels": "4", "normal_cells": "1"},
    "nasbench201": {"size": "8", "channels": "4", "cells": "1"},
}
TOKENS = ["space", "param", "input", "classes", "choices", "network", "end", "stage", "layer", "stem", "head",
          "width", "stride", "repeat", "kernel", "choose", "then", "fixed", "cells", "split", "by", "cell",
          "inputs", "node", "sums", "of", "earlier", "through", "metric", "default", "in", "x", "skip",
          "identity", "ir_k3_e6", "sep_k3", "se", "0.25", "activation", "relu", "depth", "family", "mobilenetv3",
          "distinct", "edges", "from", "output", "concat", "none", "ir_k3_e2.5_se0.25_nre", "cn_k1", "resnet_block",
          "=", ",", "[", "]", "(", ")", "+", "-", "*", "/", "//", "#", "\n",
          " ", "0", "1", "2", "3.5", "-1", "1e999", "999999999999", "\t", "\u00e9", "\x00", "\r\n"]


def check(text: str, filename: str, overrides=None) -> None:
    try:
        cs = compile_space(parse_space(text, filename, overrides))
    except SpaceError as e:
        if e.line is not None:
            assert str(e).startswith(f"{filename}:{e.line}:{e.column}: ")
            assert e.column >= 1
        else:  # only --set problems carry no position
            assert "--set" in e.message, str(e)
        return
    assert cs.num_decisions == len(cs.cost_table.choice_names) >= 1


@st.composite
def mutated_space(draw):
    name = draw(st.sampled_from(sorted(SHIPPED)))
    text = SHIPPED[name]
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "replace", "token", "dup_line", "drop_line", "swap"]))
        n = len(text)
        i = draw(st.integers(0, max(n - 1, 0)))
        if kind == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 12)):]
        elif kind == "insert":
            text = text[:i] + draw(st.text(min_size=1, max_size=4)) + text[i:]
        elif kind == "replace":
            text = text[:i] + draw(st.characters()) + text[i + 1:]
        elif kind == "token":
            text = text[:i] + draw(st.sampled_from(TOKENS)) + text[i:]
        else:
            lines = text.split("\n")
            j = draw(st.integers(0, len(lines) - 1))
            k = draw(st.integers(0, len(lines) - 1))
            if kind == "dup_line":
                lines.insert(k, lines[j])
            elif kind == "drop_line":
                del lines[j]
            else:
                lines[j], lines[k] = lines[k], lines[j]
            text = "\n".join(lines)
    return name, text


# 12 examples (about 15 s: an OFA edit compiles for seconds); test_mutated_shipped_spaces_more_examples, heavy, 120
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_space())
def test_mutated_shipped_spaces(case):
    name, text = case
    check(text, f"{name}.space", SMALL[name])


@pytest.mark.heavy
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_space())
def test_mutated_shipped_spaces_more_examples(case):
    """The same property on 120 edits (about 50 s): CI's ``pytest -m heavy``."""
    name, text = case
    check(text, f"{name}.space", SMALL[name])


_LARK = lark.Lark(grammar_text(), parser="lalr")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(from_lark(_LARK, explicit={"NAME": st.sampled_from(
    ["a", "b", "mb", "s1", "normal", "c0", "n1", "ir_k3_e3", "skip", "sep_k3", "identity", "ds_k3", "width",
     "relu", "mobilenetv3", "none", "cn_k1", "resnet_block", "ir_k5_e2.5_se0.25", "x"]),
    "NUMBER": st.sampled_from(["0", "1", "2", "3", "8", "16", "0.5", "1e3"])}))
def test_generated_from_grammar(text):
    check(text, "generated.space")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_token_soup(tokens):
    check(" ".join(tokens), "soup.space")
