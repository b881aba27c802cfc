"""Runs sharing an absolute ``export.dir`` (review Q, finding 7): every member's manifest.json names the run
that exported it (``run``: the run folder), and a run refuses at start-up (exit 2, before training) a member
folder there that another run exported; the same run's ``--resume``, also from a moved run folder, exports
there again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import export_architecture
from automl.pipeline import Run
from automl.pipeline.run import STARTUP_FILES
from automl.pipeline.setup import check_export_dir
from automl.recipe import load_recipe
from automl.train import loops
from helpers import cli_err as cli

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
DIGITS = str(ROOT / "spaces" / "digits.space")
# as TINY in test_user_errors_recipe.py: two members, exported to budget-0-none and budget-1-40k
TINY = ["threads=1", "data.limit_train=96", "data.batch_size=32", "data.theta_batch_size=32", "search.lam=2",
        "search.weight_epochs=1", "search.theta_epochs=1", "search.budgets=[null,40k]", "retrain.epochs=0",
        "export.onnx=false", "search.supernets=1", "device=cpu"]
FOLDERS = ["budget-0-none", "budget-1-40k"]

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


@pytest.fixture
def weight_steps(monkeypatch):
    """The weight steps the run took (none: it stopped before training)."""
    calls, real = [], loops.weight_step
    monkeypatch.setattr(loops, "weight_step", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """A finished run A exporting into the absolute export.dir ``models``: (A, models)."""
    base = tmp_path_factory.mktemp("shared")
    models, a = base / "models", base / "runs" / "a"
    assert main(["run", QUICK, *TINY, "seed=1", f"export.dir={models}", "--out", str(a)]) == 0
    return a, models


# ------------------------------------------------------------------------------------------ automl run, end to end


def test_every_member_manifest_names_the_run_folder(first):
    a, models = first
    assert sorted(p.name for p in models.iterdir()) == FOLDERS
    for name in FOLDERS:
        assert manifest(models / name)["run"] == str(a.resolve())


def test_the_default_export_folder_names_its_run_too(first):
    a, _ = first
    out = a.parent / "b-default"
    assert main(["run", QUICK, *TINY, "seed=2", "--out", str(out)]) == 0
    assert manifest(out / "export" / FOLDERS[0])["run"] == str(out.resolve())


def test_a_second_run_into_the_same_export_dir_stops_before_training(first, capsys, weight_steps):
    a, models = first
    before = {name: (models / name / "manifest.json").read_bytes() for name in FOLDERS}
    b = a.parent / "b"
    code, err = cli(capsys, "run", QUICK, *TINY, "seed=2", f"export.dir={models}", "--out", b)
    assert code == 2 and weight_steps == []
    assert len(err.strip().splitlines()) == 1
    assert "export.dir" in err and str(models / FOLDERS[0]) in err and str(a.resolve()) in err
    assert "remove" in err and "another" in err  # how to fix: another export.dir, or remove the folder
    assert {name: (models / name / "manifest.json").read_bytes() for name in FOLDERS} == before
    left = sorted(p.name for p in b.iterdir()) if b.exists() else []
    assert [n for n in left if n not in STARTUP_FILES] == []  # nothing a later run could not take over


def test_resuming_the_finished_run_is_not_refused(first, capsys):
    a, models = first
    code, err = cli(capsys, "run", QUICK, *TINY, "seed=1", f"export.dir={models}", "--out", a, "--resume")
    assert code == 0, err
    assert manifest(models / FOLDERS[1])["run"] == str(a.resolve())


def test_a_run_stopped_after_its_first_export_resumes_from_a_moved_folder(tmp_path, capsys, die_after_save):
    models, out, moved = tmp_path / "models", tmp_path / "run", tmp_path / "elsewhere" / "run"
    overrides = [*TINY, f"export.dir={models}"]
    # checkpoints: weight phase, θ phase, retrain/0 (member 0 exported), ...
    die_after_save(lambda state, n: n == 3)
    with pytest.raises(KeyboardInterrupt):
        Run(load_recipe(QUICK, overrides), out, tty=False).execute()
    assert manifest(models / FOLDERS[0])["run"] == str(out.resolve())
    assert not (models / FOLDERS[1] / "manifest.json").exists()
    moved.parent.mkdir()
    shutil.move(out, moved)
    code, err = cli(capsys, "run", QUICK, *overrides, "--out", moved, "--resume")
    assert code == 0, err
    assert json.loads((moved / "results.json").read_text())["architectures"]
    # member 0 was exported before the move and is not exported again; member 1 was exported after it
    assert manifest(models / FOLDERS[0])["run"] == str(out.resolve())
    assert manifest(models / FOLDERS[1])["run"] == str(moved.resolve())
    code, err = cli(capsys, "run", QUICK, *overrides, "--out", moved, "--resume")  # again: only the report
    assert code == 0, err


# ------------------------------------------------------------------------------- the rule, on written manifests


def owned(models: Path, name: str, run) -> Path:
    folder = models / name
    folder.mkdir(parents=True)
    record = {"choices": ["x"]} if run is None else {"choices": ["x"], "run": str(run)}
    (folder / "manifest.json").write_text(json.dumps(record))
    return folder


def recipe_into(models) -> object:
    return load_recipe(QUICK, ["search.budgets=[null,40k]", f"export.dir={models}"])


@pytest.mark.parametrize("resume", [False, True])
def test_another_existing_run_is_refused_new_or_resumed(tmp_path, resume):
    other, mine = tmp_path / "other", tmp_path / "mine"
    other.mkdir()
    folder = owned(tmp_path / "models", FOLDERS[1], other)
    with pytest.raises(UserError) as info:
        check_export_dir(recipe_into(tmp_path / "models"), mine, resume)
    text = info.value.text()
    assert "export.dir" in text and str(folder) in text and str(other) in text


def test_a_gone_run_folder_refuses_a_new_run_but_not_a_resume(tmp_path):
    """A new run exported nothing yet, so the export is another run's even if that folder was deleted; on
    --resume, a recorded folder that is gone is this run's before it was moved."""
    owned(tmp_path / "models", FOLDERS[0], tmp_path / "moved-away")
    recipe = recipe_into(tmp_path / "models")
    with pytest.raises(UserError, match="export.dir"):
        check_export_dir(recipe, tmp_path / "new", resume=False)
    check_export_dir(recipe, tmp_path / "new", resume=True)


