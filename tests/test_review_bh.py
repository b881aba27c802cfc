"""Review BH: checkpoints and resume (automl/train/checkpoint.py, automl/pipeline/reuse.py): a damaged or foreign
checkpoint is named in one message, a kill at any point of a checkpoint write leaves the old or the new one, and a
resume inside the θ phase of ``search.method separate`` equals the uninterrupted run bit for bit (CPU)."""

from __future__ import annotations

import io
import json
import logging
import os
import pathlib
from pathlib import Path

import pytest
import torch

from automl.pipeline import Run
from automl.pipeline.state import CKPT_FORMAT
from automl.recipe import load_recipe
from automl.train.checkpoint import KEEP, CheckpointStore

from test_user_errors_run import FAST, QUICK, cli  # the tiny quickstart run, and the CLI without a traceback


def source_run(folder: Path, formats=(CKPT_FORMAT, CKPT_FORMAT), supernets=(False, True)) -> CheckpointStore:
    """A run folder as a run leaves it: checkpoint 1 inside its weight phase (no supernet yet), checkpoint 2 at
    the weight phase's end (a trained supernet)."""
    folder.mkdir(parents=True)
    store = CheckpointStore(folder / "checkpoints")
    origin = {"from": None, "fingerprint": "x", "forced": False, "differs": []}
    for i, (fmt, trained) in enumerate(zip(formats, supernets)):
        store.save({"format": fmt, "recipe_sha256": "x", "stage": i, "supernet_origin": origin,
                    "supernet": {"w": torch.zeros(3)} if trained else None})
    return store


# ------------------------------------------------------------------------------------ --supernet RUN_DIR


@pytest.mark.parametrize("damage", ["empty", "truncated", "missing"])
def test_supernet_whose_newest_checkpoint_is_damaged_names_it_not_an_unfinished_weight_phase(tmp_path, capsys,
                                                                                             damage):
    """The weight phase finished and its checkpoint is damaged: the fallback (inside the weight phase) has no
    supernet. The message names the damaged file; it does not claim the weight phase never finished."""
    src = tmp_path / "src"
    source_run(src)
    newest = src / "checkpoints" / "ckpt-000002.pt"
    if damage == "missing":
        newest.unlink()
    else:
        newest.write_bytes(b"" if damage == "empty" else newest.read_bytes()[:100])
    code, err = cli(capsys, "run", QUICK, *FAST, "--supernet", src, "--out", tmp_path / "new")
    err = err.strip().splitlines()[-1]
    assert code == 2 and str(newest) in err and str(src / "checkpoints" / "ckpt-000001.pt") in err
    assert ("missing" if damage == "missing" else "corrupted") in err
    assert "has not finished" not in err and "another run's folder" in err and "--resume" in err
    if damage == "empty":
        assert "0 bytes" in err
    assert not (tmp_path / "new").exists()


def test_supernet_of_a_checkpoint_of_another_format_is_refused_naming_the_file(tmp_path, capsys):
    src = tmp_path / "src"
    source_run(src, formats=(CKPT_FORMAT, CKPT_FORMAT + 1), supernets=(True, True))
    code, err = cli(capsys, "run", QUICK, *FAST, "--supernet", src, "--out", tmp_path / "new")
    assert code == 2 and str(src / "checkpoints" / "ckpt-000002.pt") in err
    assert f"format {CKPT_FORMAT + 1}" in err and f"format {CKPT_FORMAT}" in err and "version" in err
    assert not (tmp_path / "new").exists()


# ------------------------------------------------------------------------------------ CheckpointStore.load


