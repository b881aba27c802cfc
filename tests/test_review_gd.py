"""Review GD: the benchmark scripts and the run folders they read and remove.

1. A damaged results.json of a run the script finds in its folder (cut short, not a JSON object, a field missing or
   of the wrong type) is one line naming the file and saying what to do, exit 2, where family_budgets.py and
   ranking.py ended in a traceback; a measurement recorded as null (a non-finite one) is read as NaN, and a run
   of 0 search seconds gives no ratio instead of a ZeroDivisionError.
2. ranking.py does not remove a stopped run's folder while an automl run still holds its lock (the child of an
   earlier script killed with -9): one line naming the folder and the process, exit 2.
3. ``run_main``: a missing file or folder (ENOENT, ENOTDIR, EEXIST) is the user's (exit 2, "check the path") only on
   a path the user named (the script's --out, a path on its command line); elsewhere (a file the script ships) it
   is an internal error, its traceback.

No test here trains: the run folders are written by hand, and ``run_child`` is replaced."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _common  # noqa: E402
import family_budgets  # noqa: E402
import ranking  # noqa: E402

from automl._lock import LOCK_NAME  # noqa: E402
from automl.errors import UserError  # noqa: E402

RECIPE = str(ROOT / "recipes" / "quickstart.yaml")


def _arch(**kw) -> dict:
    return {"params": 1000, "cost": 1000.0, "budget": None, "epsilon": 0.0, "test_accuracy": 0.9, "choices": [],
            **kw}


def _results(**kw) -> dict:
    return {"search_seconds": 2.0, "architectures": [_arch()], **kw}


def _no_run(*a, **k):
    pytest.fail("a run was started")


def _one_line_exit_2(capsys, call) -> str:
    with pytest.raises(SystemExit) as e:
        call()
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


# ---- 1. a damaged results.json --------------------------------------------------------------------------------------

DAMAGED = {
    "cut_short": ('{"search_seconds": 2.0, "architec', "not JSON ("),
    "a_list": ("[1, 2]", "not a JSON object"),
    "no_key": (json.dumps({"architectures": [_arch()]}), "search_seconds: missing"),
    "wrong_type": (json.dumps(_results(architectures=[_arch(params="many")])), "architectures[0].params"),
    "no_members": (json.dumps(_results(architectures=[])), "architectures: [] is not a list of at least one"),
    "not_utf8": (b"\xff\xfe{}", "not JSON ("),
}


@pytest.mark.parametrize("name", DAMAGED)
def test_family_budgets_names_a_damaged_results_json(monkeypatch, capsys, tmp_path, name):
    text, words = DAMAGED[name]
    run = tmp_path / "fb" / "importance_sampling-s0"
    run.mkdir(parents=True)
    (run / "results.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    monkeypatch.setattr(sys, "argv", ["family_budgets.py", "--out", str(tmp_path / "fb"), "--seeds", "0",
                                      "--methods", "importance_sampling"])
    monkeypatch.setattr(family_budgets, "run_child", _no_run)
    # was: JSONDecodeError, KeyError, TypeError, IndexError... and their traceback
    err = _one_line_exit_2(capsys, lambda: family_budgets.run_main(family_budgets.main))
    assert str(run / "results.json") in err and words in err and f"delete {run}" in err, err


def test_family_budgets_reads_nulls_and_a_zero_second_search(monkeypatch, capsys, tmp_path):
    """A member without a budget, ε or test accuracy (null) is a row; a run of 0 search seconds gives no ratio
    (was: ZeroDivisionError)."""
    for method, seconds in (("importance_sampling", 2.0), ("separate", 0.0)):
        run = tmp_path / "fb" / f"{method}-s0"
        run.mkdir(parents=True)
        (run / "results.json").write_text(json.dumps(_results(
            search_seconds=seconds, architectures=[_arch(epsilon=None, test_accuracy=None), _arch(budget=2000.0)])))
    monkeypatch.setattr(sys, "argv", ["family_budgets.py", "--out", str(tmp_path / "fb"), "--seeds", "0"])
    monkeypatch.setattr(family_budgets, "run_child", _no_run)
    with pytest.raises(SystemExit) as e:
        family_budgets.run_main(family_budgets.main)
    out = capsys.readouterr().out
    assert not e.value.code
    line = json.loads(out.strip().splitlines()[-1])
    assert len(line["rows"]) == 4 and line["ratio_median"] is None, line
    assert line["rows"][1]["cost/budget"] == 0.5


def _stability(monkeypatch, tmp_path, t2: str) -> list[str]:
    out = tmp_path / "rk"
    for threads, text in ((1, json.dumps(_results())), (2, t2)):
        run = out / f"stab-separate-t{threads}-s0"
        run.mkdir(parents=True)
        (run / "results.json").write_text(text)
    monkeypatch.setattr(sys, "argv", ["ranking.py"])
    monkeypatch.setattr(ranking, "run_child", _no_run)
    return ["--out", str(out), "--no-tau", "--methods", "separate", "--stability-seeds", "0"]


@pytest.mark.parametrize("name", ["cut_short", "a_list", "wrong_type", "no_members"])
def test_ranking_names_a_damaged_stability_run(monkeypatch, capsys, tmp_path, name):
    argv = _stability(monkeypatch, tmp_path, DAMAGED[name][0])
    err = _one_line_exit_2(capsys, lambda: ranking.run_main(ranking.main, argv))
    run = tmp_path / "rk" / "stab-separate-t2-s0"
    assert str(run / "results.json") in err and f"delete {run}" in err and DAMAGED[name][1] in err, err


def test_ranking_reads_a_whole_stability_run(monkeypatch, capsys, tmp_path):
    argv = _stability(monkeypatch, tmp_path, json.dumps(_results(architectures=[_arch(params=2000)])))
    with pytest.raises(SystemExit) as e:
        ranking.run_main(ranking.main, argv)
    assert not e.value.code and "max/min 2.00" in capsys.readouterr().out


def _truth_run(path: Path, ranking_section) -> Path:
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({**_results(), "ranking": ranking_section}))
    return path


def _truth_section(k: int = 3, **kw) -> dict:
    archs = [{"choices": [str(j)], "params": 100 + j, "test_loss": 1.0 + j, **kw} for j in range(k)]
    return {"archs": archs, "seeds": 2, "retrain_epochs": 5}


@pytest.mark.parametrize("section,words", [
    ([1, 2], "ranking: [1, 2] is not a JSON object"),
    ({**_truth_section(), "seeds": "two"}, "ranking.seeds"),
    ({"archs": [{"choices": ["a"], "params": 1}] * 3, "seeds": 1, "retrain_epochs": 5},
     "ranking.archs[0].test_loss: missing"),
], ids=["not_an_object", "seeds_a_string", "no_test_loss"])
def test_ranking_names_a_damaged_truth_run(monkeypatch, capsys, tmp_path, section, words):
    truth = _truth_run(tmp_path / "truth", section)
    monkeypatch.setattr(sys, "argv", ["ranking.py"])
    monkeypatch.setattr(ranking, "run_child", _no_run)
    argv = ["--truth", str(truth), "--archs", "3", "--no-stability", "--out", str(tmp_path / "rk")]
    # was: AttributeError, ValueError, KeyError and their traceback
    err = _one_line_exit_2(capsys, lambda: ranking.run_main(ranking.main, argv))
    assert str(truth / "results.json") in err and words in err and "--truth" in err, err


def test_a_truth_of_a_non_finite_loss_is_nan(tmp_path):
    """results.json records a non-finite test loss as null (strict JSON): read as NaN (was: TypeError)."""
    truth = _truth_run(tmp_path / "truth", _truth_section(test_loss=None))
    t, choices, seeds = ranking.truth_of(ranking.checked_truth(truth, 3))
    assert all(x != x for x in t) and choices == [["0"], ["1"], ["2"]] and seeds == 2


def _option_run(folder: Path, k: int, loss=1.0) -> None:
    folder.mkdir(parents=True)
    archs = [{"choices": [str(j)], "supernet_loss": loss, "supernet_loss_batch_stats": loss,
              "supernet_accuracy": None} for j in range(k)]
    (folder / "results.json").write_text(json.dumps({"phase_seconds": {"weights": 1.0}, "ranking": {"archs": archs}}))


def _tau_args(**kw):
    import argparse

    return argparse.Namespace(options=["uniform"], overrides=[], archs=3, threads=None, recipe=RECIPE,
                              no_signal=True, **kw)


def test_ranking_names_a_reused_option_run_of_another_archs(monkeypatch, tmp_path):
    _option_run(tmp_path / "option-uniform", 4)
    monkeypatch.setattr(ranking, "run_child", _no_run)
    with pytest.raises(UserError, match="has 4 architectures, not --archs 3: delete"):  # was: a numpy error
        ranking.tau_per_option(_tau_args(), tmp_path, [1.0, 2.0, 3.0], None, None, [0])


def test_ranking_reads_an_option_run_with_nulls(monkeypatch, tmp_path):
    _option_run(tmp_path / "option-uniform", 3, loss=None)
    monkeypatch.setattr(ranking, "run_child", _no_run)
    rows = ranking.tau_per_option(_tau_args(), tmp_path, [1.0, 2.0, 3.0], None, None, [0])
    assert rows[0]["tau"] != rows[0]["tau"] and rows[0]["supernet_acc_median"] != rows[0]["supernet_acc_median"]


def test_fields_problem_names_the_field():
    """The scripts' fields are pydantic models (strict, other fields ignored): a whole number is a number, null
    a measurement's, ``true`` no count, a string no number; the first field that is not, named in one line."""

    class Entry(_common.Fields):
        b: float | None

    class Spec(_common.Fields):
        a: list[Entry] = Field(min_length=1)
        c: int = 0

    problem = _common.fields_problem
    assert problem(Spec, {"a": [{"b": None}, {"b": 2}], "other": "x"}) is None
    assert problem(Spec, {"a": [{"b": 1.5}], "c": True}) == "c: true is not a whole number"
    assert problem(Spec, {"a": [{"b": 1.5}], "c": 1.0}) == "c: 1.0 is not a whole number"
    assert problem(Spec, {"a": [{"b": "x"}]}) == 'a[0].b: "x" is not a number'
    assert problem(Spec, {"a": [{"b": 1}, {}]}) == "a[1].b: missing"
    assert problem(Spec, {"a": []}) == "a: [] is not a list of at least one entry"
    assert problem(Spec, [1, 2]) == "[1, 2] is not a JSON object"
    assert problem(Entry, {"b": "x"}, "ranking.archs[0]") == 'ranking.archs[0].b: "x" is not a number'


