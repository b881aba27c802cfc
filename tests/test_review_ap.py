"""The documentation says what the code does (helper AP's audit of docs/internals.md, docs/reliability.md,
docs/space-language.md and export/README.md): each test reads a statement from a doc and checks it against
the code, so a change of either that makes them disagree fails here."""

from __future__ import annotations

import ast
import dataclasses
import os
import re
from pathlib import Path

import pytest
from test_code_shape import LAZY_OK

from automl.compile import compile_space
from automl.dsl import parse_space
from automl.pipeline import setup
from automl.pipeline.state import RunState
from automl.profile import profile_space
from automl.recipe import RESULT_NEUTRAL, RESUME_MAY_SET

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "docs" / "internals.md", ROOT / "docs" / "reliability.md", ROOT / "docs" / "space-language.md",
        ROOT / "export" / "README.md"]
TINY = """space tiny
input 1 x 8 x 8
classes 10
choices mb = ir_k3_e1, ir_k3_e3
network
  stem width 16
  stage s1 width 24 repeat 2 choose mb then [mb, skip]
end
"""


def _text(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def _words(text: str) -> str:
    """``text`` with its line breaks and runs of white space made one space (a sentence wrapped anywhere)."""
    return " ".join(text.split())


def _between(text: str, start: str, end: str) -> str:
    i = text.index(start)
    return text[i:text.index(end, i + len(start))]


# ---------------------------------------------------------------- docs/internals.md

def _shape(tree: ast.AST) -> tuple[list, list]:
    """(length, name) of every class and of every function in ``tree``."""
    classes, functions = [], []
    for node in ast.walk(tree):
        length = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
        if isinstance(node, ast.ClassDef):
            classes.append((length, node.name))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions.append((length, node.name))
    return classes, functions


def test_internals_pipeline_size_is_the_code_s():
    """"The layout's size": the module count, the largest file, class and function by name, and their sizes,
    the lines in all and the registry's within 10 % of the code's now."""
    said = _words(_between(_text("docs/internals.md"), "The layout's size", "`tests/test_code_shape.py`"))
    m = re.search(r"(\d+) modules of ([\d,]+) lines in all .*?`automl/search/_registry\.py`, ([\d,]+)\), the largest "
                  r"file ([\d,]+) lines \(`(\w+\.py)`\), the largest class ([\d,]+) \(`(\w+)`.*?\), the largest "
                  r"function ([\d,]+) \(`(\w+)`\)", said)
    assert m, said
    files = sorted((ROOT / "automl" / "pipeline").glob("*.py"))
    lines = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in files}
    classes, functions = [], []
    for p in files:
        c, f = _shape(ast.parse(p.read_text(encoding="utf-8")))
        classes += c
        functions += f
    registry = len((ROOT / "automl" / "search" / "_registry.py").read_text(encoding="utf-8").splitlines())
    n = lambda s: int(s.replace(",", ""))  # noqa: E731
    near = lambda said, have: abs(n(said) - have) <= 0.1 * have  # noqa: E731 (sizes drift with every edit)
    largest = max(lines, key=lines.get)
    assert n(m[1]) == len(files) and near(m[2], sum(lines.values())) and near(m[3], registry)
    assert m[5] == largest and near(m[4], lines[largest])
    assert m[7] == max(classes)[1] and near(m[6], max(classes)[0])
    assert m[9] == max(functions)[1] and near(m[8], max(functions)[0])


def test_internals_module_table_lists_every_pipeline_module():
    table = _between(_text("docs/internals.md"), "The package, top to bottom:", "A stage is any object")
    listed = set(re.findall(r"^\| `(\w+\.py)` \|", table, re.M))
    assert listed == {p.name for p in (ROOT / "automl" / "pipeline").glob("*.py")} - {"__init__.py"}


def test_internals_state_row_names_every_checkpoint_field():
    """The state.py row lists what RunState holds; a field added to the checkpoint is named there too."""
    row = _words(_between(_text("docs/internals.md"), "| `state.py` |", "\n"))
    said = {"recipe_sha256": "the recipe's SHA-256", "stage": "stage", "epoch": "epoch", "step": "step",
            "archs": "archs", "results": "results", "phase_seconds": "phase seconds", "supernet": "supernet weights",
            "member_supernets": "member supernets", "supernet_origin": "and origin",
            "weights_fingerprint": "weights fingerprint", "data_fingerprint": "data fingerprint",
            "weights_data": "the data a reused supernet trained on",
            "final_epsilons": "adapted ε", "bad_steps": "skipped steps",
            "rng": "RNG", "metrics_bytes": "metrics length", "world_size": "the processes",
            "world_sizes": "each part's processes", "threads": "threads",
            "device": "device", "inner": "`inner`"}
    fields = [f.name for f in dataclasses.fields(RunState)]
    assert set(fields) == set(said), "a RunState field the test (and the row) does not know"
    assert [f for f in fields if said[f] not in row] == []


