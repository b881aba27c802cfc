"""Review NH: a retraining is checkpointed after its last epoch too (its test evaluation, export and measurements
follow, which take minutes on real data): a kill during them resumes with the trained weights and redoes only
them, never an epoch of training, with an uninterrupted run's results; the weight and θ phases, whose own end
checkpoint follows their last epoch at once, write no second one. The ranking's retrainings check the GPU's
memory for their optimiser's copies of the weights (AdamW: 4), as the members' do."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import automl.pipeline.final_stages as final_stages
from automl.pipeline import Run
from automl.recipe import load_recipe
from automl.train import loops
from automl.train.checkpoint import CheckpointStore
from conftest import Killed

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
TINY = ["data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.weight_epochs=2", "search.theta_epochs=2", "search.epsilons=[0]", "search.lam=2",
        "search.supernets=1", "retrain.epochs=2", "export.onnx=false", "search.log_every=1", "device=cpu",
        "threads=1"]
RANKING = ["ranking.archs=3", "ranking.retrain_epochs=2", "ranking.bn_batches=1"]


def _lines(out: Path) -> list[tuple]:
    """metrics.jsonl without its clock: every field but ``seconds``, in order."""
    return [tuple(sorted((k, v) for k, v in json.loads(x).items() if k != "seconds"))
            for x in (out / "metrics.jsonl").read_text().splitlines()]


def _counting(monkeypatch) -> tuple[list, list]:
    """Count the retraining steps (ranking ones too) and record every checkpoint's (stage, epoch, step)."""
    steps, saves = [], []
    real_step, real_save = final_stages.RetrainTask.step, CheckpointStore.save

    def step(self, epoch, i, batch):
        steps.append((self.phase, epoch, i))
        return real_step(self, epoch, i, batch)

    def save(self, state):
        saves.append((state["stage"], state["epoch"], state["step"]))
        return real_save(self, state)

    monkeypatch.setattr(final_stages.RetrainTask, "step", step)
    monkeypatch.setattr(CheckpointStore, "save", save)
    return steps, saves


def _dies_once(monkeypatch, name: str, phase: str) -> None:
    """``final_stages.<name>`` (the export, or the test evaluation) raises :class:`Killed` on its first call for a
    phase starting with ``phase``, as a kill during it would stop the run; later calls run."""
    real = getattr(final_stages, name)

    if name == "Exporter":
        export = real.__call__

        def call(self, ctx, folder_name, *args, **kwargs):
            monkeypatch.setattr(final_stages.Exporter, "__call__", export)
            raise Killed()
        monkeypatch.setattr(final_stages.Exporter, "__call__", call)
        return

    def evaluate(ctx, model, ph, *args, **kwargs):
        if ph.startswith(phase):
            monkeypatch.setattr(final_stages, name, real)
            raise Killed()
        return real(ctx, model, ph, *args, **kwargs)
    monkeypatch.setattr(final_stages, name, evaluate)


