"""Review DK: how honest the latency figures of ``automl space profile`` and of an export's manifest are.

- ``machine.cores`` is the CPUs the process may run on (``taskset``, a container's cpuset), not the machine's
  count, which is ``machine.machine_cores``;
- the export's timing refuses a clock too coarse to time a network (Windows' 15.6 ms thread CPU clock), as
  ``automl space profile`` does, and a clock of another name than ``wall`` or ``cpu``;
- an earlier quantisation's ``model.int8.onnx`` that onnxruntime cannot load is one message, not a traceback.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest
import torch
from test_edge_fixes import _fake_time

import automl.profile as profile
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import export_architecture
from automl.export.quantize import INT8_NAME, measure_export, onnx_latency

pytestmark = pytest.mark.usefixtures("one_thread", "no_cpu_quota")  # conftest: the cores are shared; affinities faked

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A digits network exported with fresh weights (fp32 ONNX), not yet measured."""
    cs = load_compiled(DIGITS)
    out = tmp_path_factory.mktemp("dk") / "net"
    export_architecture(cs, [0] * cs.num_decisions, out)
    return out


def _narrowed(monkeypatch, usable: set[int], machine: int) -> None:
    """This process may run on the CPUs ``usable`` of a machine of ``machine`` CPUs (as under taskset)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(usable), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: machine)


def _coarse_cpu_clock(monkeypatch) -> None:
    """A thread CPU clock that advances in scheduler ticks of 15.6 ms, as Windows' does."""
    real = time.perf_counter
    monkeypatch.setattr(time, "thread_time", lambda: math.floor(real() / 0.0156) * 0.0156)


# ---- cores: what the process may use ------------------------------------------------------------------------------

def test_machine_info_records_the_cores_this_process_may_use_and_the_machines(monkeypatch):
    """Under ``taskset -c 0`` on a 16-CPU machine the record said 16 cores; it says 1, and 16 as machine_cores."""
    _narrowed(monkeypatch, {0}, 16)
    info = profile.machine_info(1)
    assert info["cores"] == 1 and info["machine_cores"] == 16 and info["threads"] == 1


