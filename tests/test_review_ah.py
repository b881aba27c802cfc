"""Review AH: the checkpoint records the device a run computes on (as results.json does); ``automl rank`` reuses
the retrainings a run killed in its ranking finished only when that device is the one it computes on now, and a
``--resume`` on another device warns."""

from __future__ import annotations

import shutil

import pytest
import yaml

from automl.cli import main
from automl.pipeline import Run
from automl.recipe import load_recipe
from automl.train.checkpoint import CheckpointStore

from test_ranking import QUICK, TINY  # the ranking tests' tiny synthetic run (device: auto, a CPU here)
from test_review_s import FIRST_RANKING_STAGE, RANKING, _retrainings

GPU = "cuda (NVIDIA H200)"


def _rewrite_checkpoint(out, **fields) -> dict:
    """The run's newest checkpoint saved again with ``fields`` (a value None: the key removed, as an older automl
    wrote it). Returns the checkpoint as it was."""
    store = CheckpointStore(out / "checkpoints")
    ckpt = store.load()
    new = {k: v for k, v in {**ckpt, **fields}.items() if fields.get(k, v) is not None}
    store.save(new)
    return ckpt


def _rewrite_retrainings(out, device: str | None) -> None:
    """Each ranking retraining's own record (``computed_on``) in the run's newest checkpoint saved again with
    ``device`` (None: the record removed, as an automl older than it wrote it)."""
    store = CheckpointStore(out / "checkpoints")
    ckpt = store.load()
    for key, entry in ckpt["results"].items():
        if key.startswith("ranking/") and device is None:
            entry.pop("computed_on", None)
        elif key.startswith("ranking/"):
            entry["computed_on"] = {seed: {**how, "device": device} for seed, how in entry["computed_on"].items()}
    store.save(ckpt)


@pytest.fixture
def killed_in_its_ranking(tmp_path, die_after_save):
    """A run with a ranking section (3 architectures, 2 seeds) killed at the start of its fourth retraining (three
    finished)."""
    die_after_save(lambda state, n: state["stage"] == FIRST_RANKING_STAGE + 3 and state["epoch"] == 0)
    with pytest.raises(KeyboardInterrupt):
        Run(load_recipe(QUICK, TINY + RANKING), tmp_path / "run", tty=False).execute()
    return tmp_path / "run"


def test_automl_rank_never_reuses_a_killed_runs_retrainings_of_another_device(killed_in_its_ranking, monkeypatch):
    """The checkpoint says the run (and each retraining) computed on a GPU, automl rank computes on the CPU (both
    ``device: auto``): all six retrainings run; with the checkpoint's record of the CPU the three finished ones are
    reused."""
    out = killed_in_its_ranking
    shutil.copytree(out, out.parent / "same")
    _rewrite_checkpoint(out, device=GPU)
    _rewrite_retrainings(out, GPU)
    calls = _retrainings(monkeypatch)
    assert main(["rank", str(out)]) == 0
    assert sorted(calls) == [0, 0, 0, 1, 1, 1]
    calls.clear()
    assert main(["rank", str(out.parent / "same")]) == 0
    assert sorted(calls) == [0, 1, 1]


def test_automl_rank_on_an_older_checkpoint_compares_the_recipes_device(killed_in_its_ranking, monkeypatch):
    """A checkpoint without the records (older automl: neither the run's device nor each retraining's): reused when
    the command's device setting is the run's recipe's, not when it is another (``--device cpu`` on a
    ``device: auto`` run)."""
    out = killed_in_its_ranking
    _rewrite_checkpoint(out, device=None)
    _rewrite_retrainings(out, None)
    shutil.copytree(out, out.parent / "other")
    calls = _retrainings(monkeypatch)
    assert main(["rank", str(out)]) == 0
    assert sorted(calls) == [0, 1, 1]
    calls.clear()
    assert main(["rank", str(out.parent / "other"), "--device", "cpu"]) == 0
    assert sorted(calls) == [0, 0, 0, 1, 1, 1]


def test_automl_rank_with_device_flag_reuses_what_the_run_computed_on_that_device(killed_in_its_ranking,
                                                                                    monkeypatch):
    """``--device cpu`` on a ``device: auto`` run that computed on the CPU: the checkpoint's record matches."""
    out = killed_in_its_ranking
    recipe = yaml.safe_load((out / "recipe.resolved.yaml").read_text())
    assert recipe.get("device", "auto") == "auto"
    calls = _retrainings(monkeypatch)
    assert main(["rank", str(out), "--device", "cpu"]) == 0
    assert sorted(calls) == [0, 1, 1]


def test_resume_on_another_device_warns_and_records_both(tmp_path, die_after_save, capsys):
    """A run started on a GPU (its checkpoint says so) resumed on the CPU: one warning naming both devices, and its
    checkpoints then record both (automl rank then goes by each retraining's own record of its device)."""
    recipe = load_recipe(QUICK, TINY + ["search.weight_epochs=2"])
    out = tmp_path / "k"
    die_after_save(lambda state, n: n == 1)
    with pytest.raises(KeyboardInterrupt):
        Run(recipe, out, tty=False).execute()
    _rewrite_checkpoint(out, device=GPU)
    capsys.readouterr()
    Run(recipe, out, resume=True, tty=False).execute()
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning: ")]
    device = [w for w in warnings if GPU in w]
    assert len(device) == 1 and "cpu now" in device[0] and "computed on" in device[0], warnings
    assert CheckpointStore(out / "checkpoints").load()["device"] == f"{GPU}, then cpu"


def test_resume_on_the_same_device_does_not_warn(tmp_path, die_after_save, capsys):
    recipe = load_recipe(QUICK, TINY + ["search.weight_epochs=2"])
    out = tmp_path / "k"
    die_after_save(lambda state, n: n == 1)
    with pytest.raises(KeyboardInterrupt):
        Run(recipe, out, tty=False).execute()
    capsys.readouterr()
    Run(recipe, out, resume=True, tty=False).execute()
    assert not [line for line in capsys.readouterr().out.splitlines() if "computed on" in line]
    assert CheckpointStore(out / "checkpoints").load()["device"] == "cpu"
