"""Commands printed to paste name a run folder by its absolute path even where its name looks like a space compiled
from text (`<run>`); only a space's own name `<space>` is left as it is (no file to point at)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from types import SimpleNamespace

from automl.pipeline.rank import rank_command
from automl.profile import profile_command


def test_a_run_folder_named_like_a_compiled_space_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = SimpleNamespace(ranking=SimpleNamespace(archs=5, seeds=1, truth="accuracy", retrain_epochs=2),
                             retrain=SimpleNamespace(epochs=2), device="cpu")
    words = shlex.split(rank_command(recipe, Path("<run>")))
    assert words[2] == os.path.join(str(tmp_path), "<run>")


def test_a_space_compiled_from_text_is_named_as_it_is_and_a_file_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert shlex.split(profile_command("<space>", {}))[3] == "<space>"
    assert shlex.split(profile_command("my space.space", {}))[3] == os.path.join(str(tmp_path), "my space.space")
