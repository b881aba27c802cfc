"""The code's shape rules (#15): short functions and classes, no reaching into another module's private names,
imports inside functions only for optional heavy dependencies."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "automl"
MAX_FUNCTION, MAX_CLASS = 80, 300
# imported lazily on purpose: heavy, and only some commands need them
LAZY_OK = ("onnx", "onnxruntime", "matplotlib", "torchvision", "interegular")


def _modules():
    return sorted(ROOT.rglob("*.py"))


def _trees():
    return [(p.relative_to(ROOT.parent), ast.parse(p.read_text(encoding="utf-8"))) for p in _modules()]


def test_the_rules_see_the_package():
    assert len(_modules()) > 20  # a wrong ROOT would make every rule below pass


def test_no_long_functions_or_classes():
    bad = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            length = node.end_lineno - node.lineno + 1
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and length > MAX_FUNCTION:
                bad.append(f"{path}:{node.lineno} function {node.name}: {length} lines (max {MAX_FUNCTION})")
            if isinstance(node, ast.ClassDef) and length > MAX_CLASS:
                bad.append(f"{path}:{node.lineno} class {node.name}: {length} lines (max {MAX_CLASS})")
    assert not bad, "\n".join(bad)


def test_no_private_names_imported_from_other_modules():
    bad = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        bad.append(f"{path}:{node.lineno} from {node.module or '.'} import {alias.name}")
    assert not bad, "\n".join(bad)


def _lazy_ok(module: str) -> bool:
    return any(module == ok or module.startswith(ok + ".") for ok in LAZY_OK)


def test_imports_inside_functions_only_for_optional_heavy_dependencies():
    bad = []
    for path, tree in _trees():
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                bad += [f"{path}:{node.lineno} import {n}" for n in names if not _lazy_ok(n)]
    assert not bad, "\n".join(sorted(set(bad)))
