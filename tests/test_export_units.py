"""Export pieces that do not need a space: ONNX export and parity, checkpoints, ARCH.json parsing."""

from __future__ import annotations

import json
from types import SimpleNamespace

import onnx
import pytest
import torch
from torch import nn

from automl.errors import UserError
from automl.export import (OnnxParityError, build_timm_model, choices_from_json, export_onnx, load_checkpoint,
                           split_checkpoint)
from automl.export.timm_spec import timm_spec

ARCH_DEF = [["ds_r1_k3_s1_c8"], ["ir_r1_k5_s2_e3_c16"], ["ir_r1_k3_s2_e6_c24_se0.25"]]
KW = {"num_classes": 5, "in_chans": 3, "stem_size": 8, "num_features": 32, "act_layer": "relu6"}


def tiny_timm():
    return build_timm_model(ARCH_DEF, KW)


def test_onnx_export_checks_and_parity(tmp_path):
    model = tiny_timm().train()
    entry = export_onnx(model, tmp_path / "m.onnx", (3, 24, 24), opset=17)
    assert model.training  # the caller's mode is restored
    assert entry["opset"] == 17 and entry["parity_max_rel_diff"] < 1e-3
    proto = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version == 17
    dim0 = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param == "batch"  # dynamic batch axis
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temp file left behind


class _Drifting(nn.Module):
    """Traced once, then changes its output: ONNX and torch disagree."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3 * 4 * 4, 2)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.lin(x.flatten(1)) * float(self.calls)


def test_parity_failure_is_loud_and_leaves_no_file(tmp_path):
    with pytest.raises(OnnxParityError, match="disagrees"):
        export_onnx(_Drifting(), tmp_path / "m.onnx", (3, 4, 4))
    assert not any(tmp_path.iterdir())


def test_old_opset_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="opset 17 or newer"):
        export_onnx(tiny_timm(), tmp_path / "m.onnx", (3, 24, 24), opset=13)


def test_timm_spec_rebuilds_the_model():
    model = tiny_timm()
    kw = timm_spec(model, ARCH_DEF, (3, 24, 24))
    assert kw["act_layer"] == "relu6" and kw["stem_size"] == 8 and kw["num_features"] == 32
    again = build_timm_model(ARCH_DEF, json.loads(json.dumps(kw)))
    assert list(again.state_dict()) == list(model.state_dict())
    odd = build_timm_model([["ds_r1_k3_s1_c12"], ["ir_r1_k3_s2_e3_c20"]], {**KW, "round_chs": False})
    kw = timm_spec(odd, [["ds_r1_k3_s1_c12"], ["ir_r1_k3_s2_e3_c20"]], (3, 16, 16))
    assert kw["round_chs"] is False  # channels that are not multiples of 8 survive the rebuild


def test_checkpoint_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable torch checkpoint"):
        load_checkpoint(bad)
    lst = tmp_path / "list.pt"
    torch.save([1, 2], lst)
    with pytest.raises(UserError, match="expected a dict"):
        load_checkpoint(lst)


def test_split_checkpoint():
    sd = {"a": torch.zeros(1)}
    assert split_checkpoint({"supernet": sd, "step": torch.tensor(3)}, {"a"})[0] == "supernet"
    assert split_checkpoint({"model": sd}, set())[0] == "standalone"
    # a run's checkpoint from inside the weight phase: the partly trained supernet, no final one yet
    assert split_checkpoint({"supernet": None, "supernet_train": sd, "epoch": 3}, {"a"}) == ("supernet", sd)
    assert split_checkpoint(sd, {"a"})[0] == "standalone"
    assert split_checkpoint(sd, {"b"})[0] == "supernet"
    with pytest.raises(UserError, match="not a state_dict"):
        split_checkpoint({"supernet": {"a": 3}}, set())


SPACE = SimpleNamespace(decisions=(SimpleNamespace(name="l1", choices=("mb3", "mb5")),
                                   SimpleNamespace(name="l2", choices=("mb3", "skip"))))


@pytest.mark.parametrize("obj, message", [
    ({"choices": ["mb3"]}, "1 choices given, the space has 2 decisions"),
    ({"choices": ["mb3", "mb7"]}, "decision 'l2'.*unknown choice 'mb7'"),
    ({"choices": {"l1": "mb3", "l9": "skip"}}, "unknown decision 'l9'"),
    ({"choices": {"l1": "mb3"}}, "no choice given for decision 'l2'"),
    ({"choices": ["mb3", 1]}, "expected a choice name"),
    ({"choices": "mb3"}, "must be a list"),
    (["mb3", "skip"], "\"choices\" key"),
])
def test_arch_json_errors(obj, message):
    with pytest.raises(UserError, match=message):
        choices_from_json(obj, SPACE, source="a.json")


def test_arch_json_forms():
    assert choices_from_json({"choices": ["mb5", "skip"]}, SPACE) == ["mb5", "skip"]
    assert choices_from_json({"choices": {"l2": "skip", "l1": "mb5"}}, SPACE) == ["mb5", "skip"]


def test_weights_fall_back_to_torch_for_shared_tensors(tmp_path):
    from automl.export._export import load_weights, save_weights

    tied = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    tied[1].weight = tied[0].weight
    entry = save_weights(tied, tmp_path)
    assert entry == {"file": "model.pt", "format": "torch"}
    assert torch.equal(load_weights(tmp_path / "model.pt")["1.weight"], tied[0].weight.detach())
    entry = save_weights(nn.Linear(2, 2), tmp_path)  # a later export into the same folder
    assert entry["file"] == "model.safetensors" and not (tmp_path / "model.pt").exists()
