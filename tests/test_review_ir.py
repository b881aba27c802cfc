"""Review IR: the ``threads: N (...)`` line is said once every check before the first stage has passed, and a
supernet an older automl reused forced is named by both ways of forcing.

1. A run refused after its start-up (a budget below the space's smallest network, a supernet trained on other
   data, a --resume of another recipe) prints its error alone, no threads line above it; a run that goes on says
   the line before its first epoch, a --resume too (after the warning that no record holds its thread count, where
   none does), and so does ``automl rank``.
2. The line of a supernet an older automl recorded as forced names ``--supernet-force`` and ``supernet_force:
   true`` (its records do not tell which was used), not the flag alone.
"""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import automl.pipeline.run as run_mod
from automl.errors import RecipeError, UserError
from automl.pipeline import Run
from automl.pipeline.reuse import FLAG, Given, fingerprint_digest, load_supernet, weights_fingerprint
from automl.pipeline.state import CKPT_FORMAT, RunState
from automl.recipe import load_recipe
from automl.train import threads as th
from automl.train.checkpoint import CheckpointStore

import helpers
from helpers import cli_out_err

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"
QUICK = str(ROOT / "recipes" / "quickstart.yaml")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

TINY = ["search.supernets=1", "search.weight_epochs=1", "search.theta_epochs=1", "search.epsilons=[0]",
        "retrain.epochs=0", "export.onnx=false", "data.limit_train=96", "data.batch_size=32",
        "data.theta_batch_size=32", "device=cpu"]


