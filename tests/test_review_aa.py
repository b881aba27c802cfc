"""Review AA: an empty file or folder argument is one message saying so (not "is a directory"); `automl export`
says what it exported once; `automl space encode --arch-def MANIFEST` keeps the resolution the manifest's
network chose."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from automl._io import UnreadableText, read_utf8_text
from automl.compile import compile_space
from automl.dsl import load_space
from automl.errors import SpaceError
from automl.export import quantize
from helpers import cli_out_err as cli

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
QUICK = str(ROOT / "recipes" / "quickstart.yaml")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


# ---- 1. an empty path argument ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv, named", [
    (["space", "check", ""], "automl space check: FILE is empty"),
    (["space", "show", " "], "automl space show: FILE is empty"),
    (["space", "encode", "", "--timm", "x"], "automl space encode: FILE is empty"),
    (["space", "profile", "", "--out", "t.json"], "automl space profile: FILE is empty"),
    (["space", "encode", DIGITS, "--arch-def", ""], "--arch-def '' is empty"),
    (["space", "cost", "", "--arch", "a.json"], "automl space cost: FILE is empty"),
    (["space", "cost", DIGITS, "--arch", ""], "--arch '' is empty"),
    (["space", "cost", DIGITS, "--arch", "missing.json", "--cost-table", ""], "--cost-table '' is empty"),
    (["export", "", "--arch", "a.json", "--out", "o"], "automl export: SPACE is empty"),
    (["export", DIGITS, "--arch", "", "--out", "o"], "--arch '' is empty"),
    (["export", DIGITS, "--arch", "missing.json", "--out", "o", "--weights", ""], "--weights '' is empty"),
    (["export", DIGITS, "--arch", "missing.json", "--out", "o", "--recipe", ""], "--recipe '' is empty"),
    (["rank", ""], "automl rank: RUN_DIR is empty"),
    (["run", ""], "automl run: RECIPE is empty"),
    (["run", QUICK, "--supernet", ""], "--supernet '' is empty"),
])
def test_an_empty_path_argument_is_named_as_empty(tmp_path, monkeypatch, capsys, argv, named):
    monkeypatch.chdir(tmp_path)  # nothing is written into the repository, whatever the command
    code, _, err = cli(capsys, *argv)
    assert code == 2 and named in err and "e.g." in err, err
    assert "directory" not in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.iterdir())


def test_an_empty_file_name_is_missing_not_the_current_folder():
    with pytest.raises(UnreadableText) as e:
        read_utf8_text("")
    assert e.value.reason == "missing"
    with pytest.raises(SpaceError) as e:
        load_space("")
    assert "no such file" in e.value.message and "directory" not in e.value.message


# ---- 2. `automl export` says what it exported once --------------------------------------------------------

def _arch(tmp_path: Path) -> str:
    cs = compile_space(load_space(DIGITS))
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    return str(path)


def test_export_says_what_it_exported_once(tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)  # as `automl export` logs without -v
    code, out, err = cli(capsys, "export", DIGITS, "--arch", _arch(tmp_path), "--out", tmp_path / "o")
    lines = [m for m in [*out.splitlines(), *err.splitlines(), *caplog.messages] if m.startswith("exported ")]
    assert code == 0 and len(lines) == 1 and "model.onnx" in lines[0], lines
    assert not logging.getLogger("automl.export._export").filters  # the filter is gone afterwards


def test_a_failed_int8_quantisation_is_said_once(tmp_path, capsys, caplog, monkeypatch):
    def fail(*a, **k):
        raise RuntimeError("no int8 today")
    monkeypatch.setattr(quantize, "quantize_int8", fail)
    caplog.set_level(logging.INFO)
    code, out, err = cli(capsys, "export", DIGITS, "--arch", _arch(tmp_path), "--out", tmp_path / "o",
                         "--quantize", "int8", "--recipe", QUICK)
    lines = [m for m in [*out.splitlines(), *err.splitlines(), *caplog.messages] if "no int8 today" in m]
    assert code == 0 and len(lines) == 1 and lines[0].startswith("int8: not quantised"), lines
    assert not logging.getLogger("automl.export.quantize").filters


# ---- 3. `automl space encode --arch-def MANIFEST` with elastic resolution ---------------------------------

ELASTIC = """space elastic
param size = 16
input 1 x size x size
resolution size // 2, size * 3 // 4, size
classes 10
choices block = ir_k3_e1, ir_k3_e3
network
  stem width 16
  stage s1 width 24 repeat 2 choose block
  head width 32
end
"""


@pytest.fixture
def elastic(tmp_path):
    """(the space file, its compiled space, a manifest-like arch_def file of the network at resolution 12)."""
    path = tmp_path / "elastic.space"
    path.write_text(ELASTIC)
    cs = compile_space(load_space(path))
    names = {d.name: d.choices[-1] for d in cs.decisions}
    names["resolution"] = "r12"
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"format_version": 1, "choices": names, "input_shape": [1, 12, 12],
                                    "space_args": {}, "arch_def": cs.arch_def(cs.encode(names))}))
    return str(path), cs, manifest


def test_encode_of_a_manifest_keeps_its_resolution(tmp_path, capsys, elastic):
    path, cs, manifest = elastic
    code, out, _ = cli(capsys, "space", "encode", path, "--arch-def", manifest)
    assert code == 0 and json.loads(out)["choices"]["resolution"] == "r12"
    # a bare arch_def gives no input size: the space's
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(json.loads(manifest.read_text())["arch_def"]))
    code, out, _ = cli(capsys, "space", "encode", path, "--arch-def", bare)
    assert code == 0 and json.loads(out)["choices"]["resolution"] == "r16"


def test_encode_of_a_manifest_refuses_a_resolution_the_space_lacks(tmp_path, capsys, elastic):
    path, _, manifest = elastic
    m = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**m, "space_args": {"size": "20"}}))  # as if exported with --set size=20
    code, _, err = cli(capsys, "space", "encode", path, "--arch-def", manifest)
    assert code == 2 and "12 x 12 inputs" in err and "offers 10, 15, 20" in err and "--set size=20" in err, err
    manifest.write_text(json.dumps({**m, "input_shape": [1, 12]}))
    code, _, err = cli(capsys, "space", "encode", path, "--arch-def", manifest)
    assert code == 2 and "input_shape" in err and "[1, 12]" in err, err
