"""Review HA: a run's results.json that is there but cannot be read (a folder, a file the user may not read, a link
to nothing, a loop of links, a pipe or socket) is one user error naming it and the fix, for ``automl rank`` and
``--resume``, and is never written anew as a damaged one (which stays so: cut short, not JSON, not UTF-8, nested
too deeply); and ``writable_file`` gives the file a link to a regular file leads to, so that an atomic write lands
in that file and leaves the link."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from automl._io import atomic_write_text, writable_file
from automl.compile import load_compiled
from automl.errors import UserError
from automl.pipeline import Run
from automl.pipeline.results import MAX_RESULTS_DEPTH, read_results
from automl.profile import TABLE_FORMAT
from automl.recipe import load_recipe
from helpers import cli_out_err as cli

ROOT = Path(__file__).resolve().parent.parent
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
DIGITS = str(ROOT / "spaces" / "digits.space")
TINY = ["data.dataset=synthetic", "data.synthetic.channels=1", "data.synthetic.num_train=128",
        "data.synthetic.num_test=64", "data.batch_size=32", "data.theta_batch_size=32", "search.weight_epochs=1",
        "search.theta_epochs=1", "search.epsilons=[0,0.5]", "search.lam=2", "retrain.epochs=1",
        "export.onnx=false", "search.log_every=2"]

pytestmark = pytest.mark.usefixtures("one_thread")



def _chmod_stops_reading() -> bool:
    """Whether ``chmod 000`` stops this process from reading a file: not for root (unless its capabilities to
    bypass permissions are dropped: ``setpriv --bounding-set=-dac_override,-dac_read_search``), nor without POSIX
    permissions."""
    if os.name != "posix":
        return False
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe"
        probe.write_text("x")
        probe.chmod(0)
        try:
            probe.open("rb").close()
        except PermissionError:
            return True
        finally:
            probe.chmod(0o600)
    return False


needs_permissions = pytest.mark.skipif(not _chmod_stops_reading(),
                                       reason="chmod does not stop this process (root) from reading a file")
needs_symlinks = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="POSIX symbolic links")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished tiny run (no ranking section), built once; each test copies it."""
    out = tmp_path_factory.mktemp("ha") / "run"
    Run(load_recipe(QUICK, TINY), out, tty=False).execute()
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    return out


def _results_a_folder(out: Path) -> Path:
    path = out / "results.json"
    path.unlink()
    path.mkdir()
    (path / "mine.txt").write_text("kept")
    return path


# ---- task 1: an unreadable results.json ------------------------------------------------------------------------

def test_automl_rank_refuses_a_results_json_that_is_a_folder(run_copy, capsys):
    """It was "damaged: automl rank writes it anew", ranked, then failed to write (Is a directory)."""
    path = _results_a_folder(run_copy)
    code, out, err = cli(capsys, "rank", run_copy, "--archs", "3", "--retrain-epochs", "0")
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert f"{path} is a folder" in err and "move it away" in err, err
    assert "anew" not in out + err and "kendall_tau" not in out, out + err
    assert (path / "mine.txt").read_text() == "kept"


@needs_permissions
def test_automl_rank_refuses_a_results_json_it_may_not_read_and_keeps_it(run_copy, capsys):
    path = run_copy / "results.json"
    before = path.read_bytes()
    path.chmod(0)
    try:
        code, out, err = cli(capsys, "rank", run_copy, "--archs", "3", "--retrain-epochs", "0")
        assert code == 2
        assert len(err.strip().splitlines()) == 1, err
        assert str(path) in err and f"chmod u+rw {path}" in err, err
        assert "anew" not in out + err and "kendall_tau" not in out, out + err
    finally:
        path.chmod(0o644)
    assert path.read_bytes() == before


def test_resume_refuses_a_results_json_that_is_a_folder(run_copy, capsys):
    """A finished run resumed (a requeue script's --resume) only writes its report again: it wrote it to a folder
    and stopped with "cannot write the results (Is a directory)"; now it says what results.json is first."""
    path = _results_a_folder(run_copy)
    code, out, err = cli(capsys, "run", QUICK, *TINY, "--out", run_copy, "--resume")
    assert code == 2
    assert f"{path} is a folder" in err and "cannot write" not in err, err
    assert (path / "mine.txt").read_text() == "kept"


