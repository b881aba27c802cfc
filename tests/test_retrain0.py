"""retrain.epochs 0: each derived network takes the supernet's weights on its path (Method 1: its member's own
W), BatchNorm recalibrated, evaluated and exported; the random baseline, which has no weights, says so."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from automl.compile import load_compiled
from automl.pipeline import Run, open_workspace
from automl.recipe import load_recipe
from automl.train.checkpoint import CheckpointStore

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
TINY = ["data.limit_train=256", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.weight_epochs=2", "search.theta_epochs=2", "search.lam=2", "search.budgets=[null,40k]",
        "search.supernets=1", "retrain.epochs=0", "export.onnx=false", "search.log_every=2"]


@pytest.fixture(scope="module")
def space():
    return load_compiled(ROOT / "spaces" / "digits.space")


def _run(tmp_path, extra, name="run"):
    recipe = load_recipe(QUICK, TINY + extra)
    return recipe, Run(recipe, tmp_path / name, resume=False, tty=False).execute()


def _folder(tmp_path, i, name="run"):
    folder = sorted((tmp_path / name / "export").iterdir())[i]
    assert folder.name.startswith(f"budget-{i}-")
    return folder


def _exported(tmp_path, i, name="run"):
    """Member i's exported weights (its folder: budget-i-...)."""
    return load_file(_folder(tmp_path, i, name) / "model.safetensors")


def _manifest_weights(tmp_path, i):
    """What member i's manifest says about its weights."""
    return json.loads((_folder(tmp_path, i) / "manifest.json").read_text())["weights"]


def test_inherited_networks_have_recalibrated_batchnorm_and_an_accuracy(tmp_path, space):
    recipe, res = _run(tmp_path, ["retrain.bn_batches=3"])
    sd = CheckpointStore(tmp_path / "run" / "checkpoints").load()["supernet"]
    net = space.build_supernet()
    net.load_state_dict(sd)
    net.eval()
    # the stem's BatchNorm statistics, recalibrated: the plain average of the stem convolution's channel
    # means over the first retrain.bn_batches D_W batches (every path shares the stem)
    batches = open_workspace(recipe).bn_batches(3)
    assert len(batches) == 3
    with torch.no_grad():
        want = torch.stack([net.conv_stem(x).mean((0, 2, 3)) for x in batches]).mean(0)
    for i, a in enumerate(res["architectures"]):
        assert a["weights"] == "supernet"
        assert 0.0 <= a["test_accuracy"] <= 1.0  # evaluated, where it used to be none
        w = _exported(tmp_path, i)
        assert torch.equal(w["conv_stem.weight"], sd["conv_stem.weight"])  # inherited
        assert torch.allclose(w["bn1.running_mean"], want, atol=1e-5)
        assert not torch.allclose(w["bn1.running_mean"], sd["bn1.running_mean"], atol=1e-3)  # not the supernet's
        assert _manifest_weights(tmp_path, i) == {"file": "model.safetensors", "format": "safetensors",
                                                  "source": "supernet", "bn_recalibrated_batches": 3}
    report = (tmp_path / "run" / "report.md").read_text()
    assert "supernet's weights on its path" in report and "untrained" not in report


def test_recalibration_batches_are_the_first_n_and_no_more_are_read():
    ws = open_workspace(load_recipe(QUICK, TINY))
    loader, read = ws.data.w, []
    epoch = loader.epoch

    def counted(*args, **kwargs):
        for batch in epoch(*args, **kwargs):
            read.append(batch[0])
            yield batch

    loader.epoch = counted
    batches = ws.bn_batches(3)
    assert len(read) == 3  # an ImageFolder's batches are decoded on demand: none is read for nothing
    assert all(torch.equal(a, b) for a, b in zip(batches, read))
    assert len(loader) > 3


def test_method_1_exports_each_members_own_weights(tmp_path):
    _, res = _run(tmp_path, ["search.method=simultaneous"])
    kept = CheckpointStore(tmp_path / "run" / "checkpoints").load()["member_supernets"]
    assert sorted(kept) == ["0", "1"]
    assert not torch.equal(kept["0"]["conv_stem.weight"], kept["1"]["conv_stem.weight"])
    for i, a in enumerate(res["architectures"]):
        assert a["weights"] == "supernet" and a["test_accuracy"] is not None
        assert torch.equal(_exported(tmp_path, i)["conv_stem.weight"], kept[str(i)]["conv_stem.weight"])


def test_method_1_with_an_ensemble_keeps_its_first_supernet(tmp_path):
    _, res = _run(tmp_path, ["search.method=simultaneous", "search.supernets=2", "search.budgets=[null]"])
    kept = CheckpointStore(tmp_path / "run" / "checkpoints").load()["member_supernets"]["0"]
    assert not any(k.startswith("members.") for k in kept)  # one supernet's state_dict, not the ensemble's
    assert torch.equal(_exported(tmp_path, 0)["conv_stem.weight"], kept["conv_stem.weight"])


def test_method_1_keeps_no_weights_when_it_retrains(tmp_path):
    _run(tmp_path, ["search.method=simultaneous", "retrain.epochs=1", "search.budgets=[null]"])
    assert CheckpointStore(tmp_path / "run" / "checkpoints").load().get("member_supernets") is None


def test_random_baseline_says_its_networks_are_untrained(tmp_path, capsys):
    _, res = _run(tmp_path, ["search.method=random"])
    out = capsys.readouterr()
    assert all(a["weights"] == "untrained" and a["test_accuracy"] is None for a in res["architectures"])
    assert all(_manifest_weights(tmp_path, i)["source"] == "untrained" for i in range(2))
    assert "untrained weights" in out.out + out.err and "retrain.epochs" in out.out + out.err
    assert "**untrained**" in (tmp_path / "run" / "report.md").read_text()
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == res


def test_a_retrained_shape_with_no_retraining_is_untrained_and_says_why(tmp_path, capsys):
    _, res = _run(tmp_path, ["retrain.space_args.head=64"])
    out = capsys.readouterr()
    assert all(a["weights"] == "untrained" and a["test_accuracy"] is None for a in res["architectures"])
    assert "retrain.space_args" in out.out + out.err
    assert "`retrain.space_args` changes their shape" in (tmp_path / "run" / "report.md").read_text()


def test_automl_export_of_the_runs_checkpoint_rebuilds_the_runs_network(tmp_path, capsys):
    """`automl export --weights CKPT --recipe RECIPE` recalibrates BatchNorm as the run did (the recipe's
    retrain.bn_batches D_W batches), so it writes the same network the run exported with retrain.epochs 0."""
    from automl.cli import main
    _run(tmp_path, ["retrain.bn_batches=3"])
    run, folder = tmp_path / "run", _folder(tmp_path, 0)
    ckpt = sorted((run / "checkpoints").glob("ckpt-*.pt"))[-1]
    out = tmp_path / "again"
    assert main(["export", str(ROOT / "spaces" / "digits.space"), "--arch", str(folder / "manifest.json"),
                 "--out", str(out), "--weights", str(ckpt), "--recipe", str(run / "recipe.resolved.yaml")]) == 0
    assert "recalibrated on 3 batches" in capsys.readouterr().out
    ours, theirs = load_file(folder / "model.safetensors"), load_file(out / "model.safetensors")
    assert ours.keys() == theirs.keys()
    for k in ours:
        assert torch.allclose(ours[k].float(), theirs[k].float(), atol=1e-6), k
    assert json.loads((out / "manifest.json").read_text())["weights"]["bn_recalibrated_batches"] == 3
