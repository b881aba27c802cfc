"""Review MH: `automl export` into a run's folders, a hand-edited manifest's input_shape, the hint for a --recipe
whose data the space does not take."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from automl.cli import main
from automl.errors import UserError
from automl.export import load_model
from helpers import digits_export

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    """(an ARCH.json of the digits space, one `automl export` of it), copied by the tests that change it."""
    return digits_export(tmp_path_factory.mktemp("mh"))


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _run_folder(folder: Path) -> Path:
    """What a run writes first in its folder: its lock file and resolved recipe."""
    folder.mkdir(parents=True)
    (folder / ".lock").write_text("")
    (folder / "recipe.resolved.yaml").write_text(f"name: r\nspace: {DIGITS}\n")
    return folder


def test_mh_export_into_a_member_folder_a_running_run_has_not_written_is_refused(tmp_path, exported, capsys):
    arch, _ = exported
    run = _run_folder(tmp_path / "run")
    fd = os.open(run / ".lock", os.O_RDWR)
    try:  # the run's lock, as automl run holds it while it runs (its weight phase: no member folder yet)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": "here", "started": "now",
                                 "command": "automl run r.yaml"}).encode())
        code = main(["export", DIGITS, "--arch", str(arch), "--out", str(run / "export" / "budget-0-none")])
    finally:
        os.close(fd)
    assert code == 2
    err = _one_error(capsys)
    assert "still running" in err and "another --out" in err and str(run) in err
    assert not (run / "export").exists()  # nothing written the run would later replace


@pytest.mark.parametrize("where", ["", "export"])
def test_mh_export_into_a_run_folder_or_its_export_folder_is_refused(tmp_path, exported, capsys, where):
    arch, done = exported
    run = _run_folder(tmp_path / "run")
    (run / "results.json").write_text("{}")
    shutil.copytree(done, run / "export" / "budget-0-none")
    out = run / where if where else run
    before = sorted(p.name for p in out.iterdir())
    assert main(["export", DIGITS, "--arch", str(arch), "--out", str(out)]) == 2
    err = _one_error(capsys)
    assert "a folder of its own" in err and str(run / "export" / "budget-0-none") in err
    assert sorted(p.name for p in out.iterdir()) == before


def test_mh_export_into_a_finished_runs_new_folder_is_accepted(tmp_path, exported):
    """A run that is not running (its lock not held) does not stop an export into a folder of its own there."""
    arch, _ = exported
    run = _run_folder(tmp_path / "run")
    out = run / "mine"
    assert main(["export", DIGITS, "--arch", str(arch), "--out", str(out)]) == 0
    assert (out / "manifest.json").is_file()


@pytest.mark.parametrize("shape", [[1, 8], [3, 8, 8]])
def test_mh_load_model_refuses_a_hand_edited_input_shape(tmp_path, exported, shape):
    _, done = exported
    folder = tmp_path / "net"
    shutil.copytree(done, folder)
    m = json.loads((folder / "manifest.json").read_text())
    assert load_model(folder).pretrained_cfg["input_size"] == tuple(m["input_shape"])
    m["input_shape"] = shape
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError) as e:
        load_model(folder)
    assert "\"input_shape\"" in str(e.value) and str(shape) in str(e.value)
    assert len(str(e.value).splitlines()) == 1
    assert "put back" in str(e.value)  # `automl export --arch` refuses this manifest: no command to export again
    assert main(["export", DIGITS, "--arch", str(folder / "manifest.json"), "--out", str(tmp_path / "again")]) == 2


def _image_folder(root: Path, mode: str, classes=("cat", "dog")) -> Path:
    """A small image folder (train/ and val/, six 8x8 pictures per class) of ``mode`` ("RGB" or "L") images."""
    for split in ("train", "val"):
        for k, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for i in range(6):
                Image.new(mode, (8, 8), color=(40 * k + i) if mode == "L" else (40 * k, i, 9)).save(
                    root / split / name / f"{i}.png")
    return root


def _recipe(tmp_path: Path, root: Path) -> Path:
    recipe = tmp_path / f"{root.name}.yaml"
    recipe.write_text(f"name: imf\nspace: {DIGITS}\ndata:\n  dataset: imagefolder\n  root: {root}\n"
                      f"  image_size: 8\n  batch_size: 4\n  theta_batch_size: 4\n  workers: 0\n")
    return recipe


def test_mh_recipe_of_data_of_other_channels_is_not_told_to_use_set(tmp_path, exported, capsys):
    """digits.space has no parameter for its input channels: the hint gives no --set, but a recipe to give."""
    arch, _ = exported
    recipe = _recipe(tmp_path, _image_folder(tmp_path / "rgb", "RGB"))
    out = tmp_path / "out"
    assert main(["export", DIGITS, "--arch", str(arch), "--out", str(out), "--recipe", str(recipe),
                 "--quantize", "int8"]) == 2
    err = _one_error(capsys)
    assert "(3, 8, 8) with 2 classes" in err and "channels" in err and "recipe" in err
    assert "use the --set" not in err and "--set classes" not in err and not out.exists()


def test_mh_recipe_of_data_of_other_classes_names_the_set_value(tmp_path, exported, capsys):
    """The classes differ (digits' 10, the space built with 5): the space's `classes` parameter fixes them."""
    arch, _ = exported
    recipe = str(ROOT / "recipes" / "quickstart.yaml")
    out = str(tmp_path / "out")
    assert main(["export", DIGITS, "--arch", str(arch), "--out", out, "--recipe", recipe, "--set", "classes=5"]) == 2
    err = _one_error(capsys)
    assert "--set classes=10" in err
    assert main(["export", DIGITS, "--arch", str(arch), "--out", out, "--recipe", recipe, "--set", "classes=10"]) == 0