def _recipe(folder: Path, top: str = "", name: str = "r.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"name: ir\nthreads: 1\n{top}space: {DIGITS}\ndata:\n  dataset: digits\n")
    return path


def _first(lines: list[str], start: str) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(start))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A finished tiny digits run (its recipe, its folder), whose supernet later runs reuse."""
    folder = tmp_path_factory.mktemp("ir")
    path, out = _recipe(folder), folder / "first"
    assert run_mod.Run(load_recipe(path, TINY), out, tty=False).execute()
    return path, out


# ---------------------------------------------------------------- 1. refused after the start-up: the error alone
def test_a_budget_below_the_smallest_network_prints_no_threads_line(tmp_path, capsys):
    budgets = [o for o in TINY if not o.startswith("search.epsilons")] + ["search.budgets=[1]"]
    code, out, err = cli_out_err(capsys, "run", _recipe(tmp_path), *budgets, "--out", tmp_path / "o")
    assert code == 2 and "search.budgets[0]: override search.budgets=[1]: 1 is below the smallest architecture of " \
        "digits" in err, err
    assert "threads:" not in out + err, (out, err)
    assert not (tmp_path / "o").exists()  # the failed start-up left nothing


def test_a_supernet_of_other_settings_prints_no_threads_line(trained, tmp_path, capsys):
    path, first = trained
    code, out, err = cli_out_err(capsys, "run", path, *TINY, "search.lam=3", "--out", tmp_path / "o",
                                 "--supernet", first)
    assert code == 2 and "trained with other settings" in err and "--supernet-force" in err, err
    assert "threads:" not in out + err, (out, err)


# 10 training and 2 test PNGs (8 x 8) a class
_write_images = partial(helpers.write_images, per_class=10, val_per_class=2, size=8, ext="png")


def _folder_overrides(tmp_path: Path) -> tuple[Path, list[str]]:
    data = _write_images(tmp_path / "imgs")
    space = tmp_path / "rgb.space"
    space.write_text(DIGITS.read_text().replace("input 1 x", "input 3 x"))
    return data, [f"space={space}", "data.dataset=imagefolder", f"data.root={data}", "space_args.classes=2",
                  "data.image_size=8", "data.batch_size=4", "data.theta_batch_size=4", "data.test_batch_size=64",
                  "threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
                  "search.supernets=1", "search.lam=2", "search.budgets=[null]", "export.onnx=false"]


def test_a_supernet_trained_on_other_data_prints_no_threads_line(tmp_path, capsys):
    """Refused once the data is loaded (reuse.on_data), after the start-up's own checks: was below the threads
    line."""
    data, overrides = _folder_overrides(tmp_path)
    first = tmp_path / "A"
    Run(load_recipe(QUICK, overrides), first, tty=False).execute()
    Image.fromarray(np.full((8, 8, 3), 7, dtype=np.uint8)).save(data / "train" / "a" / "extra.png")
    capsys.readouterr()
    code, out, err = cli_out_err(capsys, "run", QUICK, *overrides, "--out", tmp_path / "B", "--supernet", first)
    assert code == 2 and "trained on other training data" in err and "--supernet-force" in err, err
    assert "threads:" not in out + err, (out, err)
    assert not (tmp_path / "B").exists()


def test_a_resume_of_another_recipe_prints_no_threads_line(trained, tmp_path, capsys):
    path, first = trained
    out_dir = tmp_path / "copy"
    shutil.copytree(first, out_dir)
    code, out, err = cli_out_err(capsys, "run", path, *TINY, "seed=5", "--out", out_dir, "--resume")
    assert code == 2 and "--resume: the recipe differs" in err and "seed: 0 there, 5 here" in err, err
    assert "threads:" not in out + err, (out, err)


def test_a_resume_holding_a_supernet_of_another_shape_is_refused_before_anything_is_said(trained, tmp_path,
                                                                                          die_after_save, capsys):
    """A resumed run whose reused supernet is not its space's (an older automl forced one of another shape): the
    refusal alone, before the ``resuming`` line (was said above it) and the threads line."""
    path, first = trained
    extra = [*TINY, "search.lam=3", f"supernet={first}", "supernet_force=true"]
    out_dir = tmp_path / "B"
    die_after_save(lambda state, n: n == 1)
    with pytest.raises(KeyboardInterrupt):
        Run(load_recipe(path, extra), out_dir, tty=False).execute()
    store = CheckpointStore(out_dir / "checkpoints")
    ckpt = store.load()
    assert ckpt["supernet_origin"]["from"] == str(first.absolute()), ckpt["supernet_origin"]
    store.save({**ckpt, "supernet": {"w": torch.zeros(3)}})
    before = {f.name: f.read_bytes() for f in out_dir.iterdir() if f.is_file() and f.name != ".lock"}
    capsys.readouterr()
    code, out, err = cli_out_err(capsys, "run", path, *extra, "--out", out_dir, "--resume")
    assert code == 2 and "its supernet has another shape" in err, err
    assert "resuming" not in out + err and "threads:" not in out + err, (out, err)
    assert {f.name: f.read_bytes() for f in out_dir.iterdir() if f.is_file() and f.name != ".lock"} == before


# ---------------------------------------------------------------- 1. runs that go on still say it
def test_a_run_says_the_threads_line_before_its_first_epoch(tmp_path, capsys):
    code, out, err = cli_out_err(capsys, "run", _recipe(tmp_path), *TINY, "--out", tmp_path / "o")
    assert code == 0, err
    lines = out.splitlines()
    assert lines.count("threads: 1 (from the recipe)") == 1, lines
    assert lines.index("threads: 1 (from the recipe)") < _first(lines, "weights epoch"), lines


def test_a_reusing_run_says_it_once_before_its_first_epoch(trained, tmp_path, capsys):
    path, first = trained
    code, out, err = cli_out_err(capsys, "run", path, *TINY, "search.lam=3", "--out", tmp_path / "o",
                                 "--supernet", first, "--supernet-force")
    assert code == 0, err
    lines = out.splitlines()
    assert lines.count("threads: 1 (from the recipe)") == 1, lines
    assert lines.index("threads: 1 (from the recipe)") < _first(lines, "theta epoch"), lines


def test_a_resume_warns_of_a_lost_count_then_says_the_line_before_its_first_epoch(tmp_path, monkeypatch,
                                                                                  die_after_save, capsys):
    """threads: auto, killed after its first checkpoint (one that records no count: an older automl's), its
    threads.json deleted: the resume warns that no record holds the count, then says the line, then computes."""
    monkeypatch.setattr(th, "choose_threads", lambda *a, **k: (1, "a test machine"))
    real = RunState.to_checkpoint
    monkeypatch.setattr(RunState, "to_checkpoint", lambda self: {k: v for k, v in real(self).items()
                                                                  if k != "threads"})
    extra = [*TINY, "search.weight_epochs=2"]
    path, out_dir = _recipe(tmp_path, name="auto.yaml"), tmp_path / "k"
    path.write_text(path.read_text().replace("threads: 1\n", "threads: auto\n"))
    die_after_save(lambda state, n: n == 1)
    with pytest.raises(KeyboardInterrupt):
        Run(load_recipe(path, extra), out_dir, tty=False).execute()
    (out_dir / "threads.json").unlink()
    capsys.readouterr()
    Run(load_recipe(path, extra), out_dir, resume=True, tty=False).execute()
    lines = capsys.readouterr().out.splitlines()
    said = _first(lines, "threads: 1 (auto: a test machine)")
    warned = _first(lines, f"warning: {out_dir / 'threads.json'}, the thread count this run started with")
    assert _first(lines, f"resuming {out_dir} at ") < warned < said < _first(lines, "weights epoch"), lines


def test_automl_rank_still_says_the_threads_line(trained, tmp_path, capsys):
    _, first = trained
    out_dir = tmp_path / "copy"
    shutil.copytree(first, out_dir)
    code, out, err = cli_out_err(capsys, "rank", out_dir, "--archs", "3", "--retrain-epochs", "1")
    assert code == 0, err
    assert out.splitlines().count("threads: 1 (from the recipe)") == 1, out


# ---------------------------------------------------------------- 2. a supernet an older automl recorded as forced
def _old_forced_run(tmp_path: Path) -> tuple[Path, dict]:
    """A run folder as an older automl left it after a forced reuse: its checkpoint records its own recipe's
    fingerprint (not its source's), its origin forced with the source's digest."""
    recipe = load_recipe(QUICK, [*TINY, "search.weight_epochs=2"])
    ours = weights_fingerprint(recipe, DIGITS, {k: str(v) for k, v in recipe.space_args.items()})
    source = {**ours, "search.weight_epochs": 1}
    origin = {"from": str(tmp_path / "A"), "fingerprint": fingerprint_digest(source), "forced": True,
              "differs": ["search.weight_epochs: 1 there, 2 here"]}
    folder = tmp_path / "B"
    CheckpointStore(folder / "checkpoints").save({
        "format": CKPT_FORMAT, "recipe_sha256": "x", "stage": 1, "supernet": {"w": torch.zeros(3)},
        "supernet_origin": origin, "weights_fingerprint": ours})
    return folder, ours


@pytest.mark.parametrize("given", [FLAG, Given("r.yaml", 4)])
def test_an_older_forced_reuse_names_both_ways_of_forcing(tmp_path, given):
    folder, ours = _old_forced_run(tmp_path)
    with pytest.raises((UserError, RecipeError)) as e:
        load_supernet(folder, ours, False, DIGITS, given)
    text = str(e.value)
    assert (f"{folder} was forced (--supernet-force / supernet_force: true) to reuse the supernet of "
            f"{tmp_path / 'A'}, trained with other settings: search.weight_epochs: 1 there, 2 here") in text, text
    assert "(forced)" not in text and "with --supernet-force," not in text, text
    reused = load_supernet(folder, ours, True, DIGITS, given)
    assert reused.origin["forced"] and "forced (--supernet-force / supernet_force: true)" in reused.differs[0]


def test_automl_rank_refused_after_its_start_up_prints_no_threads_line(tmp_path, capsys):
    """automl rank on a run whose training data changed since (check_same_data, after rank's start-up): the
    refusal alone, as for automl run."""
    data, overrides = _folder_overrides(tmp_path)
    first = tmp_path / "A"
    Run(load_recipe(QUICK, overrides), first, tty=False).execute()
    Image.fromarray(np.full((8, 8, 3), 7, dtype=np.uint8)).save(data / "train" / "a" / "extra.png")
    capsys.readouterr()
    code, out, err = cli_out_err(capsys, "rank", first, "--archs", "3", "--retrain-epochs", "0")
    assert code == 2 and "automl rank" in err, err
    assert "threads:" not in out + err, (out, err)
