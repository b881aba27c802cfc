"""Review BZ: the CLI's own messages under a RANK spelled otherwise than "0", paths the shell did not expand
(``--out=~/runs/x``, ``'$HOME/x'``), and argparse's usage errors under torchrun."""

from __future__ import annotations

import errno
import os
from functools import partial
from pathlib import Path

import pytest

from automl.cli import main
from automl.commands import space as space_command
from helpers import cli_err

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
DIGITS = str(ROOT / "spaces" / "digits.space")
LAUNCH = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
          "SLURM_STEP_NUM_TASKS", "SLURM_PROCID")


def _rank(monkeypatch, rank: str | None) -> None:
    for k in LAUNCH:
        monkeypatch.delenv(k, raising=False)
    if rank is not None:
        monkeypatch.setenv("RANK", rank)


_cli = partial(cli_err, usage_exit=True)  # (code, stderr); argparse's exits too


# ------------------------------------------------------------------ which process prints: RANK read as a number

SPEAKS = ["", " ", "00", " 0", "0 ", "abc", "-1"]  # rank 0 (blank or spelled otherwise), or no rank torchrun sets


@pytest.mark.parametrize("rank", SPEAKS)
def test_an_empty_path_is_said_whatever_the_spelling_of_rank_0(monkeypatch, capsys, rank):
    """``RANK=`` (``RANK=$SLURM_PROCID`` outside Slurm), ``RANK=00``: the CLI compared the text with "0", so
    ``automl run ""`` exited 2 with nothing printed."""
    _rank(monkeypatch, rank)
    code, err = _cli(capsys, "run", "")
    assert code == 2 and err.count("RECIPE is empty") == 1, err


@pytest.mark.parametrize("rank", SPEAKS)
def test_every_command_says_its_mistake_whatever_the_spelling_of_rank_0(monkeypatch, capsys, tmp_path, rank):
    """Every command but ``run`` (whose launch check prints for itself) exited 2 unsaid."""
    _rank(monkeypatch, rank)
    code, err = _cli(capsys, "space", "check", tmp_path / "missing.space")
    assert code == 2 and err.count("missing.space: no such file") == 1, err


@pytest.mark.parametrize("rank", SPEAKS)
def test_a_full_disk_is_said_whatever_the_spelling_of_rank_0(monkeypatch, capsys, rank):
    """``_os_error``'s message (a full disk, a path refused) went unsaid for RANK spelled otherwise than "0"."""
    _rank(monkeypatch, rank)

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "out/table.json")

    monkeypatch.setattr(space_command, "main", full)
    code, err = _cli(capsys, "space", "check", DIGITS)
    assert code == 2 and err.count("cannot write out/table.json (No space left on device)") == 1, err


@pytest.mark.parametrize("rank", ["1", " 3", "07"])
def test_the_other_ranks_stay_silent(monkeypatch, capsys, tmp_path, rank):
    """Under torchrun rank 0 alone prints what every rank stops on; still exit 2 everywhere."""
    _rank(monkeypatch, rank)
    assert _cli(capsys, "space", "check", tmp_path / "missing.space") == (2, "")
    assert _cli(capsys, "run", "") == (2, "")


# ------------------------------------------------------------------ argparse's usage errors: rank 0 alone

@pytest.mark.parametrize("argv", [["--bogus"], ["rank"], ["rank", "r", "--archs", "x"],
                                  ["export", "s", "--arch", "a", "--out", "o", "--opset", "abc"],
                                  ["run", "r", "--out", "a", "--out", "b"]])
def test_a_usage_error_is_printed_by_rank_0_only(monkeypatch, capsys, argv):
    """``torchrun --nproc_per_node=8 -m automl run R --ot x`` printed the usage message eight times."""
    _rank(monkeypatch, "1")
    assert _cli(capsys, *argv) == (2, "")
    _rank(monkeypatch, "")
    code, err = _cli(capsys, *argv)
    assert code == 2 and err.startswith("usage: automl") and err.count(": error: ") == 1, err


# ------------------------------------------------------------------ ~ and $VAR the shell left in a path

def _home(monkeypatch, tmp_path) -> tuple[Path, Path]:
    """HOME in tmp_path/home, the current folder tmp_path/cwd."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    _rank(monkeypatch, None)
    return home, cwd


@pytest.mark.parametrize("argv,attr", [
    (["run", "~/r.yaml", "--out=~/runs/x", "--supernet=~/runs/old"], ("recipe", "out", "supernet")),
    (["rank", "~/runs/x"], ("run_dir",)),
    (["export", "~/s.space", "--arch=~/a.json", "--out=~/exp", "--weights=~/w.pt", "--recipe=~/r.yaml"],
     ("space", "arch", "out", "weights", "recipe")),
    (["space", "encode", "~/s.space", "--arch-def=~/m.json", "--out=~/arch.json"], ("file", "arch_def", "out")),
    (["space", "cost", "~/s.space", "--arch=~/a.json", "--cost-table=~/t.json"], ("file", "arch", "cost_table")),
    (["space", "profile", "~/s.space", "--out=~/t.json"], ("file", "out")),
])
def test_a_leading_tilde_is_the_home_folder_in_every_path_argument(monkeypatch, tmp_path, argv, attr):
    """bash leaves ``~`` in ``--out=~/runs/x`` (and in quotes): the run created ./~/runs/x; a recipe's paths
    expand it, the command's arguments now too."""
    home, _ = _home(monkeypatch, tmp_path)
    seen = {}
    module = {"run": "run", "rank": "rank", "export": "export", "space": "space"}[argv[0]]
    commands = __import__(f"automl.commands.{module}", fromlist=["main"])
    monkeypatch.setattr(commands, "main", lambda args: seen.update(vars(args)) or 0)
    assert main(argv) == 0
    for a in attr:
        assert seen[a].startswith(str(home) + os.sep), (a, seen[a])


