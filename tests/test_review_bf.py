"""The network side after review BF: the op registry refuses a name that is an op already (one automl builds from
its name, ``ir_k3_e2``) or one a .space file cannot write, checks a block op's block_str when it is registered, and
passes a constructor only the keywords it takes; ``--timm`` names timm does not have get the close ones, a timm
network is built on the meta device, a cell space is refused before anything is built, and an empty ``--timm`` is a
user error; a float64 supernet's path network (elastic width) stays float64; ``build_standalone`` refuses an SE
ratio outside [0, 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from torch import nn

from automl.cli import main
from automl.compile import compile_space, load_compiled
from automl.dsl import parse_space
from automl.errors import UserError
from automl.nn import arch_def, build_standalone, build_supernet, create_op, get_op, is_op, register_op
from automl.nn.membership import timm_model

ROOT = Path(__file__).resolve().parents[1]


# ---- the op registry ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ir_k3_e2", "ds_k7_se0.5", "cn_k5_nre"])
def test_a_name_automl_builds_from_its_name_is_not_registered_over(name):
    """``ir_k3_e2`` is an op (built from its name): registering another under it would change every space that
    uses it, silently."""
    before = get_op(name).doc
    with pytest.raises(ValueError, match=f"op '{name}' already exists"):
        register_op(name, "block", block_str="ir_r1_k3_s{stride}_e2_c{out}")(lambda *a, **k: nn.Identity())
    assert get_op(name).doc == before and "timm" in before


@pytest.mark.parametrize("name", ["my op", "my-op", "3x3conv", "conv.k3"])
def test_a_name_a_space_file_cannot_write_is_refused(name):
    with pytest.raises(ValueError, match="a .space file writes op names of letters, digits and '_'"):
        register_op(name, "cell")
    assert not is_op(name)


@pytest.mark.parametrize("block_str,message", [
    ("ir_r1_k3_s1_e3_c16", "needs the holes {stride} and {out}"),          # fixed widths: not the layer's
    ("ir_r1_k3_s{stride}_e3_c{outs}", "needs the holes {stride} and {out}"),
    ("zz_{stride}_{out}", "is not a timm block string"),                     # timm's KeyError 'r' at build time
    ("ir_r1_k3_s{stride}_e{se}_c{out}", "is not a timm block string"),       # a hole nothing fills
    ("ir_r2_k3_s{stride}_e3_c{out}", "must build one block"),                # two blocks for one layer
])
def test_a_block_str_is_checked_when_the_op_is_registered(block_str, message):
    name = "test_bf_block_" + str(abs(hash(block_str)))
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        register_op(name, "block", block_str=block_str)
    assert not is_op(name)


CELL_SPACE = """space bf_cells
input 3 x 8 x 8
classes 4
choices ops = test_bf_conv_k3, identity
network
  stem width 8
  cells c x 2 width 8
end
cell c inputs x
  node n1 sums edges from x through ops
  node n2 sums edges from x, n1 through ops
