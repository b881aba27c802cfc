"""Review EZ: ``automl space profile`` and the ``.space`` parser's cache.

- ``--threads N`` above the CPUs this process can use (its affinity, a cgroup CPU quota) is still accepted, with
  one warning that the table will not reflect the device and the count to use (automl/commands/space.py);
- ``profile.machine_info`` reads the cgroup CPU quota once, so ``cores`` and ``cpu_quota`` describe one reading;
- the parser's cache file in ``$XDG_CACHE_HOME/automl/`` is replaced whole, never written over in place
  (automl/dsl/_parser.py): a reader never sees half a file, and a write that fails leaves the old file.

Profiles here use the fake clock of test_edge_fixes (no real timing) and few repeats; no test starts more threads
than one (the thread counts are only recorded).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from test_edge_fixes import _fake_time  # a latency of exactly 1 ms + 1 µs per parameter
from test_review_eq import _cache_file, _fresh, cache_home  # noqa: F401 - its parser-cache fixture and helpers

import automl.profile as profile
from automl.cli import main
from automl.compile import load_compiled
from automl.dsl import _parser, parse_space
from automl.train import threads as th

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
SMALL = ["--repeat", "1", "--calibrate", "0"]

pytestmark = pytest.mark.usefixtures("one_thread", "no_cpu_quota")  # conftest: the cores are shared; quota faked


# ---- --threads above the usable cores ------------------------------------------------------------------------------

@pytest.fixture
def fake_clock(monkeypatch):
    monkeypatch.setattr(profile, "time_module", _fake_time)


def _profile(tmp_path, capsys, threads: int) -> tuple[int, str, Path]:
    out = tmp_path / "t.json"
    rc = main(["space", "profile", DIGITS, *SMALL, "--threads", str(threads), "--out", str(out)])
    return rc, capsys.readouterr().err, out


def test_more_threads_than_usable_cores_is_accepted_with_one_warning(fake_clock, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)  # taskset -c 0,1
    rc, err, out = _profile(tmp_path, capsys, 3)
    assert rc == 0
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, err
    assert "--threads 3" in warnings[0] and "2 CPUs" in warnings[0] and "use --threads 2" in warnings[0]
    assert "will not reflect the device" in warnings[0]
    assert json.loads(out.read_text())["machine"]["threads"] == 3  # measured and recorded as asked


def test_a_cpu_quota_counts_as_the_usable_cores(fake_clock, monkeypatch, tmp_path, capsys):
    """``docker --cpus=1.5`` on a 16-CPU host: 2 usable CPUs, though the affinity lists all 16."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setattr(th, "_binding", lambda: (1.5, ()))
    rc, err, _ = _profile(tmp_path, capsys, 3)
    assert rc == 0 and "use --threads 2 or fewer" in err


def test_a_refused_command_prints_its_error_alone(fake_clock, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    out = tmp_path / "t.json"
    assert main(["space", "profile", DIGITS, *SMALL, "--threads", "2", "--metric", "params", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --metric params") and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_within_the_usable_cores_give_no_warning(fake_clock, monkeypatch, tmp_path, capsys, threads):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    rc, err, out = _profile(tmp_path, capsys, threads)
    assert rc == 0 and "warning" not in err and out.exists()


# ---- --out: only a cost table (or an empty file) is replaced ----------------------------------------------------------

@pytest.mark.parametrize("name,text", [("recipe.yaml", "space: digits.space\n"), ("results.json", '{"runs": []}\n'),
                                       ("notes.json", "not json")])
def test_out_naming_another_file_is_refused_before_measuring(fake_clock, tmp_path, capsys, name, text):
    out = tmp_path / name
    out.write_text(text)
    measured = []
    real = profile.time_module
    with pytest.MonkeyPatch.context() as m:
        m.setattr(profile, "time_module", lambda *a, **k: measured.append(1) or real(*a, **k))
        assert main(["space", "profile", DIGITS, *SMALL, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and f"--out {out}" in err and "no cost table" in err and "Traceback" not in err
    assert out.read_text() == text and not measured and sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_an_earlier_table_or_an_empty_file_is_replaced(fake_clock, tmp_path, capsys):
    out = tmp_path / "t.json"
    out.write_text("")  # mktemp's
    assert main(["space", "profile", DIGITS, *SMALL, "--out", str(out)]) == 0
    first = json.loads(out.read_text())
    assert main(["space", "profile", DIGITS, "--repeat", "2", "--calibrate", "0", "--out", str(out)]) == 0
    again = json.loads(out.read_text())
    assert (first["repeat"], again["repeat"]) == (1, 2)
    assert profile.read_cost_table(out, load_compiled(DIGITS))["repeat"] == 2  # what search.cost_table reads


# ---- machine_info reads the quota once --------------------------------------------------------------------------------

@pytest.mark.parametrize("quota,cores", [(None, 6), (1.5, 2), (0.25, 1), (12.0, 6)])
def test_machine_info_reads_the_cpu_quota_once(monkeypatch, quota, cores):
    reads = []

    def binding():
        reads.append(1)
        return None if quota is None else (quota, ())

    monkeypatch.setattr(th, "_binding", binding)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    info = profile.machine_info(1)
    assert len(reads) == 1
    assert (info["cores"], info["machine_cores"], info["cpu_quota"]) == (cores, 8, quota)
    assert info["cores"] == th.usable_cores()  # the same count as the rest of automl


# ---- the parser's cache file is replaced whole ------------------------------------------------------------------------

def _parses() -> bool:
    return parse_space((ROOT / "spaces" / "digits.space").read_text(encoding="utf-8"), "digits.space") is not None


def test_a_rebuilt_cache_replaces_the_file_instead_of_writing_over_it(cache_home, monkeypatch):
    _fresh()
    path = _cache_file()
    path.write_bytes(b"cut short")  # a damaged file, which a reader may hold open
    before = path.stat().st_ino
    opened = []
    real = _parser.FS.open

    def recording(name, mode="r", **kwargs):
        opened.append((os.path.abspath(name), mode))
        return real(name, mode, **kwargs)

    monkeypatch.setattr(_parser.FS, "open", staticmethod(recording))
    assert _fresh().source_path == "<string>" and _parses()
    assert (str(path), "wb") not in opened  # never truncated and written in place
    assert path.stat().st_ino != before and path.stat().st_size > 1000  # a whole new file renamed over it
    assert _fresh().source_path == "<deserialized>"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left


def test_a_write_that_fails_halfway_leaves_the_old_file(cache_home, monkeypatch):
    """A full disk while the parser is written: the file that was there stays as it was, nothing else is left."""
    path = _cache_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    old = b"a cache of another automl\n" + bytes(range(256))
    path.write_bytes(old)
    real = _parser.FS.open

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:10])
            raise OSError(errno.ENOSPC, "No space left on device")

    def full_disk(name, mode="r", **kwargs):
        f = real(name, mode, **kwargs)
        return Full(f) if "w" in mode else f

    monkeypatch.setattr(_parser.FS, "open", staticmethod(full_disk))
    assert _fresh().source_path == "<string>" and _parses()
    assert path.read_bytes() == old
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
