"""How many intra-op threads a run uses: the recipe's top-level ``threads: auto | N``.

Why it matters: torch's default is one OpenMP thread per core, and OpenMP threads spin while they wait for
each other. When another process holds one of the cores, every parallel op waits for the thread that lost
its core, and a run on a 2-core machine took 3.3x as long next to one busy process (39.9 s against 12.0 s);
with one thread it took 12.4 s. On small work (the digits' 4x4 maps) a second thread gains nothing even
on an idle machine. So ``auto`` picks (:func:`choose_threads`, a pure function)::

    useful = max(1, step_work // WORK_PER_THREAD)   # threads the work can keep busy
    free   = max(1, cores - busy)                   # cores nobody else is using right now
    free   = min(free, quota - quota_busy)          # under a cgroup CPU quota: what is left of it, if fewer
    share  = max(1, free // local_world_size)       # torchrun: the processes on this machine split them
    threads = min(useful, share)

* ``step_work`` (:func:`spaces_work`): activation elements of one training step, the batch size times the
  sum of every layer's output (height x width x width) on the widest path, for the search and the
  retraining network; a cheap stand-in for how big each op is, which is what decides whether an op is
  worth splitting. ``WORK_PER_THREAD`` = 2 M elements: the digits quickstart (batch 64, 0.18 M), where a
  second thread measured no faster, runs one thread; ProxylessNAS at 224² (batch 8, 10 M), where more
  threads help, up to five. The constant lies between the two; it is not tuned further.
* ``cores``: the physical cores among the CPUs this process may run on (``os.sched_getaffinity``,
  hyper-threads of one core counted once).
* ``busy``: cores other processes keep busy on those CPUs, from ``/proc/stat`` over 0.15 s, with this
  process idle; a core counts by how busy it is (0.3 busy counts 0.3), and the sum is rounded.
* ``quota`` (only where it is below ``cores``): a cgroup CPU quota (``docker --cpus``, a Kubernetes CPU
  limit, ``systemd-run -p CPUQuota=``, a Slurm job's cgroup) in CPUs, rounded up, and ``quota_busy`` the CPUs
  that cgroup's other processes use over the same 0.15 s (its ``cpu.stat``; 0 where unreadable). The quota is
  the smallest among this process's own cgroup and its parents up to the root (``/proc/self/cgroup`` names
  the cgroup: ``cpu.max`` of each in cgroup v2, ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` in v1); where
  that cgroup is not under ``/sys/fs/cgroup`` (a container's own cgroup namespace shows ``/``), the files at
  the root of ``/sys/fs/cgroup``, which are then the container's. Both limits apply: ``/proc/stat`` in a
  container (without lxcfs) is the host's, so its busy cores may be other tenants' work, which takes the
  host's cores but not this container's quota; work inside the container takes its quota. With a quota of 4
  on a 16-core host whose other tenants keep 8 cores busy, 4 threads; with 14 busy, 2.
  (:func:`physical_cores` is ``min(cores, quota)``, the cores this process can keep busy at most;
  :func:`usable_cores` the same with each hyper-thread counted, the ``cores`` of automl's machine records.)
* The choice is made once, when the run starts: changing the thread count later would change the
  float rounding partway through (see "Resume" below).

Precedence (:func:`resolve_threads`): ``threads: N`` in the recipe (or the override ``threads=N``) wins,
then an ``OMP_NUM_THREADS`` in the environment, then a ``MKL_NUM_THREADS`` (torch honours it alone too:
without automl, ``MKL_NUM_THREADS=1`` runs one thread), then ``auto``; a variable that differs from the
count used is named as ignored. The recipe wins over the environment because the recipe is the run's
record (``recipe.resolved.yaml``), and ``threads=N`` on the command line is as explicit as the environment.
torchrun sets ``OMP_NUM_THREADS=1`` itself for its workers when the user did not; that value is recognised
(its parent, torchrun, started without it) and is not taken as the user's.

Resume: the thread count changes float rounding, and a resumed run must equal an uninterrupted one bit for
bit on the CPU. The count a run starts with is saved in ``DIR/threads.json`` (and in its checkpoints);
``--resume`` with ``threads: auto`` reuses it (whatever the machine's load is now). Without a readable
threads.json it takes the count the newest checkpoint records, else the one results.json records; with
neither, ``auto`` chooses anew and a warning names the missing file and the count chosen. An explicit
``threads: N``, ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` that differs wins, and the info line says the
resumed run may then differ in rounding; threads.json and results.json's ``threads`` then list each part's count
in order in ``history`` (:func:`note_part`).
A kept or explicit count above :func:`physical_cores` (per torchrun process on this machine) is used as it
is, and the info line adds that the process has fewer cores to use (those of its CPU affinity, within any
cgroup CPU quota, as ``automl space profile``'s warning counts its CPUs: :func:`usable_cores`), and the CPUs
among which they are where hyper-threads make those more (oversubscribed threads are the slow case above).

Not changed: ``OMP_WAIT_POLICY``. ``PASSIVE`` (threads sleep instead of spinning) took 25.8 s where the
default took 12.0-15.9 s on the idle machine: fewer threads than free cores avoids the spinning's cost
without paying for it everywhere. Inter-op threads: automl runs no inter-op parallel work; the pool is set
to one thread where torch still allows it (before any inter-op work in the process). The onnxruntime
latencies of exports (``latency_ms``, ``automl space profile``) keep their own fixed thread count (one by
default): they describe the exported model, and must compare across runs whatever the training used.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch

from automl._io import atomic_write_json, write_fix
from automl.errors import UserError
from automl.limits import MAX_THREADS, SET_ASIDE, THREAD_ENV_VARS, env_thread_count

__all__ = ["ThreadChoice", "memory_available", "gib", "choose_threads", "resolve_threads", "spaces_work",
           "physical_cores", "usable_cores", "cpu_quota", "busy_cores", "apply_threads", "env_threads", "env_counts",
           "check_setting", "save_choice", "lost_record", "note_part", "report_only_choice", "a_thread_count",
           "WORK_PER_THREAD", "THREADS_FILE", "MAX_THREADS", "ENV_VARS"]

WORK_PER_THREAD = 2_000_000  # activation elements of one step that keep one more thread worth its overhead
THREADS_FILE = "threads.json"
BUSY_INTERVAL = 0.15
FS_ROOT = "/"  # where /proc/stat, /proc/self/cgroup and /sys are read from (tests point it at a fake tree)
CGROUP_MOUNT = "sys/fs/cgroup"  # the cgroup file system, relative to FS_ROOT
try:  # /proc/stat counts in these ticks (USER_HZ)
    TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):  # not a POSIX system: /proc/stat is not read there either
    TICKS_PER_SECOND = 100


@dataclass(frozen=True)
class ThreadChoice:
    """What a run uses: ``threads`` intra-op threads, from ``source`` (auto, recipe, OMP_NUM_THREADS,
    MKL_NUM_THREADS, resumed), and ``reason`` in words; the measured inputs of ``auto`` where it measured them.
    ``history``: for a run resumed with another count, each part's count in order (:func:`note_part`); None while
    every part used one."""

    threads: int
    source: str
    reason: str
    cores: int | None = None
    busy_cores: float | None = None
    step_work: int | None = None
    local_world_size: int = 1
    cpu_quota: int | None = None
    quota_busy: float | None = None
    history: tuple[int, ...] | None = None

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if v is not None}

    def line(self) -> str:
        """The progress line, its reason one clause without parentheses of its own: ``threads: 1 (from the
        recipe)``, ``threads: 2 (auto: a step of 6.1 M activations keeps 2 threads busy on 16 cores, 14.0 busy)``;
        a reason other than auto's names its source itself."""
        return f"threads: {self.threads} ({'auto: ' if self.source == 'auto' else ''}{self.reason})"


