"""Review LO: a malformed OMP_NUM_THREADS / MKL_NUM_THREADS (libgomp's own complaint before automl's message; refused
even where the recipe sets the threads itself; whitespace alone taken as unset), and retrain.se=null's hint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from automl.errors import UserError
from automl.train import threads as th

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "recipes" / "quickstart.yaml"


def _automl(env_extra: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in th.ENV_VARS}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "automl", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_a_malformed_omp_num_threads_is_one_automl_message_without_libgomp(tmp_path):
    """threads: auto takes the count from the environment, so a malformed one is refused: in automl's words alone
    (libgomp printed "Invalid value for environment variable OMP_NUM_THREADS" first), naming the recipe's threads,
    which wins over the environment."""
    p = _automl({"OMP_NUM_THREADS": "abc"}, "run", str(QUICKSTART), "--out", str(tmp_path / "out"))
    lines = _lines(p.stderr)
    assert p.returncode == 2, p.stderr
    assert "libgomp" not in p.stderr + p.stdout
    assert len(lines) == 1, p.stderr
    assert "OMP_NUM_THREADS='abc'" in lines[0] and "threads=N" in lines[0]
    assert not (tmp_path / "out" / "results.json").exists()


def test_a_recipe_count_ignores_a_malformed_environment_count_and_libgomp_never_sees_it(tmp_path):
    """threads=1 wins over the environment, so OMP_NUM_THREADS=abc refuses nothing; torch is imported (the recipe's
    validation imports it) without libgomp's line, and the run stops on its own recipe error: retrain.se=null, whose
    message says 0 means no squeeze-and-excitation."""
    p = _automl({"OMP_NUM_THREADS": "abc", "MKL_NUM_THREADS": " "}, "run", str(QUICKSTART), "--out",
                str(tmp_path / "out"), "threads=1", "retrain.se=null")
    lines = _lines(p.stderr)
    assert p.returncode == 2, p.stderr
    assert "libgomp" not in p.stderr + p.stdout
    assert len(lines) == 1, p.stderr
    assert "retrain.se" in lines[0] and "got null" in lines[0] and "0 for no squeeze-and-excitation" in lines[0]


@pytest.mark.parametrize("env", [{"OMP_NUM_THREADS": "abc"}, {"MKL_NUM_THREADS": "-2"},
                                 {"OMP_NUM_THREADS": "1.0", "MKL_NUM_THREADS": "0"}])
def test_an_explicit_count_names_the_malformed_environment_as_ignored(env):
    choice = th.resolve_threads(2, environ=env, measure=False)
    assert (choice.threads, choice.source) == (2, "recipe")
    for name, text in env.items():
        assert f"{name}={text!r} ignored" in choice.reason


def test_auto_still_refuses_a_malformed_count_and_says_the_recipe_wins():
    with pytest.raises(UserError, match=r"OMP_NUM_THREADS='0'.*threads: N in the recipe, or threads=N"):
        th.resolve_threads("auto", environ={"OMP_NUM_THREADS": "0"}, measure=False)


@pytest.mark.parametrize("name", th.ENV_VARS)
def test_whitespace_alone_is_malformed_not_unset(name):
    """libgomp refuses OMP_NUM_THREADS=" " too; the run went on with auto without a word."""
    with pytest.raises(UserError, match=f"{name}=' ' in the environment"):
        th.env_counts({name: " "})
    assert th.env_counts({name: ""}) == {}  # empty: unset, as libgomp takes it


def test_a_value_set_aside_by_the_command_line_is_still_read():
    """automl.cli moves a malformed value out of libgomp's sight before torch is imported; threads still sees it."""
    stash = {th.SET_ASIDE + "OMP_NUM_THREADS": "abc"}
    with pytest.raises(UserError, match="OMP_NUM_THREADS='abc'"):
        th.env_counts(stash)
    assert th.env_counts({**stash, "OMP_NUM_THREADS": "2,1"}) == {"OMP_NUM_THREADS": 2}
