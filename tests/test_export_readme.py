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


def _export(tmp_path_factory, name: str, overrides: dict | None = None, choice: int = 0, onnx: bool = True):
    """A working folder holding ``export/my-net``: choice ``choice`` of every decision of spaces/NAME.space."""
    from automl.compile import load_compiled
    from automl.export import export_architecture

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # shared test machine: see conftest.one_thread
    space = ROOT / "spaces" / f"{name}.space"
    cs = load_compiled(str(space), overrides)
    work = tmp_path_factory.mktemp(name)
    arch = [min(choice, len(d.choices) - 1) for d in cs.decisions]
    export_architecture(cs, arch, work / "export" / "my-net", space_path=str(space), space_args=overrides,
                        onnx=onnx)
    torch.set_num_threads(threads)
    return work


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return _export(tmp_path_factory, "digits")  # a chain space: the timm snippet applies


SMALL = {"size": "32", "classes": "10", "head": "64"}


@pytest.fixture(scope="module")
def exported_mobilenetv3(tmp_path_factory):
    """timm's MobileNetV3 (``timm_class``, ``se_layer``, ``head_bias`` in its timm_kwargs), at 32x32."""
    return _export(tmp_path_factory, "mobilenetv3", SMALL, choice=1, onnx=False)


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


def test_timm_rebuild_snippet_on_mobilenetv3(exported_mobilenetv3, monkeypatch, capsys):
    import json

    kw = json.loads((exported_mobilenetv3 / "export" / "my-net" / "manifest.json").read_text())["timm_kwargs"]
    assert kw["timm_class"] == "MobileNetV3" and kw["se_layer"] == "mobilenetv3" and "head_bias" in kw
    assert run_snippet(python_blocks()[1], exported_mobilenetv3, monkeypatch, capsys) == "True\n"


def test_timm_kwargs_keys_are_the_documented_ones(exported, exported_mobilenetv3):
    import json

    text = README.read_text(encoding="utf-8")
    for work in (exported, exported_mobilenetv3):
        kw = json.loads((work / "export" / "my-net" / "manifest.json").read_text())["timm_kwargs"]
        assert [k for k in kw if f"`{k}`" not in text and f"`{k}: " not in text] == []


def test_group_conv_networks_have_no_arch_def(tmp_path_factory):
    import json

    from automl.export import load_model

    work = _export(tmp_path_factory, "fbnet", SMALL, choice=1, onnx=False)  # ir_k3_e1_g2 everywhere
    m = json.loads((work / "export" / "my-net" / "manifest.json").read_text())
    assert m["arch_def"] is None and "timm_kwargs" not in m and "`arch_def: null`" in README.read_text()
    assert sum(p.numel() for p in load_model(work / "export" / "my-net").parameters()) == m["params"]