@pytest.mark.parametrize("overrides,target,phase", [
    ([], "Exporter", "retrain"),           # during the member's export (ONNX, latency, int8 on real data)
    ([], "evaluate", "retrain"),           # during its test evaluation
    (RANKING, "evaluate", "ranking 2/3"),  # a ranking retraining's test evaluation
])
def test_a_kill_after_a_retrainings_training_does_not_retrain_it(tmp_path, monkeypatch, overrides, target, phase):
    recipe = load_recipe(QUICK, TINY + overrides)
    steps, saves = _counting(monkeypatch)
    reference = Run(recipe, tmp_path / "ref", tty=False).execute()
    trained, written = list(steps), list(saves)
    assert trained  # the retrainings trained

    steps.clear()
    saves.clear()
    _dies_once(monkeypatch, target, phase)
    with pytest.raises(KeyboardInterrupt):
        Run(recipe, tmp_path / "killed", tty=False).execute()
    assert not (tmp_path / "killed" / "results.json").exists()
    before = list(steps)
    steps.clear()
    resumed = Run(recipe, tmp_path / "killed", resume=True, tty=False).execute()
    # the killed retraining's epochs are not trained again: the two parts trained each step once, as one run does
    assert sorted(before + steps) == sorted(trained)
    killed_phase = before[-1][0]
    assert killed_phase.startswith(phase) and not [s for s in steps if s[0] == killed_phase]

    def strip(r):  # the ranking but its clock
        return ([(a["choices"], a["params"], a["test_accuracy"], a["weights"]) for a in r["architectures"]],
                {k: v for k, v in (r.get("ranking") or {}).items() if k != "seconds"})

    assert strip(resumed) == strip(reference)
    # the same weights exported, and the same lines logged (every step once: those after the checkpoint were cut)
    for folder in (tmp_path / "ref" / "export").iterdir():
        for f in folder.glob("*.safetensors"):
            assert f.read_bytes() == (tmp_path / "killed" / "export" / folder.name / f.name).read_bytes()
    assert _lines(tmp_path / "killed") == _lines(tmp_path / "ref")
    # the uninterrupted run: a checkpoint after each retraining's last epoch, none after the weight and θ phases'
    # last (their stage's own follows at once)
    assert (0, 1, 0) in written and (0, 2, 0) not in written and (1, 0, 0) in written
    assert (1, 1, 0) in written and (1, 2, 0) not in written and (2, 0, 0) in written
    retrain_stages = sorted({s for s, e, _ in written if s >= 2 and e > 0})
    assert retrain_stages and all((s, 2, 0) in written and (s + 1, 0, 0) in written for s in retrain_stages)


def test_resume_from_a_checkpoint_inside_a_retraining_still_trains_its_last_epoch(tmp_path, monkeypatch,
                                                                                 die_after_save):
    """A checkpoint before the retraining's last epoch (as every automl writes; an older one's newest checkpoint
    when it was killed during the export): the resume trains the last epoch, and the results are the same."""
    recipe = load_recipe(QUICK, TINY)
    steps, _ = _counting(monkeypatch)
    reference = Run(recipe, tmp_path / "ref", tty=False).execute()
    per_epoch = len(steps) // 2
    steps.clear()
    die_after_save(lambda state, n: state["stage"] == 2 and state["epoch"] == 1)
    with pytest.raises(KeyboardInterrupt):
        Run(recipe, tmp_path / "killed", tty=False).execute()
    steps.clear()
    resumed = Run(recipe, tmp_path / "killed", resume=True, tty=False).execute()
    assert len(steps) == per_epoch and {e for _, e, _ in steps} == {1}
    assert [a["test_accuracy"] for a in resumed["architectures"]] == \
        [a["test_accuracy"] for a in reference["architectures"]]
    assert _lines(tmp_path / "killed") == _lines(tmp_path / "ref")


@pytest.mark.parametrize("ema", [None, 0.9])
def test_ranking_retrainings_check_the_gpu_for_their_optimisers_copies(tmp_path, monkeypatch, ema):
    """retrain.optimizer adamw: every stand-alone network the retrainings (the members' and the ranking's) train
    is checked for 4 copies of its weights (weights, gradients, AdamW's two moments), not SGD's 3."""
    seen = []
    real = loops.for_training

    def for_training(model, device, *, copies=None):
        seen.append((sys._getframe(1).f_code.co_name, sys._getframe(1).f_globals["__name__"], copies))
        return real(model, device, copies=copies)

    monkeypatch.setattr(loops, "for_training", for_training)
    recipe = load_recipe(QUICK, TINY + RANKING + ["retrain.optimizer=adamw", "search.weight_epochs=1",
                                                  "search.theta_epochs=1", "retrain.epochs=1",
                                                  "ranking.retrain_epochs=1"] + ([f"retrain.ema={ema}"] if ema else []))
    Run(recipe, tmp_path / "run", tty=False).execute()
    standalone = [c for fn, mod, c in seen if mod == final_stages.__name__]
    assert len(standalone) == 4  # one member, three ranking retrainings
    expected = loops.training_copies("adamw", supernet=False, ema=ema)
    assert expected.count == (5 if ema else 4)  # retrain.ema: timm's averaged copy too
    assert all(c == expected for c in standalone), standalone
