"""Review KI: the latency benchmarks and a run timed by its cost table's protocol.

* latency_table.py ``--int8-run``: the run's rows are timed as the run timed its exports (results.json's
  ``latency_protocol``, or each member manifest's ``latency`` for a run that does not record it); each row names
  that batch and thread count, the JSON line's rows hold ``batch``/``threads``/``clock``, and one note says when
  it is not the script's own ``--batch``/``--threads``/``--clock``.
* export_latency.py: a run's family folder (``RUN/export``, ``budget-*`` members) stands for its members; a
  folder without model.onnx is one message before anything is timed; the table's milliseconds keep 3
  significant figures (a digits network's 0.0371 ms was printed 0.04), the JSON line keeps every digit.

Nothing here times a network: the measuring functions are replaced."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
import torch

from automl.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


@pytest.fixture
def scripts(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import export_latency
    import latency_table

    return latency_table, export_latency


Q = {"latency_ms": 0.0971, "size_bytes": 30, "fp32_size_bytes": 100, "fp32_onnx_test_accuracy": 0.9,
     "test_accuracy": 0.89}


def _run(tmp_path: Path, protocol: dict | None, manifest_latency: dict | None) -> Path:
    """A finished int8 run of two members (budget-0-none, budget-1-0.3) in ``tmp_path``; ``protocol``: its
    results.json's latency_protocol (None: not recorded); ``manifest_latency``: each manifest's ``latency``
    (None: no manifest)."""
    archs = []
    for i, budget in enumerate((None, 0.3)):
        folder = tmp_path / "export" / f"budget-{i}-{'none' if budget is None else budget}"
        folder.mkdir(parents=True)
        if manifest_latency is not None:
            (folder / "manifest.json").write_text(json.dumps({"choices": ["a"], "latency": manifest_latency}))
        archs.append({"budget": budget, "epsilon": 0.0, "latency_ms": 0.13, "int8": Q,
                      "onnx": str((folder / "model.onnx").relative_to(tmp_path))})
    res = {"recipe": "r2", "architectures": archs, **({"latency_protocol": protocol} if protocol else {})}
    (tmp_path / "results.json").write_text(json.dumps(res))
    return tmp_path


# ---- 1. latency_table.py: the run's rows say how they were timed -----------------------------------------------


def test_int8_run_rows_carry_the_runs_latency_protocol(scripts, tmp_path):
    latency_table, _ = scripts
    run = _run(tmp_path, {"batch": 4, "threads": 2, "clock": "wall"}, None)
    rows = latency_table.int8_from_run(run)
    assert [(r["batch"], r["threads"], r["clock"]) for r in rows] == [(4, 2, "wall")] * 2
    assert all("batch 4, 2 threads" in r["model"] for r in rows), [r["model"] for r in rows]
    assert "budget=0.3" in rows[1]["model"]


def test_a_run_without_latency_protocol_is_read_from_its_manifests(scripts, tmp_path):
    latency_table, _ = scripts
    run = _run(tmp_path, None, {"fp32_ms": 0.13, "batch": 8, "threads": 1, "clock": "cpu"})
    rows = latency_table.int8_from_run(run)
    assert [(r["batch"], r["threads"], r["clock"]) for r in rows] == [(8, 1, "cpu")] * 2
    assert "batch 8, 1 thread, cpu clock" in rows[0]["model"]


def test_a_manifest_without_a_clock_was_timed_by_the_wall_clock(scripts, tmp_path):
    latency_table, _ = scripts
    rows = latency_table.int8_from_run(_run(tmp_path, None, {"fp32_ms": 0.13, "batch": 1, "threads": 1}))
    assert rows[0]["clock"] == "wall" and "batch 1, 1 thread)" in rows[0]["model"]


def test_a_run_that_records_no_timing_says_so(scripts, tmp_path):
    latency_table, _ = scripts
    rows = latency_table.int8_from_run(_run(tmp_path, None, None))  # no manifests, no latency_protocol
    assert rows[0]["batch"] is None and rows[0]["threads"] is None and rows[0]["clock"] is None
    assert "timing not recorded" in rows[0]["model"]
    note = latency_table.timing_note(rows, argparse.Namespace(batch=1, threads=1, clock="wall"))
    assert note is not None and "timing not recorded" in note


def test_a_damaged_latency_protocol_is_one_message(scripts, tmp_path):
    latency_table, _ = scripts
    run = _run(tmp_path, {"batch": "4", "threads": 2}, None)
    with pytest.raises(UserError, match=r"latency_protocol\.batch"):
        latency_table.int8_from_run(run)


def test_the_note_names_both_protocols_only_when_they_differ(scripts, tmp_path):
    latency_table, _ = scripts
    rows = latency_table.int8_from_run(_run(tmp_path, {"batch": 4, "threads": 2, "clock": "wall"}, None))
    note = latency_table.timing_note(rows, argparse.Namespace(batch=1, threads=1, clock="wall"))
    assert "(batch 4, 2 threads)" in note and "(batch 1, 1 thread)" in note and "\n" not in note
    assert latency_table.timing_note(rows, argparse.Namespace(batch=4, threads=2, clock="wall")) is None
    assert "cpu clock" in latency_table.timing_note(rows, argparse.Namespace(batch=4, threads=2, clock="cpu"))


def test_latency_table_prints_the_protocol_and_the_note(scripts, tmp_path, monkeypatch, capsys):
    latency_table, _ = scripts
    run = _run(tmp_path, {"batch": 4, "threads": 2, "clock": "wall"}, None)
    spn = {"model": "spnasnet_100", "fp32_ms": 2.0, "int8_ms": 1.0, "speedup": 2.0, "size_ratio": 0.3,
           "accuracy_drop_points": None, "batch": 1, "threads": 1, "clock": "wall"}
    monkeypatch.setattr(latency_table, "bench_space", lambda name, args: {"space": name, "_detail": {}})
    monkeypatch.setattr(latency_table, "bench_int8_proxyless", lambda args: spn)
    monkeypatch.setattr(sys, "argv", ["latency_table.py", "--spaces", "digits", "--threads", "1", "--int8-run",
                                      str(run)])
    before = torch.get_num_threads()
    try:
        latency_table.main()
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr().out.splitlines()
    assert any(ln.startswith("int8 r2 budget=none eps=0 (batch 4, 2 threads): fp32 0.13 ms") for ln in out), out
    notes = [ln for ln in out if ln.startswith("note: ")]
    assert len(notes) == 1 and "(batch 4, 2 threads)" in notes[0] and "(batch 1, 1 thread)" in notes[0], out
    line = json.loads(out[-1])
    assert [(r["batch"], r["threads"]) for r in line["int8"]] == [(1, 1), (4, 2), (4, 2)]


def test_spnasnet_row_names_its_threads_and_holds_its_protocol(scripts, monkeypatch):
    latency_table, _ = scripts
    import automl.export
    import automl.export.quantize as quantize

    monkeypatch.setattr(automl.export, "export_architecture",
                        lambda cs, arch, folder, **kw: (Path(folder) / "model.onnx").write_bytes(b"x" * 100))
    monkeypatch.setattr(quantize, "quantize_int8", lambda fp32, int8, calib, **kw: Path(int8).write_bytes(b"x" * 30))
    monkeypatch.setattr(quantize, "onnx_latency", lambda path, *a, **kw: 1.0)
    row = latency_table.bench_int8_proxyless(argparse.Namespace(threads=2, batch=4, measure_repeat=1, clock="wall"))
    assert "batch 4, 2 threads" in row["model"]
    assert (row["batch"], row["threads"], row["clock"]) == (4, 2, "wall")


# ---- 2. export_latency.py: a family folder, and small times ----------------------------------------------------


def _member_folder(folder: Path, onnx: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"choices": ["a"], "params": 5, "input_shape": [1, 8, 8]}))
    if onnx:
        (folder / "model.onnx").write_bytes(b"x")
    return folder


def _main(export_latency, monkeypatch, capsys, argv):
    timed = []

    def bench_dir(folder, threads, runs):
        timed.append(folder)
        ms = {"median": 0.0371234, "p95": 0.0412}
        return {"dir": str(folder), "params": 5, "input_shape": [1, 8, 8], "choices": ["a"],
                "torch_b1_ms": {"median": 5.7612, "p95": 10.5}, "onnxruntime_b1_ms": ms,
                "torch_b32_img_s": {"median": 30.0, "p95": 20.0}, "onnxruntime_b32_img_s": {"median": 3.0, "p95": 2.0}}

    monkeypatch.setattr(export_latency, "bench_dir", bench_dir)
    before = torch.get_num_threads()
    try:
        rc = export_latency.main(argv)
    finally:
        torch.set_num_threads(before)
    return rc, timed, capsys.readouterr().out


def test_a_runs_family_folder_times_each_member(scripts, tmp_path, monkeypatch, capsys):
    _, export_latency = scripts
    family = tmp_path / "export"
    b1, b0 = _member_folder(family / "budget-1-0.3"), _member_folder(family / "budget-0-none")
    (family / "notes").mkdir()  # a folder without a manifest is not a member
    rc, timed, out = _main(export_latency, monkeypatch, capsys, [str(family), "--runs", "1", "--threads", "1"])
    assert rc == 0 and timed == [b0, b1]
    assert "budget-0-none " in out and "budget-1-0.3 " in out


def test_a_member_folder_is_still_itself(scripts, tmp_path, monkeypatch, capsys):
    _, export_latency = scripts
    member = _member_folder(tmp_path / "budget-0-none")
    _member_folder(member / "inner")  # a folder with a manifest is timed itself, whatever it holds
    rc, timed, _ = _main(export_latency, monkeypatch, capsys, [str(member), "--runs", "1", "--threads", "1"])
    assert rc == 0 and timed == [member]


def test_a_folder_of_no_exports_is_still_refused(scripts, tmp_path, monkeypatch, capsys):
    _, export_latency = scripts
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(UserError, match="no manifest here"):
        _main(export_latency, monkeypatch, capsys, [str(tmp_path / "empty"), "--runs", "1", "--threads", "1"])


def test_an_export_without_model_onnx_is_one_message_before_timing(scripts, tmp_path, monkeypatch, capsys):
    _, export_latency = scripts
    family = tmp_path / "export"
    _member_folder(family / "budget-0-none")
    bare = _member_folder(family / "budget-1-0.3", onnx=False)
    timed = []
    monkeypatch.setattr(export_latency, "bench_dir", lambda folder, *a: timed.append(folder))
    with pytest.raises(UserError, match=f"{bare}: no model.onnx here"):
        export_latency.main([str(family), "--runs", "1", "--threads", "1"])
    assert timed == []


def test_small_times_keep_three_significant_figures(scripts, tmp_path, monkeypatch, capsys):
    _, export_latency = scripts
    member = _member_folder(tmp_path / "digits-0")
    rc, _, out = _main(export_latency, monkeypatch, capsys, [str(member), "--runs", "1", "--threads", "1"])
    row = next(ln for ln in out.splitlines() if ln.startswith("digits-0"))
    assert "0.0371 ( 0.0412)" in row and "5.76 (   10.5)" in row, row
    line = json.loads(out.splitlines()[-1])  # the JSON line keeps every digit
    assert line["results"][0]["onnxruntime_b1_ms"] == {"median": 0.0371234, "p95": 0.0412}


@pytest.mark.parametrize("x, shown", [(0.0371234, "0.0371"), (5.7612, "5.76"), (123.4, "123"), (12345.6, "12346"),
                                      (0.1, "0.100"), (0.0, "0")])
def test_significant(scripts, x, shown):
    _, export_latency = scripts
    assert export_latency.significant(x) == shown
