"""Review AZ: ``threads: auto`` under a cgroup CPU quota seen from the host or on a parent cgroup,
``MKL_NUM_THREADS``, and the run folder lock's message when its holder is not the process the lock file names.

* The quota was read from the root of ``/sys/fs/cgroup`` only: right inside a container with its own cgroup
  namespace, but a quota on this process's own cgroup seen from the host (``docker --cgroupns=host``,
  ``systemd-run -p CPUQuota=50%``, a Slurm job, Kubernetes without cgroupns) or on a parent cgroup was missed,
  and ``auto`` ran as many threads as the machine has cores. The tests build a fake ``/proc/self/cgroup`` and
  ``/sys/fs/cgroup`` under ``tmp_path`` (``threads.FS_ROOT``), never the test machine's.
* ``MKL_NUM_THREADS`` set alone, which torch honours as it does ``OMP_NUM_THREADS``, was not taken as the
  user's choice: ``auto`` replaced it.
* A lock whose record names a pid that is not the holder's here (a run inside a container records its own pid,
  1 for the container's first process) told the user to ``kill`` that pid on this machine; now the kernel's
  list of locks names the holder, or the message says the holder cannot be seen from here. A file system
  without locks warned twice on ``--resume``.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import automl._lock as lock_module
from automl._lock import LOCK_NAME, RunLock
from automl.cli import main
from automl.errors import UserError
from automl.train import threads as th

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
TINY = ["data.limit_train=96", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.weight_epochs=1", "search.theta_epochs=1", "search.epsilons=[0,0.5]", "search.lam=2",
        "retrain.epochs=0", "export.onnx=false", "device=cpu"]
BIG = 50 * th.WORK_PER_THREAD  # a step that would keep 50 threads busy


# ------------------------------------------------------------------------------------------ cgroup quotas


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A fake file-system root: ``tree(path, text)`` writes ``path`` (relative to the root) under tmp_path."""
    monkeypatch.setattr(th, "FS_ROOT", str(tmp_path))

    def write(path: str, text: str = "") -> Path:
        p = tmp_path / path
        if path.endswith("/"):  # a folder
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        return p

    return write


def test_a_quota_on_this_process_cgroup_seen_from_the_host(tree):
    """``systemd-run -p CPUQuota=200%`` (cgroup v2, no cgroup namespace): the root has no cpu.max, the
    process's own cgroup has one."""
    tree("proc/self/cgroup", "0::/system.slice/run-u7.service\n")
    tree("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n")
    tree("sys/fs/cgroup/system.slice/cpu.max", "max 100000\n")
    tree("sys/fs/cgroup/system.slice/run-u7.service/cpu.max", "200000 100000\n")
    assert th._quota() == 2


def test_the_smallest_quota_from_the_process_up_to_the_root_wins(tree):
    """A Slurm job's cgroup limits to 3 CPUs; its step allows 8 and the task none: 3, and the CPU usage that
    counts against it is the job's (its cpu.stat), not the task's."""
    tree("proc/self/cgroup", "0::/slurm/job_5/step_0/task_0\n")
    tree("sys/fs/cgroup/slurm/job_5/cpu.max", "300000 100000\n")
    tree("sys/fs/cgroup/slurm/job_5/cpu.stat", "usage_usec 7000000\nuser_usec 6000000\n")
    tree("sys/fs/cgroup/slurm/job_5/step_0/cpu.max", "800000 100000\n")
    tree("sys/fs/cgroup/slurm/job_5/step_0/task_0/cpu.max", "max 100000\n")
    tree("sys/fs/cgroup/slurm/job_5/step_0/task_0/cpu.stat", "usage_usec 1000000\n")
    tree("sys/fs/cgroup/cpu.stat", "usage_usec 99000000\n")
    assert th._quota() == 3
    assert th._cgroup_usage() == pytest.approx(7.0)


def test_a_quota_on_a_parent_binds_a_child_without_one(tree):
    """Kubernetes without a cgroup namespace: the pod's cgroup holds the limit (1.5 CPUs, rounded up to 2),
    the container's cgroup below it none."""
    tree("proc/self/cgroup", "0::/kubepods.slice/pod1.slice/cri-c1.scope\n")
    tree("sys/fs/cgroup/kubepods.slice/pod1.slice/cpu.max", "150000 100000\n")
    tree("sys/fs/cgroup/kubepods.slice/pod1.slice/cri-c1.scope/cpu.max", "max 100000\n")
    assert th._quota() == 2


def test_cgroup_v1_walks_the_cpu_hierarchy(tree):
    """cgroup v1 with cpu and cpuacct mounted together: the process's cgroup quota (quota/period), and its
    usage in nanoseconds from the same folder."""
    tree("proc/self/cgroup", "5:memory:/user.slice/job\n4:cpu,cpuacct:/user.slice/job\n1:name=systemd:/x\n")
    tree("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n")
    tree("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n")
    tree("sys/fs/cgroup/cpu/user.slice/job/cpu.cfs_quota_us", "250000\n")
    tree("sys/fs/cgroup/cpu/user.slice/job/cpu.cfs_period_us", "100000\n")
    tree("sys/fs/cgroup/cpu/user.slice/job/cpuacct.usage", "4500000000\n")
    assert th._quota() == 3
    assert th._cgroup_usage() == pytest.approx(4.5)