# ------------------------------------------------------------------------------------------ the rule


def _whole(x: float | None, most: int) -> int:
    """A measured count of busy cores as a whole number from 0 to ``most``: rounded half up."""
    return min(most, int(math.floor(max(0.0, x or 0.0) + 0.5)))


def choose_threads(work: int | None, cores: int, busy: float | None, local_world_size: int = 1, *,
                   quota: int | None = None, quota_busy: float | None = None) -> tuple[int, str]:
    """The ``auto`` rule (module docstring): (threads, reason). ``work`` None: not known, the cores decide;
    ``busy`` None: not measured (counts as 0); ``quota`` None: no cgroup CPU quota below ``cores``, and
    ``quota_busy`` (None: not measured) the CPUs its cgroup uses besides this process."""
    cores = max(1, int(cores))
    local = max(1, int(local_world_size))
    free = cores - _whole(busy, cores)
    if quota is not None:
        quota = max(1, int(quota))
        free = min(free, quota - _whole(quota_busy, quota))
    free = max(1, free)
    share = max(1, free // local)
    useful = share if work is None else max(1, int(work) // WORK_PER_THREAD)
    n = min(useful, share)
    # one clause, no parentheses: ThreadChoice.line puts the reason in its own
    where = f"{cores} core{'s' if cores != 1 else ''}" + (f", {busy:.1f} busy" if busy is not None else "")
    if quota is not None:
        where += f", a CPU quota of {quota}" + (f" with {quota_busy:.1f} in use" if quota_busy is not None else "")
    if local > 1:
        where += f", shared by {local} processes"
    if work is not None and useful <= share:
        size = f"a step of {work / 1e6:.2g} M activations"
        why = (f"{size} is too small to gain from more threads" if n == 1 else
               f"{size} keeps {n} threads busy")
        return n, f"{why} on {where}"
    return n, f"{n} free core{'s' if n != 1 else ''} for this process among {where}"


# ------------------------------------------------------------------------------------------ the machine


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except OSError:
        return None


def _cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return list(range(os.cpu_count() or 1))


_READ = "read"  # usable_cores' quota: read it there


def usable_cores(quota: float | None | str = _READ) -> int:
    """The CPUs this process can keep busy at most: those it may run on, its CPU affinity where the OS has one
    (``taskset``, a container's cpuset or a cgroup's CPU affinity narrow it below the machine's), else
    ``os.cpu_count()``; and no more than the smallest cgroup CPU quota on it, rounded up (``docker --cpus``, a
    Kubernetes CPU limit, ``systemd-run -p CPUQuota=``, a Slurm job's cgroup: :func:`cpu_quota`), whose affinity
    still lists every CPU of the host. Hyper-threads count each (:func:`physical_cores` counts cores). ``quota``:
    :func:`cpu_quota` as a caller already read it (one reading for both), else it is read here."""
    n = len(_cpus()) or 1
    q = _quota() if quota == _READ else (max(1, math.ceil(quota)) if quota else None)
    return min(n, q) if q else n


def cpu_quota() -> float | None:
    """CPUs the smallest cgroup CPU quota on this process allows (its own cgroup's or a parent's: 1.5 under
    ``docker --cpus=1.5``), not rounded, or None without one (module docstring: ``quota``)."""
    found = _binding()
    return found[0] if found else None


def _at(path: str) -> str:
    """``path`` (relative to the file-system root) under :data:`FS_ROOT`."""
    return os.path.join(FS_ROOT, path)


def _own_cgroups() -> dict[str, str]:
    """This process's cgroups from ``/proc/self/cgroup``: "" -> its cgroup v2 path (the line ``0::/a/b``), and
    each cgroup v1 controller (``cpu``, ``cpuacct``) -> its path; {} where unreadable."""
    out = {}
    for line in (_read(_at("proc/self/cgroup")) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for name in parts[1].split(",") if parts[1] else [""]:
                out[name] = parts[2].strip()
    return out


def _levels(mount: str, path: str | None) -> list[tuple[str, ...]]:
    """A cgroup ``path`` and its ancestors as folders under ``mount`` (parts relative to it), the cgroup itself
    first and the mount's root last; only the root where the path is unknown or is no folder under the mount
    (a container's own cgroup namespace shows "/"; a v1 mount of just the container's cgroup hides the rest)."""
    parts = tuple(p for p in (path or "").split("/") if p)
    if not parts or ".." in parts or not os.path.isdir(os.path.join(mount, *parts)):
        return [()]
    return [parts[:i] for i in range(len(parts), -1, -1)]


def _cpus_of(quota: str | None, period: str | None) -> float | None:
    """CPUs a quota of ``quota`` microseconds per ``period`` allows, or None without one ("max", -1, unreadable)."""
    try:
        q, p = int(quota or ""), int(period or "")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _limits() -> list[tuple[float, tuple[str, ...]]]:
    """Every cgroup CPU quota on this process: (CPUs, the files that may hold that cgroup's CPU usage), for its
    own cgroup and each parent up to the root, in cgroup v2 (``cpu.max``) and v1 (``cpu.cfs_quota_us``)."""
    own, base = _own_cgroups(), _at(CGROUP_MOUNT)
    found = []
    for rel in _levels(base, own.get("")):  # cgroup v2: "QUOTA PERIOD" or "max PERIOD"
        d = os.path.join(base, *rel)
        parts = (_read(os.path.join(d, "cpu.max")) or "").split()
        cpus = _cpus_of(*parts) if len(parts) == 2 else None
        if cpus:
            found.append((cpus, (os.path.join(d, "cpu.stat"),)))
    for rel in _levels(os.path.join(base, "cpu"), own.get("cpu")):  # cgroup v1 (cpu and cpuacct, or apart)
        d = os.path.join(base, "cpu", *rel)
        cpus = _cpus_of(_read(os.path.join(d, "cpu.cfs_quota_us")), _read(os.path.join(d, "cpu.cfs_period_us")))
        if cpus:
            found.append((cpus, (os.path.join(d, "cpuacct.usage"), os.path.join(base, "cpuacct", *rel,
                                                                                  "cpuacct.usage"))))
    return found


def memory_available() -> int | None:
    """Bytes a new allocation may take: ``MemAvailable`` of /proc/meminfo, or less where a cgroup memory limit on
    this process (its own cgroup or a parent's: a Slurm job's ``--mem``, ``docker --memory``, a Kubernetes limit)
    leaves less (limit less usage: ``memory.max`` and ``memory.current`` in cgroup v2, ``memory.limit_in_bytes``
    and ``memory.usage_in_bytes`` in v1); None where /proc/meminfo has no ``MemAvailable`` (not Linux)."""
    meminfo = next((line.split() for line in (_read(_at("proc/meminfo")) or "").splitlines()
                    if line.startswith("MemAvailable:")), None)
    try:
        left = int(meminfo[1]) * 1024 if meminfo else None  # kB
    except (IndexError, ValueError):
        left = None
    if left is None:
        return None
    own, base = _own_cgroups(), _at(CGROUP_MOUNT)
    files = [(os.path.join(base, *rel), "memory.max", "memory.current") for rel in _levels(base, own.get(""))]
    files += [(os.path.join(base, "memory", *rel), "memory.limit_in_bytes", "memory.usage_in_bytes")
              for rel in _levels(os.path.join(base, "memory"), own.get("memory"))]
    for folder, limit, usage in files:
        try:  # "max" (v2) or a value beyond the machine's memory (v1) is no limit
            headroom = int((_read(os.path.join(folder, limit)) or "").strip()) - int(
                (_read(os.path.join(folder, usage)) or "").strip())
        except ValueError:
            continue
        left = min(left, max(headroom, 0))
    return left


def gib(n: int) -> str:
    """``n`` bytes in GiB for a message about memory: ``7,314.4``, ``1.5``, ``0.001``."""
    v = n / (1 << 30)
    return f"{v:,.1f}" if v >= 1 else f"{v:.2g}"


def _binding() -> tuple[float, tuple[str, ...]] | None:
    """The smallest cgroup CPU quota on this process (its own cgroup's or a parent's), with its usage files."""
    found = _limits()
    return min(found, key=lambda f: f[0]) if found else None


def _quota() -> int | None:
    """CPUs allowed by the smallest cgroup CPU quota on this process (``docker --cpus``, ``systemd-run -p
    CPUQuota``, a Slurm job, a parent cgroup's), rounded up, or None without one."""
    found = _binding()
    return max(1, math.ceil(found[0])) if found else None


def _core_of(cpu: int) -> tuple[str, str] | tuple[int]:
    top = _at(f"sys/devices/system/cpu/cpu{cpu}/topology/")
    core, pkg = _read(top + "core_id"), _read(top + "physical_package_id")
    return (pkg.strip(), core.strip()) if core and pkg else (cpu,)


def _affinity_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyper-threads of one core counted once)."""
    return len({_core_of(c) for c in _cpus()}) or 1


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on, capped by a cgroup quota."""
    n = _affinity_cores()
    q = _quota()
    return min(n, q) if q else n


def _usage_files() -> tuple[str, ...]:
    """Where the CPU usage of the cgroup :func:`_quota` reads is; without a quota, the mount's root files."""
    found = _binding()
    if found:
        return found[1]
    base = _at(CGROUP_MOUNT)
    return tuple(os.path.join(base, *f) for f in (("cpu.stat",), ("cpu", "cpuacct.usage"),
                                                  ("cpuacct", "cpuacct.usage")))


def _cgroup_usage(files: tuple[str, ...] | None = None) -> float | None:
    """CPU seconds the cgroup :func:`_quota` reads has used (``files``: :func:`_usage_files`), or None where
    unreadable."""
    for path in _usage_files() if files is None else files:
        text = _read(path)
        if not text:
            continue
        try:
            if path.endswith("cpu.stat"):  # cgroup v2: "usage_usec N" among other lines
                usec = [int(line.split()[1]) for line in text.splitlines() if line.startswith("usage_usec ")]
                return usec[0] / 1e6 if usec else None
            return int(text) / 1e9  # cgroup v1 cpuacct.usage: nanoseconds
        except (ValueError, IndexError):
            return None
    return None


def _cpu_times(cpus: list[int]) -> dict[int, tuple[int, int]]:
    """cpu -> (idle ticks incl. iowait, total ticks) from /proc/stat; a CPU whose line does not parse is left out."""
    text = _read(_at("proc/stat")) or ""
    out = {}
    wanted = set(cpus)
    for line in text.splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *vals = line.split()
            try:  # a line without the idle and iowait ticks, or not numbers (an emulated /proc): not counted
                cpu, v = int(name[3:]), [int(x) for x in vals[:8]]
                if cpu in wanted:
                    out[cpu] = (v[3] + v[4], sum(v))
            except (ValueError, IndexError):
                continue
    return out


def _measure(interval: float = BUSY_INTERVAL) -> tuple[float | None, float | None]:
    """(cores kept busy by other processes on the CPUs this process may run on, CPUs its cgroup used) over
    ``interval`` seconds, this process sleeping meanwhile. Busy cores: per physical core the busiest of its
    hyper-threads, summed; None where /proc/stat is unavailable. The cgroup's CPUs: None where its usage is
    unreadable."""
    cpus = _cpus()
    a = _cpu_times(cpus)
    if not a:
        return None, None
    files = _usage_files()
    used_before = _cgroup_usage(files)
    time.sleep(interval)
    b = _cpu_times(cpus)
    used_after = _cgroup_usage(files)
    per_core: dict = {}
    ticks = []
    for c in cpus:
        if c in a and c in b:
            total = b[c][1] - a[c][1]
            ticks.append(total)
            frac = 0.0 if total <= 0 else 1.0 - (b[c][0] - a[c][0]) / total
            key = _core_of(c)
            per_core[key] = max(per_core.get(key, 0.0), min(1.0, max(0.0, frac)))
    seconds = sum(ticks) / len(ticks) / TICKS_PER_SECOND if ticks else 0.0
    cgroup = None
    if used_before is not None and used_after is not None and seconds > 0:
        cgroup = max(0.0, used_after - used_before) / seconds
    return sum(per_core.values()), cgroup


def busy_cores(interval: float = BUSY_INTERVAL) -> float | None:
    """Cores kept busy by other processes over ``interval`` seconds (this process sleeps meanwhile):
    per physical core the busiest of its hyper-threads, summed, at most a cgroup quota's CPUs. None where
    /proc/stat is unavailable. (``auto`` takes the host's busy cores and the quota apart: module docstring.)"""
    busy, _ = _measure(interval)
    q = _quota()
    return min(busy, q) if q and busy is not None else busy


# ------------------------------------------------------------------------------------------ the work


def _chain_elements(plan, h: int, w: int) -> int:
    h, w = -(-h // 2), -(-w // 2)  # the stem has stride 2
    total = h * w * plan.stem_size
    for layer in plan.layers:
        h, w = -(-h // layer.stride), -(-w // layer.stride)
        total += h * w * layer.out_ch
    return total + h * w * plan.num_features


def _cell_elements(plan, h: int, w: int) -> int:
    h, w = -(-h // plan.stem_stride), -(-w // plan.stem_stride)
    total = h * w * plan.stem_width
    for inst in plan.instances:
        t = plan.templates[inst.template]
        h, w = -(-h // t.stride), -(-w // t.stride)
        total += h * w * inst.channels * (len(t.nodes) + 1)
    return total + h * w * plan.num_features


def space_elements(space) -> int:
    """Activation elements of one sample through a compiled space (layer outputs, widest path)."""
    _, h, w = space.input_shape
    plan = space.plan
    return _chain_elements(plan, h, w) if space.kind == "chain" else _cell_elements(plan, h, w)


def spaces_work(search, retrain, batch_size: int, retrain_batch_size: int | None, retrain_epochs: int) -> int:
    """Activation elements of the largest training step of a run: the compiled search space at
    ``batch_size`` and, when it retrains, the retraining space at its batch size (the run's spaces, compiled
    once by automl.pipeline.setup.load_spaces)."""
    work = space_elements(search) * batch_size
    if retrain_epochs > 0:
        work = max(work, space_elements(retrain) * (retrain_batch_size or batch_size))
    return work


# ------------------------------------------------------------------------------------------ precedence


def _parent_started_without_omp() -> bool:
    """True when our parent process started without OMP_NUM_THREADS: under torchrun, the value we see is
    the one torchrun set for its workers, not the user's. /proc/PPID/environ is the environment the parent
    was started with, before torchrun changed its own."""
    try:
        with open(f"/proc/{os.getppid()}/environ", "rb") as f:
            names = {item.split(b"=", 1)[0] for item in f.read().split(b"\0")}
    except OSError:
        return False  # cannot tell: take the value as the user's
    return b"OMP_NUM_THREADS" not in names


ENV_VARS = THREAD_ENV_VARS  # the environment's thread counts torch honours, in precedence


def _env_text(environ, name: str) -> str | None:
    """``name``'s value in ``environ``, or the malformed one automl's command line set aside (automl.cli.SET_ASIDE:
    out of libgomp's sight while torch was imported); None when unset."""
    text = environ.get(name)
    return environ.get(SET_ASIDE + name) if text is None else text


def _env_count(environ, name: str, lenient: bool = False) -> int | None:
    """The count ``name`` sets in ``environ`` (the first number of a list such as ``4,2``), or None when unset or
    empty; a malformed value (whitespace alone included) is a UserError, or None where ``lenient`` (a run whose
    recipe sets its threads ignores the environment's)."""
    text = _env_text(environ, name)
    try:
        return env_thread_count(text)
    except ValueError:
        if lenient:
            return None
        raise UserError(f"{name}={text!r} in the environment: must be a whole number from 1 to {MAX_THREADS}; set a "
                        f"number, unset it (automl then picks the thread count), or give the run its count, which "
                        f"wins over the environment: threads: N in the recipe, or threads=N on the command "
                        f"line") from None


def _malformed(environ) -> str:
    """What the info line adds for the environment's malformed counts, which a run with a count of its own ignores:
    "; OMP_NUM_THREADS='abc' ignored"."""
    said = ""
    for name in ENV_VARS:
        text = _env_text(environ, name)
        try:
            env_thread_count(text)
        except ValueError:
            said += f"; {name}={text!r} ignored"
    return said


def env_counts(environ=None, local_world_size: int = 1, parent_without_omp=None, lenient: bool = False
               ) -> dict[str, int]:
    """The user's thread counts in the environment, by variable (:data:`ENV_VARS`, in precedence): each
    whole number from 1 to :data:`MAX_THREADS`, without torchrun's own ``OMP_NUM_THREADS=1`` for its workers.
    A malformed one is a UserError, or left out where ``lenient``."""
    environ = os.environ if environ is None else environ
    counts = {name: n for name in ENV_VARS if (n := _env_count(environ, name, lenient)) is not None}
    if counts.get("OMP_NUM_THREADS") == 1 and local_world_size > 1:
        started_without = _parent_started_without_omp() if parent_without_omp is None else parent_without_omp
        if started_without:
            del counts["OMP_NUM_THREADS"]  # torchrun's "OMP_NUM_THREADS=1 in default", not a choice of the user
    return counts


def env_threads(environ=None, local_world_size: int = 1, parent_without_omp=None) -> int | None:
    """The user's ``OMP_NUM_THREADS``, else ``MKL_NUM_THREADS`` (:func:`env_counts`), or None without either."""
    counts = env_counts(environ, local_world_size, parent_without_omp)
    return next(iter(counts.values()), None)


def _ignored(counts: dict[str, int], used: int) -> str:
    """What the info line adds for the environment's counts other than the one used."""
    return "".join(f"; {name}={n} ignored" for name, n in counts.items() if n != used)


def _saved(out_dir: Path | None) -> int | None:
    """The count ``DIR/threads.json`` records, or None where it is missing, unreadable or records no count that
    a recipe could give (a whole number from 1 to :data:`MAX_THREADS`): then the run's other records decide."""
    if out_dir is None:
        return None
    try:  # a damaged file may hold any bytes: not ASCII is a ValueError too (UnicodeDecodeError)
        text = _read(str(Path(out_dir) / THREADS_FILE))
        n = json.loads(text)["threads"] if text else None
    except (ValueError, KeyError, TypeError):
        return None
    return n if a_thread_count(n) else None


def _cores_words(cores: int) -> str:
    """The ``cores`` (:func:`physical_cores`) a run's threads may use, named as ``automl space profile``'s warning
    names the CPUs this process can use (:func:`usable_cores`), and with those CPUs where hyper-threads make them
    more: "the 2 cores this process can use (its CPU affinity and any cgroup CPU quota)", "the 2 cores among the
    4 CPUs this process can use (...)". Never "this machine's": under ``taskset``, a cpuset or a CPU quota the
    machine has more."""
    per_core = max(1, len(_cpus()) // _affinity_cores())  # hyper-threads of a core
    cpus = min(cores * per_core, usable_cores())
    among = f" among the {cpus} CPUs" if cpus > cores else ""
    return (f"the {cores} core{'s' if cores != 1 else ''}{among} this process can use (its CPU affinity and any "
            f"cgroup CPU quota)")


def _too_many(threads: int, local_world_size: int, kept: bool) -> str:
    """What the info line adds for a count above the cores this process can use (per process under torchrun;
    :func:`_cores_words`): "" when it fits; for a ``kept`` count (``--resume``), the count that fits and its
    cost."""
    cores = physical_cores()
    local = max(1, int(local_world_size))
    share = max(1, cores // local)
    if threads <= share:
        return ""
    where = _cores_words(cores)
    if kept:
        return (f"; it is more than {where}{f' for {local} processes' if local > 1 else ''}: threads={share} is "
                f"faster, at the cost of float rounding")
    if local > 1:
        return f"; {local} processes x {threads} threads are more than {where}: slower"
    return f"; more than {where}: slower"


def _auto(w: int | None, local_world_size: int, measure: bool) -> ThreadChoice:
    """``auto``: measure this machine (where the choice depends on it) and apply :func:`choose_threads`."""
    n_cores, q = _affinity_cores(), _quota()
    quota = q if q is not None and q < n_cores else None  # a quota at or above the cores does not bind
    cores = min(n_cores, quota) if quota else n_cores
    if (w is not None and w // WORK_PER_THREAD <= 1) or cores == 1 or not measure:
        busy = cgroup = None  # one thread either way (or told not to look): no need to measure the machine
    else:
        busy, cgroup = _measure()
    quota_busy = cgroup if quota else None
    n, reason = choose_threads(w, n_cores, busy, local_world_size, quota=quota, quota_busy=quota_busy)
    return ThreadChoice(n, "auto", reason, cores=n_cores, busy_cores=None if busy is None else round(busy, 2),
                        step_work=w, local_world_size=local_world_size, cpu_quota=quota,
                        quota_busy=None if quota_busy is None else round(quota_busy, 2))


def resolve_threads(setting, *, out_dir: Path | None = None, resume: bool = False, work=None,
                    local_world_size: int = 1, environ=None, measure=True, recorded=None) -> ThreadChoice:
    """The thread count of a run (module docstring). ``setting`` is the recipe's ``threads`` ("auto" or
    an int); ``work`` the step's activation elements or a callable computing them (called only when
    needed); ``measure`` False skips the /proc/stat sample (busy counts 0). ``recorded``: on ``resume`` when
    ``out_dir`` holds no readable :data:`THREADS_FILE`, a callable giving (the count the run started with,
    the record that holds it) from the run's other records, or None when none does; ``auto`` then keeps that
    count, and without one chooses anew (:func:`lost_record` words the warning)."""
    env = env_counts(environ, local_world_size, lenient=setting != "auto")  # a count of its own ignores the env's
    saved = _saved(out_dir) if resume else None
    found = recorded() if resume and saved is None and recorded is not None else None
    saved, where = found if found is not None else (saved, None)
    explicit = None
    if setting != "auto":
        explicit = ThreadChoice(int(setting), "recipe", "from the recipe" + _ignored(env, int(setting))
                                + _malformed(os.environ if environ is None else environ),
                                local_world_size=local_world_size)
    elif env:
        name, n = next(iter(env.items()))
        explicit = ThreadChoice(n, name, f"{name}={n} in the environment" + _ignored(env, n),
                                local_world_size=local_world_size)
    if explicit is not None:
        reason = explicit.reason
        if saved is not None and saved != explicit.threads:
            reason += f"; the run started with {saved}, so the resumed part may differ in float rounding"
        return ThreadChoice(explicit.threads, explicit.source,
                            reason + _too_many(explicit.threads, local_world_size, kept=False),
                            local_world_size=local_world_size)
    if saved is not None:
        told = "," if where is None else f", as {where} records it: {THREADS_FILE} is missing or unreadable;"
        return ThreadChoice(saved, "resumed", f"the count this run started with{told} kept on --resume since another "
                            f"count changes float rounding" + _too_many(saved, local_world_size, kept=True),
                            local_world_size=local_world_size)
    return _auto(work() if callable(work) else work, local_world_size, measure)


def lost_record(out_dir: Path, choice: ThreadChoice) -> str:
    """The warning for ``auto`` on resume when no record of ``out_dir`` holds the count the run started with
    (:func:`resolve_threads` chose ``choice`` anew)."""
    n = choice.threads
    return (f"warning: {Path(out_dir) / THREADS_FILE}, the thread count this run started with, is missing or "
            f"unreadable, and neither its checkpoint nor its results.json records the count: "
            f"{n} thread{'s' if n != 1 else ''} chosen anew (threads: auto), so what is computed now may differ "
            f"in float rounding from an uninterrupted run; if you know the count it started with, resume with "
            f"threads=THAT_COUNT")


def check_setting(v):
    """The recipe's ``threads`` value: "auto" or a whole number from 1 to :data:`MAX_THREADS` (a pydantic
    before-validator)."""
    if v == "auto" or a_thread_count(v):
        return v
    raise ValueError(f"must be 'auto' or a whole number of threads from 1 to {MAX_THREADS}")


def apply_threads(n: int) -> None:
    """Set torch's intra-op threads to ``n``, and its inter-op pool to one thread while torch allows it."""
    torch.set_num_threads(int(n))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or inter-op work already ran in this process
        pass


def a_thread_count(n) -> bool:
    """Whether ``n`` is a thread count a recipe could give: a whole number (not a bool) from 1 to
    :data:`MAX_THREADS`."""
    return isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_THREADS


def save_choice(out_dir: Path, choice: ThreadChoice) -> None:
    """``DIR/threads.json``, read back by ``--resume``."""
    atomic_write_json(Path(out_dir) / THREADS_FILE, choice.to_dict())


def note_part(out_dir: Path, started: int | None, choice: ThreadChoice) -> ThreadChoice:
    """A resumed part of the run in ``out_dir`` computing with ``choice``: the thread count of each part so far, in
    order, a count listed again only where it changed (``DIR/threads.json``'s ``history``, else the count the run
    started with, ``started``: its checkpoint's, or threads.json's ``threads``), then ``choice``'s where it differs
    from the last. A changed list is written into threads.json (its other keys as they are), for the next resume.
    Returns ``choice`` with that ``history`` (results.json's ``threads.history``), or as it is while every part used
    one count (or the count the run started with is recorded nowhere)."""
    path = Path(out_dir) / THREADS_FILE
    try:
        record = json.loads(_read(str(path)) or "null")
    except ValueError:  # damaged: not ASCII, not JSON
        record = None
    record = record if isinstance(record, dict) else None
    history = record.get("history") if record is not None else None
    if not _listed(history):
        first = started if a_thread_count(started) else _saved(out_dir)
        history = [] if first is None else [first]
    if not history:
        return choice
    if history[-1] != choice.threads:
        history = [*history, choice.threads]
        if record is not None:
            try:
                atomic_write_json(path, {**record, "history": history})
            except OSError as e:
                raise UserError(f"cannot write {path} ({e.strerror or e}); {write_fix(e)} and run the same command "
                                f"again (the run's checkpoints are intact)") from None
    return choice if len(history) < 2 else replace(choice, history=tuple(history))


def _listed(history) -> bool:
    """Whether ``history`` (threads.json's) lists thread counts: a non-empty list of counts a recipe could give."""
    return isinstance(history, list) and bool(history) and all(a_thread_count(n) for n in history)


# a resume that only writes the report: the thread record is the run's (report_only_choice), which this words
_THE_RUNS = "the count the run computed with ({}); this resume only wrote its report, which does not depend on it"
_CHOICE_KEYS = frozenset(f.name for f in fields(ThreadChoice))


def _recorded_choice(out_dir: Path) -> ThreadChoice | None:
    """The thread choice ``DIR/threads.json`` records (the run's start; its ``history`` where a resume changed the
    count), None where it is missing, damaged or holds no count a recipe could give."""
    try:  # a damaged file may hold any bytes: not ASCII is a ValueError too (UnicodeDecodeError)
        record = json.loads(_read(str(Path(out_dir) / THREADS_FILE)) or "null")
        choice = ThreadChoice(**{k: v for k, v in record.items() if k in _CHOICE_KEYS})
    except (ValueError, TypeError, AttributeError):  # missing or not JSON, not a dict, keys missing
        return None
    if not (a_thread_count(choice.threads) and isinstance(choice.source, str) and isinstance(choice.reason, str)):
        return None
    history = choice.history
    return replace(choice, history=tuple(history) if _listed(history) and len(history) > 1 else None)


def report_only_choice(out_dir: Path, started: int | None, choice: ThreadChoice) -> ThreadChoice:
    """The thread record of the run in ``out_dir``, for a resume that computes nothing (only its report is left;
    ``choice``: this command's): threads.json's, as an uninterrupted run records it; where its ``history`` lists
    several counts, the last part's count; without a usable threads.json, the count the run started with
    (``started``: its checkpoint's), or ``choice`` where that is not known or is the same."""
    record, local = _recorded_choice(out_dir), choice.local_world_size
    if record is None:
        if not a_thread_count(started) or started == choice.threads:
            return choice
        return ThreadChoice(started, "resumed", _THE_RUNS.format(f"its checkpoint's: {THREADS_FILE} was missing or "
                                                                 f"unreadable"), local_world_size=local)
    if record.history is not None and record.history[-1] != record.threads:
        return ThreadChoice(record.history[-1], "resumed", _THE_RUNS.format(f"last, as {THREADS_FILE} records it"),
                            local_world_size=local, history=record.history)
    return record
