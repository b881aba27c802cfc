"""Membership (`automl space encode`, automl.nn.membership) after review P: a layer that may be skipped (or left
out by an elastic depth) before a stage of the same shape does not take that stage's block, the "no block left"
refusal is a sentence of its own, and a block that has the shapes of a choice names what differs."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual

from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.nn import count_params
from automl.nn.membership import _signature, arch_def_model, describe_block, encode_timm_model, timm_model

ROOT = Path(__file__).resolve().parents[1]

# a_2 may be skipped and stage b has a_2's shape (24 -> 24): with a_2 skipped, b_1's block comes right after a_1's
H_GREEDY = """space h_greedy
input 3 x 32 x 32
classes 10
network
  stem width 16
  stage a width 24 repeat 2 choose [ir_k3_e3] then [ir_k3_e3, ir_k5_e6, skip]
  stage b width 24 choose [ir_k3_e3, ir_k5_e3]
  head width 64
end
"""

# the same with an elastic depth: at depth 1, a_2 is left out
I_GREEDY_DEPTH = """space i_greedy_depth
input 3 x 32 x 32
classes 10
network
  stem width 16
  stage a width 24 depth 1, 2 choose [ir_k3_e3, ir_k5_e6]
  stage b width 24 choose [ir_k3_e3, ir_k5_e3]
  head width 64
end
"""

# elastic widths: a_2 can take b_1's block only when both stages have the same width, which a_1 fixes first
J_GREEDY_WIDTH = """space j_greedy_width
input 3 x 32 x 32
classes 10
network
  stem width 16
  stage a width 16, 24 repeat 2 choose [ir_k3_e3, ir_k5_e3] then [ir_k3_e3, skip]
  stage b width 16, 24 choose [ir_k3_e3, ir_k5_e3]
  head width 64
end
"""

# three stride-1 stages of one width after each other, every layer but the first skippable (a space whose every
# layer may be skipped is refused): the blocks of s2 could be taken by s3's layers and the other way round; only
# the network's grouping of its blocks into stages tells them apart
K_STAGES = """space k_stages
input 3 x 16 x 16
classes 10
choices b = ir_k3_e3, skip
network
  stem width 16
  stage s1 width 16 repeat 3 choose [ir_k3_e3] then b
  stage s2 width 16 repeat 3 choose b
  stage s3 width 16 repeat 3 choose b
  head width 64
end
"""

# the digits pattern (a block, then blocks or skip) with two stride-1 stages of the same width
L_STAGES = """space l_stages
input 1 x 8 x 8
classes 10
choices block = ir_k3_e1, ir_k3_e3, ir_k5_e6
choices block_or_skip = block, skip
network
  stem width 16
  stage s1 width 24 repeat 3 choose block then block_or_skip
  stage s2 width 32 stride 2 repeat 3 choose block then block_or_skip
  stage s3 width 32 repeat 3 choose block then block_or_skip
  head width 128