def test_cgroup_v1_with_cpuacct_mounted_apart(tree):
    """cpu and cpuacct on separate mounts (as on a hybrid host): the usage comes from the cpuacct mount's
    folder of the cgroup that holds the quota."""
    tree("proc/self/cgroup", "2:cpuacct:/batch/a\n1:cpu:/batch/a\n0::/\n")
    tree("sys/fs/cgroup/cpu/batch/cpu.cfs_quota_us", "100000\n")
    tree("sys/fs/cgroup/cpu/batch/cpu.cfs_period_us", "100000\n")
    tree("sys/fs/cgroup/cpu/batch/a/cpu.cfs_quota_us", "-1\n")
    tree("sys/fs/cgroup/cpu/batch/a/cpu.cfs_period_us", "100000\n")
    tree("sys/fs/cgroup/cpuacct/batch/cpuacct.usage", "2000000000\n")
    tree("sys/fs/cgroup/cpuacct/batch/a/cpuacct.usage", "500000000\n")
    assert th._quota() == 1
    assert th._cgroup_usage() == pytest.approx(2.0)


@pytest.mark.parametrize("own", [
    "0::/\n",  # a container with its own cgroup namespace: the mount's root is the container's cgroup
    "0::/docker/abc123\n",  # a path the mount does not show (cgroup v1 style bind of the container's cgroup)
    None,  # /proc/self/cgroup unreadable
])
def test_the_mount_root_files_are_the_fallback(tree, own):
    if own is not None:
        tree("proc/self/cgroup", own)
    tree("sys/fs/cgroup/cpu.max", "400000 100000\n")
    tree("sys/fs/cgroup/cpu.stat", "usage_usec 3000000\n")
    assert th._quota() == 4
    assert th._cgroup_usage() == pytest.approx(3.0)


def test_no_quota_anywhere_is_none(tree):
    tree("proc/self/cgroup", "0::/user.slice/session-3.scope\n")
    tree("sys/fs/cgroup/user.slice/cpu.max", "max 100000\n")
    tree("sys/fs/cgroup/user.slice/session-3.scope/cpu.max", "max 100000\n")
    assert th._quota() is None


def test_auto_takes_a_parent_quota_and_records_it(tree, monkeypatch):
    """End to end through :func:`resolve_threads`: 16 cores, a quota of 3 on the job's cgroup: 3 threads, and
    the record names the quota (before: 16 threads, no quota)."""
    monkeypatch.setattr(th, "_affinity_cores", lambda: 16)
    tree("proc/self/cgroup", "0::/slurm/job_9/step_0\n")
    tree("sys/fs/cgroup/slurm/job_9/cpu.max", "300000 100000\n")
    tree("sys/fs/cgroup/slurm/job_9/step_0/")
    c = th.resolve_threads("auto", work=BIG, environ={}, measure=False)
    assert (c.threads, c.cpu_quota) == (3, 3) and "a CPU quota of 3" in c.reason
    assert th.physical_cores() == 3


# ------------------------------------------------------------------------------------------ MKL_NUM_THREADS


def test_mkl_num_threads_alone_is_the_users_choice(monkeypatch):
    monkeypatch.setattr(th, "physical_cores", lambda: 8)
    c = th.resolve_threads("auto", work=lambda: pytest.fail("auto should not run"),
                           environ={"MKL_NUM_THREADS": "3"})
    assert (c.threads, c.source) == (3, "MKL_NUM_THREADS")
    assert c.line() == "threads: 3 (MKL_NUM_THREADS=3 in the environment)"
    assert th.env_threads({"MKL_NUM_THREADS": "2"}) == 2


