"""Numerical parity between the supernet and what is exported (review AF): ``--se`` reaches FBNet's
group-conv MBConv blocks; the ONNX parity check tells a wrong graph from torch's own float32 rounding; on a
supernet trained a few steps the path equals the exported network with recalibrated BatchNorm statistics
and in training mode, at the extremes of elastic depth, width and resolution."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from timm.models._efficientnet_blocks import SqueezeExcite
from torch import nn

from automl.compile import load_compiled
from automl.export import count_params, export_architecture, inherit_from_state, inherit_weights, load_model
from automl.export.onnx import OnnxParityError, export_onnx
from automl.nn.depthwise import plain_convs, use_fast_depthwise_grad
from automl.nn.ops import GroupInvertedResidual
from automl.nn.resize import resize_input
from automl.train.loops import recalibrate_bn

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"size": "16", "width": "0.25", "head": "32", "classes": "10"}

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def test_export_se_reaches_group_conv_blocks(tmp_path):
    """``se`` > 0 adds squeeze-excitation to every MBConv block of the standalone network, FBNet's group-conv
    ``ir_k3_e1_g2`` included (it had none while the ``ir_k3_e1`` next to it got one), and the export
    rebuilds exactly that network."""
    path = ROOT / "spaces" / "fbnet.space"
    cs = load_compiled(str(path), SMALL)
    names = {d.name: "ir_k3_e1_g2" if "ir_k3_e1_g2" in d.choices else d.choices[0] for d in cs.decisions}
    names[cs.decisions[1].name] = "ir_k3_e1"  # a timm block beside the group-conv ones
    arch = cs.encode(names)
    plain, model = cs.build_standalone(arch), cs.build_standalone(arch, se=0.25)
    blocks = [b for stage in model.blocks for b in stage]
    assert sum(isinstance(b, GroupInvertedResidual) for b in blocks) == len(blocks) - 1
    assert all(isinstance(b.se, SqueezeExcite) for b in blocks)
    # the SE of a block reads its expanded width and is sized from its input (timm's EfficientNet)
    g = next(b for b in blocks if isinstance(b, GroupInvertedResidual))
    assert g.se.conv_reduce.in_channels == g.conv_dw.out_channels
    added = sum(count_params(b.se) for b in blocks)
    assert count_params(model) == count_params(plain) + added
    manifest = export_architecture(cs, arch, tmp_path, se=0.25, space_path=str(path), space_args=SMALL)
    assert manifest["params"] == count_params(model) == count_params(load_model(tmp_path))
    assert manifest["onnx"]["parity_max_rel_diff"] < 1e-4
    assert manifest["cost"]["params"] == count_params(model) and manifest["search_cost"]["params"] == \
        count_params(plain) == cs.cost_table.total(arch)


def _trained_supernet(cs, steps: int = 3):
    """A supernet a few SGD steps away from its initialisation, on random paths (its BN statistics too)."""
    torch.manual_seed(0)
    net = cs.build_supernet()
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    net.train()
    for _ in range(steps):
        x = torch.randn(8, *cs.input_shape, generator=g)
        y = torch.randint(cs.num_classes, (8,), generator=g)
        arch = torch.tensor([int(torch.randint(k, (1,), generator=g)) for k in cs.num_choices])
        loss = torch.nn.functional.cross_entropy(net(x, arch), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def _extremes(cs) -> list[torch.Tensor]:
    """Every decision at its first choice, every one at its last, and the mixes: smallest widths with the
    deepest stages and the largest widths with the shallowest, one per resolution."""
    first = [0] * cs.num_decisions
    last = [k - 1 for k in cs.num_choices]
    mixes = []
    for r in range(cs.num_choices[cs.resolution_dec]):
        a = [(i * 5 + r) % k for i, k in enumerate(cs.num_choices)]
        for i, d in enumerate(cs.decisions):
            if d.name.endswith("_width"):
                a[i] = 0 if r % 2 == 0 else cs.num_choices[i] - 1
            elif d.name.endswith("_depth"):
                a[i] = cs.num_choices[i] - 1 if r % 2 == 0 else 0
        a[cs.resolution_dec] = r
        mixes.append(a)
    return [torch.tensor(a) for a in [first, last, *mixes]]


@pytest.mark.heavy  # CI only (pytest -m heavy): the default suite stays under 15 minutes
def test_trained_supernet_path_equals_the_export_recalibrated_and_in_training_mode(tmp_path):
    """ofa_mbv3 (elastic depth, width and resolution), a supernet trained a few steps: on each path, (1) the
    supernet with BatchNorm recalibrated on the path equals the network exported with ``bn_calibration`` on
    the same batches at the path's resolution; (2) in training mode (batch statistics) the supernet's path
    equals the standalone network with inherited weights, and both update the same running statistics."""
    ov = {"size": "16", "width": "0.25", "wide": "2", "head": "32", "classes": "10"}
    cs = load_compiled(str(ROOT / "spaces" / "ofa_mbv3.space"), ov)
    state = copy.deepcopy(_trained_supernet(cs).state_dict())
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, *cs.input_shape, generator=g)
    batches = [torch.randn(4, *cs.input_shape, generator=g) for _ in range(2)]
    sliced = 0
    for k, arch in enumerate(_extremes(cs)):
        size = cs.resolution(arch)
        net = cs.build_supernet()
        net.load_state_dict(state)
        sliced += net.slices(arch)
        recalibrate_bn(net, lambda b: net(b, arch), batches)
        export_architecture(cs, arch, tmp_path / str(k), supernet_state=state, onnx=False,
                            bn_calibration=[resize_input(b, size) for b in batches])
        with torch.no_grad():
            torch.testing.assert_close(load_model(tmp_path / str(k))(resize_input(x, size)), net(x, arch),
                                       rtol=1e-5, atol=1e-5)
        net.load_state_dict(state)
        net.train()
        model = inherit_from_state(cs, state, arch, cs.build_standalone(arch)).train()
        with torch.no_grad():
            torch.testing.assert_close(model(resize_input(x, size)), net(x, arch), rtol=1e-5, atol=1e-5)
        again = inherit_from_state(cs, net.state_dict(), arch, cs.build_standalone(arch))
        torch.testing.assert_close(again.state_dict(), model.state_dict(), rtol=1e-6, atol=1e-6)
    assert sliced >= 2  # paths that run modules on their first channels


class _Float32Rounding(nn.Module):
    """Stands for an ill-conditioned network: torch's float32 output is 1 % off its exact (float64) result,
    while the graph exported to ONNX computes the exact one (as onnxruntime's kernels, which sum in another
    order, can land closer to it than torch's)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3 * 4 * 4, 2)

    def forward(self, x):
        y = self.lin(x.flatten(1))
        if x.dtype == torch.float32 and not torch.onnx.is_in_onnx_export():
            y = y + 0.01 * y.abs().max().clamp(min=1.0)
        return y


def test_onnx_parity_is_not_broken_by_torch_rounding(tmp_path, caplog):
    """A network whose float32 result in torch is itself far from exact (fresh squeeze-excitation on inherited
    weights gave relative differences of 0.004 to 0.07 between torch and onnxruntime on 5 of 40 FBNet
    networks, torch's own float32 error being larger than onnxruntime's) exports: onnxruntime is no further
    from the float64 result than torch is. The manifest records the float32 difference."""
    entry = export_onnx(_Float32Rounding(), tmp_path / "m.onnx", (3, 4, 4))
    assert entry["parity_max_rel_diff"] > 1e-3 and (tmp_path / "m.onnx").is_file()
    assert "ill-conditioned" in caplog.text


class _WrongGraph(_Float32Rounding):
    """The exported graph is wrong (off by 1 %) while torch's float32 result is exact."""

    def forward(self, x):
        y = self.lin(x.flatten(1))
        if torch.onnx.is_in_onnx_export():
            y = y + 0.01 * y.abs().max().clamp(min=1.0)
        return y


def test_onnx_parity_still_refuses_a_wrong_graph(tmp_path):
    with pytest.raises(OnnxParityError, match="disagrees"):
        export_onnx(_WrongGraph(), tmp_path / "m.onnx", (3, 4, 4))
    assert not any(tmp_path.iterdir())


def test_inheritance_from_a_supernet_with_the_training_depthwise_backward():
    """A live supernet trained on the CPU has its depthwise convolutions switched to the training-time backward
    (``use_fast_depthwise_grad``); inheriting from it (or into a standalone network so switched) pairs them with
    the plain convolutions they are and reproduces the path (it raised InheritError: "no counterpart")."""
    cs = load_compiled(str(ROOT / "spaces" / "digits.space"))
    net = _trained_supernet(cs, steps=1)
    assert use_fast_depthwise_grad(net) > 0
    arch = torch.tensor([k - 1 for k in cs.num_choices])
    x = torch.randn(2, *cs.input_shape, generator=torch.Generator().manual_seed(0))
    for switch_standalone in (False, True):
        model = cs.build_standalone(arch)
        if switch_standalone:
            assert use_fast_depthwise_grad(model) > 0
        assert inherit_weights(net, arch, model, tuple(cs.input_shape)) > 0
        with torch.no_grad():
            torch.testing.assert_close(model.eval()(x), net(x, arch), rtol=1e-6, atol=1e-6)
    plain = cs.build_standalone(arch)
    inherit_weights(plain_convs(net), arch, plain, tuple(cs.input_shape))
    torch.testing.assert_close(plain.state_dict(), model.state_dict())
