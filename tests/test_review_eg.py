"""Review EG: a hard kill (``kill -9``) in the middle of an atomic write, then ``--resume``.

A child ``automl run`` dies (``os._exit``, as SIGKILL leaves it: no handler, no ``finally``) at the moment an
atomic write has its temporary written and flushed but not yet renamed over the target: a checkpoint during the
search, a member's exported weights, results.json or report.md during the report. The folder then holds the
temporary and the previous version of the file (or none). ``--resume`` continues without an error, leaves no
temporary behind, and the results, metrics.jsonl and report equal an uninterrupted run's (timings aside).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from automl._io import TEMPORARY

pytestmark = pytest.mark.skipif(os.name != "posix", reason="os._exit in a child process")

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
TINY = ["device=cpu", "threads=1", "data.limit_train=96", "data.batch_size=32", "data.theta_batch_size=32",
        "search.lam=2", "search.weight_epochs=1", "search.theta_epochs=1", "search.budgets=[null,40k]",
        "retrain.epochs=0", "export.onnx=false", "search.log_every=1"]
TIMINGS = {"seconds", "search_seconds", "phase_seconds", "latency_ms", "fp32_ms"}

# `automl run` that dies when the NTH atomic write whose target's name starts with PREFIX is about to be renamed
# over its target: the temporary is whole and on disk, the target still the earlier version (or missing)
DIE_AT = """
import os, sys
from pathlib import Path
prefix, nth, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
real, seen = os.replace, []
def replace(src, dst, *a, **k):
    if Path(dst).name.startswith(prefix):
        seen.append(dst)
        if len(seen) == nth:
            os._exit(137)
    return real(src, dst, *a, **k)
os.replace = replace
from automl.cli import main
sys.exit(main(argv))
"""


def _automl(cwd: Path, *args: str, die_at: tuple[str, int] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OMP_NUM_THREADS", None)
    code = DIE_AT if die_at else "import sys; from automl.cli import main; sys.exit(main(sys.argv[1:]))"
    pre = [die_at[0], str(die_at[1])] if die_at else []
    return subprocess.run([sys.executable, "-c", code, *pre, "run", QUICK, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _untimed(obj, out: Path):
    if isinstance(obj, dict):
        return {k: _untimed(v, out) for k, v in obj.items() if k not in TIMINGS}
    if isinstance(obj, list):
        return [_untimed(v, out) for v in obj]
    return obj.replace(str(out), "OUT") if isinstance(obj, str) else obj


def _outcome(out: Path) -> dict:
    """What a run leaves, timings and its own path aside."""
    exports = {str(p.relative_to(out)): (_untimed(json.loads(p.read_text()), out) if p.suffix == ".json"
                                         else p.read_bytes())
               for p in sorted((out / "export").rglob("*")) if p.is_file()}
    report = re.sub(r"[0-9.]+ m?s\b", "T", (out / "report.md").read_text()).replace(str(out), "OUT")
    return {"results": _untimed(json.loads((out / "results.json").read_text()), out),
            "metrics": [_untimed(json.loads(x), out) for x in (out / "metrics.jsonl").read_text().splitlines()],
            "exports": exports, "report": report}


def _temporaries(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*.tmp"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    cwd = tmp_path_factory.mktemp("eg")
    done = _automl(cwd, "--out", "run", *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    return _outcome(cwd / "run")


# (prefix, n): the 3rd checkpoint (the search's last, before the exports); the 2nd member's weights (the first
# member's stage is checkpointed, the second's not); results.json and report.md, the report stage's writes
@pytest.mark.parametrize("prefix,nth", [pytest.param("ckpt-", 3, marks=pytest.mark.heavy),
                                        pytest.param("model.safetensors", 2, marks=pytest.mark.heavy),
                                        pytest.param("results.json", 1, marks=pytest.mark.heavy),
                                        ("report.md", 1)])  # two runs each: one in the default suite
def test_a_kill_inside_an_atomic_write_resumes_to_the_uninterrupted_runs_results(tmp_path, uninterrupted,
                                                                                  prefix, nth):
    out = tmp_path / "run"
    killed = _automl(tmp_path, "--out", "run", *TINY, die_at=(prefix, nth))
    assert killed.returncode == 137, killed.stderr[-3000:]
    left = _temporaries(out)
    assert left and all(TEMPORARY.fullmatch(Path(p).name) for p in left), left  # the kill point was reached
    resumed = _automl(tmp_path, "--out", "run", *TINY, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    assert _temporaries(out) == []
    index = json.loads((out / "checkpoints" / "checkpoints.json").read_text())["checkpoints"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == sorted(
        ["checkpoints.json", *(e["file"] for e in index)])
    assert _outcome(out) == uninterrupted
