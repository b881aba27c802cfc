"""Review KJ: ``--supernet`` on a finished run whose checkpoints were removed says the run finished and how to get
a supernet again (not that it stopped before its first checkpoint); a checkpoint file given is said to be one; a
run of a method without a shared supernet (simultaneous) is said to train no shared supernet; the refusal of other
settings is one public check (:func:`~automl.pipeline.reuse.check_differences`) that a caller may make after the
recipe's own checks."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.errors import UserError
from automl.pipeline.reuse import check_differences, fingerprint_digest, load_supernet
from automl.pipeline.state import CKPT_FORMAT
from automl.train.checkpoint import CheckpointStore

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
FP = {"seed": 0}  # a weights fingerprint: both sides the same, so nothing differs


def _run(folder: Path, supernet=None, origin=True) -> Path:
    """A run folder whose checkpoint holds ``supernet`` (a trained one's place); ``origin`` False: as a run of a
    method without a shared supernet records it (no supernet, no supernet_origin)."""
    CheckpointStore(folder / "checkpoints").save({
        "format": CKPT_FORMAT, "recipe_sha256": "x", "stage": 1,
        "supernet": None if not origin else {"w": torch.zeros(3)} if supernet is None else supernet,
        "supernet_origin": {"from": None, "fingerprint": fingerprint_digest(FP), "forced": False, "differs": []}
        if origin else None,
        "weights_fingerprint": FP})
    return folder


def _refused(source: Path, ours=FP) -> str:
    with pytest.raises(UserError) as e:
        load_supernet(source, ours, False, None)
    return str(e.value)


def _finished_without_checkpoints(folder: Path, keep: str = "results.json", recipe: bool = True) -> Path:
    folder.mkdir()
    if recipe:
        (folder / "recipe.resolved.yaml").write_text("seed: 0\n")
    (folder / keep).write_text("{}")
    return folder


# ------------------------------------------------------------------------- a finished run, its checkpoints removed
@pytest.mark.parametrize("keep", ["results.json", "report.md"])
def test_finished_run_without_checkpoints_says_it_finished(tmp_path, keep):
    """was "it stopped before its first one ...; run it again (automl run RECIPE --out RUN ...)", which a finished
    run's folder refuses (it holds files)."""
    run = _finished_without_checkpoints(tmp_path / "run", keep)
    text = _refused(run)
    assert text.startswith(f"--supernet {run}: that run finished (its {keep} is there)"), text
    assert "stopped before its first one" not in text and f"--out {run}" not in text, text
    assert "restore its checkpoints/ folder (from a copy)" in text, text
    assert f"automl run {run / 'recipe.resolved.yaml'} --out NEW_DIR" in text, text


def test_finished_run_with_an_emptied_checkpoints_folder_and_no_recipe(tmp_path):
    run = _finished_without_checkpoints(tmp_path / "run", recipe=False)
    (run / "checkpoints").mkdir()
    text = _refused(run)
    assert "that run finished" in text and "automl run RECIPE --out NEW_DIR, with its recipe and overrides" in text
    assert "recipe.resolved.yaml" not in text, text


def test_a_run_stopped_before_its_first_checkpoint_is_still_said_so(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.resolved.yaml").write_text("seed: 0\n")
    text = _refused(run)
    assert "it stopped before its first one" in text and "finished" not in text, text


def test_finished_run_without_checkpoints_through_the_cli(tmp_path, capsys):
    run = _finished_without_checkpoints(tmp_path / "run")
    code = main(["run", QUICK, "device=cpu", "--out", str(tmp_path / "new"), "--supernet", str(run)])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2 and "Traceback" not in captured.out + captured.err and len(err.splitlines()) == 1, err
    assert "that run finished" in err and not (tmp_path / "new").exists(), err


# ----------------------------------------------------------------------------------------------- a checkpoint file
def test_a_checkpoint_file_is_said_to_be_one(tmp_path):
    """was "--supernet RUN/checkpoints/ckpt-000001.pt: no checkpoint there: ... is a file, not a run's folder"."""
    run = _run(tmp_path / "run")
    ckpt = next((run / "checkpoints").glob("ckpt-*.pt"))
    text = _refused(ckpt)
    assert text == (f"--supernet {ckpt} is a checkpoint file of the run in {run}; give the run's folder: "
                    f"--supernet {run}")
    index = run / "checkpoints" / "checkpoints.json"
    text = _refused(index)
    assert text.startswith(f"--supernet {index} is a file of the run in {run};") and "no checkpoint" not in text


# ------------------------------------------------------------------------------- a method without a shared supernet
def test_simultaneous_run_is_said_to_train_no_shared_supernet(tmp_path):
    """was "its search.method trains none" (Method 1 trains a supernet per member, none shared)."""
    run = _run(tmp_path / "run", origin=False)
    (run / "recipe.resolved.yaml").write_text("seed: 0\nsearch:\n  method: simultaneous\n")
    text = _refused(run)
    assert "its search.method simultaneous trains no shared supernet to reuse" in text, text
    (run / "recipe.resolved.yaml").write_text(": not yaml [\n")
    text = _refused(run)
    assert "its search.method trains no shared supernet to reuse" in text, text


# ------------------------------------------------------------------------------------- the settings' refusal, public
def test_check_differences_refuses_as_load_supernet_does(tmp_path):
    run = _run(tmp_path / "run")
    ours = {"seed": 1}
    said = _refused(run, ours)
    taken = load_supernet(run, ours, True, None)  # a caller checking the recipe first: read, refused after
    assert "seed: 0 there, 1 here" in taken.differs and taken.origin["forced"]
    with pytest.raises(UserError) as e:
        check_differences(taken.differs, run, False)
    assert str(e.value) == said and "pass --supernet-force" in said, said
    check_differences(taken.differs, run, True)
    check_differences([], run, False)
