"""Review LQ: `automl space check` of several files checks each (its line or its error, exit 2 when any fails);
an ARCH.json that records another existing space file, not a copy of the one given, whose choices happen to fit
it, is warned about on stderr naming both files; a null choice is said as JSON writes it (null), not None."""

from __future__ import annotations

import json
import shutil
from argparse import Namespace
from pathlib import Path

import pytest

from automl.cli import main
from automl.commands import space as space_command
from automl.compile import load_compiled

ROOT = Path(__file__).resolve().parents[1]
NB201 = str(ROOT / "spaces" / "nasbench201.space")
DARTS = str(ROOT / "spaces" / "darts.space")
DIGITS = str(ROOT / "spaces" / "digits.space")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _check_args(*files: str, items=None) -> Namespace:
    """The arguments of `automl space check FILE [FILE ...]`: the first file, the others as `more`."""
    return Namespace(command="space", space_command="check", file=files[0], more=list(files[1:]), set=items,
                     verbose=False)


def _bad_space(tmp_path) -> Path:
    bad = tmp_path / "bad.space"
    bad.write_text("space x\n")  # no network
    return bad


# ---- 1. space check of several files ---------------------------------------------------------------------------

def test_check_of_several_files_checks_each_and_exits_2_when_one_fails(tmp_path, capsys):
    bad = _bad_space(tmp_path)
    assert space_command.main(_check_args(DIGITS, str(bad), NB201)) == 2
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [line.split(": ok:")[0] for line in lines] == [DIGITS, NB201], out  # each passing file's own line
    assert err.startswith(f"{bad}:1:") and "no network" in err, err  # as the single-file check says it
    assert "Traceback" not in err


def test_check_of_several_good_files_exits_0_with_a_line_each(capsys):
    assert space_command.main(_check_args(DIGITS, NB201, DARTS)) == 0
    out, err = capsys.readouterr()
    assert not err and [line.split(": ok:")[0] for line in out.splitlines()] == [DIGITS, NB201, DARTS], out


def test_check_of_several_files_names_each_failing_file(tmp_path, capsys):
    bad, missing = _bad_space(tmp_path), tmp_path / "missing.space"
    assert space_command.main(_check_args(str(missing), str(bad), items=["nope=1"])) == 2
    out, err = capsys.readouterr()
    said = err.splitlines()
    assert not out and any(str(missing) in line for line in said) and any(str(bad) in line for line in said), err


def test_check_of_one_file_is_as_before(tmp_path, capsys):
    assert main(["space", "check", DIGITS]) == 0
    assert capsys.readouterr().out.startswith(f"{DIGITS}: ok: space ")
    assert main(["space", "check", str(_bad_space(tmp_path))]) == 2
    assert "no network" in capsys.readouterr().err


def test_cli_space_check_takes_several_files(tmp_path, capsys):
    assert main(["space", "check", DIGITS, NB201]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2 and "unrecognized" not in err, err


# ---- 2. an ARCH.json of another existing space file whose choices fit -----------------------------------------

def _nb201_arch(tmp_path, space: str) -> Path:
    cs = load_compiled(NB201)
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"space": space, "choices": [d.choices[1] for d in cs.decisions]}))
    return path


def test_an_arch_json_of_another_space_file_that_fits_is_warned_about(tmp_path, capsys):
    arch = _nb201_arch(tmp_path, DARTS)  # names darts.space; nasbench201's choice names are darts' too
    assert main(["space", "cost", NB201, "--arch", str(arch)]) == 0
    out, err = capsys.readouterr()
    assert "params" in json.loads(out), out
    assert err.startswith(f"warning: --arch {arch} was encoded for the space file {DARTS}"), err
    assert NB201 in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("recorded", ["same", "copy", "missing"])
def test_an_arch_json_of_this_space_file_is_not_warned_about(tmp_path, capsys, recorded):
    space = NB201
    if recorded == "copy":
        space = str(tmp_path / "elsewhere.space")
        shutil.copyfile(NB201, space)
    elif recorded == "missing":  # another machine's path: one of the same name counts as this space
        space = "/no/such/folder/nasbench201.space"
    arch = _nb201_arch(tmp_path, space)
    assert main(["space", "cost", NB201, "--arch", str(arch)]) == 0
    assert not capsys.readouterr().err


# ---- 3. a null choice -----------------------------------------------------------------------------------------

def test_a_null_choice_is_said_as_json_says_it(tmp_path, capsys):
    cs = load_compiled(NB201)
    choices = [d.choices[0] for d in cs.decisions]
    choices[1] = None
    path = tmp_path / "n.json"
    path.write_text(json.dumps({"choices": choices}))
    assert main(["space", "cost", NB201, "--arch", str(path)]) == 2
    err = capsys.readouterr().err
    assert "got null" in err and "None" not in err, err
