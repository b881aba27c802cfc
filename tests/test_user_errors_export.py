"""User mistakes with `automl export` and `automl space profile|encode`: exit 2, one message that names the
flag and says what to do, no traceback, and no measuring or exporting before the check."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import export_architecture, inherit_from_state

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
ENAS = str(ROOT / "spaces" / "enas_micro.space")
NOT_WRITABLE = "/proc/automl-test-out"  # mkdir there fails with ENOENT, even as root


@pytest.fixture(scope="module")
def digits():
    return load_compiled(DIGITS)


@pytest.fixture
def arch_file(tmp_path, digits):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": [d.choices[0] for d in digits.decisions]}))
    return str(path)


@pytest.fixture
def no_work(monkeypatch):
    """Measuring, encoding and exporting fail the test: the flags must be checked before them."""
    def refuse(*a, **k):
        raise AssertionError("expensive work started before the flags were checked")
    monkeypatch.setattr("automl.commands.export.export_architecture", refuse)
    monkeypatch.setattr("automl.commands.space.profile_space", refuse)
    monkeypatch.setattr("automl.commands.space.timm_model", refuse)
    monkeypatch.setattr("automl.commands.space.arch_def_model", refuse)


def one_error(capsys, *names: str, limit: int = 600) -> str:
    """The single stderr line of a user error; it names each of ``names``."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and len(err) < limit, err
    for name in names:
        assert name in err, err
    return err


# ---- --out -------------------------------------------------------------------------------------------------

def test_export_out_is_a_file(tmp_path, arch_file, capsys, no_work):
    target = tmp_path / "afile"
    target.write_text("hi")
    assert main(["export", DIGITS, "--arch", arch_file, "--out", str(target)]) == 2
    assert "is a file, not a folder" in one_error(capsys, "--out", str(target))
    assert target.read_text() == "hi"


def test_export_out_cannot_be_written(tmp_path, arch_file, capsys, no_work):
    assert main(["export", DIGITS, "--arch", arch_file, "--out", NOT_WRITABLE]) == 2
    assert "cannot write there" in one_error(capsys, "--out", NOT_WRITABLE)
    (tmp_path / "afile").write_text("")
    below_a_file = str(tmp_path / "afile" / "sub")
    assert main(["export", DIGITS, "--arch", arch_file, "--out", below_a_file]) == 2
    one_error(capsys, "--out", below_a_file)


def test_export_architecture_names_an_unwritable_folder(digits):
    with pytest.raises(UserError, match="export folder"):
        export_architecture(digits, [0] * digits.num_decisions, NOT_WRITABLE, onnx=False)


def test_profile_out_is_a_folder(tmp_path, capsys, no_work):
    assert main(["space", "profile", DIGITS, "--repeat", "1", "--calibrate", "0", "--out", str(tmp_path)]) == 2
    assert "is a folder" in one_error(capsys, "--out", str(tmp_path))


def test_profile_out_cannot_be_written(capsys, no_work):
    out = "/proc/automl-test.json"  # the folder exists, a file cannot be made in it
    assert main(["space", "profile", DIGITS, "--repeat", "1", "--calibrate", "0", "--out", out]) == 2
    one_error(capsys, "--out", out)


def test_encode_out_is_a_folder_or_unwritable(tmp_path, capsys, no_work):
    assert main(["space", "encode", DIGITS, "--timm", "mobilenetv3_large_100", "--out", str(tmp_path)]) == 2
    assert "is a folder" in one_error(capsys, "--out", str(tmp_path))
    out = NOT_WRITABLE + "/a.json"
    assert main(["space", "encode", DIGITS, "--timm", "mobilenetv3_large_100", "--out", out]) == 2
    one_error(capsys, "--out", out)


# ---- --weights: stand-alone weights, folders, foreign files -----------------------------------------------

@pytest.fixture
def exported(tmp_path, digits):
    """An export folder (fresh weights) of the architecture with every decision's last choice."""
    folder = tmp_path / "exported"
    export_architecture(digits, [len(d.choices) - 1 for d in digits.decisions], folder, onnx=False)
    return folder


