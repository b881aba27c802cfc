"""Review IL: command-like hints quote their paths, and suggest --supernet only on a folder it takes; a second
signal before any checkpoint says there is nothing to resume; a forced or reused supernet's messages name how
the user gave it; results.json and threads.json record each part's thread count of a run resumed with another."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from automl.cli import main
from automl.train.checkpoint import CheckpointStore
from helpers import QUICK, cli_err, cli_said

ROOT = Path(__file__).resolve().parents[1]
FAST = ["threads=1", "device=cpu", "search.weight_epochs=1", "search.theta_epochs=1", "retrain.epochs=0",
        "search.supernets=1", "data.limit_train=64", "data.batch_size=8", "data.theta_batch_size=32",
        "search.lam=2", "search.budgets=null", "search.epsilons=[0]", "export.onnx=false"]
HINT = "(to search again on its trained supernet: a new --out with --supernet "


def _hinted(err: str) -> str:
    """The folder the --supernet hint names, read back as a shell reads it."""
    assert HINT in err, err
    rest = err.split(HINT, 1)[1]
    words = shlex.split(rest.split(")", 1)[0])
    assert len(words) == 1, rest  # one word: quoted
    return words[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished run in a folder whose path holds spaces."""
    out = tmp_path_factory.mktemp("il") / "out dir" / "run 3"
    assert main(["run", QUICK, *FAST, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> Path:
    """A run stopped (SIGINT) after its first step: its checkpoint is one of its weight phase."""
    out = tmp_path_factory.mktemp("il") / "early run"
    p = _signalled(["run", QUICK, *FAST, "--out", out], times=1)
    assert p.returncode == 130 and CheckpointStore(out / "checkpoints").load()["supernet"] is None, p.stderr[-3000:]
    return out


# ----------------------------------------------------- 1. hints quote paths; --supernet only where taken

def test_a_refused_resume_quotes_the_folder_of_its_supernet_hint(finished, capsys):
    code, err = cli_err(capsys, "run", QUICK, *FAST, "seed=3", "--out", finished, "--resume")
    assert code == 2 and "seed: 0 there, 3 here" in err, err
    assert _hinted(err) == str(finished)


def test_a_new_run_refused_in_another_runs_folder_quotes_its_supernet_hint(finished, capsys):
    code, err = cli_err(capsys, "run", QUICK, *FAST, "seed=3", "--out", finished)
    assert code == 2 and "whose recipe differs from this one" in err, err
    assert _hinted(err) == str(finished)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="signals, CPU affinity")
def test_no_supernet_hint_for_a_run_still_in_its_weight_phase(stopped, tmp_path, capsys):
    early = stopped
    code, err = cli_err(capsys, "run", QUICK, *FAST, "seed=3", "--out", early, "--resume")
    assert code == 2 and "seed: 0 there, 3 here" in err and "--supernet" not in err, err
    code, err = cli_err(capsys, "run", QUICK, *FAST, "seed=3", "--out", early)
    assert code == 2 and "whose recipe differs from this one" in err and "--supernet" not in err, err
    # what the hint would have said is refused
    code, err = cli_err(capsys, "run", QUICK, *FAST, "--out", tmp_path / "new", "--supernet", early)
    assert code == 2 and "weight phase has not finished" in err, err


def test_a_stopped_scripts_resume_command_quotes_its_paths(tmp_path):
    from automl.pipeline.run import Run
    from automl.recipe import load_recipe
    out = tmp_path / "my runs" / "a"  # a recipe with overrides: continued from the run's own resolved recipe
    run = Run(load_recipe(QUICK, FAST), out)
    assert shlex.split(run.resume_command) == ["automl", "run", str(out / "recipe.resolved.yaml"), "--out", str(out),
                                               "--resume"]


# ------------------------------------------------------------------------ 2. a second signal before any checkpoint

def _signalled(argv: list, times: int) -> subprocess.CompletedProcess:
    """``automl ARGV`` in a process that gets SIGINT ``times`` times at its first training step (on one CPU)."""
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(ROOT)!r})
os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}})
from automl.train import preempt
step = preempt.Preemption.step
seen = []
def signalled(self):
    seen.append(1)
    if len(seen) == 1:
        for _ in range({times}):
            os.kill(os.getpid(), signal.SIGINT)
    return step(self)
