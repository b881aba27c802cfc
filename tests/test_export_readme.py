"""export/README.md's snippets run as written against a real export."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "export" / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from automl.compile import load_compiled
    from automl.export import export_architecture

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # shared test machine: see test_export_spaces.one_thread
    space = ROOT / "spaces" / "digits.space"  # a chain space: the timm snippet applies
    cs = load_compiled(str(space))
    work = tmp_path_factory.mktemp("readme")
    arch = [0] * len(cs.decisions)
    export_architecture(cs, arch, work / "export" / "my-net", space_path=str(space))
    torch.set_num_threads(threads)
    return work


def run_snippet(code: str, cwd: Path, monkeypatch, capsys) -> str:
    """Run the snippet as written, in this process (a fresh interpreter would spend seconds importing
    torch), with ``cwd`` as the working directory; returns what it printed."""
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    exec(compile(code, str(README), "exec"), {"__name__": "__main__"})  # noqa: S102 - our own README
    return capsys.readouterr().out


def test_readme_has_the_snippets():
    blocks = python_blocks()
    assert len(blocks) == 2
    assert "onnxruntime" in blocks[0] and len(blocks[0].strip().splitlines()) <= 16


def test_onnxruntime_snippet_classifies_an_image(exported, monkeypatch, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(exported / "cat.jpg")
    out = run_snippet(python_blocks()[0], exported, monkeypatch, capsys)
    assert re.fullmatch(r"class \d+ of \d+\n", out), out


def test_timm_rebuild_snippet(exported, monkeypatch, capsys):
    assert run_snippet(python_blocks()[1], exported, monkeypatch, capsys) == "True\n"