@pytest.mark.parametrize("name", ["family_budgets.Run", "TruthRun", "OptionRun", "Ranked[Retrained]",
                                  "Members[Params]", "Members[Choices]", "MaybeRanked"])
def test_the_scripts_fields_are_strict_pydantic_models(name):
    script, _, model = name.rpartition(".")
    base, _, item = model.rstrip("]").partition("[")
    module = family_budgets if script else ranking
    model = getattr(module, base)[getattr(module, item)] if item else getattr(module, base)
    assert issubclass(model, BaseModel) and model.model_config["strict"] and model.model_config["extra"] == "ignore"


def test_whole_numbers_are_read_as_numbers(monkeypatch, capsys, tmp_path):
    """JSON writes a whole number without its ".0": search_seconds 3 and cost 1000 are numbers (as a results.json
    edited by hand, or by another writer, may hold them)."""
    run = tmp_path / "fb" / "separate-s0"
    run.mkdir(parents=True)
    whole = _results(search_seconds=3, architectures=[_arch(cost=1000, budget=2000)])
    (run / "results.json").write_text(json.dumps(whole))
    monkeypatch.setattr(sys, "argv", ["family_budgets.py", "--out", str(tmp_path / "fb"), "--seeds", "0",
                                      "--methods", "separate"])
    monkeypatch.setattr(family_budgets, "run_child", _no_run)
    with pytest.raises(SystemExit) as e:
        family_budgets.run_main(family_budgets.main)
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert not e.value.code and line["search_seconds"] == {"separate": [3]} and line["rows"][0]["cost/budget"] == 0.5


