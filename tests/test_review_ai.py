"""Review AI: `automl space encode ... --set k=v --out arch.json` records the --set values in the arch.json
("space_args"); `automl export --arch arch.json` and `automl space cost --arch arch.json` apply them (a --set that
contradicts one is refused naming --arch), an arch.json without them behaves as before, and an arch.json whose
"params" the compiled space does not give its choices gets a one-line warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automl.compile import load_compiled
from test_review_aa import cli  # the CLI runner: exit code, stdout, stderr

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture(scope="module")
def three():
    """Digits compiled with --set classes=3, one of its architectures' choices and that network's params."""
    cs = load_compiled(DIGITS, {"classes": "3"})
    names = {d.name: d.choices[-1] for d in cs.decisions}
    params = cs.cost_table.total(cs.encode(names))
    default = load_compiled(DIGITS)
    assert params != default.cost_table.total(default.encode(names))  # the 10-class network has more weights
    return cs, names, params


@pytest.fixture
def encoded(tmp_path, capsys, three):
    """The arch.json `automl space encode DIGITS --arch-def BARE --set classes=3` writes."""
    cs, names, _ = three
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(cs.arch_def(cs.encode(names))))
    out = tmp_path / "arch.json"
    code, _, err = cli(capsys, "space", "encode", DIGITS, "--arch-def", bare, "--set", "classes=3", "--out", out)
    assert code == 0, err
    return out


def _without_space_args(path: Path) -> Path:
    obj = json.loads(path.read_text())
    obj.pop("space_args", None)  # (an older encode wrote none)
    old = path.with_name("old.json")
    old.write_text(json.dumps(obj))
    return old


def test_encode_records_its_set_values(encoded, three, tmp_path, capsys):
    obj = json.loads(encoded.read_text())
    assert obj["space_args"] == {"classes": "3"} and obj["params"] == three[2]
    code, out, err = cli(capsys, "space", "encode", DIGITS, "--arch-def", tmp_path / "bare.json")
    assert code == 0 and json.loads(out)["space_args"] == {}, err


def test_cost_applies_the_recorded_space_args(encoded, three, capsys):
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", encoded)
    assert code == 0 and json.loads(out)["params"] == three[2] and not err, (out, err)
    # a --set that keeps the recorded (or default) value is fine
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", encoded, "--set", "classes=3", "--set", "head=128")
    assert code == 0 and json.loads(out)["params"] == three[2], (out, err)


@pytest.mark.parametrize("verb", ["cost", "export"])
def test_a_contradicting_set_is_refused(encoded, tmp_path, capsys, verb):
    extra = ["--out", tmp_path / "x"] if verb == "export" else []
    code, out, err = cli(capsys, *(["space", "cost"] if verb == "cost" else ["export"]), DIGITS, "--arch", encoded,
                         "--set", "classes=10", *extra)
    assert code == 2 and not out, (out, err)
    assert f"--set classes=10 contradicts --arch {encoded}" in err and "encoded with classes=3" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x").exists()


def test_export_builds_the_encoded_network(encoded, three, tmp_path, capsys):
    out = tmp_path / "x"
    code, _, err = cli(capsys, "export", DIGITS, "--arch", encoded, "--out", out)
    assert code == 0 and "warning" not in err, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_classes"] == 3 and manifest["params"] == three[2]
    assert manifest["space_args"] == {"classes": "3"}


def test_an_arch_json_without_space_args_is_as_before_and_warned(encoded, three, capsys):
    old = _without_space_args(encoded)
    default = load_compiled(DIGITS)
    want = default.cost_table.total(default.encode(three[1]))
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", old)
    assert code == 0 and json.loads(out)["params"] == want, (out, err)  # the 10-class network, as before
    assert err.startswith(f"warning: --arch {old} records \"params\" {three[2]:,.0f}") and "--set" in err, err
    assert len(err.strip().splitlines()) == 1, err
    # the --set values it was encoded with: no warning
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", old, "--set", "classes=3")
    assert code == 0 and json.loads(out)["params"] == three[2] and not err, (out, err)


def test_export_warns_before_exporting(encoded, tmp_path, capsys):
    old = _without_space_args(encoded)
    # an unsupported opset stops the export after the architecture is read: the warning is printed before it
    code, _, err = cli(capsys, "export", DIGITS, "--arch", old, "--out", tmp_path / "x", "--opset", "1")
    assert code == 2 and err.startswith(f"warning: --arch {old} records \"params\""), err


@pytest.mark.parametrize("bad", [["classes", "3"], {"classes": ["3"]}, {"classes": "ten"}])
def test_bad_recorded_space_args_are_the_files_mistake(encoded, capsys, bad):
    obj = json.loads(encoded.read_text())
    obj["space_args"] = bad
    encoded.write_text(json.dumps(obj))
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", encoded)
    assert code == 2 and not out and f"--arch {encoded}: " in err and "space_args" in err, err
    assert len(err.strip().splitlines()) == 1, err