preempt.Preemption.step = signalled
from automl.cli import main
sys.exit(main({[str(a) for a in argv]!r}))
"""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="signals, CPU affinity")
def test_a_second_sigint_before_a_new_runs_first_checkpoint_says_there_is_nothing_to_resume(tmp_path, capsys):
    out = tmp_path / "r"
    p = _signalled(["run", QUICK, *FAST, "--out", out], times=2)
    assert p.returncode == 130, p.stderr[-3000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("SIGINT again: stopping now; no checkpoint was written yet, so there is nothing to "
                           "resume: run the same command again"), last
    assert "if it has one" not in last and "--resume" not in last, last
    assert not CheckpointStore(out / "checkpoints").exists()
    # what the message says: the same command takes the folder over
    code, said = cli_said(capsys, "run", QUICK, *FAST, "--out", out)
    assert code == 0 and "the run there stopped before its first checkpoint" in said, said


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="signals, CPU affinity")
def test_a_second_sigint_of_a_resume_before_its_checkpoint_names_the_previous_one(stopped, tmp_path):
    early = tmp_path / "early"
    subprocess.run(["cp", "-r", str(stopped), str(early)], check=True)
    p = _signalled(["run", QUICK, *FAST, "--out", early, "--resume"], times=2)
    assert p.returncode == 130, p.stderr[-3000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("SIGINT again: stopping now; no checkpoint was written since this command started; "
                           "--resume continues from the run's previous checkpoint. Continue with: automl run "), last
    assert last.endswith(f"--out {early} --resume"), last


# ------------------------------------------------------------------------ 3. how the user gave the supernet

@pytest.fixture(scope="module")
def other_seed(finished, tmp_path_factory) -> Path:
    """A finished run of seed 1 (its supernet trained with other settings than a seed-0 run asks for)."""
    out = tmp_path_factory.mktemp("il") / "seed1"
    assert main(["run", QUICK, *FAST, "seed=1", "--out", str(out)]) == 0
    return out


def _recipe(tmp_path: Path, **keys) -> Path:
    """quickstart.yaml, its space at its absolute path, with ``keys`` added at the top level."""
    data = yaml.safe_load(Path(QUICK).read_text())
    data["space"] = str((Path(QUICK).parent / data["space"]).resolve())
    data.update(keys)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_the_forced_warning_names_the_override_that_forced_it(other_seed, tmp_path, capsys):
    code, said = cli_said(capsys, "run", QUICK, *FAST, "supernet_force=true", "--out", tmp_path / "b",
                          "--supernet", other_seed)
    assert code == 0 and "warning: supernet_force=true: the supernet of" in said, said
    assert "--supernet-force" not in said


def test_the_forced_warning_names_the_recipe_key_that_forced_it(other_seed, tmp_path, capsys):
    recipe = _recipe(tmp_path, supernet=str(other_seed), supernet_force=True)
    line = next(i for i, text in enumerate(recipe.read_text().splitlines(), 1) if text.startswith("supernet_force"))
    code, said = cli_said(capsys, "run", recipe, *FAST, "--out", tmp_path / "b")
    assert code == 0 and f"warning: supernet_force ({recipe}:{line}): the supernet of" in said, said
    assert "--supernet-force" not in said


def test_the_forced_warning_still_names_the_flag(other_seed, tmp_path, capsys):
    code, said = cli_said(capsys, "run", QUICK, *FAST, "--out", tmp_path / "b", "--supernet", other_seed,
                          "--supernet-force")
    assert code == 0 and "warning: --supernet-force: the supernet of" in said, said


def test_a_resume_without_the_supernet_its_recipe_gave_says_to_set_the_key_again(finished, tmp_path, capsys):
    recipe = _recipe(tmp_path, supernet=str(finished))
    out = tmp_path / "second"
    assert main(["run", str(recipe), *FAST, "--out", str(out)]) == 0
    code, err = cli_err(capsys, "run", QUICK, *FAST, "--out", out, "--resume")
    assert code == 2 and f"(it was started with supernet: {finished} in its recipe {recipe}: set it again)" in err, err
    assert "--supernet " + str(finished) not in err


# ------------------------------------------------------------------------ 4. each part's thread count

@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="signals, CPU affinity")
def test_a_run_resumed_with_another_thread_count_records_each_parts(tmp_path, capsys):
    out = tmp_path / "r"
    p = _signalled(["run", QUICK, *FAST, "threads=2", "--out", out], times=1)  # one step on one CPU
    assert p.returncode == 130 and CheckpointStore(out / "checkpoints").exists(), p.stderr[-3000:]
    assert main(["run", QUICK, *FAST, "threads=1", "--out", str(out), "--resume"]) == 0
    threads = json.loads((out / "results.json").read_text())["threads"]
    assert threads["threads"] == 1 and threads["source"] == "recipe", threads  # the last part's, as before
    assert threads["history"] == [2, 1], threads
    record = json.loads((out / "threads.json").read_text())
    assert record["threads"] == 2 and record["history"] == [2, 1], record  # the count it started with, as before
    capsys.readouterr()
    code, said = cli_said(capsys, "rank", out, "--archs", "3")
    assert code == 0, said


def test_a_run_of_one_thread_count_records_no_history(finished):
    assert "history" not in json.loads((finished / "results.json").read_text())["threads"]
    assert "history" not in json.loads((finished / "threads.json").read_text())
