"""Review AC: `automl space encode SPACE --arch-def MANIFEST` uses the manifest's space_args (the --set values
its network was exported with) as `automl space cost --arch MANIFEST` does, and refuses a --set that contradicts
them naming --arch-def; the readers of an --arch / --arch-def file close it (no ResourceWarning)."""

from __future__ import annotations

import gc
import json
import warnings
from pathlib import Path

import pytest

from automl.commands._arch_args import space_args_for
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import read_arch_json
from automl.nn.membership import arch_def_model
from test_review_aa import ELASTIC, cli  # the same small space with elastic resolution; the CLI runner

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture(scope="module")
def three():
    """Digits compiled with --set classes=3 and one of its architectures' choices."""
    cs = load_compiled(DIGITS, {"classes": "3"})
    return cs, {d.name: d.choices[-1] for d in cs.decisions}


def _manifest(tmp_path: Path, three, space_args: dict) -> Path:
    """A manifest like the one `automl export DIGITS --arch ... --set classes=3` writes (the fields encode reads)."""
    cs, names = three
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"format_version": 1, "choices": names, "input_shape": list(cs.input_shape),
                                "space_args": space_args, "arch_def": cs.arch_def(cs.encode(names))}))
    return path


# ---- 1. encode --arch-def MANIFEST: the manifest's space_args ----------------------------------------------

def test_encode_of_a_manifest_uses_its_space_args(tmp_path, capsys, three):
    cs, names = three
    manifest = _manifest(tmp_path, three, {"classes": "3"})
    want = cs.cost_table.total(cs.encode(names))
    default = load_compiled(DIGITS)
    assert want != default.cost_table.total(default.encode(names))  # the 10-class network has more weights
    code, out, err = cli(capsys, "space", "encode", DIGITS, "--arch-def", manifest)
    assert code == 0 and json.loads(out)["params"] == want, (out, err)
    assert json.loads(out)["choices"] == names
    # as `space cost --arch` costs it
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", manifest)
    assert code == 0 and json.loads(out)["params"] == want, (out, err)
    # a --set that agrees with the manifest is no contradiction
    code, out, err = cli(capsys, "space", "encode", DIGITS, "--arch-def", manifest, "--set", "classes=3")
    assert code == 0 and json.loads(out)["params"] == want, (out, err)


def test_encode_refuses_a_set_that_contradicts_the_manifest(tmp_path, capsys, three):
    manifest = _manifest(tmp_path, three, {"classes": "3"})
    code, out, err = cli(capsys, "space", "encode", DIGITS, "--arch-def", manifest, "--set", "classes=10")
    assert code == 2 and not out, out
    assert f"--set classes=10 contradicts --arch-def {manifest}" in err and "classes=3" in err, err
    assert "bare arch_def" in err and "ARCH.json" not in err and len(err.strip().splitlines()) == 1, err
    # a manifest without space_args was exported with the space's defaults
    manifest = _manifest(tmp_path, three, {})
    code, _, err = cli(capsys, "space", "encode", DIGITS, "--arch-def", manifest, "--set", "head=64")
    assert code == 2 and "head=128 (the space's default)" in err and "--arch-def" in err, err


def test_encode_refuses_space_args_the_space_rejects(tmp_path, capsys, three):
    manifest = _manifest(tmp_path, three, {"classes": "many"})
    code, _, err = cli(capsys, "space", "encode", DIGITS, "--arch-def", manifest)
    assert code == 2 and f"--arch-def {manifest}: its \"space_args\" classes=many" in err, err


def test_a_bare_arch_def_takes_the_set_values(tmp_path, capsys, three):
    """Without a manifest there is nothing recorded: --set says which network the space builds."""
    cs, names = three
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(cs.arch_def(cs.encode(names))))
    code, out, err = cli(capsys, "space", "encode", DIGITS, "--arch-def", bare, "--set", "classes=3")
    assert code == 0 and json.loads(out)["params"] == cs.cost_table.total(cs.encode(names)), (out, err)


