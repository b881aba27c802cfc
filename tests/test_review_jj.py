"""Review JJ: parameter and MAC counts (and the costs of a metric that counts) are whole numbers in the JSON of
``automl space encode``, ``space cost`` and ``space show --json``, a real metric's stay real, and older files with
``"params": 5483032.0`` are still read; an ARCH.json names its space file so that ``space cost --arch`` and
``export --arch`` from another folder (the space by another path, a link, a copy) take it for the same space."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.export.manifest import recorded_space

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def work(tmp_path, monkeypatch):
    """``tmp_path`` with ``sp/digits.space``, its timm arch_def ``archdef.json`` (every first choice), and
    ``other/``, another folder; the working folder is ``tmp_path``."""
    (tmp_path / "sp").mkdir()
    shutil.copy(DIGITS, tmp_path / "sp" / "digits.space")
    (tmp_path / "other").mkdir()
    cs = load_compiled(str(DIGITS))
    arch_def = cs.arch_def(torch.zeros(cs.num_decisions, dtype=torch.long))
    (tmp_path / "archdef.json").write_text(json.dumps(arch_def))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _encode(capsys, space: str, out: str, *sets: str) -> dict:
    extra = [a for s in sets for a in ("--set", s)]
    code, _, err = _cli(capsys, "space", "encode", space, "--arch-def", "archdef.json", "--out", out, *extra)
    assert code == 0, err
    return json.loads(Path(out).read_text())


# ---- 1. counts are whole numbers -------------------------------------------------------------------------------

def test_encode_writes_params_as_a_whole_number(work, capsys):
    arch = _encode(capsys, "sp/digits.space", "arch.json")
    assert arch["params"] == 32290 and type(arch["params"]) is int, arch
    assert '"params": 32290\n' in (work / "arch.json").read_text()


def test_space_cost_writes_counts_as_whole_numbers(work, capsys):
    _encode(capsys, "sp/digits.space", "arch.json")
    code, out, err = _cli(capsys, "space", "cost", "sp/digits.space", "--arch", "arch.json")
    assert code == 0, err
    assert out == '{"params": 32290, "macs": 168032, "layers": 9}\n', out  # layers: a metric that counts


def test_a_real_metric_stays_real(work, capsys):
    text = DIGITS.read_text().replace("  default = 1\n", "  default = 0.5\n")
    assert "default = 0.5" in text
    (work / "sp" / "half.space").write_text(text)
    _encode(capsys, "sp/half.space", "arch.json")
    code, out, err = _cli(capsys, "space", "cost", "sp/half.space", "--arch", "arch.json")
    assert code == 0, err
    costs = json.loads(out)
    assert costs["layers"] == 4.5 and type(costs["params"]) is int and type(costs["macs"]) is int, out
    # a metric whose costs are real stays a float, whole or not (its fixed cost 0.0)
    code, out, _ = _cli(capsys, "space", "show", "sp/half.space", "--json", "--metric", "layers")
    summary = json.loads(out)
    assert summary["max_cost"] == 4.5 and type(summary["fixed_cost"]) is float, summary


def test_space_show_json_writes_counts_as_whole_numbers(work, capsys):
    code, out, err = _cli(capsys, "space", "show", "sp/digits.space", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert [type(summary[k]) for k in ("fixed_cost", "min_cost", "max_cost")] == [int] * 3, summary
    choice = summary["decisions"][0]["choices"][0]
    assert choice == {"name": "ir_k3_e1", "cost": 896, "costs": {"params": 896, "macs": 12544, "layers": 1}}, choice
    assert type(choice["cost"]) is int and type(choice["costs"]["macs"]) is int


def test_an_older_arch_json_with_float_params_is_still_read(work, capsys):
    arch = _encode(capsys, "sp/digits.space", "arch.json")
    old = {**arch, "space": "sp/digits.space", "params": 32290.0}  # as an earlier automl wrote it
    (work / "old.json").write_text(json.dumps(old))
    code, out, err = _cli(capsys, "space", "cost", "sp/digits.space", "--arch", "old.json")
    assert code == 0 and not err and json.loads(out)["params"] == 32290, err  # no "params" warning
    code, out, err = _cli(capsys, "export", "sp/digits.space", "--arch", "old.json", "--out", "exp")
    assert code == 0 and "warning" not in err, err
    assert json.loads((work / "exp" / "manifest.json").read_text())["params"] == 32290


# ---- 2. the space file, from another folder --------------------------------------------------------------------

def test_encode_records_the_resolved_space_file(work, capsys):
    os.symlink("sp/digits.space", work / "link.space")
    assert _encode(capsys, "sp/digits.space", "arch.json")["space"] == str(work / "sp" / "digits.space")
    assert _encode(capsys, "link.space", "arch2.json")["space"] == str(work / "sp" / "digits.space")


@pytest.mark.parametrize("space", ["../sp/digits.space", "ABS", "../link.space"])
def test_a_set_against_an_arch_json_from_another_folder_names_the_parameter_not_another_space(
        work, capsys, monkeypatch, space):
    """The same space file by another path (relative to another folder, absolute, a link): the ``--set`` that
    contradicts the ARCH.json's space_args is refused as such, not as a file of another space."""
    os.symlink("sp/digits.space", work / "link.space")
    _encode(capsys, "sp/digits.space", "arch.json", "head=64")
    monkeypatch.chdir(work / "other")
    space = str(work / "sp" / "digits.space") if space == "ABS" else space
    code, out, err = _cli(capsys, "space", "cost", space, "--arch", "../arch.json", "--set", "head=128")
    assert code == 2 and not out, err
    assert err.startswith("error: --set head=128 contradicts --arch ../arch.json: its network was encoded with "
                          "head=64"), err
    assert "encoded for the space file" not in err, err


