"""Review FK: the benchmark scripts' shared parts (benchmarks/_common.py) and automl's option given twice.

1. One "given twice" check (``automl.cli.GivenOnce``) for automl's options and the benchmark scripts', each in its
   own words (``--out given twice ...`` and argparse's ``argument --threads: given twice ...``).
2. Ctrl-C (and SIGTERM) while a script runs a child (``automl run``): the child, in a session of its own, is passed
   the signal once and given time to exit on its own (it saves a checkpoint), where ``subprocess.run`` killed it
   0.25 s after Ctrl-C; a second Ctrl-C, or the bound, kills it; no child starts after it (ranking.py's pool);
   family_budgets.py continues a stopped run with ``--resume``.
3. A bad --out (a file, under a file, empty) and a path the machine refuses: one line, exit 2, no traceback.

The children here are small Python scripts that trap the signal and write a file a second later; each test takes
a few seconds (a script imports torch)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _common  # noqa: E402
import family_budgets  # noqa: E402

from automl import cli  # noqa: E402
from automl.commands.space import MAX_CALIBRATE  # noqa: E402
from automl.errors import UserError  # noqa: E402


# ---- 1. one "given twice" for automl and the benchmarks ---------------------------------------------------------


def test_automl_and_the_benchmarks_share_one_given_once():
    automl_out = next(a for a in cli.build_parser().verbs["automl run"]._actions if "--out" in a.option_strings)
    p = _common.parser("A script.")
    threads = p.add_argument("--threads", type=int)
    plain = p.add_argument("--plain", action="store_true")
    for action in (automl_out, threads, plain):
        assert isinstance(action, cli.GivenOnce), type(action).__mro__


@pytest.mark.parametrize("prefixed, words", [(False, "--n given twice (1, then 2); give it once"),
                                             (True, "argument -n/--n: given twice (1, then 2); give it once")])
def test_given_once_words_and_record(prefixed, words):
    once = type("Once", (cli.GivenOnce, argparse._StoreAction), {"prefixed": prefixed})
    p = argparse.ArgumentParser(exit_on_error=False)
    p.add_argument("-n", "--n", action=once, type=int)
    ns = p.parse_args(["--n", "1"])
    assert ns.n == 1 and cli.GIVEN_ONCE in vars(ns)
    cli.GivenOnce.forget(ns)
    assert vars(ns) == {"n": 1}
    with pytest.raises(argparse.ArgumentError) as e:
        p.parse_args(["--n", "1", "-n", "2"])
    assert str(e.value) == words


# ---- 2. Ctrl-C and a child ---------------------------------------------------------------------------------------

# a child that, once its handlers are set, says so in READY (its pid), and on SIGINT or SIGTERM sleeps a second
# (a checkpoint being written), then writes the signal's name to OUT and exits 128 + the signal, as automl run does;
# "ignore": a child that ignores them
CHILD = textwrap.dedent("""
    import os, signal, sys, time
    out, ready, ignore = sys.argv[1], sys.argv[2], sys.argv[3] == "ignore"
    def stop(signum, frame):
        time.sleep(1.0)
        with open(out + ".tmp", "w") as f:
            f.write(signal.Signals(signum).name)
        os.replace(out + ".tmp", out)
        sys.exit(128 + signum)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN if ignore else stop)
    with open(ready + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(ready + ".tmp", ready)
    time.sleep(60)
    """)


@pytest.fixture
def child(tmp_path, monkeypatch):
    """The command of a :data:`CHILD` writing ``OUT`` (``child(out, how)``), in a script named bench.py whose
    stop state is its own (a stop would refuse every later child of this process)."""
    monkeypatch.setattr(_common, "_STOPPING", threading.Event())
    monkeypatch.setattr(_common, "_CHILDREN", set())
    monkeypatch.setattr(sys, "argv", ["bench.py"])
    (tmp_path / "child.py").write_text(CHILD)
    return lambda out, how="trap": [sys.executable, str(tmp_path / "child.py"), str(out), f"{out}.ready", how]


def _signal_once_ready(pattern: Path, count: int, *signums: int, gap: float = 1.0) -> threading.Thread:
    """A thread that sends ``signums`` to this process (``gap`` seconds apart) once ``count`` files match
    ``pattern`` (the children are ready): as a Ctrl-C at the terminal reaches the script alone."""

    def send():
        deadline = time.monotonic() + 60
        while len(list(pattern.parent.glob(pattern.name))) < count:
            if time.monotonic() > deadline:
                return  # the test fails on its own; a signal now would stop pytest
            time.sleep(0.02)
        for i, signum in enumerate(signums):
            time.sleep(gap if i else 0.0)
            os.kill(os.getpid(), signum)

    t = threading.Thread(target=send, daemon=True)
    t.start()
    return t


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_is_passed_on_and_the_child_finishes_its_write(tmp_path, capsys, child, signum, code):
    if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        pytest.skip("this process handles SIGTERM itself")  # run_main catches SIGTERM only where it is the default
    out = tmp_path / "written"
    cmd = child(out)
    _signal_once_ready(tmp_path / "written.ready", 1, signum)
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as e:
        _common.run_main(lambda: _common.check_child(cmd, _common.run_child(cmd)))
    # was: Ctrl-C reached the script alone and subprocess.run killed the child 0.25 s later: nothing written
    assert e.value.code == code
    assert out.read_text() == signal.Signals(signum).name  # the child got the signal once, and finished its write
    assert time.monotonic() - t0 < 20, "waited for the bound, not for the child"
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith(f"bench.py: {signal.Signals(signum).name} passed on; waiting up to 30 s for the "
                               f"child process to stop"), err
    how = "Ctrl-C (SIGINT)" if signum == signal.SIGINT else "SIGTERM"
    assert lines[1] == f"bench.py: stopped by {how}: what it had not printed was not measured", err


def test_a_child_that_does_not_stop_is_killed_at_the_bound(tmp_path, capsys, monkeypatch, child):
    monkeypatch.setattr(_common, "STOP_WAIT", 1.0)
    cmd = child(tmp_path / "written", "ignore")
    _signal_once_ready(tmp_path / "written.ready", 1, signal.SIGINT)
    with pytest.raises(SystemExit) as e:
        _common.run_main(lambda: _common.run_child(cmd))
    err = capsys.readouterr().err
    assert e.value.code == 130 and "killed 1 child process that had not stopped" in err, err
    assert _gone(int((tmp_path / "written.ready").read_text()))


def test_a_second_ctrl_c_kills_the_child_now(tmp_path, capsys, child):
    cmd = child(tmp_path / "written", "ignore")
    _signal_once_ready(tmp_path / "written.ready", 1, signal.SIGINT, signal.SIGINT)
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as e:
        _common.run_main(lambda: _common.run_child(cmd))
    err = capsys.readouterr().err
    assert e.value.code == 130 and "waiting up to 30 s" in err and "killed 1 child process" in err, err
    assert time.monotonic() - t0 < 15 and _gone(int((tmp_path / "written.ready").read_text()))


def test_ranking_stops_its_runs_going_on_and_starts_no_other(tmp_path, capsys, monkeypatch, child):
    # ranking.py's stability runs, two at a time in threads (4 runs: 2 methods x 2 thread counts)
    import ranking

    folder = tmp_path / "rk"
    monkeypatch.setattr(ranking, "automl_run", lambda recipe, overrides, out, threads=None: _common.check_child(
        ["automl", "run"], _common.run_child(child(out))))
    _signal_once_ready(folder / "*.ready", 2, signal.SIGINT)
    with pytest.raises(SystemExit) as e:  # was: the two runs killed, and the two others started after Ctrl-C
        ranking.run_main(ranking.main, ["--no-tau", "--out", str(folder), "--jobs", "2", "--stability-seeds", "0"])
    err = capsys.readouterr().err
    assert e.value.code == 130 and "waiting up to 30 s for 2 child processes" in err, err
    written = sorted(p.name for p in folder.iterdir() if p.suffix != ".ready")
    assert len(written) == 2 and all((folder / w).read_text() == "SIGINT" for w in written), written
    time.sleep(0.5)
    assert len(list(folder.glob("*.ready"))) == 2  # the others never started


def test_no_child_starts_after_a_stop(tmp_path, child):
    _common.stop_children()
    with pytest.raises(KeyboardInterrupt):
        _common.run_child([sys.executable, "-c", f"open({str(tmp_path / 'x')!r}, 'w')"])
    time.sleep(0.5)
    assert not (tmp_path / "x").exists()


def test_run_child_captured_and_its_timeout(tmp_path):
    rc, out, err = _common.run_child_captured([sys.executable, "-c", "import sys; print('o'); print('e', file=sys.stderr)"])
    assert (rc, out, err) == (0, "o\n", "e\n")
    t0 = time.monotonic()
    assert _common.run_child_captured([sys.executable, "-c", "import time; time.sleep(30)"], timeout=1)[0] is None
    assert time.monotonic() - t0 < 10


def _family_budgets(monkeypatch, tmp_path, ran: list) -> None:
    def child(cmd, **kw):  # a run that finishes: results.json in its folder
        ran.append(cmd)
        d = Path(cmd[cmd.index("--out") + 1])
        d.mkdir(parents=True, exist_ok=True)
        arch = {"budget": None, "epsilon": 0.0, "params": 10, "cost": 10.0, "test_accuracy": 0.9}
        (d / "results.json").write_text(json.dumps({"search_seconds": 1.0, "architectures": [arch]}))
        return 0

    monkeypatch.setattr(family_budgets, "run_child", child)
    monkeypatch.setattr(sys, "argv", ["family_budgets.py", "--out", str(tmp_path), "--seeds", "0",
                                      "--methods", "separate,random"])
    family_budgets.main()


def test_family_budgets_continues_a_stopped_run_with_resume(monkeypatch, tmp_path, capsys):
    # separate-s0: a run stopped by Ctrl-C (its checkpoint, no results.json); random-s0: none yet
    (tmp_path / "separate-s0" / "checkpoints").mkdir(parents=True)
    ran: list = []
    _family_budgets(monkeypatch, tmp_path, ran)
    by_out = {Path(c[c.index("--out") + 1]).name: c for c in ran}
    assert by_out["separate-s0"][-1] == "--resume"  # was: a new run there, refused (it holds a checkpoint)
    assert "--resume" not in by_out["random-s0"]
    assert len(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rows"]) == 2


# ---- 3. a bad --out, a path the machine refuses ------------------------------------------------------------------


def test_out_folder(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    for text, words in ((str(f), "is a file, not a folder"), (str(f / "sub"), "cannot create it"),
                        ("  ", "--out is empty")):
        with pytest.raises(UserError, match=words):
            _common.out_folder(text)
    assert _common.out_folder(str(tmp_path / "a" / "b")).is_dir()


@pytest.mark.parametrize("out", ["afile", "afile/sub"])
def test_ranking_with_a_file_as_out_is_one_line(monkeypatch, tmp_path, capsys, out):
    import ranking

    (tmp_path / "afile").write_text("x")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["ranking.py"])
    with pytest.raises(SystemExit) as e:  # was: FileExistsError / NotADirectoryError and their traceback
        ranking.run_main(ranking.main, ["--out", out, "--truth-seeds", "0"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: --out {out}") and "folder" in err, err


def test_a_path_the_machine_refuses_is_one_line_and_other_os_errors_are_internal(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bench.py"])

    def refused():
        raise PermissionError(13, "Permission denied", "/root/runs/x")

    with pytest.raises(SystemExit) as e:  # was: a traceback and exit 1
        _common.run_main(refused)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "bench.py: /root/runs/x: Permission denied" in err, err

    def broken():
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError):  # no file named: an internal error, its traceback
        _common.run_main(broken)


def test_help_states_the_defaults_and_limit_the_docs_quote(capsys):
    """`space profile --help` and `export --help` give --calibrate's default and cap and --opset's default."""
    parser = cli.build_parser()
    for argv in (["space", "profile", "--help"], ["export", "--help"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
    text = " ".join(capsys.readouterr().out.split())
    assert f"default 8, at most {MAX_CALIBRATE:,}" in text and "default 17" in text
    assert parser.parse_args(["export", "s.space", "--arch", "a.json", "--out", "o"]).opset == 17