def test_encode_of_a_manifest_takes_the_resolution_of_its_space_args(tmp_path, capsys):
    """Elastic resolution: the manifest's size=20 makes the choices 10, 15 and 20; its 15 x 15 network is r15,
    and a 12 x 12 one (a manifest of another space file) is refused, saying its space_args were applied."""
    path = tmp_path / "elastic.space"
    path.write_text(ELASTIC)
    cs = load_compiled(path, {"size": "20"})
    names = {**{d.name: d.choices[-1] for d in cs.decisions}, "resolution": "r15"}
    manifest = tmp_path / "manifest.json"
    m = {"format_version": 1, "choices": names, "input_shape": [1, 15, 15], "space_args": {"size": "20"},
         "arch_def": cs.arch_def(cs.encode(names))}
    manifest.write_text(json.dumps(m))
    code, out, err = cli(capsys, "space", "encode", path, "--arch-def", manifest)
    assert code == 0 and json.loads(out)["choices"] == names, (out, err)
    manifest.write_text(json.dumps({**m, "input_shape": [1, 12, 12]}))
    code, _, err = cli(capsys, "space", "encode", path, "--arch-def", manifest)
    assert code == 2 and "12 x 12 inputs" in err and "offers 10, 15, 20" in err, err
    assert "the space file it was exported from" in err and "space_args apply: --set size=20" in err, err


def test_space_args_for_names_its_flag():
    recorded = {"space_args": {"classes": "3"}}
    with pytest.raises(UserError, match="contradicts --arch-def m.json"):
        space_args_for(DIGITS, "m.json", recorded, ["classes=4"], "--arch-def")
    with pytest.raises(UserError, match="contradicts --arch m.json.*ARCH.json with the choices to export"):
        space_args_for(DIGITS, "m.json", recorded, ["classes=4"])
    assert space_args_for(DIGITS, "m.json", recorded, ["classes=3"], "--arch-def") == {"classes": "3"}


def test_a_manifest_is_compiled_once(tmp_path, capsys, three, monkeypatch):
    """The space is compiled with the manifest's space_args, not first with --set alone and then again."""
    manifest = _manifest(tmp_path, three, {"classes": "3"})
    seen = []
    real = load_compiled

    def counting(path, overrides=None):
        seen.append(dict(overrides or {}))
        return real(path, overrides)
    monkeypatch.setattr("automl.commands.space.load_compiled", counting)
    for verb, flag in (("cost", "--arch"), ("encode", "--arch-def")):
        seen.clear()
        assert cli(capsys, "space", verb, DIGITS, flag, manifest)[0] == 0
        assert seen == [{"classes": "3"}], (verb, seen)


def test_an_arch_def_with_a_huge_integer_is_a_user_error(tmp_path, capsys, three):
    path = tmp_path / "big.json"
    path.write_text("[[" + "1" * 5000 + "]]")
    code, _, err = cli(capsys, "space", "encode", DIGITS, "--arch-def", path)
    assert code == 2 and f"--arch-def {path}" in err, err
    with pytest.raises(UserError, match="--arch-def .*big.json"):
        arch_def_model(path, three[0])


# ---- 2. the readers close the file ---------------------------------------------------------------------------

def _resource_warnings(fn) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fn()
        except UserError:
            pass
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


@pytest.mark.parametrize("reader", ["read_arch_json", "arch_def_model"])
@pytest.mark.parametrize("content", [b'{"choices": []}', b'[["ds_r1_k3_s1_c16"]]', b'{"x": "\xff"}', b'[['])
def test_the_arch_readers_close_the_file(tmp_path, three, reader, content):
    """A file read, valid JSON or not, UTF-8 or not, is closed: no "unclosed file" ResourceWarning."""
    path = tmp_path / "arch.json"
    path.write_bytes(content)
    read = {"read_arch_json": lambda: read_arch_json(path), "arch_def_model": lambda: arch_def_model(path, three[0])}
    assert _resource_warnings(read[reader]) == []


def test_the_readers_say_which_flag(tmp_path):
    path = tmp_path / "arch.json"
    path.write_bytes(b'{"x": "\xff"}')
    with pytest.raises(UserError, match=r"^--arch-def .*arch.json: cannot read it"):
        read_arch_json(path, "--arch-def")
    with pytest.raises(UserError, match=r"^--arch .*arch.json: cannot read it"):
        read_arch_json(path)
    with pytest.raises(UserError, match=r"^--arch-def .*missing.json: no such file"):
        read_arch_json(tmp_path / "missing.json", "--arch-def")
