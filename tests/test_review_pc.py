"""Review PC: the commands automl prints for pasting (``rm -r``, ``--supernet``, ``automl run ... --resume``,
``automl rank``) name the run folder by its absolute path, as the "Continue with" command does: pasted from another
folder (a job's log read later) they name the same folder. A stopped ``automl rank`` records its ``--seeds`` and
``--truth`` in ``ranking_partial``, so a ranking that replaces it gives that ranking's whole command."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import automl.pipeline.rank as rank
from automl.cli import build_parser, main
from automl.errors import UserError
from automl.pipeline import Run
from automl.pipeline.results import PARTIAL
from automl.recipe import load_recipe
from helpers import QUICK, cli_err, copy_of, stopped_rank
from test_ranking import TINY

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared
FAST = [*TINY, "threads=1", "device=cpu"]
HINT = "(to search again on its trained supernet: a new --out with --supernet "


def _word_after(text: str, before: str) -> str:
    """The one shell word that follows ``before`` in ``text`` (up to ``)``), read back as a shell reads it."""
    assert before in text, text
    words = shlex.split(text.split(before, 1)[1].split(")", 1)[0])
    assert words, text
    return words[0]


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    """Two folders: where the command runs, and another one to paste its advice in."""
    here, elsewhere = tmp_path / "cwd one", tmp_path / "cwd two"
    here.mkdir()
    elsewhere.mkdir()
    return here, elsewhere


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished run (a trained supernet, a ranking section)."""
    out = tmp_path_factory.mktemp("pc") / "run"
    assert main(["run", QUICK, *FAST, "--out", str(out)]) == 0
    return out


# ---- 1. rm -r: the folder named from the root ------------------------------------------------------------------

@pytest.mark.parametrize("resume", [False, True])
def test_the_rm_advice_names_the_run_folder_absolute_and_works_pasted_elsewhere(tmp_path, monkeypatch, capsys,
                                                                                resume):
    """Seen: ``delete it (rm -r 'runs/my run')`` for ``--out 'runs/my run'``: pasted in another folder, it deletes
    nothing (or another folder of that name)."""
    here, elsewhere = _folders(tmp_path)
    out = here / "runs" / "my run"
    out.mkdir(parents=True)
    (out / "metrics.jsonl").write_text("{}\n")  # a run wrote here, and stopped before its first checkpoint
    (out / "notes.txt").write_text("mine\n")
    monkeypatch.chdir(here)
    code, err = cli_err(capsys, "run", QUICK, *FAST, "--out", "runs/my run", *(["--resume"] if resume else []))
    assert code == 2 and "(rm -r " in err, err
    named = _word_after(err, "(rm -r ")
    assert Path(named) == out and Path(named).is_absolute(), err
    command = "rm -r " + err.split("(rm -r ", 1)[1].split(")", 1)[0]
    (elsewhere / "runs" / "my run").mkdir(parents=True)  # the same relative name there: left alone
    subprocess.run(["bash", "-c", command], cwd=elsewhere, check=True)
    assert not out.exists() and (elsewhere / "runs" / "my run").is_dir()


# ---- 2. --supernet hints -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("resume", [False, True])
def test_the_supernet_hint_names_the_run_folder_absolute(finished, tmp_path, monkeypatch, capsys, resume):
    """Another recipe into a finished run's folder, given relative (a new run, or a refused --resume): the hint's
    ``--supernet OUT`` names it from the root."""
    here, _ = _folders(tmp_path)
    monkeypatch.chdir(here)
    relative = os.path.relpath(finished, here)
    assert relative.startswith("..")
    code, err = cli_err(capsys, "run", QUICK, *FAST, "seed=3", "--out", relative, *(["--resume"] if resume else []))
    assert code == 2, err
    named = _word_after(err, HINT)
    assert Path(named).is_absolute() and Path(named).resolve() == finished.resolve(), err


def test_a_held_run_folder_names_the_rank_command_to_run_again_absolute(finished, tmp_path, monkeypatch):
    """``Run.rank()`` (a script's automl rank) of a folder a command holds, given relative: "then run automl rank
    OUT again" names OUT from the root. (``automl rank`` on the command line takes the lock itself, before:
    automl/commands/rank.py.)"""
    here, _ = _folders(tmp_path)
    out = copy_of(finished, tmp_path)
    monkeypatch.chdir(here)
    run = Run(load_recipe(out / "recipe.resolved.yaml"), os.path.relpath(out, here), tty=False)
    script = ("import sys, time\nfrom automl._lock import RunLock; RunLock(sys.argv[1]).acquire(); "
              "print('held', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[1])
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError) as e:
            run.rank()
    finally:
        holder.kill()
        holder.wait()
    assert "then run automl rank " in str(e.value), e.value
    assert Path(_word_after(str(e.value), "then run automl rank ")) == out, e.value


# ---- 3. automl rank's advice: automl run ... --resume, automl run RESOLVED --out NEW_DIR --------------------------

