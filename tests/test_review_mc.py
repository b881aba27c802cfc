"""The benchmark scripts as a user of README's "Performance" meets them (review MC): each flag's --help says what it
is, tables label their units, a run that would measure nothing is refused, progress lines name what they know.

No case runs a benchmark: --help, a refusal before any work, or finished runs faked on disk."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))
# left bare, as other tests pin their help word for word: tests/test_review_fe.py::test_help_gives_the_defaults
# ("--batch BATCH (default: 1)"), tests/test_review_kp.py::test_help_names_the_default_recipe ("recipe (default: ")
BARE_KEPT = {("latency_table.py", "--batch BATCH"), ("ranking.py", "recipe")}


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def bench(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / script), *args], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=60)


def help_entries(text: str) -> dict[str, str]:
    """Each argument of an argparse --help (its invocation, e.g. ``--batch BATCH``) and its help text, with the
    ``(default: ...)`` part left out."""
    entries: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        if line.endswith(":") and not line.startswith(" "):  # a section: "options:", "positional arguments:"
            name = None
            continue
        m = re.match(r"^  (\S(?:\S| (?=\S))*)(?:\s{2,}(.*))?$", line)  # "  --batch BATCH  its help"
        if m:
            name = m.group(1)
            entries[name] = m.group(2) or ""
        elif name is not None and line.startswith("   "):  # its help, continued
            entries[name] += " " + line.strip()
    return {k: re.sub(r"\(default:[^)]*\)", "", v).strip() for k, v in entries.items()}


# one script in the default suite, the rest in CI's heavy run (a subprocess importing torch: seconds each)
@pytest.mark.parametrize("script", [pytest.param(s, marks=[pytest.mark.heavy] if i else [])
                                    for i, s in enumerate(SCRIPTS)])
def test_help_describes_every_flag(script):
    """--help gives each option what it is, not only its default (was: --batch, --iters, --seeds, --D ... bare)."""
    r = bench(script, "--help")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    entries = help_entries(r.stdout.split("\n\n", 1)[1])  # past the usage lines
    assert entries, r.stdout
    bare = [k for k, v in entries.items() if not k.startswith("-h") and not re.search(r"[A-Za-zτλε]", v)
            and (script, k) not in BARE_KEPT]
    assert not bare, f"{script}: no description for {bare}\n{r.stdout}"


def test_help_entries_reads_argparse_layout():
    text = ("options:\n  -h, --help     show this help message and exit\n  --batch BATCH  (default: 64)\n"
            "  --channels CHANNELS [CHANNELS ...]\n                        channel counts (default: 144\n"
            "                        288)\n")
    assert help_entries(text) == {"-h, --help": "show this help message and exit", "--batch BATCH": "",
                                  "--channels CHANNELS [CHANNELS ...]": "channel counts"}


def test_ranking_with_both_parts_skipped_is_refused(tmp_path, monkeypatch, capsys):
    """--no-tau --no-stability and no study: nothing would be measured (was: exit 0, no output at all)."""
    import ranking

    monkeypatch.setattr(sys, "argv", ["ranking.py"])
    with pytest.raises(SystemExit) as e:
        ranking.run_main(ranking.main, ["--no-tau", "--no-stability", "--out", str(tmp_path / "rk")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--no-tau" in err and "--no-stability" in err and "Traceback" not in err, err
    assert not (tmp_path / "rk").exists()  # refused before --out is made (was: an empty folder left behind)


def _fake_run(folder: Path, accuracy: float, seconds: float) -> None:
    folder.mkdir(parents=True)
    arch = {"params": 50_000, "cost": 50_000, "budget": None, "epsilon": 0.0, "test_accuracy": accuracy}
    (folder / "results.json").write_text(json.dumps({"search_seconds": seconds, "architectures": [arch]}))


def test_family_budgets_labels_accuracy_as_percent(tmp_path):
    """The table prints test accuracy ×100: its header says so (was: "test acc", read as a fraction of 1)."""
    out = tmp_path / "fb"
    _fake_run(out / "importance_sampling-s0", 0.975, 4.0)
    _fake_run(out / "separate-s0", 0.9625, 8.0)
    r = bench("family_budgets.py", "--seeds", "0", "--out", str(out))  # both runs finished: reused, none started
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("seed"))
    assert re.search(r"test acc(uracy)? ?(%|\(%\))", header), header
    rows = [line for line in lines if line.lstrip().startswith("0 ")]
    assert [line.split()[-2] for line in rows] == ["97.50", "96.25"], lines
    assert json.loads(lines[-1])["ratio_median"] == 0.5


def test_threads_progress_line_names_a_cut_off_run():
    """A process stopped at --limit has no thread count: the line says so (was: "(None threads)")."""
    import threads

    cut = threads.progress_line(0, 1, "digits", "2", (60.0, None, True))
    assert "None" not in cut and ">=60.00 s" in cut and "--limit" in cut, cut
    one = threads.progress_line(2, 0, "proxylessnas", "auto", (3.5, 1, False))
    assert "rep 3" in one and "3.50 s" in one and "(1 thread)" in one, one
    assert "(2 threads)" in threads.progress_line(0, 0, "digits", "2", (3.5, 2, False))
