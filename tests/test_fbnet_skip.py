"""FBNet's "skip" where a layer changes shape: its builder's ``Identity(C_in, C_out, stride)`` is a 1x1 conv,
BN and ReLU there (automl's ``cn_k1``, timm's ConvBnAct), so all 22 searched layers of spaces/fbnet.space
have FBNet's 9 candidates (9^22 architectures). A network choosing ``cn_k1`` exports as a plain timm
EfficientNet with a ``cn`` block, inherits the supernet's weights, costs what it builds, and encodes back."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from timm.models._efficientnet_blocks import ConvBnAct
from timm.models.efficientnet import EfficientNet
from torch.utils.flop_counter import FlopCounterMode

from automl.cli import main
from automl.compile import get_op, list_ops, load_compiled
from automl.export import count_params, export_architecture, inherit_weights, load_model, read_manifest
from automl.export.timm_spec import build_timm_model
from automl.nn.membership import encode_timm_model
from test_elastic_width import randomize  # weights and BN statistics away from their initial values

ROOT = Path(__file__).resolve().parents[1]
FBNET = str(ROOT / "spaces" / "fbnet.space")
SMALL = {"size": "16", "width": "0.25", "head": "32", "classes": "10"}
SMALL_ARGS = [f"--set={k}={v}" for k, v in SMALL.items()]
# the layers that change shape (stride 2 or a new width): the first of s1..s5 and s6's only layer
RESHAPING = ["s1_1", "s2_1", "s3_1", "s4_1", "s5_1", "s6_1"]
MBCONVS = ["ir_k3_e1", "ir_k3_e1_g2", "ir_k3_e3", "ir_k3_e6", "ir_k5_e1", "ir_k5_e1_g2", "ir_k5_e3", "ir_k5_e6"]

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture(scope="module")
def fbnet():
    return load_compiled(FBNET, SMALL)


def with_cn_k1(cs, seed: int = 0) -> dict[str, str]:
    """``cn_k1`` at every layer that changes shape, random timm blocks (no g2: those are not timm blocks,
    and no skip) elsewhere."""
    g = torch.Generator().manual_seed(seed)
    plain = [op for op in MBCONVS if "_g" not in op]
    return {d.name: "cn_k1" if d.name in RESHAPING else plain[int(torch.randint(len(plain), (1,), generator=g))]
            for d in cs.decisions}


def flop_counter_macs(model, input_shape) -> float:
    """An independent count: torch's FlopCounterMode (2 FLOPs per multiply-add) on a real forward."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.randn(1, *input_shape))
    return fc.get_total_flops() / 2


def test_cn_k1_is_a_registered_block_op():
    info = get_op("cn_k1")
    assert info.kind == "block" and not info.se and not info.same_channels and not info.stride1_only
    assert info.block_str == "cn_r1_k1_s{stride}_c{out}"
    assert {"cn_k1", "cn_k3"} <= set(list_ops("cn_*", kind="block"))


def test_fbnet_has_22_decisions_of_9_choices(fbnet):
    for cs in (fbnet, load_compiled(FBNET)):  # small and as published
        assert cs.num_choices == [9] * 22 and math.prod(cs.num_choices) == 9 ** 22
        reshaping = [layer.name for layer in cs.plan.layers if layer.stride > 1 or layer.in_ch != layer.out_ch]
        assert reshaping == RESHAPING
        for layer in cs.plan.layers:  # FBNet's skip: cn_k1 where the layer changes shape, skip elsewhere
            ninth = "cn_k1" if layer.name in RESHAPING else "skip"
            assert list(layer.choices) == MBCONVS + [ninth], layer.name


