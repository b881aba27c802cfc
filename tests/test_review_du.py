"""Review DU: the cores automl's machine records count under a cgroup CPU quota.

``automl.train.threads.usable_cores`` counted the CPUs this process may run on by its CPU affinity alone. Under a
cgroup CPU quota (``docker --cpus=2``, a Kubernetes CPU limit, ``systemd-run -p CPUQuota=``, a Slurm job's cgroup)
the affinity still lists every CPU of the host, so a latency table's and an export's ``machine.cores`` said 16
where the process could keep at most 2 busy (and the test suite's ``-n auto`` started 8 workers). Now it is the
smaller of the two, the quota rounded up, read by the same reader ``threads: auto`` uses; the records say the quota
itself too (``machine.cpu_quota``). The tests build a fake ``/proc/self/cgroup`` and ``/sys/fs/cgroup`` under
``tmp_path`` (``threads.FS_ROOT``), never the test machine's.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_edge_fixes import _fake_time

import automl.profile as profile
from automl.compile import load_compiled
from automl.export import export_architecture
from automl.export.manifest import read_manifest
from automl.export.quantize import measure_export
from automl.train import threads as th

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture
def host16(tmp_path, monkeypatch):
    """A 16-CPU host whose affinity lets this process run on all 16, and an empty fake file-system root:
    ``host16(path, text)`` writes ``path`` (relative to the root) under tmp_path."""
    monkeypatch.setattr(th, "FS_ROOT", str(tmp_path))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)

    def write(path: str, text: str) -> None:
        p = tmp_path / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    return write


def test_docker_cpus_2_is_two_usable_cores(host16):
    """``docker --cpus=2`` (cgroup v2 in the container's own namespace: the root's cpu.max): 2, not 16."""
    assert th.usable_cores() == 16  # no quota: the affinity's count
    host16("sys/fs/cgroup/cpu.max", "200000 100000\n")
    assert th.usable_cores() == 2 and th.cpu_quota() == pytest.approx(2.0)


def test_a_fractional_quota_is_rounded_up(host16):
    """``docker --cpus=1.5``: 2 CPUs can be kept busy in part; ``--cpus=0.5``: still one, never 0."""
    host16("sys/fs/cgroup/cpu.max", "150000 100000\n")
    assert th.usable_cores() == 2 and th.cpu_quota() == pytest.approx(1.5)
    host16("sys/fs/cgroup/cpu.max", "50000 100000\n")
    assert th.usable_cores() == 1


def test_a_parent_cgroups_v1_quota_binds(host16):
    """cgroup v1, no cgroup namespace: this process's cgroup has no quota, its parent (a Slurm job's) has 3 CPUs;
    the smallest one on the way to the root counts."""
    host16("proc/self/cgroup", "4:cpu,cpuacct:/slurm/job7/step0\n")
    host16("sys/fs/cgroup/cpu/slurm/job7/step0/cpu.cfs_quota_us", "-1\n")
    host16("sys/fs/cgroup/cpu/slurm/job7/step0/cpu.cfs_period_us", "100000\n")
    host16("sys/fs/cgroup/cpu/slurm/job7/cpu.cfs_quota_us", "300000\n")
    host16("sys/fs/cgroup/cpu/slurm/job7/cpu.cfs_period_us", "100000\n")
    assert th.usable_cores() == 3


def test_the_affinity_binds_where_it_is_below_the_quota(host16, monkeypatch):
    """``taskset -c 0`` inside ``docker --cpus=4``: one CPU, the affinity's; a quota above the CPUs changes nothing."""
    host16("sys/fs/cgroup/cpu.max", "400000 100000\n")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert th.usable_cores() == 1
    host16("sys/fs/cgroup/cpu.max", "3200000 100000\n")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert th.usable_cores() == 16


def test_machine_record_under_a_quota(host16):
    """The record a latency table and an export's manifest keep: 2 cores under ``docker --cpus=1.5`` on a 16-CPU
    host (it said 16), the machine's 16 as machine_cores, and the quota itself."""
    host16("sys/fs/cgroup/cpu.max", "150000 100000\n")
    info = profile.machine_info(1)
    assert (info["cores"], info["machine_cores"], info["cpu_quota"]) == (2, 16, 1.5)
    assert info["threads"] == 1


def test_machine_record_without_a_quota_says_so(host16):
    info = profile.machine_info(1)
    assert info["cores"] == 16 == info["machine_cores"] and info["cpu_quota"] is None


def test_a_latency_table_profiled_under_a_quota_records_it(host16, tmp_path, monkeypatch):
    """``automl space profile`` in a container of 2 CPUs on a 16-CPU host: the table's machine says 2 cores, and
    the table (with its cpu_quota) reads back through the cost-table checks a recipe's search.cost_table gets."""
    monkeypatch.setattr(profile, "time_module", _fake_time)
    host16("sys/fs/cgroup/cpu.max", "200000 100000\n")
    cs = load_compiled(DIGITS)
    table = profile.profile_space(cs, repeat=1, calibrate=0, progress=False)
    machine = table["machine"]
    assert (machine["cores"], machine["machine_cores"], machine["cpu_quota"]) == (2, 16, 2.0)
    profile.write_cost_table(table, tmp_path / "table.json")
    assert profile.read_cost_table(tmp_path / "table.json", cs, source="recipe.yaml")["machine"] == machine


def test_an_export_timed_under_a_quota_records_it(host16, tmp_path):
    """An export's manifest (latency.machine) under ``docker --cpus=2`` on a 16-CPU host: 2 cores and the quota;
    the manifest, with the new field, reads back and measures again."""
    cs = load_compiled(DIGITS)
    out = tmp_path / "net"
    export_architecture(cs, [0] * cs.num_decisions, out)
    host16("sys/fs/cgroup/cpu.max", "200000 100000\n")
    machine = measure_export(out)["latency"]["machine"]
    assert (machine["cores"], machine["machine_cores"], machine["cpu_quota"]) == (2, 16, 2.0)
    assert read_manifest(out, require=("latency",))["latency"]["machine"] == machine
    assert measure_export(out)["latency"]["machine"] == machine
