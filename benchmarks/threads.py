"""Intra-op threads next to busy processes: the recipe's ``threads: auto`` against 1 and torch's default.

    python benchmarks/threads.py [--repeat 3] [--busy 0,1,2] [--epochs 1] [--steps 3] [--batch 4] [--limit 180]
                                 [--workloads digits,proxylessnas]

Two workloads, each in a fresh process (so torch's default thread count and the ``auto`` choice are what a
user gets; ``OMP_NUM_THREADS`` is removed from the children's environment):

* ``digits``: ``automl run recipes/quickstart.yaml`` with ``--epochs`` weight and θ epochs, one supernet
  (``search.supernets=1``: the workload of the published tables; the quickstart now trains four), no
  retraining, no ONNX; the figure is the run's ``search_seconds`` (results.json), which leaves out start-up.
* ``proxylessnas``: ``--steps`` timed supernet weight steps (after one untimed step) on spaces/proxylessnas.space at
  224², batch ``--batch``, λ = 2 uniformly sampled paths, the thread count chosen by the same code as
  ``automl run`` (``automl.train.threads.resolve_threads``).

Each runs alone and next to 1 and 2 busy processes (``--busy``; it must include 0, the idle runs), started by
this script before the workload (so ``auto`` sees them) and killed after it: Python processes multiplying
512x512 matrices in a loop with torch's default threads. Settings are interleaved (their order rotates every
repeat) and every row is the median of ``--repeat`` runs; ``x_idle`` is a row's median over the same
setting's median with 0 busy processes.
A workload process that takes longer than ``--limit`` wall seconds (start-up included) is stopped and
counted as ``--limit`` seconds (``cut_off`` counts them: the row's figure is then a lower bound).
Prints a table and one JSON line (benchmarks/_common.py). A workload process that fails stops the script
with one line naming its command (exit 2 when the process's was 2).

With ``k`` busy processes on ``c`` cores, a process gets at most ``c / (k + 1)`` cores under a fair
scheduler: on a 2-core machine a single-threaded workload next to two busy processes takes at least 1.5x
its idle time, whatever the thread count, and a workload that gains from two threads when idle loses that
gain next to one busy process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import (batch_size, check_child, emit, int_at_least, int_list, median, names, parser,  # noqa: E402
                     positive_float, run_child_captured, run_main)

BUSY_MOST = 64  # busy processes at once: more only measures the scheduler, and a typo could start thousands
# repeats, digits epochs and proxylessnas steps: far above a useful run (the defaults, 3, 1 and 3, take 20 minutes),
# low enough that a typo's extra digits is a message instead of days of runs
REPEAT_MOST, EPOCHS_MOST, STEPS_MOST = 100, 1000, 1000
MAX_LIMIT = 1_000_000  # seconds (11.6 days): more is a typo, and Python cannot wait for 1e30 seconds

ROOT = Path(__file__).resolve().parents[1]
# a busy neighbour; it stops by itself if this script dies without killing it (its parent changes)
WORKLOADS = ("digits", "proxylessnas")
BUSY = ("import os, torch\nparent = os.getppid()\na = torch.randn(512, 512)\n"
        "while os.getppid() == parent:\n    a = (a @ a).clamp_(-1, 1)\n")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def limit_seconds(text: str) -> float:
    """An argparse ``type=``: --limit, a finite number of seconds > 0, at most :data:`MAX_LIMIT`."""
    value = positive_float(text)
    if value > MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{text}: at most {MAX_LIMIT:,} seconds (a typo?)")
    return value


def torch_default_threads() -> int:
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=_env(),
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def _child(cmd: list[str], limit: float) -> str | None:
    """Run ``cmd``; its stdout, or None when it ran past ``limit`` seconds (killed)."""
    rc, out, err = run_child_captured(cmd, _env(), limit)  # Ctrl-C: passed on to the child, which exits
    if rc is None:
        return None
    check_child(cmd, rc, err)
    return out


def digits_command(setting: str, epochs: int, out: Path) -> list[str]:
    """The digits workload: the quickstart, one supernet, ``epochs`` weight and θ epochs, nothing after."""
    return [sys.executable, "-m", "automl", "run", str(ROOT / "recipes" / "quickstart.yaml"), "device=cpu",
            f"threads={setting}", "search.supernets=1", f"search.weight_epochs={epochs}",
            f"search.theta_epochs={epochs}", "retrain.epochs=0", "export.onnx=false", "--out", str(out)]


def run_digits(setting: str, epochs: int, limit: float) -> tuple[float, int | None, bool]:
    """(search seconds, threads used, cut off) of a short quickstart run in a fresh process."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "run"
        if _child(digits_command(setting, epochs, out), limit) is None:
            return limit, None, True
        res = json.loads((out / "results.json").read_text())
    return float(res["search_seconds"]), int(res["threads"]["threads"]), False


