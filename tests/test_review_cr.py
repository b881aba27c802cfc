"""Review CR: the op registry's shape checks and resolver cache, and space encode's message for a block no choice
has the shapes of."""

import pytest
import torch

from automl.compile import load_compiled
from automl.errors import UserError
from automl.nn import registry
from automl.nn.membership import encode_timm_model
from automl.nn.registry import OpInfo, create_op, is_op


@pytest.mark.parametrize("op", ["avgpool_k3", "maxpool_k5", "none", "skip"])
def test_create_op_refuses_a_channel_change_for_an_op_that_keeps_the_width(op):
    with pytest.raises(ValueError, match=rf"op '{op}' keeps the channel count: it cannot map 16 to 32"):
        create_op(op, 16, 32, 1)


def test_create_op_refuses_a_stride_for_skip_and_builds_the_shapes_ops_can_have():
    with pytest.raises(ValueError, match="op 'skip' cannot downsample: it takes stride 1, got stride 2"):
        create_op("skip", 16, 16, 2)
    x = torch.randn(1, 16, 7, 7)
    assert create_op("skip", 16, 16, 1)(x).shape == (1, 16, 7, 7)
    assert create_op("none", 16, 16, 2)(x).shape == (1, 16, 4, 4)  # the zero op downsamples in reduction cells
    assert create_op("maxpool_k3", 16, 16, 2)(x).shape == (1, 16, 4, 4)
    assert create_op("identity", 16, 32, 2)(x).shape == (1, 32, 4, 4)  # a factorized reduce: may change width


def test_a_resolver_registered_later_builds_a_name_asked_before(monkeypatch):
    monkeypatch.setattr(registry, "_RESOLVERS", list(registry._RESOLVERS))
    monkeypatch.setattr(registry, "_RESOLVED", dict(registry._RESOLVED))
    assert not is_op("crfam_k3")

    def resolver(name):
        return OpInfo(name, lambda i, o, s, **_: torch.nn.Identity(), "cell") if name.startswith("crfam_") else None

    registry.register_resolver(resolver)
    assert is_op("crfam_k3") and is_op("crfam_k5")


_SPACE = """input 3 x 32 x 32
classes 10
network
  stem width 16
  stage s1 width 16 {se}activation relu choose [ds_k3, ds_k5]
  stage s2 width 24 stride 2 choose [ir_k3_e3, ir_k5_e3]
  head width 64
end
"""


def test_encode_names_the_closest_choice_when_no_choice_has_the_blocks_shapes(tmp_path):
    with_se, plain = tmp_path / "se.space", tmp_path / "plain.space"
    with_se.write_text(_SPACE.format(se="se 0.25 "))
    plain.write_text(_SPACE.format(se=""))
    cs = load_compiled(str(with_se))
    model = load_compiled(str(plain)).build_standalone([1, 0])  # ds_k5 without squeeze-excitation
    with pytest.raises(UserError) as e:
        encode_timm_model(cs, model)
    msg = str(e.value)
    assert "is not one of its choices (ds_k3, ds_k5)" in msg
    # the space's ds_k5 at this layer has the stage's SE: the message shows it, next to the block's description
    assert msg.endswith("; the closest choice, ds_k5, is DepthwiseSeparableConv 16, 5x5, squeeze-excitation, ReLU")
