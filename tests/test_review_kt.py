"""Review KT: an export's manifest records ``classes``, the names of the network's outputs in index order, wherever
the exporter knows the training data (a run's members, ``automl export --recipe``), keeps a manifest's own when
the network is exported again from it without a recipe, refuses one of the wrong length, and reads an older
manifest without it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import export_architecture, load_model, read_manifest
import automl.export.manifest as manifest_module
from automl.pipeline import Run
from automl.recipe import load_recipe
from helpers import write_images

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
DIGITS = ROOT / "spaces" / "digits.space"
TINY = ["data.limit_train=96", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.weight_epochs=1", "search.theta_epochs=1", "search.epsilons=[0]", "search.lam=2",
        "search.supernets=1", "retrain.epochs=0", "export.onnx=false", "device=cpu", "threads=1"]

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_a_digits_runs_member_manifest_names_its_classes(tmp_path):
    out = tmp_path / "run"
    Run(load_recipe(QUICK, TINY), out, tty=False).execute()
    manifests = sorted((out / "export").glob("*/manifest.json"))
    assert manifests, list((out / "export").rglob("*"))
    for path in manifests:
        m = json.loads(path.read_text())
        assert m["classes"] == [str(i) for i in range(10)] and m["num_classes"] == 10, path
        assert read_manifest(path.parent)["classes"] == m["classes"]
    assert load_model(manifests[0].parent).pretrained_cfg["label_names"] == tuple(str(i) for i in range(10))


@pytest.fixture
def rgb(tmp_path):
    """An RGB copy of digits.space (``tmp_path/rgb.space``), a three-class ImageFolder whose folder names are not
    in sorted order when written, and a recipe of it."""
    space = tmp_path / "rgb.space"
    space.write_text(DIGITS.read_text().replace("input 1 x", "input 3 x"))
    data = write_images(tmp_path / "data", classes=("fish", "cat", "dog"), per_class=4)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: kt\nseed: 0\ndevice: cpu\nthreads: 1\nspace: {space}\nspace_args:\n  classes: 3\n"
                      f"data:\n  dataset: imagefolder\n  root: {data}\n  image_size: 8\n  batch_size: 4\n"
                      f"  test_batch_size: 16\n")
    cs = load_compiled(str(space), {"classes": "3"})
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    return space, arch, recipe


def test_export_with_an_imagefolder_recipe_records_its_folder_names(tmp_path, rgb):
    space, arch, recipe = rgb
    out = tmp_path / "exp"
    assert main(["export", str(space), "--arch", str(arch), "--set", "classes=3", "--recipe",
                 str(recipe), "--out", str(out)]) == 0
    assert _manifest(out)["classes"] == ["cat", "dog", "fish"]  # torchvision's order: sorted


def test_a_manifest_given_again_keeps_its_classes(tmp_path):
    cs = load_compiled(str(DIGITS))
    first, again = tmp_path / "first", tmp_path / "again"
    names = [f"n{i}" for i in range(cs.num_classes)]
    export_architecture(cs, [d.choices[0] for d in cs.decisions], first, onnx=False, classes=names)
    assert main(["export", str(DIGITS), "--arch", str(first / "manifest.json"),
                 "--out", str(again)]) == 0
    assert _manifest(again)["classes"] == names


def test_a_manifest_whose_classes_do_not_name_each_output_is_refused(tmp_path, capsys):
    cs = load_compiled(str(DIGITS))
    first = tmp_path / "first"
    export_architecture(cs, [d.choices[0] for d in cs.decisions], first, onnx=False)
    m = _manifest(first)
    m["classes"] = ["a", "b", "c"]  # 10 outputs
    (first / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match='"classes" holds 3 class name'):
        read_manifest(first)
    capsys.readouterr()
    assert main(["export", str(DIGITS), "--arch", str(first / "manifest.json"),
                 "--out", str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err
    assert '"classes"' in err and "Traceback" not in err, err
    m["classes"] = [0] * cs.num_classes
    (first / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match='"classes" must be the list of class names'):
        read_manifest(first)


def test_an_older_manifest_without_classes_still_reads_and_exports_again(tmp_path):
    cs = load_compiled(str(DIGITS))
    first, again = tmp_path / "first", tmp_path / "again"
    export_architecture(cs, [d.choices[0] for d in cs.decisions], first, onnx=False)
    m = _manifest(first)
    assert "classes" not in m
    assert "label_names" not in load_model(first).pretrained_cfg
    assert main(["export", str(DIGITS), "--arch", str(first / "manifest.json"),
                 "--out", str(again)]) == 0
    assert "classes" not in _manifest(again)


def test_class_names_of_each_data_set():
    class D:
        def __init__(self, dataset, num_classes, fingerprint=None):
            self.dataset, self.num_classes, self.fingerprint = dataset, num_classes, fingerprint

    assert manifest_module.class_names(D("digits", 10)) == [str(i) for i in range(10)]
    cifar = manifest_module.class_names(D("cifar10", 10))
    assert cifar == list(manifest_module.CIFAR10_CLASSES) and cifar[3] == "cat" and len(cifar) == 10
    assert manifest_module.class_names(D("imagefolder", 2, {"train": {"classes": ["a", "b"]}})) == ["a", "b"]
    assert manifest_module.class_names(D("synthetic", 4)) is None
    with pytest.raises(UserError, match='"classes" holds 2'):
        manifest_module.check_classes({"classes": ["a", "b"], "num_classes": 2}, "--arch m.json", 10)


def test_a_recipe_of_other_classes_than_the_manifests_is_refused(tmp_path, rgb, capsys):
    space, arch, recipe = rgb
    out = tmp_path / "exp"
    assert main(["export", str(space), "--arch", str(arch), "--set", "classes=3", "--recipe", str(recipe),
                 "--out", str(out)]) == 0
    m = _manifest(out)
    m["classes"] = ["ant", "bee", "cow"]
    (out / "manifest.json").write_text(json.dumps(m))
    capsys.readouterr()
    assert main(["export", str(space), "--arch", str(out / "manifest.json"), "--recipe", str(recipe),
                 "--out", str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err
    assert '"classes"' in err and "[cat, dog, fish]" in err and "Traceback" not in err, err
