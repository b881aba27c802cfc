"""Review HG: ranking.py's messages about the folders it is given, its truth study's cache, the benchmarks' atomic
write.

1. An option run whose K architectures are not the --truth run's says what to do: a run an earlier invocation left
   in --out, delete it (or choose another --out); a run made now, give --truth a run of the recipe's space.
2. A folder --truth, --one-se or --replay names that lacks what the script reads is one line naming the flag, the
   folder and what the flag takes; a flag that names no folder (``--one-se ,``, ``--truth ""``) is refused before
   any run, and an empty part of a comma-separated list is no folder (was: the current folder).
3. A truth study's cached file whose test accuracy or loss is no number (edited, damaged) is computed again, said
   in one line naming the row and the key, as a cut-short one is (was: read, and numpy's error later).
4. ``_common.atomic_write_text`` fsyncs the folder after ``os.replace`` (as automl's own atomic writes), and a file
   system that refuses to fsync a folder does not fail the write.

No test here trains: the run folders are written by hand, ``run_child`` and the retrainings are replaced."""

from __future__ import annotations

import argparse
import errno
import json
import os
import stat
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _common  # noqa: E402
import ranking  # noqa: E402

from automl.errors import UserError  # noqa: E402
from test_review_bj import fake_study  # noqa: F401  (the fixture: truth_study with its retrainings replaced)

RECIPE = str(ROOT / "recipes" / "quickstart.yaml")


def _no_run(*a, **k):
    pytest.fail("a run was started")


