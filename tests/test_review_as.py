"""Review AS: the checks of a run's folders, made by ``Run`` so that the Python API gets them as ``automl run``
does. A new run's folder inside an absolute export.dir (or export.dir inside the run's own files) is refused by
both; a loop of symbolic links in either path is a user error (was Python's RuntimeError); ``--supernet`` of a
folder that does not exist, of a file, or of the run's own --out says so (was "no checkpoint there (looked for
DIR/checkpoints/checkpoints.json)", and for the run's own folder "pass --resume")."""

from __future__ import annotations

from pathlib import Path

import pytest

from automl.cli import main
from automl.errors import UserError
from automl.pipeline import Run
from automl.pipeline.reuse import load_supernet
from automl.pipeline.setup import check_out_and_export
from automl.recipe import load_recipe

from test_review_an import FAST, QUICK, cli

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def api_error(overrides: list[str], out: Path, resume: bool = False) -> str:
    """The user error ``Run(recipe, out).execute()`` raises (it must raise one)."""
    with pytest.raises(UserError) as e:
        Run(load_recipe(QUICK, FAST + overrides), out, resume=resume).execute()
    return str(e.value)


# ---- 1. --out and an absolute export.dir: the CLI and the Python API -----------------------------------------

@pytest.mark.parametrize("out, export, named", [
    ("E", "E", "is export.dir itself"),
    ("E/run", "E", "is inside export.dir"),
    ("R", "R/checkpoints", "the checkpoints of the run in --out"),
])
def test_the_python_api_refuses_out_and_export_dir_that_overlap_as_the_cli_does(tmp_path, monkeypatch, capsys,
                                                                                out, export, named):
    monkeypatch.chdir(tmp_path)
    overrides = [f"export.dir={tmp_path / export}"]
    text = api_error(overrides, tmp_path / out)
    assert named in text and "\n" not in text, text
    assert not (tmp_path / out).exists() and not (tmp_path / export).exists()  # refused before anything is written
    code, err = cli(capsys, "run", QUICK, *FAST, *overrides, "--out", tmp_path / out)
    assert code == 2 and err == f"error: {text}\n", err
    assert not (tmp_path / out).exists()


def test_a_resume_is_not_refused_by_the_overlap_check(tmp_path):
    """A run started before the check resumes where it is: the API's resume gets the resume's own message."""
    text = api_error([f"export.dir={tmp_path / 'E'}"], tmp_path / "E" / "run", resume=True)
    assert text.startswith("--resume: no checkpoint in "), text


def test_out_and_export_dir_apart_start_the_python_api_run(tmp_path):
    """Apart, the check passes and the run goes on to its next check (here: a space argument it refuses)."""
    text = api_error([f"export.dir={tmp_path / 'E'}", "space_args.nope=1"], tmp_path / "R")
    assert "export.dir" not in text and "nope" in text, text


def _loop(tmp_path: Path) -> Path:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    return tmp_path / "a"


def test_a_loop_of_links_in_out_or_export_dir_is_a_user_error(tmp_path, monkeypatch, capsys):
    loop = _loop(tmp_path)
    with pytest.raises(UserError, match="--out .*: a loop of symbolic links"):
        check_out_and_export(load_recipe(QUICK, FAST + [f"export.dir={tmp_path / 'E'}"]), loop / "run")
    monkeypatch.chdir(tmp_path)
    code, err = cli(capsys, "run", QUICK, *FAST, f"export.dir={loop}", "--out", "o")
    assert code == 2 and f"export.dir {loop}: a loop of symbolic links" in err, err
    assert not (tmp_path / "o").exists()


# ---- 2. --supernet of a folder that is not there, of a file, of the run's own folder ---------------------------

def test_supernet_of_a_folder_that_does_not_exist_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = cli(capsys, "run", QUICK, *FAST, "--supernet", "gone", "--out", "o")
    assert code == 2 and f"{tmp_path / 'gone'} does not exist" in err and "looked for" not in err, err
    assert not (tmp_path / "o").exists()
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    code, err = cli(capsys, "run", QUICK, *FAST, "--supernet", tmp_path / "dangling", "--out", "o")
    assert code == 2 and "does not exist" in err, err


def test_supernet_of_a_file_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").write_text("")
    code, err = cli(capsys, "run", QUICK, *FAST, "--supernet", "f", "--out", "o")
    assert code == 2 and f"{tmp_path / 'f'} is a file, not a run's folder" in err, err


@pytest.mark.parametrize("make", ["nothing", "file"])
def test_a_resumed_runs_supernet_folder_that_is_gone_is_said_so(tmp_path, make):
    """A resumed run loads its supernet in its weights stage (load_supernet), where the new run's check is not
    made: a folder since removed, or replaced by a file, is said so there too."""
    source = tmp_path / "src"
    if make == "file":
        source.write_text("")
    with pytest.raises(UserError) as e:
        load_supernet(source, {}, False, None)
    what = "does not exist" if make == "nothing" else "is a file, not a run's folder"
    assert f"{source} {what}" in str(e.value) and "looked for" not in str(e.value), str(e.value)


def test_supernet_of_the_runs_own_folder_is_refused_by_name(tmp_path, monkeypatch, capsys):
    """A new run reusing the supernet of its own --out: said so (it read as "pass --resume", which skips the
    supernet), in the CLI and the Python API, before anything is written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r").mkdir()
    code, err = cli(capsys, "run", QUICK, *FAST, "--supernet", "r", "--out", "./r/")
    assert code == 2 and "is the run's own folder (--out r)" in err and "choose another --out" in err, err
    text = api_error([f"supernet={tmp_path / 'r'}"], Path("r"))
    assert "is the run's own folder" in text, text
    assert not list((tmp_path / "r").iterdir())


def test_supernet_of_a_runs_checkpoints_folder_names_the_run(tmp_path, monkeypatch, capsys):
    """--supernet RUN/checkpoints (was "no checkpoint there (looked for RUN/checkpoints/checkpoints/...)")."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r" / "checkpoints").mkdir(parents=True)
    (tmp_path / "r" / "checkpoints" / "checkpoints.json").write_text("[]")
    code, err = cli(capsys, "run", QUICK, *FAST, "--supernet", "r/checkpoints", "--out", "o")
    assert code == 2 and f"give the run's folder: --supernet {tmp_path / 'r'}" in err, err
    assert not (tmp_path / "o").exists()
