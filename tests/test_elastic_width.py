"""Elastic width in the supernet, weight inheritance, export and membership (#17): one module per (layer, op)
at the largest widths, run on its first channels (automl.nn.elastic)."""

from __future__ import annotations

import json
import random
import re

import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.export import export_architecture, inherit_weights, load_model
from automl.nn import count_params
from automl.nn.membership import arch_def_model, encode_timm_model
from automl.train.loops import for_training
from test_width_costs import SPACE as WIDTH_SPACE  # the language side's space (tests/test_width_costs.py)

# s1's second layer reads s1's own width; s2's first layer reads s1's; s3 is fixed but reads s2's (elastic on
# its input only); the fixed-op last stage's width feeds the head conv
WTEST = WIDTH_SPACE

# MobileNetV3: the head conv runs after pooling; s2 (stride 1) has a residual exactly when s1 and s2 agree
MBV3 = """space wmbv3
input 3 x 32 x 32
classes 10
choices mb = ir_k3_e3, ir_k5_e6
network
  family mobilenetv3
  activation hard_swish
  stem width 16
  stage s1 width 16, 24 stride 2 activation relu choose mb
  stage s2 width 24, 32 repeat 2 se 0.25 choose mb
  stage s3 width 40, 48 stride 2 depth 1, 2 choose mb
  head width 64
end
"""

# no head conv: the classifier reads the last stage; FBNet's group-conv MBConv
NOHEAD = """space wnohead
input 3 x 16 x 16
classes 5
network
  stem width 8
  stage s1 width 16, 24 stride 2 repeat 2 choose [ir_k3_e3, ds_k3, ir_k3_e1_g2] then [ir_k3_e3, skip]
end
"""

SPACES = {"wtest": WTEST, "wmbv3": MBV3, "wnohead": NOHEAD}


def space_file(tmp_path, text: str) -> str:
    path = tmp_path / (re.search(r"space (\w+)", text).group(1) + ".space")
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def spaces(tmp_path_factory):
    d = tmp_path_factory.mktemp("spaces")
    return {name: load_compiled(space_file(d, text)) for name, text in SPACES.items()}


