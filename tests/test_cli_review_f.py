"""The command line's top level (``--version``, unknown options before or instead of a verb), the θ epoch line
and the hint of a missing space file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import automl
from automl.cli import main
from automl.commands import export as export_command
from automl.dsl import load_space
from automl.errors import SpaceError, UserError
from automl.search import MultiEpsilonSearch
from automl.search._registry import get_searcher

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"


def _exit(capsys, argv: list[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


# ------------------------------------------------------------------------------------------- F4: top level

def test_version_prints_the_package_version_and_exits_0(capsys):
    code, out, err = _exit(capsys, ["--version"])
    assert code == 0 and out.strip() == f"automl {automl.__version__}" and err == ""


@pytest.mark.parametrize("argv, prog", [(["--bogus"], "automl"), (["-v", "--bogus"], "automl"),
                                        (["space", "--bogus"], "automl space")])
def test_an_unknown_option_without_a_verb_is_named(capsys, argv, prog):
    code, _, err = _exit(capsys, argv)
    assert code == 2 and f"{prog}: error: unrecognized arguments: --bogus" in err, err
    assert "required" not in err and "Traceback" not in err
    assert err.count("error:") == 1


@pytest.mark.parametrize("argv, prog, missing", [
    ([], "automl", "command (run, rank, space, export)"), (["-v"], "automl", "command (run, rank, space, export)"),
    (["space"], "automl space", "a subcommand (show, check, encode, cost, profile)")])
def test_a_missing_verb_is_still_required(capsys, argv, prog, missing):
    code, _, err = _exit(capsys, argv)
    assert code == 2 and f"{prog}: error: the following arguments are required: {missing}" in err, err


def test_a_valid_verb_still_runs(monkeypatch):
    seen = {}
    monkeypatch.setattr("automl.commands.space.main", lambda args: seen.setdefault("cmd", args.space_command) and 0)
    assert main(["space", "check", str(DIGITS)]) == 0 and seen["cmd"] == "check"


# ------------------------------------------------------------------------------------- F8: the θ epoch line

@pytest.mark.parametrize("name", ["importance_sampling", "separate", "simultaneous"])
def test_the_theta_note_rounds_theta_like_epsilon(name):
    # uniform θ over 3 and 7 choices: per decision max θ is 1/3 and 1/7, their mean 5/21 = 0.238095...
    costs = torch.tensor([[1.0, 2.0, 3.0, 0, 0, 0, 0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]])
    engine = MultiEpsilonSearch([3, 7], costs, budgets=[None, 8.0], theta_min=0.0)
    note = get_searcher(name).epoch_note(engine)
    assert note == " max θ [0.238, 0.238] ε [0, 0]", note


def test_the_theta_note_without_budgets_has_no_long_numbers():
    engine = MultiEpsilonSearch([2, 3, 6], None, epsilons=[0.0, 1.0, 2.0], theta_min=0.0)
    note = get_searcher("importance_sampling").epoch_note(engine)
    assert note.startswith(" max θ [") and "ε" not in note
    numbers = re.findall(r"\d+\.\d+", note)
    assert len(numbers) == 3 and all(len(n.split(".")[1]) <= 3 for n in numbers), note
    # (1/2 + 1/3 + 1/6) / 3 = 1/3
    assert [float(n) for n in numbers] == [0.333] * 3


# ------------------------------------------------------------------------ F1: where the published spaces are

def test_a_missing_space_file_does_not_say_spaces_ship_with_the_package(tmp_path, capsys):
    missing = tmp_path / "nope.space"
    with pytest.raises(SpaceError) as info:
        load_space(missing)
    text = str(info.value)
    assert "no such file" in text and "ship" not in text
    assert "automl repository" in text and "spaces/digits.space" in text
    assert main(["space", "show", str(missing)]) == 2
    assert "automl repository" in capsys.readouterr().err


def test_export_of_a_folder_points_at_the_repository_spaces(tmp_path):
    args = type("Args", (), dict(quantize=None, recipe=None, space=str(tmp_path)))()
    with pytest.raises(UserError) as info:
        export_command.main(args)
    text = str(info.value)
    assert "is a folder, not a space file" in text and "automl repository" in text, text
