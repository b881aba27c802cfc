"""`automl space encode --arch-def` and `automl space show --json` record their files by absolute paths, as
encode's "space": read from another folder, a relative path would name another file (or none)."""
import json
import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ARCH_DEF = [["ds_r1_k3_s1_c16"], ["ir_r2_k3_s2_e3_c24"], ["ir_r1_k5_s2_e6_c40"], ["ir_r1_k5_s2_e6_c80"],
            ["ir_r1_k5_s1_e6_c96"], ["ir_r1_k5_s2_e6_c192"], ["ir_r1_k3_s1_e6_c320"]]


def test_encode_records_the_arch_def_file_absolute(tmp_path, monkeypatch, capsys):
    from automl.cli import main

    shutil.copy(ROOT / "spaces" / "proxylessnas.space", tmp_path / "p.space")
    (tmp_path / "ex").mkdir()
    (tmp_path / "ex" / "a.json").write_text(json.dumps(ARCH_DEF))
    monkeypatch.chdir(tmp_path)
    assert main(["space", "encode", "p.space", "--arch-def", os.path.join("ex", "a.json"), "--out", "arch.json"]) == 0
    capsys.readouterr()
    written = json.loads((tmp_path / "arch.json").read_text())
    assert written["space"] == str((tmp_path / "p.space").resolve()), written
    assert written["arch_def_file"] == str((tmp_path / "ex" / "a.json").resolve()), written
    assert Path(written["arch_def_file"]).is_absolute() and Path(written["arch_def_file"]).is_file()
    # printed (no --out): the same
    assert main(["space", "encode", "p.space", "--arch-def", "ex/a.json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["arch_def_file"] == str((tmp_path / "ex" / "a.json").resolve()), printed


def test_encode_absolute_arch_def_file_reads_back_from_another_folder(tmp_path, monkeypatch, capsys):
    from automl.cli import main

    shutil.copy(ROOT / "spaces" / "proxylessnas.space", tmp_path / "p.space")
    (tmp_path / "a.json").write_text(json.dumps(ARCH_DEF))
    monkeypatch.chdir(tmp_path)
    assert main(["space", "encode", "p.space", "--arch-def", "a.json", "--out", "arch.json"]) == 0
    capsys.readouterr()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    written = json.loads((tmp_path / "arch.json").read_text())
    assert json.loads(Path(written["arch_def_file"]).read_text()) == ARCH_DEF
    # the recorded ARCH.json still costs from another folder
    assert main(["space", "cost", written["space"], "--arch", str(tmp_path / "arch.json")]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == written["params"]


def test_show_json_records_the_space_file_absolute(tmp_path, monkeypatch, capsys):
    from automl.cli import main

    shutil.copy(ROOT / "spaces" / "proxylessnas.space", tmp_path / "p.space")
    monkeypatch.chdir(tmp_path)
    assert main(["space", "show", "p.space", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["file"] == str((tmp_path / "p.space").resolve()), summary["file"]
    assert list(summary)[:3] == ["name", "kind", "file"]  # the key stays where it was
