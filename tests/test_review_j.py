"""Review J: what a finished run reports and exports (retrain/evaluate/export stages, results.json)."""

from pathlib import Path

import pytest
from safetensors.torch import load_file

from automl.cli import main
from automl.errors import UserError
from automl.pipeline import Run
from automl.recipe import load_recipe
from automl.train.checkpoint import CheckpointStore

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
TINY = ["data.limit_train=256", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.weight_epochs=1", "search.theta_epochs=1", "search.lam=2", "search.budgets=[null]",
        "search.supernets=1", "retrain.epochs=0", "export.onnx=false", "search.log_every=2", "threads=1"]


def test_retrain_space_args_that_keep_the_network_inherit_the_supernet_weights(tmp_path):
    """retrain.space_args that compile the same networks as the search (here digits' own head, 128, given
    again) with retrain.epochs 0: the member takes the supernet's weights, as without retrain.space_args,
    not exported untrained."""
    recipe = load_recipe(QUICK, TINY + ["retrain.space_args.head=128"])
    res = Run(recipe, tmp_path / "run", resume=False, tty=False).execute()
    (a,) = res["architectures"]
    assert a["weights"] == "supernet"
    assert a["test_accuracy"] is not None
    sd = CheckpointStore(tmp_path / "run" / "checkpoints").load()["supernet"]
    (folder,) = (tmp_path / "run" / "export").iterdir()
    w = load_file(folder / "model.safetensors")
    assert w["conv_stem.weight"].equal(sd["conv_stem.weight"])


TWO = """space two

param classes = 10

input 1 x 8 x 8
classes classes

choices block = ir_k3_e1, ir_k3_e3

network
  stem width 16
  stage s1 width 24 repeat 1 choose block
  head width 128
end
"""


def test_ranking_on_a_space_of_fewer_than_three_archs_is_refused_without_an_impossible_fix(tmp_path, capsys):
    """A space of 2 architectures cannot be ranked (ranking.archs is at least 3): the start-up check says so
    instead of asking for ranking.archs at most 2, which the recipe refuses."""
    space = tmp_path / "two.space"
    space.write_text(TWO)
    recipe = load_recipe(QUICK, TINY + [f"space={space}", "ranking.archs=3"])
    with pytest.raises(UserError) as e:
        Run(recipe, tmp_path / "run", resume=False, tty=False).execute()
    msg = str(e.value)
    assert "ranking.archs" in msg and "only 2" in msg
    assert "at most 2" not in msg
    assert "ranking: null" in msg


def test_retrain_space_args_of_another_shape_stay_untrained_with_no_retraining(tmp_path, capsys):
    """retrain.space_args that widen the network with retrain.epochs 0: the supernet's weights do not fit,
    so the member is exported untrained and the run says why."""
    recipe = load_recipe(QUICK, TINY + ["retrain.space_args.width=1.5"])
    res = Run(recipe, tmp_path / "run", resume=False, tty=False).execute()
    (a,) = res["architectures"]
    assert a["weights"] == "untrained" and a["test_accuracy"] is None
    out = capsys.readouterr()
    assert "another shape than the supernet's" in out.out + out.err


def test_retrain_se_on_a_cell_space_is_refused_at_start_up(tmp_path, capsys):
    """retrain.se (squeeze-and-excitation in MBConv blocks) on a cell space: refused before the supernet is
    trained, naming the recipe key, not after the search and a retraining at the first export."""
    space = tmp_path / "nb1.space"
    space.write_text((ROOT / "spaces" / "nasbench201.space").read_text()
                     .replace("input 3 x size x size", "input 1 x size x size"))
    recipe = load_recipe(QUICK, TINY + [f"space={space}", "space_args.size=8", "space_args.channels=8",
                                        "space_args.cells=1", "retrain.epochs=1", "retrain.se=0.25"])
    with pytest.raises(UserError) as e:
        Run(recipe, tmp_path / "run", resume=False, tty=False).execute()
    assert "retrain.se" in str(e.value) and "cell space" in str(e.value)
    out = capsys.readouterr()
    assert "weights epoch" not in out.out + out.err


def test_automl_rank_of_a_space_too_small_to_rank_says_so(tmp_path, capsys):
    """`automl rank RUN --archs 3` on a run of a 2-architecture space said "pass --archs 2 or less", which the
    command refuses (at least 3)."""
    space = tmp_path / "two.space"
    space.write_text(TWO)
    out = tmp_path / "run"
    Run(load_recipe(QUICK, TINY + [f"space={space}"]), out, resume=False, tty=False).execute()
    capsys.readouterr()
    assert main(["rank", str(out), "--archs", "3", "--retrain-epochs", "0"]) == 2
    err = capsys.readouterr().err
    assert "only 2" in err and "cannot be ranked" in err and "--archs 2" not in err, err
