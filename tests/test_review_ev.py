"""Review EV: `automl space ...` and `automl export` as a user mistypes them. An option of theirs given twice is
refused (argparse kept the last one silently: `export --arch a.json --arch b.json` exported b); a file whose name
starts with a dash, read as an option, is named with how to give it; an export's manifest given as --arch that an
automl newer than this one wrote, or that was edited by hand so that what it records of its network ("arch",
"input_shape", "num_classes") is not what its "choices" build, is refused by field instead of costed or
exported as another network than it says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from automl.cli import main
from automl.compile import load_compiled
from helpers import cli_out_err as cli

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def refused(capsys, *argv) -> str:
    """The argparse error of ``argv``: exit 2, a usage line and one error line; returns the error line."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err, err
    errors = [line for line in err.strip().splitlines() if ": error: " in line]
    assert len(errors) == 1, err
    return errors[0]


def _arch(tmp_path: Path) -> tuple[Path, list[str]]:
    cs = load_compiled(DIGITS)
    names = [d.choices[-1] for d in cs.decisions]
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": names}))
    return path, names


def _manifest(tmp_path: Path, **edit) -> Path:
    """A manifest as `automl export DIGITS` writes one (the fields --arch reads back), with ``edit`` applied."""
    cs = load_compiled(DIGITS)
    names = [d.choices[0] for d in cs.decisions]
    arch = cs.encode(names)
    m = {"format_version": 1, "space_name": cs.name, "space_args": {}, "choices": names,
         "arch": [int(k) for k in arch.tolist()], "input_shape": list(cs.input_shape),
         "num_classes": cs.num_classes, "se": 0.0, **edit}
    folder = tmp_path / "exported"
    folder.mkdir(exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(m))
    return folder / "manifest.json"


# ---- 1. an option of `space` or `export` given twice ----------------------------------------------------------

@pytest.mark.parametrize("argv, named", [
    (["space", "show", DIGITS, "--metric", "macs", "--metric", "params"], "--metric given twice (macs, then params)"),
    (["space", "show", DIGITS, "--json", "--json"], "--json given twice"),
    (["space", "cost", DIGITS, "--arch", "a.json", "--arch", "b.json"], "--arch given twice (a.json, then b.json)"),
    (["space", "cost", DIGITS, "--arch", "a.json", "--cost-table", "t1", "--cost-t", "t2"],
     "--cost-table given twice (t1, then t2)"),
    (["space", "encode", DIGITS, "--timm", "a", "--timm", "b"], "--timm given twice (a, then b)"),
    (["space", "encode", DIGITS, "--arch-def", "m", "--out", "x.json", "--out", "y.json"],
     "--out given twice (x.json, then y.json)"),
    (["space", "profile", DIGITS, "--out", "t.json", "--threads", "1", "--threads", "2"],
     "--threads given twice (1, then 2)"),
    (["export", DIGITS, "--arch", "a.json", "--arch", "b.json", "--out", "o"], "--arch given twice (a.json, then b.json)"),
    (["export", DIGITS, "--arch", "a.json", "--out", "o1", "--out", "o2"], "--out given twice (o1, then o2)"),
    (["export", DIGITS, "--arch", "a.json", "--out", "o", "--opset", "17", "--opset", "18"],
     "--opset given twice (17, then 18)"),
    (["export", DIGITS, "--arch", "a.json", "--out", "o", "--se", "0", "--se", "0.25"], "--se given twice (0.0, then 0.25)"),
    (["export", DIGITS, "--arch", "a.json", "--out", "o", "--weights", "w1", "--weights", "w2"],
     "--weights given twice (w1, then w2)"),
])
def test_a_space_or_export_option_given_twice_is_refused(tmp_path, monkeypatch, capsys, argv, named):
    monkeypatch.chdir(tmp_path)  # nothing may be written
    line = refused(capsys, *argv)
    assert named in line and "give it once" in line, line
    assert not list(tmp_path.iterdir())


