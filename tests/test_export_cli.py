"""`automl export`: success paths and clean errors (exit 2, one message naming the problem)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import onnx
import pytest
import torch
from safetensors.torch import load_file

from automl.cli import main
from automl.compile import load_compiled
from automl.recipe import load_recipe
from automl.train.data import build_data

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
ENAS = str(ROOT / "spaces" / "enas_micro.space")
# the newest opset torch's exporter writes and onnx checks, read here independently of automl.export.onnx
NEWEST_OPSET = min(importlib.import_module("torch.onnx._constants").ONNX_MAX_OPSET, onnx.defs.onnx_opset_version())


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture(scope="module")
def digits():
    return load_compiled(DIGITS)


def write_arch(path: Path, obj) -> str:
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(path)


def test_export_command_writes_a_folder(tmp_path, digits, capsys):
    names = [d.choices[-1] for d in digits.decisions]
    arch = write_arch(tmp_path / "arch.json", {"choices": names})
    out = tmp_path / "out"
    assert main(["export", DIGITS, "--arch", arch, "--out", str(out), "--set", "head=64"]) == 0
    assert "exported digits" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["choices"] == names and manifest["space_args"] == {"head": "64"}
    assert manifest["num_features"] == 64 and manifest["weights"]["source"] == "fresh"
    assert (out / "model.onnx").is_file() and (out / "model.safetensors").is_file()


def test_weights_from_a_supernet_checkpoint(tmp_path, digits, capsys):
    by_name = {d.name: d.choices[0] for d in digits.decisions}
    arch = write_arch(tmp_path / "arch.json", {"choices": by_name})
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"supernet": digits.build_supernet().state_dict(), "epoch": 3}, ckpt)
    out = tmp_path / "out"
    assert main(["export", DIGITS, "--arch", arch, "--out", str(out), "--weights", str(ckpt)]) == 0
    assert json.loads((out / "manifest.json").read_text())["weights"]["source"] == "supernet"
    # a bare standalone state_dict is recognised by its keys
    torch.save(digits.build_standalone(digits.encode(by_name)).state_dict(), ckpt)
    assert main(["export", DIGITS, "--arch", arch, "--out", str(out), "--weights", str(ckpt)]) == 0
    assert json.loads((out / "manifest.json").read_text())["weights"]["source"] == "standalone"


def test_supernet_weights_get_batchnorm_recalibrated_on_the_recipes_data(tmp_path, digits, capsys):
    by_name = {d.name: d.choices[-1] for d in digits.decisions}
    arch = write_arch(tmp_path / "arch.json", {"choices": by_name})
    ckpt = tmp_path / "ckpt.pt"
    torch.manual_seed(0)
    sd = digits.build_supernet().state_dict()
    torch.save({"supernet": sd}, ckpt)
    recipe = str(ROOT / "recipes" / "quickstart.yaml")
    raw, tuned = tmp_path / "raw", tmp_path / "tuned"
    assert main(["export", DIGITS, "--arch", arch, "--out", str(raw), "--weights", str(ckpt)]) == 0
    assert "give --recipe" in capsys.readouterr().out
    assert main(["export", DIGITS, "--arch", arch, "--out", str(tuned), "--weights", str(ckpt),
                 "--recipe", recipe]) == 0
    assert "recalibrated on 10 batches" in capsys.readouterr().out
    w_raw = json.loads((raw / "manifest.json").read_text())["weights"]
    w_tuned = json.loads((tuned / "manifest.json").read_text())["weights"]
    assert w_raw["bn_recalibrated_batches"] is None and w_tuned["bn_recalibrated_batches"] == 10
    a, b = load_file(raw / "model.safetensors"), load_file(tuned / "model.safetensors")
    assert torch.equal(a["conv_stem.weight"], b["conv_stem.weight"])  # the same inherited weights
    assert torch.equal(a["bn1.running_mean"], sd["bn1.running_mean"])  # the supernet's statistics (zeros here)
    # recalibrated: the stem convolution's mean output channel over the first ten D_W batches (as a run does)
    r = load_recipe(recipe)
    data = build_data(r.data, base_dir=r.base_dir, seed=r.seed, device="cpu")
    net = digits.build_supernet()
    net.load_state_dict(sd)
    with torch.no_grad():
        want = torch.stack([net.conv_stem(x).mean((0, 2, 3)) for x, _ in list(data.w.epoch(0))[:10]]).mean(0)
    assert torch.allclose(b["bn1.running_mean"], want, atol=1e-5)


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err  # one message, no traceback
    return err


@pytest.mark.parametrize("content, expect", [
    (None, "no such file"),
    ("{\"choices\": [", "not valid JSON"),
    ({"choices": ["ir_k3_e1"]}, "1 choices given, the space has 9 decisions"),
    ({"choices": {"nope": "ir_k3_e1"}}, "unknown decision 'nope'"),
    ({"choices": ["ir_k3_e1"] * 8 + ["ir_k9_e1"]}, "unknown choice 'ir_k9_e1'"),
    ({"arch": []}, "\"choices\" key"),
])
def test_bad_arch_file(tmp_path, capsys, content, expect):
    path = tmp_path / "arch.json"
    if content is not None:
        write_arch(path, content)
    assert main(["export", DIGITS, "--arch", str(path), "--out", str(tmp_path / "out")]) == 2
    err = _err(capsys)
    assert expect in err and "arch.json" in err
    assert not (tmp_path / "out").exists()


@pytest.fixture
def good_arch(tmp_path, digits):
    return write_arch(tmp_path / "arch.json", {"choices": [d.choices[0] for d in digits.decisions]})


@pytest.mark.parametrize("name, code", [("ENOSPC", 2), ("EDQUOT", 2), ("EIO", 1)])  # the disk is full; EIO: not that
def test_a_full_disk_is_one_message_naming_the_file(tmp_path, good_arch, capsys, monkeypatch, name, code):
    import errno

    import automl._io

    errno_ = getattr(errno, name)

    out = tmp_path / "out"

    def full(path, suffix):
        raise OSError(errno_, "No space left on device", str(path))

    monkeypatch.setattr(automl._io, "_create_temporary", full)
    assert main(["export", DIGITS, "--arch", good_arch, "--out", str(out)]) == code
    if code == 2:
        err = _err(capsys)
        assert f"cannot write {out}" in err and "(No space left on device); free space" in err
    else:
        assert "internal error" in capsys.readouterr().err


def test_bad_weights(tmp_path, digits, good_arch, capsys):
    out = str(tmp_path / "out")
    assert main(["export", DIGITS, "--arch", good_arch, "--out", out, "--weights", str(tmp_path / "no.pt")]) == 2
    assert "no.pt: no such file" in _err(capsys)
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    assert main(["export", DIGITS, "--arch", good_arch, "--out", out, "--weights", str(tmp_path / "bad.pt")]) == 2
    assert "bad.pt: not a readable torch checkpoint" in _err(capsys)
    other = load_compiled(DIGITS, {"head": "64"}).build_supernet().state_dict()
    torch.save({"supernet": other}, tmp_path / "other.pt")
    assert main(["export", DIGITS, "--arch", good_arch, "--out", out, "--weights", str(tmp_path / "other.pt")]) == 2
    assert "does not fit space digits" in _err(capsys)


@pytest.mark.parametrize("extra, expect", [
    (["--opset", "13"], "opset 17 or newer"),
    (["--se", "-1"], "--se -1"),
    (["--set", "head"], "expected KEY=VALUE"),
])
def test_bad_options(tmp_path, good_arch, capsys, extra, expect):
    assert main(["export", DIGITS, "--arch", good_arch, "--out", str(tmp_path / "out"), *extra]) == 2
    assert expect in _err(capsys)
    assert not (tmp_path / "out").exists()


def test_an_opset_torch_does_not_write_is_one_message_naming_the_flag(tmp_path, good_arch, capsys):
    out = tmp_path / "out"
    assert main(["export", DIGITS, "--arch", good_arch, "--out", str(out), "--opset", str(NEWEST_OPSET + 1)]) == 2
    err = _err(capsys)
    assert f"--opset {NEWEST_OPSET + 1}: " in err and f"from 17 to {NEWEST_OPSET}" in err and "torch" in err
    assert not out.exists()
    # the newest one torch writes is accepted, exported and checked against onnxruntime
    assert main(["export", DIGITS, "--arch", good_arch, "--out", str(out), "--opset", str(NEWEST_OPSET)]) == 0
    assert json.loads((out / "manifest.json").read_text())["onnx"]["opset"] == NEWEST_OPSET


def test_missing_space_and_se_on_cells(tmp_path, good_arch, capsys):
    assert main(["export", str(tmp_path / "nope.space"), "--arch", good_arch, "--out", str(tmp_path)]) == 2
    assert "nope.space: no such space file" in _err(capsys)
    cs = load_compiled(ENAS)
    arch = write_arch(tmp_path / "cell.json", {"choices": [d.choices[0] for d in cs.decisions]})
    assert main(["export", ENAS, "--arch", arch, "--out", str(tmp_path / "o"), "--se", "0.25"]) == 2
    assert "applies to MBConv blocks of chain spaces" in _err(capsys)
