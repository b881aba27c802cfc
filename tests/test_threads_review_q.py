"""``threads: auto`` under a cgroup CPU quota, and a kept or explicit count above this machine's cores (review Q,
findings 5 and 10). Fake inputs as in tests/test_threads.py: /proc/stat texts, the affinity and the cgroup files."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from automl.train import threads as th
from automl.train.threads import WORK_PER_THREAD, choose_threads, resolve_threads

BIG = 50 * WORK_PER_THREAD  # work that would keep 50 threads busy
TICKS = 100  # ticks every CPU runs over the fake sample
QUOTA_4 = "400000 100000\n"  # cgroup v2 cpu.max of docker --cpus 4


def _stat(busy: set[int], ticks: int) -> str:
    """/proc/stat of 16 CPUs after ``ticks`` ticks each: the CPUs in ``busy`` all user time, the others idle."""
    lines = [f"cpu  0 0 0 {16 * ticks} 0 0 0 0 0 0"]
    for c in range(16):
        user, idle = (ticks, 0) if c in busy else (0, ticks)
        lines.append(f"cpu{c} {user} 0 0 {idle} 0 0 0 0 0 0")
    return "\n".join(lines + ["intr 1 0 0", ""])


@pytest.fixture
def host16(monkeypatch):
    """16 CPUs allowed, one thread per core; ``set_sample(busy, cgroup_cpus)`` makes the CPUs in ``busy``
    busy over the sample and this cgroup use ``cgroup_cpus`` CPUs meanwhile; ``files`` adds a quota."""
    files: dict[str, str] = {}
    after: dict[str, str] = {}
    for cpu in range(16):
        files[f"/sys/devices/system/cpu/cpu{cpu}/topology/core_id"] = f"{cpu}\n"
        files[f"/sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id"] = "0\n"

    def set_sample(busy: set[int], cgroup_cpus: float | None = None):
        files["/proc/stat"] = _stat(set(), 0)
        after["/proc/stat"] = _stat(busy, TICKS)
        if cgroup_cpus is not None:
            files["/sys/fs/cgroup/cpu.stat"] = "usage_usec 5000000\nuser_usec 0\n"
            used = round(cgroup_cpus * 1e6 * TICKS / 100)  # the ticks are 1/100 s (patched below)
            after["/sys/fs/cgroup/cpu.stat"] = f"usage_usec {5000000 + used}\nuser_usec 0\n"

    monkeypatch.setattr(th, "_read", files.get)
    monkeypatch.setattr(th, "_cpus", lambda: list(range(16)))
    monkeypatch.setattr(th, "TICKS_PER_SECOND", 100, raising=False)
    monkeypatch.setattr(th, "time", SimpleNamespace(sleep=lambda s: files.update(after)))
    return SimpleNamespace(files=files, set_sample=set_sample)


# ------------------------------------------------------------------------------------------ finding 5


def test_other_tenants_do_not_use_this_containers_quota(host16):
    """docker --cpus 4 on a 16-core host whose /proc/stat (the host's) shows 8 cores busy with other cgroups'
    work: the quota's 4 CPUs are all free, and a step that keeps 50 threads busy gets 4 (the old rule: 1)."""
    host16.files["/sys/fs/cgroup/cpu.max"] = QUOTA_4
    host16.set_sample(busy=set(range(8)))
    c = resolve_threads("auto", work=BIG, environ={})
    assert (c.threads, c.source) == (4, "auto"), c.reason
    assert "quota of 4" in c.reason and "16 cores" in c.reason and "8.0 busy" in c.reason


def test_the_hosts_idle_cores_still_limit_under_a_quota(host16):
    """The same quota on a host with only 2 idle cores: 2 threads, not the quota's 4 (the old rule: 1)."""
    host16.files["/sys/fs/cgroup/cpu.max"] = QUOTA_4
    host16.set_sample(busy=set(range(14)))
    assert resolve_threads("auto", work=BIG, environ={}).threads == 2


def test_load_inside_this_cgroup_uses_its_quota(host16):
    """10 host cores busy, 2 of them by this cgroup's own processes (another run in the same container): the
    quota has 2 CPUs left, though the host has 6 idle (the old rule: 1; quota minus nothing would say 4)."""
    host16.files["/sys/fs/cgroup/cpu.max"] = QUOTA_4
    host16.set_sample(busy=set(range(10)), cgroup_cpus=2.0)
    c = resolve_threads("auto", work=BIG, environ={})
    assert c.threads == 2, c.reason
    assert "2.0 in use" in c.reason


def test_the_quota_rule_is_pure():
    assert choose_threads(BIG, 16, 8.0, quota=4)[0] == 4
    assert choose_threads(BIG, 16, 14.0, quota=4)[0] == 2
    assert choose_threads(BIG, 16, 16.0, quota=4)[0] == 1  # never zero
    assert choose_threads(BIG, 16, 0.0, 2, quota=4)[0] == 2  # torchrun's processes split the quota
    assert choose_threads(BIG, 16, 4.0, quota=4, quota_busy=3.0)[0] == 1
    assert choose_threads(BIG, 16, None, quota=4)[0] == 4  # not measured: the quota
    assert choose_threads(3 * WORK_PER_THREAD, 16, 0.0, quota=4)[0] == 3  # the work limits below the quota


def test_a_quota_above_the_cores_changes_nothing(host16):
    """A quota of 32 CPUs on 16 cores does not bind: the choice and its record are those of no quota."""
    host16.set_sample(busy=set(range(8)))
    plain = resolve_threads("auto", work=BIG, environ={})
    host16.files["/sys/fs/cgroup/cpu.max"] = "3200000 100000\n"
    host16.set_sample(busy=set(range(8)))
    assert resolve_threads("auto", work=BIG, environ={}) == plain
    assert plain.threads == 8 and "quota" not in plain.reason


def test_the_record_names_the_quota(host16):
    host16.files["/sys/fs/cgroup/cpu.max"] = QUOTA_4
    host16.set_sample(busy=set(range(8)))
    d = resolve_threads("auto", work=BIG, environ={}).to_dict()
    assert d["cpu_quota"] == 4 and d["cores"] == 16 and d["busy_cores"] == pytest.approx(8.0)
    assert {"threads", "source", "reason", "step_work", "local_world_size"} <= set(d)


# ------------------------------------------------------------------------------------------ finding 10


def test_a_kept_count_above_this_machines_cores_says_so(tmp_path, monkeypatch):
    """threads.json says 8 (auto on a bigger machine); resumed with auto here, on 2 cores: the count is kept
    (float rounding), and the line says that 2 would be faster."""
    th.save_choice(tmp_path, th.ThreadChoice(8, "auto", "a 16-core machine", cores=16))
    monkeypatch.setattr(th, "physical_cores", lambda: 2)
    c = resolve_threads("auto", out_dir=tmp_path, resume=True, work=BIG, environ={})
    assert (c.threads, c.source) == (8, "resumed")
    assert "2 cores" in c.reason and "threads=2" in c.reason and "float rounding" in c.reason
    assert "\n" not in c.line()


def test_a_kept_count_within_the_cores_says_nothing_more(tmp_path, monkeypatch):
    th.save_choice(tmp_path, th.ThreadChoice(2, "auto", "why"))
    monkeypatch.setattr(th, "physical_cores", lambda: 2)
    c = resolve_threads("auto", out_dir=tmp_path, resume=True, work=BIG, environ={})
    assert c.threads == 2 and "core" not in c.reason


def test_torchrun_processes_share_the_cores_in_the_hint(tmp_path, monkeypatch):
    """Two processes on 2 cores that keep 2 threads each: one each is what fits."""
    th.save_choice(tmp_path, th.ThreadChoice(2, "auto", "why"))
    monkeypatch.setattr(th, "physical_cores", lambda: 2)
    c = resolve_threads("auto", out_dir=tmp_path, resume=True, work=BIG, local_world_size=2, environ={})
    assert c.threads == 2 and "threads=1" in c.reason and "2 processes" in c.reason


def test_an_explicit_count_above_the_cores_is_kept_with_a_hint(monkeypatch):
    monkeypatch.setattr(th, "physical_cores", lambda: 2)
    c = resolve_threads(64, work=BIG, environ={})
    assert (c.threads, c.source) == (64, "recipe")
    assert "more than the 2 cores" in c.reason and "slower" in c.reason and "\n" not in c.line()
    c = resolve_threads("auto", work=BIG, environ={"OMP_NUM_THREADS": "8"})
    assert (c.threads, c.source) == (8, "OMP_NUM_THREADS") and "2 cores" in c.reason
    assert "core" not in resolve_threads(2, work=BIG, environ={}).reason
