"""Every shipped space exports: random architectures, checker + parity, exact manifest numbers,
weight inheritance, squeeze-and-excitation, and timm's spnasnet_100 as a member of the ProxylessNAS space."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from automl.compile import load_compiled
from automl.export import count_params, export_architecture, load_model, read_manifest

ROOT = Path(__file__).resolve().parents[1]

# small enough that every space exports in about a second on one core
_SMALL = {
    "proxylessnas": {"size": "16", "width": "0.25", "head": "32", "classes": "10"},
    "enas_micro": {"size": "8", "channels": "4", "normal_cells": "3"},
}


def space_files() -> list[Path]:
    return sorted((ROOT / "spaces").glob("*.space"))


def small_overrides(path: Path) -> dict[str, str]:
    return dict(_SMALL.get(path.stem, {}))


@pytest.fixture(autouse=True)
def one_thread():
    # the test machine's cores are shared: intra-op threads mostly wait on each other
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def random_arch(cs, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.tensor([int(torch.randint(len(d.choices), (1,), generator=g)) for d in cs.decisions])


def perturb_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Trained-looking BN statistics, so that inheriting them (or not) shows in the output."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)


def test_every_shipped_space_is_covered():
    assert {p.stem for p in space_files()} >= {"digits", "proxylessnas", "enas_micro"}


@pytest.mark.parametrize("space", space_files(), ids=lambda p: p.stem)
def test_random_architectures_export(space, tmp_path):
    import onnxruntime as ort

    ov = small_overrides(space)
    cs = load_compiled(str(space), ov)
    for seed in (0, 1):
        arch = random_arch(cs, seed)
        out = tmp_path / f"arch{seed}"
        manifest = export_architecture(cs, arch, out, space_path=str(space), space_args=ov, epsilon=0.1)
        assert json.loads((out / "manifest.json").read_text()) == manifest == read_manifest(out)
        assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx", "model.safetensors",
                                                         "space.space"]
        assert manifest["choices"] == cs.decode(arch) and manifest["arch"] == arch.tolist()
        assert manifest["space_args"] == ov and manifest["epsilon"] == 0.1 and manifest["kind"] == cs.kind
        assert manifest["input_shape"] == list(cs.input_shape) and manifest["num_classes"] == cs.num_classes
        assert manifest["onnx"]["opset"] == 17 and manifest["onnx"]["parity_max_rel_diff"] < 1e-3
        assert manifest["stem_size"] == cs.stem_size and manifest["num_features"] == cs.num_features

        model = load_model(out)
        standalone = cs.build_standalone(arch)
        assert manifest["params"] == count_params(model) == count_params(standalone)
        assert manifest["cost"]["params"] == cs.cost_table.total(arch, "params")
        if cs.kind == "chain":  # the cost table is exact for chains (cells: an approximation)
            assert manifest["params"] == cs.cost_table.total(arch, "params")
            assert manifest["arch_def"] == cs.arch_def(arch)
            assert type(model).__name__ == "EfficientNet"
        else:
            assert manifest["arch_def"] is None

        # the rebuilt torch model and the ONNX file agree (dynamic batch: 5 was never traced)
        x = torch.randn(5, *cs.input_shape, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            expected = model(x).numpy()
        session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
        got = session.run(None, {"input": x.numpy()})[0]
        assert got.shape == (5, cs.num_classes)
        assert np.abs(got - expected).max() / max(1.0, np.abs(expected).max()) < 1e-3


@pytest.mark.parametrize("space", space_files(), ids=lambda p: p.stem)
def test_inherited_weights_reproduce_the_supernet(space, tmp_path):
    ov = small_overrides(space)
    cs = load_compiled(str(space), ov)
    supernet = cs.build_supernet()
    perturb_bn(supernet)
    arch = random_arch(cs, 7)
    manifest = export_architecture(cs, arch, tmp_path, supernet_state=supernet.state_dict(), onnx=False,
                                   space_path=str(space), space_args=ov)
    assert manifest["weights"]["source"] == "supernet" and manifest["onnx"] is None
    assert not (tmp_path / "model.onnx").exists()
    model = load_model(tmp_path)
    supernet.eval()
    x = torch.randn(3, *cs.input_shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want, got = supernet(x, arch), model(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    fresh = cs.build_standalone(arch).eval()
    with torch.no_grad():
        assert not torch.allclose(fresh(x), want, atol=1e-3)  # inheritance is what made them equal


def test_trained_model_is_exported_as_is(tmp_path):
    space = ROOT / "spaces" / "digits.space"
    cs = load_compiled(str(space))
    arch = random_arch(cs, 3)
    model = cs.build_standalone(arch)
    perturb_bn(model, seed=5)
    model.train()
    manifest = export_architecture(cs, arch, tmp_path, model=model, cost=0.25, cost_metric="layers")
    assert model.training  # the caller's model is not touched
    assert manifest["weights"]["source"] == "model" and manifest["cost"]["layers"] == 0.25
    model.eval()
    x = torch.randn(2, *cs.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(load_model(tmp_path)(x), model(x))


def test_squeeze_excitation(tmp_path):
    space = ROOT / "spaces" / "digits.space"
    ov = small_overrides(space)
    cs = load_compiled(str(space), ov)
    arch = random_arch(cs, 2)
    supernet = cs.build_supernet()
    manifest = export_architecture(cs, arch, tmp_path, se=0.25, space_path=str(space), space_args=ov,
                                   supernet_state=supernet.state_dict())
    assert manifest["se"] == 0.25
    assert all(b.endswith("_se0.25") for stage in manifest["arch_def"] for b in stage if b.startswith("ir_"))
    model = load_model(tmp_path)
    assert manifest["params"] == count_params(model) > cs.cost_table.total(arch)
    assert any(type(m).__name__ == "SqueezeExcite" for m in model.modules())


# timm's spnasnet_100 (timm/models/efficientnet.py, _gen_spnasnet) as choice names of the ProxylessNAS
# space: per stage, the searched layers' (kernel, expansion), then skips. The fixed ds_k3 layer and the
# stem/head are the space's own.
SPNASNET = (["ir_k3_e3"] * 3 + ["skip"]                      # ir_r3_k3_s2_e3_c24
            + ["ir_k5_e6"] + ["ir_k3_e3"] * 3                # ir_r1_k5_s2_e6_c40, ir_r3_k3_s1_e3_c40
            + ["ir_k5_e6"] + ["ir_k3_e3"] * 3                # ... c80
            + ["ir_k5_e6"] + ["ir_k5_e3"] * 3                # ir_r1_k5_s1_e6_c96, ir_r3_k5_s1_e3_c96
            + ["ir_k5_e6"] * 4                               # ir_r4_k5_s2_e6_c192
            + ["ir_k3_e6"])                                  # ir_r1_k3_s1_e6_c320


def test_spnasnet_is_a_member_of_the_proxylessnas_space(tmp_path):
    import timm

    cs = load_compiled(str(ROOT / "spaces" / "proxylessnas.space"))
    arch = cs.encode(SPNASNET)
    reference = timm.create_model("spnasnet_100", pretrained=False)
    assert count_params(reference) == 4_421_616
    manifest = export_architecture(cs, SPNASNET, tmp_path, onnx=False)
    assert manifest["params"] == 4_421_616 == cs.cost_table.total(arch)
    ours = load_model(tmp_path)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
           {k: v.shape for k, v in reference.state_dict().items()}


def test_inheritance_refuses_a_different_architecture():
    from automl.export import InheritError, inherit_weights

    cs = load_compiled(str(ROOT / "spaces" / "digits.space"))
    a = torch.zeros(len(cs.decisions), dtype=torch.long)
    b = a.clone()
    b[0] = 2  # ir_k5_e6 instead of ir_k3_e1
    with pytest.raises(InheritError, match="no counterpart"):
        inherit_weights(cs.build_supernet(), a, cs.build_standalone(b), cs.input_shape)
