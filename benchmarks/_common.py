"""Shared bits of the benchmark scripts: timing with warm-up, and the machine they ran on."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time

import torch


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    # the intra-op thread count changes CPU figures (and their ratios): set it with OMP_NUM_THREADS
    threads = torch.get_num_threads()
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
            f"{threads} thread{'s' if threads != 1 else ''}, torch {torch.__version__}")


def timeit(fn, repeat: int = 20, warmup: int = 3, sync: bool = False) -> list[float]:
    """Seconds per call of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return out


def space_parser(default_space: str):
    """The arguments every per-space benchmark takes: SPACE, --set k=v, --batch, --device."""
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("space", nargs="?", default=default_space)
    p.add_argument("--set", action="append", help="space parameter override k=v")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p


def median(xs) -> float:
    return statistics.median(xs)


def emit(name: str, rows: list[dict], **extra) -> None:
    """A human table, then one JSON line (machine-readable)."""
    if rows:
        keys = list(rows[0])
        widths = [max(len(str(k)), *(len(_fmt(r[k])) for r in rows)) for k in keys]
        print("  ".join(str(k).ljust(w) for k, w in zip(keys, widths)))
        for r in rows:
            print("  ".join(_fmt(r[k]).ljust(w) for k, w in zip(keys, widths)))
    print(json.dumps({"benchmark": name, "machine": machine(), "rows": rows, **extra}))


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
