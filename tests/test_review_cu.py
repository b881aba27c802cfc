"""Review CU: `automl export` into a folder that already holds an export (a run's member folder, trained weights)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.dsl import space_digest
from helpers import digits_export

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """One `automl export` of a digits network (fresh weights), copied by each test."""
    return digits_export(tmp_path_factory.mktemp("cu"))[1]


def _member(exported: Path, folder: Path, **fields) -> Path:
    """A copy of the export at ``folder`` with ``fields`` set in its manifest (``weights_source``: weights.source)."""
    shutil.copytree(exported, folder)
    m = json.loads((folder / "manifest.json").read_text())
    if "weights_source" in fields:
        m["weights"]["source"] = fields.pop("weights_source")
    m.update(fields)
    (folder / "manifest.json").write_text(json.dumps(m, indent=2))
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_cu_export_into_the_folder_of_a_run_still_running_is_refused(tmp_path, exported, capsys):
    run = tmp_path / "run"
    member = _member(exported, run / "export" / "budget-0-none", run=str(run), weights_source="retrained")
    before = _files(member)
    fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT)
    try:  # the run's lock, as automl run holds it while it runs
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": "here", "started": "now",
                                 "command": "automl run r.yaml"}).encode())
        code = main(["export", DIGITS, "--arch", str(member / "manifest.json"),
                     "--weights", str(member / "model.safetensors"), "--out", str(member), "--opset", "18"])
    finally:
        os.close(fd)
    assert code == 2
    err = _one_error(capsys)
    assert f"run {run}" in err and "still running" in err and "another --out" in err
    assert _files(member) == before  # nothing replaced while the run may be writing there


def test_cu_reexport_into_a_runs_member_folder_keeps_the_run_that_owns_it(tmp_path, exported):
    run = tmp_path / "run"
    member = _member(exported, run / "export" / "budget-0-none", run=str(run.resolve()), weights_source="retrained")
    assert main(["export", DIGITS, "--arch", str(member / "manifest.json"),
                 "--weights", str(member / "model.safetensors"), "--out", str(member), "--opset", "18"]) == 0
    m = json.loads((member / "manifest.json").read_text())
    assert m["onnx"]["opset"] == 18 and m["weights"]["source"] == "retrained"
    assert m["run"] == str(run.resolve())  # another run sharing the export.dir still refuses this folder


def test_cu_export_without_weights_does_not_replace_trained_weights(tmp_path, exported, capsys):
    out = _member(exported, tmp_path / "trained", weights_source="retrained")
    before = _files(out)
    assert main(["export", DIGITS, "--arch", str(out / "manifest.json"), "--out", str(out)]) == 2
    err = _one_error(capsys)
    assert "trained weights" in err and f"--weights {out / 'model.safetensors'}" in err
    assert _files(out) == before
    # given them, that network is exported again with its weights
    assert main(["export", DIGITS, "--arch", str(out / "manifest.json"), "--weights", str(out / "model.safetensors"),
                 "--out", str(out)]) == 0
    assert (out / "model.safetensors").read_bytes() == before["model.safetensors"]
    # fresh weights are no loss: an export of them is replaced without --weights, as before
    fresh = _member(exported, tmp_path / "fresh")
    assert main(["export", DIGITS, "--arch", str(fresh / "manifest.json"), "--out", str(fresh)]) == 0


def test_cu_weights_of_a_supernet_of_another_space_are_refused_by_name(tmp_path, exported, capsys):
    other = ROOT / "spaces" / "nasbench201.space"
    ckpt = tmp_path / "run" / "checkpoints" / "ckpt-000003.pt"
    ckpt.parent.mkdir(parents=True)
    fingerprint = {"space": other.name, "space.sha256": space_digest(other.read_bytes()), "space_args": {}}
    torch.save({"supernet": load_compiled(str(other)).build_supernet().state_dict(), "supernet_origin": None,
                "weights_fingerprint": fingerprint}, ckpt)
    arch = str(exported / "manifest.json")
    assert main(["export", DIGITS, "--arch", arch, "--weights", str(ckpt), "--out", str(tmp_path / "o")]) == 2
    err = _one_error(capsys)
    assert f"--weights {ckpt}" in err and "nasbench201.space" in err and DIGITS in err
    assert not (tmp_path / "o").exists()
    # a checkpoint of this space file (its text with other comments and spacing counts as the same) is exported
    copy = tmp_path / "digits.space"
    copy.write_text("# a copy\n" + Path(DIGITS).read_text().replace("\n", "\n\n"))
    digits = load_compiled(DIGITS)
    fingerprint = {"space": "digits.space", "space.sha256": space_digest(Path(DIGITS).read_bytes())}
    torch.save({"supernet": digits.build_supernet().state_dict(), "weights_fingerprint": fingerprint}, ckpt)
    assert main(["export", str(copy), "--arch", arch, "--weights", str(ckpt), "--out", str(tmp_path / "o")]) == 0
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["weights"]["source"] == "supernet"
