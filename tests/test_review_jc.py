"""Review JC: a refused ``automl run --resume DIR`` leaves DIR as it found it.

A resume whose DIR/threads.json is missing saves its thread choice there, but only once every check before the
first stage has passed: a resume refused for changed training data, another recipe, a changed space (one whose
smallest network no longer fits the budget, one of the same keys, one its cost table no longer fits), a missing
cost table or one re-measured writes nothing (its .lock aside, which names the last command that held the folder). A resume that finds no
threads.json and goes on still saves it, with the count the run started with.
"""

from __future__ import annotations

import hashlib
import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import automl.profile as profile
from automl.cli import main
from automl.compile import load_compiled
from automl.nn.measure import count_params
import automl.pipeline.run as run_mod
from automl.pipeline.run import Run
from automl.profile import profile_space
from automl.recipe import load_recipe
from automl.train.checkpoint import CheckpointStore

import helpers

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
DIGITS = ROOT / "spaces" / "digits.space"

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

# 10 training and 2 test PNGs (8 x 8) a class
_write_images = partial(helpers.write_images, per_class=10, val_per_class=2, size=8, ext="png")


def _fake_time(module, shapes, threads, repeat, warmup, clock="wall"):
    """A deterministic 'latency' (no onnxruntime): 1 ms per call plus 1 µs per parameter."""
    return 1.0 + 1e-3 * count_params(module)


@pytest.fixture
def stop(tmp_path, die_after_save, monkeypatch):
    """``stop(table)``: a run on an image folder, with its own space file (and with ``table`` a cost table), killed
    right after its first checkpoint inside its weight epoch: (its data, space, cost table, overrides, run folder)."""
    data = _write_images(tmp_path / "imgs")
    space = tmp_path / "rgb.space"
    space.write_text(DIGITS.read_text().replace("input 1 x", "input 3 x"))
    monkeypatch.setattr(profile, "time_module", _fake_time)
    table = tmp_path / "lat.json"
    table.write_text(json.dumps(profile_space(load_compiled(space, {"classes": "2"}), repeat=1, calibrate=0,
                                              progress=False)))
    overrides = [f"space={space}", "data.dataset=imagefolder", f"data.root={data}", "space_args.classes=2",
                 "data.image_size=8", "data.batch_size=4", "data.theta_batch_size=4", "data.test_batch_size=64",
                 "threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
                 "search.supernets=1", "search.lam=2", "search.budgets=[20k]", "export.onnx=false",
                 "checkpoint.every_steps=2"]

    def make(with_table: bool = False) -> tuple[Path, Path, Path, list[str], Path]:
        given = [*overrides, f"search.cost_table={table}"] if with_table else overrides
        out = tmp_path / ("with-table" if with_table else "run")
        saved = die_after_save(lambda state, n: n == 1)
        with pytest.raises(KeyboardInterrupt):
            Run(load_recipe(QUICK, given), out, tty=False).execute()
        assert saved[-1][0] == 0 and saved[-1][2] > 0  # inside the weight stage
        assert (out / "threads.json").is_file() and (out / ".lock").is_file()
        return data, space, table, given, out
    return make


def _snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder``: a file by its size, mtime and SHA-256 (the lock file by its presence alone: it
    names the last command that held the folder), a folder (``folder`` too) by its mtime: an entry added, removed
    or renamed there changes it, a temporary file written and removed again too."""
    found = {".": ("dir", folder.stat().st_mtime_ns)}
    for p in sorted(folder.rglob("*")):
        st = p.stat()
        name = str(p.relative_to(folder))
        if p.name == ".lock":
            found[name] = ("lock",)
        elif p.is_dir():
            found[name] = ("dir", st.st_mtime_ns)
        else:
            found[name] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return found


def _resume(capsys, overrides, out: Path) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["run", QUICK, *overrides, "--out", str(out), "--resume"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _refused_unchanged(capsys, overrides, out: Path, said: str) -> None:
    """A resume of ``out`` without its threads.json is refused (exit 2, ``said``) and leaves ``out`` as it was."""
    (out / "threads.json").unlink(missing_ok=True)
    before = _snapshot(out)
    code, text = _resume(capsys, overrides, out)
    assert code == 2 and "Traceback" not in text, text
    assert said in text, text
    assert "threads:" not in text, text
    assert _snapshot(out) == before, text


def _image(path: Path) -> None:
    Image.fromarray(np.full((8, 8, 3), 7, dtype=np.uint8)).save(path)


def test_a_resume_refused_for_changed_data_writes_no_threads_json(stop, capsys):
    data, _, _, overrides, out = stop()
    _image(data / "train" / "a" / "extra.png")
    _refused_unchanged(capsys, overrides, out, "is not what the run in")
    assert not (out / "threads.json").exists()


def test_refused_resumes_leave_the_folder_as_it_was(stop, capsys):
    """Each refusal in turn (its cause undone after it), then the resume that goes on."""
    data, space, _, overrides, out = stop()
    # another recipe: refused before the data is loaded
    _refused_unchanged(capsys, [*overrides, "seed=5"], out, "seed: 0 there, 5 here")
    # the training data changed
    extra = data / "train" / "a" / "extra.png"
    _image(extra)
    _refused_unchanged(capsys, overrides, out, "is not what the run in")
    extra.unlink()
    # the space changed: its smallest network above the budget, then one of the same keys
    text = space.read_text()
    space.write_text(text.replace("param head = 128", "param head = 1024"))
    _refused_unchanged(capsys, overrides, out, "search.budgets[0]")
    space.write_text(text.replace("param head = 128", "param head = 96"))
    _refused_unchanged(capsys, overrides, out, "--resume: the recipe differs")
    space.write_text(text)
    # all undone: the resume goes on, and saves the thread choice it found missing
    code, said = _resume(capsys, overrides, out)
    assert code == 0, said
    assert json.loads((out / "threads.json").read_text())["threads"] == 1
    assert CheckpointStore(out / "checkpoints").load()["stage"] > 0


def test_refused_resumes_of_a_run_with_a_cost_table_leave_the_folder_as_it_was(stop, capsys):
    _, space, table, overrides, out = stop(with_table=True)
    kept = table.read_text()
    table.unlink()
    _refused_unchanged(capsys, overrides, out, f"{table}")
    measured = json.loads(kept)
    measured["fixed"] *= 2  # re-measured: another table
    table.write_text(json.dumps(measured))
    _refused_unchanged(capsys, overrides, out, "--resume: the recipe differs")
    table.write_text(kept)
    text = space.read_text()
    space.write_text(text.replace("param head = 128", "param head = 96"))
    _refused_unchanged(capsys, overrides, out, "does not fit space")
    space.write_text(text)
    code, said = _resume(capsys, overrides, out)
    assert code == 0, said
    assert (out / "threads.json").is_file()


def test_a_resume_without_threads_json_that_goes_on_records_each_part(stop, monkeypatch, capsys):
    """The count the run started with (its checkpoint's), then the resume's other count: both in threads.json's
    history, as with a threads.json kept (torch itself kept at one thread: the cores are shared)."""
    _, _, _, overrides, out = stop()
    monkeypatch.setattr(run_mod, "apply_threads", lambda n: None)
    (out / "threads.json").unlink()
    code, said = _resume(capsys, [o for o in overrides if o != "threads=1"] + ["threads=2"], out)
    assert code == 0, said
    saved = json.loads((out / "threads.json").read_text())
    assert saved["threads"] == 2 and saved["history"] == [1, 2], saved
    assert json.loads((out / "results.json").read_text())["threads"]["history"] == [1, 2]