def test_omp_num_threads_wins_over_a_different_mkl_num_threads_and_says_so():
    c = th.resolve_threads("auto", work=BIG, environ={"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "4"})
    assert (c.threads, c.source) == (2, "OMP_NUM_THREADS")
    assert c.reason == "OMP_NUM_THREADS=2 in the environment; MKL_NUM_THREADS=4 ignored"
    same = th.resolve_threads("auto", work=BIG, environ={"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"})
    assert same.reason == "OMP_NUM_THREADS=2 in the environment"


def test_the_recipe_wins_over_mkl_num_threads_and_names_it():
    c = th.resolve_threads(1, environ={"MKL_NUM_THREADS": "4"})
    assert (c.threads, c.source) == (1, "recipe") and "MKL_NUM_THREADS=4 ignored" in c.reason


def test_under_torchrun_the_users_mkl_num_threads_is_kept():
    """torchrun's own OMP_NUM_THREADS=1 is not the user's; their MKL_NUM_THREADS=4 is."""
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "4"}
    assert th.env_threads(env, local_world_size=2, parent_without_omp=True) == 4
    assert th.env_threads(env, local_world_size=2, parent_without_omp=False) == 1


@pytest.mark.parametrize("bad", ["0", "many", "-2", "1025"])
def test_a_bad_mkl_num_threads_names_the_variable(bad):
    with pytest.raises(UserError, match=f"MKL_NUM_THREADS='{bad}' in the environment: must be a whole number "
                                        f"from 1 to 1024"):
        th.resolve_threads("auto", work=BIG, environ={"MKL_NUM_THREADS": bad})


def test_a_bad_mkl_num_threads_is_one_message_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "lots")
    code = main(["run", QUICK, *TINY, "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "MKL_NUM_THREADS='lots' in the environment" in err and "Traceback" not in err
    assert not (tmp_path / "x" / "results.json").exists()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one CPU: torch runs one thread whatever the environment")
def test_torch_itself_honours_mkl_num_threads_alone():
    """Why automl takes MKL_NUM_THREADS as a choice: torch without automl runs the count it sets."""
    env = {k: v for k, v in os.environ.items() if k not in th.ENV_VARS}
    env["MKL_NUM_THREADS"] = "1"
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "1", out.stderr[-2000:]


# ------------------------------------------------------------------------------------------ the lock's holder

def _holder_process(folder: Path, recorded_pid: int | None) -> subprocess.Popen:
    """Another process holding ``folder``'s lock; its record names ``recorded_pid`` on this host (None: its own
    pid, as a run writes it; 1: as a run that is the first process of a container writes it)."""
    code = ("import fcntl, json, os, socket, sys, time\n"
            f"fd = os.open({str(folder / LOCK_NAME)!r}, os.O_RDWR | os.O_CREAT, 0o644)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
            f"pid = {recorded_pid!r} or os.getpid()\n"
            "os.write(fd, json.dumps({'pid': pid, 'host': socket.gethostname(), 'started': '2026-01-01 00:00:00 "
            "UTC', 'command': 'automl run r.yaml'}).encode())\n"
            "print('ready', flush=True)\n"
            "time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _refusal(folder: Path) -> str:
    with pytest.raises(UserError) as e:
        RunLock(folder).acquire()
    return str(e.value)


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="Linux: the kernel's list of locks")
def test_a_holder_recorded_with_a_containers_pid_is_named_by_the_kernel(tmp_path):
    """A run inside a container (``--network host``: the host's name) records its own pid 1; seen from the host,
    ``kill 1`` signals init. The message names the process that holds the lock here."""
    holder = _holder_process(tmp_path, recorded_pid=1)
    try:
        message = _refusal(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert f"process {holder.pid} on {socket.gethostname()}; its lock file names process 1 on" in message
    assert f"stop it (kill {holder.pid}: it writes a checkpoint and exits)" in message
    assert "kill 1:" not in message and "kill 1 " not in message  # no kill of pid 1 (init)


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="Linux: the kernel's list of locks")
def test_a_holder_that_records_its_own_pid_is_named_as_it_says(tmp_path):
    holder = _holder_process(tmp_path, recorded_pid=None)
    try:
        message = _refusal(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert f"(process {holder.pid} on {socket.gethostname()}, started 2026-01-01 00:00:00 UTC (automl run " \
           f"r.yaml))" in message
    assert f"stop it (kill {holder.pid}: it writes a checkpoint and exits)" in message


def test_a_holder_this_command_cannot_see_gets_no_pid_to_kill(tmp_path, monkeypatch):
    """This command in a container, the run on the host (same host name): the kernel lists no holder this PID
    namespace can see, and the recorded pid is no process here: no ``kill PID`` that would signal another one."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text()) if os.path.exists("/proc/sys/kernel/pid_max") \
        else 4194304
    gone = pid_max + 1  # no process has it
    fd = os.open(tmp_path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.pwrite(fd, json.dumps({"pid": gone, "host": socket.gethostname(), "started": "2026-01-01 00:00:00 UTC",
                              "command": "automl run r.yaml"}).encode(), 0)
    real_open = open

    def container_view(path, *a, **k):  # /proc/locks in a PID namespace that cannot see the holder
        return io.StringIO("") if str(path) == "/proc/locks" else real_open(path, *a, **k)

    monkeypatch.setattr(lock_module, "open", container_view, raising=False)
    try:
        message = _refusal(tmp_path)
    finally:
        os.close(fd)
    assert f"process {gone} on {socket.gethostname()}" in message and "cannot see" in message
    assert "stop it where it runs" in message and "kill" not in message


def test_a_file_system_without_locks_warns_once(tmp_path, monkeypatch, caplog):
    """``automl run --resume`` looks at the folder (acquire without create) and then takes it: on a file system
    that refuses locks (ENOLCK, some NFS mounts) the warning was printed twice."""
    (tmp_path / LOCK_NAME).write_text("{}")

    def refuse(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_module.fcntl, "flock", refuse)
    monkeypatch.setattr(lock_module, "_WARNED_UNLOCKABLE", set())  # none warned about yet in this process
    lock = RunLock(tmp_path)
    with caplog.at_level("WARNING", logger="automl._lock"):
        assert lock.acquire(create=False) is False
        assert lock.acquire() is False
    warnings = [r for r in caplog.records if "cannot lock" in r.getMessage()]
    assert len(warnings) == 1 and "No locks available" in warnings[0].getMessage()
