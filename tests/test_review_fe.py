"""Review FE: the benchmark scripts as a user meets them.

* ``--threads`` above the CPUs the process can use: one warning line on stderr (as ``automl space profile
  --threads`` prints), the run goes on (latency_table.py, export_latency.py, ranking.py).
* Ctrl-C: one line and exit 130, no traceback (``_common.run_main``).
* ``--help`` gives each option's default.
* An option given twice (``--threads 1 --threads 4``) is refused, as automl's own options are, where argparse kept
  the last without a word.

None of them runs a benchmark longer than a second or two, nor more threads than this machine's cores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_benchmarks_cli import _env, bench

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


@pytest.fixture
def common(monkeypatch):
    """benchmarks/_common.py as the scripts import it (their folder on sys.path), on a machine of 2 usable CPUs."""
    monkeypatch.syspath_prepend(str(BENCH))
    import _common

    monkeypatch.setattr(_common, "usable_cores", lambda: 2)
    return _common


# ---- 1. the threads warning -------------------------------------------------------------------------------------


def test_threads_warning_names_the_count_the_cpus_and_the_fix(common):
    assert common.threads_warning(1) is None
    assert common.threads_warning(2) is None
    w = common.threads_warning(3)
    assert w.startswith("warning: --threads 3 is more than the 2 CPUs this process can use")
    assert "timings will not reflect" in w and w.endswith("use --threads 2 or fewer here")
    assert "\n" not in w
    # torch's default, not a flag the user gave, is not called a --threads
    d = common.threads_warning(8, given=False)
    assert "torch's default of 8 threads (--threads not given)" in d and "--threads 8" not in d


@pytest.fixture(scope="module")
def digits_export(tmp_path_factory):
    """One small architecture of the digits space exported (model.onnx, weights, manifest)."""
    from automl.compile import load_compiled
    from automl.export import export_architecture

    space = str(ROOT / "spaces" / "digits.space")
    cs = load_compiled(space)
    out = tmp_path_factory.mktemp("fe") / "digits-0"
    export_architecture(cs, torch.zeros(len(cs.num_choices), dtype=torch.long), out, space_path=space)
    return out


def _export_latency(common, monkeypatch, capsys, argv):
    monkeypatch.syspath_prepend(str(BENCH))
    import export_latency

    before = torch.get_num_threads()
    try:
        rc = export_latency.main(argv)
    finally:
        torch.set_num_threads(before)
    return rc, capsys.readouterr()


def test_export_latency_warns_once_and_runs_on(common, monkeypatch, capsys, digits_export):
    # 3 threads against 2 "usable" CPUs (this machine has at least 2: the run itself is never oversubscribed much)
    rc, out = _export_latency(common, monkeypatch, capsys, [str(digits_export), "--runs", "1", "--threads", "3"])
    assert rc == 0
    warnings = [x for x in out.err.splitlines() if x.startswith("warning:")]
    assert warnings == [common.threads_warning(3)]
    assert '"benchmark": "export_latency"' in out.out and "3 threads" in out.out  # the figures still come


def test_export_latency_warns_for_torchs_default_too(common, monkeypatch, capsys, digits_export):
    """Without --threads the count is torch's (2 here) against 1 usable CPU: the warning calls it torch's."""
    monkeypatch.setattr(common, "usable_cores", lambda: 1)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rc, out = _export_latency(common, monkeypatch, capsys, [str(digits_export), "--runs", "1"])
    finally:
        torch.set_num_threads(before)
    assert rc == 0
    assert out.err.strip() == common.threads_warning(2, given=False)
    assert "2 threads" in out.out


def test_export_latency_within_the_cpus_says_nothing(common, monkeypatch, capsys, digits_export):
    rc, out = _export_latency(common, monkeypatch, capsys, [str(digits_export), "--runs", "1", "--threads", "1"])
    assert rc == 0 and "warning" not in out.err


def test_latency_table_warns_after_its_checks(tmp_path):
    """Under ``taskset -c 0`` (one usable CPU) ``--threads 2`` is refused for a wrong --int8-run with its error
    alone: the warning comes after the checks, as ``automl space profile``'s."""
    if not hasattr(os, "sched_getaffinity") or 0 not in os.sched_getaffinity(0):
        pytest.skip("needs CPU 0 in this process's affinity")
    r = subprocess.run(["taskset", "-c", "0", sys.executable, str(BENCH / "latency_table.py"), "--threads", "2",
                        "--int8-run", str(tmp_path)], cwd=ROOT, env=_env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr
    assert "no results.json" in r.stderr and "warning" not in r.stderr


def test_latency_table_and_ranking_call_the_warning():
    """Both take --threads; the warning is read from the parsed count (a source check: running them measures)."""
    for script, call in (("latency_table.py", "warn_threads(args.threads)"),
                         ("ranking.py", "warn_threads(a.threads,")):
        assert call in (BENCH / script).read_text(), script


# ---- 2. Ctrl-C ---------------------------------------------------------------------------------------------------


def test_ctrl_c_is_one_line_and_exit_130():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); sys.argv[0] = 'bench.py'\n"
            "from _common import run_main\n"
            "def main():\n"
            "    raise KeyboardInterrupt\n"
            "run_main(main)\n")
    r = subprocess.run([sys.executable, "-c", code, str(BENCH)], cwd=ROOT, env=_env(), capture_output=True, text=True,
                       timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 130, (r.returncode, r.stderr)
    assert r.stderr.strip() == "bench.py: stopped by Ctrl-C (SIGINT): what it had not printed was not measured"


# ---- 3. --help and options given twice ---------------------------------------------------------------------------


@pytest.mark.heavy  # every benchmark's --help, a subprocess each
def test_help_gives_the_defaults():
    r = bench("latency_table.py", "--help")
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    for shown in ("--archs ARCHS random architectures to export and time (at least 2: Kendall's tau compares pairs) "
                  "(default: 30)",
                  "--batch BATCH images per inference, for the table and the whole models (default: 1)",
                  "(default: proxylessnas digits)",
                  "(default: wall)"):
        assert shown in text, shown
    assert "(default: False)" not in text and "(default: None)" not in text  # switches, unset options


def test_an_option_given_twice_is_refused(common, capsys):
    p = common.parser("A script.")
    p.add_argument("--threads", type=common.thread_count, default=1)
    p.add_argument("--plain", action="store_true")
    p.add_argument("--set", action="append", default=[])
    a = p.parse_args(["--set", "a=1", "--set", "b=2", "--threads", "2"])  # --set is repeatable
    assert (a.set, a.threads, a.plain) == (["a=1", "b=2"], 2, False)
    assert not hasattr(a, "_given_once")
    for argv, words in ((["--threads", "1", "--threads", "4"], "argument --threads: given twice (1, then 4)"),
                        (["--plain", "--plain"], "argument --plain: given twice; give it once")):
        with pytest.raises(SystemExit) as e:
            p.parse_args(argv)
        assert e.value.code == 2
        assert words in capsys.readouterr().err


@pytest.mark.heavy  # subprocesses importing torch
def test_a_script_refuses_a_repeated_threads():
    r = bench("latency_table.py", "--threads", "1", "--threads", "4")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("latency_table.py: error: argument --threads: given twice (1, then 4); give it once "
                                "(see --help)")