def _save_raw(store: CheckpointStore, obj) -> Path:
    """A file that loads with weights_only (so its checksum matches) but is not a dict."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    real = torch.save
    try:
        torch.save = lambda state, f: f.write(buf.getvalue())
        return store.save({})
    finally:
        torch.save = real


def test_a_checkpoint_that_is_not_a_dict_is_refused_and_the_previous_one_used(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save({"n": 1})
    _save_raw(store, [1, 2])
    resumed = CheckpointStore(tmp_path)
    assert resumed.load() == {"n": 1} and resumed.loaded == tmp_path / "ckpt-000001.pt"
    assert "ckpt-000002.pt was refused (it holds a list" in resumed.problems[0]
    only = CheckpointStore(tmp_path / "only")
    _save_raw(only, torch.zeros(2))
    assert only.load() is None and "holds a Tensor" in only.why_none()


def test_the_last_listed_checkpoint_does_not_promise_a_previous_one(tmp_path, caplog):
    store = CheckpointStore(tmp_path)
    store.save({"n": 1})
    store.save({"n": 2})
    for p in tmp_path.glob("ckpt-*.pt"):
        p.write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        assert store.load() is None
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and "trying the previous one" in warnings[0]
    assert "ckpt-000001.pt" in warnings[1] and "trying the previous one" not in warnings[1]
    assert "no earlier one" in warnings[1] and "0 bytes" in warnings[1]


class _Killed(BaseException):
    """Stands for SIGKILL: once raised, no later file operation of the process happens (no clean-up either)."""


def _kill_after(monkeypatch, k: int) -> list[str]:
    """Make the (k+1)-th file operation of a checkpoint write (create, write, fsync, rename, unlink) and every
    one after it raise :class:`_Killed`. Returns the operations that ran."""
    ran: list[str] = []
    dead = [False]

    def wrap(name, real):
        def op(*a, **kw):
            if dead[0] or len(ran) == k:
                dead[0] = True
                raise _Killed
            ran.append(name)
            return real(*a, **kw)
        return op

    for owner, name in [(os, "open"), (os, "fsync"), (os, "replace"), (pathlib.Path, "write_bytes"),
                        (pathlib.Path, "unlink")]:
        monkeypatch.setattr(owner, name, wrap(name, getattr(owner, name)))
    return ran


def test_a_kill_at_every_point_of_a_checkpoint_write_leaves_the_old_or_the_new_one(tmp_path, monkeypatch):
    """Kill at each file operation of a save in turn: the folder then loads the previous checkpoint or the new
    one, never neither; the resume's clean-up leaves the index's files only, at most KEEP of them; and the
    next save works. The new one is loaded only once its index names it (after its file is durable)."""
    k, outcomes = 0, []
    while True:
        folder = tmp_path / f"k{k}"
        store = CheckpointStore(folder)
        store.save({"n": 1})
        store.save({"n": 2})
        ran = _kill_after(monkeypatch, k)
        try:
            store.save({"n": 3})
            finished = True
        except _Killed:
            finished = False
        monkeypatch.undo()
        resumed = CheckpointStore(folder)
        state = resumed.load()
        assert state is not None and state["n"] in (2, 3), (k, ran)
        if state["n"] == 3:  # the index names it: its file was renamed into place and flushed first
            assert "replace" in ran and ran.index("fsync") < ran.index("replace"), ran
        outcomes.append(state["n"])
        resumed.remove_temporaries()
        named = {e["file"] for e in json.loads(resumed.index_path.read_text())["checkpoints"]}
        assert sorted(p.name for p in folder.iterdir()) == sorted(named | {"checkpoints.json"}), (k, ran)
        assert len(named) <= KEEP
        resumed.save({"n": 4})
        assert CheckpointStore(folder).load() == {"n": 4}
        assert len(list(folder.glob("ckpt-*.pt"))) == KEEP
        if finished:
            break
        k += 1
    assert outcomes[0] == 2 and outcomes[-1] == 3 and k >= 6  # killed before, during and after the write


# ------------------------------------------------------------------------------------ resume inside θ of `separate`

# D_θ of 64 of 128 images: 2 θ steps per epoch; every step checkpointed and logged
SEPARATE = ["threads=1", "device=cpu", "search.method=separate", "search.weight_epochs=1", "search.theta_epochs=2",
            "retrain.epochs=0", "search.supernets=1", "data.limit_train=128", "data.batch_size=32",
            "data.theta_batch_size=32", "search.lam=2", "search.budgets=null", "search.epsilons=[0,0.5]",
            "export.onnx=false", "search.log_every=1", "checkpoint.every_steps=1"]


def _metrics(out: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_resume_inside_the_second_members_theta_epoch_of_separate_equals_the_uninterrupted_run(tmp_path,
                                                                                               die_after_save):
    """search.method separate has a θ stage per member (theta/0, theta/1): killed right after a checkpoint
    inside theta/1's second epoch, the resumed run gives the uninterrupted run's architectures, accuracies,
    θ engine and metrics.jsonl, bit for bit."""
    recipe = load_recipe(QUICK, SEPARATE)
    ref = Run(recipe, tmp_path / "ref", tty=False).execute()
    saved = die_after_save(lambda st, n: (st["stage"], st["epoch"], st["step"]) == (2, 1, 1))
    with pytest.raises(KeyboardInterrupt):
        Run(recipe, tmp_path / "run", tty=False).execute()
    assert saved[-1] == (2, 1, 1)
    ckpt = CheckpointStore(tmp_path / "run" / "checkpoints").load()
    assert set(ckpt["inner"]) == {"engine", "sums"}  # inside the θ stage of member 1
    resumed = Run(recipe, tmp_path / "run", resume=True, tty=False).execute()

    def strip(r):
        return [(a["choices"], a["params"], a["test_accuracy"], a["epsilon"]) for a in r["architectures"]]

    assert strip(resumed) == strip(ref)
    assert _metrics(tmp_path / "run") == _metrics(tmp_path / "ref")
    assert any(x["phase"] == "theta eps=0.5" and x["epoch"] == 2 for x in _metrics(tmp_path / "ref"))
