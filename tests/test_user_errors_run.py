"""User mistakes around a run's folder: what a failed start-up leaves, damaged checkpoints (``--resume``,
``automl rank``, ``--supernet``), an unwritable ``export.dir``, and the ``automl rank`` flags. Each ends in
one message (exit 2, no traceback) that says what is wrong and how to get out of it."""

import json
import logging
import shutil
from functools import partial
from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.pipeline.state import CKPT_FORMAT
from automl.recipe import load_recipe
from automl.train.checkpoint import CheckpointStore
from helpers import cli_err

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
FAST = ["threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
        "search.supernets=1", "data.limit_train=64", "data.batch_size=32", "data.theta_batch_size=32",
        "search.lam=2", "search.budgets=null", "search.epsilons=[0]", "export.onnx=false"]


cli = partial(cli_err, internal_ok=True)  # (code, stderr); no traceback


def fake_run(folder: Path, *, supernet=True, method="importance_sampling", files=2) -> Path:
    """A run folder as a finished (or cut short) run leaves it: recipe.resolved.yaml and ``files``
    checkpoints, the last with a trained supernet unless ``supernet`` is False."""
    folder.mkdir(parents=True)
    (folder / "recipe.resolved.yaml").write_text(load_recipe(QUICK, FAST + [f"search.method={method}"]).to_yaml())
    store = CheckpointStore(folder / "checkpoints")
    origin = {"from": None, "fingerprint": "x", "forced": False, "differs": []}
    for i in range(files):
        store.save({"format": CKPT_FORMAT, "recipe_sha256": "x", "stage": i,
                    "supernet": {"w": torch.zeros(3)} if supernet else None,
                    "supernet_origin": origin if method != "random" else None})
    return folder


def truncate_all(folder: Path) -> None:
    for p in (folder / "checkpoints").glob("ckpt-*.pt"):
        p.write_bytes(p.read_bytes()[:100])


# ----------------------------------------------------------------------- what a failed start-up leaves


def test_a_failed_start_up_leaves_a_folder_the_next_run_takes(tmp_path, capsys):
    out = tmp_path / "r"
    code, err = cli(capsys, "run", QUICK, *FAST, "threads=2", "space=/nonexist.space", "--out", out)
    assert code == 2 and "nonexist.space" in err
    assert not out.exists()  # a refused start-up in a new folder removes what it wrote, and the folder
    out.mkdir()  # what a killed start-up leaves: its lock and the thread choice made before the space is read
    (out / ".lock").write_text("")
    (out / "threads.json").write_text(json.dumps({"threads": 2}))
    code, err = cli(capsys, "run", QUICK, *FAST, "--out", out, "--resume")  # nothing to continue: starts afresh
    assert code == 0, err
    assert (out / "results.json").is_file()
    assert json.loads((out / "threads.json").read_text())["threads"] == 1  # the stale choice replaced


def test_a_folder_with_files_but_no_checkpoint_names_the_way_out(tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / "metrics.jsonl").write_text("{}\n")
    (out / "threads.json").write_text("{}\n")
    code, err = cli(capsys, "run", QUICK, *FAST, "--out", out)
    assert code == 2 and "already holds files" in err and "metrics.jsonl" in err
    assert "pass --resume" not in err and f"rm -r {out}" in err
    code, err = cli(capsys, "run", QUICK, *FAST, "--out", out, "--resume")
    assert code == 2 and "no checkpoint" in err and f"rm -r {out}" in err
    assert len(err.strip().splitlines()) == 1


def test_a_folder_with_a_checkpoint_points_to_resume(tmp_path, capsys):
    out = fake_run(tmp_path / "r")
    code, err = cli(capsys, "run", QUICK, *FAST, "--out", out)
    assert code == 2 and "already holds files" in err and "pass --resume" in err


def test_resume_with_a_garbled_index_says_so(tmp_path, capsys):
    out = fake_run(tmp_path / "r")
    (out / "checkpoints" / "checkpoints.json").write_text("{broken")
    code, err = cli(capsys, "run", QUICK, *FAST, "--out", out, "--resume")
    assert code == 2 and "checkpoints.json" in err and "damaged" in err
    assert "no checkpoint" not in err and f"rm -r {out}" in err
    code, err = cli(capsys, "run", QUICK, *FAST, "--out", out)  # and a new run there is refused with a way out
    assert code == 2 and "pass --resume" not in err and f"rm -r {out}" in err


def test_resume_with_every_checkpoint_truncated_names_the_files(tmp_path, capsys):
    out = fake_run(tmp_path / "r")
    truncate_all(out)
    code, err = cli(capsys, "run", QUICK, *FAST, "--out", out, "--resume")
    err = err.strip().splitlines()[-1]
    assert code == 2 and "ckpt-000002.pt" in err and "ckpt-000001.pt" in err and "corrupted" in err
    assert f"rm -r {out}" in err


# ----------------------------------------------------------------------- export.dir


@pytest.mark.parametrize("where", ["file", "proc"])
def test_an_unwritable_export_dir_is_refused_at_start_up(tmp_path, capsys, where):
    if where == "file":
        target = tmp_path / "afile"
        target.write_text("x")
    else:
        target = Path("/proc/automl-test-export")
    out = tmp_path / "r"
    code, err = cli(capsys, "run", QUICK, *FAST, f"export.dir={target}", "--out", out)
    assert code == 2 and f"export.dir {target}" in err
    assert not (out / "threads.json").exists()  # before any work


