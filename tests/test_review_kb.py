"""Review KB of the benchmark scripts.

1. ``ranking.py``'s studies (``--one-se``, ``--replay``, ``--truth-seeds``) run neither the τ per option nor the
   stability table: a flag of those parts that the study does not read (all of them but --truth-seeds' --archs;
   --archs too with --retrain), a RECIPE with --one-se or --replay and overrides with --one-se were taken and
   ignored without a word; now each is one line naming it, exit 2, before any work. The flags a study reads
   still reach it.
2. ``gpu_check.sh``: a PY path with a space (a relative PY started from such a folder, too) was split into words
   (exit 2 before any step); an OUT that may be written but not entered (chmod 200) became the empty path, the
   files went to / (or nowhere) and the script exited 0. Both run here with a stand-in for python3 that reports a
   GPU; none of these tests needs one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))


# ---------------------------------------------------------------------------------------- ranking.py

class Started(Exception):
    """Work began: the flags were not refused."""


def _started(*args, **kwargs):
    raise Started(args)


@pytest.fixture
def ranking(monkeypatch):
    import ranking

    for name in ("automl_run", "truth", "truth_study", "retrain_named", "stability_runs", "checked_truth", "one_se",
                 "theta_replay"):
        monkeypatch.setattr(ranking, name, _started)
    return ranking


@pytest.fixture
def run(tmp_path) -> Path:
    """A finished run's folder as --one-se and --replay check it (results.json with a member, its recipe)."""
    d = tmp_path / "run"
    d.mkdir()
    (d / "results.json").write_text('{"architectures": [{"choices": ["a"]}]}')
    shutil.copy(ROOT / "recipes" / "quickstart.yaml", d / "recipe.resolved.yaml")
    return d


