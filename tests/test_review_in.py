"""Review IN: an architecture file of another space is said by one piece of logic (check_arch_space, called by
arch_choices: `automl space cost --arch` and `automl export --arch`), also when its recorded space_args do not fit
the space given; a file without "choices" is told it lacks them, not guessed to be another space's; a hand-edited
manifest's path too long for the file system is a user error, not an OSError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automl.commands._arch_args import arch_choices
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export.manifest import read_manifest
from helpers import cli_out_err

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
PROXYLESS = str(ROOT / "spaces" / "proxylessnas.space")
NB201 = str(ROOT / "spaces" / "nasbench201.space")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


cli = cli_out_err  # exit code, standard output and error; no traceback


@pytest.fixture(scope="module")
def digits():
    return load_compiled(DIGITS)


def _manifest(choices: list[str], **fields) -> dict:
    """A manifest as an export writes one (the fields the --arch checks read)."""
    return {"format_version": 1, "space_args": {}, "choices": choices, **fields}


# ---- 1. one piece of logic for "another space" ----------------------------------------------------------------

def test_arch_choices_says_which_space_first(tmp_path, digits):
    proxyless = load_compiled(PROXYLESS)
    path = tmp_path / "manifest.json"
    obj = _manifest([d.choices[0] for d in proxyless.decisions], space_name="proxylessnas")
    with pytest.raises(UserError) as e:
        arch_choices(obj, digits, str(path))
    text = str(e.value)
    assert text.startswith(f"--arch {path} is an export of space proxylessnas, not of digits"), text
    assert text.index("do not fit space digits") > text.index("export of space"), text


def test_space_cost_refuses_a_manifest_of_another_space_with_inputs_of_other_channels(tmp_path, digits, capsys):
    """Its choices fit digits (a space renamed would pass), but its network takes 3 channels: space cost says
    which space it is of, as export does (the check a merge into arch_choices' error branch alone would lose)."""
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(_manifest([d.choices[0] for d in digits.decisions], space_name="rgb",
                                         normalize={"mean": [0.5] * 3, "std": [0.25] * 3})))
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", path)
    assert code == 2 and not out, err
    assert err.startswith(f"error: --arch {path} is an export of space rgb, not of digits"), err
    assert "3 channel(s)" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("extra", [{"space": PROXYLESS, "space_args": {}},
                                   {"format_version": 1, "space_name": "proxylessnas", "space": PROXYLESS}])
def test_a_file_without_choices_is_told_so_not_guessed_another_spaces(tmp_path, capsys, extra):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choice": ["ir_k3_e1"], **extra}))  # "choices" misspelt
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", path)
    assert code == 2 and not out, err
    assert err.startswith(f"error: --arch {path}: expected an object with a \"choices\" key"), err
    assert "encoded for" not in err and "export of space" not in err, err


# ---- 3. recorded space_args of another space ------------------------------------------------------------------

@pytest.fixture(scope="module")
def nb201_choices() -> list[str]:
    return [d.choices[0] for d in load_compiled(NB201).decisions]


@pytest.mark.parametrize("command", ["cost", "export"])
def test_a_manifest_of_another_space_whose_space_args_do_not_fit_says_which_space(tmp_path, nb201_choices, capsys,
                                                                                  command):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(_manifest(nb201_choices, space_name="nasbench201", space=NB201,
                                         space_args={"cells": "1"})))
    argv = ("space", "cost", DIGITS, "--arch", path) if command == "cost" else \
        ("export", DIGITS, "--arch", path, "--out", tmp_path / "x")
    code, out, err = cli(capsys, *argv)
    assert code == 2 and not out, err
    assert err.startswith(f"error: --arch {path} is an export of space nasbench201, not of digits: give that "
                          f"space file"), err
    assert "cells=1" in err and "the export of" not in err and not (tmp_path / "x").exists(), err


def test_an_arch_encoded_for_another_space_whose_space_args_do_not_fit_says_which_file(tmp_path, nb201_choices,
                                                                                      capsys):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"space": NB201, "choices": nb201_choices, "space_args": {"cells": "1"}}))
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", path)
    assert code == 2 and not out, err
    assert err.startswith(f"error: --arch {path} was encoded for the space file {NB201}"), err
    assert "cells=1" in err and "without \"space_args\"" not in err, err


def test_space_args_this_space_rejects_still_name_the_file_and_its_fix(tmp_path, digits, capsys):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"space": DIGITS, "choices": [d.choices[0] for d in digits.decisions],
                                "space_args": {"cells": "1"}}))
    code, out, err = cli(capsys, "space", "cost", DIGITS, "--arch", path)
    assert code == 2 and not out, err
    assert err.startswith(f"error: --arch {path}: its \"space_args\" cells=1"), err
    assert "encoded for" not in err and "automl space encode" in err, err


# ---- 3. a hand-edited manifest's path the file system refuses ------------------------------------------------

@pytest.mark.parametrize("field", ["space", "space_file"])
def test_a_manifest_path_too_long_is_a_user_error(tmp_path, field):
    folder = tmp_path / "net"
    folder.mkdir()
    manifest = {"format_version": 1, "choices": ["a"], field: "s" * 5000, "onnx": {"file": "../model.onnx"}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError) as e:
        read_manifest(folder)
    assert "\"onnx.file\"" in str(e.value) and "automl export SPACE --arch" in str(e.value), str(e.value)


def test_a_folder_name_too_long_has_no_manifest(tmp_path):
    with pytest.raises(UserError, match="no manifest here"):
        read_manifest(tmp_path / ("d" * 5000))
