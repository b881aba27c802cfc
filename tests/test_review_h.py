"""Review H: the network modules and the export of an architecture (membership of timm networks, ...)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export.timm_spec import build_timm_model, timm_spec
from automl.nn.membership import arch_def_model, encode_timm_model
from automl.nn.standalone import timm_network

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _digits_arch_def(cs) -> list[list[str]]:
    return cs.arch_def(torch.zeros(cs.num_decisions, dtype=torch.long))


def _differs(cs, model) -> bool:
    """Whether ``model`` computes something else than its encoding's network with ``model``'s weights."""
    ours = cs.build_standalone(cs.encode(encode_timm_model(cs, model)))
    ours.load_state_dict(model.state_dict())
    x = torch.randn(2, *cs.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return not torch.allclose(ours.eval()(x), model.eval()(x), atol=1e-4)


# ---- membership: a network with the space's weight shapes but another stride, residual or BN eps ----------

def test_a_block_of_another_stride_is_not_a_member(tmp_path, capsys):
    """Digits' stage s2 downsamples (stride 2); an arch_def whose s2 block has stride 1 has the same weight shapes
    but another function (feature maps twice as large): it was encoded as a member, silently."""
    cs = load_compiled(DIGITS)
    net = [[b.replace("_s2_", "_s1_") for b in stage] for stage in _digits_arch_def(cs)]
    (tmp_path / "net.json").write_text(json.dumps(net))
    with pytest.raises(UserError) as e:
        encode_timm_model(cs, arch_def_model(tmp_path / "net.json", cs), "the network")
    msg = str(e.value)
    assert "layer s2_1" in msg and "blocks.1.0" in msg and "stride" in msg, msg
    assert main(["space", "encode", DIGITS, "--arch-def", str(tmp_path / "net.json")]) == 2
    err = capsys.readouterr().err
    assert "stride" in err and "Traceback" not in err


def test_a_block_without_its_residual_is_not_a_member(tmp_path):
    """timm's ``_noskip`` drops the residual of a stride-1 block: same modules and shapes, another function."""
    cs = load_compiled(DIGITS)
    net = [[b + "_noskip" for b in stage] for stage in _digits_arch_def(cs)]
    (tmp_path / "net.json").write_text(json.dumps(net))
    model = arch_def_model(tmp_path / "net.json", cs)
    with pytest.raises(UserError) as e:
        encode_timm_model(cs, model, "the network")
    assert "blocks.0.1" in str(e.value) and "residual" in str(e.value), str(e.value)


def test_another_batchnorm_eps_is_not_a_member():
    """A network whose BatchNorms use eps 1e-3 (TensorFlow's default) computes another function on the same
    weights: refused, naming the difference."""
    cs = load_compiled(DIGITS)
    arch_def = _digits_arch_def(cs)
    kw = timm_spec(cs.build_standalone(torch.zeros(cs.num_decisions, dtype=torch.long)), arch_def, cs.input_shape)
    model = build_timm_model(arch_def, {**kw, "norm_kwargs": {"eps": 1e-3, "momentum": 0.1}})
    with pytest.raises(UserError) as e:
        encode_timm_model(cs, model, "the network")
    assert "bn1's eps is 0.001 where the space's is 1e-05" in str(e.value), str(e.value)


def test_a_stem_of_another_stride_is_not_a_member():
    """The stem is compared outside the layer search: a stride-1 stem (same weight shapes) is refused."""
    cs = load_compiled(DIGITS)
    model = timm_network(cs.plan, _digits_arch_def(cs))
    model.conv_stem.stride = (1, 1)
    with pytest.raises(UserError) as e:
        encode_timm_model(cs, model, "the network")
    assert "its conv_stem's stride is (1, 1) where the space's is (2, 2)" in str(e.value), str(e.value)


def test_members_still_encode_to_their_own_function():
    """The space's own networks (and the timm rebuild of them) still encode, to a network computing the same."""
    cs = load_compiled(DIGITS)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        arch = torch.tensor([int(torch.randint(len(d.choices), (1,), generator=g)) for d in cs.decisions])
        model = timm_network(cs.plan, cs.arch_def(arch))
        assert not _differs(cs, model)


# ---- arch_def files timm cannot build: a user mistake, not an internal error ------------------------------

@pytest.mark.parametrize("arch_def,words", [
    ([["ir_r1_k3_s3_e6_c24"]], ["'ir_r1_k3_s3_e6_c24'", "stride 3", "1 or 2"]),
    ([[]], ["stage 1", "empty"]),
    ([["ir_r1_k3_s1_e6_c24"], []], ["stage 2", "empty"]),
], ids=["stride3", "empty", "empty-second"])
def test_an_arch_def_timm_cannot_build_is_a_user_error(tmp_path, capsys, arch_def, words):
    """timm's builder asserts on a stride other than 1 or 2 and indexes past an empty stage: both ended in a
    traceback and "internal error" (exit 1)."""
    path = tmp_path / "net.json"
    path.write_text(json.dumps(arch_def))
    assert main(["space", "encode", DIGITS, "--arch-def", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err and str(path) in err, err
    assert all(w in err for w in words), err


def test_an_export_without_a_timm_arch_def_says_so(tmp_path, capsys):
    """An FBNet export with a group-conv block records ``"arch_def": null`` (timm cannot build the block); as
    --arch-def it was told to give "an object with \\"arch_def\\"", which it is."""
    from automl.export import export_architecture

    space = str(ROOT / "spaces" / "fbnet.space")
    ov = {"size": "16", "width": "0.25", "head": "32", "classes": "10"}
    cs = load_compiled(space, ov)
    names = {d.name: ("ir_k3_e1_g2" if "ir_k3_e1_g2" in d.choices else d.choices[0]) for d in cs.decisions}
    export_architecture(cs, cs.encode(names), tmp_path, onnx=False, space_path=space, space_args=ov)
    assert json.loads((tmp_path / "manifest.json").read_text())["arch_def"] is None
    sets = [a for k, v in ov.items() for a in ("--set", f"{k}={v}")]
    assert main(["space", "encode", space, *sets, "--arch-def", str(tmp_path / "manifest.json")]) == 2
    err = capsys.readouterr().err
    assert "no timm arch_def" in err and "--arch" in err and "or an object with" not in err, err


@pytest.mark.parametrize("name,cls", [("vit_tiny_patch16_224", "VisionTransformer"), ("mixer_s32_224", "MlpMixer")])
def test_a_timm_model_with_a_flat_blocks_list_is_refused_by_class(capsys, name, cls):
    """A ViT or an MLP-Mixer has ``blocks`` too, a flat list of blocks rather than stages of them: `space encode
    --timm` ended in "TypeError: 'Block' object is not iterable" and an internal error."""
    assert main(["space", "encode", DIGITS, "--timm", name]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    assert f"is a {cls}, not a timm EfficientNet or MobileNetV3" in err, err
