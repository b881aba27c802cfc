"""Review QH: a run holds a member folder's lock while it exports the member into it, so that an `automl export
--out` into that folder meanwhile is refused (not only one that held it before the run's check)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import automl.pipeline.final_stages as fs
from automl._lock import LOCK_NAME, RunLock, lock_holder
from automl.compile import load_compiled
from automl.errors import UserError
from automl.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
RESUME = "automl run RECIPE --out RUN --resume"
RUN_ARGV = ["automl", "run", "recipe.yaml", "--out", "RUN"]  # the run's command line, as its lock file names it

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _exporter(tmp_path, monkeypatch, during):
    """A run's Exporter (no ONNX: the export's files are the faked export's) and the context its call reads;
    ``during(folder)`` is called in the middle of the member's export, which then writes a file there."""
    def export(space, arch, folder, **k):
        during(Path(folder))
        (Path(folder) / "manifest.json").write_text("{}")
        return {"params": 1, "onnx": {}}

    monkeypatch.setattr(fs, "export_architecture", export)
    monkeypatch.setattr(fs, "class_names", lambda data: None)
    monkeypatch.setattr(sys, "argv", RUN_ARGV)
    space = SimpleNamespace(cost_table=None, name="digits")
    spaces = SimpleNamespace(search=space, retrain=space, path=None, retrain_args={})
    said = []
    ctx = SimpleNamespace(keeper=SimpleNamespace(resume_command=RESUME), spaces=spaces, reporter=SimpleNamespace(
        info=said.append), data=SimpleNamespace(normalize=None, dataset=None))
    exporter = fs.Exporter(load_recipe(str(ROOT / "recipes" / "quickstart.yaml")), tmp_path / "run")
    exporter.export = SimpleNamespace(onnx=False, quantize=None, opset=17)
    return exporter, ctx


def _as_automl_export(folder: Path) -> None:
    """Take ``folder``'s lock as `automl export --out FOLDER` takes its --out's (automl/commands/export.py)."""
    lock = RunLock(folder)
    lock.acquire(then="then run this export again, or choose another --out", look=True, guard=False)
    lock.release()


def _refused_into(refused: list):
    """What the faked export does halfway: take the folder's lock as `automl export` does, which must be refused;
    the refusal's message appended to ``refused``."""
    def during(folder):
        with pytest.raises(UserError) as e:
            _as_automl_export(folder)
        refused.append(str(e.value))
    return during


def test_an_automl_export_into_the_member_folder_during_the_runs_export_is_refused(tmp_path, monkeypatch):
    """Seen: the run only looked for a holder before it wrote, so an `automl export --out` started just after
    the look wrote the same files as the run's export."""
    refused = []
    exporter, ctx = _exporter(tmp_path, monkeypatch, _refused_into(refused))
    assert exporter(ctx, "budget-0-none", None, None, None, {"source": "retrained"}) == {"onnx": None}
    folder = exporter.root / "budget-0-none"
    assert len(refused) == 1 and f"{folder} is in use: another automl run is writing" in refused[0], refused
    assert f"process {os.getpid()} " in refused[0] and "(automl run recipe.yaml" in refused[0], refused
    # done: the lock is free again, and the lock file the run made is gone (the folder holds the export alone)
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json"]
    _as_automl_export(folder)


@pytest.fixture(scope="module")
def arch(tmp_path_factory) -> str:
    compiled = load_compiled(DIGITS)
    path = tmp_path_factory.mktemp("arch") / "arch.json"
    path.write_text(json.dumps({"choices": [d.choices[0] for d in compiled.decisions]}))
    return str(path)


def test_the_automl_export_command_run_meanwhile_is_refused_naming_the_run(tmp_path, monkeypatch, arch):
    """The real command, in a process of its own, started while the run exports the member: exit 2, one message
    naming the run's process and command; nothing of its own written there."""
    seen = []

    def during(folder):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        seen.append(subprocess.run([sys.executable, "-m", "automl", "export", DIGITS, "--arch", arch, "--out",
                                    str(folder)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300))
        seen.append(sorted(p.name for p in folder.iterdir()))

    exporter, ctx = _exporter(tmp_path, monkeypatch, during)
    exporter(ctx, "budget-0-none", None, None, None, {"source": "retrained"})
    done, listing = seen
    err = done.stderr.strip()
    assert done.returncode == 2 and len(err.splitlines()) == 1, (done.returncode, err)
    assert "is in use" in err and f"process {os.getpid()} " in err and "(automl run recipe.yaml" in err, err
    assert listing == [LOCK_NAME]  # the run's lock file alone: the export wrote nothing


def test_the_lock_is_released_when_the_export_fails(tmp_path, monkeypatch):
    def during(folder):
        raise RuntimeError("the export failed")

    exporter, ctx = _exporter(tmp_path, monkeypatch, during)
    with pytest.raises(RuntimeError, match="the export failed"):
        exporter(ctx, "budget-0-none", None, None, None, {"source": "retrained"})
    folder = exporter.root / "budget-0-none"
    assert list(folder.iterdir()) == [] and lock_holder(folder) is None
    _as_automl_export(folder)


def test_a_resumed_run_exports_into_a_folder_a_killed_run_left_its_lock_file_in(tmp_path, monkeypatch):
    """A run killed (-9) during a member's export leaves the member folder's lock file, not held: the resumed run
    locks it again and removes it when done (the folder holds the export's files alone, as after an uninterrupted
    run)."""
    refused = []
    exporter, ctx = _exporter(tmp_path, monkeypatch, _refused_into(refused))
    folder = exporter.root / "budget-0-none"
    folder.mkdir(parents=True)
    left = '{"pid": 1, "host": "h", "started": "then", "command": "automl run r.yaml --out RUN"}\n'
    (folder / LOCK_NAME).write_text(left)
    assert exporter(ctx, "budget-0-none", None, None, None, {"source": "retrained"}) == {"onnx": None}
    assert len(refused) == 1 and "is in use" in refused[0]
    assert not (folder / LOCK_NAME).exists() and (folder / "manifest.json").is_file()


def test_a_member_folder_whose_lock_file_cannot_be_used_is_one_message_with_the_resume_command(tmp_path,
                                                                                              monkeypatch):
    exporter, ctx = _exporter(tmp_path, monkeypatch, lambda folder: None)
    folder = exporter.root / "budget-0-none"
    (folder / LOCK_NAME).mkdir(parents=True)  # a folder where the lock file goes
    with pytest.raises(UserError) as e:
        exporter(ctx, "budget-0-none", None, None, None, {"source": "retrained"})
    said = str(e.value)
    assert f"cannot open its lock file {folder / LOCK_NAME} (it is a folder, not a file)" in said, said
    assert said.endswith(f"continue it with: {RESUME})") and not said.startswith("--out"), said
    assert not (folder / "manifest.json").exists()
