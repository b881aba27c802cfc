"""Review FD: the architecture files every command reads from the user (`automl space cost --arch`, `automl space
encode --arch-def`, `automl export --arch`).

1. A key given twice in one JSON object is refused by each of them (as `automl export` did), naming the file,
   the line and the key; JSON would keep the last one without a word.
2. A file saved with a UTF-8 byte order mark (a Windows editor's "UTF-8 with BOM") is read; a byte that is no
   UTF-8 is named with its line and column; a regular file far too large is refused before it is read.
3. A malformed "se", "params" (and a results.json entry's "cost") is one message naming the file and the field,
   exit 2, also where the file records no valid "params" (it was silently ignored); what `automl space encode`
   writes still loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import read_arch_json
from automl.nn.membership import arch_def_model
from test_review_aa import cli  # the CLI runner: exit code, stdout, stderr (and no traceback)

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
BOM = b"\xef\xbb\xbf"

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture(scope="module")
def digits():
    return load_compiled(DIGITS)


def _names(cs) -> list[str]:
    return [d.choices[-1] for d in cs.decisions]


def _arch_def(cs) -> list[list[str]]:
    return cs.arch_def(torch.full((cs.num_decisions,), 0, dtype=torch.long))


def _one_line(err: str) -> str:
    assert len(err.strip().splitlines()) == 1, err
    return err


# ---- 1. a key given twice ------------------------------------------------------------------------------------

def test_space_cost_refuses_a_key_given_twice(tmp_path, capsys, digits):
    first = [d.choices[0] for d in digits.decisions]
    path = tmp_path / "twice.json"
    path.write_text(f'{{"choices": {json.dumps(first)},\n "choices": {json.dumps(_names(digits))}}}\n')
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", path)
    assert code == 2 and not out, (out, err)
    assert f"--arch {path}:2: " in _one_line(err) and 'key "choices" is given twice' in err, err


def test_space_encode_refuses_a_key_given_twice(tmp_path, capsys, digits):
    path = tmp_path / "twice.json"
    path.write_text(json.dumps({"arch_def": [["ds_r1_k3_s1_c16"]]})[:-1]
                    + f', "arch_def": {json.dumps(_arch_def(digits))}}}')
    code, out, err = cli(capsys, "space", "encode", DIGITS, "--arch-def", path)
    assert code == 2 and not out, (out, err)
    assert f"--arch-def {path}:1: " in _one_line(err) and 'key "arch_def" is given twice' in err, err
    with pytest.raises(UserError, match='^--arch-def .*twice.json:1: key "arch_def" is given twice'):
        arch_def_model(path, digits)  # read on its own, as the CLI reads it


def test_read_arch_json_refuses_a_key_given_twice_by_default(tmp_path):
    path = tmp_path / "twice.json"
    path.write_text('{"choices": {"a": "x", "a": "y"}}')
    with pytest.raises(UserError, match='key "a" is given twice'):
        read_arch_json(path)


# ---- 2. how the file is read ---------------------------------------------------------------------------------

def test_a_file_with_a_byte_order_mark_is_read(tmp_path, capsys, digits):
    arch = tmp_path / "arch.json"
    arch.write_bytes(BOM + json.dumps({"choices": _names(digits)}).encode())
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", arch)
    assert code == 0 and not err, err
    assert json.loads(out)["params"] == digits.cost_table.total(digits.encode(_names(digits)))
    arch_def = tmp_path / "arch_def.json"
    arch_def.write_bytes(BOM + json.dumps(_arch_def(digits)).encode())
    code, out, err = cli(capsys, "space", "encode", DIGITS, "--arch-def", arch_def)
    assert code == 0 and not err, err
    assert list(json.loads(out)["choices"].values()) == [d.choices[0] for d in digits.decisions]


def test_a_byte_that_is_no_utf8_is_named_with_its_line(tmp_path, capsys):
    path = tmp_path / "arch.json"
    path.write_bytes(b'{\n "choices": ["\xe9"]}')
    code, _, err = cli(capsys, "space", "cost", DIGITS, "--arch", path)
    assert code == 2 and f"--arch {path}: cannot read it: byte 0xe9 at line 2, column 15" in _one_line(err), err


def test_a_file_far_too_large_is_refused_unread(tmp_path, capsys):
    path = tmp_path / "huge.json"
    with open(path, "wb") as f:
        f.truncate(17 << 20)  # sparse: no disk used
    code, _, err = cli(capsys, "space", "encode", DIGITS, "--arch-def", path)
    assert code == 2 and f"--arch-def {path}: cannot read it (it is larger than 16 MiB" in _one_line(err), err
    assert "architecture file" in err, err


# ---- 3. malformed recorded fields ----------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [("se", '"x"'), ("se", "[0.25]"), ("params", '"x"'), ("params", "-1"),
                                          ("params", "NaN"), ("params", "{}"), ("params", "true"),
                                          ("params", "-" + "1" * 400)])
def test_a_malformed_field_is_refused_without_valid_params(tmp_path, capsys, digits, field, value):
    path = tmp_path / "arch.json"
    path.write_text(f'{{"choices": {json.dumps(_names(digits))}, "{field}": {value}}}')
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", path)
    assert code == 2 and not out, (out, err)
    assert f"--arch {path}: \"{field}\" must be" in _one_line(err) and f'drop "{field}"' in err, err


def test_a_results_entry_with_a_malformed_cost_is_refused(tmp_path, capsys, digits):
    arch = digits.encode(_names(digits))
    path = tmp_path / "entry.json"
    path.write_text(json.dumps({"choices": _names(digits), "params": digits.cost_table.total(arch) + 1000,
                                "test_accuracy": 0.5, "cost": "cheap"}))
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", path)
    assert code == 2 and not out and f'--arch {path}: "cost" must be' in _one_line(err), err


def test_export_refuses_a_malformed_se_without_params(tmp_path, capsys, digits):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": _names(digits), "se": "quarter"}))
    # an unsupported opset would stop it after the architecture is read: the file is refused first
    code, _, err = cli(capsys, "export", DIGITS, "--arch", path, "--out", tmp_path / "out", "--opset", "1")
    assert code == 2 and f'--arch {path}: "se" must be' in _one_line(err), err
    assert not (tmp_path / "out").exists()


def test_what_encode_writes_still_loads(tmp_path, capsys, digits):
    """The ARCH.json of `automl space encode` (its "space", "arch_def_file", "space_args" and "params") is read
    by `space cost` without a warning, with --set values too; so is a results.json-like entry with a null params."""
    arch_def = tmp_path / "arch_def.json"
    arch_def.write_text(json.dumps(_arch_def(load_compiled(DIGITS, {"classes": "4"}))))
    out_file = tmp_path / "encoded.json"
    code, _, err = cli(capsys, "space", "encode", DIGITS, "--arch-def", arch_def, "--set", "classes=4",
                       "--out", out_file)
    assert code == 0, err
    written = json.loads(out_file.read_text())
    assert {"space", "arch_def_file", "choices", "space_args", "params"} <= set(written), written
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", out_file)
    assert code == 0 and not err and json.loads(out)["params"] == written["params"], err
    entry = tmp_path / "entry.json"
    entry.write_text(json.dumps({"choices": _names(digits), "params": None, "se": 0.25, "cost": 1.5,
                                 "test_accuracy": None}))
    code, _, err = cli(capsys, "space", "cost", DIGITS, "--arch", entry)
    assert code == 0 and not err, err