def test_rank_of_a_folder_without_a_checkpoint_names_it_absolute(tmp_path, monkeypatch, capsys):
    here, elsewhere = _folders(tmp_path)
    out = tmp_path / "my run"
    out.mkdir()
    load_recipe(QUICK, FAST).dump_resolved(out / "recipe.resolved.yaml")
    monkeypatch.chdir(here)
    code, err = cli_err(capsys, "rank", "../my run")
    assert code == 2 and "finish it first (automl run " in err, err
    assert Path(_word_after(err, "finish it first (automl run ")) == out / "recipe.resolved.yaml", err
    assert Path(_word_after(err, " --out ")) == out, err
    # a damaged index beside results.json: run the search again from the resolved recipe
    (out / "results.json").write_text("{}")
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "checkpoints.json").write_text("not json")
    code, err = cli_err(capsys, "rank", "../my run")
    assert code == 2 and "(automl run " in err, err
    command = "automl run " + err.split("(automl run ", 1)[1].split(")", 1)[0]
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert Path(args.recipe) == out / "recipe.resolved.yaml" and args.out == "NEW_DIR", command
    monkeypatch.chdir(elsewhere)
    assert load_recipe(args.recipe).seed == load_recipe(QUICK, FAST).seed  # it reads from another folder too


def test_rank_of_an_unfinished_run_names_its_folder_absolute(finished, tmp_path, monkeypatch, capsys):
    """A run whose checkpoint is of before its ranking: ``finish it first (automl run RECIPE --out OUT --resume``
    (seen: OUT as typed, not even quoted)."""
    here, _ = _folders(tmp_path)
    out = tmp_path / "unfinished run"
    copy_of(finished, tmp_path).rename(out)
    real = rank.RunState.from_checkpoint

    def earlier(ckpt, where):  # the checkpoint says: its first stage is next
        state = real(ckpt, where)
        state.stage = 0
        return state

    monkeypatch.setattr(rank.RunState, "from_checkpoint", earlier)
    monkeypatch.chdir(here)
    code, err = cli_err(capsys, "rank", "../unfinished run")
    assert code == 2 and "the run has not finished" in err, err
    assert Path(_word_after(err, "finish it first (automl run ")) == out / "recipe.resolved.yaml", err
    assert Path(_word_after(err, " --out ")) == out, err


# ---- 4. a ranking that replaces a stopped one gives that one's whole command -------------------------------------


def _finish_command(said: str) -> str:
    found = re.search(r"finish it first by running its command again \((automl rank .*?)\) and copy results.json",
                      said)
    assert found, said
    return found.group(1)


def test_a_replaced_stopped_ranking_is_named_by_its_whole_command(finished, tmp_path, monkeypatch, capsys):
    """``--archs 4 --retrain-epochs 2 --seeds 2 --truth loss`` stopped after 2 retrainings, then ``--archs 3`` from
    another folder: the notice gives the first one's command, its folder absolute, --seeds and --truth included."""
    here, elsewhere = _folders(tmp_path)
    out = copy_of(finished, tmp_path)
    monkeypatch.chdir(here)
    relative = os.path.relpath(out, here)
    flags = ["--archs", "4", "--retrain-epochs", "2", "--seeds", "2", "--truth", "loss"]
    said, code = stopped_rank(relative, monkeypatch, capsys, 2, *flags)
    assert code == 128 + signal.SIGTERM, said
    partial = json.loads((out / "results.json").read_text())[PARTIAL]
    assert (partial["seeds"], partial["truth"]) == (2, "loss"), partial
    monkeypatch.chdir(elsewhere)
    said, code = stopped_rank(str(out), monkeypatch, capsys, 1, "--archs", "3")
    assert code == 128 + signal.SIGTERM, said
    command = _finish_command(said)
    assert "with the --seeds it had" not in command, said
    argv = shlex.split(command)
    args = build_parser().parse_args(argv[1:])
    assert Path(args.run_dir) == out, command
    assert argv[3:] == flags, command  # the stopped ranking's own flags, all of them
    assert (args.archs, args.retrain_epochs, args.seeds, args.truth) == (4, 2, 2, "loss")


def test_an_older_record_without_seeds_keeps_its_words_with_the_folder_absolute(finished, tmp_path, monkeypatch,
                                                                               capsys):
    """A ``ranking_partial`` of an older automl (no seeds, no truth): the notice says what it holds (the folder from
    the root) and that the stop message gives the rest."""
    here, _ = _folders(tmp_path)
    out = copy_of(finished, tmp_path)
    monkeypatch.chdir(here)
    relative = os.path.relpath(out, here)
    _, code = stopped_rank(relative, monkeypatch, capsys, 2, "--archs", "4", "--retrain-epochs", "2")
    assert code == 128 + signal.SIGTERM
    results = json.loads((out / "results.json").read_text())
    results[PARTIAL] = {k: v for k, v in results[PARTIAL].items() if k not in ("seeds", "truth")}
    (out / "results.json").write_text(json.dumps(results))
    said, code = stopped_rank(relative, monkeypatch, capsys, 1, "--archs", "3")
    assert code == 128 + signal.SIGTERM, said
    command = _finish_command(said)
    assert command.endswith(" with the --seeds it had: its stop message gives the whole command"), said
    argv = shlex.split(command.split(" with the --seeds", 1)[0])
    assert argv[:3] == ["automl", "rank", str(out)] and argv[3:] == ["--archs", "4", "--retrain-epochs", "2"], said