end
"""


def test_a_constructor_gets_only_the_keywords_it_takes():
    """The registry said keywords a constructor does not use are ignored; a constructor without ``**kw`` got
    ``device`` and failed (TypeError) in the cost table, the supernet and the standalone network."""
    if not is_op("test_bf_conv_k3"):
        @register_op("test_bf_conv_k3", "cell", doc="a plain 3x3 conv")
        def _conv(in_ch, out_ch, stride):
            return nn.Conv2d(in_ch, out_ch, 3, stride, 1)
    assert isinstance(create_op("test_bf_conv_k3", 4, 8, 1, device=None, act_layer=nn.ReLU), nn.Conv2d)
    cs = compile_space(parse_space(CELL_SPACE, "bf.space"))
    arch = torch.zeros(cs.num_decisions, dtype=torch.long)
    net, alone = build_supernet(cs).eval(), build_standalone(cs, arch).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert net(x, arch).shape == alone(x).shape == (2, 4)


# ---- membership: --timm ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mobilnetv3_large_100", "MobileNetV3_Large_100"])
def test_a_misspelt_timm_model_names_the_close_ones(capsys, name):
    """``mobilnetv3_large_100`` (a letter missing) and ``MobileNetV3_Large_100`` had no suggestion: only names
    containing the first word were."""
    assert main(["space", "encode", str(ROOT / "spaces" / "mobilenetv3.space"), "--timm", name]) == 2
    err = capsys.readouterr().err
    assert f"--timm {name}: not a timm model; similar: mobilenetv3_large_100" in err
    assert "Traceback" not in err


def test_a_hub_name_says_to_give_the_timm_name(capsys):
    assert main(["space", "encode", str(ROOT / "spaces" / "mobilenetv3.space"),
                 "--timm", "hf-hub:timm/mobilenetv3_large_100.ra_in1k"]) == 2
    err = capsys.readouterr().err
    assert "not a hub name" in err and "similar: mobilenetv3_large_100" in err


def test_an_unknown_pretrained_tag_names_the_tags(capsys):
    """``mobilenetv3_large_100.foo`` was 'timm cannot build it with 3 input channels and 1000 classes: Invalid
    pretrained tag': the classes were not the trouble. A known tag still encodes."""
    space = str(ROOT / "spaces" / "mobilenetv3.space")
    assert main(["space", "encode", space, "--timm", "mobilenetv3_large_100.foo"]) == 2
    err = capsys.readouterr().err
    assert "timm's mobilenetv3_large_100 has no pretrained tag 'foo' (its tags: " in err and "ra_in1k" in err
    assert "classes" not in err
    assert main(["space", "encode", space, "--timm", "mobilenetv3_large_100.ra_in1k"]) == 0


def test_a_timm_network_is_built_on_the_meta_device():
    """Membership reads types, settings and shapes only: a network of a billion parameters took GBs and many
    seconds (vit_giant_patch14_224: 4.7 GB, 23 s) to be told it is not an EfficientNet."""
    cs = load_compiled(str(ROOT / "spaces" / "mobilenetv3.space"))
    model = timm_model("mobilenetv3_large_100", cs)
    assert {p.device.type for p in model.parameters()} == {"meta"}


def test_a_cell_space_is_refused_before_the_timm_network_is_built(monkeypatch):
    cs = load_compiled(str(ROOT / "spaces" / "nasbench201.space"))

    def refuse(*a, **k):  # pragma: no cover - what the test asserts is not reached
        raise AssertionError("built a timm network for a cell space")
    monkeypatch.setattr(timm, "create_model", refuse)
    with pytest.raises(UserError, match="space nasbench201 is a cell space"):
        timm_model("mobilenetv3_large_100", cs)


def test_an_empty_timm_name_is_a_user_error(capsys):
    """``--timm ""`` (``"$MODEL"`` unset) reached the --arch-def reader with no file: internal error, exit 1."""
    assert main(["space", "encode", str(ROOT / "spaces" / "digits.space"), "--timm", ""]) == 2
    err = capsys.readouterr().err
    assert "--timm is empty" in err and "Traceback" not in err


# ---- elastic width: the path network of a float64 supernet -------------------------------------------

ELASTIC = """space bf_elastic
input 3 x 16 x 16
classes 5
network
  stem width 8
  stage a width 16, 24 stride 2 choose [ir_k3_e3, ir_k5_e3]
  stage b width 16, 32 choose [ir_k3_e3, ds_k3]
  head width 32
end
"""


def test_a_float64_supernets_path_network_stays_float64():
    """``path_network`` (what weight inheritance reads) made a sliced module's copy in float32 when the supernet
    was float64: running it failed with 'expected scalar type Double but found Float'."""
    cs = compile_space(parse_space(ELASTIC, "bf.space"))
    torch.manual_seed(0)
    net = build_supernet(cs).eval().to(torch.float64)
    arch = torch.zeros(cs.num_decisions, dtype=torch.long)  # the smaller widths: sliced
    assert net.slices(arch)
    path = net.path_network(arch)
    assert {t.dtype for t in path.state_dict().values() if t.is_floating_point()} == {torch.float64}
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(path(x), net(x, arch), rtol=1e-12, atol=1e-12)


# ---- build_standalone's se ----------------------------------------------------------------------------

