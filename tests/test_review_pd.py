"""Review PD: `automl export` meeting a full disk partway through its writes, and a run's member folders."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import automl._io
import automl.errors
import automl.export.quantize
import automl.pipeline.final_stages as fs
from automl.cli import main
from automl.compile import load_compiled
from automl.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture(scope="module")
def arch(tmp_path_factory) -> str:
    compiled = load_compiled(DIGITS)
    path = tmp_path_factory.mktemp("arch") / "arch.json"
    path.write_text(json.dumps({"choices": [d.choices[0] for d in compiled.decisions]}))
    return str(path)


def _refuse(monkeypatch, name: str, code: int = errno.ENOSPC) -> None:
    """Every atomic write of the file ``name`` fails with ``code`` (the writes before it succeed)."""
    real = automl._io._create_temporary

    def create(path, suffix):
        if Path(path).name == name:
            raise OSError(code, "No space left on device" if code == errno.ENOSPC else "Input/output error",
                          str(path))
        return real(path, suffix)

    monkeypatch.setattr(automl._io, "_create_temporary", create)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err  # one message, no traceback
    return err


@pytest.mark.parametrize("name", ["model.safetensors", "model.onnx"])
def test_a_full_disk_partway_removes_the_new_out_and_the_folders_it_made(tmp_path, arch, capsys, monkeypatch, name):
    """Seen: ENOSPC on the weights left tmp/a/b/out (holding space.space) and its empty parents behind."""
    _refuse(monkeypatch, name)
    out = tmp_path / "a" / "b" / "out"
    assert main(["export", DIGITS, "--arch", arch, "--out", str(out)]) == 2
    err = _one_line(capsys)
    assert f"--out {out}: cannot write {out / name} (No space left on device); free space, or choose another --out" \
           in err, err
    assert f"{out}, which it had created, is removed" in err
    assert not (tmp_path / "a").exists()  # --out and the folders above it that the export made


def test_a_full_disk_while_measuring_removes_the_new_out_too(tmp_path, arch, capsys, monkeypatch):
    """The measured manifest's write (quantize's own UserError, "... and measure again") on a new --out: it goes,
    and the message says to run the export again, not to "measure again"."""
    def full(out_dir, manifest):
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(out_dir) / "manifest.json"))

    monkeypatch.setattr(automl.export.quantize, "write_manifest", full)
    out = tmp_path / "new" / "out"
    assert main(["export", DIGITS, "--arch", arch, "--out", str(out)]) == 2
    err = _one_line(capsys)
    assert "free space, or choose another --out, and run the export again" in err and "measure again" not in err
    assert not (tmp_path / "new").exists()


def test_a_full_disk_in_an_existing_out_leaves_it_and_says_what_it_holds(tmp_path, arch, capsys, monkeypatch):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("the user's")
    _refuse(monkeypatch, "model.safetensors")
    assert main(["export", DIGITS, "--arch", arch, "--out", str(out)]) == 2
    err = _one_line(capsys)
    assert "free space, or choose another --out" in err and "holds no complete export" in err, err
    assert (out / "notes.txt").read_text() == "the user's" and not (out / "manifest.json").exists()


def test_another_os_error_stays_an_internal_error_but_the_new_out_goes(tmp_path, arch, capsys, monkeypatch):
    _refuse(monkeypatch, "model.safetensors", errno.EIO)
    out = tmp_path / "a" / "out"
    assert main(["export", DIGITS, "--arch", arch, "--out", str(out)]) == 1
    assert "internal error" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


# ------------------------------------------------------------------ a run's export into a member folder in use

_HOLD = """
import sys, time
from automl._lock import RunLock
folder = sys.argv[1]
sys.argv = ["automl", "export", "spaces/digits.space", "--arch", "a.json", "--out", folder]  # its lock file's record
RunLock(folder).acquire(then="then run this export again", look=True, guard=False)
print("held", flush=True)
time.sleep(120)
"""
RESUME = "automl run RECIPE --out RUN --resume"


def _exporter(tmp_path, monkeypatch):
    """A run's Exporter, and the context its call reads, whose export is recorded instead of written."""
    written = []

    def export(*a, **k):
        written.append(k)
        raise RuntimeError("the run's export began")

    monkeypatch.setattr(fs, "export_architecture", export)
    monkeypatch.setattr(fs, "class_names", lambda data: None)
    space = SimpleNamespace(cost_table=None)
    spaces = SimpleNamespace(search=space, retrain=space, path=None, retrain_args={})
    ctx = SimpleNamespace(keeper=SimpleNamespace(resume_command=RESUME), spaces=spaces,
                          data=SimpleNamespace(normalize=None, dataset=None))
    run = tmp_path / "run"
    return fs.Exporter(load_recipe(str(ROOT / "recipes" / "quickstart.yaml")), run), ctx, written


def test_a_run_does_not_export_into_a_member_folder_an_automl_export_writes(tmp_path, monkeypatch):
    """`automl export --out RUN/export/budget-0-none` of a stopped run, then the run resumed: its export of that
    member would replace the files the export writes (the export's own check only refuses a running run's)."""
    exporter, ctx, written = _exporter(tmp_path, monkeypatch)
    folder = exporter.root / "budget-0-none"
    folder.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(automl.errors.UserError) as e:
            exporter(ctx, "budget-0-none", None, None, None, {"source": "retrained"})
    finally:
        holder.kill()
        holder.wait()
    said = str(e.value)
    assert f"{folder} is in use" in said and "automl export" in said and f"continue with: {RESUME}" in said, said
    assert written == []
    # once the export has ended (its lock file left, no longer held), the run's export goes on
    with pytest.raises(RuntimeError, match="the run's export began"):
        exporter(ctx, "budget-0-none", None, None, None, {"source": "retrained"})
    assert len(written) == 1