def _one_line_exit_2(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as e:
        ranking.run_main(ranking.main, argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()


@pytest.fixture
def argv0(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["ranking.py"])


# ---- 1. an option run of other K architectures than the --truth run's ----------------------------------------------


def _option_results(k: int, prefix: str = "") -> str:
    archs = [{"choices": [f"{prefix}{j}"], "supernet_loss": 1.0 + j, "supernet_loss_batch_stats": 1.0,
              "supernet_accuracy": 0.5} for j in range(k)]
    return json.dumps({"phase_seconds": {"weights": 1.0}, "ranking": {"archs": archs}})


def _tau_args(truth: Path) -> argparse.Namespace:
    return argparse.Namespace(options=["uniform"], overrides=[], archs=3, threads=None, recipe=RECIPE,
                              no_signal=True, truth=str(truth))


TRUTH_CHOICES = [["0"], ["1"], ["2"]]


def test_a_reused_option_run_of_other_archs_says_delete_it(monkeypatch, tmp_path):
    option = tmp_path / "option-uniform"
    option.mkdir()
    (option / "results.json").write_text(_option_results(3, prefix="other-"))
    monkeypatch.setattr(ranking, "run_child", _no_run)
    with pytest.raises(UserError) as e:
        ranking.tau_per_option(_tau_args(tmp_path / "truth"), tmp_path, [1.0, 2.0, 3.0], None, TRUTH_CHOICES, [0])
    text = e.value.text()
    # was: "its K architectures are not the truth's (another space or --archs?)": no way out named
    assert text.startswith(f"error: {option}: ") and f"delete {option} to run it again" in text, text
    assert f"--truth run {tmp_path / 'truth'}" in text, text


def test_an_option_run_made_now_of_other_archs_says_give_another_truth(monkeypatch, tmp_path):
    def run_child(cmd, env=None, stdout=None, stderr=None, timeout=None):  # automl run of another space's K
        out = Path(cmd[cmd.index("--out") + 1])
        out.mkdir()
        (out / "results.json").write_text(_option_results(3, prefix="other-"))
        return 0

    monkeypatch.setattr(ranking, "run_child", run_child)
    truth = tmp_path / "truth"
    with pytest.raises(UserError) as e:
        ranking.tau_per_option(_tau_args(truth), tmp_path, [1.0, 2.0, 3.0], None, TRUTH_CHOICES, [0])
    text = e.value.text()
    # deleting the run made now would only make it again: the --truth run is the one to change
    assert text.startswith(f"error: --truth {truth}: ") and "delete" not in text, text
    assert "ranking.archs=3" in text and "automl rank RUN --archs 3" in text, text


# ---- 2. the folders --truth, --one-se and --replay name --------------------------------------------------------------


def _run_folder(path: Path, results: str | None = None) -> Path:
    path.mkdir(parents=True)
    if results is not None:
        (path / "results.json").write_text(results)
    (path / "recipe.resolved.yaml").write_text("name: x\n")
    return path


@pytest.mark.parametrize("flag", ["--one-se", "--replay"])
def test_a_run_folder_without_results_names_its_flag(monkeypatch, capsys, tmp_path, argv0, flag):
    run = _run_folder(tmp_path / "run")  # a run stopped before its end: no results.json
    monkeypatch.setattr(ranking, "run_child", _no_run)
    err = _one_line_exit_2(capsys, [flag, str(run), "--out", str(tmp_path / "rk")])
    # was: "RUN: no results.json there (a finished `automl run` folder)": which flag gave it unsaid
    assert err.startswith(f"error: {flag} {run}: no results.json there"), err
    assert f"give {flag} comma-separated folders of finished `automl run`s" in err, err


def test_a_missing_truth_folder_names_the_flag(monkeypatch, capsys, tmp_path, argv0):
    monkeypatch.setattr(ranking, "run_child", _no_run)
    missing = tmp_path / "no-such-run"
    err = _one_line_exit_2(capsys, ["--truth", str(missing), "--out", str(tmp_path / "rk")])
    assert err.startswith(f"error: --truth {missing}: no such folder; give --truth the folder of a finished"), err
    assert "ranking.seeds=S" in err, err


@pytest.mark.parametrize("argv", [["--one-se", ","], ["--replay", " "], ["--truth", ""]],
                         ids=["one_se_comma", "replay_blank", "truth_empty"])
def test_a_folder_flag_that_names_no_folder_is_refused(monkeypatch, capsys, tmp_path, argv0, argv):
    """Was: --one-se "," an empty study (max() of nothing, a traceback); --truth "" the whole benchmark without
    --truth (its truth retrained: hours)."""
    monkeypatch.setattr(ranking, "run_child", _no_run)
    monkeypatch.setattr(ranking, "open_workspace", _no_run)
    err = _one_line_exit_2(capsys, [*argv, "--out", str(tmp_path / "rk")])
    assert err.startswith(f"error: {argv[0]} {argv[1]!r} names no folder: give it "), err


def test_an_empty_part_of_a_list_is_no_folder(monkeypatch, capsys, tmp_path, argv0):
    """``--one-se RUN,`` (a trailing comma): RUN alone (was: RUN, then the current folder as a second run)."""
    members = {"architectures": [{"choices": ["a"], "params": 10}]}
    run = _run_folder(tmp_path / "run", json.dumps(members))
    studied = []

    def one_se(run_dir, k, costlier=False):
        studied.append(run_dir)
        return {"run": run_dir.name, "member_params": 10, "params": 10, "choices": ["a"]}

    monkeypatch.setattr(ranking, "one_se", one_se)
    with pytest.raises(SystemExit) as e:
        ranking.run_main(ranking.main, ["--one-se", f"{run},", "--out", str(tmp_path / "rk")])
    assert not e.value.code and studied == [run], studied
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["max_over_min"] == 1.0


# ---- 3. a truth study's cached file of values that are no numbers ---------------------------------------------------




@pytest.mark.parametrize("row, words", [
    ({"test_accuracy": "0.6", "test_loss": 0.9}, '[1].test_accuracy: "0.6" is not a number'),
    ({"test_accuracy": 0.6, "test_loss": None}, "[1].test_loss: null is not a number"),
    ({"test_accuracy": True, "test_loss": 0.9}, "[1].test_accuracy: true is not a number"),
    ({"test_accuracy": 0.6, "test_loss": [0.9]}, "[1].test_loss: [0.9] is not a number"),
    ("0.6", '[1]: "0.6" is not a JSON object'),
], ids=["a_string", "null", "true", "a_list", "a_row_not_an_object"])
def test_a_truth_study_file_of_no_numbers_is_computed_again(fake_study, tmp_path, capsys, row, words):
    path = tmp_path / "truth-study-e2-s0.json"
    good = {"params": 1, "test_accuracy": 0.5, "test_loss": 1.0}
    path.write_text(json.dumps([good, row, good]))
    res = ranking.truth_study("r.yaml", [], tmp_path, 3, [0], 2)
    err = capsys.readouterr().err
    assert fake_study == [0] * 3, err  # was: read as it was (numpy then compared strings, or failed)
    assert f"{path}: {words}; computing it again" in err, err
    assert res["accuracy"] == [[0.5, 0.6, 0.7]] and json.loads(path.read_text())[1]["test_accuracy"] == 0.6


def test_a_truth_study_file_of_whole_numbers_and_nan_is_reused(fake_study, tmp_path, capsys):
    """What the study writes itself: a NaN loss (a retraining that diverged: json writes NaN) and a whole number
    are numbers."""
    rows = [{"test_accuracy": 1, "test_loss": float("nan")}, {"test_accuracy": 0.5, "test_loss": 2},
            {"test_accuracy": 0.25, "test_loss": 3.0}]
    (tmp_path / "truth-study-e2-s0.json").write_text(json.dumps(rows))
    res = ranking.truth_study("r.yaml", [], tmp_path, 3, [0], 2)
    assert fake_study == [] and capsys.readouterr().err == "" and res["accuracy"] == [[1, 0.5, 0.25]]


# ---- 4. the benchmarks' atomic write fsyncs the folder --------------------------------------------------------------


def _fsyncs(monkeypatch, path: Path, folder_error: OSError | None = None) -> list[tuple[str, str | None]]:
    """os.fsync recorded: ("folder" or "file", the text at ``path`` then); ``folder_error`` raised for a folder."""
    calls = []
    real = os.fsync

    def fsync(fd):
        is_folder = stat.S_ISDIR(os.fstat(fd).st_mode)
        calls.append(("folder" if is_folder else "file", path.read_text() if path.exists() else None))
        if is_folder and folder_error is not None:
            raise folder_error
        real(fd)

    monkeypatch.setattr(_common.os, "fsync", fsync)
    return calls


@pytest.mark.skipif(os.name != "posix", reason="a folder is fsynced on POSIX")
def test_atomic_write_text_fsyncs_the_folder_after_the_rename(monkeypatch, tmp_path):
    path = tmp_path / "truth-study-e2-s0.json"
    path.write_text("[1]")
    calls = _fsyncs(monkeypatch, path)
    _common.atomic_write_text(path, "[1, 2]")
    # the file before the rename (the old text still there), the folder after it (the new one); was: the file only
    assert calls == [("file", "[1]"), ("folder", "[1, 2]")], calls


@pytest.mark.skipif(os.name != "posix", reason="a folder is fsynced on POSIX")
def test_a_folder_that_refuses_fsync_does_not_fail_the_write(monkeypatch, tmp_path):
    path = tmp_path / "truth-study-e2-s0.json"
    calls = _fsyncs(monkeypatch, path, OSError(errno.EINVAL, "Invalid argument"))
    _common.atomic_write_text(path, "[1, 2]")
    assert calls[-1] == ("folder", "[1, 2]"), calls  # its error passed over: the write is whole
    assert path.read_text() == "[1, 2]" and os.listdir(tmp_path) == [path.name], calls
