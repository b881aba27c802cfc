"""Review PF: the commands automl prints for pasting name their folders and files by the absolute path, quoted for the
shell, as the "Continue with" command does: pasted from another folder (a job's log read later), they name the same
files. Here: ``automl rank``'s lock refusal, a failed write's ``rm -r``, ``--supernet``'s ``automl run`` advice, the
cost table's ``automl space profile`` commands, and the ``automl space encode`` / ``space cost`` / ``export`` / ``jq``
commands of an architecture file of the wrong kind. Paths only named in prose stay as typed."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from automl.cli import build_parser
from automl.compile import load_compiled
from automl.errors import UserError
from automl.pipeline.context import how_to_go_on
from automl.pipeline.reuse import fingerprint_digest, load_supernet
from automl.pipeline.state import CKPT_FORMAT
from automl.profile import TABLE_FORMAT, read_cost_table
from automl.recipe import load_recipe
from automl.train.checkpoint import CheckpointStore
from helpers import DIGITS_SPACE, QUICK, ROOT, cli_err
from test_ranking import TINY

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared
FAST = [*TINY, "threads=1", "device=cpu"]
FP = {"seed": 0}  # a weights fingerprint


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    """Two folders: where the command runs, and another one to paste its advice in."""
    here, elsewhere = tmp_path / "cwd one", tmp_path / "cwd two"
    here.mkdir()
    elsewhere.mkdir()
    return here, elsewhere


def _words_after(text: str, before: str, end: str = ")") -> list[str]:
    """The shell words that follow ``before`` in ``text`` up to ``end``, read back as a shell reads them."""
    assert before in text, text
    return shlex.split(text.split(before, 1)[1].split(end, 1)[0])


def _backticked(text: str) -> list[list[str]]:
    """Each `command` of ``text``, as a shell splits it."""
    found = re.findall(r"`([^`]+)`", text)
    assert found, text
    return [shlex.split(command) for command in found]


def _space_here(here: Path) -> str:
    """The digits space copied to ``here/my spaces/digits.space``; its path relative to ``here``."""
    (here / "my spaces").mkdir()
    shutil.copy(DIGITS_SPACE, here / "my spaces" / "digits.space")
    return "my spaces/digits.space"


# ---- 1. automl rank on a folder a run holds: "then run automl rank OUT again" -----------------------------------

def test_automl_rank_of_a_held_folder_given_relative_names_it_absolute(tmp_path, monkeypatch, capsys):
    """Seen: ``then run automl rank '../my run' again`` (as typed): pasted later from another folder it ranks
    another folder, or none."""
    here, elsewhere = _folders(tmp_path)
    out = tmp_path / "my run"
    out.mkdir()
    load_recipe(QUICK, FAST).dump_resolved(out / "recipe.resolved.yaml")
    script = ("import sys, time\nfrom automl._lock import RunLock; RunLock(sys.argv[1]).acquire(); "
              "print('held', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    monkeypatch.chdir(here)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, err = cli_err(capsys, "rank", "../my run")
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and "then run automl rank " in err, err
    argv = _words_after(err, "then run automl rank ", " again")
    assert len(argv) == 1 and Path(argv[0]).is_absolute() and Path(argv[0]) == out, err
    monkeypatch.chdir(elsewhere)  # pasted in another folder: the same run folder
    args = build_parser().parse_args(["rank", *argv])
    assert (Path(args.run_dir) / "recipe.resolved.yaml").is_file()


# ---- 2. a write that failed before the first checkpoint: rm -r OUT ------------------------------------------------

@pytest.mark.parametrize("name", ["my runs/first", "-x", "runs/plain"])
def test_the_folder_to_delete_is_named_absolute_and_deletes_it_pasted_elsewhere(tmp_path, monkeypatch, name):
    here, elsewhere = _folders(tmp_path)
    (here / name).mkdir(parents=True)
    (elsewhere / name).mkdir(parents=True)  # the same relative name there: left alone
    monkeypatch.chdir(here)
    advice = how_to_go_on(False, Path(name), "automl run R --out X --resume")
    assert "delete the folder (rm -r " in advice and ") and run the command again" in advice, advice
    named = _words_after(advice, "(rm -r ")
    assert len(named) == 1 and Path(named[0]).is_absolute() and Path(named[0]) == here / name, advice
    command = "rm -r " + advice.split("(rm -r ", 1)[1].split(") and run", 1)[0]
    subprocess.run(["bash", "-c", command], cwd=elsewhere, check=True)
    assert not (here / name).exists() and (elsewhere / name).is_dir()


# ---- 3. --supernet of a run that cannot give its supernet: automl run ... ----------------------------------------

def _refused(source: str) -> str:
    with pytest.raises(UserError) as e:
        load_supernet(Path(source), FP, False, None)
    return str(e.value)


def test_supernet_advice_names_the_source_run_absolute(tmp_path, monkeypatch):
    here, _ = _folders(tmp_path)
    monkeypatch.chdir(here)
    source = tmp_path / "a run"
    source.mkdir()
    (source / "recipe.resolved.yaml").write_text("seed: 0\n")
    # stopped before its first checkpoint: run it again into the same folder
    text = _refused("../a run")
    args = build_parser().parse_args(["run", *_words_after(text, "its supernet (automl run ", ": it starts")])
    assert Path(args.out).is_absolute() and Path(args.out) == source, text
    assert Path(args.recipe) == source / "recipe.resolved.yaml", text
    assert text.startswith("--supernet ../a run: "), text  # named in prose: as given
    # finished, its checkpoints removed: the search again from its recipe.resolved.yaml
    (source / "results.json").write_text("{}")
    text = _refused("../a run")
    recipe, *rest = _words_after(text, "run the search again (automl run ")
    assert Path(recipe) == source / "recipe.resolved.yaml" and rest == ["--out", "NEW_DIR"], text
    # a weight phase that has not finished: --resume it
    (source / "results.json").unlink()
    CheckpointStore(source / "checkpoints").save({
        "format": CKPT_FORMAT, "recipe_sha256": "x", "stage": 0, "supernet": None, "weights_fingerprint": FP,
        "supernet_origin": {"from": None, "fingerprint": fingerprint_digest(FP), "forced": False, "differs": []}})
    text = _refused("../a run")
    assert "its weight phase has not finished" in text, text
    args = build_parser().parse_args(["run", *_words_after(text, "finish it first (automl run ")])
    assert Path(args.out).is_absolute() and Path(args.out) == source and args.resume, text


# ---- 4. a cost table that is missing or no table: automl space profile ... ---------------------------------------

def _profile_commands(text: str) -> list[list[str]]:
    return [argv for argv in _backticked(text) if argv[:3] == ["automl", "space", "profile"]]


def test_the_profile_commands_name_the_space_and_table_absolute(tmp_path, monkeypatch):
    here, _ = _folders(tmp_path)
    monkeypatch.chdir(here)
    space = _space_here(here)
    cs = load_compiled(space)
    (here / "my tables").mkdir()

    def refusal(table: str) -> str:
        with pytest.raises(UserError) as e:
            read_cost_table(table, cs)
        return str(e.value)

    text = refusal("my tables/latency.json")  # no such file
    (argv,) = _profile_commands(text)
    assert argv[3:] == [str(here / space), "--out", str(here / "my tables" / "latency.json")], text
    (here / "my tables" / "latency.json").write_text("{}")  # no table: a new file beside it
    (argv,) = _profile_commands(refusal("my tables/latency.json"))
    assert argv[3:] == [str(here / space), "--out", str(here / "my tables" / "latency-new.json")], argv
    # an interrupted profile's partial file: run it again with --out THE TABLE
    (here / "my tables" / "lat.json.partial").write_text(json.dumps({"format": "automl-profile-partial"}))
    text = refusal("my tables/lat.json.partial")
    assert _words_after(text, "run that profile again with --out ", " (it goes on")[0] == str(
        here / "my tables" / "lat.json"), text
    assert "and give my tables/lat.json" in text, text  # named in prose: as given
    # a table without "fixed": re-profile the space
    table = {"format": TABLE_FORMAT, "version": 1, "metric": "latency", "unit": "ms", "decisions": []}
    (here / "my tables" / "nofixed.json").write_text(json.dumps(table))
    (argv,) = _profile_commands(refusal("my tables/nofixed.json"))
    assert argv[3:] == [str(here / space)], argv
    # a table of other decisions, of this space: profile it again into the same file
    table.update(fixed=0.0, decisions=[{"name": "renamed", "choices": {"a": 1.0}}])
    (here / "my tables" / "other.json").write_text(json.dumps(table))
    (argv,) = _profile_commands(refusal("my tables/other.json"))
    assert argv[3:] == [str(here / space), "--out", str(here / "my tables" / "other.json")], argv


# ---- 5. an architecture file of the wrong kind: automl space encode / space cost / export / jq -------------------

def test_an_arch_def_given_as_arch_names_the_encode_command_absolute(tmp_path, monkeypatch, capsys):
    here, _ = _folders(tmp_path)
    monkeypatch.chdir(here)
    space = _space_here(here)
    (here / "my archs").mkdir()
    (here / "my archs" / "def.json").write_text(json.dumps([["ds_r1_k3_s1_c16"]]))
    code, err = cli_err(capsys, "space", "cost", space, "--arch", "my archs/def.json")
    assert code == 2 and "encode it first" in err, err
    (argv,) = _backticked(err)
    assert argv == ["automl", "space", "encode", str(here / space), "--arch-def", str(here / "my archs" / "def.json"),
                    "--out", "arch.json"], err
    assert "--arch my archs/def.json is a timm arch_def" in err, err  # named in prose: as given


def test_encoded_choices_given_as_arch_def_name_the_cost_and_export_commands_absolute(tmp_path, monkeypatch, capsys):
    here, _ = _folders(tmp_path)
    monkeypatch.chdir(here)
    space = _space_here(here)
    choices = [d.choices[0] for d in load_compiled(space).decisions]
    (here / "my archs").mkdir()
    (here / "my archs" / "arch.json").write_text(json.dumps({"choices": choices}))
    code, err = cli_err(capsys, "space", "encode", space, "--arch-def", "my archs/arch.json")
    assert code == 2 and "give it as --arch instead" in err, err
    cost, export = _backticked(err)
    arch = str(here / "my archs" / "arch.json")
    assert cost == ["automl", "space", "cost", str(here / space), "--arch", arch], err
    assert export == ["automl", "export", str(here / space), "--arch", arch, "--out", "DIR"], err


def test_a_whole_results_json_names_the_jq_command_absolute_and_it_works_pasted_elsewhere(tmp_path, monkeypatch,
                                                                                         capsys):
    here, elsewhere = _folders(tmp_path)
    monkeypatch.chdir(here)
    space = _space_here(here)
    decisions = load_compiled(space).decisions
    first, second = ({"choices": [d.choices[i % len(d.choices)] for d in decisions]} for i in (0, 1))
    (here / "my run").mkdir()
    (here / "my run" / "results.json").write_text(json.dumps({"architectures": [first, second]}))
    code, err = cli_err(capsys, "space", "cost", space, "--arch", "my run/results.json")
    assert code == 2 and "2 architectures" in err, err
    command = "jq " + err.split("(jq ", 1)[1].split(" > arch.json)", 1)[0] + " > arch.json"
    assert shlex.split(command)[2] == str(here / "my run" / "results.json"), err
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed: the command's words are checked, not run")
    subprocess.run(["bash", "-c", command], cwd=elsewhere, check=True)
    assert json.loads((elsewhere / "arch.json").read_text()) == first


def test_paths_passed_absolute_are_named_as_they_are(tmp_path, monkeypatch):
    """An absolute path the user gave is printed unchanged (nothing dropped or added but the shell's quotes)."""
    here, _ = _folders(tmp_path)
    monkeypatch.chdir(here)
    out = tmp_path / "abs run"
    advice = how_to_go_on(False, out, "automl run R --out X --resume")
    assert f"(rm -r {shlex.quote(str(out))})" in advice, advice
    assert os.path.isabs(_words_after(advice, "(rm -r ")[0])