def test_machine_info_without_affinity_falls_back_to_the_cpu_count(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert profile.machine_info(2)["cores"] == 6 == profile.machine_info(2)["machine_cores"]


def test_a_latency_table_measured_on_fewer_cores_says_so(monkeypatch):
    monkeypatch.setattr(profile, "time_module", _fake_time)
    _narrowed(monkeypatch, {2, 3}, 16)
    table = profile.profile_space(load_compiled(DIGITS), repeat=1, calibrate=0, progress=False)
    assert table["machine"]["cores"] == 2 and table["machine"]["machine_cores"] == 16


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_an_export_timed_under_a_narrowed_affinity_records_one_core(export):
    """The real affinity of this thread narrowed to one CPU (what ``taskset -c N`` does to a process): the
    manifest's latency.machine says 1 core, and the machine's count beside it."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        m = measure_export(export)
    finally:
        os.sched_setaffinity(0, before)
    machine = m["latency"]["machine"]
    assert machine["cores"] == 1 and machine["machine_cores"] == os.cpu_count()
    if os.cpu_count() > 1:  # the two differ only where the machine has more than one CPU
        assert machine["cores"] != machine["machine_cores"]


# ---- the export's clock -------------------------------------------------------------------------------------------

def test_the_export_refuses_a_cpu_clock_too_coarse_to_time_it(export, monkeypatch):
    """Windows' thread CPU clock steps in 15.6 ms: every latency would read 0 or 15.6 ms. One message naming the
    clock and the wall clock, before anything is timed or written."""
    manifest = (export / "manifest.json").read_bytes()
    _coarse_cpu_clock(monkeypatch)
    with pytest.raises(UserError, match=r"clock 'cpu': .*thread CPU clock.* in steps of 15\.6 ms.*clock='wall'"):
        measure_export(export, clock="cpu")
    assert (export / "manifest.json").read_bytes() == manifest


def test_onnx_latency_refuses_a_clock_that_never_advances(export, monkeypatch):
    monkeypatch.setattr(time, "thread_time", lambda: 1.0)
    with pytest.raises(UserError, match=r"clock 'cpu': .*advances too rarely to be read.*clock='wall'"):
        onnx_latency(export / "model.onnx", [1, 8, 8], clock="cpu")


def test_a_fine_cpu_clock_still_times_the_export(export):
    m = measure_export(export, clock="cpu")
    assert m["latency"]["clock"] == "cpu" and m["latency"]["fp32_ms"] > 0


@pytest.mark.parametrize("clock", ["Wall", "CPU", "thread"])
def test_onnx_latency_refuses_a_clock_of_another_name(export, clock):
    """Any name but "wall" timed by the thread's CPU clock, recorded as if asked for."""
    with pytest.raises(UserError, match=f"clock '{clock}': .*wall"):
        onnx_latency(export / "model.onnx", [1, 8, 8], clock=clock)


class _Session:
    def run(self, outputs, inputs):
        return None


def test_time_session_refuses_a_clock_of_another_name():
    assert profile.time_session(_Session(), {}, repeat=2, warmup=1, min_seconds=0.0, clock="cpu") >= 0
    with pytest.raises(UserError, match="clock 'Wall': use 'wall'"):
        profile.time_session(_Session(), {}, repeat=2, warmup=1, min_seconds=0.0, clock="Wall")


@pytest.mark.parametrize("kwargs, message", [
    ({"threads": 0}, "threads 0: .*from 1 to"),  # onnxruntime's default, all the cores: timed as "0 threads"
    ({"threads": -1}, "threads -1: .*from 1 to"),
    ({"batch": 0}, "batch 0: .*from 1 to"),  # a run on no image
    ({"threads": 2, "clock": "cpu"}, "clock 'cpu' times the thread .* use threads=1"),
])
def test_onnx_latency_refuses_what_measure_export_refuses(export, kwargs, message):
    with pytest.raises(UserError, match=message):
        onnx_latency(export / "model.onnx", [1, 8, 8], **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"warmup": 0}, r"profile_space\(warmup=0\): the untimed runs .* from 1"),  # one was run, 0 recorded
    ({"warmup": -3}, r"profile_space\(warmup=-3\)"),
    ({"warmup": 2.5}, r"profile_space\(warmup=2\.5\)"),
    ({"calibrate": -1}, r"profile_space\(calibrate=-1\): the whole networks .* from 0"),  # was a numpy traceback
])
def test_profile_space_refuses_counts_it_would_misrecord_or_fail_on(monkeypatch, kwargs, message):
    monkeypatch.setattr(profile, "time_module", _fake_time)
    with pytest.raises(UserError, match=message):
        profile.profile_space(load_compiled(DIGITS), repeat=1, progress=False, **{"calibrate": 0, **kwargs})


def test_profile_space_records_the_warmup_it_ran(monkeypatch):
    monkeypatch.setattr(profile, "time_module", _fake_time)
    table = profile.profile_space(load_compiled(DIGITS), repeat=1, warmup=3, calibrate=0, progress=False)
    assert table["warmup"] == 3


# ---- an earlier int8 model ----------------------------------------------------------------------------------------

def test_a_damaged_earlier_int8_model_is_one_message(tmp_path):
    """measure_export re-times the int8 model an earlier quantisation wrote; truncated, it was onnxruntime's
    InvalidProtobuf traceback. Now a message naming the file and how to mend it, the manifest untouched."""
    cs = load_compiled(DIGITS)
    export_architecture(cs, [0] * cs.num_decisions, tmp_path)
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(96, 1, 8, 8, generator=gen), torch.zeros(96, dtype=torch.long)) for _ in range(3)]
    m = measure_export(tmp_path, quantize="int8", calibration=iter(batches))
    assert m["int8"]["file"] == INT8_NAME
    assert measure_export(tmp_path)["latency"]["int8_ms"] > 0  # re-timed while it loads
    int8 = tmp_path / INT8_NAME
    int8.write_bytes(int8.read_bytes()[:500])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    with pytest.raises(UserError, match=rf"{INT8_NAME}: onnxruntime cannot load .*quantise again.*export"):
        measure_export(tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
