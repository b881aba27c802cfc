"""Review EY: `automl export --weights` files that fit no network, --arch files with a key given twice, and other
misuse of `automl export` (each one message naming the flag or file, exit 2, no traceback)."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import inherit_from_state, read_arch_json, split_checkpoint

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
ENAS = str(ROOT / "spaces" / "enas_micro.space")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture(scope="module")
def digits():
    return load_compiled(DIGITS)


@pytest.fixture
def arch(tmp_path, digits) -> str:
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": [d.choices[0] for d in digits.decisions]}))
    return str(path)


def _export(tmp_path, arch: str, *extra: str) -> int:
    return main(["export", DIGITS, "--arch", arch, "--out", str(tmp_path / "out"), *extra])


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err  # one message: no traceback, no warning of torch's
    assert err.startswith("error: ") and "Traceback" not in err
    return err


# --weights whose state_dict fits neither the supernet nor the network of the choices

def test_a_supernet_of_another_space_names_the_file_the_keys_and_the_fix(tmp_path, arch, capsys):
    ckpt = tmp_path / "enas.pt"
    torch.save({"supernet": load_compiled(ENAS).build_supernet().state_dict()}, ckpt)
    assert _export(tmp_path, arch, "--weights", str(ckpt)) == 2
    err = _one_error(capsys)
    assert f"--weights {ckpt}: " in err and "does not fit space digits" in err
    assert "missing key(s) (conv_stem.weight" in err and "unexpected key(s) (stem." in err and "more)" in err
    assert "recipe.resolved.yaml" in err and len(err) < 1000  # how to fix it; a few keys, not thousands
    assert not (tmp_path / "out").exists()


def test_a_supernet_of_other_set_values_is_said_to_be(tmp_path, arch, capsys):
    ckpt = tmp_path / "head64.pt"
    torch.save({"supernet": load_compiled(DIGITS, {"head": "64"}).build_supernet().state_dict()}, ckpt)
    assert _export(tmp_path, arch, "--weights", str(ckpt)) == 2
    err = _one_error(capsys)
    assert f"--weights {ckpt}: " in err and "other --set values" in err and "size mismatch for" in err


def test_a_foreign_state_dict_names_the_file(tmp_path, arch, capsys):
    ckpt = tmp_path / "foreign.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, ckpt)
    assert _export(tmp_path, arch, "--weights", str(ckpt)) == 2
    err = _one_error(capsys)
    assert f"--weights {ckpt}: " in err and "none of its 1 tensors" in err and "unexpected key(s) (fc.weight)" in err


def test_stand_alone_weights_missing_a_tensor_name_the_file_and_the_key(tmp_path, digits, arch, capsys):
    sd = digits.build_standalone(digits.encode([d.choices[0] for d in digits.decisions])).state_dict()
    sd.pop("conv_stem.weight")
    bare, wrapped = tmp_path / "bare.pt", tmp_path / "wrapped.pt"
    torch.save(sd, bare)
    torch.save({"model": sd}, wrapped)
    for ckpt in (bare, wrapped):
        assert _export(tmp_path, arch, "--weights", str(ckpt)) == 2
        err = _one_error(capsys)
        assert f"--weights {ckpt}: " in err and "1 missing key(s) (conv_stem.weight)" in err
        assert "stand-alone" in err and "manifest.json" in err


def test_stand_alone_weights_of_other_set_values_name_the_file(tmp_path, arch, capsys):
    other = load_compiled(DIGITS, {"head": "64"})
    ckpt = tmp_path / "head64.pt"
    torch.save(other.build_standalone(other.encode([d.choices[0] for d in other.decisions])).state_dict(), ckpt)
    assert _export(tmp_path, arch, "--weights", str(ckpt)) == 2
    err = _one_error(capsys)
    assert f"--weights {ckpt}: " in err and "conv_head.weight is (64, 48, 1, 1), the network's (128, 48, 1, 1)" in err


def test_inherit_from_state_names_its_source(digits):
    arch = digits.encode([d.choices[0] for d in digits.decisions])
    with pytest.raises(UserError, match=r"^--weights w\.pt: the supernet checkpoint does not fit space digits"):
        inherit_from_state(digits, {"x": torch.zeros(1)}, arch, digits.build_standalone(arch), source="--weights w.pt")


def test_an_ensemble_state_without_its_first_member_is_a_user_error(tmp_path, arch, capsys):
    ckpt = tmp_path / "ens.pt"
    torch.save({"members.1.conv_stem.weight": torch.zeros(1)}, ckpt)
    assert _export(tmp_path, arch, "--weights", str(ckpt)) == 2  # was an IndexError: exit 1 with a traceback
    assert f"--weights {ckpt}: " in _one_error(capsys)


# --weights files that hold no state_dict

def test_a_state_dict_keyed_by_numbers_is_a_user_error(tmp_path, arch, capsys):
    ckpt = tmp_path / "numbers.pt"
    torch.save({1: torch.zeros(1)}, ckpt)
    assert _export(tmp_path, arch, "--weights", str(ckpt)) == 2  # was an AttributeError: exit 1
    err = _one_error(capsys)
    assert f"--weights {ckpt}: not a state_dict" in err and "its key 1 is not a tensor's name" in err


@pytest.mark.parametrize("value, said", [([1], "[1] (list)"), (None, "null")])
def test_a_supernet_entry_that_is_no_state_dict_is_named(tmp_path, arch, capsys, value, said):
    ckpt = tmp_path / "odd.pt"
    torch.save({"supernet": value}, ckpt)
    assert _export(tmp_path, arch, "--weights", str(ckpt)) == 2
    err = _one_error(capsys)
    assert f"its 'supernet' is {said}, not a state_dict" in err and "ckpt-….pt" in err


def test_split_checkpoint_says_what_to_give():
    with pytest.raises(UserError, match=r"its entry 'step' is 3 \(int\), not a tensor\); give a run's checkpoint"):
        split_checkpoint({"a": torch.zeros(1), "step": 3}, {"a", "b"}, source="--weights x.pt")


def test_a_plain_pickle_is_one_message_without_torchs_warning(tmp_path, arch, capsys):
    ckpt = tmp_path / "plain.pkl"
    ckpt.write_bytes(pickle.dumps({"a": [1, 2]}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:  # pytest records warnings the CLI would print
        warnings.simplefilter("always")
        assert _export(tmp_path, arch, "--weights", str(ckpt)) == 2
    assert not [w for w in caught if "pickle" in str(w.message)]  # torch's "Detected pickle protocol 4" is not said
    assert f"--weights {ckpt}: not a readable torch checkpoint" in _one_error(capsys)


# --arch files with a key given twice

def test_a_choices_key_given_twice_is_refused_naming_file_line_and_key(tmp_path, digits, capsys):
    names = [d.choices[0] for d in digits.decisions]
    path = tmp_path / "twice.json"
    # the last "choices" is a valid architecture: json.load kept it silently, exporting another network
    path.write_text('{\n  "choices": ["nope"],\n  "choices": ' + json.dumps(names) + "\n}\n")
    assert _export(tmp_path, str(path)) == 2
    err = _one_error(capsys)
    assert f"--arch {path}:3: " in err and 'key "choices" is given twice' in err and "remove" in err
    assert not (tmp_path / "out").exists()


def test_a_nested_key_given_twice_is_refused(tmp_path, digits, capsys):
    names = {d.name: d.choices[0] for d in digits.decisions}
    first = next(iter(names))
    text = json.dumps({"choices": names})
    path = tmp_path / "nested.json"
    path.write_text(text.replace(f'"{first}": ', f'"{first}": "nope", "{first}": ', 1))
    assert _export(tmp_path, str(path)) == 2
    assert f'key "{first}" is given twice' in _one_error(capsys)


def test_read_arch_json_keeps_a_file_without_duplicates(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"choices": {"a": "x", "b": "y"}, "space_args": {"head": "64"}}')
    assert read_arch_json(path) == {"choices": {"a": "x", "b": "y"}, "space_args": {"head": "64"}}


# --arch choices that are no names

def test_choice_indices_are_answered_with_the_names(tmp_path, digits, capsys):
    path = tmp_path / "indices.json"
    path.write_text(json.dumps({"choices": [1] * len(digits.decisions)}))
    assert _export(tmp_path, str(path)) == 2
    err = _one_error(capsys)
    assert f"not by index: index 1 is {digits.decisions[0].choices[1]!r}" in err


@pytest.mark.parametrize("value", [-1, 99, 0.5])
def test_other_non_names_list_the_decisions_choices(tmp_path, digits, capsys, value):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"choices": [value] * len(digits.decisions)}))
    assert _export(tmp_path, str(path)) == 2
    err = _one_error(capsys)
    assert f"got {value}; its choices: {', '.join(digits.decisions[0].choices)}" in err


def test_null_choices_are_called_null(tmp_path, capsys):
    path = tmp_path / "null.json"
    path.write_text('{"choices": null}')
    assert _export(tmp_path, str(path)) == 2
    assert "{decision: choice}, not null" in _one_error(capsys)