@pytest.mark.parametrize("se", [-0.5, 1.0, float("nan")])
def test_an_se_ratio_outside_0_1_is_refused(se):
    """``se=-0.5`` built a network whose arch_def said ``_se-0.5`` (timm then adds no SE): a network that its
    own arch_def does not describe."""
    cs = load_compiled(str(ROOT / "spaces" / "digits.space"))
    arch = torch.zeros(cs.num_decisions, dtype=torch.long)
    with pytest.raises(ValueError, match=r"se must be in \[0, 1\)"):
        build_standalone(cs, arch, se=se)
    with pytest.raises(ValueError, match=r"se must be in \[0, 1\)"):
        arch_def(cs, arch, se=se)
    assert build_standalone(cs, arch, se=0.25) is not None


# ---- an ensemble in float64 ---------------------------------------------------------------------------

def test_a_float64_ensemble_predicts_in_float64():
    """``SupernetEnsemble.to(torch.float64)`` cast its members' logits down to float32 before averaging."""
    from automl.nn.ensemble import SupernetEnsemble
    cs = load_compiled(str(ROOT / "spaces" / "digits.space"))
    torch.manual_seed(0)
    ens = SupernetEnsemble([build_supernet(cs) for _ in range(2)]).eval().to(torch.float64)
    arch = torch.zeros(cs.num_decisions, dtype=torch.long)
    x = torch.randn(3, *cs.input_shape, dtype=torch.float64)
    with torch.no_grad():
        out = ens(x, arch)
        logp = torch.stack([torch.log_softmax(m(x, arch), 1) for m in ens.members])
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, torch.logsumexp(logp, 0) - torch.log(torch.tensor(2.0, dtype=torch.float64)),
                               rtol=1e-12, atol=1e-12)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert ens.float()(x.float(), arch).dtype == torch.float32  # bf16 logits are averaged in float32


# ---- torch.jit.script: what cannot be scripted says so -------------------------------------------------

@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
@pytest.mark.parametrize("space", ["digits", "nasbench201"])
def test_scripting_a_supernet_says_why_it_cannot(space):
    """TorchScript's own error was 'Unknown type annotation: 'int'' (of the supernet's class attributes)."""
    cs = load_compiled(str(ROOT / "spaces" / f"{space}.space"))
    with pytest.raises(RuntimeError, match="runs the path its arch argument chooses"):
        torch.jit.script(build_supernet(cs))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.script is deprecated, and still works
def test_scripting_a_cell_network_says_what_works():
    """TorchScript's own error was about ModuleDict string literals; a chain network (timm's) still scripts."""
    cells = load_compiled(str(ROOT / "spaces" / "nasbench201.space"))
    net = build_standalone(cells, torch.zeros(cells.num_decisions, dtype=torch.long)).eval()
    with pytest.raises(RuntimeError, match=r"cannot be compiled by torch.jit.script .*use torch.export"):
        torch.jit.script(net)
    x = torch.randn(2, *cells.input_shape)
    with torch.no_grad():  # what the message suggests works
        torch.testing.assert_close(torch.export.export(net, (x,)).module()(x), net(x))
    chain = load_compiled(str(ROOT / "spaces" / "digits.space"))
    timm_net = build_standalone(chain, torch.zeros(chain.num_decisions, dtype=torch.long)).eval()
    x = torch.randn(2, *chain.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(timm_net)(x), timm_net(x))


def test_weights_are_inherited_from_a_float64_supernet():
    """inherit_weights probed the networks with a float32 input, so a float64 supernet failed ('expected scalar
    type Double')."""
    from automl.export import inherit_weights
    cs = load_compiled(str(ROOT / "spaces" / "digits.space"))
    torch.manual_seed(0)
    net = build_supernet(cs).eval().to(torch.float64)
    arch = torch.tensor([k - 1 for k in cs.num_choices])  # the last choice of each decision
    standalone = build_standalone(cs, arch).eval().to(torch.float64)
    assert inherit_weights(net, arch, standalone, tuple(cs.input_shape)) > 0
    x = torch.randn(2, *cs.input_shape, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(standalone(x), net(x, arch), rtol=1e-10, atol=1e-10)
