"""``--supernet`` compares what the weight phases read: data.image_size null is the data set's native size (a digits
supernet trained with ``data.image_size: 8`` is reused by a recipe that leaves it null, and the reverse), and the
synthetic set's number of test images (drawn after its training images) counts for nothing; two runs whose images
come at other sizes still differ, and ``--resume`` still compares every key as recorded. The recipe warns of
``data.synthetic.*`` set for another data set, as of the other data keys that data set ignores."""

import logging

import pytest
import torch

from automl.cli import main
from automl.errors import UserError
from automl.pipeline.reuse import DATA_READ_BY, differences, load_supernet
from automl.recipe import load_recipe
from automl.train.checkpoint import CheckpointStore
from automl.train.data import _make_synthetic
from test_review_dt import DIGITS, FAST, QUICK, _cli, _fake_run, _fingerprint, _reused

# a synthetic set of digits' shape (1 x 8 x 8, 10 classes): a digits supernet fits its space
SYNTH = ["data.dataset=synthetic", "data.synthetic.channels=1", "data.synthetic.size=8",
         "data.synthetic.num_classes=10", "data.synthetic.num_train=192"]


def _keys(listed: list[str]) -> list[str]:
    return [d.split(":")[0] for d in listed]


@pytest.fixture(scope="module")
def sized_run(tmp_path_factory):
    """A digits run trained with data.image_size: 8, digits' native size (the quickstart leaves it null)."""
    out = tmp_path_factory.mktemp("dy") / "sized"
    assert main(["run", QUICK, *FAST, "data.image_size=8", "--out", str(out)]) == 0
    return out


# ------------------------------------------------------------------------------------------- through the CLI


def test_a_digits_supernet_trained_at_size_8_is_reused_at_the_native_size(sized_run, tmp_path, capsys):
    code, out = _cli(capsys, "--out", str(tmp_path / "native"), "--supernet", str(sized_run))
    assert code == 0, out
    assert "weight phase skipped" in out and "trained with other settings" not in out
    assert _reused(tmp_path / "native")["forced"] is False and _reused(tmp_path / "native")["differs"] == []


def test_a_native_size_supernet_is_reused_at_size_8(sized_run, tmp_path, capsys):
    """The reverse: a supernet recorded with image_size null (its weights: a real trained digits supernet)."""
    weights = CheckpointStore(sized_run / "checkpoints").load()["supernet"]
    native = _fake_run(tmp_path / "native_src", _fingerprint(), weights)
    code, out = _cli(capsys, "data.image_size=8", "--out", str(tmp_path / "new"), "--supernet", str(native))
    assert code == 0, out
    assert _reused(tmp_path / "new")["differs"] == []


def test_a_synthetic_supernet_with_another_test_set_size_is_reused(sized_run, tmp_path, capsys):
    weights = CheckpointStore(sized_run / "checkpoints").load()["supernet"]
    src = _fake_run(tmp_path / "src", _fingerprint(*SYNTH, "data.synthetic.num_test=64"), weights)
    code, out = _cli(capsys, *SYNTH, "data.synthetic.num_test=32", "--out", str(tmp_path / "new"),
                     "--supernet", str(src))
    assert code == 0, out
    assert _reused(tmp_path / "new")["differs"] == []
    # another number of training images: other training data, still refused
    code, out = _cli(capsys, *SYNTH, "data.synthetic.num_train=160", "--out", str(tmp_path / "other"),
                     "--supernet", str(src))
    assert code == 2 and "data.synthetic: " in out and "Traceback" not in out, out


def test_the_resume_check_still_compares_image_size_as_recorded(sized_run, capsys):
    """--resume compares recipes (their fingerprint counts null and 8 apart): its message names the key."""
    code, out = _cli(capsys, "--out", str(sized_run), "--resume")
    assert code == 2, out
    assert "data.image_size: 8 there, null here" in out


# ------------------------------------------------------------------------------------------- differences


def _old(fp: dict) -> dict:
    """``fp`` as a run recorded before data.cutout existed."""
    return {k: v for k, v in fp.items() if k != "data.cutout"}


@pytest.mark.parametrize("dataset,native", [("digits", 8), ("cifar10", 32), ("imagefolder", 224)])
def test_image_size_null_is_the_native_size(dataset, native):
    base = [f"data.dataset={dataset}", "data.root=/data"]
    null, given = _fingerprint(*base), _fingerprint(*base, f"data.image_size={native}")
    assert null["data.image_size"] is None and given["data.image_size"] == native  # recorded as set
    for theirs, ours in ((null, given), (given, null), (_old(null), given), (given, _old(null))):
        assert differences(theirs, ours, DIGITS, only_read=True) == []
    other = _fingerprint(*base, f"data.image_size={native * 2}")
    assert differences(null, other, DIGITS, only_read=True) == \
        [f"data.image_size: {native} there, {native * 2} here"]
    assert differences(other, _old(null), DIGITS, only_read=True) == \
        [f"data.image_size: {native * 2} there, {native} here"]
    # as --resume lists a recipe's keys: as recorded
    assert differences(null, given, DIGITS) == [f"data.image_size: null there, {native} here"]


