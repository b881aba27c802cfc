"""``--supernet`` compares only the data keys a run's data set reads: data.cutout (cifar10 only) and
data.synthetic (dataset synthetic only) set on a digits run trained nothing, so they no longer refuse a reuse;
between two runs of a data set that reads them they still do. ``--resume`` still lists every key."""

import json
from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.errors import UserError
from automl.pipeline.reuse import differences, load_supernet, weights_fingerprint
from automl.recipe import load_recipe
from automl.train.checkpoint import CheckpointStore
from helpers import fake_supernet_run

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
DIGITS = ROOT / "spaces" / "digits.space"
FAST = ["data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.weight_epochs=1", "search.theta_epochs=1", "search.lam=2", "retrain.epochs=0", "export.onnx=false",
        "device=cpu", "threads=1", "search.epsilons=[0]", "search.supernets=1"]
# keys digits never reads: the recipe warns that it ignores them
IGNORED = ["data.cutout=8", "data.synthetic.size=4", "data.synthetic.num_train=32"]


def _cli(capsys, *args) -> tuple[int, str]:
    code = main(["run", QUICK, *FAST, *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _fingerprint(*overrides) -> dict:
    recipe = load_recipe(QUICK, FAST + list(overrides))
    return weights_fingerprint(recipe, DIGITS, {k: str(v) for k, v in recipe.space_args.items()})


_fake_run = fake_supernet_run


def _reused(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())["supernet"]


@pytest.fixture(scope="module")
def ignored_run(tmp_path_factory):
    """A digits run trained with data.cutout and data.synthetic set (ignored by digits)."""
    out = tmp_path_factory.mktemp("dt") / "ignored"
    assert main(["run", QUICK, *FAST, *IGNORED, "--out", str(out)]) == 0
    assert _fingerprint(*IGNORED)["data.cutout"] == 8  # still recorded: the fingerprint's digest is unchanged
    return out


def test_a_digits_supernet_trained_with_ignored_data_keys_is_reused_without_them(ignored_run, tmp_path, capsys):
    code, out = _cli(capsys, "--out", str(tmp_path / "plain"), "--supernet", str(ignored_run))
    assert code == 0, out
    assert "weight phase skipped" in out and "trained with other settings" not in out
    assert _reused(tmp_path / "plain")["forced"] is False and _reused(tmp_path / "plain")["differs"] == []


def test_a_digits_supernet_trained_without_them_is_reused_with_them(ignored_run, tmp_path, capsys):
    """The reverse: a supernet recorded without the keys (its weights: a real trained digits supernet), reused by
    a run that sets them."""
    weights = CheckpointStore(ignored_run / "checkpoints").load()["supernet"]
    plain = _fake_run(tmp_path / "plain_src", _fingerprint(), weights)
    code, out = _cli(capsys, *IGNORED, "--out", str(tmp_path / "new"), "--supernet", str(plain))
    assert code == 0, out
    assert _reused(tmp_path / "new")["differs"] == []


def test_a_cifar10_supernet_with_another_cutout_is_still_refused(tmp_path, capsys):
    """cifar10 reads data.cutout: another square trained other weights (refused before the data is read)."""
    cifar = ["data.dataset=cifar10", f"data.root={tmp_path / 'cifar'}"]
    src = _fake_run(tmp_path / "src", _fingerprint(*cifar), {"w": torch.zeros(3)})
    code, out = _cli(capsys, *cifar, "data.cutout=8", "--out", str(tmp_path / "new"), "--supernet", str(src))
    assert code == 2, out
    assert "data.cutout: 0 there, 8 here" in out and "Traceback" not in out


def test_the_resume_check_still_lists_an_ignored_key(ignored_run, capsys):
    """--resume compares whole recipes (the recipe's fingerprint counts data.cutout): its message still names it."""
    code, out = _cli(capsys, "--out", str(ignored_run), "--resume")
    assert code == 2, out
    assert "data.cutout: 8 there, 0 here" in out


# ------------------------------------------------------------------------------------------- differences


def _old(fp: dict) -> dict:
    """``fp`` as a run recorded before data.cutout existed."""
    return {k: v for k, v in fp.items() if k != "data.cutout"}


def test_unread_keys_differ_for_no_digits_pair_old_or_new():
    plain, ignored = _fingerprint(), _fingerprint(*IGNORED)
    for theirs, ours in ((plain, ignored), (ignored, plain), (_old(plain), ignored), (ignored, _old(plain))):
        assert differences(theirs, ours, DIGITS, only_read=True) == []
    # as --resume lists a recipe's keys: every one counts
    assert sorted(d.split(":")[0] for d in differences(plain, ignored, DIGITS)) == ["data.cutout", "data.synthetic"]


def test_read_keys_still_differ():
    cifar = ["data.dataset=cifar10", "data.root=/data"]
    listed = differences(_fingerprint(*cifar), _fingerprint(*cifar, "data.cutout=16"), DIGITS, only_read=True)
    assert listed == ["data.cutout: 0 there, 16 here"]
    old = _old(_fingerprint(*cifar))  # a cifar10 run recorded before the key: no Cutout
    assert differences(old, _fingerprint(*cifar, "data.cutout=16"), DIGITS, only_read=True) == listed
    synth = _fingerprint("data.dataset=synthetic", "data.synthetic.size=4")
    assert [d.split(":")[0] for d in differences(_fingerprint("data.dataset=synthetic"), synth, DIGITS,
                                                 only_read=True)] == ["data.synthetic"]
    # another data set: the keys either one reads are listed with it
    assert [d.split(":")[0] for d in differences(_fingerprint(*IGNORED), _fingerprint(*cifar), DIGITS,
                                                 only_read=True)] == ["data.dataset", "data.cutout"]


@pytest.mark.parametrize("dataset", ["digits", "imagefolder"])
def test_keys_the_data_set_does_not_read_are_left_out_for_each(dataset):
    """imagefolder reads neither data.cutout nor data.synthetic, and its data.root names its data."""
    base = [f"data.dataset={dataset}", "data.root=/data/a"]
    assert differences(_fingerprint(*base), _fingerprint(*base, *IGNORED), DIGITS, only_read=True) == []
    moved = differences(_fingerprint(*base), _fingerprint(f"data.dataset={dataset}", "data.root=/data/b"), DIGITS,
                        only_read=True)
    assert [d.split(":")[0] for d in moved] == (["data.root"] if dataset == "imagefolder" else [])


def test_load_supernet_compares_only_read_keys(tmp_path):
    """The check itself (load_supernet), both ways, without and with --supernet-force."""
    src = _fake_run(tmp_path / "src", _fingerprint(*IGNORED), {"w": torch.zeros(3)})
    reused = load_supernet(src, _fingerprint(), False, DIGITS)
    assert reused.differs == [] and reused.origin["forced"] is False
    cifar = ["data.dataset=cifar10", "data.root=/data"]
    src = _fake_run(tmp_path / "cifar", _fingerprint(*cifar, "data.cutout=8"), {"w": torch.zeros(3)})
    with pytest.raises(UserError, match="data.cutout: 8 there, 0 here"):
        load_supernet(src, _fingerprint(*cifar), False, DIGITS)
