"""Review CQ: standalone export (timm arch_def, weight inheritance, ONNX checked against onnxruntime)."""

from pathlib import Path

import pytest
import torch
from torch import nn

from automl.cli import main
from automl.compile import load_compiled
from automl.export import export_architecture
from automl.export.onnx import OnnxParityError, export_onnx

ROOT = Path(__file__).resolve().parents[1]


class _SmallLogits(nn.Module):
    """A classifier whose largest logit is below 0.01, as a fresh MobileNetV3 network's (0.005 to 0.07 on
    ``spaces/mobilenetv3.space`` and ``ofa_mbv3.space``)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3 * 4 * 4, 5)
        with torch.no_grad():
            self.lin.weight.copy_(0.0002 * torch.randn(5, 3 * 4 * 4, generator=torch.Generator().manual_seed(0)))
            self.lin.bias.zero_()

    def forward(self, x):
        return self.lin(x.flatten(1))


class _SmallLogitsWrongGraph(_SmallLogits):
    """The exported graph computes 95 % of every logit: a broken graph, whatever the logits' size."""

    def forward(self, x):
        y = super().forward(x)
        return 0.95 * y if torch.onnx.is_in_onnx_export() else y


def test_onnx_parity_refuses_a_wrong_graph_of_a_network_with_small_logits(tmp_path):
    # was: max|onnx - torch| / max(1, max|torch|), at most 0.05 * 0.01 (below 1e-3): the export passed and the
    # manifest recorded a "relative" difference of about 5e-4 for a graph 5 % off every logit
    model = _SmallLogitsWrongGraph()
    with torch.no_grad():
        assert float(model(torch.randn(3, 3, 4, 4, generator=torch.Generator().manual_seed(1))).abs().max()) < 0.01
    with pytest.raises(OnnxParityError, match="disagrees"):
        export_onnx(model, tmp_path / "m.onnx", (3, 4, 4))
    assert not any(tmp_path.iterdir())


def test_onnx_parity_of_small_logits_is_relative_to_them(tmp_path):
    """The right graph of such a network passes, its recorded difference relative to its largest logit."""
    entry = export_onnx(_SmallLogits(), tmp_path / "m.onnx", (3, 4, 4))
    assert (tmp_path / "m.onnx").is_file() and entry["parity_max_rel_diff"] < 1e-4
    if entry["parity_max_abs_diff"]:
        assert entry["parity_max_rel_diff"] > 10 * entry["parity_max_abs_diff"]


def test_fresh_mobilenetv3_network_exports_with_a_relative_parity(tmp_path):
    """A real fresh network of a shipped space (largest logit well below 1) still passes the stricter check."""
    cs = load_compiled(str(ROOT / "spaces" / "mobilenetv3.space"),
                       {"size": "64", "classes": "5", "head": "64", "width": "0.25"})
    arch = torch.tensor([k - 1 for k in cs.num_choices])
    model = cs.build_standalone(arch).eval()
    shape = tuple(cs.arch_input_shape(arch))
    with torch.no_grad():
        assert float(model(torch.randn(3, *shape)).abs().max()) < 1
    entry = export_onnx(model, tmp_path / "m.onnx", shape)
    assert entry["parity_max_rel_diff"] < 1e-4


def test_an_export_folder_as_arch_points_at_its_manifest(tmp_path, capsys):
    # was: "error: --arch DIR: cannot read it ([Errno 21] Is a directory: 'DIR')", saying nothing of what to give
    cs = load_compiled(str(ROOT / "spaces" / "digits.space"))
    export_architecture(cs, [d.choices[0] for d in cs.decisions], tmp_path / "net", onnx=False)
    out = tmp_path / "again"
    assert main(["export", str(ROOT / "spaces" / "digits.space"), "--arch", str(tmp_path / "net"),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert f"--arch {tmp_path / 'net'} is a folder" in err and str(tmp_path / "net" / "manifest.json") in err, err
    assert not out.exists()
    # a folder without a manifest: what an architecture file is
    assert main(["space", "cost", str(ROOT / "spaces" / "digits.space"), "--arch", str(out.parent / "net" / "..")]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "ARCH.json" in err and "Errno" not in err, err
    # `space encode --arch-def FOLDER`: what that flag takes
    assert main(["space", "encode", str(ROOT / "spaces" / "digits.space"), "--arch-def", str(out.parent),
                 "--out", str(tmp_path / "a.json")]) == 2
    err = capsys.readouterr().err
    assert "--arch-def" in err and "is a folder" in err and "arch_def" in err and "Errno" not in err, err