end
"""

SPACES = {"h_greedy": H_GREEDY, "i_greedy_depth": I_GREEDY_DEPTH, "j_greedy_width": J_GREEDY_WIDTH,
          "k_stages": K_STAGES, "l_stages": L_STAGES}
ENUMERATED = ("h_greedy", "i_greedy_depth", "j_greedy_width")


def compiled(tmp_path, name: str):
    path = tmp_path / f"{name}.space"
    path.write_text(SPACES[name])
    return load_compiled(str(path))


def meta_network(cs, arch):
    with torch.device("meta"):
        return cs.build_standalone(arch)


def _archs(cs, name: str) -> list[tuple[int, ...]]:
    """Every architecture of the small spaces; 40 drawn (seeded) from the larger ones."""
    if name in ENUMERATED:
        return list(itertools.product(*(range(k) for k in cs.num_choices)))
    g = torch.Generator().manual_seed(0)
    return [tuple(int(torch.randint(k, (1,), generator=g)) for k in cs.num_choices) for _ in range(40)]


@pytest.mark.parametrize("name", sorted(SPACES))
def test_every_architecture_encodes_back_to_its_own_network(tmp_path, name):
    cs = compiled(tmp_path, name)
    archs = _archs(cs, name)
    assert len(archs) >= 6
    for combo in archs:
        arch = torch.tensor(combo)
        model = meta_network(cs, arch)
        names = encode_timm_model(cs, model, "the exported network")
        again = meta_network(cs, cs.encode(names))
        assert _signature(again) == _signature(model), (cs.decode(arch), names)
        assert count_params(again) == count_params(model)
        assert cs.arch_def(cs.encode(names)) == cs.arch_def(arch)


def test_an_exported_manifest_with_a_skipped_layer_encodes_back(tmp_path, capsys):
    """The CLI path of the review's repro: a_2 skipped, b_1 has a_2's shape."""
    cs = compiled(tmp_path, "h_greedy")
    arch = cs.encode(["ir_k3_e3", "skip", "ir_k3_e3"])
    (tmp_path / "manifest.json").write_text(json.dumps({"arch_def": cs.arch_def(arch)}))
    space, manifest = str(tmp_path / "h_greedy.space"), str(tmp_path / "manifest.json")
    assert main(["space", "encode", space, "--arch-def", manifest]) == 0
    choices = json.loads(capsys.readouterr().out)["choices"]
    assert choices == {"a_1": "ir_k3_e3", "a_2": "skip", "b_1": "ir_k3_e3"}


@pytest.mark.parametrize("name", ["h_greedy", "i_greedy_depth"])
def test_no_block_left_is_a_sentence_of_its_own(tmp_path, name):
    cs = compiled(tmp_path, name)
    (tmp_path / "one.json").write_text(json.dumps([["ir_r1_k3_s1_e3_c24"]]))  # a_1 only: nothing for b_1
    with pytest.raises(UserError) as e:
        encode_timm_model(cs, arch_def_model(tmp_path / "one.json", cs), "the exported network")
    msg = str(e.value)
    assert "the exported network has no block left for layer b_1" in msg
    assert "cannot be skipped" in msg and f"space {name}" in msg
    assert "not one of its choices" not in msg and "left is" not in msg


def test_a_tensorflow_same_padding_network_names_conv2dsame(capsys):
    path = str(ROOT / "spaces" / "mobilenetv3.space")
    assert main(["space", "encode", path, "--timm", "tf_mobilenetv3_large_100"]) == 2
    err = capsys.readouterr().err
    assert "layer s1_1" in err and "blocks.1.0" in err and "Traceback" not in err
    # the block has ir_k3_e4's shapes (16 -> 64 -> 24, 3x3): the difference is its padded convolution
    assert "Conv2dSame" in err and "TensorFlow 'same' padding" in err and "Conv2d" in err.replace("Conv2dSame", "")


MEMBERS = [("proxylessnas", "spnasnet_100"), ("proxylessnas", "mnasnet_100"),
           ("mobilenetv3", "mobilenetv3_large_100"), ("fbnet", "fbnetc_100")]


@pytest.mark.parametrize("space,model_name", MEMBERS, ids=[m[1] for m in MEMBERS])
def test_shipped_members_take_blocks_first(space, model_name):
    """The known members still encode to their own network, and the search takes a block before it skips a
    layer: within a stage, the skipped layers are the last ones."""
    cs = load_compiled(str(ROOT / "spaces" / f"{space}.space"))
    with torch.device("meta"):
        model = timm_model(model_name, cs)
    names = encode_timm_model(cs, model)
    ours = meta_network(cs, cs.encode(names))
    assert _signature(ours) == _signature(model) and count_params(ours) == count_params(model)
    stages: dict[str, list[str]] = {}
    for layer in cs.plan.layers:
        if layer.decision is not None:
            stages.setdefault(layer.name.rsplit("_", 1)[0], []).append(names[cs.decisions[layer.decision].name])
    skipped = 0
    for choices in stages.values():
        taken = [c != "skip" for c in choices]
        assert taken == sorted(taken, reverse=True), choices
        skipped += taken.count(False)
    if space == "proxylessnas":  # these timm networks have fewer blocks than the space's stages have layers
        assert skipped > 0


def test_a_block_description_keeps_the_channels_it_returns_to():
    """80 -> 200 -> 80 (an expansion 2.5 block) was described as 80->200: repeated channels are dropped only
    where they repeat in a row."""
    assert describe_block(InvertedResidual(80, 80, 3, exp_ratio=2.5)).startswith("InvertedResidual 80->200->80, 3x3")
    assert describe_block(InvertedResidual(16, 24, 3, stride=2, exp_ratio=4)).startswith(
        "InvertedResidual 16->64->24, 3x3 stride 2")
    assert describe_block(DepthwiseSeparableConv(16, 16)).startswith("DepthwiseSeparableConv 16, 3x3")


SEVEN = "ir_r1_k7_s1_e3_c{}"  # a 7x7 block: no layer of these spaces offers one
MISMATCHED = [  # (space, network, the layer that should have taken the 7x7 block, the block)
    ("l_stages", [["ir_r1_k3_s1_e3_c24", SEVEN.format(24)], ["ir_r1_k3_s2_e3_c32"], ["ir_r1_k3_s1_e3_c32"]],
     "s1_2", "blocks.0.1"),
    ("l_stages", [["ir_r1_k3_s1_e3_c24"], ["ir_r1_k3_s2_e3_c32"], ["ir_r1_k3_s1_e3_c32", SEVEN.format(32)]],
     "s3_2", "blocks.2.1"),
    ("k_stages", [["ir_r1_k3_s1_e3_c16", SEVEN.format(16)]], "s1_2", "blocks.0.1"),
]


@pytest.mark.parametrize("name,network,layer,block", MISMATCHED, ids=["s1", "s3", "k"])
def test_a_block_no_skippable_layer_offers_names_the_layer_that_should_take_it(tmp_path, name, network, layer,
                                                                               block):
    """The layers that could take the block may be skipped, so the search ends with the block left over; the
    message names the layer whose choices it is not, not "no layer left" (nor a layer of the next stage)."""
    cs = compiled(tmp_path, name)
    (tmp_path / "net.json").write_text(json.dumps(network))
    with pytest.raises(UserError) as e:
        encode_timm_model(cs, arch_def_model(tmp_path / "net.json", cs), "the exported network")
    msg = str(e.value)
    assert msg.startswith(f"layer {layer} ") and f"network's {block} " in msg and "7x7" in msg
    assert "is not one of its choices" in msg and "no layer left" not in msg


def test_a_block_after_the_last_layer_is_still_left_over(tmp_path):
    cs = compiled(tmp_path, "l_stages")
    blocks = [["ir_r1_k3_s1_e3_c24"], ["ir_r1_k3_s2_e3_c32"], ["ir_r1_k3_s1_e3_c32"], ["ir_r1_k3_s1_e3_c32"]]
    (tmp_path / "net.json").write_text(json.dumps(blocks))
    with pytest.raises(UserError) as e:
        encode_timm_model(cs, arch_def_model(tmp_path / "net.json", cs), "the exported network")
    assert "blocks.3.0" in str(e.value) and "has no layer left" in str(e.value)