def test_an_arch_json_from_another_folder_fits_and_exports(work, capsys, monkeypatch):
    _encode(capsys, "sp/digits.space", "arch.json", "head=64")
    monkeypatch.chdir(work / "other")
    code, out, err = _cli(capsys, "space", "cost", "../sp/digits.space", "--arch", "../arch.json")
    assert code == 0 and not err and json.loads(out)["params"] == 28450, err  # its space_args: head=64
    code, out, err = _cli(capsys, "export", "../sp/digits.space", "--arch", "../arch.json", "--out", "exp")
    assert code == 0 and "warning" not in err, err
    assert json.loads((work / "other" / "exp" / "manifest.json").read_text())["space_args"] == {"head": "64"}


def _typo(arch: dict) -> dict:
    return {**arch, "choices": {**arch["choices"], "s1_1": "ir_k9_e1"}}


@pytest.mark.parametrize("recorded", ["sp/digits.space", "RESOLVED"])
def test_a_wrong_choice_from_another_folder_is_not_blamed_on_another_space(work, capsys, monkeypatch, recorded):
    """An ARCH.json with a choice the space lacks, read from another folder: an earlier automl's (the space as
    typed, relative to the folder it was encoded in) or this one's (resolved)."""
    arch = _encode(capsys, "sp/digits.space", "arch.json")
    arch = {**_typo(arch), "space": str(work / "sp" / "digits.space") if recorded == "RESOLVED" else recorded}
    (work / "typo.json").write_text(json.dumps(arch))
    monkeypatch.chdir(work / "other")
    for space in ("../sp/digits.space", str(work / "sp" / "digits.space")):
        code, _, err = _cli(capsys, "space", "cost", space, "--arch", "../typo.json")
        assert code == 2 and err.startswith("error: --arch ../typo.json: decision 's1_1': unknown choice "
                                            "'ir_k9_e1'"), err


def test_a_copy_of_the_space_file_is_the_same_space(work, capsys, monkeypatch):
    arch = _encode(capsys, "sp/digits.space", "arch.json")
    (work / "typo.json").write_text(json.dumps(_typo(arch)))
    shutil.copy(work / "sp" / "digits.space", work / "other" / "copy.space")
    monkeypatch.chdir(work / "other")
    code, _, err = _cli(capsys, "space", "cost", "copy.space", "--arch", "../typo.json")
    assert code == 2 and err.startswith("error: --arch ../typo.json: decision 's1_1'"), err


def test_another_space_file_is_still_named(work, capsys):
    """A space file of other bytes (edited since: another head), not the one the ARCH.json records: a choice that
    does not fit says first which space file the ARCH.json was encoded for."""
    arch = _encode(capsys, "sp/digits.space", "arch.json")
    (work / "typo.json").write_text(json.dumps(_typo(arch)))
    edited = (work / "sp" / "digits.space").read_text().replace("param head = 128", "param head = 96")
    (work / "other" / "edited.space").write_text(edited)
    code, _, err = _cli(capsys, "space", "cost", "other/edited.space", "--arch", "typo.json")
    assert code == 2, err
    assert err.startswith(f"error: --arch typo.json was encoded for the space file {work / 'sp' / 'digits.space'} "
                          f"(its \"space\"), not other/edited.space"), err


def test_recorded_space_of_a_missing_file_of_another_name(tmp_path):
    """A recorded space file that is not found here (another machine's) and has another name is another space."""
    obj = {"space": str(tmp_path / "gone" / "mine.space"), "choices": {}}
    said = recorded_space(obj, "digits", str(DIGITS), tmp_path / "arch.json")
    assert said is not None and "mine.space" in said, said
    same_name = {"space": str(tmp_path / "gone" / "digits.space"), "choices": {}}
    assert recorded_space(same_name, "digits", str(DIGITS), tmp_path / "arch.json") is None