@needs_permissions
def test_read_results_refuses_a_file_it_may_not_read(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("{}")
    path.chmod(0)
    try:
        with pytest.raises(UserError) as info:
            read_results(path)
    finally:
        path.chmod(0o644)
    assert f"chmod u+rw {path}" in str(info.value)


@needs_symlinks
@pytest.mark.parametrize("kind", ["loop", "dangling", "fifo", "socket"])
def test_read_results_refuses_what_is_no_file(odd_path, kind):
    """A link to nothing was read as no results.json (and replaced by the written one), a pipe as an empty one."""
    path = odd_path(kind)
    with pytest.raises(UserError) as info:
        read_results(path)
    message = str(info.value)
    assert message.startswith(f"{path} ") and "must be a regular file" in message and "\n" not in message, message
    assert path.is_symlink() or path.exists()


@pytest.mark.parametrize("data", [b"", b'{"recipe": "quick', b"not json", b'{"a": "\xff"}', b"[1, 2]",
                                  b"[" * (MAX_RESULTS_DEPTH + 2) + b"]" * (MAX_RESULTS_DEPTH + 2)])
def test_read_results_takes_a_damaged_file_for_none(tmp_path, data):
    path = tmp_path / "results.json"
    path.write_bytes(data)
    assert read_results(path) == {}
    assert read_results(tmp_path / "missing.json") == {}


# ---- task 2: --out through a symbolic link -----------------------------------------------------------------------

@needs_symlinks
def test_writable_file_gives_the_file_a_link_leads_to(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "real.json").write_text("old")
    (tmp_path / "mid.json").symlink_to("data/real.json")
    link = tmp_path / "link.json"
    link.symlink_to("mid.json")  # a link to a link
    target = writable_file(link, "--out")
    assert target == Path(os.path.realpath(tmp_path / "data" / "real.json"))
    atomic_write_text(target, "new")
    assert link.is_symlink() and os.readlink(link) == "mid.json"
    assert (tmp_path / "mid.json").is_symlink()
    assert link.read_text() == "new" and (tmp_path / "data" / "real.json").read_text() == "new"
    assert writable_file(tmp_path / "new.json", "--out") == tmp_path / "new.json"


@needs_symlinks
def test_space_encode_out_through_a_link_writes_the_file_it_leads_to(tmp_path, capsys):
    cs = load_compiled(DIGITS)
    (tmp_path / "ad.json").write_text(json.dumps(cs.arch_def(cs.cost_table.most_expensive())))
    (tmp_path / "real.json").write_text("{}")
    link = tmp_path / "arch.json"
    link.symlink_to("real.json")
    code, out, err = cli(capsys, "space", "encode", DIGITS, "--arch-def", tmp_path / "ad.json", "--out", link)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == "real.json"
    assert "choices" in json.loads((tmp_path / "real.json").read_text())



@needs_symlinks
def test_space_profile_out_through_a_link_writes_the_table_into_the_file_it_leads_to(tmp_path, capsys):
    """The table replaces the file the link leads to (an earlier, empty table file), and the link stays."""
    (tmp_path / "real.json").write_text("")
    link = tmp_path / "latency.json"
    link.symlink_to("real.json")
    code, out, err = cli(capsys, "space", "profile", DIGITS, "--out", link, "--calibrate", "0", "--repeat", "1")
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == "real.json"
    table = json.loads((tmp_path / "real.json").read_text())
    assert table["format"] == TABLE_FORMAT, list(table)
    assert not list(tmp_path.glob("*.partial")), list(tmp_path.iterdir())


@needs_symlinks
def test_space_profile_refusal_through_a_link_names_the_link_not_its_target(tmp_path, capsys):
    """A link to a file that holds no cost table is refused under the name the user gave: the advice to delete
    it must not name the file it leads to (deleting that would lose the user's file, and still be refused)."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "recipe.json").write_text('{"a": 1}')
    link = tmp_path / "lat.json"
    link.symlink_to(tmp_path / "real" / "recipe.json")
    code, out, err = cli(capsys, "space", "profile", DIGITS, "--out", link, "--calibrate", "0", "--repeat", "1")
    assert code == 2, err
    assert f"--out {link} is a file that holds no cost table" in err and f"delete {link} first" in err, err
    assert "recipe.json" not in err, err
