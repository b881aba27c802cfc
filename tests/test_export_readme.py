"""export/README.md's snippets run as written against a real export."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "export" / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from automl.compile import load_compiled
    from automl.export import export_architecture

    from tests.test_export_spaces import small_overrides, space_files

    space = next(p for p in space_files() if load_compiled(str(p), small_overrides(p)).kind == "chain")
    cs = load_compiled(str(space), small_overrides(space))
    work = tmp_path_factory.mktemp("readme")
    arch = [0] * len(cs.decisions)
    export_architecture(cs, arch, work / "export" / "my-net", space_path=str(space),
                        space_args=small_overrides(space))
    return work


def run_snippet(code: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_readme_has_the_snippets():
    blocks = python_blocks()
    assert len(blocks) == 2
    assert "onnxruntime" in blocks[0] and len(blocks[0].strip().splitlines()) <= 16


def test_onnxruntime_snippet_classifies_an_image(exported):
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(exported / "cat.jpg")
    out = run_snippet(python_blocks()[0], exported)
    assert re.fullmatch(r"class \d+ of \d+\n", out), out


def test_timm_rebuild_snippet(exported):
    assert run_snippet(python_blocks()[1], exported) == "True\n"