def _refused(capsys, ranking, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as e:
        ranking.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


STUDIES = {"one_se": ["--one-se", "RUN"], "replay": ["--replay", "RUN"], "truth_seeds": ["--truth-seeds", "0"]}
# every flag of the two parts, with a value; --archs is read by --truth-seeds (without --retrain)
PART_FLAGS = {"--truth": ["--truth", "RUN"], "--archs": ["--archs", "5"], "--options": ["--options", "fair"],
              "--supernet-seeds": ["--supernet-seeds", "0,1"], "--threads": ["--threads", "1"],
              "--no-signal": ["--no-signal"], "--methods": ["--methods", "separate"], "--jobs": ["--jobs", "2"],
              "--stability-seeds": ["--stability-seeds", "0"]}
CASES = [(s, f) for s in STUDIES for f in PART_FLAGS if not (s == "truth_seeds" and f == "--archs")]


@pytest.mark.parametrize("study,flag", CASES, ids=[f"{s}-{f[2:]}" for s, f in CASES])
def test_a_study_refuses_a_part_flag_it_does_not_read(ranking, capsys, tmp_path, run, study, flag):
    # was: taken and ignored (the study ran, e.g. --one-se RUN --threads 1 on torch's default threads)
    argv = [str(run) if w == "RUN" else w for w in STUDIES[study] + PART_FLAGS[flag]]
    err = _refused(capsys, ranking, [*argv, "--out", str(tmp_path / "rk")])
    part = "the stability table" if flag in ("--methods", "--jobs", "--stability-seeds") else "the τ per option"
    assert f"{flag}: it is an option of {part}, which the study {STUDIES[study][0]} does not run" in err, err
    assert "leave out one or the other" in err, err
    assert not (tmp_path / "rk").exists()


def test_a_study_names_every_ignored_flag_of_both_parts_at_once(ranking, capsys, tmp_path, run):
    err = _refused(capsys, ranking, ["--replay", str(run), "--options", "fair", "--jobs", "2", "--no-signal"])
    assert ("--options, --no-signal, --jobs: they are options of the τ per option and the stability table, which "
            "the study --replay does not run") in err, err


def test_truth_seeds_with_retrain_refuses_archs(ranking, capsys, tmp_path):
    # was: --archs ignored: --retrain names the architectures retrained
    spec = tmp_path / "spec.json"
    spec.write_text('{"a": ["x"]}')
    err = _refused(capsys, ranking, ["--truth-seeds", "0", "--retrain", str(spec), "--archs", "5",
                                     "--out", str(tmp_path / "rk")])
    assert err.endswith("error: --archs: --truth-seeds with --retrain retrains the architectures --retrain names, not "
                        "K ranking ones: leave out one or the other (see --help)"), err


@pytest.mark.parametrize("extra,named", [(["search.lam=4"], "search.lam=4"),
                                         (["RECIPE", "search.lam=4"], "RECIPE search.lam=4")],
                         ids=["overrides", "recipe_and_overrides"])
def test_one_se_refuses_a_recipe_and_overrides(ranking, capsys, tmp_path, run, extra, named):
    # was: ignored: --one-se reads each run's own recipe.resolved.yaml, as it is
    recipe = str(ROOT / "recipes" / "cifar10.yaml")
    extra = [recipe if w == "RECIPE" else w for w in extra]
    err = _refused(capsys, ranking, ["--one-se", str(run), *extra])
    assert f"{named.replace('RECIPE', recipe)}: --one-se reads each run's own recipe" in err, err


def test_replay_refuses_a_recipe_and_reads_its_overrides(ranking, capsys, monkeypatch, tmp_path, run):
    # was: the RECIPE ignored: --replay replays each run with its own recipe and the overrides given
    recipe = str(ROOT / "recipes" / "cifar10.yaml")
    err = _refused(capsys, ranking, ["--replay", str(run), recipe, "search.lam=4"])
    assert f"{recipe}: --replay replays each run with its own recipe" in err and "leave it out" in err, err
    seen = {}

    def replay(d, overrides, members):
        seen.update(run=d, overrides=overrides)
        raise Started()

    monkeypatch.setattr(ranking, "theta_replay", replay)
    with pytest.raises(Started):
        ranking.main(["--replay", str(run), "search.lam=4", "search.theta_epochs=1", "--out", str(tmp_path / "rk")])
    assert seen == {"run": run, "overrides": ["search.lam=4", "search.theta_epochs=1"]}


def test_the_studies_still_take_the_flags_they_read(ranking, monkeypatch, tmp_path, run):
    """--one-se with --se and --costlier (and --no-tau / --no-stability, which agree with it); --truth-seeds with
    --archs and --truth-epochs; --truth-seeds --retrain with --truth-epochs: no refusal, the study starts."""
    seen = {}

    def one_se(d, k, costlier=False):
        seen["one_se"] = (d, k, costlier)
        raise Started()

    def study(recipe, overrides, out, k, seeds, epochs):
        seen["truth"] = (k, seeds, epochs)
        raise Started()

    def named(recipe, overrides, spec, seeds, epochs):
        seen["retrain"] = (spec, seeds, epochs)
        raise Started()

    monkeypatch.setattr(ranking, "one_se", one_se)
    monkeypatch.setattr(ranking, "truth_study", study)
    monkeypatch.setattr(ranking, "retrain_named", named)
    spec = tmp_path / "spec.json"
    spec.write_text('{"a": ["x"]}')
    for argv in (["--one-se", str(run), "--se", "2", "--costlier", "--no-tau", "--no-stability"],
                 ["--truth-seeds", "0,1", "--archs", "4", "--truth-epochs", "2"],
                 ["--truth-seeds", "0", "--retrain", str(spec), "--truth-epochs", "3"]):
        with pytest.raises(Started):
            ranking.main([*argv, "--out", str(tmp_path / "rk")])
    assert seen == {"one_se": (run, 2.0, True), "truth": (4, [0, 1], 2), "retrain": ({"a": ["x"]}, [0], 3)}


def test_outside_a_study_the_part_flags_are_still_taken(ranking, tmp_path):
    """No study: the τ per option's flags reach it (the truth is retrained first: here, where work starts)."""
    with pytest.raises(Started):
        ranking.main(["--archs", "4", "--options", "fair", "--threads", "1", "--no-signal", "--no-stability",
                      "--out", str(tmp_path / "rk")])


# ---------------------------------------------------------------------------------------- gpu_check.sh

# A stand-in for python3 (gpu_check.sh's PY): it reports a GPU; each step's command is recorded in ./calls next
# to it, with the words it was given before its own (PY's arguments), and exits 0
FAKE_PY = """#!/bin/sh
case "$*" in
  *"torch.cuda.is_available()"*) echo True; exit 0 ;;
  *"import torch, timm"*) echo "torch 0 timm 0"; exit 0 ;;
  *"import importlib"*) exit 0 ;;
esac
echo "$*" >> "$(dirname "$0")/calls"
exit 0
"""
STEPS = ["tests", "engine_speed", "supernet_overhead_digits", "supernet_overhead_proxyless",
         "engine_overhead_proxyless", "scaling", "search_cost", "quickstart"]


def _env(**extra: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), BUDGET="480", **extra)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def _fake(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fake = folder / "python3"
    fake.write_text(FAKE_PY)
    fake.chmod(0o755)
    return fake


def _outcomes(out: Path) -> dict[str, str]:
    lines = (out / "summary.txt").read_text().splitlines()
    return {x.split(" ", 1)[0]: x for x in lines if x.split(" ", 1)[0] in STEPS}


def test_gpu_check_takes_a_relative_py_started_from_a_folder_with_a_space(tmp_path):
    # was: PY became "<that folder>/./python3", then split at the space: "no GPU ... cannot import torch", exit 2
    here = tmp_path / "my folder"
    _fake(here)
    r = subprocess.run(["bash", str(BENCH / "gpu_check.sh")], cwd=here, capture_output=True, text=True, timeout=60,
                       env=_env(OUT="gpu out", PY="./python3"))
    outcomes = _outcomes(here / "gpu out")
    assert list(outcomes) == STEPS and all(" done in " in x for x in outcomes.values()), (outcomes, r.stderr)
    assert r.returncode == 0, r.stderr
    assert len((here / "calls").read_text().splitlines()) == len(STEPS)


def test_gpu_check_from_a_repository_path_with_spaces_and_an_absolute_py_with_one(tmp_path):
    """The script in a folder with a space, PY an absolute path with one, OUT too: every step runs."""
    repo = tmp_path / "the repo"
    (repo / "benchmarks").mkdir(parents=True)
    shutil.copy(BENCH / "gpu_check.sh", repo / "benchmarks" / "gpu_check.sh")
    fake = _fake(tmp_path / "py thon")
    out = tmp_path / "out put"
    r = subprocess.run(["bash", str(repo / "benchmarks" / "gpu_check.sh")], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60, env=_env(OUT=str(out), PY=str(fake)))
    outcomes = _outcomes(out)
    assert list(outcomes) == STEPS and all(" done in " in x for x in outcomes.values()), (outcomes, r.stderr)
    assert r.returncode == 0, r.stderr
    assert (out / "benchmarks.jsonl").exists() and "=== quickstart: " in (out / "all.log").read_text()


def test_gpu_check_still_takes_py_as_a_command_line(tmp_path):
    """PY='PATH -X dev' (no file of that name): the program and its arguments, before each step's own."""
    fake = _fake(tmp_path / "bin")
    r = subprocess.run(["bash", str(BENCH / "gpu_check.sh")], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60, env=_env(OUT=str(tmp_path / "gpu"), PY=f"{fake} -X dev"))
    assert r.returncode == 0, r.stderr
    calls = (tmp_path / "bin" / "calls").read_text().splitlines()
    assert len(calls) == len(STEPS) and all(c.startswith("-X dev ") for c in calls), calls


def _without_dac_override() -> list[str] | None:
    """The command prefix that runs a command without root's permission override (None: not possible here)."""
    if os.name != "posix":
        return None
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    flags = "--bounding-set=-dac_override,-dac_read_search"
    probe = subprocess.run([setpriv, flags, "true"], capture_output=True)
    return [setpriv, flags] if probe.returncode == 0 else None


@pytest.mark.parametrize("mode,refused", [(0o200, True), (0o300, False)], ids=["write_only", "write_and_enter"])
def test_gpu_check_refuses_an_out_it_may_write_but_not_enter(tmp_path, mode, refused):
    # was: chmod 200: `cd OUT` failed, OUT became "" and the files went to /summary.txt, /all.log (root owns /),
    # exit 0 with OUT empty; chmod 300 (write and enter, not list) works
    prefix = _without_dac_override()
    if prefix is None:
        pytest.skip("running as root without setpriv: permissions do not stop this process")
    fake = _fake(tmp_path / "bin")
    out = tmp_path / "gpu"
    out.mkdir()
    out.chmod(mode)
    try:
        r = subprocess.run([*prefix, "bash", str(BENCH / "gpu_check.sh")], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60, env=_env(OUT=str(out), PY=str(fake)))
    finally:
        out.chmod(0o700)
    if refused:
        assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
        assert r.stderr.splitlines() == [f"gpu_check: cannot enter OUT={out} (a folder written in must also be "
                                         f"searchable: chmod u+x it, or give another folder, e.g. "
                                         f"OUT=$PWD/gpu-results); nothing was run"], r.stderr
        assert not (tmp_path / "bin" / "calls").exists() and list(out.iterdir()) == []
    else:
        assert r.returncode == 0, r.stderr
        outcomes = _outcomes(out)
        assert list(outcomes) == STEPS and all(" done in " in x for x in outcomes.values()), outcomes

