"""Review KK: ``automl rank`` on a finished run folder that cannot be ranked as it is.

1. The notice that this ranking replaces results.json's earlier one comes once every check that can refuse the
   ranking has passed (was: first the notice, then the refusal, e.g. no usable checkpoint), still before the
   first retraining: a Ctrl-C at the notice keeps the earlier ranking.
2. A finished run whose newest checkpoint is damaged (load falls back to the previous one, of before its last
   stage) is named as such, with the command that redoes the last stages (was: "the run has not finished").
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from automl.pipeline import Run
from automl.recipe import load_recipe
from helpers import QUICK, cli_out_err

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

TINY = ["threads=1", "device=cpu", "data.dataset=synthetic", "data.synthetic.channels=1",
        "data.synthetic.num_train=128", "data.synthetic.num_test=64", "data.batch_size=32",
        "data.theta_batch_size=32", "search.weight_epochs=1", "search.theta_epochs=1", "search.supernets=1",
        "search.epsilons=[0,0.5]", "search.budgets=null", "search.lam=2", "retrain.epochs=1", "export.onnx=false",
        "search.log_every=2"]
NOTICE = "replaces the one in"


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished run (no ranking section of its own); each test works on a copy (:func:`_copy`)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    Run(load_recipe(QUICK, TINY), out, tty=False).execute()
    assert (out / "results.json").is_file() and (out / "report.md").is_file()
    return out


def _copy(finished: Path, to: Path) -> Path:
    shutil.copytree(finished, to, ignore=shutil.ignore_patterns(".lock"))
    return to


def _ranked(finished: Path, to: Path, capsys) -> Path:
    """A copy of the run with a ranking of 3 architectures, not retrained, in its results.json."""
    out = _copy(finished, to)
    code, _, err = cli_out_err(capsys, "rank", out, "--archs", "3", "--retrain-epochs", "0")
    assert code == 0, err
    assert len(json.loads((out / "results.json").read_text())["ranking"]["archs"]) == 3
    return out


def _damage_newest(out: Path) -> Path:
    """Cut the newest checkpoint the index lists short (as a full disk or a bad copy would)."""
    index = json.loads((out / "checkpoints" / "checkpoints.json").read_text())["checkpoints"]
    assert len(index) == 2
    newest = out / "checkpoints" / index[0]["file"]
    data = newest.read_bytes()
    newest.write_bytes(data[:1000])
    return newest


# ---- 1. the notice once the ranking can go ahead -------------------------------------------------------------

def test_no_notice_before_the_refusal_of_a_folder_without_checkpoints(finished, tmp_path, capsys):
    out = _ranked(finished, tmp_path / "run", capsys)
    before = (out / "results.json").read_bytes()
    shutil.rmtree(out / "checkpoints")
    code, stdout, err = cli_out_err(capsys, "rank", out, "--archs", "4", "--retrain-epochs", "0")
    assert code == 2 and "no usable checkpoint" in err, err
    assert NOTICE not in stdout + err, stdout  # was: the notice first, then the refusal
    assert (out / "results.json").read_bytes() == before


def test_the_notice_comes_before_any_retraining_and_a_ctrl_c_there_keeps_the_ranking(finished, tmp_path, capsys,
                                                                                     monkeypatch):
    """A Ctrl-C just after the notice (the thread line follows it): results.json as it was, its ranking kept;
    the folder's lock is held while the notice is said."""
    out = _ranked(finished, tmp_path / "run", capsys)
    before = (out / "results.json").read_bytes()
    held = []

    def interrupted(run, threads, ranking=False):
        held.append(run.lock.fd is not None)
        raise KeyboardInterrupt

    monkeypatch.setattr(Run, "say_threads", interrupted)
    code, stdout, err = cli_out_err(capsys, "rank", out, "--archs", "4", "--retrain-epochs", "1")
    assert code == 130, err  # the CLI's exit on Ctrl-C
    assert stdout.startswith(f"this ranking (4 architectures, 1 retraining of 1 epoch each, truth loss) {NOTICE} "
                             f"{out / 'results.json'} (3 architectures, not retrained, truth loss"), stdout
    assert held == [True]
    assert (out / "results.json").read_bytes() == before


# ---- 2. a damaged newest checkpoint of a finished run --------------------------------------------------------

def test_a_damaged_newest_checkpoint_is_named_with_the_command_that_redoes_the_last_stages(finished, tmp_path,
                                                                                             capsys):
    out = _ranked(finished, tmp_path / "run", capsys)  # with a ranking: no notice either before the refusal
    before = (out / "results.json").read_bytes()
    newest = _damage_newest(out)
    code, stdout, err = cli_out_err(capsys, "rank", out, "--archs", "4", "--retrain-epochs", "0")
    assert code == 2, err
    msg = err.strip().splitlines()[-1]
    assert "has not finished" not in msg, msg  # was: "the run has not finished (next: its stage retrain/1)"
    assert msg.startswith(f"error: {out}: the run had finished (its results.json and report.md are there), but its "
                          f"newest checkpoint is damaged: {newest} is corrupted (checksum mismatch); the one before "
                          f"it, "), msg
    resume = f"automl run {out / 'recipe.resolved.yaml'} --out {out} --resume"
    assert resume in msg and f"then automl rank {out} again" in msg, msg
    assert NOTICE not in stdout + err
    assert (out / "results.json").read_bytes() == before
    # what it says works: the resume redoes the last stage, with the same results, and the folder ranks
    results = json.loads(before)
    code, _, err = cli_out_err(capsys, *resume.split()[1:])
    assert code == 0, err
    again = json.loads((out / "results.json").read_text())
    assert ([a["test_accuracy"] for a in again["architectures"]]
            == [a["test_accuracy"] for a in results["architectures"]])
    code, stdout, err = cli_out_err(capsys, "rank", out, "--archs", "3", "--retrain-epochs", "0")
    assert code == 0 and "kendall_tau" in stdout, err


def test_a_run_stopped_before_its_last_stage_is_still_one_that_has_not_finished(finished, tmp_path, capsys):
    """No results.json nor report.md: the previous checkpoint is the run's last one, and the run not finished."""
    out = _copy(finished, tmp_path / "run")
    _damage_newest(out)
    (out / "results.json").unlink()
    (out / "report.md").unlink()
    code, _, err = cli_out_err(capsys, "rank", out, "--archs", "3", "--retrain-epochs", "0")
    assert code == 2 and "the run has not finished (next: its stage retrain/1)" in err, err