def test_set_stays_repeatable_and_options_given_once_still_work(capsys):
    code, out, _ = cli(capsys, "space", "show", DIGITS, "--set", "classes=3", "--set", "classes=4", "--json",
                       "--metric", "macs")
    assert code == 0 and json.loads(out)["num_classes"] == 4 and json.loads(out)["metric"] == "macs"


# ---- 2. a file whose name starts with a dash -------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["space", "check", "-x.space"], ["space", "show", DIGITS, "-x.space"],
                                  ["export", "-x.space", "--arch", "a.json", "--out", "o"]])
def test_a_file_named_with_a_leading_dash_is_named_with_how_to_give_it(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    shutil.copy(DIGITS, tmp_path / "-x.space")
    line = refused(capsys, *argv)
    assert "-x.space is read as an option" in line and "write ./-x.space" in line, line
    code, _, _ = cli(capsys, "space", "check", "./-x.space")  # as the message says
    assert code == 0


def test_a_missing_argument_without_such_a_file_has_no_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    line = refused(capsys, "space", "check", "-x.space")
    assert "read as an option" not in line and "required: file" in line, line


# ---- 3. a manifest of a newer automl, or edited by hand --------------------------------------------------------

@pytest.mark.parametrize("version, said", [(99, "\"format_version\" 99 is newer than this automl understands (1)"),
                                           ("one", "\"format_version\" 'one' is not one automl writes"),
                                           (True, "\"format_version\" True is not one automl writes")])
def test_a_manifest_of_another_format_version_is_refused(tmp_path, capsys, version, said):
    manifest = _manifest(tmp_path, format_version=version)
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", manifest)
    assert code == 2 and not out and f"--arch {manifest}: {said}" in err, err


# (a damaged input_shape, "8x8", is not another network: the export writes it again, as measure_export advises)
@pytest.mark.parametrize("field, value", [("arch", [2, 2, 2, 2, 2, 2, 2, 2, 2]), ("input_shape", [3, 8, 8]),
                                          ("num_classes", 11)])
def test_a_manifest_whose_network_is_not_its_choices_is_refused(tmp_path, capsys, field, value):
    manifest = _manifest(tmp_path, **{field: value})
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", manifest)
    assert code == 2 and not out, err
    assert f"--arch {manifest}: \"{field}\" is {value!r}, but its \"choices\" in space digits" in err, err
    assert "was the manifest edited" in err and "plain ARCH.json" in err and len(err.strip().splitlines()) == 1, err
    out_dir = tmp_path / "out"
    code, _, err = cli(capsys, "export", DIGITS, "--arch", manifest, "--out", out_dir)
    assert code == 2 and f"\"{field}\" is {value!r}" in err and not out_dir.exists(), err


def test_an_unedited_manifest_and_a_plain_arch_json_are_costed(tmp_path, capsys):
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", _manifest(tmp_path))
    assert code == 0 and json.loads(out)["params"] > 0, err
    # a manifest of an automl that recorded neither "arch" nor "num_classes": its choices, as before
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", _manifest(tmp_path, arch=None, num_classes=None))
    assert code == 0, err
    path, _ = _arch(tmp_path)
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", path)
    assert code == 0 and json.loads(out)["params"] > 0, err


def test_encode_of_an_edited_manifest_is_refused(tmp_path, capsys):
    cs = load_compiled(DIGITS)
    arch_def = cs.arch_def(cs.encode([d.choices[0] for d in cs.decisions]))
    manifest = _manifest(tmp_path, arch_def=arch_def)
    code, out, err = cli(capsys, "space", "encode", DIGITS, "--arch-def", manifest)
    assert code == 0 and list(json.loads(out)["choices"].values()) == _manifest_json(manifest)["choices"], err
    manifest = _manifest(tmp_path, arch_def=arch_def, input_shape=[3, 8, 8])
    code, out, err = cli(capsys, "space", "encode", DIGITS, "--arch-def", manifest)
    assert code == 2 and not out and f"--arch-def {manifest}: \"input_shape\" is [3, 8, 8]" in err, err
    assert "a bare arch_def (the manifest's \"arch_def\" list)" in err, err


def _manifest_json(path: Path) -> dict:
    return json.loads(path.read_text())
