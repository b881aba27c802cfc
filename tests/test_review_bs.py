"""Review BS: a run's set-up from its recipe (the retraining space against the searched one), its plan of stages
and results.json."""

import json
from pathlib import Path

import pytest
import yaml

from automl.cli import main
from automl.errors import RecipeError, UserError
from automl.pipeline.setup import load_spaces
from automl.recipe import Recipe, load_recipe
from automl.train.checkpoint import CheckpointStore

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")

# a chain space with an elastic depth whose shallowest choice is a parameter, and an elastic width that scales
ELASTIC = """space elastic
param classes = 10
param size = 8
param d = 1
param m = 1.0
input 1 x size x size
classes classes
choices block = ir_k3_e1, ir_k5_e3
network
  stem width 16
  stage s1 width 24 * m, 32 * m depth d, 3 choose block
  stage s2 width 32 stride 2 repeat 2 choose block
  head width 64
end
"""


def _elastic_recipe(tmp_path: Path, retrain_args: str) -> Path:
    space = tmp_path / "elastic.space"
    space.write_text(ELASTIC)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: elastic\nspace: {space}\ndata:\n  dataset: digits\nretrain:\n  epochs: 0\n"
                      f"  space_args: {{{retrain_args}}}\n")
    return recipe


def test_retrain_space_args_that_change_a_depth_choice_are_refused(tmp_path):
    """retrain.space_args d=2 keeps every decision's name but turns the searched depth choice d1 into d2: the
    member found as one layer would be retrained and exported with two under the searched choices. Refused at
    start-up with the file, line and decision (HEAD compared the decision names only and ran)."""
    path = _elastic_recipe(tmp_path, "d: 2")
    with pytest.raises(RecipeError) as e:
        load_spaces(load_recipe(path, []))
    msg = str(e.value)
    assert f"{path}:7: retrain.space_args: d=2 changes the choices" in msg
    assert "s1_depth (d1, d3 searched, d2, d3 retrained)" in msg


def test_retrain_space_args_that_scale_sizes_are_taken(tmp_path):
    """What retrain.space_args are for: larger widths (the width decision's choice names w24, w32 become w48,
    w64) keep the searched architectures' meaning; not refused."""
    spaces = load_spaces(load_recipe(_elastic_recipe(tmp_path, "m: 2"), []))
    assert [d.choices for d in spaces.search.decisions][0] == ("w24", "w32")
    assert [d.choices for d in spaces.retrain.decisions][0] == ("w48", "w64")


def test_retrain_space_args_that_add_decisions_name_them(tmp_path, capsys):
    """d=2 with a third depth (depth d, 3 where d is 4: layers s1_4 added) names the decisions that differ,
    through the CLI: exit 2, no traceback."""
    path = _elastic_recipe(tmp_path, "d: 4")
    code = main(["run", str(path), "--out", str(tmp_path / "run"), "threads=1", "device=cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "retrain.space_args: d=4 changes the decisions of elastic.space (with s1_4)" in err


def _tiny(*more: str) -> list[str]:
    return ["threads=1", "device=cpu", "search.budgets=null", "search.epsilons=[0]", *more]


def test_a_cost_metric_the_space_lacks_names_the_line_and_no_file_for_a_recipe_built_in_python(tmp_path):
    """search.cost that the space has no table of: the recipe file's line of search.cost (HEAD: the file only);
    a recipe built from a dict has no file, and the message does not start with 'None:' (HEAD's did)."""
    path = tmp_path / "r.yaml"
    path.write_text(f"name: c\nspace: {ROOT / 'spaces' / 'digits.space'}\ndata:\n  dataset: digits\n"
                    f"search:\n  epsilons: [0]\n  cost: latency\n")
    recipe = load_recipe(path, ["threads=1", "device=cpu"])
    with pytest.raises(UserError) as e:
        load_spaces(recipe)
    assert str(e.value).startswith(f"{path}:7: search.cost 'latency' is not a metric of digits.space"), str(e.value)
    built = Recipe.model_validate(yaml.safe_load(recipe.to_yaml()))
    with pytest.raises(UserError) as e:
        load_spaces(built)
    assert str(e.value).startswith("search.cost 'latency' is not a metric"), str(e.value)


def test_a_space_that_does_not_fit_the_data_names_the_line(tmp_path, capsys):
    """space_args that give the digits space 5 classes (on the command line): the message names the recipe file
    and the line of its data.dataset, 13 (HEAD: the file only), and the key to fix; exit 2 through the CLI."""
    code = main(["run", QUICK, *_tiny("space_args.classes=5"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"{QUICK}:13: the space digits.space (with space_args) takes input (1, 8, 8) with 5 classes" in err


FAST = ["threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
        "search.supernets=1", "data.limit_train=64", "data.batch_size=32", "data.theta_batch_size=32",
        "search.lam=2", "search.budgets=null", "search.epsilons=[0]", "export.onnx=false"]
GPU = "cuda (NVIDIA H200)"


def _as_if_on_a_gpu(out: Path, stage: int) -> None:
    """The run's newest checkpoint again, as one written at ``stage`` by a part of the run that computed on a GPU."""
    store = CheckpointStore(out / "checkpoints")
    store.save({**store.load(), "stage": stage, "device": GPU})


def test_results_json_records_the_device_of_a_run_resumed_on_another(tmp_path, capsys):
    """A run whose search ran on a GPU and which was resumed on the CPU before its retraining: results.json's
    device says both, as its checkpoints do (HEAD: "cpu", the resumed part's only)."""
    out = tmp_path / "run"
    assert main(["run", QUICK, *FAST, "--out", str(out)]) == 0
    _as_if_on_a_gpu(out, stage=2)  # weights, theta done; retrain/0 and the report left
    assert main(["run", QUICK, *FAST, "--out", str(out), "--resume"]) == 0
    assert f"the run computed on {GPU}, cpu now" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["device"] == f"{GPU}, then cpu"


def test_a_finished_run_whose_results_json_is_gone_keeps_its_device(tmp_path, capsys):
    """A finished GPU run's folder, its results.json removed, resumed on the CPU (only its report is left to
    write): results.json says the device the run computed on, from its checkpoint (HEAD: this machine's "cpu")."""
    out = tmp_path / "run"
    assert main(["run", QUICK, *FAST, "--out", str(out)]) == 0
    _as_if_on_a_gpu(out, stage=3)
    (out / "results.json").unlink()
    assert main(["run", QUICK, *FAST, "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "results.json").read_text())["device"] == GPU