def test_weights_of_an_exported_network_for_another_arch(tmp_path, exported, arch_file, capsys, no_work):
    weights = exported / "model.safetensors"
    assert main(["export", DIGITS, "--arch", arch_file, "--out", str(tmp_path / "o"), "--weights", str(weights)]) == 2
    err = one_error(capsys, "--weights", str(weights), "stand-alone", str(exported / "manifest.json"), "--arch")
    assert "Missing key" not in err
    # the same file copied away from its manifest
    alone = tmp_path / "net.safetensors"
    alone.write_bytes(weights.read_bytes())
    assert main(["export", DIGITS, "--arch", arch_file, "--out", str(tmp_path / "o"), "--weights", str(alone)]) == 2
    one_error(capsys, "--weights", str(alone), "stand-alone")
    assert not (tmp_path / "o").exists()


def test_its_manifest_as_arch_exports_it_again(tmp_path, exported, capsys):
    out = tmp_path / "again"
    assert main(["export", DIGITS, "--arch", str(exported / "manifest.json"), "--out", str(out),
                 "--weights", str(exported / "model.safetensors")]) == 0
    # its own weights file: the manifest's record of where the weights came from is kept
    before = json.loads((exported / "manifest.json").read_text())["weights"]["source"]
    assert json.loads((out / "manifest.json").read_text())["weights"]["source"] == before


def test_a_bare_standalone_state_dict_for_another_arch(tmp_path, digits, arch_file, capsys):
    other = digits.build_standalone(digits.encode([d.choices[-1] for d in digits.decisions]))
    ckpt = tmp_path / "net.pt"
    torch.save(other.state_dict(), ckpt)
    assert main(["export", DIGITS, "--arch", arch_file, "--out", str(tmp_path / "o"), "--weights", str(ckpt)]) == 2
    assert "Missing key" not in one_error(capsys, "stand-alone", "--arch")


def test_a_mismatching_supernet_names_a_few_keys_and_the_count(digits):
    sd = digits.build_supernet().state_dict()
    cut = {k: v for i, (k, v) in enumerate(sd.items()) if i % 3}
    arch = digits.encode([d.choices[0] for d in digits.decisions])
    with pytest.raises(UserError) as e:
        inherit_from_state(digits, cut, arch, digits.build_standalone(arch))
    msg = str(e.value)
    assert "does not fit space digits" in msg and len(msg) < 600 and "\n" not in msg
    assert f"{len(sd) - len(cut)} missing" in msg and "more" in msg


def test_weights_or_space_is_a_folder(tmp_path, arch_file, capsys, no_work):
    assert main(["export", DIGITS, "--arch", arch_file, "--out", str(tmp_path / "o"), "--weights", str(tmp_path)]) == 2
    assert "is a folder" in one_error(capsys, "--weights", str(tmp_path))
    assert main(["export", str(tmp_path), "--arch", arch_file, "--out", str(tmp_path / "o")]) == 2
    assert "is a folder" in one_error(capsys, str(tmp_path))
    assert not (tmp_path / "o").exists()


def test_a_run_folder_as_weights_points_at_its_checkpoint(tmp_path, arch_file, capsys, no_work):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "ckpt-000006.pt").write_bytes(b"")
    assert main(["export", DIGITS, "--arch", arch_file, "--out", str(tmp_path / "o"), "--weights", str(run)]) == 2
    one_error(capsys, "is a folder", "ckpt-000006.pt")


@pytest.mark.parametrize("name", ["junk.pt", "junk.safetensors"])
def test_random_bytes_are_not_a_checkpoint_automl_wrote(tmp_path, arch_file, capsys, no_work, name):
    junk = tmp_path / name
    junk.write_bytes(random.Random(0).randbytes(1000))
    assert main(["export", DIGITS, "--arch", arch_file, "--out", str(tmp_path / "o"), "--weights", str(junk)]) == 2
    err = one_error(capsys, "--weights", str(junk), "not a checkpoint automl wrote")
    assert "weights_only" not in err and "arbitrary code" not in err