def test_internals_setup_row_names_every_recipe_key_checked_at_start_up():
    """setup.py's row names each recipe key that ``check_settings`` refuses before training (the key of each
    ``_recipe_error`` in the checks it calls)."""
    tree = ast.parse(Path(setup.__file__).read_text(encoding="utf-8"))
    defs = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    called = [c.func.id for c in ast.walk(defs["check_settings"]) if isinstance(c, ast.Call)
              and isinstance(c.func, ast.Name)]
    keys = set()
    for name in called:
        for c in ast.walk(defs[name]):
            if isinstance(c, ast.Call) and getattr(c.func, "id", None) == "_recipe_error":
                keys.add(".".join(ast.literal_eval(c.args[1])))
    assert {"search.theta_min", "retrain.se", "export.opset"} <= keys  # the checks were found
    row = _between(_text("docs/internals.md"), "| `setup.py` |", "\n")
    assert [k for k in sorted(keys) if f"`{k}`" not in row] == []


def test_internals_metrics_always_present():
    """``ct.metrics``: the ones every space has (a space without ``metric`` blocks has only those)."""
    metrics = compile_space(parse_space(TINY)).cost_table.metrics
    line = next(x for x in _text("docs/internals.md").splitlines() if x.startswith("ct.metrics:"))
    comment = line.split("#", 1)[1]
    assert metrics == ("params", "macs")
    assert all(f'"{m}"' in comment for m in metrics) and "always" in comment


def test_internals_names_every_lazily_imported_module():
    """The modules automl imports inside functions (tests/test_code_shape.py's LAZY_OK) are the ones named."""
    said = _words(_between(_text("docs/internals.md"), "Imports sit at the top of every module", "A module"))
    assert [m for m in LAZY_OK if m not in said] == []


# ---------------------------------------------------------------- docs/reliability.md

def test_reliability_resume_check_names_what_the_fingerprint_leaves_out():
    said = _words(_between(_text("docs/reliability.md"), "checked with the SHA-256 of the resolved recipe", ";"))
    assert [k for k in sorted(RESULT_NEUTRAL | RESUME_MAY_SET) if f"`{k}`" not in said] == []


def test_reliability_rank_reuse_names_what_a_retraining_is_reused_by():
    """automl/pipeline/rank.py: a retraining is reused only with the same architecture, epochs, seed, device
    and number of processes."""
    section = _words(_between(_text("docs/reliability.md"), "**Stopping `automl rank`.**", "**What is not"))
    reused = _between(section, "the command given, or any `automl rank` of the", "reuses them")
    assert all(what in reused for what in ("architectures", "epochs", "seeds", "device"))
    assert "device and number of processes" in section  # what the checkpoint records of each retraining


# ---------------------------------------------------------------- docs/space-language.md

def _documented_keys(paragraph: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """``[(key, [(inner, value or None), ...]), ...]`` of "`key` (`inner`: `value`, `inner2`), `key2`"."""
    out = []
    for m in re.finditer(r"`(\w+)`(?: \(([^)]*)\))?", paragraph):
        inner = []
        for item in (m[2] or "").split(","):
            parts = re.findall(r"`([^`]+)`", item)
            if parts:
                inner.append((parts[0], parts[1] if len(parts) > 1 else None))
        out.append((m[1], inner))
    return out


@pytest.mark.filterwarnings("ignore")
def test_space_language_latency_table_keys_are_the_file_s():
    """"The file:" paragraph names every key of a table ``automl space profile`` writes, and the keys (or
    values) inside each."""
    table = profile_space(compile_space(parse_space(TINY)), repeat=1, calibrate=0, progress=False)
    text = _between(_text("docs/space-language.md"), "The file: ", " in\ndeclaration order")
    documented = _documented_keys(_words(text.removeprefix("The file: ").split("`decisions`:")[0]) + "`decisions`")
    assert [k for k, _ in documented] == list(table)
    for key, inner in documented:
        for name, value in inner:
            if isinstance(table[key], dict):
                assert name in table[key], (key, name)
                assert value is None or table[key][name] == value, (key, name, value)
            else:
                assert (name, value) == (table[key], None), (key, name)


# ---------------------------------------------------------------- every doc of the audit

def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of ``path``'s headings (outside code blocks)."""
    out, seen, fenced = set(), {}, False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        m = None if fenced else re.match(r"#{1,6}\s+(.*?)\s*$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m[1].strip().lower()).replace(" ", "-")
            out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_and_anchors_resolve(doc):
    text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
    bad = []
    for link in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", link):
            continue
        path, _, anchor = link.partition("#")
        target = Path(os.path.normpath(doc.parent / path)) if path else doc
        if not target.exists() or (anchor and anchor not in _anchors(target)):
            bad.append(link)
    assert bad == []


def test_a_private_module_is_imported_only_inside_its_own_package():
    """docs/internals.md: a ``_``-prefixed module belongs to its package; other packages import what the package
    re-exports (``automl.export.run_of``, not ``automl.export._export.run_of``)."""
    wrong = []
    for path in sorted((ROOT / "automl").rglob("*.py")):
        here = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("automl."):
                continue
            parts = node.module.split(".")
            for i, part in enumerate(parts[1:], start=1):
                if part.startswith("_") and not here.startswith(".".join(parts[:i]) + "."):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}")
    assert wrong == []