def test_the_same_run_under_another_spelling_is_accepted(tmp_path, monkeypatch):
    (tmp_path / "runs" / "mine").mkdir(parents=True)
    owned(tmp_path / "models", FOLDERS[0], tmp_path / "runs" / "mine")
    (tmp_path / "link").symlink_to(tmp_path / "runs")
    monkeypatch.chdir(tmp_path)
    recipe = recipe_into(tmp_path / "models")
    for resume in (False, True):
        check_export_dir(recipe, Path("runs/mine"), resume)
        check_export_dir(recipe, tmp_path / "link" / "mine", resume)


def test_what_cannot_be_known_or_is_not_this_runs_is_accepted(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    models = tmp_path / "models"
    owned(models, FOLDERS[0], None)  # an older automl's manifest, or automl export's: no run recorded
    (models / FOLDERS[1]).mkdir()  # no manifest: an export cut short, or an empty folder
    owned(models, "eps-0.3", other)  # not a folder this run writes
    check_export_dir(recipe_into(models), tmp_path / "mine", resume=False)


def test_a_relative_export_dir_is_not_checked(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    mine = tmp_path / "mine"
    owned(mine / "models", FOLDERS[0], other)
    check_export_dir(recipe_into("models"), mine, resume=False)


def test_the_folders_checked_are_the_runs_members(tmp_path):
    """ε members are eps-<ε>; the random baseline's are random-<i>."""
    other = tmp_path / "other"
    other.mkdir()
    models = tmp_path / "models"
    owned(models, "eps-0.5", other)
    owned(models, "random-1", other)
    eps = load_recipe(QUICK, ["search.budgets=null", "search.epsilons=[0,0.5]", f"export.dir={models}"])
    with pytest.raises(UserError, match="eps-0.5"):
        check_export_dir(eps, tmp_path / "mine", resume=False)
    rnd = load_recipe(QUICK, ["search.method=random", "search.budgets=null", "search.random_budgets=[80k,40k]",
                              f"export.dir={models}"])
    with pytest.raises(UserError, match="random-1"):
        check_export_dir(rnd, tmp_path / "mine", resume=False, sampled=True)


# ---------------------------------------------------------------------------------------- export_architecture


def test_export_architecture_records_the_run_only_when_given(tmp_path):
    cs = load_compiled(DIGITS)
    arch = [d.choices[0] for d in cs.decisions]
    (tmp_path / "r").mkdir()
    m = export_architecture(cs, arch, tmp_path / "x", onnx=False, run=tmp_path / "r" / ".." / "r")
    assert m["run"] == str((tmp_path / "r").resolve()) == manifest(tmp_path / "x")["run"]
    assert "run" not in export_architecture(cs, arch, tmp_path / "y", onnx=False)


def test_a_member_folder_another_run_exported_into_meanwhile_stops_the_export(first, tmp_path, capsys,
                                                                                monkeypatch):
    """Runs started together pass the start-up check both; the one exporting second stops before replacing the
    other's model (exit 2, checkpoint intact) and, once that folder is moved away, resumes."""
    a, models = first
    shared, mine = tmp_path / "models", tmp_path / "b"
    real, calls = loops.weight_step, []

    def other_run_exports(*args, **kwargs):  # run A exports its second member while B trains
        if not calls:
            shutil.copytree(models / FOLDERS[1], shared / FOLDERS[1])
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(loops, "weight_step", other_run_exports)
    args = ["run", QUICK, *TINY, "seed=2", f"export.dir={shared}", "--out", mine]
    code, err = cli(capsys, *args)
    assert code == 2 and calls
    assert f"{shared / FOLDERS[1]} holds the model another run exported" in err and str(a.resolve()) in err
    assert f"--out {mine} --resume" in err
    assert manifest(shared / FOLDERS[1])["run"] == str(a.resolve())  # A's model is not replaced
    assert manifest(shared / FOLDERS[0])["run"] == str(mine.resolve())  # B's first member was exported
    shutil.rmtree(shared / FOLDERS[1])
    code, _ = cli(capsys, *args, "--resume")
    assert code == 0 and manifest(shared / FOLDERS[1])["run"] == str(mine.resolve())
