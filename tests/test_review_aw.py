"""The documentation says what the code does (helper AW's run through the docs as a new user): each test reads a
statement from export/README.md or docs/internals.md and checks it against the code."""

from __future__ import annotations

import re
from pathlib import Path

from test_code_shape import MAX_CLASS, MAX_FUNCTION

from automl.compile import is_op, list_ops
from automl.pipeline.members import Members
from automl.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "recipes" / "quickstart.yaml"


def _words(text: str) -> str:
    return " ".join(text.split())


def _folder(overrides: list[str]) -> str:
    """The export folder of a quickstart run's first member under ``overrides``."""
    recipe = load_recipe(QUICK, overrides)
    return Members.of(recipe.search, sampled=recipe.search.method == "random").folder(0, None)


def test_export_readme_names_each_member_folder_as_a_run_writes_it():
    """export/README.md: budget-<i>-<budget>/ with search.budgets (the random baseline's too), eps-<ε>/ with
    fixed ε, random-<i>/ for the random baseline without budgets (a random run with budgets is not random-<i>)."""
    text = _words((ROOT / "export" / "README.md").read_text(encoding="utf-8"))
    said = text[text.index("`RUN/export/budget-<i>-<budget>/`"):text.index("`automl export` writes one")]
    assert "the random baseline's too" in said
    assert "`random-<i>/` for the random baseline without `search.budgets`" in said
    assert _folder([]) == "budget-0-none"
    assert _folder(["search.method=random"]) == "budget-0-none"
    assert _folder(["search.epsilons=[0.5,1]"]) == "eps-0.5"
    assert _folder(["search.method=random", "search.epsilons=[0,1]"]) == "random-0"


def test_internals_code_shape_limits_are_test_code_shape_s():
    """docs/internals.md gives tests/test_code_shape.py's limits as it applies them: a function of exactly
    MAX_FUNCTION lines passes (the test refuses only longer ones)."""
    text = _words((ROOT / "docs" / "internals.md").read_text(encoding="utf-8"))
    m = re.search(r"`tests/test_code_shape\.py` keeps every function at most (\d+) lines long and every class at "
                  r"most (\d+)\.", text)
    assert m, "the sentence on tests/test_code_shape.py's limits"
    assert (int(m[1]), int(m[2])) == (MAX_FUNCTION, MAX_CLASS)


def test_space_language_list_ops_lists_the_registered_ops_only():
    """docs/space-language.md, Ops: ``list_ops("ir_*")`` lists the registered MBConv ops (expansions 1, 3, 4, 6);
    a name of the table's forms that is not registered (``cn_k5``, ``ir_k3_e2.5``, suffixes) is an op that
    ``is_op`` accepts and ``list_ops`` leaves out."""
    text = _words((ROOT / "docs" / "space-language.md").read_text(encoding="utf-8"))
    said = text[text.index('`automl.compile.list_ops("ir_*")`'):text.index("| op | what | where |")]
    m = re.search(r"\(`(ir_k\d_e\d)` to `(ir_k\d_e\d)`, expansions ([\d, ]+)\)", said)
    assert m and "not listed" in said and "`automl.compile.is_op(name)`" in said, said
    listed = list_ops("ir_*")
    assert (listed[0], listed[-1]) == (m[1], m[2])
    assert sorted({float(n.split("_e")[1]) for n in listed}) == [float(e) for e in m[3].split(",")]
    for name in ("cn_k5", "ir_k3_e2.5", "ir_k3_e1_g2", "ds_k3_se0.25_nhs"):
        assert is_op(name) and name not in list_ops("*"), name
