"""Every shipped space exports: random architectures, checker + parity, exact manifest numbers,
weight inheritance, squeeze-and-excitation, and timm's spnasnet_100 as a member of the ProxylessNAS space."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from automl.compile import load_compiled
from automl.nn.resize import resize_input
from automl.export import count_params, export_architecture, load_model, read_manifest

ROOT = Path(__file__).resolve().parents[1]

# small enough that every space exports in about a second on one core
_SMALL = {
    "proxylessnas": {"size": "16", "width": "0.25", "head": "32", "classes": "10"},
    "enas_micro": {"size": "8", "channels": "4", "normal_cells": "3"},
    "fbnet": {"size": "16", "width": "0.25", "head": "32", "classes": "10"},
    "mobilenetv3": {"size": "16", "width": "0.25", "head": "32", "classes": "10"},
    "ofa_mbv3": {"size": "16", "width": "0.25", "wide": "2", "head": "32", "classes": "10"},
    "darts": {"size": "8", "channels": "4", "normal_cells": "1"},
    "nasbench201": {"size": "8", "channels": "4", "cells": "1"},
}


def space_files() -> list[Path]:
    return sorted((ROOT / "spaces").glob("*.space"))


def small_overrides(path: Path) -> dict[str, str]:
    return dict(_SMALL.get(path.stem, {}))


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


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
    assert {p.stem for p in space_files()} >= {"digits", "proxylessnas", "enas_micro", "fbnet", "mobilenetv3"}
    assert all(p.stem in _SMALL or p.stem == "digits" for p in space_files())


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
        # (elastic resolution: the network takes the chosen size)
        assert manifest["input_shape"] == list(cs.arch_input_shape(arch)) and manifest["num_classes"] == cs.num_classes
        assert manifest["onnx"]["opset"] == 17 and manifest["onnx"]["parity_max_rel_diff"] < 1e-3
        assert manifest["stem_size"] == cs.stem_size and manifest["num_features"] == cs.num_features

        model = load_model(out)
        standalone = cs.build_standalone(arch)
        assert manifest["params"] == count_params(model) == count_params(standalone)
        assert manifest["cost"]["params"] == cs.cost_table.total(arch, "params")
        if cs.kind == "chain":  # the cost table is exact for chains (cells: an approximation)
            assert manifest["params"] == cs.cost_table.total(arch, "params")
            assert manifest["arch_def"] == cs.arch_def(arch)
            assert type(model).__name__ == ("MobileNetV3" if cs.plan.family == "mobilenetv3" else "EfficientNet")
        else:
            assert manifest["arch_def"] is None

        # the rebuilt torch model and the ONNX file agree (dynamic batch: 5 was never traced)
        x = torch.randn(5, *cs.arch_input_shape(arch), generator=torch.Generator().manual_seed(seed))
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
    small = resize_input(x, cs.resolution(arch))  # elastic resolution: the supernet resizes, as the data would
    with torch.no_grad():
        want, got = supernet(x, arch), model(small)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    fresh = cs.build_standalone(arch).eval()
    with torch.no_grad():
        assert not torch.allclose(fresh(small), want, atol=1e-3)  # inheritance is what made them equal


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


def test_squeeze_excitation_on_depthwise_separable_blocks(tmp_path):
    """--se reaches ds blocks too (the ProxylessNAS space's fixed first layer): the manifest's arch_def is
    the one the model was built from, so timm rebuilds the same network."""
    space = ROOT / "spaces" / "proxylessnas.space"
    cs = load_compiled(str(space), small_overrides(space))
    arch = random_arch(cs, 0)
    manifest = export_architecture(cs, arch, tmp_path, se=0.25, onnx=False)
    assert manifest["arch_def"][0][0].startswith("ds_") and manifest["arch_def"][0][0].endswith("_se0.25")
    assert manifest["arch_def"] == cs.arch_def(arch, se=0.25)
    assert count_params(load_model(tmp_path)) == manifest["params"] == count_params(cs.build_standalone(arch, 0.25))


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


# timm networks that are members of the shipped spaces: `space encode --timm` finds their choices and
# `automl export` rebuilds them with exactly timm's parameter count (ONNX parity is checked by the export)
TIMM_MEMBERS = [("mobilenetv3", "mobilenetv3_large_100", 5_483_032, "MobileNetV3"),
                ("fbnet", "fbnetc_100", 5_572_200, "EfficientNet"),
                ("proxylessnas", "spnasnet_100", 4_421_616, "EfficientNet")]


@pytest.mark.parametrize("space,model_name,params,cls", TIMM_MEMBERS, ids=[m[1] for m in TIMM_MEMBERS])
def test_encode_timm_then_export_reproduces_timm(space, model_name, params, cls, tmp_path, capsys):
    import onnxruntime as ort
    import timm

    from automl.cli import main

    path = str(ROOT / "spaces" / f"{space}.space")
    arch_json = tmp_path / "arch.json"
    assert main(["space", "encode", path, "--timm", model_name, "--out", str(arch_json)]) == 0
    encoded = json.loads(arch_json.read_text())
    assert encoded["params"] == params and encoded["timm_model"] == model_name
    assert main(["export", path, "--arch", str(arch_json), "--out", str(tmp_path / "export")]) == 0
    manifest = read_manifest(tmp_path / "export")
    reference = timm.create_model(model_name, pretrained=False)
    assert count_params(reference) == params == manifest["params"] == manifest["cost"]["params"]
    assert manifest["onnx"]["parity_max_rel_diff"] < 1e-3
    ours = load_model(tmp_path / "export")
    assert type(ours).__name__ == type(reference).__name__ == cls
    # the same network: the same weight shapes in the same order, and with timm's weights the same output
    assert [v.shape for v in ours.state_dict().values()] == [v.shape for v in reference.state_dict().values()]
    ours.load_state_dict(dict(zip(ours.state_dict(), reference.state_dict().values())))
    reference.eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x))
    session = ort.InferenceSession(str(tmp_path / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [3, 224, 224]


def test_encode_names_the_layer_that_is_not_in_the_space(capsys):
    from automl.cli import main

    path = str(ROOT / "spaces" / "mobilenetv3.space")
    assert main(["space", "encode", path, "--timm", "mobilenetv3_small_100"]) == 2
    err = capsys.readouterr().err
    assert "layer s0_1 (16->16 channels) of space mobilenetv3" in err and "blocks.0.0" in err
    assert "squeeze-excitation" in err and "Traceback" not in err
    assert main(["space", "encode", str(ROOT / "spaces" / "fbnet.space"), "--timm", "no_such_net"]) == 2
    assert "not a timm model" in capsys.readouterr().err


def test_encode_an_arch_def_file(tmp_path, capsys):
    from automl.cli import main

    path = str(ROOT / "spaces" / "proxylessnas.space")
    (tmp_path / "a.json").write_text(json.dumps([["ds_r1_k3_s1_c16"], ["ir_r2_k3_s2_e3_c24"], ["ir_r1_k5_s2_e6_c40"],
                                                 ["ir_r1_k5_s2_e6_c80"], ["ir_r1_k5_s1_e6_c96"],
                                                 ["ir_r1_k5_s2_e6_c192"], ["ir_r1_k3_s1_e6_c320"]]))
    assert main(["space", "encode", path, "--arch-def", str(tmp_path / "a.json")]) == 0
    choices = json.loads(capsys.readouterr().out)["choices"]
    assert [choices[f"s1_{i}"] for i in (1, 2, 3, 4)] == ["ir_k3_e3", "ir_k3_e3", "skip", "skip"]
    assert choices["s2_1"] == "ir_k5_e6" and choices["s2_2"] == "skip" and choices["s6_1"] == "ir_k3_e6"
    # a block the space does not offer: expansion 4 in the ProxylessNAS space (3 or 6)
    (tmp_path / "b.json").write_text(json.dumps([["ds_r1_k3_s1_c16"], ["ir_r1_k3_s2_e4_c24"]]))
    assert main(["space", "encode", path, "--arch-def", str(tmp_path / "b.json")]) == 2
    assert "layer s1_1 (16->24 channels, stride 2)" in capsys.readouterr().err