def test_run_out_with_a_tilde_is_under_home_not_a_folder_named_tilde(monkeypatch, tmp_path, capsys):
    """The whole run command: ``--out=~/afile`` is the file in HOME (a file, not a folder: exit 2), and no
    ./~ folder is created."""
    home, cwd = _home(monkeypatch, tmp_path)
    (home / "afile").write_text("x")
    code, err = _cli(capsys, "run", QUICK, "device=cpu", "--out=~/afile")
    assert code == 2 and "is a file, not a folder" in err and str(home / "afile") in err, err
    assert list(cwd.iterdir()) == []


def test_rank_dir_with_a_tilde_is_looked_for_under_home(monkeypatch, tmp_path, capsys):
    home, _ = _home(monkeypatch, tmp_path)
    code, err = _cli(capsys, "rank", "~/runs/x")
    assert code == 2 and f"{home / 'runs' / 'x'} does not exist" in err, err


@pytest.mark.parametrize("argv,label", [
    (["run", QUICK, "search.lamm=3", "--out", "$HOME/runs/x"], "--out '$HOME/runs/x' holds $HOME"),
    (["run", QUICK, "search.lamm=3", "--out", "${RUNS}/x"], "--out '${RUNS}/x' holds ${RUNS}"),
    (["run", "$HOME/r.yaml"], "automl run: RECIPE '$HOME/r.yaml' holds $HOME"),
    (["export", DIGITS, "--arch", "a.json", "--out", "$OUT/x"], "--out '$OUT/x' holds $OUT"),
    (["space", "profile", DIGITS, "--out", "$HOME/t.json"], "--out '$HOME/t.json' holds $HOME"),
    (["rank", "$RUN"], "automl rank: RUN_DIR '$RUN' holds $RUN"),
])
def test_a_shell_variable_left_in_a_path_is_one_message(monkeypatch, tmp_path, capsys, argv, label):
    """Single quotes (or a file of flags) keep ``$HOME`` as written: a run created a folder named $HOME."""
    _, cwd = _home(monkeypatch, tmp_path)
    code, err = _cli(capsys, *argv)
    assert code == 2 and err.count(label) == 1 and "did not expand" in err, err
    assert len(err.strip().splitlines()) == 1 and list(cwd.iterdir()) == [], err


def test_a_path_with_a_dollar_that_exists_is_taken_as_it_is(monkeypatch, tmp_path, capsys):
    _, cwd = _home(monkeypatch, tmp_path)
    (cwd / "$odd.space").write_text((Path(DIGITS)).read_text())
    code, err = _cli(capsys, "space", "check", "$odd.space")
    assert code == 0 and "did not expand" not in err, err


def test_a_tilde_of_no_user_is_one_message(monkeypatch, tmp_path, capsys):
    _home(monkeypatch, tmp_path)
    code, err = _cli(capsys, "space", "check", "~no_such_user_bz/a.space")
    assert code == 2 and "~no_such_user_bz is no user's home folder" in err, err


# ------------------------------------------------------------------ `--` before overrides written after an option

def test_a_double_dash_before_overrides_after_an_option_ends_the_options(tmp_path, monkeypatch, capsys):
    """``automl run R --out D -- a.b=1`` said "unrecognized arguments: --" (``automl run R -- a.b=1`` worked)."""
    _rank(monkeypatch, None)
    code, err = _cli(capsys, "run", QUICK, "--out", tmp_path / "out", "--", "search.lamm=3")
    assert code == 2 and "unknown key search.lamm" in err and "unrecognized" not in err, err
    code, err = _cli(capsys, "run", QUICK, "--out", tmp_path / "out", "--", "--bogus")
    assert code == 2 and "unrecognized arguments: --bogus;" in err, err


# ------------------------------------------------------------------ automl rank under torchrun

@pytest.mark.parametrize("rank,says", [("0", True), ("1", False)])
def test_rank_under_torchrun_is_one_message(tmp_path, monkeypatch, capsys, rank, says):
    """``torchrun --nproc_per_node=4 -m automl rank RUN`` started four rankings of one process each: all but one
    stopped on the run folder's lock, unsaid (the CLI prints rank 0's errors only)."""
    _rank(monkeypatch, rank)
    for key, value in (("WORLD_SIZE", "4"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")):
        monkeypatch.setenv(key, value)  # as torchrun sets them
    code, err = _cli(capsys, "rank", tmp_path)
    assert code == 2 and err.count("automl rank computes in one process") == (1 if says else 0), err
    assert "WORLD_SIZE=4" in err or not says
