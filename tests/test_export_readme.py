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


def _export(tmp_path_factory, name: str, overrides: dict | None = None, choice: int = 0, onnx: bool = True,
            trained: bool = False):
    """A working folder holding ``export/my-net``: choice ``choice`` of every decision of spaces/NAME.space.
    ``trained`` (digits): the network trained for a few steps on the digits, exported with their normalisation
    (as ``automl run`` exports it), so that its class depends on the image and on its normalisation."""
    from automl.compile import load_compiled
    from automl.export import export_architecture

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # shared test machine: see conftest.one_thread
    space = ROOT / "spaces" / f"{name}.space"
    cs = load_compiled(str(space), overrides)
    work = tmp_path_factory.mktemp(name)
    arch = torch.tensor([min(choice, len(d.choices) - 1) for d in cs.decisions])
    model, normalize = _trained_on_digits(lambda: cs.build_standalone(arch)) if trained else (None, None)
    export_architecture(cs, arch, work / "export" / "my-net", space_path=str(space), space_args=overrides,
                        onnx=onnx, model=model, normalize=normalize)
    torch.set_num_threads(threads)
    return work


def _trained_on_digits(build, steps: int = 20) -> tuple[torch.nn.Module, dict]:
    """The network ``build()`` makes (seeded) after ``steps`` Adam steps on batches of 64 training digits, in
    eval mode; the digits' normalisation."""
    from automl.train.data import _load_digits

    x, y, _, _, _, normalize = _load_digits()
    with torch.random.fork_rng():  # the same network on every run, the global generator left as it was
        torch.manual_seed(0)
        model = build()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    for idx in order.repeat(2)[:64 * steps].split(64):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model.eval(), normalize


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return _export(tmp_path_factory, "digits", trained=True)  # a chain space: the timm snippet applies


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


def _digit_pictures():
    """Test digits as 50x40 RGB pictures (pixels scaled back to 0-255, each one a 6x5 block)."""
    from PIL import Image

    from automl.train.data import _load_digits

    _, _, x, _, _, norm = _load_digits()
    pixels = ((x[:, 0] * norm["std"][0] + norm["mean"][0]).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    for p in pixels:
        yield Image.fromarray(p).resize((50, 40), Image.NEAREST).convert("RGB")


def test_onnxruntime_snippet_classifies_an_image(exported, monkeypatch, capsys):
    """The snippet prints the class the torch model gives the picture, preprocessed as the manifest says (on a
    picture whose class without the normalisation would be another)."""
    import json

    from PIL import Image

    from automl.export import load_model

    folder = exported / "export" / "my-net"
    m = json.loads((folder / "manifest.json").read_text())
    model = load_model(folder)
    mean, std = m["normalize"]["mean"][0], m["normalize"]["std"][0]
    assert m["input_shape"] == [1, 8, 8] and m["num_classes"] == 10

    def classes() -> tuple[int, int]:
        """The class of cat.jpg: normalised as the manifest says, and not normalised."""
        x = torch.from_numpy(np.asarray(Image.open(exported / "cat.jpg").convert("L").resize((8, 8)), np.float32))
        x = (x / 255).reshape(1, 1, 8, 8)
        with torch.no_grad():
            return int(model((x - mean) / std).argmax()), int(model(x).argmax())

    for picture in _digit_pictures():
        picture.save(exported / "cat.jpg")
        expected, unnormalised = classes()
        if expected != unnormalised:
            break
    assert expected != unnormalised, "no test digit whose class depends on the normalisation"
    out = run_snippet(python_blocks()[0], exported, monkeypatch, capsys)
    assert out == f"class {expected} of 10\n"


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