def randomize(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Weights and BN statistics away from their initial values, so that a wrong slice shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.is_floating_point():
                v = torch.rand(t.shape, generator=g) + 0.5 if name.endswith("running_var") else \
                    torch.randn(t.shape, generator=g) * 0.2
                t.copy_(v)
    return net


def random_archs(cs, n: int, seed: int = 0) -> list[torch.Tensor]:
    rng = random.Random(seed)
    return [torch.tensor([rng.randrange(k) for k in cs.num_choices]) for _ in range(n)]


def largest(cs) -> list[int]:
    """The architecture with every width decision at its largest width (the others: the first choice)."""
    a = [0] * cs.num_decisions
    for d in cs.plan.width_decisions:
        a[d] = len(cs.decisions[d].choices) - 1
    return a


@pytest.mark.parametrize("name", sorted(SPACES))
def test_supernet_path_equals_the_standalone_network_with_inherited_weights(spaces, name):
    cs = spaces[name]
    net = randomize(cs.build_supernet()).eval()
    x = torch.randn(3, *cs.input_shape, generator=torch.Generator().manual_seed(1))
    worst, sliced = 0.0, 0
    for a in random_archs(cs, 12):
        model = cs.build_standalone(a)
        assert net.path_params(a) == count_params(model) == cs.cost_table.total(a)
        inherit_weights(net, a, model, tuple(cs.input_shape))
        model.eval()
        with torch.no_grad():
            worst = max(worst, (net(x, a) - model(x)).abs().max().item())
        sliced += net.slices(a)
    assert sliced >= 3  # random architectures that run some module on its first channels
    assert worst < 1e-4


def test_inherited_weights_are_the_first_channels_of_the_largest_op(spaces):
    cs = spaces["wtest"]
    net = randomize(cs.build_supernet())
    names = {d.name: d.choices[0] for d in cs.decisions}  # widths 16, 24, 64: everything is sliced
    names.update(s1_depth="d2", s2_1="ir_k5_e6")
    a = cs.encode(names)
    model = cs.build_standalone(a)
    inherit_weights(net, a, model, tuple(cs.input_shape))
    master = net.layers[2].ops[1]  # s2_1, ir_k5_e6 at 24 -> 40, run at 16 -> 24
    block = model.blocks[1][0]
    assert tuple(block.conv_pw.weight.shape) == (96, 16, 1, 1)
    assert torch.equal(block.conv_pw.weight, master.conv_pw.weight[:96, :16])
    assert torch.equal(block.bn3.running_var, master.bn3.running_var[:24])
    assert torch.equal(block.se.conv_reduce.weight, master.se.conv_reduce.weight[:block.se.conv_reduce.out_channels, :96])
    assert torch.equal(model.conv_head.weight, net.conv_head.weight[:, :64])


def test_training_updates_the_masters_first_channels_only(spaces):
    cs = spaces["wtest"]
    net = cs.build_supernet().train()
    names = {"s1_width": "w16", "s1_depth": "d2", "s1_1": "ir_k3_e3", "s1_2": "ir_k3_e3", "s2_width": "w32",
             "s2_1": "ir_k5_e6", "s2_2": "ir_k3_e3", "s3_1": "ir_k3_e3", "s3_2": "skip", "fin_width": "w64"}
    a = cs.encode(names)
    bn = net.layers[2].ops[1].bn3  # s2_1's output BN: 40 channels, run at 32
    mean, var, count = bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked)
    net(torch.randn(4, *cs.input_shape, generator=torch.Generator().manual_seed(0)), a).sum().backward()
    assert (bn.running_mean[:32] != mean[:32]).all() and (bn.running_var[:32] != var[:32]).all()
    assert torch.equal(bn.running_mean[32:], mean[32:]) and torch.equal(bn.running_var[32:], var[32:])
    assert int(bn.num_batches_tracked) == count + 1
    g = net.layers[2].ops[1].conv_pwl.weight.grad  # 96 -> 32 of 144 -> 40 (input s1 at 16: 16 x 6)
    assert g[:32, :96].abs().sum() > 0 and g[32:].abs().sum() == 0 and g[:, 96:].abs().sum() == 0
    head = net.conv_head.weight.grad
    assert head[:, :64].abs().sum() > 0 and head[:, 64:].abs().sum() == 0
    # the unsliced s3 layer reads s2 at 32 of 40 channels: its input slice only
    g = net.layers[4].ops[0].conv_pw.weight.grad
    assert g[:, :32].abs().sum() > 0 and g[:, 32:].abs().sum() == 0