def run_proxyless(setting: str, steps: int, batch: int, limit: float) -> tuple[float, int | None, bool]:
    cmd = [sys.executable, __file__, "--child", setting, "--steps", str(steps), "--batch", str(batch)]
    out = _child(cmd, limit)
    if out is None:
        return limit, None, True
    res = json.loads(out.strip().splitlines()[-1])
    return float(res["seconds"]), int(res["threads"]), False


def child_proxyless(setting: str, steps: int, batch: int) -> None:
    """Supernet weight steps on ProxylessNAS at 224², timed; prints {"seconds", "threads"}."""
    import torch
    from torch import nn

    from automl.compile import load_compiled
    from automl.train.distributed import DistInfo
    from automl.train.loops import create_optimizer, for_training, weight_step
    from automl.train.threads import apply_threads, resolve_threads, space_elements

    cs = load_compiled(ROOT / "spaces" / "proxylessnas.space", {"classes": "10"})
    choice = resolve_threads(setting if setting == "auto" else int(setting),
                             work=space_elements(cs) * batch)
    apply_threads(choice.threads)
    torch.manual_seed(0)
    dev = torch.device("cpu")
    net = for_training(cs.build_supernet(), dev)
    opt = create_optimizer(net, "sgd", 0.01, 0.0, 0.9, False)
    x, y = torch.randn(batch, 3, 224, 224), torch.randint(0, 10, (batch,))
    k = torch.tensor(cs.num_choices)
    g = torch.Generator().manual_seed(0)
    crit = nn.CrossEntropyLoss()

    def step():
        archs = (torch.rand(2, len(k), generator=g) * k).long().clamp_max(k - 1)
        weight_step(net, x, y, archs, opt, crit, DistInfo(), 5.0, dev)

    step()  # untimed: one-time kernel selection and allocation
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    print(json.dumps({"seconds": time.perf_counter() - t0, "threads": choice.threads}))


class Busy:
    """``n`` busy processes for the duration of a ``with`` block."""

    def __init__(self, n: int):
        self.n, self.procs = n, []

    def __enter__(self):
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        self.procs = [subprocess.Popen([sys.executable, "-c", BUSY], env=env, stdout=subprocess.DEVNULL)
                      for _ in range(self.n)]
        if self.n:
            time.sleep(2.0)  # imported and multiplying before the workload starts
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


def progress_line(rep: int, busy: int, workload: str, setting: str, r: tuple[float, int | None, bool]) -> str:
    """One measured process, as stderr shows it: ``r`` is (seconds, threads it ran or None, cut off at --limit)."""
    seconds, threads, cut = r
    ran = ("stopped at --limit, threads unknown" if threads is None
           else f"{threads} thread{'' if threads == 1 else 's'}")
    return f"  rep {rep + 1} busy {busy} {workload} threads={setting}: {'>=' if cut else ''}{seconds:.2f} s ({ran})"