def test_cn_k1_exports_as_a_timm_conv_bn_act_with_the_supernet_weights(fbnet, tmp_path):
    import onnxruntime as ort

    cs = fbnet
    arch = cs.encode(with_cn_k1(cs))
    supernet = randomize(cs.build_supernet()).eval()
    manifest = export_architecture(cs, arch, tmp_path, supernet_state=supernet.state_dict(), space_path=FBNET,
                                   space_args=SMALL)
    assert manifest["weights"]["source"] == "supernet" and manifest["arch_def"] == cs.arch_def(arch)
    model = load_model(tmp_path).eval()
    assert type(model) is EfficientNet
    blocks = [b for stage in model.blocks for b in stage]
    layers = {layer.name: (i, layer) for i, layer in enumerate(cs.plan.layers)}
    for name in RESHAPING:  # the timm block of each cn_k1 layer: a 1x1 ConvBnAct of the layer's shape
        i, layer = layers[name]
        block = blocks[i]
        assert type(block) is ConvBnAct and not block.has_skip, name
        conv = block.conv
        assert (conv.in_channels, conv.out_channels) == (layer.in_ch, layer.out_ch), name
        assert conv.kernel_size == (1, 1) and conv.stride == (layer.stride,) * 2, name
        assert isinstance(block.bn1.act, torch.nn.ReLU), name
        stage = manifest["arch_def"][int(name[1])]
        assert stage[0] == f"cn_r1_k1_s{layer.stride}_c{layer.out_ch}", name
    assert sum(type(b) is ConvBnAct for b in blocks) == len(RESHAPING)
    # the standalone network with the inherited weights computes the supernet's path
    x = torch.randn(3, *cs.input_shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want, got = supernet(x, arch), model(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # ... and timm alone rebuilds it from the manifest
    rebuilt = build_timm_model(manifest["arch_def"], manifest["timm_kwargs"]).eval()
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), want, rtol=1e-5, atol=1e-5)
    # the ONNX file agrees
    assert manifest["onnx"]["parity_max_rel_diff"] < 1e-3
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {"input": x.numpy()})[0]
    assert np.abs(onnx_out - want.numpy()).max() / max(1.0, float(want.abs().max())) < 1e-3


def test_cn_k1_costs_what_it_builds(fbnet):
    cs = fbnet
    supernet = cs.build_supernet()
    for seed in range(3):
        arch = cs.encode(with_cn_k1(cs, seed))
        model = cs.build_standalone(arch)
        assert cs.cost_table.total(arch, "params") == count_params(model) == supernet.path_params(arch)
        assert cs.cost_table.total(arch, "macs") == flop_counter_macs(model, cs.input_shape)
    # the 1x1 conv and BN of each cn_k1 layer, nothing else: in*out weights, a BN scale and shift per output
    costs = cs.cost_table.costs("params")
    for d, dec in enumerate(cs.decisions):
        if dec.name in RESHAPING:
            layer = next(layer for layer in cs.plan.layers if layer.name == dec.name)
            cost = costs[d, dec.choices.index("cn_k1")].item()
            assert cost == layer.in_ch * layer.out_ch + 2 * layer.out_ch, dec.name


def test_encode_round_trips_a_timm_network_with_a_cn_block(fbnet, tmp_path, capsys):
    cs = fbnet
    names = with_cn_k1(cs, 1)
    arch = cs.encode(names)
    manifest = export_architecture(cs, arch, tmp_path / "e", onnx=False, space_path=FBNET, space_args=SMALL)
    # a timm EfficientNet built by timm alone from the arch_def: its cn blocks are cn_k1 again
    timm_net = build_timm_model(manifest["arch_def"], manifest["timm_kwargs"])
    assert sum(type(b) is ConvBnAct for stage in timm_net.blocks for b in stage) == len(RESHAPING)
    assert encode_timm_model(cs, timm_net) == names
    # the CLI, from the manifest's arch_def
    assert main(["space", "encode", FBNET, "--arch-def", str(tmp_path / "e" / "manifest.json"), *SMALL_ARGS]) == 0
    encoded = json.loads(capsys.readouterr().out)
    assert encoded["choices"] == names and encoded["params"] == read_manifest(tmp_path / "e")["params"]


ELASTIC = """space fbnet_elastic
input 3 x 16 x 16
classes 5
network
  activation relu
  stem width 8
  stage s1 width 16, 24 stride 2 repeat 2 choose [ir_k3_e3, cn_k1] then [ir_k3_e1, skip]
  stage s2 width 24, 32 choose [ir_k5_e3, cn_k1]
  head width 32
end
"""


def test_cn_k1_under_elastic_width(tmp_path):
    path = tmp_path / "fbnet_elastic.space"
    path.write_text(ELASTIC)
    cs = load_compiled(str(path))
    net = randomize(cs.build_supernet()).eval()
    x = torch.randn(2, *cs.input_shape, generator=torch.Generator().manual_seed(1))
    sliced = 0
    for w1 in ("w16", "w24"):
        for w2 in ("w24", "w32"):
            a = cs.encode({"s1_width": w1, "s2_width": w2, "s1_1": "cn_k1", "s1_2": "ir_k3_e1", "s2_1": "cn_k1"})
            model = cs.build_standalone(a)
            assert net.path_params(a) == count_params(model) == cs.cost_table.total(a)
            inherit_weights(net, a, model, tuple(cs.input_shape))
            with torch.no_grad():
                torch.testing.assert_close(model.eval()(x), net(x, a), rtol=1e-5, atol=1e-5)
            sliced += net.slices(a)
    assert sliced >= 3  # the smaller widths run the cn_k1 masters on their first channels