# ---- 2. a run folder an automl run still holds ---------------------------------------------------------------------


def test_the_lock_file_is_automl_runs():
    assert _common.LOCK_FILE == LOCK_NAME


@pytest.fixture()
def held(tmp_path):
    """A stopped run's folder (no results.json) whose lock another process holds, as automl run holds it: an
    orphaned ``automl run`` of a script killed with -9."""
    folder = tmp_path / "rk" / "stab-separate-t1-s0"
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("{}\n")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom automl._lock import RunLock\n"
                               f"RunLock({str(folder)!r}).acquire()\nprint('held', flush=True)\nsys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield folder, holder
    finally:
        holder.stdin.close()
        holder.wait(30)


def test_ranking_keeps_a_folder_an_automl_run_holds(monkeypatch, capsys, held):
    folder, holder = held
    monkeypatch.setattr(ranking, "run_child", _no_run)
    with pytest.raises(UserError) as e:  # was: the folder removed under the running process, a second run started
        ranking.automl_run(RECIPE, [], folder)
    assert (folder / "metrics.jsonl").is_file()
    text = e.value.text()
    assert f"{folder} is in use by a running automl process (process {holder.pid}" in text, text
    assert f"wait for it to end, or stop it (kill {holder.pid}): it saves" in text and "\n" not in text


