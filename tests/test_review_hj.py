"""``--resume`` on training data other than the run started on: the D_W / D_theta split and data.limit_train are
drawn from the numbered list of training samples, so a run resumed on an image folder that gained or lost an image
would search on another split, whose D_theta holds images its weights have trained on. A run records its training
data's fingerprint at its start (count, classes, a digest of the listed paths; CIFAR's batch sizes) and a resume on
other data is refused with one message (exit 2) naming data.root, what differs, and the fix. A checkpoint without
the record resumes unchecked; a finished run (whose resume only writes its report again) is not checked."""

import json
import os
import pickle
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from automl.cli import main
from automl.pipeline.run import Run
from automl.recipe import DataConfig, load_recipe
from automl.train.checkpoint import CheckpointStore
from automl.train.data import build_data, data_changes
import helpers

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")


# 10 training and 2 test PNGs (8 x 8) a class
write_images = partial(helpers.write_images, per_class=10, val_per_class=2, size=8, ext="png")


def save_image(path: Path) -> None:
    Image.fromarray(np.full((8, 8, 3), 7, dtype=np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path):
    """An image folder (20 training images in 2 classes), an RGB space, and the recipe's overrides."""
    data = write_images(tmp_path / "imgs")
    space = tmp_path / "rgb.space"
    space.write_text((ROOT / "spaces" / "digits.space").read_text().replace("input 1 x", "input 3 x"))
    overrides = [f"space={space}", "data.dataset=imagefolder", f"data.root={data}", "space_args.classes=2",
                 "data.image_size=8", "data.batch_size=4", "data.theta_batch_size=4", "data.test_batch_size=64",
                 "threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
                 "search.supernets=1", "search.lam=2", "search.budgets=[null]", "export.onnx=false",
                 "checkpoint.every_steps=2"]
    return data, overrides


def run(overrides, out: Path, resume: bool = False) -> dict:
    return Run(load_recipe(QUICK, overrides), out, resume=resume, tty=False).execute()


@pytest.fixture
def stopped(folder, tmp_path, die_after_save):
    """The run killed right after its first checkpoint, inside its weight epoch."""
    data, overrides = folder
    out = tmp_path / "run"
    saved = die_after_save(lambda state, n: n == 1)
    with pytest.raises(KeyboardInterrupt):
        run(overrides, out)
    assert saved[-1][0] == 0 and saved[-1][2] > 0  # inside the weight stage: its stages that read data are left
    return data, overrides, out


def resume_cli(capsys, overrides, out: Path) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["run", QUICK, *overrides, "--out", str(out), "--resume"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def assert_refused(code: int, text: str, data: Path, what: str) -> None:
    assert code == 2, text
    assert "Traceback" not in text, text
    assert f"data.root {data}" in text, text
    assert what in text, text
    assert "restore the data as it was when the run started, or start a new run with another --out" in text, text


# ------------------------------------------------------------------------------------------ refused resumes


def test_a_resume_after_an_image_was_removed_is_refused(stopped, capsys):
    data, overrides, out = stopped
    before = CheckpointStore(out / "checkpoints").load()
    (data / "train" / "b" / "3.png").unlink()
    code, text = resume_cli(capsys, overrides, out)
    assert_refused(code, text, data, "train/ held 20 images in 2 classes when the run started, now 19 images in "
                                     "2 classes")
    after = CheckpointStore(out / "checkpoints").load()
    assert (after["stage"], after["epoch"], after["step"]) == (before["stage"], before["epoch"], before["step"])
    assert not (out / "results.json").exists()  # refused before anything was written


def test_a_resume_after_an_image_was_added_is_refused(stopped, capsys):
    data, overrides, out = stopped
    save_image(data / "train" / "a" / "new.png")
    code, text = resume_cli(capsys, overrides, out)
    assert_refused(code, text, data, "train/ held 20 images in 2 classes when the run started, now 21 images")


def test_a_resume_after_an_image_was_renamed_is_refused_as_another_list(stopped, capsys):
    data, overrides, out = stopped
    os.rename(data / "train" / "a" / "0.png", data / "train" / "a" / "zz.png")  # same count, another order
    code, text = resume_cli(capsys, overrides, out)
    assert_refused(code, text, data, "the list of training images in train/ differs (same count")


def test_a_test_image_removed_before_a_resume_is_accepted(stopped, capsys):
    """The error for an unreadable test image says to remove it and resume: the split does not depend on val/."""
    data, overrides, out = stopped
    (data / "val" / "a" / "1.png").unlink()
    code, text = resume_cli(capsys, overrides, out)
    assert code == 0, text


# ------------------------------------------------------------------------------------------ accepted resumes


def test_an_unchanged_resume_goes_on_and_computes_what_an_uninterrupted_run_does(stopped, tmp_path, capsys):
    data, overrides, out = stopped
    assert CheckpointStore(out / "checkpoints").load()["data_fingerprint"]["train"]["count"] == 20
    code, text = resume_cli(capsys, overrides, out)
    assert code == 0, text
    reference = run(overrides, tmp_path / "reference")
    resumed = json.loads((out / "results.json").read_text())
    strip = lambda r: [(a["choices"], a["params"]) for a in r["architectures"]]  # noqa: E731
    assert strip(resumed) == strip(reference)
    a = CheckpointStore(tmp_path / "reference" / "checkpoints").load()["supernet"]
    b = CheckpointStore(out / "checkpoints").load()["supernet"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_without_the_record_resumes_unchecked(stopped, capsys):
    """A checkpoint an automl wrote before it recorded the data: resumed as it was, with no check."""
    data, overrides, out = stopped
    store = CheckpointStore(out / "checkpoints")
    ckpt = store.load()
    del ckpt["data_fingerprint"]
    store.save(ckpt)
    assert "data_fingerprint" not in store.load()
    (data / "train" / "b" / "3.png").unlink()
    code, text = resume_cli(capsys, overrides, out)
    assert code == 0, text


def test_a_finished_run_resumed_on_changed_data_writes_its_report_again(folder, tmp_path, capsys):
    """Only the report is left: nothing reads the data, so what it holds now is not compared."""
    data, overrides = folder
    out = tmp_path / "done"
    run(overrides, out)
    (data / "train" / "b" / "3.png").unlink()
    code, text = resume_cli(capsys, overrides, out)
    assert code == 0, text
    assert (out / "report.md").exists()


def test_automl_rank_on_changed_data_is_refused(folder, tmp_path, capsys):
    """automl rank scores the supernet on D_theta: on other data its split is another, so it is refused too."""
    data, overrides = folder
    out = tmp_path / "done"
    run(overrides, out)
    (data / "train" / "b" / "3.png").unlink()
    capsys.readouterr()
    code = main(["rank", str(out), "--archs", "3", "--retrain-epochs", "0"])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert text.count("automl rank: the training data of") == 1, text
    assert_refused(code, text, data, "now 19 images in 2 classes")
    assert "ranking" not in json.loads((out / "results.json").read_text()), text


# ------------------------------------------------------------------------------------------ the fingerprint


def folder_cfg(root: Path) -> DataConfig:
    return DataConfig(dataset="imagefolder", root=str(root), image_size=8, batch_size=4, theta_split=2)


def test_an_added_class_folder_is_named(tmp_path):
    write_images(tmp_path)
    before = build_data(folder_cfg(tmp_path), ".", 0, "cpu").fingerprint
    write_images(tmp_path, classes=("c",))
    now = build_data(folder_cfg(tmp_path), ".", 0, "cpu").fingerprint
    what = data_changes(before, now)
    assert "train/ held 20 images in 2 classes when the run started, now 30 images in 3 classes" in what, what
    assert "class folders added: c" in what, what


def test_the_fingerprint_does_not_depend_on_where_the_folder_is(tmp_path):
    """data.root may change on --resume (a job requeued on another machine): the paths count below train/."""
    a, b = write_images(tmp_path / "a"), write_images(tmp_path / "elsewhere" / "b")
    fa, fb = (build_data(folder_cfg(p), ".", 0, "cpu").fingerprint for p in (a, b))
    assert fa == fb and data_changes(fa, fb) is None


def test_building_the_fingerprint_draws_no_random_number(tmp_path):
    write_images(tmp_path)
    torch.manual_seed(3)
    state = torch.get_rng_state()
    build_data(folder_cfg(tmp_path), ".", 0, "cpu")
    assert torch.equal(torch.get_rng_state(), state)


def write_cifar(root: Path, per_batch: int = 20) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": [int(i % 10) for i in range(per_batch)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    return root


def test_a_replaced_cifar_batch_is_named_by_its_size(tmp_path):
    write_cifar(tmp_path)
    cfg = DataConfig(dataset="cifar10", root=str(tmp_path), batch_size=4, theta_split=2)
    before = build_data(cfg, ".", 0, "cpu").fingerprint
    assert before["train"]["count"] == 100 and len(before["train"]["batches"]) == 5
    write_cifar(tmp_path / "other", per_batch=21)
    os.replace(tmp_path / "other" / "cifar-10-batches-py" / "data_batch_3",
               tmp_path / "cifar-10-batches-py" / "data_batch_3")
    what = data_changes(before, build_data(cfg, ".", 0, "cpu").fingerprint)
    assert "CIFAR-10's training batches held 100 images in 10 classes when the run started, now 101" in what, what
    assert "cifar-10-batches-py/data_batch_3 was " in what, what


def test_digits_and_synthetic_have_a_constant_fingerprint():
    for cfg in (DataConfig(dataset="digits"), DataConfig(dataset="synthetic")):
        a, b = (build_data(cfg, ".", 0, "cpu").fingerprint for _ in range(2))
        assert a == b and a["train"]["count"] > 0


def test_a_supernet_trained_on_other_data_is_refused_or_forced(folder, tmp_path, capsys):
    """--supernet A on training data that changed since A trained: the new run's D_theta would hold images A's
    weights trained on. Refused before anything is written; with --supernet-force a warning and results.json's
    supernet origin say so."""
    data, overrides = folder
    first = tmp_path / "first"
    run(overrides, first)
    save_image(data / "train" / "a" / "extra.png")
    capsys.readouterr()
    code = main(["run", QUICK, *overrides, "--out", str(tmp_path / "second"), "--supernet", str(first)])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code == 2 and "Traceback" not in text, text
    assert f"--supernet {first}: its supernet was trained on other training data than this run's" in text, text
    assert "now 21 images in 2 classes" in text and "--supernet-force" in text, text
    assert not (tmp_path / "second").exists(), list((tmp_path / "second").iterdir())
    code = main(["run", QUICK, *overrides, "--out", str(tmp_path / "forced"), "--supernet", str(first),
                 "--supernet-force"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "warning: --supernet-force" in captured.out + captured.err
    origin = json.loads((tmp_path / "forced" / "results.json").read_text())["supernet"]
    assert origin["forced"] and any(d.startswith("training data: ") for d in origin["differs"]), origin


def test_a_chain_of_reuses_compares_the_data_the_weights_trained_on(folder, tmp_path, capsys):
    """A trains on 20 images; B reuses A's supernet on 21 (forced); C reuses B's: its weights trained on A's 20, so
    C on 21 is refused (was accepted: B's own data was taken for the weights'), C on A's 20 accepted (was refused)."""
    data, overrides = folder
    first, second = tmp_path / "A", tmp_path / "B"
    run(overrides, first)
    extra = data / "train" / "a" / "extra.png"
    save_image(extra)
    assert main(["run", QUICK, *overrides, "--out", str(second), "--supernet", str(first), "--supernet-force"]) == 0
    capsys.readouterr()
    code = main(["run", QUICK, *overrides, "--out", str(tmp_path / "C1"), "--supernet", str(second)])
    text = "".join(capsys.readouterr())
    assert code == 2 and "trained on other training data" in text and "now 21 images" in text, text
    extra.unlink()  # back to the data A's weights trained on
    code = main(["run", QUICK, *overrides, "--out", str(tmp_path / "C2"), "--supernet", str(second)])
    text = "".join(capsys.readouterr())
    assert code == 0, text