def main(argv: list[str]) -> None:
    p = parser(__doc__)
    p.add_argument("--repeat", type=int_at_least(1, REPEAT_MOST), default=3,
                   help=f"runs per row, interleaved; the median is reported (at most {REPEAT_MOST})")
    p.add_argument("--busy", type=int_list(0, BUSY_MOST), default="0,1,2",
                   help=f"numbers of busy processes, comma-separated (at most {BUSY_MOST})")
    p.add_argument("--epochs", type=int_at_least(1, EPOCHS_MOST), default=1,
                   help=f"digits: weight and θ epochs (at most {EPOCHS_MOST:,})")
    p.add_argument("--steps", type=int_at_least(1, STEPS_MOST), default=3,
                   help=f"proxylessnas: timed supernet steps (at most {STEPS_MOST:,})")
    p.add_argument("--batch", type=batch_size, default=4, help="proxylessnas: batch size")
    p.add_argument("--workloads", type=names(WORKLOADS), default=",".join(WORKLOADS),
                   help=f"comma-separated, of {', '.join(WORKLOADS)}")
    p.add_argument("--limit", type=limit_seconds, default=180.0,
                   help="wall seconds a workload process (start-up included) may take; one that takes longer is "
                        "stopped and counted as LIMIT seconds (a lower bound, marked >=): a collapse cannot "
                        "stall the benchmark")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child is not None:
        return child_proxyless(a.child, a.steps, a.batch)
    from automl.train.threads import physical_cores

    default = torch_default_threads()
    settings = ["auto", "1"] + ([str(default)] if default != 1 else [])
    labels = {"auto": "auto", "1": "1", str(default): f"default ({default})"}
    loads = list(dict.fromkeys(a.busy))
    if 0 not in loads:  # x_idle and auto / best fixed are relative to the runs next to no busy process
        p.error(f"argument --busy: {','.join(map(str, a.busy))} has no 0: the idle runs are the baseline")
    workloads = list(dict.fromkeys(a.workloads))  # a name given twice is one workload
    cores = physical_cores()
    samples: dict[tuple, list[tuple[float, int]]] = {}
    t_start = time.perf_counter()
    for rep in range(a.repeat):
        for busy in loads:
            with Busy(busy):
                for w in workloads:
                    order = settings[rep % len(settings):] + settings[:rep % len(settings)]
                    for s in order:
                        r = (run_digits(s, a.epochs, a.limit) if w == "digits" else
                             run_proxyless(s, a.steps, a.batch, a.limit))
                        samples.setdefault((w, busy, s), []).append(r)
                        print(progress_line(rep, busy, w, s, r), file=sys.stderr, flush=True)
    rows = []
    for w in workloads:
        for s in settings:
            idle = median([t for t, _, _ in samples[(w, 0, s)]])
            for busy in loads:
                got = samples[(w, busy, s)]
                secs = median([t for t, _, _ in got])
                threads = sorted({n for _, n, _ in got if n is not None})
                rows.append({"workload": w, "busy": busy, "setting": labels[s],
                             "threads": ",".join(map(str, threads)) or "?", "seconds": round(secs, 3),
                             "x_idle": round(secs / idle, 2), "runs": len(got),
                             "cut_off": sum(c for _, _, c in got)})
    summary = {}
    for w in workloads:
        auto = [r for r in rows if r["workload"] == w and r["setting"] == "auto"]
        auto_idle = next(r["seconds"] for r in auto if r["busy"] == 0)
        idle_fixed = [r["seconds"] for r in rows if r["workload"] == w and r["busy"] == 0 and r["setting"] != "auto"]
        summary[w] = {"auto_worst_x_idle": max(r["x_idle"] for r in auto),
                      "auto_idle_over_best_fixed": round(auto_idle / min(idle_fixed), 3)}
    for w, v in summary.items():
        print(f"{w}: auto's worst row {v['auto_worst_x_idle']:.2f}x its idle time (goal <= 1.3); idle, auto / "
              f"best fixed setting {v['auto_idle_over_best_fixed']:.3f} (goal <= 1.10)")
    emit("threads", rows, summary=summary, repeat=a.repeat, epochs=a.epochs, steps=a.steps, batch=a.batch,
         physical_cores=cores, torch_default_threads=default,
         total_seconds=round(time.perf_counter() - t_start, 1))


if __name__ == "__main__":
    # `kill` (SIGTERM) still stops the busy processes (their finally blocks run: run_main raises it as Ctrl-C)
    run_main(main, sys.argv[1:])