def test_ranking_main_refuses_a_held_folder_in_one_line(monkeypatch, capsys, held):
    folder, holder = held
    monkeypatch.setattr(sys, "argv", ["ranking.py"])
    monkeypatch.setattr(ranking, "run_child", _no_run)
    argv = ["--out", str(folder.parent), "--no-tau", "--methods", "separate", "--stability-seeds", "0"]
    err = _one_line_exit_2(capsys, lambda: ranking.run_main(ranking.main, argv))
    assert f"{folder} is in use" in err and str(holder.pid) in err, err
    assert (folder / "metrics.jsonl").is_file()


def test_ranking_starts_a_stopped_run_afresh_once_its_lock_is_free(monkeypatch, tmp_path):
    folder = tmp_path / "stab"
    folder.mkdir()
    (folder / LOCK_NAME).write_text('{"pid": 1, "host": "h"}\n')  # the last holder, ended
    (folder / "metrics.jsonl").write_text("{}\n")
    started = []

    def run_child(cmd, **kw):
        started.append(cmd)
        assert not folder.exists()  # removed before the run starts afresh
        folder.mkdir()
        (folder / "results.json").write_text(json.dumps(_results()))
        return 0

    monkeypatch.setattr(ranking, "run_child", run_child)
    assert ranking.automl_run(RECIPE, [], folder)["search_seconds"] == 2.0
    assert len(started) == 1 and _common.running_in(folder) is None


# ---- 3. run_main: whose missing file ------------------------------------------------------------------------------


def _raises(error: OSError):
    def main(*args):
        raise error
    return main


def test_a_missing_file_the_script_ships_is_internal(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["bench.py", "--out", str(tmp_path / "out")])
    shipped = str(ROOT / "recipes" / "no-such-packaged.yaml")
    for code in (errno.ENOENT, errno.ENOTDIR, errno.EEXIST):
        error = OSError(code, "No such file or directory", shipped)
        with pytest.raises(OSError) as e:  # was: exit 2, "check the path", as if the user's
            _common.run_main(_raises(error))
        assert e.value is error


@pytest.mark.parametrize("how", ["out_folder", "argv", "argv_equals", "main_args", "comma_list"])
def test_a_missing_file_on_a_path_the_user_named_is_theirs(monkeypatch, capsys, tmp_path, how):
    target = tmp_path / "given"
    missing = target / "sub" / "results.csv"
    argv = {"argv": ["--csv", str(target)], "argv_equals": [f"--out={target}"],
            "comma_list": ["--one-se", f"{tmp_path / 'a'},{target}"]}.get(how, [])
    monkeypatch.setattr(sys, "argv", ["bench.py", *argv])
    if how == "out_folder":
        _common.out_folder(str(target))
    args = [["--out", str(target)]] if how == "main_args" else []
    err = _one_line_exit_2(capsys, lambda: _common.run_main(_raises(FileNotFoundError(
        errno.ENOENT, "No such file or directory", str(missing))), *args))
    assert f"bench.py: {missing}: No such file or directory; check the path" in err, err


def test_a_refused_path_is_the_users_wherever_it_is(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bench.py"])
    for code in (errno.ENOSPC, errno.EACCES, errno.EFBIG):
        _one_line_exit_2(capsys, lambda: _common.run_main(_raises(OSError(code, "refused", "/elsewhere/x"))))


def test_ranking_refuses_a_held_folder_before_any_run(monkeypatch, capsys, held):
    """The truth's and the options' runs come before the stability runs: a held stability folder is refused
    before them (was: hours of runs first)."""
    folder, holder = held
    monkeypatch.setattr(sys, "argv", ["ranking.py"])
    monkeypatch.setattr(ranking, "run_child", _no_run)
    argv = ["--out", str(folder.parent), "--options", "uniform", "--methods", "separate", "--stability-seeds", "0"]
    err = _one_line_exit_2(capsys, lambda: ranking.run_main(ranking.main, argv))
    assert f"{folder} is in use" in err, err


def test_family_budgets_refuses_a_held_folder_before_any_run(monkeypatch, capsys, held):
    """A stopped run is continued with --resume, not while the run still writes there: one line before any run
    (was: the runs before it first, then automl run's own refusal)."""
    folder, holder = held
    out = folder.parent
    folder.rename(out / "separate-s1")  # the lock moves with its folder
    monkeypatch.setattr(sys, "argv", ["family_budgets.py", "--out", str(out), "--seeds", "0,1"])
    monkeypatch.setattr(family_budgets, "run_child", _no_run)
    err = _one_line_exit_2(capsys, lambda: family_budgets.run_main(family_budgets.main))
    assert f"{out / 'separate-s1'} is in use by a running automl process (process {holder.pid}" in err, err