# ----------------------------------------------------------------------- automl rank: checkpoints


def rank(capsys, out, *flags):
    return cli(capsys, "rank", out, "--archs", "3", "--retrain-epochs", "0", *flags)


def test_rank_without_a_checkpoints_folder(tmp_path, capsys):
    out = fake_run(tmp_path / "r")
    shutil.rmtree(out / "checkpoints")
    code, err = rank(capsys, out)
    assert code == 2 and str(out / "checkpoints") in err and "does not exist" in err
    assert "search.method" not in err


def test_rank_with_a_garbled_index(tmp_path, capsys):
    out = fake_run(tmp_path / "r")
    (out / "checkpoints" / "checkpoints.json").write_text("{broken")
    code, err = rank(capsys, out)
    assert code == 2 and "checkpoints.json" in err and "damaged" in err and "search.method" not in err


def test_rank_with_every_checkpoint_truncated(tmp_path, capsys):
    out = fake_run(tmp_path / "r")
    truncate_all(out)
    code, err = rank(capsys, out)
    err = err.strip().splitlines()[-1]
    assert code == 2 and "ckpt-000002.pt" in err and "corrupted" in err and "search.method" not in err


def test_rank_with_unreadable_checkpoints_says_so(tmp_path, capsys, monkeypatch, caplog):
    out = fake_run(tmp_path / "r")
    real = Path.read_bytes

    def denied(self):
        if self.suffix == ".pt":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    with caplog.at_level(logging.WARNING):
        code, err = rank(capsys, out)
    assert code == 2 and "cannot be read (Permission denied)" in err and "ckpt-000002.pt" in err
    assert "missing" not in err and "missing" not in caplog.text


def test_rank_of_a_run_whose_method_trains_no_supernet_names_the_method(tmp_path, capsys):
    out = fake_run(tmp_path / "r", supernet=False, method="random")
    code, err = rank(capsys, out)
    assert code == 2 and "search.method" in err


def test_rank_of_a_run_cut_short_in_its_weight_phase(tmp_path, capsys):
    out = fake_run(tmp_path / "r", supernet=False)
    code, err = rank(capsys, out)
    assert code == 2 and "weight phase has not finished" in err and "--resume" in err
    assert "search.method" not in err


# ----------------------------------------------------------------------- --supernet RUN


def test_supernet_with_truncated_checkpoints(tmp_path, capsys):
    src = fake_run(tmp_path / "src")
    truncate_all(src)
    code, err = cli(capsys, "run", QUICK, *FAST, "--supernet", src, "--out", tmp_path / "new")
    err = err.strip().splitlines()[-1]
    assert code == 2 and "ckpt-000002.pt" in err and "corrupted" in err
    assert "has not finished" not in err and "--resume" not in err


def test_supernet_with_a_garbled_index(tmp_path, capsys):
    src = fake_run(tmp_path / "src")
    (src / "checkpoints" / "checkpoints.json").write_text("{broken")
    code, err = cli(capsys, "run", QUICK, *FAST, "--supernet", src, "--out", tmp_path / "new")
    assert code == 2 and "checkpoints.json" in err and "damaged" in err and "--resume" not in err


def test_supernet_of_a_run_cut_short_points_to_resume(tmp_path, capsys):
    src = fake_run(tmp_path / "src", supernet=False)
    code, err = cli(capsys, "run", QUICK, *FAST, "--supernet", src, "--out", tmp_path / "new")
    assert code == 2 and "no trained supernet" in err and "--resume" in err and "search.method" not in err


# ----------------------------------------------------------------------- CheckpointStore


def test_store_says_why_it_has_no_checkpoint(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path / "c")
    assert store.load() is None and store.missing() and "does not exist" in store.why_none()
    store.save({"n": 1})
    store.index_path.unlink()
    assert not store.missing() and "is missing" in store.why_none() and "ckpt-000001.pt" in store.why_none()
    store.index_path.write_text("[]")
    assert "damaged" in store.why_none()
    store.index_path.write_text('{"checkpoints": []}')
    assert "lists no checkpoint" in store.why_none()


# ----------------------------------------------------------------------- automl rank flags


@pytest.mark.parametrize("flag, value", [("--archs", "2"), ("--seeds", "0"), ("--retrain-epochs", "-1")])
def test_rank_flags_are_named_as_flags(tmp_path, capsys, flag, value):
    out = fake_run(tmp_path / "r")
    code, err = cli(capsys, "rank", out, flag, value)
    assert code == 2 and f"{flag} {value}:" in err and "ranking." not in err and "override" not in err


def test_rank_archs_above_the_space_size_names_the_flag(tmp_path, capsys):
    out = fake_run(tmp_path / "r")
    code, err = cli(capsys, "rank", out, "--archs", "100000000", "--retrain-epochs", "0")
    assert code == 2 and "--archs 100000000:" in err and "ranking.archs" not in err


def test_under_torchrun_only_rank_0_prints_a_user_error(capsys, monkeypatch):
    # what torchrun sets for the second of two processes on one machine (the recipe is read before the ranks meet)
    for key, value in {"WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RANK", "1")
    assert main(["run", QUICK, "search.lamm=3"]) == 2
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "0")
    assert main(["run", QUICK, "search.lamm=3"]) == 2
    assert "search.lamm" in capsys.readouterr().err