def test_a_synthetic_sets_native_size_is_its_shape():
    """synthetic.size 16 at image_size null comes at 16 (an elastic resolution's sizes are resized from it): equal
    to image_size 16, not to image_size 8 (resized), nor to a set of size 8 given 16 (its images drawn at 8)."""
    s16 = ["data.dataset=synthetic", "data.synthetic.size=16"]
    null = _fingerprint(*s16)
    assert differences(null, _fingerprint(*s16, "data.image_size=16"), DIGITS, only_read=True) == []
    assert differences(null, _fingerprint(*s16, "data.image_size=8"), DIGITS, only_read=True) == \
        ["data.image_size: 16 there, 8 here"]
    drawn_at_8 = _fingerprint("data.dataset=synthetic", "data.synthetic.size=8", "data.image_size=16")
    assert _keys(differences(null, drawn_at_8, DIGITS, only_read=True)) == ["data.synthetic"]
    # both null: each at its own shape, which data.synthetic names
    assert _keys(differences(null, _fingerprint("data.dataset=synthetic"), DIGITS, only_read=True)) == \
        ["data.synthetic"]


def test_the_synthetic_test_set_size_trains_nothing():
    """Its test images are drawn after its training images: those stay the same for any num_test."""
    few, many = (load_recipe(QUICK, [*SYNTH, f"data.synthetic.num_test={n}"]).data for n in (4, 64))
    (x4, y4, *_), (x64, y64, *_) = _make_synthetic(few, 0), _make_synthetic(many, 0)
    assert torch.equal(x4, x64) and torch.equal(y4, y64)
    a, b = (_fingerprint(*SYNTH, f"data.synthetic.num_test={n}") for n in (4, 64))
    assert a["data.synthetic"]["num_test"] == 4  # still recorded: a fingerprint's digest stays that of its settings
    assert differences(a, b, DIGITS, only_read=True) == []
    assert _keys(differences(a, b, DIGITS)) == ["data.synthetic"]  # --resume: as recorded
    more = _fingerprint(*SYNTH, "data.synthetic.num_test=4", "data.synthetic.num_train=100")
    assert "num_train" in differences(a, more, DIGITS, only_read=True)[0]


def test_load_supernet_takes_the_native_size(tmp_path):
    src = _fake_run(tmp_path / "src", _fingerprint("data.image_size=8"), {"w": torch.zeros(3)})
    reused = load_supernet(src, _fingerprint(), False, DIGITS)
    assert reused.differs == [] and reused.origin["forced"] is False
    with pytest.raises(UserError, match="data.image_size: 8 there, 16 here"):
        load_supernet(src, _fingerprint("data.image_size=16", "space_args.size=16"), False, DIGITS)


# ------------------------------------------------------------------------------------------- the recipe's warning


def _warnings(caplog, *overrides) -> str:
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_recipe(QUICK, list(overrides))
    return caplog.text


def test_synthetic_keys_on_another_data_set_are_warned_about(caplog):
    text = _warnings(caplog, "data.synthetic.size=4")
    assert "data.synthetic.size applies to dataset synthetic only; dataset digits ignores it" in text
    text = _warnings(caplog, "data.dataset=cifar10", "data.root=/d", "data.synthetic.num_train=9",
                     "data.synthetic.size=4")
    assert "data.synthetic.num_train, data.synthetic.size apply to dataset synthetic only; dataset cifar10 " \
           "ignores them" in text
    # at their defaults (a recipe.resolved.yaml writes every key), or read: no warning
    assert "data.synthetic" not in _warnings(caplog, "data.synthetic.size=8", "data.synthetic.num_test=64")
    assert "data.synthetic" not in _warnings(caplog, "data.dataset=synthetic", "data.synthetic.size=4")


def test_a_resolved_recipe_of_a_digits_run_warns_of_nothing(tmp_path, caplog):
    resolved = tmp_path / "recipe.resolved.yaml"
    resolved.write_text(load_recipe(QUICK).to_yaml())
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_recipe(str(resolved))
    assert "ignores" not in caplog.text


# a value other than its default for each key of DATA_READ_BY (digits reads none of them)
UNREAD_ON_DIGITS = {"root": "data.root=/data", "download": "data.download=true", "workers": "data.workers=2",
                    "cutout": "data.cutout=8", "synthetic": "data.synthetic.size=4"}


@pytest.mark.parametrize("key", sorted(DATA_READ_BY))
def test_one_table_of_the_data_keys_each_data_set_reads(key, caplog):
    """What the --supernet check leaves out is what the recipe warns a data set ignores."""
    assert "digits" not in DATA_READ_BY[key]
    assert f"data.{key}" in _warnings(caplog, UNREAD_ON_DIGITS[key]) and "dataset digits ignores" in caplog.text
    assert differences(_fingerprint(), _fingerprint(UNREAD_ON_DIGITS[key]), DIGITS, only_read=True) == []