def test_one_module_per_layer_and_op_at_the_largest_widths(tmp_path, spaces):
    """The elastic space's supernet has the state_dict of the same space at its largest widths, and on the
    largest architecture it computes the same function."""
    fixed = WTEST.replace("16, 24 stride", "24 stride").replace("24, 32, 40", "40").replace("64, 96", "96") \
        .replace("space wtest", "space wfixed")
    big = load_compiled(space_file(tmp_path, fixed))
    cs = spaces["wtest"]
    net, ref = randomize(cs.build_supernet()).eval(), randomize(big.build_supernet()).eval()
    assert {k: v.shape for k, v in net.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    a = largest(cs)
    b = [k for d, k in enumerate(a) if d not in cs.plan.width_decisions]
    assert not net.slices(a) and big.num_decisions == len(b)
    x = torch.randn(2, *cs.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(net(x, torch.tensor(a)), ref(x, torch.tensor(b)))


def test_running_a_path_at_new_widths_leaves_the_global_rng_alone(spaces):
    """The first path at smaller widths builds its modules' templates; their initialisation drew from the global
    RNG, so a resumed run (templates not yet built) drew at other moments than the uninterrupted one."""
    cs = spaces["wmbv3"]
    net = cs.build_supernet().eval()
    x = torch.randn(1, *cs.input_shape, generator=torch.Generator().manual_seed(0))
    sliced = [a for a in random_archs(cs, 20, seed=3) if net.slices(a)]
    assert sliced
    before = torch.random.get_rng_state()
    with torch.no_grad():
        for a in sliced:
            net(x, a)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_training_layout_and_fast_depthwise_gradient_agree_with_plain(spaces):
    """channels_last and the CPU's depthwise weight gradient (for_training) reach the sliced ops too."""
    cs = spaces["wtest"]
    plain = randomize(cs.build_supernet()).train()
    fast = for_training(randomize(cs.build_supernet()), torch.device("cpu")).train()
    x = torch.randn(4, *cs.input_shape, generator=torch.Generator().manual_seed(2))
    for a in random_archs(cs, 4, seed=3):
        plain.zero_grad(), fast.zero_grad()
        plain(x, a).square().sum().backward()
        fast(x.contiguous(memory_format=torch.channels_last), a).square().sum().backward()
        for (k, p), q in zip(plain.named_parameters(), fast.parameters()):
            if p.grad is not None:
                assert torch.allclose(p.grad, q.grad, atol=1e-4, rtol=1e-3), k
    assert any(type(m).__name__ == "FastDepthwiseConv2d"
               for op in fast._sliced.values() for m in op.template.modules())


def test_export_cli_of_an_elastic_architecture(tmp_path, spaces, capsys):
    path = space_file(tmp_path, WTEST)
    cs = spaces["wtest"]
    net = randomize(cs.build_supernet()).eval()
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"supernet": net.state_dict()}, ckpt)
    names = {"s1_width": "w16", "s1_depth": "d2", "s1_1": "ir_k3_e3", "s1_2": "ir_k5_e6", "s2_width": "w32",
             "s2_1": "ir_k5_e6", "s2_2": "ir_k3_e3", "s3_1": "ir_k3_e3", "s3_2": "skip", "fin_width": "w64"}
    (tmp_path / "arch.json").write_text(json.dumps({"choices": names}))
    out = tmp_path / "out"
    assert main(["export", path, "--arch", str(tmp_path / "arch.json"), "--out", str(out),
                 "--weights", str(ckpt)]) == 0
    assert "weights: supernet" in capsys.readouterr().out
    m = json.loads((out / "manifest.json").read_text())
    a = cs.encode(names)
    assert m["params"] == m["cost"]["params"] == cs.cost_table.total(a)
    assert m["onnx"]["parity_max_abs_diff"] < 1e-4
    assert m["arch_def"][1] == ["ir_r1_k5_s2_e6_c32_se0.25", "ir_r1_k3_s1_e3_c32_se0.25"]
    model = load_model(out)  # timm alone, from the manifest
    x = torch.randn(2, *cs.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(model(x), net(x, a), atol=1e-4)


def test_export_with_se_added_keeps_the_sliced_weights(tmp_path, spaces):
    cs = spaces["wnohead"]
    net = randomize(cs.build_supernet())
    a = cs.encode({"s1_width": "w16", "s1_1": "ir_k3_e3", "s1_2": "ir_k3_e3"})
    m = export_architecture(cs, a, tmp_path / "out", supernet_state=net.state_dict(), se=0.25, onnx=False)
    model = load_model(tmp_path / "out")
    assert m["weights"]["source"] == "supernet" and model.blocks[0][0].se is not None
    assert torch.equal(model.classifier.weight, net.classifier.weight[:, :16])
    assert torch.equal(model.blocks[0][0].conv_pw.weight, net.layers[0].ops[0].conv_pw.weight[:48])


def test_encode_finds_the_width_of_each_stage(tmp_path, spaces):
    for name in ("wtest", "wmbv3"):
        cs = spaces[name]
        for a in random_archs(cs, 6, seed=5):
            (tmp_path / "ad.json").write_text(json.dumps(cs.arch_def(a)))
            names = encode_timm_model(cs, arch_def_model(tmp_path / "ad.json", cs))
            chosen = cs.decode(a)
            for d in cs.plan.width_decisions:
                assert names[cs.decisions[d].name] == chosen[d]
            assert cs.arch_def(cs.encode(names)) == cs.arch_def(a)


def test_encode_cli_names_a_width_the_stage_does_not_offer(tmp_path, spaces, capsys):
    path = space_file(tmp_path, WTEST)
    cs = spaces["wtest"]
    blocks = cs.arch_def(cs.encode({d.name: d.choices[0] for d in cs.decisions}))
    (tmp_path / "ok.json").write_text(json.dumps(blocks))
    assert main(["space", "encode", path, "--arch-def", str(tmp_path / "ok.json")]) == 0
    assert json.loads(capsys.readouterr().out)["choices"]["s2_width"] == "w24"
    blocks[1] = [b.replace("_c24", "_c56") for b in blocks[1]]  # 56: a multiple of 8 that s2 does not offer
    (tmp_path / "bad.json").write_text(json.dumps(blocks))
    assert main(["space", "encode", path, "--arch-def", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err
    assert "layer s2_1" in err and "56 output channels" in err and "s2_width offers 24, 32, 40" in err
